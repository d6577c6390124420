/*
 * test_read.c -- the read path of the local engine (src/log/read.c): values
 * read in place from the mapped log, pinned segments, batched cursors, and
 * the pread path (no_mmap) giving the same answers.
 *
 * Every case runs on real files, where the log is mapped (the default), and
 * most also with no_mmap = 1, where values are read with pread; the two
 * must agree byte for byte.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/tome.h"
#include "../src/os/os.h"
#include "tt.h"

static tome_db *open_store(const char *dir, int no_mmap) {
    tome_options o;
    tome_options_init(&o);
    o.no_mmap = no_mmap;
    o.segment_size = 64 * 1024; /* several segments */
    tome_db *db = NULL;
    if (tome_open(dir, &o, &db) != TOME_OK) return NULL;
    return db;
}

static void key_of(char *k, unsigned i) { snprintf(k, 16, "k%06u", i); }

static size_t val_of(char *v, unsigned i, unsigned gen) {
    size_t n = 20 + (i * 7 + gen) % 90;
    for (size_t j = 0; j < n; j++) v[j] = (char)('a' + (i + j + gen) % 26);
    return n;
}

static int fill(tome_db *db, unsigned n, unsigned gen) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    for (unsigned i = 0; i < n; i++) {
        char k[16], v[128];
        key_of(k, i);
        size_t vl = val_of(v, i, gen);
        if ((rc = tome_insert(t, 0, k, strlen(k), v, vl)) != 0) {
            tome_abort(t);
            return rc;
        }
    }
    return tome_commit(t);
}

/* A value read in a transaction stays readable, with its bytes, until the
 * transaction ends, even after a merge has replaced and unlinked the
 * segment it points into (the snapshot pins it). */
static void values_outlive_merge(int no_mmap) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/s%d", tt_tmpdir(), no_mmap);
    tome_db *db = open_store(dir, no_mmap);
    CHECK(db != NULL);
    CHECK_OK(fill(db, 3000, 0));
    tome_txn *old;
    CHECK_OK(tome_begin(db, &old));
    enum { N = 3000 };
    static const void *vp[N];
    static size_t vl[N];
    for (unsigned i = 0; i < N; i++) {
        char k[16];
        key_of(k, i);
        CHECK_OK(tome_get(old, 0, k, strlen(k), &vp[i], &vl[i]));
    }
    /* overwrite everything and merge: the old records are superseded */
    CHECK_OK(fill(db, N, 1));
    CHECK_OK(tome_merge(db));
    CHECK_OK(fill(db, N, 2));
    CHECK_OK(tome_merge(db));
    for (unsigned i = 0; i < N; i++) {
        char v[128];
        size_t n = val_of(v, i, 0);
        CHECK_MEM(vp[i], vl[i], v, n);
    }
    /* the same transaction still reads its snapshot */
    tome_iter *it;
    CHECK_OK(tome_iter_open(old, 0, NULL, 0, &it));
    unsigned count = 0;
    const void *k, *v;
    size_t kl, vn;
    while (tome_iter_next(it, &k, &kl) == TOME_OK) {
        char want_k[16], want_v[128];
        key_of(want_k, count);
        CHECK_STRMEM(k, kl, want_k);
        CHECK_OK(tome_iter_value(it, &v, &vn));
        size_t wn = val_of(want_v, count, 0);
        CHECK_MEM(v, vn, want_v, wn);
        count++;
    }
    CHECK_EQ(count, N);
    tome_iter_close(it);
    tome_abort(old);
    /* a new transaction sees the newest generation */
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (unsigned i = 0; i < N; i += 97) {
        char kk[16], want[128];
        key_of(kk, i);
        size_t wn = val_of(want, i, 2);
        CHECK_OK(tome_get(t, 0, kk, strlen(kk), &v, &vn));
        CHECK_MEM(v, vn, want, wn);
    }
    tome_abort(t);
    CHECK_OK(tome_close(db));
}

TT_TEST(mapped_values_outlive_merge) { values_outlive_merge(0); }
TT_TEST(pread_values_outlive_merge) { values_outlive_merge(1); }

/* Mapped and pread reads agree on gets, versions and scans of a store
 * written with several generations and removals. */
