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
    /* Values and keys are read from a read-only memory mapping of the log
     * segments (the default, 0): a read is a memory access and a checksum,
     * without a system call or a copy. As with LMDB, a disk that fails to
     * read a mapped page raises SIGBUS in the reading thread instead of
     * returning TOME_IO. 1: read with pread (an I/O error is then TOME_IO);
     * slower. Stores in memory and file layers that cannot map always read
     * with pread. */
    int no_mmap;
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
 * TOME_NOTFOUND (no store there and must_exist or read_only: a directory is
 * a store only if it holds tome's LOCK file, so an empty or foreign
 * directory is never turned into one by such an open), TOME_LOCKED (the store is open
 * in this or another process), TOME_CORRUPT (damage before the tail),
 * TOME_IO, TOME_NOMEM. Details: tome_errmsg(NULL). Thread-safe. */
int tome_open(const char *path, const tome_options *opts, tome_db **db_out);

/* Makes every commit so far durable (useful with TOME_SYNC_NONE and
 * TOME_COMMIT_NOSYNC). A read-only handle has nothing to sync: TOME_OK.
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
 * TOME_NOMEM. Thread-safe. A read-only transaction keeps no read set: each
 * read goes straight to its snapshot (tome_begin_at(db, newest) is the
 * cheapest way to read a consistent snapshot that will not be written). */
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

/* The value of the key tome_iter_next returned last: what tome_get of that
 * key would return now (the transaction's pending write first), read
 * without a second index lookup. It is a point read (the key joins the read
 * set) and is cached like one. Memory as tome_get. TOME_MISUSE before
 * tome_iter_next returned a key; other codes as tome_get. */
int tome_iter_value(tome_iter *iter, const void **val_out, size_t *val_len_out);

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

/* 1 if the handle was opened read-only (every write gives TOME_READONLY),
 * 0 if not, TOME_INVALID for NULL. Thread-safe. */
int tome_is_read_only(tome_db *db);

/* ------------------------------------------------------------------------ */
/* The namespaced store (the LDK KVStore contract)                           */
/* ------------------------------------------------------------------------ */
/*
 * The tome_kv_* functions implement the contract of LDK's KVStore
 * (lightning::util::persist::KVStore): values addressed by a primary
 * namespace, a secondary namespace and a key. They are built on the public
 * transaction API above (each call is one transaction, rerun on
 * TOME_CONFLICT), so they behave the same on every backend.
 *
 * Names. Every primary namespace, secondary namespace and key is a
 * NUL-terminated ASCII string of at most TOME_KV_NAME_MAX (120) characters
 * from [A-Za-z0-9_-]. The empty primary and the empty secondary namespace
 * are valid; a non-empty secondary namespace with an empty primary is not;
 * the empty key is not; NULL is not. Any violation gives TOME_INVALID before
 * anything is read or written (tome_errmsg says which name is wrong).
 *
 * Where a namespaced key lives (for history and audit). The value of
 * (primary, secondary, key) is stored in slot TOME_KV_SLOT (255) under the
 * key bytes
 *         primary "/" secondary "/" key          (no NUL, no padding)
 * e.g. ("monitors", "", "abc_1") is the 15 bytes "monitors//abc_1" and
 * ("", "", "manager") is "//manager". '/' is outside the name alphabet, so
 * the mapping is one-to-one; tome_kv_key_bytes() builds it. The stored value
 * is exactly the caller's value bytes, so with those slot and key bytes
 *   - tome_versions() lists every version of the namespaced key (a
 *     tome_kv_remove is a version with removed = true),
 *   - tome_get_version() reads an earlier value by its seq,
 *   - tome_begin_at() + tome_get() reads it as of any commit,
 *   - tome_get_unremoved() reads back a removed value,
 * until tome_merge drops that history.
 * Two more slots are kept by these functions in the same transactions and
 * are reserved for them (do not write them, nor slot 255, directly):
 *   TOME_KV_CREATED_SLOT (253): key bytes as above -> 12-byte creation stamp;
 *   TOME_KV_ORDER_SLOT (254): primary "/" secondary "/" stamp key -> empty
 *     value. The stamp is the big-endian bitwise complement of the creating
 *     commit's expected seq (8 bytes) and of the operation's index within
 *     that commit (4 bytes), so ascending iteration of this slot lists a
 *     namespace newest-created first (tome_kv_list_page). A key keeps its
 *     stamp when overwritten and gets a new one when written after removal.
 *
 * Memory. Values, key lists and page tokens handed to the caller are one
 * allocation each, freed with tome_free(). Nothing handed out points into
 * the store.
 *
 * Durability. Writes, non-lazy removes and tome_kv_apply commit with the
 * handle's sync option: with TOME_SYNC_FULL (the default) they are durable
 * when they return. Lazy removes commit without waiting for the disk.
 *
 * Threads. Every tome_kv_* function may be called from any number of
 * threads at once on one handle. Each call works in its own transaction:
 * a read sees a whole value as of one commit, never a torn or mixed one.
 *
 * Codes common to all of them: TOME_INVALID (NULL db or out pointer, a bad
 * name), TOME_IO, TOME_CORRUPT, TOME_NOMEM, TOME_MISUSE (handle closing),
 * TOME_READONLY (a write on a read-only handle). TOME_NOTFOUND is returned
 * only by tome_kv_read, and only when the key is absent. TOME_CONFLICT is
 * never returned in practice: a conflicting commit is rerun (up to 100,000
 * times, then TOME_CONFLICT).
 */

