/* respond — answering a request for a scenario instance; see respond.h.
 *
 *   dispatch      find the instance, the route (or a CORS preflight), the response of the
 *                 sequence; append the journal entry
 *   delay         suspend until `delay` has passed since arrival
 *   plan          plan.h builds the plan; a long poll with nothing to say is held here
 *                 (a waiter on its channel and a timer for its timeout)
 *   send          deliver.h, or ws_upgrade.h for `websocket:`
 *   completed     record the end in the journal
 *
 * The state machine (enum ex_state) runs once per call of the access handler: after the
 * headers and body, then after every resume.
 */
#include "respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deliver.h"
#include "route.h"
#include "ws_upgrade.h"
#include "xalloc.h"

/* ---------------------------------------------------------------- dispatch */

/* Whether what the response sends, or when, counts from the request's arrival. */
static bool has_schedule(const struct response *r)
{
    if (!r)
        return false;
    return r->delay_ms || r->body_delay_ms || r->trickle_bytes || r->kind == RESP_SSE ||
           r->kind == RESP_STREAM || r->kind == RESP_LONG_POLL || r->chunks.n;
}

static bool dispatch(struct exchange *ex)
{
    const char *p = ex->req.path + 3;
    size_t idlen = strcspn(p, "/");
    char *id = xstrndup(p, idlen);
    ex->inst = registry_get(ex_registry(ex), id);
    free(id);
    if (!ex->inst)
        return false;
    const char *rel = p + idlen;
    if (!*rel)
        rel = "/";
    struct instance *in = ex->inst;
    const struct scenario *s = in->scenario;
    pthread_mutex_lock(&in->lock);
    ex->preflight = false;
    ex->route = -1;
    if (request_is_preflight(&ex->req)) {
        ex->route = route_find_preflight(s, &ex->req, rel);
        ex->preflight = ex->route >= 0;
    }
    if (!ex->preflight)
        ex->route = route_find(s, &ex->req, rel);
    struct journal_request jr = {.preflight = ex->preflight, .route = -1, .response_index = -1};
    if (ex->route >= 0) {
        const struct route *rt = &s->routes[ex->route];
        jr.route = ex->route;
        jr.route_name = rt->name;
        if (ex->preflight) {
            ex->resp =
                rt->cors->preflight == PREFLIGHT_SCRIPTED ? rt->cors->preflight_response : NULL;
        } else {
            ex->count = ++in->route_counts[ex->route];
            ex->resp_index = route_response_index(rt, ex->count);
            ex->resp = ex->resp_index >= 0 ? &rt->responses[ex->resp_index] : NULL;
            jr.response_index = ex->resp_index;
            jr.has_count = true;
            jr.count = ex->count;
        }
    }
    if (has_schedule(ex->resp))
        ex_arrival_from_kernel(ex);
    /* arrival times count from the instance's load (or reset); channel events from its
     * first request */
    instance_start_channels_locked(in, ex->arrived_us);
    if (ex->preflight) {
        jr.cors_origin = request_header(&ex->req, "Origin");
        jr.cors_method = request_header(&ex->req, "Access-Control-Request-Method");
        jr.cors_headers = request_header(&ex->req, "Access-Control-Request-Headers");
    }
    ex_entry_append_locked(ex, rel, &jr);
    struct waiter *wake = instance_take_waiters_locked(in, -1);
    pthread_mutex_unlock(&in->lock);
    waiters_wake(wake);
    return true;
}

/* ---------------------------------------------------------------- long poll */

/* A long poll: true if the plan is ready, false if the request is now held. */
static bool long_poll(struct exchange *ex, const struct response *r, const struct tmpl_ctx *ctx,
                      struct plan *p)
{
    const struct long_poll_spec *lp = r->long_poll;
    struct instance *in = ex->inst;
    uint64_t now = mono_us();
    if (!ex->hold_until_us)
        ex->hold_until_us = ex->arrived_us + lp->hold_timeout_ms * 1000u + r->delay_ms * 1000u;
    pthread_mutex_lock(&in->lock);
    if (ex->waiting) {
        instance_remove_waiter_locked(in, &ex->waiter);
        ex->waiting = false;
    }
    long ch = instance_channel_index(in, lp->channel);
    struct channel_state *st = ch >= 0 ? &in->channels[ch] : NULL;
    size_t cursor = in->route_cursors[ex->route];
    const char *cp = lp->cursor_param ? request_param(&ex->req, lp->cursor_param) : NULL;
    if (cp)
        cursor = (size_t)strtoull(cp, NULL, 10);
    size_t avail = 0;
    uint64_t next_due = 0;
    if (st) {
        for (size_t i = cursor; i < st->n; i++) {
            if (st->events[i].available_us <= now)
                avail = i + 1 - cursor;
            else {
                next_due = st->events[i].available_us;
                break;
            }
        }
    }
    if (avail == 0 && now < ex->hold_until_us && !ex_stopping(ex) && !in->unloaded) {
        ex->waiter.channel = ch;
        ex->waiter.wake = ex_wake;
        ex->waiter.arg = ex;
        instance_add_waiter_locked(in, &ex->waiter);
        ex->waiting = true;
        pthread_mutex_unlock(&in->lock);
        uint64_t due = ex->hold_until_us;
        if (next_due && next_due < due)
            due = next_due;
        ex->state = EX_HOLDING;
        ex_sleep_until(ex, due);
        return false;
    }
    if (avail == 0) {
        pthread_mutex_unlock(&in->lock);
        ex_entry_extra(ex, JOURNAL_LONG_POLL,
                       json_pack("{s:b, s:I}", "timed_out", 1, "cursor", (json_int_t)cursor));
        plan_long_poll_timeout(lp, ctx, p);
        return true;
    }
    if (!lp->cursor_param || !cp)
        in->route_cursors[ex->route] = cursor + avail;
    plan_long_poll_events(lp, st->events, cursor, avail, p);
    pthread_mutex_unlock(&in->lock);
    ex_entry_extra(ex, JOURNAL_LONG_POLL,
                   json_pack("{s:b, s:I, s:I}", "timed_out", 0, "cursor", (json_int_t)cursor,
                             "delivered", (json_int_t)avail));
    return true;
}

