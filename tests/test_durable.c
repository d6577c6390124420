/*
 * test_durable.c -- durable commits: zero-ahead in the log and group commit.
 *
 * Before a synced commit is written, the engine keeps the active log
 * segment written with zeros some way past the append offset (docs/DESIGN.md,
 * "Group commit"); the zeros read like the never-written preallocated tail,
 * so recovery must see the same log either way. And commits of many threads
 * are written by one thread at a time and made durable together, one sync
 * after another.
 *
 *   - zero writes happen for synced commits only, never for NOSYNC bulk
 *     commits or a TOME_SYNC_NONE store (a bulk load writes the same bytes
 *     as before), and never cover a byte of data (checked on every write
 *     through a recording vfs over the POSIX one), across roll-overs and a
 *     value too big for a small segment;
 *   - a process that dies after durable commits from several threads leaves
 *     a zeroed region after its last commit; the reopened store holds every
 *     commit that returned OK, and takes new ones;
 *   - power cuts at every mutating operation of a run that zeroes ahead and
 *     rolls over (the crash vfs of tests/common/faultvfs.h: unsynced writes
 *     dropped, torn, or some of their sectors kept) keep every acknowledged
 *     commit, each whole, as a prefix;
 *   - a failed or short write of zeros (the first one, and a refill) fails
 *     that commit with TOME_IO and poisons the handle: later writes and
 *     tome_sync refuse, no sync follows; reopened, the store holds the
 *     commits before it and not that one;
 *   - many threads: after a power cut every commit that returned OK is
 *     there (and everything its thread committed before it), also when a
 *     sync fails in the middle (then the handle refuses writes and no sync
 *     follows); read-modify-write counters under conflicts, with synced and
 *     NOSYNC commits mixed, add up; committers that pause at random or stop
 *     early all finish (no commit waits forever for a sync).
 * TOME_TEST_SHORT=1 runs smaller loops.
 */
#include "tt.h"
#include "common/faultvfs.h"
#include "common/files.h"
#include "log/local.h"
#include "tome.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static tome_options opts(int sync, uint64_t segment_size) {
    tome_options o;
    tome_options_init(&o);
    o.sync = sync;
    o.segment_size = segment_size;
    return o;
}

/* One transaction writing key -> val (seeded bytes of length len). */
static int put_seeded(tome_db *db, const char *key, size_t len, uint64_t seed, unsigned flags) {
    static _Thread_local unsigned char buf[128 << 10];
    if (len > sizeof buf) return TOME_INVALID;
    tf_fill(buf, len, seed);
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    rc = tome_insert(t, 0, key, strlen(key), buf, len);
    if (rc) {
        tome_abort(t);
        return rc;
    }
    return tome_commit_ex(t, flags);
}

/* 1: key holds exactly the seeded bytes; 0: absent; -1: anything else. */
static int has_seeded(tome_db *db, const char *key, size_t len, uint64_t seed) {
    static _Thread_local unsigned char want[128 << 10];
    tome_txn *t;
    if (tome_begin(db, &t) != TOME_OK) return -1;
    const void *v;
    size_t vl;
    int rc = tome_get(t, 0, key, strlen(key), &v, &vl);
    int res = -1;
    if (rc == TOME_NOTFOUND) {
        res = 0;
    } else if (rc == TOME_OK && vl == len && len <= sizeof want) {
        tf_fill(want, len, seed);
        res = memcmp(v, want, len) == 0 ? 1 : -1;
    }
    tome_abort(t);
    return res;
}

static int check_store(const char *path) {
    char *report = NULL;
    int rc = tome_check(path, &report);
    if (rc != TOME_OK) fprintf(stderr, "  tome_check(%s): %s\n%s\n", path, tt_rcname(rc), report ? report : "");
    tome_free(report);
    return rc;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}


/* ------------------------------------------------------------------------ */
/* A recording vfs over the POSIX one                                        */
/* ------------------------------------------------------------------------ */

/* Every pwritev to a *.log file is a data write or a zero write (4 KiB or
 * more, every byte zero: data never looks like that, records carry
 * headers and checksums). Checks that no zero write starts below the end
 * of the data written to that file so far. The POSIX vfs ignores its vfs
 * argument, so a copy of its table with some entries replaced is a vfs. */
#define REC_FILES 64
typedef struct rec_file {
    tome_file *f;
    int is_log;
    uint64_t data_end, zero_end;
} rec_file;

static struct {
    pthread_mutex_t mu;
    tome_vfs v;
    rec_file files[REC_FILES];
    uint64_t zero_writes, zero_bytes, data_bytes, syncs;
    int violations;
    char why[256];
} g_rec = {.mu = PTHREAD_MUTEX_INITIALIZER};

static rec_file *rec_find(tome_file *f) {
    for (int i = 0; i < REC_FILES; i++)
        if (g_rec.files[i].f == f) return &g_rec.files[i];
    return NULL;
}

