/*
 * engine.c -- the local log engine: a tome_backend over an append-only log
 * of checksummed records split into segment files, with an in-memory
 * ordered index of every key's versions.
 *
 * This file holds the handle's life (open, close), entries, the index
 * pair, visibility and the segment table. Snapshots and reads are in
 * read.c, the commit path and group commit in commit.c, recovery in
 * recover.c, the index file in idxfile.c, compaction in merge.c.
 *
 * The commit path, in short (commit.c; docs/DESIGN.md has the protocol):
 *   1. outside any lock: encode the batch, checksum every record and hash
 *      every key for the index;
 *   2. one thread at a time, the writer, under commit_mu, for its own commit
 *      and every commit queued by other threads meanwhile: validate the read
 *      set against the recent commits, reserve index memory (new keys enter
 *      the index with no version, invisible), roll the segment if the batch
 *      does not fit, take the next seq and timestamp, write the batch with
 *      one pwritev, then add the versions to the index (under ix_lock,
 *      briefly);
 *   3. outside commit_mu: group commit. One fdatasync at a time covers every
 *      commit written before it started; each waiting thread sleeps on its
 *      own semaphore and is woken by the sync that made its commit durable.
 *      Only then does visible_seq, the snapshot that new transactions get,
 *      move forward: nothing is visible before it is durable.
 * A failed write or sync poisons the handle: every later write returns
 * TOME_IO until the store is reopened and recovery re-reads the log. A
 * failed fsync is never retried.
 */
#include "local.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------------- */
/* entries                                                                 */
/* ---------------------------------------------------------------------- */

/* Entries come from the slab allocator (src/os/slab.c): no malloc header,
 * 8-byte rounding. Their size follows from klen, which never changes. */
tome_entry *entry_new(uint8_t slot, const void *key, size_t klen) {
    tome_entry *e = tome_slab_alloc(sizeof *e + klen);
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->slot = slot;
    e->klen = (uint16_t)klen;
    if (klen && key) memcpy(e->key, key, klen); /* NULL: the caller fills it */
    return e;
}

void entry_free(tome_entry *e, void *arg) {
    (void)arg;
    if (!e) return;
    if (e->nver > 1 || e->spill) tome_free(e->v.many.a);
    tome_slab_free(e, sizeof *e + e->klen);
}

static uint32_t cap_of(uint32_t n) {
    uint32_t c = 2;
    while (c < n) c <<= 1;
    return c;
}

/* Ensures room for `want` versions without further allocation.
 * Representation: nver == 1 and !spill: the version is inline. Otherwise
 * (nver > 1, or spill) the versions are in `many`, whose capacity is at
 * least cap_of(max(nver, 2)). spill marks an array holding 0 or 1 version
 * (room reserved ahead of pushes). */
int entry_reserve(tome_entry *e, uint32_t want) {
    if (want <= 1) return 0;
    if (e->nver <= 1 && !e->spill) {
        tome_ver *a = tome_malloc(sizeof(tome_ver) * cap_of(want));
        if (!a) return TOME_NOMEM;
        if (e->nver == 1) a[0] = e->v.one;
        e->v.many.a = a;
        e->spill = 1;
        tome_entry_sync_newest(e);
        return 0;
    }
    if (cap_of(e->nver > 2 ? e->nver : 2) >= want) return 0;
    tome_ver *a = tome_realloc(e->v.many.a, sizeof(tome_ver) * cap_of(want));
    if (!a) return TOME_NOMEM;
    e->v.many.a = a;
    return 0;
}

/* Appends v. Room must have been reserved (entry_reserve) unless nver == 0. */
void entry_push(tome_entry *e, const tome_ver *v) {
    if (e->spill || e->nver > 1) {
        e->v.many.a[e->nver++] = *v;
        if (e->nver > 1) e->spill = 0;
        tome_entry_sync_newest(e);
        return;
    }
    if (e->nver == 0) {
        e->v.one = *v;
        e->nver = 1;
    }
    /* nver == 1 inline without a reservation: a caller bug; nothing is written */
}

/* Undoes an entry_reserve that was not followed by a push. */
void entry_drop_flags(tome_entry *e) {
    if (!e->spill) return;
    tome_ver *a = e->v.many.a;
    if (e->nver == 1) e->v.one = a[0];
    tome_free(a);
    e->spill = 0;
}

