/* ctl_load — see ctl_load.h. */
#include "ctl_load.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "xalloc.h"

struct job {
    struct exchange *ex; /* a reference, dropped by the thread when it is done */
    char *text, *name, *dir, *real_file, *id;
    size_t len;
    struct scenario *s;
    struct diag_list diags;
    bool done;  /* guarded by lock */
    bool taken; /* the handler took it (or gave up on it): the thread frees what is left */
    struct job *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs; /* guarded by lock */

static void job_free(struct job *j)
{
    free(j->text);
    free(j->name);
    free(j->dir);
    free(j->real_file);
    free(j->id);
    scenario_free(j->s);
    diag_free(&j->diags);
    free(j);
}

static void unlist_locked(struct job *j)
{
    for (struct job **p = &jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            return;
        }
}

static void *run(void *arg)
{
    struct job *j = arg;
    struct scenario *s = scenario_load_text(j->text, j->len, j->name, j->dir, &j->diags);
    if (s && j->real_file)
        json_object_set_new(s->doc, "file", json_string(j->real_file));
    struct exchange *ex = j->ex;
    pthread_mutex_lock(&lock);
    j->s = s;
    j->done = true;
    bool orphan = j->taken; /* nobody will take it */
    if (orphan)
        unlist_locked(j);
    pthread_mutex_unlock(&lock);
    if (orphan)
        job_free(j);
    else
        ex_resume(ex);
    ex_unref(ex);
    return NULL;
}

void ctl_load_start(struct exchange *ex, char *text, size_t len, const char *name, const char *dir,
                    const char *real_file, const char *id)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->ex = ex;
    j->text = text;
    j->len = len;
    j->name = xstrdup(name);
    j->dir = dir ? xstrdup(dir) : NULL;
    j->real_file = real_file ? xstrdup(real_file) : NULL;
    j->id = id ? xstrdup(id) : NULL;
    diag_init(&j->diags);
    pthread_mutex_lock(&lock);
    j->next = jobs;
    jobs = j;
    pthread_mutex_unlock(&lock);
    ex_ref(ex);
    ex->state = EX_HOLDING;
    ex_suspend(ex); /* before the thread can resume it */
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, run, j) != 0)
        run(j); /* no thread: load here */
    pthread_attr_destroy(&attr);
}

static struct job *find_locked(struct exchange *ex)
{
    for (struct job *j = jobs; j; j = j->next)
        if (j->ex == ex && !j->taken)
            return j;
    return NULL;
}

bool ctl_load_pending(struct exchange *ex)
{
    pthread_mutex_lock(&lock);
    bool found = find_locked(ex) != NULL;
    pthread_mutex_unlock(&lock);
    return found;
}

bool ctl_load_take(struct exchange *ex, struct scenario **s, struct diag_list *diags, char **id)
{
    pthread_mutex_lock(&lock);
    struct job *j = find_locked(ex);
    if (!j) {
        pthread_mutex_unlock(&lock);
        return false;
    }
    j->taken = true;
    if (!j->done) { /* entered early (the server is stopping): the thread frees it */
        pthread_mutex_unlock(&lock);
        return false;
    }
    unlist_locked(j);
    pthread_mutex_unlock(&lock);
    *s = j->s;
    j->s = NULL;
    *diags = j->diags;
    diag_init(&j->diags);
    *id = j->id;
    j->id = NULL;
    job_free(j);
    return true;
}