static int rec_open(tome_vfs *vfs, const char *path, int flags, tome_file **out) {
    (void)vfs;
    tome_vfs *base = tome_vfs_posix();
    int rc = base->open(base, path, flags, out);
    if (rc) return rc;
    size_t n = strlen(path);
    pthread_mutex_lock(&g_rec.mu);
    rec_file *r = rec_find(NULL);
    if (r) *r = (rec_file){*out, n > 4 && !strcmp(path + n - 4, ".log"), 0, 0};
    pthread_mutex_unlock(&g_rec.mu);
    return 0;
}

static int rec_close(tome_file *f) {
    pthread_mutex_lock(&g_rec.mu);
    rec_file *r = rec_find(f);
    if (r) r->f = NULL;
    pthread_mutex_unlock(&g_rec.mu);
    return tome_vfs_posix()->close(f);
}

static int rec_pwritev(tome_file *f, const struct iovec *iov, int iovcnt, uint64_t off) {
    uint64_t len = 0;
    int zero = 1;
    for (int i = 0; i < iovcnt; i++) {
        const unsigned char *p = iov[i].iov_base;
        for (size_t j = 0; j < iov[i].iov_len && zero; j++) zero = p[j] == 0;
        len += iov[i].iov_len;
    }
    pthread_mutex_lock(&g_rec.mu);
    rec_file *r = rec_find(f);
    if (r && r->is_log) {
        if (zero && len >= 4096) {
            g_rec.zero_writes++;
            g_rec.zero_bytes += len;
            if (off < r->data_end && !g_rec.violations++)
                snprintf(g_rec.why, sizeof g_rec.why, "zeros at %llu+%llu below data end %llu",
                         (unsigned long long)off, (unsigned long long)len, (unsigned long long)r->data_end);
            if (off + len > r->zero_end) r->zero_end = off + len;
        } else {
            g_rec.data_bytes += len;
            if (off + len > r->data_end) r->data_end = off + len;
        }
    }
    pthread_mutex_unlock(&g_rec.mu);
    return tome_vfs_posix()->pwritev(f, iov, iovcnt, off);
}

static int rec_sync(tome_file *f, int data_only) {
    pthread_mutex_lock(&g_rec.mu);
    g_rec.syncs++;
    pthread_mutex_unlock(&g_rec.mu);
    return tome_vfs_posix()->sync(f, data_only);
}

/* Installs the recording vfs (counters reset) for the next opens. */
static void rec_install(void) {
    pthread_mutex_lock(&g_rec.mu);
    g_rec.v = *tome_vfs_posix();
    g_rec.v.name = "recording";
    g_rec.v.open = rec_open;
    g_rec.v.close = rec_close;
    g_rec.v.pwritev = rec_pwritev;
    g_rec.v.sync = rec_sync;
    memset(g_rec.files, 0, sizeof g_rec.files);
    g_rec.zero_writes = g_rec.zero_bytes = g_rec.data_bytes = g_rec.syncs = 0;
    g_rec.violations = 0;
    g_rec.why[0] = 0;
    pthread_mutex_unlock(&g_rec.mu);
    tome_local_test_vfs(&g_rec.v);
}

/* The open log file with the largest data end (the active segment). */
static void rec_active(uint64_t *data_end, uint64_t *zero_end) {
    pthread_mutex_lock(&g_rec.mu);
    *data_end = *zero_end = 0;
    for (int i = 0; i < REC_FILES; i++) {
        rec_file *r = &g_rec.files[i];
        if (r->f && r->is_log && r->data_end >= *data_end) {
            *data_end = r->data_end;
            *zero_end = r->zero_end;
        }
    }
    pthread_mutex_unlock(&g_rec.mu);
}

/* ------------------------------------------------------------------------ */
/* Zero-ahead: when, and never over data                                     */
/* ------------------------------------------------------------------------ */

TT_TEST(zero_ahead_only_for_synced_commits) {
    char base[TF_PATH_MAX], dir[TF_PATH_MAX];
    snprintf(base, sizeof base, "%s", tt_tmpdir());
    tome_db *db;

    /* a synced commit zeroes ahead of itself */
    tf_path(dir, sizeof dir, base, "full");
    rec_install();
    tome_options o = opts(TOME_SYNC_FULL, 0);
    CHECK_OK(tome_open(dir, &o, &db));
    CHECK_OK(put_seeded(db, "a", 100, 1, 0));
    uint64_t dend, zend;
    rec_active(&dend, &zend);
    CHECK(g_rec.zero_writes >= 1);
    CHECK(zend > dend);
    CHECK_EQ(g_rec.violations, 0);
    CHECK_OK(tome_close(db));

    /* a bulk load with NOSYNC commits and one tome_sync: no zeros, and the
     * log gets exactly the records (header 64, then per batch its PUT
     * records and a 64-byte COMMIT) */
    tf_path(dir, sizeof dir, base, "bulk");
    rec_install();
    CHECK_OK(tome_open(dir, &o, &db));
    uint64_t want = 64;
    for (int b = 0; b < 20; b++) {
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        for (int i = 0; i < 100; i++) {
            char k[32];
            unsigned char v[100];
            snprintf(k, sizeof k, "bulk-%02d-%03d", b, i);
            tf_fill(v, sizeof v, (uint64_t)(b * 1000 + i));
            CHECK_OK(tome_insert(t, 0, k, strlen(k), v, sizeof v));
            want += 16 + strlen(k) + sizeof v;
        }
        want += 64;
        CHECK_OK(tome_commit_ex(t, TOME_COMMIT_NOSYNC));
    }
    CHECK_OK(tome_sync(db));
    CHECK_U64(g_rec.zero_writes, 0);
    CHECK_U64(g_rec.data_bytes, want);
    CHECK_OK(tome_close(db));

    /* a TOME_SYNC_NONE store never zeroes */
    tf_path(dir, sizeof dir, base, "none");
    rec_install();
    tome_options on = opts(TOME_SYNC_NONE, 0);
    CHECK_OK(tome_open(dir, &on, &db));
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "n%d", i);
        CHECK_OK(put_seeded(db, k, 200, (uint64_t)i, 0));
    }
    CHECK_OK(tome_sync(db));
    CHECK_U64(g_rec.zero_writes, 0);
    CHECK_OK(tome_close(db));
    tome_local_test_vfs(NULL);
}

