/*
 * idxfile.c -- the index file (INDEX): a snapshot of the in-memory index,
 * written at close and after a merge, so that opening a store reads one
 * compact file instead of every value in the log.
 *
 * The file says which live segments it describes and up to which position
 * of the last one (a log segment) it covers. It is trusted only if every
 * check passes: both checksums, the segment list is a prefix of the live
 * set, and the commit record that ends the covered position is there with
 * the expected sequence number. Anything else and it is ignored (the log is
 * scanned instead): a stale or damaged index file costs time, never data.
 * It is replaced with write-temp, fsync, rename, fsync-directory, and the
 * log it covers is synced before the rename.
 */
#include "local.h"

#include <errno.h>
#include <stdlib.h>

#define IDX_MAGIC   "TOMEIDX2"
#define IDX_END     "TOMEIEND"
#define IDX_HDR     104
#define IDX_SEGREC  32
#define IDX_VERSION 2
#define IDX_MAXVAR  10   /* bytes of the longest varint */

/* Varints: 7 bits per byte, least significant group first, the high bit set
 * on every byte but the last (LEB128). */
static size_t var_put(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint at *q (below end); 0 if it runs past end or is too long. */
static int var_get(const uint8_t **q, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    const uint8_t *p = *q;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p == end) return 0;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *q = p;
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* ---- writing ---- */

static int put_bytes(tome_buf *b, const void *p, size_t n) { return tome_buf_append(b, p, n); }

static int put_u64(tome_buf *b, uint64_t v) {
    uint8_t t[8];
    tome_put64(t, v);
    return put_bytes(b, t, 8);
}

static int put_u32(tome_buf *b, uint32_t v) {
    uint8_t t[4];
    tome_put32(t, v);
    return put_bytes(b, t, 4);
}

/* Position of segment id `id` in the live list, or -1. */
static long live_pos(local *L, uint32_t id) {
    for (size_t i = 0; i < L->nlive; i++)
        if (L->live[i]->id == id) return (long)i;
    return -1;
}

int idxfile_write(local *L) {
    if (L->memory || L->read_only) return 0;
    tome_buf b = {0};
    int rc = 0;
    uint8_t hdr[IDX_HDR];
    memset(hdr, 0, sizeof hdr);
    if ((rc = tome_buf_reserve(&b, IDX_HDR)) != 0) return tome_err(L->base.db, rc, "out of memory");
    b.len = IDX_HDR;

    pthread_mutex_lock(&L->commit_mu);
    pthread_rwlock_rdlock(&L->ix_lock);
    seg *act = L->act;
    uint64_t covered_off = act ? act->size : 0;
    uint64_t nseg = L->nlive, nent = 0;
    /* segments */
    for (size_t i = 0; i < L->nlive && !rc; i++) {
        seg *s = L->live[i];
        rc = put_u64(&b, s->lo);
        if (!rc) rc = put_u64(&b, s->hi);
        if (!rc) rc = put_u32(&b, (uint32_t)s->merged);
        if (!rc) rc = put_u32(&b, 0);
        if (!rc) rc = put_u64(&b, s->size);
    }
    /* commit timestamps */
    pthread_mutex_lock(&L->reg_mu);
    uint64_t ctab_base = L->ctab_base, ctab_n = L->ctab_n;
    for (uint64_t i = 0; i < ctab_n && !rc; i++) rc = put_u64(&b, L->ctab[i]);
    /* entries (encoding: docs/FORMAT.md, "Index file") */
    tome_index_cursor c;
    const tome_entry *prev = NULL;
    for (tome_entry *e = tome_index_first(L->ix, &c); e && !rc; e = tome_index_next(&c)) {
        if (e->nver == 0) continue;
        uint8_t eh[3 * IDX_MAXVAR + 1];
        size_t n = 0, shared = 0;
        int new_slot = !prev || prev->slot != e->slot;
        if (!new_slot) {
            size_t m = prev->klen < e->klen ? prev->klen : e->klen;
            while (shared < m && prev->key[shared] == e->key[shared]) shared++;
        }
        n += var_put(eh + n, ((uint64_t)(e->klen - shared) << 1) | (uint64_t)new_slot);
        if (new_slot) eh[n++] = e->slot;
        else n += var_put(eh + n, shared);
        n += var_put(eh + n, e->nver);
        rc = put_bytes(&b, eh, n);
        if (!rc) rc = put_bytes(&b, e->key + shared, e->klen - shared);
        const tome_ver *v = tome_entry_vers(e);
        uint64_t pseq = 0;
        for (uint32_t k = 0; k < e->nver && !rc; k++) {
            uint8_t vr[5 * IDX_MAXVAR];
            long pos = live_pos(L, TOME_LOC_SEG(v[k].loc));
            if (pos < 0) {
                rc = tome_err(L->base.db, TOME_CORRUPT, "index version in no live segment");
                break;
            }
            uint64_t s = v[k].seq;
            int ts_given = !(s >= ctab_base && s - ctab_base < ctab_n && L->ctab[s - ctab_base] == v[k].ts);
            size_t vn = var_put(vr, ((s - pseq) << 2) | ((v[k].flags & TOME_VER_REMOVED) ? 2u : 0u) |
                                        (uint64_t)ts_given);
            if (ts_given) vn += var_put(vr + vn, v[k].ts);
            vn += var_put(vr + vn, (uint64_t)pos);
            vn += var_put(vr + vn, TOME_LOC_OFF(v[k].loc));
            vn += var_put(vr + vn, v[k].vlen);
            rc = put_bytes(&b, vr, vn);
            pseq = s;
        }
        prev = e;
        nent++;
    }
    pthread_mutex_unlock(&L->reg_mu);
    uint64_t last_seq = L->last_seq, last_ts = L->last_ts;
    uint64_t horizon = atomic_load(&L->horizon);
    if (act) atomic_fetch_add(&act->refs, 1);
    pthread_rwlock_unlock(&L->ix_lock);
    pthread_mutex_unlock(&L->commit_mu);
    if (rc) goto out;

    uint32_t bcrc = tome_crc32c(0, b.p + IDX_HDR, b.len - IDX_HDR);
    if ((rc = put_u32(&b, bcrc)) != 0 || (rc = put_bytes(&b, IDX_END, 8)) != 0) goto out;
    memcpy(hdr, IDX_MAGIC, 8);
    tome_put32(hdr + 8, IDX_VERSION);
    tome_put64(hdr + 16, nseg);
    tome_put64(hdr + 24, nent);
    tome_put64(hdr + 32, act ? act->lo : 0);
    tome_put64(hdr + 40, covered_off);
    tome_put64(hdr + 48, last_seq);
    tome_put64(hdr + 56, last_ts);
    tome_put64(hdr + 64, horizon);
    tome_put64(hdr + 72, ctab_base);
    tome_put64(hdr + 80, ctab_n);
    tome_put64(hdr + 88, b.len);
    tome_put32(hdr + 96, tome_crc32c(0, hdr, 96));
    memcpy(b.p, hdr, IDX_HDR);

    /* the log it covers must be durable before the file names it */
    if (act) {
        int e = L->vfs->sync(act->f, 1);
        if (e) {
            atomic_store(&L->poisoned, 1);
            rc = tome_err(L->base.db, TOME_IO, "sync %s: %s", act->name, strerror(-e));
            goto out;
        }
    }
    char *tmp = NULL, *fin = NULL;
    tome_file *f = NULL;
    if ((rc = local_path(L, "INDEX.tmp", &tmp)) != 0 || (rc = local_path(L, "INDEX", &fin)) != 0) {
        tome_free(tmp);
        goto out;
    }
    int e = L->vfs->open(L->vfs, tmp, TOME_VFS_WRITE | TOME_VFS_CREATE, &f);
    if (!e) e = L->vfs->truncate(f, 0);
    if (!e) {
        struct iovec iov = {b.p, b.len};
        e = L->vfs->pwritev(f, &iov, 1, 0);
    }
    TOME_KILLPOINT("index.tmp_written");
    if (!e) e = L->vfs->sync(f, 0);
    if (f) L->vfs->close(f);
    if (!e) e = L->vfs->rename(L->vfs, tmp, fin);
    TOME_KILLPOINT("index.renamed");
    if (!e) e = L->vfs->sync_dir(L->vfs, L->dir);
    if (e) {
        L->vfs->unlink(L->vfs, tmp);
        if (e == -ENOMEM) {
            /* nothing was trusted: the old index file (or none) stays */
            rc = tome_err(L->base.db, TOME_NOMEM, "write index file: out of memory");
        } else {
            atomic_store(&L->poisoned, 1); /* never trust a failed write or sync */
            rc = tome_err(L->base.db, TOME_IO, "write index file: %s", strerror(-e));
        }
    }
    tome_free(tmp);
    tome_free(fin);
out:
    if (act) seg_unref(L, act);
    tome_buf_free(&b);
    return rc;
}

/* ---- loading ---- */

static void reset_index(local *L) {
    ix_reset(L);
    L->ctab_n = 0;
}

/* 1 loaded, 0 ignored, <0 error (only out of memory or I/O on open). */
int idxfile_load(local *L, size_t *from_live, uint64_t *from_off) {
    char *path;
    int rc = local_path(L, "INDEX", &path);
    if (rc) return rc;
    tome_file *f = NULL;
    int e = L->vfs->open(L->vfs, path, TOME_VFS_READ, &f);
    tome_free(path);
    if (e) return 0; /* absent or unreadable: scan the log */
    uint64_t fsize = 0;
    uint8_t *p = NULL;
    tome_entry **ents = NULL; /* decoded entries not yet in the index */
    size_t n_ents = 0;
    int ok = 0;
    if (L->vfs->size(f, &fsize) != 0 || fsize < IDX_HDR + 12 || fsize > (UINT64_C(1) << 40)) goto done;
    p = tome_malloc((size_t)fsize);
    if (!p) {
        L->vfs->close(f);
        return TOME_NOMEM;
    }
    if (L->vfs->pread(f, p, (size_t)fsize, 0) != (int64_t)fsize) goto done;
    if (memcmp(p, IDX_MAGIC, 8) || tome_get32(p + 96) != tome_crc32c(0, p, 96) ||
        tome_get32(p + 8) != IDX_VERSION || tome_get64(p + 88) != fsize ||
        memcmp(p + fsize - 8, IDX_END, 8) ||
        tome_get32(p + fsize - 12) != tome_crc32c(0, p + IDX_HDR, (size_t)fsize - 12 - IDX_HDR))
        goto done;
    uint64_t nseg = tome_get64(p + 16), nent = tome_get64(p + 24);
    uint64_t cov_lo = tome_get64(p + 32), cov_off = tome_get64(p + 40);
    uint64_t last_seq = tome_get64(p + 48), last_ts = tome_get64(p + 56);
    uint64_t horizon = tome_get64(p + 64), ctab_base = tome_get64(p + 72), ctab_n = tome_get64(p + 80);
    const uint8_t *q = p + IDX_HDR, *end = p + fsize - 12;
    /* the segment list must be a prefix of the live set */
    if (nseg == 0 || nseg > L->nlive || (uint64_t)(end - q) / IDX_SEGREC < nseg) goto done;
    for (uint64_t i = 0; i < nseg; i++, q += IDX_SEGREC) {
        seg *s = L->live[i];
        if (tome_get64(q) != s->lo || tome_get64(q + 8) != s->hi || tome_get32(q + 16) != (uint32_t)s->merged)
            goto done;
    }
    seg *cov = L->live[nseg - 1];
    if (cov->merged || cov->lo != cov_lo || horizon != atomic_load(&L->horizon)) goto done;
    {
        uint64_t csz = 0;
        if (L->vfs->size(cov->f, &csz) != 0 || csz < cov_off || cov_off < SEG_HDR_SIZE) goto done;
        if (cov_off > SEG_HDR_SIZE) {
            uint8_t c[COMMIT_SIZE];
            if (cov_off < SEG_HDR_SIZE + COMMIT_SIZE ||
                L->vfs->pread(cov->f, c, COMMIT_SIZE, cov_off - COMMIT_SIZE) != COMMIT_SIZE ||
                tome_get32(c) != tome_crc32c(0, c + 4, COMMIT_SIZE - 4) || c[4] != REC_COMMIT ||
                memcmp(c + 16, COMMIT_MAGIC, 8) || tome_get64(c + 24) != last_seq)
                goto done;
        }
    }
    /* record sizes of the covered segments */
    {
        const uint8_t *sq = p + IDX_HDR;
        for (uint64_t i = 0; i < nseg; i++, sq += IDX_SEGREC) L->live[i]->size = tome_get64(sq + 24);
    }
    /* commit timestamps */
    if (ctab_base == 0 || (uint64_t)(end - q) / 8 < ctab_n) goto done;
    size_t ctab_off = (size_t)(q - p);
    for (uint64_t i = 0; i < ctab_n; i++, q += 8)
        if (ctab_base + i >= L->ctab_base && ctab_set(L, ctab_base + i, tome_get64(q)) != 0) {
            reset_index(L);
            L->vfs->close(f);
            tome_free(p);
            return TOME_NOMEM;
        }
    /* entries, in index order: decoded into one array, then the tree is
     * built bottom-up and the key hash filled in one pass (sized once) */
    if (nent > (uint64_t)(end - q) / 4) goto bad; /* an entry takes at least 4 bytes */
    ents = tome_malloc((nent ? nent : 1) * sizeof *ents);
    if (!ents) goto nomem;
    const tome_entry *prev = NULL;
    for (uint64_t i = 0; i < nent; i++) {
        uint64_t a, shared = 0, nver, slot;
        if (!var_get(&q, end, &a)) goto bad;
        int new_slot = (int)(a & 1);
        uint64_t suffix = a >> 1;
        if (new_slot) {
            if (q == end) goto bad;
            slot = *q++;
            if (prev && slot <= prev->slot) goto bad;
        } else {
            if (!prev || !var_get(&q, end, &shared) || shared > prev->klen) goto bad;
            slot = prev->slot;
        }
        if (!var_get(&q, end, &nver) || nver == 0 || nver > (uint64_t)(end - q) / 4 ||
            suffix > (uint64_t)(end - q) || shared + suffix > TOME_MAX_KEY_LEN)
            goto bad;
        size_t klen = (size_t)(shared + suffix);
        tome_entry *en = entry_new((uint8_t)slot, NULL, klen);
        if (!en) goto nomem;
        ents[n_ents++] = en;
        if (shared) memcpy(en->key, prev->key, (size_t)shared);
        if (suffix) memcpy(en->key + shared, q, (size_t)suffix);
        q += suffix;
        if (prev && !new_slot && tome_entry_cmp(en->slot, en->key, en->klen, prev) <= 0) goto bad;
        if (nver > 1 && entry_reserve(en, (uint32_t)nver) != 0) goto nomem;
        uint64_t prevseq = 0;
        for (uint64_t k = 0; k < nver; k++) {
            uint64_t sv, ts = 0, pos, off, vlen;
            if (!var_get(&q, end, &sv) || ((sv & 1) && !var_get(&q, end, &ts)) || !var_get(&q, end, &pos) ||
                !var_get(&q, end, &off) || !var_get(&q, end, &vlen))
                goto bad;
            tome_ver v;
            v.seq = prevseq + (sv >> 2);
            if (!(sv & 1)) {
                if (v.seq < ctab_base || v.seq - ctab_base >= ctab_n) goto bad;
                ts = tome_get64(p + ctab_off + 8 * (v.seq - ctab_base));
            }
            v.ts = ts;
            if (pos >= nseg || (sv >> 2) == 0 || v.seq > last_seq || off > MAX_SEGMENT_OFF ||
                vlen > TOME_MAX_VALUE_LEN || off + REC_HDR_SIZE + klen + vlen > L->live[pos]->size)
                goto bad;
            v.vlen = (uint32_t)vlen;
            v.flags = ((sv & 2) ? TOME_VER_REMOVED : 0) | (L->live[pos]->merged ? TOME_VER_MERGED : 0);
            v.loc = TOME_LOC(L->live[pos]->id, off);
            prevseq = v.seq;
            entry_push(en, &v);
        }
        L->nversions += nver;
        prev = en;
    }
    if (q != end) goto bad;
    {
        int brc = ix_build(L, ents, n_ents);
        if (brc == TOME_NOMEM) goto nomem;
        if (brc) goto bad; /* keys out of order: the checks above missed it */
    }
    n_ents = 0; /* the index owns them now */
    if (q != end) goto bad;
    L->last_seq = last_seq;
    L->last_ts = last_ts;
    for (uint64_t i = 0; i < nseg; i++)
        if (!L->live[i]->merged) {
            L->live[i]->last_seq = last_seq; /* an upper bound; exact for the covered one */
            L->live[i]->last_ts = last_ts;
        }
    *from_live = (size_t)(nseg - 1);
    *from_off = cov_off;
    ok = 1;
    goto done;
nomem:
    ok = TOME_NOMEM;
bad:
    for (size_t i = 0; i < n_ents; i++) entry_free(ents[i], NULL);
    n_ents = 0;
    reset_index(L);
    if (!L->ix || !L->kh) ok = TOME_NOMEM;
done:
    tome_free(ents);
    L->vfs->close(f);
    tome_free(p);
    return ok;
}
