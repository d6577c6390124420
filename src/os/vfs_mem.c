/*
 * vfs_mem.c -- an in-memory file system (":memory:" stores, and the base on
 * which tests build fault-injecting and crash-simulating layers).
 *
 * Model. The vfs holds a table of names sorted by normalised path (repeated
 * and trailing slashes and "." components removed; "" -- the current
 * directory -- and "/" are directories that always exist). A name is either
 * a directory or a link to a file node. A file node is a growable byte
 * array with a reference count: one for its name, one per open handle. So a
 * file unlinked (or renamed over) while open stays readable and writable
 * through its handles and is freed at the last close, as on POSIX.
 * Creating a name needs its parent directory (-ENOENT otherwise, -ENOTDIR if
 * the parent is a file). rename replaces a file atomically; directories can
 * be renamed too (onto a missing name or an empty directory). unlink of a
 * directory gives -EISDIR (there is no rmdir).
 *
 * Semantics follow Linux where it matters: a handle opened without
 * TOME_VFS_WRITE gives -EBADF on pwritev/allocate and -EINVAL on truncate;
 * writing or truncating past the end fills the gap with zeros; lock is a
 * per-file owner (the handle), -EWOULDBLOCK when another handle holds it,
 * released at close. sync is a no-op returning 0; sync_dir returns 0 for an
 * existing directory (-ENOENT/-ENOTDIR otherwise, like the POSIX vfs); stat
 * gives -ENOTDIR when a component of the path is a file, as POSIX does.
 * allocate extends the size with zeros when needed and reserves the memory
 * (a later write inside it needs no allocation). list gives the names
 * directly inside a directory, sorted bytewise, as one tome_malloc block.
 *
 * Threads. One mutex per vfs guards the name table, the reference counts
 * and the lock owners. Each file node has a rwlock guarding its bytes:
 * pread, size take it shared; pwritev, truncate and allocate exclusive
 * (pread never runs while a write reallocates the array). The mutex is
 * never taken while holding a node lock. Every allocation goes through
 * tome_malloc; running out of memory gives -ENOMEM and changes nothing.
 */
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mnode {
    pthread_rwlock_t rw; /* guards data, size, cap */
    uint8_t *data;
    size_t size, cap;
    int refs;                /* the name (if linked) + open handles; vfs mu */
    struct mhandle *locker;  /* handle holding the lock or NULL; vfs mu */
};

struct memvfs;

struct mhandle {
    struct memvfs *vfs;
    struct mnode *node;
    int writable;
};

struct ment {
    char *path;          /* normalised */
    struct mnode *node;  /* NULL: a directory */
};

struct memvfs {
    tome_vfs base; /* first: a tome_vfs * is a struct memvfs * */
    pthread_mutex_t mu;
    struct ment *ents; /* sorted by path */
    size_t n, cap;
};

#define MIN_FILE_CAP 4096

static struct memvfs *MV(tome_vfs *v) { return (struct memvfs *)(void *)v; }
static struct mhandle *MH(tome_file *f) { return (struct mhandle *)(void *)f; }

/* ---- paths ---- */

/* Normalises `in` into out (PATH_MAX bytes). "" is -ENOENT, as on POSIX. */
static int norm(const char *in, char *out) {
    if (in == NULL) return -EINVAL;
    if (*in == '\0') return -ENOENT;
    size_t o = 0;
    const char *p = in;
    if (*p == '/') out[o++] = '/';
    while (*p) {
        while (*p == '/') p++;
        if (*p == '\0') break;
        const char *c = p;
        while (*p && *p != '/') p++;
        size_t l = (size_t)(p - c);
        if (l == 1 && c[0] == '.') continue;
        int sep = o > 0 && out[o - 1] != '/';
        if (o + (size_t)sep + l >= PATH_MAX) return -ENAMETOOLONG;
        if (sep) out[o++] = '/';
        memcpy(out + o, c, l);
        o += l;
    }
    out[o] = '\0';
    return 0;
}

static int is_root(const char *p) { return p[0] == '\0' || (p[0] == '/' && p[1] == '\0'); }

