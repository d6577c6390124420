/*
 * eng_tkrzw.c -- the Tkrzw adapter of the peer benchmark (libtkrzw, its C
 * API tkrzw_langc.h).
 *
 * The hash database (HashDBM, file casket.tkh) in appending mode
 * (update_mode=UPDATE_APPENDING: every write appends a record, like a log)
 * with 2,000,000 buckets (about twice the default key count; users size the
 * bucket array to the data), other parameters default (memory-mapped file).
 * Tkrzw has no transactions: a bulk batch is one tkrzw_dbm_set_multi call
 * of 1,000 records, not atomic; the end of a load calls
 * tkrzw_dbm_synchronize(hard=true), which makes everything durable. A
 * durable write is tkrzw_dbm_set followed by tkrzw_dbm_synchronize(hard=
 * true) (writes the header and msync/fsyncs the file). Reads use
 * tkrzw_dbm_process with a read-only callback (no copy); the scan uses
 * tkrzw_dbm_process_each, in hash order: the hash database is unordered,
 * so its scan figure is shown but not compared with the ordered scans.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <tkrzw_langc.h>

#include "peers.h"

static void kdie(const char *what) { peer_die("tkrzw", what, tkrzw_get_last_status_message()); }

static void *k_open(const char *path, int mode) {
    (void)mode;
    char file[4096];
    snprintf(file, sizeof file, "%s/casket.tkh", path);
    TkrzwDBM *dbm = tkrzw_dbm_open(file, true, "update_mode=UPDATE_APPENDING,num_buckets=2000000");
    if (!dbm) kdie("open");
    return dbm;
}

static void k_close(void *h) {
    if (!tkrzw_dbm_close(h)) kdie("close");
}

static void k_sync(void *h) {
    if (!tkrzw_dbm_synchronize(h, true, NULL, NULL, "")) kdie("synchronize");
}

static void k_put_batch(void *h, const peer_kv *kv, size_t n, int sync) {
    TkrzwKeyValuePair recs[4096];
    for (size_t off = 0; off < n;) {
        size_t m = n - off < 4096 ? n - off : 4096;
        for (size_t i = 0; i < m; i++)
            recs[i] = (TkrzwKeyValuePair){(const char *)kv[off + i].k, (int32_t)kv[off + i].kl,
                                          (const char *)kv[off + i].v, (int32_t)kv[off + i].vl};
        if (!tkrzw_dbm_set_multi(h, recs, (int32_t)m, true)) kdie("set_multi");
        off += m;
    }
    if (sync) k_sync(h);
}

typedef struct getarg {
    const peer_kv *q;
    int found;
} getarg;

static const char *get_proc(void *arg, const char *k, int32_t kl, const char *v, int32_t vl, int32_t *out) {
    getarg *g = arg;
    (void)k;
    (void)kl;
    (void)out;
    if (v) {
        g->found = 1;
        peer_check_value(g->q, 1, v, (size_t)vl);
    } else {
        peer_check_value(g->q, 0, NULL, 0);
    }
    return TKRZW_REC_PROC_NOOP;
}

static size_t k_get_batch(void *h, const peer_kv *q, size_t n) {
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        getarg g = {&q[i], 0};
        if (!tkrzw_dbm_process(h, (const char *)q[i].k, (int32_t)q[i].kl, get_proc, &g, false)) kdie("process");
        hits += (size_t)g.found;
    }
    return hits;
}

static const char *scan_proc(void *arg, const char *k, int32_t kl, const char *v, int32_t vl, int32_t *out) {
    (void)out;
    if (k && v) {
        peer_visit(k, (size_t)kl, v, (size_t)vl);
        (*(uint64_t *)arg)++;
    }
    return TKRZW_REC_PROC_NOOP;
}

static uint64_t k_scan(void *h) {
    uint64_t count = 0;
    if (!tkrzw_dbm_process_each(h, scan_proc, &count, false)) kdie("process_each");
    return count;
}

static void k_put_durable(void *h, const peer_kv *kv) {
    if (!tkrzw_dbm_set(h, (const char *)kv->k, (int32_t)kv->kl, (const char *)kv->v, (int32_t)kv->vl, true))
        kdie("set");
    k_sync(h);
}

const peer_ops peer_tkrzw = {
    .name = "tkrzw",
    .settings =
        "- HashDBM (casket.tkh), update_mode=UPDATE_APPENDING, num_buckets=2000000, other "
        "parameters default (memory-mapped file, no compression, no record CRC)\n"
        "- bulk: one tkrzw_dbm_set_multi of the batch (Tkrzw has no transactions: not atomic); "
        "tkrzw_dbm_synchronize(hard) per batch only with --bulk-sync; "
        "tkrzw_dbm_synchronize(hard) at the end, inside the timing\n"
        "- durable: tkrzw_dbm_set + tkrzw_dbm_synchronize(hard=true) per write\n"
        "- reads: tkrzw_dbm_process with a read-only callback (no copy); scan: "
        "tkrzw_dbm_process_each, in hash order (unordered: not compared with ordered scans)\n",
    .ordered = 0,
    .open = k_open,
    .close = k_close,
    .put_batch = k_put_batch,
    .sync = k_sync,
    .get_batch = k_get_batch,
    .scan = k_scan,
    .put_durable = k_put_durable,
    .merge = NULL,
};
