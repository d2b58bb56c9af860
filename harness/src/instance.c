/* instance — see instance.h. The registry is an array in the order of loading, for its list,
 * and a hash map of ids, for the lookup of every request and every load (thousands of
 * instances at once, with serve's start). */
#include "instance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "timer.h"
#include "xalloc.h"

void registry_init(struct registry *reg, size_t journal_limit)
{
    memset(reg, 0, sizeof *reg);
    pthread_mutex_init(&reg->lock, NULL);
    reg->journal_limit = journal_limit ? journal_limit : 10000;
    reg->journal_bytes = REGISTRY_JOURNAL_BYTES;
}

static void channels_load(struct instance *in)
{
    const struct scenario *s = in->scenario;
    for (size_t c = 0; c < s->n_channels; c++) {
        struct channel_state *st = &in->channels[c];
        for (size_t i = 0; i < st->n; i++)
            free(st->events[i].data);
        st->n = 0;
        for (size_t i = 0; i < s->channels[c].n_events; i++) {
            const struct channel_event *ev = &s->channels[c].events[i];
            uint64_t at = in->created_us + ev->after_ms * 1000u;
            /* keep the list ordered by availability */
            if (st->n == st->cap) {
                st->cap = st->cap ? st->cap * 2 : 8;
                st->events = xrealloc(st->events, st->cap * sizeof *st->events);
            }
            size_t pos = st->n;
            while (pos > 0 && st->events[pos - 1].available_us > at) {
                st->events[pos] = st->events[pos - 1];
                pos--;
            }
            st->events[pos].available_us = at;
            st->events[pos].data = xcalloc(ev->data.len + 1, 1);
            memcpy(st->events[pos].data, ev->data.data, ev->data.len);
            st->events[pos].len = ev->data.len;
            st->events[pos].scheduled = true;
            st->n++;
        }
    }
}

static void instance_free(struct instance *in)
{
    for (size_t c = 0; c < in->scenario->n_channels; c++) {
        for (size_t i = 0; i < in->channels[c].n; i++)
            free(in->channels[c].events[i].data);
        free(in->channels[c].events);
    }
    free(in->channels);
    free(in->route_counts);
    free(in->route_cursors);
    journal_free(&in->journal);
    scenario_free(in->scenario);
    pthread_mutex_destroy(&in->lock);
    free(in->id);
    free(in);
}

void registry_free(struct registry *reg)
{
    for (size_t i = 0; i < reg->n; i++)
        instance_free(reg->items[i]);
    free(reg->items);
    strmap_free(&reg->by_id);
    pthread_mutex_destroy(&reg->lock);
}

static struct instance *find_locked(struct registry *reg, const char *id)
{
    return strmap_get(&reg->by_id, id, strlen(id));
}

