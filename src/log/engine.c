/*
 * engine.c -- the local log engine: a tome_backend over an append-only log
 * of checksummed records split into segment files, with an in-memory
 * ordered index of every key's versions.
 *
 * This file holds the handle's life (open, close), the segment table,
 * snapshots, reads, the commit path and group commit. Recovery is in
 * recover.c, the index file in idxfile.c, compaction in merge.c.
 *
 * The commit path, in short (docs/DESIGN.md has the full protocol):
 *   1. outside any lock: encode the batch and checksum every record;
 *   2. under commit_mu: validate the read set against the recent commits
 *      (the list of what every commit after the oldest open snapshot
 *      wrote), reserve index memory (new keys enter the index with no
 *      version, invisible), roll the segment if the batch does not fit,
 *      take the next seq and timestamp, write the batch with one pwritev,
 *      then add the versions to the index (under ix_lock, briefly);
 *   3. outside commit_mu: wait for durability. The first waiter becomes the
 *      leader and runs one fdatasync for every batch written so far; the
 *      others wait on it (group commit). Only then does visible_seq, the
 *      snapshot that new transactions get, move forward: nothing is visible
 *      before it is durable.
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

tome_entry *entry_new(uint8_t slot, const void *key, size_t klen) {
    tome_entry *e = tome_malloc(sizeof *e + klen);
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->slot = slot;
    e->klen = (uint16_t)klen;
    if (klen) memcpy(e->key, key, klen);
    return e;
}

void entry_free(tome_entry *e, void *arg) {
    (void)arg;
    if (!e) return;
    if (e->nver > 1 || e->spill) tome_free(e->v.many);
    tome_free(e);
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
        e->v.many = a;
        e->spill = 1;
        return 0;
    }
    if (cap_of(e->nver > 2 ? e->nver : 2) >= want) return 0;
    tome_ver *a = tome_realloc(e->v.many, sizeof(tome_ver) * cap_of(want));
    if (!a) return TOME_NOMEM;
    e->v.many = a;
    return 0;
}

/* Appends v. Room must have been reserved (entry_reserve) unless nver == 0. */
void entry_push(tome_entry *e, const tome_ver *v) {
    if (e->spill || e->nver > 1) {
        e->v.many[e->nver++] = *v;
        if (e->nver > 1) e->spill = 0;
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
    tome_ver *a = e->v.many;
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

int ix_insert(local *L, tome_entry *e) {
    if (L->kh && tome_keyhash_reserve(L->kh, 1) != 0) return TOME_NOMEM;
    if (tome_index_insert(L->ix, e) != 0) return TOME_NOMEM;
    if (L->kh) tome_keyhash_insert(L->kh, e); /* room reserved: cannot fail */
    return 0;
}

int ix_append(local *L, tome_entry *e) {
    if (L->kh && tome_keyhash_reserve(L->kh, 1) != 0) return TOME_NOMEM;
    if (tome_index_append(L->ix, e) != 0) return TOME_NOMEM;
    if (L->kh) tome_keyhash_insert(L->kh, e);
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
static void vis_range(local *L, const tome_ver *v, uint32_t n, uint64_t seq, uint64_t h,
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

/* Drops a reference; the last one closes the file and, for a segment a
 * merge superseded, removes it. */
void seg_unref(local *L, seg *s) {
    if (!s) return;
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
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

static int io_err(local *L, int e, const char *what, const char *name) {
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
        rc = io_err(L, e, "create", s->name);
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
        rc = io_err(L, e, "prepare segment", s->name);
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
/* reading a record                                                         */
/* ---------------------------------------------------------------------- */

int local_read_record(local *L, seg *s, uint64_t off, uint8_t slot, const void *key, size_t klen,
                      uint32_t vlen, int merged, tome_alloc_fn alloc, void *actx,
                      const void **val_out) {
    size_t hdr = REC_HDR_SIZE + (merged ? REC_MERGED_EXTRA : 0);
    size_t total = hdr + klen + vlen;
    uint8_t *buf = alloc(actx, total);
    if (!buf) return TOME_NOMEM;
    int64_t r = L->vfs->pread(s->f, buf, total, off);
    if (r < 0) return io_err(L, (int)r, "read", s->name);
    if ((size_t)r != total)
        return tome_err(L->base.db, TOME_CORRUPT, "%s: record at %llu cut short", s->name,
                        (unsigned long long)off);
    int want = merged ? REC_MPUT : REC_PUT;
    if (tome_get32(buf) != tome_crc32c(0, buf + 4, total - 4) || buf[4] != want || buf[5] != slot ||
        tome_get32(buf + 8) != klen || tome_get32(buf + 12) != vlen ||
        (klen && memcmp(buf + hdr, key, klen) != 0))
        return tome_err(L->base.db, TOME_CORRUPT, "%s: record at %llu fails its checksum", s->name,
                        (unsigned long long)off);
    *val_out = buf + hdr + klen;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* snapshots                                                                */
/* ---------------------------------------------------------------------- */

static int l_snap_begin(tome_backend *b, uint64_t at, tome_snap *out) {
    local *L = (local *)b;
    snap_reg *r = tome_malloc(sizeof *r);
    if (!r) return TOME_NOMEM;
    pthread_mutex_lock(&L->reg_mu);
    uint64_t vis = atomic_load(&L->visible_seq);
    uint64_t h = atomic_load(&L->horizon);
    uint64_t seq = vis;
    if (at != UINT64_MAX) {
        if (at > vis) {
            pthread_mutex_unlock(&L->reg_mu);
            tome_free(r);
            return tome_err(b->db, TOME_INVALID, "seq %llu is newer than the newest commit %llu",
                            (unsigned long long)at, (unsigned long long)vis);
        }
        if (at > 0 && at < h) {
            pthread_mutex_unlock(&L->reg_mu);
            tome_free(r);
            return tome_err(b->db, TOME_NOTFOUND, "seq %llu is below the history horizon %llu",
                            (unsigned long long)at, (unsigned long long)h);
        }
        seq = at;
    }
    r->seq = seq;
    r->horizon = h;
    r->next = L->reg.next;
    r->prev = &L->reg;
    L->reg.next->prev = r;
    L->reg.next = r;
    L->nreg++;
    out->seq = seq;
    out->ts = ctab_get(L, seq);
    out->horizon = h;
    out->reg = r;
    pthread_mutex_unlock(&L->reg_mu);
    return 0;
}

static void l_snap_end(tome_backend *b, tome_snap *s) {
    local *L = (local *)b;
    snap_reg *r = s->reg;
    if (!r) return;
    pthread_mutex_lock(&L->reg_mu);
    r->prev->next = r->next;
    r->next->prev = r->prev;
    L->nreg--;
    pthread_mutex_unlock(&L->reg_mu);
    tome_free(r);
    s->reg = NULL;
}

/* The oldest snapshot seq still open (UINT64_MAX if none). Under reg_mu. */
static uint64_t reg_min_locked(local *L) {
    uint64_t m = UINT64_MAX;
    for (snap_reg *r = L->reg.next; r != &L->reg; r = r->next)
        if (r->seq < m) m = r->seq;
    return m;
}

/* ---------------------------------------------------------------------- */
/* reads                                                                    */
/* ---------------------------------------------------------------------- */

static void to_bver(const tome_ver *v, tome_bver *o) {
    o->seq = v->seq;
    o->ts = v->ts;
    o->loc = v->loc;
    o->vlen = v->vlen;
    o->flags = ((v->flags & TOME_VER_REMOVED) ? TOME_BVER_REMOVED : 0) | ((v->flags & TOME_VER_MERGED) ? 0x100u : 0);
}

static int l_versions(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key, size_t klen,
                      tome_alloc_fn alloc, void *actx, tome_bver **out, size_t *n) {
    local *L = (local *)b;
    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&L->ix_lock);
    tome_entry *e = ix_find(L, slot, key, klen);
    if (!e || e->nver == 0) {
        pthread_rwlock_unlock(&L->ix_lock);
        return 0;
    }
    const tome_ver *v = tome_entry_vers(e);
    uint32_t lo, hi;
    vis_range(L, v, e->nver, s->seq, s->horizon, &lo, &hi);
    if (lo >= hi) {
        pthread_rwlock_unlock(&L->ix_lock);
        return 0;
    }
    tome_bver *a = alloc(actx, sizeof *a * (hi - lo));
    if (!a) {
        pthread_rwlock_unlock(&L->ix_lock);
        return TOME_NOMEM;
    }
    for (uint32_t i = lo; i < hi; i++) to_bver(&v[i], &a[i - lo]);
    pthread_rwlock_unlock(&L->ix_lock);
    *out = a;
    *n = hi - lo;
    return 0;
}

static int l_read(tome_backend *b, const tome_bver *v, uint8_t slot, const void *key, size_t klen,
                  tome_alloc_fn alloc, void *actx, const void **val_out) {
    local *L = (local *)b;
    if (v->flags & TOME_BVER_REMOVED) return TOME_NOTFOUND;
    pthread_rwlock_rdlock(&L->ix_lock);
    uint64_t loc = v->loc;
    uint32_t flags = v->flags;
    uint32_t id0 = TOME_LOC_SEG(loc);
    /* A merge may have moved the version since it was looked up: if its
     * segment has left the table, find its new place by seq. */
    tome_entry *e = id0 < L->nsegs_cap && L->segs[id0] ? NULL : ix_find(L, slot, key, klen);
    if (e) {
        const tome_ver *vv = tome_entry_vers(e);
        for (uint32_t i = 0; i < e->nver; i++)
            if (vv[i].seq == v->seq) {
                loc = vv[i].loc;
                flags = (vv[i].flags & TOME_VER_MERGED) ? 0x100u : 0;
                break;
            }
    }
    uint32_t id = TOME_LOC_SEG(loc);
    seg *s = id < L->nsegs_cap ? L->segs[id] : NULL;
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_rwlock_unlock(&L->ix_lock);
    if (!s) return tome_err(b->db, TOME_CORRUPT, "version %llu points to no segment",
                            (unsigned long long)v->seq);
    int rc = local_read_record(L, s, TOME_LOC_OFF(loc), slot, key, klen, v->vlen,
                               (flags & 0x100u) != 0, alloc, actx, val_out);
    seg_unref(L, s);
    return rc;
}

/* ---- cursors ---- */

struct tome_bcursor {
    local *L;
    tome_snap snap;
    uint8_t slot;
    int started, done;
    uint8_t *prefix;
    size_t plen;
    uint8_t *last;     /* the key returned last */
    size_t last_len, last_cap;
    tome_index_cursor c;
};

static int l_cursor_open(tome_backend *b, const tome_snap *s, uint8_t slot, const void *prefix,
                         size_t plen, tome_bcursor **out) {
    tome_bcursor *c = tome_calloc(1, sizeof *c);
    if (!c) return TOME_NOMEM;
    c->prefix = tome_malloc(plen ? plen : 1);
    if (!c->prefix) {
        tome_free(c);
        return TOME_NOMEM;
    }
    if (plen) memcpy(c->prefix, prefix, plen);
    c->plen = plen;
    c->L = (local *)b;
    c->snap = *s;
    c->slot = slot;
    *out = c;
    return 0;
}

/* The newest version of e visible to s, if it is not a removal. */
static const tome_ver *visible_present(local *L, tome_entry *e, const tome_snap *s) {
    if (e->nver == 0) return NULL;
    const tome_ver *v = tome_entry_vers(e);
    uint32_t lo, hi;
    vis_range(L, v, e->nver, s->seq, s->horizon, &lo, &hi);
    return lo < hi && !(v[hi - 1].flags & TOME_VER_REMOVED) ? &v[hi - 1] : NULL;
}


static int l_cursor_next(tome_bcursor *c, const uint8_t **key, size_t *klen, tome_bver *newest) {
    local *L = c->L;
    if (c->done) return TOME_NOTFOUND;
    pthread_rwlock_rdlock(&L->ix_lock);
    tome_entry *e;
    if (!c->started) {
        e = tome_index_seek(L->ix, &c->c, c->slot, c->prefix, c->plen);
        c->started = 1;
    } else if (c->c.mods == tome_index_mods(L->ix)) {
        e = tome_index_next(&c->c);
    } else {
        e = tome_index_seek(L->ix, &c->c, c->slot, c->last, c->last_len);
        if (e && tome_entry_cmp(c->slot, c->last, c->last_len, e) == 0) e = tome_index_next(&c->c);
    }
    const tome_ver *nv = NULL;
    for (; e; e = tome_index_next(&c->c)) {
        if (e->slot != c->slot || e->klen < c->plen ||
            (c->plen && memcmp(e->key, c->prefix, c->plen) != 0)) {
            e = NULL;
            break;
        }
        if ((nv = visible_present(L, e, &c->snap)) != NULL) break;
    }
    if (!e) {
        c->done = 1;
        pthread_rwlock_unlock(&L->ix_lock);
        return TOME_NOTFOUND;
    }
    if (e->klen > c->last_cap || !c->last) {
        size_t nc = e->klen > 64 ? e->klen : 64;
        uint8_t *p = tome_realloc(c->last, nc);
        if (!p) {
            pthread_rwlock_unlock(&L->ix_lock);
            return TOME_NOMEM;
        }
        c->last = p;
        c->last_cap = nc;
    }
    memcpy(c->last, e->key, e->klen);
    c->last_len = e->klen;
    if (newest) to_bver(nv, newest);
    pthread_rwlock_unlock(&L->ix_lock);
    *key = c->last;
    *klen = c->last_len;
    return 0;
}

static void l_cursor_close(tome_bcursor *c) {
    if (!c) return;
    tome_free(c->prefix);
    tome_free(c->last);
    tome_free(c);
}

/* ---------------------------------------------------------------------- */
/* durability                                                               */
/* ---------------------------------------------------------------------- */

static void atomic_max(_Atomic uint64_t *a, uint64_t v) {
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* Waits until commit `seq` is durable; the first waiter syncs for all. */
static int wait_durable(local *L, uint64_t seq) {
    int rc = 0;
    pthread_mutex_lock(&L->sync_mu);
    while (atomic_load(&L->durable_seq) < seq && !atomic_load(&L->poisoned)) {
        if (L->syncing) {
            pthread_cond_wait(&L->sync_cv, &L->sync_mu);
            continue;
        }
        L->syncing = 1;
        pthread_mutex_unlock(&L->sync_mu);

        pthread_mutex_lock(&L->commit_mu);
        uint64_t target = L->last_seq;
        seg *s = L->act;
        uint64_t off = s->size;
        atomic_fetch_add(&s->refs, 1);
        pthread_mutex_unlock(&L->commit_mu);

        int e = L->memory ? 0 : L->vfs->sync(s->f, 1);
        TOME_KILLPOINT("commit.synced");
        if (!e) atomic_max(&s->synced, off);

        pthread_mutex_lock(&L->sync_mu);
        L->syncing = 0;
        if (e) {
            atomic_store(&L->poisoned, 1);
            rc = io_err(L, e, "sync", s->name);
        } else {
            atomic_max(&L->durable_seq, target);
            atomic_max(&L->visible_seq, target);
        }
        pthread_cond_broadcast(&L->sync_cv);
        seg_unref(L, s);
    }
    if (atomic_load(&L->durable_seq) >= seq) rc = 0;
    else if (!rc) rc = tome_err(L->base.db, TOME_IO, "an earlier sync failed: the store refuses writes until it is reopened");
    pthread_mutex_unlock(&L->sync_mu);
    return rc;
}

static int l_sync(tome_backend *b) {
    local *L = (local *)b;
    if (L->read_only) return 0;
    pthread_mutex_lock(&L->commit_mu);
    uint64_t last = L->last_seq;
    seg *act = L->act;
    pthread_mutex_unlock(&L->commit_mu);
    if (!act) return 0;
    if (atomic_load(&L->poisoned))
        return tome_err(b->db, TOME_IO, "an earlier write or sync failed: reopen the store");
    if (atomic_load(&L->durable_seq) >= last) {
        /* nothing new; still sync the file once (cheap) when asked */
        return 0;
    }
    return wait_durable(L, last);
}

/* ---------------------------------------------------------------------- */
/* commit                                                                   */
/* ---------------------------------------------------------------------- */

/* Seals the active segment and starts the next one. Under commit_mu. */
int local_rotate(local *L) {
    seg *old = L->act;
    int e = L->memory ? 0 : L->vfs->sync(old->f, 1);
    if (e) {
        atomic_store(&L->poisoned, 1);
        return io_err(L, e, "sync", old->name);
    }
    atomic_max(&old->synced, old->size);
    pthread_mutex_lock(&L->sync_mu);
    atomic_max(&L->durable_seq, L->last_seq);
    atomic_max(&L->visible_seq, L->last_seq);
    pthread_cond_broadcast(&L->sync_cv);
    pthread_mutex_unlock(&L->sync_mu);
    TOME_KILLPOINT("rotate.sealed");
    /* memory first: once the file exists, nothing may fail */
    pthread_rwlock_wrlock(&L->ix_lock);
    seg **nl = tome_realloc(L->live, (L->nlive + 1) * sizeof *nl);
    if (nl) L->live = nl;
    int rc = nl ? seg_table_reserve(L) : TOME_NOMEM;
    pthread_rwlock_unlock(&L->ix_lock);
    if (rc) return tome_err(L->base.db, rc, "out of memory rolling the log over");
    seg *s;
    rc = local_create_log(L, L->next_file, L->last_seq, &s);
    if (rc == TOME_IO) atomic_store(&L->poisoned, 1);
    if (rc) return rc;
    TOME_KILLPOINT("rotate.created");
    pthread_rwlock_wrlock(&L->ix_lock);
    seg_table_add(L, s); /* room reserved above */
    L->live[L->nlive++] = s;
    pthread_rwlock_unlock(&L->ix_lock);
    L->next_file++;
    L->act = s;
    return 0;
}

static int key_matches_prefix(const rc_key *k, const tome_rprefix *p) {
    return k->slot == p->slot && k->klen >= p->len && (p->len == 0 || memcmp(k->key, p->prefix, p->len) == 0);
}

/* Under commit_mu: TOME_CONFLICT if a commit after s touched the read set. */
static int validate(local *L, const tome_snap *s, const tome_rset *rs) {
    if (!rs) return 0;
    for (rc_entry *e = L->rc_head; e; e = e->next) {
        if (e->seq <= s->seq) continue;
        for (size_t i = 0; i < e->n; i++) {
            const rc_key *k = &e->keys[i];
            if (rs->has_key && rs->has_key(rs->ctx, k->slot, k->key, k->klen))
                return TOME_CONFLICT;
            if (k->changed)
                for (size_t j = 0; j < rs->nprefixes; j++)
                    if (key_matches_prefix(k, &rs->prefixes[j])) return TOME_CONFLICT;
        }
    }
    return 0;
}

/* Under commit_mu: frees recent commits no open snapshot can still need. */
static void rc_prune(local *L) {
    pthread_mutex_lock(&L->reg_mu);
    uint64_t m = reg_min_locked(L);
    pthread_mutex_unlock(&L->reg_mu);
    uint64_t vis = atomic_load(&L->visible_seq);
    if (vis < m) m = vis;
    while (L->rc_head && L->rc_head->seq <= m) {
        rc_entry *e = L->rc_head;
        L->rc_head = e->next;
        tome_free(e);
    }
    if (!L->rc_head) L->rc_tail = NULL;
}

#define BIG_VALUE 65536


static int l_commit(tome_backend *b, const tome_snap *s, const tome_wop *ops, size_t n,
                    const tome_rset *rs, unsigned flags, uint64_t *seq_out, uint64_t *ts_out) {
    local *L = (local *)b;
    tome_db *db = b->db;
    if (L->read_only) return tome_err(db, TOME_READONLY, "the store is open read-only");
    if (n == 0) return 0;
    if (atomic_load(&L->poisoned))
        return tome_err(db, TOME_IO, "an earlier write or sync failed: reopen the store");

    /* 1. encode the batch outside the locks */
    int rc = 0;
    size_t small = 0, nbig = 0, keybytes = 0;
    uint64_t total = COMMIT_SIZE;
    for (size_t i = 0; i < n; i++) {
        size_t vl = ops[i].removed ? 0 : ops[i].vlen;
        total += REC_HDR_SIZE + ops[i].klen + vl;
        keybytes += ops[i].klen;
        if (vl >= BIG_VALUE) nbig++;
        else small += REC_HDR_SIZE + ops[i].klen + vl;
    }
    uint8_t *buf = tome_malloc(small + COMMIT_SIZE + nbig * (REC_HDR_SIZE + 0));
    size_t niov = 2 * nbig + 2;
    struct iovec *iov = tome_malloc(niov * sizeof *iov);
    uint64_t *offs = tome_malloc(n * sizeof *offs);
    tome_entry **ents = tome_calloc(n, sizeof *ents);
    uint8_t *isnew = tome_calloc(n, 1);
    rc_entry *rce = tome_malloc(sizeof *rce + n * sizeof(rc_key) + keybytes);
    if (!buf || !iov || !offs || !ents || !isnew || !rce) {
        rc = TOME_NOMEM;
        goto out_free;
    }
    /* Layout: small records are copied into buf in op order; a big value
     * ends the current buffer run and goes out as its own iovec. To keep
     * the log in op order, big records are written as: [buf run] [header +
     * key copied into buf] [value iovec] [next buf run] ... */
    size_t bi = 0, ni = 0;
    uint64_t rel = 0;
    size_t run_start = 0;
    /* buf needs room for the headers and keys of big records too */
    {
        size_t extra = 0;
        for (size_t i = 0; i < n; i++)
            if (!ops[i].removed && ops[i].vlen >= BIG_VALUE) extra += REC_HDR_SIZE + ops[i].klen;
        if (extra) {
            uint8_t *nb = tome_realloc(buf, small + extra + COMMIT_SIZE);
            if (!nb) {
                rc = TOME_NOMEM;
                goto out_free;
            }
            buf = nb;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const tome_wop *o = &ops[i];
        size_t vl = o->removed ? 0 : o->vlen;
        uint8_t *h = buf + bi;
        rec_hdr_encode(h, o->removed ? REC_DEL : REC_PUT, o->slot, (uint32_t)o->klen, (uint32_t)vl);
        if (o->klen) memcpy(h + REC_HDR_SIZE, o->key, o->klen);
        uint32_t crc = tome_crc32c(0, h + 4, REC_HDR_SIZE - 4 + o->klen);
        if (vl) crc = tome_crc32c(crc, o->val, vl);
        tome_put32(h, crc);
        offs[i] = rel;
        bi += REC_HDR_SIZE + o->klen;
        rel += REC_HDR_SIZE + o->klen + vl;
        if (vl >= BIG_VALUE) {
            iov[ni].iov_base = buf + run_start;
            iov[ni].iov_len = bi - run_start;
            ni++;
            iov[ni].iov_base = (void *)o->val;
            iov[ni].iov_len = vl;
            ni++;
            run_start = bi;
        } else if (vl) {
            memcpy(buf + bi, o->val, vl);
            bi += vl;
        }
    }
    /* prepare the recent-commit record (keys copied) */
    rce->next = NULL;
    rce->n = n;
    rce->keys = (rc_key *)(rce + 1);
    {
        uint8_t *kp = (uint8_t *)(rce->keys + n);
        for (size_t i = 0; i < n; i++) {
            rce->keys[i].slot = ops[i].slot;
            rce->keys[i].klen = (uint32_t)ops[i].klen;
            rce->keys[i].key = kp;
            rce->keys[i].changed = 0;
            if (ops[i].klen) memcpy(kp, ops[i].key, ops[i].klen);
            kp += ops[i].klen;
        }
    }

    /* 2. under commit_mu */
    pthread_mutex_lock(&L->commit_mu);
    if (atomic_load(&L->poisoned)) {
        rc = tome_err(db, TOME_IO, "an earlier write or sync failed: reopen the store");
        goto out_unlock;
    }
    if ((rc = validate(L, s, rs)) != 0) {
        tome_err(db, TOME_CONFLICT, "a key this transaction read was changed by a later commit");
        goto out_unlock;
    }
    /* reserve index memory */
    pthread_rwlock_wrlock(&L->ix_lock);
    for (size_t i = 0; i < n; i++) {
        tome_entry *e = ix_find(L, ops[i].slot, ops[i].key, ops[i].klen);
        if (!e) {
            e = entry_new(ops[i].slot, ops[i].key, ops[i].klen);
            if (!e || ix_insert(L, e) != 0) {
                entry_free(e, NULL);
                e = NULL;
                rc = TOME_NOMEM;
            } else {
                isnew[i] = 1;
            }
        } else if (entry_reserve(e, e->nver + 1) != 0) {
            rc = TOME_NOMEM;
        }
        if (rc) {
            for (size_t j = 0; j < i; j++) {
                if (isnew[j]) {
                    ix_remove(L, ents[j]);
                    entry_free(ents[j], NULL);
                } else {
                    entry_drop_flags(ents[j]);
                }
            }
            if (e && !isnew[i]) entry_drop_flags(e);
            break;
        }
        ents[i] = e;
    }
    pthread_rwlock_unlock(&L->ix_lock);
    if (rc) {
        tome_err(db, rc, "out of memory preparing the commit");
        goto out_unlock;
    }
    pthread_mutex_lock(&L->reg_mu);
    rc = ctab_set(L, L->last_seq + 1, L->last_ts);
    pthread_mutex_unlock(&L->reg_mu);
    if (!rc && L->act->size + total > L->act->cap && L->act->size > SEG_HDR_SIZE) {
        uint64_t want = total + SEG_HDR_SIZE;
        uint64_t saved = L->segment_size;
        if (want > L->segment_size) L->segment_size = want;
        rc = local_rotate(L);
        L->segment_size = saved;
    } else if (!rc && L->act->size + total > L->act->cap) {
        /* an empty segment too small for this batch: grow it */
        int e = L->vfs->allocate(L->act->f, 0, L->act->size + total);
        if (e) rc = io_err(L, e, "allocate", L->act->name);
        else L->act->cap = L->act->size + total;
    }
    if (!rc && L->act->size + total > MAX_SEGMENT_OFF) rc = tome_err(db, TOME_TOOBIG, "commit too large");
    if (rc) goto out_undo;

    uint64_t seq = L->last_seq + 1;
    uint64_t now = L->vfs->now_ms(L->vfs);
    uint64_t ts = now > L->last_ts ? now : L->last_ts;
    uint64_t start = L->act->size;
    /* commit record */
    uint8_t *c = buf + bi;
    rec_hdr_encode(c, REC_COMMIT, 0, 0, COMMIT_PAYLOAD);
    memcpy(c + 16, COMMIT_MAGIC, 8);
    tome_put64(c + 24, seq);
    tome_put64(c + 32, ts);
    tome_put32(c + 40, (uint32_t)n);
    tome_put32(c + 44, 0);
    tome_put64(c + 48, start);
    tome_put64(c + 56, atomic_load(&L->act->synced));
    tome_put32(c, tome_crc32c(0, c + 4, COMMIT_SIZE - 4));
    bi += COMMIT_SIZE;
    iov[ni].iov_base = buf + run_start;
    iov[ni].iov_len = bi - run_start;
    ni++;
    {
        TOME_KILLPOINT("commit.before_write");
        int e = L->vfs->pwritev(L->act->f, iov, (int)ni, start);
        TOME_KILLPOINT("commit.written");
        if (e) {
            atomic_store(&L->poisoned, 1);
            rc = io_err(L, e, "write", L->act->name);
            goto out_undo;
        }
    }
    L->act->size = start + total;
    L->act->last_seq = seq;
    L->act->last_ts = ts;
    L->last_seq = seq;
    L->last_ts = ts;

    /* apply to the index */
    pthread_rwlock_wrlock(&L->ix_lock);
    for (size_t i = 0; i < n; i++) {
        tome_entry *e = ents[i];
        int before = e->nver > 0 && !(tome_entry_vers(e)[e->nver - 1].flags & TOME_VER_REMOVED);
        tome_ver v;
        v.seq = seq;
        v.ts = ts;
        v.loc = TOME_LOC(L->act->id, start + offs[i]);
        v.vlen = ops[i].removed ? 0 : (uint32_t)ops[i].vlen;
        v.flags = ops[i].removed ? TOME_VER_REMOVED : 0;
        entry_push(e, &v);
        rce->keys[i].changed = (uint8_t)(before != !ops[i].removed);
    }
    L->nversions += n;
    pthread_rwlock_unlock(&L->ix_lock);
    pthread_mutex_lock(&L->reg_mu);
    ctab_set(L, seq, ts); /* room was reserved above */
    pthread_mutex_unlock(&L->reg_mu);

    rce->seq = seq;
    if (L->rc_tail) L->rc_tail->next = rce;
    else L->rc_head = rce;
    L->rc_tail = rce;
    rce = NULL;

    /* Publish now unless this commit must wait for its sync. A NOSYNC
     * commit on a FULL store still waits when earlier commits are waiting
     * for theirs, so that visibility keeps commit order. */
    int need_sync = L->sync_mode == TOME_SYNC_FULL && !L->memory;
    if (need_sync && (flags & TOME_COMMIT_NOSYNC) && atomic_load(&L->visible_seq) + 1 >= seq)
        need_sync = 0;
    if (!need_sync) {
        atomic_max(&L->visible_seq, seq);
        if (L->memory) atomic_max(&L->durable_seq, seq);
    }
    rc_prune(L);
    pthread_mutex_unlock(&L->commit_mu);
    if (need_sync) rc = wait_durable(L, seq);
    if (!rc) {
        *seq_out = seq;
        *ts_out = ts;
    }
    goto out_free;

out_undo:
    pthread_rwlock_wrlock(&L->ix_lock);
    for (size_t j = 0; j < n; j++) {
        if (!ents[j]) continue;
        if (isnew[j]) {
            ix_remove(L, ents[j]);
            entry_free(ents[j], NULL);
        } else {
            entry_drop_flags(ents[j]);
        }
    }
    pthread_rwlock_unlock(&L->ix_lock);
out_unlock:
    pthread_mutex_unlock(&L->commit_mu);
out_free:
    tome_free(rce);
    tome_free(buf);
    tome_free(iov);
    tome_free(offs);
    tome_free(ents);
    tome_free(isnew);
    return rc;
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
    tome_free(L);
}

static int l_close(tome_backend *b) {
    local *L = (local *)b;
    int rc = 0;
    if (atomic_load(&L->poisoned)) {
        /* commits after the failure point may not be durable: say so */
        rc = tome_err(b->db, TOME_IO, "an earlier write or sync failed: the newest commits may not be durable");
    } else if (!L->read_only && !L->memory && L->act) {
        rc = l_sync(b);
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
    .sync = l_sync,
    .snap_begin = l_snap_begin,
    .snap_end = l_snap_end,
    .versions = l_versions,
    .read = l_read,
    .cursor_open = l_cursor_open,
    .cursor_next = l_cursor_next,
    .cursor_close = l_cursor_close,
    .commit = l_commit,
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
    return e ? io_err(L, e, "sync directory of", path) : 0;
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
            rc = io_err(L, e, "mkdir", L->dir);
            goto fail;
        }
    } else {
        tome_vfs *tv = atomic_load(&g_test_vfs);
        L->vfs = tv ? tv : tome_vfs_posix();
        L->dir = tome_strndup(path, strlen(path));
        if (!L->dir) {
            rc = tome_err(db, TOME_NOMEM, "out of memory");
            goto fail;
        }
        int kind = 0;
        int e = L->vfs->stat(L->vfs, path, &kind);
        if (e) {
            rc = io_err(L, e, "stat", path);
            goto fail;
        }
        if (kind == TOME_VFS_NONE) {
            if (o->must_exist || o->read_only) {
                rc = tome_err(db, TOME_NOTFOUND, "%s: no such store", path);
                goto fail;
            }
            e = L->vfs->mkdir(L->vfs, path);
            if (e && e != -EEXIST) {
                rc = io_err(L, e, "create store directory", path);
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
                rc = io_err(L, e, "stat lock file in", path);
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
            rc = io_err(L, e, "open lock file in", path);
            goto fail;
        }
        if (L->lockf && (e = L->vfs->lock(L->lockf)) != 0) {
            rc = e == -EWOULDBLOCK || e == -EAGAIN
                     ? tome_err(db, TOME_LOCKED, "%s: the store is open elsewhere", path)
                     : io_err(L, e, "lock", path);
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
