# Comet Harness — top-level build.
#
#   make check        install what is missing, build, run every test
#   make conformance  install what is missing, run the catalogue against the default clients
#   make harness      build the server binary only ($(BUILD)/harness)
#
# Every harness/src/*.c is a module linked into the binary (main.c holds main());
# every harness/tests/test_*.c is a cmocka program linked against the modules.
# BUILD=dir puts all outputs elsewhere (parallel builds of one tree use different dirs).

BUILD    ?= build
CC       ?= cc
PYTHON   := /usr/bin/python3
PKGS     := libmicrohttpd yaml-0.1 jansson nettle
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
FUZZ_SRC := $(wildcard harness/fuzz/fuzz_*.c)

.PHONY: all harness deps deps-browsers check unit-tests integration-tests sanitizer-tests \
        conformance format format-check bench bench-deps fuzz clean

all: harness

harness: $(BUILD)/harness

deps:
	@scripts/ensure-deps base

deps-browsers:
	@scripts/ensure-deps browsers

$(BUILD)/obj/%.o: harness/src/%.c $(wildcard harness/src/*.h) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -MMD -c -o $@ $<

$(BUILD)/harness: $(BUILD)/obj/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/%: harness/tests/%.c $(LIB_OBJ) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -Iharness/tests -o $@ $< $(LIB_OBJ) \
	    $(PKG_LIBS) $(shell pkg-config --libs cmocka) -lm

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

unit-tests: $(TEST_BIN) $(BUILD)/tests/fuzz_replay
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; (cd harness/tests && ../../$$t); done
	$(BUILD)/tests/fuzz_replay harness/fuzz/corpus

# The fuzz target without libFuzzer (harness/fuzz/replay.c): the checked-in corpus replayed.
$(BUILD)/tests/fuzz_replay: harness/fuzz/replay.c harness/fuzz/fuzz_ws_frame.c $(LIB_OBJ) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ harness/fuzz/replay.c harness/fuzz/fuzz_ws_frame.c \
	    $(LIB_OBJ) $(PKG_LIBS) -lm

# tests/: the server against real HTTP clients; drivers/tests: the plugin, grader, adapters
# and browsers against the real server (two workers: CI has two cores).
integration-tests: $(BUILD)/harness
	HARNESS_BIN=$(abspath $(BUILD)/harness) $(PYTHON) -m pytest -q -p no:cacheprovider tests
	HARNESS_BIN=$(abspath $(BUILD)/harness) $(PYTHON) -m pytest -q -p no:cacheprovider -n 2 \
	    drivers/tests

# The unit and server tests again with AddressSanitizer and UBSan (leaks fail the run: the
# server must exit 0 after freeing everything).
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
sanitizer-tests:
	$(MAKE) BUILD=$(BUILD)-asan CFLAGS="$(SAN_FLAGS)" harness unit-tests
	HARNESS_BIN=$(abspath $(BUILD)-asan/harness) $(PYTHON) -m pytest -q -p no:cacheprovider tests

check: deps deps-browsers
	$(MAKE) harness unit-tests
	$(MAKE) format-check
	$(MAKE) integration-tests
	$(MAKE) sanitizer-tests

CONFORMANCE_ARGS ?= -n 2
conformance: deps deps-browsers
	$(MAKE) harness
	PYTHONPATH=drivers HARNESS_BIN=$(abspath $(BUILD)/harness) $(PYTHON) -m pytest \
	    -p no:cacheprovider -c drivers/pytest.ini --rootdir=. -p comet_harness.plugin \
	    --scenarios scenarios --results results --junitxml=results/junit.xml \
	    $(CONFORMANCE_ARGS) scenarios

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

bench: bench-deps $(BUILD)/harness $(BUILD)/bench/burst
	$(PYTHON) bench/bench.py --burst $(abspath $(BUILD)/bench/burst) \
	    $(if $(filter all,$(BENCH_PEERS)),--peers all --peers-dir $(abspath $(BUILD)/bench-peers)) \
	    $(BENCH_ARGS) $(abspath $(BUILD)/harness)

# libFuzzer (clang): the WebSocket frame parser. FUZZ_SECONDS bounds the run. New inputs go
# to $(BUILD)/fuzz/corpus; harness/fuzz/corpus (checked in, replayed by unit-tests) seeds it.
# Refresh it with: $(BUILD)/fuzz/fuzz_ws_frame -merge=1 harness/fuzz/corpus $(BUILD)/fuzz/corpus
FUZZ_SECONDS ?= 60
fuzz: $(BUILD)/fuzz/fuzz_ws_frame
	mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_ws_frame -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    $(BUILD)/fuzz/corpus harness/fuzz/corpus

# The target links what it needs of the modules (the frame codec and its allocator).
FUZZ_SRC := harness/src/ws_frame.c harness/src/xalloc.c
$(BUILD)/fuzz/fuzz_ws_frame: harness/fuzz/fuzz_ws_frame.c $(FUZZ_SRC) $(wildcard harness/src/*.h)
	mkdir -p $(BUILD)/fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iharness/src -o $@ \
	    harness/fuzz/fuzz_ws_frame.c $(FUZZ_SRC)

format:
	clang-format -i $(wildcard harness/src/*.[ch] harness/tests/*.[ch] harness/fuzz/*.[ch])

format-check:
	clang-format --dry-run --Werror $(wildcard harness/src/*.[ch] harness/tests/*.[ch] harness/fuzz/*.[ch])
	$(PYTHON) -m pyflakes drivers/comet_harness drivers/adapters drivers/tests tests bench

clean:
	rm -rf $(BUILD) $(BUILD)-asan

-include $(wildcard $(BUILD)/obj/*.d)
