/*
 * vfs_posix.c -- the POSIX vfs: real files through open/pread/pwritev/...
 *
 * One static vfs table (tome_vfs_posix()) shared by the whole process. Every
 * function returns 0 (or a byte count where os.h says so) or -errno.
 * Transfers loop over partial reads and writes and over EINTR; pwritev
 * returns 0 only once every byte is written. A failed sync is never retried
 * (after a failed fsync the kernel may have dropped the dirty pages, so a
 * second fsync could "succeed" without the data). lock is flock(LOCK_EX |
 * LOCK_NB): flock locks belong to the open file description, so a second
 * open of the same file in the same process cannot take the lock either,
 * which is what the store needs to refuse a second open of itself.
 * allocate is fallocate(mode 0), falling back to posix_fallocate where the
 * file system does not support it; a length of 0 is a no-op. list returns
 * the names sorted bytewise, as one tome_malloc block (pointer array first,
 * then the strings).
 */
#include "os.h"

#include "../util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct pfile {
    int fd;
};

static struct pfile *PF(tome_file *f) { return (struct pfile *)(void *)f; }

/* The largest transfer of one system call (Linux caps it near 2 GiB). */
#define XFER_MAX ((size_t)1 << 30)
#define IOV_BATCH 64

static int neg_errno(void) { return errno ? -errno : -EIO; }

static int px_open(tome_vfs *vfs, const char *path, int flags, tome_file **out) {
    (void)vfs;
    if (out) *out = NULL;
    if (path == NULL || out == NULL) return -EINVAL;
    if ((flags & TOME_VFS_EXCL) && !(flags & TOME_VFS_CREATE)) return -EINVAL;
    int oflags = O_CLOEXEC | ((flags & TOME_VFS_WRITE) ? O_RDWR : O_RDONLY);
    if (flags & TOME_VFS_CREATE) oflags |= O_CREAT;
    if (flags & TOME_VFS_EXCL) oflags |= O_EXCL;
    struct pfile *pf = tome_malloc(sizeof *pf);
    if (pf == NULL) return -ENOMEM;
    int fd;
    do fd = open(path, oflags, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int rc = neg_errno();
        tome_free(pf);
        return rc;
    }
    pf->fd = fd;
    *out = (tome_file *)(void *)pf;
    return 0;
}

static int px_close(tome_file *f) {
    if (f == NULL) return 0;
    struct pfile *pf = PF(f);
    int rc = 0;
    /* On Linux the descriptor is gone even when close fails: never retry.
     * EINTR does not mean the data is lost, so it is not an error. */
    if (close(pf->fd) != 0 && errno != EINTR) rc = neg_errno();
    tome_free(pf);
    return rc;
}

static int64_t px_pread(tome_file *f, void *buf, size_t len, uint64_t off) {
    if (f == NULL || (buf == NULL && len != 0)) return -EINVAL;
    if (len > (uint64_t)INT64_MAX || off > (uint64_t)INT64_MAX - len) return -EINVAL;
    int fd = PF(f)->fd;
    size_t done = 0;
    while (done < len) {
        size_t want = len - done < XFER_MAX ? len - done : XFER_MAX;
        ssize_t r = pread(fd, (char *)buf + done, want, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return neg_errno();
        }
        if (r == 0) break; /* end of file */
        done += (size_t)r;
    }
    return (int64_t)done;
}

static int px_pwritev(tome_file *f, const struct iovec *iov, int iovcnt, uint64_t off) {
    if (f == NULL || iovcnt < 0 || (iov == NULL && iovcnt != 0)) return -EINVAL;
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_base == NULL && iov[i].iov_len != 0) return -EINVAL;
        if (iov[i].iov_len > UINT64_MAX - total) return -EINVAL;
        total += iov[i].iov_len;
    }
    if (off > (uint64_t)INT64_MAX || total > (uint64_t)INT64_MAX - off) return -EFBIG;
    int fd = PF(f)->fd;
    int idx = 0;       /* current iovec */
    size_t skip = 0;   /* bytes of iov[idx] already written */
    while (idx < iovcnt) {
        struct iovec batch[IOV_BATCH];
        int nb = 0;
        size_t bytes = 0;
        for (int i = idx; i < iovcnt && nb < IOV_BATCH && bytes < XFER_MAX; i++) {
            size_t s = i == idx ? skip : 0;
            size_t l = iov[i].iov_len - s;
            if (l == 0) continue;
            if (l > XFER_MAX - bytes) l = XFER_MAX - bytes;
            batch[nb].iov_base = (char *)iov[i].iov_base + s;
            batch[nb].iov_len = l;
            nb++;
            bytes += l;
        }
        if (nb == 0) break; /* only empty iovecs were left */
        ssize_t w = pwritev(fd, batch, nb, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return neg_errno();
        }
        if (w == 0) return -EIO; /* no progress on a regular file */
        off += (uint64_t)w;
        size_t adv = (size_t)w;
        while (adv > 0 && idx < iovcnt) {
            size_t left = iov[idx].iov_len - skip;
            if (adv < left) {
                skip += adv;
                adv = 0;
            } else {
                adv -= left;
                idx++;
                skip = 0;
            }
        }
    }
    return 0;
}

static int px_sync(tome_file *f, int data_only) {
    if (f == NULL) return -EINVAL;
    int r = data_only ? fdatasync(PF(f)->fd) : fsync(PF(f)->fd);
    return r == 0 ? 0 : neg_errno(); /* never retried */
}

