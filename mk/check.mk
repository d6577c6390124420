# mk/check.mk -- the long-running checks; included at the end of the Makefile
# (`include mk/check.mk`).
#
#   make stress        writers killed again and again, with SIGKILL at random
#                      moments and at the engine's named kill points, each
#                      kill checked against an expected-state record
#                      (tests/stress/stress_kill.c); STRESS_SECONDS in all
#                      (default 300). Builds build-kp/ with -DTOME_KILLPOINTS.
#                      STRESS_FLAGS: more options (-m sigkill|killpoint|ring,
#                      -r SEED, -d DIR to keep the stores, -v).
#   make fuzz          every libFuzzer target fuzz/fuzz_*.c for FUZZ_SECONDS
#                      each (default 60), built with clang and ASan + UBSan
#                      against a library built the same way in build-fuzz/.
#                      The corpus grows in build-fuzz/corpus/<target> (the
#                      committed fuzz/corpus/<target> is read, not written);
#                      each target's closing line gives its executions and
#                      coverage (libFuzzer's cov:). A failure stops the run
#                      with the input in build-fuzz/crash-<target>-*.
#                      FUZZ_FLAGS: more libFuzzer flags, e.g. "-fork=1
#                      -ignore_crashes=1" to go on past failing inputs (each
#                      is saved; the closing lines count them).
#   make fuzz-corpus   folds build-fuzz/corpus/<target> into fuzz/corpus/<target>,
#                      keeping only inputs that add coverage (-merge=1), to be
#                      committed: `make test` replays fuzz/corpus.
#   make fuzz-run      build/fuzz/run_<target>: a target's fuzz_one over input
#                      files, with the ordinary compiler (reproducing a crash;
#                      run_open -unpack DIR INPUT writes the store to DIR).
#   make fuzz-seeds    rewrites the seed inputs fuzz/corpus/*/seed-* with
#                      fuzz/mkcorpus.c (after a change of the input formats).
#
# Fuzzing needs clang with libFuzzer; on Debian:
#   apt-get install -y clang libclang-rt-14-dev

STRESS_SECONDS ?= 300
STRESS_FLAGS   ?=
FUZZ_SECONDS   ?= 60
FUZZ_FLAGS     ?=
FUZZ_CC        ?= clang
FUZZ_BUILD     := build-fuzz
FUZZ_TARGETS   := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CHECK_CFLAGS    = $(CSTD) $(WARN) -O2 -g -pthread -Iinclude -Isrc

.PHONY: stress fuzz fuzz-corpus fuzz-run fuzz-seeds

# Test binaries that compile more than their own .c file.
$(BUILD)/tests/test_fuzz_replay: $(wildcard fuzz/*.c)
$(BUILD)/tests/test_serial: tests/stress/ring.h

# ---- stress ----------------------------------------------------------------

stress:
	@nm build-kp/libtome.a 2>/dev/null | grep -q ' T tome_killpoint$$' || rm -rf build-kp
	@$(MAKE) --no-print-directory BUILD=build-kp SANITIZE= EXTRA_CFLAGS=-DTOME_KILLPOINTS build-kp/libtome.a
	@mkdir -p build-kp/stress
	$(CC) $(CHECK_CFLAGS) -DTOME_KILLPOINTS -o build-kp/stress/stress_kill tests/stress/stress_kill.c \
	    tests/common/files.c tests/common/tt.c build-kp/libtome.a -pthread
	build-kp/stress/stress_kill -s $(STRESS_SECONDS) $(STRESS_FLAGS)

# ---- fuzz ------------------------------------------------------------------

fuzz:
	@mkdir -p $(FUZZ_BUILD)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > $(FUZZ_BUILD)/probe.c
	@$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_BUILD)/probe.c -o $(FUZZ_BUILD)/probe >/dev/null 2>&1 || { \
	    echo "make fuzz: '$(FUZZ_CC) -fsanitize=fuzzer' does not link: install clang and libFuzzer"; \
	    echo "           (Debian: apt-get install -y clang libclang-rt-14-dev), or set FUZZ_CC"; exit 1; }
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SANITIZE= \
	    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(FUZZ_BUILD)/libtome.a
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "$(FUZZ_CC) ... -o $(FUZZ_BUILD)/fuzz_$$t fuzz/fuzz_$$t.c fuzz/libfuzzer_main.c"; \
	    $(FUZZ_CC) $(CHECK_CFLAGS) -O1 -fsanitize=fuzzer $(FUZZ_SAN) -o $(FUZZ_BUILD)/fuzz_$$t \
	        fuzz/fuzz_$$t.c fuzz/libfuzzer_main.c $(FUZZ_BUILD)/libtome.a; \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s (log: $(FUZZ_BUILD)/fuzz_$$t.log)"; \
	    if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 \
	            -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- $(FUZZ_FLAGS) \
	            $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	        grep -v '^#' $(FUZZ_BUILD)/fuzz_$$t.log | tail -n 60; \
	        echo "fuzz_$$t FAILED: the input is in $(FUZZ_BUILD)/crash-$$t-*; replay it with make fuzz-run"; \
	        exit 1; \
	    fi; \
	    grep -E '^#[0-9]+' $(FUZZ_BUILD)/fuzz_$$t.log | head -n 1 | sed "s/^/  fuzz_$$t first: /"; \
	    grep -E '^#[0-9]+' $(FUZZ_BUILD)/fuzz_$$t.log | tail -n 1 | sed "s/^/  fuzz_$$t last:  /"; \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
	        $(FUZZ_BUILD)/fuzz_$$t.log | sed "s/^/  fuzz_$$t /"; \
	    n=$$(ls $(FUZZ_BUILD)/crash-$$t-* 2>/dev/null | wc -l); \
	    if [ "$$n" -gt 0 ]; then echo "  fuzz_$$t: $$n failing inputs in $(FUZZ_BUILD)/crash-$$t-* (replay: make fuzz-run)"; fi; \
	done

fuzz-corpus:
	@set -e; for t in $(FUZZ_TARGETS); do \
	    test -x $(FUZZ_BUILD)/fuzz_$$t || { echo "run make fuzz first"; exit 1; }; \
	    $(FUZZ_BUILD)/fuzz_$$t -merge=1 fuzz/corpus/$$t $(FUZZ_BUILD)/corpus/$$t 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files'; \
	done

fuzz-run: $(BUILD)/libtome.a
	@mkdir -p $(BUILD)/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "$(CC) ... -o $(BUILD)/fuzz/run_$$t"; \
	    $(CC) $(CHECK_CFLAGS) -o $(BUILD)/fuzz/run_$$t fuzz/run_main.c fuzz/fuzz_$$t.c $(BUILD)/libtome.a $(LDFLAGS); \
	done

fuzz-seeds: $(BUILD)/libtome.a
	@mkdir -p $(BUILD)/fuzz fuzz/corpus/open fuzz/corpus/ops
	$(CC) $(CHECK_CFLAGS) -o $(BUILD)/fuzz/mkcorpus fuzz/mkcorpus.c fuzz/fuzz_open.c $(BUILD)/libtome.a $(LDFLAGS)
	$(BUILD)/fuzz/mkcorpus fuzz/corpus
