/*
 * test_os.c -- tests of src/os: the allocator and its hooks, and both vfs
 * implementations (POSIX and in-memory) through one table of tests run on
 * each: write and read back, pwritev with many iovecs, sizes, truncate,
 * allocate, rename replacing a file, unlink while open, list, stat, mkdir,
 * the lock (two opens of one file in one process conflict until the holder
 * closes), sync. Then tests of one vfs only: memvfs path rules, directory
 * rename, concurrency, out of memory at every allocation; POSIX close-on-
 * exec and the lock against another process.
 */
#include "tt.h"

#include "os/os.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static uint64_t rng_state = 0xDEADBEEFCAFEF00Du;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}
static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* dir/name in one of 8 rotating buffers. */
static const char *P(const char *dir, const char *name) {
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", dir, name);
    return b;
}

/* ---- allocation hooks ---- */

static long fail_at = -1; /* the allocation number that fails; -1: none */
static long alloc_count;
static void *f_malloc(size_t n) { return alloc_count++ == fail_at ? NULL : malloc(n); }
static void *f_realloc(void *p, size_t n) { return alloc_count++ == fail_at ? NULL : realloc(p, n); }
static void f_free(void *p) { free(p); }
static const tome_alloc_hooks failing_hooks = {f_malloc, f_realloc, f_free};

static void hooks_on(long n) {
    alloc_count = 0;
    fail_at = n;
    tome_alloc_set_hooks(&failing_hooks);
}
static void hooks_off(void) {
    tome_alloc_set_hooks(NULL);
    fail_at = -1;
}

TT_TEST(alloc_hooks_fail_nth) {
    void *p[5];
    hooks_on(2);
    for (int i = 0; i < 5; i++) p[i] = tome_malloc(16);
    long count = alloc_count;
    hooks_off();
    CHECK_EQ(count, 5);
    for (int i = 0; i < 5; i++) {
        if (i == 2) CHECK(p[i] == NULL);
        else CHECK(p[i] != NULL);
        tome_free(p[i]);
    }
    /* realloc and calloc go through the hooks too. */
    void *q = tome_malloc(8);
    CHECK(q != NULL);
    hooks_on(0);
    void *r0 = tome_realloc(q, 100); /* fails: q stays valid */
    void *c0 = tome_calloc(4, 4);
    count = alloc_count;
    hooks_off();
    CHECK(r0 == NULL);
    CHECK(c0 != NULL);
    tome_free(c0);
    CHECK_EQ(count, 2);
    tome_free(q);
    /* Restored: the counter does not move any more. */
    void *r = tome_malloc(32);
    CHECK(r != NULL);
    CHECK_EQ(alloc_count, 2);
    tome_free(r);
}

TT_TEST(alloc_edge_cases) {
    void *a = tome_malloc(0), *b = tome_malloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    void *c = tome_realloc(a, 0);
    CHECK(c != NULL);
    tome_free(c);
    tome_free(b);
    tome_free(NULL);
    CHECK(tome_calloc(SIZE_MAX, 2) == NULL);
    CHECK(tome_calloc((SIZE_MAX >> 1) + 2, 2) == NULL);
    unsigned char *z = tome_calloc(100, 10);
    CHECK(z != NULL);
    CHECK(all_zero(z, 1000));
    tome_free(z);
    void *z0 = tome_calloc(0, 8);
    CHECK(z0 != NULL);
    tome_free(z0);
    char *s = tome_strndup("hello world", 5);
    CHECK(s != NULL && strcmp(s, "hello") == 0);
    tome_free(s);
    s = tome_strndup(NULL, 0);
    CHECK(s != NULL && s[0] == '\0');
    tome_free(s);
    s = tome_strndup("a\0b", 3); /* len bytes, embedded NUL kept */
    CHECK(s != NULL && s[0] == 'a' && s[1] == '\0' && s[2] == 'b' && s[3] == '\0');
    tome_free(s);
    CHECK(tome_strndup("x", SIZE_MAX) == NULL);
    uint8_t *g = tome_realloc(NULL, 10);
    CHECK(g != NULL);
    memset(g, 0xAB, 10);
    g = tome_realloc(g, 100000);
    CHECK(g != NULL && g[9] == 0xAB);
    tome_free(g);
}

/* ---- one table of tests for both vfs ---- */

typedef void (*vfs_case)(tome_vfs *vfs, const char *dir);

static void run_posix(vfs_case fn) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    fn(tome_vfs_posix(), dir);
}

static void run_mem(vfs_case fn) {
    tome_vfs *vfs = tome_vfs_mem_new();
    if (vfs == NULL) TT_FAIL_("tome_vfs_mem_new failed");
    if (vfs->mkdir(vfs, "/store") != 0) TT_FAIL_("mkdir /store failed");
    fn(vfs, "/store");
    vfs->destroy(vfs);
}

