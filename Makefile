# tome -- plain GNU Make build.
#   make            build/libtome.a, build/libtome.so, build/tome
#   make test       build and run every test (tests/run.sh)
#   make test SANITIZE=1     the same under ASan + UBSan
#   make test SANITIZE=thread  under TSan
#   make valgrind   the test suite under valgrind
#   make clean

CC      ?= cc
SANITIZE ?=
O       ?= 2
BUILD   ?= build

WARN    = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-align \
          -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings \
          -Wformat=2 -Wundef -Wvla -Wno-unused-parameter
CSTD    = -std=c11 -D_GNU_SOURCE
CFLAGS_BASE = $(CSTD) $(WARN) -O$(O) -g -fPIC -pthread -Iinclude
ifeq ($(SANITIZE),1)
  CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDSAN = -fsanitize=address,undefined
  BUILD = build-san
else ifeq ($(SANITIZE),thread)
  CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer
  LDSAN = -fsanitize=thread
  BUILD = build-tsan
endif
CFLAGS  := $(CFLAGS_BASE) $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(LDSAN) $(EXTRA_LDFLAGS)

SONAME  = libtome.so.0
LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_OBJ  := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_COMMON := $(sort $(wildcard tests/common/*.c))

.PHONY: all test valgrind clean bench bench-kv stress fuzz
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
all: $(BUILD)/libtome.a $(BUILD)/libtome.so $(BUILD)/tome

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*/*.h) include/tome.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtome.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtome.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $(BUILD)/$(SONAME) $^ $(LDFLAGS)
	ln -sf $(SONAME) $@

$(BUILD)/tome: $(TOOL_SRC) $(BUILD)/libtome.a
	$(CC) $(CFLAGS) -o $@ $(TOOL_SRC) $(BUILD)/libtome.a $(LDFLAGS)

$(BUILD)/tests/%: tests/%.c $(TEST_COMMON) tests/tt.h $(BUILD)/libtome.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(TEST_COMMON) $(BUILD)/libtome.a $(LDFLAGS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libtome.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libtome.a $(LDFLAGS)

# The benchmarks (timing figures live here, never in tests).
bench: all $(BENCH_BIN)
	$(BUILD)/bench/core_bench
	$(BUILD)/bench/kv_bench

# The Lightning-like workload alone: tome_kv_write against a FilesystemStore-like store.
bench-kv: all $(BUILD)/bench/kv_bench
	$(BUILD)/bench/kv_bench

test: all $(TEST_BIN)
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)

valgrind: all $(TEST_BIN)
	@BUILD=$(BUILD) VALGRIND=1 sh tests/run.sh $(TEST_BIN)

clean:
	rm -rf build build-san build-tsan

# Long runs: `make stress` (kill loops, exhaustive fault points), `make fuzz`.
include mk/check.mk

FAULT_TESTS := test_faults test_oom test_powerloss
.PHONY: stress-faults
stress: stress-faults
stress-faults: all $(addprefix $(BUILD)/tests/,$(FAULT_TESTS))
	@set -e; for t in $(FAULT_TESTS); do TOME_FAULTS_FULL=1 $(BUILD)/tests/$$t; done

# The peer benchmark of issue 5 (needs the peers' -dev packages: bench/install-deps.sh).
include mk/bench.mk
bench: bench-peers