static size_t mixed_len(int i) {
    if (i == 40) return 100 << 10; /* a value too big for half a segment */
    return (size_t)(50 + (i * 7919) % 20000);
}

TT_TEST(zero_writes_never_cover_data) {
    char dir[TF_PATH_MAX];
    tf_path(dir, sizeof dir, tt_tmpdir(), "db");
    int n = tf_short() ? 60 : 240;
    rec_install();
    tome_options o = opts(TOME_SYNC_FULL, 256 << 10); /* roll-overs, chunks cut at the end */
    tome_db *db;
    CHECK_OK(tome_open(dir, &o, &db));
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "m%04d", i);
        CHECK_OK(put_seeded(db, k, mixed_len(i), (uint64_t)i + 100, (i % 7 == 3) ? TOME_COMMIT_NOSYNC : 0));
    }
    CHECK_OK(tome_close(db));
    tome_local_test_vfs(NULL);
    if (g_rec.violations) TT_FAIL_("%s", g_rec.why);
    CHECK(g_rec.zero_writes >= 2);
    CHECK(tf_count_suffix(dir, ".log") >= 2);
    CHECK_OK(check_store(dir));
    tome_options op = opts(TOME_SYNC_FULL, 256 << 10);
    CHECK_OK(tome_open(dir, &op, &db));
    for (int i = 0; i < n && !tt_failed_now; i++) {
        char k[16];
        snprintf(k, sizeof k, "m%04d", i);
        CHECK_EQ(has_seeded(db, k, mixed_len(i), (uint64_t)i + 100), 1);
    }
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* A crash after durable commits: the zeroed tail                            */
/* ------------------------------------------------------------------------ */

#define CR_THREADS 4

typedef struct cr_arg {
    tome_db *db;
    int id, n, fd;
} cr_arg;

typedef struct cr_msg {
    int32_t thread; /* -1: an error (code in n); -2: the log's ends */
    int32_t n;
    uint64_t a, b;
} cr_msg;

static size_t cr_len(int t, int n) { return (size_t)(20 + (t * 131 + n * 17) % 400); }
static uint64_t cr_seed(int t, int n) { return (uint64_t)t * 100000 + (uint64_t)n + 3; }

static void cr_send(int fd, cr_msg m) {
    if (write(fd, &m, sizeof m) != (ssize_t)sizeof m) _exit(3);
}

static void *cr_thread(void *p) {
    cr_arg *a = p;
    for (int n = 0; n < a->n; n++) {
        char k[24];
        snprintf(k, sizeof k, "c%d-%05d", a->id, n);
        int rc = put_seeded(a->db, k, cr_len(a->id, n), cr_seed(a->id, n), 0);
        cr_send(a->fd, rc ? (cr_msg){-1, rc, 0, 0} : (cr_msg){a->id, n, 0, 0});
        if (rc) break;
    }
    return NULL;
}

