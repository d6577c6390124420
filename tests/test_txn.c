/*
 * test_txn.c -- contract tests of transactions (api.md, core part):
 * snapshot isolation, a transaction's own pending writes, read-only and
 * historical transactions, blind writes (last committer wins), serializable
 * conflicts for every kind of read that joins the read set and the changes
 * that must NOT conflict, that a refused commit writes nothing and a rerun
 * succeeds, that tome_commit and tome_abort end the transaction, sequence
 * numbers and timestamps of commits, and iteration (bytewise order, prefix,
 * pending writes, removed keys, end, several iterators at once, and a
 * randomized comparison with a model). Each case checks exact values, on a
 * directory store and on ":memory:".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tome.h"
#include "common/store.h"
#include "tt.h"

/* Collects the keys of an iteration of (slot, prefix) in txn into one
 * text: each key as its bytes in hex, comma separated (the empty key is
 * "-"). Returns the tome_iter_next code that ended it (NOTFOUND normally)
 * or the failing open code. */
static int iter_text(tome_txn *t, uint8_t slot, const void *prefix, size_t plen, char *out, size_t cap) {
    tome_iter *it = NULL;
    size_t used = 0;
    out[0] = 0;
    int rc = tome_iter_open(t, slot, prefix, plen, &it);
    if (rc != TOME_OK) return rc;
    const void *k;
    size_t kl;
    while ((rc = tome_iter_next(it, &k, &kl)) == TOME_OK) {
        if (used && used + 1 < cap) out[used++] = ',';
        if (kl == 0 && used + 1 < cap) out[used++] = '-';
        for (size_t i = 0; i < kl && used + 3 < cap; i++) {
            snprintf(out + used, cap - used, "%02x", ((const uint8_t *)k)[i]);
            used += 2;
        }
        out[used] = 0;
    }
    tome_iter_close(it);
    return rc;
}

/* The same text for a list of NUL-terminated keys (all non-empty). */
static void keys_text(const char *const *keys, size_t n, char *out, size_t cap) {
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (used && used + 1 < cap) out[used++] = ',';
        for (const char *p = keys[i]; *p && used + 3 < cap; p++) {
            snprintf(out + used, cap - used, "%02x", (uint8_t)*p);
            used += 2;
        }
        out[used] = 0;
    }
}

/* strlen that takes NULL (the NULL prefix) as length 0. */
static size_t opt_len(const char *s) {
    return s ? strlen(s) : 0;
}

/* Checks that iterating (slot, prefix) in t gives exactly keys[0..n). */
#define CHECK_ITER(t, slot, prefix, ...)                                          \
    do {                                                                          \
        static const char *const want_[] = {__VA_ARGS__};                         \
        char got_[1024], exp_[1024];                                              \
        keys_text(want_ + 1, sizeof want_ / sizeof want_[0] - 1, exp_, sizeof exp_); \
        CHECK_RC(iter_text((t), (slot), (prefix), opt_len(prefix), got_, sizeof got_), \
                 TOME_NOTFOUND);                                                  \
        if (strcmp(got_, exp_) != 0)                                              \
            TT_FAIL_("iteration of slot %d prefix \"%s\": got {%s}, want {%s}", (int)(slot), \
                     (prefix) ? (const char *)(prefix) : "", got_, exp_);         \
    } while (0)
/* Usage: CHECK_ITER(t, 1, "p/", "", "p/a", "p/b") -- the first "" is a
 * placeholder so that an empty list can be written CHECK_ITER(t, 1, "p/", ""). */

/* ------------------------------------------------------------------------ */
/* Snapshots and own writes                                                 */
/* ------------------------------------------------------------------------ */

