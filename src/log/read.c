/*
 * read.c -- snapshots and reads of the local log engine: registering a
 * snapshot (what a transaction sees), the visible versions of a key,
 * reading and verifying a value, and ordered cursors over the index.
 *
 * HOW A READ WORKS
 *
 * Readers share ix_lock (a rwlock) with each other; commits and merges take
 * it exclusively for short, bounded steps. Under the shared lock a read
 * finds the key's entry, picks the version its snapshot sees and resolves
 * where the record lies (segment, offset). The record itself is read after
 * the lock is released, and verified: its CRC32C, type, slot, lengths and
 * key bytes must match, or the read gives TOME_CORRUPT.
 *
 * Segments are read through a read-only shared mapping of the file when the
 * vfs can map (POSIX) and the store was not opened with no_mmap. A value
 * then needs no system call and no copy: tome_get hands out a pointer into
 * the mapping. What keeps that pointer valid until the transaction ends is
 * the snapshot's pin list: the first time a snapshot reads from a segment it
 * takes a reference to it (under ix_lock, so the segment is still in the
 * table), and releases it in snap_end. A merge that supersedes the segment
 * meanwhile only marks it dead; the file is unlinked and unmapped at its
 * last reference. Only segments that nothing truncates are mapped, and only
 * bytes below the file size at mapping time are read through the mapping
 * (later bytes, e.g. a segment grown for a big commit, use pread).
 * Without a mapping (":memory:", test vfs layers, no_mmap, or a pin that
 * cannot be recorded for lack of memory) the record is read with pread into
 * memory from the caller's allocator, as before; the segment is then pinned
 * only for the duration of the read.
 *
 * Cursors fetch keys in batches of CUR_BATCH under one acquisition of the
 * lock: they collect the visible entries, resolve their records and prefetch
 * them, so that the cache misses of a batch overlap. The keys of a batch
 * are copied from the entries (the transaction copies the key it hands
 * out); a value is read in place from its pinned record. The cursor keeps the last
 * key it passed; if a commit or merge changed the tree between two batches,
 * the next batch starts with a seek past that key.
 *
 * Lock order: ix_lock -> map_mu (seg_map); a snapshot's pins are touched
 * only by the thread using its transaction.
 */
#include "local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BV_MERGED 0x100u   /* tome_bver.flags: the record is a merged record */

/* ---------------------------------------------------------------------- */
/* reading a record                                                         */
/* ---------------------------------------------------------------------- */

static size_t rec_hdr_len(int merged) { return REC_HDR_SIZE + (merged ? REC_MERGED_EXTRA : 0); }

/* Verifies the record at rec (total bytes): checksum, type, slot, lengths
 * and key. name/off only describe it in the error. */
static int rec_check(local *L, const char *name, uint64_t off, const uint8_t *rec, size_t total,
                     int merged, uint8_t slot, const void *key, size_t klen, uint32_t vlen) {
    size_t hdr = rec_hdr_len(merged);
    int want = merged ? REC_MPUT : REC_PUT;
    if (tome_get32(rec) != tome_crc32c(0, rec + 4, total - 4) || rec[4] != want || rec[5] != slot ||
        tome_get32(rec + 8) != klen || tome_get32(rec + 12) != vlen ||
        (klen && memcmp(rec + hdr, key, klen) != 0))
        return tome_err(L->base.db, TOME_CORRUPT, "%s: record at %llu fails its checksum", name,
                        (unsigned long long)off);
    return 0;
}

int local_read_record(local *L, seg *s, uint64_t off, uint8_t slot, const void *key, size_t klen,
                      uint32_t vlen, int merged, tome_alloc_fn alloc, void *actx,
                      const void **val_out) {
    size_t hdr = rec_hdr_len(merged);
    size_t total = hdr + klen + vlen;
    const uint8_t *m = seg_map(L, s, off + total);
    if (m) { /* verify in place, copy the value out */
        int rc = rec_check(L, s->name, off, m + off, total, merged, slot, key, klen, vlen);
        if (rc) return rc;
        uint8_t *v = alloc(actx, vlen ? vlen : 1);
        if (!v) return TOME_NOMEM;
        if (vlen) memcpy(v, m + off + hdr + klen, vlen);
        *val_out = v;
        return 0;
    }
    uint8_t *buf = alloc(actx, total);
    if (!buf) return TOME_NOMEM;
    int64_t r = L->vfs->pread(s->f, buf, total, off);
    if (r < 0) return local_io_err(L, (int)r, "read", s->name);
    if ((size_t)r != total)
        return tome_err(L->base.db, TOME_CORRUPT, "%s: record at %llu cut short", s->name,
                        (unsigned long long)off);
    int rc = rec_check(L, s->name, off, buf, total, merged, slot, key, klen, vlen);
    if (rc) return rc;
    *val_out = buf + hdr + klen;
    return 0;
}

