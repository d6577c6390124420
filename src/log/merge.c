/*
 * merge.c -- compaction of the local log while readers and writers go on.
 *
 * How it works:
 *  1. Under commit_mu the active segment is sealed (rolled over), so every
 *     commit up to now lies in sealed segments and new commits go to a new
 *     segment the merge never touches. The horizon H is chosen (the newest
 *     commit, or older when history_ms keeps a time window) and published:
 *     from now on tome_begin_at below H fails, and new snapshots see history
 *     through the filter of vis_range (engine.c). Snapshots that began
 *     earlier pin every version up to the newest of their seqs (M): a merge
 *     never drops what an open transaction can see.
 *  2. Plan: one pass over the index (in chunks, under the read lock)
 *     decides, for every version in a sealed segment, keep or drop, and
 *     adds up per segment the bytes kept. Runs of consecutive segments that
 *     have something to drop form groups, each at most segment_size of kept
 *     data; a segment with nothing to drop is left alone. So a merge
 *     rewrites only what gains space, never the whole store at once.
 *  3. For each group, the kept versions are copied, in key order, into a
 *     new merged segment (every value re-verified against its checksum on
 *     the way), which is synced, then renamed from *.tmp to its final name
 *     `lo-hi.mrg`. The directory is synced once all are renamed.
 *  4. Switch, under commit_mu and the index write lock (in memory only):
 *     kept versions get their new locations, dropped ones leave the index,
 *     keys left without versions are freed, and the old segments leave the
 *     live set. Each old file is unlinked when its last reader lets go.
 *  5. A new index file is written.
 * What if the process dies? Before a rename: *.tmp files, deleted at open.
 * After some renames: each .mrg file covers its own range completely, so
 * recovery uses it and deletes the segments it supersedes. Nothing
 * committed is lost at any point.
 * Limitations: merged segments are not merged again with each other unless
 * they have something to drop; values are copied through memory one record
 * at a time.
 */
#include "local.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK 1024

typedef struct mseg {      /* a sealed segment in the merge's view */
    seg *s;
    uint64_t kept;          /* bytes of kept records, as merged records */
    int drops;              /* has something to drop */
    int group;              /* output group, or -1 */
} mseg;

typedef struct reloc {
    tome_entry *e;
    uint64_t seq;
    uint64_t loc;           /* new location (or 0 for a drop) */
} reloc;

typedef struct mstate {
    local *L;
    mseg *ms;
    size_t nms;
    uint64_t H;
    uint64_t hmin;          /* oldest horizon among open snapshots and H */
    reloc *rel;
    size_t nrel, relcap;
    reloc *drop;
    size_t ndrop, dropcap;
} mstate;

static long mseg_of(mstate *st, uint32_t id) {
    /* few segments: a linear scan is fine */
    for (size_t i = 0; i < st->nms; i++)
        if (st->ms[i].s->id == id) return (long)i;
    return -1;
}

static size_t merged_size(const tome_entry *e, const tome_ver *v) {
    return REC_HDR_SIZE + REC_MERGED_EXTRA + e->klen + ((v->flags & TOME_VER_REMOVED) ? 0 : v->vlen);
}

/* The index of the first version a merge with horizon H keeps. */
static uint32_t keep_from(local *L, const tome_ver *v, uint32_t n, uint64_t H) {
    uint32_t K = L->history_versions > 1 ? L->history_versions : 1;
    uint32_t j = 0;
    while (j < n && v[j].seq <= H) j++;
    uint32_t b = j > K ? j - K : 0;
    while (b < j && (v[b].flags & TOME_VER_REMOVED)) b++;
    return b;
}

