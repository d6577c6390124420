/*
 * faultvfs.c -- the fault-injecting vfs and the crash-simulating vfs (see
 * faultvfs.h; the shared workload is in faultwl.c).
 *
 * Implementation notes.
 *  - fv_vfs forwards every call to its base vfs after deciding, under its
 *    mutex, whether this call is the one to fail. A short write hands the
 *    base a cut copy of the iovec array holding the first half of the
 *    bytes. A failed close still closes the base file (as Linux does), so
 *    nothing leaks.
 *  - fv_crash forwards every call to an in-memory vfs (the live state, what
 *    the process sees) and keeps beside it the durable state: per file node
 *    the bytes as of its last sync plus the list of pending operations
 *    (write, truncate, allocate) since; the durable name table; and the
 *    ordered list of name operations (create, mkdir, rename, unlink) not yet
 *    made durable by a sync of their directory. A snapshot deep-copies the
 *    durable state; an image applies some of the pending operations to it
 *    and writes the result into a fresh in-memory vfs.
 */
#include "faultvfs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Log data starts after the 64-byte segment header (docs/FORMAT.md). */
#define LOG_DATA_START 64

/* ======================================================================== */
/* Environment                                                               */
/* ======================================================================== */

static bool env_on(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

bool fv_short(void) { return env_on("TOME_TEST_SHORT"); }
bool fv_full(void) { return env_on("TOME_FAULTS_FULL"); }

uint64_t fv_rand(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void *fv_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "fault tests: out of memory\n");
        abort();
    }
    return p;
}

void *fv_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "fault tests: out of memory\n");
        abort();
    }
    return q;
}

char *fv_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = fv_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* ======================================================================== */
/* 1. The fault-injecting vfs                                               */
/* ======================================================================== */

struct fv_vfs {
    tome_vfs vfs; /* first: a tome_vfs * of ours is an fv_vfs * */
    tome_vfs *base;
    bool skip_sync;
    pthread_mutex_t mu;
    int kind;
    uint64_t nth;
    bool sticky;
    uint64_t cnt[FV_NKINDS];
    uint64_t by_op[FV_NOPS];
    bool fired;
    int fired_op;
    bool fired_dw;
    bool fired_log;
    uint64_t log_writes, mark;
    long open_files;
};

typedef struct fv_file {
    fv_vfs *v;
    tome_file *base;
    bool is_log;
} fv_file;

static _Thread_local int g_in_base;

int fv_in_base(void) { return g_in_base; }

const char *fv_op_name(int op) {
    static const char *n[FV_NOPS] = {"open",  "close", "pread", "pwritev",  "sync",
                                     "truncate", "allocate", "size", "lock", "stat",
                                     "mkdir", "rename", "unlink", "list", "sync_dir"};
    return op >= 0 && op < FV_NOPS ? n[op] : "?";
}

const char *fv_kind_name(int kind) {
    switch (kind) {
    case FV_EIO: return "EIO";
    case FV_ENOSPC: return "ENOSPC";
    case FV_SHORT: return "short write";
    default: return "none";
    }
}

static fv_vfs *FVV(tome_vfs *v) { return (fv_vfs *)(void *)v; }
static fv_file *FVF(tome_file *f) { return (fv_file *)(void *)f; }

/* Counts the operation and decides its fate: 0 (go on), a negative errno,
 * or 1 (short write). */
static int fv_decide(fv_vfs *v, int op, bool space, bool shortable, bool is_log) {
    int r = 0;
    pthread_mutex_lock(&v->mu);
    v->cnt[FV_EIO]++;
    v->by_op[op]++;
    if (space) v->cnt[FV_ENOSPC]++;
    if (shortable) v->cnt[FV_SHORT]++;
    bool elig = v->kind == FV_EIO || (v->kind == FV_ENOSPC && space) ||
                (v->kind == FV_SHORT && shortable);
    if (elig) {
        uint64_t n = v->cnt[v->kind];
        if (n == v->nth || (v->sticky && n > v->nth)) {
            r = v->kind == FV_EIO ? -EIO : v->kind == FV_ENOSPC ? -ENOSPC : 1;
            if (!v->fired) {
                v->fired = true;
                v->fired_op = op;
                v->fired_dw = v->log_writes > v->mark;
                v->fired_log = is_log;
            }
        }
    }
    pthread_mutex_unlock(&v->mu);
    return r;
}

static int fvx_open(tome_vfs *vfs, const char *path, int flags, tome_file **out) {
    fv_vfs *v = FVV(vfs);
    if (out) *out = NULL;
    bool space = false;
    if (flags & TOME_VFS_CREATE) {
        int kind = TOME_VFS_NONE;
        g_in_base++;
        int e = v->base->stat(v->base, path, &kind);
        g_in_base--;
        space = e == 0 && kind == TOME_VFS_NONE;
    }
    size_t l = strlen(path);
    bool is_log = l > 4 && !strcmp(path + l - 4, ".log");
    int d = fv_decide(v, FV_OPEN, space, false, is_log);
    if (d) return d;
    tome_file *bf = NULL;
    g_in_base++;
    int rc = v->base->open(v->base, path, flags, &bf);
    g_in_base--;
    if (rc) return rc;
    fv_file *f = fv_xmalloc(sizeof *f);
    f->v = v;
    f->base = bf;
    f->is_log = is_log;
    pthread_mutex_lock(&v->mu);
    v->open_files++;
    pthread_mutex_unlock(&v->mu);
    *out = (tome_file *)(void *)f;
    return 0;
}