/* The parent of a normalised, non-root path, into out (PATH_MAX bytes). */
static void parent_of(const char *p, char *out) {
    const char *slash = strrchr(p, '/');
    if (slash == NULL) {
        out[0] = '\0';
    } else if (slash == p) {
        strcpy(out, "/");
    } else {
        memcpy(out, p, (size_t)(slash - p));
        out[slash - p] = '\0';
    }
}

/* path lies somewhere below the non-root directory dir. */
static int is_under(const char *path, const char *dir) {
    size_t dl = strlen(dir);
    return strncmp(path, dir, dl) == 0 && path[dl] == '/';
}

/* path is a name directly inside dir; *name_out is its last component. */
static int is_child(const char *path, const char *dir, const char **name_out) {
    const char *rest;
    if (dir[0] == '\0') rest = path[0] == '/' ? NULL : path;
    else if (dir[0] == '/' && dir[1] == '\0') rest = path[0] == '/' ? path + 1 : NULL;
    else rest = is_under(path, dir) ? path + strlen(dir) + 1 : NULL;
    if (rest == NULL || *rest == '\0' || strchr(rest, '/')) return 0;
    *name_out = rest;
    return 1;
}

/* ---- the name table (caller holds mu) ---- */

/* Index of path, or -1 with *pos the insertion point. */
static long find(struct memvfs *v, const char *path, size_t *pos) {
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->ents[mid].path, path);
        if (c == 0) {
            if (pos) *pos = mid;
            return (long)mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    if (pos) *pos = lo;
    return -1;
}

static int kind_of(struct memvfs *v, const char *path) {
    if (is_root(path)) return TOME_VFS_DIR;
    long i = find(v, path, NULL);
    if (i < 0) return TOME_VFS_NONE;
    return v->ents[i].node ? TOME_VFS_FILE : TOME_VFS_DIR;
}

/* Why a missing path is missing, as POSIX says it: -ENOTDIR when its
 * nearest existing ancestor is a file, else -ENOENT. */
static int missing_reason(struct memvfs *v, const char *path) {
    char cur[PATH_MAX], par[PATH_MAX];
    strcpy(cur, path);
    while (!is_root(cur)) {
        parent_of(cur, par);
        int k = kind_of(v, par);
        if (k != TOME_VFS_NONE) return k == TOME_VFS_FILE ? -ENOTDIR : -ENOENT;
        strcpy(cur, par);
    }
    return -ENOENT;
}

/* 0 when the parent of path is a directory. */
static int check_parent(struct memvfs *v, const char *path) {
    char par[PATH_MAX];
    parent_of(path, par);
    int k = kind_of(v, par);
    return k == TOME_VFS_DIR ? 0 : k == TOME_VFS_FILE ? -ENOTDIR : missing_reason(v, par);
}

/* Room for one more entry. */
static int reserve_one(struct memvfs *v) {
    if (v->n < v->cap) return 0;
    size_t cap = v->cap ? v->cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof(struct ment)) return -ENOMEM;
    struct ment *e = tome_realloc(v->ents, cap * sizeof *e);
    if (e == NULL) return -ENOMEM;
    v->ents = e;
    v->cap = cap;
    return 0;
}

/* Inserts at pos; reserve_one must have succeeded. Takes path. */
static void insert_at(struct memvfs *v, size_t pos, char *path, struct mnode *node) {
    memmove(&v->ents[pos + 1], &v->ents[pos], (v->n - pos) * sizeof *v->ents);
    v->ents[pos].path = path;
    v->ents[pos].node = node;
    v->n++;
}

/* Removes entry i; returns its path (the caller frees or reuses it). */
static char *remove_at(struct memvfs *v, size_t i) {
    char *p = v->ents[i].path;
    memmove(&v->ents[i], &v->ents[i + 1], (v->n - i - 1) * sizeof *v->ents);
    v->n--;
    return p;
}

static int cmp_ent(const void *a, const void *b) {
    return strcmp(((const struct ment *)a)->path, ((const struct ment *)b)->path);
}

/* ---- file nodes ---- */

static struct mnode *node_new(void) {
    struct mnode *nd = tome_calloc(1, sizeof *nd);
    if (nd == NULL) return NULL;
    if (pthread_rwlock_init(&nd->rw, NULL) != 0) {
        tome_free(nd);
        return NULL;
    }
    return nd;
}

