/*
 * recover.c -- opening a local store: finding the live segment files,
 * loading the index file or scanning the log, and cutting a torn tail off.
 *
 * How it works (docs/FORMAT.md states the rules byte by byte):
 *
 * 1. The directory is listed. Every segment file covers a range of segment
 *    numbers: a log segment its own number, a merged segment the range of
 *    the segments it replaced. Taken in order, the live set is the chain of
 *    files that covers 1..N without a gap; a file inside the range of a
 *    merged file is superseded (a merge that crashed after renaming its
 *    output but before deleting its inputs) and is deleted. A gap or a
 *    partial overlap is damage: TOME_CORRUPT. Leftover *.tmp files are
 *    deleted.
 * 2. If the index file is valid and matches the live set, it fills the
 *    in-memory index and the log is replayed only from the position it
 *    covers; otherwise every segment is scanned.
 * 3. Scanning a log segment applies complete batches: records with valid
 *    checksums followed by a valid commit record that names the batch's
 *    start, its record count and the next sequence number. The first thing
 *    that does not fit ends the valid log at the start of that batch (D).
 * 4. Torn tail or damage? Every commit record carries `synced_upto`, the
 *    offset of its segment known durable when it was written. If any valid
 *    commit record after D says synced_upto > D, the bytes at D had been
 *    synced before: that is damage, TOME_CORRUPT. Likewise for any damage
 *    in a log segment that is not the last one (rolling over to a new
 *    segment syncs the old one first). Otherwise the bytes after D were
 *    never acknowledged as durable:
 *    a torn tail, which is zeroed (and synced) so that the next commit is
 *    written at D.
 *
 * Limitations: a merged segment is written whole and synced before it is
 * renamed into place, so any damage in it is TOME_CORRUPT. Values covered by
 * the index file are not re-verified at open; they are verified when read
 * and by tome_check.
 */
#include "local.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- a sequential reader with a window buffer ---- */

typedef struct reader {
    local *L;
    seg *s;
    uint64_t fsize;
    uint8_t *buf;
    size_t cap;
    uint64_t boff;   /* file offset of buf[0] */
    size_t blen;
} reader;

#define WINDOW (1u << 20)

/* Makes [off, off+n) available; returns a pointer to it, or NULL with *rc. */
static const uint8_t *rd_get(reader *r, uint64_t off, size_t n, int *rc) {
    if (off >= r->boff && off + n <= r->boff + r->blen) return r->buf + (off - r->boff);
    size_t want = n > WINDOW ? n : WINDOW;
    if (off + want > r->fsize) want = (size_t)(r->fsize - off);
    if (want < n) {
        *rc = TOME_NOTFOUND; /* past the end */
        return NULL;
    }
    if (want > r->cap) {
        uint8_t *b = tome_realloc(r->buf, want);
        if (!b) {
            *rc = TOME_NOMEM;
            return NULL;
        }
        r->buf = b;
        r->cap = want;
    }
    int64_t got = r->L->vfs->pread(r->s->f, r->buf, want, off);
    if (got < 0) {
        *rc = tome_err(r->L->base.db, TOME_IO, "read %s: %s", r->s->name, strerror((int)-got));
        return NULL;
    }
    r->boff = off;
    r->blen = (size_t)got;
    if ((size_t)got < n) {
        *rc = TOME_NOTFOUND;
        return NULL;
    }
    return r->buf;
}

/* ---- applying versions ---- */

/* Adds version v to (slot, key), creating the entry. Versions must arrive
 * in increasing seq per key (invariant I3). */
static int add_version(local *L, uint8_t slot, const uint8_t *key, size_t klen, const tome_ver *v) {
    tome_entry *e = ix_find(L, slot, key, klen);
    if (!e) {
        e = entry_new(slot, key, klen);
        if (!e) return TOME_NOMEM;
        if (ix_insert(L, e) != 0) {
            entry_free(e, NULL);
            return TOME_NOMEM;
        }
    } else {
        if (tome_entry_vers(e)[e->nver - 1].seq >= v->seq)
            return tome_err(L->base.db, TOME_CORRUPT, "versions of a key out of order (seq %llu)",
                            (unsigned long long)v->seq);
        if (entry_reserve(e, e->nver + 1) != 0) return TOME_NOMEM;
    }
    entry_push(e, v);
    L->nversions++;
    return 0;
}