static int fvx_close(tome_file *file) {
    if (!file) return 0;
    fv_file *f = FVF(file);
    fv_vfs *v = f->v;
    int d = fv_decide(v, FV_CLOSE, false, false, f->is_log);
    g_in_base++;
    int rc = v->base->close(f->base);
    g_in_base--;
    free(f);
    pthread_mutex_lock(&v->mu);
    v->open_files--;
    pthread_mutex_unlock(&v->mu);
    return d ? d : rc;
}

static int64_t fvx_pread(tome_file *file, void *buf, size_t len, uint64_t off) {
    fv_file *f = FVF(file);
    int d = fv_decide(f->v, FV_PREAD, false, false, f->is_log);
    if (d) return d;
    g_in_base++;
    int64_t r = f->v->base->pread(f->base, buf, len, off);
    g_in_base--;
    return r;
}

static int fvx_pwritev(tome_file *file, const struct iovec *iov, int iovcnt, uint64_t off) {
    fv_file *f = FVF(file);
    fv_vfs *v = f->v;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
    int d = fv_decide(v, FV_PWRITEV, true, total >= 2, f->is_log);
    if (d < 0) return d;
    if (d == 1) { /* short: the first half of the bytes, then no space */
        size_t want = total / 2, got = 0;
        struct iovec *cut = fv_xmalloc(sizeof *cut * (size_t)(iovcnt ? iovcnt : 1));
        int n = 0;
        for (int i = 0; i < iovcnt && got < want; i++) {
            size_t l = iov[i].iov_len;
            if (l > want - got) l = want - got;
            cut[n].iov_base = iov[i].iov_base;
            cut[n].iov_len = l;
            n++;
            got += l;
        }
        g_in_base++;
        v->base->pwritev(f->base, cut, n, off);
        g_in_base--;
        free(cut);
        return -ENOSPC;
    }
    g_in_base++;
    int rc = v->base->pwritev(f->base, iov, iovcnt, off);
    g_in_base--;
    if (rc == 0 && f->is_log && off >= LOG_DATA_START && total > 0) {
        pthread_mutex_lock(&v->mu);
        v->log_writes++;
        pthread_mutex_unlock(&v->mu);
    }
    return rc;
}

static int fvx_sync(tome_file *file, int data_only) {
    fv_file *f = FVF(file);
    int d = fv_decide(f->v, FV_SYNC, true, false, f->is_log);
    if (d) return d;
    if (f->v->skip_sync) return 0;
    g_in_base++;
    int rc = f->v->base->sync(f->base, data_only);
    g_in_base--;
    return rc;
}

static int fvx_truncate(tome_file *file, uint64_t size) {
    fv_file *f = FVF(file);
    int d = fv_decide(f->v, FV_TRUNCATE, true, false, f->is_log);
    if (d) return d;
    g_in_base++;
    int rc = f->v->base->truncate(f->base, size);
    g_in_base--;
    return rc;
}

static int fvx_allocate(tome_file *file, uint64_t off, uint64_t len) {
    fv_file *f = FVF(file);
    int d = fv_decide(f->v, FV_ALLOCATE, true, false, f->is_log);
    if (d) return d;
    g_in_base++;
    int rc = f->v->base->allocate(f->base, off, len);
    g_in_base--;
    return rc;
}

static int fvx_size(tome_file *file, uint64_t *size_out) {
    fv_file *f = FVF(file);
    int d = fv_decide(f->v, FV_SIZE, false, false, f->is_log);
    if (d) return d;
    g_in_base++;
    int rc = f->v->base->size(f->base, size_out);
    g_in_base--;
    return rc;
}

static int fvx_lock(tome_file *file) {
    fv_file *f = FVF(file);
    int d = fv_decide(f->v, FV_LOCK, false, false, f->is_log);
    if (d) return d;
    g_in_base++;
    int rc = f->v->base->lock(f->base);
    g_in_base--;
    return rc;
}

static int fvx_stat(tome_vfs *vfs, const char *path, int *kind_out) {
    fv_vfs *v = FVV(vfs);
    int d = fv_decide(v, FV_STAT, false, false, false);
    if (d) return d;
    g_in_base++;
    int rc = v->base->stat(v->base, path, kind_out);
    g_in_base--;
    return rc;
}

static int fvx_mkdir(tome_vfs *vfs, const char *path) {
    fv_vfs *v = FVV(vfs);
    int d = fv_decide(v, FV_MKDIR, true, false, false);
    if (d) return d;
    g_in_base++;
    int rc = v->base->mkdir(v->base, path);
    g_in_base--;
    return rc;
}

