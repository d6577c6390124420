/*
 * test_recovery.c -- crash recovery of the core engine, byte by byte.
 *
 * A store gets two commits A and B and is closed cleanly; then a child
 * process opens it, commits C and dies without closing (no INDEX covers C).
 * From that crashed store the cases build damaged copies the way a crash or
 * a bad disk leaves them and check what tome_open makes of each:
 *   - the newest commit cut at EVERY byte offset (file truncated there, or
 *     the rest zeroed as in a preallocated segment), and every byte of it
 *     flipped: the store opens, A and B are exact, no trace of C, and a new
 *     commit D made afterwards survives two reopens (the second without
 *     INDEX, so a torn tail that recovery left in place would hide D);
 *   - damage before the tail (a flipped byte inside B or A while C follows):
 *     TOME_CORRUPT, never a crash and never a wrong value;
 *   - garbage after the last commit, an empty or all-zero newest segment,
 *     a big commit torn inside a segment of its own;
 *   - a damaged, truncated, stale or inconsistent INDEX: ignored;
 *   - merges followed by reopens, with INDEX and with a full scan of the
 *     log (as after a crash), including a merged file merged again and a
 *     merge that leaves the newest sealed segment alone;
 *   - leftover *.tmp files, a read-only open of a torn store (it must not
 *     change any file), a store path that is a regular file.
 * Where a commit ends is measured, not assumed: the last non-zero byte can
 * fall short of it (a record may end in zero bytes), so the true end is the
 * shortest cut that keeps the commit (see true_end).
 * Stores use 256 KiB segments (16 KiB for the merge cases) so that copying a
 * store for every offset stays cheap; TOME_TEST_SHORT=1 strides the loops.
 */
#include "tt.h"
#include "common/files.h"
#include "tome.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define SEG_SIZE (256u * 1024u)

/* The loops copy and reopen a store a few thousand times, and every open
 * and close syncs files: on this machine's disk (a few ms per fsync) that
 * alone would take minutes. The recovery logic under test does not depend on
 * the file system (the damage is made by hand, not by a power cut), so the
 * stores go to tmpfs unless TMPDIR says otherwise. */
__attribute__((constructor)) static void prefer_tmpfs(void) {
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK | X_OK) == 0) setenv("TMPDIR", "/dev/shm", 0);
}

/* ------------------------------------------------------------------------ */
/* The data: keys, commits and a model of the expected store                 */
/* ------------------------------------------------------------------------ */

enum {
    K_A1, K_A2, K_A3, K_A4, K_AE,
    K_B1, K_B2, K_B3,
    K_C1, K_C2, K_C3, K_C4, K_C5, K_C6,
    K_D1, K_BIG,
    NKEYS
};

static const struct {
    uint8_t slot;
    const char *key;
} KEYS[NKEYS] = {
    {0, "a1"}, {0, "a2"}, {0, "a3"}, {0, "a4"}, {9, ""},
    {0, "b1"}, {7, "b2"}, {0, "b3"},
    {0, "c1"}, {0, "c2"}, {200, "c3"}, {7, "c4"}, {0, "c5"}, {3, "c6"},
    {0, "d1"}, {3, "big"},
};

/* The slots the model's keys live in (iterations cover each of them). */
static const uint8_t SLOTS[] = {0, 3, 7, 9, 200};

typedef struct op {
    int key;
    int remove;
    size_t len;
    uint64_t seed;
} op_t;

/* A: values of varied sizes, the empty value and the empty key. */
static const op_t COMMIT_A[] = {
    {K_A1, 0, 0, 101}, {K_A2, 0, 1, 102}, {K_A3, 0, 100, 103},
    {K_A4, 0, 1500, 104}, {K_AE, 0, 7, 105},
};
/* B: new keys, an overwrite and a removal of A's keys. */
static const op_t COMMIT_B[] = {
    {K_B1, 0, 64, 201}, {K_B2, 0, 300, 202}, {K_B3, 0, 2, 203},
    {K_A2, 0, 50, 204}, {K_A3, 1, 0, 0},
};
/* C (the commit that the crash tears): new keys in several slots, an
 * overwrite of B's b1 and a removal of A's a1. About 600 bytes of values. */
static const op_t COMMIT_C[] = {
    {K_C1, 0, 0, 301}, {K_C2, 0, 5, 302}, {K_C3, 0, 17, 303},
    {K_C4, 0, 120, 304}, {K_C5, 0, 333, 305}, {K_C6, 0, 40, 306},
    {K_B1, 0, 80, 307}, {K_A1, 1, 0, 0},
};
/* D: the commit made after recovery. */
static const op_t COMMIT_D[] = {{K_D1, 0, 25, 401}, {K_B3, 0, 9, 402}};
/* A commit bigger than a segment (it gets a segment of its own). */
static const op_t COMMIT_BIG[] = {{K_BIG, 0, SEG_SIZE + 40000, 501}, {K_C1, 0, 10, 502}};

#define NOPS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct mkey {
    int state;      /* 0 never written, 1 present, 2 removed */
    size_t len;     /* present: the value */
    uint64_t seed;
    int has_old;    /* removed: the value before the removal (the trash) */
    size_t olen;
    uint64_t oseed;
} mkey;

typedef struct model {
    mkey k[NKEYS];
    uint64_t last_seq;
    int trash;      /* 1: removed values still readable (no merge since) */
} model_t;

static void model_apply(model_t *m, const op_t *ops, size_t n, uint64_t seq) {
    for (size_t i = 0; i < n; i++) {
        mkey *k = &m->k[ops[i].key];
        if (ops[i].remove) {
            if (k->state == 1) {
                k->has_old = 1;
                k->olen = k->len;
                k->oseed = k->seed;
            }
            k->state = 2;
        } else {
            k->state = 1;
            k->len = ops[i].len;
            k->seed = ops[i].seed;
        }
    }
    m->last_seq = seq;
}

static const char *kname(int k) { return KEYS[k].key[0] ? KEYS[k].key : "(empty key)"; }

/* Runs one transaction with the ops and commits it. Returns the tome code
 * (no CHECK: the crashing child uses it too). *seq_out: the new last seq. */
static int apply_ops(tome_db *db, const op_t *ops, size_t n, uint64_t *seq_out) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *key = KEYS[ops[i].key].key;
        if (ops[i].remove) {
            rc = tome_remove(t, KEYS[ops[i].key].slot, key, strlen(key));
        } else {
            unsigned char *v = malloc(ops[i].len ? ops[i].len : 1);
            if (!v) rc = TOME_NOMEM;
            else {
                tf_fill(v, ops[i].len, ops[i].seed);
                rc = tome_insert(t, KEYS[ops[i].key].slot, key, strlen(key), v, ops[i].len);
                free(v);
            }
        }
    }
    if (rc) {
        tome_abort(t);
        return rc;
    }
    rc = tome_commit(t);
    if (rc == 0 && seq_out) rc = tome_last_seq(db, seq_out);
    return rc;
}

/* Lets the clock move on, so that the next commit gets a later timestamp. */
static void rm_sleep_1ms(void) {
    struct timespec ts = {0, 1100000};
    nanosleep(&ts, NULL);
}

static int value_is(const void *v, size_t vl, size_t len, uint64_t seed) {
    if (vl != len) return 0;
    if (len == 0) return 1;
    unsigned char *want = malloc(len);
    if (!want) return 0;
    tf_fill(want, len, seed);
    int same = memcmp(v, want, len) == 0;
    free(want);
    return same;
}

/* Checks every key of the model through the transaction: tome_get,
 * tome_get_unremoved, and an iteration of every slot (exact key set in
 * ascending order). */