typedef struct pend {
    uint64_t off;
    uint32_t koff, klen, vlen;
    uint8_t slot, removed;
} pend;

/* Finds the last non-zero byte at or after `from`; returns the offset just
 * past it (== from when everything is zero). */
static int nonzero_end(reader *r, uint64_t from, uint64_t *end) {
    uint64_t last = from;
    uint64_t off = from;
    while (off < r->fsize) {
        size_t n = (size_t)(r->fsize - off < WINDOW ? r->fsize - off : WINDOW);
        int rc = 0;
        const uint8_t *p = rd_get(r, off, n, &rc);
        if (!p) return rc == TOME_NOTFOUND ? 0 : rc;
        /* from the end, a word at a time where the window is all zeros */
        size_t i = n;
        while (i >= 8) {
            uint64_t w;
            memcpy(&w, p + i - 8, 8);
            if (w) break;
            i -= 8;
        }
        while (i > 0 && !p[i - 1]) i--;
        if (i > 0) last = off + i;
        off += n;
    }
    *end = last;
    return 0;
}

/* Looks for a valid commit record in [from, end) that says its segment was
 * durable past `from`. */
static int synced_commit_after(reader *r, uint64_t from, uint64_t end, int *found) {
    *found = 0;
    for (uint64_t off = from; off + COMMIT_SIZE <= end; off++) {
        int rc = 0;
        const uint8_t *p = rd_get(r, off, COMMIT_SIZE, &rc);
        if (!p) return rc == TOME_NOTFOUND ? 0 : rc;
        if (memcmp(p + 16, COMMIT_MAGIC, 8) != 0 || p[4] != REC_COMMIT) continue;
        if (tome_get32(p) != tome_crc32c(0, p + 4, COMMIT_SIZE - 4)) continue;
        if (tome_get64(p + 56) > from) {
            *found = 1;
            return 0;
        }
    }
    return 0;
}

/* Zeroes [from, end) of s and syncs it. */
static int zero_range(local *L, seg *s, uint64_t from, uint64_t end) {
    static const uint8_t zeros[65536];
    while (from < end) {
        size_t n = (size_t)(end - from < sizeof zeros ? end - from : sizeof zeros);
        struct iovec iov = {(void *)zeros, n};
        int e = L->vfs->pwritev(s->f, &iov, 1, from);
        if (e) return tome_err(L->base.db, TOME_IO, "cut torn tail of %s: %s", s->name, strerror(-e));
        from += n;
    }
    int e = L->memory ? 0 : L->vfs->sync(s->f, 1);
    if (e) return tome_err(L->base.db, TOME_IO, "sync %s: %s", s->name, strerror(-e));
    return 0;
}

/* Scans log segment s from `from`. Sets s->size to the end of the valid
 * log. *damaged: 0 clean, 1 torn tail (cut unless read-only). Returns
 * TOME_CORRUPT for damage that is not a torn tail. */
