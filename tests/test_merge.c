/*
 * test_merge.c -- contract tests of tome_merge (api.md, core part): after a
 * merge each key keeps only its newest version, the trash is emptied, the
 * history horizon moves up (tome_begin_at below it gives TOME_NOTFOUND while
 * seq 0 and the newest seq still work) and no seq is used; space held by
 * dropped versions is given back; a transaction open during a merge still
 * reads exactly what it saw and its commit still detects conflicts, until a
 * later merge drops that history; readers and writers in other threads keep
 * working while merges run; the history options (history_versions,
 * history_ms); and the state after a merge is the same after a reopen, by
 * the index file and by a full log scan (INDEX deleted), after a merge of
 * an empty store and after two merges in a row.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tome.h"
#include "common/store.h"
#include "tt.h"

static bool value_is(tome_txn *t, uint8_t slot, const char *key, const void *want, size_t wn) {
    const void *v = NULL;
    size_t n = 0;
    int rc = tome_get(t, slot, key, strlen(key), &v, &n);
    if (rc != TOME_OK || n != wn || (n && memcmp(v, want, n) != 0)) {
        fprintf(stderr, "  get(%u,%s): %s, %zu bytes, want %zu bytes\n", slot, key, tt_rcname(rc), n, wn);
        return false;
    }
    return true;
}

static bool unremoved_is(tome_txn *t, uint8_t slot, const char *key, const char *want) {
    const void *v = NULL;
    size_t n = 0;
    int rc = tome_get_unremoved(t, slot, key, strlen(key), &v, &n);
    if (!want) {
        if (rc == TOME_NOTFOUND) return true;
        fprintf(stderr, "  get_unremoved(%s): %s, want NOTFOUND\n", key, tt_rcname(rc));
        return false;
    }
    if (rc != TOME_OK || n != strlen(want) || memcmp(v, want, n) != 0) {
        fprintf(stderr, "  get_unremoved(%s): %s, want \"%s\"\n", key, tt_rcname(rc), want);
        return false;
    }
    return true;
}

static bool version_is(tome_txn *t, uint8_t slot, const char *key, uint64_t seq, const char *want) {
    const void *v = NULL;
    size_t n = 0;
    int rc = tome_get_version(t, slot, key, strlen(key), seq, &v, &n);
    if (!want) {
        if (rc == TOME_NOTFOUND) return true;
        fprintf(stderr, "  get_version(%s,%llu): %s, want NOTFOUND\n", key, (unsigned long long)seq,
                tt_rcname(rc));
        return false;
    }
    if (rc != TOME_OK || n != strlen(want) || memcmp(v, want, n) != 0) {
        fprintf(stderr, "  get_version(%s,%llu): %s, want \"%s\"\n", key, (unsigned long long)seq,
                tt_rcname(rc), want);
        return false;
    }
    return true;
}

/* Copies the versions of key as seen by t; returns the count or -1. */
static int seqs_of(tome_txn *t, uint8_t slot, const char *key, tome_version *out, int cap) {
    const tome_version *vs = NULL;
    size_t n = 0;
    int rc = tome_versions(t, slot, key, strlen(key), &vs, &n);
    if (rc != TOME_OK) {
        fprintf(stderr, "  versions(%s): %s\n", key, tt_rcname(rc));
        return -1;
    }
    for (size_t i = 0; i < n && (int)i < cap; i++) out[i] = vs[i];
    return (int)n;
}

/* Checks that (slot,key) in t has exactly the committed seqs given. */
#define CHECK_SEQS(t, slot, key, ...)                                              \
    do {                                                                           \
        static const uint64_t want_[] = {__VA_ARGS__};                             \
        const size_t nw_ = sizeof want_ / sizeof want_[0] - 1;                     \
        tome_version got_[16];                                                     \
        int n_ = seqs_of((t), (slot), (key), got_, 16);                            \
        if (n_ != (int)nw_) TT_FAIL_("versions of %s: %d, want %zu", (key), n_, nw_); \
        for (size_t i_ = 0; i_ < nw_; i_++)                                        \
            if (got_[i_].seq != want_[i_ + 1] || !got_[i_].committed)              \
                TT_FAIL_("versions of %s: #%zu has seq %llu, want %llu", (key), i_, \
                         (unsigned long long)got_[i_].seq, (unsigned long long)want_[i_ + 1]); \
    } while (0)
/* Usage: CHECK_SEQS(t, 0, "a", 0, 4, 5) -- the first 0 is a placeholder, so
 * "no versions" is CHECK_SEQS(t, 0, "a", 0). */

