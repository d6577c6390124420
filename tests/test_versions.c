/*
 * test_versions.c -- contract tests of version history (api.md, core part):
 * tome_versions (oldest first, seq/timestamp/removed/committed, the pending
 * write last), tome_get_version by seq (removals, seq 0 for the pending
 * write, versions not visible), tome_get_unremoved (reading the trash),
 * tome_last_updated, and time travel with tome_begin_at: a history of
 * commits is built next to a reference model and every key is checked at
 * every seq, on ":memory:" and on a directory store, also after a reopen
 * with the index file and after a reopen by full log scan (INDEX deleted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tome.h"
#include "common/store.h"
#include "tt.h"

/* Reads (slot,key) version seq in t and compares with want (NULL: NOTFOUND). */
static bool version_is(tome_txn *t, uint8_t slot, const char *key, uint64_t seq, const char *want) {
    const void *v = NULL;
    size_t n = 0;
    int rc = tome_get_version(t, slot, key, strlen(key), seq, &v, &n);
    if (!want) {
        if (rc == TOME_NOTFOUND) return true;
        fprintf(stderr, "  get_version(%s, %llu): %s, want NOTFOUND\n", key, (unsigned long long)seq,
                tt_rcname(rc));
        return false;
    }
    if (rc != TOME_OK || n != strlen(want) || (n && memcmp(v, want, n) != 0)) {
        fprintf(stderr, "  get_version(%s, %llu): %s \"%.*s\", want \"%s\"\n", key, (unsigned long long)seq,
                tt_rcname(rc), rc == TOME_OK ? (int)n : 0, rc == TOME_OK ? (const char *)v : "", want);
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
    if (rc != TOME_OK || n != strlen(want) || (n && memcmp(v, want, n) != 0)) {
        fprintf(stderr, "  get_unremoved(%s): %s \"%.*s\", want \"%s\"\n", key, tt_rcname(rc),
                rc == TOME_OK ? (int)n : 0, rc == TOME_OK ? (const char *)v : "", want);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* tome_versions                                                            */
/* ------------------------------------------------------------------------ */

TT_TEST(versions_oldest_first_then_pending) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 2, "k", "v1"));      /* seq 1 */
        CHECK_OK(ts_put(db, 2, "other", "o"));   /* seq 2 */
        CHECK_OK(ts_put(db, 2, "k", "v3"));      /* seq 3 */
        CHECK_OK(ts_del(db, 2, "k"));            /* seq 4 */
        CHECK_OK(ts_put(db, 2, "k", "v5"));      /* seq 5 */
        tome_stats st;
        CHECK_OK(tome_stats_get(db, &st));
        tome_txn *t = NULL;
        const tome_version *vs = NULL, *vo = NULL;
        size_t n = 0, no = 0;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_versions(t, 2, "k", 1, &vs, &n));
        CHECK_EQ(n, 4);
        static const uint64_t seqs[4] = {1, 3, 4, 5};
        static const bool removed[4] = {false, false, true, false};
        for (size_t i = 0; i < 4; i++) {
            CHECK_U64(vs[i].seq, seqs[i]);
            CHECK_EQ(vs[i].removed, removed[i]);
            CHECK(vs[i].committed);
            if (i) CHECK(vs[i - 1].timestamp <= vs[i].timestamp);
        }
        CHECK_U64(vs[3].timestamp, st.last_timestamp);
        /* The array stays valid while the transaction reads on. */
        CHECK_OK(tome_versions(t, 2, "other", 5, &vo, &no));
        CHECK_EQ(no, 1);
        CHECK_U64(vo[0].seq, 2);
        CHECK(ts_txn_has(t, 2, "k", "v5"));
        CHECK_U64(vs[0].seq, 1);
        CHECK_U64(vs[2].seq, 4);
        CHECK(vs[2].removed);
        uint64_t ts_other = vo[0].timestamp;
        CHECK(ts_other >= vs[0].timestamp && ts_other <= vs[1].timestamp);
        /* A pending write comes last: not committed, seq 0, begin time. */
        CHECK_OK(tome_insert(t, 2, "k", 1, "p", 1));
        CHECK_OK(tome_versions(t, 2, "k", 1, &vs, &n));
        CHECK_EQ(n, 5);
        for (size_t i = 0; i < 4; i++) {
            CHECK_U64(vs[i].seq, seqs[i]);
            CHECK(vs[i].committed);
        }
        CHECK(!vs[4].committed);
        CHECK_U64(vs[4].seq, 0);
        CHECK(!vs[4].removed);
        CHECK(vs[4].timestamp >= st.last_timestamp);
        uint64_t pending_ts = vs[4].timestamp;
        /* A pending removal replaces the pending insert. */
        CHECK_OK(tome_remove(t, 2, "k", 1));
        CHECK_OK(tome_versions(t, 2, "k", 1, &vs, &n));
        CHECK_EQ(n, 5);
        CHECK(!vs[4].committed && vs[4].removed);
        CHECK_U64(vs[4].seq, 0);
        CHECK_U64(vs[4].timestamp, pending_ts);
        /* A pending write of a new key: one version. */
        CHECK_OK(tome_insert(t, 2, "fresh", 5, "f", 1));
        CHECK_OK(tome_versions(t, 2, "fresh", 5, &vs, &n));
        CHECK_EQ(n, 1);
        CHECK(!vs[0].committed);
        CHECK_U64(vs[0].seq, 0);
        CHECK_U64(vs[0].timestamp, pending_ts); /* the same begin time */
        CHECK_OK(tome_commit(t));
        /* Committed: the removal has seq 6, with the other key. */
        tome_version ver[8];
        CHECK_OK(ts_versions(db, 2, "k", 1, ver, 8, &n));
        CHECK_EQ(n, 5);
        CHECK_U64(ver[4].seq, 6);
        CHECK(ver[4].removed && ver[4].committed);
        CHECK(ver[4].timestamp >= ver[3].timestamp);
        CHECK_OK(ts_versions(db, 2, "fresh", 5, ver + 5, 1, &n));
        CHECK_EQ(n, 1);
        CHECK_U64(ver[5].seq, 6);
        CHECK_U64(ver[5].timestamp, ver[4].timestamp);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(versions_of_key_never_written) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        const tome_version *vs = (const tome_version *)(const void *)"x";
        size_t n = 77;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_versions(t, 0, "nope", 4, &vs, &n)); /* empty store */
        CHECK_EQ(n, 0);
        CHECK(vs == NULL);
        tome_abort(t);
        CHECK_OK(ts_put(db, 0, "yes", "1"));
        CHECK_OK(tome_begin(db, &t));
        n = 77;
        CHECK_OK(tome_versions(t, 0, "nope", 4, &vs, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(tome_versions(t, 1, "yes", 3, &vs, &n)); /* other slot */
        CHECK_EQ(n, 0);
        CHECK_OK(tome_versions(t, 0, "ye", 2, &vs, &n));  /* a prefix of a key */
        CHECK_EQ(n, 0);
        CHECK_OK(tome_versions(t, 0, NULL, 0, &vs, &n));  /* empty key */
        CHECK_EQ(n, 0);
        CHECK_OK(tome_versions(t, 0, "yes", 3, &vs, &n));
        CHECK_EQ(n, 1);
        tome_abort(t);
        /* A removal of a key never written is itself a version. */
        CHECK_OK(ts_del(db, 0, "ghost"));
        tome_version ver[2];
        CHECK_OK(ts_versions(db, 0, "ghost", 5, ver, 2, &n));
        CHECK_EQ(n, 1);
        CHECK(ver[0].removed && ver[0].committed);
        CHECK_U64(ver[0].seq, 2);
        CHECK(ts_has(db, 0, "ghost", NULL));
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* tome_get_version and tome_get_unremoved                                  */
/* ------------------------------------------------------------------------ */

TT_TEST(get_version_by_seq) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "a", "1")); /* 1 */
        CHECK_OK(ts_put(db, 0, "a", "2")); /* 2 */
        CHECK_OK(ts_del(db, 0, "a"));      /* 3 */
        tome_txn *old = NULL, *t = NULL;
        CHECK_OK(tome_begin(db, &old));    /* sees 1..3 */
        CHECK_OK(ts_put(db, 0, "a", "4")); /* 4 */
        CHECK_OK(ts_put(db, 0, "b", "5")); /* 5 */
        CHECK_OK(tome_begin(db, &t));
        CHECK(version_is(t, 0, "a", 1, "1"));
        CHECK(version_is(t, 0, "a", 2, "2"));
        CHECK(version_is(t, 0, "a", 3, NULL));  /* a removal */
        CHECK(version_is(t, 0, "a", 4, "4"));
        CHECK(version_is(t, 0, "a", 5, NULL));  /* b's commit, not a's */
        CHECK(version_is(t, 0, "a", 6, NULL));  /* no such commit */
        CHECK(version_is(t, 0, "a", UINT64_MAX, NULL));
        CHECK(version_is(t, 0, "a", 0, NULL));  /* no pending write */
        CHECK(version_is(t, 0, "b", 5, "5"));
        CHECK(version_is(t, 1, "a", 1, NULL));  /* other slot */
        CHECK(version_is(t, 0, "zz", 1, NULL)); /* never written */
        /* seq 0 reads the pending write. */
        CHECK_OK(tome_insert(t, 0, "a", 1, "pending", 7));
        CHECK(version_is(t, 0, "a", 0, "pending"));
        CHECK(version_is(t, 0, "a", 4, "4"));
        CHECK_OK(tome_insert(t, 0, "a", 1, "pending2", 8));
        CHECK(version_is(t, 0, "a", 0, "pending2"));
        CHECK_OK(tome_remove(t, 0, "a", 1));
        CHECK(version_is(t, 0, "a", 0, NULL));  /* a pending removal */
        CHECK(version_is(t, 0, "b", 0, NULL));
        CHECK_OK(tome_insert(t, 0, "c", 1, "", 0));
        CHECK(version_is(t, 0, "c", 0, ""));    /* an empty pending value */
        tome_abort(t);
        /* A transaction begun before commit 4 does not see it. */
        CHECK(version_is(old, 0, "a", 2, "2"));
        CHECK(version_is(old, 0, "a", 4, NULL));
        CHECK(version_is(old, 0, "b", 5, NULL));
        tome_abort(old);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(get_unremoved_reads_the_trash) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "x", NULL)); /* never written */
        tome_abort(t);
        CHECK_OK(ts_put(db, 0, "x", "1"));
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "x", "1"));
        tome_abort(t);
        CHECK_OK(ts_del(db, 0, "x"));
        CHECK_OK(tome_begin(db, &t));
        CHECK(ts_txn_has(t, 0, "x", NULL));
        CHECK(unremoved_is(t, 0, "x", "1"));
        tome_abort(t);
        CHECK_OK(ts_del(db, 0, "x")); /* removed twice */
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "x", "1"));
        tome_abort(t);
        CHECK_OK(ts_put(db, 0, "x", "2"));
        CHECK_OK(ts_del(db, 0, "x"));
        CHECK_OK(ts_put(db, 0, "y", ""));
        CHECK_OK(ts_del(db, 0, "y"));
        CHECK_OK(ts_del(db, 0, "z")); /* only ever removed */
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "x", "2"));
        CHECK(unremoved_is(t, 0, "y", ""));   /* an empty value in the trash */
        CHECK(ts_txn_has(t, 0, "y", NULL));
        CHECK(unremoved_is(t, 0, "z", NULL));
        CHECK(unremoved_is(t, 1, "x", NULL)); /* other slot */
        /* Pending writes come first. */
        CHECK_OK(tome_insert(t, 0, "x", 1, "3", 1));
        CHECK(unremoved_is(t, 0, "x", "3"));
        CHECK_OK(tome_remove(t, 0, "x", 1));  /* replaces the pending insert */
        CHECK(unremoved_is(t, 0, "x", "2"));
        CHECK_OK(tome_insert(t, 0, "z", 1, "zz", 2));
        CHECK(unremoved_is(t, 0, "z", "zz"));
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        CHECK(unremoved_is(t, 0, "x", "2"));
        CHECK(unremoved_is(t, 0, "z", "zz"));
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* tome_last_updated                                                        */
/* ------------------------------------------------------------------------ */

