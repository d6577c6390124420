/*
 * peers.h -- the interface between the peer benchmark's driver (bench.c)
 * and its engine adapters (eng_*.c): tome, LMDB, SQLite, LevelDB, RocksDB,
 * Tkrzw, and, for the Lightning-like workload only, a FilesystemStore-like
 * directory store.
 *
 * Each adapter fills a peer_ops table (the key-value workloads) and/or a
 * peer_kvstore_ops table (the namespaced, LDK KVStore-like workload). An
 * adapter calls the engine through its public C API only, the way a user of
 * that engine would, and exits the process on any failure (every workload
 * runs in a child process of its own, so a failure costs one figure, never
 * the run). Adapters hand every record they read to peer_check_value() or
 * peer_visit(), which check it against the generated data, so a result is
 * only counted when the engine returned the right bytes.
 */
#ifndef PEERS_H
#define PEERS_H

#include <stddef.h>
#include <stdint.h>

/* How a store is opened. */
enum {
    PEER_BULK = 0,    /* batches of writes (1,000 per commit by default) */
    PEER_DURABLE = 1, /* one durable commit per write, from many threads */
    PEER_READ = 2     /* reads, scans, merge, open */
};

/* One record: key and value (or, for a read, the key and the value
 * expected, with v NULL when the key must be absent). */
typedef struct peer_kv {
    const uint8_t *k;
    size_t kl;
    const uint8_t *v;
    size_t vl;
} peer_kv;

typedef struct peer_ops {
    const char *name;
    /* Settings as Markdown text (one bullet list), shown in RESULTS.md. */
    const char *settings;
    /* 1 if scan() visits keys in ascending bytewise order. */
    int ordered;
    /* Opens (creating) the store at path; the driver has created path as
     * an empty directory, except for tome, which creates its own. */
    void *(*open)(const char *path, int mode);
    void (*close)(void *h);
    /* One commit holding the n records; sync = wait for the disk. */
    void (*put_batch)(void *h, const peer_kv *kv, size_t n, int sync);
    /* Makes every commit so far durable (end of a bulk workload). */
    void (*sync)(void *h);
    /* Reads the n keys (one read transaction or snapshot for all of them
     * where the engine has one), calling peer_check_value() on each;
     * returns how many were found. */
    size_t (*get_batch)(void *h, const peer_kv *q, size_t n);
    /* Visits every record, calling peer_visit() on each; returns the count. */
    uint64_t (*scan)(void *h);
    /* One durable commit of one record. Called from many threads at once
     * on one handle. */
    void (*put_durable)(void *h, const peer_kv *kv);
    /* Compaction (tome only; NULL for the others). Returns live records. */
    uint64_t (*merge)(void *h);
} peer_ops;

/* The Lightning-like workload: LDK's KVStore contract. */
typedef struct peer_kvstore_ops {
    const char *name;
    const char *settings;
    void *(*open)(const char *path);
    void (*close)(void *h);
    /* Durable write of the whole value. */
    void (*write)(void *h, const char *primary, const char *secondary, const char *key,
                  const void *buf, size_t len);
    /* The keys directly under (primary, secondary); returns their count. */
    size_t (*list)(void *h, const char *primary, const char *secondary);
} peer_kvstore_ops;

extern const peer_ops peer_tome, peer_lmdb, peer_sqlite, peer_leveldb, peer_rocksdb, peer_tkrzw;
extern const peer_kvstore_ops peer_kv_tome, peer_kv_sqlite, peer_kv_fsstore;

/* Checks a value read for q (q->v NULL: the key was expected absent);
 * found = 0 if the engine reported the key absent. Exits on a mismatch. */
void peer_check_value(const peer_kv *q, int found, const void *v, size_t vl);
/* Checks one record of a scan: keys strictly ascending (for ordered
 * engines) and the value right for its key. Exits on a mismatch. */
void peer_visit(const void *k, size_t kl, const void *v, size_t vl);
/* Prints "peers: <engine>: <what>: <detail>" and exits with status 1. */
void peer_die(const char *engine, const char *what, const char *detail)
    __attribute__((noreturn));
/* mkdir -p (ignores EEXIST); exits on failure. */
void peer_mkdirs(const char *path);

#endif /* PEERS_H */
