/*
 * eng_lmdb.c -- the LMDB adapter of the peer benchmark (liblmdb, C API).
 *
 * One environment per store directory with a 16 GiB map (the file grows
 * only as needed), the unnamed database, default flags otherwise. A bulk
 * batch is one write transaction; bulk stores run with MDB_NOSYNC (the
 * commit is not flushed; mdb_env_sync(force) at the end makes the load
 * durable), or with full syncs under --bulk-sync. Durable writes are one
 * write transaction each with LMDB's default full sync (data pages, then
 * the meta page: two fsyncs per commit); LMDB has a single writer, so
 * threads queue on its writer lock. Reads use one read-only transaction per
 * batch; the scan walks a cursor with MDB_NEXT.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"

typedef struct lm {
    MDB_env *env;
    MDB_dbi dbi;
} lm;

static void ldie(const char *what, int rc) { peer_die("lmdb", what, mdb_strerror(rc)); }

static void *l_open(const char *path, int mode) {
    lm *l = calloc(1, sizeof *l);
    int rc;
    if (!l) peer_die("lmdb", "open", "out of memory");
    if ((rc = mdb_env_create(&l->env))) ldie("env_create", rc);
    if ((rc = mdb_env_set_mapsize(l->env, (size_t)16 << 30))) ldie("set_mapsize", rc);
    if ((rc = mdb_env_set_maxreaders(l->env, 128))) ldie("set_maxreaders", rc);
    unsigned flags = mode == PEER_BULK ? MDB_NOSYNC : 0;
    if ((rc = mdb_env_open(l->env, path, flags, 0644))) ldie("env_open", rc);
    MDB_txn *t;
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &t))) ldie("txn_begin", rc);
    if ((rc = mdb_dbi_open(t, NULL, 0, &l->dbi))) ldie("dbi_open", rc);
    if ((rc = mdb_txn_commit(t))) ldie("txn_commit", rc);
    return l;
}

static void l_close(void *h) {
    lm *l = h;
    mdb_env_close(l->env);
    free(l);
}

static void l_put_batch(void *h, const peer_kv *kv, size_t n, int sync) {
    lm *l = h;
    MDB_txn *t;
    int rc;
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &t))) ldie("txn_begin", rc);
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {kv[i].kl, (void *)kv[i].k}, v = {kv[i].vl, (void *)kv[i].v};
        if ((rc = mdb_put(t, l->dbi, &k, &v, 0))) ldie("put", rc);
    }
    if ((rc = mdb_txn_commit(t))) ldie("txn_commit", rc);
    if (sync && (rc = mdb_env_sync(l->env, 1))) ldie("env_sync", rc);
}

static void l_sync(void *h) {
    lm *l = h;
    int rc = mdb_env_sync(l->env, 1);
    if (rc) ldie("env_sync", rc);
}

static size_t l_get_batch(void *h, const peer_kv *q, size_t n) {
    lm *l = h;
    MDB_txn *t;
    size_t hits = 0;
    int rc;
    if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t))) ldie("txn_begin", rc);
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {q[i].kl, (void *)q[i].k}, v;
        rc = mdb_get(t, l->dbi, &k, &v);
        if (rc == 0) {
            hits++;
            peer_check_value(&q[i], 1, v.mv_data, v.mv_size);
        } else if (rc == MDB_NOTFOUND) {
            peer_check_value(&q[i], 0, NULL, 0);
        } else {
            ldie("get", rc);
        }
    }
    mdb_txn_abort(t);
    return hits;
}

static uint64_t l_scan(void *h) {
    lm *l = h;
    MDB_txn *t;
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t count = 0;
    int rc;
    if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t))) ldie("txn_begin", rc);
    if ((rc = mdb_cursor_open(t, l->dbi, &c))) ldie("cursor_open", rc);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        peer_visit(k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        count++;
    }
    if (rc != MDB_NOTFOUND) ldie("cursor_get", rc);
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    return count;
}

static void l_put_durable(void *h, const peer_kv *kv) { l_put_batch(h, kv, 1, 0); }

const peer_ops peer_lmdb = {
    .name = "lmdb",
    .settings =
        "- map size 16 GiB, max readers 128, the unnamed database, no MDB_WRITEMAP, no MDB_APPEND\n"
        "- bulk: one write transaction per batch with MDB_NOSYNC (full sync per batch with "
        "--bulk-sync); mdb_env_sync(force) at the end, inside the timing\n"
        "- durable: one write transaction per write, default flags (data fsync + meta page "
        "fsync per commit); single writer: threads queue on LMDB's writer lock\n"
        "- reads: one MDB_RDONLY transaction per batch of mdb_get; scan: cursor MDB_FIRST/MDB_NEXT\n",
    .ordered = 1,
    .open = l_open,
    .close = l_close,
    .put_batch = l_put_batch,
    .sync = l_sync,
    .get_batch = l_get_batch,
    .scan = l_scan,
    .put_durable = l_put_durable,
    .merge = NULL,
};