TT_TEST(crash_with_zeroed_tail_keeps_acked_commits) {
    char dir[TF_PATH_MAX];
    tf_path(dir, sizeof dir, tt_tmpdir(), "db");
    int per = tf_short() ? 20 : 100;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        rec_install();
        tome_options o = opts(TOME_SYNC_FULL, 0);
        tome_db *db;
        if (tome_open(dir, &o, &db) != TOME_OK) _exit(2);
        pthread_t th[CR_THREADS];
        cr_arg a[CR_THREADS];
        for (int i = 0; i < CR_THREADS; i++) {
            a[i] = (cr_arg){db, i, per, p[1]};
            if (pthread_create(&th[i], NULL, cr_thread, &a[i]) != 0) _exit(4);
        }
        for (int i = 0; i < CR_THREADS; i++) pthread_join(th[i], NULL);
        uint64_t dend, zend;
        rec_active(&dend, &zend);
        cr_send(p[1], (cr_msg){-2, g_rec.violations, dend, zend});
        _exit(0); /* a crash: no tome_close, no INDEX */
    }
    close(p[1]);
    unsigned char acked[CR_THREADS][100] = {{0}};
    int child_err = 0, violations = -1;
    uint64_t dend = 0, zend = 0;
    cr_msg m;
    while (read(p[0], &m, sizeof m) == (ssize_t)sizeof m) {
        if (m.thread == -1) child_err = m.n;
        else if (m.thread == -2) violations = m.n, dend = m.a, zend = m.b;
        else if (m.thread >= 0 && m.thread < CR_THREADS && m.n >= 0 && m.n < 100) acked[m.thread][m.n] = 1;
    }
    close(p[0]);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (child_err) TT_FAIL_("a commit in the child failed: %s", tt_rcname(child_err));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(violations, 0);
    /* the log holds zeros from the end of its data to past the last write */
    CHECK(zend > dend);
    char log[TF_PATH_MAX];
    CHECK(tf_newest_log(dir, log, sizeof log, NULL) == 0);
    int64_t end = tf_data_end(log);
    CHECK(end > 64 && (uint64_t)end <= dend);
    CHECK(tf_file_size(log) >= (int64_t)zend);

    CHECK_OK(check_store(dir));
    tome_options o = opts(TOME_SYNC_FULL, 0);
    tome_db *db;
    CHECK_OK(tome_open(dir, &o, &db));
    for (int t = 0; t < CR_THREADS; t++)
        for (int n = 0; n < per && !tt_failed_now; n++) {
            char k[24];
            snprintf(k, sizeof k, "c%d-%05d", t, n);
            CHECK(acked[t][n]);
            CHECK_EQ(has_seeded(db, k, cr_len(t, n), cr_seed(t, n)), 1);
        }
    /* the next commits go where the log ended and survive a reopen */
    CHECK_OK(put_seeded(db, "after", 300, 99, 0));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_open(dir, &o, &db));
    CHECK_EQ(has_seeded(db, "after", 300, 99), 1);
    CHECK_EQ(has_seeded(db, "c0-00000", cr_len(0, 0), cr_seed(0, 0)), 1);
    CHECK_OK(tome_close(db));
    CHECK_OK(check_store(dir));
}

/* ------------------------------------------------------------------------ */
/* Power cuts at every operation                                             */
/* ------------------------------------------------------------------------ */

#define PC_STORE "/store"

static size_t pc_len(int i) { return (size_t)(100 + (i * 2654435761u) % 9000); }

/* Opens the image and checks: the first `need` commits are there, and the
 * ones present form a prefix of the n made. A cut before the store was
 * fully created (created: 0) may leave no store. 0 or -1 (printed). */
static int pc_verify(tome_vfs *img, int n, int need, int created, const char *label) {
    tome_local_test_vfs(img);
    int bad = 0;
    tome_options o = opts(TOME_SYNC_FULL, 64 << 10);
    o.must_exist = 1;
    tome_db *db = NULL;
    int rc = tome_open(PC_STORE, &o, &db);
    if (rc == TOME_NOTFOUND && !created) {
        tome_local_test_vfs(NULL);
        return 0;
    }
    if (rc == TOME_OK) {
        tome_close(db);
        db = NULL;
        if (check_store(PC_STORE) != TOME_OK) {
            fprintf(stderr, "  %s: tome_check fails\n", label);
            bad = 1;
        }
        rc = tome_open(PC_STORE, &o, &db);
    }
    if (rc) {
        fprintf(stderr, "  %s: open: %s (%s)\n", label, tt_rcname(rc), tome_errmsg(NULL));
        tome_local_test_vfs(NULL);
        return -1;
    }
    int held = 0, gap = 0;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%04d", i);
        int h = has_seeded(db, k, pc_len(i), (uint64_t)i + 7);
        if (h < 0) {
            fprintf(stderr, "  %s: commit %d damaged\n", label, i);
            bad = 1;
        } else if (h == 1) {
            if (gap) {
                fprintf(stderr, "  %s: commit %d there after a missing one\n", label, i);
                bad = 1;
            }
            held++;
        } else {
            gap = 1;
        }
    }
    if (held < need) {
        fprintf(stderr, "  %s: %d commits held, %d acknowledged\n", label, held, need);
        bad = 1;
    }
    tome_close(db);
    tome_local_test_vfs(NULL);
    return bad ? -1 : 0;
}