TT_TEST(mapped_and_pread_reads_agree) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/agree", tt_tmpdir());
    tome_db *db = open_store(dir, 0);
    CHECK(db != NULL);
    for (unsigned g = 0; g < 3; g++) CHECK_OK(fill(db, 1500, g));
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (unsigned i = 0; i < 1500; i += 3) {
        char k[16];
        key_of(k, i);
        CHECK_OK(tome_remove(t, 0, k, strlen(k)));
    }
    CHECK_OK(tome_commit(t));
    CHECK_OK(tome_close(db));
    /* read everything both ways into two transcripts */
    char *out[2] = {NULL, NULL};
    size_t outn[2] = {0, 0};
    for (int m = 0; m < 2; m++) {
        db = open_store(dir, m);
        CHECK(db != NULL);
        FILE *f = open_memstream(&out[m], &outn[m]);
        CHECK(f != NULL);
        CHECK_OK(tome_begin(db, &t));
        tome_iter *it;
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        const void *k, *v;
        size_t kl, vl;
        while (tome_iter_next(it, &k, &kl) == TOME_OK) {
            CHECK_OK(tome_iter_value(it, &v, &vl));
            fprintf(f, "%.*s=%.*s\n", (int)kl, (const char *)k, (int)vl, (const char *)v);
        }
        tome_iter_close(it);
        for (unsigned i = 0; i < 1500; i++) {
            char kk[16];
            key_of(kk, i);
            int rc = tome_get(t, 0, kk, strlen(kk), &v, &vl);
            if (i % 3 == 0) {
                CHECK_RC(rc, TOME_NOTFOUND);
                CHECK_OK(tome_get_unremoved(t, 0, kk, strlen(kk), &v, &vl));
            } else {
                CHECK_OK(rc);
            }
            fprintf(f, "%s:%.*s\n", kk, (int)vl, (const char *)v);
            const tome_version *vs;
            size_t nv;
            CHECK_OK(tome_versions(t, 0, kk, strlen(kk), &vs, &nv));
            CHECK_EQ(nv, i % 3 == 0 ? 4 : 3);
            for (size_t j = 0; j < nv; j++) {
                if (vs[j].removed) continue;
                CHECK_OK(tome_get_version(t, 0, kk, strlen(kk), vs[j].seq, &v, &vl));
                char want[128];
                size_t wn = val_of(want, i, (unsigned)j);
                CHECK_MEM(v, vl, want, wn);
            }
        }
        tome_abort(t);
        fclose(f);
        CHECK_OK(tome_close(db));
    }
    CHECK(outn[0] > 1000);
    CHECK_MEM(out[0], outn[0], out[1], outn[1]);
    free(out[0]);
    free(out[1]);
}

/* A scan in batches stays exact while other transactions insert and
 * remove keys between its steps (each change makes the cursor seek past
 * the last key it passed): every key that existed in the snapshot is
 * returned once, in order, and nothing else. */
TT_TEST(batched_scan_under_concurrent_changes) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/conc", tt_tmpdir());
    tome_db *db = open_store(dir, 0);
    CHECK(db != NULL);
    enum { N = 64 * 5 + 7 };
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (unsigned i = 0; i < N; i++) {
        char k[16];
        key_of(k, i * 2);
        CHECK_OK(tome_insert(t, 0, k, strlen(k), "v", 1));
    }
    CHECK_OK(tome_commit(t));
    tome_txn *r;
    CHECK_OK(tome_begin_at(db, 1, &r));
    tome_iter *it;
    CHECK_OK(tome_iter_open(r, 0, NULL, 0, &it));
    unsigned seen = 0;
    const void *k;
    size_t kl;
    while (tome_iter_next(it, &k, &kl) == TOME_OK) {
        char want[16];
        key_of(want, seen * 2);
        CHECK_STRMEM(k, kl, want);
        /* change the tree: insert odd keys ahead, remove the key just seen
         * and one ahead; merge now and then */
        tome_txn *w;
        CHECK_OK(tome_begin(db, &w));
        char x[16];
        key_of(x, seen * 2 + 1);
        CHECK_OK(tome_insert(w, 0, x, strlen(x), "n", 1));
        CHECK_OK(tome_remove(w, 0, k, kl));
        key_of(x, seen * 2 + 40);
        CHECK_OK(tome_remove(w, 0, x, strlen(x)));
        CHECK_OK(tome_commit(w));
        if (seen % 50 == 0) CHECK_OK(tome_merge(db));
        seen++;
    }
    CHECK_EQ(seen, N);
    tome_iter_close(it);
    tome_abort(r);
    CHECK_OK(tome_close(db));
}

