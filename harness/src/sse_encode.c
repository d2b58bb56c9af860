/* sse_encode — see sse_encode.h.
 *
 * An SSE_EVENT item is written as its present fields in a fixed order — comment, event,
 * id, retry, data — each "name: value" (or "name:value" without data_space), data split on
 * LF into one data line per line, then the blank line that dispatches it. A `mixed` line
 * ending cycles LF, CR, CRLF over every line of the stream.
 */
#include "sse_encode.h"
#include "xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = 0;
}

struct enc {
    const struct sse_spec *spec;
    unsigned lines; /* lines ended so far, for `mixed` */
};

static void eol(struct enc *e, struct buf *b)
{
    enum sse_line_ending le = e->spec->line_ending;
    if (le == SSE_MIXED)
        le = (enum sse_line_ending)(e->lines % 3); /* SSE_LF, SSE_CR, SSE_CRLF */
    e->lines++;
    switch (le) {
    case SSE_CR:
        put(b, "\r", 1);
        break;
    case SSE_CRLF:
        put(b, "\r\n", 2);
        break;
    default:
        put(b, "\n", 1);
        break;
    }
}

static void field(struct enc *e, struct buf *b, const char *name, const struct bytes *v)
{
    put(b, name, strlen(name));
    put(b, ":", 1);
    if (e->spec->data_space)
        put(b, " ", 1);
    put(b, v->data, v->len);
    eol(e, b);
}

static void event(struct enc *e, struct buf *b, const struct sse_item *it, bool last)
{
    if (it->has_comment) {
        /* one comment line per line of the text */
        const unsigned char *s = it->comment.data, *end = s + it->comment.len;
        do {
            const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
            size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
            put(b, ":", 1);
            put(b, s, n);
            eol(e, b);
            s = nl ? nl + 1 : end;
        } while (s < end);
    }
    if (it->has_event)
        field(e, b, "event", &it->event);
    if (it->has_id)
        field(e, b, "id", &it->id);
    if (it->has_retry)
        field(e, b, "retry", &it->retry);
    if (it->has_data) {
        const unsigned char *s = it->data.data, *end = s + it->data.len;
        for (;;) {
            const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
            struct bytes line = {(unsigned char *)s, nl ? (size_t)(nl - s) : (size_t)(end - s)};
            field(e, b, "data", &line);
            if (!nl)
                break;
            s = nl + 1;
        }
    }
    if (!it->no_blank_line && !(last && !e->spec->final_blank_line))
        eol(e, b);
}

size_t sse_encode(const struct sse_spec *spec, struct piece **out)
{
    struct enc e = {.spec = spec, .lines = 0};
    size_t n = spec->n_items ? spec->n_items : (spec->bom ? 1 : 0);
    *out = xcalloc(n ? n : 1, sizeof **out);
    for (size_t i = 0; i < n; i++) {
        struct buf b = {0};
        if (i == 0 && spec->bom)
            put(&b, "\xEF\xBB\xBF", 3);
        if (i < spec->n_items) {
            const struct sse_item *it = &spec->items[i];
            (*out)[i].after_ms = it->after_ms;
            switch (it->kind) {
            case SSE_EVENT:
                event(&e, &b, it, i + 1 == spec->n_items);
                break;
            case SSE_LINES:
                for (size_t l = 0; l < it->n_lines; l++) {
                    put(&b, it->lines[l].data, it->lines[l].len);
                    eol(&e, &b);
                }
                break;
            case SSE_RAW:
                put(&b, it->raw.data, it->raw.len);
                break;
            }
        }
        put(&b, "", 0);
        (*out)[i].data = b.p;
        (*out)[i].len = b.len;
    }
    return n;
}

void pieces_free(struct piece *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].data);
    free(p);
}
