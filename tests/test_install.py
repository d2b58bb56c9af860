"""`make install`, `make uninstall` and `make deb`, into temporary folders only (nothing is
installed on the machine: no `dpkg -i`).

The installed tree is run for real: its `harness` checks its own catalogue, its man pages
render, and pytest finds the plugin through the installed pytest11 entry point (with the
dist-packages folder made a site folder, as Python does for the real one) and runs
scenarios against curl. The .deb is read with `dpkg-deb -I` and unpacked with
`dpkg-deb -x`, and its tree is run the same way.

The binary installed is the one under test: HARNESS_BIN's build folder is make's BUILD.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUE = sorted(glob.glob(os.path.join(ROOT, "scenarios", "**", "*.y*ml"), recursive=True))
SITE_RUN = ("import site, sys\n"
            "site.addsitedir(sys.argv.pop(1))\n"
            "import pytest\n"
            "sys.exit(pytest.main(sys.argv[1:]))\n")


def harness_version():
    with open(os.path.join(ROOT, "harness/src/version.h")) as f:
        return re.search(r'#define HARNESS_VERSION "([^"]+)"', f.read()).group(1)


def make(*args, build):
    """`make ARGS` in the repository, outside any make that runs these tests."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.run(["make", "--no-print-directory", "BUILD=" + build, *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, n), top)
                  for d, _, names in os.walk(top) for n in names)


