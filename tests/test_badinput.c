/*
 * test_badinput.c -- bad input everywhere: the API and the tool given wrong
 * arguments, NULLs, handles in the wrong state, a store path that is a file
 * or sits below one, an unreadable directory, a read-only directory and a
 * full disk. Each time the call must give a clear error (the documented
 * code and a tome_errmsg that says something), and nothing may be lost: the
 * store afterwards holds exactly what was acknowledged before.
 *
 * How the file-system conditions are made. The tests run as root in CI,
 * and root ignores permission bits, so chmod cannot make a directory
 * unreadable or read-only for them. Three means instead:
 *   - a policy vfs (pv_, below), wrapping the POSIX vfs through the engine's
 *     tome_local_test_vfs hook, that refuses what the condition refuses:
 *     EACCES on every open, stat and listing (unreadable), EROFS on every
 *     operation that would change the directory or a file (read-only), and
 *     ENOSPC once the files would grow past a byte budget, with the part of
 *     a write that still fits written first (a full disk). It can be turned
 *     on in the middle of a run, after the store was opened.
 *   - the immutable attribute (FS_IMMUTABLE_FL, `chattr +i`), which binds
 *     root too: a real read-only store directory, in a child process so
 *     that the parent always clears the attribute again. Skipped (and said
 *     so) where the file system does not support it. When not running as
 *     root, chmod does the same (0555 read-only, 0 unreadable).
 *   - a real full disk: a 1 MiB tmpfs mounted in a private mount namespace
 *     of a child process (it disappears with the child). Needs root and
 *     mount permission; skipped (and said so) elsewhere. The tool is run on
 *     it too.
 * Functions called on freed handles (after tome_close or tome_commit) are
 * undefined behaviour and not tested; the states that can be tested are:
 * close with transactions open (TOME_MISUSE, the handle stays usable), an
 * iteration past its end, writes in a historical transaction or on a
 * read-only handle, a second open of an open store, and a handle poisoned
 * by a failed write.
 */
#include "tt.h"
#include "common/files.h"
#include "common/store.h"
#include "tome.h"
#include "os/os.h"
#include "log/local.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* A detail that says something: not empty, not "no error". */
static int meaningful(const char *s) { return s && *s && strcmp(s, "no error") != 0; }

#define SENTINEL ((void *)(uintptr_t)0x5a5a5a5a)

/* ------------------------------------------------------------------------ */
/* The policy vfs                                                            */
/* ------------------------------------------------------------------------ */

typedef struct pvfs {
    tome_vfs v; /* first: the engine sees this */
    tome_vfs *base;
    atomic_int deny_read;   /* EACCES on open, stat, list */
    atomic_int deny_write;  /* EROFS on anything that changes a file or name */
    atomic_llong space;     /* bytes the files may still grow by; < 0: no limit */
    atomic_long refused;
} pvfs;

static pvfs g_pv;

static int pv_open(tome_vfs *v, const char *path, int flags, tome_file **out) {
    pvfs *p = (pvfs *)v;
    if (atomic_load(&p->deny_read)) return atomic_fetch_add(&p->refused, 1), -EACCES;
    if (atomic_load(&p->deny_write) && (flags & (TOME_VFS_WRITE | TOME_VFS_CREATE)))
        return atomic_fetch_add(&p->refused, 1), -EROFS;
    return p->base->open(p->base, path, flags, out);
}

static int pv_close(tome_file *f) { return g_pv.base->close(f); }
static int64_t pv_pread(tome_file *f, void *b, size_t n, uint64_t off) { return g_pv.base->pread(f, b, n, off); }

/* Takes `growth` bytes from the budget; the bytes that fit, or -1 when
 * everything fits. */
static long long pv_take(uint64_t growth) {
    for (;;) {
        long long s = atomic_load(&g_pv.space);
        if (s < 0) return -1;
        if ((long long)growth <= s) {
            if (atomic_compare_exchange_weak(&g_pv.space, &s, s - (long long)growth)) return -1;
            continue;
        }
        if (atomic_compare_exchange_weak(&g_pv.space, &s, 0)) return s;
    }
}

static int pv_pwritev(tome_file *f, const struct iovec *iov, int n, uint64_t off) {
    if (atomic_load(&g_pv.deny_write)) return atomic_fetch_add(&g_pv.refused, 1), -EROFS;
    uint64_t len = 0, size = 0;
    for (int i = 0; i < n; i++) len += iov[i].iov_len;
    if (g_pv.base->size(f, &size)) size = 0;
    uint64_t growth = off + len > size ? off + len - size : 0;
    long long fits = growth ? pv_take(growth) : -1;
    if (fits < 0) return g_pv.base->pwritev(f, iov, n, off);
    /* a full disk: what fits is written, then ENOSPC */
    uint64_t room = size > off ? size - off + (uint64_t)fits : (uint64_t)fits;
    struct iovec part[64];
    int k = 0;
    for (int i = 0; i < n && k < 64 && room; i++) {
        size_t l = iov[i].iov_len < room ? iov[i].iov_len : (size_t)room;
        part[k].iov_base = iov[i].iov_base;
        part[k++].iov_len = l;
        room -= l;
    }
    if (k) g_pv.base->pwritev(f, part, k, off);
    atomic_fetch_add(&g_pv.refused, 1);
    return -ENOSPC;
}

static int pv_sync(tome_file *f, int data_only) { return g_pv.base->sync(f, data_only); }

static int pv_truncate(tome_file *f, uint64_t size) {
    if (atomic_load(&g_pv.deny_write)) return atomic_fetch_add(&g_pv.refused, 1), -EROFS;
    uint64_t cur = 0;
    g_pv.base->size(f, &cur);
    if (size > cur && pv_take(size - cur) >= 0) return atomic_fetch_add(&g_pv.refused, 1), -ENOSPC;
    return g_pv.base->truncate(f, size);
}

static int pv_allocate(tome_file *f, uint64_t off, uint64_t len) {
    if (atomic_load(&g_pv.deny_write)) return atomic_fetch_add(&g_pv.refused, 1), -EROFS;
    uint64_t cur = 0;
    g_pv.base->size(f, &cur);
    if (off + len > cur && pv_take(off + len - cur) >= 0) return atomic_fetch_add(&g_pv.refused, 1), -ENOSPC;
    return g_pv.base->allocate(f, off, len);
}

static int pv_size(tome_file *f, uint64_t *out) { return g_pv.base->size(f, out); }
static int pv_lock(tome_file *f) { return g_pv.base->lock(f); }

static int pv_stat(tome_vfs *v, const char *path, int *kind) {
    if (atomic_load(&g_pv.deny_read)) return atomic_fetch_add(&g_pv.refused, 1), -EACCES;
    return g_pv.base->stat(g_pv.base, path, kind);
}

