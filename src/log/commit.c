/*
 * commit.c -- the commit path of the local log engine: validation of a
 * transaction's read set, the write of its batch as one pwritev, the
 * segment roll-over, and group commit (one fdatasync for every commit
 * waiting at that moment). The protocol is summarised at the top of
 * engine.c and in full in docs/DESIGN.md.
 */
#include "local.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* durability                                                               */
/* ---------------------------------------------------------------------- */

void local_atomic_max(_Atomic uint64_t *a, uint64_t v) {
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
        if (!e) local_atomic_max(&s->synced, off);

        pthread_mutex_lock(&L->sync_mu);
        L->syncing = 0;
        if (e) {
            atomic_store(&L->poisoned, 1);
            rc = local_io_err(L, e, "sync", s->name);
        } else {
            local_atomic_max(&L->durable_seq, target);
            local_atomic_max(&L->visible_seq, target);
        }
        pthread_cond_broadcast(&L->sync_cv);
        seg_unref(L, s);
    }
    if (atomic_load(&L->durable_seq) >= seq) rc = 0;
    else if (!rc) rc = tome_err(L->base.db, TOME_IO, "an earlier sync failed: the store refuses writes until it is reopened");
    pthread_mutex_unlock(&L->sync_mu);
    return rc;
}

int local_sync(tome_backend *b) {
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
        return local_io_err(L, e, "sync", old->name);
    }
    local_atomic_max(&old->synced, old->size);
    pthread_mutex_lock(&L->sync_mu);
    local_atomic_max(&L->durable_seq, L->last_seq);
    local_atomic_max(&L->visible_seq, L->last_seq);
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
    uint64_t m = local_reg_min(L);
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


int local_commit(tome_backend *b, const tome_snap *s, const tome_wop *ops, size_t n,
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
        if (e) rc = local_io_err(L, e, "allocate", L->act->name);
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
            rc = local_io_err(L, e, "write", L->act->name);
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
        local_atomic_max(&L->visible_seq, seq);
        if (L->memory) local_atomic_max(&L->durable_seq, seq);
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

