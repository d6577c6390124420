/*
 * eng_rocksdb.c -- the RocksDB adapter of the peer benchmark (librocksdb,
 * C API).
 *
 * Options as users tuning RocksDB for speed set them: IncreaseParallelism
 * (background threads = the number of CPUs), no compression, block-based
 * tables with a full bloom filter of 10 bits per key and a 64 MiB LRU block
 * cache, the default 64 MiB write buffer. A bulk batch is one WriteBatch
 * written with sync=false (sync=true with --bulk-sync); the end of a load
 * calls rocksdb_flush_wal(sync=1), which makes everything durable. A
 * durable write is rocksdb_put with sync=true (RocksDB groups concurrent
 * writers into one WAL write and one fsync). Reads use rocksdb_get_pinned
 * (no copy); the scan is an iterator from the first key.
 */
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "peers.h"

typedef struct rdb {
    rocksdb_t *db;
    rocksdb_options_t *opt;
    rocksdb_block_based_table_options_t *bbt;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wsync, *wnosync;
    rocksdb_readoptions_t *ropt;
    rocksdb_writebatch_t *wb;
} rdb;

static void check(char *err, const char *what) {
    if (err) peer_die("rocksdb", what, err);
}

static void *r_open(const char *path, int mode) {
    (void)mode;
    rdb *r = calloc(1, sizeof *r);
    char *err = NULL;
    if (!r) peer_die("rocksdb", "open", "out of memory");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    r->opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opt, 1);
    rocksdb_options_increase_parallelism(r->opt, cpus > 0 ? (int)cpus : 2);
    rocksdb_options_set_compression(r->opt, rocksdb_no_compression);
    r->bbt = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(r->bbt, rocksdb_filterpolicy_create_bloom_full(10));
    r->cache = rocksdb_cache_create_lru((size_t)64 << 20);
    rocksdb_block_based_options_set_block_cache(r->bbt, r->cache);
    rocksdb_options_set_block_based_table_factory(r->opt, r->bbt);
    r->db = rocksdb_open(r->opt, path, &err);
    check(err, "open");
    r->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wsync, 1);
    r->wnosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wnosync, 0);
    r->ropt = rocksdb_readoptions_create();
    r->wb = rocksdb_writebatch_create();
    return r;
}

static void r_close(void *h) {
    rdb *r = h;
    rocksdb_close(r->db);
    rocksdb_writebatch_destroy(r->wb);
    rocksdb_readoptions_destroy(r->ropt);
    rocksdb_writeoptions_destroy(r->wsync);
    rocksdb_writeoptions_destroy(r->wnosync);
    rocksdb_options_destroy(r->opt);
    rocksdb_block_based_options_destroy(r->bbt); /* also releases the filter policy */
    rocksdb_cache_destroy(r->cache);
    free(r);
}

static void r_put_batch(void *h, const peer_kv *kv, size_t n, int sync) {
    rdb *r = h;
    char *err = NULL;
    rocksdb_writebatch_clear(r->wb);
    for (size_t i = 0; i < n; i++)
        rocksdb_writebatch_put(r->wb, (const char *)kv[i].k, kv[i].kl, (const char *)kv[i].v, kv[i].vl);
    rocksdb_write(r->db, sync ? r->wsync : r->wnosync, r->wb, &err);
    check(err, "write");
}

static void r_sync(void *h) {
    rdb *r = h;
    char *err = NULL;
    rocksdb_flush_wal(r->db, 1, &err);
    check(err, "flush_wal");
}

static size_t r_get_batch(void *h, const peer_kv *q, size_t n) {
    rdb *r = h;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        char *err = NULL;
        rocksdb_pinnableslice_t *p = rocksdb_get_pinned(r->db, r->ropt, (const char *)q[i].k, q[i].kl, &err);
        check(err, "get");
        if (p) {
            size_t vl;
            const char *v = rocksdb_pinnableslice_value(p, &vl);
            hits++;
            peer_check_value(&q[i], 1, v, vl);
            rocksdb_pinnableslice_destroy(p);
        } else {
            peer_check_value(&q[i], 0, NULL, 0);
        }
    }
    return hits;
}

static uint64_t r_scan(void *h) {
    rdb *r = h;
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ropt);
    uint64_t count = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        peer_visit(k, kl, v, vl);
        count++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    check(err, "iterator");
    rocksdb_iter_destroy(it);
    return count;
}

static void r_put_durable(void *h, const peer_kv *kv) {
    rdb *r = h;
    char *err = NULL;
    rocksdb_put(r->db, r->wsync, (const char *)kv->k, kv->kl, (const char *)kv->v, kv->vl, &err);
    check(err, "put");
}

const peer_ops peer_rocksdb = {
    .name = "rocksdb",
    .settings =
        "- IncreaseParallelism(nproc), no compression, block-based table with a full bloom "
        "filter of 10 bits/key and a 64 MiB LRU block cache, default 64 MiB write buffer, "
        "level compaction (default)\n"
        "- bulk: one WriteBatch per batch written with sync=false (sync=true with "
        "--bulk-sync); rocksdb_flush_wal(sync) at the end, inside the timing\n"
        "- durable: rocksdb_put with sync=true (one WAL write + fsync per write group)\n"
        "- reads: rocksdb_get_pinned (no copy); scan: iterator from seek_to_first\n",
    .ordered = 1,
    .open = r_open,
    .close = r_close,
    .put_batch = r_put_batch,
    .sync = r_sync,
    .get_batch = r_get_batch,
    .scan = r_scan,
    .put_durable = r_put_durable,
    .merge = NULL,
};