TT_TEST(snapshot_isolation) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 1, "a", "1"));
        CHECK_OK(ts_put(db, 1, "c", "c1"));
        tome_version v1[2];
        size_t n;
        CHECK_OK(ts_versions(db, 1, "c", 1, v1, 2, &n));
        CHECK_EQ(n, 1);
        tome_txn *t1 = NULL, *t2 = NULL;
        CHECK_OK(tome_begin(db, &t1));
        /* Commits after t1 began: overwrite, create, remove. */
        CHECK_OK(tome_begin(db, &t2));
        CHECK_OK(tome_insert(t2, 1, "a", 1, "2", 1));
        CHECK_OK(tome_insert(t2, 1, "b", 1, "new", 3));
        CHECK_OK(tome_remove(t2, 1, "c", 1));
        CHECK_OK(tome_commit(t2));
        CHECK_OK(ts_put(db, 1, "d", "later"));
        /* t1 sees none of them. */
        CHECK(ts_txn_has(t1, 1, "a", "1"));
        CHECK(ts_txn_has(t1, 1, "b", NULL));
        CHECK(ts_txn_has(t1, 1, "c", "c1"));
        CHECK(ts_txn_has(t1, 1, "d", NULL));
        const tome_version *vs;
        CHECK_OK(tome_versions(t1, 1, "a", 1, &vs, &n));
        CHECK_EQ(n, 1);
        CHECK_U64(vs[0].seq, 1);
        CHECK_OK(tome_versions(t1, 1, "b", 1, &vs, &n));
        CHECK_EQ(n, 0);
        uint64_t lu = 0;
        CHECK_OK(tome_last_updated(t1, &lu));
        CHECK_U64(lu, v1[0].timestamp);
        CHECK_ITER(t1, 1, NULL, "", "a", "c");
        /* A transaction begun now sees every commit. */
        CHECK_OK(tome_begin(db, &t2));
        CHECK(ts_txn_has(t2, 1, "a", "2"));
        CHECK(ts_txn_has(t2, 1, "b", "new"));
        CHECK(ts_txn_has(t2, 1, "c", NULL));
        CHECK(ts_txn_has(t2, 1, "d", "later"));
        CHECK_ITER(t2, 1, NULL, "", "a", "b", "d");
        tome_abort(t2);
        /* t1 still the same after t2's reads. */
        CHECK(ts_txn_has(t1, 1, "a", "1"));
        tome_abort(t1);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(own_pending_writes) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 1, "a", "1"));
        tome_txn *t = NULL;
        const tome_version *vs;
        const void *v;
        size_t n;
        CHECK_OK(tome_begin(db, &t));
        /* A new key: each later write replaces the earlier one. */
        CHECK_OK(tome_insert(t, 1, "c", 1, "x", 1));
        CHECK(ts_txn_has(t, 1, "c", "x"));
        CHECK_OK(tome_insert(t, 1, "c", 1, "yy", 2));
        CHECK(ts_txn_has(t, 1, "c", "yy"));
        CHECK_OK(tome_versions(t, 1, "c", 1, &vs, &n));
        CHECK_EQ(n, 1);
        CHECK(!vs[0].committed);
        CHECK_U64(vs[0].seq, 0);
        CHECK_OK(tome_remove(t, 1, "c", 1));
        CHECK(ts_txn_has(t, 1, "c", NULL));
        CHECK_RC(tome_get_unremoved(t, 1, "c", 1, &v, &n), TOME_NOTFOUND); /* never committed */
        CHECK_OK(tome_versions(t, 1, "c", 1, &vs, &n));
        CHECK_EQ(n, 1);
        CHECK(vs[0].removed && !vs[0].committed);
        CHECK_OK(tome_insert(t, 1, "c", 1, "zzz", 3));
        CHECK(ts_txn_has(t, 1, "c", "zzz"));
        /* An existing key: committed version, then one pending write. */
        CHECK_OK(tome_insert(t, 1, "a", 1, "2", 1));
        CHECK_OK(tome_remove(t, 1, "a", 1));
        CHECK(ts_txn_has(t, 1, "a", NULL));
        CHECK_OK(tome_get_unremoved(t, 1, "a", 1, &v, &n)); /* the committed "1" */
        CHECK_STRMEM(v, n, "1");
        CHECK_OK(tome_insert(t, 1, "a", 1, "3", 1));
        CHECK_OK(tome_versions(t, 1, "a", 1, &vs, &n));
        CHECK_EQ(n, 2);
        CHECK(vs[0].committed && !vs[1].committed && !vs[1].removed);
        CHECK(ts_txn_has(t, 1, "a", "3"));
        CHECK_OK(tome_commit(t));
        /* Only the last write of each key was committed. */
        tome_version ver[4];
        CHECK_OK(ts_versions(db, 1, "c", 1, ver, 4, &n));
        CHECK_EQ(n, 1);
        CHECK_U64(ver[0].seq, 2);
        CHECK(ver[0].committed && !ver[0].removed);
        CHECK_OK(ts_versions(db, 1, "a", 1, ver, 4, &n));
        CHECK_EQ(n, 2);
        CHECK_U64(ver[0].seq, 1);
        CHECK_U64(ver[1].seq, 2);
        CHECK(ts_has(db, 1, "a", "3"));
        CHECK(ts_has(db, 1, "c", "zzz"));
        CHECK_U64(ts_seq(db), 2);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(read_only_transactions_always_commit) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 1, "p/a", "1"));
        CHECK_OK(ts_put(db, 1, "p/b", "2"));
        CHECK_OK(ts_del(db, 1, "p/b"));
        tome_txn *t = NULL, *w = NULL;
        const void *v;
        size_t n;
        const tome_version *vs;
        CHECK_OK(tome_begin(db, &t));
        CHECK(ts_txn_has(t, 1, "p/a", "1"));
        CHECK(ts_txn_has(t, 1, "absent", NULL));
        CHECK_OK(tome_get_unremoved(t, 1, "p/b", 3, &v, &n));
        CHECK_OK(tome_get_version(t, 1, "p/a", 3, 1, &v, &n));
        CHECK_OK(tome_versions(t, 1, "p/b", 3, &vs, &n));
        CHECK_ITER(t, 1, "p/", "", "p/a");
        /* Everything it read changes. */
        CHECK_OK(tome_begin(db, &w));
        CHECK_OK(tome_insert(w, 1, "p/a", 3, "x", 1));
        CHECK_OK(tome_insert(w, 1, "absent", 6, "x", 1));
        CHECK_OK(tome_insert(w, 1, "p/b", 3, "x", 1));
        CHECK_OK(tome_insert(w, 1, "p/c", 3, "x", 1));
        CHECK_OK(tome_commit(w));
        uint64_t seq = ts_seq(db);
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), seq);
        CHECK(ts_has(db, 1, "p/a", "x"));
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(blind_writes_last_committer_wins) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 1, "k", "0"));
        tome_txn *t1 = NULL, *t2 = NULL, *t3 = NULL;
        CHECK_OK(tome_begin(db, &t1));
        CHECK_OK(tome_begin(db, &t2));
        CHECK_OK(tome_begin(db, &t3));
        CHECK_OK(tome_insert(t1, 1, "k", 1, "one", 3));
        CHECK_OK(tome_insert(t2, 1, "k", 1, "two", 3));
        CHECK_OK(tome_insert(t2, 1, "new", 3, "two", 3));
        CHECK_OK(tome_insert(t3, 1, "new", 3, "three", 5));
        CHECK_OK(tome_commit(t2));
        CHECK_OK(tome_commit(t1));
        CHECK_OK(tome_commit(t3));
        CHECK(ts_has(db, 1, "k", "one"));
        CHECK(ts_has(db, 1, "new", "three"));
        tome_version ver[4];
        size_t n;
        CHECK_OK(ts_versions(db, 1, "k", 1, ver, 4, &n));
        CHECK_EQ(n, 3);
        CHECK_U64(ver[0].seq, 1);
        CHECK_U64(ver[1].seq, 2); /* t2 */
        CHECK_U64(ver[2].seq, 3); /* t1 */
        /* A blind removal committed last wins too. */
        CHECK_OK(tome_begin(db, &t1));
        CHECK_OK(tome_begin(db, &t2));
        CHECK_OK(tome_remove(t1, 1, "k", 1));
        CHECK_OK(tome_insert(t2, 1, "k", 1, "kept?", 5));
        CHECK_OK(tome_commit(t2));
        CHECK_OK(tome_commit(t1));
        CHECK(ts_has(db, 1, "k", NULL));
        CHECK_U64(ts_seq(db), 6);
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* Conflicts                                                                */
/* ------------------------------------------------------------------------ */

