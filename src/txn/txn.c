/*
 * txn.c -- transactions: snapshots that cache reads, buffer writes and
 * remember what they read, over any backend (src/api/backend.h).
 *
 * A transaction holds one table of the keys it touched (open addressing,
 * keyed by slot and key bytes). Each entry says whether the key was read by
 * a point read (it joins the read set), what the last tome_get returned
 * (reads are cached, so a repeated read returns the same memory), and the
 * pending write, if any. Iterated prefixes are listed separately. Every
 * piece of memory handed to the caller comes from the transaction's arena
 * and lives until the transaction ends, as tome.h promises.
 *
 * At commit the pending writes and the read set go to the backend, which
 * validates and writes them as one commit. A transaction with no writes
 * needs no validation: it saw one consistent snapshot, so it commits OK.
 */
#include <stdlib.h>
#include <string.h>

#include "../api/db.h"
#include "../os/os.h"
#include "../util/util.h"

/* ---- arena ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
} chunk;

#define ARENA_CHUNK 65536

static void *arena_alloc(void *ctx, size_t n) {
    chunk **head = ctx;
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    chunk *c = *head;
    if (!c || c->cap - c->used < n) {
        if (n > ARENA_CHUNK / 4) { /* big: its own chunk, behind the current one */
            chunk *b = tome_malloc(sizeof *b + n);
            if (!b) return NULL;
            b->used = b->cap = n;
            if (c) {
                b->next = c->next;
                c->next = b;
            } else {
                b->next = NULL;
                *head = b;
            }
            return b->data;
        }
        chunk *nc = tome_malloc(sizeof *nc + ARENA_CHUNK);
        if (!nc) return NULL;
        nc->used = 0;
        nc->cap = ARENA_CHUNK;
        nc->next = c;
        *head = nc;
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void arena_free(chunk *c) {
    while (c) {
        chunk *n = c->next;
        tome_free(c);
        c = n;
    }
}

/* ---- keys a transaction touched ---- */

#define TK_READ    0x1   /* point-read: in the read set */
#define TK_WRITTEN 0x2   /* has a pending write */
#define TK_REMOVED 0x4   /* the pending write is a removal */
#define TK_CACHED  0x8   /* the result of tome_get is cached */

typedef struct tkey {
    uint64_t hash;
    const uint8_t *val;     /* pending value (arena) */
    size_t vlen;
    const void *cval;       /* cached tome_get result */
    size_t cvlen;
    int crc;                /* cached return code */
    uint32_t klen;
    uint8_t slot, flags;
    uint8_t key[];
} tkey;

/* A pending write as it was when an iteration opened. */
typedef struct pwrite {
    const tkey *k;
    int removed;
} pwrite;

struct tome_iter {
    tome_txn *txn;
    struct tome_iter *next;
    tome_bcursor *bc;
    pwrite *pw;             /* pending writes in the prefix when opened, sorted */
    size_t npw, ipw;
    const uint8_t *bk;      /* current backend key, or NULL */
    size_t bklen;
    tome_bver bv;           /* its newest visible version */
    /* what tome_iter_next returned last, for tome_iter_value */
    const uint8_t *cur_key;
    size_t cur_klen;
    const tkey *cur_pending; /* the pending write it came from, or NULL */
    tome_bver cur_ver;
    int has_cur;
    uint8_t slot;
    int bdone, bstarted;
};

struct tome_txn {
    tome_db *db;
    tome_snap snap;
    int readonly;
    uint64_t begin_ts;
    tkey **tab;
    size_t cap, n;
    size_t nwrites;
    chunk *arena;
    tome_rprefix *pfx;
    size_t npfx, pfxcap;
    struct tome_iter *iters;
};

static uint64_t key_hash(uint8_t slot, const void *key, size_t klen) {
    return tome_hash(key, klen, 0x9E3779B97F4A7C15ull ^ slot);
}

static tkey *tk_find(tome_txn *t, uint8_t slot, const void *key, size_t klen, uint64_t h) {
    if (!t->cap) return NULL;
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        tkey *k = t->tab[i];
        if (!k) return NULL;
        if (k->hash == h && k->slot == slot && k->klen == klen && (!klen || !memcmp(k->key, key, klen)))
            return k;
    }
}

