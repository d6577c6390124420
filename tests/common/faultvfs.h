/*
 * faultvfs.h -- failure on purpose, for the fault-injection, out-of-memory
 * and power-loss tests (test_faults, test_oom, test_powerloss). Every name
 * starts with fv_.
 *
 * Three tools:
 *
 *  1. fv_vfs, a fault-injecting vfs that wraps another one (the POSIX vfs or
 *     an in-memory one). It counts every operation and can make the Nth
 *     eligible one fail: with -EIO (any operation), with -ENOSPC (operations
 *     that need space: creating open, pwritev, truncate, allocate, sync,
 *     sync_dir, mkdir, rename; optionally "sticky", i.e. every later one
 *     fails too, as a full disk does), or as a short write (a pwritev that
 *     writes the first half of its bytes and then fails with -ENOSPC). It
 *     remembers which operation failed and whether the commit data of the
 *     log had already been written when it did, and counts open files so a
 *     test can see that none leaks.
 *
 *  2. fv_crash, a crash-simulating vfs over an in-memory file system. It
 *     keeps, per file, the durable content (as of the last successful sync
 *     of that file) and the writes made since (pending), and per directory
 *     the durable set of names (creates, renames and unlinks become durable
 *     only when the directory is synced). At chosen operations (every Kth)
 *     it takes a snapshot of that state; fv_snap_image() turns a snapshot
 *     into a crash image, a fresh in-memory file system holding what a power
 *     cut at that moment may have left: pending writes dropped, kept, torn
 *     at a 512-byte sector boundary, or a random subset of their sectors
 *     kept, and a prefix of the pending name operations kept or not.
 *     It can also fail the Nth sync with -EIO and throw away the writes that
 *     sync covered ("the kernel dropped the dirty pages").
 *
 *  3. fv_wl (faultwl.c), one fixed workload with a model of what the store
 *     must hold:
 *     open, commits of several sizes (one with a value over 64 KiB that gets
 *     a segment of its own, several that roll the log over with a 4 KiB
 *     segment_size), NOSYNC commits and tome_sync, reads of every kind,
 *     two merges (the second re-merging the first one's output), namespaced
 *     writes (tome_kv_write, tome_kv_apply, tome_kv_remove), a close and a
 *     reopen in the middle (so recovery with the index file runs under
 *     failure too), a close, the index file deleted (as after a crash) and
 *     a reopen that scans every segment (merged ones too), a commit and a
 *     close. Hooks let a test look at each step. After a
 *     run, fv_wl_verify() reopens the store and checks it against the
 *     model: commits marked present must be there with their exact values,
 *     commits marked absent must not, commits marked "maybe" may be there
 *     (as a prefix of them, each one whole), nothing else; tome_check must
 *     pass before and after.
 *
 * The tools use malloc (not tome_malloc) for their own memory, so the
 * out-of-memory test fails only the library's allocations; the in-memory
 * file systems they create are the library's and use tome_malloc.
 * Debugging aid: TOME_FAULT_VERBOSE=1 makes the workload print why an open
 * failed.
 */
#ifndef TOME_TESTS_FAULTVFS_H
#define TOME_TESTS_FAULTVFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../include/tome.h"
#include "../../src/os/os.h"

/* ------------------------------------------------------------------------ */
/* Environment                                                                */
/* ------------------------------------------------------------------------ */

/* TOME_TEST_SHORT set (not "" or "0"): smaller loops (valgrind). */
bool fv_short(void);
/* TOME_FAULTS_FULL set (not "" or "0"): every fault point / crash point. */
bool fv_full(void);
/* splitmix64 over caller-held state. */
uint64_t fv_rand(uint64_t *state);

/* ------------------------------------------------------------------------ */
/* 1. The fault-injecting vfs                                                */
/* ------------------------------------------------------------------------ */

enum fv_op {
    FV_OPEN, FV_CLOSE, FV_PREAD, FV_PWRITEV, FV_SYNC, FV_TRUNCATE, FV_ALLOCATE, FV_SIZE,
    FV_LOCK, FV_STAT, FV_MKDIR, FV_RENAME, FV_UNLINK, FV_LIST, FV_SYNC_DIR, FV_NOPS
};
const char *fv_op_name(int op);

/* Fault kinds. FV_EIO counts every operation; FV_ENOSPC only those that
 * need space; FV_SHORT only pwritev calls of 2 bytes or more. */
enum fv_kind { FV_NONE = 0, FV_EIO = 1, FV_ENOSPC = 2, FV_SHORT = 3, FV_NKINDS = 4 };
const char *fv_kind_name(int kind);

