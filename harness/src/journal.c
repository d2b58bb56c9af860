/* journal — see journal.h. A ring of pointers to records that grows by doubling; each
 * record is one allocation, its variable parts right behind it; JSON only when read. */
#include "journal.h"
#include "xalloc.h"

#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

void journal_init(struct journal *j, size_t limit, size_t max_bytes, size_t n_routes,
                  uint64_t base_us)
{
    memset(j, 0, sizeof *j);
    j->limit = limit ? limit : 1;
    j->max_bytes = max_bytes;
    j->n_routes = n_routes;
    j->route_kept = n_routes ? xcalloc(n_routes, sizeof *j->route_kept) : NULL;
    j->base_us = base_us;
}

static struct journal_entry *at(const struct journal *j, size_t i)
{
    return j->ring[(j->head + i) % j->cap];
}

static void entry_free(struct journal_entry *e)
{
    if (e->extra) {
        for (int i = 0; i < JOURNAL_N_EXTRAS; i++)
            json_decref(e->extra[i]);
        free(e->extra);
    }
    free(e);
}

/* Drop the oldest entry. */
static void drop_oldest(struct journal *j)
{
    struct journal_entry *e = at(j, 0);
    if (e->route >= 0 && (size_t)e->route < j->n_routes)
        j->route_kept[e->route]--;
    j->bytes -= e->bytes;
    entry_free(e);
    j->ring[j->head] = NULL;
    j->head = (j->head + 1) % j->cap;
    j->n--;
}

void journal_clear(struct journal *j, uint64_t base_us)
{
    while (j->n)
        drop_oldest(j);
    j->head = 0;
    j->total = j->dropped = 0;
    j->base_us = base_us;
}

void journal_free(struct journal *j)
{
    journal_clear(j, 0);
    free(j->ring);
    free(j->route_kept);
    j->ring = NULL;
    j->route_kept = NULL;
}

/* Room for one more entry: the ring grows until it holds limit entries. It holds pointers
 * (8 bytes a slot), so that doubling leaves at most 8 bytes a kept entry unused, where a
 * ring of records left up to a record's size (10,001 held streams cost 5 MiB of ring). */
static void make_room(struct journal *j)
{
    if (j->n < j->cap)
        return;
    if (j->cap < j->limit) {
        size_t cap = j->cap ? j->cap * 2 : 8;
        if (cap > j->limit)
            cap = j->limit;
        struct journal_entry **ring = xmalloc(cap * sizeof *ring);
        for (size_t i = 0; i < j->n; i++)
            ring[i] = at(j, i);
        free(j->ring);
        j->ring = ring;
        j->cap = cap;
        j->head = 0;
        return;
    }
    drop_oldest(j);
    j->dropped++;
}

/* ---------------------------------------------------------------- appending */

/* A bump allocator over the entry's variable parts. */
struct bump {
    char *p;
};

static const char *put_str(struct bump *b, const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *out = b->p;
    memcpy(out, s ? s : "", n);
    b->p += n;
    return out;
}

static size_t str_size(const char *s)
{
    return (s ? strlen(s) : 0) + 1;
}

uint64_t journal_append(struct journal *j, const struct journal_request *r)
{
    /* one allocation: the record, the header array (aligned, right behind it), then the
     * strings, then the body */
    size_t size = r->n_headers * sizeof(struct name_value);
    const char *strs[] = {r->remote, r->method, r->target, r->path, r->query, r->http_version};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        size += str_size(strs[i]);
    for (size_t i = 0; i < r->n_headers; i++)
        size += str_size(r->headers[i].name) + str_size(r->headers[i].value);
    const char *cors[3] = {r->cors_origin, r->cors_method, r->cors_headers};
    if (r->preflight) { /* the three pointers (after the headers), then their strings */
        size += sizeof cors;
        for (int i = 0; i < 3; i++)
            size += cors[i] ? str_size(cors[i]) : 0;
    }
    if (r->sni)
        size += str_size(r->sni);
    size += r->body_len;

    make_room(j);
    struct journal_entry *e = xmalloc(sizeof *e + size);
    memset(e, 0, sizeof *e);
    j->ring[(j->head + j->n) % j->cap] = e;
    char *block = (char *)(e + 1);
    struct bump b = {block + r->n_headers * sizeof(struct name_value)};
    e->headers = (struct name_value *)block;
    if (r->preflight) {
        e->cors = (const char **)b.p;
        b.p += sizeof cors;
    }
    e->n_headers = r->n_headers;
    for (size_t i = 0; i < r->n_headers; i++) {
        e->headers[i].name = (char *)put_str(&b, r->headers[i].name);
        e->headers[i].value = (char *)put_str(&b, r->headers[i].value);
    }
    e->remote = put_str(&b, r->remote);
    e->method = put_str(&b, r->method);
    e->target = put_str(&b, r->target);
    e->path = put_str(&b, r->path);
    e->query = put_str(&b, r->query);
    e->http_version = put_str(&b, r->http_version);
    e->has_cors = r->preflight;
    if (r->preflight)
        for (int i = 0; i < 3; i++)
            e->cors[i] = cors[i] ? put_str(&b, cors[i]) : NULL;
    e->sni = r->sni ? put_str(&b, r->sni) : NULL;
    if (r->body_len)
        memcpy(b.p, r->body, r->body_len);
    e->body = (const unsigned char *)b.p;
    e->body_len = r->body_len;

    e->id = ++j->next_id;
    e->seq = ++j->total;
    e->bytes = size + sizeof *e;
    e->port = r->port;
    e->cross = r->cross;
    e->origin = r->origin;
    e->tls = r->tls;
    e->arrived_us = r->arrived_us;
    e->preflight = r->preflight;
    e->route = r->route_name ? r->route : -1;
    e->route_name = r->route_name;
    e->response_index = r->response_index;
    e->has_count = r->has_count;
    e->count = r->count;
    j->n++;
    j->bytes += e->bytes;
    if (e->route >= 0 && (size_t)e->route < j->n_routes)
        j->route_kept[e->route]++;
    while (j->max_bytes && j->bytes > j->max_bytes && j->n > 1) {
        drop_oldest(j);
        j->dropped++;
    }
    return e->id;
}