/* ---------------------------------------------------------------------- */
/* the index pair: the ordered tree for iteration, the hash for lookups     */
/* ---------------------------------------------------------------------- */

tome_entry *ix_find(local *L, uint8_t slot, const void *key, size_t klen) {
    if (klen > TOME_MAX_KEY_LEN) return NULL;
    return L->kh ? tome_keyhash_find(L->kh, slot, key, klen) : tome_index_find(L->ix, slot, key, klen);
}

uint64_t ix_hash(uint8_t slot, const void *key, size_t klen) { return tome_keyhash_hash(slot, key, klen); }

void ix_prefetch(local *L, uint64_t h) {
    if (L->kh) tome_keyhash_prefetch(L->kh, h);
}

tome_entry *ix_find_h(local *L, uint64_t h, uint8_t slot, const void *key, size_t klen) {
    if (klen > TOME_MAX_KEY_LEN) return NULL;
    return L->kh ? tome_keyhash_find_h(L->kh, h, slot, key, klen) : tome_index_find(L->ix, slot, key, klen);
}

int ix_insert_h(local *L, tome_entry *e, uint64_t h) {
    if (L->kh && tome_keyhash_reserve(L->kh, 1) != 0) return TOME_NOMEM;
    if (tome_index_insert(L->ix, e) != 0) return TOME_NOMEM;
    if (L->kh) tome_keyhash_insert_h(L->kh, e, h); /* room reserved: cannot fail */
    return 0;
}

int ix_insert(local *L, tome_entry *e) { return ix_insert_h(L, e, ix_hash(e->slot, e->key, e->klen)); }

int ix_append(local *L, tome_entry *e) {
    if (L->kh && tome_keyhash_reserve(L->kh, 1) != 0) return TOME_NOMEM;
    if (tome_index_append(L->ix, e) != 0) return TOME_NOMEM;
    if (L->kh) tome_keyhash_insert(L->kh, e);
    return 0;
}

int ix_build(local *L, tome_entry **ents, size_t n) {
    if (L->kh && tome_keyhash_reserve(L->kh, n) != 0) return TOME_NOMEM;
    int rc = tome_index_build(L->ix, ents, n); /* bottom-up; empty on failure */
    if (rc) return rc == TOME_NOMEM ? TOME_NOMEM : TOME_CORRUPT;
    if (L->kh) tome_keyhash_insert_many(L->kh, ents, n);
    return 0;
}

void ix_remove(local *L, tome_entry *e) {
    tome_index_remove(L->ix, e);
    if (L->kh) tome_keyhash_remove(L->kh, e);
}

int ix_reset(local *L) {
    if (L->ix) tome_index_free(L->ix, entry_free, NULL);
    tome_keyhash_free(L->kh);
    L->ix = tome_index_new();
    L->kh = tome_keyhash_new();
    L->nversions = 0;
    return L->ix && L->kh ? 0 : TOME_NOMEM;
}

/* ---------------------------------------------------------------------- */
/* visibility                                                              */
/* ---------------------------------------------------------------------- */

/*
 * Which versions of a key a snapshot (seq, horizon h) sees.
 *
 * A merge with horizon h keeps, for each key: every version newer than h,
 * and of the versions at or before h the newest K (K = history_versions, at
 * least 1), minus any removal left at the bottom of what is kept (a removal
 * with nothing older kept means "absent", so it is dropped: that is how the
 * trash is emptied). A snapshot whose horizon is h sees exactly that set,
 * restricted to versions <= its seq, whether or not a merge has physically
 * dropped the others yet. Because the versions are sorted, the set is a
 * contiguous range [b, m): this function returns b and m.
 */
void local_vis_range(local *L, const tome_ver *v, uint32_t n, uint64_t seq, uint64_t h,
                      uint32_t *b_out, uint32_t *m_out) {
    uint32_t K = L->history_versions > 1 ? L->history_versions : 1;
    uint32_t j = 0, m = 0;
    while (j < n && v[j].seq <= h) j++;
    uint32_t b = j > K ? j - K : 0;
    while (b < j && (v[b].flags & TOME_VER_REMOVED)) b++;
    while (m < n && v[m].seq <= seq) m++;
    *b_out = b;
    *m_out = m;
}

