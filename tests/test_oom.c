/*
 * test_oom.c -- running out of memory at every allocation of a workload:
 * a clean TOME_NOMEM, no leak, and a store that is intact and usable
 * afterwards.
 *
 * The allocator hooks (tome_alloc_set_hooks) count every allocation of the
 * library (malloc and realloc) and every free, so the number of live
 * allocations is known at all times. The workload (tests/common/faultwl.c:
 * open, commits with rollovers, gets, iteration, versions, time travel,
 * NOSYNC commits and tome_sync, two merges, tome_kv_* reads, writes,
 * applies, removes and listings, close, reopen, close) runs once to count
 * its allocations; then, for every N, it runs again on a fresh store with
 * the Nth allocation failing:
 *   - "once": only the Nth allocation fails;
 *   - "until the call returns": the Nth and every later allocation fail
 *     until the API call that met the failure returns (memory stays short).
 * Each run checks:
 *   - the call that met the failure returns TOME_NOMEM, or TOME_IO when the
 *     failed allocation was made inside the OS layer (the POSIX vfs reports
 *     -ENOMEM, which some engine paths report as an I/O failure: the case
 *     prints how often each happened); no call fails unless an allocation
 *     failed; every call after it succeeds (nothing is left half-done, no
 *     lock is held, the handle is not poisoned by an allocation failure);
 *   - reads return either the right result or the error;
 *   - a failed tome_open leaves no file open and the store unlocked (the
 *     workload opens again at once and must not get TOME_LOCKED);
 *   - once every handle is closed, the live allocation count is back where
 *     it started: nothing leaked, on any path;
 *   - reopened with the normal allocator, the store passes tome_check and
 *     holds exactly the commits that returned TOME_OK (an allocation failure
 *     means nothing was written).
 * The store lives in real files (POSIX vfs, syncs skipped for speed: they
 * allocate nothing). The default run covers every allocation in both modes
 * (so TOME_FAULTS_FULL=1 changes nothing here); TOME_TEST_SHORT=1
 * (valgrind) takes every 13th. Run under ASan/valgrind this also checks
 * that no error path touches freed memory.
 * Debugging: TOME_FAULT_ONLY=N runs only point N of each sweep (after the
 * counting run); TOME_FAULT_VERBOSE=1 prints every violation, not only the
 * first dozen.
 */
#include "tt.h"
#include "common/faultvfs.h"
#include "log/local.h"

#include <signal.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdatomic.h>

/* The runs over real files reopen and check the store after every fault
 * point: with a sync per commit on this machine's disk that alone would take
 * minutes. The fault logic does not depend on the file system, so the stores
 * go to tmpfs unless TMPDIR says otherwise (as in test_recovery). */
__attribute__((constructor)) static void prefer_tmpfs(void) {
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK | X_OK) == 0) setenv("TMPDIR", "/dev/shm", 0);
}

/* ------------------------------------------------------------------------ */
/* The counting, failing allocator                                           */
/* ------------------------------------------------------------------------ */

static struct {
    atomic_ullong count;     /* allocation calls so far */
    atomic_llong live;       /* allocations not freed */
    atomic_ullong fail_at;   /* 0: never */
    atomic_bool persistent;  /* keep failing after fail_at */
    atomic_bool fired;
    atomic_bool fired_in_base;
    atomic_bool stop;        /* persistent failure over */
} g;

static bool should_fail(void) {
    unsigned long long n = atomic_fetch_add(&g.count, 1) + 1;
    unsigned long long at = atomic_load(&g.fail_at);
    if (!at || n < at) return false;
    if (n > at && (!atomic_load(&g.persistent) || atomic_load(&g.stop))) return false;
    if (!atomic_load(&g.fired)) {
        atomic_store(&g.fired_in_base, fv_in_base() > 0);
        atomic_store(&g.fired, true);
    }
    return true;
}

static void *h_malloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = malloc(n);
    if (p) atomic_fetch_add(&g.live, 1);
    return p;
}

static void *h_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    void *q = realloc(p, n);
    if (q && !p) atomic_fetch_add(&g.live, 1);
    return q;
}

static void h_free(void *p) {
    if (!p) return;
    atomic_fetch_sub(&g.live, 1);
    free(p);
}

static const tome_alloc_hooks g_hooks = {h_malloc, h_realloc, h_free};

