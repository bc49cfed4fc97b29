# pgtally: the two quick-start commands are `make demo` and `make test`.
# Every target installs what it needs first (scripts/install-deps.sh, apt-get, idempotent).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MESON_OPTS ?=

.PHONY: all deps build build-asan test test-release test-asan test-repeat demo fuzz bench clean \
	format

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja: | deps
	CC=clang meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dbuildtype=debug $(MESON_OPTS)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# The whole suite: release build and sanitizer build, real Postgres, real clients.
# Ends with the line "N passed, N failed".
test: build build-asan
	scripts/run-tests.sh $(BUILD) $(ASAN_BUILD)

# The whole suite REPEAT times in a row (default 20) under background CPU load (stress-ng,
# one worker per core), stopping at the first failure: timing-dependent failures surface.
# MESON_TEST_ARGS narrows it, e.g. `make test-repeat REPEAT=3 MESON_TEST_ARGS=integration_tls`.
REPEAT ?= 20
test-repeat: build build-asan
	REPEAT=$(REPEAT) scripts/test-repeat.sh $(BUILD) $(ASAN_BUILD)

demo: build
	scripts/demo.sh $(BUILD)

$(FUZZ_BUILD)/build.ninja: | deps
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Dbuildtype=debugoptimized \
	  -Db_sanitize=address,undefined -Db_lundef=false $(MESON_OPTS)

# Long fuzzing runs (a short run of each target is part of `make test`). FUZZ_SECONDS,
# FUZZ_RUNS (stop each target after N executions) and FUZZ_JOBS (targets at once): scripts/fuzz.sh.
fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	scripts/fuzz.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-600}

# Benchmarks print medians and ratios; they assert nothing.
bench: build
	tests/bench/run-all.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