static bool id_ok(const char *id)
{
    if (!*id || strlen(id) > 200)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

enum registry_status registry_add(struct registry *reg, struct scenario *s, const char *id,
                                  struct instance **out)
{
    *out = NULL;
    if (id && !id_ok(id)) {
        scenario_free(s);
        return REG_BAD_ID;
    }
    pthread_mutex_lock(&reg->lock);
    char *name;
    if (id) {
        if (find_locked(reg, id)) {
            pthread_mutex_unlock(&reg->lock);
            scenario_free(s);
            return REG_CONFLICT;
        }
        name = xstrdup(id);
    } else if (s->id && !find_locked(reg, s->id)) {
        name = xstrdup(s->id);
    } else {
        for (;;) {
            char buf[300];
            snprintf(buf, sizeof buf, "%.250s-%lu", s->id ? s->id : "instance", ++reg->loads);
            if (!find_locked(reg, buf)) {
                name = xstrdup(buf);
                break;
            }
        }
    }
    struct instance *in = xcalloc(1, sizeof *in);
    in->id = name;
    in->scenario = s;
    pthread_mutex_init(&in->lock, NULL);
    in->refs = 2; /* the registry's and the caller's */
    in->created_us = mono_us();
    in->route_counts = xcalloc(s->n_routes, sizeof *in->route_counts);
    in->route_cursors = xcalloc(s->n_routes, sizeof *in->route_cursors);
    in->channels = xcalloc(s->n_channels, sizeof *in->channels);
    journal_init(&in->journal, reg->journal_limit, reg->journal_bytes, s->n_routes, in->created_us);
    channels_load(in);
    if (reg->n == reg->cap) {
        reg->cap = reg->cap ? reg->cap * 2 : 16;
        reg->items = xrealloc(reg->items, reg->cap * sizeof *reg->items);
    }
    reg->items[reg->n++] = in;
    strmap_put(&reg->by_id, in->id, strlen(in->id), in);
    pthread_mutex_unlock(&reg->lock);
    *out = in;
    return REG_OK;
}

struct instance *registry_get(struct registry *reg, const char *id)
{
    pthread_mutex_lock(&reg->lock);
    struct instance *in = find_locked(reg, id);
    if (in)
        in->refs++;
    pthread_mutex_unlock(&reg->lock);
    return in;
}

void instance_unref(struct registry *reg, struct instance *in)
{
    pthread_mutex_lock(&reg->lock);
    bool last = --in->refs == 0;
    pthread_mutex_unlock(&reg->lock);
    if (last)
        instance_free(in);
}

bool registry_remove(struct registry *reg, const char *id)
{
    pthread_mutex_lock(&reg->lock);
    struct instance *in = strmap_del(&reg->by_id, id, strlen(id));
    for (size_t i = 0; in && i < reg->n; i++) {
        if (reg->items[i] == in) {
            memmove(&reg->items[i], &reg->items[i + 1], (reg->n - i - 1) * sizeof *reg->items);
            reg->n--;
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    if (!in)
        return false;
    pthread_mutex_lock(&in->lock);
    in->unloaded = true;
    struct waiter *all = in->waiters;
    in->waiters = NULL;
    pthread_mutex_unlock(&in->lock);
    waiters_wake(all);
    instance_unref(reg, in);
    return true;
}

json_t *registry_list(struct registry *reg)
{
    json_t *list = json_array();
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++) {
        struct instance *in = reg->items[i];
        pthread_mutex_lock(&in->lock);
        json_array_append_new(list,
                              json_pack("{s:s, s:s?, s:s?, s:I}", "instance", in->id, "scenario",
                                        in->scenario->id, "file", in->scenario->file,
                                        "journal_total", (json_int_t)in->journal.total));
        pthread_mutex_unlock(&in->lock);
    }
    pthread_mutex_unlock(&reg->lock);
    return list;
}

void instance_reset_locked(struct instance *in)
{
    in->created_us = mono_us();
    memset(in->route_counts, 0, in->scenario->n_routes * sizeof *in->route_counts);
    memset(in->route_cursors, 0, in->scenario->n_routes * sizeof *in->route_cursors);
    journal_clear(&in->journal, in->created_us);
    in->channels_started = false;
    channels_load(in);
}

void instance_start_channels_locked(struct instance *in, uint64_t at_us)
{
    if (in->channels_started)
        return;
    in->channels_started = true;
    if (at_us <= in->created_us)
        return;
    uint64_t shift = at_us - in->created_us;
    for (size_t c = 0; c < in->scenario->n_channels; c++) {
        struct channel_state *st = &in->channels[c];
        for (size_t i = 0; i < st->n; i++)
            if (st->events[i].scheduled)
                st->events[i].available_us += shift;
        /* published events keep their time: the list ordered by availability again */
        for (size_t i = 1; i < st->n; i++) {
            struct channel_event_state e = st->events[i];
            size_t pos = i;
            while (pos > 0 && st->events[pos - 1].available_us > e.available_us) {
                st->events[pos] = st->events[pos - 1];
                pos--;
            }
            st->events[pos] = e;
        }
    }
}

void instance_publish_locked(struct instance *in, size_t channel, const void *data, size_t len)
{
    struct channel_state *st = &in->channels[channel];
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 8;
        st->events = xrealloc(st->events, st->cap * sizeof *st->events);
    }
    /* available now: after every event already available, before the scheduled ones */
    uint64_t now = mono_us();
    size_t pos = st->n;
    while (pos > 0 && st->events[pos - 1].available_us > now) {
        st->events[pos] = st->events[pos - 1];
        pos--;
    }
    st->events[pos].available_us = now;
    st->events[pos].data = xcalloc(len + 1, 1);
    memcpy(st->events[pos].data, data, len);
    st->events[pos].len = len;
    st->events[pos].scheduled = false;
    st->n++;
}

struct waiter *instance_take_waiters_locked(struct instance *in, long channel)
{
    struct waiter *taken = NULL, **pp = &in->waiters;
    while (*pp) {
        struct waiter *w = *pp;
        if (w->channel == channel) {
            *pp = w->next;
            w->next = taken;
            taken = w;
        } else {
            pp = &w->next;
        }
    }
    return taken;
}

void instance_add_waiter_locked(struct instance *in, struct waiter *w)
{
    w->next = in->waiters;
    in->waiters = w;
}

void instance_remove_waiter_locked(struct instance *in, struct waiter *w)
{
    for (struct waiter **pp = &in->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            return;
        }
    }
}

long instance_channel_index(const struct instance *in, const char *name)
{
    for (size_t c = 0; c < in->scenario->n_channels; c++)
        if (!strcmp(in->scenario->channels[c].name, name))
            return (long)c;
    return -1;
}

void waiters_wake(struct waiter *list)
{
    while (list) {
        struct waiter *next = list->next;
        list->next = NULL;
        list->wake(list->arg);
        list = next;
    }
}
