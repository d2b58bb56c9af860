/* rx — see rx.h. A one-pass translator from Python 3.11 `re` syntax to PCRE2, following
 * CPython's Lib/re/_parser.py rule by rule (the error messages are Python's), then PCRE2's
 * compiler for what is left (it reports nothing for a translated valid pattern but limits).
 */
#include "rx.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xalloc.h"

#define RX_MAX_REPEAT 65535 /* PCRE2's limit; Python's is 2**32 - 1 */
#define RX_MAX_NAME 32      /* PCRE2's limit on group names */
#define RX_MATCH_LIMIT 1000000
#define W_INF LONG_MAX

/* Widths (min, max) of what a piece of pattern matches, as Python computes them for
 * look-behinds (which must have min == max). */
struct width {
    long lo, hi;
};

static long w_add(long a, long b)
{
    return (a == W_INF || b == W_INF || a > W_INF - b) ? W_INF : a + b;
}

static long w_mul(long a, long n)
{
    if (a == 0 || n == 0)
        return 0;
    return (a == W_INF || n == W_INF || a > W_INF / n) ? W_INF : a * n;
}

enum last { L_NONE, L_ANCHOR, L_ATOM, L_REPEAT };

struct frame {
    size_t start; /* offset of the '(' */
    int group;    /* capturing group number, or 0 */
    bool lookbehind, lookaround, cond;
    bool verbose; /* the enclosing scope's verbose flag, restored at ')' */
    int branches;
    struct width seq;     /* the current branch so far */
    struct width alt;     /* the branches before it, combined */
    int saved_lookbehind; /* the lookbehind group mark before this frame */
};

struct group {
    char *name;
    bool closed;
    struct width w;
};

struct parser {
    const unsigned char *s;
    size_t len, i;
    char *out;
    size_t olen, ocap;
    bool verbose;
    uint32_t options;
    struct frame *frames;
    size_t depth, fcap;
    struct group *groups; /* groups[1..ngroups] */
    int ngroups, gcap;
    int lookbehind_mark; /* Python's state.lookbehindgroups: -1 outside look-behinds */
    int *cond_refs;      /* numbered conditions, checked at the end */
    size_t *cond_pos;
    size_t ncond;
    struct width seq; /* the current branch at top level is frames[0] */
    enum last last;
    struct width last_w;
    bool first; /* nothing but global flags and comments yet */
    char *err;
    size_t errlen, err_off;
    bool failed;
};

static bool fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(struct parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    p->err_off = at;
    p->failed = true;
    return false;
}

static void emit(struct parser *p, const char *text, size_t n)
{
    if (p->olen + n + 1 > p->ocap) {
        p->ocap = (p->olen + n + 1) * 2;
        p->out = xrealloc(p->out, p->ocap);
    }
    memcpy(p->out + p->olen, text, n);
    p->olen += n;
    p->out[p->olen] = 0;
}

static void emits(struct parser *p, const char *text)
{
    emit(p, text, strlen(text));
}

