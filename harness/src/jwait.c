/* jwait — the journal wait, see jwait.h.
 *
 * The exchange is suspended with a waiter on its instance (woken by every new journal
 * entry, respond.c) and a timer at its timeout; each resume counts again. The count, its
 * route filter and the deadline live in the exchange (wait_count, wait_route,
 * hold_until_us); the exchange holds the instance's reference (ex->inst) until it is freed.
 */
#include "jwait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xalloc.h"

/* How many kept journal entries have this route (NULL: every entry; an unknown name: 0). */
static size_t count_of(const struct instance *in, const char *route)
{
    if (!route)
        return journal_count(&in->journal, -1);
    const struct scenario *s = in->scenario;
    for (size_t i = 0; i < s->n_routes; i++)
        if (!strcmp(s->routes[i].name, route))
            return journal_count(&in->journal, (long)i);
    return 0;
}

static enum MHD_Result refuse(struct exchange *ex, int status, const char *what, const char *id)
{
    return ex_queue_json(ex, status, json_pack("{s:s+}", "error", what, id ? id : ""));
}

/* The first call: read the query into the exchange; in becomes the exchange's reference. */
static void start(struct exchange *ex, struct instance *in, enum jwait_door door)
{
    const char *c = request_param(&ex->req, "count");
    const char *t = request_param(&ex->req, "timeout");
    const char *r = request_param(&ex->req, "route");
    ex->wait_count = c ? (size_t)strtoull(c, NULL, 10) : 1;
    unsigned long long timeout = t ? strtoull(t, NULL, 10) : JWAIT_DEFAULT_TIMEOUT_MS;
    if (door == JWAIT_INSTANCE && timeout > JWAIT_MAX_TIMEOUT_MS)
        timeout = JWAIT_MAX_TIMEOUT_MS;
    if (timeout > 24ull * 3600 * 1000)
        timeout = 24ull * 3600 * 1000; /* no overflow of the deadline */
    ex->hold_until_us = ex->arrived_us + (uint64_t)timeout * 1000u;
    ex->wait_route = r ? xstrdup(r) : NULL;
    ex->inst = in;
}

static enum MHD_Result wait_on(struct exchange *ex, struct instance *in, enum jwait_door door)
{
    if (ex->state != EX_HOLDING)
        start(ex, in, door);
    in = ex->inst;
    pthread_mutex_lock(&in->lock);
    if (ex->waiting) {
        instance_remove_waiter_locked(in, &ex->waiter);
        ex->waiting = false;
    }
    size_t n = count_of(in, ex->wait_route);
    bool unloaded = in->unloaded;
    if (n >= ex->wait_count || mono_us() >= ex->hold_until_us || unloaded || ex_stopping(ex)) {
        pthread_mutex_unlock(&in->lock);
        if (unloaded)
            return refuse(ex, 404, "the instance was unloaded: ", in->id);
        return ex_queue_json(
            ex, n >= ex->wait_count ? 200 : 408,
            json_pack("{s:I, s:I}", "count", (json_int_t)n, "wanted", (json_int_t)ex->wait_count));
    }
    ex->waiter.channel = -1;
    ex->waiter.wake = ex_wake;
    ex->waiter.arg = ex;
    instance_add_waiter_locked(in, &ex->waiter);
    ex->waiting = true;
    pthread_mutex_unlock(&in->lock);
    ex->state = EX_HOLDING;
    ex_sleep_until(ex, ex->hold_until_us);
    return MHD_YES;
}

enum MHD_Result jwait_control(struct exchange *ex, struct instance *in)
{
    return wait_on(ex, in, JWAIT_CONTROL);
}

bool jwait_is_instance_path(const char *path)
{
    if (strncmp(path, "/s/", 3))
        return false;
    const char *p = path + 3;
    size_t idlen = strcspn(p, "/");
    return idlen > 0 && !strcmp(p + idlen, JWAIT_INSTANCE_PATH);
}

enum MHD_Result jwait_instance(struct exchange *ex)
{
    if (ex->state == EX_HOLDING)
        return wait_on(ex, NULL, JWAIT_INSTANCE);
    if (strcmp(ex->req.method, "GET")) {
        static const char msg[] = "{\"error\":\"the journal wait takes GET only\"}\n";
        return ex_queue_simple(ex, 405, "application/json", msg, sizeof msg - 1);
    }
    const char *p = ex->req.path + 3;
    char *id = xstrndup(p, strcspn(p, "/"));
    struct instance *in = registry_get(ex_registry(ex), id);
    enum MHD_Result r = in ? wait_on(ex, in, JWAIT_INSTANCE) : refuse(ex, 404, "no instance ", id);
    free(id);
    return r;
}