#define VFS_TEST(name)                                                \
    static void vt_##name(tome_vfs *vfs, const char *dir);            \
    TT_TEST(posix_##name) { run_posix(vt_##name); }                   \
    TT_TEST(mem_##name) { run_mem(vt_##name); }                       \
    static void vt_##name(tome_vfs *vfs, const char *dir)

static int write_file(tome_vfs *vfs, const char *path, const void *data, size_t n) {
    tome_file *f;
    int rc = vfs->open(vfs, path, TOME_VFS_WRITE | TOME_VFS_CREATE, &f);
    if (rc) return rc;
    struct iovec iov = {(void *)(uintptr_t)data, n};
    rc = vfs->pwritev(f, &iov, 1, 0);
    int rc2 = vfs->close(f);
    return rc ? rc : rc2;
}

static uint64_t fsize(tome_vfs *vfs, tome_file *f) {
    uint64_t sz = UINT64_MAX;
    if (vfs->size(f, &sz) != 0) return UINT64_MAX;
    return sz;
}

VFS_TEST(write_read_back) {
    enum { N = 10000 };
    static uint8_t data[N], back[N];
    fill_random(data, N);
    tome_file *f = NULL;
    CHECK_EQ(vfs->open(vfs, P(dir, "a"), TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    CHECK(f != NULL);
    CHECK_U64(fsize(vfs, f), 0);
    CHECK_EQ(vfs->pread(f, back, 10, 0), 0);
    struct iovec iov = {data, N};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 0), 0);
    CHECK_U64(fsize(vfs, f), N);
    CHECK_EQ(vfs->pread(f, back, N, 0), N);
    CHECK(memcmp(back, data, N) == 0);
    CHECK_EQ(vfs->pread(f, back, 100, N - 50), 50);
    CHECK(memcmp(back, data + N - 50, 50) == 0);
    CHECK_EQ(vfs->pread(f, back, 100, N), 0);
    CHECK_EQ(vfs->pread(f, back, 100, 3 * N), 0);
    CHECK_EQ(vfs->pread(f, back, 0, 5), 0);
    /* Overwrite in the middle: the size stays. */
    struct iovec x = {(void *)(uintptr_t)"XYZ", 3};
    CHECK_EQ(vfs->pwritev(f, &x, 1, 5000), 0);
    memcpy(data + 5000, "XYZ", 3);
    CHECK_U64(fsize(vfs, f), N);
    CHECK_EQ(vfs->close(f), 0);
    /* Reopen read-only: same bytes; writing is refused. */
    CHECK_EQ(vfs->open(vfs, P(dir, "a"), TOME_VFS_READ, &f), 0);
    memset(back, 0, N);
    CHECK_EQ(vfs->pread(f, back, N, 0), N);
    CHECK(memcmp(back, data, N) == 0);
    CHECK(vfs->pwritev(f, &x, 1, 0) < 0);
    CHECK(vfs->truncate(f, 0) < 0);
    CHECK_U64(fsize(vfs, f), N);
    CHECK_EQ(vfs->close(f), 0);
    /* Reopen for writing without CREATE: the content is kept. */
    CHECK_EQ(vfs->open(vfs, P(dir, "a"), TOME_VFS_WRITE, &f), 0);
    CHECK_U64(fsize(vfs, f), N);
    CHECK_EQ(vfs->close(f), 0);
}

VFS_TEST(pwritev_many_iovecs) {
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, P(dir, "v"), TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    struct iovec three[4] = {{(void *)(uintptr_t)"abc", 3}, {NULL, 0}, {(void *)(uintptr_t)"defgh", 5}, {NULL, 0}};
    CHECK_EQ(vfs->pwritev(f, three, 4, 0), 0);
    char small[16];
    CHECK_EQ(vfs->pread(f, small, sizeof small, 0), 8);
    CHECK_MEM(small, 8, "abcdefgh", 8);
    /* Nothing to write: nothing changes. */
    CHECK_EQ(vfs->pwritev(f, three, 0, 100), 0);
    CHECK_EQ(vfs->pwritev(f, &three[1], 1, 100), 0);
    CHECK_U64(fsize(vfs, f), 8);
    /* Past the end: the gap reads as zeros. */
    CHECK_EQ(vfs->pwritev(f, three, 1, 100), 0);
    CHECK_U64(fsize(vfs, f), 103);
    uint8_t gap[103];
    CHECK_EQ(vfs->pread(f, gap, sizeof gap, 0), 103);
    CHECK(all_zero(gap + 8, 92));
    CHECK_MEM(gap + 100, 3, "abc", 3);
    /* 2000 iovecs (more than IOV_MAX) of random lengths, some empty. */
    enum { NV = 2000 };
    static struct iovec iov[NV];
    static uint8_t src[NV * 600], back[NV * 600];
    fill_random(src, sizeof src);
    size_t total = 0;
    for (int i = 0; i < NV; i++) {
        size_t l = (i % 7 == 3) ? 0 : (size_t)(rnd() % 600);
        iov[i].iov_base = src + total;
        iov[i].iov_len = l;
        total += l;
    }
    CHECK_EQ(vfs->pwritev(f, iov, NV, 1000), 0);
    CHECK_U64(fsize(vfs, f), 1000 + total);
    CHECK_EQ(vfs->pread(f, back, total, 1000), (long long)total);
    CHECK(memcmp(back, src, total) == 0);
    CHECK_EQ(vfs->pread(f, small, 3, 100), 3);
    CHECK_MEM(small, 3, "abc", 3);
    CHECK(vfs->pwritev(f, NULL, 1, 0) < 0);
    CHECK(vfs->pwritev(f, iov, -1, 0) < 0);
    CHECK_EQ(vfs->close(f), 0);
}

VFS_TEST(truncate_shrinks_and_grows) {
    static uint8_t data[5000], back[5000];
    fill_random(data, sizeof data);
    CHECK_EQ(write_file(vfs, P(dir, "t"), data, sizeof data), 0);
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, P(dir, "t"), TOME_VFS_WRITE, &f), 0);
    CHECK_U64(fsize(vfs, f), 5000);
    CHECK_EQ(vfs->truncate(f, 1000), 0);
    CHECK_U64(fsize(vfs, f), 1000);
    CHECK_EQ(vfs->pread(f, back, sizeof back, 0), 1000);
    CHECK(memcmp(back, data, 1000) == 0);
    /* Growing again: the bytes cut off before do not come back. */
    CHECK_EQ(vfs->truncate(f, 3000), 0);
    CHECK_U64(fsize(vfs, f), 3000);
    CHECK_EQ(vfs->pread(f, back, sizeof back, 0), 3000);
    CHECK(memcmp(back, data, 1000) == 0);
    CHECK(all_zero(back + 1000, 2000));
    CHECK_EQ(vfs->truncate(f, 0), 0);
    CHECK_U64(fsize(vfs, f), 0);
    CHECK_EQ(vfs->pread(f, back, 10, 0), 0);
    struct iovec iov = {data, 10};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 20), 0);
    CHECK_EQ(vfs->pread(f, back, sizeof back, 0), 30);
    CHECK(all_zero(back, 20));
    CHECK(memcmp(back + 20, data, 10) == 0);
    CHECK_EQ(vfs->truncate(f, 30), 0); /* same size: no-op */
    CHECK_U64(fsize(vfs, f), 30);
    CHECK_EQ(vfs->close(f), 0);
}