/* Checks the iteration of the whole slot against a list of keys. */
static bool iter_is(tome_txn *t, uint8_t slot, const char *const *keys, size_t n) {
    tome_iter *it = NULL;
    int rc = tome_iter_open(t, slot, NULL, 0, &it);
    if (rc != TOME_OK) {
        fprintf(stderr, "  iter_open: %s\n", tt_rcname(rc));
        return false;
    }
    const void *k;
    size_t kl;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        rc = tome_iter_next(it, &k, &kl);
        if (rc != TOME_OK || kl != strlen(keys[i]) || memcmp(k, keys[i], kl) != 0) {
            fprintf(stderr, "  iteration #%zu: %s, want %s\n", i, tt_rcname(rc), keys[i]);
            ok = false;
        }
    }
    if (ok && (rc = tome_iter_next(it, &k, &kl)) != TOME_NOTFOUND) {
        fprintf(stderr, "  iteration: extra key (%s)\n", tt_rcname(rc));
        ok = false;
    }
    tome_iter_close(it);
    return ok;
}

/* Dumps, reopens, dumps again and compares (directory stores only). */
static void reopen_same(tome_db **db, const char *path, const tome_options *o, const ts_key *keys, size_t n,
                        const char *what) {
    char *before = ts_dump(*db, keys, n, true);
    *db = ts_reopen(*db, path, o);
    CHECK(*db != NULL);
    char *after = ts_dump(*db, keys, n, true);
    bool same = ts_same(before, after, what);
    free(before);
    free(after);
    CHECK(same);
}

/* ------------------------------------------------------------------------ */
/* What a merge keeps and drops                                             */
/* ------------------------------------------------------------------------ */

static const ts_key basic_keys[] = {{0, "a", 1}, {0, "b", 1}, {0, "c", 1}, {0, "d", 1}, {0, "e", 1}};

/* Seqs: 1 a,b,c,d; 2 a; 3 -b; 4 a,-d; 5 d; 6 -e (never written). */
static void build_basic(tome_db *db) {
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_insert(t, 0, "a", 1, "a1", 2));
    CHECK_OK(tome_insert(t, 0, "b", 1, "b1", 2));
    CHECK_OK(tome_insert(t, 0, "c", 1, "c1", 2));
    CHECK_OK(tome_insert(t, 0, "d", 1, "d1", 2));
    CHECK_OK(tome_commit(t));
    CHECK_OK(ts_put(db, 0, "a", "a2"));
    CHECK_OK(ts_del(db, 0, "b"));
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_insert(t, 0, "a", 1, "a3", 2));
    CHECK_OK(tome_remove(t, 0, "d", 1));
    CHECK_OK(tome_commit(t));
    CHECK_OK(ts_put(db, 0, "d", "d3"));
    CHECK_OK(ts_del(db, 0, "e"));
    CHECK_U64(ts_seq(db), 6);
}

/* The state right after merging build_basic's history. */
static void check_basic_merged(tome_db *db, const tome_version *c_before) {
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    CHECK(value_is(t, 0, "a", "a3", 2));
    CHECK_SEQS(t, 0, "a", 0, 4);
    CHECK(version_is(t, 0, "a", 1, NULL));
    CHECK(version_is(t, 0, "a", 2, NULL));
    CHECK(version_is(t, 0, "a", 4, "a3"));
    CHECK(unremoved_is(t, 0, "a", "a3"));
    CHECK(ts_txn_has(t, 0, "b", NULL));
    CHECK(unremoved_is(t, 0, "b", NULL)); /* the trash is emptied */
    CHECK_SEQS(t, 0, "b", 0);
    CHECK(version_is(t, 0, "b", 1, NULL));
    CHECK(value_is(t, 0, "c", "c1", 2));
    tome_version v[2];
    CHECK_EQ(seqs_of(t, 0, "c", v, 2), 1);
    CHECK_U64(v[0].seq, 1);
    CHECK_U64(v[0].timestamp, c_before->timestamp); /* kept as it was */
    CHECK(!v[0].removed && v[0].committed);
    CHECK(value_is(t, 0, "d", "d3", 2));
    CHECK_SEQS(t, 0, "d", 0, 5);
    CHECK_SEQS(t, 0, "e", 0);
    static const char *const live[] = {"a", "c", "d"};
    CHECK(iter_is(t, 0, live, 3));
    tome_abort(t);
    CHECK_U64(ts_seq(db), 6); /* a merge uses no seq */
    tome_stats st;
    CHECK_OK(tome_stats_get(db, &st));
    CHECK_U64(st.keys, 3);
    CHECK_U64(st.keys_total, 3);
    CHECK_U64(st.versions, 3);
    CHECK_U64(st.last_seq, 6);
    CHECK_U64(st.horizon, 6);
    /* Time travel below the horizon is gone; 0 and the newest work. */
    for (uint64_t s = 1; s < 6; s++) {
        t = (tome_txn *)(void *)&t;
        int rc = tome_begin_at(db, s, &t);
        if (rc != TOME_NOTFOUND) TT_FAIL_("begin_at(%llu) after merge: %s", (unsigned long long)s, tt_rcname(rc));
        CHECK(t == NULL);
    }
    CHECK_OK(tome_begin_at(db, 0, &t));
    CHECK(ts_txn_has(t, 0, "a", NULL));
    static const char *const none[] = {NULL};
    CHECK(iter_is(t, 0, none, 0));
    tome_abort(t);
    CHECK_OK(tome_begin_at(db, 6, &t));
    CHECK(value_is(t, 0, "a", "a3", 2));
    CHECK(value_is(t, 0, "d", "d3", 2));
    CHECK(ts_txn_has(t, 0, "b", NULL));
    tome_abort(t);
    CHECK_RC(tome_begin_at(db, 7, &t), TOME_INVALID);
}

