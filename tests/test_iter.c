/*
 * test_iter.c -- tome_iter_value: the value of the key an iteration
 * returned, with the same answers as tome_get (pending writes first, cached,
 * a point read for conflicts), on a directory store and in memory; and
 * merges under steady load, where some transaction is always open.
 */
#include <stdio.h>
#include <string.h>

#include "tt.h"
#include "../include/tome.h"

static tome_db *open_store(int mem) {
    char path[700];
    if (mem) snprintf(path, sizeof path, ":memory:");
    else snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    tome_db *db = NULL;
    return tome_open(path, NULL, &db) == TOME_OK ? db : NULL;
}

static int put(tome_db *db, uint8_t slot, const char *k, const char *v) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    rc = v ? tome_insert(t, slot, k, strlen(k), v, strlen(v)) : tome_remove(t, slot, k, strlen(k));
    if (rc) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

TT_TEST(values_during_a_scan) {
    for (int mem = 0; mem < 2; mem++) {
        tome_db *db = open_store(mem);
        CHECK(db != NULL);
        char k[16], v[32];
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof k, "k%03d", i);
            snprintf(v, sizeof v, "value-%d", i * 7);
            CHECK_OK(put(db, 3, k, v));
        }
        CHECK_OK(put(db, 3, "k005", NULL));          /* removed: not iterated */
        CHECK_OK(put(db, 3, "k010", "overwritten")); /* newest version */
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 3, "k020", 4, "pending", 7)); /* pending write first */
        CHECK_OK(tome_remove(t, 3, "k030", 4));               /* pending removal hides */
        CHECK_OK(tome_insert(t, 3, "k999", 4, "new", 3));     /* pending new key */
        tome_iter *it;
        CHECK_OK(tome_iter_open(t, 3, "k", 1, &it));
        const void *kp, *vp;
        size_t kl, vl;
        CHECK_RC(tome_iter_value(it, &vp, &vl), TOME_MISUSE);
        int n = 0;
        while (tome_iter_next(it, &kp, &kl) == TOME_OK) {
            char key[16];
            CHECK(kl < sizeof key);
            memcpy(key, kp, kl);
            key[kl] = 0;
            CHECK_OK(tome_iter_value(it, &vp, &vl));
            char want[32];
            int i = -1;
            sscanf(key, "k%d", &i);
            if (!strcmp(key, "k010")) snprintf(want, sizeof want, "overwritten");
            else if (!strcmp(key, "k020")) snprintf(want, sizeof want, "pending");
            else if (!strcmp(key, "k999")) snprintf(want, sizeof want, "new");
            else snprintf(want, sizeof want, "value-%d", i * 7);
            CHECK_STRMEM(vp, vl, want);
            /* the same memory as tome_get, which is cached */
            const void *gp;
            size_t gl;
            CHECK_OK(tome_get(t, 3, kp, kl, &gp, &gl));
            CHECK_MEM(gp, gl, vp, vl);
            CHECK(strcmp(key, "k005") != 0 && strcmp(key, "k030") != 0);
            n++;
        }
        CHECK_EQ(n, 300 - 2 + 1);
        tome_iter_close(it);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