TT_TEST(power_cuts_around_zero_writes) {
    int n = tf_short() ? 16 : 40;
    fv_crash *c = fv_crash_new();
    CHECK(c != NULL);
    fv_crash_snap_every(c, 1, 0);
    tome_local_test_vfs(fv_crash_vfs(c));
    tome_options o = opts(TOME_SYNC_FULL, 64 << 10);
    tome_db *db = NULL;
    int rc = tome_open(PC_STORE, &o, &db);
    uint64_t created = fv_crash_ops(c), acked_at[64];
    for (int i = 0; i < n && rc == TOME_OK; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%04d", i);
        rc = put_seeded(db, k, pc_len(i), (uint64_t)i + 7, 0);
        acked_at[i] = fv_crash_ops(c);
    }
    if (db) tome_close(db);
    tome_local_test_vfs(NULL);
    CHECK_OK(rc);
    int images = 0, failures = 0;
    fv_snap *s;
    while ((s = fv_crash_pop(c)) != NULL) {
        int need = 0;
        while (need < n && acked_at[need] <= fv_snap_op(s)) need++;
        static const int modes[] = {FV_IMG_DROP, FV_IMG_TORN, FV_IMG_SECTORS};
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            tome_vfs *img = fv_snap_image(s, modes[m], fv_snap_op(s) * 10 + m);
            if (!img) continue;
            char label[160];
            snprintf(label, sizeof label, "after op %llu (%s), image %s", (unsigned long long)fv_snap_op(s),
                     fv_snap_what(s), fv_img_name(modes[m]));
            if (pc_verify(img, n, need, fv_snap_op(s) >= created, label) != 0) failures++;
            images++;
            img->destroy(img);
        }
        fv_snap_free(s);
    }
    fv_crash_free(c);
    printf("    %d crash images\n", images);
    CHECK(images > 50);
    CHECK_EQ(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* A failed write of zeros                                                   */
/* ------------------------------------------------------------------------ */

#define FZ_STORE "/fz"

static size_t fz_len(int i) { return (size_t)(3000 + (i * 37) % 2000); }

/* Commits i = 0..n-1 until one fails; returns the number that succeeded. */
static int fz_run(tome_db *db, int n, int *rc_out) {
    *rc_out = 0;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "z%04d", i);
        int rc = put_seeded(db, k, fz_len(i), (uint64_t)i + 11, 0);
        if (rc) {
            *rc_out = rc;
            return i;
        }
    }
    return n;
}

/* Fails the nth operation after the open (kind: FV_EIO counts every
 * operation, FV_SHORT every pwritev) and checks what follows: the commit
 * that met it fails with TOME_IO, the handle refuses writes without
 * another sync, and the reopened store holds exactly the commits before. */
static void fz_case(int kind, uint64_t nth, int expect_ok) {
    tome_vfs *base = tome_vfs_mem_new();
    CHECK(base != NULL);
    fv_vfs *fv = fv_new(base, false);
    CHECK(fv != NULL);
    tome_local_test_vfs(fv_vfs_of(fv));
    tome_options o = opts(TOME_SYNC_FULL, 1 << 20);
    tome_db *db;
    CHECK_OK(tome_open(FZ_STORE, &o, &db));
    fv_arm(fv, kind, nth, false);
    int rc;
    int ok = fz_run(db, 200, &rc);
    CHECK_RC(rc, TOME_IO);
    CHECK_EQ(ok, expect_ok);
    int op = -1;
    CHECK(fv_fired(fv, &op, NULL, NULL));
    CHECK_EQ(op, FV_PWRITEV);
    uint64_t syncs = fv_op_count(fv, FV_SYNC);
    CHECK_RC(put_seeded(db, "later", 10, 1, 0), TOME_IO);
    CHECK_RC(put_seeded(db, "later", 10, 1, TOME_COMMIT_NOSYNC), TOME_IO);
    CHECK_RC(tome_sync(db), TOME_IO);
    CHECK(strstr(tome_errmsg(db), "reopen") != NULL);
    int crc = tome_close(db);
    CHECK(crc == TOME_OK || crc == TOME_IO);
    CHECK_U64(fv_op_count(fv, FV_SYNC), syncs);
    CHECK_EQ(fv_open_files(fv), 0);
    tome_local_test_vfs(base);
    CHECK_OK(check_store(FZ_STORE));
    CHECK_OK(tome_open(FZ_STORE, &o, &db));
    for (int i = 0; i <= ok && !tt_failed_now; i++) {
        char k[16];
        snprintf(k, sizeof k, "z%04d", i);
        CHECK_EQ(has_seeded(db, k, fz_len(i), (uint64_t)i + 11), i < ok ? 1 : 0);
    }
    CHECK_EQ(has_seeded(db, "later", 10, 1), 0);
    CHECK_OK(put_seeded(db, "again", 10, 2, 0));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_open(FZ_STORE, &o, &db));
    CHECK_EQ(has_seeded(db, "again", 10, 2), 1);
    CHECK_OK(tome_close(db));
    tome_local_test_vfs(NULL);
    fv_free(fv);
    base->destroy(base);
}

