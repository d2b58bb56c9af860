/* control — the control API under /_harness/ on the control port (docs/control-api.md).
 *
 * Every request passes ctlauth first (Host, Origin, token; the health probe needs no
 * token), and every file it reads (`file`, `base_dir`) is confined to the server's roots
 * by fsroot.
 *
 *   GET    /_harness/health | version | origins
 *   POST   /_harness/instances                  {"file": PATH} or {"yaml": TEXT,
 *                                                "base_dir": DIR}, optional "id"
 *   GET    /_harness/instances
 *   GET    /_harness/instances/ID
 *   DELETE /_harness/instances/ID
 *   POST   /_harness/instances/ID/reset
 *   GET    /_harness/instances/ID/journal?since=SEQ
 *   GET    /_harness/instances/ID/wait?count=N&route=NAME&timeout=MS
 *   POST   /_harness/instances/ID/publish       {"channel": NAME, "data": TEXT}
 *
 * JSON in and out (jansson). Errors are {"error": TEXT} (and "errors": [{file, line, col,
 * message}] for a scenario that does not load), with 400, 404, 405, 409 or 408 (a wait that
 * timed out). The wait is jwait.h's, shared with the instance's own door on the scenario
 * ports.
 */
#include "control.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctl_load.h"
#include <time.h>
#include "ctlauth.h"
#include "fsroot.h"
#include "jwait.h"
#include "scenario.h"
#include "version.h"
#include "xalloc.h"

/* The journal's clock: the wall-clock time (ms since the epoch, as JavaScript's Date.now())
 * of its time 0, so that its times and a client's can be put on one timeline. */
static json_t *clock_json(uint64_t base_us)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    double now_ms = (double)wall.tv_sec * 1000.0 + (double)wall.tv_nsec / 1e6;
    double since_ms = (double)(mono_us() - base_us) / 1000.0;
    return json_pack("{s:f}", "epoch_ms", now_ms - since_ms);
}

static enum MHD_Result error(struct exchange *ex, int status, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return ex_queue_json(ex, status, json_pack("{s:s}", "error", msg));
}

/* A file or folder the request named was refused: 403 outside the roots, else 400. The
 * path is the client's own; nothing of the file is said. */
static enum MHD_Result file_error(struct exchange *ex, const char *key, const char *path,
                                  const struct fsroot_error *fe)
{
    char why[200];
    fsroot_describe(fe, why, sizeof why);
    bool refused = fe->status == FSROOT_OUTSIDE || fe->status == FSROOT_NO_ROOTS;
    return ex_queue_json(ex, refused ? 403 : 400,
                         json_pack("{s:s+++++}", "error", key, ": '", path, "': ", why,
                                   refused ? " (see harness serve --root)" : ""));
}

/* Read the scenario file at path if the roots allow it: its text (owned), its folder and
 * real path (owned: body_file is read beside it, "file" names it), or NULL with the
 * refusal queued (*r its result). */
static char *read_file(struct exchange *ex, const char *path, size_t *len, char **dir,
                       char **real_path, enum MHD_Result *r)
{
    struct fsroot_error fe;
    char *text = fsroot_read(ex_roots(ex), path, FSROOT_MAX_BYTES, len, &fe);
    char real[PATH_MAX];
    if (text && !realpath(path, real))
        fe = (struct fsroot_error){.status = FSROOT_MISSING, .err = errno};
    if (fe.status != FSROOT_OK) {
        *r = file_error(ex, "file", path, &fe);
        free(text);
        return NULL;
    }
    *real_path = xstrdup(real);
    *dir = xstrdup(real);
    *strrchr(*dir, '/') = 0;
    if (!**dir) {
        free(*dir);
        *dir = xstrdup("/");
    }
    return text;
}

static json_t *instance_json(struct exchange *ex, struct instance *in)
{
    char base[300];
    snprintf(base, sizeof base, "/s/%s", in->id);
    const struct scenario *s = in->scenario;
    /* the instance's own origins: its tls and site keys pick the topology (origins.h) */
    const char(*mine)[ORIGIN_LEN] = ex_scenario_origins(ex, s);
    json_t *urls = json_object(), *origins = json_object();
    for (int i = 0; i < ORIGIN_N; i++) {
        if (!*mine[i])
            continue; /* not served */
        json_object_set_new(origins, ORIGIN_NAMES[i], json_string(mine[i]));
        json_object_set_new(urls, ORIGIN_NAMES[i], json_sprintf("%s%s", mine[i], base));
    }
    return json_pack("{s:s, s:s?, s:s?, s:s, s:o, s:o, s:O?, s:O?}", "instance", in->id, "scenario",
                     s->id, "file", s->file, "base", base, "urls", urls, "origins", origins,
                     "client", s->client, "expect", s->expect);
}