VFS_TEST(allocate_extends_with_zeros) {
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, P(dir, "al"), TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    CHECK_EQ(vfs->allocate(f, 0, 65536), 0);
    CHECK_U64(fsize(vfs, f), 65536);
    static uint8_t back[70000];
    memset(back, 1, sizeof back);
    CHECK_EQ(vfs->pread(f, back, sizeof back, 0), 65536);
    CHECK(all_zero(back, 65536));
    struct iovec iov = {(void *)(uintptr_t)"0123456789", 10};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 0), 0);
    CHECK_EQ(vfs->allocate(f, 0, 100), 0); /* inside: size kept */
    CHECK_U64(fsize(vfs, f), 65536);
    CHECK_EQ(vfs->allocate(f, 65536, 0), 0);
    CHECK_U64(fsize(vfs, f), 65536);
    CHECK_EQ(vfs->allocate(f, 100000, 10), 0);
    CHECK_U64(fsize(vfs, f), 100010);
    CHECK_EQ(vfs->pread(f, back, 10, 0), 10);
    CHECK_MEM(back, 10, "0123456789", 10);
    memset(back, 1, sizeof back);
    CHECK_EQ(vfs->pread(f, back, 100010 - 65536, 65536), 100010 - 65536);
    CHECK(all_zero(back, 100010 - 65536));
    CHECK_EQ(vfs->close(f), 0);
}