static int px_truncate(tome_file *f, uint64_t size) {
    if (f == NULL) return -EINVAL;
    if (size > (uint64_t)INT64_MAX) return -EFBIG;
    int r;
    do r = ftruncate(PF(f)->fd, (off_t)size);
    while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : neg_errno();
}

static int px_allocate(tome_file *f, uint64_t off, uint64_t len) {
    if (f == NULL) return -EINVAL;
    if (len == 0) return 0;
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off) return -EFBIG;
    int fd = PF(f)->fd, r;
    do r = fallocate(fd, 0, (off_t)off, (off_t)len);
    while (r != 0 && errno == EINTR);
    if (r == 0) return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS) return neg_errno();
    do r = posix_fallocate(fd, (off_t)off, (off_t)len); /* returns the error */
    while (r == EINTR);
    return -r;
}

static int px_size(tome_file *f, uint64_t *size_out) {
    if (f == NULL || size_out == NULL) return -EINVAL;
    struct stat st;
    if (fstat(PF(f)->fd, &st) != 0) return neg_errno();
    *size_out = (uint64_t)st.st_size;
    return 0;
}

static int px_lock(tome_file *f) {
    if (f == NULL) return -EINVAL;
    int r;
    do r = flock(PF(f)->fd, LOCK_EX | LOCK_NB);
    while (r != 0 && errno == EINTR);
    if (r == 0) return 0;
    return errno == EWOULDBLOCK ? -EWOULDBLOCK : neg_errno();
}

static int px_stat(tome_vfs *vfs, const char *path, int *kind_out) {
    (void)vfs;
    if (path == NULL || kind_out == NULL) return -EINVAL;
    struct stat st;
    *kind_out = TOME_VFS_NONE;
    if (stat(path, &st) != 0) return errno == ENOENT ? 0 : neg_errno();
    *kind_out = S_ISDIR(st.st_mode) ? TOME_VFS_DIR : TOME_VFS_FILE;
    return 0;
}

static int px_mkdir(tome_vfs *vfs, const char *path) {
    (void)vfs;
    if (path == NULL) return -EINVAL;
    return mkdir(path, 0755) == 0 ? 0 : neg_errno();
}

static int px_rename(tome_vfs *vfs, const char *from, const char *to) {
    (void)vfs;
    if (from == NULL || to == NULL) return -EINVAL;
    return rename(from, to) == 0 ? 0 : neg_errno();
}

static int px_unlink(tome_vfs *vfs, const char *path) {
    (void)vfs;
    if (path == NULL) return -EINVAL;
    return unlink(path) == 0 ? 0 : neg_errno();
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int px_list(tome_vfs *vfs, const char *dir, char ***names_out, size_t *count_out) {
    (void)vfs;
    if (names_out) *names_out = NULL;
    if (count_out) *count_out = 0;
    if (dir == NULL || names_out == NULL || count_out == NULL) return -EINVAL;
    DIR *d = opendir(dir);
    if (d == NULL) return neg_errno();
    tome_buf text = {0}; /* the names, each followed by a NUL */
    size_t count = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno) rc = neg_errno();
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (tome_buf_append(&text, de->d_name, strlen(de->d_name) + 1) != TOME_OK) {
            rc = -ENOMEM;
            break;
        }
        count++;
    }
    closedir(d);
    if (rc == 0) {
        size_t ptrs = count * sizeof(char *);
        char **names = NULL;
        if (count <= (SIZE_MAX - text.len) / sizeof(char *))
            names = tome_malloc(ptrs + text.len);
        if (names == NULL) {
            rc = -ENOMEM;
        } else {
            char *s = (char *)names + ptrs;
            if (text.len) memcpy(s, text.p, text.len);
            for (size_t i = 0; i < count; i++) {
                names[i] = s;
                s += strlen(s) + 1;
            }
            qsort(names, count, sizeof *names, cmp_names);
            *names_out = names;
            *count_out = count;
        }
    }
    tome_buf_free(&text);
    return rc;
}

static int px_sync_dir(tome_vfs *vfs, const char *dir) {
    (void)vfs;
    if (dir == NULL) return -EINVAL;
    int fd;
    do fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return neg_errno();
    int rc = fsync(fd) == 0 ? 0 : neg_errno(); /* never retried */
    close(fd);
    return rc;
}

static uint64_t px_now_ms(tome_vfs *vfs) {
    (void)vfs;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read-only shared mapping; the kernel's page cache is the same one that
 * pwritev fills, so later writes show through. */
static int px_map(tome_file *f, uint64_t len, const void **out) {
    if (len == 0 || len > (uint64_t)SIZE_MAX) return -EINVAL;
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, PF(f)->fd, 0);
    if (p == MAP_FAILED) return neg_errno();
    *out = p;
    return 0;
}

static void px_unmap(tome_vfs *vfs, const void *p, uint64_t len) {
    (void)vfs;
    if (p) munmap((void *)(uintptr_t)p, (size_t)len);
}

static tome_vfs g_posix_vfs = {
    .name = "posix",
    .open = px_open,
    .close = px_close,
    .pread = px_pread,
    .pwritev = px_pwritev,
    .sync = px_sync,
    .truncate = px_truncate,
    .allocate = px_allocate,
    .size = px_size,
    .lock = px_lock,
    .stat = px_stat,
    .mkdir = px_mkdir,
    .rename = px_rename,
    .unlink = px_unlink,
    .list = px_list,
    .sync_dir = px_sync_dir,
    .now_ms = px_now_ms,
    .destroy = NULL,
    .map = px_map,
    .unmap = px_unmap,
};

tome_vfs *tome_vfs_posix(void) { return &g_posix_vfs; }