enum read_kind {
    RD_GET, RD_UNREMOVED, RD_VERSION1, RD_VERSIONS, RD_ITER, RD_ITER_FIRST_ONLY, RD_ITER_OPEN_ONLY
};
enum write_kind { WR_INSERT, WR_REMOVE };

struct conflict_case {
    const char *name;
    int read;             /* enum read_kind */
    uint8_t rslot;
    const char *rkey;     /* key or prefix ("" = whole slot) */
    int write;            /* enum write_kind, by the other transaction */
    uint8_t wslot;
    const char *wkey;
    int expect;           /* TOME_CONFLICT or TOME_OK */
};

/* Setup of every case, slot 1: k=v0, p/a=1, p/b=2, trash (removed),
 * p/gone (removed). Seqs 1 and 2. */
static const struct conflict_case conflict_cases[] = {
    {"get present, overwritten", RD_GET, 1, "k", WR_INSERT, 1, "k", TOME_CONFLICT},
    {"get present, removed", RD_GET, 1, "k", WR_REMOVE, 1, "k", TOME_CONFLICT},
    {"get absent, created", RD_GET, 1, "new", WR_INSERT, 1, "new", TOME_CONFLICT},
    {"get absent, removed", RD_GET, 1, "new", WR_REMOVE, 1, "new", TOME_CONFLICT},
    {"get removed, recreated", RD_GET, 1, "trash", WR_INSERT, 1, "trash", TOME_CONFLICT},
    {"get_unremoved, removed", RD_UNREMOVED, 1, "k", WR_REMOVE, 1, "k", TOME_CONFLICT},
    {"get_unremoved of trash, recreated", RD_UNREMOVED, 1, "trash", WR_INSERT, 1, "trash", TOME_CONFLICT},
    {"get_unremoved absent, created", RD_UNREMOVED, 1, "new", WR_INSERT, 1, "new", TOME_CONFLICT},
    {"get_version, overwritten", RD_VERSION1, 1, "k", WR_INSERT, 1, "k", TOME_CONFLICT},
    {"get_version absent, created", RD_VERSION1, 1, "new", WR_INSERT, 1, "new", TOME_CONFLICT},
    {"versions, overwritten", RD_VERSIONS, 1, "k", WR_INSERT, 1, "k", TOME_CONFLICT},
    {"versions of absent, created", RD_VERSIONS, 1, "new", WR_INSERT, 1, "new", TOME_CONFLICT},
    {"iteration, new key in prefix", RD_ITER, 1, "p/", WR_INSERT, 1, "p/c", TOME_CONFLICT},
    {"iteration, key equal to prefix", RD_ITER, 1, "p/", WR_INSERT, 1, "p/", TOME_CONFLICT},
    {"iteration, present key removed", RD_ITER, 1, "p/", WR_REMOVE, 1, "p/a", TOME_CONFLICT},
    {"iteration, removed key recreated", RD_ITER, 1, "p/", WR_INSERT, 1, "p/gone", TOME_CONFLICT},
    {"iteration of whole slot, new key", RD_ITER, 1, "", WR_INSERT, 1, "zzz", TOME_CONFLICT},
    {"iteration of whole slot, empty key", RD_ITER, 1, "", WR_INSERT, 1, "", TOME_CONFLICT},
    {"iteration read partly, new key", RD_ITER_FIRST_ONLY, 1, "p/", WR_INSERT, 1, "p/z", TOME_CONFLICT},
    {"iteration opened only, new key", RD_ITER_OPEN_ONLY, 1, "p/", WR_INSERT, 1, "p/c", TOME_CONFLICT},
    /* Changes that do not conflict. */
    {"iteration, present key overwritten", RD_ITER, 1, "p/", WR_INSERT, 1, "p/a", TOME_OK},
    {"iteration, removed key removed again", RD_ITER, 1, "p/", WR_REMOVE, 1, "p/gone", TOME_OK},
    {"iteration, never-written key removed", RD_ITER, 1, "p/", WR_REMOVE, 1, "p/none", TOME_OK},
    {"iteration, key before prefix", RD_ITER, 1, "p/", WR_INSERT, 1, "p", TOME_OK},
    {"iteration, key after prefix", RD_ITER, 1, "p/", WR_INSERT, 1, "p0", TOME_OK},
    {"iteration, other prefix", RD_ITER, 1, "p/", WR_INSERT, 1, "q/x", TOME_OK},
    {"iteration, other slot", RD_ITER, 1, "p/", WR_INSERT, 2, "p/c", TOME_OK},
    {"iteration of whole slot, other slot", RD_ITER, 1, "", WR_INSERT, 0, "zzz", TOME_OK},
    {"get, same key other slot", RD_GET, 1, "k", WR_INSERT, 2, "k", TOME_OK},
    {"get, longer key", RD_GET, 1, "k", WR_INSERT, 1, "kk", TOME_OK},
    {"versions, other key", RD_VERSIONS, 1, "k", WR_INSERT, 1, "p/a", TOME_OK},
};