TT_TEST(merge_keeps_newest_and_empties_trash) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        build_basic(db);
        if (tt_failed_now) return;
        tome_version c_before[1];
        size_t n;
        CHECK_OK(ts_versions(db, 0, "c", 1, c_before, 1, &n));
        CHECK_OK(tome_merge(db));
        check_basic_merged(db, c_before);
        if (tt_failed_now) return;
        /* Commits go on from the same seq. */
        CHECK_OK(ts_put(db, 0, "b", "b7"));
        CHECK_U64(ts_seq(db), 7);
        tome_txn *t = NULL;
        CHECK_OK(tome_begin_at(db, 6, &t));
        CHECK(ts_txn_has(t, 0, "b", NULL));
        tome_abort(t);
        CHECK_OK(tome_begin_at(db, 7, &t));
        CHECK(ts_txn_has(t, 0, "b", "b7"));
        CHECK_SEQS(t, 0, "b", 0, 7);
        tome_abort(t);
        if (kind == TS_DIR) {
            reopen_same(&db, path, NULL, basic_keys, 5, "merged store after reopen");
            if (tt_failed_now) return;
            CHECK_RC(tome_begin_at(db, 3, &t), TOME_NOTFOUND);
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(merge_of_empty_store) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        CHECK_OK(tome_merge(db));
        CHECK_U64(ts_seq(db), 0);
        tome_stats st;
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 0);
        CHECK_U64(st.versions, 0);
        CHECK_U64(st.horizon, 0);
        tome_txn *t = NULL;
        CHECK_OK(tome_begin_at(db, 0, &t));
        tome_abort(t);
        CHECK_OK(ts_put(db, 0, "k", "v"));
        CHECK_U64(ts_seq(db), 1);
        /* A store holding only removals merges to empty. */
        CHECK_OK(ts_del(db, 0, "k"));
        CHECK_OK(ts_del(db, 1, "never"));
        CHECK_OK(tome_merge(db));
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 0);
        CHECK_U64(st.keys_total, 0);
        CHECK_U64(st.versions, 0);
        CHECK_U64(st.last_seq, 3);
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "k", NULL));
        CHECK_SEQS(t, 0, "k", 0);
        tome_abort(t);
        if (kind == TS_DIR) {
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            CHECK_U64(ts_seq(db), 3);
            CHECK(ts_has(db, 0, "k", NULL));
            CHECK_OK(ts_put(db, 0, "k", "again"));
            CHECK_U64(ts_seq(db), 4);
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(merge_twice_in_a_row) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        build_basic(db);
        if (tt_failed_now) return;
        tome_version c_before[1];
        size_t n;
        CHECK_OK(ts_versions(db, 0, "c", 1, c_before, 1, &n));
        CHECK_OK(tome_merge(db));
        char *first = ts_dump(db, basic_keys, 5, true);
        CHECK_OK(tome_merge(db));
        char *second = ts_dump(db, basic_keys, 5, true);
        bool same = ts_same(first, second, "second merge");
        free(first);
        free(second);
        CHECK(same);
        check_basic_merged(db, c_before);
        if (tt_failed_now) return;
        if (kind == TS_DIR) {
            reopen_same(&db, path, NULL, basic_keys, 5, "two merges then reopen");
            if (tt_failed_now) return;
            check_basic_merged(db, c_before);
            if (tt_failed_now) return;
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(merge_gives_space_back) {
    int nkeys = ts_short() ? 100 : 400, rounds = 40;
    const size_t vlen = 1024;
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 1u << 20;
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    uint8_t *val = malloc(vlen);
    CHECK(val != NULL);
    char key[16];
    for (int r = 0; r < rounds; r++) {
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        for (int k = 0; k < nkeys; k++) {
            snprintf(key, sizeof key, "key%04d", k);
            ts_fill(val, vlen, (uint64_t)r * 100000 + (uint64_t)k);
            CHECK_OK(tome_insert(t, 1, key, strlen(key), val, vlen));
        }
        CHECK_OK(tome_commit(t));
    }
    tome_stats before, after;
    CHECK_OK(tome_stats_get(db, &before));
    uint64_t files_before = ts_segment_bytes(path);
    CHECK(before.total_bytes >= (uint64_t)nkeys * rounds * vlen);
    CHECK_U64(before.versions, (uint64_t)nkeys * rounds);
    CHECK_OK(tome_merge(db));
    CHECK_OK(tome_stats_get(db, &after));
    uint64_t files_after = ts_segment_bytes(path);
    if (after.total_bytes * 2 >= before.total_bytes)
        TT_FAIL_("total_bytes %llu -> %llu: the space of %d dropped versions was not given back",
                 (unsigned long long)before.total_bytes, (unsigned long long)after.total_bytes,
                 nkeys * (rounds - 1));
    if (files_after * 2 >= files_before)
        TT_FAIL_("segment files %llu -> %llu bytes", (unsigned long long)files_before,
                 (unsigned long long)files_after);
    CHECK_U64(after.versions, (uint64_t)nkeys);
    CHECK_U64(after.keys, (uint64_t)nkeys);
    CHECK_U64(after.live_bytes, before.live_bytes);
    for (int pass = 0; pass < 2; pass++) {
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        for (int k = 0; k < nkeys; k++) {
            snprintf(key, sizeof key, "key%04d", k);
            ts_fill(val, vlen, (uint64_t)(rounds - 1) * 100000 + (uint64_t)k);
            CHECK(value_is(t, 1, key, val, vlen));
        }
        tome_abort(t);
        if (pass == 0) {
            db = ts_reopen(db, path, &o);
            CHECK(db != NULL);
            CHECK(ts_segment_bytes(path) * 2 < files_before);
        }
    }
    free(val);
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Merging under open transactions and concurrent work                      */
/* ------------------------------------------------------------------------ */

/* What t1 (begun after seq 3) sees in merge_during_open_transaction. */
static void check_t1_view(tome_txn *t1, const tome_version *a_vers) {
    CHECK(value_is(t1, 0, "a", "a2", 2));
    tome_version v[4];
    CHECK_EQ(seqs_of(t1, 0, "a", v, 4), 2);
    for (int i = 0; i < 2; i++) {
        CHECK_U64(v[i].seq, a_vers[i].seq);
        CHECK_U64(v[i].timestamp, a_vers[i].timestamp);
        CHECK(!v[i].removed && v[i].committed);
    }
    CHECK(version_is(t1, 0, "a", 1, "a1"));
    CHECK(version_is(t1, 0, "a", 2, "a2"));
    CHECK(ts_txn_has(t1, 0, "b", NULL));
    CHECK(unremoved_is(t1, 0, "b", "b1"));
    CHECK_SEQS(t1, 0, "b", 0, 1, 3);
    CHECK(value_is(t1, 0, "c", "c1", 2));
    static const char *const keys[] = {"a", "c", "z"};
    CHECK(iter_is(t1, 0, keys, 3));
    uint64_t lu = 0;
    CHECK_OK(tome_last_updated(t1, &lu));
}

TT_TEST(merge_during_open_transaction) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL, *t1 = NULL, *tz = NULL, *ta = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 0, "a", 1, "a1", 2));
        CHECK_OK(tome_insert(t, 0, "b", 1, "b1", 2));
        CHECK_OK(tome_insert(t, 0, "c", 1, "c1", 2));
        CHECK_OK(tome_insert(t, 0, "z", 1, "z1", 2));
        CHECK_OK(tome_commit(t));                 /* 1 */
        CHECK_OK(ts_put(db, 0, "a", "a2"));       /* 2 */
        CHECK_OK(ts_del(db, 0, "b"));             /* 3 */
        tome_version a_vers[2];
        size_t n;
        CHECK_OK(ts_versions(db, 0, "a", 1, a_vers, 2, &n));
        CHECK_EQ(n, 2);
        CHECK_OK(tome_begin(db, &t1));
        CHECK_OK(tome_begin(db, &tz));
        CHECK_OK(tome_begin_at(db, 1, &ta));
        check_t1_view(t1, a_vers);
        if (tt_failed_now) return;
        CHECK(value_is(tz, 0, "z", "z1", 2));
        /* Others change a and c; then merge. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 0, "a", 1, "a4", 2));
        CHECK_OK(tome_remove(t, 0, "c", 1));
        CHECK_OK(tome_commit(t));                 /* 4 */
        CHECK_OK(tome_merge(db));
        CHECK_OK(tome_merge(db));                 /* twice: still kept for t1 */
        /* t1 reads exactly what it saw, including what it had not read yet. */
        check_t1_view(t1, a_vers);
        if (tt_failed_now) return;
        /* The historical transaction too. */
        CHECK(value_is(ta, 0, "a", "a1", 2));
        CHECK(value_is(ta, 0, "b", "b1", 2));
        CHECK(value_is(ta, 0, "c", "c1", 2));
        CHECK_SEQS(ta, 0, "a", 0, 1);
        /* The horizon moved: new historical transactions below it are refused. */
        tome_txn *tx = NULL;
        CHECK_RC(tome_begin_at(db, 1, &tx), TOME_NOTFOUND);
        CHECK_RC(tome_begin_at(db, 3, &tx), TOME_NOTFOUND);
        CHECK_OK(tome_begin_at(db, 4, &tx));
        CHECK(value_is(tx, 0, "a", "a4", 2));
        tome_abort(tx);
        /* tz read only z, which nobody changed: commits. */
        CHECK_OK(tome_insert(tz, 0, "y", 1, "y1", 2));
        CHECK_OK(tome_commit(tz));                /* 5 */
        /* t1 read a and c, which changed: conflict, nothing written. */
        CHECK_OK(tome_insert(t1, 0, "x", 1, "x1", 2));
        CHECK_RC(tome_commit(t1), TOME_CONFLICT);
        CHECK(ts_has(db, 0, "x", NULL));
        CHECK_U64(ts_seq(db), 5);
        /* While ta is open, its history is still there. */
        CHECK(value_is(ta, 0, "b", "b1", 2));
        tome_abort(ta);
        /* Everyone ended: another merge drops that history. */
        CHECK_OK(tome_merge(db));
        CHECK_OK(tome_begin(db, &t));
        CHECK_SEQS(t, 0, "a", 0, 4);
        CHECK(version_is(t, 0, "a", 1, NULL));
        CHECK(version_is(t, 0, "a", 2, NULL));
        CHECK(unremoved_is(t, 0, "b", NULL));
        CHECK_SEQS(t, 0, "b", 0);
        CHECK(unremoved_is(t, 0, "c", NULL));
        CHECK_SEQS(t, 0, "c", 0);
        CHECK(value_is(t, 0, "a", "a4", 2));
        CHECK(value_is(t, 0, "y", "y1", 2));
        CHECK(value_is(t, 0, "z", "z1", 2));
        static const char *const keys[] = {"a", "y", "z"};
        CHECK(iter_is(t, 0, keys, 3));
        tome_abort(t);
        tome_stats st;
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 3);
        CHECK_U64(st.keys_total, 3);
        CHECK_U64(st.versions, 3);
        CHECK_U64(st.horizon, 5);
        if (kind == TS_DIR) {
            static const ts_key k[] = {{0, "a", 1}, {0, "b", 1}, {0, "c", 1}, {0, "x", 1}, {0, "y", 1},
                                       {0, "z", 1}};
            reopen_same(&db, path, NULL, k, 6, "after merges around open transactions");
            if (tt_failed_now) return;
        }
        CHECK_OK(tome_close(db));
    }
}