struct journal_entry *journal_find(struct journal *j, uint64_t id)
{
    if (!id || !j->n)
        return NULL;
    uint64_t first = at(j, 0)->id;
    if (id < first || id - first >= j->n)
        return NULL;
    return at(j, (size_t)(id - first));
}

/* ---------------------------------------------------------------- setters */

static void note_late(struct journal_entry *e, int key)
{
    for (uint8_t i = 0; i < e->n_late; i++)
        if (e->late[i] == key)
            return;
    e->late[e->n_late++] = (uint8_t)key;
}

void journal_set_status(struct journal_entry *e, int status)
{
    if (!e)
        return;
    e->status = status;
    note_late(e, JOURNAL_KEY_STATUS);
}

bool journal_has_phase(const struct journal_entry *e, enum journal_phase p)
{
    for (uint8_t i = 0; e && i < e->n_phases; i++)
        if (e->phase_order[i] == p)
            return true;
    return false;
}

void journal_set_phase(struct journal_entry *e, enum journal_phase p, uint64_t t)
{
    if (!e || journal_has_phase(e, p))
        return;
    e->phase_us[p] = t;
    e->phase_order[e->n_phases++] = (uint8_t)p;
}

void journal_set_end(struct journal_entry *e, const char *end)
{
    if (e)
        e->end = end;
}

void journal_set_ended(struct journal_entry *e, uint64_t t)
{
    if (!e)
        return;
    e->ended_us = t;
    note_late(e, JOURNAL_KEY_ENDED);
}

void journal_set_bytes_sent(struct journal_entry *e, uint64_t n)
{
    if (e)
        e->bytes_sent = n;
}

void journal_set_extra(struct journal_entry *e, enum journal_extra which, json_t *value)
{
    if (!e) {
        json_decref(value);
        return;
    }
    if (!e->extra) /* most entries have none: the array comes with the first */
        e->extra = xcalloc(JOURNAL_N_EXTRAS, sizeof *e->extra);
    json_decref(e->extra[which]);
    e->extra[which] = value;
    note_late(e, JOURNAL_KEY_EXTRA0 + (int)which);
}

json_t *journal_extra(const struct journal_entry *e, enum journal_extra which)
{
    return e && e->extra ? e->extra[which] : NULL;
}

/* ---------------------------------------------------------------- reading */

static const char *const PHASE_NAMES[JOURNAL_N_PHASES] = {"headers_sent", "body_first_byte",
                                                          "body_done"};
static const char *const EXTRA_NAMES[JOURNAL_N_EXTRAS] = {"require", "jsonp", "long_poll",
                                                          "websocket", "warnings"};

/* Milliseconds since the journal's base, to the microsecond. */
static json_t *ms_at(const struct journal *j, uint64_t t)
{
    double ms = t >= j->base_us ? (double)(t - j->base_us) / 1000.0 : 0.0;
    return json_real((double)(long long)(ms * 1000.0 + 0.5) / 1000.0);
}

static json_t *body_json(const struct journal_entry *e, const char **key)
{
    /* a JSON string if the body is UTF-8, else its base64 */
    json_t *s = json_stringn((const char *)e->body, e->body_len);
    if (s) {
        *key = "body";
        return s;
    }
    char *out = xmalloc(BASE64_ENCODE_RAW_LENGTH(e->body_len) + 1);
    base64_encode_raw(out, e->body_len, e->body);
    out[BASE64_ENCODE_RAW_LENGTH(e->body_len)] = 0;
    *key = "body_base64";
    s = json_string(out);
    free(out);
    return s;
}

