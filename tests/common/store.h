/*
 * store.h -- small helpers shared by the contract tests of the core API
 * (test_api, test_txn, test_versions, test_merge): open a fresh store on disk
 * or in memory, put/remove/read one key in a transaction of its own, reopen,
 * read the newest sequence number, dump the whole visible state of a store
 * into a text that two states can be compared with, and a deterministic
 * pseudo-random generator. Every name starts with ts_. The helpers never use
 * the CHECK macros (they only work in the test case itself): they return
 * codes or booleans and print the detail of any surprise to stderr, so a
 * case writes CHECK(ts_has(...)) or CHECK_OK(ts_put(...)).
 */
#ifndef TOME_TEST_STORE_H
#define TOME_TEST_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../include/tome.h"

/* Room for a store path made by ts_new. */
#define TS_PATH_MAX 700

/* Kinds of store a case may run on. */
enum { TS_DIR = 0, TS_MEM = 1 };

/* True when TOME_TEST_SHORT is set (smaller loops, e.g. under valgrind). */
bool ts_short(void);

/* Deterministic 64-bit generator (splitmix64); *state is the seed. */
uint64_t ts_rand(uint64_t *state);
/* Fills buf with n bytes derived from seed (same seed, same bytes). */
void ts_fill(void *buf, size_t n, uint64_t seed);
/* Wall clock in milliseconds since the Unix epoch. */
uint64_t ts_now_ms(void);

/* Opens a new, empty store: TS_DIR makes a directory path "<tmpdir>/db" that
 * does not exist yet (so the open creates it); TS_MEM opens ":memory:".
 * path_out (TS_PATH_MAX bytes, may be NULL) receives the path. opts may be
 * NULL. Returns the handle, or NULL after printing why. */
tome_db *ts_new(int kind, char *path_out, const tome_options *opts);
/* tome_open that prints the failure and returns NULL on error. */
tome_db *ts_open(const char *path, const tome_options *opts);
/* Closes db (which must succeed) and opens path again. NULL on failure. */
tome_db *ts_reopen(tome_db *db, const char *path, const tome_options *opts);

/* One transaction that inserts (key,val) in slot and commits; returns the
 * code of the first call that failed, or of tome_commit. */
int ts_putm(tome_db *db, uint8_t slot, const void *key, size_t klen, const void *val, size_t vlen);
/* ts_putm with NUL-terminated key and value. */
int ts_put(tome_db *db, uint8_t slot, const char *key, const char *val);
/* One transaction that removes key from slot and commits. */
int ts_del(tome_db *db, uint8_t slot, const char *key);

/* Reads key in a transaction of its own with tome_get; true when the result
 * is `expect` (NULL: TOME_NOTFOUND expected). Prints a mismatch. */
bool ts_has(tome_db *db, uint8_t slot, const char *key, const char *expect);
/* The same for a read inside txn (no new transaction). */
bool ts_txn_has(tome_txn *txn, uint8_t slot, const char *key, const char *expect);

/* The newest sequence number (tome_last_seq), UINT64_MAX on failure. */
uint64_t ts_seq(tome_db *db);

/* Copies the versions of a key (read in a transaction of its own) into out
 * (room for cap); *n gets the count. Returns the code of tome_versions. */
int ts_versions(tome_db *db, uint8_t slot, const void *key, size_t klen,
                tome_version *out, size_t cap, size_t *n);

/* A key named for ts_dump. */
typedef struct ts_key {
    uint8_t slot;
    const char *key;
    size_t len;      /* bytes of key */
} ts_key;

/* Everything a transaction begun now can see, as text (malloc'd; free()):
 * the newest seq, the stats counts (keys, keys_total, versions, last_seq,
 * last_timestamp, horizon) when with_stats, the keys that every one of the
 * 256 slots iterates, and for each key in keys[0..n): its versions (seq,
 * timestamp, removed, committed), the value of every version, and the
 * results of tome_get and tome_get_unremoved. NULL on failure (printed). */
char *ts_dump(tome_db *db, const ts_key *keys, size_t n, bool with_stats);
/* The same for a tome_begin_at(seq) transaction, without stats; the text
 * starts with the code of tome_begin_at (and is only that on failure). */
char *ts_dump_at(tome_db *db, uint64_t seq, const ts_key *keys, size_t n);
/* True when a and b are both non-NULL and equal; otherwise prints the first
 * differing line under the label what. */
bool ts_same(const char *a, const char *b, const char *what);

/* Size in bytes of the files of the store directory dir whose names end in
 * ".log" or ".mrg" (segment files). */
uint64_t ts_segment_bytes(const char *dir);
/* True when dir/name exists. */
bool ts_file_exists(const char *dir, const char *name);
/* Removes dir/name; true on success. */
bool ts_unlink(const char *dir, const char *name);

#endif