static int tk_grow(tome_txn *t) {
    size_t nc = t->cap ? t->cap * 2 : 64;
    tkey **nt = tome_calloc(nc, sizeof *nt);
    if (!nt) return TOME_NOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        tkey *k = t->tab[i];
        if (!k) continue;
        size_t j = k->hash & (nc - 1);
        while (nt[j]) j = (j + 1) & (nc - 1);
        nt[j] = k;
    }
    tome_free(t->tab);
    t->tab = nt;
    t->cap = nc;
    return 0;
}

/* Finds or adds the entry for (slot, key). NULL when out of memory. */
static tkey *tk_get(tome_txn *t, uint8_t slot, const void *key, size_t klen) {
    uint64_t h = key_hash(slot, key, klen);
    tkey *k = tk_find(t, slot, key, klen, h);
    if (k) return k;
    if ((t->n + 1) * 2 > t->cap && tk_grow(t)) return NULL;
    k = arena_alloc(&t->arena, sizeof *k + klen);
    if (!k) return NULL;
    memset(k, 0, sizeof *k);
    k->hash = h;
    k->slot = slot;
    k->klen = (uint32_t)klen;
    if (klen) memcpy(k->key, key, klen);
    size_t i = h & (t->cap - 1);
    while (t->tab[i]) i = (i + 1) & (t->cap - 1);
    t->tab[i] = k;
    t->n++;
    return k;
}

/* ---- begin and end ---- */

static int txn_start(tome_db *db, uint64_t at, tome_txn **out) {
    if (!db || !out) return TOME_INVALID;
    *out = NULL;
    tome_txn *t = tome_calloc(1, sizeof *t);
    if (!t) return tome_err(db, TOME_NOMEM, "out of memory");
    int rc = db->b->ops->snap_begin(db->b, at, &t->snap);
    if (rc) {
        tome_free(t);
        return rc;
    }
    t->db = db;
    t->readonly = at != UINT64_MAX || db->read_only;
    uint64_t now = db->b->ops->now_ms(db->b);
    t->begin_ts = now > t->snap.ts ? now : t->snap.ts;
    atomic_fetch_add(&db->ntxn, 1);
    *out = t;
    return 0;
}

int tome_begin(tome_db *db, tome_txn **txn_out) { return txn_start(db, UINT64_MAX, txn_out); }

int tome_begin_at(tome_db *db, uint64_t seq, tome_txn **txn_out) {
    if (seq == UINT64_MAX) {
        if (txn_out) *txn_out = NULL;
        return db ? tome_err(db, TOME_INVALID, "seq out of range") : TOME_INVALID;
    }
    return txn_start(db, seq, txn_out);
}

static void iter_free(tome_iter *it) {
    it->txn->db->b->ops->cursor_close(it->bc);
    tome_free(it->pw);
    tome_free(it);
}

static void txn_end(tome_txn *t) {
    while (t->iters) {
        tome_iter *it = t->iters;
        t->iters = it->next;
        iter_free(it);
    }
    t->db->b->ops->snap_end(t->db->b, &t->snap);
    atomic_fetch_sub(&t->db->ntxn, 1);
    tome_free(t->tab);
    tome_free(t->pfx);
    arena_free(t->arena);
    tome_free(t);
}

void tome_abort(tome_txn *txn) {
    if (txn) txn_end(txn);
}

static int rs_has_key(void *ctx, uint8_t slot, const uint8_t *key, size_t klen) {
    tome_txn *t = ctx;
    tkey *k = tk_find(t, slot, key, klen, key_hash(slot, key, klen));
    return k && (k->flags & TK_READ);
}