TT_TEST(last_updated) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL, *t2 = NULL;
        uint64_t lu = 1;
        const tome_version *vs;
        size_t n;
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_last_updated(t, &lu), TOME_NOTFOUND); /* empty store */
        /* Pending writes: the begin time, also on an empty store. */
        uint64_t before = ts_now_ms();
        CHECK_OK(tome_insert(t, 0, "a", 1, "1", 1));
        CHECK_OK(tome_last_updated(t, &lu));
        CHECK_OK(tome_versions(t, 0, "a", 1, &vs, &n));
        CHECK_EQ(n, 1);
        CHECK_U64(lu, vs[0].timestamp);
        CHECK(lu + 2000 >= before && lu <= ts_now_ms() + 2000);
        CHECK_OK(tome_commit(t));
        tome_version ver[4];
        CHECK_OK(ts_versions(db, 0, "a", 1, ver, 4, &n));
        uint64_t ts1 = ver[0].timestamp;
        /* No pending writes: the newest commit it sees. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_last_updated(t, &lu));
        CHECK_U64(lu, ts1);
        CHECK_OK(ts_put(db, 0, "b", "2"));
        CHECK_OK(ts_versions(db, 0, "b", 1, ver, 4, &n));
        uint64_t ts2 = ver[0].timestamp;
        CHECK_OK(tome_last_updated(t, &lu));
        CHECK_U64(lu, ts1); /* the later commit is not in its snapshot */
        CHECK_OK(tome_begin(db, &t2));
        CHECK_OK(tome_last_updated(t2, &lu));
        CHECK_U64(lu, ts2);
        tome_abort(t2);
        /* A pending removal counts as a pending write. */
        CHECK_OK(tome_remove(t, 0, "zz", 2));
        CHECK_OK(tome_last_updated(t, &lu));
        CHECK_OK(tome_versions(t, 0, "zz", 2, &vs, &n));
        CHECK_EQ(n, 1);
        CHECK_U64(lu, vs[0].timestamp);
        CHECK(lu >= ts1);
        tome_abort(t);
        /* Historical transactions. */
        CHECK_OK(tome_begin_at(db, 1, &t));
        CHECK_OK(tome_last_updated(t, &lu));
        CHECK_U64(lu, ts1);
        tome_abort(t);
        CHECK_OK(tome_begin_at(db, 0, &t));
        CHECK_RC(tome_last_updated(t, &lu), TOME_NOTFOUND);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* Time travel against a model                                              */