static int pv_mkdir(tome_vfs *v, const char *path) {
    if (atomic_load(&g_pv.deny_write)) return atomic_fetch_add(&g_pv.refused, 1), -EROFS;
    return g_pv.base->mkdir(g_pv.base, path);
}

static int pv_rename(tome_vfs *v, const char *a, const char *b) {
    if (atomic_load(&g_pv.deny_write)) return atomic_fetch_add(&g_pv.refused, 1), -EROFS;
    return g_pv.base->rename(g_pv.base, a, b);
}

static int pv_unlink(tome_vfs *v, const char *path) {
    if (atomic_load(&g_pv.deny_write)) return atomic_fetch_add(&g_pv.refused, 1), -EROFS;
    return g_pv.base->unlink(g_pv.base, path);
}

static int pv_list(tome_vfs *v, const char *dir, char ***names, size_t *n) {
    if (atomic_load(&g_pv.deny_read)) return atomic_fetch_add(&g_pv.refused, 1), -EACCES;
    return g_pv.base->list(g_pv.base, dir, names, n);
}

static int pv_sync_dir(tome_vfs *v, const char *dir) { return g_pv.base->sync_dir(g_pv.base, dir); }
static uint64_t pv_now(tome_vfs *v) { return g_pv.base->now_ms(g_pv.base); }

/* Installs the policy vfs (nothing refused yet) for every later open. */
static void pv_install(void) {
    memset(&g_pv, 0, sizeof g_pv);
    g_pv.base = tome_vfs_posix();
    g_pv.v = *g_pv.base;
    g_pv.v.name = "policy";
    g_pv.v.open = pv_open;
    g_pv.v.close = pv_close;
    g_pv.v.pread = pv_pread;
    g_pv.v.pwritev = pv_pwritev;
    g_pv.v.sync = pv_sync;
    g_pv.v.truncate = pv_truncate;
    g_pv.v.allocate = pv_allocate;
    g_pv.v.size = pv_size;
    g_pv.v.lock = pv_lock;
    g_pv.v.stat = pv_stat;
    g_pv.v.mkdir = pv_mkdir;
    g_pv.v.rename = pv_rename;
    g_pv.v.unlink = pv_unlink;
    g_pv.v.list = pv_list;
    g_pv.v.sync_dir = pv_sync_dir;
    g_pv.v.now_ms = pv_now;
    g_pv.v.destroy = NULL;
    atomic_store(&g_pv.space, -1);
    tome_local_test_vfs(&g_pv.v);
}

static void pv_remove(void) { tome_local_test_vfs(NULL); }

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* The acknowledged state: keys "k<i>" (slot 3) with values made from i. */
#define B_SLOT 3

static void b_key(char *k, int i) { snprintf(k, 16, "k%05d", i); }

static size_t b_val(uint8_t *buf, int i, size_t len) {
    tf_fill(buf, len, (uint64_t)i * 7919u + 1u);
    return len;
}

static int b_put(tome_db *db, int i, size_t len) {
    static uint8_t buf[256 * 1024];
    char k[16];
    b_key(k, i);
    return ts_putm(db, B_SLOT, k, strlen(k), buf, b_val(buf, i, len));
}

/* True when db holds exactly keys 0..n-1 with the lengths in lens (slot
 * B_SLOT), printing the first difference. */
static bool b_holds(tome_db *db, int n, const size_t *lens) {
    static uint8_t want[256 * 1024];
    tome_txn *t;
    if (tome_begin(db, &t)) return false;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        char k[16];
        b_key(k, i);
        const void *v;
        size_t vl;
        int rc = tome_get(t, B_SLOT, k, strlen(k), &v, &vl);
        size_t wl = b_val(want, i, lens[i]);
        if (rc || vl != wl || memcmp(v, want, wl)) {
            fprintf(stderr, "  key %d: %s, %zu bytes (want %zu)\n", i, tt_rcname(rc), rc ? 0 : vl, wl);
            ok = false;
        }
    }
    tome_iter *it;
    if (ok && tome_iter_open(t, B_SLOT, NULL, 0, &it) == 0) {
        int count = 0;
        const void *kp;
        size_t kl;
        while (tome_iter_next(it, &kp, &kl) == TOME_OK) count++;
        tome_iter_close(it);
        if (count != n) {
            fprintf(stderr, "  %d keys in the slot, want %d\n", count, n);
            ok = false;
        }
    }
    tome_abort(t);
    return ok;
}

static bool check_passes(const char *path) {
    char *report = NULL;
    int rc = tome_check(path, &report);
    if (rc) fprintf(stderr, "  tome_check: %s\n%s\n", tt_rcname(rc), report ? report : "");
    tome_free(report);
    return rc == TOME_OK;
}

/* ------------------------------------------------------------------------ */
/* The API: NULLs and wrong values                                           */
/* ------------------------------------------------------------------------ */

