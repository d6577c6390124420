/*
 * tome.h -- the public interface of tome, an embedded, versioned,
 * transactional key-value store.
 *
 * This header is the manual. Every function says what it does, who owns the
 * memory it returns and until when, which codes it returns and from which
 * threads it may be called. The contract it implements is fixed: names,
 * signatures, codes and semantics never change once released.
 *
 * Conventions (the whole API follows them):
 *   - Every function that can fail returns an int: 0 (TOME_OK) on success, a
 *     negative TOME_* code on failure. tome_strerror() names a code and
 *     tome_errmsg() gives the detail of the last failure.
 *   - Ownership: memory the store hands out through a transaction
 *     (values, version arrays, iterated keys) belongs to that transaction and
 *     stays valid until the transaction ends (tome_commit or tome_abort); the
 *     caller never frees it. Memory handed out by tome_kv_* functions and by
 *     tome_stats-like calls that say so belongs to the caller and is freed
 *     with tome_free(). Nothing else is ever the caller's to free.
 *   - A NULL pointer with length 0 is the empty key, value or prefix. A NULL
 *     pointer with a non-zero length is TOME_INVALID.
 *   - Threads: a tome_db is safe to share between threads. A tome_txn and its
 *     iterators are used by one thread at a time (they may move between
 *     threads if the caller serialises the hand-over).
 *
 * Data model: a key is a byte string that lives in one of 256 slots. Every
 * commit gets a sequence number (seq, strictly increasing, never reused) and
 * a millisecond timestamp (never decreasing). Every write adds a version; a
 * removal adds a "removed" version (the key goes to the trash, from where its
 * last value can still be read with tome_get_unremoved) until tome_merge
 * drops history.
 */
#ifndef TOME_H
#define TOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TOME_VERSION_MAJOR 0
#define TOME_VERSION_MINOR 1
#define TOME_VERSION_PATCH 0
#define TOME_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Return codes. Values never change once released.                          */
/* ------------------------------------------------------------------------ */

#define TOME_OK         0   /* success */
#define TOME_NOTFOUND  (-1) /* key absent, removed, or no such version; end of
                               an iteration. Never used for any other failure */
#define TOME_CONFLICT  (-2) /* commit refused: something this transaction read
                               was changed by a transaction that committed
                               after it began. Nothing was written; rerun it */
#define TOME_INVALID   (-3) /* bad argument */
#define TOME_TOOBIG    (-4) /* key or value larger than the store accepts */
#define TOME_IO        (-5) /* the operating system or the backend failed */
#define TOME_CORRUPT   (-6) /* stored data failed its checksum or format check
                               (other than a torn tail, which recovery drops) */
#define TOME_NOMEM     (-7) /* out of memory */
#define TOME_LOCKED    (-8) /* the store is open elsewhere */
#define TOME_READONLY  (-9) /* a write on a read-only handle or transaction */
#define TOME_MISUSE   (-10) /* the API was called in a wrong state */

/* The largest key and value, in bytes. Writing anything longer gives
 * TOME_TOOBIG when the write is staged; reading a longer key gives
 * TOME_NOTFOUND, since no such key can exist. */
#define TOME_MAX_KEY_LEN   65535u
#define TOME_MAX_VALUE_LEN (1u << 30)

typedef struct tome_db   tome_db;    /* an open store; safe to share between threads */
typedef struct tome_txn  tome_txn;   /* one transaction; one thread at a time */
typedef struct tome_iter tome_iter;  /* an iteration over keys inside a transaction */

/* Static English text for a code; never NULL. Unknown codes give
 * "unknown error". Thread-safe. */
const char *tome_strerror(int code);

/* Detail of the last failure of a call on `db` made by the calling thread,
 * or, with db == NULL, of the last failed tome_open in this thread. Never
 * NULL: "no error" when there is none. The text lives in thread-local
 * storage and stays valid until the next failing call on the same thread.
 * Each thread remembers the detail for the last few (8) handles it used. */
const char *tome_errmsg(tome_db *db);

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                       */
/* ------------------------------------------------------------------------ */


enum { TOME_SYNC_FULL = 0, TOME_SYNC_NONE = 1 };