static int fvx_rename(tome_vfs *vfs, const char *from, const char *to) {
    fv_vfs *v = FVV(vfs);
    int d = fv_decide(v, FV_RENAME, true, false, false);
    if (d) return d;
    g_in_base++;
    int rc = v->base->rename(v->base, from, to);
    g_in_base--;
    return rc;
}

static int fvx_unlink(tome_vfs *vfs, const char *path) {
    fv_vfs *v = FVV(vfs);
    int d = fv_decide(v, FV_UNLINK, false, false, false);
    if (d) return d;
    g_in_base++;
    int rc = v->base->unlink(v->base, path);
    g_in_base--;
    return rc;
}

static int fvx_list(tome_vfs *vfs, const char *dir, char ***names_out, size_t *count_out) {
    fv_vfs *v = FVV(vfs);
    if (names_out) *names_out = NULL;
    if (count_out) *count_out = 0;
    int d = fv_decide(v, FV_LIST, false, false, false);
    if (d) return d;
    g_in_base++;
    int rc = v->base->list(v->base, dir, names_out, count_out);
    g_in_base--;
    return rc;
}

static int fvx_sync_dir(tome_vfs *vfs, const char *dir) {
    fv_vfs *v = FVV(vfs);
    int d = fv_decide(v, FV_SYNC_DIR, true, false, false);
    if (d) return d;
    if (v->skip_sync) return 0;
    g_in_base++;
    int rc = v->base->sync_dir(v->base, dir);
    g_in_base--;
    return rc;
}

static uint64_t fvx_now_ms(tome_vfs *vfs) {
    fv_vfs *v = FVV(vfs);
    return v->base->now_ms(v->base);
}

fv_vfs *fv_new(tome_vfs *base, bool skip_sync) {
    fv_vfs *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    pthread_mutex_init(&v->mu, NULL);
    v->base = base;
    v->skip_sync = skip_sync;
    v->vfs = (tome_vfs){
        .name = "fault",
        .open = fvx_open,
        .close = fvx_close,
        .pread = fvx_pread,
        .pwritev = fvx_pwritev,
        .sync = fvx_sync,
        .truncate = fvx_truncate,
        .allocate = fvx_allocate,
        .size = fvx_size,
        .lock = fvx_lock,
        .stat = fvx_stat,
        .mkdir = fvx_mkdir,
        .rename = fvx_rename,
        .unlink = fvx_unlink,
        .list = fvx_list,
        .sync_dir = fvx_sync_dir,
        .now_ms = fvx_now_ms,
        .destroy = NULL,
    };
    return v;
}

void fv_free(fv_vfs *v) {
    if (!v) return;
    pthread_mutex_destroy(&v->mu);
    free(v);
}

tome_vfs *fv_vfs_of(fv_vfs *v) { return &v->vfs; }

void fv_arm(fv_vfs *v, int kind, uint64_t nth, bool sticky) {
    pthread_mutex_lock(&v->mu);
    v->kind = kind;
    v->nth = nth;
    v->sticky = sticky;
    memset(v->cnt, 0, sizeof v->cnt);
    memset(v->by_op, 0, sizeof v->by_op);
    v->fired = false;
    v->fired_op = -1;
    v->fired_dw = false;
    v->fired_log = false;
    v->log_writes = v->mark = 0;
    pthread_mutex_unlock(&v->mu);
}

uint64_t fv_count(fv_vfs *v, int kind) {
    pthread_mutex_lock(&v->mu);
    uint64_t n = kind > 0 && kind < FV_NKINDS ? v->cnt[kind] : 0;
    pthread_mutex_unlock(&v->mu);
    return n;
}

uint64_t fv_op_count(fv_vfs *v, int op) {
    pthread_mutex_lock(&v->mu);
    uint64_t n = op >= 0 && op < FV_NOPS ? v->by_op[op] : 0;
    pthread_mutex_unlock(&v->mu);
    return n;
}

bool fv_fired(fv_vfs *v, int *op, bool *data_written, bool *on_log) {
    pthread_mutex_lock(&v->mu);
    bool f = v->fired;
    if (on_log) *on_log = v->fired_log;
    if (op) *op = v->fired_op;
    if (data_written) *data_written = v->fired_dw;
    pthread_mutex_unlock(&v->mu);
    return f;
}

void fv_mark(fv_vfs *v) {
    pthread_mutex_lock(&v->mu);
    v->mark = v->log_writes;
    pthread_mutex_unlock(&v->mu);
}

long fv_open_files(fv_vfs *v) {
    pthread_mutex_lock(&v->mu);
    long n = v->open_files;
    pthread_mutex_unlock(&v->mu);
    return n;
}

/* ======================================================================== */
/* 2. The crash-simulating vfs                                              */
/* ======================================================================== */

#define SECTOR 512u

enum { P_WRITE, P_TRUNC, P_ALLOC };