/*
 * How many of a key's oldest versions this merge drops: the prefix that the
 * visibility filter hides from every snapshot still open. A snapshot with
 * horizon h sees versions from keep_from(h) on, and keep_from grows with
 * h, so the prefix hidden from all of them is the one hidden at the oldest
 * horizon among the open snapshots (hmin) and the new one (H). Dropping
 * only a prefix that a snapshot's filter already hides leaves its answer
 * the same on what is left, for its horizon and every later one; and a
 * crash between two groups of the same merge leaves a shorter prefix
 * dropped, which the filter hides all the same. So an open transaction
 * holds back only what it can see, and a store under steady load still
 * gets space back: its transactions' horizons move up merge after merge.
 */
static uint32_t merge_cut(mstate *st, const tome_ver *v, uint32_t n) {
    return keep_from(st->L, v, n, st->hmin);
}

/* Calls fn on every entry, CHUNK at a time under the read lock. */
typedef int (*visit_fn)(mstate *st, tome_entry *e);

static int visit_all(mstate *st, visit_fn fn) {
    local *L = st->L;
    uint8_t *last = NULL;
    size_t last_len = 0, last_cap = 0;
    uint8_t last_slot = 0;
    int started = 0, rc = 0;
    for (;;) {
        pthread_rwlock_rdlock(&L->ix_lock);
        tome_index_cursor c;
        tome_entry *e;
        if (!started) e = tome_index_first(L->ix, &c);
        else {
            e = tome_index_seek(L->ix, &c, last_slot, last, last_len);
            if (e && tome_entry_cmp(last_slot, last, last_len, e) == 0) e = tome_index_next(&c);
        }
        started = 1;
        int n = 0;
        tome_entry *prev = NULL;
        for (; e && n < CHUNK && !rc; e = tome_index_next(&c), n++) {
            rc = fn(st, e);
            prev = e;
        }
        if (prev && !rc) {
            if (prev->klen > last_cap) {
                uint8_t *t = tome_realloc(last, prev->klen);
                if (!t) rc = TOME_NOMEM;
                else {
                    last = t;
                    last_cap = prev->klen;
                }
            }
            if (!rc) {
                if (prev->klen) memcpy(last, prev->key, prev->klen);
                last_len = prev->klen;
                last_slot = prev->slot;
            }
        }
        pthread_rwlock_unlock(&L->ix_lock);
        if (rc || !e) break;
    }
    tome_free(last);
    return rc;
}

static int plan_visit(mstate *st, tome_entry *e) {
    if (e->nver == 0) return 0;
    const tome_ver *v = tome_entry_vers(e);
    uint32_t b = merge_cut(st, v, e->nver);
    for (uint32_t i = 0; i < e->nver; i++) {
        long m = mseg_of(st, TOME_LOC_SEG(v[i].loc));
        if (m < 0) continue;
        if (i >= b) st->ms[m].kept += merged_size(e, &v[i]);
        else st->ms[m].drops = 1;
    }
    return 0;
}

/* ---- writing one group ---- */

typedef struct gwriter {
    mstate *st;
    int group;
    seg *out;
    tome_buf buf;
    uint64_t off;           /* file offset of buf[0] */
    uint8_t *scratch;
    size_t scap;
    int rc;
} gwriter;

static int gw_flush(gwriter *g) {
    if (!g->buf.len) return 0;
    struct iovec iov = {g->buf.p, g->buf.len};
    int e = g->st->L->vfs->pwritev(g->out->f, &iov, 1, g->off);
    if (e) return tome_err(g->st->L->base.db, e == -ENOMEM ? TOME_NOMEM : TOME_IO, "write %s: %s", g->out->name, strerror(-e));
    g->off += g->buf.len;
    g->buf.len = 0;
    return 0;
}

static void *scratch_alloc(void *ctx, size_t n) {
    gwriter *g = ctx;
    if (n > g->scap) {
        uint8_t *p = tome_realloc(g->scratch, n);
        if (!p) return NULL;
        g->scratch = p;
        g->scap = n;
    }
    return g->scratch;
}