/* A byte flipped in a value on disk is found by every read path: a get, a
 * scan's value read, with the mapping and with pread. */
TT_TEST(damaged_value_is_corrupt_both_ways) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/dmg", tt_tmpdir());
    tome_db *db = open_store(dir, 0);
    CHECK(db != NULL);
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    static const char val[] = "the value that will be damaged on disk";
    CHECK_OK(tome_insert(t, 0, "key", 3, val, sizeof val - 1));
    CHECK_OK(tome_commit(t));
    CHECK_OK(tome_close(db));
    /* find the value's bytes in the log and flip one */
    char path[600];
    snprintf(path, sizeof path, "%s/0000000000000001.log", dir);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    static char buf[1 << 16];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    CHECK(n > 0);
    char *p = memmem(buf, (size_t)n, val, sizeof val - 1);
    CHECK(p != NULL);
    char c = (char)(p[5] ^ 0x20);
    CHECK_EQ(pwrite(fd, &c, 1, (off_t)(p + 5 - buf)), 1);
    close(fd);
    for (int m = 0; m < 2; m++) {
        db = open_store(dir, m);
        CHECK(db != NULL); /* the INDEX covers the record: found at read */
        CHECK_OK(tome_begin(db, &t));
        const void *v;
        size_t vl;
        CHECK_RC(tome_get(t, 0, "key", 3, &v, &vl), TOME_CORRUPT);
        tome_iter *it;
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        const void *k;
        size_t kl;
        CHECK_OK(tome_iter_next(it, &k, &kl));
        CHECK_STRMEM(k, kl, "key");
        CHECK_RC(tome_iter_value(it, &v, &vl), TOME_CORRUPT);
        tome_iter_close(it);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
}

/* Keys with several versions keep a copy of the newest one's place in the
 * entry (reads then skip the version array): the copy must follow every
 * change: new versions, removals, a merge that moves records (with history
 * kept, so that entries keep several versions) and one that drops them,
 * and a reopen from the index file. Every key is checked after each step,
 * against the generation last written to it, in a snapshot that sees the
 * newest commit and in one opened before the last step. */
TT_TEST(newest_version_copy_follows_every_change) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/newest", tt_tmpdir());
    tome_options o;
    tome_options_init(&o);
    o.history_versions = 3;
    o.segment_size = 64 * 1024;
    tome_db *db = NULL;
    CHECK_OK(tome_open(dir, &o, &db));
    enum { N = 400 };
    static int gen[N]; /* generation of the newest write, -1: removed */
    for (unsigned i = 0; i < N; i++) gen[i] = -2;
    for (unsigned step = 0; step < 12; step++) {
        tome_txn *old;
        CHECK_OK(tome_begin(db, &old));
        static int before[N];
        memcpy(before, gen, sizeof gen);
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        for (unsigned i = 0; i < N; i++) {
            unsigned r = (i * 7 + step * 13) % 10;
            char k[16], v[128];
            key_of(k, i);
            if (r < 5) {
                size_t vl = val_of(v, i, step);
                CHECK_OK(tome_insert(t, 0, k, strlen(k), v, vl));
                gen[i] = (int)step;
            } else if (r == 5 && gen[i] >= 0) {
                CHECK_OK(tome_remove(t, 0, k, strlen(k)));
                gen[i] = -1;
            }
        }
        CHECK_OK(tome_commit(t));
        if (step % 3 == 2) CHECK_OK(tome_merge(db));
        if (step % 4 == 3) { /* reopen: the index file rebuilds the copies */
            tome_abort(old);
            CHECK_OK(tome_close(db));
            CHECK_OK(tome_open(dir, &o, &db));
            CHECK_OK(tome_begin(db, &old));
            memcpy(before, gen, sizeof gen);
        }
        CHECK_OK(tome_begin(db, &t));
        for (unsigned i = 0; i < N; i++) {
            char k[16], v[128];
            key_of(k, i);
            const void *got;
            size_t gl;
            for (int w = 0; w < 2; w++) {
                int g = w ? before[i] : gen[i];
                int rc = tome_get(w ? old : t, 0, k, strlen(k), &got, &gl);
                if (g < 0) {
                    CHECK_RC(rc, TOME_NOTFOUND);
                } else {
                    CHECK_OK(rc);
                    size_t vl = val_of(v, i, (unsigned)g);
                    CHECK_MEM(got, gl, v, vl);
                }
            }
        }
        tome_abort(t);
        tome_abort(old);
    }
    CHECK_OK(tome_close(db));
}