TT_TEST(failed_zero_write_poisons_the_handle) {
    /* A dry run finds the zero writes: a commit that zeroes makes two
     * pwritev calls (the zeros, then its batch) before its sync. */
    tome_vfs *base = tome_vfs_mem_new();
    CHECK(base != NULL);
    fv_vfs *fv = fv_new(base, false);
    CHECK(fv != NULL);
    tome_local_test_vfs(fv_vfs_of(fv));
    tome_options o = opts(TOME_SYNC_FULL, 1 << 20);
    tome_db *db;
    CHECK_OK(tome_open(FZ_STORE, &o, &db));
    fv_arm(fv, FV_NONE, 0, false);
    int refill = -1;
    uint64_t refill_op = 0, refill_pw = 0, first_pw = 0;
    for (int i = 0; i < 200 && refill < 0; i++) {
        uint64_t ops0 = fv_count(fv, FV_EIO), pw0 = fv_op_count(fv, FV_PWRITEV);
        char k[16];
        snprintf(k, sizeof k, "z%04d", i);
        CHECK_OK(put_seeded(db, k, fz_len(i), (uint64_t)i + 11, 0));
        uint64_t pws = fv_op_count(fv, FV_PWRITEV) - pw0;
        if (i == 0) {
            CHECK_U64(pws, 2); /* the first commit zeroes ahead */
            first_pw = pw0 + 1;
        } else if (pws == 2) {
            refill = i;
            refill_op = ops0 + 1;
            refill_pw = pw0 + 1;
        }
    }
    CHECK_OK(tome_close(db));
    tome_local_test_vfs(NULL);
    fv_free(fv);
    base->destroy(base);
    CHECK(refill > 0);
    CHECK_U64(first_pw, 1);

    fz_case(FV_EIO, 1, 0);              /* the first write of zeros */
    fz_case(FV_SHORT, 1, 0);            /* ... written in part */
    fz_case(FV_EIO, refill_op, refill); /* a refill */
    fz_case(FV_SHORT, refill_pw, refill);
}

/* ------------------------------------------------------------------------ */
/* Many threads                                                              */
/* ------------------------------------------------------------------------ */

#define MT_THREADS 8
#define MT_MAX 200

typedef struct mt_arg {
    tome_db *db;
    int id, n;
    int rc[MT_MAX];      /* each commit's code */
    unsigned flags[MT_MAX];
} mt_arg;

static size_t mt_len(int t, int n) { return (size_t)(10 + (t * 53 + n * 29) % 500); }
static uint64_t mt_seed(int t, int n) { return (uint64_t)t * 10000 + (uint64_t)n + 5; }

static void *mt_thread(void *p) {
    mt_arg *a = p;
    for (int n = 0; n < a->n; n++) {
        char k[24];
        snprintf(k, sizeof k, "t%d-%04d", a->id, n);
        a->flags[n] = (a->id % 2 && n % 5 == 4) ? TOME_COMMIT_NOSYNC : 0;
        a->rc[n] = put_seeded(a->db, k, mt_len(a->id, n), mt_seed(a->id, n), a->flags[n]);
    }
    return NULL;
}

/* Runs MT_THREADS threads of n commits on the crash vfs c; the
 * fail_sync-th sync after the open fails (0: none). */
static void mt_run(fv_crash *c, int n, mt_arg *a, uint64_t fail_sync) {
    tome_local_test_vfs(fv_crash_vfs(c));
    tome_options o = opts(TOME_SYNC_FULL, 256 << 10);
    tome_db *db = NULL;
    if (tome_open(PC_STORE, &o, &db) != TOME_OK) {
        tt_terr("open: %s", tome_errmsg(NULL));
        tome_local_test_vfs(NULL);
        return;
    }
    if (fail_sync) fv_crash_fail_sync(c, fv_crash_syncs(c) + fail_sync);
    pthread_t th[MT_THREADS];
    for (int i = 0; i < MT_THREADS; i++) {
        a[i].db = db;
        a[i].id = i;
        a[i].n = n;
        if (pthread_create(&th[i], NULL, mt_thread, &a[i]) != 0) tt_terr("pthread_create");
    }
    for (int i = 0; i < MT_THREADS; i++) pthread_join(th[i], NULL);
    /* no close: the power goes now */
    fv_snap *s = fv_crash_snap_now(c);
    tome_close(db);
    tome_local_test_vfs(NULL);
    if (!s) {
        tt_terr("snapshot");
        return;
    }
    /* every commit that returned OK without NOSYNC is there, and so is
     * everything its thread committed before it */
    static const int modes[] = {FV_IMG_DROP, FV_IMG_SECTORS};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        tome_vfs *img = fv_snap_image(s, modes[m], 42 + m);
        if (!img) continue;
        tome_local_test_vfs(img);
        if (check_store(PC_STORE) != TOME_OK) tt_terr("tome_check of the %s image", fv_img_name(modes[m]));
        tome_db *d2 = NULL;
        if (tome_open(PC_STORE, &o, &d2) != TOME_OK) {
            tt_terr("open of the %s image: %s", fv_img_name(modes[m]), tome_errmsg(NULL));
        } else {
            for (int t = 0; t < MT_THREADS; t++) {
                int last = -1;
                for (int k = 0; k < n; k++)
                    if (a[t].rc[k] == TOME_OK && !a[t].flags[k]) last = k;
                for (int k = 0; k <= last; k++) {
                    char key[24];
                    snprintf(key, sizeof key, "t%d-%04d", t, k);
                    int h = has_seeded(d2, key, mt_len(t, k), mt_seed(t, k));
                    if (a[t].rc[k] == TOME_OK ? h != 1 : h < 0)
                        tt_terr("%s image: %s: %d (commit returned %s)", fv_img_name(modes[m]), key, h,
                             tt_rcname(a[t].rc[k]));
                }
            }
            tome_close(d2);
        }
        tome_local_test_vfs(NULL);
        img->destroy(img);
    }
    fv_snap_free(s);
}