VFS_TEST(rename_replaces) {
    CHECK_EQ(write_file(vfs, P(dir, "a"), "first", 5), 0);
    CHECK_EQ(write_file(vfs, P(dir, "b"), "second", 6), 0);
    tome_file *old;
    CHECK_EQ(vfs->open(vfs, P(dir, "b"), TOME_VFS_READ, &old), 0);
    CHECK_EQ(vfs->rename(vfs, P(dir, "a"), P(dir, "b")), 0);
    int kind = -1;
    CHECK_EQ(vfs->stat(vfs, P(dir, "a"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_NONE);
    tome_file *f;
    char buf[16];
    CHECK_EQ(vfs->open(vfs, P(dir, "b"), TOME_VFS_READ, &f), 0);
    CHECK_EQ(vfs->pread(f, buf, sizeof buf, 0), 5);
    CHECK_MEM(buf, 5, "first", 5);
    CHECK_EQ(vfs->close(f), 0);
    /* The replaced file lives on through the handle opened before. */
    CHECK_EQ(vfs->pread(old, buf, sizeof buf, 0), 6);
    CHECK_MEM(buf, 6, "second", 6);
    CHECK_EQ(vfs->close(old), 0);
    /* Onto a new name, into a subdirectory. */
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "sub")), 0);
    CHECK_EQ(vfs->rename(vfs, P(dir, "b"), P(dir, "sub/c")), 0);
    CHECK_EQ(vfs->stat(vfs, P(dir, "sub/c"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
    CHECK_EQ(vfs->stat(vfs, P(dir, "b"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_NONE);
    CHECK_EQ(vfs->rename(vfs, P(dir, "sub/c"), P(dir, "sub/c")), 0);
    CHECK_EQ(vfs->rename(vfs, P(dir, "missing"), P(dir, "x")), -ENOENT);
    CHECK_EQ(vfs->rename(vfs, P(dir, "sub/c"), P(dir, "nodir/x")), -ENOENT);
    CHECK(vfs->rename(vfs, P(dir, "sub/c"), P(dir, "sub")) < 0); /* ENOTEMPTY on Linux */
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "emptyd")), 0);
    CHECK_EQ(vfs->rename(vfs, P(dir, "sub/c"), P(dir, "emptyd")), -EISDIR);
    CHECK_EQ(vfs->stat(vfs, P(dir, "sub/c"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
}

VFS_TEST(unlink_while_open) {
    CHECK_EQ(write_file(vfs, P(dir, "u"), "keep me", 7), 0);
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, P(dir, "u"), TOME_VFS_WRITE, &f), 0);
    CHECK_EQ(vfs->unlink(vfs, P(dir, "u")), 0);
    int kind = -1;
    CHECK_EQ(vfs->stat(vfs, P(dir, "u"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_NONE);
    tome_file *g;
    CHECK_EQ(vfs->open(vfs, P(dir, "u"), TOME_VFS_READ, &g), -ENOENT);
    CHECK_EQ(vfs->unlink(vfs, P(dir, "u")), -ENOENT);
    char buf[32];
    CHECK_EQ(vfs->pread(f, buf, sizeof buf, 0), 7);
    CHECK_MEM(buf, 7, "keep me", 7);
    struct iovec iov = {(void *)(uintptr_t)" still", 6};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 7), 0);
    CHECK_U64(fsize(vfs, f), 13);
    CHECK_EQ(vfs->pread(f, buf, sizeof buf, 0), 13);
    CHECK_MEM(buf, 13, "keep me still", 13);
    /* A new file of the same name is a different file. */
    CHECK_EQ(vfs->open(vfs, P(dir, "u"), TOME_VFS_WRITE | TOME_VFS_CREATE, &g), 0);
    CHECK_U64(fsize(vfs, g), 0);
    CHECK_EQ(vfs->close(g), 0);
    CHECK_EQ(vfs->close(f), 0);
    CHECK_EQ(vfs->stat(vfs, P(dir, "u"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
}

VFS_TEST(list_names) {
    CHECK_EQ(write_file(vfs, P(dir, "b"), "1", 1), 0);
    CHECK_EQ(write_file(vfs, P(dir, "a"), "2", 1), 0);
    CHECK_EQ(write_file(vfs, P(dir, "c.log"), "3", 1), 0);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "sub")), 0);
    CHECK_EQ(write_file(vfs, P(dir, "sub/x"), "4", 1), 0);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "sub/deeper")), 0);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "empty")), 0);
    char **names = NULL;
    size_t n = 99;
    CHECK_EQ(vfs->list(vfs, dir, &names, &n), 0);
    CHECK_EQ(n, 5);
    const char *want[] = {"a", "b", "c.log", "empty", "sub"};
    for (size_t i = 0; i < 5; i++) CHECK(strcmp(names[i], want[i]) == 0);
    tome_free(names);
    CHECK_EQ(vfs->list(vfs, P(dir, "sub"), &names, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(strcmp(names[0], "deeper") == 0 && strcmp(names[1], "x") == 0);
    tome_free(names);
    CHECK_EQ(vfs->list(vfs, P(dir, "empty"), &names, &n), 0);
    CHECK_EQ(n, 0);
    tome_free(names);
    CHECK_EQ(vfs->list(vfs, P(dir, "missing"), &names, &n), -ENOENT);
    CHECK(names == NULL && n == 0);
    CHECK_EQ(vfs->list(vfs, P(dir, "a"), &names, &n), -ENOTDIR);
    /* After an unlink and a rename the list follows. */
    CHECK_EQ(vfs->unlink(vfs, P(dir, "a")), 0);
    CHECK_EQ(vfs->rename(vfs, P(dir, "b"), P(dir, "z")), 0);
    CHECK_EQ(vfs->list(vfs, dir, &names, &n), 0);
    CHECK_EQ(n, 4);
    const char *want2[] = {"c.log", "empty", "sub", "z"};
    for (size_t i = 0; i < 4; i++) CHECK(strcmp(names[i], want2[i]) == 0);
    tome_free(names);
}

VFS_TEST(stat_mkdir_open_errors) {
    int kind = -1;
    CHECK_EQ(vfs->stat(vfs, P(dir, "nothing"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_NONE);
    CHECK_EQ(vfs->stat(vfs, dir, &kind), 0);
    CHECK_EQ(kind, TOME_VFS_DIR);
    CHECK_EQ(write_file(vfs, P(dir, "f"), "x", 1), 0);
    CHECK_EQ(vfs->stat(vfs, P(dir, "f"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "d")), 0);
    CHECK_EQ(vfs->stat(vfs, P(dir, "d"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_DIR);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "d")), -EEXIST);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "f")), -EEXIST);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "no/sub")), -ENOENT);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "f/sub")), -ENOTDIR);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "f/a/b")), -ENOTDIR);
    CHECK_EQ(vfs->mkdir(vfs, P(dir, "no/a/b")), -ENOENT);
    CHECK_EQ(vfs->stat(vfs, P(dir, "f/x"), &kind), -ENOTDIR);
    tome_file *f = (tome_file *)(uintptr_t)1;
    CHECK_EQ(vfs->open(vfs, P(dir, "no/f"), TOME_VFS_WRITE | TOME_VFS_CREATE, &f), -ENOENT);
    CHECK(f == NULL);
    CHECK_EQ(vfs->open(vfs, P(dir, "missing"), TOME_VFS_READ, &f), -ENOENT);
    CHECK_EQ(vfs->open(vfs, P(dir, "f"), TOME_VFS_WRITE | TOME_VFS_CREATE | TOME_VFS_EXCL, &f), -EEXIST);
    CHECK_EQ(vfs->open(vfs, P(dir, "d"), TOME_VFS_WRITE, &f), -EISDIR);
    CHECK_EQ(vfs->open(vfs, P(dir, "new"), TOME_VFS_WRITE | TOME_VFS_CREATE | TOME_VFS_EXCL, &f), 0);
    CHECK_EQ(vfs->close(f), 0);
    CHECK_EQ(vfs->stat(vfs, P(dir, "new"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
    CHECK_EQ(vfs->unlink(vfs, P(dir, "missing")), -ENOENT);
    CHECK(vfs->unlink(vfs, P(dir, "d")) < 0);
    CHECK_EQ(vfs->stat(vfs, P(dir, "d"), &kind), 0);
    CHECK_EQ(kind, TOME_VFS_DIR);
}

VFS_TEST(lock_conflicts_in_one_process) {
    CHECK_EQ(write_file(vfs, P(dir, "LOCK"), "", 0), 0);
    CHECK_EQ(write_file(vfs, P(dir, "other"), "", 0), 0);
    tome_file *f1, *f2, *f3, *o;
    CHECK_EQ(vfs->open(vfs, P(dir, "LOCK"), TOME_VFS_WRITE, &f1), 0);
    CHECK_EQ(vfs->open(vfs, P(dir, "LOCK"), TOME_VFS_WRITE, &f2), 0);
    CHECK_EQ(vfs->open(vfs, P(dir, "LOCK"), TOME_VFS_READ, &f3), 0);
    CHECK_EQ(vfs->open(vfs, P(dir, "other"), TOME_VFS_WRITE, &o), 0);
    CHECK_EQ(vfs->lock(f1), 0);
    CHECK_EQ(vfs->lock(f1), 0); /* the holder may ask again */
    CHECK_EQ(vfs->lock(f2), -EWOULDBLOCK);
    CHECK_EQ(vfs->lock(f3), -EWOULDBLOCK);
    CHECK_EQ(vfs->lock(o), 0); /* another file is independent */
    CHECK_EQ(vfs->close(f1), 0);
    CHECK_EQ(vfs->lock(f2), 0);
    CHECK_EQ(vfs->lock(f3), -EWOULDBLOCK);
    CHECK_EQ(vfs->close(f2), 0);
    CHECK_EQ(vfs->lock(f3), 0);
    CHECK_EQ(vfs->close(f3), 0);
    CHECK_EQ(vfs->close(o), 0);
}

VFS_TEST(sync_and_clock) {
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, P(dir, "s"), TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    struct iovec iov = {(void *)(uintptr_t)"data", 4};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 0), 0);
    CHECK_EQ(vfs->sync(f, 1), 0);
    CHECK_EQ(vfs->sync(f, 0), 0);
    CHECK_EQ(vfs->close(f), 0);
    CHECK_EQ(vfs->sync_dir(vfs, dir), 0);
    CHECK_EQ(vfs->sync_dir(vfs, P(dir, "missing")), -ENOENT);
    CHECK(vfs->name != NULL);
    uint64_t now = (uint64_t)time(NULL) * 1000u, t = vfs->now_ms(vfs);
    CHECK(t + 5000 > now && t < now + 5000);
}