static json_t *diags_json(const struct diag_list *d)
{
    json_t *list = json_array();
    for (size_t i = 0; i < d->n; i++)
        json_array_append_new(list, json_pack("{s:s, s:i, s:i, s:s}", "file", d->items[i].file,
                                              "line", d->items[i].line, "col", d->items[i].col,
                                              "message", d->items[i].message));
    return list;
}

/* The second half of a load: the scenario was loaded off this thread (ctl_load.h). */
static enum MHD_Result loaded(struct exchange *ex)
{
    struct scenario *s = NULL;
    struct diag_list diags;
    char *id = NULL;
    if (!ctl_load_take(ex, &s, &diags, &id))
        return error(ex, 503, "the server is stopping%s", NULL);
    if (!s) {
        json_t *doc = json_pack("{s:s, s:o}", "error", "the scenario does not load", "errors",
                                diags_json(&diags));
        diag_free(&diags);
        free(id);
        return ex_queue_json(ex, 400, doc);
    }
    diag_free(&diags);
    struct instance *in = NULL;
    enum registry_status st = registry_add(ex_registry(ex), s, id, &in);
    if (st != REG_OK) {
        enum MHD_Result r =
            st == REG_CONFLICT
                ? error(ex, 409, "an instance %s is already loaded", id)
                : error(ex, 400, "bad instance id '%s' (letters, digits, . - _)", id);
        free(id);
        return r;
    }
    free(id);
    json_t *doc = instance_json(ex, in);
    instance_unref(ex_registry(ex), in);
    return ex_queue_json(ex, 201, doc);
}

static enum MHD_Result load(struct exchange *ex)
{
    if (ex->state == EX_HOLDING || ctl_load_pending(ex))
        return loaded(ex);
    json_error_t jerr;
    json_t *req = json_loadb((const char *)ex->req.body, ex->req.body_len, 0, &jerr);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        return error(ex, 400, "the body must be a JSON object: %s", jerr.text);
    }
    const char *file = json_string_value(json_object_get(req, "file"));
    const char *yaml = json_string_value(json_object_get(req, "yaml"));
    const char *base_dir = json_string_value(json_object_get(req, "base_dir"));
    json_t *idj = json_object_get(req, "id");
    const char *id = json_string_value(idj);
    if ((!file) == (!yaml)) {
        json_decref(req);
        return error(ex, 400, "give exactly one of \"file\" and \"yaml\"%s", NULL);
    }
    if (idj && !json_is_null(idj) && !id) {
        json_decref(req);
        return error(ex, 400, "\"id\" must be a string%s", NULL);
    }
    char *dir = NULL, *real = NULL, *text = NULL;
    size_t len = 0;
    enum MHD_Result r = MHD_NO;
    if (file) {
        text = read_file(ex, file, &len, &dir, &real, &r);
    } else if (base_dir) {
        struct fsroot_error fe;
        if (!(dir = fsroot_dir(ex_roots(ex), base_dir, &fe)))
            r = file_error(ex, "base_dir", base_dir, &fe);
    }
    if (file ? !text : base_dir && !dir) {
        json_decref(req);
        return r;
    }
    if (!file) {
        len = strlen(yaml);
        text = xstrndup(yaml, len);
    }
    /* loading may take a while (a second for 100,000 routes): off this thread */
    ctl_load_start(ex, text, len, file ? file : "<posted>", dir, real, id);
    free(dir);
    free(real);
    json_decref(req);
    return MHD_YES;
}

static enum MHD_Result publish(struct exchange *ex, struct instance *in)
{
    json_error_t jerr;
    json_t *req = json_loadb((const char *)ex->req.body, ex->req.body_len, 0, &jerr);
    const char *channel = json_string_value(json_object_get(req, "channel"));
    json_t *data = json_object_get(req, "data");
    enum MHD_Result r;
    if (!channel || !data) {
        r = error(ex, 400, "publish takes {\"channel\": NAME, \"data\": TEXT or JSON}%s", NULL);
    } else {
        long ch = instance_channel_index(in, channel);
        if (ch < 0) {
            r = error(ex, 404, "no channel '%s' in this scenario", channel);
        } else {
            char *text = json_is_string(data) ? xstrdup(json_string_value(data))
                                              : json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
            pthread_mutex_lock(&in->lock);
            instance_publish_locked(in, (size_t)ch, text, strlen(text));
            size_t count = in->channels[ch].n;
            struct waiter *w = instance_take_waiters_locked(in, ch);
            pthread_mutex_unlock(&in->lock);
            free(text);
            waiters_wake(w);
            r = ex_queue_json(
                ex, 200, json_pack("{s:s, s:I}", "channel", channel, "events", (json_int_t)count));
        }
    }
    json_decref(req);
    return r;
}