/* Performs the read of case c in t; returns false (printed) on a failure. */
static bool do_read(tome_txn *t, const struct conflict_case *c) {
    const void *v;
    size_t n;
    const tome_version *vs;
    size_t kl = strlen(c->rkey);
    int rc;
    switch (c->read) {
    case RD_GET: rc = tome_get(t, c->rslot, c->rkey, kl, &v, &n); break;
    case RD_UNREMOVED: rc = tome_get_unremoved(t, c->rslot, c->rkey, kl, &v, &n); break;
    case RD_VERSION1: rc = tome_get_version(t, c->rslot, c->rkey, kl, 1, &v, &n); break;
    case RD_VERSIONS: rc = tome_versions(t, c->rslot, c->rkey, kl, &vs, &n); break;
    default: {
        tome_iter *it = NULL;
        rc = tome_iter_open(t, c->rslot, c->rkey, kl, &it);
        if (rc != TOME_OK) break;
        const void *k;
        if (c->read == RD_ITER) {
            while ((rc = tome_iter_next(it, &k, &n)) == TOME_OK) {
            }
        } else if (c->read == RD_ITER_FIRST_ONLY) {
            rc = tome_iter_next(it, &k, &n);
        }
        tome_iter_close(it);
    }
    }
    if (rc != TOME_OK && rc != TOME_NOTFOUND) {
        fprintf(stderr, "  case \"%s\": read failed: %s\n", c->name, tt_rcname(rc));
        return false;
    }
    return true;
}

static int do_write(tome_txn *t, const struct conflict_case *c) {
    if (c->write == WR_INSERT) return tome_insert(t, c->wslot, c->wkey, strlen(c->wkey), "other", 5);
    return tome_remove(t, c->wslot, c->wkey, strlen(c->wkey));
}

/* Runs one case; `other_first`: the other transaction begins before t1. */
static void run_conflict_case(int kind, const struct conflict_case *c, bool other_first) {
    tome_db *db = ts_new(kind, NULL, NULL);
    CHECK(db != NULL);
    tome_txn *t = NULL, *o = NULL;
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_insert(t, 1, "k", 1, "v0", 2));
    CHECK_OK(tome_insert(t, 1, "p/a", 3, "1", 1));
    CHECK_OK(tome_insert(t, 1, "p/b", 3, "2", 1));
    CHECK_OK(tome_insert(t, 1, "trash", 5, "t", 1));
    CHECK_OK(tome_insert(t, 1, "p/gone", 6, "g", 1));
    CHECK_OK(tome_commit(t));
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_remove(t, 1, "trash", 5));
    CHECK_OK(tome_remove(t, 1, "p/gone", 6));
    CHECK_OK(tome_commit(t));

    tome_txn *t1 = NULL;
    if (other_first) CHECK_OK(tome_begin(db, &o));
    CHECK_OK(tome_begin(db, &t1));
    CHECK(do_read(t1, c));
    CHECK_OK(tome_insert(t1, 1, "out", 3, "T1", 2));
    CHECK_OK(tome_insert(t1, 3, "out2", 4, "T1", 2));
    CHECK_OK(tome_remove(t1, 1, "k", 1));
    if (!other_first) CHECK_OK(tome_begin(db, &o));
    CHECK_OK(do_write(o, c));
    CHECK_OK(tome_commit(o));
    CHECK_U64(ts_seq(db), 3);
    int rc = tome_commit(t1);
    if (rc != c->expect)
        TT_FAIL_("case \"%s\"%s on %s: commit gave %s, want %s", c->name,
                 other_first ? " (other began first)" : "", kind == TS_MEM ? ":memory:" : "dir",
                 tt_rcname(rc), tt_rcname(c->expect));
    /* The other transaction's write is there either way. */
    tome_version ver[8];
    size_t n = 0;
    if (c->expect == TOME_CONFLICT) {
        /* Nothing of t1 was written. */
        CHECK_U64(ts_seq(db), 3);
        CHECK(ts_has(db, 1, "out", NULL));
        CHECK(ts_has(db, 3, "out2", NULL));
        CHECK_OK(ts_versions(db, 1, "out", 3, ver, 8, &n));
        CHECK_EQ(n, 0);
        if (!(c->wslot == 1 && !strcmp(c->wkey, "k")))
            CHECK(ts_has(db, 1, "k", "v0")); /* t1's removal did not happen */
        /* A rerun of the same transaction commits. */
        CHECK_OK(tome_begin(db, &t1));
        CHECK(do_read(t1, c));
        CHECK_OK(tome_insert(t1, 1, "out", 3, "T1b", 3));
        CHECK_OK(tome_commit(t1));
        CHECK_U64(ts_seq(db), 4);
        CHECK(ts_has(db, 1, "out", "T1b"));
    } else {
        CHECK_U64(ts_seq(db), 4);
        CHECK(ts_has(db, 1, "out", "T1"));
        CHECK(ts_has(db, 3, "out2", "T1"));
        CHECK(ts_has(db, 1, "k", NULL));
    }
    if (c->write == WR_INSERT && !(c->wslot == 1 && !strcmp(c->wkey, "k") && c->expect == TOME_OK))
        CHECK(ts_has(db, c->wslot, c->wkey, "other"));
    else if (c->write == WR_REMOVE)
        CHECK(ts_has(db, c->wslot, c->wkey, NULL));
    CHECK_OK(tome_close(db));
}

TT_TEST(conflicts_for_each_kind_of_read) {
    for (size_t i = 0; i < sizeof conflict_cases / sizeof conflict_cases[0]; i++) {
        for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
            for (int of = 0; of <= 1; of++) {
                run_conflict_case(kind, &conflict_cases[i], of != 0);
                if (tt_failed_now) {
                    fprintf(stderr, "  (in case \"%s\", %s, other began %s)\n", conflict_cases[i].name,
                            kind == TS_MEM ? ":memory:" : "dir", of ? "first" : "second");
                    return;
                }
            }
        }
    }
}

