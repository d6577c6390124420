/*
 * eng_tome.c -- the tome adapter of the peer benchmark, through the public
 * API (include/tome.h) only, as a user would call it.
 *
 * Records go to slot 0. A bulk batch is one transaction committed with
 * TOME_COMMIT_NOSYNC (tome_commit, i.e. one fdatasync per batch, with
 * --bulk-sync), and tome_sync() makes the whole load durable at the end. A
 * durable write is one transaction (tome_begin, tome_insert, tome_commit)
 * on a handle opened with the defaults (TOME_SYNC_FULL), shared by every
 * thread. Reads use one read-only snapshot per batch (tome_begin_at ...
 * tome_abort). The scan is one read-only snapshot: tome_iter_open over slot
 * 0, tome_iter_value of every key. The namespaced part (peer_kv_tome) calls tome_kv_write and
 * tome_kv_list.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../include/tome.h"
#include "peers.h"

static void tdie(tome_db *db, const char *what, int rc) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s (%s)", tome_strerror(rc), tome_errmsg(db));
    peer_die("tome", what, buf);
}

static void *t_open(const char *path, int mode) {
    (void)mode;
    tome_db *db;
    tome_options o;
    tome_options_init(&o);
    int rc = tome_open(path, &o, &db);
    if (rc) tdie(NULL, "open", rc);
    return db;
}

static void t_close(void *h) {
    int rc = tome_close(h);
    if (rc) tdie(NULL, "close", rc);
}

static void t_put_batch(void *h, const peer_kv *kv, size_t n, int sync) {
    tome_db *db = h;
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) tdie(db, "begin", rc);
    for (size_t i = 0; i < n; i++)
        if ((rc = tome_insert(t, 0, kv[i].k, kv[i].kl, kv[i].v, kv[i].vl))) tdie(db, "insert", rc);
    rc = tome_commit_ex(t, sync ? 0 : TOME_COMMIT_NOSYNC);
    if (rc) tdie(db, "commit", rc);
}

static void t_sync(void *h) {
    int rc = tome_sync(h);
    if (rc) tdie(h, "sync", rc);
}

/* Reads use a read-only snapshot of the newest commit (tome_begin_at):
 * what a reader that will not write uses; it keeps no read set. */
static int t_begin_ro(tome_db *db, tome_txn **t) {
    uint64_t last = 0;
    int rc = tome_last_seq(db, &last);
    return rc ? rc : tome_begin_at(db, last, t);
}

static size_t t_get_batch(void *h, const peer_kv *q, size_t n) {
    tome_db *db = h;
    tome_txn *t;
    size_t hits = 0;
    int rc = t_begin_ro(db, &t);
    if (rc) tdie(db, "begin", rc);
    for (size_t i = 0; i < n; i++) {
        const void *v;
        size_t vl;
        rc = tome_get(t, 0, q[i].k, q[i].kl, &v, &vl);
        if (rc == TOME_OK) {
            hits++;
            peer_check_value(&q[i], 1, v, vl);
        } else if (rc == TOME_NOTFOUND) {
            peer_check_value(&q[i], 0, NULL, 0);
        } else {
            tdie(db, "get", rc);
        }
    }
    tome_abort(t);
    return hits;
}

static uint64_t t_scan(void *h) {
    tome_db *db = h;
    tome_txn *t;
    tome_iter *it;
    uint64_t count = 0;
    int rc = t_begin_ro(db, &t);
    if (rc) tdie(db, "begin", rc);
    if ((rc = tome_iter_open(t, 0, NULL, 0, &it))) tdie(db, "iter_open", rc);
    for (;;) {
        const void *k, *v;
        size_t kl, vl;
        rc = tome_iter_next(it, &k, &kl);
        if (rc == TOME_NOTFOUND) break;
        if (rc) tdie(db, "iter_next", rc);
        if ((rc = tome_iter_value(it, &v, &vl))) tdie(db, "value (scan)", rc);
        peer_visit(k, kl, v, vl);
        count++;
    }
    tome_iter_close(it);
    tome_abort(t);
    return count;
}

static void t_put_durable(void *h, const peer_kv *kv) {
    tome_db *db = h;
    for (;;) {
        tome_txn *t;
        int rc = tome_begin(db, &t);
        if (rc) tdie(db, "begin", rc);
        if ((rc = tome_insert(t, 0, kv->k, kv->kl, kv->v, kv->vl))) tdie(db, "insert", rc);
        rc = tome_commit(t);
        if (rc == TOME_CONFLICT) continue; /* blind writes never conflict; rerun if one did */
        if (rc) tdie(db, "commit", rc);
        return;
    }
}

static uint64_t t_merge(void *h) {
    tome_db *db = h;
    int rc = tome_merge(db);
    if (rc) tdie(db, "merge", rc);
    tome_stats st;
    if ((rc = tome_stats_get(db, &st))) tdie(db, "stats", rc);
    return st.keys;
}

const peer_ops peer_tome = {
    .name = "tome",
    .settings =
        "- library: this tree's build/libtome.a (-O2), public API only; default options "
        "(TOME_SYNC_FULL, 64 MiB segments, values read in place from the mapped log); slot 0\n"
        "- bulk: one transaction per batch, tome_commit_ex(TOME_COMMIT_NOSYNC) "
        "(tome_commit with --bulk-sync); tome_sync() at the end, inside the timing\n"
        "- durable: tome_begin + tome_insert + tome_commit per write (fdatasync; concurrent "
        "commits share one sync: group commit); one handle shared by all threads\n"
        "- reads: one read-only snapshot per batch of gets (tome_begin_at(newest) ... tome_abort)\n"
        "- scan: one read-only snapshot, tome_iter_open(slot 0, no prefix) + tome_iter_value of every key\n"
        "- merge: tome_merge() after the overwrite; open: tome_open + one tome_get, "
        "with the INDEX file (and, as a separate row, without it: full log scan)\n",
    .ordered = 1,
    .open = t_open,
    .close = t_close,
    .put_batch = t_put_batch,
    .sync = t_sync,
    .get_batch = t_get_batch,
    .scan = t_scan,
    .put_durable = t_put_durable,
    .merge = t_merge,
};

/* ---- namespaced store ---------------------------------------------------- */

static void *tk_open(const char *path) { return t_open(path, PEER_DURABLE); }

static void tk_write(void *h, const char *p, const char *s, const char *k, const void *buf, size_t len) {
    int rc = tome_kv_write(h, p, s, k, buf, len);
    if (rc) tdie(h, "kv_write", rc);
}

static size_t tk_list(void *h, const char *p, const char *s) {
    char **keys;
    size_t n;
    int rc = tome_kv_list(h, p, s, &keys, &n);
    if (rc) tdie(h, "kv_list", rc);
    tome_free(keys);
    return n;
}

const peer_kvstore_ops peer_kv_tome = {
    .name = "tome",
    .settings = "- tome_kv_write (one durable commit per call, TOME_SYNC_FULL) and "
                "tome_kv_list (sorted array, freed with tome_free)\n",
    .open = tk_open,
    .close = t_close,
    .write = tk_write,
    .list = tk_list,
};
