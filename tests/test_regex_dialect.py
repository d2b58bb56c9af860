"""The scenario regex dialect is implemented twice on purpose, by PCRE2 in the server and by
Python's re in the grader: this corpus holds both to the same accept/reject decision and the
same match on every subject (docs/scenarios.md, "Regular expressions"). A pattern Python
accepts that the dialect leaves out is listed in OUTSIDE, and `harness` must reject it."""
import json
import re
import subprocess
import warnings

import pytest

S = ["", "abc", "ABC", "aBc123", "a\nb\n", "x-y_z", "2024-01-31", "héllo wörld", "ΣΑΣ σας",
     "foo.bar", "aaaa", "abab", "<a><b>", "tab\there", "[x]", "{}", "a{2}", "\u0661\u0662",
     "line1\nline2", "end\n", "Time Out", "TIMEDOUT", "multipart/form-data; boundary=x",
     "text/plain;charset=UTF-8", "/items/42", "/items/x", "q=1&r=2", "ß", "\x1c", "k\u212a"]

CORPUS = [
    # literals, classes, anchors
    "abc", "^abc$", "^$", "a.c", r"a\.c", "[abc]+", "[^abc]", "[a-z]+", "[]a]", "[^]a]", "[a-]",
    r"[\]]", r"[\w.-]+", r"[\d]+", r"\d+", r"\D+", r"\w+", r"\W", r"\s", r"\S+", r"\bfoo\b",
    r"\Bb", r"\Aa", r"b\Z", "end$", "(?m)^line2$", "(?s)line1.line2", "(?m)^$",
    # quantifiers
    "a*", "a+?", "a{2}", "a{2,}", "a{,2}", "a{2,3}", "a{,}", "a{}", "a{x}", "a{2,1}", "a**",
    "*a", "a{2}{3}", "(?:ab)+", "a*+", "a++b", "(?>a+)b", "^*", r"\b+", "a|*",
    # groups, names, backreferences
    "(a)(b)", r"(a)\1", r"(ab)\1", r"(a)\2", r"(a\1)", "(?P<x>a)(?P=x)", "(?P<x>a)(?P<x>b)",
    "(?P=y)", "(?P<1x>a)", "(?<name>a)", r"(?P<n>a)\k<n>", "(?P>n)", r"(a)(?(1)b|c)",
    "(?(1)a|b)(c)", "(?(2)a|b)(c)", "(a)(?(1)b|c|d)", "(?(x)a)", r"(?P<q>a)?(?(q)b|c)",
    r"(a)|\1", "(?:a)(?#comment)b", "(?#unterminated",
    # lookarounds
    "foo(?=bar)", "foo(?!bar)", "(?<=a)b", "(?<!a)b", "(?<=ab|cd)x", "(?<=a|bc)x", r"(?<=\d{2})-",
    "(?<=a+)b", r"(a)(?<=\1)", r"(?<=(a)\1)b", r"(?<=(?:a|b))c",
    # inline flags
    "(?i)abc", "(?i)AbC", "a(?i)b", "(?i)(?m)^abc", "(?i:a)b", "(?-i:a)", "(?i-i:a)", "(?x) a b c",
    "(?x)a # comment\nb", r"(?x)a\ b", "(?x)[ ]", "(?a)a", "(?u)a", "(?L)a", "(?t)a", "(?au)a",
    "(?q)a", "((?i)a)", "(?i)ß", "(?i)ς", "(?i)k",
    # escapes
    r"\x41", r"\x4", r"\u00e9", r"\U0001F600", r"\N{LATIN SMALL LETTER E}", r"\0", r"\07",
    r"\101", r"\400", r"\q", r"\-", r"\é", r"[\b]", r"[\A]", r"[\Z]", r"[\1]", r"[\8]", r"\v",
    r"\a", "\\", r"\t", r"[\d-z]", "[z-a]", r"\p{L}", r"\h", r"\K", r"\Qa\E", r"\x{41}",
    # POSIX and PCRE-only constructs
    "[[:alpha:]]", "[[:digit:]]+", "(?|(a)|(b))", "(?R)", "(?1)(a)", "(*FAIL)", "(?C1)a",
    r"\ud800",
    # the catalogue's own
    "[Tt]ime[Oo]ut|TIMEDOUT", "^multipart/form-data; ?boundary=", "^text/plain;charset=UTF-8$",
    "^/items/[0-9]+$", r"^/items/\d+$", "^x+$", "/new$",
    # syntax errors
    "(", ")", "[a", "a)", "(?", "(?P<n", "a{1,2",
]

# Accepted by Python's re but left out of the dialect (no PCRE2 10.42 equivalent).
OUTSIDE = {
    r"\N{LATIN SMALL LETTER E}": "characters by name",
    "(?a)a": "the ASCII flag",
    "(?t)a": "the deprecated TEMPLATE flag",
    r"\ud800": "surrogate code points",
}


def python(pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rx = re.compile(pattern)
        except re.error:
            return {"ok": False}
    return {"ok": True, "matches": [m.group(0) if m else None for m in map(rx.search, S)]}


def harness(binary, pattern):
    proc = subprocess.run([binary, "regex", pattern, *S], capture_output=True, timeout=30)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_corpus_size():
    assert len(CORPUS) >= 40 and len(set(CORPUS)) == len(CORPUS)


@pytest.mark.parametrize("pattern", CORPUS)
def test_same_decision_and_matches(harness_bin, pattern):
    py, c = python(pattern), harness(harness_bin, pattern)
    if pattern in OUTSIDE:
        assert py["ok"] and not c["ok"], (py, c)
        assert "not in the regex dialect" in c["error"]
        return
    assert c["ok"] == py["ok"], c.get("error")
    if py["ok"]:
        assert c["matches"] == py["matches"]