/* ---- the in-memory vfs only ---- */

TT_TEST(mem_paths_and_directories) {
    tome_vfs *vfs = tome_vfs_mem_new();
    CHECK(vfs != NULL);
    int kind = -1;
    CHECK_EQ(vfs->mkdir(vfs, "/s"), 0);
    CHECK_EQ(vfs->mkdir(vfs, "/s/a/"), 0);
    CHECK_EQ(write_file(vfs, "/s//a/./b", "x", 1), 0);
    CHECK_EQ(vfs->stat(vfs, "/s/a/b", &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
    CHECK_EQ(vfs->mkdir(vfs, "/"), -EEXIST);
    CHECK_EQ(vfs->mkdir(vfs, "/s/"), -EEXIST);
    CHECK_EQ(vfs->stat(vfs, "/", &kind), 0);
    CHECK_EQ(kind, TOME_VFS_DIR);
    CHECK_EQ(vfs->stat(vfs, "", &kind), 0);
    CHECK_EQ(kind, TOME_VFS_NONE);
    /* Relative names live in the current directory ("."). */
    CHECK_EQ(write_file(vfs, "rel", "y", 1), 0);
    char **names;
    size_t n;
    CHECK_EQ(vfs->list(vfs, ".", &names, &n), 0);
    CHECK_EQ(n, 1);
    CHECK(strcmp(names[0], "rel") == 0);
    tome_free(names);
    CHECK_EQ(vfs->list(vfs, "/", &names, &n), 0);
    CHECK_EQ(n, 1);
    CHECK(strcmp(names[0], "s") == 0);
    tome_free(names);
    /* Renaming a directory moves what it holds; open handles follow. */
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, "/s/a/b", TOME_VFS_WRITE, &f), 0);
    CHECK_EQ(vfs->mkdir(vfs, "/t"), 0);
    CHECK_EQ(vfs->rename(vfs, "/s", "/t/s2"), 0);
    CHECK_EQ(vfs->stat(vfs, "/s/a/b", &kind), 0);
    CHECK_EQ(kind, TOME_VFS_NONE);
    CHECK_EQ(vfs->stat(vfs, "/t/s2/a/b", &kind), 0);
    CHECK_EQ(kind, TOME_VFS_FILE);
    CHECK_EQ(vfs->stat(vfs, "/t/s2/a", &kind), 0);
    CHECK_EQ(kind, TOME_VFS_DIR);
    struct iovec iov = {(void *)(uintptr_t)"Z", 1};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 0), 0);
    CHECK_EQ(vfs->close(f), 0);
    char buf[4];
    CHECK_EQ(vfs->open(vfs, "/t/s2/a/b", TOME_VFS_READ, &f), 0);
    CHECK_EQ(vfs->pread(f, buf, 4, 0), 1);
    CHECK(buf[0] == 'Z');
    CHECK_EQ(vfs->close(f), 0);
    CHECK_EQ(vfs->rename(vfs, "/t", "/t/s2/in"), -EINVAL);
    CHECK_EQ(vfs->mkdir(vfs, "/full"), 0);
    CHECK_EQ(write_file(vfs, "/full/f", "", 0), 0);
    CHECK_EQ(vfs->rename(vfs, "/t/s2", "/full"), -ENOTEMPTY);
    CHECK_EQ(vfs->rename(vfs, "/t/s2", "/full/f"), -ENOTDIR);
    CHECK_EQ(vfs->mkdir(vfs, "/emptydir"), 0);
    CHECK_EQ(vfs->rename(vfs, "/t/s2", "/emptydir"), 0);
    CHECK_EQ(vfs->list(vfs, "/emptydir/a", &names, &n), 0);
    CHECK_EQ(n, 1);
    CHECK(strcmp(names[0], "b") == 0);
    tome_free(names);
    CHECK_EQ(vfs->list(vfs, "/t", &names, &n), 0);
    CHECK_EQ(n, 0);
    tome_free(names);
    vfs->destroy(vfs);
}