/* ------------------------------------------------------------------------ */

#define MK 12           /* keys: k0..k5 in slots 0 and 1 */
#define MAXC 64         /* commits at most */
#define MAXV (MAXC * 3) /* versions of one key at most */

struct mver {
    uint64_t seq;
    bool removed;
    char val[32];
};

struct model {
    int ncommits;
    uint64_t ts[MAXC + 1];      /* timestamp of commit seq */
    int nv[MK];
    struct mver v[MK][MAXV];
};

static uint8_t mslot(int k) { return (uint8_t)(k / 6); }
static void mname(int k, char out[4]) { snprintf(out, 4, "k%d", k % 6); }

/* Builds a history of `commits` commits into db and m. */
static void build_history(tome_db *db, struct model *m, int commits, uint64_t seed) {
    memset(m, 0, sizeof *m);
    uint64_t rng = seed;
    for (int c = 1; c <= commits; c++) {
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        int ops = 1 + (int)(ts_rand(&rng) % 3);
        int first = -1;
        bool used[MK] = {0};
        for (int i = 0; i < ops; i++) {
            int k = (int)(ts_rand(&rng) % MK);
            if (used[k]) continue;
            used[k] = true;
            if (first < 0) first = k;
            char name[4];
            mname(k, name);
            struct mver *mv = &m->v[k][m->nv[k]++];
            mv->seq = (uint64_t)c;
            if (ts_rand(&rng) % 4 == 0) {
                mv->removed = true;
                CHECK_OK(tome_remove(t, mslot(k), name, 2));
            } else {
                if (ts_rand(&rng) % 10 == 0)
                    mv->val[0] = 0; /* an empty value now and then */
                else
                    snprintf(mv->val, sizeof mv->val, "c%d-%s-%u", c, name, (unsigned)(ts_rand(&rng) % 1000));
                CHECK_OK(tome_insert(t, mslot(k), name, 2, mv->val, strlen(mv->val)));
            }
        }
        CHECK_OK(tome_commit(t));
        char name[4];
        mname(first, name);
        tome_version ver[MAXV];
        size_t n = 0;
        CHECK_OK(ts_versions(db, mslot(first), name, 2, ver, MAXV, &n));
        CHECK(n >= 1);
        CHECK_U64(ver[n - 1].seq, (uint64_t)c);
        m->ts[c] = ver[n - 1].timestamp;
        m->ncommits = c;
    }
}