TT_TEST(own_writes_do_not_conflict) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 1, "p/a", "1"));
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK(ts_txn_has(t, 1, "p/a", "1"));
        CHECK_ITER(t, 1, "p/", "", "p/a");
        CHECK_OK(tome_insert(t, 1, "p/a", 3, "2", 1));
        CHECK_OK(tome_insert(t, 1, "p/b", 3, "3", 1));
        CHECK(ts_txn_has(t, 1, "p/b", "3"));
        CHECK_OK(tome_commit(t));
        CHECK(ts_has(db, 1, "p/a", "2"));
        CHECK(ts_has(db, 1, "p/b", "3"));
        /* A commit that ended before t2 began does not conflict with it. */
        CHECK_OK(ts_put(db, 1, "p/c", "4"));
        CHECK_OK(tome_begin(db, &t));
        CHECK_ITER(t, 1, "p/", "", "p/a", "p/b", "p/c");
        CHECK(ts_txn_has(t, 1, "p/c", "4"));
        CHECK_OK(tome_insert(t, 1, "p/d", 3, "5", 1));
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 4);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(conflict_writes_nothing_and_rerun_succeeds) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "balance", "100"));
        CHECK_OK(ts_put(db, 0, "d", "to-remove"));
        /* t1 reads balance, writes several keys and a removal. */
        tome_txn *t1 = NULL;
        CHECK_OK(tome_begin(db, &t1));
        CHECK(ts_txn_has(t1, 0, "balance", "100"));
        CHECK_OK(tome_insert(t1, 0, "balance", 7, "90", 2));
        CHECK_OK(tome_insert(t1, 0, "b", 1, "bee", 3));
        CHECK_OK(tome_insert(t1, 9, "c", 1, "sea", 3));
        CHECK_OK(tome_remove(t1, 0, "d", 1));
        CHECK_OK(ts_put(db, 0, "balance", "50"));
        CHECK_RC(tome_commit(t1), TOME_CONFLICT);
        CHECK_U64(ts_seq(db), 3);
        CHECK(ts_has(db, 0, "balance", "50"));
        CHECK(ts_has(db, 0, "b", NULL));
        CHECK(ts_has(db, 9, "c", NULL));
        CHECK(ts_has(db, 0, "d", "to-remove"));
        tome_version ver[4];
        size_t n;
        CHECK_OK(ts_versions(db, 0, "d", 1, ver, 4, &n));
        CHECK_EQ(n, 1);
        CHECK_OK(ts_versions(db, 0, "balance", 7, ver, 4, &n));
        CHECK_EQ(n, 2);
        /* The handle is not left with a transaction open. */
        if (kind == TS_DIR) {
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            CHECK(ts_has(db, 0, "b", NULL));
            CHECK_U64(ts_seq(db), 3);
        }
        /* Rerun. */
        CHECK_OK(tome_begin(db, &t1));
        CHECK(ts_txn_has(t1, 0, "balance", "50"));
        CHECK_OK(tome_insert(t1, 0, "balance", 7, "40", 2));
        CHECK_OK(tome_insert(t1, 0, "b", 1, "bee", 3));
        CHECK_OK(tome_remove(t1, 0, "d", 1));
        CHECK_OK(tome_commit(t1));
        CHECK_U64(ts_seq(db), 4);
        CHECK(ts_has(db, 0, "balance", "40"));
        CHECK(ts_has(db, 0, "b", "bee"));
        CHECK(ts_has(db, 0, "d", NULL));
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* Ending transactions                                                      */
/* ------------------------------------------------------------------------ */

TT_TEST(commit_and_abort_end_the_transaction) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL, *o = NULL;
        /* No writes: OK, no seq. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 0);
        /* Abort drops writes. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 0, "a", 1, "1", 1));
        CHECK_OK(tome_remove(t, 0, "b", 1));
        tome_abort(t);
        CHECK_U64(ts_seq(db), 0);
        CHECK(ts_has(db, 0, "a", NULL));
        tome_version ver[2];
        size_t n;
        CHECK_OK(ts_versions(db, 0, "b", 1, ver, 2, &n));
        CHECK_EQ(n, 0);
        /* Abort with an iterator still open closes it. */
        CHECK_OK(ts_put(db, 0, "a", "1"));
        CHECK_OK(tome_begin(db, &t));
        tome_iter *it = NULL;
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        tome_abort(t);
        /* A conflicting commit ends the transaction too. */
        CHECK_OK(tome_begin(db, &t));
        CHECK(ts_txn_has(t, 0, "a", "1"));
        CHECK_OK(tome_insert(t, 0, "a", 1, "2", 1));
        CHECK_OK(tome_begin(db, &o));
        CHECK_OK(tome_insert(o, 0, "a", 1, "3", 1));
        CHECK_OK(tome_commit(o));
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        CHECK_RC(tome_commit(t), TOME_CONFLICT);
        /* A commit with an iterator open closes it. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        CHECK_OK(tome_insert(t, 0, "c", 1, "4", 1));
        CHECK_OK(tome_commit(t));
        CHECK(ts_has(db, 0, "a", "3"));
        CHECK(ts_has(db, 0, "c", "4"));
        /* Every transaction ended: the handle closes (no MISUSE). */
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(historical_transactions_are_read_only) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "a", "1"));
        CHECK_OK(ts_put(db, 0, "a", "2"));
        CHECK_OK(ts_put(db, 0, "b", "3"));
        for (uint64_t s = 0; s <= 3; s++) {
            tome_txn *t = NULL;
            CHECK_OK(tome_begin_at(db, s, &t));
            CHECK_RC(tome_insert(t, 0, "a", 1, "x", 1), TOME_READONLY);
            CHECK_RC(tome_insert(t, 0, "new", 3, "x", 1), TOME_READONLY);
            CHECK_RC(tome_remove(t, 0, "b", 1), TOME_READONLY);
            /* Nothing staged: reads show the store as of s. */
            CHECK(ts_txn_has(t, 0, "a", s == 0 ? NULL : s == 1 ? "1" : "2"));
            CHECK(ts_txn_has(t, 0, "b", s == 3 ? "3" : NULL));
            CHECK(ts_txn_has(t, 0, "new", NULL));
            const tome_version *vs;
            size_t n;
            CHECK_OK(tome_versions(t, 0, "a", 1, &vs, &n));
            CHECK_EQ(n, s == 0 ? 0 : s == 1 ? 1 : 2);
            CHECK_OK(tome_commit(t));
        }
        CHECK_U64(ts_seq(db), 3);
        CHECK(ts_has(db, 0, "a", "2"));
        CHECK(ts_has(db, 0, "new", NULL));
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(read_only_handle) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "a", "1"));
    CHECK_OK(tome_close(db));
    tome_options o;
    tome_options_init(&o);
    o.read_only = 1;
    db = ts_open(path, &o);
    CHECK(db != NULL);
    CHECK(ts_has(db, 0, "a", "1"));
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    CHECK_RC(tome_insert(t, 0, "b", 1, "2", 1), TOME_READONLY);
    CHECK_RC(tome_remove(t, 0, "a", 1), TOME_READONLY);
    CHECK(ts_txn_has(t, 0, "a", "1"));
    CHECK(ts_txn_has(t, 0, "b", NULL));
    CHECK_OK(tome_commit(t));
    CHECK_RC(tome_merge(db), TOME_READONLY);
    CHECK_U64(ts_seq(db), 1);
    CHECK_OK(tome_close(db));
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(ts_has(db, 0, "a", "1"));
    CHECK(ts_has(db, 0, "b", NULL));
    CHECK_U64(ts_seq(db), 1);
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Sequence numbers and timestamps                                          */
/* ------------------------------------------------------------------------ */