typedef struct cpend {
    int type;
    uint64_t off, len;  /* WRITE: range; TRUNC: len = new size; ALLOC: off+len = end */
    uint8_t *data;      /* WRITE */
} cpend;

typedef struct cnode {
    size_t id;
    uint8_t *dur;       /* durable bytes */
    size_t dlen;
    cpend *p;           /* pending since the last sync */
    size_t np, pcap;
} cnode;

typedef struct cent {
    char *path;
    long node;          /* node id, or -1 for a directory */
} cent;

typedef struct cns {
    cent *e;
    size_t n, cap;
} cns;

enum { N_CREATE, N_MKDIR, N_RENAME, N_UNLINK };

typedef struct cnsop {
    int type;
    char *a, *b;        /* path (and rename target) */
    long node;          /* CREATE: node id */
} cnsop;

struct fv_snap {
    uint64_t op;
    char what[160];
    size_t nnodes;
    cnode *nodes;       /* copies; dur NULL for nodes not needed */
    cns dur;
    cnsop *ops;
    size_t nops;
};

struct fv_crash {
    tome_vfs vfs; /* first */
    tome_vfs *base;
    pthread_mutex_t mu;
    cnode **nodes;
    size_t nnodes, capn;
    cns live, dur;
    cnsop *ops;
    size_t nops, capops;
    uint64_t nmut, every, phase, nsync, fail_sync;
    fv_snap **snaps;
    size_t nsnaps, capsnaps, snaphead;
};

typedef struct chandle {
    fv_crash *c;
    tome_file *base;
    long node;
} chandle;

static fv_crash *FC(tome_vfs *v) { return (fv_crash *)(void *)v; }
static chandle *CH(tome_file *f) { return (chandle *)(void *)f; }

const char *fv_img_name(int mode) {
    switch (mode) {
    case FV_IMG_DROP: return "drop-unsynced";
    case FV_IMG_DATA: return "keep-data-lose-names";
    case FV_IMG_ALL: return "keep-all";
    case FV_IMG_TORN: return "torn-at-sector";
    case FV_IMG_SECTORS: return "random-sectors";
    default: return "?";
    }
}

/* ---- name tables ---- */

static long ns_find(const cns *ns, const char *path) {
    for (size_t i = 0; i < ns->n; i++)
        if (!strcmp(ns->e[i].path, path)) return (long)i;
    return -1;
}

static void ns_del(cns *ns, size_t i) {
    free(ns->e[i].path);
    ns->e[i] = ns->e[--ns->n];
}

static void ns_set(cns *ns, const char *path, long node) {
    long i = ns_find(ns, path);
    if (i >= 0) {
        ns->e[i].node = node;
        return;
    }
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 16;
        ns->e = fv_xrealloc(ns->e, ns->cap * sizeof *ns->e);
    }
    ns->e[ns->n].path = fv_xstrdup(path);
    ns->e[ns->n].node = node;
    ns->n++;
}

static void ns_free(cns *ns) {
    for (size_t i = 0; i < ns->n; i++) free(ns->e[i].path);
    free(ns->e);
    memset(ns, 0, sizeof *ns);
}

static void ns_copy(cns *dst, const cns *src) {
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->n; i++) ns_set(dst, src->e[i].path, src->e[i].node);
}

/* 1 when path is a name directly inside dir. */
static int parent_is(const char *path, const char *dir) {
    const char *slash = strrchr(path, '/');
    if (!slash) return !strcmp(dir, ".") || !strcmp(dir, "");
    if (slash == path) return !strcmp(dir, "/");
    size_t l = (size_t)(slash - path);
    return strlen(dir) == l && !strncmp(path, dir, l);
}

/* Applies one name operation to a table. */
static void ns_apply(cns *ns, const cnsop *o) {
    long i;
    switch (o->type) {
    case N_CREATE: ns_set(ns, o->a, o->node); break;
    case N_MKDIR: ns_set(ns, o->a, -1); break;
    case N_RENAME:
        i = ns_find(ns, o->a);
        if (i >= 0) {
            long node = ns->e[i].node;
            ns_del(ns, (size_t)i);
            ns_set(ns, o->b, node);
        }
        break;
    case N_UNLINK:
        i = ns_find(ns, o->a);
        if (i >= 0) ns_del(ns, (size_t)i);
        break;
    }
}

static int op_touches(const cnsop *o, const char *dir) {
    return parent_is(o->a, dir) || (o->b && parent_is(o->b, dir));
}

static void nsop_free(cnsop *o) {
    free(o->a);
    free(o->b);
}

/* ---- bytes ---- */

static void bytes_resize(uint8_t **p, size_t *len, size_t n) {
    if (n > *len) {
        *p = fv_xrealloc(*p, n);
        memset(*p + *len, 0, n - *len);
    }
    *len = n;
}

static void apply_write(uint8_t **p, size_t *len, uint64_t off, const uint8_t *d, uint64_t n) {
    if (off + n > *len) bytes_resize(p, len, (size_t)(off + n));
    memcpy(*p + off, d, (size_t)n);
}