typedef struct fv_vfs fv_vfs;

/* A new fault vfs over base (not owned). skip_sync: sync and sync_dir
 * succeed without reaching base (speed; they are still counted and can
 * still be failed). NULL when out of memory. */
fv_vfs *fv_new(tome_vfs *base, bool skip_sync);
void fv_free(fv_vfs *v);
/* The table to hand to tome_local_test_vfs(). */
tome_vfs *fv_vfs_of(fv_vfs *v);

/* Arms a fault: the nth (1-based) operation eligible for kind fails;
 * sticky: every later eligible one fails as well. kind FV_NONE disarms.
 * Also resets the counters and what fv_fired reports. */
void fv_arm(fv_vfs *v, int kind, uint64_t nth, bool sticky);
/* Eligible operations seen since fv_arm, for each kind (FV_EIO: all). */
uint64_t fv_count(fv_vfs *v, int kind);
/* Calls of one operation (enum fv_op) since fv_arm. */
uint64_t fv_op_count(fv_vfs *v, int op);
/* Did the armed fault fire? Then *op is the operation that failed first,
 * *data_written says whether, before it, a pwritev of commit data to a log
 * segment (offset >= 64 of a *.log file) had completed since the last
 * fv_mark, and *on_log whether the failed operation was on an open *.log
 * file. Any pointer may be NULL. */
bool fv_fired(fv_vfs *v, int *op, bool *data_written, bool *on_log);
/* Starts a new "step" for fv_fired's data_written: remembers the number of
 * completed log data writes so far. */
void fv_mark(fv_vfs *v);
/* Files opened through v and not closed yet. */
long fv_open_files(fv_vfs *v);
/* Depth of calls into the base vfs in progress on this thread (> 0 while a
 * base operation runs): lets an allocator hook tell an allocation of the
 * OS layer from one of the engine. */
int fv_in_base(void);

/* ------------------------------------------------------------------------ */
/* 2. The crash-simulating vfs                                               */
/* ------------------------------------------------------------------------ */

typedef struct fv_crash fv_crash;
typedef struct fv_snap fv_snap;

/* A new crash vfs with an empty in-memory file system. */
fv_crash *fv_crash_new(void);
void fv_crash_free(fv_crash *c);
tome_vfs *fv_crash_vfs(fv_crash *c);
/* Mutating operations so far (creating open, pwritev, truncate, allocate,
 * sync, mkdir, rename, unlink, sync_dir). */
uint64_t fv_crash_ops(fv_crash *c);
/* Takes a snapshot after every mutating operation whose number n (1-based)
 * satisfies n % every == phase; every 0 takes none. */
void fv_crash_snap_every(fv_crash *c, uint64_t every, uint64_t phase);
/* Makes the nth sync (1-based, counting sync calls only) fail with -EIO and
 * forget the writes it should have made durable: the file goes back to its
 * durable content, on disk and for the process (as once the kernel has
 * dropped the pages). 0: none. */
void fv_crash_fail_sync(fv_crash *c, uint64_t nth);
/* The number of sync calls so far. */
uint64_t fv_crash_syncs(fv_crash *c);
/* Snapshots taken so far and not yet popped, oldest first: returns one and
 * removes it from the list, or NULL. */
fv_snap *fv_crash_pop(fv_crash *c);
/* A snapshot of the state right now. */
fv_snap *fv_crash_snap_now(fv_crash *c);
uint64_t fv_snap_op(const fv_snap *s);        /* mutating op it followed */
const char *fv_snap_what(const fv_snap *s);    /* that op, as text */
void fv_snap_free(fv_snap *s);

/* Crash image modes. */
enum fv_img {
    FV_IMG_DROP,       /* only what was synced: pending writes and names lost */
    FV_IMG_DATA,       /* every pending write reached the disk, no pending name */
    FV_IMG_ALL,        /* everything reached the disk (a process crash) */
    FV_IMG_TORN,       /* per file, pending writes kept in order up to a random
                          point, the write there torn at a sector boundary;
                          a random prefix of the pending name operations */
    FV_IMG_SECTORS,    /* per file, a random subset of the 512-byte sectors of
                          the pending writes (and of truncates/allocates); a
                          random prefix of the pending name operations */
    FV_NIMG
};
const char *fv_img_name(int mode);
/* A fresh in-memory vfs holding the crash image (destroy with
 * vfs->destroy(vfs)); NULL when out of memory. */
tome_vfs *fv_snap_image(const fv_snap *s, int mode, uint64_t seed);

/* ------------------------------------------------------------------------ */
/* 3. The workload and its model                                             */
/* ------------------------------------------------------------------------ */