/* A record mapped and pinned for the snapshot's life: verified, then its
 * value handed out in place. */
static int value_in_place(local *L, const char *name, uint64_t off, const uint8_t *rec, int merged,
                          uint8_t slot, const void *key, size_t klen, uint32_t vlen, const void **val_out) {
    size_t hdr = rec_hdr_len(merged);
    int rc = rec_check(L, name, off, rec, hdr + klen + vlen, merged, slot, key, klen, vlen);
    if (rc) return rc;
    *val_out = rec + hdr + klen;
    return 0;
}

/* Pins s to the snapshot: a reference until snap_end, so that its mapping
 * outlives every pointer handed out. 1 if pinned (or already), 0 if the
 * pin list cannot grow (the caller then copies). Under ix_lock. */
static int pin(snap_reg *r, seg *s) {
    if (!r) return 0;
    for (uint32_t i = r->npins; i > 0; i--)
        if (r->pins[i - 1] == s) return 1;
    if (r->npins == r->pincap) {
        uint32_t nc = r->pincap ? r->pincap * 2 : 4;
        seg **p = tome_realloc(r->pins, nc * sizeof *p);
        if (!p) return 0;
        r->pins = p;
        r->pincap = nc;
    }
    atomic_fetch_add(&s->refs, 1);
    r->pins[r->npins++] = s;
    return 1;
}

/* The segment of a location. Under ix_lock. */
static seg *loc_seg(local *L, uint64_t loc) {
    uint32_t id = TOME_LOC_SEG(loc);
    return id < L->nsegs_cap ? L->segs[id] : NULL;
}

/* Under ix_lock: the mapped record of version v of (slot, klen-byte key),
 * pinned to snapshot r, or NULL (no mapping, or the pin failed). */
static const uint8_t *mapped_rec(local *L, snap_reg *r, seg *s, const tome_ver *v, size_t klen) {
    if (!s || !L->use_map) return NULL;
    uint64_t off = TOME_LOC_OFF(v->loc);
    size_t total = rec_hdr_len((v->flags & TOME_VER_MERGED) != 0) + klen + v->vlen;
    const uint8_t *m = seg_map(L, s, off + total);
    return m && pin(r, s) ? m + off : NULL;
}

/* ---------------------------------------------------------------------- */
/* snapshots                                                                */
/* ---------------------------------------------------------------------- */