static int push_reloc(reloc **a, size_t *n, size_t *cap, tome_entry *e, uint64_t seq, uint64_t loc) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        reloc *t = tome_realloc(*a, nc * sizeof *t);
        if (!t) return TOME_NOMEM;
        *a = t;
        *cap = nc;
    }
    (*a)[*n].e = e;
    (*a)[*n].seq = seq;
    (*a)[*n].loc = loc;
    (*n)++;
    return 0;
}


static gwriter *cur_g;

static int group_visit(mstate *st, tome_entry *e) {
    gwriter *g = cur_g;
    local *L = st->L;
    if (e->nver == 0) return 0;
    const tome_ver *v = tome_entry_vers(e);
    uint32_t b = merge_cut(st, v, e->nver);
    for (uint32_t i = 0; i < e->nver; i++) {
        long m = mseg_of(st, TOME_LOC_SEG(v[i].loc));
        if (m < 0 || st->ms[m].group != g->group) continue;
        int keep = i >= b;
        if (!keep) {
            if (push_reloc(&st->drop, &st->ndrop, &st->dropcap, e, v[i].seq, 0)) return TOME_NOMEM;
            continue;
        }
        /* read the old record (verifies its checksum) and write it merged */
        int removed = (v[i].flags & TOME_VER_REMOVED) != 0;
        const void *val = NULL;
        if (!removed) {
            int rc = local_read_record(L, st->ms[m].s, TOME_LOC_OFF(v[i].loc), e->slot, e->key, e->klen,
                                       v[i].vlen, (v[i].flags & TOME_VER_MERGED) != 0, scratch_alloc, g,
                                       &val);
            if (rc) return rc;
        }
        size_t total = merged_size(e, &v[i]);
        uint64_t at = g->off + g->buf.len;
        if (push_reloc(&st->rel, &st->nrel, &st->relcap, e, v[i].seq, TOME_LOC(g->out->id, at)))
            return TOME_NOMEM;
        if (tome_buf_reserve(&g->buf, total)) return TOME_NOMEM;
        uint8_t *h = g->buf.p + g->buf.len;
        uint32_t vl = removed ? 0 : v[i].vlen;
        rec_hdr_encode(h, removed ? REC_MDEL : REC_MPUT, e->slot, e->klen, vl);
        tome_put64(h + 16, v[i].seq);
        tome_put64(h + 24, v[i].ts);
        if (e->klen) memcpy(h + 32, e->key, e->klen);
        if (vl) memcpy(h + 32 + e->klen, val, vl);
        tome_put32(h, tome_crc32c(0, h + 4, total - 4));
        g->buf.len += total;
        if (g->buf.len >= (1u << 20)) {
            int rc = gw_flush(g);
            if (rc) return rc;
        }
    }
    return 0;
}