#define TOME_KV_NAME_MAX     120    /* longest name, in characters */
#define TOME_KV_KEY_MAX      (3 * TOME_KV_NAME_MAX + 2) /* longest mapped key */
#define TOME_KV_SLOT         255    /* values */
#define TOME_KV_ORDER_SLOT   254    /* creation order index */
#define TOME_KV_CREATED_SLOT 253    /* key -> creation stamp */
#define TOME_KV_PAGE_SIZE    50     /* default page of tome_kv_list_page */

/* Reads the value of (primary_ns, secondary_ns, key).
 * On TOME_OK, *buf_out is a new allocation of *len_out bytes (never NULL,
 * even for an empty value) that the caller frees with tome_free().
 * TOME_NOTFOUND if and only if the key is absent (never written, or
 * removed): every other failure (I/O, damage, memory, a closing handle)
 * has its own code, so a caller may safely treat TOME_NOTFOUND as "start
 * fresh". On any error *buf_out is NULL and *len_out is 0. Thread-safe. */
int  tome_kv_read  (tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                    void **buf_out, size_t *len_out);

/* Replaces the whole value of the key with len bytes at buf (buf may be NULL
 * when len is 0; the bytes are copied). Namespaces need no creation. On
 * TOME_OK the write is durable (per the sync option) and atomic: after a
 * crash the key holds either the old or the new value, never a mix. An
 * overwrite keeps the key's place in the creation order.
 * TOME_TOOBIG: len > TOME_MAX_VALUE_LEN, nothing written. Thread-safe. */
int  tome_kv_write (tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                    const void *buf, size_t len);

/* Removes the key; TOME_OK whether or not it existed. The removal is visible
 * at once to every later call. lazy = false: durable on return (even when
 * the key was already absent, e.g. after a lazy remove not yet on disk).
 * lazy = true: committed without waiting for the disk; a machine crash may
 * lose it (the key comes back), but a write of the same key made after it
 * always wins over it, also across crashes (commits reach the disk in
 * order). Thread-safe. */
int  tome_kv_remove(tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                    bool lazy);

/* The keys stored directly under (primary_ns, secondary_ns), never
 * namespace names, sorted ascending (bytewise). An unknown namespace gives
 * TOME_OK with count 0. On TOME_OK *keys_out is one allocation holding the
 * array of *count_out pointers and the strings they point to: free it with
 * one tome_free(); it is NULL when the count is 0. Thread-safe. */
int  tome_kv_list  (tome_db *db, const char *primary_ns, const char *secondary_ns,
                    char ***keys_out, size_t *count_out);

/* Every (primary, secondary, key) in the store, ordered by the mapped key
 * bytes (primary, then secondary, then key, with '/' sorting after '-' and
 * before digits). *keys_out is one allocation (the array and its strings):
 * free it with one tome_free(); NULL when the count is 0. Thread-safe. */
typedef struct tome_kv_key { const char *primary_ns, *secondary_ns, *key; } tome_kv_key;
int  tome_kv_list_all(tome_db *db, tome_kv_key **keys_out, size_t *count_out);

/* Paginated listing (LDK 0.3 PaginatedKVStore): the keys directly under
 * (primary_ns, secondary_ns), newest-created first. page_token is NULL for
 * the first page, else the *next_token_out of the previous page. page_size
 * 0 means TOME_KV_PAGE_SIZE (50). On TOME_OK *keys_out / *count_out are as
 * for tome_kv_list (at most page_size keys) and *next_token_out is a new
 * string (free with tome_free) to pass for the next page, or NULL when this
 * page is the last. An overwrite keeps a key's place; a key removed and
 * written again counts as new. A token stays usable when its key has been
 * removed since: listing resumes at the next older key. Keys created after
 * the first page was read are not shown on later pages.
 * TOME_INVALID: a token that tome_kv_list_page did not make (the token is
 * the hex creation stamp followed by the key). Thread-safe. */