TT_TEST(seq_and_timestamps_of_commits) {
    int rounds = ts_short() ? 15 : 40;
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        uint64_t rng = 1234 + (uint64_t)kind, last_ts = 0, seq = 0;
        for (int r = 0; r < rounds; r++) {
            tome_txn *t = NULL;
            /* Commits that use no seq, in between. */
            if (r % 5 == 1) {
                CHECK_OK(tome_begin(db, &t));
                CHECK_OK(tome_insert(t, 0, "x", 1, "y", 1));
                tome_abort(t);
                CHECK_OK(tome_begin(db, &t));
                CHECK_OK(tome_commit(t));
            }
            int nkeys = 1 + (int)(ts_rand(&rng) % 3);
            char keys[3][8];
            uint64_t before = ts_now_ms();
            CHECK_OK(tome_begin(db, &t));
            for (int i = 0; i < nkeys; i++) {
                snprintf(keys[i], sizeof keys[i], "k%d%c", i, (char)('a' + ts_rand(&rng) % 5));
                if (ts_rand(&rng) % 4 == 0)
                    CHECK_OK(tome_remove(t, (uint8_t)i, keys[i], strlen(keys[i])));
                else
                    CHECK_OK(tome_insert(t, (uint8_t)i, keys[i], strlen(keys[i]), "v", 1));
            }
            CHECK_OK(tome_commit(t));
            uint64_t after = ts_now_ms();
            seq++;
            CHECK_U64(ts_seq(db), seq);
            uint64_t ts = 0;
            for (int i = 0; i < nkeys; i++) {
                tome_version ver[64];
                size_t n = 0;
                CHECK_OK(ts_versions(db, (uint8_t)i, keys[i], strlen(keys[i]), ver, 64, &n));
                CHECK(n >= 1 && n <= 64);
                CHECK_U64(ver[n - 1].seq, seq);          /* all writes share the seq */
                CHECK(ver[n - 1].committed);
                if (i == 0) ts = ver[n - 1].timestamp;
                CHECK_U64(ver[n - 1].timestamp, ts);     /* ... and the timestamp */
                for (size_t j = 1; j < n; j++) {
                    CHECK(ver[j - 1].seq < ver[j].seq);
                    CHECK(ver[j - 1].timestamp <= ver[j].timestamp);
                }
            }
            CHECK(ts >= last_ts); /* never decreases */
            /* A wall-clock time in ms (not seconds, not zero), allowing for clock steps. */
            CHECK(ts + 2000 >= before && ts <= after + 2000);
            last_ts = ts;
            tome_stats st;
            CHECK_OK(tome_stats_get(db, &st));
            CHECK_U64(st.last_seq, seq);
            CHECK_U64(st.last_timestamp, ts);
        }
        CHECK_OK(tome_close(db));
    }
}

/* ------------------------------------------------------------------------ */
/* Iteration                                                                */
/* ------------------------------------------------------------------------ */

