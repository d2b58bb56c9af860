"""The man pages (man/): they render with `man -l` and groff without a warning, fit 80
columns, and describe every option the binary's --help and the pytest plugin offer, every
command of `harness`, and every variable `make conformance` reads (drift tests)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["man/harness.1", "man/comet-harness.7"]


def render(path):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    proc = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    return proc.stdout


def options(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


def harness_version():
    with open(os.path.join(ROOT, "harness/src/version.h")) as f:
        return re.search(r'#define HARNESS_VERSION "([^"]+)"', f.read()).group(1)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(page):
    text = render(os.path.join(ROOT, page))
    assert "NAME" in text and "SYNOPSIS" in text and "SEE ALSO" in text
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    proc = subprocess.run(["groff", "-ww", "-man", "-Tutf8", "-z", page], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.parametrize("page", PAGES)
def test_page_source_is_ascii_and_names_the_current_version(page):
    with open(os.path.join(ROOT, page), "rb") as f:
        data = f.read()
    assert data.isascii(), "use groff escapes (\\(em, \\(mu) for other characters"
    th = re.search(rb'^\.TH .*"Comet Harness ([^"]+)"', data, re.M)
    assert th and th.group(1).decode() == harness_version()


def test_every_command_and_option_of_harness_is_in_harness_1(harness_bin):
    page = render(os.path.join(ROOT, "man/harness.1"))
    main = subprocess.run([harness_bin, "--help"], capture_output=True, text=True, timeout=10)
    assert main.returncode == 0
    commands = re.findall(r"^  ([a-z]+)  ", main.stdout.split("commands:")[1], re.M)
    assert {"serve", "check"} <= set(commands)
    wanted = options(main.stdout)
    for command in commands:
        assert re.search(r"^   harness %s\b" % command, page, re.M), \
            "no subsection for `harness %s`" % command
        usage = subprocess.run([harness_bin, command, "--help"], capture_output=True,
                               text=True, timeout=10)
        assert usage.returncode == 0, usage.stderr
        wanted |= options(usage.stdout)
    assert {"--port", "--json", "--version"} <= wanted
    missing = sorted(wanted - options(page))
    assert not missing, "harness.1 does not describe %s" % ", ".join(missing)


def plugin_options():
    """The options the pytest plugin registers, read from pytest's own parser."""
    code = ("from _pytest.config import get_config\n"
            "config = get_config()\n"
            "config.pluginmanager.import_plugin('comet_harness.plugin')\n"
            "for group in config._parser._groups:\n"
            "    if group.name == 'comet':\n"
            "        for opt in group.options:\n"
            "            print(' '.join(opt.names()))\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "drivers"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_every_plugin_option_is_in_comet_harness_7():
    wanted = plugin_options()
    assert {"--client", "--scenarios", "--results", "--list-clients"} <= wanted
    missing = sorted(wanted - options(render(os.path.join(ROOT, "man/comet-harness.7"))))
    assert not missing, "comet-harness.7 does not describe %s" % ", ".join(missing)


def conformance_variables():
    """The user-settable (?=) variables that the conformance target's recipe reads."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read()
    settable = set(re.findall(r"^([A-Z_]+)\s*\?=", text, re.M))
    rule = re.search(r"^conformance:.*\n((?:\t.*\n|[ \t]*#.*\n)*)", text, re.M)
    assert rule, "no conformance target in the Makefile"
    used = set(re.findall(r"\$\(([A-Z_]+)\)", rule.group(0)))
    return used & settable


def test_every_conformance_variable_is_in_comet_harness_7():
    wanted = conformance_variables()
    assert "CONFORMANCE_ARGS" in wanted
    page = render(os.path.join(ROOT, "man/comet-harness.7"))
    missing = sorted(v for v in wanted if not re.search(r"^ {7}%s=" % v, page, re.M))
    assert not missing, "comet-harness.7 does not describe make conformance %s" % ", ".join(missing)