/* Two writers extend one file with interleaved blocks while two readers
 * read earlier ranges: every block read is either not yet written (zeros)
 * or exactly what its writer wrote. */
enum { CBLK = 4096, CBLOCKS = 400 };
struct conc_arg {
    tome_vfs *vfs;
    tome_file *f;
    int id;
    int bad;
};

static void block_pattern(uint8_t *b, unsigned blk) {
    uint64_t s = blk * UINT64_C(0x9E3779B97F4A7C15) + 1;
    for (size_t i = 0; i < CBLK; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        b[i] = (uint8_t)s;
    }
}

static void *conc_writer(void *p) {
    struct conc_arg *a = p;
    uint8_t *b = malloc(CBLK), *back = malloc(CBLK);
    for (unsigned blk = (unsigned)a->id; b && back && blk < CBLOCKS; blk += 2) {
        block_pattern(b, blk);
        struct iovec iov[2] = {{b, CBLK / 3}, {b + CBLK / 3, CBLK - CBLK / 3}};
        if (a->vfs->pwritev(a->f, iov, 2, (uint64_t)blk * CBLK) != 0) a->bad++;
        if (a->vfs->pread(a->f, back, CBLK, (uint64_t)blk * CBLK) != CBLK || memcmp(b, back, CBLK))
            a->bad++;
    }
    if (!b || !back) a->bad++;
    free(b);
    free(back);
    return NULL;
}