int tome_commit_ex(tome_txn *txn, unsigned flags) {
    if (!txn) return TOME_INVALID;
    tome_db *db = txn->db;
    if (txn->nwrites == 0) {
        txn_end(txn);
        return 0;
    }
    tome_wop *ops = tome_malloc(txn->nwrites * sizeof *ops);
    if (!ops) {
        txn_end(txn);
        return tome_err(db, TOME_NOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < txn->cap; i++) {
        tkey *k = txn->tab[i];
        if (!k || !(k->flags & TK_WRITTEN)) continue;
        ops[n].key = k->key;
        ops[n].klen = k->klen;
        ops[n].slot = k->slot;
        ops[n].removed = (k->flags & TK_REMOVED) != 0;
        ops[n].val = k->val;
        ops[n].vlen = k->vlen;
        n++;
    }
    tome_rset rs = {rs_has_key, txn, txn->pfx, txn->npfx};
    uint64_t seq = 0, ts = 0;
    int rc = db->b->ops->commit(db->b, &txn->snap, ops, n, &rs, flags, &seq, &ts);
    tome_free(ops);
    txn_end(txn);
    return rc;
}

int tome_commit(tome_txn *txn) { return tome_commit_ex(txn, 0); }

/* ---- reads ---- */

static int check_key(tome_txn *t, const void *key, size_t klen) {
    if (!t) return TOME_INVALID;
    if (!key && klen) return tome_err(t->db, TOME_INVALID, "NULL key with a length");
    return 0;
}

/* The committed versions of (slot, key) in the snapshot (arena memory). */
static int committed(tome_txn *t, uint8_t slot, const void *key, size_t klen, tome_bver **v, size_t *n) {
    tome_backend *b = t->db->b;
    return b->ops->versions(b, &t->snap, slot, key, klen, arena_alloc, &t->arena, v, n);
}

static int read_ver(tome_txn *t, const tome_bver *v, uint8_t slot, const void *key, size_t klen,
                    const void **val, size_t *len) {
    tome_backend *b = t->db->b;
    int rc = b->ops->read(b, &t->snap, v, slot, key, klen, arena_alloc, &t->arena, val);
    if (!rc) *len = v->vlen;
    return rc;
}

/* A read-only transaction (tome_begin_at, or a read-only handle) can never
 * commit a write, so it needs no read set and no cache: its reads go
 * straight to the snapshot, saving a hash insert per read. */
static int newest_value(tome_txn *t, uint8_t slot, const void *key, size_t klen, const void **val_out,
                     size_t *len_out) {
    tome_backend *b = t->db->b;
    return b->ops->newest(b, &t->snap, slot, key, klen, arena_alloc, &t->arena, val_out, len_out);
}

/* What every point read does first: check the arguments, and enter the key
 * in the read set (found or not). A key longer than any that can exist is
 * simply not there. */
static int point_read(tome_txn *txn, uint8_t slot, const void *key, size_t key_len, const void **val_out,
                      size_t *val_len_out, tkey **k_out) {
    int rc = check_key(txn, key, key_len);
    if (rc) return rc;
    if (!val_out || !val_len_out) return tome_err(txn->db, TOME_INVALID, "NULL output pointer");
    if (key_len > TOME_MAX_KEY_LEN) return TOME_NOTFOUND;
    tkey *k = tk_get(txn, slot, key, key_len);
    if (!k) return tome_err(txn->db, TOME_NOMEM, "out of memory");
    k->flags |= TK_READ;
    *k_out = k;
    return 0;
}

int tome_get(tome_txn *txn, uint8_t slot, const void *key, size_t key_len, const void **val_out,
             size_t *val_len_out) {
    if (txn && txn->readonly && val_out && val_len_out && (key || !key_len)) {
        if (key_len > TOME_MAX_KEY_LEN) return TOME_NOTFOUND;
        return newest_value(txn, slot, key, key_len, val_out, val_len_out);
    }
    tkey *k;
    int rc = point_read(txn, slot, key, key_len, val_out, val_len_out, &k);
    if (rc) return rc;
    if (k->flags & TK_WRITTEN) {
        if (k->flags & TK_REMOVED) return TOME_NOTFOUND;
        *val_out = k->val;
        *val_len_out = k->vlen;
        return 0;
    }
    if (!(k->flags & TK_CACHED)) {
        rc = newest_value(txn, slot, key, key_len, &k->cval, &k->cvlen);
        if (rc && rc != TOME_NOTFOUND) return rc;
        k->crc = rc;
        k->flags |= TK_CACHED;
    }
    if (k->crc) return k->crc;
    *val_out = k->cval;
    *val_len_out = k->cvlen;
    return 0;
}

int tome_get_unremoved(tome_txn *txn, uint8_t slot, const void *key, size_t key_len, const void **val_out,
                       size_t *val_len_out) {
    tkey *k;
    int rc = point_read(txn, slot, key, key_len, val_out, val_len_out, &k);
    if (rc) return rc;
    if ((k->flags & TK_WRITTEN) && !(k->flags & TK_REMOVED)) {
        *val_out = k->val;
        *val_len_out = k->vlen;
        return 0;
    }
    tome_bver *v;
    size_t n;
    if ((rc = committed(txn, slot, key, key_len, &v, &n)) != 0) return rc;
    for (size_t i = n; i > 0; i--)
        if (!(v[i - 1].flags & TOME_BVER_REMOVED))
            return read_ver(txn, &v[i - 1], slot, key, key_len, val_out, val_len_out);
    return TOME_NOTFOUND;
}

int tome_get_version(tome_txn *txn, uint8_t slot, const void *key, size_t key_len, uint64_t seq,
                     const void **val_out, size_t *val_len_out) {
    tkey *k;
    int rc = point_read(txn, slot, key, key_len, val_out, val_len_out, &k);
    if (rc) return rc;
    if (seq == 0) {
        if ((k->flags & TK_WRITTEN) && !(k->flags & TK_REMOVED)) {
            *val_out = k->val;
            *val_len_out = k->vlen;
            return 0;
        }
        return TOME_NOTFOUND;
    }
    tome_bver *v;
    size_t n;
    if ((rc = committed(txn, slot, key, key_len, &v, &n)) != 0) return rc;
    for (size_t i = 0; i < n; i++)
        if (v[i].seq == seq) {
            if (v[i].flags & TOME_BVER_REMOVED) return TOME_NOTFOUND;
            return read_ver(txn, &v[i], slot, key, key_len, val_out, val_len_out);
        }
    return TOME_NOTFOUND;
}

int tome_versions(tome_txn *txn, uint8_t slot, const void *key, size_t key_len,
                  const tome_version **versions_out, size_t *count_out) {
    int rc = check_key(txn, key, key_len);
    if (rc) return rc;
    if (!versions_out || !count_out) return tome_err(txn->db, TOME_INVALID, "NULL output pointer");
    *versions_out = NULL;
    *count_out = 0;
    if (key_len > TOME_MAX_KEY_LEN) return 0;
    tkey *k = tk_get(txn, slot, key, key_len);
    if (!k) return tome_err(txn->db, TOME_NOMEM, "out of memory");
    k->flags |= TK_READ;
    tome_bver *v;
    size_t n;
    if ((rc = committed(txn, slot, key, key_len, &v, &n)) != 0) return rc;
    size_t total = n + ((k->flags & TK_WRITTEN) ? 1 : 0);
    if (total == 0) return 0;
    tome_version *out = arena_alloc(&txn->arena, total * sizeof *out);
    if (!out) return tome_err(txn->db, TOME_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        out[i].seq = v[i].seq;
        out[i].timestamp = v[i].ts;
        out[i].removed = (v[i].flags & TOME_BVER_REMOVED) != 0;
        out[i].committed = true;
    }
    if (k->flags & TK_WRITTEN) {
        out[n].seq = 0;
        out[n].timestamp = txn->begin_ts;
        out[n].removed = (k->flags & TK_REMOVED) != 0;
        out[n].committed = false;
    }
    *versions_out = out;
    *count_out = total;
    return 0;
}

int tome_last_updated(tome_txn *txn, uint64_t *timestamp_out) {
    if (!txn || !timestamp_out) return TOME_INVALID;
    if (txn->nwrites) {
        *timestamp_out = txn->begin_ts;
        return 0;
    }
    if (txn->snap.seq == 0) return TOME_NOTFOUND;
    *timestamp_out = txn->snap.ts;
    return 0;
}

/* ---- writes ---- */

static int stage(tome_txn *t, uint8_t slot, const void *key, size_t klen, const void *val, size_t vlen,
                 int removed) {
    int rc = check_key(t, key, klen);
    if (rc) return rc;
    if (!removed && !val && vlen) return tome_err(t->db, TOME_INVALID, "NULL value with a length");
    if (t->readonly)
        return tome_err(t->db, TOME_READONLY,
                        t->db->read_only ? "the store is open read-only" : "a historical transaction is read-only");
    if (klen > TOME_MAX_KEY_LEN) return tome_err(t->db, TOME_TOOBIG, "key of %zu bytes (the limit is %u)", klen, TOME_MAX_KEY_LEN);
    if (!removed && vlen > TOME_MAX_VALUE_LEN)
        return tome_err(t->db, TOME_TOOBIG, "value of %zu bytes (the limit is %u)", vlen, TOME_MAX_VALUE_LEN);
    uint8_t *copy = NULL;
    if (!removed) {
        copy = arena_alloc(&t->arena, vlen);
        if (!copy) return tome_err(t->db, TOME_NOMEM, "out of memory");
        if (vlen) memcpy(copy, val, vlen);
    }
    tkey *k = tk_get(t, slot, key, klen);
    if (!k) return tome_err(t->db, TOME_NOMEM, "out of memory");
    if (!(k->flags & TK_WRITTEN)) t->nwrites++;
    k->flags = (uint8_t)((k->flags & ~TK_REMOVED) | TK_WRITTEN | (removed ? TK_REMOVED : 0));
    k->val = copy;
    k->vlen = removed ? 0 : vlen;
    return 0;
}

int tome_insert(tome_txn *txn, uint8_t slot, const void *key, size_t key_len, const void *val,
                size_t val_len) {
    return stage(txn, slot, key, key_len, val, val_len, 0);
}

int tome_remove(tome_txn *txn, uint8_t slot, const void *key, size_t key_len) {
    return stage(txn, slot, key, key_len, NULL, 0, 1);
}

/* ---- iteration ---- */

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static int pw_sort_cmp(const void *x, const void *y) {
    const tkey *a = ((const pwrite *)x)->k, *b = ((const pwrite *)y)->k;
    return bytes_cmp(a->key, a->klen, b->key, b->klen);
}

int tome_iter_open(tome_txn *txn, uint8_t slot, const void *prefix, size_t prefix_len, tome_iter **iter_out) {
    if (!txn || !iter_out) return TOME_INVALID;
    *iter_out = NULL;
    if (!prefix && prefix_len) return tome_err(txn->db, TOME_INVALID, "NULL prefix with a length");
    tome_iter *it = tome_calloc(1, sizeof *it);
    if (!it) return tome_err(txn->db, TOME_NOMEM, "out of memory");
    it->txn = txn;
    it->slot = slot;
    /* the prefix joins the read set */
    if (txn->npfx == txn->pfxcap) {
        size_t nc = txn->pfxcap ? txn->pfxcap * 2 : 8;
        tome_rprefix *p = tome_realloc(txn->pfx, nc * sizeof *p);
        if (!p) {
            tome_free(it);
            return tome_err(txn->db, TOME_NOMEM, "out of memory");
        }
        txn->pfx = p;
        txn->pfxcap = nc;
    }
    uint8_t *pc = arena_alloc(&txn->arena, prefix_len);
    if (!pc) {
        tome_free(it);
        return tome_err(txn->db, TOME_NOMEM, "out of memory");
    }
    if (prefix_len) memcpy(pc, prefix, prefix_len);
    /* pending writes under the prefix, sorted */
    size_t cnt = 0;
    for (size_t i = 0; i < txn->cap; i++) {
        tkey *k = txn->tab[i];
        if (k && (k->flags & TK_WRITTEN) && k->slot == slot && k->klen >= prefix_len &&
            (!prefix_len || !memcmp(k->key, pc, prefix_len)))
            cnt++;
    }
    if (cnt) {
        it->pw = tome_malloc(cnt * sizeof *it->pw);
        if (!it->pw) {
            tome_free(it);
            return tome_err(txn->db, TOME_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < txn->cap; i++) {
            tkey *k = txn->tab[i];
            if (k && (k->flags & TK_WRITTEN) && k->slot == slot && k->klen >= prefix_len &&
                (!prefix_len || !memcmp(k->key, pc, prefix_len))) {
                it->pw[it->npw].k = k;
                it->pw[it->npw].removed = (k->flags & TK_REMOVED) != 0;
                it->npw++;
            }
        }
        qsort(it->pw, it->npw, sizeof *it->pw, pw_sort_cmp);
    }
    tome_backend *b = txn->db->b;
    int rc = b->ops->cursor_open(b, &txn->snap, slot, pc, prefix_len, &it->bc);
    if (rc) {
        tome_free(it->pw);
        tome_free(it);
        return rc;
    }
    txn->pfx[txn->npfx].prefix = pc;
    txn->pfx[txn->npfx].len = prefix_len;
    txn->pfx[txn->npfx].slot = slot;
    txn->npfx++;
    it->next = txn->iters;
    txn->iters = it;
    *iter_out = it;
    return 0;
}

static int bc_advance(tome_iter *it) {
    if (it->bdone) return 0;
    tome_backend *b = it->txn->db->b;
    int rc = b->ops->cursor_next(it->bc, &it->bk, &it->bklen, &it->bv);
    if (rc == TOME_NOTFOUND) {
        it->bdone = 1;
        it->bk = NULL;
        return 0;
    }
    return rc;
}

int tome_iter_next(tome_iter *it, const void **key_out, size_t *key_len_out) {
    if (!it || !key_out || !key_len_out) return TOME_INVALID;
    int rc;
    if (!it->bstarted) { /* started only once the first fetch worked */
        if ((rc = bc_advance(it)) != 0) return rc;
        it->bstarted = 1;
    }
    for (;;) {
        const pwrite *pwr = it->ipw < it->npw ? &it->pw[it->ipw] : NULL;
        const tkey *p = pwr ? pwr->k : NULL;
        if (!p && it->bdone) return TOME_NOTFOUND;
        const uint8_t *k;
        size_t kl;
        int c = !p ? 1 : it->bdone ? -1 : bytes_cmp(p->key, p->klen, it->bk, it->bklen);
        /* A failed bc_advance (out of memory) leaves the iteration where
         * it was: the same call again goes on from there. */
        if (c <= 0) { /* the pending write decides */
            if (c == 0 && (rc = bc_advance(it)) != 0) return rc;
            it->ipw++;
            if (pwr->removed) continue;
            k = p->key;
            kl = p->klen;
            it->cur_pending = p;
        } else {
            uint8_t *copy = arena_alloc(&it->txn->arena, it->bklen);
            if (!copy) return tome_err(it->txn->db, TOME_NOMEM, "out of memory");
            if (it->bklen) memcpy(copy, it->bk, it->bklen);
            k = copy;
            kl = it->bklen;
            tome_bver bv = it->bv;
            if ((rc = bc_advance(it)) != 0) return rc;
            it->cur_pending = NULL;
            it->cur_ver = bv;
        }
        it->cur_key = k;
        it->cur_klen = kl;
        it->has_cur = 1;
        *key_out = k;
        *key_len_out = kl;
        return 0;
    }
}

int tome_iter_value(tome_iter *it, const void **val_out, size_t *val_len_out) {
    if (!it || !val_out || !val_len_out) return TOME_INVALID;
    tome_txn *t = it->txn;
    if (!it->has_cur) return tome_err(t->db, TOME_MISUSE, "tome_iter_value before tome_iter_next gave a key");
    if (t->readonly) /* no pending writes, no read set: the cursor's version */
        return read_ver(t, &it->cur_ver, it->slot, it->cur_key, it->cur_klen, val_out, val_len_out);
    /* a point read of the current key, as tome_get: it joins the read set,
     * the transaction's pending write comes first, and the result is cached */
    tkey *k = tk_get(t, it->slot, it->cur_key, it->cur_klen);
    if (!k) return tome_err(t->db, TOME_NOMEM, "out of memory");
    k->flags |= TK_READ;
    if (k->flags & TK_WRITTEN) {
        if (k->flags & TK_REMOVED) return TOME_NOTFOUND;
        *val_out = k->val;
        *val_len_out = k->vlen;
        return 0;
    }
    if (!(k->flags & TK_CACHED)) {
        /* the version the cursor found: no second lookup */
        int rc = read_ver(t, &it->cur_ver, it->slot, it->cur_key, it->cur_klen, &k->cval, &k->cvlen);
        if (rc) return rc;
        k->crc = 0;
        k->flags |= TK_CACHED;
    }
    if (k->crc) return k->crc;
    *val_out = k->cval;
    *val_len_out = k->cvlen;
    return 0;
}

void tome_iter_close(tome_iter *it) {
    if (!it) return;
    tome_txn *t = it->txn;
    for (tome_iter **pp = &t->iters; *pp; pp = &(*pp)->next)
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    iter_free(it);
}