int local_snap_begin(tome_backend *b, uint64_t at, tome_snap *out) {
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
    r->pins = NULL;
    r->npins = r->pincap = 0;
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

void local_snap_end(tome_backend *b, tome_snap *s) {
    local *L = (local *)b;
    snap_reg *r = s->reg;
    if (!r) return;
    pthread_mutex_lock(&L->reg_mu);
    r->prev->next = r->next;
    r->next->prev = r->prev;
    L->nreg--;
    pthread_mutex_unlock(&L->reg_mu);
    for (uint32_t i = 0; i < r->npins; i++) seg_unref(L, r->pins[i]);
    tome_free(r->pins);
    tome_free(r);
    s->reg = NULL;
}

/* The oldest snapshot seq still open (UINT64_MAX if none). Under reg_mu. */
uint64_t local_reg_min(local *L) {
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
    o->flags = ((v->flags & TOME_VER_REMOVED) ? TOME_BVER_REMOVED : 0) | ((v->flags & TOME_VER_MERGED) ? BV_MERGED : 0);
    o->rec = NULL;
}

int local_versions(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key, size_t klen,
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
    local_vis_range(L, v, e->nver, s->seq, s->horizon, &lo, &hi);
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

/* Reads version nv (a copy made under ix_lock, which the caller holds
 * and which this releases) of (slot, key) in segment sg. */
static int read_locked(local *L, const tome_snap *s, seg *sg, const tome_ver *nv, uint8_t slot,
                       const void *key, size_t klen, tome_alloc_fn alloc, void *actx,
                       const void **val_out) {
    int merged = (nv->flags & TOME_VER_MERGED) != 0;
    uint64_t off = TOME_LOC_OFF(nv->loc);
    if (!sg) {
        pthread_rwlock_unlock(&L->ix_lock);
        return tome_err(L->base.db, TOME_CORRUPT, "version %llu points to no segment",
                        (unsigned long long)nv->seq);
    }
    const uint8_t *rec = mapped_rec(L, s->reg, sg, nv, klen);
    if (rec) { /* zero copy: the snapshot pins the mapping */
        pthread_rwlock_unlock(&L->ix_lock);
        return value_in_place(L, sg->name, off, rec, merged, slot, key, klen, nv->vlen, val_out);
    }
    atomic_fetch_add(&sg->refs, 1);
    pthread_rwlock_unlock(&L->ix_lock);
    int rc = local_read_record(L, sg, off, slot, key, klen, nv->vlen, merged, alloc, actx, val_out);
    seg_unref(L, sg);
    return rc;
}

int local_read(tome_backend *b, const tome_snap *s, const tome_bver *v, uint8_t slot, const void *key,
               size_t klen, tome_alloc_fn alloc, void *actx, const void **val_out) {
    local *L = (local *)b;
    if (v->flags & TOME_BVER_REMOVED) return TOME_NOTFOUND;
    int merged = (v->flags & BV_MERGED) != 0;
    if (v->rec) /* a cursor resolved and pinned the record already */
        return value_in_place(L, "log", TOME_LOC_OFF(v->loc), v->rec, merged, slot, key, klen, v->vlen, val_out);
    pthread_rwlock_rdlock(&L->ix_lock);
    tome_ver nv = {v->seq, v->ts, v->loc, v->vlen, merged ? TOME_VER_MERGED : 0};
    /* A merge may have moved the version since it was looked up: if its
     * segment has left the table, find its new place by seq. */
    if (!loc_seg(L, v->loc)) {
        tome_entry *e = ix_find(L, slot, key, klen);
        const tome_ver *vv = e ? tome_entry_vers(e) : NULL;
        for (uint32_t i = 0; e && i < e->nver; i++)
            if (vv[i].seq == v->seq) {
                nv.loc = vv[i].loc;
                nv.flags = vv[i].flags & TOME_VER_MERGED;
                break;
            }
    }
    return read_locked(L, s, loc_seg(L, nv.loc), &nv, slot, key, klen, alloc, actx, val_out);
}

int local_newest(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key, size_t klen,
                 tome_alloc_fn alloc, void *actx, const void **val_out, size_t *len_out) {
    local *L = (local *)b;
    pthread_rwlock_rdlock(&L->ix_lock);
    tome_entry *e = ix_find(L, slot, key, klen);
    if (e && (e->nver > 1 || e->spill) && e->nver >= 1 && e->v.many.seq <= s->seq) {
        /* The snapshot sees the newest version (whatever the horizon: the
         * newest is never filtered out unless it is a removal, see
         * local_vis_range), and the entry keeps a copy of its place: the
         * version array need not be fetched. */
        if (e->v.many.flags & TOME_VER_REMOVED) {
            pthread_rwlock_unlock(&L->ix_lock);
            return TOME_NOTFOUND;
        }
        tome_ver nv = {e->v.many.seq, 0, e->v.many.loc, e->v.many.vlen, e->v.many.flags};
        *len_out = nv.vlen;
        return read_locked(L, s, loc_seg(L, nv.loc), &nv, slot, key, klen, alloc, actx, val_out);
    }
    uint32_t lo = 0, hi = 0;
    const tome_ver *v = NULL;
    if (e && e->nver) {
        v = tome_entry_vers(e);
        local_vis_range(L, v, e->nver, s->seq, s->horizon, &lo, &hi);
    }
    if (lo >= hi || (v[hi - 1].flags & TOME_VER_REMOVED)) {
        pthread_rwlock_unlock(&L->ix_lock);
        return TOME_NOTFOUND;
    }
    tome_ver nv = v[hi - 1];
    *len_out = nv.vlen;
    return read_locked(L, s, loc_seg(L, nv.loc), &nv, slot, key, klen, alloc, actx, val_out);
}

/* ---- cursors ---- */

#define CUR_BATCH 64

typedef struct citem {
    const uint8_t *key;
    size_t klen;
    tome_bver v;
} citem;

struct tome_bcursor {
    local *L;
    tome_snap snap;
    uint8_t slot;
    int started, done;
    int reseek;          /* a batch failed: restart after last */
    int have_last;
    uint8_t *prefix;
    size_t plen;
    uint8_t *last;       /* the last key the tree cursor passed */
    size_t last_len, last_cap;
    tome_index_cursor c;
    citem items[CUR_BATCH];
    unsigned n, i;
    uint8_t *kbuf;       /* copies of the batch's keys */
    size_t kcap;
};

int local_cursor_open(tome_backend *b, const tome_snap *s, uint8_t slot, const void *prefix,
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
    local_vis_range(L, v, e->nver, s->seq, s->horizon, &lo, &hi);
    return lo < hi && !(v[hi - 1].flags & TOME_VER_REMOVED) ? &v[hi - 1] : NULL;
}

static int grow(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap && *p) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    uint8_t *q = tome_realloc(*p, nc);
    if (!q) return TOME_NOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

/* Fetches the next batch (c->n items, possibly none when its keys are not
 * visible; c->done at the end of the prefix) under one shared
 * acquisition of ix_lock. */
static int cur_fill(tome_bcursor *c) {
    local *L = c->L;
    tome_entry *ents[CUR_BATCH];
    const tome_ver *vers[CUR_BATCH];
    seg *segs[CUR_BATCH];
    unsigned n = 0;
    size_t kbytes = 0;
    int rc = 0;
    c->n = c->i = 0;
    pthread_rwlock_rdlock(&L->ix_lock);
    tome_entry *e;
    if (!c->started || (c->reseek && !c->have_last)) {
        e = tome_index_seek(L->ix, &c->c, c->slot, c->prefix, c->plen);
        c->started = 1;
    } else if (!c->reseek && c->c.mods == tome_index_mods(L->ix)) {
        e = tome_index_next(&c->c);
    } else {
        e = tome_index_seek(L->ix, &c->c, c->slot, c->last, c->last_len);
        if (e && tome_entry_cmp(c->slot, c->last, c->last_len, e) == 0) e = tome_index_next(&c->c);
    }
    c->reseek = 0;
    /* 1. up to CUR_BATCH entries of the prefix; fetch the version arrays
     * of those that have several versions (a miss each, overlapped) */
    tome_entry *raw[CUR_BATCH];
    unsigned nraw = 0;
    for (; e; ) {
        if (e->slot != c->slot || e->klen < c->plen || (c->plen && memcmp(e->key, c->prefix, c->plen) != 0)) {
            e = NULL;
            break;
        }
        if (e->nver > 1 || e->spill) __builtin_prefetch(e->v.many.a);
        raw[nraw++] = e;
        if (nraw == CUR_BATCH) break;
        e = tome_index_next(&c->c);
    }
    tome_entry *passed = nraw ? raw[nraw - 1] : NULL;
    /* the visible ones; resolve and prefetch their records */
    for (unsigned j = 0; j < nraw; j++) {
        const tome_ver *nv = visible_present(L, raw[j], &c->snap);
        if (!nv) continue;
        ents[n] = raw[j];
        vers[n] = nv;
        segs[n] = loc_seg(L, nv->loc);
        kbytes += raw[j]->klen;
        if (segs[n]) {
            const uint8_t *m = atomic_load_explicit(&segs[n]->map, memory_order_acquire);
            uint64_t off = TOME_LOC_OFF(nv->loc);
            if (m && off + 128 <= segs[n]->map_len) {
                __builtin_prefetch(m + off);
                __builtin_prefetch(m + off + 64);
                __builtin_prefetch(m + off + 127);
            }
        }
        n++;
    }
    /* 2. remember where the tree cursor stands, for a re-seek (memory
     * first: a failure leaves the cursor where the batch began) */
    if ((n && (rc = grow(&c->kbuf, &c->kcap, kbytes ? kbytes : 1)) != 0) ||
        (passed && (rc = grow(&c->last, &c->last_cap, passed->klen ? passed->klen : 1)) != 0)) {
        c->reseek = 1;
        goto out;
    }
    if (passed) {
        memcpy(c->last, passed->key, passed->klen);
        c->last_len = passed->klen;
        c->have_last = 1;
    }
    if (!e) c->done = 1;
    /* 3. the items: keys copied from the entries, records pinned */
    size_t kp = 0;
    for (unsigned j = 0; j < n; j++) {
        citem *it = &c->items[j];
        tome_entry *en = ents[j];
        to_bver(vers[j], &it->v);
        it->klen = en->klen;
        it->v.rec = mapped_rec(L, c->snap.reg, segs[j], vers[j], en->klen);
        memcpy(c->kbuf + kp, en->key, en->klen);
        it->key = c->kbuf + kp;
        kp += en->klen;
    }
    c->n = n;
out:
    pthread_rwlock_unlock(&L->ix_lock);
    return rc;
}

int local_cursor_next(tome_bcursor *c, const uint8_t **key, size_t *klen, tome_bver *newest) {
    while (c->i == c->n) { /* a batch may hold no visible key */
        if (c->done) return TOME_NOTFOUND;
        int rc = cur_fill(c);
        if (rc) return rc;
    }
    const citem *it = &c->items[c->i++];
    *key = it->key;
    *klen = it->klen;
    if (newest) *newest = it->v;
    return 0;
}

void local_cursor_close(tome_bcursor *c) {
    if (!c) return;
    tome_free(c->prefix);
    tome_free(c->last);
    tome_free(c->kbuf);
    tome_free(c);
}
