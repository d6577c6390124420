/*
 * test_fuzz_replay.c -- the fuzz targets in `make test`, with the ordinary
 * compiler: the committed corpora are replayed, and deterministic variations
 * of them are run, through the very functions libFuzzer drives.
 *
 * fuzz/fuzz_open.c and fuzz/fuzz_ops.c each define int fuzz_one(data,
 * size) (0, or -1 when the store broke a promise). Both are compiled into
 * this file, renamed fuzz_open_one and fuzz_ops_one with the preprocessor
 * (every other name in them is static or prefixed fo_/fx_, so they do not
 * collide). The cases:
 *   - corpus_open / corpus_ops: every file in fuzz/corpus/<target>/ (the
 *     seeds from fuzz/mkcorpus.c plus what fuzzing found worth keeping,
 *     including inputs that once failed) must return 0;
 *   - open_seed_mutations: each open seed (real stores) with bytes flipped
 *     at spread-out offsets, cut short, and with a run of bytes zeroed:
 *     a poor man's fuzzing with a fixed generator;
 *   - ops_random_streams: call streams from a fixed generator.
 * The corpus directory is found next to this source file (__FILE__), so the
 * binary works from the repository root, where `make test` runs it.
 * TOME_TEST_SHORT=1 runs fewer variations.
 */
#include "tt.h"
#include "common/files.h"
#include "common/store.h"

#include <dirent.h>

#define fuzz_one fuzz_open_one
#include "../fuzz/fuzz_open.c"
#undef fuzz_one
#define fuzz_one fuzz_ops_one
#include "../fuzz/fuzz_ops.c"
#undef fuzz_one

/* dir of this source file + "/../fuzz/corpus/" + target */
static void corpus_dir(char *out, size_t cap, const char *target) {
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    if (slash) snprintf(out, cap, "%.*s/../fuzz/corpus/%s", (int)(slash - f), f, target);
    else snprintf(out, cap, "../fuzz/corpus/%s", target);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
            } else {
                b = nb;
            }
        }
    }
    fclose(f);
    *n = len;
    return b;
}

/* Runs fn over every file of the corpus; returns the number run, or -1
 * after printing the first input that failed. */
static long replay_dir(const char *target, int (*fn)(const uint8_t *, size_t)) {
    char dir[1024];
    corpus_dir(dir, sizeof dir, target);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "  cannot open %s\n", dir);
        return -1;
    }
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len = 0;
        uint8_t *b = read_all(path, &len);
        if (!b) {
            fprintf(stderr, "  cannot read %s\n", path);
            closedir(d);
            return -1;
        }
        int rc = fn(b, len);
        free(b);
        if (rc) {
            fprintf(stderr, "  input %s failed\n", path);
            closedir(d);
            return -1;
        }
        n++;
    }
    closedir(d);
    return n;
}

TT_TEST(corpus_open) {
    long n = replay_dir("open", fuzz_open_one);
    printf("     %ld inputs\n", n);
    CHECK(n >= FO_NSEEDS);
}

TT_TEST(corpus_ops) {
    long n = replay_dir("ops", fuzz_ops_one);
    printf("     %ld inputs\n", n);
    CHECK(n >= 16);
}

/* The seeds themselves must be what they claim: stores that open. */
TT_TEST(open_seeds_are_stores) {
    for (int s = 0; s < FO_NSEEDS; s++) {
        uint8_t *p;
        size_t n;
        CHECK_OK(fuzz_open_seed(s, &p, &n));
        tome_vfs *v = tome_vfs_mem_new();
        CHECK(v != NULL);
        int odd = 0;
        fo_in in = {p + 1, n - 1};
        fo_build(v, FO_DIR, in, &odd);
        tome_local_test_vfs(v);
        tome_db *db = NULL;
        int rc = tome_open(FO_DIR, NULL, &db);
        if (rc) fprintf(stderr, "  seed %d: tome_open: %s (%s)\n", s, tt_rcname(rc), tome_errmsg(NULL));
        uint64_t seq = 0;
        if (!rc) tome_last_seq(db, &seq);
        if (!rc) rc = tome_close(db);
        tome_local_test_vfs(NULL);
        v->destroy(v);
        free(p);
        CHECK_OK(rc);
        CHECK_EQ(odd, 0);
        if (s > 0) CHECK(seq > 0);
    }
}