/* Concurrency: one writer commits w/i and ctr=i in each transaction and,
 * every 10th, removes w/(i-5); two incrementers do read-modify-write on
 * "rmw" with retries; a reader checks consistent snapshots; the main thread
 * merges meanwhile. */
struct conc {
    tome_db *db;
    int n, incs;
    atomic_int writer_done;
    atomic_int errors;
    char first_error[200];
    pthread_mutex_t mu;
};

static void conc_fail(struct conc *c, const char *what, int rc) {
    pthread_mutex_lock(&c->mu);
    if (atomic_fetch_add(&c->errors, 1) == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s: %s", what, tt_rcname(rc));
    pthread_mutex_unlock(&c->mu);
}

static void conc_value(int i, char *buf, size_t cap) {
    snprintf(buf, cap, "val-%d-%llx", i, (unsigned long long)(i * UINT64_C(2654435761)));
}

/* Whether w/j is present after commit ctr=c. */
static bool conc_present(int j, int c) {
    return j <= c && !(j + 5 <= c && (j + 5) % 10 == 0);
}

static void *conc_writer(void *arg) {
    struct conc *c = arg;
    char key[16], val[48], ctr[16];
    for (int i = 0; i < c->n; i++) {
        tome_txn *t = NULL;
        int rc = tome_begin(c->db, &t);
        if (rc != TOME_OK) {
            conc_fail(c, "writer begin", rc);
            break;
        }
        snprintf(key, sizeof key, "w/%05d", i);
        conc_value(i, val, sizeof val);
        int cl = snprintf(ctr, sizeof ctr, "%d", i);
        rc = tome_insert(t, 0, key, strlen(key), val, strlen(val));
        if (rc == TOME_OK) rc = tome_insert(t, 1, "ctr", 3, ctr, (size_t)cl);
        if (rc == TOME_OK && i >= 5 && i % 10 == 0) {
            snprintf(key, sizeof key, "w/%05d", i - 5);
            rc = tome_remove(t, 0, key, strlen(key));
        }
        if (rc != TOME_OK) {
            tome_abort(t);
            conc_fail(c, "writer write", rc);
            break;
        }
        rc = tome_commit(t);
        if (rc != TOME_OK) {
            conc_fail(c, "writer commit", rc);
            break;
        }
    }
    atomic_store(&c->writer_done, 1);
    return NULL;
}

static void *conc_incrementer(void *arg) {
    struct conc *c = arg;
    for (int i = 0; i < c->incs; i++) {
        for (int attempt = 0;; attempt++) {
            tome_txn *t = NULL;
            int rc = tome_begin(c->db, &t);
            if (rc != TOME_OK) {
                conc_fail(c, "incrementer begin", rc);
                return NULL;
            }
            const void *v;
            size_t n;
            long cur = 0;
            rc = tome_get(t, 2, "rmw", 3, &v, &n);
            if (rc == TOME_OK) {
                char buf[32];
                memcpy(buf, v, n < 31 ? n : 31);
                buf[n < 31 ? n : 31] = 0;
                cur = strtol(buf, NULL, 10);
            } else if (rc != TOME_NOTFOUND) {
                tome_abort(t);
                conc_fail(c, "incrementer get", rc);
                return NULL;
            }
            char out[32];
            int ol = snprintf(out, sizeof out, "%ld", cur + 1);
            rc = tome_insert(t, 2, "rmw", 3, out, (size_t)ol);
            if (rc != TOME_OK) {
                tome_abort(t);
                conc_fail(c, "incrementer insert", rc);
                return NULL;
            }
            rc = tome_commit(t);
            if (rc == TOME_OK) break;
            if (rc != TOME_CONFLICT || attempt > 100000) {
                conc_fail(c, "incrementer commit", rc);
                return NULL;
            }
        }
    }
    return NULL;
}

/* Checks one snapshot: ctr=c, the sampled w/j, and the count of w/ keys. */
static bool conc_check_snapshot(struct conc *c, tome_txn *t, uint64_t *rng, bool full) {
    const void *v;
    size_t n;
    int rc = tome_get(t, 1, "ctr", 3, &v, &n);
    int cur = -1;
    if (rc == TOME_OK) {
        char buf[16];
        memcpy(buf, v, n < 15 ? n : 15);
        buf[n < 15 ? n : 15] = 0;
        cur = atoi(buf);
    } else if (rc != TOME_NOTFOUND) {
        conc_fail(c, "reader get ctr", rc);
        return false;
    }
    char key[16], val[48];
    int samples = full ? c->n + 1 : 12;
    for (int s = 0; s < samples; s++) {
        int j = full ? s : (s == 0 ? cur : s == 1 ? cur + 1 : (int)(ts_rand(rng) % (uint64_t)(cur + 2)));
        if (j < 0) continue;
        snprintf(key, sizeof key, "w/%05d", j);
        rc = tome_get(t, 0, key, strlen(key), &v, &n);
        bool want = conc_present(j, cur);
        if (want) {
            conc_value(j, val, sizeof val);
            if (rc != TOME_OK || n != strlen(val) || memcmp(v, val, n) != 0) {
                char what[64];
                snprintf(what, sizeof what, "snapshot ctr=%d: w/%05d wrong", cur, j);
                conc_fail(c, what, rc);
                return false;
            }
        } else if (rc != TOME_NOTFOUND) {
            char what[64];
            snprintf(what, sizeof what, "snapshot ctr=%d: w/%05d should be absent", cur, j);
            conc_fail(c, what, rc);
            return false;
        }
    }
    int want_count = 0;
    for (int j = 0; j <= cur; j++) want_count += conc_present(j, cur);
    tome_iter *it = NULL;
    rc = tome_iter_open(t, 0, "w/", 2, &it);
    if (rc != TOME_OK) {
        conc_fail(c, "reader iter_open", rc);
        return false;
    }
    int count = 0;
    const void *k;
    size_t kl;
    while ((rc = tome_iter_next(it, &k, &kl)) == TOME_OK) count++;
    tome_iter_close(it);
    if (rc != TOME_NOTFOUND || count != want_count) {
        char what[80];
        snprintf(what, sizeof what, "snapshot ctr=%d: iteration gave %d keys, want %d", cur, count, want_count);
        conc_fail(c, what, rc);
        return false;
    }
    return true;
}

static void *conc_reader(void *arg) {
    struct conc *c = arg;
    uint64_t rng = 77;
    while (!atomic_load(&c->writer_done) && atomic_load(&c->errors) == 0) {
        tome_txn *t = NULL;
        int rc = tome_begin(c->db, &t);
        if (rc != TOME_OK) {
            conc_fail(c, "reader begin", rc);
            break;
        }
        bool ok = conc_check_snapshot(c, t, &rng, false);
        rc = tome_commit(t); /* read-only: always OK */
        if (rc != TOME_OK) conc_fail(c, "reader commit", rc);
        if (!ok || rc != TOME_OK) break;
    }
    return NULL;
}

TT_TEST(merge_while_threads_read_and_write) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_options o;
        tome_options_init(&o);
        o.sync = TOME_SYNC_NONE;
        o.segment_size = 1u << 20;
        char path[TS_PATH_MAX];
        static struct conc c;
        memset(&c, 0, sizeof c);
        pthread_mutex_init(&c.mu, NULL);
        c.db = ts_new(kind, path, &o);
        CHECK(c.db != NULL);
        c.n = ts_short() ? 200 : 1500;
        c.incs = ts_short() ? 50 : 300;
        pthread_t w, r, i1, i2;
        CHECK_EQ(pthread_create(&w, NULL, conc_writer, &c), 0);
        CHECK_EQ(pthread_create(&r, NULL, conc_reader, &c), 0);
        CHECK_EQ(pthread_create(&i1, NULL, conc_incrementer, &c), 0);
        CHECK_EQ(pthread_create(&i2, NULL, conc_incrementer, &c), 0);
        int merges = 0, merge_rc = TOME_OK;
        while ((!atomic_load(&c.writer_done) || merges < 3) && merge_rc == TOME_OK) {
            merge_rc = tome_merge(c.db);
            merges++;
        }
        pthread_join(w, NULL);
        pthread_join(r, NULL);
        pthread_join(i1, NULL);
        pthread_join(i2, NULL);
        CHECK_OK(merge_rc);
        if (atomic_load(&c.errors)) TT_FAIL_("%d thread errors; first: %s", atomic_load(&c.errors), c.first_error);
        CHECK_OK(tome_merge(c.db));
        for (int pass = 0; pass < 2; pass++) {
            tome_txn *t = NULL;
            uint64_t rng = 5;
            CHECK_OK(tome_begin(c.db, &t));
            if (!conc_check_snapshot(&c, t, &rng, true)) TT_FAIL_("%s, after the merges%s: %s", kind == TS_MEM ? ":memory:" : "dir",
                         pass ? " and a reopen" : "", c.first_error);
            char want[16];
            snprintf(want, sizeof want, "%d", c.n - 1);
            CHECK(ts_txn_has(t, 1, "ctr", want));
            snprintf(want, sizeof want, "%d", 2 * c.incs);
            CHECK(ts_txn_has(t, 2, "rmw", want)); /* no increment lost */
            tome_abort(t);
            /* Every commit used one seq, none was lost. */
            CHECK_U64(ts_seq(c.db), (uint64_t)c.n + 2u * (uint64_t)c.incs);
            if (kind == TS_MEM) break;
            c.db = ts_reopen(c.db, path, &o);
            CHECK(c.db != NULL);
        }
        CHECK_OK(tome_close(c.db));
        pthread_mutex_destroy(&c.mu);
    }
}

