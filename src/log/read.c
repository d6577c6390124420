/*
 * read.c -- snapshots and reads of the local log engine: registering a
 * snapshot (what a transaction sees), the visible versions of a key,
 * reading and verifying a value, and ordered cursors over the index.
 *
 * Readers share ix_lock (a rwlock) with each other; commits and merges take
 * it exclusively for short, bounded steps. A value read pins its segment
 * (a reference) so that a concurrent merge cannot unlink the file while it
 * is being read.
 */
#include "local.h"

#include <stdlib.h>
#include <string.h>

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
    if (r < 0) return local_io_err(L, (int)r, "read", s->name);
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
    o->flags = ((v->flags & TOME_VER_REMOVED) ? TOME_BVER_REMOVED : 0) | ((v->flags & TOME_VER_MERGED) ? 0x100u : 0);
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

int local_read(tome_backend *b, const tome_bver *v, uint8_t slot, const void *key, size_t klen,
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


int local_cursor_next(tome_bcursor *c, const uint8_t **key, size_t *klen, tome_bver *newest) {
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

void local_cursor_close(tome_bcursor *c) {
    if (!c) return;
    tome_free(c->prefix);
    tome_free(c->last);
    tome_free(c);
}