static void *conc_reader(void *p) {
    struct conc_arg *a = p;
    uint8_t *want = malloc(CBLK), *got = malloc(CBLK);
    uint64_t seed = 0x1234567u + (uint64_t)a->id; /* rnd() is not thread-safe */
    for (int i = 0; want && got && i < 3000; i++) {
        uint64_t size = 0;
        if (a->vfs->size(a->f, &size) != 0) a->bad++;
        if (size < CBLK) continue;
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        unsigned blk = (unsigned)(seed % (size / CBLK));
        int64_t r = a->vfs->pread(a->f, got, CBLK, (uint64_t)blk * CBLK);
        if (r != CBLK) {
            a->bad++;
            continue;
        }
        block_pattern(want, blk);
        if (memcmp(want, got, CBLK) != 0 && !all_zero(got, CBLK)) a->bad++;
    }
    if (!want || !got) a->bad++;
    free(want);
    free(got);
    return NULL;
}

TT_TEST(mem_concurrent_readers_and_writers) {
    tome_vfs *vfs = tome_vfs_mem_new();
    CHECK(vfs != NULL);
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, "c", TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    struct conc_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct conc_arg){vfs, f, i % 2, 0};
        CHECK(pthread_create(&th[i], NULL, i < 2 ? conc_writer : conc_reader, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK_EQ(args[i].bad, 0);
    CHECK_U64(fsize(vfs, f), (uint64_t)CBLOCKS * CBLK);
    uint8_t *want = malloc(CBLK), *got = malloc(CBLK);
    CHECK(want && got);
    int bad = 0;
    for (unsigned blk = 0; blk < CBLOCKS; blk++) {
        block_pattern(want, blk);
        if (vfs->pread(f, got, CBLK, (uint64_t)blk * CBLK) != CBLK || memcmp(want, got, CBLK)) bad++;
    }
    free(want);
    free(got);
    CHECK_EQ(bad, 0);
    CHECK_EQ(vfs->close(f), 0);
    vfs->destroy(vfs);
}

/* One scenario over the memvfs, with the Nth allocation failing: every step
 * either works or gives -ENOMEM, and nothing leaks or crashes. Returns 1
 * when it ran to the end. */
static int mem_scenario(int *bad) {
    tome_vfs *vfs = tome_vfs_mem_new();
    if (vfs == NULL) return 0;
    tome_file *f = NULL, *g = NULL;
    int done = 0, rc;
    char **names = NULL;
    size_t n = 0;
    static uint8_t data[20000];
    struct iovec iov = {data, sizeof data};
#define STEP(expr)                                   \
    do {                                             \
        rc = (expr);                                 \
        if (rc == -ENOMEM) goto out;                 \
        if (rc != 0) { (*bad)++; goto out; }         \
    } while (0)
    STEP(vfs->mkdir(vfs, "/d"));
    STEP(vfs->open(vfs, "/d/a", TOME_VFS_WRITE | TOME_VFS_CREATE, &f));
    STEP(vfs->pwritev(f, &iov, 1, 0));
    STEP(vfs->pwritev(f, &iov, 1, 100000));
    STEP(vfs->open(vfs, "/d/b", TOME_VFS_WRITE | TOME_VFS_CREATE, &g));
    STEP(vfs->allocate(g, 0, 50000));
    STEP(vfs->rename(vfs, "/d/a", "/d/c"));
    STEP(vfs->rename(vfs, "/d/b", "/d/c"));
    STEP(vfs->mkdir(vfs, "/e"));
    STEP(vfs->rename(vfs, "/d", "/e/d"));
    STEP(vfs->list(vfs, "/e/d", &names, &n));
    if (n != 1 || strcmp(names[0], "c") != 0) (*bad)++;
    STEP(vfs->truncate(f, 10));
    STEP(vfs->truncate(f, 200000));
    STEP(vfs->unlink(vfs, "/e/d/c"));
    done = 1;
out:
#undef STEP
    tome_free(names);
    if (f) vfs->close(f);
    if (g) vfs->close(g);
    vfs->destroy(vfs);
    return done;
}

TT_TEST(mem_out_of_memory_everywhere) {
    int bad = 0, finished = 0;
    long n;
    for (n = 0; n < 1000 && !finished; n++) {
        hooks_on(n);
        finished = mem_scenario(&bad);
        long used = alloc_count;
        hooks_off();
        if (finished && used <= n) break; /* no failure was injected */
        finished = 0;
    }
    CHECK(n > 5);
    CHECK(finished);
    CHECK_EQ(bad, 0);
}

/* ---- the POSIX vfs only ---- */

TT_TEST(posix_close_on_exec_and_visible) {
    tome_vfs *vfs = tome_vfs_posix();
    const char *dir = tt_tmpdir();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/ce", dir);
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, path, TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    struct iovec iov = {(void *)(uintptr_t)"visible", 7};
    CHECK_EQ(vfs->pwritev(f, &iov, 1, 0), 0);
    /* Find our descriptor in /proc/self/fd and check FD_CLOEXEC. */
    char real[PATH_MAX];
    CHECK(realpath(path, real) != NULL);
    int found = 0;
    for (int fd = 0; fd < 1024 && !found; fd++) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(link, target, sizeof target - 1);
        if (l <= 0) continue;
        target[l] = '\0';
        if (strcmp(target, real) == 0) {
            found = 1;
            CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        }
    }
    CHECK(found);
    CHECK_EQ(vfs->close(f), 0);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    char buf[16];
    ssize_t r = read(fd, buf, sizeof buf);
    close(fd);
    CHECK_MEM(buf, r, "visible", 7);
    CHECK_EQ(vfs->close(NULL), 0);
}