typedef struct tome_options {
    /* TOME_SYNC_FULL (default): tome_commit returns only once the commit
     * would survive power loss (an fdatasync of the log; an fsync of the
     * directory whenever a file is created, renamed or removed).
     * TOME_SYNC_NONE: commits are left to the operating system. A process
     * crash loses nothing; a machine crash may lose the newest commits, but
     * never corrupts the store and never keeps a commit while losing an
     * earlier one. tome_sync() makes everything so far durable. */
    int sync;
    /* Open without writing: every write gives TOME_READONLY, no file is
     * created or changed, recovery does not repair a torn tail (it only
     * ignores it). A read-only open still takes the store's lock. 0 (default)
     * or 1. */
    int read_only;
    /* Do not create the store when it is missing: tome_open gives
     * TOME_NOTFOUND instead. 0 (default: create) or 1. */
    int must_exist;
    /* Size at which the log rolls over to a new segment file, in bytes.
     * 0 means the default (64 MiB). A commit larger than this gets a segment
     * of its own. */
    uint64_t segment_size;
    /* History kept by tome_merge, beyond the newest version of each key:
     * history_versions: keep the newest N versions at or before the merge
     *                   horizon for each key (0 or 1: only the newest).
     * history_ms:       keep every version that was still current less than
     *                   this many milliseconds before the merge, so that
     *                   tome_begin_at() works for every commit of that
     *                   period (0: none).
     * Both default to 0: a merge keeps only the newest version of each key
     * and empties the trash. */
    uint32_t history_versions;
    uint64_t history_ms;
} tome_options;

/* Fills *opts with the defaults. Never fails. */
void tome_options_init(tome_options *opts);

/* Opens (creating it if missing) the store at `path`, a directory that tome
 * owns (it holds the segment files of the log, an index file and a lock
 * file). `opts` may be NULL for the defaults. ":memory:" opens a new store
 * that lives in memory only; each such handle is its own store.
 * On success *db_out is the new handle; on failure *db_out is set to NULL.
 * Opening recovers: it reads the log to the last complete commit and cuts a
 * torn or garbage tail off (see docs/FORMAT.md).
 * Returns TOME_OK, TOME_INVALID (NULL path or db_out, bad option),
 * TOME_NOTFOUND (must_exist and no store), TOME_LOCKED (the store is open
 * in this or another process), TOME_CORRUPT (damage before the tail),
 * TOME_IO, TOME_NOMEM. Details: tome_errmsg(NULL). Thread-safe. */
int tome_open(const char *path, const tome_options *opts, tome_db **db_out);

/* Makes every commit so far durable (useful with TOME_SYNC_NONE).
 * Returns TOME_OK, TOME_INVALID (NULL db), TOME_IO (the sync failed: the
 * handle then refuses every further write with TOME_IO until reopened).
 * Thread-safe. */
int tome_sync(tome_db *db);

/* Closes the handle: makes every commit durable, writes the index file that
 * speeds up the next open, releases the lock and frees the handle.
 * With transactions of this handle still open it returns TOME_MISUSE and
 * the handle stays open (close it again once they end). On TOME_IO the
 * handle is freed all the same (the failure concerns durability of the last
 * commits, which the next open recovers to what reached the disk).
 * NULL is a no-op returning TOME_OK. Must not race with other calls on the
 * same handle. */
int tome_close(tome_db *db);

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct tome_version {
    uint64_t seq;        /* commit sequence number: one per commit, strictly
                            increasing in commit order, never reused */
    uint64_t timestamp;  /* commit time, ms since the Unix epoch; never
                            decreases from one commit to the next */
    bool     removed;    /* this version is a removal (moved to the trash) */
    bool     committed;  /* false only for the transaction's own pending
                            write, which has seq 0 */
} tome_version;

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

/* Begins a transaction: a snapshot of every commit made before this call.
 * Reads are cached and writes buffered in memory until tome_commit.
 * Returns TOME_OK, TOME_INVALID, TOME_NOMEM, TOME_MISUSE (handle closing).
 * Thread-safe: any number of transactions may be open at once. */
int tome_begin(tome_db *db, tome_txn **txn_out);

/* Begins a read-only transaction that sees exactly the commits with
 * sequence number <= seq ("time travel"); seq 0 is the empty store before
 * the first commit. Writes in it give TOME_READONLY.
 * Returns TOME_OK; TOME_NOTFOUND when 0 < seq < the history horizon (the
 * newest commit at the time of the last tome_merge, or older when options
 * keep history); TOME_INVALID when seq is newer than the newest commit;
 * TOME_NOMEM. Thread-safe. */
int tome_begin_at(tome_db *db, uint64_t seq, tome_txn **txn_out);