static void verify_txn(tome_txn *t, const model_t *m) {
    for (int i = 0; i < NKEYS; i++) {
        const mkey *k = &m->k[i];
        const char *key = KEYS[i].key;
        uint8_t slot = KEYS[i].slot;
        const void *v;
        size_t vl;
        int rc = tome_get(t, slot, key, strlen(key), &v, &vl);
        if (k->state == 1) {
            if (rc != TOME_OK)
                TT_FAIL_("key %s: tome_get gave %s, want its value", kname(i), tt_rcname(rc));
            if (!value_is(v, vl, k->len, k->seed))
                TT_FAIL_("key %s: WRONG VALUE (len %zu, want len %zu seed %llu)", kname(i), vl,
                         k->len, (unsigned long long)k->seed);
        } else if (rc != TOME_NOTFOUND) {
            TT_FAIL_("key %s: tome_get gave %s, want NOTFOUND (%s)", kname(i), tt_rcname(rc),
                     k->state ? "removed" : "never written");
        }
        rc = tome_get_unremoved(t, slot, key, strlen(key), &v, &vl);
        if (k->state == 1 || (k->state == 2 && m->trash && k->has_old)) {
            size_t len = k->state == 1 ? k->len : k->olen;
            uint64_t seed = k->state == 1 ? k->seed : k->oseed;
            if (rc != TOME_OK)
                TT_FAIL_("key %s: tome_get_unremoved gave %s, want a value", kname(i),
                         tt_rcname(rc));
            if (!value_is(v, vl, len, seed))
                TT_FAIL_("key %s: tome_get_unremoved: WRONG VALUE (len %zu, want %zu)", kname(i),
                         vl, len);
        } else if (rc != TOME_NOTFOUND) {
            TT_FAIL_("key %s: tome_get_unremoved gave %s, want NOTFOUND", kname(i),
                     tt_rcname(rc));
        }
    }
    for (size_t s = 0; s < sizeof SLOTS; s++) {
        uint8_t slot = SLOTS[s];
        int want = 0;
        for (int i = 0; i < NKEYS; i++)
            if (KEYS[i].slot == slot && m->k[i].state == 1) want++;
        tome_iter *it;
        int rc = tome_iter_open(t, slot, NULL, 0, &it);
        if (rc != TOME_OK) TT_FAIL_("tome_iter_open(slot %u): %s", slot, tt_rcname(rc));
        char prev[64];
        size_t prevlen = 0;
        int count = 0;
        const void *kp;
        size_t kl;
        while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) {
            int found = -1;
            for (int i = 0; i < NKEYS; i++)
                if (KEYS[i].slot == slot && strlen(KEYS[i].key) == kl &&
                    (kl == 0 || memcmp(KEYS[i].key, kp, kl) == 0))
                    found = i;
            if (found < 0 || m->k[found].state != 1)
                TT_FAIL_("slot %u: iteration returned key '%.*s' (len %zu) that should not be "
                         "there", slot, (int)(kl < 40 ? kl : 40), (const char *)kp, kl);
            if (count > 0) {
                size_t mn = prevlen < kl ? prevlen : kl;
                int c = memcmp(prev, kp, mn);
                if (c > 0 || (c == 0 && prevlen >= kl))
                    TT_FAIL_("slot %u: iteration not strictly ascending at '%s'", slot,
                             kname(found));
            }
            memcpy(prev, kp, kl);
            prevlen = kl;
            count++;
        }
        tome_iter_close(it);
        if (rc != TOME_NOTFOUND) TT_FAIL_("slot %u: tome_iter_next ended with %s", slot, tt_rcname(rc));
        if (count != want) TT_FAIL_("slot %u: iteration gave %d keys, want %d", slot, count, want);
    }
}

static void verify(tome_db *db, const model_t *m) {
    uint64_t last = 0;
    CHECK_OK(tome_last_seq(db, &last));
    CHECK_U64(last, m->last_seq);
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    verify_txn(t, m);
    tome_abort(t);
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                  */
/* ------------------------------------------------------------------------ */

static tome_options g_opts;
static char g_ab[TF_PATH_MAX];    /* A, B, closed cleanly */
static char g_crash[TF_PATH_MAX]; /* A, B, then C committed by a process that died */
static char g_abc[TF_PATH_MAX];   /* the crashed store recovered and closed cleanly */
static char g_log1[TF_PATH_MAX];          /* name of the newest segment of g_ab */
static char g_log2[TF_PATH_MAX];          /* name of the newest segment of g_crash */
static int64_t g_e1, g_e2;        /* data ends (last non-zero byte) of those */
static int64_t g_t1, g_t2;        /* true ends of the commits B and C there */
static int64_t g_start;           /* where C's bytes may start in g_log2 */
static model_t g_m_ab, g_m_abc;
static int g_fixtures;            /* 0 not built, 1 built, -1 failed */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void open_ok(const char *dir, const tome_options *o, tome_db **db) {
    *db = NULL;
    int rc = tome_open(dir, o, db);
    if (rc != TOME_OK) TT_FAIL_("tome_open(%s): %s: %s", dir, tt_rcname(rc), tome_errmsg(NULL));
    if (!*db) TT_FAIL_("tome_open gave OK and a NULL handle");
}

/* Runs in a child: opens dir, commits ops, reports the seq on fd, dies
 * without closing. */
static void crash_child(const char *dir, const op_t *ops, size_t n, int fd) {
    tome_options o = g_opts;
    o.sync = TOME_SYNC_FULL;
    tome_db *db;
    if (tome_open(dir, &o, &db) != TOME_OK) _exit(10);
    uint64_t seq = 0;
    if (apply_ops(db, ops, n, &seq) != TOME_OK) _exit(11);
    if (write(fd, &seq, sizeof seq) != (ssize_t)sizeof seq) _exit(12);
    _exit(0);
}

static void crash_commit(const char *dir, const op_t *ops, size_t n, uint64_t *seq_out) {
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(dir, ops, n, p[1]);
    }
    close(p[1]);
    uint64_t seq = 0;
    ssize_t r = read(p[0], &seq, sizeof seq);
    close(p[0]);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        TT_FAIL_("crashing child failed: status 0x%x (10 open, 11 commit)", st);
    CHECK_EQ(r, (ssize_t)sizeof seq);
    *seq_out = seq;
}

/* Where the newest commit really ends in segment `logname` of the store
 * `base`. The data end (after the last non-zero byte) can fall short of it,
 * since a record may end in zero bytes (e.g. the high bytes of a
 * little-endian number). The true end is the smallest y >= from such that
 * the store cut at y (and without INDEX) still opens with last seq `want`.
 * -1 if none is found within 4 KiB. */