/* ------------------------------------------------------------------------ */
/* History options                                                          */
/* ------------------------------------------------------------------------ */

TT_TEST(history_versions_keeps_newest_three) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_options o;
        tome_options_init(&o);
        o.history_versions = 3;
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, &o);
        CHECK(db != NULL);
        char v[8];
        for (int i = 1; i <= 6; i++) { /* a: seqs 1..6 */
            snprintf(v, sizeof v, "a%d", i);
            CHECK_OK(ts_put(db, 0, "a", v));
        }
        CHECK_OK(ts_put(db, 0, "b", "b7"));
        CHECK_OK(ts_put(db, 0, "b", "b8"));
        CHECK_OK(ts_put(db, 0, "c", "c9"));
        CHECK_OK(tome_merge(db));
        for (int pass = 0; pass < 2; pass++) {
            tome_txn *t = NULL;
            CHECK_OK(tome_begin(db, &t));
            CHECK_SEQS(t, 0, "a", 0, 4, 5, 6);
            CHECK(version_is(t, 0, "a", 3, NULL));
            CHECK(version_is(t, 0, "a", 4, "a4"));
            CHECK(version_is(t, 0, "a", 5, "a5"));
            CHECK(version_is(t, 0, "a", 6, "a6"));
            CHECK(value_is(t, 0, "a", "a6", 2));
            CHECK_SEQS(t, 0, "b", 0, 7, 8);
            CHECK(version_is(t, 0, "b", 7, "b7"));
            CHECK_SEQS(t, 0, "c", 0, 9);
            tome_abort(t);
            CHECK_U64(ts_seq(db), 9);
            if (kind == TS_MEM) break;
            db = ts_reopen(db, path, &o);
            CHECK(db != NULL);
        }
        /* One more version of a, merge: the window moves on. */
        CHECK_OK(ts_put(db, 0, "a", "a10"));
        CHECK_OK(tome_merge(db));
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_SEQS(t, 0, "a", 0, 5, 6, 10);
        CHECK(version_is(t, 0, "a", 4, NULL));
        CHECK(version_is(t, 0, "a", 10, "a10"));
        CHECK_SEQS(t, 0, "b", 0, 7, 8);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