def site_pytest(sitedir, *args, cwd, env=None):
    """pytest with SITEDIR as a site folder (its .pth read) and nothing from the checkout."""
    env = {k: v for k, v in (env or os.environ).items()
           if k not in ("PYTHONPATH", "HARNESS_BIN", "PYTEST_ADDOPTS",
                        "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    return subprocess.run(["/usr/bin/python3", "-c", SITE_RUN, sitedir, "-p", "no:cacheprovider",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def build(harness_bin):
    folder = os.path.dirname(os.path.abspath(harness_bin))
    if not os.path.isdir(os.path.join(folder, "obj")):
        pytest.skip("HARNESS_BIN %s is not in a make BUILD folder" % harness_bin)
    return folder


@pytest.fixture(scope="module")
def prefix(build, tmp_path_factory):
    """A real install (no DESTDIR) under a temporary PREFIX."""
    prefix = str(tmp_path_factory.mktemp("install") / "usr")
    make("install", "PREFIX=" + prefix, build=build)
    return prefix


def pyver():
    return "%d.%d" % sys.version_info[:2]


def check_tree(usr, sitedir, version):
    """What every installed tree holds, and that its binary and catalogue work."""
    data = os.path.join(usr, "share/comet-harness")
    binary = os.path.join(usr, "bin/harness")
    assert os.access(binary, os.X_OK)
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0 and proc.stdout == "harness %s\n" % version
    installed = files_under(os.path.join(data, "scenarios"))
    assert installed == [os.path.relpath(p, os.path.join(ROOT, "scenarios")) for p in CATALOGUE]
    assert len(installed) >= 213
    proc = subprocess.run([binary, "check", os.path.join(data, "scenarios")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "checked %d files: 0 errors" % len(CATALOGUE)

    drivers = os.path.join(data, "drivers")
    for path in ("comet_harness/__init__.py", "comet_harness/plugin.py",
                 "comet_harness/templates/report.html.j2", "clients.yaml", "package.json",
                 "package-lock.json", "adapters/curl.py", "adapters/browser/runner.js",
                 "schema/adapter-protocol.schema.json", "expectations/curl.yaml"):
        assert os.path.isfile(os.path.join(drivers, path)), path
    assert not [f for f in files_under(drivers) if "__pycache__" in f or f.endswith(".pyc")]
    assert os.readlink(os.path.join(data, "build/harness")) == "../../../bin/harness"
    for doc in ("README.md", "scenarios.md", "control-api.md", "adapters.md"):
        assert os.path.isfile(os.path.join(usr, "share/doc/comet-harness", doc))

    info = os.path.join(sitedir, "comet_harness-%s.dist-info" % version)
    with open(os.path.join(info, "entry_points.txt")) as f:
        assert f.read().split("\n", 2)[:2] == ["[pytest11]",
                                               "comet_harness.plugin = comet_harness.plugin"]
    with open(os.path.join(info, "METADATA")) as f:
        meta = f.read()
    assert "Name: comet-harness\n" in meta and "Version: %s\n" % version in meta
    with open(os.path.join(sitedir, "comet_harness.pth")) as f:
        pth = f.read().strip()
    assert not os.path.isabs(pth)
    assert os.path.normpath(os.path.join(sitedir, pth)) == drivers
    with open(os.path.join(info, "RECORD")) as f:
        record = [line.split(",")[0] for line in f.read().splitlines()]
    assert "comet_harness.pth" in record
    for path in record:
        assert os.path.exists(os.path.normpath(os.path.join(sitedir, path))), path


# --------------------------------------------------------------------------- make install

def test_install_puts_everything_under_prefix(prefix):
    sitedir = os.path.join(prefix, "lib/python%s/dist-packages" % pyver())
    check_tree(prefix, sitedir, harness_version())
    for page in ("man1/harness.1", "man7/comet-harness.7"):
        assert os.path.isfile(os.path.join(prefix, "share/man", page))


def test_installed_man_pages_are_found_and_render(prefix):
    mandir = os.path.join(prefix, "share/man")
    for section, name in (("1", "harness"), ("7", "comet-harness")):
        found = subprocess.run(["man", "-M", mandir, "-w", section, name], capture_output=True,
                               text=True, timeout=30)
        assert found.stdout.strip() == os.path.join(mandir, "man%s" % section,
                                                    "%s.%s" % (name, section))
        page = subprocess.run(["man", "--warnings", "-M", mandir, section, name],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, MANWIDTH="80"))
        assert page.returncode == 0 and page.stderr == "", page.stderr
        assert "SYNOPSIS" in page.stdout


def test_installed_plugin_is_a_pytest11_entry_point(prefix):
    sitedir = os.path.join(prefix, "lib/python%s/dist-packages" % pyver())
    code = ("import site, sys, importlib.metadata as md\n"
            "site.addsitedir(sys.argv[1])\n"
            "eps = md.entry_points(group='pytest11')\n"
            "ep = [e for e in eps if e.name == 'comet_harness.plugin'][0]\n"
            "print(ep.value, md.version('comet-harness'), ep.load().__file__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(["/usr/bin/python3", "-c", code, sitedir], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    value, version, path = proc.stdout.split()
    assert value == "comet_harness.plugin" and version == harness_version()
    assert path.startswith(os.path.join(prefix, "share/comet-harness/drivers/comet_harness/"))


def test_installed_plugin_runs_the_installed_catalogue(prefix, tmp_path):
    """No -p, no PYTHONPATH, no HARNESS_BIN: the entry point loads the plugin, which finds
    its registry and adapters beside itself and the installed binary."""
    sitedir = os.path.join(prefix, "lib/python%s/dist-packages" % pyver())
    scenarios = os.path.join(prefix, "share/comet-harness/scenarios")
    listed = site_pytest(sitedir, "--list-clients", cwd=str(tmp_path))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert re.search(r"^curl +yes +program", listed.stdout, re.M)
    run = site_pytest(sitedir, "-q", "--client", "curl", "--scenarios", scenarios,
                      "--results", "out", os.path.join(scenarios, "core"), cwd=str(tmp_path))
    core = len(glob.glob(os.path.join(ROOT, "scenarios/core/*.yaml")))
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b%d passed\b" % core, run.stdout), run.stdout
    with open(tmp_path / "out" / "results.json") as f:
        results = json.load(f)
    assert json.dumps(results).count(harness_version()) >= 1


def test_naming_the_plugin_too_does_not_load_it_twice(prefix, tmp_path):
    """make conformance in a checkout says -p comet_harness.plugin; with the package
    installed the entry point has the same name, so pytest keeps one copy."""
    sitedir = os.path.join(prefix, "lib/python%s/dist-packages" % pyver())
    proc = site_pytest(sitedir, "-p", "comet_harness.plugin", "--list-clients", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = site_pytest(sitedir, "-p", "no:comet_harness.plugin", "--list-clients",
                       cwd=str(tmp_path))
    assert proc.returncode == 4 and "unrecognized arguments: --list-clients" in proc.stderr


def test_autoloaded_plugin_leaves_other_test_runs_alone(prefix, tmp_path):
    sitedir = os.path.join(prefix, "lib/python%s/dist-packages" % pyver())
    (tmp_path / "test_other.py").write_text("def test_other():\n    pass\n")
    proc = site_pytest(sitedir, "-q", "test_other.py", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["test_other.py"]


def test_autoloaded_plugin_leaves_pytest_help_working(prefix, tmp_path):
    sitedir = os.path.join(prefix, "lib/python%s/dist-packages" % pyver())
    proc = site_pytest(sitedir, "--help", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "--list-clients" in proc.stdout


def test_destdir_install_and_uninstall(build, tmp_path):
    stage = str(tmp_path / "stage")
    make("install", "PREFIX=/usr", "DESTDIR=" + stage, build=build)
    usr = os.path.join(stage, "usr")
    assert os.listdir(stage) == ["usr"]
    # the staged tree works where it is: every path between its parts is relative
    check_tree(usr, os.path.join(usr, "lib/python3/dist-packages"), harness_version())
    for path in files_under(stage):
        full = os.path.join(stage, path)
        if os.path.isfile(full) and not path.endswith((".yaml", ".md")):
            with open(full, "rb") as f:
                assert stage.encode() not in f.read(), "%s names the DESTDIR" % path
    make("uninstall", "PREFIX=/usr", "DESTDIR=" + stage, build=build)
    assert files_under(stage) == []


# --------------------------------------------------------------------------------- make deb

@pytest.fixture(scope="module")
def deb(build, tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    make("deb", "DEBDIR=" + str(out), build=build)
    found = glob.glob(str(out / "comet-harness_*.deb"))
    assert len(found) == 1, found
    return found[0]


def deb_fields(path):
    proc = subprocess.run(["dpkg-deb", "-f", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    fields, key = {}, None
    for line in proc.stdout.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def test_deb_is_named_and_described(deb):
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    assert os.path.basename(deb) == "comet-harness_%s_%s.deb" % (harness_version(), arch)
    info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    fields = deb_fields(deb)
    assert fields["Package"] == "comet-harness"
    assert fields["Version"] == harness_version()
    assert fields["Architecture"] == arch
    assert int(fields["Installed-Size"]) > 0
    depends = [d.strip().split(" ")[0] for d in fields["Depends"].split(",")]
    for lib in ("libc6", "libmicrohttpd12", "libyaml-0-2", "libjansson4", "libnettle8",
                "python3", "python3-pytest"):
        assert lib in depends, fields["Depends"]
    for field in ("Package", "Version", "Depends", "Description"):
        assert re.search(r"^ %s:" % field, info.stdout, re.M), info.stdout


def test_deb_depends_on_what_the_python_package_requires(deb):
    """pyproject.toml's dependencies, found among Debian's installed packages, are in the
    .deb's Depends: the two lists cannot drift apart."""
    with open(os.path.join(ROOT, "packaging/pyproject.toml"), "rb") as f:
        requires = tomllib.load(f)["project"]["dependencies"]
    depends = {d.strip().split(" ")[0] for d in deb_fields(deb)["Depends"].split(",")}
    import importlib.metadata as md
    for requirement in requires:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        where = str(md.distribution(name)._path)
        owner = subprocess.run(["dpkg", "-S", where], capture_output=True, text=True, timeout=60)
        assert owner.returncode == 0, owner.stderr
        package = owner.stdout.split(":")[0]
        assert package in depends, "%s (%s) is not in Depends" % (package, requirement)


def test_deb_unpacks_to_a_working_tree(deb, tmp_path):
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    assert re.search(r"^-rwxr-xr-x root/root .* \./usr/bin/harness$", listing.stdout, re.M)
    root = tmp_path / "x"
    proc = subprocess.run(["dpkg-deb", "-x", deb, str(root)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    usr = str(root / "usr")
    sitedir = os.path.join(usr, "lib/python3/dist-packages")
    check_tree(usr, sitedir, harness_version())
    for page in ("man1/harness.1.gz", "man7/comet-harness.7.gz"):
        path = os.path.join(usr, "share/man", page)
        shown = subprocess.run(["man", "--warnings", "-l", path], capture_output=True,
                               text=True, timeout=60, env=dict(os.environ, MANWIDTH="80"))
        assert shown.returncode == 0 and shown.stderr == "" and "SYNOPSIS" in shown.stdout
    listed = site_pytest(sitedir, "--list-clients", cwd=str(tmp_path))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert re.search(r"^python-requests +yes +python", listed.stdout, re.M)
