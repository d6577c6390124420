/*
 * test_powerloss.c -- simulated power loss at every point of a workload:
 * every crash image opens, passes tome_check and holds every commit that
 * was acknowledged before the power went out.
 *
 * The store lives on a crash-simulating vfs (tests/common/faultvfs.c) that
 * keeps, per file, what the last successful sync made durable and the
 * writes made since, and per directory the names made durable by its last
 * sync (creates, renames and unlinks since are pending). The workload of
 * tests/common/faultwl.c runs on it (open, commits of several sizes with
 * log rollovers, NOSYNC commits and tome_sync, two merges with their index
 * files, tome_kv_write / tome_kv_apply / tome_kv_remove, close, reopen, a
 * reopen without the index file, close). After every Kth mutating
 * operation (pwritev, sync, truncate, allocate, create, mkdir, rename,
 * unlink, sync_dir) the vfs takes a snapshot; each snapshot becomes several
 * crash images:
 *   - drop-unsynced: only what was synced survives; pending names are lost;
 *   - keep-data-lose-names: every pending write reached the disk, no
 *     pending create, rename or unlink did;
 *   - keep-all: everything reached the disk (what a process crash leaves);
 *   - torn-at-sector (4 seeds): per file, the pending writes in order up to
 *     a random one, that one cut at a 512-byte sector boundary; a random
 *     prefix of the pending name operations;
 *   - random-sectors (4 seeds): per file, a random subset of the sectors of
 *     the pending writes (and of the truncates and allocations); a random
 *     prefix of the pending name operations.
 * Each image is materialised as a fresh in-memory file system and opened
 * through tome_local_test_vfs. It must pass tome_check before and after
 * the open, open, and hold exactly the state after some prefix of the
 * commits: at least every commit acknowledged before the crash (it returned
 * TOME_OK from a synced commit, or a later tome_sync or tome_close returned
 * TOME_OK), at most every commit begun by then, each commit whole; with
 * keep-all, every commit that returned TOME_OK (a process crash loses
 * nothing). The newest seq must equal the number of commits held.
 *
 * A second case makes one sync fail with EIO and lose the writes it
 * covered (as Linux may drop dirty pages after a failed fsync), for every
 * sync of the workload in turn. The handle must refuse further writes; the
 * commits not yet acknowledged are in doubt from then on, unless a later
 * call acknowledges them (tome_close returning TOME_OK "makes every commit
 * so far durable"); crash images taken at the end must hold every commit
 * acknowledged.
 *
 * The default run snapshots after every operation and makes 4 images of
 * each random mode per snapshot; TOME_TEST_SHORT=1 (valgrind) snapshots
 * every 9th operation with 1 image per random mode; TOME_FAULTS_FULL=1
 * (make stress) makes 12. Each case prints the number of crash images
 * tested.
 */
#include "tt.h"
#include "common/faultvfs.h"
#include "log/local.h"

#include <signal.h>

#define STORE "/db"

typedef struct prun {
    fv_crash *c;
    int seeds;             /* random images per random mode */
    uint64_t images, snaps, held_doubtful, failures;
    int reported;
} prun;

/* Statuses for a crash during `step`: acknowledged commits must be there;
 * the ones begun by the end of the step may be; later ones cannot. With
 * process_crash, every commit that had returned TOME_OK must be there. */
static void crash_statuses(fv_wl *w, int step, bool process_crash, int *st) {
    int acked = fv_wl_acked_before(w, step);
    for (int c = 0; c < fv_wl_ncommits(w); c++) {
        int cs = -1;
        for (int i = 0; i < fv_wl_nsteps(w); i++)
            if (fv_wl_step_commit(w, i) == c) cs = i;
        if (c < acked) st[c] = FV_C_PRESENT;
        else if (process_crash && cs < step && fv_wl_status(w, c) == FV_C_PRESENT) st[c] = FV_C_PRESENT;
        else if (cs <= step) st[c] = FV_C_MAYBE;
        else st[c] = FV_C_ABSENT;
    }
}

