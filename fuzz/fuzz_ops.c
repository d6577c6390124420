/*
 * fuzz_ops.c -- fuzz target: a byte stream decoded into a sequence of API
 * calls, each checked against a simple in-memory model of the contract.
 *
 * fuzz_one(data, size) is the whole target; like fuzz_open.c it is
 * compiled into the libFuzzer binary (with fuzz/libfuzzer_main.c) and into
 * tests/test_fuzz_replay.c, and returns 0, or -1 after printing the first
 * call whose result the model did not predict.
 *
 * The store is a directory in an in-memory vfs (the tome_local_test_vfs
 * hook), so reopening is cheap and exact. Up to three transactions are open
 * at once; the calls are tome_begin, tome_begin_at, tome_insert,
 * tome_remove, tome_get, tome_get_unremoved, tome_get_version,
 * tome_versions, tome_last_updated, whole iterations and step-by-step
 * iterations, tome_commit, tome_abort, tome_merge, tome_sync, tome_stats_get,
 * close and reopen (read-write or read-only; with transactions open, close
 * must say TOME_MISUSE and keep the handle), the tome_kv_* calls (write,
 * read, remove, list, apply, names that are not allowed), over 8 keys in
 * two slots (with the empty key and bytes above 0x7f) and 12 namespaced
 * keys. Each byte picks a call and the next bytes its arguments.
 *
 * The model (fx_ = this file) holds every key's whole history (seq,
 * removed, value), the timestamp of every commit, the history horizon, and
 * per transaction its snapshot seq, its horizon, its read set, the
 * prefixes it iterated and its pending writes. It predicts every result
 * exactly from the contract (include/tome.h): what a snapshot sees (commits
 * up to its seq; after a merge with horizon H, the versions newer than H
 * plus the newest at or before H unless that one is a removal), the
 * conflict rule (a commit after the snapshot wrote a key in the read set,
 * or created or removed a key under an iterated prefix), the sequence
 * numbers (one per commit with writes), timestamps (never decreasing; each
 * version carries its commit's), begin_at's NOTFOUND below the horizon and
 * INVALID past the newest commit, READONLY in historical transactions and
 * on read-only handles. At the end the store is closed, must pass
 * tome_check, and reopened must show the model's state.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tome.h"
#include "../src/log/local.h"
#include "../src/os/os.h"

int fuzz_one(const uint8_t *data, size_t size);

#define FX_DIR   "/ops"
#define FX_NK    8
#define FX_NP    6
#define FX_NT    3
#define FX_VMAX  40
#define FX_NKV   12
#define FX_MAXOPS 400

typedef struct fx_key {
    uint8_t slot;
    const char *k;
    size_t len;
} fx_key;

static const fx_key fx_keys[FX_NK] = {
    {0, "", 0}, {0, "a", 1}, {0, "ab", 2}, {0, "b", 1}, {1, "a", 1}, {1, "a\0", 2}, {0, "\xff", 1}, {1, "zz", 2},
};
static const fx_key fx_pfx[FX_NP] = {{0, "", 0}, {0, "a", 1}, {1, "", 0}, {1, "a", 1}, {0, "b", 1}, {0, "\xff", 1}};

/* namespaced keys: (primary, secondary, key) */
static const char *const fx_kvp[4][2] = {{"", ""}, {"p", ""}, {"p", "s"}, {"q", ""}};
static const char *const fx_kvk[3] = {"k1", "k2", "k-3"};

typedef struct fx_ver {
    uint64_t seq;
    uint8_t removed, vlen;
    uint8_t val[FX_VMAX];
} fx_ver;

typedef struct fx_hist {
    fx_ver *v;
    size_t n, cap;
} fx_hist;

typedef struct fx_crec {
    uint64_t seq;
    uint8_t wrote[FX_NK], changed[FX_NK];
} fx_crec;

typedef struct fx_tx {
    tome_txn *t;
    int ro;
    uint64_t S, h;
    uint8_t rs[FX_NK], pf[FX_NP];
    uint8_t w[FX_NK], wrem[FX_NK], wlen[FX_NK];
    uint8_t wval[FX_NK][FX_VMAX];
    int nw;
    /* a step-by-step iteration: the keys it must return */
    tome_iter *it;
    int exp[FX_NK], nexp, pos;
} fx_tx;