int local_scan_log(local *L, seg *s, uint64_t from, int is_last, int *damaged) {
    reader r = {L, s, 0, NULL, 0, 0, 0};
    int e = L->vfs->size(s->f, &r.fsize);
    if (e) return tome_err(L->base.db, TOME_IO, "size of %s: %s", s->name, strerror(-e));
    *damaged = 0;
    tome_buf keys = {0};
    pend *pv = NULL;
    size_t np = 0, pcap = 0;
    int rc = 0;
    uint64_t off = from, batch = from;
    for (;;) {
        int grc = 0;
        const uint8_t *h = rd_get(&r, off, REC_HDR_SIZE, &grc);
        if (!h) {
            if (grc != TOME_NOTFOUND) rc = grc;
            break;
        }
        int type = h[4];
        uint32_t klen = tome_get32(h + 8), vlen = tome_get32(h + 12);
        if (type == REC_PUT || type == REC_DEL) {
            if (klen > TOME_MAX_KEY_LEN || vlen > TOME_MAX_VALUE_LEN || (type == REC_DEL && vlen) ||
                h[6] || h[7])
                break;
        } else if (type == REC_COMMIT) {
            if (klen || vlen != COMMIT_PAYLOAD || h[5] || h[6] || h[7]) break;
        } else {
            break;
        }
        uint8_t slot = h[5];
        size_t total = REC_HDR_SIZE + klen + vlen;
        const uint8_t *p = rd_get(&r, off, total, &grc);
        if (!p) {
            if (grc != TOME_NOTFOUND) rc = grc;
            break;
        }
        if (tome_get32(p) != tome_crc32c(0, p + 4, total - 4)) break;
        if (type == REC_COMMIT) {
            const uint8_t *c = p + REC_HDR_SIZE;
            uint64_t seq = tome_get64(c + 8), ts = tome_get64(c + 16);
            if (memcmp(c, COMMIT_MAGIC, 8) != 0 || seq != L->last_seq + 1 || tome_get32(c + 24) != np ||
                tome_get64(c + 32) != batch || ts < L->last_ts || np == 0)
                break;
            for (size_t i = 0; i < np; i++) {
                tome_ver v = {seq, ts, TOME_LOC(s->id, pv[i].off), pv[i].vlen,
                              pv[i].removed ? TOME_VER_REMOVED : 0};
                const uint8_t *kp = keys.p ? keys.p + pv[i].koff : (const uint8_t *)""; /* only empty keys */
                if ((rc = add_version(L, pv[i].slot, kp, pv[i].klen, &v)) != 0) goto out;
            }
            if ((rc = ctab_set(L, seq, ts)) != 0) goto out;
            L->last_seq = seq;
            L->last_ts = ts;
            np = 0;
            keys.len = 0;
            off += total;
            batch = off;
            continue;
        }
        if (np == pcap) {
            size_t nc = pcap ? pcap * 2 : 64;
            pend *t = tome_realloc(pv, nc * sizeof *t);
            if (!t) {
                rc = TOME_NOMEM;
                goto out;
            }
            pv = t;
            pcap = nc;
        }
        pv[np].off = off;
        pv[np].koff = (uint32_t)keys.len;
        pv[np].klen = klen;
        pv[np].vlen = vlen;
        pv[np].slot = slot;
        pv[np].removed = type == REC_DEL;
        np++;
        if ((rc = tome_buf_append(&keys, p + REC_HDR_SIZE, klen)) != 0) goto out;
        off += total;
    }
    if (rc) goto out;
    /* The valid log ends at `batch`. Anything non-zero after it? */
    s->size = batch;
    uint64_t end = batch;
    if ((rc = nonzero_end(&r, batch, &end)) != 0) goto out;
    if (end > batch) {
        int found = 0;
        /* a commit record may end in zero bytes (its synced_upto field) */
        uint64_t search_end = end + COMMIT_SIZE < r.fsize ? end + COMMIT_SIZE : r.fsize;
        if ((rc = synced_commit_after(&r, batch, search_end, &found)) != 0) goto out;
        if (found) {
            rc = tome_err(L->base.db, TOME_CORRUPT,
                          "%s: damaged record at offset %llu before later durable commits", s->name,
                          (unsigned long long)batch);
            goto out;
        }
        if (!is_last) {
            /* a later segment exists, and rolling over synced this one
             * first: its bytes were durable, so this is damage */
            rc = tome_err(L->base.db, TOME_CORRUPT, "%s: damaged record at offset %llu before a later segment",
                          s->name, (unsigned long long)batch);
            goto out;
        }
        *damaged = 1;
        L->torn = 1;
        L->torn_off = batch;
        snprintf(L->torn_seg, sizeof L->torn_seg, "%s", s->name);
        if (!L->read_only) {
            TOME_KILLPOINT("recover.before_cut");
            if ((rc = zero_range(L, s, batch, end)) != 0) goto out;
        }
    }
out:
    tome_free(r.buf);
    tome_free(pv);
    tome_buf_free(&keys);
    return rc;
}

