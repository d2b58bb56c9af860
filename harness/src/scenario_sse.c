/* scenario_sse — the `sse` response kind: the stream's options and its events, each an
 * event with fields, `lines` written as is, or `raw` bytes (docs/scenarios.md, "Server-Sent
 * Events"). Byte-exact: field values keep NULs, line endings are the stream's.
 */
#include <stdlib.h>
#include <string.h>
#include "piece.h"
#include "scenario_load.h"
#include "xalloc.h"

static void field(struct ld *ld, const struct ynode *it, const char *key, bool *has,
                  struct bytes *out)
{
    const struct ynode *v = ymap_get(it, key);
    if (!v)
        return;
    if (v->kind != Y_SCALAR || v->type == YS_NULL) {
        ld_err(ld, v, "sse %s: expected text, got %s", key, ynode_kind_name(v));
        return;
    }
    *has = true;
    ld_bytes_text(v, out);
}

/* An event with fields; false if it has none. */
static bool load_fields(struct ld *ld, const struct ynode *it, struct sse_item *x)
{
    x->kind = SSE_EVENT;
    field(ld, it, "data", &x->has_data, &x->data);
    field(ld, it, "id", &x->has_id, &x->id);
    field(ld, it, "event", &x->has_event, &x->event);
    field(ld, it, "retry", &x->has_retry, &x->retry);
    field(ld, it, "comment", &x->has_comment, &x->comment);
    const struct ynode *v;
    if ((v = ymap_get(it, "data_size"))) {
        long long size;
        if (x->has_data)
            ld_err(ld, v, "an sse event has data or data_size, not both");
        else if (ld_int(ld, v, 0, 64LL * 1024 * 1024, &size, "sse data_size")) {
            x->has_data = true;
            x->data.data = xcalloc((size_t)size + 1, 1);
            memset(x->data.data, 'x', (size_t)size);
            x->data.len = (size_t)size;
        }
    }
    bool blank = true;
    if ((v = ymap_get(it, "blank_line")) && ld_bool(ld, v, &blank, "sse blank_line"))
        x->no_blank_line = !blank;
    if (!x->has_data && !x->has_id && !x->has_event && !x->has_retry && !x->has_comment) {
        ld_err(ld, it,
               "an sse event needs at least one of data, data_size, id, event, "
               "retry, comment (or lines, raw, raw_base64)");
        return false;
    }
    return true;
}

static bool load_item(struct ld *ld, const struct ynode *it, struct sse_item *x)
{
    if (!ld_is_map(ld, it, "an sse event"))
        return false;
    ld_keys(ld, it, &KEYS_SSE_EVENT);
    const struct ynode *v;
    if ((v = ymap_get(it, "after")))
        ld_duration(ld, v, &x->after_ms, "sse after");
    const struct ynode *lines = ymap_get(it, "lines"), *raw = ymap_get(it, "raw"),
                       *raw64 = ymap_get(it, "raw_base64");
    if ((lines != NULL) + (raw != NULL) + (raw64 != NULL) > 1) {
        ld_err(ld, it, "an sse event has at most one of lines, raw and raw_base64");
        return false;
    }
    if (lines) {
        x->kind = SSE_LINES;
        if (ld_is_seq(ld, lines, "sse lines")) {
            x->lines = xcalloc(lines->n, sizeof *x->lines);
            for (size_t l = 0; l < lines->n; l++)
                if (ld_text(ld, lines->values[l], "an sse line"))
                    ld_bytes_text(lines->values[l], &x->lines[x->n_lines++]);
        }
    } else if (raw) {
        x->kind = SSE_RAW;
        if (ld_text(ld, raw, "sse raw"))
            ld_bytes_text(raw, &x->raw);
    } else if (raw64) {
        x->kind = SSE_RAW;
        ld_base64(ld, raw64, &x->raw, "sse raw_base64");
    } else {
        return load_fields(ld, it, x);
    }
    return true;
}

void scenario_sse_load(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_map(ld, n, "sse"))
        return;
    ld_keys(ld, n, &KEYS_SSE);
    struct sse_spec *s = r->sse = xcalloc(1, sizeof *s);
    s->data_space = true;
    s->final_blank_line = true;
    const struct ynode *v;
    int choice;
    if ((v = ymap_get(n, "line_ending")) &&
        ld_choice(ld, v, &KEYS_SSE, "line_ending", &choice, "sse.line_ending"))
        s->line_ending = (enum sse_line_ending)choice;
    if ((v = ymap_get(n, "bom")))
        ld_bool(ld, v, &s->bom, "sse.bom");
    if ((v = ymap_get(n, "data_space")))
        ld_bool(ld, v, &s->data_space, "sse.data_space");
    if ((v = ymap_get(n, "final_blank_line")))
        ld_bool(ld, v, &s->final_blank_line, "sse.final_blank_line");
    if ((v = ymap_get(n, "content_type"))) {
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            s->content_type = xstrdup("");
        else if (ld_text(ld, v, "sse.content_type"))
            s->content_type = xstrdup(v->str);
    }
    if ((v = ymap_get(n, "then")) && ld_choice(ld, v, &KEYS_SSE, "then", &choice, "then"))
        s->then = (enum stream_end)choice;
    const struct ynode *events = ymap_get(n, "events");
    if (!events || !ld_is_seq(ld, events, "sse.events"))
        return;
    s->items = xcalloc(events->n, sizeof *s->items);
    for (size_t i = 0; i < events->n; i++)
        if (load_item(ld, events->values[i], &s->items[s->n_items]))
            s->n_items++;
}

void scenario_sse_free(struct sse_spec *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_items; i++) {
        struct sse_item *x = &s->items[i];
        free(x->data.data);
        free(x->id.data);
        free(x->event.data);
        free(x->retry.data);
        free(x->comment.data);
        for (size_t l = 0; l < x->n_lines; l++)
            free(x->lines[l].data);
        free(x->lines);
        free(x->raw.data);
    }
    free(s->items);
    free(s->content_type);
    if (s->wire) {
        pieces_free(s->wire->pieces, s->wire->n);
        free(s->wire);
    }
    free(s);
}