static const ts_key hist_keys[] = {{0, "a", 1}, {0, "b", 1}, {1, "a", 1}, {0, "never", 5}};

TT_TEST(history_ms_keeps_every_version) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_options o;
        tome_options_init(&o);
        o.history_ms = 3600u * 1000u; /* an hour: all of this test */
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, &o);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "a", "a1"));  /* 1 */
        CHECK_OK(ts_put(db, 0, "b", "b2"));  /* 2 */
        CHECK_OK(ts_put(db, 0, "a", "a3"));  /* 3 */
        CHECK_OK(ts_del(db, 0, "a"));        /* 4 */
        CHECK_OK(ts_put(db, 1, "a", "x5"));  /* 5 */
        CHECK_OK(ts_del(db, 0, "b"));        /* 6 */
        CHECK_OK(ts_put(db, 0, "a", "a7"));  /* 7 */
        enum { NS = 8 };
        char *at[NS], *now = ts_dump(db, hist_keys, 4, false);
        for (int s = 0; s < NS; s++) at[s] = ts_dump_at(db, (uint64_t)s, hist_keys, 4);
        CHECK_OK(tome_merge(db));
        for (int pass = 0; pass < 2; pass++) {
            char *after = ts_dump(db, hist_keys, 4, false);
            bool same = ts_same(now, after, "history_ms: current state after merge");
            free(after);
            CHECK(same);
            for (int s = 0; s < NS; s++) {
                char *a = ts_dump_at(db, (uint64_t)s, hist_keys, 4);
                char what[64];
                snprintf(what, sizeof what, "history_ms: begin_at(%d) after merge%s", s,
                         pass ? " and reopen" : "");
                same = ts_same(at[s], a, what);
                free(a);
                CHECK(same);
            }
            if (kind == TS_MEM) break;
            db = ts_reopen(db, path, &o);
            CHECK(db != NULL);
        }
        /* The trash is still readable: its removal is recent. */
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "b", "b2"));
        CHECK_SEQS(t, 0, "a", 0, 1, 3, 4, 7);
        tome_abort(t);
        CHECK_OK(tome_begin_at(db, 3, &t));
        CHECK(value_is(t, 0, "a", "a3", 2));
        tome_abort(t);
        for (int s = 0; s < NS; s++) free(at[s]);
        free(now);
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* Reopen paths after a merge                                               */
/* ------------------------------------------------------------------------ */