static enum MHD_Result one_instance(struct exchange *ex, const char *rest)
{
    const char *method = ex->req.method;
    size_t idlen = strcspn(rest, "/");
    char *id = xstrndup(rest, idlen);
    const char *action = rest + idlen;
    if (*action == '/')
        action++;
    struct registry *reg = ex_registry(ex);
    if (ex->state == EX_HOLDING) {
        free(id);
        return jwait_control(ex, NULL);
    }
    struct instance *in = registry_get(reg, id);
    if (!in) {
        enum MHD_Result r = error(ex, 404, "no instance '%s'", id);
        free(id);
        return r;
    }
    free(id);
    enum MHD_Result r;
    if (!*action) {
        if (!strcmp(method, "GET")) {
            r = ex_queue_json(ex, 200, instance_json(ex, in));
        } else if (!strcmp(method, "DELETE")) {
            registry_remove(reg, in->id);
            r = ex_queue_simple(ex, 204, NULL, "", 0);
        } else {
            r = error(ex, 405, "use GET or DELETE%s", NULL);
        }
    } else if (!strcmp(action, "journal") && !strcmp(method, "GET")) {
        const char *since = request_param(&ex->req, "since");
        pthread_mutex_lock(&in->lock);
        json_t *doc = journal_dump(&in->journal, since ? strtoull(since, NULL, 10) : 0);
        uint64_t base_us = in->created_us;
        pthread_mutex_unlock(&in->lock);
        json_object_set_new(doc, "instance", json_string(in->id));
        json_object_set_new(doc, "clock", clock_json(base_us));
        r = ex_queue_json(ex, 200, doc);
    } else if (!strcmp(action, "wait") && !strcmp(method, "GET")) {
        return jwait_control(ex, in); /* keeps the reference */
    } else if (!strcmp(action, "reset") && !strcmp(method, "POST")) {
        pthread_mutex_lock(&in->lock);
        instance_reset_locked(in);
        pthread_mutex_unlock(&in->lock);
        r = ex_queue_json(ex, 200, json_pack("{s:s}", "instance", in->id));
    } else if (!strcmp(action, "publish") && !strcmp(method, "POST")) {
        r = publish(ex, in);
    } else {
        r = error(ex, 404, "unknown control path or method: %s", ex->req.path);
    }
    instance_unref(reg, in);
    return r;
}

/* Host, Origin and token (ctlauth.h): NULL if the request may go on, else the refusal. */
static bool admitted(struct exchange *ex, const char *path, enum MHD_Result *r)
{
    struct request *q = &ex->req;
    char local_ip[EX_LOCAL_IP_LEN]; /* the address served, for the Host check */
    if (ex->port_index == EX_PORT_CONTROL)
        ex_local_ip(ex, local_ip);
    else
        local_ip[0] = 0;
    struct ctlauth_request cr = {
        .host = request_header(q, "Host"),
        .origin = request_header(q, "Origin"),
        .token = request_header(q, "X-Harness-Token"),
        .authorization = request_header(q, "Authorization"),
        .local_ip = local_ip[0] ? local_ip : NULL,
        .token_exempt = !strcmp(path, "/health") && !strcmp(q->method, "GET"),
    };
    enum ctlauth_verdict v = ctlauth_check(ex_auth(ex), &cr);
    if (v == CTLAUTH_OK)
        return true;
    *r = ex_queue_json(ex, ctlauth_status(v), json_pack("{s:s}", "error", ctlauth_message(v)));
    return false;
}

enum MHD_Result control_handle(struct exchange *ex)
{
    const char *path = ex->req.path + strlen("/_harness");
    const char *method = ex->req.method;
    enum MHD_Result refused;
    if (ex->state != EX_HOLDING && !admitted(ex, path, &refused))
        return refused;
    if (!strcmp(path, "/health"))
        return ex_queue_json(ex, 200, json_pack("{s:s}", "status", "ok"));
    if (!strcmp(path, "/version"))
        return ex_queue_json(ex, 200,
                             json_pack("{s:s, s:s, s:s}", "name", "comet-harness", "version",
                                       HARNESS_VERSION, "libmicrohttpd", MHD_get_version()));
    if (!strcmp(path, "/origins")) {
        json_t *all = json_object();
        for (int i = 0; i < ORIGIN_N; i++)
            if ((i < ORIGIN_MAIN_HTTP || i > ORIGIN_ALT_HTTP) && *ex_origin(ex, i))
                json_object_set_new(all, ORIGIN_NAMES[i], json_string(ex_origin(ex, i)));
        return ex_queue_json(ex, 200, all);
    }
    if (!strcmp(path, "/instances") || !strcmp(path, "/instances/")) {
        if (!strcmp(method, "POST"))
            return load(ex);
        if (!strcmp(method, "GET"))
            return ex_queue_json(ex, 200,
                                 json_pack("{s:o}", "instances", registry_list(ex_registry(ex))));
        return error(ex, 405, "use GET or POST%s", NULL);
    }
    if (!strncmp(path, "/instances/", 11))
        return one_instance(ex, path + 11);
    return error(ex, 404, "unknown control path: %s", ex->req.path);
}