/* Commits and ends the transaction; txn is freed whatever this returns.
 * Returns TOME_OK: every write is durable (per the sync option) and visible
 * to transactions that begin afterwards. A transaction without writes
 * always commits with TOME_OK.
 * TOME_CONFLICT: a transaction that committed after this one began wrote a
 * key this one read (point reads, tome_versions) or changed the set of keys
 * one of its iterations returned (created a key in the prefix, or removed
 * one that was present). Nothing was written; rerun the transaction.
 * TOME_IO: writing or syncing the log failed. If the write itself failed,
 * nothing was written. If the sync failed, the outcome is unknown until the
 * store is reopened (then the transaction is wholly present or wholly
 * absent). Either way the handle refuses further writes with TOME_IO: a
 * failed sync is never retried and trusted.
 * TOME_READONLY (read-only handle), TOME_NOMEM, TOME_INVALID (NULL).
 * On every error none of the writes is visible through this handle. */
int tome_commit(tome_txn *txn);

/* tome_commit with flags. TOME_COMMIT_NOSYNC: do not wait for this commit
 * to be durable (as with TOME_SYNC_NONE, for this commit only): it may be
 * lost in a machine crash, but only together with every later commit, since
 * any later synced commit also makes it durable. Codes as tome_commit. */
#define TOME_COMMIT_NOSYNC 0x1u
int tome_commit_ex(tome_txn *txn, unsigned flags);

/* Ends the transaction, dropping its writes; frees txn. NULL is a no-op. */
void tome_abort(tome_txn *txn);

/* ------------------------------------------------------------------------ */
/* Reading and writing inside a transaction                                  */
/* ------------------------------------------------------------------------ */
/* Every read joins the transaction's read set (see tome_commit). The memory
 * returned through val_out, versions_out and key_out belongs to the
 * transaction and stays valid until it ends. Values are verified against
 * their checksum when read: a mismatch gives TOME_CORRUPT. */

/* The newest version of the key visible to the transaction (its own pending
 * write first). TOME_NOTFOUND if the key was never written or that version is
 * a removal. Also TOME_INVALID (NULL txn/out pointers, NULL key with a length),
 * TOME_CORRUPT, TOME_IO, TOME_NOMEM, TOME_MISUSE (iterations open on
 * another thread are not a misuse; a finished transaction is). */
int tome_get(tome_txn *txn, uint8_t slot, const void *key, size_t key_len,
             const void **val_out, size_t *val_len_out);

/* The newest visible version that is not a removal: a removed value can be
 * read back from the trash. TOME_NOTFOUND only if no such version is held
 * (never written, or emptied by a merge). Other codes as tome_get. */
int tome_get_unremoved(tome_txn *txn, uint8_t slot, const void *key, size_t key_len,
                       const void **val_out, size_t *val_len_out);

/* The value of the key's version with sequence number `seq`; seq 0 reads
 * the transaction's own pending write. TOME_NOTFOUND if the key has no such
 * visible version or it is a removal. Other codes as tome_get. */
int tome_get_version(tome_txn *txn, uint8_t slot, const void *key, size_t key_len,
                     uint64_t seq, const void **val_out, size_t *val_len_out);

/* The key's versions visible to the transaction, oldest first, then its
 * pending write, if any (committed = false, seq = 0, timestamp = the time the
 * transaction began, never earlier than the newest commit it sees).
 * A key never written gives TOME_OK with count 0 (and *versions_out NULL).
 * Versions older than the history horizon are not shown except the one that
 * was current at the horizon (see tome_merge). */
int tome_versions(tome_txn *txn, uint8_t slot, const void *key, size_t key_len,
                  const tome_version **versions_out, size_t *count_out);

/* If the transaction has pending writes, the time it began (as in
 * tome_versions); otherwise the timestamp of the newest commit visible to
 * it, and TOME_NOTFOUND if it sees no commit. */
int tome_last_updated(tome_txn *txn, uint64_t *timestamp_out);

/* Stages a new value for the key, superseding older versions; the data is
 * copied. A later write of the same key in this transaction replaces it.
 * TOME_TOOBIG (key > TOME_MAX_KEY_LEN or value > TOME_MAX_VALUE_LEN) and
 * TOME_INVALID stage nothing and leave the transaction usable.
 * TOME_READONLY in a tome_begin_at transaction or on a read-only handle. */
int tome_insert(tome_txn *txn, uint8_t slot, const void *key, size_t key_len,
                const void *val, size_t val_len);

/* Stages a removal ("moves the key to the trash"); succeeds whether or not
 * the key exists. Codes as tome_insert. */