static void apply_pend(uint8_t **p, size_t *len, const cpend *q) {
    switch (q->type) {
    case P_WRITE: apply_write(p, len, q->off, q->data, q->len); break;
    case P_TRUNC: bytes_resize(p, len, (size_t)q->len); break;
    case P_ALLOC:
        if (q->off + q->len > *len) bytes_resize(p, len, (size_t)(q->off + q->len));
        break;
    }
}

static void pend_clear(cnode *n) {
    for (size_t i = 0; i < n->np; i++) free(n->p[i].data);
    n->np = 0;
}

static void pend_add(cnode *n, int type, uint64_t off, uint64_t len, uint8_t *data) {
    if (n->np == n->pcap) {
        n->pcap = n->pcap ? n->pcap * 2 : 8;
        n->p = fv_xrealloc(n->p, n->pcap * sizeof *n->p);
    }
    n->p[n->np++] = (cpend){type, off, len, data};
}

/* ---- snapshots ---- */

static fv_snap *snap_take(fv_crash *c, const char *what) {
    fv_snap *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->op = c->nmut;
    snprintf(s->what, sizeof s->what, "%s", what);
    s->nnodes = c->nnodes;
    s->nodes = calloc(c->nnodes ? c->nnodes : 1, sizeof *s->nodes);
    if (!s->nodes) abort();
    char *need = calloc(c->nnodes ? c->nnodes : 1, 1);
    if (!need) abort();
    for (size_t i = 0; i < c->dur.n; i++)
        if (c->dur.e[i].node >= 0) need[c->dur.e[i].node] = 1;
    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].type == N_CREATE) need[c->ops[i].node] = 1;
    for (size_t i = 0; i < c->nnodes; i++) {
        if (!need[i]) continue;
        const cnode *src = c->nodes[i];
        cnode *d = &s->nodes[i];
        d->id = i;
        d->dlen = src->dlen;
        d->dur = fv_xmalloc(src->dlen);
        if (src->dlen) memcpy(d->dur, src->dur, src->dlen);
        d->np = d->pcap = src->np;
        d->p = fv_xmalloc(sizeof *d->p * (src->np ? src->np : 1));
        for (size_t k = 0; k < src->np; k++) {
            d->p[k] = src->p[k];
            if (src->p[k].data) {
                d->p[k].data = fv_xmalloc((size_t)src->p[k].len);
                memcpy(d->p[k].data, src->p[k].data, (size_t)src->p[k].len);
            }
        }
    }
    free(need);
    ns_copy(&s->dur, &c->dur);
    s->nops = c->nops;
    s->ops = fv_xmalloc(sizeof *s->ops * (c->nops ? c->nops : 1));
    for (size_t i = 0; i < c->nops; i++) {
        s->ops[i] = c->ops[i];
        s->ops[i].a = fv_xstrdup(c->ops[i].a);
        s->ops[i].b = c->ops[i].b ? fv_xstrdup(c->ops[i].b) : NULL;
    }
    return s;
}

void fv_snap_free(fv_snap *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nnodes; i++) {
        free(s->nodes[i].dur);
        for (size_t k = 0; k < s->nodes[i].np; k++) free(s->nodes[i].p[k].data);
        free(s->nodes[i].p);
    }
    free(s->nodes);
    ns_free(&s->dur);
    for (size_t i = 0; i < s->nops; i++) nsop_free(&s->ops[i]);
    free(s->ops);
    free(s);
}

uint64_t fv_snap_op(const fv_snap *s) { return s->op; }
const char *fv_snap_what(const fv_snap *s) { return s->what; }

/* Counts a mutating operation (caller holds mu) and snapshots if due. */
static void mut_done(fv_crash *c, const char *fmt_what) {
    c->nmut++;
    if (c->every && c->nmut % c->every == c->phase) {
        if (c->nsnaps == c->capsnaps) {
            c->capsnaps = c->capsnaps ? c->capsnaps * 2 : 16;
            c->snaps = fv_xrealloc(c->snaps, c->capsnaps * sizeof *c->snaps);
        }
        char w[160];
        snprintf(w, sizeof w, "op %llu: %s", (unsigned long long)c->nmut, fmt_what);
        c->snaps[c->nsnaps++] = snap_take(c, w);
    }
}

/* ---- the vfs ---- */

static cnode *node_new(fv_crash *c) {
    cnode *n = calloc(1, sizeof *n);
    if (!n) abort();
    if (c->nnodes == c->capn) {
        c->capn = c->capn ? c->capn * 2 : 16;
        c->nodes = fv_xrealloc(c->nodes, c->capn * sizeof *c->nodes);
    }
    n->id = c->nnodes;
    c->nodes[c->nnodes++] = n;
    return n;
}

static void nsop_add(fv_crash *c, int type, const char *a, const char *b, long node) {
    if (c->nops == c->capops) {
        c->capops = c->capops ? c->capops * 2 : 16;
        c->ops = fv_xrealloc(c->ops, c->capops * sizeof *c->ops);
    }
    c->ops[c->nops++] = (cnsop){type, fv_xstrdup(a), b ? fv_xstrdup(b) : NULL, node};
}