TT_TEST(null_handles_and_outputs) {
    tome_db *db = ts_new(TS_MEM, NULL, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 1, "k", "v"));
    tome_txn *t = SENTINEL;
    tome_iter *it = SENTINEL;
    const void *v;
    size_t vl;
    const tome_version *vs;
    size_t n;
    uint64_t u;
    tome_stats st;

    /* handles */
    CHECK_RC(tome_begin(NULL, &t), TOME_INVALID);
    CHECK_RC(tome_begin(db, NULL), TOME_INVALID);
    t = SENTINEL;
    CHECK_RC(tome_begin_at(NULL, 0, &t), TOME_INVALID);
    CHECK_RC(tome_begin_at(db, 0, NULL), TOME_INVALID);
    CHECK_RC(tome_commit(NULL), TOME_INVALID);
    CHECK_RC(tome_commit_ex(NULL, 0), TOME_INVALID);
    tome_abort(NULL);
    tome_iter_close(NULL);
    tome_free(NULL);
    CHECK_RC(tome_sync(NULL), TOME_INVALID);
    CHECK_RC(tome_merge(NULL), TOME_INVALID);
    CHECK_RC(tome_stats_get(NULL, &st), TOME_INVALID);
    CHECK_RC(tome_stats_get(db, NULL), TOME_INVALID);
    CHECK_RC(tome_last_seq(NULL, &u), TOME_INVALID);
    CHECK_RC(tome_last_seq(db, NULL), TOME_INVALID);
    CHECK_RC(tome_close(NULL), TOME_OK);
    CHECK_RC(tome_check(NULL, NULL), TOME_INVALID);
    CHECK(tome_errmsg(NULL) != NULL);
    CHECK(tome_errmsg(db) != NULL);

    /* transaction calls with a NULL transaction */
    CHECK_RC(tome_get(NULL, 1, "k", 1, &v, &vl), TOME_INVALID);
    CHECK_RC(tome_get_unremoved(NULL, 1, "k", 1, &v, &vl), TOME_INVALID);
    CHECK_RC(tome_get_version(NULL, 1, "k", 1, 1, &v, &vl), TOME_INVALID);
    CHECK_RC(tome_versions(NULL, 1, "k", 1, &vs, &n), TOME_INVALID);
    CHECK_RC(tome_last_updated(NULL, &u), TOME_INVALID);
    CHECK_RC(tome_insert(NULL, 1, "k", 1, "v", 1), TOME_INVALID);
    CHECK_RC(tome_remove(NULL, 1, "k", 1), TOME_INVALID);
    CHECK_RC(tome_iter_open(NULL, 1, NULL, 0, &it), TOME_INVALID);
    CHECK_RC(tome_iter_next(NULL, &v, &vl), TOME_INVALID);

    /* NULL outputs, NULL data with a length: each refused, nothing staged */
    CHECK_OK(tome_begin(db, &t));
    CHECK_RC(tome_get(t, 1, "k", 1, NULL, &vl), TOME_INVALID);
    CHECK(meaningful(tome_errmsg(db)));
    CHECK_RC(tome_get(t, 1, "k", 1, &v, NULL), TOME_INVALID);
    CHECK_RC(tome_get_unremoved(t, 1, "k", 1, NULL, NULL), TOME_INVALID);
    CHECK_RC(tome_get_version(t, 1, "k", 1, 1, &v, NULL), TOME_INVALID);
    CHECK_RC(tome_versions(t, 1, "k", 1, NULL, &n), TOME_INVALID);
    CHECK_RC(tome_versions(t, 1, "k", 1, &vs, NULL), TOME_INVALID);
    CHECK_RC(tome_last_updated(t, NULL), TOME_INVALID);
    CHECK_RC(tome_get(t, 1, NULL, 3, &v, &vl), TOME_INVALID);
    CHECK_RC(tome_get_unremoved(t, 1, NULL, 3, &v, &vl), TOME_INVALID);
    CHECK_RC(tome_get_version(t, 1, NULL, 3, 1, &v, &vl), TOME_INVALID);
    CHECK_RC(tome_versions(t, 1, NULL, 3, &vs, &n), TOME_INVALID);
    CHECK_RC(tome_insert(t, 1, NULL, 3, "v", 1), TOME_INVALID);
    CHECK_RC(tome_insert(t, 1, "x", 1, NULL, 3), TOME_INVALID);
    CHECK(meaningful(tome_errmsg(db)));
    CHECK_RC(tome_remove(t, 1, NULL, 3), TOME_INVALID);
    CHECK_RC(tome_iter_open(t, 1, NULL, 3, &it), TOME_INVALID);
    CHECK_RC(tome_iter_open(t, 1, "", 0, NULL), TOME_INVALID);
    CHECK_OK(tome_iter_open(t, 1, NULL, 0, &it));
    CHECK_RC(tome_iter_next(it, NULL, &vl), TOME_INVALID);
    CHECK_RC(tome_iter_next(it, &v, NULL), TOME_INVALID);
    tome_iter_close(it);
    /* the transaction is still usable and staged nothing */
    uint64_t u2 = 0;
    CHECK_OK(tome_last_updated(t, &u2)); /* no pending writes: the newest commit's time */
    CHECK_OK(tome_insert(t, 1, "good", 4, "yes", 3));
    CHECK_OK(tome_commit(t));
    CHECK(ts_has(db, 1, "good", "yes"));
    CHECK(ts_has(db, 1, "x", NULL));
    CHECK(ts_has(db, 1, "k", "v"));
    CHECK_U64(ts_seq(db), 2);
    CHECK_OK(tome_close(db));
}

TT_TEST(wrong_values) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "a", "1"));
    tome_txn *t = SENTINEL;
    /* seq past the newest commit, and UINT64_MAX */
    CHECK_RC(tome_begin_at(db, 2, &t), TOME_INVALID);
    CHECK(t == NULL);
    CHECK(meaningful(tome_errmsg(db)));
    t = SENTINEL;
    CHECK_RC(tome_begin_at(db, UINT64_MAX, &t), TOME_INVALID);
    CHECK(t == NULL);
    /* options out of range: refused before anything is touched */
    uint64_t before = tf_dir_digest(path, "LOCK");
    int bad_sync[] = {2, -1, 1000};
    for (size_t i = 0; i < sizeof bad_sync / sizeof bad_sync[0]; i++) {
        tome_options o;
        tome_options_init(&o);
        o.sync = bad_sync[i];
        tome_db *d2 = SENTINEL;
        CHECK_RC(tome_open(path, &o, &d2), TOME_INVALID);
        CHECK(d2 == NULL);
        CHECK(meaningful(tome_errmsg(NULL)));
    }
    tome_options o;
    tome_options_init(&o);
    o.read_only = 2;
    tome_db *d2 = SENTINEL;
    CHECK_RC(tome_open(path, &o, &d2), TOME_INVALID);
    CHECK(d2 == NULL);
    tome_options_init(&o);
    o.must_exist = -1;
    CHECK_RC(tome_open(path, &o, &d2), TOME_INVALID);
    CHECK_RC(tome_open("", NULL, &d2), TOME_INVALID);
    CHECK(d2 == NULL);
    /* the handle open all along is undisturbed, and so are its files */
    CHECK_U64(tf_dir_digest(path, "LOCK"), before);
    CHECK_OK(ts_put(db, 0, "b", "2"));
    /* keys and values over the limits: refused, nothing staged */
    CHECK_OK(tome_begin(db, &t));
    static uint8_t big[TOME_MAX_KEY_LEN + 2];
    CHECK_RC(tome_insert(t, 0, big, TOME_MAX_KEY_LEN + 1, "v", 1), TOME_TOOBIG);
    CHECK(meaningful(tome_errmsg(db)));
    CHECK_RC(tome_remove(t, 0, big, TOME_MAX_KEY_LEN + 1), TOME_TOOBIG);
    CHECK_RC(tome_insert(t, 0, "k", 1, big, (size_t)TOME_MAX_VALUE_LEN + 1), TOME_TOOBIG);
    const void *v;
    size_t vl;
    CHECK_RC(tome_get(t, 0, big, TOME_MAX_KEY_LEN + 1, &v, &vl), TOME_NOTFOUND);
    CHECK_OK(tome_commit(t)); /* nothing staged: a commit without writes */
    CHECK_U64(ts_seq(db), 2);
    /* unknown codes */
    CHECK(!strcmp(tome_strerror(1), "unknown error"));
    CHECK(!strcmp(tome_strerror(-11), "unknown error"));
    CHECK(!strcmp(tome_strerror(-1000000), "unknown error"));
    CHECK_OK(tome_close(db));
    CHECK(check_passes(path));
}

/* ------------------------------------------------------------------------ */
/* The API: handles in the wrong state                                       */
/* ------------------------------------------------------------------------ */

