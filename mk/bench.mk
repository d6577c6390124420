# mk/bench.mk -- the peer benchmark of issue 5 (included by the Makefile).
#
#   make bench-peers          installs the peer libraries if their headers are
#                             missing (bench/install-deps.sh, needs root), builds
#                             $(BUILD)/bench/peers and runs bench/run.sh: every
#                             engine and workload, then bench/RESULTS.md and
#                             bench/results.png (under 15 minutes)
#   make bench-peers PEERS_ARGS="-w read-hit -e tome,lmdb"
#                             one workload / some engines; partial runs write to
#                             $(BUILD)/bench/peers-out/ instead of bench/
#   make peers                only build $(BUILD)/bench/peers
#
# The sources live in bench/peers/ so that the generic rule
# $(BUILD)/bench/%: bench/%.c (linked with libtome only) never sees them.

PEERS_SRC  := $(sort $(wildcard bench/peers/*.c))
PEERS_HDR  := $(wildcard bench/peers/*.h)
PEERS_LIBS := -llmdb -lsqlite3 -lleveldb -lrocksdb -ltkrzw -lm
PEERS_HEADERS := /usr/include/lmdb.h /usr/include/sqlite3.h /usr/include/leveldb/c.h \
                 /usr/include/rocksdb/c.h /usr/include/tkrzw_langc.h
PEERS_ARGS ?=

.PHONY: bench-peers peers peers-deps

peers-deps:
	@for h in $(PEERS_HEADERS); do test -f $$h || { sh bench/install-deps.sh; break; }; done
	@command -v gnuplot >/dev/null 2>&1 || sh bench/install-deps.sh

$(BUILD)/bench/peers: $(PEERS_SRC) $(PEERS_HDR) $(BUILD)/libtome.a | peers-deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(PEERS_SRC) $(BUILD)/libtome.a $(PEERS_LIBS) $(LDFLAGS)

peers: $(BUILD)/bench/peers

bench-peers: $(BUILD)/bench/peers
	BUILD=$(BUILD) sh bench/run.sh $(PEERS_ARGS)