/* Drops a reference (caller holds mu); frees the node at the last one. */
static void node_unref(struct mnode *nd) {
    if (--nd->refs > 0) return;
    pthread_rwlock_destroy(&nd->rw);
    tome_free(nd->data);
    tome_free(nd);
}

/* Makes cap >= need (caller holds rw exclusive). */
static int node_grow(struct mnode *nd, size_t need) {
    if (need <= nd->cap) return 0;
    size_t cap = nd->cap ? nd->cap : MIN_FILE_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *d = tome_realloc(nd->data, cap);
    if (d == NULL) return -ENOMEM;
    nd->data = d;
    nd->cap = cap;
    return 0;
}

/* ---- files ---- */

static int mv_open(tome_vfs *vfs, const char *path, int flags, tome_file **out) {
    if (out) *out = NULL;
    if (vfs == NULL || out == NULL) return -EINVAL;
    if ((flags & TOME_VFS_EXCL) && !(flags & TOME_VFS_CREATE)) return -EINVAL;
    struct memvfs *v = MV(vfs);
    char np[PATH_MAX];
    int rc = norm(path, np);
    if (rc) return rc;
    struct mhandle *h = tome_malloc(sizeof *h);
    if (h == NULL) return -ENOMEM;
    h->vfs = v;
    h->writable = (flags & TOME_VFS_WRITE) != 0;
    h->node = NULL;
    pthread_mutex_lock(&v->mu);
    size_t pos;
    long i = is_root(np) ? -2 : find(v, np, &pos);
    if (i != -1 && (flags & TOME_VFS_EXCL)) {
        rc = -EEXIST;
    } else if (i == -2 || (i >= 0 && v->ents[i].node == NULL)) {
        rc = -EISDIR;
    } else if (i >= 0) {
        h->node = v->ents[i].node;
    } else if (!(flags & TOME_VFS_CREATE)) {
        rc = -ENOENT;
    } else if ((rc = check_parent(v, np)) == 0 && (rc = reserve_one(v)) == 0) {
        char *name = tome_strndup(np, strlen(np));
        struct mnode *nd = name ? node_new() : NULL;
        if (nd == NULL) {
            tome_free(name);
            rc = -ENOMEM;
        } else {
            nd->refs = 1; /* the name */
            insert_at(v, pos, name, nd);
            h->node = nd;
        }
    }
    if (rc == 0) h->node->refs++;
    pthread_mutex_unlock(&v->mu);
    if (rc) {
        tome_free(h);
        return rc;
    }
    *out = (tome_file *)(void *)h;
    return 0;
}

static int mv_close(tome_file *f) {
    if (f == NULL) return 0;
    struct mhandle *h = MH(f);
    struct memvfs *v = h->vfs;
    pthread_mutex_lock(&v->mu);
    if (h->node->locker == h) h->node->locker = NULL;
    node_unref(h->node);
    pthread_mutex_unlock(&v->mu);
    tome_free(h);
    return 0;
}

static int64_t mv_pread(tome_file *f, void *buf, size_t len, uint64_t off) {
    if (f == NULL || (buf == NULL && len != 0)) return -EINVAL;
    if (len > (uint64_t)INT64_MAX || off > (uint64_t)INT64_MAX - len) return -EINVAL;
    struct mnode *nd = MH(f)->node;
    size_t n = 0;
    pthread_rwlock_rdlock(&nd->rw);
    if (off < nd->size) {
        n = nd->size - (size_t)off < len ? nd->size - (size_t)off : len;
        memcpy(buf, nd->data + off, n);
    }
    pthread_rwlock_unlock(&nd->rw);
    return (int64_t)n;
}