TT_TEST(wrong_states) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "a", "1"));
    CHECK_OK(ts_put(db, 0, "b", "2"));
    /* close with a transaction and an iteration open: MISUSE, handle kept */
    tome_txn *t, *h;
    tome_iter *it;
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
    CHECK_RC(tome_close(db), TOME_MISUSE);
    CHECK(meaningful(tome_errmsg(db)));
    CHECK_RC(tome_close(db), TOME_MISUSE);
    CHECK_OK(ts_put(db, 0, "c", "3")); /* still works */
    /* an iteration past its end keeps saying NOTFOUND */
    const void *k;
    size_t kl;
    int count = 0;
    while (tome_iter_next(it, &k, &kl) == TOME_OK) count++;
    CHECK_EQ(count, 2); /* its snapshot: a and b */
    for (int i = 0; i < 3; i++) CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
    /* a historical transaction refuses writes and stays readable */
    CHECK_OK(tome_begin_at(db, 1, &h));
    CHECK_RC(tome_insert(h, 0, "z", 1, "9", 1), TOME_READONLY);
    CHECK(meaningful(tome_errmsg(db)));
    CHECK_RC(tome_remove(h, 0, "a", 1), TOME_READONLY);
    CHECK(ts_txn_has(h, 0, "a", "1"));
    CHECK(ts_txn_has(h, 0, "b", NULL));
    CHECK_OK(tome_commit(h));
    /* a second open of the open store: LOCKED, the first one unaffected */
    tome_db *d2 = SENTINEL;
    CHECK_RC(tome_open(path, NULL, &d2), TOME_LOCKED);
    CHECK(d2 == NULL);
    CHECK(meaningful(tome_errmsg(NULL)));
    tome_options ro;
    tome_options_init(&ro);
    ro.read_only = 1;
    CHECK_RC(tome_open(path, &ro, &d2), TOME_LOCKED);
    CHECK_RC(tome_check(path, NULL), TOME_LOCKED);
    tome_abort(t); /* closes the iteration too */
    CHECK_OK(ts_put(db, 0, "d", "4"));
    CHECK_OK(tome_close(db));

    /* a read-only handle refuses every write, with READONLY */
    db = ts_open(path, &ro);
    CHECK(db != NULL);
    uint64_t digest = tf_dir_digest(path, "LOCK");
    CHECK_RC(ts_put(db, 0, "e", "5"), TOME_READONLY);
    CHECK_RC(ts_del(db, 0, "a"), TOME_READONLY);
    CHECK_RC(tome_merge(db), TOME_READONLY);
    CHECK_RC(tome_kv_write(db, "p", "", "k", "v", 1), TOME_READONLY);
    CHECK(meaningful(tome_errmsg(db)));
    tome_kv_op op = {TOME_KV_WRITE, "p", "", "k", "v", 1};
    CHECK_RC(tome_kv_apply(db, &op, 1), TOME_READONLY);
    CHECK_RC(tome_kv_remove(db, "p", "", "k", false), TOME_READONLY);
    CHECK_RC(tome_kv_remove(db, "p", "", "k", true), TOME_READONLY);
    CHECK_RC(tome_kv_import_fs(db, path, NULL), TOME_READONLY);
    CHECK(ts_has(db, 0, "d", "4"));
    CHECK_OK(tome_close(db));
    CHECK_U64(tf_dir_digest(path, "LOCK"), digest);
    CHECK(check_passes(path));
}

/* A handle whose write failed refuses every later write until reopened;
 * reads keep working; after the reopen everything acknowledged is there. */
static void poisoned_handle_body(void);
TT_TEST(poisoned_handle) {
    pv_install();
    poisoned_handle_body();
    pv_remove(); /* also when a check failed */
}

static void poisoned_handle_body(void) {
    char path[TS_PATH_MAX];
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    pv_install();
    tome_db *db = ts_open(path, NULL);
    CHECK(db != NULL);
    size_t lens[8];
    for (int i = 0; i < 4; i++) CHECK_OK(b_put(db, i, lens[i] = 100 + (size_t)i));
    atomic_store(&g_pv.deny_write, 1);
    CHECK_RC(b_put(db, 4, 100), TOME_IO);
    CHECK(meaningful(tome_errmsg(db)));
    atomic_store(&g_pv.deny_write, 0); /* the condition is gone, the handle stays poisoned */
    CHECK_RC(b_put(db, 4, 100), TOME_IO);
    CHECK_RC(tome_kv_write(db, "p", "", "k", "v", 1), TOME_IO);
    CHECK(b_holds(db, 4, lens));
    tome_close(db); /* may say IO: its last commit failed */
    pv_remove();
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(b_holds(db, 4, lens));
    CHECK_OK(b_put(db, 4, lens[4] = 7));
    CHECK(b_holds(db, 5, lens));
    CHECK_OK(tome_close(db));
    CHECK(check_passes(path));
}