TT_TEST(open_seed_mutations) {
    int per = ts_short() ? 25 : 500;
    long runs = 0;
    uint64_t rng = 4711;
    for (int s = 0; s < FO_NSEEDS; s++) {
        uint8_t *p;
        size_t n;
        CHECK_OK(fuzz_open_seed(s, &p, &n));
        uint8_t *m = malloc(n);
        CHECK(m != NULL);
        for (int i = 0; i < per; i++) {
            memcpy(m, p, n);
            size_t len = n;
            int kind = i % 4;
            if (kind == 0 || kind == 1) {
                /* 1 or 3 bytes changed at spread-out offsets */
                for (int j = 0; j < (kind ? 3 : 1); j++) {
                    size_t at = 1 + (size_t)(tf_rand(&rng) % (n - 1));
                    m[at] ^= (uint8_t)(1u << (tf_rand(&rng) % 8));
                }
            } else if (kind == 2) {
                len = 1 + (size_t)(tf_rand(&rng) % (n - 1)); /* cut short */
            } else {
                size_t at = 1 + (size_t)(tf_rand(&rng) % (n - 1));
                size_t z = 1 + (size_t)(tf_rand(&rng) % 64);
                if (at + z > n) z = n - at;
                memset(m + at, kind == 3 && (i & 4) ? 0xff : 0, z);
            }
            m[0] = (uint8_t)(tf_rand(&rng) % 32); /* any flags */
            int rc = fuzz_open_one(m, len);
            runs++;
            if (rc) {
                char path[600];
                snprintf(path, sizeof path, "%s/failed-open-input", tt_tmpdir());
                FILE *f = fopen(path, "wb");
                if (f) {
                    fwrite(m, 1, len, f);
                    fclose(f);
                }
                fprintf(stderr, "  seed %d, variation %d failed; input saved as %s\n", s, i, path);
            }
            CHECK_OK(rc);
        }
        free(m);
        free(p);
    }
    printf("     %ld variations of %d seeds\n", runs, FO_NSEEDS);
}

TT_TEST(ops_random_streams) {
    int count = tf_short() ? 40 : 400;
    uint64_t rng = 1234;
    uint8_t buf[1500];
    for (int i = 0; i < count; i++) {
        size_t n = 20 + (size_t)(tf_rand(&rng) % (sizeof buf - 20));
        tf_fill(buf, n, tf_rand(&rng));
        int rc = fuzz_ops_one(buf, n);
        if (rc) {
            char path[600];
            snprintf(path, sizeof path, "%s/failed-ops-input", tt_tmpdir());
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(buf, 1, n, f);
                fclose(f);
            }
            fprintf(stderr, "  stream %d failed; input saved as %s\n", i, path);
        }
        CHECK_OK(rc);
    }
    printf("     %d streams\n", count);
}

/* ------------------------------------------------------------------------ */
/* What fuzzing found, as plain regression cases                             */
/* ------------------------------------------------------------------------ */

/* fuzz_ops: an iteration returns the transaction's pending writes as they
 * are when it is opened (tome.h, tome_iter_open): a key pending as removed
 * then re-inserted is not returned, a pending insert later removed is. */
TT_TEST(found_iteration_pending_writes_as_opened) {
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    tome_txn *t;
    tome_iter *it;
    const void *k;
    size_t kl;
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_insert(t, 0, "c", 1, "1", 1));
    CHECK_OK(tome_iter_open(t, 0, "c", 1, &it));
    CHECK_OK(tome_remove(t, 0, "c", 1)); /* after the open */
    int rc = tome_iter_next(it, &k, &kl);
    tome_abort(t);
    CHECK_RC(rc, TOME_OK); /* "c" was a pending insert when the iteration opened */
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_remove(t, 0, "d", 1));
    CHECK_OK(tome_iter_open(t, 0, "d", 1, &it));
    CHECK_OK(tome_insert(t, 0, "d", 1, "1", 1)); /* after the open */
    rc = tome_iter_next(it, &k, &kl);
    tome_abort(t);
    CHECK_RC(rc, TOME_NOTFOUND); /* "d" was a pending removal when it opened */
    CHECK_OK(tome_close(db));
}

/* fuzz_ops and fuzz_open: the history horizon of a merge stays after the
 * store is closed and reopened, also when the merge dropped nothing (then
 * no merged segment records it), and so tome_begin_at below it keeps
 * failing with NOTFOUND (and INDEX, which records the horizon, stays
 * usable). */
