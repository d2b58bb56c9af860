# Comet Harness — top-level build.
#
#   make check        install what is missing, build, run every test
#   make conformance  install what is missing, run the catalogue against the default clients
#   make merge        the results of shards (make conformance SHARD=K/N) as one run's
#   make harness      build the server binary only ($(BUILD)/harness); like a bare `make`,
#                     it installs the build dependencies first when missing (make deps)
#   make install      install it with the man pages, the catalogue and the pytest plugin
#                     (PREFIX=/usr/local, DESTDIR=); make uninstall removes them
#   make deb          $(BUILD)/comet-harness_VERSION_ARCH.deb (dpkg-deb)
#   make grid         start a Selenium Grid on 127.0.0.1:4444 (GRID_PORT=N; make grid-stop)
#
# Every harness/src/*.c is a module linked into the binary (main.c holds main());
# every harness/tests/test_*.c is a cmocka program linked against the modules.
# BUILD=dir puts all outputs elsewhere (parallel builds of one tree use different dirs).

BUILD    ?= build
CC       ?= cc
PYTHON   := /usr/bin/python3
PKGS     := libmicrohttpd yaml-0.1 jansson nettle gnutls libpcre2-8
CPPFLAGS += -Iharness/src -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -pthread
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

SRC      := $(wildcard harness/src/*.c)
LIB_SRC  := $(filter-out harness/src/main.c,$(SRC))
LIB_OBJ  := $(patsubst harness/src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TEST_SRC := $(wildcard harness/tests/test_*.c)
TEST_BIN := $(patsubst harness/tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
FUZZ_TARGETS := $(patsubst harness/fuzz/fuzz_%.c,%,$(wildcard harness/fuzz/fuzz_*.c))
FUZZ_REPLAY  := $(patsubst %,$(BUILD)/tests/fuzz_replay_%,$(FUZZ_TARGETS))

.PHONY: all harness deps deps-browsers check unit-tests integration-tests sanitizer-tests \
        conformance merge format format-check cycles bench bench-deps fuzz clean install uninstall deb man

all: harness

harness: $(BUILD)/harness

deps:
	@scripts/ensure-deps base

deps-browsers:
	@scripts/ensure-deps browsers

# Compiling needs the build dependencies: `make deps` first (order-only: it never makes an
# object out of date; scripts/ensure-deps is quick when everything is there).
$(BUILD)/obj/%.o: harness/src/%.c $(wildcard harness/src/*.h) | $(BUILD)/obj deps
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -MMD -c -o $@ $<

$(BUILD)/harness: $(BUILD)/obj/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/%: harness/tests/%.c $(LIB_OBJ) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -Iharness/tests -o $@ $< $(LIB_OBJ) \
	    $(PKG_LIBS) $(shell pkg-config --libs cmocka) -lm

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

unit-tests: $(TEST_BIN) $(FUZZ_REPLAY)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; (cd harness/tests && ../../$$t); done
	@set -e; for t in $(FUZZ_TARGETS); do echo "== fuzz corpus $$t"; \
	    $(BUILD)/tests/fuzz_replay_$$t harness/fuzz/corpus/$$t; done

# Each fuzz target without libFuzzer (harness/fuzz/replay.c): its checked-in corpus replayed.
$(BUILD)/tests/fuzz_replay_%: harness/fuzz/replay.c harness/fuzz/fuzz_%.c $(LIB_OBJ) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -o $@ harness/fuzz/replay.c harness/fuzz/fuzz_$*.c \
	    $(LIB_OBJ) $(PKG_LIBS) -lm

# tests/: the server against real HTTP clients; drivers/tests: the plugin, grader, adapters
# and browsers against the real server (two workers: CI has two cores).
integration-tests: $(BUILD)/harness
	HARNESS_BIN=$(abspath $(BUILD)/harness) $(PYTHON) -m pytest -q -p no:cacheprovider tests
	HARNESS_BIN=$(abspath $(BUILD)/harness) $(PYTHON) -m pytest -q -p no:cacheprovider -n 2 \
	    drivers/tests

# The unit and server tests again with AddressSanitizer and UBSan (leaks fail the run: the
# server must exit 0 after freeing everything). gcc leaves float-cast-overflow out of
# "undefined": named here, a double too big for its integer fails the run as it does in
# the clang fuzz build.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined,float-cast-overflow \
             -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer
sanitizer-tests:
	$(MAKE) BUILD=$(BUILD)-asan CFLAGS="$(SAN_FLAGS)" harness unit-tests
	HARNESS_BIN=$(abspath $(BUILD)-asan/harness) $(PYTHON) -m pytest -q -p no:cacheprovider tests

check: deps deps-browsers
	$(MAKE) harness unit-tests
	$(MAKE) format-check
	$(MAKE) cycles
	$(MAKE) integration-tests
	$(MAKE) sanitizer-tests

# SCENARIOS: the folders or YAML files to run (default: the catalogue); RESULTS: where the
# reports go; JOBS: pytest-xdist workers (0: none); SHARD=K/N: the K-th of N balanced slices
# of the runs (--shard; make merge SHARDS="DIR1 DIR2 ..." puts the shards' RESULTS together
# into RESULTS); CONFORMANCE_ARGS: any other pytest or plugin option
# (drivers/comet_harness/README.md), e.g. "--client chromium -m sse".
SCENARIOS ?= scenarios
RESULTS ?= results
JOBS ?= 2
SHARD ?=
CONFORMANCE_ARGS ?=
conformance: deps deps-browsers
	$(MAKE) harness
	PYTHONPATH=drivers HARNESS_BIN=$(abspath $(BUILD)/harness) $(PYTHON) -m pytest \
	    -p no:cacheprovider -c drivers/pytest.ini --rootdir=. -p comet_harness.plugin \
	    --scenarios scenarios --results $(RESULTS) --junitxml=$(RESULTS)/junit.xml \
	    -n $(JOBS) $(if $(SHARD),--shard $(SHARD) )$(CONFORMANCE_ARGS) $(SCENARIOS)

SHARDS ?=
REPORT_URL ?=
merge: deps
	PYTHONPATH=drivers $(PYTHON) -m comet_harness.merge --results $(RESULTS) \
	    $(if $(REPORT_URL),--report-url $(REPORT_URL)) $(SHARDS)

# A Selenium Grid 4 standalone on loopback for the webdriver adapter's grid-chrome and
# grid-webkit clients (grid/grid.py: Debian's Chromium through chromedriver, WebKitGTK
# through a relay to WebKitWebDriver under an Xvfb; nothing downloaded). State and logs in
# build/grid. Port 4444 (grid/grid.py) unless GRID_PORT=N; another port needs the --url of
# those clients changed.
GRID_PORT ?=
.PHONY: grid grid-stop
grid:
	@scripts/ensure-deps grid
	$(PYTHON) grid/grid.py start $(if $(GRID_PORT),--port $(GRID_PORT))

grid-stop:
	$(PYTHON) grid/grid.py stop

# Speed and scale figures (not a test), side by side with nginx on the same loads (and
# Mountebank and WireMock with BENCH_PEERS=all): results/bench/bench.{json,md}, cdf-*.png.
# Installs what it needs itself (never make check). BENCH_ARGS=--quick: a ~30 s smoke run.
BENCH_ARGS  ?=
BENCH_PEERS ?=
bench-deps:
	@scripts/ensure-deps $(if $(filter all,$(BENCH_PEERS)),bench-peers $(BUILD)/bench-peers,bench)

$(BUILD)/bench/burst: bench/burst.c
	mkdir -p $(BUILD)/bench
	$(CC) -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o $@ $<

# libmicrohttpd alone with the harness's daemon options (bench/bare_mhd.c): what MHD can do.
$(BUILD)/bench/bare_mhd: bench/bare_mhd.c
	mkdir -p $(BUILD)/bench
	$(CC) -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o $@ $< -lmicrohttpd

bench: bench-deps $(BUILD)/harness $(BUILD)/bench/burst $(BUILD)/bench/bare_mhd
	$(PYTHON) bench/bench.py --burst $(abspath $(BUILD)/bench/burst) \
	    $(if $(filter all,$(BENCH_PEERS)),--peers all --peers-dir $(abspath $(BUILD)/bench-peers)) \
	    $(BENCH_ARGS) $(abspath $(BUILD)/harness)

# libFuzzer (clang), every harness/fuzz/fuzz_NAME.c (make fuzz-NAME runs one): the WebSocket
# frame parser (ws_frame), the scenario loader from text (scenario), the template engine
# (tmpl). Each runs FUZZ_SECONDS, or FUZZ_RUNS inputs when that is set, and fails at its first
# crash (the input is left as $(BUILD)/fuzz/NAME-crash-*; make -k fuzz goes on with the rest). New inputs go to $(BUILD)/fuzz/corpus/NAME,
# seeded by harness/fuzz/corpus/NAME (checked in, replayed by unit-tests) and NAME.dict.
# Refresh a checked-in corpus (a few hundred inputs of at most 64 KiB) by merging it and the
# new inputs into an empty folder NEW (-use_counters=0 keeps fewer), then replacing it by NEW:
#   $(BUILD)/fuzz/fuzz_NAME -merge=1 NEW harness/fuzz/corpus/NAME $(BUILD)/fuzz/corpus/NAME
# A crash not fixed yet goes, minimised (-minimize_crash=1), to harness/fuzz/crashers/NAME
# (never replayed); the fix moves it into the corpus.
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_FLAGS   ?=
FUZZ_MAXLEN_ws_frame := 4096
FUZZ_MAXLEN_scenario := 65536
FUZZ_MAXLEN_tmpl     := 4096
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ   := $(patsubst harness/src/%.c,$(BUILD)/fuzz/obj/%.o,$(LIB_SRC))
FUZZ_BIN   := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
.SECONDARY: $(FUZZ_OBJ) $(FUZZ_BIN)
# (fuzz-NAME is not .PHONY: make does not look up pattern rules for phony targets.)
fuzz: $(patsubst %,fuzz-%,$(FUZZ_TARGETS))
fuzz-%: $(BUILD)/fuzz/fuzz_%
	mkdir -p $(BUILD)/fuzz/corpus/$*
	$< $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS)) \
	    -max_len=$(FUZZ_MAXLEN_$*) -timeout=10 -rss_limit_mb=2048 \
	    $(if $(wildcard harness/fuzz/$*.dict),-dict=harness/fuzz/$*.dict) \
	    -artifact_prefix=$(BUILD)/fuzz/$*- $(FUZZ_FLAGS) $(BUILD)/fuzz/corpus/$* harness/fuzz/corpus/$*

# The modules instrumented for coverage and sanitized; each target links all of them.
$(BUILD)/fuzz/obj/%.o: harness/src/%.c $(wildcard harness/src/*.h)
	@mkdir -p $(BUILD)/fuzz/obj
	clang $(CPPFLAGS) -std=c11 -g -O1 -pthread -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
	    $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/fuzz/fuzz_%: harness/fuzz/fuzz_%.c $(FUZZ_OBJ)
	clang $(CPPFLAGS) -std=c11 -g -O1 -pthread -fsanitize=fuzzer $(FUZZ_SAN) $(PKG_CFLAGS) \
	    -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS) -lm

format:
	clang-format -i $(wildcard harness/src/*.[ch] harness/tests/*.[ch] harness/fuzz/*.[ch])

format-check:
	clang-format --dry-run --Werror $(wildcard harness/src/*.[ch] harness/tests/*.[ch] harness/fuzz/*.[ch])
	$(PYTHON) -m pyflakes drivers/comet_harness drivers/adapters drivers/tests tests bench

# The module graph of harness/src (x.c with x.h is one module); fails on an include cycle.
cycles:
	$(PYTHON) scripts/module-graph harness/src

clean:
	rm -rf $(BUILD) $(BUILD)-asan

# -- install, package, man pages -------------------------------------------------------
#
# make install PREFIX=/usr/local DESTDIR=  puts:
#   BINDIR/harness, MANDIR/man1/harness.1, MANDIR/man7/comet-harness.7
#   DATADIR/scenarios (the catalogue), DATADIR/drivers (the comet_harness package, the
#     adapters, clients.yaml, expectations/, schema/, package.json and its lock),
#     DOCDIR (README and docs/)
#   PYTHONDIR/comet_harness-VERSION.dist-info (METADATA, the pytest11 entry point) and
#     comet_harness.pth (DATADIR/drivers on sys.path): packaging/dist-info
# The package sits beside the adapters and registry it finds relative to its own files,
# and DATADIR/build/harness links to BINDIR/harness, the binary it runs by default.
# DATADIR is replaced as a whole: files a new version no longer has do not linger.
# WITH_NODE_MODULES=1 also copies drivers/node_modules (`make deps` fetches it, ~60 MB):
# the Node packages the browser and Node clients need; without it, run `npm ci` in
# DATADIR/drivers to use those clients.
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
DATADIR   ?= $(PREFIX)/share/comet-harness
DOCDIR    ?= $(PREFIX)/share/doc/comet-harness
# Debian's python3 reads /usr/lib/python3/dist-packages, and /usr/local/lib/python3.X/...
PYVER      = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYVER)/dist-packages)
HARNESS_VERSION := $(shell sed -n 's/^\#define HARNESS_VERSION "\(.*\)"$$/\1/p' harness/src/version.h)
MAN_PAGES := man/harness.1 man/comet-harness.7
DRIVERS_FILES = comet_harness adapters schema expectations clients.yaml package.json \
                package-lock.json pytest.ini $(if $(WITH_NODE_MODULES),node_modules)

install: $(BUILD)/harness
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(DOCDIR) $(DESTDIR)$(PYTHONDIR)
	install -m 755 $(BUILD)/harness $(DESTDIR)$(BINDIR)/harness
	install -m 644 man/harness.1 $(DESTDIR)$(MANDIR)/man1/harness.1
	install -m 644 man/comet-harness.7 $(DESTDIR)$(MANDIR)/man7/comet-harness.7
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)
	rm -rf $(DESTDIR)$(DATADIR)
	install -d $(DESTDIR)$(DATADIR)/drivers $(DESTDIR)$(DATADIR)/build
	tar -C . -cf - scenarios | tar -C $(DESTDIR)$(DATADIR) --no-same-owner -xf -
	tar -C drivers --exclude=__pycache__ --exclude=.stamp -cf - $(DRIVERS_FILES) \
	    | tar -C $(DESTDIR)$(DATADIR)/drivers --no-same-owner -xf -
	ln -sfn "$$(realpath -m --relative-to=$(DATADIR)/build $(BINDIR)/harness)" \
	    $(DESTDIR)$(DATADIR)/build/harness
	rm -rf $(DESTDIR)$(PYTHONDIR)/comet_harness-*.dist-info
	$(PYTHON) packaging/dist-info --version $(HARNESS_VERSION) --sitedir $(DESTDIR)$(PYTHONDIR) \
	    --package-dir $(DESTDIR)$(DATADIR)/drivers

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/harness $(DESTDIR)$(MANDIR)/man1/harness.1 \
	    $(DESTDIR)$(MANDIR)/man7/comet-harness.7 $(DESTDIR)$(PYTHONDIR)/comet_harness.pth
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(PYTHONDIR)/comet_harness-*.dist-info

# The Debian package: a PREFIX=/usr install staged under DEBDIR, then packaging/build-deb
# (the control file's Depends come from dpkg-shlibdeps on the binary). DEBDIR=dir puts
# the staging tree and the .deb elsewhere.
DEBDIR ?= $(BUILD)
deb: $(BUILD)/harness
	rm -rf $(DEBDIR)/deb-stage
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(abspath $(DEBDIR))/deb-stage/debian/comet-harness
	packaging/build-deb $(HARNESS_VERSION) $(DEBDIR)/deb-stage $(DEBDIR)

# The man pages rendered as text (groff warnings fail): $(BUILD)/man/NAME.txt.
man: $(MAN_PAGES)
	mkdir -p $(BUILD)/man
	@set -e; for p in $(MAN_PAGES); do \
	    out=$(BUILD)/man/$$(basename $$p).txt; \
	    groff -ww -man -Tutf8 -P-cbou $$p > $$out 2> $$out.err; \
	    if [ -s $$out.err ]; then cat $$out.err >&2; exit 1; fi; rm -f $$out.err; \
	    echo "$$out"; done

-include $(wildcard $(BUILD)/obj/*.d)