static void emitf(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emitf(struct parser *p, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(p, buf, (size_t)n);
}

/* One code point of the pattern (UTF-8) at i; its byte length in *n. -1 if invalid. */
static long decode(const unsigned char *s, size_t len, size_t i, size_t *n)
{
    unsigned c = s[i];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!k || i + k > len)
        return -1;
    long cp = k == 1 ? (long)c : k == 2 ? (long)(c & 0x1f) : k == 3 ? (long)(c & 0x0f) : c & 7;
    for (size_t j = 1; j < k; j++) {
        if ((s[i + j] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    *n = k;
    return cp;
}

/* A literal code point, written so that PCRE2 reads it as that character only. */
static void emit_literal(struct parser *p, long cp)
{
    if (cp < 0x80 &&
        ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9')))
        emitf(p, "%c", (int)cp);
    else
        emitf(p, "\\x{%lx}", cp);
}

static bool is_hex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_oct(int c)
{
    return c >= '0' && c <= '7';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int peek(const struct parser *p, size_t at)
{
    return at < p->len ? p->s[at] : -1;
}

/* \x, \u, \U: exactly n hex digits after the letter at p->i. */
static bool hex_escape(struct parser *p, size_t at, int n, long *cp)
{
    char letter = (char)p->s[p->i];
    p->i++;
    long v = 0;
    int k = 0;
    while (k < n && is_hex(peek(p, p->i))) {
        int c = p->s[p->i++];
        v = v * 16 + (is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
        k++;
    }
    if (k != n)
        return fail(p, at, "incomplete escape \\%c%.*s", letter, k, (const char *)p->s + p->i - k);
    if (v > 0x10ffff)
        return fail(p, at, "bad escape \\%c%.*s", letter, n, (const char *)p->s + p->i - n);
    if (v >= 0xd800 && v <= 0xdfff)
        return fail(p, at, "a surrogate code point (\\%c%.*s) is not in the regex dialect", letter,
                    n, (const char *)p->s + p->i - n);
    *cp = v;
    return true;
}

/* The escape whose backslash is at p->i - 1, inside a class or not. Literals go to *cp
 * (return 1); class escapes are written and return 2; anchors return 3; group references
 * return 4 (*cp = the group). 0 on error. */
static int escape(struct parser *p, bool in_class, long *cp)
{
    size_t at = p->i - 1;
    int c = peek(p, p->i);
    if (c < 0)
        return fail(p, at, "bad escape (end of pattern)");
    const char *cls = NULL;
    switch (c) {
    case 'd':
    case 'D':
    case 'w':
    case 'W':
        cls = c == 'd' ? "\\d" : c == 'D' ? "\\D" : c == 'w' ? "\\w" : "\\W";
        break;
    case 's':
        /* Python's Unicode \s also holds U+001C..U+001F (str.isspace) */
        cls = in_class ? "\\s\\x{1c}-\\x{1f}" : "[\\s\\x{1c}-\\x{1f}]";
        break;
    case 'S':
        cls = in_class ? "\\S" : "[^\\s\\x{1c}-\\x{1f}]";
        break;
    case 'A':
    case 'Z':
    case 'B':
        if (in_class)
            return fail(p, at, "bad escape \\%c", c);
        p->i++;
        emits(p, c == 'A' ? "\\A" : c == 'Z' ? "\\z" : "\\B");
        return 3;
    case 'b':
        p->i++;
        if (in_class) {
            *cp = 8;
            return 1;
        }
        emits(p, "\\b");
        return 3;
    case 'a':
        p->i++;
        *cp = 7;
        return 1;
    case 'f':
        p->i++;
        *cp = 12;
        return 1;
    case 'n':
        p->i++;
        *cp = 10;
        return 1;
    case 'r':
        p->i++;
        *cp = 13;
        return 1;
    case 't':
        p->i++;
        *cp = 9;
        return 1;
    case 'v':
        p->i++;
        *cp = 11;
        return 1;
    case 'x':
        return hex_escape(p, at, 2, cp) ? 1 : 0;
    case 'u':
        return hex_escape(p, at, 4, cp) ? 1 : 0;
    case 'U':
        return hex_escape(p, at, 8, cp) ? 1 : 0;
    case 'N':
        return fail(p, at,
                    "\\N{...} (a character by name) is not in the regex dialect: "
                    "write the character, or \\uXXXX");
    default:
        break;
    }
    if (cls) {
        p->i++;
        emits(p, cls);
        return 2;
    }
    if (is_digit(c)) {
        if (in_class) {
            if (!is_oct(c))
                return fail(p, at, "bad escape \\%c", c);
            long v = 0;
            int k = 0;
            while (k < 3 && is_oct(peek(p, p->i))) {
                v = v * 8 + (p->s[p->i++] - '0');
                k++;
            }
            if (v > 0377)
                return fail(p, at, "octal escape value \\%.*s outside of range 0-0o377", k,
                            (const char *)p->s + p->i - k);
            *cp = v;
            return 1;
        }
        if (c == '0') {
            long v = 0;
            p->i++;
            for (int k = 0; k < 2 && is_oct(peek(p, p->i)); k++)
                v = v * 8 + (p->s[p->i++] - '0');
            *cp = v;
            return 1;
        }
        size_t d0 = p->i++;
        if (is_digit(peek(p, p->i))) {
            size_t d1 = p->i++;
            if (is_oct(p->s[d0]) && is_oct(p->s[d1]) && is_oct(peek(p, p->i))) {
                size_t d2 = p->i++;
                long v = (p->s[d0] - '0') * 64 + (p->s[d1] - '0') * 8 + (p->s[d2] - '0');
                if (v > 0377)
                    return fail(p, at, "octal escape value \\%.3s outside of range 0-0o377",
                                (const char *)p->s + d0);
                *cp = v;
                return 1;
            }
        }
        long group = p->i - d0 == 1 ? p->s[d0] - '0' : (p->s[d0] - '0') * 10 + (p->s[d0 + 1] - '0');
        if (group > p->ngroups)
            return fail(p, at + 1, "invalid group reference %ld", group);
        if (!p->groups[group].closed)
            return fail(p, at, "cannot refer to an open group");
        if (p->lookbehind_mark >= 0 && group >= p->lookbehind_mark)
            return fail(p, at, "cannot refer to group defined in the same lookbehind subpattern");
        *cp = group;
        return 4;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return fail(p, at, "bad escape \\%c", c);
    size_t n;
    long v = decode(p->s, p->len, p->i, &n);
    if (v < 0)
        return fail(p, p->i, "the pattern is not valid UTF-8");
    p->i += n;
    *cp = v;
    return 1;
}

/* ------------------------------------------------------------------ sequence state */

static struct width *seq(struct parser *p)
{
    return p->depth ? &p->frames[p->depth - 1].seq : &p->seq;
}

static void atom(struct parser *p, enum last kind, struct width w)
{
    struct width *s = seq(p);
    s->lo = w_add(s->lo, w.lo);
    s->hi = w_add(s->hi, w.hi);
    p->last = kind;
    p->last_w = w;
    p->first = false;
}

static bool repeat(struct parser *p, size_t at, long min, long max, const char *text)
{
    if (p->last == L_NONE || p->last == L_ANCHOR)
        return fail(p, at, "nothing to repeat");
    if (p->last == L_REPEAT)
        return fail(p, at, "multiple repeat");
    struct width *s = seq(p);
    /* replace the last atom's width by the repeated one */
    struct width w = p->last_w;
    if (s->lo != W_INF)
        s->lo -= w.lo;
    if (s->hi != W_INF)
        s->hi -= w.hi;
    s->lo = w_add(s->lo, w_mul(w.lo, min));
    s->hi = w_add(s->hi, w_mul(w.hi, max));
    emits(p, text);
    if (peek(p, p->i) == '?' || peek(p, p->i) == '+')
        emit(p, (const char *)p->s + p->i++, 1);
    p->last = L_REPEAT;
    return true;
}

/* `{` at p->i - 1: a repeat {m}, {m,}, {,n}, {m,n}, {,}, or a literal brace. */
static bool brace(struct parser *p)
{
    size_t at = p->i - 1, j = p->i;
    if (peek(p, j) == '}') {
        atom(p, L_ATOM, (struct width){1, 1});
        emits(p, "\\{");
        return true;
    }
    size_t lo_at = j;
    while (is_digit(peek(p, j)))
        j++;
    size_t lo_n = j - lo_at, hi_at = j, hi_n = 0;
    bool comma = peek(p, j) == ',';
    if (comma) {
        hi_at = ++j;
        while (is_digit(peek(p, j)))
            j++;
        hi_n = j - hi_at;
    }
    if (peek(p, j) != '}') {
        atom(p, L_ATOM, (struct width){1, 1});
        emits(p, "\\{");
        return true;
    }
    p->i = j + 1;
    long min = 0, max = W_INF;
    if (lo_n) {
        if (lo_n > 6 || (min = strtol((const char *)p->s + lo_at, NULL, 10)) > RX_MAX_REPEAT)
            return fail(p, at, "a repeat count over %d is not in the regex dialect", RX_MAX_REPEAT);
    }
    if (!comma)
        max = min;
    else if (hi_n) {
        if (hi_n > 6 || (max = strtol((const char *)p->s + hi_at, NULL, 10)) > RX_MAX_REPEAT)
            return fail(p, at, "a repeat count over %d is not in the regex dialect", RX_MAX_REPEAT);
        if (max < min)
            return fail(p, at, "min repeat greater than max repeat");
    }
    char text[64];
    if (max == W_INF)
        snprintf(text, sizeof text, "{%ld,}", min);
    else
        snprintf(text, sizeof text, "{%ld,%ld}", min, max);
    return repeat(p, at, min, max, text);
}

/* ------------------------------------------------------------------ classes */

/* `[` at p->i - 1. */
static bool char_class(struct parser *p)
{
    size_t at = p->i - 1;
    emits(p, "[");
    if (peek(p, p->i) == '^') {
        p->i++;
        emits(p, "^");
    }
    bool any = false;
    for (;;) {
        if (p->i >= p->len)
            return fail(p, at, "unterminated character set");
        int c = p->s[p->i];
        if (c == ']' && any) {
            p->i++;
            break;
        }
        any = true;
        long lo = -1;
        size_t item_at = p->i;
        if (c == '\\') {
            p->i++;
            int r = escape(p, true, &lo);
            if (!r)
                return false;
            if (r == 2)
                lo = -1; /* a class escape, already written */
        } else {
            size_t n;
            lo = decode(p->s, p->len, p->i, &n);
            if (lo < 0)
                return fail(p, p->i, "the pattern is not valid UTF-8");
            p->i += n;
        }
        if (peek(p, p->i) == '-') {
            p->i++;
            if (p->i >= p->len)
                return fail(p, at, "unterminated character set");
            if (p->s[p->i] == ']') {
                if (lo >= 0)
                    emit_literal(p, lo);
                emits(p, "\\x{2d}");
                p->i++;
                break;
            }
            long hi = -1;
            if (p->s[p->i] == '\\') {
                p->i++;
                size_t mark = p->olen;
                int r = escape(p, true, &hi);
                if (!r)
                    return false;
                if (r == 2) {
                    p->olen = mark;
                    hi = -1;
                }
            } else {
                size_t n;
                hi = decode(p->s, p->len, p->i, &n);
                if (hi < 0)
                    return fail(p, p->i, "the pattern is not valid UTF-8");
                p->i += n;
            }
            if (lo < 0 || hi < 0)
                return fail(p, item_at, "bad character range %.*s", (int)(p->i - item_at),
                            (const char *)p->s + item_at);
            if (hi < lo)
                return fail(p, item_at, "bad character range %.*s", (int)(p->i - item_at),
                            (const char *)p->s + item_at);
            emit_literal(p, lo);
            emits(p, "-");
            emit_literal(p, hi);
        } else if (lo >= 0) {
            emit_literal(p, lo);
        }
    }
    emits(p, "]");
    atom(p, L_ATOM, (struct width){1, 1});
    return true;
}

/* ------------------------------------------------------------------ groups */

static bool ident_ok(const unsigned char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t k = 0; k < n; k++) {
        int c = s[k];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!(alpha || (k && is_digit(c))))
            return false;
    }
    return true;
}

static bool has_non_ascii(const unsigned char *s, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (s[k] >= 0x80)
            return true;
    return false;
}

/* A group name from p->i up to the terminator; returns its length, or -1 (error set). */
static long group_name(struct parser *p, char term, size_t at)
{
    size_t j = p->i;
    while (j < p->len && p->s[j] != (unsigned char)term)
        j++;
    size_t n = j - p->i;
    if (j >= p->len)
        fail(p, at, "missing %c, unterminated name", term);
    else if (!n)
        fail(p, at, "missing group name");
    else if (has_non_ascii(p->s + p->i, n))
        fail(p, p->i, "a group name is ASCII letters, digits and _ in the regex dialect");
    else if (!ident_ok(p->s + p->i, n))
        fail(p, p->i, "bad character in group name '%.*s'", (int)n, (const char *)p->s + p->i);
    else if (n > RX_MAX_NAME)
        fail(p, p->i, "a group name longer than %d is not in the regex dialect", RX_MAX_NAME);
    return p->failed ? -1 : (long)n;
}

static int find_group(const struct parser *p, const unsigned char *name, size_t n)
{
    for (int g = 1; g <= p->ngroups; g++)
        if (p->groups[g].name && strlen(p->groups[g].name) == n &&
            !memcmp(p->groups[g].name, name, n))
            return g;
    return 0;
}

static void push(struct parser *p, size_t at, int group)
{
    if (p->depth == p->fcap) {
        p->fcap = p->fcap ? p->fcap * 2 : 8;
        p->frames = xrealloc(p->frames, p->fcap * sizeof *p->frames);
    }
    struct frame *f = &p->frames[p->depth++];
    *f = (struct frame){.start = at,
                        .group = group,
                        .verbose = p->verbose,
                        .alt = {W_INF, 0},
                        .saved_lookbehind = p->lookbehind_mark};
    p->last = L_NONE;
    p->first = false;
}

static int open_group(struct parser *p, const unsigned char *name, size_t n)
{
    if (p->ngroups + 1 >= p->gcap) {
        p->gcap = p->gcap ? p->gcap * 2 : 8;
        p->groups = xrealloc(p->groups, (size_t)p->gcap * sizeof *p->groups);
    }
    int g = ++p->ngroups;
    p->groups[g] = (struct group){.name = name ? xstrndup((const char *)name, n) : NULL};
    return g;
}

/* Python's inline flags after "(?" at p->i: global "(?imsx)" or scoped "(?i-s:". */
static bool flags(struct parser *p, size_t at)
{
    bool add[128] = {0}, del[128] = {0};
    bool minus = false;
    for (;;) {
        int c = peek(p, p->i);
        if (c < 0)
            return fail(p, at, minus ? "missing :" : "missing -, : or )");
        p->i++;
        if (c == ')' && !minus)
            break;
        if (c == ':')
            break;
        if (c == '-' && !minus) {
            minus = true;
            c = peek(p, p->i);
            if (c < 0)
                return fail(p, at, "missing flag");
            if (!strchr("aiLmsxtu", c) || !c)
                return fail(p, p->i,
                            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? "unknown flag"
                                                                             : "missing flag");
            continue;
        }
        if (!c || !strchr("aiLmsxtu", c))
            return fail(p, p->i - 1,
                        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? "unknown flag"
                        : minus                                          ? "missing :"
                                                                         : "missing -, : or )");
        if (c == 'L')
            return fail(p, p->i - 1, "bad inline flags: cannot use 'L' flag with a str pattern");
        if (minus && strchr("aLu", c))
            return fail(p, p->i - 1, "bad inline flags: cannot turn off flags 'a', 'u' and 'L'");
        (minus ? del : add)[c] = true;
        if (add['a'] && add['u'])
            return fail(p, p->i - 1, "bad inline flags: flags 'a', 'u' and 'L' are incompatible");
    }
    bool global = p->s[p->i - 1] == ')';
    if (add['t'] || del['t'])
        return fail(p, at,
                    global ? "the flag 't' is not in the regex dialect"
                           : "bad inline flags: cannot turn on global flag");
    if (add['a'])
        return fail(p, at, "the flag 'a' (ASCII) is not in the regex dialect");
    for (const char *f = "imsx"; *f; f++)
        if (add[(int)*f] && del[(int)*f])
            return fail(p, at, "bad inline flags: flag turned on and off");
    if (global) {
        if (!p->first)
            return fail(p, at, "global flags not at the start of the expression");
        if (add['i'])
            p->options |= PCRE2_CASELESS;
        if (add['m'])
            p->options |= PCRE2_MULTILINE;
        if (add['s'])
            p->options |= PCRE2_DOTALL;
        if (add['x'])
            p->verbose = true;
        return true;
    }
    push(p, at, 0);
    emits(p, "(?");
    for (const char *f = "ims"; *f; f++)
        if (add[(int)*f])
            emitf(p, "%c", *f);
    if (del['i'] || del['m'] || del['s']) {
        emits(p, "-");
        for (const char *f = "ims"; *f; f++)
            if (del[(int)*f])
                emitf(p, "%c", *f);
    }
    emits(p, ":");
    p->verbose = (p->verbose || add['x']) && !del['x'];
    return true;
}

/* `(` at p->i - 1. */
static bool group_open(struct parser *p)
{
    size_t at = p->i - 1;
    if (peek(p, p->i) != '?') {
        push(p, at, open_group(p, NULL, 0));
        emits(p, "(");
        return true;
    }
    p->i++;
    int c = peek(p, p->i);
    if (c < 0)
        return fail(p, at, "unexpected end of pattern");
    p->i++;
    if (c == 'P') {
        int d = peek(p, p->i);
        if (d == '<' || d == '=') {
            p->i++;
            long n = group_name(p, d == '<' ? '>' : ')', at);
            if (n < 0)
                return false;
            const unsigned char *name = p->s + p->i;
            p->i += (size_t)n + 1;
            int g = find_group(p, name, (size_t)n);
            if (d == '<') {
                if (g)
                    return fail(p, at,
                                "redefinition of group name '%.*s' as group %d; was "
                                "group %d",
                                (int)n, (const char *)name, p->ngroups + 1, g);
                push(p, at, open_group(p, name, (size_t)n));
                emits(p, "(");
                return true;
            }
            if (!g)
                return fail(p, at, "unknown group name '%.*s'", (int)n, (const char *)name);
            if (!p->groups[g].closed)
                return fail(p, at, "cannot refer to an open group");
            if (p->lookbehind_mark >= 0 && g >= p->lookbehind_mark)
                return fail(p, at,
                            "cannot refer to group defined in the same lookbehind subpattern");
            emitf(p, "\\g{%d}", g);
            atom(p, L_ATOM, p->groups[g].w);
            return true;
        }
        if (d < 0)
            return fail(p, at, "unexpected end of pattern");
        return fail(p, at, "unknown extension ?P%c", d);
    }
    switch (c) {
    case ':':
        push(p, at, 0);
        emits(p, "(?:");
        return true;
    case '>':
        push(p, at, 0);
        emits(p, "(?>");
        return true;
    case '#':
        while (p->i < p->len && p->s[p->i] != ')')
            p->i++;
        if (p->i >= p->len)
            return fail(p, at, "missing ), unterminated comment");
        p->i++;
        return true;
    case '=':
    case '!':
        push(p, at, 0);
        p->frames[p->depth - 1].lookaround = true;
        emitf(p, "(?%c", c);
        return true;
    case '<': {
        int d = peek(p, p->i);
        if (d < 0)
            return fail(p, at, "unexpected end of pattern");
        if (d != '=' && d != '!')
            return fail(p, at, "unknown extension ?<%c", d);
        p->i++;
        push(p, at, 0);
        struct frame *f = &p->frames[p->depth - 1];
        f->lookaround = f->lookbehind = true;
        if (p->lookbehind_mark < 0)
            p->lookbehind_mark = p->ngroups + 1;
        emitf(p, "(?<%c", d);
        return true;
    }
    case '(': {
        size_t j = p->i;
        while (j < p->len && p->s[j] != ')')
            j++;
        if (j >= p->len)
            return fail(p, at, "missing ), unterminated name");
        const unsigned char *name = p->s + p->i;
        size_t n = j - p->i;
        int g = 0;
        bool digits = n > 0;
        for (size_t k = 0; k < n; k++)
            digits &= is_digit(name[k]);
        if (digits) {
            if (n > 5)
                return fail(p, at, "invalid group reference %.*s", (int)n, (const char *)name);
            g = (int)strtol((const char *)name, NULL, 10);
            if (!g)
                return fail(p, at, "bad group number");
            p->cond_refs = xrealloc(p->cond_refs, (p->ncond + 1) * sizeof *p->cond_refs);
            p->cond_pos = xrealloc(p->cond_pos, (p->ncond + 1) * sizeof *p->cond_pos);
            p->cond_refs[p->ncond] = g;
            p->cond_pos[p->ncond++] = p->i;
        } else {
            long nl = group_name(p, ')', at);
            if (nl < 0)
                return false;
            g = find_group(p, name, n);
            if (!g)
                return fail(p, at, "unknown group name '%.*s'", (int)n, (const char *)name);
        }
        if (p->lookbehind_mark >= 0 && g <= p->ngroups && !p->groups[g].closed)
            return fail(p, at, "cannot refer to an open group");
        if (p->lookbehind_mark >= 0 && g >= p->lookbehind_mark)
            return fail(p, at, "cannot refer to group defined in the same lookbehind subpattern");
        p->i = j + 1;
        push(p, at, 0);
        p->frames[p->depth - 1].cond = true;
        emitf(p, "(?(%d)", g);
        return true;
    }
    default:
        break;
    }
    if (strchr("aiLmsxtu-", c) && c) {
        p->i--;
        return flags(p, at);
    }
    return fail(p, at, "unknown extension ?%c", c);
}

static void branch_end(struct frame *f)
{
    if (f->seq.lo < f->alt.lo)
        f->alt.lo = f->seq.lo;
    if (f->seq.hi > f->alt.hi)
        f->alt.hi = f->seq.hi;
    f->seq = (struct width){0, 0};
    f->branches++;
}

static bool group_close(struct parser *p)
{
    size_t at = p->i - 1;
    if (!p->depth)
        return fail(p, at, "unbalanced parenthesis");
    struct frame *f = &p->frames[p->depth - 1];
    branch_end(f);
    struct width w = f->alt;
    if (f->cond && f->branches == 1)
        w.lo = 0; /* no "no" branch: it matches the empty string */
    if (f->lookbehind && w.lo != w.hi)
        return fail(p, f->start, "look-behind requires fixed-width pattern");
    if (f->group) {
        p->groups[f->group].closed = true;
        p->groups[f->group].w = w;
    }
    bool look = f->lookaround;
    p->verbose = f->verbose;
    p->lookbehind_mark = f->saved_lookbehind;
    p->depth--;
    emits(p, ")");
    atom(p, L_ATOM, look ? (struct width){0, 0} : w);
    return true;
}

static bool alternation(struct parser *p)
{
    if (p->depth) {
        struct frame *f = &p->frames[p->depth - 1];
        if (f->cond && f->branches >= 1)
            return fail(p, p->i - 1, "conditional backref with more than two branches");
        branch_end(f);
    } else {
        p->seq = (struct width){0, 0};
    }
    emits(p, "|");
    p->last = L_NONE;
    p->first = false;
    return true;
}

/* ------------------------------------------------------------------ the pattern */

static bool translate(struct parser *p)
{
    while (p->i < p->len && !p->failed) {
        int c = p->s[p->i++];
        if (p->verbose && strchr(" \t\n\r\v\f", c)) {
            continue;
        }
        if (p->verbose && c == '#') {
            while (p->i < p->len && p->s[p->i] != '\n')
                p->i++;
            continue;
        }
        long cp;
        switch (c) {
        case '\\': {
            int r = escape(p, false, &cp);
            if (r == 1) {
                emit_literal(p, cp);
                atom(p, L_ATOM, (struct width){1, 1});
            } else if (r == 2) {
                atom(p, L_ATOM, (struct width){1, 1});
            } else if (r == 3) {
                atom(p, L_ANCHOR, (struct width){0, 0});
            } else if (r == 4) {
                emitf(p, "\\g{%ld}", cp);
                atom(p, L_ATOM, p->groups[cp].w);
            }
            break;
        }
        case '[':
            char_class(p);
            break;
        case '.':
            emits(p, ".");
            atom(p, L_ATOM, (struct width){1, 1});
            break;
        case '^':
        case '$':
            emitf(p, "%c", c);
            atom(p, L_ANCHOR, (struct width){0, 0});
            break;
        case '*':
            repeat(p, p->i - 1, 0, W_INF, "*");
            break;
        case '+':
            repeat(p, p->i - 1, 1, W_INF, "+");
            break;
        case '?':
            repeat(p, p->i - 1, 0, 1, "?");
            break;
        case '{':
            brace(p);
            break;
        case '(':
            group_open(p);
            break;
        case ')':
            group_close(p);
            break;
        case '|':
            alternation(p);
            break;
        default: {
            size_t n;
            cp = decode(p->s, p->len, p->i - 1, &n);
            if (cp < 0)
                return fail(p, p->i - 1, "the pattern is not valid UTF-8");
            p->i += n - 1;
            emit_literal(p, cp);
            atom(p, L_ATOM, (struct width){1, 1});
        }
        }
    }
    if (p->failed)
        return false;
    if (p->depth)
        return fail(p, p->frames[p->depth - 1].start, "missing ), unterminated subpattern");
    for (size_t k = 0; k < p->ncond; k++)
        if (p->cond_refs[k] > p->ngroups)
            return fail(p, p->cond_pos[k], "invalid group reference %d", p->cond_refs[k]);
    return true;
}

bool rx_compile(struct rx *rx, const char *src, size_t len, char *err, size_t errlen,
                size_t *err_offset)
{
    rx->code = NULL;
    struct parser p = {.s = (const unsigned char *)src,
                       .len = len,
                       .first = true,
                       .lookbehind_mark = -1,
                       .err = err,
                       .errlen = errlen};
    p.options = PCRE2_UTF | PCRE2_UCP | PCRE2_ALT_CIRCUMFLEX | PCRE2_MATCH_INVALID_UTF |
                PCRE2_NEVER_BACKSLASH_C;
    emits(&p, "");
    bool ok = translate(&p);
    for (int g = 1; g <= p.ngroups; g++)
        free(p.groups[g].name);
    free(p.groups);
    free(p.frames);
    free(p.cond_refs);
    free(p.cond_pos);
    if (!ok) {
        *err_offset = p.err_off;
        free(p.out);
        return false;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc)
        abort();
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int code;
    PCRE2_SIZE off;
    rx->code = pcre2_compile((PCRE2_SPTR)p.out, p.olen, p.options, &code, &off, cc);
    pcre2_compile_context_free(cc);
    free(p.out);
    if (!rx->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "%s", (const char *)msg);
        *err_offset = 0;
        return false;
    }
    return true;
}

bool rx_search(const struct rx *rx, const char *subject, size_t len, size_t *start, size_t *end)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(rx->code, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!md || !mc)
        abort();
    pcre2_set_match_limit(mc, RX_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, RX_MATCH_LIMIT / 10);
    int rc = pcre2_match(rx->code, (PCRE2_SPTR)subject, len, 0, 0, md, mc);
    if (rc >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (start)
            *start = ov[0];
        if (end)
            *end = ov[1];
    }
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    return rc >= 0;
}

void rx_free(struct rx *rx)
{
    pcre2_code_free(rx->code);
    rx->code = NULL;
}