/* Scans a merged segment: every record must be valid up to the end. */
static int scan_merged(local *L, seg *s) {
    reader r = {L, s, 0, NULL, 0, 0, 0};
    int e = L->vfs->size(s->f, &r.fsize);
    if (e) return tome_err(L->base.db, TOME_IO, "size of %s: %s", s->name, strerror(-e));
    int rc = 0;
    uint64_t off = SEG_HDR_SIZE;
    while (off < r.fsize) {
        int grc = 0;
        const uint8_t *h = rd_get(&r, off, REC_HDR_SIZE + REC_MERGED_EXTRA, &grc);
        if (!h) {
            if (grc != TOME_NOTFOUND) {
                rc = grc;
                goto out;
            }
            goto bad;
        }
        int type = h[4];
        uint32_t klen = tome_get32(h + 8), vlen = tome_get32(h + 12);
        if ((type != REC_MPUT && type != REC_MDEL) || klen > TOME_MAX_KEY_LEN ||
            vlen > TOME_MAX_VALUE_LEN || (type == REC_MDEL && vlen))
            goto bad;
        size_t total = REC_HDR_SIZE + REC_MERGED_EXTRA + klen + vlen;
        const uint8_t *p = rd_get(&r, off, total, &grc);
        if (!p) {
            if (grc != TOME_NOTFOUND) {
                rc = grc;
                goto out;
            }
            goto bad;
        }
        if (tome_get32(p) != tome_crc32c(0, p + 4, total - 4)) goto bad;
        tome_ver v = {tome_get64(p + 16), tome_get64(p + 24), TOME_LOC(s->id, off), vlen,
                      (type == REC_MDEL ? TOME_VER_REMOVED : 0) | TOME_VER_MERGED};
        if (v.seq == 0 || v.seq > s->last_seq) goto bad;
        if (v.ts > L->last_ts) L->last_ts = v.ts;
        if ((rc = add_version(L, p[5], p + REC_HDR_SIZE + REC_MERGED_EXTRA, klen, &v)) != 0) goto out;
        if ((rc = ctab_set(L, v.seq, v.ts)) != 0) goto out;
        off += total;
    }
    s->size = off;
    goto out;
bad:
    rc = tome_err(L->base.db, TOME_CORRUPT, "%s: damaged record at offset %llu", s->name,
                  (unsigned long long)off);
out:
    tome_free(r.buf);
    return rc;
}

/* ---- the live set ---- */

typedef struct cand {
    seg *s;
    seg_hdr h;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->h.lo != y->h.lo) return x->h.lo < y->h.lo ? -1 : 1;
    if (x->h.hi != y->h.hi) return x->h.hi > y->h.hi ? -1 : 1;
    return x->h.merged > y->h.merged ? -1 : (x->h.merged < y->h.merged);
}

static int parse_name(const char *n, int *merged, uint64_t *lo, uint64_t *hi) {
    size_t len = strlen(n);
    char tmp[20];
    if (len == 20 && !strcmp(n + 16, ".log")) {
        memcpy(tmp, n, 16);
        tmp[16] = 0;
        char *end;
        *lo = *hi = strtoull(tmp, &end, 16);
        *merged = 0;
        return *end == 0;
    }
    if (len == 37 && n[16] == '-' && !strcmp(n + 33, ".mrg")) {
        char *end;
        memcpy(tmp, n, 16);
        tmp[16] = 0;
        *lo = strtoull(tmp, &end, 16);
        if (*end) return 0;
        memcpy(tmp, n + 17, 16);
        tmp[16] = 0;
        *hi = strtoull(tmp, &end, 16);
        *merged = 1;
        return *end == 0;
    }
    return 0;
}

static int remove_file(local *L, const char *name) {
    char *p;
    int rc = local_path(L, name, &p);
    if (rc) return rc;
    int e = L->vfs->unlink(L->vfs, p);
    tome_free(p);
    if (e && e != -ENOENT) return tome_err(L->base.db, TOME_IO, "remove %s: %s", name, strerror(-e));
    return 0;
}