/* In a read-only (historical) transaction: the values as of its commit. */
TT_TEST(values_in_a_historical_transaction) {
    tome_db *db = open_store(0);
    CHECK(db != NULL);
    CHECK_OK(put(db, 1, "x1", "old1"));
    CHECK_OK(put(db, 1, "x2", "old2"));
    uint64_t at;
    CHECK_OK(tome_last_seq(db, &at));
    CHECK_OK(put(db, 1, "x1", "new1"));
    CHECK_OK(put(db, 1, "x2", NULL));
    CHECK_OK(put(db, 1, "x3", "new3"));
    tome_txn *t;
    CHECK_OK(tome_begin_at(db, at, &t));
    tome_iter *it;
    CHECK_OK(tome_iter_open(t, 1, "x", 1, &it));
    const void *kp, *vp;
    size_t kl, vl;
    CHECK_OK(tome_iter_next(it, &kp, &kl));
    CHECK_STRMEM(kp, kl, "x1");
    CHECK_OK(tome_iter_value(it, &vp, &vl));
    CHECK_STRMEM(vp, vl, "old1");
    CHECK_OK(tome_iter_next(it, &kp, &kl));
    CHECK_STRMEM(kp, kl, "x2");
    CHECK_OK(tome_iter_value(it, &vp, &vl));
    CHECK_STRMEM(vp, vl, "old2");
    CHECK_RC(tome_iter_next(it, &kp, &kl), TOME_NOTFOUND);
    CHECK_OK(tome_get(t, 1, "x2", 2, &vp, &vl));
    CHECK_STRMEM(vp, vl, "old2");
    CHECK_RC(tome_get(t, 1, "x3", 2, &vp, &vl), TOME_NOTFOUND);
    tome_iter_close(it);
    CHECK_OK(tome_commit(t));
    CHECK_OK(tome_close(db));
}

TT_TEST(value_read_joins_the_read_set) {
    tome_db *db = open_store(0);
    CHECK(db != NULL);
    CHECK_OK(put(db, 0, "a", "1"));
    CHECK_OK(put(db, 0, "b", "2"));
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    tome_iter *it;
    CHECK_OK(tome_iter_open(t, 0, "a", 1, &it));
    const void *kp, *vp;
    size_t kl, vl;
    CHECK_OK(tome_iter_next(it, &kp, &kl));
    CHECK_OK(tome_iter_value(it, &vp, &vl));
    CHECK_STRMEM(vp, vl, "1");
    tome_iter_close(it);
    /* another transaction changes the value of "a" (still present): the
     * iteration alone would not conflict, the value read does */
    CHECK_OK(put(db, 0, "a", "changed"));
    CHECK_OK(tome_insert(t, 0, "b", 1, "3", 1));
    CHECK_RC(tome_commit(t), TOME_CONFLICT);
    CHECK_OK(tome_close(db));
}

/* A reader transaction is always open (each begun before the previous one
 * ends, as overlapping requests do); 16 keys are overwritten 400 times and a
 * merge runs every 20 commits. Each open transaction holds back only what
 * it can see, so every merge gives space back: the versions held stay near
 * 16 plus what the open snapshot still sees, never growing with the
 * history; and what the open reader sees never changes under it. */
TT_TEST(merge_under_steady_load_gives_space_back) {
    tome_db *db = open_store(0);
    CHECK(db != NULL);
    tome_txn *reader;
    CHECK_OK(tome_begin(db, &reader));
    uint64_t most = 0;
    for (int i = 0; i < 400; i++) {
        char k[8], v[16];
        snprintf(k, sizeof k, "k%d", i % 16);
        snprintf(v, sizeof v, "v%d", i);
        CHECK_OK(put(db, 0, k, v));
        tome_txn *next;
        CHECK_OK(tome_begin(db, &next));
        /* the reader sees its snapshot, merges or not */
        const void *vp;
        size_t vl;
        if (i >= 16) {
            int rc = tome_get(reader, 0, k, strlen(k), &vp, &vl);
            CHECK_OK(rc);
        }
        tome_abort(reader);
        reader = next;
        if (i % 20 == 19) {
            CHECK_OK(tome_merge(db));
            tome_stats st;
            CHECK_OK(tome_stats_get(db, &st));
            if (st.versions > most) most = st.versions;
        }
    }
    /* bounded by the keys plus a merge interval's worth, not by 400 */
    CHECK(most <= 16 + 2 * 20);
    tome_abort(reader);
    CHECK_OK(tome_merge(db));
    tome_stats st;
    CHECK_OK(tome_stats_get(db, &st));
    CHECK_U64(st.versions, 16);
    CHECK_OK(tome_close(db));
}

TT_MAIN()