static json_t *nullable_int(bool has, json_int_t v)
{
    return has ? json_integer(v) : json_null();
}

json_t *journal_entry_json(const struct journal *j, const struct journal_entry *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "port", json_integer(e->port));
    json_object_set_new(o, "origin",
                        json_string(e->origin  ? e->origin
                                    : e->cross ? "cross"
                                               : "main"));
    json_object_set_new(o, "tls", json_boolean(e->tls));
    if (e->sni)
        json_object_set_new(o, "sni", json_string(e->sni));
    json_object_set_new(o, "remote", json_string(e->remote));
    json_object_set_new(o, "method", json_string(e->method));
    json_object_set_new(o, "target", json_string(e->target));
    json_object_set_new(o, "path", json_string(e->path));
    json_object_set_new(o, "query", json_string(e->query));
    json_object_set_new(o, "http_version", json_string(e->http_version));
    /* the request head as the client put it on the wire, as far as libmicrohttpd keeps it
     * (docs/control-api.md, "Journal entries"): the request line rebuilt from its three
     * tokens, and the header names with their case, in arrival order */
    size_t line_len = strlen(e->method) + strlen(e->target) + strlen(e->http_version) + 3;
    char *line = xmalloc(line_len);
    snprintf(line, line_len, "%s %s %s", e->method, e->target, e->http_version);
    json_object_set_new(o, "request_line", json_string(line));
    free(line);
    json_t *headers = json_array(), *names = json_array();
    for (size_t i = 0; i < e->n_headers; i++) {
        json_array_append_new(headers, json_pack("[s,s]", e->headers[i].name, e->headers[i].value));
        json_array_append_new(names, json_string(e->headers[i].name));
    }
    json_object_set_new(o, "headers", headers);
    json_object_set_new(o, "header_names", names);
    const char *body_key;
    json_t *body = body_json(e, &body_key);
    json_object_set_new(o, body_key, body);
    json_object_set_new(o, "body_len", json_integer((json_int_t)e->body_len));
    json_object_set_new(o, "arrived", ms_at(j, e->arrived_us));
    json_t *phases = json_object();
    for (uint8_t i = 0; i < e->n_phases; i++)
        json_object_set_new(phases, PHASE_NAMES[e->phase_order[i]],
                            ms_at(j, e->phase_us[e->phase_order[i]]));
    json_object_set_new(o, "phases", phases);
    json_object_set_new(o, "bytes_sent", json_integer((json_int_t)e->bytes_sent));
    json_object_set_new(o, "end", e->end ? json_string(e->end) : json_null());
    json_object_set_new(o, "kind", json_string(e->preflight ? "preflight" : "actual"));
    json_object_set_new(o, "route", e->route_name ? json_string(e->route_name) : json_null());
    json_object_set_new(o, "response_index",
                        nullable_int(e->response_index >= 0, e->response_index));
    if (e->has_count)
        json_object_set_new(o, "count", json_integer((json_int_t)e->count));
    if (e->has_cors)
        json_object_set_new(o, "cors",
                            json_pack("{s:s?, s:s?, s:s?}", "origin", e->cors[0], "request_method",
                                      e->cors[1], "request_headers", e->cors[2]));
    json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
    for (uint8_t i = 0; i < e->n_late; i++) {
        int k = e->late[i];
        if (k == JOURNAL_KEY_STATUS)
            json_object_set_new(o, "status", nullable_int(e->status > 0, e->status));
        else if (k == JOURNAL_KEY_ENDED)
            json_object_set_new(o, "ended", ms_at(j, e->ended_us));
        else if (e->extra && e->extra[k - JOURNAL_KEY_EXTRA0])
            json_object_set_new(o, EXTRA_NAMES[k - JOURNAL_KEY_EXTRA0],
                                json_deep_copy(e->extra[k - JOURNAL_KEY_EXTRA0]));
    }
    return o;
}

json_t *journal_dump(const struct journal *j, uint64_t since)
{
    json_t *entries = json_array();
    /* seqs are consecutive: the first one wanted is found at once */
    size_t from = 0;
    if (j->n && since >= at(j, 0)->seq)
        from = since - at(j, 0)->seq + 1 < j->n ? (size_t)(since - at(j, 0)->seq + 1) : j->n;
    for (size_t i = from; i < j->n; i++)
        json_array_append_new(entries, journal_entry_json(j, at(j, i)));
    return json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)j->total, "dropped",
                     (json_int_t)j->dropped, "limit", (json_int_t)j->limit, "entries", entries);
}

size_t journal_count(const struct journal *j, long route)
{
    if (route < 0)
        return j->n;
    return (size_t)route < j->n_routes ? j->route_kept[route] : 0;
}