typedef struct fx {
    tome_db *db;
    int db_ro;
    fx_hist h[FX_NK];
    fx_crec *c;
    size_t nc, capc;
    uint64_t last, H;
    uint64_t *ts;      /* ts[seq] */
    size_t tscap;
    fx_tx tx[FX_NT];
    int kvp[FX_NKV];
    uint8_t kvlen[FX_NKV], kvval[FX_NKV][FX_VMAX];
    const uint8_t *p;
    size_t n, i;
    int ops;
    int order[FX_NK];  /* key indexes in bytewise order */
    int trace;         /* env FUZZ_TRACE: print every call */
} fx;

static int fx_fail(fx *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fx_fail(fx *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_ops: call %d (input byte %zu): ", m->ops, m->i);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}

static uint8_t fx_byte(fx *m) { return m->i < m->n ? m->p[m->i++] : 0; }

static int fx_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static const char *fx_rc(int rc) { return tome_strerror(rc); }

#define FX_EXPECT(m, got, want, what)                                                             \
    do {                                                                                          \
        int g_ = (got), w_ = (want);                                                              \
        if (g_ != w_) return fx_fail(m, "%s: %s, the model says %s", what, fx_rc(g_), fx_rc(w_)); \
    } while (0)

/* ---- model views ---- */

/* The versions of key k that a snapshot (S, h) sees, as indexes into its
 * history. */
static size_t fx_visible(const fx *m, int k, uint64_t S, uint64_t h, size_t *out) {
    const fx_hist *hs = &m->h[k];
    long newest_le_h = -1;
    size_t n = 0;
    for (size_t i = 0; i < hs->n && hs->v[i].seq <= S; i++)
        if (hs->v[i].seq <= h) newest_le_h = (long)i;
    if (newest_le_h >= 0 && !hs->v[newest_le_h].removed) out[n++] = (size_t)newest_le_h;
    for (size_t i = 0; i < hs->n && hs->v[i].seq <= S; i++)
        if (hs->v[i].seq > h) out[n++] = i;
    return n;
}

/* Current value of k in tx: 1 present (value in *v,*vl), 0 absent. */
static int fx_current(const fx *m, const fx_tx *t, int k, const uint8_t **v, size_t *vl) {
    if (t->w[k]) {
        if (t->wrem[k]) return 0;
        *v = t->wval[k];
        *vl = t->wlen[k];
        return 1;
    }
    size_t idx[1024];
    if (m->h[k].n > 1024) return 0;
    size_t n = fx_visible(m, k, t->S, t->h, idx);
    if (!n || m->h[k].v[idx[n - 1]].removed) return 0;
    *v = m->h[k].v[idx[n - 1]].val;
    *vl = m->h[k].v[idx[n - 1]].vlen;
    return 1;
}

static int fx_has_prefix(int k, int p) {
    return fx_keys[k].slot == fx_pfx[p].slot && fx_keys[k].len >= fx_pfx[p].len &&
           (!fx_pfx[p].len || !memcmp(fx_keys[k].k, fx_pfx[p].k, fx_pfx[p].len));
}

static int fx_key_cmp(int a, int b) {
    const fx_key *x = &fx_keys[a], *y = &fx_keys[b];
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->k, y->k, n) : 0;
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* The keys an iteration of prefix p opened now in tx returns, in order. */
static int fx_iter_expect(const fx *m, const fx_tx *t, int p, int *out) {
    int n = 0;
    for (int j = 0; j < FX_NK; j++) {
        int k = m->order[j];
        const uint8_t *v;
        size_t vl;
        if (fx_has_prefix(k, p) && fx_current(m, t, k, &v, &vl)) out[n++] = k;
    }
    return n;
}

static int fx_val_eq(int rc, const void *v, size_t vl, int want_present, const uint8_t *wv, size_t wl) {
    if (!want_present) return rc == TOME_NOTFOUND;
    return rc == TOME_OK && vl == wl && (!wl || !memcmp(v, wv, wl));
}

static void fx_make_val(fx *m, uint8_t *buf, uint8_t *len) {
    uint8_t l = fx_byte(m) % FX_VMAX, seed = fx_byte(m);
    for (uint8_t j = 0; j < l; j++) buf[j] = (uint8_t)(seed + j * 31);
    *len = l;
}

/* ---- calls ---- */

/* The timestamp of the newest commit, read through a new transaction. */
static int fx_note_ts(fx *m) {
    tome_txn *t;
    int rc = tome_begin(m->db, &t);
    if (rc) return fx_fail(m, "tome_begin (reading the time): %s", fx_rc(rc));
    uint64_t ts = 0;
    rc = tome_last_updated(t, &ts);
    tome_abort(t);
    if (rc) return fx_fail(m, "tome_last_updated after a commit: %s", fx_rc(rc));
    if (fx_grow((void **)&m->ts, &m->tscap, m->last + 1, sizeof *m->ts)) return 0;
    if (m->last > 1 && m->ts[m->last - 1] > ts)
        return fx_fail(m, "commit %llu has timestamp %llu, before commit %llu's %llu", (unsigned long long)m->last,
                       (unsigned long long)ts, (unsigned long long)m->last - 1,
                       (unsigned long long)m->ts[m->last - 1]);
    m->ts[m->last] = ts;
    return 0;
}

/* The newest seq as the store says it; must be the model's. */
static int fx_sync_seq(fx *m, uint64_t lo, uint64_t hi, const char *what) {
    uint64_t s = 0;
    tome_last_seq(m->db, &s);
    if (s < lo || s > hi)
        return fx_fail(m, "%s: newest seq %llu, the model expects %llu..%llu", what, (unsigned long long)s,
                       (unsigned long long)lo, (unsigned long long)hi);
    uint64_t old = m->last;
    m->last = s;
    if (s != old) return fx_note_ts(m);
    return 0;
}

static void fx_tx_clear(fx_tx *t) { memset(t, 0, sizeof *t); }

static int fx_begin(fx *m, int at) {
    int ti = fx_byte(m) % FX_NT;
    fx_tx *t = &m->tx[ti];
    if (t->t) return 0;
    uint64_t s = 0;
    int want = TOME_OK;
    if (at) {
        s = fx_byte(m) % (m->last + 3);
        if (s > m->last) want = TOME_INVALID;
        else if (s > 0 && s < m->H) want = TOME_NOTFOUND;
    }
    tome_txn *txn = NULL;
    int rc = at ? tome_begin_at(m->db, s, &txn) : tome_begin(m->db, &txn);
    FX_EXPECT(m, rc, want, at ? "tome_begin_at" : "tome_begin");
    if (rc) {
        if (txn) return fx_fail(m, "a failed begin left a transaction");
        return 0;
    }
    fx_tx_clear(t);
    t->t = txn;
    t->S = at ? s : m->last;
    t->h = m->H;
    t->ro = at || m->db_ro;
    return 0;
}

static int fx_write(fx *m, fx_tx *t, int removal) {
    int k = fx_byte(m) % FX_NK;
    uint8_t val[FX_VMAX], vl = 0;
    if (!removal) fx_make_val(m, val, &vl);
    int rc = removal ? tome_remove(t->t, fx_keys[k].slot, fx_keys[k].k, fx_keys[k].len)
                     : tome_insert(t->t, fx_keys[k].slot, fx_keys[k].k, fx_keys[k].len, val, vl);
    FX_EXPECT(m, rc, t->ro ? TOME_READONLY : TOME_OK, removal ? "tome_remove" : "tome_insert");
    if (rc) return 0;
    if (m->trace) fprintf(stderr, "fuzz_ops:   %s key %d\n", removal ? "remove" : "insert", k);
    if (!t->w[k]) t->nw++;
    t->w[k] = 1;
    t->wrem[k] = (uint8_t)removal;
    t->wlen[k] = vl;
    memcpy(t->wval[k], val, vl);
    return 0;
}

static int fx_read(fx *m, fx_tx *t, int kind) {
    int k = fx_byte(m) % FX_NK;
    const fx_key *K = &fx_keys[k];
    const void *v = NULL;
    size_t vl = 0;
    t->rs[k] = 1;
    size_t idx[1024];
    if (m->h[k].n > 1024) return 0;
    size_t nvis = fx_visible(m, k, t->S, t->h, idx);
    const fx_ver *hv = m->h[k].v;
    if (kind == 0) {
        int rc = tome_get(t->t, K->slot, K->k, K->len, &v, &vl);
        const uint8_t *wv = NULL;
        size_t wl = 0;
        int present = fx_current(m, t, k, &wv, &wl);
        if (!fx_val_eq(rc, v, vl, present, wv, wl))
            return fx_fail(m, "tome_get(key %d): %s (%zu bytes), the model says %s (%zu bytes)", k, fx_rc(rc), vl,
                           present ? "a value" : "NOTFOUND", wl);
        return 0;
    }
    if (kind == 1) {
        int rc = tome_get_unremoved(t->t, K->slot, K->k, K->len, &v, &vl);
        const uint8_t *wv = NULL;
        size_t wl = 0;
        int present = 0;
        if (t->w[k] && !t->wrem[k]) {
            present = 1;
            wv = t->wval[k];
            wl = t->wlen[k];
        } else {
            for (size_t j = nvis; j > 0 && !present; j--)
                if (!hv[idx[j - 1]].removed) {
                    present = 1;
                    wv = hv[idx[j - 1]].val;
                    wl = hv[idx[j - 1]].vlen;
                }
        }
        if (!fx_val_eq(rc, v, vl, present, wv, wl))
            return fx_fail(m, "tome_get_unremoved(key %d): %s, the model says %s", k, fx_rc(rc),
                           present ? "a value" : "NOTFOUND");
        return 0;
    }
    if (kind == 2) {
        uint8_t b = fx_byte(m);
        uint64_t q = b < 200 && m->h[k].n ? m->h[k].v[b % m->h[k].n].seq : b % 8;
        int rc = tome_get_version(t->t, K->slot, K->k, K->len, q, &v, &vl);
        int present = 0;
        const uint8_t *wv = NULL;
        size_t wl = 0;
        if (q == 0) {
            if (t->w[k] && !t->wrem[k]) {
                present = 1;
                wv = t->wval[k];
                wl = t->wlen[k];
            }
        } else {
            for (size_t j = 0; j < nvis; j++)
                if (hv[idx[j]].seq == q && !hv[idx[j]].removed) {
                    present = 1;
                    wv = hv[idx[j]].val;
                    wl = hv[idx[j]].vlen;
                }
        }
        if (!fx_val_eq(rc, v, vl, present, wv, wl))
            return fx_fail(m, "tome_get_version(key %d, seq %llu): %s, the model says %s", k, (unsigned long long)q,
                           fx_rc(rc), present ? "a value" : "NOTFOUND");
        return 0;
    }
    /* versions */
    const tome_version *vs;
    size_t n;
    int rc = tome_versions(t->t, K->slot, K->k, K->len, &vs, &n);
    FX_EXPECT(m, rc, TOME_OK, "tome_versions");
    size_t want = nvis + (t->w[k] ? 1 : 0);
    if (n != want)
        return fx_fail(m, "tome_versions(key %d): %zu versions, the model says %zu (S %llu, h %llu)", k, n, want,
                       (unsigned long long)t->S, (unsigned long long)t->h);
    for (size_t j = 0; j < nvis; j++) {
        const fx_ver *e = &hv[idx[j]];
        if (vs[j].seq != e->seq || vs[j].removed != e->removed || !vs[j].committed ||
            (e->seq < m->tscap && vs[j].timestamp != m->ts[e->seq]))
            return fx_fail(m, "tome_versions(key %d)[%zu]: seq %llu ts %llu%s, the model: seq %llu ts %llu%s", k, j,
                           (unsigned long long)vs[j].seq, (unsigned long long)vs[j].timestamp,
                           vs[j].removed ? " removed" : "", (unsigned long long)e->seq,
                           (unsigned long long)(e->seq < m->tscap ? m->ts[e->seq] : 0), e->removed ? " removed" : "");
    }
    if (t->w[k]) {
        const tome_version *p = &vs[nvis];
        if (p->seq || p->committed || p->removed != t->wrem[k] || (nvis && p->timestamp < vs[nvis - 1].timestamp))
            return fx_fail(m, "tome_versions(key %d): a wrong pending version", k);
    }
    return 0;
}

static int fx_iterate(fx *m, fx_tx *t, int stepwise) {
    int p = fx_byte(m) % FX_NP;
    tome_iter *it;
    int rc = tome_iter_open(t->t, fx_pfx[p].slot, fx_pfx[p].k, fx_pfx[p].len, &it);
    FX_EXPECT(m, rc, TOME_OK, "tome_iter_open");
    t->pf[p] = 1;
    int exp[FX_NK];
    int ne = fx_iter_expect(m, t, p, exp);
    if (m->trace) {
        fprintf(stderr, "fuzz_ops:   %s iteration of prefix %d:", stepwise ? "step-by-step" : "whole", p);
        for (int j = 0; j < ne; j++) fprintf(stderr, " %d", exp[j]);
        fprintf(stderr, "\n");
    }
    if (stepwise) {
        if (t->it) tome_iter_close(t->it);
        t->it = it;
        memcpy(t->exp, exp, sizeof exp);
        t->nexp = ne;
        t->pos = 0;
        return 0;
    }
    const void *kp;
    size_t kl;
    int got = 0;
    while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) {
        if (got >= ne || kl != fx_keys[exp[got]].len || (kl && memcmp(kp, fx_keys[exp[got]].k, kl))) {
            tome_iter_close(it);
            return fx_fail(m, "iteration of prefix %d: key #%d is not the model's (%d keys)", p, got, ne);
        }
        got++;
    }
    tome_iter_close(it);
    FX_EXPECT(m, rc, TOME_NOTFOUND, "tome_iter_next at the end");
    if (got != ne) return fx_fail(m, "iteration of prefix %d: %d keys, the model says %d", p, got, ne);
    return 0;
}

static int fx_iter_step(fx *m, fx_tx *t) {
    if (!t->it) return 0;
    const void *kp;
    size_t kl;
    int rc = tome_iter_next(t->it, &kp, &kl);
    if (t->pos >= t->nexp) {
        FX_EXPECT(m, rc, TOME_NOTFOUND, "tome_iter_next past the end");
        return 0;
    }
    FX_EXPECT(m, rc, TOME_OK, "tome_iter_next");
    int k = t->exp[t->pos++];
    if (kl != fx_keys[k].len || (kl && memcmp(kp, fx_keys[k].k, kl)))
        return fx_fail(m, "step-by-step iteration: key #%d is not the model's (the pending writes when the "
                          "iteration was opened)", t->pos - 1);
    return 0;
}

static int fx_conflicts(const fx *m, const fx_tx *t) {
    for (size_t i = 0; i < m->nc; i++) {
        const fx_crec *c = &m->c[i];
        if (c->seq <= t->S) continue;
        for (int k = 0; k < FX_NK; k++) {
            if (c->wrote[k] && t->rs[k]) return 1;
            if (c->changed[k])
                for (int p = 0; p < FX_NP; p++)
                    if (t->pf[p] && fx_has_prefix(k, p)) return 1;
        }
    }
    return 0;
}

static int fx_commit(fx *m, fx_tx *t) {
    int want = TOME_OK;
    if (t->nw && fx_conflicts(m, t)) want = TOME_CONFLICT;
    int rc = tome_commit(t->t);
    t->t = NULL;
    t->it = NULL;
    FX_EXPECT(m, rc, want, "tome_commit");
    if (rc || !t->nw) {
        fx_tx_clear(t);
        return fx_sync_seq(m, m->last, m->last, "a commit that wrote nothing");
    }
    uint64_t seq = m->last + 1;
    if (fx_grow((void **)&m->c, &m->capc, m->nc + 1, sizeof *m->c)) return 0;
    fx_crec *c = &m->c[m->nc++];
    memset(c, 0, sizeof *c);
    c->seq = seq;
    for (int k = 0; k < FX_NK; k++) {
        if (!t->w[k]) continue;
        fx_hist *h = &m->h[k];
        int before = h->n && !h->v[h->n - 1].removed;
        if (fx_grow((void **)&h->v, &h->cap, h->n + 1, sizeof *h->v)) return 0;
        fx_ver *e = &h->v[h->n++];
        e->seq = seq;
        e->removed = t->wrem[k];
        e->vlen = t->wlen[k];
        memcpy(e->val, t->wval[k], t->wlen[k]);
        c->wrote[k] = 1;
        c->changed[k] = before != !t->wrem[k];
    }
    fx_tx_clear(t);
    return fx_sync_seq(m, seq, seq, "tome_commit");
}

static int fx_any_open(const fx *m) {
    for (int i = 0; i < FX_NT; i++)
        if (m->tx[i].t) return 1;
    return 0;
}

static int fx_reopen(fx *m, int ro) {
    if (fx_any_open(m)) {
        int rc = tome_close(m->db);
        FX_EXPECT(m, rc, TOME_MISUSE, "tome_close with transactions open");
        return 0;
    }
    int rc = tome_close(m->db);
    m->db = NULL;
    FX_EXPECT(m, rc, TOME_OK, "tome_close");
    tome_options o;
    tome_options_init(&o);
    o.read_only = ro;
    o.segment_size = 4096;
    rc = tome_open(FX_DIR, &o, &m->db);
    if (rc) return fx_fail(m, "reopen: %s (%s)", fx_rc(rc), tome_errmsg(NULL));
    m->db_ro = ro;
    uint64_t s = 0;
    tome_last_seq(m->db, &s);
    if (s != m->last)
        return fx_fail(m, "reopen: newest seq %llu, the model %llu", (unsigned long long)s,
                       (unsigned long long)m->last);
    return 0;
}

/* ---- the namespaced store ---- */

static void fx_kv_names(int e, const char **p, const char **s, const char **k) {
    *p = fx_kvp[e / 3][0];
    *s = fx_kvp[e / 3][1];
    *k = fx_kvk[e % 3];
}

static int fx_kv(fx *m, int what) {
    uint8_t b = fx_byte(m);
    int e = b % FX_NKV;
    const char *p, *s, *k;
    fx_kv_names(e, &p, &s, &k);
    int bad = (b >> 4) % 8 == 7; /* a name that is not allowed */
    if (bad) {
        switch (b >> 7) {
        case 0: p = ""; s = "s"; break;  /* secondary without primary */
        default: k = "a/b"; break;       /* outside the alphabet */
        }
    }
    uint64_t before = m->last;
    if (what == 0) { /* write */
        uint8_t val[FX_VMAX], vl;
        fx_make_val(m, val, &vl);
        int rc = tome_kv_write(m->db, p, s, k, val, vl);
        int want = bad ? TOME_INVALID : m->db_ro ? TOME_READONLY : TOME_OK;
        FX_EXPECT(m, rc, want, "tome_kv_write");
        if (rc) return fx_sync_seq(m, before, before, "a kv write that failed");
        m->kvp[e] = 1;
        m->kvlen[e] = vl;
        memcpy(m->kvval[e], val, vl);
        return fx_sync_seq(m, before + 1, before + 1, "tome_kv_write");
    }
    if (what == 1) { /* read */
        void *buf = NULL;
        size_t len = 0;
        int rc = tome_kv_read(m->db, p, s, k, &buf, &len);
        int ok = bad ? rc == TOME_INVALID : fx_val_eq(rc, buf, len, m->kvp[e], m->kvval[e], m->kvlen[e]);
        tome_free(buf);
        if (!ok) return fx_fail(m, "tome_kv_read(%d): %s, the model says %s", e, fx_rc(rc),
                                bad ? "INVALID" : m->kvp[e] ? "a value" : "NOTFOUND");
        return 0;
    }
    if (what == 2) { /* remove */
        int lazy = (b >> 6) & 1;
        int rc = tome_kv_remove(m->db, p, s, k, lazy);
        FX_EXPECT(m, rc, bad ? TOME_INVALID : m->db_ro ? TOME_READONLY : TOME_OK, "tome_kv_remove");
        if (rc) return fx_sync_seq(m, before, before, "a kv remove that failed");
        m->kvp[e] = 0;
        return fx_sync_seq(m, before, before + 1, "tome_kv_remove");
    }
    if (what == 3) { /* list */
        char **keys = NULL;
        size_t n = 0;
        int rc = tome_kv_list(m->db, p, s, &keys, &n);
        if (bad && !*p && *s) { /* a key name plays no part in a listing */
            tome_free(keys);
            FX_EXPECT(m, rc, TOME_INVALID, "tome_kv_list");
            return 0;
        }
        FX_EXPECT(m, rc, TOME_OK, "tome_kv_list");
        size_t want = 0, j = 0;
        int okl = 1;
        /* fx_kvk sorted: "k-3" < "k1" < "k2" */
        static const int sorted[3] = {2, 0, 1};
        for (int x = 0; x < 3; x++) {
            int ee = (e / 3) * 3 + sorted[x];
            if (!m->kvp[ee]) continue;
            want++;
            if (j >= n || strcmp(keys[j], fx_kvk[sorted[x]])) okl = 0;
            j++;
        }
        tome_free(keys);
        if (!okl || n != want) return fx_fail(m, "tome_kv_list(%d): %zu keys, the model %zu", e / 3, n, want);
        return 0;
    }
    /* apply: 1..3 operations */
    tome_kv_op ops[3];
    uint8_t vals[3][FX_VMAX], lens[3];
    int nops = 1 + b % 3, writes = 0;
    int ents[3];
    for (int j = 0; j < nops; j++) {
        uint8_t c = fx_byte(m);
        ents[j] = c % FX_NKV;
        fx_kv_names(ents[j], &ops[j].primary_ns, &ops[j].secondary_ns, &ops[j].key);
        ops[j].op = c & 0x80 ? TOME_KV_REMOVE : TOME_KV_WRITE;
        fx_make_val(m, vals[j], &lens[j]);
        ops[j].buf = vals[j];
        ops[j].len = lens[j];
        if (ops[j].op == TOME_KV_WRITE) writes++;
    }
    if (bad) ops[nops - 1].op = 7; /* an unknown operation */
    int rc = tome_kv_apply(m->db, ops, (size_t)nops);
    FX_EXPECT(m, rc, bad ? TOME_INVALID : m->db_ro ? TOME_READONLY : TOME_OK, "tome_kv_apply");
    if (rc) return fx_sync_seq(m, before, before, "a kv apply that failed");
    for (int j = 0; j < nops; j++) {
        int x = ents[j];
        if (ops[j].op == TOME_KV_WRITE) {
            m->kvp[x] = 1;
            m->kvlen[x] = lens[j];
            memcpy(m->kvval[x], vals[j], lens[j]);
        } else {
            m->kvp[x] = 0;
        }
    }
    return fx_sync_seq(m, writes ? before + 1 : before, before + 1, "tome_kv_apply");
}

/* ---- the final comparison ---- */

static int fx_final(fx *m) {
    fx_tx t;
    fx_tx_clear(&t);
    int rc = tome_begin(m->db, &t.t);
    FX_EXPECT(m, rc, TOME_OK, "tome_begin (final)");
    t.S = m->last;
    t.h = m->H;
    for (int k = 0; k < FX_NK; k++) {
        const void *v;
        size_t vl;
        const uint8_t *wv = NULL;
        size_t wl = 0;
        int present = fx_current(m, &t, k, &wv, &wl);
        rc = tome_get(t.t, fx_keys[k].slot, fx_keys[k].k, fx_keys[k].len, &v, &vl);
        if (!fx_val_eq(rc, v, vl, present, wv, wl)) {
            tome_abort(t.t);
            return fx_fail(m, "final: key %d: %s, the model says %s", k, fx_rc(rc), present ? "a value" : "NOTFOUND");
        }
    }
    tome_abort(t.t);
    for (int e = 0; e < FX_NKV; e++) {
        const char *p, *s, *k;
        fx_kv_names(e, &p, &s, &k);
        void *buf = NULL;
        size_t len = 0;
        rc = tome_kv_read(m->db, p, s, k, &buf, &len);
        int ok = fx_val_eq(rc, buf, len, m->kvp[e], m->kvval[e], m->kvlen[e]);
        tome_free(buf);
        if (!ok) return fx_fail(m, "final: kv key %d: %s", e, fx_rc(rc));
    }
    return 0;
}

/* ---- the driver ---- */

static int fx_step(fx *m) {
    uint8_t op = fx_byte(m);
    if (m->trace)
        fprintf(stderr, "fuzz_ops: call %d: op %d on transaction %d (%s)\n", m->ops, op % 24, (op >> 5) % FX_NT,
                m->tx[(op >> 5) % FX_NT].t ? "open" : "none");
    fx_tx *t = &m->tx[(op >> 5) % FX_NT];
    int need_tx = 1;
    switch (op % 24) {
    case 0: return fx_begin(m, 0);
    case 1: return fx_begin(m, 1);
    case 12: case 13: case 14: case 15: case 16: case 17: case 18: case 19: case 20: case 21: case 22: case 23:
        need_tx = 0;
        break;
    default: break;
    }
    if (need_tx && !t->t) return fx_begin(m, 0);
    switch (op % 24) {
    case 2: case 3: return fx_write(m, t, 0);
    case 4: return fx_write(m, t, 1);
    case 5: return fx_read(m, t, fx_byte(m) % 4);
    case 6: return fx_read(m, t, 0);
    case 7: return fx_iterate(m, t, fx_byte(m) & 1);
    case 8: return fx_iter_step(m, t);
    case 9: return fx_commit(m, t);
    case 10:
        tome_abort(t->t);
        fx_tx_clear(t);
        return 0;
    case 11: {
        uint64_t ts = 0;
        int rc = tome_last_updated(t->t, &ts);
        if (t->nw) {
            FX_EXPECT(m, rc, TOME_OK, "tome_last_updated");
            if (t->S && t->S < m->tscap && ts < m->ts[t->S])
                return fx_fail(m, "tome_last_updated with writes: %llu, before the snapshot's commit time",
                               (unsigned long long)ts);
        } else if (t->S == 0) {
            FX_EXPECT(m, rc, TOME_NOTFOUND, "tome_last_updated in an empty snapshot");
        } else {
            FX_EXPECT(m, rc, TOME_OK, "tome_last_updated");
            if (t->S < m->tscap && ts != m->ts[t->S])
                return fx_fail(m, "tome_last_updated: %llu, the model %llu", (unsigned long long)ts,
                               (unsigned long long)m->ts[t->S]);
        }
        return 0;
    }
    case 12: {
        int rc = tome_merge(m->db);
        FX_EXPECT(m, rc, m->db_ro ? TOME_READONLY : TOME_OK, "tome_merge");
        if (!rc) m->H = m->last;
        return fx_sync_seq(m, m->last, m->last, "tome_merge");
    }
    case 13: return fx_reopen(m, (fx_byte(m) % 4) == 0);
    case 14: case 15: return fx_kv(m, 0);
    case 16: return fx_kv(m, 1);
    case 17: return fx_kv(m, 2);
    case 18: return fx_kv(m, 3);
    case 19: return fx_kv(m, 4);
    case 20: {
        tome_stats st;
        int rc = tome_stats_get(m->db, &st);
        FX_EXPECT(m, rc, TOME_OK, "tome_stats_get");
        if (st.last_seq != m->last || st.horizon != m->H)
            return fx_fail(m, "tome_stats_get: last_seq %llu horizon %llu, the model %llu and %llu",
                           (unsigned long long)st.last_seq, (unsigned long long)st.horizon,
                           (unsigned long long)m->last, (unsigned long long)m->H);
        return 0;
    }
    case 21: {
        int rc = tome_sync(m->db);
        FX_EXPECT(m, rc, TOME_OK, "tome_sync");
        return 0;
    }
    case 22: { /* keys and values too long, NULL with a length */
        static uint8_t big[TOME_MAX_KEY_LEN + 1];
        fx_tx *u = &m->tx[0];
        if (!u->t) return 0;
        const void *v;
        size_t vl;
        FX_EXPECT(m, tome_get(u->t, 0, big, sizeof big, &v, &vl), TOME_NOTFOUND, "tome_get of a too long key");
        FX_EXPECT(m, tome_insert(u->t, 0, big, sizeof big, "x", 1), u->ro ? TOME_READONLY : TOME_TOOBIG,
                  "tome_insert of a too long key");
        FX_EXPECT(m, tome_insert(u->t, 0, NULL, 1, "x", 1), TOME_INVALID, "tome_insert of a NULL key");
        FX_EXPECT(m, tome_insert(u->t, 0, "a", 1, NULL, 1), TOME_INVALID, "tome_insert of a NULL value");
        FX_EXPECT(m, tome_kv_write(m->db, NULL, "", "k", "", 0), TOME_INVALID, "tome_kv_write(NULL)");
        return 0;
    }
    default: return 0;
    }
}

int fuzz_one(const uint8_t *data, size_t size) {
    tome_vfs *v = tome_vfs_mem_new();
    if (!v) return 0;
    tome_local_test_vfs(v);
    fx *m = calloc(1, sizeof *m);
    int rc = -1;
    if (!m) goto out;
    m->p = data;
    m->n = size;
    m->trace = getenv("FUZZ_TRACE") != NULL;
    for (int j = 0; j < FX_NK; j++) m->order[j] = j;
    for (int a = 1; a < FX_NK; a++)
        for (int b = a; b > 0 && fx_key_cmp(m->order[b - 1], m->order[b]) > 0; b--) {
            int x = m->order[b];
            m->order[b] = m->order[b - 1];
            m->order[b - 1] = x;
        }
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 4096;
    int orc = tome_open(FX_DIR, &o, &m->db);
    if (orc) {
        fprintf(stderr, "fuzz_ops: tome_open: %s\n", tome_strerror(orc));
        goto out;
    }
    rc = 0;
    while (m->i < m->n && m->ops < FX_MAXOPS && rc == 0) {
        m->ops++;
        rc = fx_step(m);
    }
    for (int j = 0; j < FX_NT; j++)
        if (m->tx[j].t) tome_abort(m->tx[j].t);
    if (!m->db) goto out;
    if (rc == 0) {
        int crc = tome_close(m->db);
        m->db = NULL;
        if (crc) rc = fx_fail(m, "final tome_close: %s", fx_rc(crc));
        char *report = NULL;
        if (!rc && (crc = tome_check(FX_DIR, &report)) != 0)
            rc = fx_fail(m, "tome_check: %s\n%s", fx_rc(crc), report ? report : "");
        tome_free(report);
        if (!rc && (crc = tome_open(FX_DIR, &o, &m->db)) != 0) rc = fx_fail(m, "final open: %s", fx_rc(crc));
        if (!rc) rc = fx_final(m);
    }
    if (m->db) tome_close(m->db);
out:
    tome_local_test_vfs(NULL);
    if (m) {
        for (int k = 0; k < FX_NK; k++) free(m->h[k].v);
        free(m->c);
        free(m->ts);
        free(m);
    }
    v->destroy(v);
    return rc;
}