static void arm(unsigned long long at, bool persistent) {
    atomic_store(&g.count, 0);
    atomic_store(&g.fail_at, at);
    atomic_store(&g.persistent, persistent);
    atomic_store(&g.fired, false);
    atomic_store(&g.fired_in_base, false);
    atomic_store(&g.stop, false);
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct orun {
    fv_vfs *fv;
    unsigned long long nth;
    bool persistent;
    bool fired_before;
    int fired_step;        /* step in which the allocation failed, or -1 */
    int violations;
} orun;

typedef struct ostats {
    uint64_t points, fired, nomem, io_from_os, ok_despite, violations, failed_steps;
} ostats;

static int g_reported;

__attribute__((format(printf, 4, 5))) static void violation(orun *r, fv_wl *w, int step,
                                                            const char *fmt, ...) {
    r->violations++;
    if (g_reported++ >= (getenv("TOME_FAULT_VERBOSE") ? 100000 : 12)) return;
    fprintf(stderr, "  allocation #%llu%s, step %d (%s): ", r->nth,
            r->persistent ? " (until the call returns)" : "", step,
            step >= 0 ? fv_wl_step_name(w, step) : "-");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static ostats *g_st;

static void h_before(void *arg, fv_wl *w, int step) {
    (void)w;
    (void)step;
    orun *r = arg;
    r->fired_before = atomic_load(&g.fired);
}

static void h_after(void *arg, fv_wl *w, int step, int rc) {
    orun *r = arg;
    bool fired_now = atomic_load(&g.fired) && !r->fired_before;
    if (atomic_load(&g.fired)) atomic_store(&g.stop, true); /* memory is back once the call returns */
    if (fired_now) r->fired_step = step;
    if (!fv_wl_step_ran(w, step)) return;
    int kind = fv_wl_step_kind(w, step);
    const char *msg = rc ? tome_errmsg(fv_wl_db(w)) : "";
    if (rc == TOME_OK) {
        if (fired_now && g_st) g_st->ok_despite++;
        return;
    }
    if (!fired_now) {
        violation(r, w, step, "returned %s (%s) though no allocation failed in it", tome_strerror(rc),
                  msg);
        return;
    }
    if (g_st) g_st->failed_steps++;
    if (rc == TOME_NOMEM) {
        if (g_st) g_st->nomem++;
    } else if (rc == TOME_IO && atomic_load(&g.fired_in_base)) {
        if (g_st) g_st->io_from_os++;
    } else {
        violation(r, w, step, "returned %s (%s), want TOME_NOMEM%s", tome_strerror(rc), msg,
                  atomic_load(&g.fired_in_base) ? " or TOME_IO" : "");
    }
    if ((kind == FV_S_OPEN && !fv_wl_db(w)) || kind == FV_S_CLOSE) {
        if (fv_open_files(r->fv) != 0)
            violation(r, w, step, "%ld file(s) left open", fv_open_files(r->fv));
    }
}

static void one_run(const char *root, unsigned long long nth, bool persistent, uint64_t *count_out,
                    ostats *st) {
    char path[800];
    snprintf(path, sizeof path, "%s/s%llu%s", root, nth, persistent ? "p" : "");
    fv_vfs *fv = fv_new(tome_vfs_posix(), true);
    if (!fv) abort();
    orun r = {0};
    r.fv = fv;
    r.nth = nth;
    r.persistent = persistent;
    r.fired_step = -1;
    fv_hooks h = {0};
    h.arg = &r;
    h.before = h_before;
    h.after = h_after;
    h.read_errors[0] = TOME_NOMEM;
    h.read_errors[1] = TOME_IO;
    fv_wl *w = fv_wl_new(path, &h);
    tome_local_test_vfs(fv_vfs_of(fv));
    g_st = st;
    arm(0, false);
    tome_alloc_set_hooks(&g_hooks);
    long long live0 = atomic_load(&g.live);
    arm(nth, persistent);
    alarm(120);
    int bad = fv_wl_run(w);
    alarm(0);
    if (count_out) *count_out = atomic_load(&g.count);
    if (getenv("TOME_FAULT_VERBOSE"))
        for (int i = 0; i < fv_wl_nsteps(w); i++)
            if (fv_wl_step_ran(w, i) && fv_wl_step_rc(w, i))
                fprintf(stderr, "  step %d (%s): %s\n", i, fv_wl_step_name(w, i),
                        tome_strerror(fv_wl_step_rc(w, i)));
    bool fired = atomic_load(&g.fired);
    arm(0, false);
    if (bad) violation(&r, w, -1, "%d wrong read result(s) (above)", bad);
    if (fv_open_files(fv) != 0) violation(&r, w, -1, "%ld file(s) open at the end", fv_open_files(fv));
    long long leaked = atomic_load(&g.live) - live0;
    if (leaked) violation(&r, w, r.fired_step, "%lld allocation(s) leaked", leaked);
    /* every step after the failing one succeeded */
    for (int i = r.fired_step + 1; r.fired_step >= 0 && i < fv_wl_nsteps(w); i++)
        if (fv_wl_step_ran(w, i) && fv_wl_step_rc(w, i) != TOME_OK)
            violation(&r, w, i, "failed with %s after the allocation failure was over",
                      tome_strerror(fv_wl_step_rc(w, i)));
    /* reopen with memory back (still counting) */
    tome_local_test_vfs(NULL);
    char why[1200];
    if (fv_wl_verify(w, path, NULL, NULL, why, sizeof why) != 0)
        violation(&r, w, r.fired_step, "after reopen: %s", why);
    leaked = atomic_load(&g.live) - live0;
    if (leaked) violation(&r, w, -1, "%lld allocation(s) leaked by the verification", leaked);
    tome_alloc_set_hooks(NULL);
    g_st = NULL;
    if (st) {
        st->points++;
        if (fired) st->fired++;
        st->violations += (uint64_t)r.violations;
    }
    fv_wl_free(w);
    fv_free(fv);
    tt_rmtree(path);
}

static void sweep(bool persistent, uint64_t stride, uint64_t phase, const char *label) {
    const char *root = tt_tmpdir();
    uint64_t total = 0;
    ostats st = {0};
    g_reported = 0;
    one_run(root, 0, false, &total, NULL);
    const char *only = getenv("TOME_FAULT_ONLY"); /* debugging: one point */
    uint64_t only_n = only ? strtoull(only, NULL, 10) : 0;
    if (only_n) one_run(root, only_n, persistent, NULL, &st);
    for (uint64_t n = 1 + phase % stride; !only_n && n <= total; n += stride)
        one_run(root, n, persistent, NULL, &st);
    printf("  %s: %llu of %llu allocation points (stride %llu): %llu calls failed with TOME_NOMEM, "
           "%llu with TOME_IO from an allocation inside the vfs, %llu completed despite the "
           "failure\n",
           label, (unsigned long long)st.points, (unsigned long long)total, (unsigned long long)stride,
           (unsigned long long)st.nomem, (unsigned long long)st.io_from_os,
           (unsigned long long)st.ok_despite);
    fflush(stdout);
    if (total < 100 || st.fired != st.points || st.violations) {
        fprintf(stderr, "  %s: %llu allocations, %llu of %llu runs fired, %llu violations\n", label,
                (unsigned long long)total, (unsigned long long)st.fired, (unsigned long long)st.points,
                (unsigned long long)st.violations);
        tt_failed_now = 1;
    }
}

static uint64_t stride_for(uint64_t dflt) {
    if (fv_full()) return 1;
    if (fv_short()) return dflt * 13;
    return dflt;
}

TT_TEST(workload_counts_allocations) {
    const char *root = tt_tmpdir();
    uint64_t total = 0;
    ostats st = {0};
    g_reported = 0;
    one_run(root, 0, false, &total, &st);
    printf("  the workload makes %llu allocations\n", (unsigned long long)total);
    CHECK(total > 100);
    CHECK_U64(st.violations, 0);
}

TT_TEST(every_allocation_fails_once) { sweep(false, stride_for(1), 0, "fail once"); }

TT_TEST(allocations_fail_until_the_call_returns) {
    sweep(true, stride_for(1), 1, "fail until the call returns");
}

TT_TEST(open_out_of_memory_leaves_nothing_locked) {
    /* every allocation of opening an existing store, failed in turn */
    const char *root = tt_tmpdir();
    char path[700];
    snprintf(path, sizeof path, "%s/db", root);
    tome_options o;
    tome_options_init(&o);
    tome_db *db = NULL;
    CHECK_OK(tome_open(path, &o, &db));
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_insert(t, 1, "k", 1, "v", 1));
    CHECK_OK(tome_commit(t));
    CHECK_OK(tome_close(db));
    tome_alloc_set_hooks(&g_hooks);
    arm(0, false);
    CHECK_OK(tome_open(path, &o, &db));
    unsigned long long n = atomic_load(&g.count);
    CHECK_OK(tome_close(db));
    int failed = 0;
    for (unsigned long long i = 1; i <= n; i++) {
        long long live0 = atomic_load(&g.live);
        arm(i, false);
        db = NULL;
        int rc = tome_open(path, &o, &db);
        arm(0, false);
        if (rc) {
            failed++;
            if (rc != TOME_NOMEM && rc != TOME_IO) {
                tome_alloc_set_hooks(NULL);
                CHECK_RC(rc, TOME_NOMEM);
            }
            if (db != NULL || atomic_load(&g.live) != live0) {
                tome_alloc_set_hooks(NULL);
                CHECK(db == NULL);
                CHECK_EQ(atomic_load(&g.live), live0);
            }
            rc = tome_open(path, &o, &db);
            if (rc) {
                tome_alloc_set_hooks(NULL);
                CHECK_OK(rc); /* above all: not TOME_LOCKED */
            }
        }
        tome_txn *t2 = NULL;
        const void *v;
        size_t vl;
        rc = tome_begin(db, &t2);
        if (!rc) rc = tome_get(t2, 1, "k", 1, &v, &vl);
        tome_abort(t2);
        tome_close(db);
        if (rc || vl != 1) {
            tome_alloc_set_hooks(NULL);
            CHECK_OK(rc);
            CHECK_EQ(vl, 1);
        }
        if (atomic_load(&g.live) != live0) {
            tome_alloc_set_hooks(NULL);
            CHECK_EQ(atomic_load(&g.live), live0);
        }
    }
    tome_alloc_set_hooks(NULL);
    printf("  %llu allocations of an open failed in turn: %d opens failed cleanly\n", n, failed);
    CHECK(failed > 0);
    CHECK_OK(tome_check(path, NULL));
}

TT_MAIN()
