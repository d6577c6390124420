/*
 * eng_leveldb.c -- the LevelDB adapter of the peer benchmark (libleveldb,
 * C API).
 *
 * Options as users tuning LevelDB for speed set them: bloom filter of 10
 * bits per key, no compression, a 64 MiB block cache and a 64 MiB write
 * buffer (memtable). A bulk batch is one WriteBatch written with
 * sync=false (sync=true with --bulk-sync); the end of a load writes an
 * empty batch with sync=true, which fsyncs the log: everything is then
 * durable. A durable write is leveldb_put with sync=true (LevelDB groups
 * concurrent writers into one log write and one fsync). Reads are
 * leveldb_get (the C API copies each value into a malloc'd buffer); the
 * scan is an iterator from the first key. Snapshots are not used: a get
 * sees the newest data, as a user's plain get would.
 */
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>

#include "peers.h"

typedef struct ldb {
    leveldb_t *db;
    leveldb_options_t *opt;
    leveldb_filterpolicy_t *bloom;
    leveldb_cache_t *cache;
    leveldb_writeoptions_t *wsync, *wnosync;
    leveldb_readoptions_t *ropt;
    leveldb_writebatch_t *wb;
} ldb;

static void check(char *err, const char *what) {
    if (err) peer_die("leveldb", what, err);
}

static void *d_open(const char *path, int mode) {
    (void)mode;
    ldb *d = calloc(1, sizeof *d);
    char *err = NULL;
    if (!d) peer_die("leveldb", "open", "out of memory");
    d->opt = leveldb_options_create();
    leveldb_options_set_create_if_missing(d->opt, 1);
    d->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(d->opt, d->bloom);
    leveldb_options_set_compression(d->opt, leveldb_no_compression);
    d->cache = leveldb_cache_create_lru((size_t)64 << 20);
    leveldb_options_set_cache(d->opt, d->cache);
    leveldb_options_set_write_buffer_size(d->opt, (size_t)64 << 20);
    d->db = leveldb_open(d->opt, path, &err);
    check(err, "open");
    d->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(d->wsync, 1);
    d->wnosync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(d->wnosync, 0);
    d->ropt = leveldb_readoptions_create();
    d->wb = leveldb_writebatch_create();
    return d;
}

static void d_close(void *h) {
    ldb *d = h;
    leveldb_close(d->db);
    leveldb_writebatch_destroy(d->wb);
    leveldb_readoptions_destroy(d->ropt);
    leveldb_writeoptions_destroy(d->wsync);
    leveldb_writeoptions_destroy(d->wnosync);
    leveldb_options_destroy(d->opt);
    leveldb_filterpolicy_destroy(d->bloom);
    leveldb_cache_destroy(d->cache);
    free(d);
}

static void d_put_batch(void *h, const peer_kv *kv, size_t n, int sync) {
    ldb *d = h;
    char *err = NULL;
    leveldb_writebatch_clear(d->wb);
    for (size_t i = 0; i < n; i++)
        leveldb_writebatch_put(d->wb, (const char *)kv[i].k, kv[i].kl, (const char *)kv[i].v, kv[i].vl);
    leveldb_write(d->db, sync ? d->wsync : d->wnosync, d->wb, &err);
    check(err, "write");
}

static void d_sync(void *h) {
    ldb *d = h;
    char *err = NULL;
    leveldb_writebatch_clear(d->wb);
    leveldb_write(d->db, d->wsync, d->wb, &err); /* an empty synced write fsyncs the log */
    check(err, "write (sync)");
}

static size_t d_get_batch(void *h, const peer_kv *q, size_t n) {
    ldb *d = h;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        char *err = NULL;
        size_t vl;
        char *v = leveldb_get(d->db, d->ropt, (const char *)q[i].k, q[i].kl, &vl, &err);
        check(err, "get");
        if (v) hits++;
        peer_check_value(&q[i], v != NULL, v, vl);
        leveldb_free(v);
    }
    return hits;
}

static uint64_t d_scan(void *h) {
    ldb *d = h;
    leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ropt);
    uint64_t count = 0;
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        const char *v = leveldb_iter_value(it, &vl);
        peer_visit(k, kl, v, vl);
        count++;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    check(err, "iterator");
    leveldb_iter_destroy(it);
    return count;
}

static void d_put_durable(void *h, const peer_kv *kv) {
    ldb *d = h;
    char *err = NULL;
    leveldb_put(d->db, d->wsync, (const char *)kv->k, kv->kl, (const char *)kv->v, kv->vl, &err);
    check(err, "put");
}

const peer_ops peer_leveldb = {
    .name = "leveldb",
    .settings =
        "- bloom filter 10 bits/key, no compression, 64 MiB LRU block cache, 64 MiB write "
        "buffer, other options default\n"
        "- bulk: one WriteBatch per batch written with sync=false (sync=true with "
        "--bulk-sync); an empty WriteBatch with sync=true at the end (fsyncs the log), inside "
        "the timing\n"
        "- durable: leveldb_put with sync=true (one log write + fdatasync per write group)\n"
        "- reads: leveldb_get (the C API returns a malloc'd copy); scan: iterator from "
        "seek_to_first\n",
    .ordered = 1,
    .open = d_open,
    .close = d_close,
    .put_batch = d_put_batch,
    .sync = d_sync,
    .get_batch = d_get_batch,
    .scan = d_scan,
    .put_durable = d_put_durable,
    .merge = NULL,
};