/* Checks everything a transaction at seq s sees against the model. */
static void check_at(tome_txn *t, const struct model *m, int s) {
    for (int k = 0; k < MK; k++) {
        char name[4];
        mname(k, name);
        uint8_t slot = mslot(k);
        int vis = 0; /* versions visible at s */
        while (vis < m->nv[k] && m->v[k][vis].seq <= (uint64_t)s) vis++;
        const tome_version *vs = NULL;
        size_t n = 0;
        CHECK_OK(tome_versions(t, slot, name, 2, &vs, &n));
        if ((int)n != vis) TT_FAIL_("seq %d key %d/%s: %zu versions, want %d", s, slot, name, n, vis);
        for (int i = 0; i < vis; i++) {
            const struct mver *mv = &m->v[k][i];
            if (vs[i].seq != mv->seq || vs[i].removed != mv->removed || !vs[i].committed ||
                vs[i].timestamp != m->ts[mv->seq])
                TT_FAIL_("seq %d key %s: version %d is (%llu,%llu,%d,%d), want (%llu,%llu,%d,1)", s, name, i,
                         (unsigned long long)vs[i].seq, (unsigned long long)vs[i].timestamp, vs[i].removed,
                         vs[i].committed, (unsigned long long)mv->seq,
                         (unsigned long long)m->ts[mv->seq], mv->removed);
            if (!version_is(t, slot, name, mv->seq, mv->removed ? NULL : mv->val))
                TT_FAIL_("seq %d key %s: get_version(%llu) wrong", s, name, (unsigned long long)mv->seq);
        }
        /* Versions after s exist but are not visible. */
        for (int i = vis; i < m->nv[k]; i++)
            if (!version_is(t, slot, name, m->v[k][i].seq, NULL))
                TT_FAIL_("seq %d key %s: sees version %llu from its future", s, name,
                         (unsigned long long)m->v[k][i].seq);
        const char *cur = vis && !m->v[k][vis - 1].removed ? m->v[k][vis - 1].val : NULL;
        if (!ts_txn_has(t, slot, name, cur)) TT_FAIL_("seq %d key %s: tome_get wrong", s, name);
        const char *unrem = NULL;
        for (int i = vis - 1; i >= 0 && !unrem; i--)
            if (!m->v[k][i].removed) unrem = m->v[k][i].val;
        if (!unremoved_is(t, slot, name, unrem)) TT_FAIL_("seq %d key %s: get_unremoved wrong", s, name);
    }
    /* Iterations of both slots list the keys present at s, in order. */
    for (int slot = 0; slot < 2; slot++) {
        tome_iter *it = NULL;
        CHECK_OK(tome_iter_open(t, (uint8_t)slot, "k", 1, &it));
        const void *key;
        size_t kl;
        for (int k = slot * 6; k < slot * 6 + 6; k++) {
            int vis = 0;
            while (vis < m->nv[k] && m->v[k][vis].seq <= (uint64_t)s) vis++;
            if (!vis || m->v[k][vis - 1].removed) continue;
            char name[4];
            mname(k, name);
            int rc = tome_iter_next(it, &key, &kl);
            if (rc != TOME_OK || kl != 2 || memcmp(key, name, 2) != 0) {
                tome_iter_close(it);
                TT_FAIL_("seq %d slot %d: iteration gave %s, want %s", s, slot, tt_rcname(rc), name);
            }
        }
        int rc = tome_iter_next(it, &key, &kl);
        tome_iter_close(it);
        if (rc != TOME_NOTFOUND) TT_FAIL_("seq %d slot %d: iteration has extra keys", s, slot);
    }
    uint64_t lu = 0;
    int rc = tome_last_updated(t, &lu);
    if (s == 0) {
        CHECK_RC(rc, TOME_NOTFOUND);
    } else {
        CHECK_OK(rc);
        CHECK_U64(lu, m->ts[s]);
    }
}