/* Writes group `gi` into a new merged segment; on success *out is it. */
static int write_group(mstate *st, int gi, size_t first, size_t last, uint64_t ts_H, seg **out) {
    local *L = st->L;
    seg *s = seg_new(L);
    if (!s) return TOME_NOMEM;
    s->merged = 1;
    s->lo = st->ms[first].s->lo;
    s->hi = st->ms[last].s->hi;
    for (size_t i = first; i <= last; i++) {
        if (st->ms[i].s->last_seq > s->last_seq) {
            s->last_seq = st->ms[i].s->last_seq;
            s->last_ts = st->ms[i].s->last_ts;
        }
    }
    seg_name(s->name, sizeof s->name, 1, s->lo, s->hi);
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", s->name);
    char *tmp = NULL, *fin = NULL;
    int rc = local_path(L, tmpname, &tmp);
    if (!rc) rc = local_path(L, s->name, &fin);
    if (rc) goto fail;
    int e = L->vfs->open(L->vfs, tmp, TOME_VFS_WRITE | TOME_VFS_CREATE, &s->f);
    if (!e) e = L->vfs->truncate(s->f, 0);
    if (e) {
        rc = tome_err(L->base.db, e == -ENOMEM ? TOME_NOMEM : TOME_IO, "create %s: %s", tmpname, strerror(-e));
        goto fail;
    }
    /* the id is needed for locations; enter it in the table now (it is not
     * live until the switch) */
    pthread_rwlock_wrlock(&L->ix_lock);
    rc = seg_table_add(L, s);
    pthread_rwlock_unlock(&L->ix_lock);
    if (rc) goto fail;
    {
        seg_hdr h = {1, s->lo, s->hi, st->H, s->last_seq, s->last_ts, ts_H};
        uint8_t hb[SEG_HDR_SIZE];
        seg_hdr_encode(hb, &h);
        gwriter g = {st, gi, s, {0}, 0, NULL, 0, 0};
        rc = tome_buf_append(&g.buf, hb, SEG_HDR_SIZE);
        cur_g = &g;
        if (!rc) rc = visit_all(st, group_visit);
        cur_g = NULL;
        if (!rc) rc = gw_flush(&g);
        s->size = g.off;
        tome_buf_free(&g.buf);
        tome_free(g.scratch);
        if (rc) goto fail;
    }
    TOME_KILLPOINT("merge.group_written");
    e = L->memory ? 0 : L->vfs->sync(s->f, 0);
    TOME_KILLPOINT("merge.group_synced");
    if (!e) e = L->vfs->rename(L->vfs, tmp, fin);
    TOME_KILLPOINT("merge.group_renamed");
    if (e) {
        rc = tome_err(L->base.db, e == -ENOMEM ? TOME_NOMEM : TOME_IO, "finish %s: %s", s->name, strerror(-e));
        goto fail;
    }
    tome_free(tmp);
    tome_free(fin);
    *out = s;
    return 0;
fail:
    if (s->f) {
        L->vfs->close(s->f);
        if (tmp) L->vfs->unlink(L->vfs, tmp);
    }
    pthread_rwlock_wrlock(&L->ix_lock);
    if (s->id < L->nsegs_cap && L->segs[s->id] == s) L->segs[s->id] = NULL;
    pthread_rwlock_unlock(&L->ix_lock);
    tome_free(tmp);
    tome_free(fin);
    tome_free(s);
    return rc;
}

/* Removes version `seq` from e (in place). */
static void drop_version(tome_entry *e, uint64_t seq) {
    tome_ver *v = tome_entry_vers(e);
    for (uint32_t i = 0; i < e->nver; i++) {
        if (v[i].seq != seq) continue;
        if (e->nver == 1) {
            e->nver = 0;
            return;
        }
        memmove(&v[i], &v[i + 1], (e->nver - i - 1) * sizeof *v);
        e->nver--;
        if (e->nver == 1 && !e->spill) {
            tome_ver one = v[0];
            tome_free(v);
            e->v.one = one;
        }
        tome_entry_sync_newest(e);
        return;
    }
}

/* The newest commit whose time is at or before `cutoff` (under reg_mu). */
static uint64_t seq_at_time(local *L, uint64_t cutoff) {
    uint64_t lo = 0, hi = L->ctab_n; /* find the last index with ts <= cutoff */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (L->ctab[mid] <= cutoff) lo = mid + 1;
        else hi = mid;
    }
    return lo == 0 ? 0 : L->ctab_base + lo - 1;
}