static int mv_pwritev(tome_file *f, const struct iovec *iov, int iovcnt, uint64_t off) {
    if (f == NULL || iovcnt < 0 || (iov == NULL && iovcnt != 0)) return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_base == NULL && iov[i].iov_len != 0) return -EINVAL;
        if (iov[i].iov_len > SIZE_MAX - total) return -EINVAL;
        total += iov[i].iov_len;
    }
    struct mhandle *h = MH(f);
    if (!h->writable) return -EBADF;
    if (total == 0) return 0;
    if (off > (uint64_t)INT64_MAX || off > (uint64_t)SIZE_MAX - total) return -EFBIG;
    size_t end = (size_t)off + total;
    struct mnode *nd = h->node;
    pthread_rwlock_wrlock(&nd->rw);
    int rc = node_grow(nd, end);
    if (rc == 0) {
        if (off > nd->size) memset(nd->data + nd->size, 0, (size_t)off - nd->size);
        size_t at = (size_t)off;
        for (int i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len == 0) continue;
            memcpy(nd->data + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        if (end > nd->size) nd->size = end;
    }
    pthread_rwlock_unlock(&nd->rw);
    return rc;
}

static int mv_sync(tome_file *f, int data_only) {
    (void)data_only;
    return f == NULL ? -EINVAL : 0;
}

static int mv_truncate(tome_file *f, uint64_t size) {
    if (f == NULL) return -EINVAL;
    struct mhandle *h = MH(f);
    if (!h->writable) return -EINVAL;
    if (size > (uint64_t)INT64_MAX || size > (uint64_t)SIZE_MAX) return -EFBIG;
    struct mnode *nd = h->node;
    int rc = 0;
    pthread_rwlock_wrlock(&nd->rw);
    if (size > nd->size) {
        rc = node_grow(nd, (size_t)size);
        if (rc == 0) memset(nd->data + nd->size, 0, (size_t)size - nd->size);
    } else if (size == 0) {
        tome_free(nd->data);
        nd->data = NULL;
        nd->cap = 0;
    } else if (size <= nd->cap / 4) {
        uint8_t *d = tome_realloc(nd->data, (size_t)size); /* failure: keep */
        if (d) {
            nd->data = d;
            nd->cap = (size_t)size;
        }
    }
    if (rc == 0) nd->size = (size_t)size;
    pthread_rwlock_unlock(&nd->rw);
    return rc;
}

static int mv_allocate(tome_file *f, uint64_t off, uint64_t len) {
    if (f == NULL) return -EINVAL;
    struct mhandle *h = MH(f);
    if (!h->writable) return -EBADF;
    if (len == 0) return 0;
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off ||
        off + len > (uint64_t)SIZE_MAX)
        return -EFBIG;
    size_t end = (size_t)(off + len);
    struct mnode *nd = h->node;
    pthread_rwlock_wrlock(&nd->rw);
    int rc = node_grow(nd, end);
    if (rc == 0 && end > nd->size) {
        memset(nd->data + nd->size, 0, end - nd->size);
        nd->size = end;
    }
    pthread_rwlock_unlock(&nd->rw);
    return rc;
}

static int mv_size(tome_file *f, uint64_t *size_out) {
    if (f == NULL || size_out == NULL) return -EINVAL;
    struct mnode *nd = MH(f)->node;
    pthread_rwlock_rdlock(&nd->rw);
    *size_out = nd->size;
    pthread_rwlock_unlock(&nd->rw);
    return 0;
}

static int mv_lock(tome_file *f) {
    if (f == NULL) return -EINVAL;
    struct mhandle *h = MH(f);
    int rc = 0;
    pthread_mutex_lock(&h->vfs->mu);
    if (h->node->locker && h->node->locker != h) rc = -EWOULDBLOCK;
    else h->node->locker = h;
    pthread_mutex_unlock(&h->vfs->mu);
    return rc;
}

/* ---- names ---- */