/* ------------------------------------------------------------------------ */
/* The namespaced store                                                      */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_bad_names_and_arguments) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(tome_kv_write(db, "p", "s", "good", "v", 1));
    char n120[121], n121[122];
    memset(n120, 'x', 120);
    n120[120] = 0;
    memset(n121, 'x', 121);
    n121[121] = 0;
    CHECK_OK(tome_kv_write(db, n120, n120, n120, "long", 4)); /* 120 is allowed */
    uint64_t seq = ts_seq(db);
    static const char *const bad[][3] = {
        {"", "s", "k"},      {"p", "", ""},    {"p/q", "", "k"}, {"p", "s/t", "k"}, {"p", "", "a/b"},
        {"p", "", "a b"},    {"p", "", "a.b"}, {"p", "", "\x80"}, {"p", "", "k\n"}, {"\xff", "", "k"},
        {"p", "", "%41"},    {NULL, "", "k"},  {"p", NULL, "k"}, {"p", "", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = bad[i][0], *s = bad[i][1], *k = bad[i][2];
        void *buf = SENTINEL;
        size_t len = 99;
        CHECK_RC(tome_kv_write(db, p, s, k, "v", 1), TOME_INVALID);
        CHECK(meaningful(tome_errmsg(db)));
        CHECK_RC(tome_kv_read(db, p, s, k, &buf, &len), TOME_INVALID);
        CHECK(buf == NULL);
        CHECK_EQ(len, 0);
        CHECK_RC(tome_kv_remove(db, p, s, k, false), TOME_INVALID);
        char kb[TOME_KV_KEY_MAX];
        size_t kbl;
        CHECK_RC(tome_kv_key_bytes(p, s, k, kb, sizeof kb, &kbl), TOME_INVALID);
        if (k && *k && (!p || !s || (!*p && *s) || strchr(p, '/') || strchr(s, '/'))) {
            char **keys = SENTINEL;
            size_t n = 9;
            CHECK_RC(tome_kv_list(db, p, s, &keys, &n), TOME_INVALID);
        }
    }
    const char *const too_long[][3] = {{n121, "", "k"}, {"p", n121, "k"}, {"p", "", n121}};
    for (size_t i = 0; i < 3; i++) {
        CHECK_RC(tome_kv_write(db, too_long[i][0], too_long[i][1], too_long[i][2], "v", 1), TOME_INVALID);
        void *buf;
        size_t len;
        CHECK_RC(tome_kv_read(db, too_long[i][0], too_long[i][1], too_long[i][2], &buf, &len), TOME_INVALID);
    }
    /* NULL handle, outputs and buffers */
    void *buf;
    size_t len;
    char **keys;
    size_t n;
    char *tok;
    tome_kv_key *all;
    CHECK_RC(tome_kv_write(NULL, "p", "", "k", "v", 1), TOME_INVALID);
    CHECK_RC(tome_kv_write(db, "p", "", "k", NULL, 3), TOME_INVALID);
    CHECK_RC(tome_kv_read(NULL, "p", "s", "good", &buf, &len), TOME_INVALID);
    CHECK_RC(tome_kv_read(db, "p", "s", "good", NULL, &len), TOME_INVALID);
    CHECK_RC(tome_kv_read(db, "p", "s", "good", &buf, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_remove(NULL, "p", "s", "good", false), TOME_INVALID);
    CHECK_RC(tome_kv_list(NULL, "p", "s", &keys, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list(db, "p", "s", NULL, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list(db, "p", "s", &keys, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_list_all(NULL, &all, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list_all(db, NULL, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list_page(db, "p", "s", NULL, 0, &keys, &n, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_apply(NULL, NULL, 0), TOME_INVALID);
    CHECK_RC(tome_kv_apply(db, NULL, 2), TOME_INVALID);
    CHECK_OK(tome_kv_apply(db, NULL, 0));
    /* page tokens tome_kv_list_page did not make */
    static const char *const toks[] = {"", "zz", "00", "0123456789abcdef", "not a token", "ffffffffffffffffffffffff"};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        keys = SENTINEL;
        tok = SENTINEL;
        int rc = tome_kv_list_page(db, "p", "s", toks[i], 0, &keys, &n, &tok);
        if (rc == TOME_OK) {
            tome_free(keys);
            tome_free(tok);
            TT_FAIL_("page token \"%s\" accepted", toks[i]);
        }
        CHECK_RC(rc, TOME_INVALID);
    }
    /* key bytes: a buffer too small */
    char kb[8];
    size_t kbl;
    CHECK_RC(tome_kv_key_bytes("p", "s", "good", kb, 3, &kbl), TOME_TOOBIG);
    CHECK_RC(tome_kv_key_bytes("p", "s", "good", NULL, 0, &kbl), TOME_TOOBIG);
    CHECK_RC(tome_kv_key_bytes("p", "s", "good", kb, sizeof kb, NULL), TOME_INVALID);
    /* apply: one bad operation among good ones writes none of them */
    tome_kv_op ops[3] = {
        {TOME_KV_WRITE, "p", "s", "new1", "a", 1},
        {TOME_KV_REMOVE, "p", "s", "good", NULL, 0},
        {TOME_KV_WRITE, "p", "s", "bad/name", "c", 1},
    };
    CHECK_RC(tome_kv_apply(db, ops, 3), TOME_INVALID);
    ops[2].key = "ok";
    ops[2].op = 99;
    CHECK_RC(tome_kv_apply(db, ops, 3), TOME_INVALID);
    ops[2].op = TOME_KV_WRITE;
    ops[2].buf = NULL;
    ops[2].len = 5;
    CHECK_RC(tome_kv_apply(db, ops, 3), TOME_INVALID);
    /* file-system import and export with wrong paths and flags */
    char missing[TS_PATH_MAX + 16], file[TS_PATH_MAX + 16];
    snprintf(missing, sizeof missing, "%s/missing", tt_tmpdir());
    snprintf(file, sizeof file, "%s/plain", tt_tmpdir());
    CHECK_EQ(tf_write_at(file, 0, "plain", 5), 0);
    CHECK_RC(tome_kv_import_fs(db, missing, NULL), TOME_NOTFOUND);
    CHECK(tome_kv_import_fs(db, file, NULL) < 0);
    CHECK_RC(tome_kv_import_fs(NULL, missing, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_import_fs(db, NULL, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_export_fs(db, missing, 0x80, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_export_fs(db, NULL, 0, NULL), TOME_INVALID);
    CHECK(tome_kv_export_fs(db, file, 0, NULL) < 0);
    CHECK(!tf_exists(missing));
    /* none of it wrote anything */
    CHECK_U64(ts_seq(db), seq);
    CHECK_OK(tome_kv_list_all(db, &all, &n));
    CHECK_EQ(n, 2);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(all[i].key, "good") && !strcmp(all[i].primary_ns, "p") && !strcmp(all[i].secondary_ns, "s"))
            seen |= 1;
        if (!strcmp(all[i].key, n120) && !strcmp(all[i].primary_ns, n120)) seen |= 2;
    }
    tome_free(all);
    CHECK_EQ(seen, 3);
    CHECK_OK(tome_kv_read(db, "p", "s", "good", &buf, &len));
    CHECK_MEM(buf, len, "v", 1);
    tome_free(buf);
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Store paths                                                               */
/* ------------------------------------------------------------------------ */

TT_TEST(store_paths_that_cannot_be_stores) {
    const char *dir = tt_tmpdir();
    char file[TS_PATH_MAX], below[TS_PATH_MAX + 8], missing[TS_PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/plain", dir);
    snprintf(below, sizeof below, "%s/db", file);
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    CHECK_EQ(tf_write_at(file, 0, "not a store\n", 12), 0);
    uint64_t before = tf_dir_digest(dir, NULL);
    const char *paths[] = {file, below, missing, "/proc/self/tome-store"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        for (int mode = 0; mode < 3; mode++) {
            tome_options o;
            tome_options_init(&o);
            o.read_only = mode == 1;
            o.must_exist = mode == 2;
            tome_db *db = SENTINEL;
            int rc = tome_open(paths[i], &o, &db);
            if (rc == TOME_OK || rc == TOME_LOCKED || rc == TOME_CORRUPT || db != NULL) {
                fprintf(stderr, "  %s (mode %d): %s\n", paths[i], mode, tt_rcname(rc));
                if (rc == TOME_OK) tome_close(db);
                TT_FAIL_("a path that cannot be a store");
            }
            /* NOTFOUND only for a missing store the options will not create */
            if (rc == TOME_NOTFOUND) CHECK(mode != 0 && (i == 2 || i == 3));
            else CHECK_RC(rc, TOME_IO);
            CHECK(meaningful(tome_errmsg(NULL)));
        }
        char *report = SENTINEL;
        int rc = tome_check(paths[i], &report);
        CHECK(rc == TOME_IO || rc == TOME_NOTFOUND);
        tome_free(report == SENTINEL ? NULL : report);
    }
    /* a path longer than the system takes */
    static char longp[6000];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    tome_db *db = SENTINEL;
    CHECK_RC(tome_open(longp, NULL, &db), TOME_IO);
    CHECK(db == NULL);
    /* nothing was created or changed */
    CHECK_U64(tf_dir_digest(dir, NULL), before);
    CHECK(!tf_exists(missing));
}

/* Names the store uses, held by directories instead of files: each open
 * fails with a clear error or works without losing anything. */
TT_TEST(store_files_that_are_directories) {
    const char *names[] = {"LOCK", "0000000000000001.log", "0000000000000002.log", "INDEX"};
    for (size_t i = 0; i < 4; i++) {
        char path[TS_PATH_MAX], sub[TS_PATH_MAX + 32];
        tome_db *db = ts_new(TS_DIR, path, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "a", "1"));
        CHECK_OK(tome_close(db));
        snprintf(sub, sizeof sub, "%s/%s", path, names[i]);
        tt_rmtree(sub);
        CHECK_EQ(mkdir(sub, 0755), 0);
        int rc = tome_open(path, NULL, &db);
        if (i == 0 || i == 1) {
            CHECK_RC(rc, TOME_IO); /* LOCK, or the segment holding the data */
            CHECK(meaningful(tome_errmsg(NULL)));
        } else if (i == 2) {
            /* a segment past the data: the open may refuse it or ignore it */
            CHECK(rc == TOME_IO || rc == TOME_CORRUPT || rc == TOME_OK);
            if (rc == TOME_OK) {
                CHECK(ts_has(db, 0, "a", "1"));
                tome_close(db);
            }
        } else {
            /* INDEX is only a cache: the store opens and reads */
            CHECK_OK(rc);
            if (rc == TOME_OK) {
                CHECK(ts_has(db, 0, "a", "1"));
                CHECK_OK(ts_put(db, 0, "b", "2"));
                rc = tome_close(db); /* writing INDEX fails */
                CHECK(rc == TOME_OK || rc == TOME_IO);
            }
        }
        /* the directory gone again, the data is all there */
        tt_rmtree(sub);
        if (i == 1) continue; /* its data went with it */
        db = ts_open(path, NULL);
        CHECK(db != NULL);
        CHECK(ts_has(db, 0, "a", "1"));
        if (i == 3) CHECK(ts_has(db, 0, "b", "2"));
        CHECK_OK(tome_close(db));
        CHECK(check_passes(path));
    }
}

/* must_exist and read_only do not turn an existing directory that holds no
 * store into one: tome_open says TOME_NOTFOUND and writes nothing (a
 * mount point whose file system is not mounted is such a directory). */
TT_TEST(empty_directory_is_no_store) {
    const char *dir = tt_tmpdir();
    tome_options o;
    tome_options_init(&o);
    o.must_exist = 1;
    tome_db *db = SENTINEL;
    int rc = tome_open(dir, &o, &db);
    if (rc == TOME_OK) tome_close(db);
    CHECK_EQ(tf_count_suffix(dir, ".log"), 0);
    CHECK(!ts_file_exists(dir, "LOCK"));
    CHECK_RC(rc, TOME_NOTFOUND);
    tome_options_init(&o);
    o.read_only = 1;
    rc = tome_open(dir, &o, &db);
    if (rc == TOME_OK) tome_close(db);
    CHECK_RC(rc, TOME_NOTFOUND);
    char *report = NULL;
    CHECK_RC(tome_check(dir, &report), TOME_NOTFOUND);
    tome_free(report);
}

/* ------------------------------------------------------------------------ */
/* Unreadable and read-only directories                                      */
/* ------------------------------------------------------------------------ */

static void unreadable_directory_simulated_body(void);
TT_TEST(unreadable_directory_simulated) {
    pv_install();
    unreadable_directory_simulated_body();
    pv_remove(); /* also when a check failed */
}

static void unreadable_directory_simulated_body(void) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    size_t lens[3];
    for (int i = 0; i < 3; i++) CHECK_OK(b_put(db, i, lens[i] = 50 + (size_t)i));
    CHECK_OK(tome_close(db));
    uint64_t digest = tf_dir_digest(path, "LOCK");
    pv_install();
    atomic_store(&g_pv.deny_read, 1);
    for (int mode = 0; mode < 3; mode++) {
        tome_options o;
        tome_options_init(&o);
        o.read_only = mode == 1;
        o.must_exist = mode == 2;
        db = SENTINEL;
        CHECK_RC(tome_open(path, &o, &db), TOME_IO);
        CHECK(db == NULL);
        CHECK(strstr(tome_errmsg(NULL), "ermission") != NULL); /* "Permission denied" */
    }
    char *report = NULL;
    CHECK_RC(tome_check(path, &report), TOME_IO);
    tome_free(report);
    CHECK(atomic_load(&g_pv.refused) > 0);
    pv_remove();
    CHECK_U64(tf_dir_digest(path, "LOCK"), digest);
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(b_holds(db, 3, lens));
    CHECK_OK(tome_close(db));
}

static void read_only_directory_simulated_body(void);
TT_TEST(read_only_directory_simulated) {
    pv_install();
    read_only_directory_simulated_body();
    pv_remove(); /* also when a check failed */
}

static void read_only_directory_simulated_body(void) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    size_t lens[6];
    for (int i = 0; i < 3; i++) CHECK_OK(b_put(db, i, lens[i] = 200 + (size_t)i));
    CHECK_OK(tome_close(db));
    uint64_t digest = tf_dir_digest(path, "LOCK");
    pv_install();
    atomic_store(&g_pv.deny_write, 1);
    /* read-write: refused, with the reason */
    db = SENTINEL;
    CHECK_RC(tome_open(path, NULL, &db), TOME_IO);
    CHECK(db == NULL);
    CHECK(strstr(tome_errmsg(NULL), "ead-only") != NULL); /* "Read-only file system" */
    /* read-only: every key readable */
    tome_options ro;
    tome_options_init(&ro);
    ro.read_only = 1;
    db = ts_open(path, &ro);
    CHECK(db != NULL);
    CHECK(b_holds(db, 3, lens));
    CHECK_OK(tome_close(db));
    char *report = NULL;
    CHECK_RC(tome_check(path, &report), TOME_OK);
    tome_free(report);
    CHECK_U64(tf_dir_digest(path, "LOCK"), digest);
    /* the directory turns read-only while the store is open */
    atomic_store(&g_pv.deny_write, 0);
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK_OK(b_put(db, 3, lens[3] = 300));
    atomic_store(&g_pv.deny_write, 1);
    CHECK_RC(b_put(db, 4, 300), TOME_IO);
    CHECK(meaningful(tome_errmsg(db)));
    CHECK_RC(tome_merge(db), TOME_IO);
    CHECK(b_holds(db, 4, lens));
    int rc = tome_close(db);
    CHECK(rc == TOME_OK || rc == TOME_IO);
    atomic_store(&g_pv.deny_write, 0);
    pv_remove();
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(b_holds(db, 4, lens)); /* the refused commit is not there */
    CHECK_OK(b_put(db, 4, lens[4] = 1));
    CHECK(b_holds(db, 5, lens));
    CHECK_OK(tome_close(db));
    CHECK(check_passes(path));
}

/* Sets or clears FS_IMMUTABLE_FL on path; 0, or -errno. */
static int set_immutable(const char *path, int on) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    int flags = 0, rc = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) rc = -errno;
    else {
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) rc = -errno;
    }
    close(fd);
    return rc;
}

/* The store directory and every file in it, immutable or not. */
static int set_store_immutable(const char *path, int on) {
    static const char *const names[] = {"", "/LOCK", "/INDEX", "/0000000000000001.log"};
    int first = 0;
    for (size_t i = 0; i < 4; i++) {
        char p[TS_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s%s", path, names[i]);
        if (i && !tf_exists(p)) continue;
        int rc = set_immutable(p, on);
        if (rc && !first) first = rc;
    }
    return first;
}

/* A really read-only store directory: immutable for root, mode 0555 (and
 * files 0444) for anyone else. The checks run in a child (exit code =
 * the number of the failed check), so that the parent always restores the
 * directory. */
TT_TEST(read_only_directory_real) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    size_t lens[3];
    for (int i = 0; i < 3; i++) CHECK_OK(b_put(db, i, lens[i] = 64 + (size_t)i));
    CHECK_OK(tome_close(db));
    int root = geteuid() == 0;
    if (root) {
        int rc = set_store_immutable(path, 1);
        if (rc) {
            set_store_immutable(path, 0);
            printf("     skipped: the file system does not take the immutable attribute (%s)\n", strerror(-rc));
            return;
        }
    } else {
        CHECK_EQ(chmod(path, 0555), 0);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        tome_db *d = NULL;
        if (tome_open(path, NULL, &d) != TOME_IO) _exit(10);
        if (!meaningful(tome_errmsg(NULL))) _exit(11);
        fprintf(stderr, "  (read-write open: %s)\n", tome_errmsg(NULL));
        tome_options ro;
        tome_options_init(&ro);
        ro.read_only = 1;
        if (tome_open(path, &ro, &d) != TOME_OK) _exit(12);
        if (!b_holds(d, 3, lens)) _exit(13);
        if (ts_put(d, B_SLOT, "x", "y") != TOME_READONLY) _exit(14);
        tome_close(d);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (root) CHECK_EQ(set_store_immutable(path, 0), 0);
    else CHECK_EQ(chmod(path, 0755), 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        TT_FAIL_("the child's check %d failed (status 0x%x)", WIFEXITED(st) ? WEXITSTATUS(st) : -1, st);
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(b_holds(db, 3, lens));
    CHECK_OK(tome_close(db));
    printf("     %s\n", root ? "immutable directory (root)" : "mode 0555");
}

/* Unreadable for real: only without root (root reads mode 000 anyway). */
TT_TEST(unreadable_directory_real) {
    if (geteuid() == 0) {
        printf("     skipped: root reads a mode-000 directory (unreadable_directory_simulated covers it)\n");
        return;
    }
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "a", "1"));
    CHECK_OK(tome_close(db));
    CHECK_EQ(chmod(path, 0), 0);
    db = SENTINEL;
    int rc = tome_open(path, NULL, &db);
    chmod(path, 0755);
    CHECK_RC(rc, TOME_IO);
    CHECK(db == NULL);
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(ts_has(db, 0, "a", "1"));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* A full disk                                                               */
/* ------------------------------------------------------------------------ */

/* Commits values until the budget runs out: the failing commit says IO,
 * the handle refuses writes, reads work; the store opens on the full disk
 * and after space is freed, with exactly the acknowledged commits. */
static void full_disk_simulated_body(void);
TT_TEST(full_disk_simulated) {
    pv_install();
    full_disk_simulated_body();
    pv_remove(); /* also when a check failed */
}

static void full_disk_simulated_body(void) {
    for (int variant = 0; variant < 2; variant++) {
        char path[TS_PATH_MAX];
        snprintf(path, sizeof path, "%s/db", tt_tmpdir());
        pv_install();
        atomic_store(&g_pv.space, variant ? 500 * 1024 : 300 * 1024);
        tome_options o;
        tome_options_init(&o);
        o.segment_size = 64 * 1024;
        o.sync = variant ? TOME_SYNC_NONE : TOME_SYNC_FULL;
        tome_db *db = ts_open(path, &o);
        CHECK(db != NULL);
        size_t lens[200];
        int n = 0, rc = 0;
        while (n < 200) {
            /* variant 1 also writes values larger than a segment */
            size_t len = variant && n % 5 == 4 ? 70 * 1024 : 3000 + (size_t)n * 13;
            rc = b_put(db, n, len);
            if (rc) break;
            lens[n++] = len;
        }
        CHECK_RC(rc, TOME_IO);
        CHECK(meaningful(tome_errmsg(db)));
        CHECK(n > 5);
        CHECK_RC(b_put(db, n, 10), TOME_IO);
        CHECK(b_holds(db, n, lens));
        tome_close(db); /* may fail: INDEX cannot be written */
        /* still full: opens, everything acknowledged is there */
        db = ts_open(path, &o);
        CHECK(db != NULL);
        CHECK(b_holds(db, n, lens));
        tome_close(db);
        /* space again */
        atomic_store(&g_pv.space, -1);
        db = ts_open(path, &o);
        CHECK(db != NULL);
        CHECK(b_holds(db, n, lens));
        CHECK_OK(b_put(db, n, lens[n] = 100));
        n++;
        CHECK_OK(tome_merge(db));
        CHECK(b_holds(db, n, lens));
        CHECK_OK(tome_close(db));
        pv_remove();
        CHECK(check_passes(path));
        printf("     variant %d: %d commits before the disk was full\n", variant, n - 1);
    }
}

/* A tool run for the full-disk child: exit status and stderr's first line. */
static int run_tool(const char *const *args, char *err, size_t cap) {
    char self[900], tool[1024];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return -1;
    self[k] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(tool, sizeof tool, "%s/../tome", self);
    int pe[2];
    if (pipe(pe)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[16];
        int a = 0;
        argv[a++] = tool;
        while (args[a - 1] && a < 15) {
            argv[a] = (char *)(uintptr_t)args[a - 1];
            a++;
        }
        argv[a] = NULL;
        dup2(pe[1], 2);
        close(pe[0]);
        close(pe[1]);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execv(tool, argv);
        _exit(127);
    }
    close(pe[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(pe[0], err + got, cap - 1 - got)) > 0) got += (size_t)r;
    err[got] = 0;
    close(pe[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The child of full_disk_real, in its own mount namespace. Returns 0, 77
 * (cannot mount: skip) or the number of the failed check. */
static int full_disk_child(const char *mnt) {
    if (unshare(CLONE_NEWNS) != 0) return 77;
    /* (source and type are ignored for a propagation change; not NULL for valgrind) */
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) return 77;
    if (mount("tome-test", mnt, "tmpfs", 0, "size=1m") != 0) return 77;
    char path[TS_PATH_MAX + 8], filler[TS_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/db", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    static uint8_t fill[256 * 1024];
    memset(fill, 1, sizeof fill);
    if (tf_write_at(filler, 0, fill, sizeof fill)) return 9;
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 64 * 1024;
    tome_db *db;
    int orc = tome_open(path, &o, &db);
    if (orc) {
        fprintf(stderr, "  tome_open on the tmpfs: %s (%s)\n", tt_rcname(orc), tome_errmsg(NULL));
        return 10;
    }
    size_t lens[500];
    int n = 0, rc = 0;
    while (n < 400 && (rc = b_put(db, n, 6000)) == 0) lens[n++] = 6000;
    if (rc != TOME_IO) return 11;
    fprintf(stderr, "  (full after %d commits: %s)\n", n, tome_errmsg(db));
    if (!meaningful(tome_errmsg(db))) return 12;
    if (b_put(db, n, 10) != TOME_IO) return 13;
    if (!b_holds(db, n, lens)) return 14;
    tome_close(db);
    /* the tool on the full disk: a small put may still fit in the newest
     * segment (then it is durable and the tool says so: exit 0, and the
     * value reads back), or fails with exit 3 and one clear line */
    char err[2048];
    const char *put[] = {path, "--slot", "4", "put", "tool-key", "tool-value", NULL};
    int code = run_tool(put, err, sizeof err);
    fprintf(stderr, "  (tool: exit %d: %s)\n", code, err);
    if (code == 0) {
        tome_options ro;
        tome_options_init(&ro);
        ro.read_only = 1;
        tome_db *rdb;
        if (tome_open(path, &ro, &rdb)) return 15;
        tome_txn *t;
        const void *v = NULL;
        size_t vl = 0;
        int grc = tome_begin(rdb, &t);
        if (!grc) grc = tome_get(t, 4, "tool-key", 8, &v, &vl);
        int same = !grc && vl == 10 && !memcmp(v, "tool-value", 10);
        if (!grc) tome_abort(t);
        tome_close(rdb);
        if (!same) return 15;
    } else if (code != 3 || strncmp(err, "tome: ", 6) != 0) {
        return 15;
    }
    /* reading needs no space: a read-only open writes nothing */
    const char *get[] = {"--readonly", path, "--slot", "3", "get", "k00000", NULL};
    code = run_tool(get, err, sizeof err);
    if (code != 0) {
        fprintf(stderr, "  tool get on the full disk: exit %d: %s\n", code, err);
        return 16;
    }
    /* reopen on the full disk */
    if (tome_open(path, &o, &db)) return 17;
    if (!b_holds(db, n, lens)) return 18;
    tome_close(db);
    if (!check_passes(path)) return 19;
    /* space freed: commits go on, across new segments */
    if (unlink(filler)) return 20;
    if (tome_open(path, &o, &db)) return 21;
    for (int i = 0; i < 30; i++, n++)
        if (b_put(db, n, lens[n] = 6000)) return 22;
    if (!b_holds(db, n, lens)) return 23;
    if (tome_close(db)) return 24;
    if (!check_passes(path)) return 25;
    return 0;
}

TT_TEST(full_disk_real) {
    char mnt[TS_PATH_MAX];
    snprintf(mnt, sizeof mnt, "%s", tt_tmpdir());
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(full_disk_child(mnt));
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st));
    int code = WEXITSTATUS(st);
    if (code == 77) {
        printf("     skipped: no permission to mount a tmpfs (full_disk_simulated covers it)\n");
        return;
    }
    if (code) TT_FAIL_("check %d of the full-disk child failed", code);
    printf("     a 1 MiB tmpfs\n");
}

/* ------------------------------------------------------------------------ */
/* The tool                                                                  */
/* ------------------------------------------------------------------------ */

/* The tool on paths that are no store and on bad arguments: the exit code
 * says what kind of failure, one "tome: " line says what, and the store
 * is not touched. */
TT_TEST(tool_bad_paths_and_arguments) {
    char path[TS_PATH_MAX], file[TS_PATH_MAX + 16], below[TS_PATH_MAX + 32];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "k", "v"));
    CHECK_OK(tome_close(db));
    snprintf(file, sizeof file, "%s/../plain", path);
    snprintf(below, sizeof below, "%s/db", file);
    CHECK_EQ(tf_write_at(file, 0, "plain\n", 6), 0);
    uint64_t digest = tf_dir_digest(path, "LOCK");
    struct {
        int code;
        const char *args[8];
    } cases[] = {
        {3, {file, "put", "a", "b", NULL}},
        {3, {file, "get", "a", NULL}},
        {3, {file, "check", NULL}},
        {3, {below, "put", "a", "b", NULL}},
        {1, {path, "get", "missing", NULL}},
        {2, {path, "get", "--seq", "-1", "k", NULL}},
        {2, {path, "--slot", "256", "get", "k", NULL}},
        {2, {path, "--slot", "-1", "get", "k", NULL}},
        {2, {path, "--hex", "get", "zz", NULL}},
        {2, {path, "put", NULL}},
        {2, {path, "nonsense", NULL}},
        {2, {path, "kv", "nonsense", NULL}},
        {3, {path, "get", "--seq", "99", "k", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[2048];
        int code = run_tool(cases[i].args, err, sizeof err);
        int lines = 0;
        for (char *p = err; *p; p++) lines += *p == '\n';
        if (code != cases[i].code || strncmp(err, "tome: ", 6) != 0 || lines != 1)
            TT_FAIL_("case %zu (%s %s): exit %d (want %d), stderr: %s", i, cases[i].args[1],
                     cases[i].args[2] ? cases[i].args[2] : "", code, cases[i].code, err);
    }
    CHECK_U64(tf_dir_digest(path, "LOCK"), digest);
    char buf[16];
    FILE *f = fopen(file, "r");
    CHECK(f != NULL);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK_MEM(buf, n, "plain\n", 6);
    CHECK(!tf_exists(below));
}

TT_MAIN()