/* begin_at every seq 0..newest and check it; then the bounds. */
static void check_history(tome_db *db, const struct model *m, const char *when) {
    for (int s = 0; s <= m->ncommits; s++) {
        tome_txn *t = NULL;
        int rc = tome_begin_at(db, (uint64_t)s, &t);
        if (rc != TOME_OK) TT_FAIL_("%s: begin_at(%d): %s", when, s, tt_rcname(rc));
        check_at(t, m, s);
        if (tt_failed_now) {
            fprintf(stderr, "  (%s, begin_at %d)\n", when, s);
            tome_abort(t);
            return;
        }
        CHECK_RC(tome_insert(t, 0, "k0", 2, "w", 1), TOME_READONLY);
        CHECK_OK(tome_commit(t));
    }
    /* The newest seq is also what tome_begin sees. */
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    check_at(t, m, m->ncommits);
    tome_abort(t);
    if (tt_failed_now) return;
    t = (tome_txn *)(void *)&t;
    CHECK_RC(tome_begin_at(db, (uint64_t)m->ncommits + 1, &t), TOME_INVALID);
    CHECK(t == NULL);
    CHECK_RC(tome_begin_at(db, UINT64_MAX, &t), TOME_INVALID);
    CHECK_U64(ts_seq(db), (uint64_t)m->ncommits);
}