static int64_t true_end(const char *base, const char *logname, int64_t from, uint64_t want) {
    char work[TF_PATH_MAX], log[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    for (int64_t y = from; y < from + 4096; y++) {
        if (tf_copy_dir(base, work) != 0) return -1;
        tf_path(log, sizeof log, work, logname);
        if (y > tf_file_size(log) || tf_truncate(log, (uint64_t)y) != 0) return -1;
        tf_path(log, sizeof log, work, "INDEX"); /* measure the log alone */
        if (tf_remove(log) != 0) return -1;
        tome_db *db;
        if (tome_open(work, &g_opts, &db) != TOME_OK) return -1;
        uint64_t last = 0;
        int rc = tome_last_seq(db, &last);
        tome_close(db);
        if (rc != TOME_OK) return -1;
        if (last == want) return y;
    }
    return -1;
}

static void build_fixtures(void) {
    if (g_fixtures > 0) return;
    if (g_fixtures < 0) TT_FAIL_("the fixtures failed to build in an earlier case");
    g_fixtures = -1;
    tome_options_init(&g_opts);
    g_opts.sync = TOME_SYNC_NONE;
    g_opts.segment_size = SEG_SIZE;
    snprintf(g_ab, sizeof g_ab, "%s", tt_tmpdir());
    snprintf(g_crash, sizeof g_crash, "%s", tt_tmpdir());
    snprintf(g_abc, sizeof g_abc, "%s", tt_tmpdir());

    tome_db *db;
    uint64_t seq;
    memset(&g_m_ab, 0, sizeof g_m_ab);
    g_m_ab.trash = 1;
    open_ok(g_ab, &g_opts, &db);
    if (tt_failed_now) return;
    CHECK_OK(apply_ops(db, COMMIT_A, NOPS(COMMIT_A), &seq));
    CHECK(seq > 0);
    model_apply(&g_m_ab, COMMIT_A, NOPS(COMMIT_A), seq);
    CHECK_OK(apply_ops(db, COMMIT_B, NOPS(COMMIT_B), &seq));
    CHECK(seq > g_m_ab.last_seq);
    model_apply(&g_m_ab, COMMIT_B, NOPS(COMMIT_B), seq);
    verify(db, &g_m_ab);
    if (tt_failed_now) return;
    CHECK_OK(tome_close(db));

    char path[TF_PATH_MAX];
    CHECK_EQ(tf_newest_log(g_ab, path, sizeof path, NULL), 0);
    snprintf(g_log1, sizeof g_log1, "%s", base_name(path));
    g_e1 = tf_data_end(path);
    CHECK(g_e1 > 0);
    g_t1 = true_end(g_ab, g_log1, g_e1, g_m_ab.last_seq);
    if (g_t1 < 0) TT_FAIL_("cannot find where commit B ends in %s", g_log1);

    CHECK_EQ(tf_copy_dir(g_ab, g_crash), 0);
    crash_commit(g_crash, COMMIT_C, NOPS(COMMIT_C), &seq);
    if (tt_failed_now) return;
    CHECK(seq > g_m_ab.last_seq);
    g_m_abc = g_m_ab;
    model_apply(&g_m_abc, COMMIT_C, NOPS(COMMIT_C), seq);

    CHECK_EQ(tf_newest_log(g_crash, path, sizeof path, NULL), 0);
    snprintf(g_log2, sizeof g_log2, "%s", base_name(path));
    g_e2 = tf_data_end(path);
    g_start = strcmp(g_log1, g_log2) == 0 ? g_t1 : 0;
    CHECK(g_e2 > g_start);
    g_t2 = true_end(g_crash, g_log2, g_e2, g_m_abc.last_seq);
    if (g_t2 < 0) TT_FAIL_("cannot find where commit C ends in %s", g_log2);
    printf("     commit C: bytes [%lld, %lld) of %s (%lld bytes, %lld zero bytes at the end); "
           "B ends at %lld in %s\n",
           (long long)g_start, (long long)g_t2, g_log2, (long long)(g_t2 - g_start),
           (long long)(g_t2 - g_e2), (long long)g_t1, g_log1);

    CHECK_EQ(tf_copy_dir(g_crash, g_abc), 0);
    open_ok(g_abc, &g_opts, &db);
    if (tt_failed_now) return;
    verify(db, &g_m_abc);
    if (tt_failed_now) {
        tome_close(db);
        return;
    }
    CHECK_OK(tome_close(db));
    tf_path(path, sizeof path, g_abc, "INDEX");
    CHECK(tf_exists(path));
    g_fixtures = 1;
}

#define FIXTURES()                       \
    do {                                 \
        build_fixtures();                \
        if (tt_failed_now) return;       \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The common check after damage                                             */
/* ------------------------------------------------------------------------ */

static void run_check(const char *dir, int want) {
    char *report = NULL;
    int rc = tome_check(dir, &report);
    if (rc != want) {
        fprintf(stderr, "  tome_check report:\n%s\n", report ? report : "(none)");
        tome_free(report);
        TT_FAIL_("tome_check(%s): %s, want %s", dir, tt_rcname(rc), tt_rcname(want));
    }
    tome_free(report);
}

/* Opens the damaged store in dir: it must open and hold exactly *want.
 * Then commits D, closes, deletes INDEX (so the next open scans the whole
 * log, through whatever recovery left behind), reopens: want + D. With
 * check, tome_check must then pass. */
static void recover_and_extend_ex(const char *dir, const model_t *want, int check,
                                  int may_corrupt, int *was_corrupt) {
    tome_db *db;
    if (may_corrupt) {
        db = NULL;
        int rc = tome_open(dir, &g_opts, &db);
        if (rc == TOME_CORRUPT && db == NULL) {
            *was_corrupt = 1;
            return;
        }
        if (rc == TOME_OK) tome_close(db);
    }
    open_ok(dir, &g_opts, &db);
    if (tt_failed_now) return;
    verify(db, want);
    if (tt_failed_now) {
        tome_close(db);
        return;
    }
    model_t m = *want;
    uint64_t seq = 0;
    int rc = apply_ops(db, COMMIT_D, NOPS(COMMIT_D), &seq);
    if (rc != TOME_OK) {
        tome_close(db);
        TT_FAIL_("commit D after recovery: %s", tt_rcname(rc));
    }
    if (seq <= want->last_seq) {
        tome_close(db);
        TT_FAIL_("commit D got seq %llu, not above %llu", (unsigned long long)seq,
                 (unsigned long long)want->last_seq);
    }
    model_apply(&m, COMMIT_D, NOPS(COMMIT_D), seq);
    CHECK_OK(tome_close(db));

    char idx[TF_PATH_MAX];
    tf_path(idx, sizeof idx, dir, "INDEX");
    CHECK_EQ(tf_remove(idx), 0);
    open_ok(dir, &g_opts, &db);
    if (tt_failed_now) {
        fprintf(stderr, "  (reopen after commit D, without INDEX)\n");
        return;
    }
    verify(db, &m);
    if (tt_failed_now) {
        fprintf(stderr, "  (reopen after commit D, without INDEX: D lost?)\n");
        tome_close(db);
        return;
    }
    CHECK_OK(tome_close(db));
    if (check) run_check(dir, TOME_OK);
}

static void recover_and_extend(const char *dir, const model_t *want, int check) {
    recover_and_extend_ex(dir, want, check, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* The crashed store as it is                                                */
/* ------------------------------------------------------------------------ */

TT_TEST(crash_keeps_committed_c) {
    FIXTURES();
    char work[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    CHECK_EQ(tf_copy_dir(g_crash, work), 0);
    recover_and_extend(work, &g_m_abc, 1);
    if (tt_failed_now) return;
    /* The same without INDEX: a full scan finds C. */
    CHECK_EQ(tf_copy_dir(g_crash, work), 0);
    char idx[TF_PATH_MAX];
    tf_path(idx, sizeof idx, work, "INDEX");
    CHECK_EQ(tf_remove(idx), 0);
    recover_and_extend(work, &g_m_abc, 1);
}

/* ------------------------------------------------------------------------ */
/* The newest commit cut or damaged at every byte                            */
/* ------------------------------------------------------------------------ */

enum { CUT_TRUNCATE, CUT_ZERO, CUT_FLIP };
static const char *const CUT_NAMES[] = {"truncate at", "zero from", "flip byte at"};

/* What the store holds after the cut: zeroing from x changes nothing when
 * only zero bytes follow x (x >= the data end); truncating at the true end
 * keeps C whole. */
static const model_t *cut_expect(int how, int64_t x) {
    if (how == CUT_TRUNCATE) return x >= g_t2 ? &g_m_abc : &g_m_ab;
    if (how == CUT_ZERO) return x >= g_e2 ? &g_m_abc : &g_m_ab;
    return &g_m_ab;
}

static void cut_one(const char *work, int how, int64_t x, int check) {
    CHECK_EQ(tf_copy_dir(g_crash, work), 0);
    char log[TF_PATH_MAX];
    tf_path(log, sizeof log, work, g_log2);
    switch (how) {
    case CUT_TRUNCATE: CHECK_EQ(tf_truncate(log, (uint64_t)x), 0); break;
    case CUT_ZERO: CHECK_EQ(tf_zero_range(log, (uint64_t)x, (uint64_t)g_t2), 0); break;
    default: CHECK_EQ(tf_flip(log, (uint64_t)x, 0xFF), 0); break;
    }
    recover_and_extend(work, cut_expect(how, x), check);
}

/* Every offset of C: [start, true end) for flips, and up to the true end
 * itself for cuts (where the store keeps C). */
static void cut_loop(int how) {
    FIXTURES();
    char work[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    int64_t stride = tf_short() ? 13 : 1;
    int64_t end = how == CUT_FLIP ? g_t2 - 1 : g_t2;
    long n = 0;
    for (int64_t x = g_start; x <= end; x++) {
        if ((x - g_start) % stride != 0 && x != end) continue;
        cut_one(work, how, x, n % 64 == 0 || x == end);
        if (tt_failed_now) {
            fprintf(stderr, "  at: %s offset %lld of %s (C spans [%lld, %lld), data end %lld)\n",
                    CUT_NAMES[how], (long long)x, g_log2, (long long)g_start, (long long)g_t2,
                    (long long)g_e2);
            return;
        }
        n++;
    }
    printf("     %ld offsets\n", n);
}

TT_TEST(torn_tail_truncated_at_every_offset) { cut_loop(CUT_TRUNCATE); }
TT_TEST(torn_tail_zeroed_from_every_offset) { cut_loop(CUT_ZERO); }
TT_TEST(torn_tail_every_byte_flipped) { cut_loop(CUT_FLIP); }

/* ------------------------------------------------------------------------ */
/* Damage before the tail                                                    */
/* ------------------------------------------------------------------------ */

/* Finds the log bytes of a value written by the model (its first 32 bytes,
 * from its seed; values are stored as they are): writes the segment path
 * to log, returns the offset of the value, -1 if no segment holds it. */
static int64_t find_value(const char *dir, uint64_t seed, char *log, size_t cap) {
    unsigned char needle[32];
    tf_fill(needle, sizeof needle, seed);
    return tf_find_in_logs(dir, needle, sizeof needle, log, cap);
}

/* With INDEX deleted, the open scans the whole log: damage inside B (or A)
 * with C after it is not a torn tail. */
TT_TEST(damage_before_tail_is_corrupt_without_index) {
    FIXTURES();
    char work[TF_PATH_MAX], log[TF_PATH_MAX], idx[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    static const struct { int key; size_t len; uint64_t seed; size_t at; } T[] = {
        {K_B2, 300, 202, 0}, {K_B2, 300, 202, 150}, {K_B2, 300, 202, 299},
        {K_A4, 1500, 104, 700}, {K_B1, 64, 201, 63},
    };
    for (size_t i = 0; i < NOPS(T); i++) {
        CHECK_EQ(tf_copy_dir(g_crash, work), 0);
        tf_path(idx, sizeof idx, work, "INDEX");
        CHECK_EQ(tf_remove(idx), 0);
        int64_t off = find_value(work, T[i].seed, log, sizeof log);
        if (off < 0) TT_FAIL_("value of %s not found in any segment", kname(T[i].key));
        if (!strcmp(base_name(log), g_log2)) CHECK(off < g_start); /* C is after it */
        CHECK_EQ(tf_flip(log, (uint64_t)off + T[i].at, 0xFF), 0);

        tome_db *db = NULL;
        int rc = tome_open(work, &g_opts, &db);
        if (rc == TOME_OK) tome_close(db);
        if (rc != TOME_CORRUPT)
            TT_FAIL_("byte %zu of %s's value flipped (C after it), no INDEX: tome_open gave %s, "
                     "want CORRUPT", T[i].at, kname(T[i].key), tt_rcname(rc));
        CHECK(db == NULL);
        tome_options ro = g_opts;
        ro.read_only = 1;
        db = NULL;
        rc = tome_open(work, &ro, &db);
        if (rc == TOME_OK) tome_close(db);
        if (rc != TOME_CORRUPT)
            TT_FAIL_("same, read-only open: %s, want CORRUPT", tt_rcname(rc));
        run_check(work, TOME_CORRUPT);
        if (tt_failed_now) return;
    }
}

/* With an INDEX the open may not read B's bytes at all: then reading the
 * damaged key must give TOME_CORRUPT (never the wrong value) and tome_check
 * must find the damage. Done on the crashed store (stale INDEX from before
 * C) and on the recovered, cleanly closed one (INDEX covers everything). */
static void damage_with_index(const char *base) {
    char work[TF_PATH_MAX], log[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    CHECK_EQ(tf_copy_dir(base, work), 0);
    int64_t off = find_value(work, 202, log, sizeof log);
    if (off < 0) TT_FAIL_("value of b2 not found in any segment");
    CHECK_EQ(tf_flip(log, (uint64_t)off + 150, 0xFF), 0);

    tome_db *db = NULL;
    int rc = tome_open(work, &g_opts, &db);
    if (rc == TOME_CORRUPT) {
        CHECK(db == NULL);
        return;
    }
    if (rc != TOME_OK) TT_FAIL_("tome_open: %s, want OK or CORRUPT", tt_rcname(rc));
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    const void *v;
    size_t vl;
    rc = tome_get(t, KEYS[K_B2].slot, "b2", 2, &v, &vl);
    int rc2 = tome_get_unremoved(t, KEYS[K_B2].slot, "b2", 2, &v, &vl);
    tome_abort(t);
    CHECK_OK(tome_close(db));
    if (rc == TOME_OK)
        TT_FAIL_("damaged b2 read back as OK (%s value)",
                 value_is(v, vl, 300, 202) ? "the old, undamaged" : "a WRONG");
    CHECK_RC(rc, TOME_CORRUPT);
    CHECK_RC(rc2, TOME_CORRUPT);
    run_check(work, TOME_CORRUPT);
}

TT_TEST(damage_before_tail_with_stale_index) {
    FIXTURES();
    damage_with_index(g_crash);
}

TT_TEST(damage_with_full_index) {
    FIXTURES();
    damage_with_index(g_abc);
}

/* ------------------------------------------------------------------------ */
/* Garbage and empty segments                                                */
/* ------------------------------------------------------------------------ */

static void garbage_after(const char *base, const char *logname, int64_t end,
                          const model_t *want) {
    static const size_t LENS[] = {1, 3, 16, 100, 700, 5000};
    char work[TF_PATH_MAX], log[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    uint64_t rng = 42;
    for (size_t i = 0; i < NOPS(LENS); i++) {
        for (int variant = 0; variant < 2; variant++) {
            unsigned char buf[5000];
            for (size_t j = 0; j < LENS[i]; j++) buf[j] = (unsigned char)tf_rand(&rng);
            if (variant == 1) buf[0] = 0; /* garbage after a zero byte */
            CHECK_EQ(tf_copy_dir(base, work), 0);
            tf_path(log, sizeof log, work, logname);
            CHECK_EQ(tf_write_at(log, (uint64_t)end, buf, LENS[i]), 0);
            recover_and_extend(work, want, 1);
            if (tt_failed_now) {
                fprintf(stderr, "  at: %zu bytes of garbage at %lld of %s\n", LENS[i],
                        (long long)end, logname);
                return;
            }
        }
    }
}

TT_TEST(garbage_after_crashed_tail) {
    FIXTURES();
    garbage_after(g_crash, g_log2, g_t2, &g_m_abc);
}

TT_TEST(garbage_after_clean_close) {
    FIXTURES();
    garbage_after(g_ab, g_log1, g_t1, &g_m_ab);
}

/* A crash right after a new segment was created: it is empty, or all
 * zeros (preallocated, nothing written). */
static void extra_segment(const char *base, const model_t *want, uint64_t size) {
    char work[TF_PATH_MAX], log[TF_PATH_MAX], name[64];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    CHECK_EQ(tf_copy_dir(base, work), 0);
    uint64_t segno = 0;
    CHECK_EQ(tf_newest_log(work, log, sizeof log, &segno), 0);
    snprintf(name, sizeof name, "%016llx.log", (unsigned long long)segno + 1);
    tf_path(log, sizeof log, work, name);
    CHECK_EQ(tf_create_empty(log), 0);
    if (size) CHECK_EQ(tf_truncate(log, size), 0);
    recover_and_extend(work, want, 1);
    if (tt_failed_now) fprintf(stderr, "  at: extra newest segment %s of %llu bytes\n", name,
                               (unsigned long long)size);
}

TT_TEST(empty_newest_segment) {
    FIXTURES();
    extra_segment(g_ab, &g_m_ab, 0);
    if (tt_failed_now) return;
    extra_segment(g_crash, &g_m_abc, 0);
    if (tt_failed_now) return;
    extra_segment(g_ab, &g_m_ab, SEG_SIZE);
    if (tt_failed_now) return;
    extra_segment(g_crash, &g_m_abc, SEG_SIZE);
}

/* The newest segment of the crashed store emptied (C's segment, or the
 * segment holding A, B and C) is the zero offset of the loops; here the
 * file is cut to zero length when C has a segment of its own, and in any
 * case the whole newest commit region is zeroed. */
TT_TEST(newest_segment_emptied) {
    FIXTURES();
    char work[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    cut_one(work, CUT_ZERO, g_start, 1);
    if (tt_failed_now) return;
    if (g_start == 0) cut_one(work, CUT_TRUNCATE, 0, 1);
}

/* A commit bigger than a segment, torn: at offsets through the whole
 * commit (strided: it is over 256 KiB), and every offset of its first 160
 * and last 64 bytes. When the commit has a segment of its own, that
 * segment's 64-byte header (docs/FORMAT.md) was written and synced when the
 * segment was created, before the commit: a flipped or partly cut header is
 * damage the engine may refuse with TOME_CORRUPT (or drop with the commit);
 * an empty or all-zero header is an interrupted creation and must recover. */
TT_TEST(big_commit_torn) {
    FIXTURES();
    char big[TF_PATH_MAX], work[TF_PATH_MAX], log[TF_PATH_MAX];
    snprintf(big, sizeof big, "%s", tt_tmpdir());
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    CHECK_EQ(tf_copy_dir(g_ab, big), 0);
    uint64_t seq = 0;
    crash_commit(big, COMMIT_BIG, NOPS(COMMIT_BIG), &seq);
    if (tt_failed_now) return;
    model_t mbig = g_m_ab;
    model_apply(&mbig, COMMIT_BIG, NOPS(COMMIT_BIG), seq);
    CHECK_EQ(tf_newest_log(big, log, sizeof log, NULL), 0);
    char name[TF_PATH_MAX];
    snprintf(name, sizeof name, "%s", base_name(log));
    int64_t dend = tf_data_end(log);
    int64_t end = true_end(big, name, dend, seq);
    if (end < 0) TT_FAIL_("cannot find where the big commit ends in %s", name);
    int64_t start = strcmp(name, g_log1) == 0 ? g_t1 : 0;
    if (end - start < (int64_t)SEG_SIZE)
        TT_FAIL_("the big commit is not in the newest segment %s (data [%lld, %lld))", name,
                 (long long)start, (long long)end);
    int64_t stride = tf_short() ? 65521 : 4093;
    long n = 0, refused = 0;
    for (int64_t x = start; x <= end; x++) {
        int edge = x < start + 160 || x >= end - 64 || x == end;
        if (!edge && (x - start) % stride != 0) continue;
        for (int how = 0; how < 3; how++) {
            if (how == CUT_FLIP && (x == end || (x % 3) != 0)) continue;
            CHECK_EQ(tf_copy_dir(big, work), 0);
            tf_path(log, sizeof log, work, name);
            if (how == CUT_TRUNCATE) CHECK_EQ(tf_truncate(log, (uint64_t)x), 0);
            else if (how == CUT_ZERO) CHECK_EQ(tf_zero_range(log, (uint64_t)x, (uint64_t)end), 0);
            else CHECK_EQ(tf_flip(log, (uint64_t)x, 0xFF), 0);
            int keeps = (how == CUT_TRUNCATE && x >= end) || (how == CUT_ZERO && x >= dend);
            int in_header = start == 0 && x < 64 && (x > 0 || how == CUT_FLIP);
            int corrupt = 0;
            recover_and_extend_ex(work, keeps ? &mbig : &g_m_ab, x == end, in_header, &corrupt);
            refused += corrupt;
            if (tt_failed_now) {
                fprintf(stderr, "  at: %s offset %lld of %s (big commit spans [%lld, %lld))\n",
                        CUT_NAMES[how], (long long)x, name, (long long)start, (long long)end);
                return;
            }
            n++;
        }
    }
    printf("     %ld damaged copies (%ld with a damaged segment header refused as CORRUPT)\n", n,
           refused);
}

/* ------------------------------------------------------------------------ */
/* INDEX: damaged, truncated, stale, inconsistent                            */
/* ------------------------------------------------------------------------ */

/* The store in dir must open (whatever its INDEX holds) with exactly *want
 * and close again. */
static void opens_as(const char *dir, const model_t *want) {
    tome_db *db;
    open_ok(dir, &g_opts, &db);
    if (tt_failed_now) return;
    verify(db, want);
    int failed = tt_failed_now;
    CHECK_OK(tome_close(db));
    if (failed) tt_failed_now = 1;
}

TT_TEST(index_byte_flipped_is_ignored) {
    FIXTURES();
    char work[TF_PATH_MAX], idx[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    tf_path(idx, sizeof idx, g_abc, "INDEX");
    int64_t size = tf_file_size(idx);
    CHECK(size > 0);
    int64_t stride = tf_short() ? 11 : (size > 4096 ? size / 2048 : 1);
    long n = 0;
    for (int64_t x = 0; x < size; x += stride) {
        CHECK_EQ(tf_copy_dir(g_abc, work), 0);
        tf_path(idx, sizeof idx, work, "INDEX");
        CHECK_EQ(tf_flip(idx, (uint64_t)x, 0xFF), 0);
        opens_as(work, &g_m_abc);
        if (tt_failed_now) {
            fprintf(stderr, "  at: INDEX byte %lld of %lld flipped\n", (long long)x,
                    (long long)size);
            return;
        }
        n++;
    }
    printf("     INDEX of %lld bytes, %ld flips\n", (long long)size, n);
}

TT_TEST(index_truncated_or_garbage_is_ignored) {
    FIXTURES();
    char work[TF_PATH_MAX], idx[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    tf_path(idx, sizeof idx, g_abc, "INDEX");
    int64_t size = tf_file_size(idx);
    CHECK(size > 0);
    for (int64_t len = 0; len < size; len += (len < 32 || len > size - 32) ? 1 : 7) {
        CHECK_EQ(tf_copy_dir(g_abc, work), 0);
        tf_path(idx, sizeof idx, work, "INDEX");
        CHECK_EQ(tf_truncate(idx, (uint64_t)len), 0);
        opens_as(work, &g_m_abc);
        if (tt_failed_now) {
            fprintf(stderr, "  at: INDEX truncated to %lld of %lld bytes\n", (long long)len,
                    (long long)size);
            return;
        }
    }
    uint64_t rng = 7;
    for (int i = 0; i < 4; i++) {
        size_t len = i == 3 ? 100000 : (size_t)size;
        unsigned char *buf = malloc(len);
        CHECK(buf != NULL);
        for (size_t j = 0; j < len; j++) buf[j] = (unsigned char)tf_rand(&rng);
        if (i == 1) memset(buf, 0, len);
        CHECK_EQ(tf_copy_dir(g_abc, work), 0);
        tf_path(idx, sizeof idx, work, "INDEX");
        CHECK_EQ(tf_truncate(idx, 0), 0);
        int w = tf_write_at(idx, 0, buf, len);
        free(buf);
        CHECK_EQ(w, 0);
        opens_as(work, &g_m_abc);
        if (tt_failed_now) {
            fprintf(stderr, "  at: INDEX replaced by %zu bytes of %s\n", len,
                    i == 1 ? "zeros" : "random bytes");
            return;
        }
    }
}

/* INDEX written after B, the log holds C too (a stale INDEX is replayed
 * from or ignored): C must be there. */
TT_TEST(index_stale_extra_commits) {
    FIXTURES();
    char work[TF_PATH_MAX], from[TF_PATH_MAX], to[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    tf_path(from, sizeof from, g_ab, "INDEX");
    CHECK(tf_exists(from));
    CHECK_EQ(tf_copy_dir(g_abc, work), 0);
    tf_path(to, sizeof to, work, "INDEX");
    CHECK_EQ(tf_copy_file(from, to), 0);
    recover_and_extend(work, &g_m_abc, 1);
    if (tt_failed_now) return;
    /* The same on the crashed store (where the child may have left it). */
    CHECK_EQ(tf_copy_dir(g_crash, work), 0);
    CHECK_EQ(tf_copy_file(from, to), 0);
    recover_and_extend(work, &g_m_abc, 1);
}

/* Filler data for the merge case: keys "f<i>" in slot 50 of ~40 KiB. */
static void fill_big(tome_db *db, int round) {
    for (int i = 0; i < 8; i++) {
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        char key[16];
        snprintf(key, sizeof key, "f%d", i);
        size_t len = 40000 + (size_t)i;
        unsigned char *v = malloc(len);
        CHECK(v != NULL);
        tf_fill(v, len, (uint64_t)(1000 * round + i));
        int rc = tome_insert(t, 50, key, strlen(key), v, len);
        free(v);
        if (rc) tome_abort(t);
        CHECK_OK(rc);
        CHECK_OK(tome_commit(t));
        rm_sleep_1ms(); /* commits in different milliseconds */
    }
}

static void check_big(tome_db *db, int round) {
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof key, "f%d", i);
        const void *v;
        size_t vl;
        int rc = tome_get(t, 50, key, strlen(key), &v, &vl);
        if (rc != TOME_OK || !value_is(v, vl, 40000 + (size_t)i, (uint64_t)(1000 * round + i))) {
            tome_abort(t);
            TT_FAIL_("filler %s: %s or wrong value", key, tt_rcname(rc));
        }
    }
    tome_abort(t);
}

/* INDEX written before a merge that deleted the segments it names: it
 * must not be used. */
TT_TEST(index_stale_after_merge) {
    FIXTURES();
    char work[TF_PATH_MAX], idx[TF_PATH_MAX], sdir[TF_PATH_MAX], saved[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    snprintf(sdir, sizeof sdir, "%s", tt_tmpdir());
    CHECK_EQ(tf_copy_dir(g_abc, work), 0);
    tome_db *db;
    open_ok(work, &g_opts, &db);
    if (tt_failed_now) return;
    fill_big(db, 1);
    fill_big(db, 2);
    model_t m = g_m_abc;
    CHECK_OK(tome_last_seq(db, &m.last_seq));
    CHECK_OK(tome_close(db));
    int segs_before = tf_count_suffix(work, ".log");
    tf_path(idx, sizeof idx, work, "INDEX");
    tf_path(saved, sizeof saved, sdir, "INDEX.old");
    CHECK_EQ(tf_copy_file(idx, saved), 0);

    open_ok(work, &g_opts, &db);
    if (tt_failed_now) return;
    CHECK_OK(tome_merge(db));
    m.trash = 0;
    verify(db, &m);
    if (!tt_failed_now) check_big(db, 2);
    if (tt_failed_now) {
        tome_close(db);
        return;
    }
    CHECK_OK(tome_close(db));
    printf("     %d segments before the merge, %d .log and %d .mrg after\n", segs_before,
           tf_count_suffix(work, ".log"), tf_count_suffix(work, ".mrg"));

    CHECK_EQ(tf_copy_file(saved, idx), 0);
    open_ok(work, &g_opts, &db);
    if (tt_failed_now) return;
    verify(db, &m);
    if (!tt_failed_now) check_big(db, 2);
    if (tt_failed_now) {
        tome_close(db);
        return;
    }
    CHECK_OK(tome_close(db));
    run_check(work, TOME_OK);
}

/* INDEX covers C, but the log was cut before C (INDEX claims more than
 * the log holds): the open must not show C's keys. Either it refuses with
 * TOME_CORRUPT or it ignores the INDEX and shows exactly A and B. */
TT_TEST(index_beyond_log_end) {
    FIXTURES();
    char work[TF_PATH_MAX], log[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    for (int how = 0; how < 2; how++) {
        CHECK_EQ(tf_copy_dir(g_abc, work), 0);
        /* C's bytes are where the crash left them. */
        int64_t off = find_value(work, 305, log, sizeof log);
        CHECK(off >= g_start && off < g_t2);
        CHECK(!strcmp(base_name(log), g_log2));
        if (how == 0) CHECK_EQ(tf_truncate(log, (uint64_t)g_start), 0);
        else CHECK_EQ(tf_zero_range(log, (uint64_t)g_start, (uint64_t)g_t2), 0);
        tome_db *db = NULL;
        int rc = tome_open(work, &g_opts, &db);
        if (rc == TOME_CORRUPT) {
            CHECK(db == NULL);
            continue;
        }
        if (rc != TOME_OK)
            TT_FAIL_("log %s before C: tome_open %s, want OK or CORRUPT",
                     how ? "zeroed" : "truncated", tt_rcname(rc));
        verify(db, &g_m_ab);
        int failed = tt_failed_now;
        tome_close(db);
        if (failed) TT_FAIL_("(INDEX covering C, log %s before C)", how ? "zeroed" : "truncated");
    }
}

/* ------------------------------------------------------------------------ */
/* Merges, then reopens: through INDEX and through a full scan               */
/* ------------------------------------------------------------------------ */

#define RM_KEYS 10
#define RM_SLOT 20

typedef struct rm {
    int state;  /* 0 never, 1 present, 2 removed */
    size_t len;
    uint64_t seed;
} rm_t;

static tome_options rm_opts(void) {
    tome_options o;
    tome_options_init(&o);
    o.sync = TOME_SYNC_NONE;
    o.segment_size = 16384; /* merged groups reach the segment size soon */
    return o;
}

static void rm_key(char *k, int i) { snprintf(k, 8, "r%02d", i); }

/* The i-th operation of a run (deterministic): which key, remove or not,
 * which value. Used by the parent and by a crashing child alike. */
static void rm_op(uint64_t i, int *key, int *remove, size_t *len, uint64_t *seed) {
    *key = (int)((i * 7 + i / 3) % RM_KEYS);
    *remove = i % 7 == 6;
    *len = 200 + (size_t)((i * 397) % 3000);
    *seed = 9000 + i;
}

static int rm_do(tome_db *db, uint64_t i) {
    int key, remove;
    size_t len;
    uint64_t seed;
    rm_op(i, &key, &remove, &len, &seed);
    char k[8];
    rm_key(k, key);
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    if (remove) {
        rc = tome_remove(t, RM_SLOT, k, strlen(k));
    } else {
        unsigned char *v = malloc(len);
        if (!v) rc = TOME_NOMEM;
        else {
            tf_fill(v, len, seed);
            rc = tome_insert(t, RM_SLOT, k, strlen(k), v, len);
            free(v);
        }
    }
    if (rc) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

static void rm_apply(rm_t *m, uint64_t i) {
    int key, remove;
    size_t len;
    uint64_t seed;
    rm_op(i, &key, &remove, &len, &seed);
    if (remove) {
        if (m[key].state == 1) m[key].state = 2;
    } else {
        m[key] = (rm_t){1, len, seed};
    }
}

static void rm_verify(tome_db *db, const rm_t *m, uint64_t last_seq, const char *phase) {
    uint64_t last = 0;
    CHECK_OK(tome_last_seq(db, &last));
    if (last != last_seq)
        TT_FAIL_("%s: last seq %llu, want %llu", phase, (unsigned long long)last,
                 (unsigned long long)last_seq);
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    int present = 0;
    for (int i = 0; i < RM_KEYS; i++) {
        char k[8];
        rm_key(k, i);
        const void *v;
        size_t vl;
        int rc = tome_get(t, RM_SLOT, k, strlen(k), &v, &vl);
        int ok = m[i].state == 1 ? rc == TOME_OK && value_is(v, vl, m[i].len, m[i].seed)
                                 : rc == TOME_NOTFOUND;
        if (!ok) {
            tome_abort(t);
            TT_FAIL_("%s: key %s: %s (want %s)", phase, k, tt_rcname(rc),
                     m[i].state == 1 ? "its value" : "NOTFOUND");
        }
        present += m[i].state == 1;
    }
    tome_iter *it;
    CHECK_OK(tome_iter_open(t, RM_SLOT, NULL, 0, &it));
    const void *kp;
    size_t kl;
    int n = 0, rc;
    while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) n++;
    tome_iter_close(it);
    tome_abort(t);
    CHECK_RC(rc, TOME_NOTFOUND);
    if (n != present) TT_FAIL_("%s: %d keys iterated, want %d", phase, n, present);
}

/* Closes *db, deletes INDEX, reopens (full scan) and checks, then closes
 * (which writes INDEX), reopens with INDEX and checks; leaves *db open (so
 * that what follows runs on a handle opened from INDEX). */
static void rm_reopen_both(const char *dir, tome_db **db, const rm_t *m, uint64_t last_seq,
                           const char *phase) {
    tome_options o = rm_opts();
    char idx[TF_PATH_MAX], what[128];
    if (*db) CHECK_OK(tome_close(*db));
    *db = NULL;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            tf_path(idx, sizeof idx, dir, "INDEX");
            CHECK_EQ(tf_remove(idx), 0);
        } else {
            CHECK_OK(tome_close(*db));
            *db = NULL;
        }
        snprintf(what, sizeof what, "%s, reopened %s", phase, pass ? "with INDEX" : "without INDEX");
        int rc = tome_open(dir, &o, db);
        if (rc) TT_FAIL_("%s: tome_open: %s: %s", what, tt_rcname(rc), tome_errmsg(NULL));
        rm_verify(*db, m, last_seq, what);
        if (tt_failed_now) return;
    }
}

/* Rounds of single-key commits (a millisecond apart, over several 16 KiB
 * segments), each followed by a merge, then reopens both ways. Covers: a
 * merge after a reopen (segments known from INDEX), commits in the active
 * segment older than the newest commit at merge time, merged files whose
 * every version is later superseded and merged again, and a merged group
 * that is one merged file reaching the segment size. Then a child does the
 * same and dies without closing. */
TT_TEST(reopen_after_merges) {
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tome_options o = rm_opts();
    tome_db *db = NULL;
    CHECK_OK(tome_open(dir, &o, &db));
    rm_t m[RM_KEYS];
    memset(m, 0, sizeof m);
    uint64_t i = 0;
    char phase[64];
    int rounds = tf_short() ? 3 : 8;
    for (int round = 0; round < rounds; round++) {
        for (int j = 0; j < 12; j++, i++) {
            int rc = rm_do(db, i);
            if (rc) {
                tome_close(db);
                TT_FAIL_("round %d: commit %llu: %s", round, (unsigned long long)i, tt_rcname(rc));
            }
            rm_apply(m, i);
            rm_sleep_1ms();
        }
        if (round == 3) {
            /* Overwrite every key: what the merged files hold is all superseded. */
            int rc = tome_merge(db);
            for (int k = 0; k < RM_KEYS && !rc; k++) {
                uint64_t x = i;
                while (1) {
                    int key, remove;
                    size_t len;
                    uint64_t seed;
                    rm_op(x, &key, &remove, &len, &seed);
                    if (key == k && !remove) break;
                    x++;
                }
                rc = rm_do(db, x);
                if (!rc) rm_apply(m, x);
            }
            if (rc) {
                tome_close(db);
                TT_FAIL_("round %d: overwriting every key: %s", round, tt_rcname(rc));
            }
        }
        int rc = tome_merge(db);
        if (rc) {
            tome_close(db);
            TT_FAIL_("round %d: tome_merge: %s: %s", round, tt_rcname(rc), tome_errmsg(db));
        }
        uint64_t last = 0;
        CHECK_OK(tome_last_seq(db, &last));
        snprintf(phase, sizeof phase, "round %d, after the merge", round);
        rm_verify(db, m, last, phase);
        if (tt_failed_now) {
            tome_close(db);
            return;
        }
        rm_reopen_both(dir, &db, m, last, phase);
        if (tt_failed_now) {
            if (db) tome_close(db);
            fprintf(stderr, "  files: %d .log, %d .mrg in %s\n", tf_count_suffix(dir, ".log"),
                    tf_count_suffix(dir, ".mrg"), dir);
            return;
        }
    }
    uint64_t last = 0;
    CHECK_OK(tome_last_seq(db, &last));
    CHECK_OK(tome_close(db));

    /* A child: commits, merge, commits, merge, commits, dies. */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        tome_db *c;
        if (tome_open(dir, &o, &c)) _exit(10);
        uint64_t x = i;
        for (int part = 0; part < 3; part++) {
            for (int j = 0; j < 10; j++, x++) {
                if (rm_do(c, x)) _exit(11);
                rm_sleep_1ms();
            }
            if (part < 2 && tome_merge(c)) _exit(12);
        }
        uint64_t seq = 0;
        if (tome_last_seq(c, &seq) || write(p[1], &seq, sizeof seq) != (ssize_t)sizeof seq) _exit(13);
        _exit(0);
    }
    close(p[1]);
    uint64_t seq = 0;
    ssize_t r = read(p[0], &seq, sizeof seq);
    close(p[0]);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        TT_FAIL_("child: status 0x%x (10 open, 11 commit, 12 merge)", st);
    CHECK_EQ(r, (ssize_t)sizeof seq);
    CHECK_U64(seq, last + 30);
    for (int j = 0; j < 30; j++, i++) rm_apply(m, i);
    db = NULL;
    rm_reopen_both(dir, &db, m, seq, "after a crash following merges");
    if (db) CHECK_OK(tome_close(db));
    if (tt_failed_now) return;
    run_check(dir, TOME_OK);
}

/* One key of slot 21 = the value made from (len, seed), committed alone. */
static int put_one(tome_db *db, const char *key, size_t len, uint64_t seed) {
    unsigned char *v = malloc(len ? len : 1);
    if (!v) return TOME_NOMEM;
    tf_fill(v, len, seed);
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (!rc) {
        rc = tome_insert(t, 21, key, strlen(key), v, len);
        if (rc) tome_abort(t);
        else rc = tome_commit(t);
    }
    free(v);
    return rc;
}

/* Opens dir (deleting INDEX first when scan) and checks that keys[i] of
 * slot 21 hold (lens[i], seeds[i]) and the last seq is `last`. */
static void check_slot21(const char *dir, int scan, const char *const *keys, const size_t *lens,
                         const uint64_t *seeds, int n, uint64_t last, const char *what) {
    tome_options o = rm_opts();
    char idx[TF_PATH_MAX];
    tf_path(idx, sizeof idx, dir, "INDEX");
    if (scan) CHECK_EQ(tf_remove(idx), 0);
    tome_db *db = NULL;
    int rc = tome_open(dir, &o, &db);
    if (rc) TT_FAIL_("%s, reopened %s: tome_open: %s: %s", what, scan ? "without INDEX" : "with INDEX",
                     tt_rcname(rc), tome_errmsg(NULL));
    uint64_t got = 0;
    CHECK_OK(tome_last_seq(db, &got));
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (int i = 0; i < n; i++) {
        const void *v;
        size_t vl;
        rc = tome_get(t, 21, keys[i], strlen(keys[i]), &v, &vl);
        if (rc != TOME_OK || !value_is(v, vl, lens[i], seeds[i])) {
            tome_abort(t);
            tome_close(db);
            TT_FAIL_("%s, reopened %s: key %s: %s%s (last seq %llu, want %llu)", what,
                     scan ? "without INDEX" : "with INDEX", keys[i], tt_rcname(rc),
                     rc ? "" : " with a wrong value", (unsigned long long)got,
                     (unsigned long long)last);
        }
    }
    tome_abort(t);
    CHECK_OK(tome_close(db));
    if (got != last)
        TT_FAIL_("%s, reopened %s: last seq %llu, want %llu", what, scan ? "without INDEX" : "with INDEX",
                 (unsigned long long)got, (unsigned long long)last);
}

/* Three keys overwritten round robin, 5000-byte values, three commits per
 * 16 KiB segment, a millisecond apart. After a reopen (the segments known
 * from INDEX) a merge takes the two older segments (their versions are all
 * superseded) and leaves the newest one, whose versions are all current:
 * its commits are older than the newest commit at merge time. A reopen
 * that scans the log (no INDEX, as after a crash) must find them. */
TT_TEST(scan_after_merge_of_older_segments) {
    static const char *const KEYS3[] = {"s0", "s1", "s2"};
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tome_options o = rm_opts();
    tome_db *db = NULL;
    CHECK_OK(tome_open(dir, &o, &db));
    size_t lens[3];
    uint64_t seeds[3];
    for (int i = 0; i < 9; i++) {
        lens[i % 3] = 5000;
        seeds[i % 3] = 700 + (uint64_t)i;
        int rc = put_one(db, KEYS3[i % 3], 5000, 700 + (uint64_t)i);
        if (rc) {
            tome_close(db);
            TT_FAIL_("commit %d: %s", i, tt_rcname(rc));
        }
        rm_sleep_1ms();
    }
    uint64_t last = 0;
    CHECK_OK(tome_last_seq(db, &last));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_open(dir, &o, &db));
    int rc = tome_merge(db);
    CHECK_OK(tome_close(db));
    CHECK_OK(rc);
    check_slot21(dir, 0, KEYS3, lens, seeds, 3, last, "after the merge");
    if (tt_failed_now) return;
    check_slot21(dir, 1, KEYS3, lens, seeds, 3, last, "after the merge");
    if (tt_failed_now) return;
    run_check(dir, TOME_OK);
}

/* A merged file whose versions are all superseded by a later commit is
 * merged again on its own: the new merged file covers the same segments
 * as the old one (the same name). It must survive a reopen. */
TT_TEST(merged_file_merged_again) {
    static const char *const KEY1[] = {"k"};
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tome_options o = rm_opts();
    tome_db *db = NULL;
    CHECK_OK(tome_open(dir, &o, &db));
    size_t len = 0;
    uint64_t seed = 0;
    int rc = 0;
    for (int step = 0; step < 3 && !rc; step++) {
        /* step 0: two versions, merge; steps 1, 2: overwrite, merge */
        for (int j = 0; j < (step ? 1 : 2) && !rc; j++) {
            len = 100 + (size_t)(step * 10 + j);
            seed = 800 + (uint64_t)(step * 10 + j);
            rc = put_one(db, "k", len, seed);
        }
        if (!rc) rc = tome_merge(db);
    }
    uint64_t last = 0;
    if (!rc) rc = tome_last_seq(db, &last);
    CHECK_OK(tome_close(db));
    CHECK_OK(rc);
    check_slot21(dir, 0, KEY1, &len, &seed, 1, last, "after merging a merged file again");
    if (tt_failed_now) {
        fprintf(stderr, "  files: %d .log, %d .mrg\n", tf_count_suffix(dir, ".log"),
                tf_count_suffix(dir, ".mrg"));
        return;
    }
    check_slot21(dir, 1, KEY1, &len, &seed, 1, last, "after merging a merged file again");
    if (tt_failed_now) return;
    run_check(dir, TOME_OK);
}

/* ------------------------------------------------------------------------ */
/* Odd files and paths                                                       */
/* ------------------------------------------------------------------------ */

TT_TEST(leftover_tmp_files_are_ignored) {
    FIXTURES();
    static const char *const NAMES[] = {"INDEX.tmp", "0000000000000007.log.tmp", "junk.tmp",
                                        "0000000000000001-0000000000000002.mrg.tmp"};
    char work[TF_PATH_MAX], p[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    for (int base = 0; base < 2; base++) {
        CHECK_EQ(tf_copy_dir(base ? g_crash : g_ab, work), 0);
        unsigned char junk[3000];
        tf_fill(junk, sizeof junk, 99);
        for (size_t i = 0; i < NOPS(NAMES); i++) {
            tf_path(p, sizeof p, work, NAMES[i]);
            CHECK_EQ(tf_write_at(p, 0, junk, sizeof junk - i * 500), 0);
        }
        recover_and_extend(work, base ? &g_m_abc : &g_m_ab, 0);
        if (tt_failed_now) return;
    }
}

/* A read-only open ignores a torn tail without repairing it: no file
 * changes (LOCK aside). A read-write open then repairs it. */
TT_TEST(read_only_open_of_torn_store) {
    FIXTURES();
    char work[TF_PATH_MAX], log[TF_PATH_MAX];
    snprintf(work, sizeof work, "%s", tt_tmpdir());
    CHECK_EQ(tf_copy_dir(g_crash, work), 0);
    tf_path(log, sizeof log, work, g_log2);
    CHECK_EQ(tf_zero_range(log, (uint64_t)(g_start + g_e2) / 2, (uint64_t)g_e2), 0);
    uint64_t before = tf_dir_digest(work, "LOCK");
    CHECK(before != 0);
    tome_options ro = g_opts;
    ro.read_only = 1;
    tome_db *db;
    open_ok(work, &ro, &db);
    if (tt_failed_now) return;
    verify(db, &g_m_ab);
    if (!tt_failed_now) {
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        int rc = tome_insert(t, 0, "x", 1, "y", 1);
        if (rc == TOME_OK) rc = tome_commit(t);
        else tome_abort(t);
        CHECK_RC(rc, TOME_READONLY);
    }
    int failed = tt_failed_now;
    CHECK_OK(tome_close(db));
    if (failed) {
        tt_failed_now = 1;
        return;
    }
    CHECK(tf_dir_digest(work, "LOCK") == before);
    recover_and_extend(work, &g_m_ab, 1);
}

TT_TEST(store_path_is_a_regular_file) {
    char dir[TF_PATH_MAX], p[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tf_path(p, sizeof p, dir, "plain");
    CHECK_EQ(tf_write_at(p, 0, "hello", 5), 0);
    for (int must = 0; must < 2; must++) {
        tome_options o;
        tome_options_init(&o);
        o.must_exist = must;
        tome_db *db = (tome_db *)&o;
        int rc = tome_open(p, &o, &db);
        if (rc == TOME_OK) tome_close(db);
        CHECK(rc != TOME_OK);
        CHECK(db == NULL);
        CHECK_EQ(tf_file_size(p), 5);
        CHECK_EQ(tf_find(p, "hello", 5, 0), 0);
    }
    /* A path below a regular file cannot be created either. */
    char below[TF_PATH_MAX];
    tf_path(below, sizeof below, p, "store");
    tome_db *db = NULL;
    int rc = tome_open(below, NULL, &db);
    if (rc == TOME_OK) tome_close(db);
    CHECK(rc != TOME_OK);
    CHECK(db == NULL);
}

TT_MAIN()