static void check_image(prun *r, fv_wl *w, const fv_snap *s, int mode, uint64_t seed,
                        const int *st, const char *label) {
    tome_vfs *img = fv_snap_image(s, mode, seed);
    if (!img) abort();
    tome_local_test_vfs(img);
    char why[1500];
    int held = 0;
    if (fv_wl_verify(w, STORE, st, &held, why, sizeof why) != 0) {
        r->failures++;
        if (r->reported++ < 10)
            fprintf(stderr, "  %s, %s, image %s (seed %llu): %s\n", label, fv_snap_what(s),
                    fv_img_name(mode), (unsigned long long)seed, why);
    }
    r->held_doubtful += (uint64_t)held;
    r->images++;
    tome_local_test_vfs(fv_crash_vfs(r->c));
    img->destroy(img);
}

static void h_after(void *arg, fv_wl *w, int step, int rc) {
    (void)rc;
    prun *r = arg;
    int st[64], st_all[64];
    crash_statuses(w, step, false, st);
    crash_statuses(w, step, true, st_all);
    char label[100];
    snprintf(label, sizeof label, "crash in step %d (%s)", step, fv_wl_step_name(w, step));
    fv_snap *s;
    while ((s = fv_crash_pop(r->c)) != NULL) {
        r->snaps++;
        uint64_t base = fv_snap_op(s) * 1000;
        check_image(r, w, s, FV_IMG_DROP, base, st, label);
        check_image(r, w, s, FV_IMG_DATA, base, st, label);
        check_image(r, w, s, FV_IMG_ALL, base, st_all, label);
        for (int k = 0; k < r->seeds; k++) {
            check_image(r, w, s, FV_IMG_TORN, base + 1 + (uint64_t)k, st, label);
            check_image(r, w, s, FV_IMG_SECTORS, base + 1 + (uint64_t)k, st, label);
        }
        fv_snap_free(s);
    }
}

TT_TEST(crash_images_at_every_point) {
    uint64_t every = fv_short() ? 9 : 1;
    prun r = {0};
    r.seeds = fv_full() ? 12 : fv_short() ? 1 : 4;
    r.c = fv_crash_new();
    CHECK(r.c != NULL);
    fv_crash_snap_every(r.c, every, 0);
    fv_hooks h = {0};
    h.arg = &r;
    h.after = h_after;
    h.vfs = fv_crash_vfs(r.c);
    fv_wl *w = fv_wl_new(STORE, &h);
    tome_local_test_vfs(fv_crash_vfs(r.c));
    alarm(600);
    int bad = fv_wl_run(w);
    alarm(0);
    tome_local_test_vfs(NULL);
    uint64_t ops = fv_crash_ops(r.c);
    printf("  %llu mutating operations, %llu crash points (every %llu), %llu crash images tested; "
           "%llu commits in doubt were found whole\n",
           (unsigned long long)ops, (unsigned long long)r.snaps, (unsigned long long)every,
           (unsigned long long)r.images, (unsigned long long)r.held_doubtful);
    fflush(stdout);
    CHECK_EQ(bad, 0);
    for (int i = 0; i < fv_wl_nsteps(w); i++) CHECK_OK(fv_wl_step_rc(w, i));
    CHECK(r.snaps * every + every > ops);
    CHECK_U64(r.failures, 0);
    fv_wl_free(w);
    fv_crash_free(r.c);
}

/* ------------------------------------------------------------------------ */
/* A failed fsync that loses the dirty data                                  */
/* ------------------------------------------------------------------------ */

typedef struct srun {
    bool poisoned;
    int violations;
} srun;

static int s_classify(void *arg, fv_wl *w, int step, int rc) {
    (void)arg;
    (void)w;
    (void)step;
    (void)rc;
    return FV_C_MAYBE; /* its data may or may not have reached the disk */
}

