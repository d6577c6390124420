/*
 * test_faults.c -- I/O failure at every point of a workload: the store
 * returns an error code, keeps every commit it acknowledged, keeps nothing
 * it did not write, and never trusts a failed sync.
 *
 * The workload (tests/common/faultwl.c: open, commits of several sizes
 * with log rollovers on a 4 KiB segment_size, NOSYNC commits and tome_sync,
 * reads of every kind, two merges, tome_kv_write / tome_kv_apply /
 * tome_kv_remove, a close and reopen in the middle, a close) runs through a
 * fault-injecting vfs. A first run counts its operations; then, for every
 * N and every fault kind, the workload runs again with its Nth eligible
 * operation failing:
 *   - EIO: any operation (open, close, pread, pwritev, sync, truncate,
 *     allocate, size, lock, stat, mkdir, rename, unlink, list, sync_dir);
 *   - ENOSPC: the operations that need space, once, and "sticky" (from the
 *     Nth on, every one of them fails, as on a full disk);
 *   - a short write: a pwritev that writes half its bytes, then ENOSPC.
 * Each run checks the failure policy (docs/FAULTS.md):
 *   - every call returns a code from its documented set (TOME_IO for I/O
 *     failures), and no call fails unless a fault fired;
 *   - reads through the handle show exactly the commits that returned
 *     TOME_OK (a failed commit is never visible);
 *   - after a commit, tome_kv_* write or tome_sync fails with TOME_IO
 *     because a write or a sync failed, every later write, sync and merge
 *     of that handle fails with TOME_IO (reads still work), and the handle
 *     never calls sync on a log file again: a failed fsync is not retried;
 *   - no file handle stays open after close or a failed open, and a failed
 *     open leaves the store unlocked;
 *   - reopened through the plain vfs, the store passes tome_check and holds
 *     every commit that returned TOME_OK with its exact values, none that
 *     failed before its data was written, and a commit whose sync failed
 *     wholly or not at all.
 * Most runs use the in-memory vfs as the base (fast and deterministic); one
 * case runs over real files with the POSIX vfs (EIO and short writes). The
 * default run covers every fault point of every case; TOME_FAULTS_FULL=1
 * (make stress) adds sweeps of ENOSPC, sticky ENOSPC and sticky EIO (a
 * device that fails every operation from some point on) over real files;
 * TOME_TEST_SHORT=1 (valgrind) strides the sweeps. Each case prints how
 * many fault points it tested.
 * Debugging: TOME_FAULT_ONLY=N runs only point N of each sweep (after the
 * counting run); TOME_FAULT_VERBOSE=1 prints every violation, not only the
 * first dozen.
 */
#include "tt.h"
#include "common/faultvfs.h"
#include "log/local.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdarg.h>

/* The runs over real files reopen and check the store after every fault
 * point: with a sync per commit on this machine's disk that alone would take
 * minutes. The fault logic does not depend on the file system, so the stores
 * go to tmpfs unless TMPDIR says otherwise (as in test_recovery). */
__attribute__((constructor)) static void prefer_tmpfs(void) {
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK | X_OK) == 0) setenv("TMPDIR", "/dev/shm", 0);
}

#define STORE_MEM "/store"

/* ------------------------------------------------------------------------ */
/* One run with one fault                                                    */
/* ------------------------------------------------------------------------ */

typedef struct frun {
    fv_vfs *fv;
    int kind;
    bool sticky;
    uint64_t nth;
    bool fired_before;     /* the fault had fired when the step began */
    bool poisoned;         /* the handle must refuse writes */
    uint64_t log_syncs_at_poison;
    int violations;
    int maybes;            /* commits whose outcome was unknown */
    bool was_maybe[64];
} frun;

static int g_reported;     /* violations printed so far (the first few) */