enum fv_step_kind {
    FV_S_OPEN, FV_S_COMMIT, FV_S_KV, FV_S_SYNC, FV_S_MERGE, FV_S_READS, FV_S_CLOSE,
    FV_S_DROP_INDEX    /* deletes the closed store's INDEX through hooks.vfs */
};

/* What a commit left, as far as the test knows. */
enum fv_status {
    FV_C_NONE = 0,   /* not attempted (no handle) */
    FV_C_PRESENT,    /* returned TOME_OK: must be there after reopen */
    FV_C_ABSENT,     /* failed before reaching storage: must not be there */
    FV_C_MAYBE       /* outcome unknown: wholly there or wholly absent */
};

typedef struct fv_wl fv_wl;

typedef struct fv_hooks {
    void *arg;
    /* Before and after every step. rc is the step's code (for READS: 0 or
     * the first unexpected code). */
    void (*before)(void *arg, fv_wl *w, int step);
    void (*after)(void *arg, fv_wl *w, int step, int rc);
    /* A commit step failed with rc: FV_C_ABSENT or FV_C_MAYBE? NULL:
     * ABSENT. */
    int (*classify)(void *arg, fv_wl *w, int step, int rc);
    /* Codes a read may return besides its expected result (e.g. TOME_IO in
     * the fault test, TOME_NOMEM in the out-of-memory test); 0 ends the
     * list. */
    int read_errors[4];
    /* The vfs that reaches the store's files, for the step that deletes
     * the index file (NULL: the POSIX one). */
    tome_vfs *vfs;
    /* When a sync fails (TOME_IO from tome_sync or a synced commit), the
     * commits that returned TOME_OK but were not yet acknowledged durable
     * become "maybe" (a failed sync may have lost them). */
    bool unsynced_in_doubt;
} fv_hooks;

/* A workload on the store at path (opened with segment_size 4 KiB through
 * whatever vfs tome_local_test_vfs names). */
fv_wl *fv_wl_new(const char *path, const fv_hooks *hooks);
void fv_wl_free(fv_wl *w);
/* Runs every step (a failed open skips the steps up to the next open; the
 * open is retried once at once). Leaves no handle open. Returns the number
 * of read checks that saw a wrong result (0 when all is well); the detail
 * is printed. */
int fv_wl_run(fv_wl *w);

int fv_wl_nsteps(const fv_wl *w);
int fv_wl_step_kind(const fv_wl *w, int step);
const char *fv_wl_step_name(const fv_wl *w, int step);
/* The code the step returned (0 also for steps not run). */
int fv_wl_step_rc(const fv_wl *w, int step);
/* Whether the step ran (a handle was open). */
bool fv_wl_step_ran(const fv_wl *w, int step);
/* The commit a COMMIT or KV step makes (index into the commits), or -1. */
int fv_wl_step_commit(const fv_wl *w, int step);
int fv_wl_ncommits(const fv_wl *w);
int fv_wl_status(const fv_wl *w, int commit);
/* Commits acknowledged as durable when step `step` begins: a prefix of
 * this many commits must survive a power cut during that step. */
int fv_wl_acked_before(const fv_wl *w, int step);
/* Whether commit c has been acknowledged durable: it was a synced commit
 * that returned TOME_OK, or a later synced commit, tome_sync or tome_close
 * returned TOME_OK on a handle that showed it (tome_close "makes every
 * commit so far durable"). */
bool fv_wl_acked(const fv_wl *w, int commit);
/* The handle (NULL between a close and the next open). */
tome_db *fv_wl_db(fv_wl *w);

/* Opens path with the vfs tome_local_test_vfs names now and checks it
 * against the model, given the status of each commit (statuses == NULL:
 * those the run recorded). PRESENT commits must be there, ABSENT ones not,
 * and MAYBE ones form a prefix: the first t of them for some t (each whole).
 * Also: tome_check passes before the open and after the close, the newest
 * seq equals the number of commits held (I1), the namespaced slots are
 * consistent. On success returns 0 and *held (if not NULL) gets the number
 * of MAYBE commits found; on failure returns -1 and writes why. */
int fv_wl_verify(fv_wl *w, const char *path, const int *statuses, int *held, char *why,
                 size_t cap);

/* Allocation for the test helpers themselves (never through the store's
 * hooks): they end the test process when memory runs out. */
void *fv_xmalloc(size_t n);
void *fv_xrealloc(void *p, size_t n);
char *fv_xstrdup(const char *s);

#endif /* TOME_TESTS_FAULTVFS_H */