static int mv_stat(tome_vfs *vfs, const char *path, int *kind_out) {
    if (vfs == NULL || kind_out == NULL) return -EINVAL;
    *kind_out = TOME_VFS_NONE;
    char np[PATH_MAX];
    int rc = norm(path, np);
    if (rc) return rc == -ENOENT ? 0 : rc;
    struct memvfs *v = MV(vfs);
    pthread_mutex_lock(&v->mu);
    *kind_out = kind_of(v, np);
    if (*kind_out == TOME_VFS_NONE && missing_reason(v, np) == -ENOTDIR) rc = -ENOTDIR;
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static int mv_mkdir(tome_vfs *vfs, const char *path) {
    if (vfs == NULL) return -EINVAL;
    char np[PATH_MAX];
    int rc = norm(path, np);
    if (rc) return rc;
    if (is_root(np)) return -EEXIST;
    struct memvfs *v = MV(vfs);
    pthread_mutex_lock(&v->mu);
    size_t pos;
    if (find(v, np, &pos) >= 0) rc = -EEXIST;
    else if ((rc = check_parent(v, np)) == 0 && (rc = reserve_one(v)) == 0) {
        char *name = tome_strndup(np, strlen(np));
        if (name == NULL) rc = -ENOMEM;
        else insert_at(v, pos, name, NULL);
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

/* Renames the directory at index fi to nt (caller holds mu; nt's parent is
 * a directory; nt is missing or an empty directory at index ti). Allocates
 * every new path first, so that running out of memory changes nothing. */
static int rename_dir(struct memvfs *v, long fi, long ti, const char *nt) {
    const char *nf = v->ents[fi].path;
    size_t fl = strlen(nf), tl = strlen(nt), k = 0;
    for (size_t i = 0; i < v->n; i++)
        if ((long)i == fi || is_under(v->ents[i].path, nf)) k++;
    char **np = tome_calloc(k, sizeof *np);
    if (np == NULL) return -ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < v->n; i++) {
        const char *p = v->ents[i].path;
        if ((long)i != fi && !is_under(p, nf)) continue;
        size_t rest = strlen(p) - fl;
        np[j] = tome_malloc(tl + rest + 1);
        if (np[j] == NULL) {
            for (size_t x = 0; x < j; x++) tome_free(np[x]);
            tome_free(np);
            return -ENOMEM;
        }
        memcpy(np[j], nt, tl);
        memcpy(np[j] + tl, p + fl, rest + 1);
        j++;
    }
    char *old = ti >= 0 ? v->ents[ti].path : NULL; /* the empty directory */
    j = 0;
    for (size_t i = 0; i < v->n; i++) {
        char *p = v->ents[i].path;
        if (p == old || (p != nf && !is_under(p, nf))) continue;
        v->ents[i].path = np[j++];
        if (p != nf) tome_free(p);
    }
    tome_free((char *)nf);
    if (ti >= 0) {
        tome_free(remove_at(v, (size_t)ti));
    }
    qsort(v->ents, v->n, sizeof *v->ents, cmp_ent);
    tome_free(np);
    return 0;
}

static int mv_rename(tome_vfs *vfs, const char *from, const char *to) {
    if (vfs == NULL) return -EINVAL;
    char nf[PATH_MAX], nt[PATH_MAX];
    int rc = norm(from, nf);
    if (rc == 0) rc = norm(to, nt);
    if (rc) return rc;
    if (is_root(nf) || is_root(nt)) return -EBUSY;
    struct memvfs *v = MV(vfs);
    pthread_mutex_lock(&v->mu);
    long fi = find(v, nf, NULL), ti;
    size_t pos;
    if (fi < 0) {
        rc = -ENOENT;
    } else if (strcmp(nf, nt) == 0) {
        rc = 0;
    } else if ((rc = check_parent(v, nt)) != 0) {
        /* rc set */
    } else if (v->ents[fi].node) { /* a file */
        ti = find(v, nt, &pos);
        if (ti >= 0 && v->ents[ti].node == NULL) {
            rc = -EISDIR;
        } else if (ti >= 0) { /* replace the target's node */
            struct mnode *old = v->ents[ti].node;
            v->ents[ti].node = v->ents[fi].node;
            tome_free(remove_at(v, (size_t)fi));
            node_unref(old);
        } else {
            char *name = tome_strndup(nt, strlen(nt));
            if (name == NULL) {
                rc = -ENOMEM;
            } else {
                struct mnode *nd = v->ents[fi].node;
                tome_free(remove_at(v, (size_t)fi));
                find(v, nt, &pos);
                insert_at(v, pos, name, nd); /* room: one entry was removed */
            }
        }
    } else { /* a directory */
        ti = find(v, nt, NULL);
        if (is_under(nt, nf)) {
            rc = -EINVAL;
        } else if (ti >= 0 && v->ents[ti].node) {
            rc = -ENOTDIR;
        } else {
            if (ti >= 0) {
                for (size_t i = 0; i < v->n && rc == 0; i++)
                    if (is_under(v->ents[i].path, nt)) rc = -ENOTEMPTY;
            }
            if (rc == 0) rc = rename_dir(v, fi, ti, nt);
        }
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static int mv_unlink(tome_vfs *vfs, const char *path) {
    if (vfs == NULL) return -EINVAL;
    char np[PATH_MAX];
    int rc = norm(path, np);
    if (rc) return rc;
    if (is_root(np)) return -EISDIR;
    struct memvfs *v = MV(vfs);
    pthread_mutex_lock(&v->mu);
    long i = find(v, np, NULL);
    if (i < 0) {
        rc = -ENOENT;
    } else if (v->ents[i].node == NULL) {
        rc = -EISDIR;
    } else {
        struct mnode *nd = v->ents[i].node;
        tome_free(remove_at(v, (size_t)i));
        node_unref(nd);
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static int mv_list(tome_vfs *vfs, const char *dir, char ***names_out, size_t *count_out) {
    if (names_out) *names_out = NULL;
    if (count_out) *count_out = 0;
    if (vfs == NULL || names_out == NULL || count_out == NULL) return -EINVAL;
    char nd[PATH_MAX];
    int rc = norm(dir, nd);
    if (rc) return rc;
    struct memvfs *v = MV(vfs);
    pthread_mutex_lock(&v->mu);
    int k = kind_of(v, nd);
    if (k != TOME_VFS_DIR) {
        rc = k == TOME_VFS_NONE ? missing_reason(v, nd) : -ENOTDIR;
        pthread_mutex_unlock(&v->mu);
        return rc;
    }
    size_t count = 0, bytes = 0;
    const char *name;
    for (size_t i = 0; i < v->n; i++)
        if (is_child(v->ents[i].path, nd, &name)) {
            count++;
            bytes += strlen(name) + 1;
        }
    char **names = tome_malloc(count * sizeof(char *) + bytes);
    if (names == NULL) {
        rc = -ENOMEM;
    } else {
        char *s = (char *)names + count * sizeof(char *);
        size_t j = 0;
        for (size_t i = 0; i < v->n; i++)
            if (is_child(v->ents[i].path, nd, &name)) {
                size_t l = strlen(name) + 1;
                memcpy(s, name, l);
                names[j++] = s;
                s += l;
            }
        *names_out = names;
        *count_out = count;
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static int mv_sync_dir(tome_vfs *vfs, const char *dir) {
    int kind = TOME_VFS_NONE;
    int rc = mv_stat(vfs, dir, &kind);
    if (rc) return rc;
    return kind == TOME_VFS_DIR ? 0 : kind == TOME_VFS_NONE ? -ENOENT : -ENOTDIR;
}

static uint64_t mv_now_ms(tome_vfs *vfs) {
    (void)vfs;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void mv_destroy(tome_vfs *vfs) {
    if (vfs == NULL) return;
    struct memvfs *v = MV(vfs);
    for (size_t i = 0; i < v->n; i++) {
        tome_free(v->ents[i].path);
        if (v->ents[i].node) node_unref(v->ents[i].node);
    }
    tome_free(v->ents);
    pthread_mutex_destroy(&v->mu);
    tome_free(v);
}

tome_vfs *tome_vfs_mem_new(void) {
    struct memvfs *v = tome_calloc(1, sizeof *v);
    if (v == NULL) return NULL;
    if (pthread_mutex_init(&v->mu, NULL) != 0) {
        tome_free(v);
        return NULL;
    }
    v->base = (tome_vfs){
        .name = "mem",
        .open = mv_open,
        .close = mv_close,
        .pread = mv_pread,
        .pwritev = mv_pwritev,
        .sync = mv_sync,
        .truncate = mv_truncate,
        .allocate = mv_allocate,
        .size = mv_size,
        .lock = mv_lock,
        .stat = mv_stat,
        .mkdir = mv_mkdir,
        .rename = mv_rename,
        .unlink = mv_unlink,
        .list = mv_list,
        .sync_dir = mv_sync_dir,
        .now_ms = mv_now_ms,
        .destroy = mv_destroy,
    };
    return &v->base;
}