__attribute__((format(printf, 4, 5))) static void violation(frun *r, fv_wl *w, int step,
                                                            const char *fmt, ...) {
    r->violations++;
    if (g_reported++ >= (getenv("TOME_FAULT_VERBOSE") ? 100000 : 12)) return;
    int op = -1;
    fv_fired(r->fv, &op, NULL, NULL);
    fprintf(stderr, "  fault %s #%llu%s (failed: %s), step %d (%s): ", fv_kind_name(r->kind),
            (unsigned long long)r->nth, r->sticky ? " sticky" : "", op >= 0 ? fv_op_name(op) : "none",
            step, fv_wl_step_name(w, step));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static bool write_or_sync(int op) { return op == FV_PWRITEV || op == FV_SYNC || op == FV_SYNC_DIR; }

static void h_before(void *arg, fv_wl *w, int step) {
    (void)w;
    (void)step;
    frun *r = arg;
    r->fired_before = fv_fired(r->fv, NULL, NULL, NULL);
    fv_mark(r->fv);
}

static int h_classify(void *arg, fv_wl *w, int step, int rc) {
    (void)rc;
    frun *r = arg;
    int op;
    bool dw;
    if (!r->fired_before && fv_fired(r->fv, &op, &dw, NULL) && dw) {
        r->maybes++;
        r->was_maybe[fv_wl_step_commit(w, step)] = true;
        return FV_C_MAYBE; /* its data was written; a later sync failed */
    }
    return FV_C_ABSENT;
}

static void h_after(void *arg, fv_wl *w, int step, int rc) {
    frun *r = arg;
    int kind = fv_wl_step_kind(w, step);
    int op = -1;
    bool on_log = false;
    bool fired = fv_fired(r->fv, &op, NULL, &on_log);
    bool fired_now = fired && !r->fired_before;
    if (!fv_wl_step_ran(w, step)) return;
    char d[200];
    snprintf(d, sizeof d, "%s (%s)", tome_strerror(rc), rc ? tome_errmsg(fv_wl_db(w)) : "");
    /* 1. the code */
    if (kind != FV_S_READS && rc != TOME_OK && rc != TOME_IO)
        violation(r, w, step, "returned %s; only TOME_OK or TOME_IO is expected", d);
    /* 2. a failure needs a fault */
    if (rc != TOME_OK && !fired) violation(r, w, step, "failed without any fault: %s", d);
    /* 3. a poisoned handle refuses writes */
    bool writes = kind == FV_S_COMMIT || kind == FV_S_KV || kind == FV_S_SYNC || kind == FV_S_MERGE;
    if (r->poisoned && writes && rc != TOME_IO)
        violation(r, w, step, "a write after a failed write or sync returned %s, want TOME_IO", d);
    /* 4. when must the handle be poisoned? */
    if (fired_now && rc == TOME_IO && write_or_sync(op) &&
        (kind == FV_S_COMMIT || kind == FV_S_KV || kind == FV_S_SYNC ||
         (kind == FV_S_MERGE && on_log))) {
        if (!r->poisoned) r->log_syncs_at_poison = fv_op_count(r->fv, FV_SYNC);
        r->poisoned = true;
    }
    /* 5. a failed fsync is never retried on the same handle */
    if (r->poisoned && fv_op_count(r->fv, FV_SYNC) != r->log_syncs_at_poison)
        violation(r, w, step, "%s: sync was called again after the handle failed", d);
    if (kind == FV_S_CLOSE || kind == FV_S_OPEN) r->poisoned = false;
    /* 6. no file left open */
    if ((kind == FV_S_CLOSE || (kind == FV_S_OPEN && !fv_wl_db(w))) && fv_open_files(r->fv) != 0) {
        violation(r, w, step, "%ld file(s) left open", fv_open_files(r->fv));
    }
}

typedef struct stats {
    uint64_t points, fired, failed_calls, maybes, maybe_held, violations;
} stats;

/* Runs the workload once with fault (kind, nth, sticky) over base; checks
 * it; adds to st. nth 0: no fault (the counting run). Returns the
 * fault-eligible operation count of the run (for kind). */
static uint64_t one_run(tome_vfs *base, const char *path, bool skip_sync, int kind, uint64_t nth,
                        bool sticky, stats *st) {
    fv_vfs *fv = fv_new(base, skip_sync);
    if (!fv) abort();
    frun r = {0};
    r.fv = fv;
    r.kind = kind;
    r.sticky = sticky;
    r.nth = nth;
    fv_hooks h = {0};
    h.arg = &r;
    h.before = h_before;
    h.after = h_after;
    h.classify = h_classify;
    h.read_errors[0] = TOME_IO;
    h.vfs = fv_vfs_of(fv);
    fv_wl *w = fv_wl_new(path, &h);
    fv_arm(fv, nth ? kind : FV_NONE, nth, sticky);
    tome_local_test_vfs(fv_vfs_of(fv));
    alarm(120); /* a hang fails the binary instead of blocking make test */
    int bad = fv_wl_run(w);
    alarm(0);
    tome_local_test_vfs(NULL);
    uint64_t count = fv_count(fv, kind);
    if (bad) {
        r.violations += bad;
        if (g_reported++ < 12)
            fprintf(stderr, "  fault %s #%llu: %d wrong read result(s) (above)\n", fv_kind_name(kind),
                    (unsigned long long)nth, bad);
    }
    if (fv_open_files(fv) != 0) {
        r.violations++;
        fprintf(stderr, "  fault %s #%llu: %ld file(s) left open at the end\n", fv_kind_name(kind),
                (unsigned long long)nth, fv_open_files(fv));
    }
    if (!nth) {
        for (int i = 0; i < fv_wl_nsteps(w); i++)
            if (fv_wl_step_rc(w, i) != TOME_OK) {
                r.violations++;
                fprintf(stderr, "  without faults, step %s returned %s\n", fv_wl_step_name(w, i),
                        tome_strerror(fv_wl_step_rc(w, i)));
            }
    }
    /* reopen through the plain vfs */
    tome_local_test_vfs(base == tome_vfs_posix() ? NULL : base);
    char why[1200];
    int held = 0;
    if (fv_wl_verify(w, path, NULL, &held, why, sizeof why) != 0) {
        r.violations++;
        if (g_reported++ < 12)
            fprintf(stderr, "  fault %s #%llu%s: after reopen: %s\n", fv_kind_name(kind),
                    (unsigned long long)nth, sticky ? " sticky" : "", why);
    }
    tome_local_test_vfs(NULL);
    if (st) {
        st->points++;
        if (fv_fired(fv, NULL, NULL, NULL)) st->fired++;
        for (int i = 0; i < fv_wl_nsteps(w); i++)
            if (fv_wl_step_ran(w, i) && fv_wl_step_rc(w, i) != TOME_OK) st->failed_calls++;
        st->maybes += (uint64_t)r.maybes;
        st->maybe_held += (uint64_t)held;
        for (int i = 0; i < fv_wl_ncommits(w); i++)
            if (r.was_maybe[i] && fv_wl_status(w, i) == FV_C_PRESENT) st->maybe_held++;
        st->violations += (uint64_t)r.violations;
    }
    fv_wl_free(w);
    fv_free(fv);
    return count;
}

/* Every (or every stride-th) fault point of one kind over a fresh store
 * each time. mem: an in-memory base (else POSIX files under tt_tmpdir). */
static uint64_t sweep(bool mem, int kind, bool sticky, uint64_t stride, stats *st) {
    const char *root = mem ? NULL : tt_tmpdir();
    char path[700];
    uint64_t total = 0;
    const char *only = getenv("TOME_FAULT_ONLY"); /* debugging: one fault point */
    uint64_t only_n = only ? strtoull(only, NULL, 10) : 0;
    for (uint64_t n = 0;; n = n ? n + stride : 1) {
        if (n && n > total) break;
        if (n && only_n && n != only_n) continue;
        tome_vfs *base = mem ? tome_vfs_mem_new() : tome_vfs_posix();
        if (!base) abort();
        if (mem) snprintf(path, sizeof path, "%s", STORE_MEM);
        else snprintf(path, sizeof path, "%s/s%llu", root, (unsigned long long)n);
        uint64_t c = one_run(base, path, !mem, kind, n, sticky, n ? st : NULL);
        if (!n) {
            total = c;
            if (total == 0) break;
        }
        if (mem) base->destroy(base);
        else tt_rmtree(path);
    }
    return total;
}

static uint64_t stride_for(uint64_t dflt) {
    if (fv_full()) return 1;
    if (fv_short()) return dflt * 4 + 3;
    return dflt;
}

static void report(const char *what, uint64_t total, uint64_t stride, const stats *st) {
    printf("  %s: %llu fault points of %llu (stride %llu): fault fired in %llu, %llu failed calls, "
           "%llu commits in doubt (%llu found whole after reopen, the rest absent)\n",
           what, (unsigned long long)st->points, (unsigned long long)total, (unsigned long long)stride,
           (unsigned long long)st->fired, (unsigned long long)st->failed_calls,
           (unsigned long long)st->maybes, (unsigned long long)st->maybe_held);
    fflush(stdout);
}

#define SWEEP_CASE(mem, kind, sticky, dflt, label)                           \
    do {                                                                     \
        stats st = {0};                                                      \
        uint64_t stride = stride_for(dflt);                                  \
        g_reported = 0;                                                      \
        uint64_t total = sweep(mem, kind, sticky, stride, &st);              \
        report(label, total, stride, &st);                                   \
        CHECK(total > 0);                                                    \
        CHECK(st.fired > 0);                                                 \
        CHECK_U64(st.violations, 0);                                         \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The sweeps                                                                */
/* ------------------------------------------------------------------------ */

TT_TEST(workload_without_faults) {
    stats st = {0};
    tome_vfs *base = tome_vfs_mem_new();
    CHECK(base != NULL);
    g_reported = 0;
    uint64_t n = one_run(base, STORE_MEM, false, FV_EIO, 0, false, &st);
    base->destroy(base);
    printf("  the workload makes %llu vfs operations\n", (unsigned long long)n);
    CHECK(n > 100);
    CHECK_U64(st.violations, 0);
}

TT_TEST(every_operation_fails_with_eio) { SWEEP_CASE(true, FV_EIO, false, 1, "EIO, in-memory base"); }

TT_TEST(every_space_operation_fails_with_enospc) {
    SWEEP_CASE(true, FV_ENOSPC, false, 1, "ENOSPC once, in-memory base");
}

TT_TEST(disk_stays_full_from_every_point) {
    SWEEP_CASE(true, FV_ENOSPC, true, 1, "ENOSPC sticky, in-memory base");
}

TT_TEST(every_write_is_short) { SWEEP_CASE(true, FV_SHORT, false, 1, "short write, in-memory base"); }

TT_TEST(posix_files_eio_and_short_writes) {
    SWEEP_CASE(false, FV_EIO, false, 1, "EIO, POSIX base");
    SWEEP_CASE(false, FV_SHORT, false, 1, "short write, POSIX base");
}

TT_TEST(full_sweeps_over_real_files) {
    if (!fv_full()) {
        printf("  (runs with TOME_FAULTS_FULL=1, as in make stress)\n");
        return;
    }
    SWEEP_CASE(false, FV_ENOSPC, false, 1, "ENOSPC once, POSIX base");
    SWEEP_CASE(false, FV_ENOSPC, true, 1, "ENOSPC sticky, POSIX base");
    SWEEP_CASE(false, FV_EIO, true, 1, "EIO sticky (the device is gone), POSIX base");
    SWEEP_CASE(true, FV_EIO, true, 1, "EIO sticky (the device is gone), in-memory base");
}

/* ------------------------------------------------------------------------ */
/* Focused cases: the policy, step by step                                   */
/* ------------------------------------------------------------------------ */

static tome_options small_opts(void) {
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 4096;
    return o;
}

static int put(tome_db *db, const char *k, const char *v) {
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    rc = tome_insert(t, 1, k, strlen(k), v, strlen(v));
    if (rc) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

static int get(tome_db *db, const char *k, char *out, size_t cap) {
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    const void *v;
    size_t vl;
    rc = tome_get(t, 1, k, strlen(k), &v, &vl);
    if (rc == TOME_OK) {
        if (vl >= cap) vl = cap - 1;
        memcpy(out, v, vl);
        out[vl] = 0;
    }
    tome_abort(t);
    return rc;
}

TT_TEST(failed_commit_sync_poisons_the_handle) {
    tome_vfs *base = tome_vfs_mem_new();
    CHECK(base != NULL);
    fv_vfs *fv = fv_new(base, false);
    CHECK(fv != NULL);
    tome_local_test_vfs(fv_vfs_of(fv));
    tome_options o = small_opts();
    tome_db *db = NULL;
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    CHECK_OK(put(db, "k1", "v1"));
    /* the next operations of a commit are: pwritev, sync. Fail the sync. */
    fv_arm(fv, FV_EIO, 2, false);
    CHECK_RC(put(db, "k2", "v2"), TOME_IO);
    int op = -1;
    bool dw = false;
    CHECK(fv_fired(fv, &op, &dw, NULL));
    CHECK_EQ(op, FV_SYNC);
    CHECK(dw);
    /* not visible through this handle */
    char buf[64];
    CHECK_RC(get(db, "k2", buf, sizeof buf), TOME_NOTFOUND);
    CHECK_OK(get(db, "k1", buf, sizeof buf));
    CHECK(!strcmp(buf, "v1"));
    /* every later write refuses, without another sync */
    uint64_t syncs = fv_op_count(fv, FV_SYNC);
    CHECK_RC(put(db, "k3", "v3"), TOME_IO);
    CHECK_RC(tome_sync(db), TOME_IO);
    CHECK_RC(tome_merge(db), TOME_IO);
    CHECK_RC(tome_kv_write(db, "p", "", "k", "x", 1), TOME_IO);
    CHECK_U64(fv_op_count(fv, FV_SYNC), syncs);
    CHECK(strstr(tome_errmsg(db), "reopen") != NULL);
    int rc = tome_close(db);
    CHECK(rc == TOME_OK || rc == TOME_IO);
    CHECK_U64(fv_op_count(fv, FV_SYNC), syncs);
    CHECK_EQ(fv_open_files(fv), 0);
    /* reopened: k1 exact, k2 whole or absent (here the data stayed), no k3 */
    tome_local_test_vfs(base);
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    CHECK_OK(get(db, "k1", buf, sizeof buf));
    CHECK(!strcmp(buf, "v1"));
    rc = get(db, "k2", buf, sizeof buf);
    CHECK(rc == TOME_NOTFOUND || (rc == TOME_OK && !strcmp(buf, "v2")));
    CHECK_RC(get(db, "k3", buf, sizeof buf), TOME_NOTFOUND);
    /* and the reopened handle writes again */
    CHECK_OK(put(db, "k4", "v4"));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_check(STORE_MEM, NULL));
    tome_local_test_vfs(NULL);
    fv_free(fv);
    base->destroy(base);
}

TT_TEST(failed_commit_write_leaves_nothing) {
    tome_vfs *base = tome_vfs_mem_new();
    CHECK(base != NULL);
    fv_vfs *fv = fv_new(base, false);
    CHECK(fv != NULL);
    tome_local_test_vfs(fv_vfs_of(fv));
    tome_options o = small_opts();
    tome_db *db = NULL;
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    CHECK_OK(put(db, "k1", "v1"));
    fv_arm(fv, FV_SHORT, 1, false); /* the commit's pwritev writes half */
    CHECK_RC(put(db, "k2", "a value long enough to be cut in two"), TOME_IO);
    int op = -1;
    bool dw = true;
    CHECK(fv_fired(fv, &op, &dw, NULL));
    CHECK_EQ(op, FV_PWRITEV);
    CHECK(!dw);
    CHECK_RC(put(db, "k3", "v3"), TOME_IO);
    tome_close(db);
    tome_local_test_vfs(base);
    CHECK_OK(tome_check(STORE_MEM, NULL)); /* a torn tail is not damage */
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    char buf[64];
    CHECK_OK(get(db, "k1", buf, sizeof buf));
    CHECK_RC(get(db, "k2", buf, sizeof buf), TOME_NOTFOUND);
    CHECK_RC(get(db, "k3", buf, sizeof buf), TOME_NOTFOUND);
    /* the next commit lands where the torn one was and survives a reopen */
    CHECK_OK(put(db, "k5", "v5"));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    CHECK_OK(get(db, "k5", buf, sizeof buf));
    CHECK(!strcmp(buf, "v5"));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_check(STORE_MEM, NULL));
    tome_local_test_vfs(NULL);
    fv_free(fv);
    base->destroy(base);
}

TT_TEST(failed_open_leaves_store_unlocked) {
    /* fail each of the first operations of opening an existing store */
    tome_vfs *base = tome_vfs_mem_new();
    CHECK(base != NULL);
    fv_vfs *fv = fv_new(base, false);
    CHECK(fv != NULL);
    tome_local_test_vfs(fv_vfs_of(fv));
    tome_options o = small_opts();
    tome_db *db = NULL;
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    CHECK_OK(put(db, "k1", "v1"));
    CHECK_OK(tome_close(db));
    fv_arm(fv, FV_NONE, 0, false);
    CHECK_OK(tome_open(STORE_MEM, &o, &db));
    uint64_t nops = fv_count(fv, FV_EIO);
    CHECK_OK(tome_close(db));
    int failed = 0;
    for (uint64_t n = 1; n <= nops; n++) {
        fv_arm(fv, FV_EIO, n, false);
        db = NULL;
        int rc = tome_open(STORE_MEM, &o, &db);
        CHECK(rc == TOME_OK || rc == TOME_IO);
        if (rc) {
            failed++;
            CHECK(db == NULL);
            CHECK_EQ(fv_open_files(fv), 0);
            CHECK_OK(tome_open(STORE_MEM, &o, &db)); /* not TOME_LOCKED */
        }
        char buf[64];
        CHECK_OK(get(db, "k1", buf, sizeof buf));
        CHECK(!strcmp(buf, "v1"));
        CHECK_OK(tome_close(db));
        CHECK_EQ(fv_open_files(fv), 0);
    }
    printf("  %llu operations of an open failed one at a time: %d opens failed cleanly\n",
           (unsigned long long)nops, failed);
    CHECK(failed > 0);
    tome_local_test_vfs(NULL);
    fv_free(fv);
    base->destroy(base);
}

TT_MAIN()