static int cx_open(tome_vfs *vfs, const char *path, int flags, tome_file **out) {
    fv_crash *c = FC(vfs);
    if (out) *out = NULL;
    pthread_mutex_lock(&c->mu);
    long li = ns_find(&c->live, path);
    tome_file *bf = NULL;
    int rc = c->base->open(c->base, path, flags, &bf);
    if (rc == 0) {
        long node;
        if (li >= 0) {
            node = c->live.e[li].node;
        } else { /* created */
            node = (long)node_new(c)->id;
            ns_set(&c->live, path, node);
            nsop_add(c, N_CREATE, path, NULL, node);
            char w[160];
            snprintf(w, sizeof w, "create %s", path);
            mut_done(c, w);
        }
        chandle *h = fv_xmalloc(sizeof *h);
        h->c = c;
        h->base = bf;
        h->node = node;
        *out = (tome_file *)(void *)h;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_close(tome_file *f) {
    if (!f) return 0;
    chandle *h = CH(f);
    int rc = h->c->base->close(h->base);
    free(h);
    return rc;
}

static int64_t cx_pread(tome_file *f, void *buf, size_t len, uint64_t off) {
    chandle *h = CH(f);
    return h->c->base->pread(h->base, buf, len, off);
}

static int cx_pwritev(tome_file *f, const struct iovec *iov, int iovcnt, uint64_t off) {
    chandle *h = CH(f);
    fv_crash *c = h->c;
    pthread_mutex_lock(&c->mu);
    int rc = c->base->pwritev(h->base, iov, iovcnt, off);
    if (rc == 0) {
        size_t total = 0;
        for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
        if (total) {
            uint8_t *d = fv_xmalloc(total);
            size_t at = 0;
            for (int i = 0; i < iovcnt; i++) {
                if (iov[i].iov_len) memcpy(d + at, iov[i].iov_base, iov[i].iov_len);
                at += iov[i].iov_len;
            }
            pend_add(c->nodes[h->node], P_WRITE, off, total, d);
        }
    }
    char w[160];
    snprintf(w, sizeof w, "pwritev node %ld @%llu", h->node, (unsigned long long)off);
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_sync(tome_file *f, int data_only) {
    chandle *h = CH(f);
    fv_crash *c = h->c;
    pthread_mutex_lock(&c->mu);
    cnode *n = c->nodes[h->node];
    int rc;
    c->nsync++;
    if (c->fail_sync && c->nsync == c->fail_sync) {
        /* The dirty pages are gone: the disk keeps the old bytes, and so
         * does what the process reads once the cache lets the pages go
         * (at once, here). */
        pend_clear(n);
        c->base->truncate(h->base, n->dlen);
        struct iovec iov = {n->dur, n->dlen};
        if (n->dlen) c->base->pwritev(h->base, &iov, 1, 0);
        rc = -EIO;
    } else {
        rc = c->base->sync(h->base, data_only);
        if (rc == 0) {
            for (size_t i = 0; i < n->np; i++) apply_pend(&n->dur, &n->dlen, &n->p[i]);
            pend_clear(n);
        }
    }
    char w[160];
    snprintf(w, sizeof w, "sync node %ld%s", h->node, rc ? " (failed)" : "");
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_truncate(tome_file *f, uint64_t size) {
    chandle *h = CH(f);
    fv_crash *c = h->c;
    pthread_mutex_lock(&c->mu);
    int rc = c->base->truncate(h->base, size);
    if (rc == 0) pend_add(c->nodes[h->node], P_TRUNC, 0, size, NULL);
    char w[160];
    snprintf(w, sizeof w, "truncate node %ld to %llu", h->node, (unsigned long long)size);
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_allocate(tome_file *f, uint64_t off, uint64_t len) {
    chandle *h = CH(f);
    fv_crash *c = h->c;
    pthread_mutex_lock(&c->mu);
    int rc = c->base->allocate(h->base, off, len);
    if (rc == 0 && len) pend_add(c->nodes[h->node], P_ALLOC, off, len, NULL);
    char w[160];
    snprintf(w, sizeof w, "allocate node %ld to %llu", h->node, (unsigned long long)(off + len));
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_size(tome_file *f, uint64_t *size_out) {
    chandle *h = CH(f);
    return h->c->base->size(h->base, size_out);
}

static int cx_lock(tome_file *f) {
    chandle *h = CH(f);
    return h->c->base->lock(h->base);
}

static int cx_stat(tome_vfs *vfs, const char *path, int *kind_out) {
    fv_crash *c = FC(vfs);
    return c->base->stat(c->base, path, kind_out);
}

static int cx_mkdir(tome_vfs *vfs, const char *path) {
    fv_crash *c = FC(vfs);
    pthread_mutex_lock(&c->mu);
    int rc = c->base->mkdir(c->base, path);
    if (rc == 0) {
        ns_set(&c->live, path, -1);
        nsop_add(c, N_MKDIR, path, NULL, -1);
    }
    char w[160];
    snprintf(w, sizeof w, "mkdir %s", path);
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_rename(tome_vfs *vfs, const char *from, const char *to) {
    fv_crash *c = FC(vfs);
    pthread_mutex_lock(&c->mu);
    int rc = c->base->rename(c->base, from, to);
    if (rc == 0) {
        long i = ns_find(&c->live, from);
        if (i >= 0) {
            long node = c->live.e[i].node;
            ns_del(&c->live, (size_t)i);
            ns_set(&c->live, to, node);
        }
        nsop_add(c, N_RENAME, from, to, -1);
    }
    char w[160];
    snprintf(w, sizeof w, "rename %s -> %s", from, to);
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_unlink(tome_vfs *vfs, const char *path) {
    fv_crash *c = FC(vfs);
    pthread_mutex_lock(&c->mu);
    int rc = c->base->unlink(c->base, path);
    if (rc == 0) {
        long i = ns_find(&c->live, path);
        if (i >= 0) ns_del(&c->live, (size_t)i);
        nsop_add(c, N_UNLINK, path, NULL, -1);
    }
    char w[160];
    snprintf(w, sizeof w, "unlink %s", path);
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cx_list(tome_vfs *vfs, const char *dir, char ***names_out, size_t *count_out) {
    fv_crash *c = FC(vfs);
    return c->base->list(c->base, dir, names_out, count_out);
}

static int cx_sync_dir(tome_vfs *vfs, const char *dir) {
    fv_crash *c = FC(vfs);
    pthread_mutex_lock(&c->mu);
    int rc = c->base->sync_dir(c->base, dir);
    if (rc == 0) {
        /* the durable children of dir become the live ones */
        for (size_t i = c->dur.n; i > 0; i--)
            if (parent_is(c->dur.e[i - 1].path, dir)) ns_del(&c->dur, i - 1);
        for (size_t i = 0; i < c->live.n; i++)
            if (parent_is(c->live.e[i].path, dir)) ns_set(&c->dur, c->live.e[i].path, c->live.e[i].node);
        size_t k = 0;
        for (size_t i = 0; i < c->nops; i++) {
            if (op_touches(&c->ops[i], dir)) nsop_free(&c->ops[i]);
            else c->ops[k++] = c->ops[i];
        }
        c->nops = k;
    }
    char w[160];
    snprintf(w, sizeof w, "sync_dir %s", dir);
    mut_done(c, w);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static uint64_t cx_now_ms(tome_vfs *vfs) {
    fv_crash *c = FC(vfs);
    return c->base->now_ms(c->base);
}

fv_crash *fv_crash_new(void) {
    fv_crash *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base = tome_vfs_mem_new();
    if (!c->base) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->vfs = (tome_vfs){
        .name = "crash",
        .open = cx_open,
        .close = cx_close,
        .pread = cx_pread,
        .pwritev = cx_pwritev,
        .sync = cx_sync,
        .truncate = cx_truncate,
        .allocate = cx_allocate,
        .size = cx_size,
        .lock = cx_lock,
        .stat = cx_stat,
        .mkdir = cx_mkdir,
        .rename = cx_rename,
        .unlink = cx_unlink,
        .list = cx_list,
        .sync_dir = cx_sync_dir,
        .now_ms = cx_now_ms,
        .destroy = NULL,
    };
    return c;
}

void fv_crash_free(fv_crash *c) {
    if (!c) return;
    for (size_t i = 0; i < c->nnodes; i++) {
        pend_clear(c->nodes[i]);
        free(c->nodes[i]->p);
        free(c->nodes[i]->dur);
        free(c->nodes[i]);
    }
    free(c->nodes);
    ns_free(&c->live);
    ns_free(&c->dur);
    for (size_t i = 0; i < c->nops; i++) nsop_free(&c->ops[i]);
    free(c->ops);
    for (size_t i = c->snaphead; i < c->nsnaps; i++) fv_snap_free(c->snaps[i]);
    free(c->snaps);
    c->base->destroy(c->base);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

tome_vfs *fv_crash_vfs(fv_crash *c) { return &c->vfs; }

uint64_t fv_crash_ops(fv_crash *c) {
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->nmut;
    pthread_mutex_unlock(&c->mu);
    return n;
}

uint64_t fv_crash_syncs(fv_crash *c) {
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->nsync;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void fv_crash_snap_every(fv_crash *c, uint64_t every, uint64_t phase) {
    pthread_mutex_lock(&c->mu);
    c->every = every;
    c->phase = every ? phase % every : 0;
    pthread_mutex_unlock(&c->mu);
}

void fv_crash_fail_sync(fv_crash *c, uint64_t nth) {
    pthread_mutex_lock(&c->mu);
    c->fail_sync = nth;
    pthread_mutex_unlock(&c->mu);
}

fv_snap *fv_crash_pop(fv_crash *c) {
    pthread_mutex_lock(&c->mu);
    fv_snap *s = NULL;
    if (c->snaphead < c->nsnaps) {
        s = c->snaps[c->snaphead++];
        if (c->snaphead == c->nsnaps) c->snaphead = c->nsnaps = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return s;
}

fv_snap *fv_crash_snap_now(fv_crash *c) {
    pthread_mutex_lock(&c->mu);
    char w[160];
    snprintf(w, sizeof w, "after op %llu (at rest)", (unsigned long long)c->nmut);
    fv_snap *s = snap_take(c, w);
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* ---- images ---- */

/* The content of node n in the image. */
static void image_bytes(const cnode *n, int mode, uint64_t *rs, uint8_t **out, size_t *len) {
    *out = fv_xmalloc(n->dlen);
    *len = n->dlen;
    if (n->dlen) memcpy(*out, n->dur, n->dlen);
    switch (mode) {
    case FV_IMG_DROP: break;
    case FV_IMG_DATA:
    case FV_IMG_ALL:
        for (size_t i = 0; i < n->np; i++) apply_pend(out, len, &n->p[i]);
        break;
    case FV_IMG_TORN: {
        size_t t = (size_t)(fv_rand(rs) % (n->np + 1));
        for (size_t i = 0; i < t; i++) apply_pend(out, len, &n->p[i]);
        if (t < n->np && n->p[t].type == P_WRITE) {
            const cpend *q = &n->p[t];
            uint64_t b0 = (q->off / SECTOR + 1) * SECTOR, end = q->off + q->len;
            if (b0 < end) {
                uint64_t m = (end - 1 - b0) / SECTOR + 1;
                uint64_t b = b0 + (fv_rand(rs) % m) * SECTOR;
                apply_write(out, len, q->off, q->data, b - q->off);
            }
        }
        break;
    }
    case FV_IMG_SECTORS:
        for (size_t i = 0; i < n->np; i++) {
            const cpend *q = &n->p[i];
            if (q->type != P_WRITE) {
                if (fv_rand(rs) & 1) apply_pend(out, len, q);
                continue;
            }
            uint64_t at = q->off, end = q->off + q->len;
            while (at < end) {
                uint64_t next = (at / SECTOR + 1) * SECTOR;
                if (next > end) next = end;
                if (fv_rand(rs) & 1) apply_write(out, len, at, q->data + (at - q->off), next - at);
                at = next;
            }
        }
        break;
    }
}

static int cent_cmp(const void *a, const void *b) {
    return strcmp(((const cent *)a)->path, ((const cent *)b)->path);
}

tome_vfs *fv_snap_image(const fv_snap *s, int mode, uint64_t seed) {
    uint64_t rs = seed * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)mode;
    cns ns;
    ns_copy(&ns, &s->dur);
    size_t keep = 0;
    if (mode == FV_IMG_ALL) keep = s->nops;
    else if (mode == FV_IMG_TORN || mode == FV_IMG_SECTORS) keep = (size_t)(fv_rand(&rs) % (s->nops + 1));
    for (size_t i = 0; i < keep; i++) ns_apply(&ns, &s->ops[i]);
    if (ns.n) qsort(ns.e, ns.n, sizeof *ns.e, cent_cmp);
    tome_vfs *img = tome_vfs_mem_new();
    if (!img) {
        ns_free(&ns);
        return NULL;
    }
    /* each node's bytes once (a node may have two durable names) */
    uint8_t **bytes = calloc(s->nnodes ? s->nnodes : 1, sizeof *bytes);
    size_t *lens = calloc(s->nnodes ? s->nnodes : 1, sizeof *lens);
    char *done = calloc(s->nnodes ? s->nnodes : 1, 1);
    if (!bytes || !lens || !done) abort();
    int ok = 1;
    for (size_t i = 0; i < ns.n && ok; i++) {
        const char *p = ns.e[i].path;
        if (!strcmp(p, "/")) continue;
        if (ns.e[i].node < 0) {
            int e = img->mkdir(img, p);
            if (e && e != -ENOENT && e != -EEXIST) ok = 0;
            continue;
        }
        size_t id = (size_t)ns.e[i].node;
        if (!done[id]) {
            image_bytes(&s->nodes[id], mode, &rs, &bytes[id], &lens[id]);
            done[id] = 1;
        }
        tome_file *f = NULL;
        int e = img->open(img, p, TOME_VFS_WRITE | TOME_VFS_CREATE, &f);
        if (e == -ENOENT) continue; /* its directory did not survive */
        if (e) {
            ok = 0;
            break;
        }
        struct iovec iov = {bytes[id], lens[id]};
        if (lens[id] && img->pwritev(f, &iov, 1, 0) != 0) ok = 0;
        img->close(f);
    }
    for (size_t i = 0; i < s->nnodes; i++) free(bytes[i]);
    free(bytes);
    free(lens);
    free(done);
    ns_free(&ns);
    if (!ok) {
        img->destroy(img);
        return NULL;
    }
    return img;
}