TT_TEST(threads_power_cut_keeps_acked_commits) {
    int n = tf_short() ? 40 : MT_MAX;
    fv_crash *c = fv_crash_new();
    CHECK(c != NULL);
    mt_arg *a = calloc(MT_THREADS, sizeof *a);
    CHECK(a != NULL);
    mt_run(c, n, a, 0);
    for (int t = 0; t < MT_THREADS; t++)
        for (int k = 0; k < n; k++)
            if (a[t].rc[k] != TOME_OK) tt_terr("t%d commit %d: %s", t, k, tt_rcname(a[t].rc[k]));
    free(a);
    fv_crash_free(c);
    CHECK_THREADS();
}

TT_TEST(threads_failed_sync_poisons_and_keeps_acked_commits) {
    int n = tf_short() ? 30 : 120;
    static const uint64_t fail_at[] = {1, 2, 5, 11};
    for (size_t f = 0; f < sizeof fail_at / sizeof fail_at[0] && !tt_failed_now; f++) {
        fv_crash *c = fv_crash_new();
        CHECK(c != NULL);
        mt_arg *a = calloc(MT_THREADS, sizeof *a);
        CHECK(a != NULL);
        mt_run(c, n, a, fail_at[f]);
        /* once a commit failed, no later one of that thread succeeds (the
         * handle is poisoned), and some commit failed */
        int failed = 0;
        for (int t = 0; t < MT_THREADS; t++) {
            int seen = 0;
            for (int k = 0; k < n; k++) {
                if (a[t].rc[k] == TOME_IO) seen = failed = 1;
                else if (a[t].rc[k] != TOME_OK) tt_terr("t%d commit %d: %s", t, k, tt_rcname(a[t].rc[k]));
                else if (seen) tt_terr("t%d commit %d: OK after a failed one", t, k);
            }
        }
        if (!failed) tt_terr("sync %llu: no commit failed", (unsigned long long)fail_at[f]);
        free(a);
        fv_crash_free(c);
        CHECK_THREADS();
    }
}

#define CT_THREADS 8

typedef struct ct_arg {
    tome_db *db;
    int id, n;
    int done;          /* increments that committed */
} ct_arg;

static int ct_get(tome_txn *t, const char *key, uint64_t *v) {
    const void *p;
    size_t len;
    int rc = tome_get(t, 0, key, strlen(key), &p, &len);
    if (rc == TOME_NOTFOUND) {
        *v = 0;
        return 0;
    }
    if (rc) return rc;
    if (len != 8) return TOME_CORRUPT;
    memcpy(v, p, 8);
    return 0;
}

static void *ct_thread(void *p) {
    ct_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        for (int attempt = 0;; attempt++) {
            tome_txn *t;
            int rc = tome_begin(a->db, &t);
            uint64_t v = 0;
            if (!rc) rc = ct_get(t, "counter", &v);
            if (!rc) {
                v++;
                rc = tome_insert(t, 0, "counter", 7, &v, 8);
            }
            char own[16];
            snprintf(own, sizeof own, "own%d", a->id);
            uint64_t mine = (uint64_t)i + 1;
            if (!rc) rc = tome_insert(t, 0, own, strlen(own), &mine, 8); /* blind */
            if (rc) {
                tome_abort(t);
                tt_terr("t%d: %s", a->id, tt_rcname(rc));
                return NULL;
            }
            rc = tome_commit_ex(t, i % 3 == 2 ? TOME_COMMIT_NOSYNC : 0);
            if (rc == TOME_OK) {
                a->done++;
                break;
            }
            if (rc != TOME_CONFLICT) {
                tt_terr("t%d commit: %s", a->id, tt_rcname(rc));
                return NULL;
            }
            /* the winner becomes visible once durable: back off a little
             * rather than spin on the same snapshot */
            sleep_us(20 + attempt % 7 * 30);
        }
    }
    return NULL;
}

TT_TEST(counter_increments_under_contention) {
    char dir[TF_PATH_MAX];
    tf_path(dir, sizeof dir, tt_tmpdir(), "db");
    int n = tf_short() ? 30 : 150;
    tome_options o = opts(TOME_SYNC_FULL, 0);
    tome_db *db;
    CHECK_OK(tome_open(dir, &o, &db));
    pthread_t th[CT_THREADS];
    ct_arg a[CT_THREADS];
    for (int i = 0; i < CT_THREADS; i++) {
        a[i] = (ct_arg){db, i, n, 0};
        CHECK_EQ(pthread_create(&th[i], NULL, ct_thread, &a[i]), 0);
    }
    for (int i = 0; i < CT_THREADS; i++) pthread_join(th[i], NULL);
    CHECK_THREADS();
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_open(dir, &o, &db));
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    uint64_t v = 0;
    CHECK_OK(ct_get(t, "counter", &v));
    CHECK_U64(v, (uint64_t)CT_THREADS * (uint64_t)n);
    for (int i = 0; i < CT_THREADS; i++) {
        char own[16];
        snprintf(own, sizeof own, "own%d", i);
        CHECK_OK(ct_get(t, own, &v));
        CHECK_U64(v, (uint64_t)n);
        CHECK_EQ(a[i].done, n);
    }
    tome_abort(t);
    CHECK_OK(tome_close(db));
}

