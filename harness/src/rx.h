/* rx — the one regular-expression dialect of scenarios: Python 3.11 `re` syntax.
 *
 * Every regex a scenario holds (match.path_regex, `{regex: RE}` in match conditions and in
 * `expect`) is in this dialect. The server matches with PCRE2; the grader (Python) matches
 * with `re`. rx_compile() parses the pattern by Python's rules and writes an equivalent
 * PCRE2 pattern (backreferences as \g{N}, octal escapes as \o{N}, \Z as \z, \v as \x{0b},
 * literal braces escaped, verbose-mode spaces and comments dropped), rejecting what Python
 * rejects, plus the few constructs it accepts that PCRE2 cannot mirror (documented in
 * docs/scenarios.md, "Regular expressions"; tests/test_regex_dialect.py holds both to the
 * same corpus). A match is a search (anywhere in the subject), as re.search().
 *
 * Ownership: a struct rx owns its compiled code; rx_free() releases it. A compiled rx is
 * immutable and may be used by many threads at once.
 */
#ifndef HARNESS_RX_H
#define HARNESS_RX_H

#include <stdbool.h>
#include <stddef.h>

struct rx {
    void *code; /* pcre2_code *, owned */
};

/* Compile src (len bytes, UTF-8). On error returns false, writes a message to err and the
 * 0-based byte offset in src it concerns to *err_offset. */
bool rx_compile(struct rx *rx, const char *src, size_t len, char *err, size_t errlen,
                size_t *err_offset);
/* Search subject for a match. *start and *end (may be NULL) get the byte offsets of the match.
 * A subject that is not valid UTF-8 is searched in its valid parts; a search that exceeds
 * the backtracking limit (a hostile subject) counts as no match. */
bool rx_search(const struct rx *rx, const char *subject, size_t len, size_t *start, size_t *end);
void rx_free(struct rx *rx);

#endif
