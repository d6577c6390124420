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

#define IDX_MAGIC   "TOMEIDX1"
#define IDX_END     "TOMEIEND"
#define IDX_HDR     104
#define IDX_SEGREC  32
#define IDX_VERREC  36

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
    pthread_mutex_unlock(&L->reg_mu);
    /* entries */
    tome_index_cursor c;
    for (tome_entry *e = tome_index_first(L->ix, &c); e && !rc; e = tome_index_next(&c)) {
        if (e->nver == 0) continue;
        uint8_t eh[8];
        eh[0] = e->slot;
        eh[1] = 0;
        tome_put16(eh + 2, e->klen);
        tome_put32(eh + 4, e->nver);
        rc = put_bytes(&b, eh, 8);
        if (!rc) rc = put_bytes(&b, e->key, e->klen);
        const tome_ver *v = tome_entry_vers(e);
        for (uint32_t k = 0; k < e->nver && !rc; k++) {
            uint8_t vr[IDX_VERREC];
            long pos = live_pos(L, TOME_LOC_SEG(v[k].loc));
            if (pos < 0) {
                rc = tome_err(L->base.db, TOME_CORRUPT, "index version in no live segment");
                break;
            }
            tome_put64(vr, v[k].seq);
            tome_put64(vr + 8, v[k].ts);
            tome_put64(vr + 16, TOME_LOC_OFF(v[k].loc));
            tome_put32(vr + 24, (uint32_t)pos);
            tome_put32(vr + 28, v[k].vlen);
            tome_put32(vr + 32, v[k].flags);
            rc = put_bytes(&b, vr, IDX_VERREC);
        }
        nent++;
    }
    uint64_t last_seq = L->last_seq, last_ts = L->last_ts;
    uint64_t horizon = atomic_load(&L->horizon);
    if (act) atomic_fetch_add(&act->refs, 1);
    pthread_rwlock_unlock(&L->ix_lock);
    pthread_mutex_unlock(&L->commit_mu);
    if (rc) goto out;

    uint32_t bcrc = tome_crc32c(0, b.p + IDX_HDR, b.len - IDX_HDR);
    if ((rc = put_u32(&b, bcrc)) != 0 || (rc = put_bytes(&b, IDX_END, 8)) != 0) goto out;
    memcpy(hdr, IDX_MAGIC, 8);
    tome_put32(hdr + 8, FORMAT_VERSION);
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
    int ok = 0;
    if (L->vfs->size(f, &fsize) != 0 || fsize < IDX_HDR + 12 || fsize > (UINT64_C(1) << 40)) goto done;
    p = tome_malloc((size_t)fsize);
    if (!p) {
        L->vfs->close(f);
        return TOME_NOMEM;
    }
    if (L->vfs->pread(f, p, (size_t)fsize, 0) != (int64_t)fsize) goto done;
    if (memcmp(p, IDX_MAGIC, 8) || tome_get32(p + 96) != tome_crc32c(0, p, 96) ||
        tome_get32(p + 8) != FORMAT_VERSION || tome_get64(p + 88) != fsize ||
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
    for (uint64_t i = 0; i < ctab_n; i++, q += 8)
        if (ctab_base + i >= L->ctab_base && ctab_set(L, ctab_base + i, tome_get64(q)) != 0) {
            reset_index(L);
            L->vfs->close(f);
            tome_free(p);
            return TOME_NOMEM;
        }
    /* entries, in index order (the key hash sized once, not grown) */
    if (L->kh && nent <= (uint64_t)(end - q) / 8 && tome_keyhash_reserve(L->kh, (size_t)nent) != 0) goto nomem;
    tome_entry *prev = NULL;
    for (uint64_t i = 0; i < nent; i++) {
        if (end - q < 8) goto bad;
        uint8_t slot = q[0];
        uint16_t klen = tome_get16(q + 2);
        uint32_t nver = tome_get32(q + 4);
        q += 8;
        if (nver == 0 || (size_t)(end - q) < klen || (uint64_t)(end - q - klen) / IDX_VERREC < nver) goto bad;
        if (prev && tome_entry_cmp(slot, q, klen, prev) <= 0) goto bad;
        tome_entry *en = entry_new(slot, q, klen);
        if (!en) goto nomem;
        q += klen;
        if (nver > 1 && entry_reserve(en, nver) != 0) {
            entry_free(en, NULL);
            goto nomem;
        }
        uint64_t prevseq = 0;
        for (uint32_t k = 0; k < nver; k++, q += IDX_VERREC) {
            tome_ver v;
            v.seq = tome_get64(q);
            v.ts = tome_get64(q + 8);
            uint64_t off = tome_get64(q + 16);
            uint32_t pos = tome_get32(q + 24);
            v.vlen = tome_get32(q + 28);
            v.flags = tome_get32(q + 32);
            if (pos >= nseg || v.seq <= prevseq || v.seq > last_seq || off > MAX_SEGMENT_OFF ||
                (v.flags & ~(TOME_VER_REMOVED | TOME_VER_MERGED)) ||
                ((v.flags & TOME_VER_MERGED) != 0) != (L->live[pos]->merged != 0) ||
                off + REC_HDR_SIZE + klen + v.vlen > L->live[pos]->size) {
                entry_free(en, NULL);
                goto bad;
            }
            prevseq = v.seq;
            v.loc = TOME_LOC(L->live[pos]->id, off);
            entry_push(en, &v);
        }
        if (ix_append(L, en) != 0) {
            entry_free(en, NULL);
            goto nomem;
        }
        L->nversions += nver;
        prev = en;
    }
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
    reset_index(L);
    L->vfs->close(f);
    tome_free(p);
    return TOME_NOMEM;
bad:
    reset_index(L);
    if (!L->ix || !L->kh) {
        L->vfs->close(f);
        tome_free(p);
        return TOME_NOMEM;
    }
done:
    L->vfs->close(f);
    tome_free(p);
    return ok;
}