/* ---- allocation failure inside a batched scan ---- */

static atomic_ullong g_count, g_fail_at;
static void *h_malloc(size_t n) {
    unsigned long long c = atomic_fetch_add(&g_count, 1) + 1;
    return c == atomic_load(&g_fail_at) ? NULL : malloc(n);
}
static void *h_realloc(void *p, size_t n) {
    unsigned long long c = atomic_fetch_add(&g_count, 1) + 1;
    return c == atomic_load(&g_fail_at) ? NULL : realloc(p, n);
}
static const tome_alloc_hooks g_hooks = {h_malloc, h_realloc, free};

/* For every allocation of a scan in turn: that allocation fails once; the
 * call that hit it returns TOME_NOMEM, and calling again goes on where it
 * stopped: the keys and values seen are exactly the store's merged with the
 * transaction's pending writes, in order. */
TT_TEST(scan_resumes_after_allocation_failure) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/oom", tt_tmpdir());
    tome_db *db = open_store(dir, 0);
    CHECK(db != NULL);
    enum { N = 200 };
    CHECK_OK(fill(db, N, 0));
    unsigned points = 0, nomem = 0;
    for (unsigned long long at = 1;; at++) {
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        /* pending writes that the scan merges in: overwrites and removals */
        for (unsigned i = 0; i < N; i += 10) {
            char pk[16];
            key_of(pk, i);
            CHECK_OK(tome_insert(t, 0, pk, strlen(pk), "P", 1));
            key_of(pk, i + 5);
            CHECK_OK(tome_remove(t, 0, pk, strlen(pk)));
        }
        atomic_store(&g_count, 0);
        atomic_store(&g_fail_at, at);
        tome_alloc_set_hooks(&g_hooks);
        tome_iter *it = NULL;
        int rc;
        while ((rc = tome_iter_open(t, 0, NULL, 0, &it)) == TOME_NOMEM) nomem++;
        unsigned seen = 0;
        int bad = rc != TOME_OK;
        for (;;) {
            const void *k, *v;
            size_t kl, vl;
            rc = tome_iter_next(it, &k, &kl);
            if (rc == TOME_NOMEM) {
                nomem++;
                continue;
            }
            if (rc == TOME_NOTFOUND) break;
            if (rc != TOME_OK) {
                bad = 1;
                break;
            }
            while ((rc = tome_iter_value(it, &v, &vl)) == TOME_NOMEM) nomem++;
            unsigned i = seen + seen / 9 + (seen % 9 >= 5); /* skip i % 10 == 5 */
            char wk[16], wv[128];
            key_of(wk, i);
            size_t wn = i % 10 == 0 ? 1 : val_of(wv, i, 0);
            if (i % 10 == 0) wv[0] = 'P';
            if (rc != TOME_OK || kl != strlen(wk) || memcmp(k, wk, kl) || vl != wn || memcmp(v, wv, wn)) {
                bad = 1;
                break;
            }
            seen++;
        }
        tome_alloc_set_hooks(NULL);
        unsigned long long used = atomic_load(&g_count);
        tome_iter_close(it);
        tome_abort(t);
        if (bad || seen != N - N / 10) fprintf(stderr, "  at %llu: seen %u rc %d\n", at, seen, rc);
        CHECK(!bad);
        CHECK_EQ(seen, N - N / 10);
        points++;
        if (at > used) break; /* this run had no failure left to inject */
    }
    CHECK(points > 5);
    CHECK(nomem > 0);
    CHECK_OK(tome_close(db));
}

TT_MAIN()