TT_TEST(iteration_bytewise_order) {
    /* Inserted in a scrambled order; bytewise order puts a prefix before its
     * extensions and compares bytes as unsigned. */
    static const struct { const char *k; size_t n; } keys[] = {
        {"b", 1}, {"\xff", 1}, {"a\0", 2}, {"ab", 2}, {"", 0}, {"a", 1}, {"\xff\xff", 2},
        {"\x80", 1}, {"\x7f", 1}, {"A", 1}, {"a\0\0", 3}, {"aa", 2}, {"\x01", 1}, {"\0", 1},
    };
    static const char *const order[] = {"",   "\0",  "\x01", "A",  "a",  "a\0",    "a\0\0",
                                        "aa", "ab", "b",    "\x7f", "\x80", "\xff", "\xff\xff"};
    static const size_t order_len[] = {0, 1, 1, 1, 1, 2, 3, 2, 2, 1, 1, 1, 1, 2};
    const size_t nk = sizeof keys / sizeof keys[0];
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        for (size_t i = 0; i < nk; i++) {
            /* half committed one per transaction, half in one transaction */
            if (i < nk / 2) CHECK_OK(ts_putm(db, 4, keys[i].k, keys[i].n, "v", 1));
        }
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        for (size_t i = nk / 2; i < nk; i++) CHECK_OK(tome_insert(t, 4, keys[i].k, keys[i].n, "v", 1));
        for (int pass = 0; pass < 2; pass++) {
            /* pass 0: with pending writes; pass 1: all committed */
            tome_iter *it = NULL;
            CHECK_OK(tome_iter_open(t, 4, NULL, 0, &it));
            const void *k;
            size_t kl;
            for (size_t i = 0; i < nk; i++) {
                CHECK_OK(tome_iter_next(it, &k, &kl));
                CHECK_MEM(k, kl, order[i], order_len[i]);
            }
            CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
            tome_iter_close(it);
            if (pass == 0) {
                CHECK_OK(tome_commit(t));
                CHECK_OK(tome_begin(db, &t));
            }
        }
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(iteration_prefix) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        static const char *const keys[] = {"a", "ab", "abc", "abd", "ac", "b", "ba", "\xff", "\xff\xff",
                                           "\xff\xfe"};
        CHECK_OK(tome_begin(db, &t));
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            CHECK_OK(tome_insert(t, 2, keys[i], strlen(keys[i]), "v", 1));
            CHECK_OK(tome_insert(t, 3, keys[i], strlen(keys[i]), "w", 1)); /* another slot */
        }
        CHECK_OK(tome_insert(t, 1, "ab-other-slot", 13, "v", 1));
        CHECK_OK(tome_commit(t));
        CHECK_OK(ts_del(db, 3, "abc"));
        CHECK_OK(tome_begin(db, &t));
        CHECK_ITER(t, 2, "ab", "", "ab", "abc", "abd");
        CHECK_ITER(t, 2, "a", "", "a", "ab", "abc", "abd", "ac");
        CHECK_ITER(t, 2, "abc", "", "abc");
        CHECK_ITER(t, 2, "abcd", "");
        CHECK_ITER(t, 2, "c", "");
        CHECK_ITER(t, 2, "\xff", "", "\xff", "\xff\xfe", "\xff\xff");
        CHECK_ITER(t, 2, "\xff\xff", "", "\xff\xff");
        CHECK_ITER(t, 2, NULL, "", "a", "ab", "abc", "abd", "ac", "b", "ba", "\xff", "\xff\xfe",
                   "\xff\xff");
        CHECK_ITER(t, 2, "", "", "a", "ab", "abc", "abd", "ac", "b", "ba", "\xff", "\xff\xfe",
                   "\xff\xff");
        CHECK_ITER(t, 3, "ab", "", "ab", "abd");   /* removed key excluded */
        CHECK_ITER(t, 1, NULL, "", "ab-other-slot");
        CHECK_ITER(t, 0, NULL, "");
        CHECK_ITER(t, 255, "a", "");
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(iteration_includes_pending_writes) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        static const char *const keys[] = {"a", "b", "c", "d", "gone", "x"};
        for (size_t i = 0; i < 6; i++) CHECK_OK(tome_insert(t, 1, keys[i], strlen(keys[i]), "v", 1));
        CHECK_OK(tome_commit(t));
        CHECK_OK(ts_del(db, 1, "gone"));   /* removed in the store */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 1, "bb", 2, "new", 3));    /* new key appears */
        CHECK_OK(tome_remove(t, 1, "c", 1));               /* pending removal hides */
        CHECK_OK(tome_insert(t, 1, "a", 1, "over", 4));    /* overwrite: once */
        CHECK_OK(tome_insert(t, 1, "e", 1, "tmp", 3));     /* inserted then removed: hidden */
        CHECK_OK(tome_remove(t, 1, "e", 1));
        CHECK_OK(tome_insert(t, 1, "gone", 4, "back", 4)); /* back from the trash */
        CHECK_OK(tome_remove(t, 1, "zz", 2));              /* removal of an absent key */
        CHECK_OK(tome_insert(t, 1, "x", 1, "x1", 2));      /* removed then re-inserted: once */
        CHECK_OK(tome_remove(t, 1, "x", 1));
        CHECK_OK(tome_insert(t, 1, "x", 1, "x2", 2));
        CHECK_OK(tome_insert(t, 2, "other", 5, "v", 1));   /* other slot: not listed */
        CHECK_ITER(t, 1, NULL, "", "a", "b", "bb", "d", "gone", "x");
        CHECK_ITER(t, 1, "b", "", "b", "bb");
        CHECK_ITER(t, 1, "c", "");
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        CHECK_ITER(t, 1, NULL, "", "a", "b", "bb", "d", "gone", "x");
        CHECK(ts_txn_has(t, 1, "x", "x2"));
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(iteration_end_and_several_iterators) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 1, "a1", 2, "v", 1));
        CHECK_OK(tome_insert(t, 1, "a2", 2, "v", 1));
        CHECK_OK(tome_insert(t, 1, "b1", 2, "v", 1));
        CHECK_OK(tome_insert(t, 2, "c1", 2, "v", 1));
        CHECK_OK(tome_insert(t, 2, "c2", 2, "v", 1));
        CHECK_OK(tome_insert(t, 2, "c3", 2, "v", 1));
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        tome_iter *i1 = NULL, *i2 = NULL, *i3 = NULL;
        const void *k, *keep[4];
        size_t kl, keep_len[4];
        CHECK_OK(tome_iter_open(t, 1, "a", 1, &i1));
        CHECK_OK(tome_iter_open(t, 2, NULL, 0, &i2));
        CHECK_OK(tome_iter_open(t, 1, NULL, 0, &i3));
        /* Interleaved. */
        CHECK_OK(tome_iter_next(i1, &keep[0], &keep_len[0]));
        CHECK_OK(tome_iter_next(i2, &keep[1], &keep_len[1]));
        CHECK_OK(tome_iter_next(i3, &k, &kl));
        CHECK_STRMEM(k, kl, "a1");
        CHECK_OK(tome_iter_next(i2, &keep[2], &keep_len[2]));
        CHECK_OK(tome_iter_next(i1, &keep[3], &keep_len[3]));
        CHECK_OK(tome_iter_next(i3, &k, &kl));
        CHECK_STRMEM(k, kl, "a2");
        CHECK_RC(tome_iter_next(i1, &k, &kl), TOME_NOTFOUND);
        CHECK_OK(tome_iter_next(i2, &k, &kl));
        CHECK_STRMEM(k, kl, "c3");
        CHECK_OK(tome_iter_next(i3, &k, &kl));
        CHECK_STRMEM(k, kl, "b1");
        /* After the end, NOTFOUND again and again. */
        for (int i = 0; i < 3; i++) {
            CHECK_RC(tome_iter_next(i1, &k, &kl), TOME_NOTFOUND);
            CHECK_RC(tome_iter_next(i3, &k, &kl), TOME_NOTFOUND);
        }
        CHECK_RC(tome_iter_next(i2, &k, &kl), TOME_NOTFOUND);
        CHECK_RC(tome_iter_next(i2, &k, &kl), TOME_NOTFOUND);
        tome_iter_close(i1);
        tome_iter_close(i2);
        /* Keys stay valid until the transaction ends, after their iterator closed. */
        const void *v;
        size_t vl;
        CHECK_OK(tome_get(t, 2, "c2", 2, &v, &vl));
        CHECK_STRMEM(keep[0], keep_len[0], "a1");
        CHECK_STRMEM(keep[1], keep_len[1], "c1");
        CHECK_STRMEM(keep[2], keep_len[2], "c2");
        CHECK_STRMEM(keep[3], keep_len[3], "a2");
        /* An empty iteration ends at once, and again. */
        CHECK_OK(tome_iter_open(t, 7, NULL, 0, &i1));
        CHECK_RC(tome_iter_next(i1, &k, &kl), TOME_NOTFOUND);
        CHECK_RC(tome_iter_next(i1, &k, &kl), TOME_NOTFOUND);
        tome_iter_close(i1);
        tome_iter_close(i3);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