static void s_after(void *arg, fv_wl *w, int step, int rc) {
    srun *r = arg;
    int kind = fv_wl_step_kind(w, step);
    if (!fv_wl_step_ran(w, step)) return;
    bool writes = kind == FV_S_COMMIT || kind == FV_S_KV || kind == FV_S_SYNC || kind == FV_S_MERGE;
    if (r->poisoned && writes && rc != TOME_IO) {
        r->violations++;
        fprintf(stderr, "  step %s after a failed sync returned %s, want TOME_IO\n",
                fv_wl_step_name(w, step), tome_strerror(rc));
    }
    if (rc == TOME_IO && (kind == FV_S_COMMIT || kind == FV_S_KV || kind == FV_S_SYNC)) r->poisoned = true;
    if (kind == FV_S_OPEN || kind == FV_S_CLOSE) r->poisoned = false;
}

TT_TEST(failed_sync_loses_dirty_pages) {
    /* count the syncs of the workload */
    fv_crash *c = fv_crash_new();
    CHECK(c != NULL);
    fv_wl *w = fv_wl_new(STORE, NULL);
    tome_local_test_vfs(fv_crash_vfs(c));
    CHECK_EQ(fv_wl_run(w), 0);
    tome_local_test_vfs(NULL);
    uint64_t nsync = fv_crash_syncs(c);
    fv_wl_free(w);
    fv_crash_free(c);
    CHECK(nsync > 10);
    uint64_t images = 0, failures = 0;
    for (uint64_t n = 1; n <= nsync; n++) {
        srun sr = {0};
        fv_hooks h = {0};
        h.arg = &sr;
        h.after = s_after;
        h.classify = s_classify;
        h.unsynced_in_doubt = true;
        h.read_errors[0] = TOME_IO;
        h.read_errors[1] = TOME_CORRUPT; /* a value whose bytes the kernel dropped */
        c = fv_crash_new();
        CHECK(c != NULL);
        h.vfs = fv_crash_vfs(c);
        fv_crash_fail_sync(c, n);
        w = fv_wl_new(STORE, &h);
        tome_local_test_vfs(fv_crash_vfs(c));
        alarm(120);
        int bad = fv_wl_run(w);
        alarm(0);
        if (getenv("TOME_FAULT_VERBOSE")) /* debugging aid */
            for (int i = 0; i < fv_wl_nsteps(w); i++)
                fprintf(stderr, "  sync #%llu: step %d (%s): %s\n", (unsigned long long)n, i,
                        fv_wl_step_name(w, i), tome_strerror(fv_wl_step_rc(w, i)));
        fv_snap *s = fv_crash_snap_now(c);
        int st[64];
        for (int i = 0; i < fv_wl_ncommits(w); i++) {
            int ws = fv_wl_status(w, i);
            st[i] = fv_wl_acked(w, i) ? FV_C_PRESENT
                    : ws == FV_C_PRESENT || ws == FV_C_MAYBE ? FV_C_MAYBE
                                                              : FV_C_ABSENT;
        }
        static const int modes[] = {FV_IMG_DROP, FV_IMG_ALL, FV_IMG_TORN};
        for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
            tome_vfs *img = fv_snap_image(s, modes[m], n);
            CHECK(img != NULL);
            tome_local_test_vfs(img);
            char why[1500];
            if (fv_wl_verify(w, STORE, st, NULL, why, sizeof why) != 0) {
                failures++;
                if (failures <= 10)
                    fprintf(stderr, "  sync #%llu failed, image %s: %s\n", (unsigned long long)n,
                            fv_img_name(modes[m]), why);
            }
            images++;
            img->destroy(img);
        }
        tome_local_test_vfs(NULL);
        fv_snap_free(s);
        if (bad || sr.violations) {
            failures++;
            fprintf(stderr, "  sync #%llu failed: %d wrong reads, %d policy violations\n",
                    (unsigned long long)n, bad, sr.violations);
        }
        fv_wl_free(w);
        fv_crash_free(c);
    }
    printf("  %llu syncs failed in turn, %llu crash images tested\n", (unsigned long long)nsync,
           (unsigned long long)images);
    CHECK_U64(failures, 0);
}

TT_MAIN()