int tome_remove(tome_txn *txn, uint8_t slot, const void *key, size_t key_len);

/* Opens an iteration over the keys of `slot` that start with `prefix` and
 * whose newest version visible to the transaction is not a removal,
 * including the transaction's pending writes as they are when the iteration
 * is opened, in ascending bytewise order, each once. The slot and prefix
 * join the read set. The iterator must be closed before the transaction
 * ends (tome_commit/tome_abort close any still open, after which the
 * iterator pointer must not be used). */
int tome_iter_open(tome_txn *txn, uint8_t slot, const void *prefix, size_t prefix_len,
                   tome_iter **iter_out);

/* The next key; TOME_NOTFOUND at the end. *key_out belongs to the
 * transaction and stays valid until it ends. */
int tome_iter_next(tome_iter *iter, const void **key_out, size_t *key_len_out);

/* Closes the iteration. NULL is a no-op. */
void tome_iter_close(tome_iter *iter);

/* ------------------------------------------------------------------------ */
/* Maintenance                                                               */
/* ------------------------------------------------------------------------ */

/* Compaction. Afterwards each key keeps only its newest version (or the
 * history the options ask for), keys whose newest version is a removal are
 * gone (the trash is emptied) and the space held by dropped versions is
 * given back. The history horizon moves up to the newest commit (or less
 * far with history options): tome_begin_at below it gives TOME_NOTFOUND.
 * What a transaction still open can see stays until it ends: versions such
 * a transaction may read are kept by this merge and dropped by a later one.
 * Readers and writers keep working during a merge; nothing committed is lost
 * if the process dies at any point of it. A merge is not a commit: it uses
 * no sequence number. One merge runs at a time (a concurrent call waits).
 * Returns TOME_OK, TOME_IO, TOME_NOMEM, TOME_READONLY, TOME_INVALID. */
int tome_merge(tome_db *db);

typedef struct tome_stats {
    uint64_t keys;           /* keys whose newest version is not a removal */
    uint64_t keys_total;     /* keys held, including those in the trash */
    uint64_t versions;       /* versions held */
    uint64_t live_bytes;     /* bytes of keys+values of the newest versions */
    uint64_t total_bytes;    /* bytes of all segment files */
    uint64_t segments;       /* segment files */
    uint64_t last_seq;       /* newest commit */
    uint64_t last_timestamp; /* its timestamp */
    uint64_t horizon;        /* history horizon (see tome_begin_at) */
} tome_stats;

/* Fills *out with figures about the store. Thread-safe. */
int tome_stats_get(tome_db *db, tome_stats *out);

/* Verifies every checksum and invariant of the store at `path` without
 * changing it (it takes the store's lock, so the store must not be open).
 * On TOME_OK or TOME_CORRUPT, if report is not NULL, *report is a text
 * (free with tome_free) that describes what was checked and what failed.
 * Returns TOME_OK, TOME_CORRUPT, TOME_LOCKED, TOME_NOTFOUND (no store),
 * TOME_IO, TOME_NOMEM, TOME_INVALID. */
int tome_check(const char *path, char **report);

/* The newest commit sequence number on this handle (0 for an empty store). */
int tome_last_seq(tome_db *db, uint64_t *seq_out);

/* ------------------------------------------------------------------------ */
/* The namespaced store (the LDK KVStore contract)                           */
/* ------------------------------------------------------------------------ */

int  tome_kv_read  (tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                    void **buf_out, size_t *len_out);
int  tome_kv_write (tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                    const void *buf, size_t len);
int  tome_kv_remove(tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                    bool lazy);
int  tome_kv_list  (tome_db *db, const char *primary_ns, const char *secondary_ns,
                    char ***keys_out, size_t *count_out);

typedef struct tome_kv_key { const char *primary_ns, *secondary_ns, *key; } tome_kv_key;
int  tome_kv_list_all(tome_db *db, tome_kv_key **keys_out, size_t *count_out);

enum { TOME_KV_WRITE = 1, TOME_KV_REMOVE = 2 };
typedef struct tome_kv_op {
    int op;                                   /* TOME_KV_WRITE or TOME_KV_REMOVE */
    const char *primary_ns, *secondary_ns, *key;
    const void *buf; size_t len;              /* TOME_KV_WRITE only */
} tome_kv_op;
int  tome_kv_apply(tome_db *db, const tome_kv_op *ops, size_t count);

/* Frees memory that a tome_* function handed to the caller. NULL is a no-op. */
void tome_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* TOME_H */