/* ---------------------------------------------------------------- plans */

static void require_check(struct exchange *ex, const struct response *r)
{
    if (!r->n_require_headers)
        return;
    json_t *failed = json_array();
    for (size_t i = 0; i < r->n_require_headers; i++)
        if (!headers_match(&r->require_headers[i], 1, &ex->req))
            json_array_append_new(failed, json_string(r->require_headers[i].name));
    ex_entry_extra(ex, JOURNAL_REQUIRE,
                   json_pack("{s:b, s:o}", "met", json_array_size(failed) == 0, "failed", failed));
}

/* Build ex->plan. False if the request is held (a long poll). */
static bool make_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    plan_free(p); /* a held long poll comes back here */
    struct ex_tmpl t;
    const struct tmpl_ctx *ctx = ex_tmpl_ctx(ex, &t);
    const struct scenario *s = ex->inst->scenario;
    const struct route *rt = ex->route >= 0 ? &s->routes[ex->route] : NULL;
    const struct response *r = ex->resp;
    const char *origin = request_header(&ex->req, "Origin");

    if (!rt) {
        char msg[512];
        snprintf(msg, sizeof msg, "no route of instance %s matches %s %s\n", ex->inst->id,
                 ex->req.method, ctx->path);
        plan_text(p, 404, msg);
        return true;
    }
    if (ex->preflight && !r) {
        plan_cors_preflight(rt->cors, origin, p);
        return true;
    }
    if (!r) {
        char msg[512];
        snprintf(msg, sizeof msg, "the sequence of route %s is over (after_last: not_found)\n",
                 rt->name);
        plan_text(p, 404, msg);
        return true;
    }
    require_check(ex, r);
    plan_base(r, ctx, p);
    plan_content(r, ctx, p);
    if (r->kind == RESP_JSONP) {
        const char *param;
        bool ok = plan_jsonp(r->jsonp, &ex->req, p, &param);
        ex_entry_extra(ex, JOURNAL_JSONP,
                       json_pack("{s:s, s:b}", "param", param, "callback_valid", ok));
    } else if (r->kind == RESP_LONG_POLL && !long_poll(ex, r, ctx, p)) {
        return false;
    }
    if (rt->cors && !ex->preflight)
        plan_cors_actual(rt->cors, origin, p);
    return true;
}

/* ---------------------------------------------------------------- the state machine */

enum MHD_Result respond_scenario(struct exchange *ex)
{
    switch (ex->state) {
    case EX_NEW:
        if (!dispatch(ex)) {
            char msg[300];
            snprintf(msg, sizeof msg, "no instance at %.200s (see GET /_harness/instances)\n",
                     ex->req.path);
            return ex_queue_simple(ex, 404, "text/plain; charset=utf-8", msg, strlen(msg));
        }
        if (ex->resp && ex->resp->delay_ms) {
            ex->state = EX_DELAYED;
            ex_sleep_until(ex, ex->arrived_us + ex->resp->delay_ms * 1000u);
            return MHD_YES;
        }
        ex->state = EX_READY;
        break;
    case EX_DELAYED: {
        uint64_t due = ex->arrived_us + ex->resp->delay_ms * 1000u;
        if (mono_us() + 200 < due) { /* resumed early (shutdown is handled by the caller) */
            ex_sleep_until(ex, due);
            return MHD_YES;
        }
        ex->state = EX_READY;
        break;
    }
    case EX_MANUAL:
    case EX_HANGING:
        return deliver_resumed(ex);
    case EX_CLOSE_NOW:
        return MHD_NO;
    case EX_QUEUED:
        return MHD_YES;
    case EX_HOLDING:
    case EX_READY:
        break;
    }
    if (ex->resp && ex->resp->kind == RESP_WEBSOCKET && !ex->preflight)
        return ws_upgrade_respond(ex);
    if (ex->resp && !ex->preflight && !ex->inst->scenario->routes[ex->route].cors &&
        deliver_is_shared(ex->resp)) {
        /* the same bytes for everyone: no plan, the response object built once */
        enum MHD_Result result;
        require_check(ex, ex->resp);
        if (deliver_shared(ex, ex->resp, &result))
            return result;
    }
    if (!make_plan(ex))
        return MHD_YES; /* held */
    return deliver_plan(ex);
}

static enum ex_end end_of(struct exchange *ex, enum MHD_RequestTerminationCode code)
{
    switch (code) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return EX_END_COMPLETE;
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return EX_END_SERVER_STOPPED;
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return EX_END_CLIENT_CLOSED;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return EX_END_TIMEOUT;
    default:
        return ex_stopping(ex) ? EX_END_SERVER_STOPPED : EX_END_ERROR;
    }
}

void respond_completed(struct exchange *ex, enum MHD_RequestTerminationCode code)
{
    if (!ex->entry)
        return;
    uint64_t now = mono_us();
    if (ex->ws_upgraded)
        return; /* the WebSocket session records its own end */
    enum ex_end end = ex->end != EX_END_NONE ? ex->end : end_of(ex, code);
    ex_entry_end(ex, end, now);
}
