/* instance — loaded scenarios being served, and the registry that names them.
 *
 * Every loaded scenario is an instance with its own URL prefix /s/ID/, so many scenarios
 * (or many copies of one) are served at once without sharing state: each instance has its
 * own route counters (sequences), long-poll cursors and channels, and its own journal.
 *
 * Locking: the registry lock guards the list of instances; each instance's `lock` guards
 * everything mutable in it (counters, channels, journal, waiters). Instances are reference
 * counted: a request in flight keeps its instance alive after it has been unloaded.
 */
#ifndef HARNESS_INSTANCE_H
#define HARNESS_INSTANCE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "journal.h"
#include "scenario.h"
#include "strmap.h"

/* Something suspended until the instance changes: the wait API (journal grew) or a held
 * long poll (a channel got an event). wake() is called without the instance lock held. */
struct waiter {
    struct waiter *next;
    long channel; /* -1: any journal append; else the index of a channel */
    void (*wake)(void *arg);
    void *arg;
};

struct channel_event_state {
    uint64_t available_us; /* mono_us() time from which polls see it */
    unsigned char *data;
    size_t len;
    bool scheduled; /* the scenario's (after: MS), not published */
};

struct channel_state {
    struct channel_event_state *events; /* ordered by available_us */
    size_t n, cap;
};

struct instance {
    char *id;
    struct scenario *scenario; /* owned */
    pthread_mutex_t lock;
    int refs; /* guarded by the registry lock */
    bool unloaded;
    uint64_t created_us;         /* load (or last reset) time: journal times count from here */
    bool channels_started;       /* the scheduled channel events count from the first request */
    unsigned long *route_counts; /* per route: matches so far */
    size_t *route_cursors;       /* per route: long-poll events already delivered */
    struct channel_state *channels;
    struct journal journal;
    struct waiter *waiters;
};

struct registry {
    pthread_mutex_t lock;
    struct instance **items; /* in the order they were added */
    size_t n, cap;
    struct strmap by_id; /* id -> instance (keys borrowed from the instances) */
    unsigned long loads; /* for generated ids */
    size_t journal_limit;
    size_t journal_bytes; /* per instance; 0: no bound */
};

/* The default bound of each journal's bytes (requests' headers and bodies): 64 MiB. */
#define REGISTRY_JOURNAL_BYTES ((size_t)64 << 20)

void registry_init(struct registry *reg, size_t journal_limit);
void registry_free(struct registry *reg);

enum registry_status { REG_OK, REG_CONFLICT, REG_BAD_ID };
/* Add a scenario (the registry takes ownership, also on failure). id NULL: the scenario id
 * if free, else "SCENARIO-ID-N". On success *out is the instance with a reference for the
 * caller. */
enum registry_status registry_add(struct registry *reg, struct scenario *s, const char *id,
                                  struct instance **out);
/* The instance with this id, with a reference for the caller, or NULL. */
struct instance *registry_get(struct registry *reg, const char *id);
/* Unload: the id is free again at once; requests in flight finish. False if unknown. */
bool registry_remove(struct registry *reg, const char *id);
/* [{"instance", "scenario", "file", "journal_total"}...] */
json_t *registry_list(struct registry *reg);
void instance_unref(struct registry *reg, struct instance *in);

/* With in->lock held: */
/* Forget the journal, counters, cursors and published events; times restart. */
void instance_reset_locked(struct instance *in);
/* Add an event to a channel, available from now. */
/* A request of the instance arrived at at_us (mono_us()): the first one since the load (or
 * reset) starts the channels' clock, the scenario's events (`after: MS`) becoming available
 * MS after it rather than after the load, so that a client that starts late (a loaded
 * machine, a browser making its page) meets the schedule its scenario describes. */
void instance_start_channels_locked(struct instance *in, uint64_t at_us);
void instance_publish_locked(struct instance *in, size_t channel, const void *data, size_t len);
/* Detach the waiters to wake (channel < 0: journal waiters; else that channel's). */
struct waiter *instance_take_waiters_locked(struct instance *in, long channel);
void instance_add_waiter_locked(struct instance *in, struct waiter *w);
/* Remove a waiter if still registered (a timeout came first). */
void instance_remove_waiter_locked(struct instance *in, struct waiter *w);
long instance_channel_index(const struct instance *in, const char *name);

/* Without the lock: call wake() on each of a detached list. */
void waiters_wake(struct waiter *list);

#endif