/* Committers that pause at random and stop early: every commit finishes
 * (a lingering sync never waits for a thread that is gone), and all are
 * there after a reopen. A hang fails the test through SIGALRM. */
typedef struct ir_arg {
    tome_db *db;
    int id, n;
} ir_arg;

static void *ir_thread(void *p) {
    ir_arg *a = p;
    uint64_t rs = (uint64_t)a->id * 7 + 1;
    for (int k = 0; k < a->n; k++) {
        char key[24];
        snprintf(key, sizeof key, "i%d-%04d", a->id, k);
        int rc = put_seeded(a->db, key, 64, (uint64_t)a->id * 1000 + (uint64_t)k, 0);
        if (rc) {
            tt_terr("i%d commit %d: %s", a->id, k, tt_rcname(rc));
            return NULL;
        }
        uint64_t r = tf_rand(&rs) % 10;
        if (r < 3) sleep_us((long)(tf_rand(&rs) % 3000));
        else if (r == 3) sched_yield();
    }
    return NULL;
}

TT_TEST(irregular_committers_all_finish) {
    char dir[TF_PATH_MAX];
    tf_path(dir, sizeof dir, tt_tmpdir(), "db");
    int n = tf_short() ? 20 : 80;
    tome_options o = opts(TOME_SYNC_FULL, 0);
    tome_db *db;
    CHECK_OK(tome_open(dir, &o, &db));
    alarm(300);
    enum { IR_THREADS = 12 };
    pthread_t th[IR_THREADS];
    ir_arg a[IR_THREADS];
    for (int i = 0; i < IR_THREADS; i++) {
        a[i] = (ir_arg){db, i, n / (1 + i % 4)}; /* some stop early */
        CHECK_EQ(pthread_create(&th[i], NULL, ir_thread, &a[i]), 0);
    }
    for (int i = 0; i < IR_THREADS; i++) pthread_join(th[i], NULL);
    /* then one thread alone: its commits must not wait out a long linger */
    for (int k = 0; k < 20; k++) CHECK_OK(put_seeded(db, "solo", 32, (uint64_t)k, 0));
    alarm(0);
    CHECK_THREADS();
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_open(dir, &o, &db));
    for (int i = 0; i < IR_THREADS && !tt_failed_now; i++)
        for (int k = 0; k < a[i].n; k++) {
            char key[24];
            snprintf(key, sizeof key, "i%d-%04d", i, k);
            CHECK_EQ(has_seeded(db, key, 64, (uint64_t)i * 1000 + (uint64_t)k), 1);
        }
    CHECK_EQ(has_seeded(db, "solo", 32, 19), 1);
    CHECK_OK(tome_close(db));
}

/* The commit queue under load: many threads, tiny commits, no sync (an
 * in-memory store), so that writers hand over and go idle all the time; a
 * request left behind would sleep forever (SIGALRM). */
typedef struct cq_arg {
    tome_db *db;
    int id, n;
} cq_arg;

static void *cq_thread(void *p) {
    cq_arg *a = p;
    for (int k = 0; k < a->n; k++) {
        char key[24];
        snprintf(key, sizeof key, "q%d-%d", a->id, k % 50);
        int rc = put_seeded(a->db, key, 8, (uint64_t)k, k % 2 ? TOME_COMMIT_NOSYNC : 0);
        if (rc) {
            tt_terr("q%d commit %d: %s", a->id, k, tt_rcname(rc));
            return NULL;
        }
    }
    return NULL;
}

TT_TEST(commit_queue_hands_over_under_load) {
    int n = tf_short() ? 500 : 20000;
    tome_options o = opts(TOME_SYNC_FULL, 0);
    tome_db *db;
    CHECK_OK(tome_open(":memory:", &o, &db));
    alarm(300);
    enum { CQ_THREADS = 16 };
    pthread_t th[CQ_THREADS];
    cq_arg a[CQ_THREADS];
    for (int i = 0; i < CQ_THREADS; i++) {
        a[i] = (cq_arg){db, i, n};
        CHECK_EQ(pthread_create(&th[i], NULL, cq_thread, &a[i]), 0);
    }
    for (int i = 0; i < CQ_THREADS; i++) pthread_join(th[i], NULL);
    alarm(0);
    CHECK_THREADS();
    uint64_t seq = 0;
    CHECK_OK(tome_last_seq(db, &seq));
    CHECK_U64(seq, (uint64_t)CQ_THREADS * (uint64_t)n);
    CHECK_EQ(has_seeded(db, "q0-49", 8, (uint64_t)n - 1), 1); /* n is a multiple of 50 */
    CHECK_OK(tome_close(db));
}

TT_MAIN()