/* ---------------------------------------------------------------------- */
/* segments                                                                */
/* ---------------------------------------------------------------------- */

void seg_name(char *out, size_t n, int merged, uint64_t lo, uint64_t hi) {
    if (merged) snprintf(out, n, "%016llx-%016llx.mrg", (unsigned long long)lo, (unsigned long long)hi);
    else snprintf(out, n, "%016llx.log", (unsigned long long)lo);
}

int local_path(local *L, const char *name, char **out) {
    size_t a = strlen(L->dir), b = strlen(name);
    char *p = tome_malloc(a + b + 2);
    if (!p) return TOME_NOMEM;
    memcpy(p, L->dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    *out = p;
    return 0;
}

seg *seg_new(local *L) {
    (void)L;
    seg *s = tome_calloc(1, sizeof *s);
    if (!s) return NULL;
    atomic_init(&s->refs, 1);
    atomic_init(&s->synced, 0);
    return s;
}

const uint8_t *seg_map(local *L, seg *s, uint64_t end) {
    const uint8_t *m = atomic_load_explicit(&s->map, memory_order_acquire);
    if (m) return end <= s->map_len ? m : NULL;
    if (!L->use_map || atomic_load_explicit(&s->map_failed, memory_order_relaxed) || !s->f) return NULL;
    pthread_mutex_lock(&L->map_mu);
    m = atomic_load_explicit(&s->map, memory_order_relaxed);
    if (!m && !atomic_load(&s->map_failed)) {
        uint64_t size = 0;
        const void *p = NULL;
        if (L->vfs->size(s->f, &size) == 0 && size > 0 && L->vfs->map(s->f, size, &p) == 0) {
            s->map_len = size;
            m = p;
            atomic_store_explicit(&s->map, m, memory_order_release);
        } else {
            atomic_store(&s->map_failed, 1);
        }
    }
    pthread_mutex_unlock(&L->map_mu);
    return m && end <= s->map_len ? m : NULL;
}

void seg_unmap(local *L, seg *s) {
    const uint8_t *m = atomic_load(&s->map);
    if (m) L->vfs->unmap(L->vfs, m, s->map_len);
    atomic_store(&s->map, NULL);
}

/* Drops a reference; the last one closes the file and, for a segment a
 * merge superseded, removes it. */
void seg_unref(local *L, seg *s) {
    if (!s) return;
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    seg_unmap(L, s);
    if (s->f) L->vfs->close(s->f);
    if (s->dead && !L->read_only) {
        char *p;
        if (local_path(L, s->name, &p) == 0) {
            L->vfs->unlink(L->vfs, p);
            tome_free(p);
        }
    }
    tome_free(s);
}

/* Gives s an in-memory id and enters it in the id table. Caller holds
 * ix_lock for writing (or is alone, during open). */
int seg_table_add(local *L, seg *s) {
    int rc = seg_table_reserve(L);
    if (rc) return rc;
    s->id = L->next_id++;
    L->segs[s->id] = s;
    return 0;
}

/* Makes room for one more id without allocating later. */
int seg_table_reserve(local *L) {
    if (L->next_id >= (1u << 24)) return tome_err(L->base.db, TOME_IO, "too many segments opened");
    if (L->next_id >= L->nsegs_cap) {
        uint32_t nc = L->nsegs_cap ? L->nsegs_cap * 2 : 64;
        seg **t = tome_realloc(L->segs, nc * sizeof *t);
        if (!t) return TOME_NOMEM;
        memset(t + L->nsegs_cap, 0, (nc - L->nsegs_cap) * sizeof *t);
        L->segs = t;
        L->nsegs_cap = nc;
    }
    return 0;
}

int local_io_err(local *L, int e, const char *what, const char *name) {
    return tome_err(L->base.db, e == -ENOMEM ? TOME_NOMEM : TOME_IO, "%s %s: %s", what,
                    name ? name : "", strerror(-e));
}

/* Creates log segment file number `fileno`: header written and synced,
 * space preallocated, directory synced. */
int local_create_log(local *L, uint64_t fileno, uint64_t base_seq, seg **out) {
    seg *s = seg_new(L);
    if (!s) return TOME_NOMEM;
    s->lo = s->hi = fileno;
    seg_name(s->name, sizeof s->name, 0, fileno, fileno);
    char *p;
    int rc = local_path(L, s->name, &p);
    if (rc) { tome_free(s); return rc; }
    int e = L->vfs->open(L->vfs, p, TOME_VFS_WRITE | TOME_VFS_CREATE | TOME_VFS_EXCL, &s->f);
    tome_free(p);
    if (e) {
        rc = local_io_err(L, e, "create", s->name);
        tome_free(s);
        return rc;
    }
    uint8_t h[SEG_HDR_SIZE];
    seg_hdr hd = {0};
    hd.lo = hd.hi = fileno;
    hd.base_seq = base_seq;
    seg_hdr_encode(h, &hd);
    struct iovec iov = {h, SEG_HDR_SIZE};
    s->cap = L->segment_size;
    if ((e = L->vfs->pwritev(s->f, &iov, 1, 0)) != 0 ||
        (e = L->vfs->allocate(s->f, 0, s->cap)) != 0 ||
        (!L->memory && (e = L->vfs->sync(s->f, 0)) != 0) ||
        (!L->memory && (e = L->vfs->sync_dir(L->vfs, L->dir)) != 0)) {
        rc = local_io_err(L, e, "prepare segment", s->name);
        L->vfs->close(s->f);
        if ((p = NULL, local_path(L, s->name, &p)) == 0) {
            L->vfs->unlink(L->vfs, p);
            tome_free(p);
        }
        tome_free(s);
        return rc;
    }
    s->size = SEG_HDR_SIZE;
    atomic_store(&s->synced, SEG_HDR_SIZE);
    *out = s;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* commit timestamps (ctab), under reg_mu                                   */
/* ---------------------------------------------------------------------- */

int ctab_set(local *L, uint64_t seq, uint64_t ts) {
    if (seq < L->ctab_base) return 0;
    uint64_t i = seq - L->ctab_base;
    if (i >= L->ctab_cap) {
        uint64_t nc = L->ctab_cap ? L->ctab_cap : 1024;
        while (nc <= i) nc *= 2;
        uint64_t *t = tome_realloc(L->ctab, nc * sizeof *t);
        if (!t) return TOME_NOMEM;
        L->ctab = t;
        L->ctab_cap = nc;
    }
    while (L->ctab_n < i) { /* unknown entries take the previous time */
        L->ctab[L->ctab_n] = L->ctab_n ? L->ctab[L->ctab_n - 1] : 0;
        L->ctab_n++;
    }
    L->ctab[i] = ts;
    if (L->ctab_n <= i) L->ctab_n = i + 1;
    return 0;
}

uint64_t ctab_get(local *L, uint64_t seq) {
    if (seq == 0) return 0;
    if (seq < L->ctab_base || L->ctab_n == 0) return L->ctab_n ? L->ctab[0] : 0;
    uint64_t i = seq - L->ctab_base;
    if (i >= L->ctab_n) i = L->ctab_n - 1;
    return L->ctab[i];
}

/* ---------------------------------------------------------------------- */
/* figures                                                                  */
/* ---------------------------------------------------------------------- */

static int l_stats(tome_backend *b, tome_stats *out) {
    local *L = (local *)b;
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&L->ix_lock);
    tome_index_cursor c;
    for (tome_entry *e = tome_index_first(L->ix, &c); e; e = tome_index_next(&c)) {
        if (e->nver == 0) continue;
        const tome_ver *v = tome_entry_vers(e);
        out->keys_total++;
        out->versions += e->nver;
        if (!(v[e->nver - 1].flags & TOME_VER_REMOVED)) {
            out->keys++;
            out->live_bytes += e->klen + v[e->nver - 1].vlen;
        }
    }
    for (size_t i = 0; i < L->nlive; i++) out->total_bytes += L->live[i]->size;
    out->segments = L->nlive;
    pthread_rwlock_unlock(&L->ix_lock);
    out->last_seq = atomic_load(&L->visible_seq);
    pthread_mutex_lock(&L->reg_mu);
    out->last_timestamp = ctab_get(L, out->last_seq);
    pthread_mutex_unlock(&L->reg_mu);
    out->horizon = atomic_load(&L->horizon);
    return 0;
}

static void l_last(tome_backend *b, uint64_t *seq, uint64_t *ts) {
    local *L = (local *)b;
    pthread_mutex_lock(&L->reg_mu);
    *seq = atomic_load(&L->visible_seq);
    *ts = ctab_get(L, *seq);
    pthread_mutex_unlock(&L->reg_mu);
}

static uint64_t l_now(tome_backend *b) {
    local *L = (local *)b;
    return L->vfs->now_ms(L->vfs);
}

/* ---------------------------------------------------------------------- */
/* open and close                                                           */
/* ---------------------------------------------------------------------- */

static void local_free(local *L) {
    if (L->ix) tome_index_free(L->ix, entry_free, NULL);
    tome_keyhash_free(L->kh);
    for (size_t i = 0; i < L->nlive; i++) {
        seg *s = L->live[i];
        seg_unmap(L, s);
        if (s->f) L->vfs->close(s->f);
        tome_free(s);
    }
    tome_free(L->live);
    tome_free(L->segs);
    while (L->rc_head) {
        rc_entry *e = L->rc_head;
        L->rc_head = e->next;
        tome_free(e);
    }
    tome_free(L->ctab);
    if (L->lockf) L->vfs->close(L->lockf);
    if (L->own_vfs && L->vfs) L->vfs->destroy(L->vfs);
    tome_free(L->dir);
    pthread_rwlock_destroy(&L->ix_lock);
    pthread_mutex_destroy(&L->commit_mu);
    pthread_mutex_destroy(&L->sync_mu);
    pthread_cond_destroy(&L->sync_cv);
    pthread_mutex_destroy(&L->reg_mu);
    pthread_mutex_destroy(&L->merge_mu);
    pthread_mutex_destroy(&L->map_mu);
    tome_free(L);
}

static int l_close(tome_backend *b) {
    local *L = (local *)b;
    int rc = 0;
    if (atomic_load(&L->poisoned)) {
        /* commits after the failure point may not be durable: say so */
        rc = tome_err(b->db, TOME_IO, "an earlier write or sync failed: the newest commits may not be durable");
    } else if (!L->read_only && !L->memory && L->act) {
        rc = local_sync(b);
        /* the index file only speeds up the next open: if it cannot be
         * written (a full disk), the old one stays and is found stale */
        if (!rc) (void)idxfile_write(L);
    }
    local_free(L);
    return rc;
}

static const tome_backend_ops local_ops = {
    .name = "local",
    .close = l_close,
    .sync = local_sync,
    .snap_begin = local_snap_begin,
    .snap_end = local_snap_end,
    .versions = local_versions,
    .read = local_read,
    .newest = local_newest,
    .cursor_open = local_cursor_open,
    .cursor_next = local_cursor_next,
    .cursor_close = local_cursor_close,
    .commit = local_commit,
    .merge = local_merge,
    .stats = l_stats,
    .last = l_last,
    .now_ms = l_now,
};

/* Syncs the directory that holds `path` (after creating path). */
static int sync_parent(local *L, const char *path) {
    const char *slash = strrchr(path, '/');
    char *parent;
    if (!slash) parent = tome_strndup(".", 1);
    else if (slash == path) parent = tome_strndup("/", 1);
    else parent = tome_strndup(path, (size_t)(slash - path));
    if (!parent) return TOME_NOMEM;
    int e = L->vfs->sync_dir(L->vfs, parent);
    tome_free(parent);
    return e ? local_io_err(L, e, "sync directory of", path) : 0;
}

static _Atomic(tome_vfs *) g_test_vfs;

void tome_local_test_vfs(tome_vfs *vfs) { atomic_store(&g_test_vfs, vfs); }

int tome_local_open(tome_db *db, const char *path, const tome_options *o, tome_backend **out) {
    return local_open_ex(db, path, o, 0, out);
}

int local_open_ex(tome_db *db, const char *path, const tome_options *o, int no_index, tome_backend **out) {
    local *L = tome_calloc(1, sizeof *L);
    if (!L) return tome_err(db, TOME_NOMEM, "out of memory");
    L->base.ops = &local_ops;
    L->base.db = db;
    pthread_rwlock_init(&L->ix_lock, NULL);
    pthread_mutex_init(&L->commit_mu, NULL);
    pthread_mutex_init(&L->sync_mu, NULL);
    pthread_cond_init(&L->sync_cv, NULL);
    pthread_mutex_init(&L->reg_mu, NULL);
    pthread_mutex_init(&L->merge_mu, NULL);
    pthread_mutex_init(&L->map_mu, NULL);
    L->reg.next = L->reg.prev = &L->reg;
    L->sync_mode = o->sync;
    L->read_only = o->read_only;
    L->segment_size = o->segment_size ? o->segment_size : DEFAULT_SEGMENT_SIZE;
    if (L->segment_size < 4096) L->segment_size = 4096;
    L->history_versions = o->history_versions;
    L->history_ms = o->history_ms;
    L->next_file = 1;
    L->no_index = no_index;
    int rc = 0;
    if (!strcmp(path, ":memory:")) {
        L->memory = 1;
        L->vfs = tome_vfs_mem_new();
        L->own_vfs = 1;
        L->dir = tome_strndup("/mem", 4);
        if (!L->vfs || !L->dir) {
            rc = tome_err(db, TOME_NOMEM, "out of memory");
            goto fail;
        }
        int e = L->vfs->mkdir(L->vfs, L->dir);
        if (e) {
            rc = local_io_err(L, e, "mkdir", L->dir);
            goto fail;
        }
    } else {
        tome_vfs *tv = atomic_load(&g_test_vfs);
        L->vfs = tv ? tv : tome_vfs_posix();
        L->use_map = !o->no_mmap && L->vfs->map && L->vfs->unmap;
        L->dir = tome_strndup(path, strlen(path));
        if (!L->dir) {
            rc = tome_err(db, TOME_NOMEM, "out of memory");
            goto fail;
        }
        int kind = 0;
        int e = L->vfs->stat(L->vfs, path, &kind);
        if (e) {
            rc = local_io_err(L, e, "stat", path);
            goto fail;
        }
        if (kind == TOME_VFS_NONE) {
            if (o->must_exist || o->read_only) {
                rc = tome_err(db, TOME_NOTFOUND, "%s: no such store", path);
                goto fail;
            }
            e = L->vfs->mkdir(L->vfs, path);
            if (e && e != -EEXIST) {
                rc = local_io_err(L, e, "create store directory", path);
                goto fail;
            }
            if ((rc = sync_parent(L, path)) != 0) goto fail;
        } else if (kind != TOME_VFS_DIR) {
            rc = tome_err(db, TOME_IO, "%s: not a directory (a tome store is a directory)", path);
            goto fail;
        } else if (o->must_exist || o->read_only) {
            /* an existing directory is a store only if it has its lock file
             * (an unmounted mount point must not become an empty store) */
            char *lp;
            if ((rc = local_path(L, "LOCK", &lp)) != 0) goto fail;
            int lk = 0;
            e = L->vfs->stat(L->vfs, lp, &lk);
            tome_free(lp);
            if (e) {
                rc = local_io_err(L, e, "stat lock file in", path);
                goto fail;
            }
            if (lk != TOME_VFS_FILE) {
                rc = tome_err(db, TOME_NOTFOUND, "%s: no tome store in this directory", path);
                goto fail;
            }
        }
    }
    {
        char *lp;
        if ((rc = local_path(L, "LOCK", &lp)) != 0) goto fail;
        int e = L->vfs->open(L->vfs, lp, L->read_only && !L->memory ? TOME_VFS_READ : (TOME_VFS_WRITE | TOME_VFS_CREATE),
                             &L->lockf);
        tome_free(lp);
        if (e) {
            rc = local_io_err(L, e, "open lock file in", path);
            goto fail;
        }
        if (L->lockf && (e = L->vfs->lock(L->lockf)) != 0) {
            rc = e == -EWOULDBLOCK || e == -EAGAIN
                     ? tome_err(db, TOME_LOCKED, "%s: the store is open elsewhere", path)
                     : local_io_err(L, e, "lock", path);
            goto fail;
        }
    }
    L->ix = tome_index_new();
    L->kh = tome_keyhash_new();
    if (!L->ix || !L->kh) {
        rc = tome_err(db, TOME_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = local_recover(L)) != 0) goto fail;
    atomic_store(&L->durable_seq, L->last_seq);
    atomic_store(&L->visible_seq, L->last_seq);
    *out = &L->base;
    return 0;
fail:
    local_free(L);
    return rc;
}