int  tome_kv_list_page(tome_db *db, const char *primary_ns, const char *secondary_ns,
                       const char *page_token, size_t page_size,
                       char ***keys_out, size_t *count_out, char **next_token_out);

/* Writes the slot-TOME_KV_SLOT key bytes of (primary_ns, secondary_ns, key)
 * (see "Where a namespaced key lives") into buf, which holds cap bytes
 * (TOME_KV_KEY_MAX always suffices), and their count into *len_out. No NUL
 * is added. TOME_INVALID: a bad name or NULL; TOME_TOOBIG: cap too small.
 * Thread-safe, touches no store. */
int  tome_kv_key_bytes(const char *primary_ns, const char *secondary_ns, const char *key,
                       void *buf, size_t cap, size_t *len_out);

/* Migration from and to LDK's FilesystemStore. */
typedef struct tome_kv_fs_stats {
    uint64_t keys;     /* keys imported or exported */
    uint64_t bytes;    /* value bytes imported or exported */
    uint64_t skipped;  /* import: files skipped (*.tmp, *.trash, names
                          outside the alphabet, entries too deep) */
} tome_kv_fs_stats;

#define TOME_KV_FS_V2 0x1u  /* export: FilesystemStoreV2 layout */

/* Imports the FilesystemStore directory `dir` into the store. Both layouts
 * are read, also mixed: v1 (dir/key, dir/primary/key,
 * dir/primary/secondary/key) and v2 (dir/primary/secondary/key with the
 * directory name "[empty]" for an empty namespace). Files whose names end in
 * ".tmp" or ".trash" (left by a crash of FilesystemStore) and names outside
 * the alphabet are skipped and counted. Keys are written in the order of the
 * files' modification times (oldest first; equal times by name), so the
 * creation order, and with it tome_kv_list_page, follows the mtimes as
 * FilesystemStoreV2 does. Existing keys are overwritten (keeping their
 * place); other keys are kept. The import commits in batches without
 * waiting for the disk and syncs once at the end: on TOME_OK everything is
 * durable; on failure a prefix may be imported, and running the import
 * again completes it. stats may be NULL.
 * Returns TOME_OK, TOME_NOTFOUND (dir missing), TOME_IO, TOME_TOOBIG (a file
 * over TOME_MAX_VALUE_LEN), TOME_NOMEM, TOME_INVALID and the codes of
 * tome_kv_write. Uses the file system directly (not the store's vfs). */
int  tome_kv_import_fs(tome_db *db, const char *dir, tome_kv_fs_stats *stats);

/* Writes every namespaced key of the store into the directory `dir`
 * (created if missing) as FilesystemStore does: the v1 layout by default,
 * the v2 layout ("[empty]" directories) with flags TOME_KV_FS_V2. Each file
 * is written to "<key>.tmp", fsynced and renamed; every directory touched is
 * fsynced before the call returns. Each file's mtime is the time its key
 * was created, moved on by nanoseconds where needed so that the mtimes
 * strictly follow the creation order: FilesystemStoreV2 (to the
 * millisecond) and tome_kv_import_fs (exactly) page the keys in the same
 * order. The export reads one snapshot (the newest commit when it starts)
 * even while other threads write, one value in memory at a time. Existing
 * files of other keys are left alone. stats may be NULL.
 * TOME_INVALID: NULL, unknown flags, or the v1 layout cannot hold the store
 * (a key with the same name as a namespace beside it, e.g. ("","","a") and
 * ("a","","k"): use TOME_KV_FS_V2). TOME_CONFLICT: a tome_merge dropped the
 * snapshot while the export ran (run it again). Also TOME_IO, TOME_NOMEM,
 * TOME_CORRUPT. Uses the file system directly (not the store's vfs). */
int  tome_kv_export_fs(tome_db *db, const char *dir, unsigned flags, tome_kv_fs_stats *stats);

/* Several writes and removes as one atomic commit with one sync: after
 * TOME_OK all of them are durable; after any other code none of them is
 * visible (after TOME_IO from a failed sync the store, once reopened,
 * holds all or none of them); a crash during the call leaves all of them
 * or none. They apply in
 * order, so a later operation on the same key wins. Keys the call creates
 * are ordered by their index in ops (a later one is newer).
 * Every operation is checked first: an unknown op, a bad name or a NULL buf
 * with len > 0 in any of them gives TOME_INVALID, a len over
 * TOME_MAX_VALUE_LEN gives TOME_TOOBIG, and nothing is written. ops may be
 * NULL when count is 0 (TOME_OK, nothing done). Thread-safe. */
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