TT_TEST(begin_at_every_seq_against_model) {
    int commits = ts_short() ? 20 : 50;
    static struct model m, empty;
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        check_history(db, &empty, "empty store");
        if (tt_failed_now) return;
        build_history(db, &m, commits, 2024 + (uint64_t)kind);
        if (tt_failed_now) return;
        check_history(db, &m, "after the commits");
        if (tt_failed_now) return;
        if (kind == TS_DIR) {
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            check_history(db, &m, "after reopen");
            if (tt_failed_now) return;
            CHECK_OK(tome_close(db));
            CHECK(ts_file_exists(path, "INDEX"));
            CHECK(ts_unlink(path, "INDEX"));
            db = ts_open(path, NULL);
            CHECK(db != NULL);
            check_history(db, &m, "after reopen by log scan");
            if (tt_failed_now) return;
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(begin_at_bounds) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        /* Empty store: seq 0 works, 1 is in the future. */
        CHECK_OK(tome_begin_at(db, 0, &t));
        CHECK(ts_txn_has(t, 0, "a", NULL));
        tome_abort(t);
        CHECK_RC(tome_begin_at(db, 1, &t), TOME_INVALID);
        CHECK_RC(tome_begin_at(db, 0, NULL), TOME_INVALID);
        CHECK_RC(tome_begin_at(NULL, 0, &t), TOME_INVALID);
        CHECK_OK(ts_put(db, 0, "a", "1"));
        CHECK_OK(ts_put(db, 0, "a", "2"));
        CHECK_OK(tome_begin_at(db, 0, &t));
        CHECK(ts_txn_has(t, 0, "a", NULL));
        const tome_version *vs;
        size_t n;
        CHECK_OK(tome_versions(t, 0, "a", 1, &vs, &n));
        CHECK_EQ(n, 0);
        tome_abort(t);
        CHECK_OK(tome_begin_at(db, 2, &t));
        CHECK(ts_txn_has(t, 0, "a", "2"));
        tome_abort(t);
        CHECK_RC(tome_begin_at(db, 3, &t), TOME_INVALID);
        /* A historical transaction keeps its view while commits go on. */
        CHECK_OK(tome_begin_at(db, 1, &t));
        CHECK_OK(ts_put(db, 0, "a", "3"));
        CHECK_OK(ts_del(db, 0, "a"));
        CHECK(ts_txn_has(t, 0, "a", "1"));
        CHECK_OK(tome_versions(t, 0, "a", 1, &vs, &n));
        CHECK_EQ(n, 1);
        tome_abort(t);
        CHECK_OK(tome_begin_at(db, 4, &t));
        CHECK(ts_txn_has(t, 0, "a", NULL));
        CHECK(unremoved_is(t, 0, "a", "3"));
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

TT_MAIN()