TT_TEST(found_merge_horizon_survives_reopen) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "a", "1"));
    CHECK_OK(ts_put(db, 0, "b", "2"));
    CHECK_OK(tome_merge(db)); /* nothing to drop: one version per key */
    tome_stats st;
    CHECK_OK(tome_stats_get(db, &st));
    CHECK_U64(st.horizon, 2);
    tome_txn *t;
    CHECK_RC(tome_begin_at(db, 1, &t), TOME_NOTFOUND);
    db = ts_reopen(db, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(tome_stats_get(db, &st));
    CHECK_U64(st.horizon, 2);
    int rc = tome_begin_at(db, 1, &t);
    if (rc == TOME_OK) tome_abort(t);
    CHECK_RC(rc, TOME_NOTFOUND);
    CHECK_OK(tome_close(db));
    char *report = NULL;
    CHECK_OK(tome_check(path, &report));
    int index_used = report && strstr(report, "index file: valid") != NULL;
    tome_free(report);
    CHECK(index_used);
}

/* fuzz_ops (clang UBSan): a log scan of a commit whose only key is the
 * empty one computed NULL + 0 (undefined behaviour) in local_scan_log. The
 * ordinary build shows no symptom; this case checks the data and, under
 * `make test SANITIZE=1` with clang or in `make fuzz`, the sanitizer. */
TT_TEST(found_scan_of_empty_key_only_commit) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_putm(db, 0, "", 0, "v", 1));
    CHECK_OK(tome_close(db));
    CHECK(ts_unlink(path, "INDEX"));
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    tome_txn *t;
    const void *v;
    size_t vl;
    CHECK_OK(tome_begin(db, &t));
    int rc = tome_get(t, 0, "", 0, &v, &vl);
    int same = rc == TOME_OK && vl == 1 && !memcmp(v, "v", 1);
    tome_abort(t);
    CHECK(same);
    CHECK_OK(tome_close(db));
}

/* fuzz_open: one damaged bit in the last commit of a sealed log segment,
 * with the newest segment holding one commit, opened after a crash (no
 * INDEX). A segment is synced before the next one is created, so damage
 * before a later segment is never a torn tail: tome_check and tome_open
 * must say CORRUPT. (Recovery took it for a torn tail, took the next
 * segment's intact, acknowledged commit for one too since its seq no longer
 * followed, and the read-write open zeroed both: two acknowledged commits
 * lost without an error; later full scans then also reported a phantom
 * commit, the next segment's base seq.) */
TT_TEST(found_damage_before_a_later_segment_is_not_a_torn_tail) {
    char path[TS_PATH_MAX];
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 4096;
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    char v[200];
    memset(v, 'v', sizeof v);
    int n = 0, before = 0;
    /* commit until a commit rolls the log over: it is alone in the newest segment */
    for (n = 1; n <= 200; n++) {
        char k[16];
        snprintf(k, sizeof k, "key%03d", n);
        before = tf_count_suffix(path, ".log");
        CHECK_OK(ts_putm(db, 0, k, strlen(k), v, sizeof v));
        if (n > 20 && tf_count_suffix(path, ".log") > before) break;
    }
    CHECK(n <= 200);
    CHECK_OK(tome_close(db));
    /* the last commit record of the segment before the newest: flip a bit of its seq */
    char segpath[TF_PATH_MAX], name[32];
    snprintf(name, sizeof name, "%016llx.log", (unsigned long long)before);
    tf_path(segpath, sizeof segpath, path, name);
    int64_t at = -1, from = 0, hit;
    while ((hit = tf_find(segpath, "TOMECMT!", 8, (uint64_t)from)) >= 0) {
        at = hit;
        from = hit + 1;
    }
    CHECK(at > 0);
    CHECK_EQ(tf_flip(segpath, (uint64_t)at + 8, 1), 0);
    CHECK(ts_unlink(path, "INDEX")); /* as after a crash */
    char *report = NULL;
    int rc = tome_check(path, &report);
    if (rc != TOME_CORRUPT) fprintf(stderr, "  tome_check:\n%s", report ? report : "");
    tome_free(report);
    CHECK_RC(rc, TOME_CORRUPT);
    rc = tome_open(path, &o, &db);
    if (rc == TOME_OK) {
        uint64_t last = ts_seq(db);
        tome_close(db);
        TT_FAIL_("the open succeeded with newest seq %llu; %d commits were acknowledged", (unsigned long long)last, n);
    }
    CHECK_RC(rc, TOME_CORRUPT);
}

TT_MAIN()