int local_recover(local *L) {
    char **names = NULL;
    size_t nn = 0;
    int e = L->vfs->list(L->vfs, L->dir, &names, &nn);
    if (e) return tome_err(L->base.db, TOME_IO, "list %s: %s", L->dir, strerror(-e));
    cand *cs = tome_calloc(nn ? nn : 1, sizeof *cs);
    size_t nc = 0;
    int rc = 0, removed_any = 0;
    if (!cs) {
        tome_free(names);
        return TOME_NOMEM;
    }
    for (size_t i = 0; i < nn && !rc; i++) {
        const char *n = names[i];
        size_t len = strlen(n);
        if (len > 4 && !strcmp(n + len - 4, ".tmp")) {
            if (!L->read_only) {
                rc = remove_file(L, n);
                removed_any = 1;
            }
            continue;
        }
        int merged;
        uint64_t lo, hi;
        if (!parse_name(n, &merged, &lo, &hi)) continue;
        seg *s = seg_new(L);
        if (!s) {
            rc = TOME_NOMEM;
            break;
        }
        snprintf(s->name, sizeof s->name, "%s", n);
        char *p;
        if ((rc = local_path(L, n, &p)) != 0) {
            tome_free(s);
            break;
        }
        e = L->vfs->open(L->vfs, p, L->read_only || merged ? TOME_VFS_READ : TOME_VFS_WRITE, &s->f);
        tome_free(p);
        if (e) {
            tome_free(s);
            rc = tome_err(L->base.db, TOME_IO, "open %s: %s", n, strerror(-e));
            break;
        }
        uint8_t hb[SEG_HDR_SIZE];
        int64_t got = L->vfs->pread(s->f, hb, SEG_HDR_SIZE, 0);
        cs[nc].s = s;
        nc++;
        if (got < 0) {
            rc = tome_err(L->base.db, TOME_IO, "read %s: %s", n, strerror((int)-got));
            break;
        }
        int hok = got == SEG_HDR_SIZE && seg_hdr_decode(hb, &cs[nc - 1].h) == 0;
        if (hok && (cs[nc - 1].h.merged != merged || cs[nc - 1].h.lo != lo || cs[nc - 1].h.hi != hi))
            hok = 0;
        if (!hok) {
            /* A log segment whose header never reached the disk: its creation
             * was interrupted before anything was committed to it. */
            int allzero = 1;
            for (int64_t k = 0; k < got; k++)
                if (hb[k]) allzero = 0;
            if (!merged && allzero) {
                L->vfs->close(s->f);
                tome_free(s);
                nc--;
                if (!L->read_only) {
                    rc = remove_file(L, n);
                    removed_any = 1;
                }
                continue;
            }
            rc = tome_err(L->base.db, TOME_CORRUPT, "%s: bad segment header", n);
            break;
        }
    }
    tome_free(names);
    if (rc) goto fail;
    qsort(cs, nc, sizeof *cs, cand_cmp);
    /* choose the live chain */
    uint64_t expect = 1;
    size_t nlive = 0;
    for (size_t i = 0; i < nc; i++) {
        if (cs[i].h.hi < expect) { /* superseded by a merged segment */
            cs[i].s->dead = 1;
            continue;
        }
        if (cs[i].h.lo != expect) {
            rc = tome_err(L->base.db, TOME_CORRUPT, "segment files missing before %s", cs[i].s->name);
            goto fail;
        }
        expect = cs[i].h.hi + 1;
        nlive++;
    }
    L->live = tome_calloc(nlive ? nlive : 1, sizeof *L->live);
    if (!L->live) {
        rc = TOME_NOMEM;
        goto fail;
    }
    uint64_t horizon = 0, horizon_ts = 0;
    for (size_t i = 0; i < nc; i++) {
        seg *s = cs[i].s;
        if (s->dead) {
            L->vfs->close(s->f);
            if (!L->read_only) {
                if ((rc = remove_file(L, s->name)) != 0) goto fail;
                removed_any = 1;
            }
            tome_free(s);
            cs[i].s = NULL;
            continue;
        }
        s->merged = cs[i].h.merged;
        s->lo = cs[i].h.lo;
        s->hi = cs[i].h.hi;
        if ((rc = seg_table_add(L, s)) != 0) goto fail;
        L->live[L->nlive++] = s;
        cs[i].s = NULL;
        if (s->merged) {
            if (cs[i].h.base_seq >= horizon) {
                horizon = cs[i].h.base_seq;
                horizon_ts = cs[i].h.horizon_ts;
            }
            s->last_seq = cs[i].h.last_seq;
            s->last_ts = cs[i].h.last_ts;
        } else {
            s->base_seq = cs[i].h.base_seq;
        }
    }
    L->next_file = expect;
    if (removed_any && !L->read_only && !L->memory) {
        e = L->vfs->sync_dir(L->vfs, L->dir);
        if (e) {
            rc = tome_err(L->base.db, TOME_IO, "sync %s: %s", L->dir, strerror(-e));
            goto fail;
        }
    }
    atomic_store(&L->horizon, horizon);
    L->disk_horizon = horizon;
    L->ctab_base = horizon ? horizon : 1;
    if (horizon && (rc = ctab_set(L, horizon, horizon_ts)) != 0) goto fail;

    /* index file, or a full scan */
    size_t from_live = 0;
    uint64_t from_off = SEG_HDR_SIZE;
    int loaded = L->memory || L->no_index ? 0 : idxfile_load(L, &from_live, &from_off);
    L->index_used = loaded == 1;
    if (loaded < 0) {
        rc = loaded;
        goto fail;
    }
    if (!loaded) {
        from_live = 0;
        from_off = SEG_HDR_SIZE;
        /* merged segments first pass: they hold the oldest versions */
    }
    for (size_t i = from_live; i < L->nlive; i++) {
        seg *s = L->live[i];
        if (s->merged) {
            if (loaded) continue; /* covered by the index file */
            if ((rc = scan_merged(L, s)) != 0) goto fail;
            if (i + 1 == L->nlive && s->last_seq > L->last_seq) {
                /* no log segment after it: the header names the newest commit */
                L->last_seq = s->last_seq;
                if (s->last_ts > L->last_ts) L->last_ts = s->last_ts;
            }
            continue;
        }
        if (!(loaded && i == from_live)) {
            /* commits merged away leave a gap that the header closes */
            if (L->last_seq > s->base_seq) {
                rc = tome_err(L->base.db, TOME_CORRUPT, "%s: starts before commit %llu", s->name,
                              (unsigned long long)L->last_seq);
                goto fail;
            }
            L->last_seq = s->base_seq;
        }
        /* only the last segment may end in a torn tail (local_scan_log
         * reports damage in any other as TOME_CORRUPT) */
        int d = 0;
        if ((rc = local_scan_log(L, s, i == from_live ? from_off : SEG_HDR_SIZE, i + 1 == L->nlive, &d)) != 0)
            goto fail;
        s->last_seq = L->last_seq;
        s->last_ts = L->last_ts;
        uint64_t fsize = 0;
        if (L->vfs->size(s->f, &fsize) == 0) s->cap = fsize;
        atomic_store(&s->synced, s->size);
    }
    /* Commits merged away leave no record; the horizon's time bounds them.
     * (Not applied before the scan: log segments a merge left alone hold
     * commits older than the horizon.) */
    if (horizon_ts > L->last_ts) L->last_ts = horizon_ts;
    /* sizes of live segments the index file covered */
    for (size_t i = 0; i < from_live && i < L->nlive; i++) {
        uint64_t fsize = 0;
        if (L->vfs->size(L->live[i]->f, &fsize) == 0 && L->live[i]->size == 0) L->live[i]->size = fsize;
    }

    /* the active segment */
    if (!L->read_only) {
        seg *last = L->nlive ? L->live[L->nlive - 1] : NULL;
        if (last && !last->merged) {
            L->act = last;
            if (last->cap < L->segment_size) {
                /* grow it back to a full segment if the disk allows; if not
                 * (a full disk), the next commit that does not fit rolls over */
                if (L->vfs->allocate(last->f, 0, L->segment_size) == 0) last->cap = L->segment_size;
            }
        } else {
            seg *s;
            if ((rc = local_create_log(L, L->next_file, L->last_seq, &s)) != 0) goto fail;
            seg **nl = tome_realloc(L->live, (L->nlive + 1) * sizeof *nl);
            if (!nl) {
                L->vfs->close(s->f);
                tome_free(s);
                rc = TOME_NOMEM;
                goto fail;
            }
            L->live = nl;
            if ((rc = seg_table_add(L, s)) != 0) {
                L->vfs->close(s->f);
                tome_free(s);
                goto fail;
            }
            L->live[L->nlive++] = s;
            L->next_file++;
            L->act = s;
        }
    }
    tome_free(cs);
    return 0;
fail:
    for (size_t i = 0; i < nc; i++)
        if (cs[i].s) {
            if (cs[i].s->f) L->vfs->close(cs[i].s->f);
            tome_free(cs[i].s);
        }
    tome_free(cs);
    return rc;
}