TT_TEST(posix_lock_against_another_process) {
    tome_vfs *vfs = tome_vfs_posix();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/LOCK", tt_tmpdir());
    tome_file *f;
    CHECK_EQ(vfs->open(vfs, path, TOME_VFS_WRITE | TOME_VFS_CREATE, &f), 0);
    CHECK_EQ(vfs->lock(f), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The inherited copy of the descriptor shares the parent's open
         * file description: closing it here keeps the parent's lock. */
        vfs->close(f);
        tome_file *g;
        int code = 1;
        if (vfs->open(vfs, path, TOME_VFS_WRITE, &g) == 0) {
            code = vfs->lock(g) == -EWOULDBLOCK ? 0 : 2;
            vfs->close(g);
        }
        _exit(code);
    }
    int st = 0;
    pid_t w = waitpid(pid, &st, 0);
    CHECK_EQ(vfs->close(f), 0);
    CHECK(w == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The slab allocator (src/os/slab.c): blocks of every class and some past
 * the largest, filled with a pattern, freed in a scrambled order while the
 * others keep their bytes; freed blocks are reused; after the last free
 * every chunk is returned (the allocation hooks count them). */
static long g_slab_live;
static void *slab_h_malloc(size_t n) { g_slab_live++; return malloc(n); }
static void *slab_h_realloc(void *p, size_t n) { if (!p) g_slab_live++; return realloc(p, n); }
static void slab_h_free(void *p) { if (p) g_slab_live--; free(p); }

TT_TEST(slab_blocks_keep_their_bytes_and_chunks_go_back) {
    static const tome_alloc_hooks h = {slab_h_malloc, slab_h_realloc, slab_h_free};
    enum { N = 5000 };
    static unsigned char *blk[N];
    static size_t len[N];
    g_slab_live = 0;
    tome_alloc_set_hooks(&h);
    for (size_t i = 0; i < N; i++) {
        len[i] = 1 + (i * 37) % 700; /* classes 8..512 and larger blocks */
        blk[i] = tome_slab_alloc(len[i]);
        if (!blk[i]) break;
        CHECK_EQ((uintptr_t)blk[i] % 8, 0);
        memset(blk[i], (int)(i & 0xff), len[i]);
    }
    for (size_t r = 0; r < N; r++) {
        size_t i = (r * 2654435761u) % N; /* N is not a multiple of that: a permutation */
        CHECK(blk[i] != NULL);
        for (size_t j = 0; j < len[i]; j++)
            if (blk[i][j] != (unsigned char)(i & 0xff)) TT_FAIL_("block %zu byte %zu changed", i, j);
        if (r == N / 2) { /* freed blocks are reused */
            void *p = tome_slab_alloc(len[i]);
            CHECK(p != NULL);
            tome_slab_free(p, len[i]);
        }
        tome_slab_free(blk[i], len[i]);
        blk[i] = NULL;
    }
    tome_alloc_set_hooks(NULL);
    CHECK_EQ(g_slab_live, 0);
}

TT_MAIN()