/* Randomized: every key over the alphabet {00, 61, 62, ff} of length 0..4
 * (341 keys), random commits of inserts and removals, then a transaction
 * with pending writes; every prefix of length 0..2 is compared with the
 * model, before and after the commit. */
#define MODEL_KEYS 341
static const uint8_t alpha[4] = {0x00, 0x61, 0x62, 0xff};

static void model_key(int idx, uint8_t *k, size_t *len) {
    /* idx 0: empty; 1..4: length 1; 5..20: length 2; ... */
    size_t l = 0;
    int base = 0, span = 1;
    while (idx >= base + span) {
        base += span;
        span *= 4;
        l++;
    }
    int off = idx - base;
    for (size_t i = l; i-- > 0;) {
        k[i] = alpha[off % 4];
        off /= 4;
    }
    *len = l;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static void check_model_iterations(tome_txn *t, const bool *present) {
    /* Sorted order of all model keys. */
    int order[MODEL_KEYS];
    uint8_t ka[4], kb[4];
    size_t la, lb;
    for (int i = 0; i < MODEL_KEYS; i++) order[i] = i;
    for (int i = 1; i < MODEL_KEYS; i++) { /* insertion sort, 341 items */
        int x = order[i], j = i;
        model_key(x, ka, &la);
        while (j > 0) {
            model_key(order[j - 1], kb, &lb);
            if (key_cmp(kb, lb, ka, la) <= 0) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    for (int p = 0; p < 21; p++) { /* prefixes of length 0..2 */
        uint8_t pk[4];
        size_t pl;
        model_key(p, pk, &pl);
        tome_iter *it = NULL;
        CHECK_OK(tome_iter_open(t, 9, pk, pl, &it));
        const void *k;
        size_t kl;
        for (int i = 0; i < MODEL_KEYS; i++) {
            int x = order[i];
            if (!present[x]) continue;
            model_key(x, ka, &la);
            if (la < pl || memcmp(ka, pk, pl) != 0) continue;
            int rc = tome_iter_next(it, &k, &kl);
            if (rc != TOME_OK) {
                tome_iter_close(it);
                TT_FAIL_("prefix #%d: iteration ended (%s) before model key #%d", p, tt_rcname(rc), x);
            }
            if (kl != la || (la && memcmp(k, ka, la) != 0)) {
                tome_iter_close(it);
                TT_FAIL_("prefix #%d: got a %zu-byte key, want model key #%d (%zu bytes)", p, kl, x, la);
            }
        }
        int rc = tome_iter_next(it, &k, &kl);
        tome_iter_close(it);
        if (rc != TOME_NOTFOUND) TT_FAIL_("prefix #%d: extra key after the model's last (%s)", p, tt_rcname(rc));
    }
}

TT_TEST(iteration_random_against_model) {
    int commits = ts_short() ? 6 : 20;
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        bool present[MODEL_KEYS] = {0};
        uint64_t rng = 99 + (uint64_t)kind;
        uint8_t k[4];
        size_t kl;
        for (int c = 0; c < commits; c++) {
            tome_txn *t = NULL;
            CHECK_OK(tome_begin(db, &t));
            int ops = 1 + (int)(ts_rand(&rng) % 40);
            for (int i = 0; i < ops; i++) {
                int x = (int)(ts_rand(&rng) % MODEL_KEYS);
                model_key(x, k, &kl);
                if (ts_rand(&rng) % 3 == 0) {
                    CHECK_OK(tome_remove(t, 9, k, kl));
                    present[x] = false;
                } else {
                    CHECK_OK(tome_insert(t, 9, k, kl, "v", 1));
                    present[x] = true;
                }
                /* noise in the neighbouring slots */
                CHECK_OK(tome_insert(t, (uint8_t)(8 + 2 * (i & 1)), k, kl, "n", 1));
            }
            CHECK_OK(tome_commit(t));
        }
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        check_model_iterations(t, present);
        if (tt_failed_now) return;
        /* Pending writes on top. */
        for (int i = 0; i < 60; i++) {
            int x = (int)(ts_rand(&rng) % MODEL_KEYS);
            model_key(x, k, &kl);
            if (ts_rand(&rng) % 2 == 0) {
                CHECK_OK(tome_remove(t, 9, k, kl));
                present[x] = false;
            } else {
                CHECK_OK(tome_insert(t, 9, k, kl, "p", 1));
                present[x] = true;
            }
        }
        check_model_iterations(t, present);
        if (tt_failed_now) return;
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        check_model_iterations(t, present);
        if (tt_failed_now) return;
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

TT_MAIN()