TT_TEST(merge_then_writes_reopen_by_index_and_by_scan) {
    static const ts_key keys[] = {{0, "a", 1}, {0, "b", 1}, {0, "c", 1}, {0, "d", 1}, {0, "e", 1},
                                  {0, "f", 1}, {3, "k", 1}, {0, "g", 1}};
    const size_t nk = sizeof keys / sizeof keys[0];
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 1u << 20;
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    build_basic(db);                         /* 1..6 */
    if (tt_failed_now) return;
    /* Enough data to need several segments. */
    uint8_t *big = malloc(200000);
    CHECK(big != NULL);
    for (int i = 0; i < 12; i++) {
        ts_fill(big, 200000, (uint64_t)i);
        CHECK_OK(ts_putm(db, 3, "k", 1, big, 200000));   /* 7..18 */
    }
    CHECK_OK(tome_merge(db));
    uint64_t horizon = 18;
    /* Writes after the merge: overwrite, remove, new, a key back from an emptied trash. */
    CHECK_OK(ts_put(db, 0, "a", "a19"));     /* 19 */
    CHECK_OK(ts_del(db, 0, "c"));            /* 20 */
    CHECK_OK(ts_put(db, 0, "f", "f21"));     /* 21 */
    CHECK_OK(ts_put(db, 0, "b", "b22"));     /* 22 */
    CHECK_OK(ts_put(db, 0, "a", "a23"));     /* 23 */
    CHECK_OK(ts_del(db, 0, "g"));            /* 24 */
    CHECK_U64(ts_seq(db), 24);
    char *d0 = ts_dump(db, keys, nk, true);
    char *h0[8];
    for (int i = 0; i < 8; i++) h0[i] = ts_dump_at(db, horizon + (uint64_t)i - 1, keys, nk);
    CHECK_OK(tome_close(db));
    CHECK(ts_file_exists(path, "INDEX"));
    for (int path_kind = 0; path_kind < 2; path_kind++) {
        if (path_kind == 1) CHECK(ts_unlink(path, "INDEX"));
        db = ts_open(path, &o);
        CHECK(db != NULL);
        const char *how = path_kind ? "reopen by log scan" : "reopen by index";
        char *d = ts_dump(db, keys, nk, true);
        bool same = ts_same(d0, d, how);
        free(d);
        CHECK(same);
        for (int i = 0; i < 8; i++) {
            d = ts_dump_at(db, horizon + (uint64_t)i - 1, keys, nk);
            same = ts_same(h0[i], d, how);
            free(d);
            CHECK(same);
        }
        tome_txn *t = NULL;
        CHECK_RC(tome_begin_at(db, 5, &t), TOME_NOTFOUND);
        CHECK_OK(tome_begin(db, &t));
        CHECK(value_is(t, 0, "a", "a23", 3));
        CHECK(value_is(t, 0, "b", "b22", 3));
        CHECK(ts_txn_has(t, 0, "c", NULL));
        CHECK(unremoved_is(t, 0, "c", "c1"));
        CHECK(value_is(t, 3, "k", big, 200000)); /* the last of the 12 */
        CHECK_SEQS(t, 0, "a", 0, 4, 19, 23);
        CHECK_SEQS(t, 3, "k", 0, 18);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
    free(d0);
    for (int i = 0; i < 8; i++) free(h0[i]);
    free(big);
}

TT_MAIN()