int local_merge(tome_backend *b) {
    local *L = (local *)b;
    if (L->read_only) return tome_err(b->db, TOME_READONLY, "the store is open read-only");
    pthread_mutex_lock(&L->merge_mu);
    mstate st;
    memset(&st, 0, sizeof st);
    st.L = L;
    seg **newsegs = NULL;
    int rc = 0, ngroups = 0;
    if (atomic_load(&L->poisoned)) {
        rc = tome_err(b->db, TOME_IO, "an earlier write or sync failed: reopen the store");
        goto out;
    }

    /* 1. seal and choose the horizon */
    pthread_mutex_lock(&L->commit_mu);
    if (L->act->size > SEG_HDR_SIZE) rc = local_rotate(L);
    uint64_t newest = L->last_seq;
    if (!rc) {
        st.ms = tome_calloc(L->nlive ? L->nlive : 1, sizeof *st.ms);
        if (!st.ms) rc = TOME_NOMEM;
        for (size_t i = 0; !rc && i < L->nlive; i++) {
            if (L->live[i] == L->act) continue;
            st.ms[st.nms].s = L->live[i];
            st.ms[st.nms].group = -1;
            st.nms++;
        }
    }
    pthread_mutex_unlock(&L->commit_mu);
    if (rc) goto out;
    /* sealed commits must be visible before the horizon moves past them */
    if (atomic_load(&L->visible_seq) < newest) {
        rc = b->ops->sync(b);
        if (rc) goto out;
    }
    uint64_t H = newest, ts_H;
    pthread_mutex_lock(&L->reg_mu);
    if (L->history_ms) {
        uint64_t now = L->vfs->now_ms(L->vfs);
        uint64_t cut = now > L->history_ms ? now - L->history_ms : 0;
        uint64_t s = seq_at_time(L, cut);
        if (s < H) H = s;
    }
    uint64_t oldh = atomic_load(&L->horizon);
    if (H < oldh) H = oldh;
    atomic_store(&L->horizon, H);
    ts_H = ctab_get(L, H);
    st.hmin = H;
    for (snap_reg *r = L->reg.next; r != &L->reg; r = r->next)
        if (r->horizon < st.hmin) st.hmin = r->horizon;
    pthread_mutex_unlock(&L->reg_mu);
    st.H = H;

    /* 2. plan */
    if ((rc = visit_all(&st, plan_visit)) != 0) goto out;
    size_t i = 0;
    while (i < st.nms) {
        if (!st.ms[i].drops) {
            i++;
            continue;
        }
        uint64_t sum = 0;
        size_t j = i;
        while (j < st.nms && st.ms[j].drops && (j == i || sum + st.ms[j].kept <= L->segment_size)) {
            sum += st.ms[j].kept;
            st.ms[j].group = ngroups;
            j++;
        }
        ngroups++;
        i = j;
    }
    /* The horizon is recorded in merged segment headers. A merge that
     * drops nothing but moves the horizon rewrites the newest sealed
     * segment, so that the horizon survives a reopen without the index
     * file (what snapshots see depends on it). */
    if (ngroups == 0 && st.H > L->disk_horizon && st.nms > 0) {
        st.ms[st.nms - 1].group = 0;
        ngroups = 1;
    }
    if (ngroups == 0) goto index;

    /* 3. write the groups */
    newsegs = tome_calloc((size_t)ngroups, sizeof *newsegs);
    if (!newsegs) {
        rc = TOME_NOMEM;
        goto out;
    }
    for (int g = 0; g < ngroups; g++) {
        size_t first = st.nms, last = 0;
        for (size_t k = 0; k < st.nms; k++)
            if (st.ms[k].group == g) {
                if (first == st.nms) first = k;
                last = k;
            }
        if ((rc = write_group(&st, g, first, last, ts_H, &newsegs[g])) != 0) goto out;
    }
    if (!L->memory) {
        int e = L->vfs->sync_dir(L->vfs, L->dir);
        if (e) {
            rc = tome_err(b->db, e == -ENOMEM ? TOME_NOMEM : TOME_IO, "sync %s: %s", L->dir, strerror(-e));
            goto out;
        }
    }

    TOME_KILLPOINT("merge.before_switch");
    /* 4. switch. Everything it needs is allocated first: once the first
     * location is changed, nothing may fail. */
    pthread_mutex_lock(&L->commit_mu);
    seg **nl = tome_malloc((L->nlive ? L->nlive : 1) * sizeof *nl);
    seg **dead = tome_malloc((st.nms ? st.nms : 1) * sizeof *dead);
    size_t nn = 0, ndead = 0;
    if (!nl || !dead) {
        pthread_mutex_unlock(&L->commit_mu);
        tome_free(nl);
        tome_free(dead);
        rc = tome_err(b->db, TOME_NOMEM, "out of memory switching to the merged segments");
        goto out;
    }
    pthread_rwlock_wrlock(&L->ix_lock);
    for (size_t k = 0; k < st.nrel; k++) {
        tome_entry *e = st.rel[k].e;
        tome_ver *v = tome_entry_vers(e);
        for (uint32_t x = 0; x < e->nver; x++)
            if (v[x].seq == st.rel[k].seq) {
                v[x].loc = st.rel[k].loc;
                v[x].flags |= TOME_VER_MERGED;
                tome_entry_sync_newest(e);
                break;
            }
    }
    for (size_t k = 0; k < st.ndrop; k++) {
        drop_version(st.drop[k].e, st.drop[k].seq);
        L->nversions--;
    }
    for (size_t k = 0; k < st.ndrop; k++) {
        tome_entry *e = st.drop[k].e;
        if (e && e->nver == 0) {
            ix_remove(L, e);
            /* later drops of the same entry must not touch it again */
            for (size_t q = k + 1; q < st.ndrop; q++)
                if (st.drop[q].e == e) st.drop[q].e = NULL;
            entry_free(e, NULL);
        }
    }
    /* the live list: each group's run replaced by its merged segment */
    {
        int lastg = -1;
        for (size_t k = 0; k < L->nlive; k++) {
            long m = mseg_of(&st, L->live[k]->id);
            if (m >= 0 && st.ms[m].group >= 0) {
                if (st.ms[m].group != lastg) nl[nn++] = newsegs[st.ms[m].group];
                lastg = st.ms[m].group;
                dead[ndead++] = L->live[k];
            } else {
                nl[nn++] = L->live[k];
                lastg = -1;
            }
        }
        tome_free(L->live);
        L->live = nl;
        L->nlive = nn;
        for (size_t k = 0; k < ndead; k++) {
            /* a group that re-merges one merged segment renamed its output
             * over the input's name: that name is the new file now */
            int renamed_over = 0;
            for (int g = 0; g < ngroups; g++)
                if (!strcmp(newsegs[g]->name, dead[k]->name)) renamed_over = 1;
            dead[k]->dead = !renamed_over;
            L->segs[dead[k]->id] = NULL;
        }
        for (int g = 0; g < ngroups; g++) newsegs[g] = NULL; /* now owned by the live list */
    }
    pthread_rwlock_unlock(&L->ix_lock);
    pthread_mutex_unlock(&L->commit_mu);
    TOME_KILLPOINT("merge.switched");
    L->disk_horizon = st.H;
    for (size_t k = 0; k < ndead; k++) seg_unref(L, dead[k]);
    TOME_KILLPOINT("merge.unlinked");
    tome_free(dead);
    if (!L->memory) L->vfs->sync_dir(L->vfs, L->dir);

index:
    /* 5. a fresh index file (it also records the horizon) */
    rc = idxfile_write(L);
out:
    if (rc == TOME_IO) atomic_store(&L->poisoned, 1); /* never trust a failed write or sync */
    if (newsegs) {
        for (int g = 0; g < ngroups; g++)
            if (newsegs[g]) {
                pthread_rwlock_wrlock(&L->ix_lock);
                L->segs[newsegs[g]->id] = NULL;
                pthread_rwlock_unlock(&L->ix_lock);
                newsegs[g]->dead = 1;
                seg_unref(L, newsegs[g]);
            }
        tome_free(newsegs);
    }
    tome_free(st.ms);
    tome_free(st.rel);
    tome_free(st.drop);
    pthread_mutex_unlock(&L->merge_mu);
    return rc;
}
