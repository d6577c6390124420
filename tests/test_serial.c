/*
 * test_serial.c -- a serializability checker, and the ring workload.
 *
 * The checker. Transactions run random programs over a small set of keys
 * in two slots (point reads with tome_get, tome_get_unremoved and
 * tome_get_version, tome_versions, whole or partial prefix iterations,
 * inserts and removals), and record everything they observe and write.
 * They run either as threads on one handle, or interleaved by one thread
 * that keeps several transactions open at once and steps a random one
 * (deterministic for a fixed seed, so conflicts are certain). A program
 * that fails with TOME_CONFLICT is run again with new choices.
 *
 * The commit seq of a transaction. tome_last_seq is not per transaction,
 * so every writing transaction also inserts a marker key of its own
 * "thread" (slot 9, "m<who>", value = a unique id of the attempt). Only that
 * thread writes its marker, so after tome_commit returned TOME_OK, the
 * newest version of the marker (read in a new transaction, with its value
 * checked against the id) carries the commit's seq and timestamp. A read-
 * only transaction learns the seq of its snapshot by reading, inside
 * itself, the versions of every marker: every commit wrote one, so the
 * newest marker version it sees is its snapshot's seq.
 *
 * The check. The committed seqs must be exactly 1..tome_last_seq (every
 * commit is one of ours, none is lost or doubled), with timestamps that
 * never decrease. Then the committed transactions are replayed one by one
 * in seq order against a reference model (each key's full history of
 * versions: seq, timestamp, removed, value id): a transaction with seq s
 * must have observed exactly what the model holds after commit s-1, with
 * its own earlier writes applied on top (every value, every NOTFOUND, every
 * version list with seqs and timestamps, every iteration); a read-only
 * transaction must have observed the model right after its snapshot seq.
 * Values are unique per write (a 4-byte id and bytes derived from it), so
 * a read is identified exactly. Runs with concurrent tome_merge calls use
 * the history-tolerant form of the history reads (a version list may have
 * lost a prefix, tome_get_unremoved and tome_get_version may miss versions
 * that a merge may drop); point reads and iterations stay exact. At the
 * end the store is closed and reopened and must hold the model's state
 * (and, without merges, its whole history).
 *
 * The ring (tests/stress/ring.h): N keys form one cycle and every
 * transaction relinks three of them. Threads relink while a reader checks
 * snapshots; after the run, after close and reopen, after SIGKILL of a
 * child process relinking with several threads (and merging), and after
 * recovery (with and without INDEX), the ring is exactly one cycle of N.
 *
 * Fixed seeds; TOME_TEST_SHORT=1 runs smaller loops.
 */
#include "tt.h"
#include "common/files.h"
#include "common/store.h"
#include "tome.h"
#include "stress/ring.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Failures from threads                                                     */
/* ------------------------------------------------------------------------ */

static atomic_int g_errors;
static char g_errmsg[600];
static pthread_mutex_t g_errmu = PTHREAD_MUTEX_INITIALIZER;

static void serr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void serr(const char *fmt, ...) {
    pthread_mutex_lock(&g_errmu);
    int n = atomic_fetch_add(&g_errors, 1);
    if (n < 8) {
        char buf[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        fprintf(stderr, "  %s\n", buf);
        if (n == 0) snprintf(g_errmsg, sizeof g_errmsg, "%s", buf);
    }
    pthread_mutex_unlock(&g_errmu);
}

static void serr_reset(void) {
    atomic_store(&g_errors, 0);
    g_errmsg[0] = 0;
}

/* ------------------------------------------------------------------------ */
/* Keys, prefixes and values                                                 */
/* ------------------------------------------------------------------------ */

#define SLOT_MARK 9

typedef struct skey {
    uint8_t slot;
    const char *name;
    size_t len;
} skey;

/* Includes the empty key and a key with a byte above 0x7f. */
static const skey g_keys[] = {
    {1, "a", 1},   {1, "a/1", 3}, {1, "a/2", 3}, {1, "a/3", 3}, {1, "a/4", 3}, {1, "ab", 2},
    {1, "b/1", 3}, {1, "b/2", 3}, {1, "b/3", 3}, {1, "", 0},    {1, "c", 1},   {2, "a/1", 3},
    {2, "a/2", 3}, {2, "x", 1},   {2, "x/y", 3}, {2, "x/z", 3}, {2, "\xff", 1}, {2, "x/\x00", 3},
};
#define NKEYS ((int)(sizeof g_keys / sizeof g_keys[0]))

static const skey g_pfx[] = {
    {1, "", 0}, {1, "a", 1}, {1, "a/", 2}, {1, "b/", 2}, {2, "", 0}, {2, "a/", 2}, {2, "x/", 2}, {2, "zz", 2},
};
#define NPFX ((int)(sizeof g_pfx / sizeof g_pfx[0]))

static int key_index(uint8_t slot, const void *k, size_t kl) {
    for (int i = 0; i < NKEYS; i++)
        if (g_keys[i].slot == slot && g_keys[i].len == kl && (kl == 0 || !memcmp(g_keys[i].name, k, kl)))
            return i;
    return -1;
}

static int key_cmp(int a, int b) {
    const skey *x = &g_keys[a], *y = &g_keys[b];
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->name, y->name, n) : 0;
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int key_has_prefix(int k, int p) {
    const skey *x = &g_keys[k], *y = &g_pfx[p];
    return x->slot == y->slot && x->len >= y->len && (y->len == 0 || !memcmp(x->name, y->name, y->len));
}

/* A value written with id vid: 4 bytes big-endian vid, then vid % 37 bytes
 * derived from it. */
static size_t val_make(uint8_t *buf, uint32_t vid) {
    buf[0] = (uint8_t)(vid >> 24);
    buf[1] = (uint8_t)(vid >> 16);
    buf[2] = (uint8_t)(vid >> 8);
    buf[3] = (uint8_t)vid;
    size_t extra = vid % 37;
    ts_fill(buf + 4, extra, vid);
    return 4 + extra;
}

/* The id of a value read back; 0 when the bytes are no value we wrote. */
static uint32_t val_id(const void *p, size_t n) {
    const uint8_t *b = p;
    if (n < 4) return 0;
    uint32_t vid = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    uint8_t want[64];
    if (vid == 0 || val_make(want, vid) != n || memcmp(want, b, n)) return 0;
    return vid;
}

/* ------------------------------------------------------------------------ */
/* What a transaction did                                                    */
/* ------------------------------------------------------------------------ */

enum { OP_GET, OP_UNREM, OP_GETVER, OP_VERSIONS, OP_ITER, OP_PUT, OP_DEL };
static const char *const g_opname[] = {"get", "get_unremoved", "get_version", "versions", "iterate",
                                       "insert", "remove"};

typedef struct sver {
    uint64_t seq, ts;
    uint8_t removed, committed;
} sver;

typedef struct obs {
    uint8_t kind;
    uint8_t k;        /* key index; OP_ITER: prefix index */
    uint8_t partial;  /* OP_ITER: closed before the end (a prefix of the list) */
    uint32_t vid;     /* read: the value's id, 0 for TOME_NOTFOUND; write: the id written */
    uint64_t q;       /* OP_GETVER: the seq asked for */
    uint32_t off, n;  /* OP_VERSIONS: into vp; OP_ITER: into kp */
} obs;

typedef struct trec {
    uint64_t seq;     /* commit seq; 0 for a read-only transaction */
    uint64_t at;      /* read-only: the seq of its snapshot */
    uint64_t ts;      /* commit timestamp */
    int who;
    uint32_t uid;
    obs *ops;
    size_t nops, capops;
    sver *vp;
    size_t nvp, capvp;
    uint8_t *kp;
    size_t nkp, capkp;
} trec;

static void trec_free(trec *r) {
    free(r->ops);
    free(r->vp);
    free(r->kp);
    memset(r, 0, sizeof *r);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *q = realloc(p, nc * elem);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    *cap = nc;
    return q;
}

static obs *trec_op(trec *r) {
    r->ops = grow(r->ops, &r->capops, r->nops + 1, sizeof *r->ops);
    obs *o = &r->ops[r->nops++];
    memset(o, 0, sizeof *o);
    return o;
}

typedef struct recs {
    trec *v;
    size_t n, cap;
} recs;

static void recs_push(recs *rs, trec *r) {
    rs->v = grow(rs->v, &rs->cap, rs->n + 1, sizeof *rs->v);
    rs->v[rs->n++] = *r;
    memset(r, 0, sizeof *r);
}

static void recs_free(recs *rs) {
    for (size_t i = 0; i < rs->n; i++) trec_free(&rs->v[i]);
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

/* ------------------------------------------------------------------------ */
/* Running a transaction program                                             */
/* ------------------------------------------------------------------------ */

typedef struct sctx {
    tome_db *db;
    int nwho;          /* markers m0..m<nwho-1>; the setup commit uses nwho */
    atomic_long commits, conflicts, readonly, aborted;
} sctx;

static void marker_key(char *k, int who) { snprintf(k, 8, "m%d", who & 0xffff); }

/* One running program. */
typedef struct prog {
    tome_txn *t;
    trec rec;
    int who;
    int readonly;
    int left;         /* operations still to run */
    uint32_t counter; /* ids handed out by this "thread" */
    uint64_t rng;
    tome_iter *open_it;  /* an iteration left open until the commit */
    int no_abort;        /* always commit (the setup) */
} prog;

static uint32_t next_id(prog *p) { return (uint32_t)(p->who + 1) << 24 | ++p->counter; }

static int prog_begin(sctx *sc, prog *p) {
    memset(&p->rec, 0, sizeof p->rec);
    p->rec.who = p->who;
    p->readonly = ts_rand(&p->rng) % 6 == 0;
    p->left = 1 + (int)(ts_rand(&p->rng) % 7);
    p->open_it = NULL;
    int rc = tome_begin(sc->db, &p->t);
    if (rc) serr("tome_begin: %s", tt_rcname(rc));
    return rc;
}

/* A seq to ask tome_get_version for: one the program saw for the key in an
 * earlier tome_versions, or a small number. */
static uint64_t pick_seq(prog *p, int k) {
    trec *r = &p->rec;
    for (size_t i = r->nops; i > 0; i--) {
        obs *o = &r->ops[i - 1];
        if (o->kind == OP_VERSIONS && o->k == k && o->n && ts_rand(&p->rng) % 4) {
            return r->vp[o->off + ts_rand(&p->rng) % o->n].seq;
        }
    }
    return ts_rand(&p->rng) % 40;
}

static int read_result(int rc, const void *v, size_t vl, uint32_t *vid, const char *what, int k) {
    if (rc == TOME_NOTFOUND) {
        *vid = 0;
        return 0;
    }
    if (rc) {
        serr("%s(key %d): %s", what, k, tt_rcname(rc));
        return rc;
    }
    *vid = val_id(v, vl);
    if (!*vid) {
        serr("%s(key %d): %zu bytes that no transaction wrote", what, k, vl);
        return TOME_CORRUPT;
    }
    return 0;
}

/* Runs one random operation of the program. */
static int prog_op(sctx *sc, prog *p) {
    (void)sc;
    tome_txn *t = p->t;
    trec *r = &p->rec;
    unsigned roll = (unsigned)(ts_rand(&p->rng) % 100);
    if (p->readonly) roll = roll % 58;
    int k = (int)(ts_rand(&p->rng) % NKEYS);
    const skey *K = &g_keys[k];
    const void *v;
    size_t vl;
    int rc;
    p->left--;
    if (roll < 24) {
        obs *o = trec_op(r);
        o->kind = OP_GET;
        o->k = (uint8_t)k;
        rc = tome_get(t, K->slot, K->name, K->len, &v, &vl);
        return read_result(rc, v, vl, &o->vid, "tome_get", k);
    }
    if (roll < 30) {
        obs *o = trec_op(r);
        o->kind = OP_UNREM;
        o->k = (uint8_t)k;
        rc = tome_get_unremoved(t, K->slot, K->name, K->len, &v, &vl);
        return read_result(rc, v, vl, &o->vid, "tome_get_unremoved", k);
    }
    if (roll < 36) {
        uint64_t q = pick_seq(p, k);
        obs *o = trec_op(r);
        o->kind = OP_GETVER;
        o->k = (uint8_t)k;
        o->q = q;
        rc = tome_get_version(t, K->slot, K->name, K->len, q, &v, &vl);
        return read_result(rc, v, vl, &o->vid, "tome_get_version", k);
    }
    if (roll < 46) {
        const tome_version *vs;
        size_t n;
        rc = tome_versions(t, K->slot, K->name, K->len, &vs, &n);
        if (rc) {
            serr("tome_versions(key %d): %s", k, tt_rcname(rc));
            return rc;
        }
        obs *o = trec_op(r);
        o->kind = OP_VERSIONS;
        o->k = (uint8_t)k;
        o->off = (uint32_t)r->nvp;
        o->n = (uint32_t)n;
        r->vp = grow(r->vp, &r->capvp, r->nvp + n, sizeof *r->vp);
        for (size_t i = 0; i < n; i++) {
            sver *s = &r->vp[r->nvp++];
            s->seq = vs[i].seq;
            s->ts = vs[i].timestamp;
            s->removed = vs[i].removed;
            s->committed = vs[i].committed;
        }
        return 0;
    }
    if (roll < 58) {
        int pi = (int)(ts_rand(&p->rng) % NPFX);
        const skey *P = &g_pfx[pi];
        unsigned mode = (unsigned)(ts_rand(&p->rng) % 8); /* 0: stop early; 1: leave open */
        tome_iter *it;
        rc = tome_iter_open(t, P->slot, P->name, P->len, &it);
        if (rc) {
            serr("tome_iter_open: %s", tt_rcname(rc));
            return rc;
        }
        obs *o = trec_op(r);
        o->kind = OP_ITER;
        o->k = (uint8_t)pi;
        o->off = (uint32_t)r->nkp;
        size_t limit = mode == 0 ? (size_t)(ts_rand(&p->rng) % 3) : SIZE_MAX;
        const void *kp;
        size_t kl;
        size_t got = 0;
        if (mode == 1) {
            /* left open (tome_commit/tome_abort close it); reads nothing */
            if (p->open_it) tome_iter_close(p->open_it);
            p->open_it = it;
            o->partial = 1;
            return 0;
        }
        while (got < limit && (rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) {
            int ki = key_index(P->slot, kp, kl);
            if (ki < 0) {
                serr("iteration returned a key of %zu bytes that nobody wrote", kl);
                tome_iter_close(it);
                return TOME_CORRUPT;
            }
            r->kp = grow(r->kp, &r->capkp, r->nkp + 1, 1);
            r->kp[r->nkp++] = (uint8_t)ki;
            got++;
        }
        tome_iter_close(it);
        if (got == limit) {
            o->partial = 1;
        } else if (rc != TOME_NOTFOUND) {
            serr("tome_iter_next: %s", tt_rcname(rc));
            return rc;
        }
        o->n = (uint32_t)(r->nkp - o->off);
        return 0;
    }
    if (roll < 86) {
        uint8_t buf[64];
        obs *o = trec_op(r);
        o->kind = OP_PUT;
        o->k = (uint8_t)k;
        o->vid = next_id(p);
        size_t n = val_make(buf, o->vid);
        rc = tome_insert(t, K->slot, K->name, K->len, buf, n);
        if (rc) serr("tome_insert: %s", tt_rcname(rc));
        return rc;
    }
    obs *o = trec_op(r);
    o->kind = OP_DEL;
    o->k = (uint8_t)k;
    rc = tome_remove(t, K->slot, K->name, K->len);
    if (rc) serr("tome_remove: %s", tt_rcname(rc));
    return rc;
}

/* The seq of the snapshot of t: the newest marker version it sees. */
static int snapshot_seq(sctx *sc, tome_txn *t, uint64_t *out) {
    *out = 0;
    for (int w = 0; w <= sc->nwho; w++) {
        char mk[8];
        marker_key(mk, w);
        const tome_version *vs;
        size_t n;
        int rc = tome_versions(t, SLOT_MARK, mk, strlen(mk), &vs, &n);
        if (rc) {
            serr("tome_versions(marker %d): %s", w, tt_rcname(rc));
            return rc;
        }
        if (n && vs[n - 1].seq > *out) *out = vs[n - 1].seq;
    }
    return 0;
}

/* The seq and timestamp of the commit that wrote marker `who` with `uid`
 * last: read in a new transaction. */
static int commit_seq(sctx *sc, int who, uint32_t uid, uint64_t *seq, uint64_t *ts) {
    tome_txn *t;
    int rc = tome_begin(sc->db, &t);
    if (rc) {
        serr("tome_begin: %s", tt_rcname(rc));
        return rc;
    }
    char mk[8];
    marker_key(mk, who);
    const tome_version *vs;
    size_t n;
    const void *v;
    size_t vl;
    rc = tome_versions(t, SLOT_MARK, mk, strlen(mk), &vs, &n);
    if (rc || n == 0 || !vs[n - 1].committed || vs[n - 1].removed) {
        serr("marker %d after a commit: %s, %zu versions", who, tt_rcname(rc), n);
        tome_abort(t);
        return rc ? rc : TOME_CORRUPT;
    }
    *seq = vs[n - 1].seq;
    *ts = vs[n - 1].timestamp;
    rc = tome_get(t, SLOT_MARK, mk, strlen(mk), &v, &vl);
    if (rc || val_id(v, vl) != uid) {
        serr("marker %d after a commit: %s, value %u, want %u (the commit is not visible)", who,
             tt_rcname(rc), rc ? 0 : val_id(v, vl), uid);
        tome_abort(t);
        return rc ? rc : TOME_CORRUPT;
    }
    tome_abort(t);
    return 0;
}

/* Ends the program: commit (or, now and then, abort) and record it in out
 * when it committed. Returns the commit code (TOME_CONFLICT: rerun). */
static int prog_finish(sctx *sc, prog *p, recs *out) {
    trec *r = &p->rec;
    int rc;
    if (p->readonly) {
        uint64_t at;
        rc = snapshot_seq(sc, p->t, &at);
        if (rc) {
            tome_abort(p->t);
            trec_free(r);
            return rc;
        }
        r->at = at;
        rc = tome_commit(p->t); /* no writes: always TOME_OK */
        if (rc) {
            serr("commit of a read-only transaction: %s", tt_rcname(rc));
            trec_free(r);
            return rc;
        }
        atomic_fetch_add(&sc->readonly, 1);
        recs_push(out, r);
        return 0;
    }
    if (!p->no_abort && ts_rand(&p->rng) % 16 == 0) {
        tome_abort(p->t);
        atomic_fetch_add(&sc->aborted, 1);
        trec_free(r);
        return 0;
    }
    r->uid = next_id(p);
    char mk[8];
    uint8_t buf[64];
    marker_key(mk, p->who);
    size_t n = val_make(buf, r->uid);
    rc = tome_insert(p->t, SLOT_MARK, mk, strlen(mk), buf, n);
    if (rc) {
        serr("tome_insert(marker): %s", tt_rcname(rc));
        tome_abort(p->t);
        trec_free(r);
        return rc;
    }
    rc = tome_commit(p->t);
    if (rc == TOME_CONFLICT) {
        atomic_fetch_add(&sc->conflicts, 1);
        trec_free(r);
        return rc;
    }
    if (rc) {
        serr("tome_commit: %s (%s)", tt_rcname(rc), tome_errmsg(sc->db));
        trec_free(r);
        return rc;
    }
    rc = commit_seq(sc, p->who, r->uid, &r->seq, &r->ts);
    if (rc) {
        trec_free(r);
        return rc;
    }
    atomic_fetch_add(&sc->commits, 1);
    recs_push(out, r);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The model and the check                                                   */
/* ------------------------------------------------------------------------ */

typedef struct mver {
    uint64_t seq, ts;
    uint32_t vid;
    uint8_t removed;
} mver;

typedef struct model {
    mver *v[NKEYS];
    size_t n[NKEYS], cap[NKEYS];
} model;

static void model_free(model *m) {
    for (int i = 0; i < NKEYS; i++) free(m->v[i]);
    memset(m, 0, sizeof *m);
}

static void model_add(model *m, int k, uint64_t seq, uint64_t ts, uint32_t vid, int removed) {
    m->v[k] = grow(m->v[k], &m->cap[k], m->n[k] + 1, sizeof(mver));
    m->v[k][m->n[k]++] = (mver){seq, ts, vid, (uint8_t)removed};
}

/* The transaction's own writes while its operations are replayed. */
typedef struct overlay {
    uint8_t written[NKEYS], removed[NKEYS];
    uint32_t vid[NKEYS];
} overlay;

static uint32_t m_current(const model *m, const overlay *ov, int k) {
    if (ov->written[k]) return ov->removed[k] ? 0 : ov->vid[k];
    if (m->n[k] == 0 || m->v[k][m->n[k] - 1].removed) return 0;
    return m->v[k][m->n[k] - 1].vid;
}

/* Index of the newest committed version that is not a removal, or -1. */
static long m_unremoved(const model *m, int k) {
    for (size_t i = m->n[k]; i > 0; i--)
        if (!m->v[k][i - 1].removed) return (long)i - 1;
    return -1;
}

typedef struct checkctx {
    const model *m;
    const trec *r;
    int relaxed;   /* merges ran: history reads may have lost what a merge may drop */
    long checked;
} checkctx;

static void mismatch(const checkctx *c, size_t opi, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void mismatch(const checkctx *c, size_t opi, const char *fmt, ...) {
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const obs *o = &c->r->ops[opi];
    const char *kn = o->kind == OP_ITER ? g_pfx[o->k].name : g_keys[o->k].name;
    int slot = o->kind == OP_ITER ? g_pfx[o->k].slot : g_keys[o->k].slot;
    if (c->r->seq)
        serr("commit seq %llu (thread %d), operation %zu %s(slot %d, \"%s\"): %s",
             (unsigned long long)c->r->seq, c->r->who, opi, g_opname[o->kind], slot, kn, buf);
    else
        serr("read-only transaction at seq %llu (thread %d), operation %zu %s(slot %d, \"%s\"): %s",
             (unsigned long long)c->r->at, c->r->who, opi, g_opname[o->kind], slot, kn, buf);
}

static void check_versions(checkctx *c, size_t opi, const overlay *ov) {
    const obs *o = &c->r->ops[opi];
    const model *m = c->m;
    int k = o->k;
    size_t exp_n = m->n[k] + (ov->written[k] ? 1 : 0);
    const sver *got = &c->r->vp[o->off];
    size_t n = o->n;
    if (n > exp_n || (!c->relaxed && n != exp_n)) {
        mismatch(c, opi, "%zu versions, the serial order gives %zu", n, exp_n);
        return;
    }
    if (ov->written[k] && n == 0) {
        mismatch(c, opi, "no versions, but a pending write");
        return;
    }
    size_t skip = exp_n - n; /* relaxed: a merged-away prefix */
    uint64_t newest_ts = 0;
    for (size_t i = 0; i < n; i++) {
        size_t e = skip + i;
        if (e < m->n[k]) {
            const mver *mv = &m->v[k][e];
            if (got[i].seq != mv->seq || got[i].ts != mv->ts || got[i].removed != mv->removed ||
                !got[i].committed) {
                mismatch(c, opi, "version %zu is seq %llu ts %llu%s%s, the serial order gives seq %llu ts %llu%s",
                         i, (unsigned long long)got[i].seq, (unsigned long long)got[i].ts,
                         got[i].removed ? " removed" : "", got[i].committed ? "" : " pending",
                         (unsigned long long)mv->seq, (unsigned long long)mv->ts, mv->removed ? " removed" : "");
                return;
            }
            newest_ts = mv->ts;
        } else {
            if (got[i].seq != 0 || got[i].committed || got[i].removed != ov->removed[k] ||
                got[i].ts < newest_ts) {
                mismatch(c, opi, "the pending version is seq %llu ts %llu%s%s (newest commit ts %llu)",
                         (unsigned long long)got[i].seq, (unsigned long long)got[i].ts,
                         got[i].removed ? " removed" : "", got[i].committed ? " committed" : "",
                         (unsigned long long)newest_ts);
                return;
            }
        }
    }
}

static void check_iter(checkctx *c, size_t opi, const overlay *ov) {
    const obs *o = &c->r->ops[opi];
    int exp[NKEYS], ne = 0;
    for (int k = 0; k < NKEYS; k++)
        if (key_has_prefix(k, o->k) && m_current(c->m, ov, k)) exp[ne++] = k;
    for (int i = 1; i < ne; i++) /* insertion sort, bytewise */
        for (int j = i; j > 0 && key_cmp(exp[j - 1], exp[j]) > 0; j--) {
            int x = exp[j];
            exp[j] = exp[j - 1];
            exp[j - 1] = x;
        }
    const uint8_t *got = &c->r->kp[o->off];
    if (o->n > (uint32_t)ne || (!o->partial && o->n != (uint32_t)ne)) {
        mismatch(c, opi, "%u keys, the serial order gives %d", o->n, ne);
        return;
    }
    for (uint32_t i = 0; i < o->n; i++)
        if (got[i] != exp[i]) {
            mismatch(c, opi, "key %u is #%d \"%s\", the serial order gives #%d \"%s\"", i, got[i],
                     g_keys[got[i]].name, exp[i], g_keys[exp[i]].name);
            return;
        }
}

/* Replays r against the model (which holds the commits before r's place
 * in the serial order). */
static void check_rec(checkctx *c, const trec *r) {
    c->r = r;
    overlay ov;
    memset(&ov, 0, sizeof ov);
    const model *m = c->m;
    for (size_t i = 0; i < r->nops; i++) {
        const obs *o = &r->ops[i];
        int k = o->k;
        c->checked++;
        switch (o->kind) {
        case OP_GET: {
            uint32_t want = m_current(m, &ov, k);
            if (o->vid != want) mismatch(c, i, "read value #%u, the serial order gives #%u", o->vid, want);
            break;
        }
        case OP_UNREM: {
            uint32_t want = 0;
            long ui = m_unremoved(m, k);
            if (ov.written[k] && !ov.removed[k]) want = ov.vid[k];
            else if (ui >= 0) want = m->v[k][ui].vid;
            /* relaxed: a merge may have emptied the trash when a removal
             * followed the newest put */
            int may_miss = c->relaxed && !(ov.written[k] && !ov.removed[k]) && ui >= 0 &&
                           (size_t)ui + 1 < m->n[k];
            if (o->vid != want && !(o->vid == 0 && may_miss))
                mismatch(c, i, "read value #%u, the serial order gives #%u", o->vid, want);
            break;
        }
        case OP_GETVER: {
            uint32_t want = 0;
            int may_miss = 0;
            if (o->q == 0) {
                if (ov.written[k] && !ov.removed[k]) want = ov.vid[k];
            } else {
                for (size_t j = 0; j < m->n[k]; j++)
                    if (m->v[k][j].seq == o->q) {
                        if (!m->v[k][j].removed) want = m->v[k][j].vid;
                        may_miss = c->relaxed && j + 1 < m->n[k];
                    }
            }
            if (o->vid != want && !(o->vid == 0 && may_miss))
                mismatch(c, i, "seq %llu: value #%u, the serial order gives #%u", (unsigned long long)o->q,
                         o->vid, want);
            break;
        }
        case OP_VERSIONS:
            check_versions(c, i, &ov);
            break;
        case OP_ITER:
            check_iter(c, i, &ov);
            break;
        case OP_PUT:
        case OP_DEL:
            ov.written[k] = 1;
            ov.removed[k] = o->kind == OP_DEL;
            ov.vid[k] = o->kind == OP_DEL ? 0 : o->vid;
            break;
        }
        if (atomic_load(&g_errors)) return;
    }
}

static void apply_rec(model *m, const trec *r) {
    overlay ov;
    memset(&ov, 0, sizeof ov);
    for (size_t i = 0; i < r->nops; i++) {
        const obs *o = &r->ops[i];
        if (o->kind != OP_PUT && o->kind != OP_DEL) continue;
        ov.written[o->k] = 1;
        ov.removed[o->k] = o->kind == OP_DEL;
        ov.vid[o->k] = o->vid;
    }
    for (int k = 0; k < NKEYS; k++)
        if (ov.written[k]) model_add(m, k, r->seq, r->ts, ov.removed[k] ? 0 : ov.vid[k], ov.removed[k]);
}

static int cmp_seq(const void *a, const void *b) {
    const trec *x = *(trec *const *)a, *y = *(trec *const *)b;
    uint64_t p = x->seq ? x->seq : x->at, q = y->seq ? y->seq : y->at;
    return p < q ? -1 : p > q;
}

typedef struct check_result {
    long writers, readers, ops;
} check_result;

/* The whole check over every recorded transaction; the model ends as the
 * state after the last commit. */
static void check_all(recs *all, uint64_t last_seq, int relaxed, model *m, check_result *res) {
    size_t nw = 0, nr = 0;
    for (size_t i = 0; i < all->n; i++) {
        if (all->v[i].seq) nw++;
        else nr++;
    }
    trec **w = malloc((nw + 1) * sizeof *w), **ro = malloc((nr + 1) * sizeof *ro);
    if (!w || !ro) abort();
    nw = nr = 0;
    for (size_t i = 0; i < all->n; i++) {
        if (all->v[i].seq) w[nw++] = &all->v[i];
        else ro[nr++] = &all->v[i];
    }
    qsort(w, nw, sizeof *w, cmp_seq);
    qsort(ro, nr, sizeof *ro, cmp_seq);
    if (nw != last_seq) serr("%zu transactions committed but the newest seq is %llu", nw, (unsigned long long)last_seq);
    for (size_t i = 0; i < nw && !atomic_load(&g_errors); i++) {
        if (w[i]->seq != i + 1) serr("commit #%zu in seq order has seq %llu (a seq used twice or skipped)", i + 1,
                                     (unsigned long long)w[i]->seq);
        else if (i && w[i]->ts < w[i - 1]->ts)
            serr("seq %llu has timestamp %llu, before seq %llu's %llu", (unsigned long long)w[i]->seq,
                 (unsigned long long)w[i]->ts, (unsigned long long)w[i - 1]->seq, (unsigned long long)w[i - 1]->ts);
    }
    checkctx c = {m, NULL, relaxed, 0};
    size_t ri = 0;
    for (size_t i = 0; i <= nw && !atomic_load(&g_errors); i++) {
        uint64_t state = i ? w[i - 1]->seq : 0; /* the model holds commits <= state */
        while (ri < nr && ro[ri]->at <= state) {
            if (ro[ri]->at != state) serr("read-only snapshot at seq %llu, which is no commit", (unsigned long long)ro[ri]->at);
            check_rec(&c, ro[ri++]);
        }
        if (i == nw) break;
        check_rec(&c, w[i]);
        apply_rec(m, w[i]);
    }
    if (ri != nr && !atomic_load(&g_errors)) serr("a read-only snapshot at seq %llu, after the last commit", (unsigned long long)ro[ri]->at);
    res->writers = (long)nw;
    res->readers = (long)nr;
    res->ops = c.checked;
    free(w);
    free(ro);
}

/* Every key of the reopened store against the model: values, iterations,
 * and (exact) the whole history of versions with their values. */
static void check_store_model(tome_db *db, const model *m, int exact_history) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) {
        serr("tome_begin: %s", tt_rcname(rc));
        return;
    }
    overlay none;
    memset(&none, 0, sizeof none);
    for (int k = 0; k < NKEYS && !atomic_load(&g_errors); k++) {
        const skey *K = &g_keys[k];
        const void *v;
        size_t vl;
        uint32_t vid = 0;
        rc = tome_get(t, K->slot, K->name, K->len, &v, &vl);
        if (rc == 0) vid = val_id(v, vl);
        else if (rc != TOME_NOTFOUND) serr("reopened: tome_get(\"%s\"): %s", K->name, tt_rcname(rc));
        if (vid != m_current(m, &none, k))
            serr("reopened: \"%s\" (slot %d) holds #%u, the model #%u", K->name, K->slot, vid, m_current(m, &none, k));
        const tome_version *vs;
        size_t n;
        rc = tome_versions(t, K->slot, K->name, K->len, &vs, &n);
        if (rc) {
            serr("reopened: tome_versions: %s", tt_rcname(rc));
            break;
        }
        if (n > m->n[k] || (exact_history && n != m->n[k])) {
            serr("reopened: \"%s\" (slot %d) has %zu versions, the model %zu", K->name, K->slot, n, m->n[k]);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            const mver *mv = &m->v[k][m->n[k] - n + i];
            if (vs[i].seq != mv->seq || vs[i].timestamp != mv->ts || vs[i].removed != mv->removed) {
                serr("reopened: \"%s\" version %zu: seq %llu, the model seq %llu", K->name, i,
                     (unsigned long long)vs[i].seq, (unsigned long long)mv->seq);
                break;
            }
            if (mv->removed) continue;
            rc = tome_get_version(t, K->slot, K->name, K->len, mv->seq, &v, &vl);
            if (rc || val_id(v, vl) != mv->vid)
                serr("reopened: \"%s\" at seq %llu: %s, not #%u", K->name, (unsigned long long)mv->seq,
                     tt_rcname(rc), mv->vid);
        }
    }
    for (int p = 0; p < NPFX && !atomic_load(&g_errors); p++) {
        tome_iter *it;
        rc = tome_iter_open(t, g_pfx[p].slot, g_pfx[p].name, g_pfx[p].len, &it);
        if (rc) {
            serr("tome_iter_open: %s", tt_rcname(rc));
            break;
        }
        int want = 0, got = 0;
        for (int k = 0; k < NKEYS; k++)
            if (key_has_prefix(k, p) && m_current(m, &none, k)) want++;
        const void *kp;
        size_t kl;
        while (tome_iter_next(it, &kp, &kl) == TOME_OK) got++;
        tome_iter_close(it);
        if (got != want) serr("reopened: prefix %d iterates %d keys, the model %d", p, got, want);
    }
    tome_abort(t);
}

/* The setup commit: half of the keys get a first value (marker nwho). */
static int setup_commit(sctx *sc, recs *out) {
    prog p;
    memset(&p, 0, sizeof p);
    p.who = sc->nwho;
    int rc = tome_begin(sc->db, &p.t);
    if (rc) return rc;
    for (int k = 0; k < NKEYS && !rc; k += 2) {
        obs *o = trec_op(&p.rec);
        o->kind = OP_PUT;
        o->k = (uint8_t)k;
        o->vid = next_id(&p);
        uint8_t buf[64];
        size_t n = val_make(buf, o->vid);
        rc = tome_insert(p.t, g_keys[k].slot, g_keys[k].name, g_keys[k].len, buf, n);
    }
    if (rc) {
        tome_abort(p.t);
        trec_free(&p.rec);
        return rc;
    }
    p.rec.who = p.who;
    p.no_abort = 1;
    rc = prog_finish(sc, &p, out);
    if (rc) return rc;
    return out->n == 1 ? 0 : TOME_CORRUPT;
}

/* ------------------------------------------------------------------------ */
/* Interleaved: one thread, several open transactions, deterministic         */
/* ------------------------------------------------------------------------ */

static void run_interleaved(uint64_t seed, int merges) {
    serr_reset();
    char path[TS_PATH_MAX];
    tome_options o;
    tome_options_init(&o);
    o.sync = TOME_SYNC_NONE;
    o.segment_size = 32 * 1024;
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    enum { NV = 4 };
    sctx sc;
    memset(&sc, 0, sizeof sc);
    sc.db = db;
    sc.nwho = NV;
    recs all = {0};
    CHECK_OK(setup_commit(&sc, &all));
    prog pv[NV];
    memset(pv, 0, sizeof pv);
    for (int i = 0; i < NV; i++) {
        pv[i].who = i;
        pv[i].rng = seed * 1000 + (uint64_t)i;
    }
    uint64_t rng = seed;
    long steps = ts_short() ? 4000 : 60000, merges_done = 0;
    for (long s = 0; s < steps && !atomic_load(&g_errors); s++) {
        prog *p = &pv[ts_rand(&rng) % NV];
        if (merges && ts_rand(&rng) % 200 == 0) {
            int rc = tome_merge(db);
            if (rc) serr("tome_merge: %s", tt_rcname(rc));
            merges_done++;
        }
        if (!p->t) {
            if (prog_begin(&sc, p)) break;
            continue;
        }
        if (p->left > 0) {
            if (prog_op(&sc, p)) break;
            continue;
        }
        prog_finish(&sc, p, &all); /* TOME_CONFLICT: the next step begins a new program */
        p->t = NULL;
    }
    for (int i = 0; i < NV; i++)
        if (pv[i].t) {
            tome_abort(pv[i].t);
            trec_free(&pv[i].rec);
        }
    CHECK_EQ(atomic_load(&g_errors), 0);
    uint64_t last = ts_seq(db);
    model m;
    memset(&m, 0, sizeof m);
    check_result res;
    check_all(&all, last, merges, &m, &res);
    if (!atomic_load(&g_errors)) {
        db = ts_reopen(db, path, &o);
        if (!db) serr("reopen failed");
        else check_store_model(db, &m, !merges);
    }
    printf("     %ld commits, %ld conflicts, %ld read-only, %ld aborted, %ld merges; %ld operations checked\n",
           atomic_load(&sc.commits), atomic_load(&sc.conflicts), atomic_load(&sc.readonly),
           atomic_load(&sc.aborted), merges_done, res.ops);
    if (db) CHECK_OK(tome_close(db));
    model_free(&m);
    recs_free(&all);
    CHECK_EQ(atomic_load(&g_errors), 0);
    /* deterministic: with 4 transactions open at once over 18 keys these
     * happen for this seed (a checker that saw no conflict checked little) */
    CHECK(atomic_load(&sc.conflicts) > 10);
    CHECK(atomic_load(&sc.commits) > 100);
    CHECK(atomic_load(&sc.readonly) > 10);
}

TT_TEST(serializable_interleaved) { run_interleaved(11, 0); }
TT_TEST(serializable_interleaved_with_merges) { run_interleaved(23, 1); }

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct worker {
    sctx *sc;
    int who;
    long txns;
    uint64_t seed;
    recs out;
} worker;

static atomic_int g_stop;

static void *worker_main(void *arg) {
    worker *w = arg;
    prog p;
    memset(&p, 0, sizeof p);
    p.who = w->who;
    p.rng = w->seed;
    for (long i = 0; i < w->txns && !atomic_load(&g_errors); i++) {
        int rc;
        do {
            if (prog_begin(w->sc, &p)) return NULL;
            while (p.left > 0) {
                if (prog_op(w->sc, &p)) {
                    tome_abort(p.t);
                    trec_free(&p.rec);
                    return NULL;
                }
                /* let the other threads in between the operations */
                if (ts_rand(&p.rng) % 3 == 0) sched_yield();
            }
            rc = prog_finish(w->sc, &p, &w->out);
        } while (rc == TOME_CONFLICT && !atomic_load(&g_errors));
        if (rc) break;
    }
    return NULL;
}

static void *merger_main(void *arg) {
    sctx *sc = arg;
    long n = 0;
    while (!atomic_load(&g_stop) && !atomic_load(&g_errors)) {
        int rc = tome_merge(sc->db);
        if (rc) serr("tome_merge: %s", tt_rcname(rc));
        n++;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return (void *)(intptr_t)n;
}

static void run_threads(int nthreads, int sync, int merges, uint64_t seed) {
    serr_reset();
    atomic_store(&g_stop, 0);
    char path[TS_PATH_MAX];
    tome_options o;
    tome_options_init(&o);
    o.sync = sync;
    o.segment_size = 64 * 1024;
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    sctx sc;
    memset(&sc, 0, sizeof sc);
    sc.db = db;
    sc.nwho = nthreads;
    recs all = {0};
    CHECK_OK(setup_commit(&sc, &all));
    worker w[8];
    pthread_t th[8], mt;
    long per = ts_short() ? 80 : 1500;
    if (sync == TOME_SYNC_FULL) per /= 2;
    for (int i = 0; i < nthreads; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].sc = &sc;
        w[i].who = i;
        w[i].txns = per;
        w[i].seed = seed + 77 * (uint64_t)i;
        CHECK_EQ(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    if (merges) CHECK_EQ(pthread_create(&mt, NULL, merger_main, &sc), 0);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    atomic_store(&g_stop, 1);
    void *mres = NULL;
    if (merges) pthread_join(mt, &mres);
    for (int i = 0; i < nthreads; i++) {
        for (size_t j = 0; j < w[i].out.n; j++) recs_push(&all, &w[i].out.v[j]);
        free(w[i].out.v);
    }
    CHECK_EQ(atomic_load(&g_errors), 0);
    model m;
    memset(&m, 0, sizeof m);
    check_result res;
    check_all(&all, ts_seq(db), merges, &m, &res);
    if (!atomic_load(&g_errors)) {
        db = ts_reopen(db, path, &o);
        if (!db) serr("reopen failed");
        else check_store_model(db, &m, !merges);
    }
    printf("     %d threads: %ld commits, %ld conflicts, %ld read-only, %ld aborted, %ld merges; %ld "
           "operations checked\n",
           nthreads, atomic_load(&sc.commits), atomic_load(&sc.conflicts), atomic_load(&sc.readonly),
           atomic_load(&sc.aborted), (long)(intptr_t)mres, res.ops);
    if (db) CHECK_OK(tome_close(db));
    model_free(&m);
    recs_free(&all);
    CHECK_EQ(atomic_load(&g_errors), 0);
    CHECK(res.writers > nthreads * per / 2);
}

TT_TEST(serializable_threads) { run_threads(4, TOME_SYNC_NONE, 0, 101); }
TT_TEST(serializable_threads_durable) { run_threads(3, TOME_SYNC_FULL, 0, 202); }
TT_TEST(serializable_threads_with_merges) { run_threads(4, TOME_SYNC_NONE, 1, 303); }

/* The checker itself: a history that is not serializable must be caught.
 * Two recorded transactions both read key 0 as absent and wrote it (a lost
 * update, which the engine refuses with TOME_CONFLICT): the check must
 * report the second. */
TT_TEST(checker_catches_a_lost_update) {
    serr_reset();
    recs all = {0};
    for (int i = 0; i < 2; i++) {
        trec r;
        memset(&r, 0, sizeof r);
        r.seq = (uint64_t)i + 1;
        r.ts = 1000;
        obs *o = trec_op(&r);
        o->kind = OP_GET;
        o->k = 0;
        o->vid = 0;
        o = trec_op(&r);
        o->kind = OP_PUT;
        o->k = 0;
        o->vid = 5 + (uint32_t)i;
        recs_push(&all, &r);
    }
    model m;
    memset(&m, 0, sizeof m);
    check_result res;
    fprintf(stderr, "  (a mismatch is expected below)\n");
    check_all(&all, 2, 0, &m, &res);
    int caught = atomic_load(&g_errors);
    serr_reset();
    model_free(&m);
    recs_free(&all);
    CHECK_EQ(caught, 1);
}

/* ------------------------------------------------------------------------ */
/* The ring                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct rworker {
    tome_db *db;
    uint32_t n;
    long steps;
    uint64_t rng;
    long conflicts;
    long checks;
    int reader;
} rworker;

static void *ring_worker(void *arg) {
    rworker *w = arg;
    char why[200];
    if (w->reader) {
        while (!atomic_load(&g_stop) && !atomic_load(&g_errors)) {
            int rc = ring_check_db(w->db, w->n, why, sizeof why);
            if (rc) serr("a snapshot during the run: %s", why);
            w->checks++;
        }
        return NULL;
    }
    for (long i = 0; i < w->steps && !atomic_load(&g_errors); i++) {
        int rc = ring_step(w->db, w->n, &w->rng, 0, &w->conflicts, why, sizeof why);
        if (rc) serr("ring step: %s", why);
        if (i % 50 == 49 && (ring_rand(&w->rng) % 4) == 0) {
            rc = tome_merge(w->db);
            if (rc) serr("tome_merge: %s", tt_rcname(rc));
        }
    }
    return NULL;
}

/* Options of every open of the SIGKILL test's store. */
static void ring_opts(tome_options *o, int sync) {
    tome_options_init(o);
    o->sync = sync;
    o->segment_size = 16 * 1024;
}

static void ring_check_path(const char *path, uint32_t n, const char *when) {
    tome_options o;
    ring_opts(&o, TOME_SYNC_FULL);
    tome_db *db = ts_open(path, &o);
    if (!db) {
        serr("%s: reopen failed", when);
        return;
    }
    char why[200];
    int rc = ring_check_db(db, n, why, sizeof why);
    if (rc) serr("%s: %s", when, why);
    rc = tome_close(db);
    if (rc) serr("%s: tome_close: %s", when, tt_rcname(rc));
    char *report = NULL;
    rc = tome_check(path, &report);
    if (rc) serr("%s: tome_check: %s\n%s", when, tt_rcname(rc), report ? report : "");
    tome_free(report);
}

TT_TEST(ring_threads) {
    serr_reset();
    atomic_store(&g_stop, 0);
    char path[TS_PATH_MAX];
    tome_options o;
    tome_options_init(&o);
    o.sync = TOME_SYNC_NONE;
    o.segment_size = 64 * 1024;
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    uint32_t n = ts_short() ? 16 : 48;
    CHECK_OK(ring_init(db, n));
    enum { NW = 4 };
    rworker w[NW + 1];
    pthread_t th[NW + 1];
    for (int i = 0; i <= NW; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].db = db;
        w[i].n = n;
        w[i].steps = ts_short() ? 150 : 1500;
        w[i].rng = 4242 + (uint64_t)i;
        w[i].reader = i == NW;
    }
    for (int i = 0; i <= NW; i++) CHECK_EQ(pthread_create(&th[i], NULL, ring_worker, &w[i]), 0);
    for (int i = 0; i < NW; i++) pthread_join(th[i], NULL);
    atomic_store(&g_stop, 1);
    pthread_join(th[NW], NULL);
    CHECK_EQ(atomic_load(&g_errors), 0);
    char why[200];
    int rc = ring_check_db(db, n, why, sizeof why);
    if (rc) fprintf(stderr, "  after the run: %s\n", why);
    CHECK_OK(rc);
    /* every relink is one commit */
    CHECK_U64(ts_seq(db), 1 + (uint64_t)NW * (uint64_t)w[0].steps);
    CHECK_OK(tome_close(db));
    ring_check_path(path, n, "after close and reopen");
    long conflicts = 0;
    for (int i = 0; i < NW; i++) conflicts += w[i].conflicts;
    printf("     %d nodes, %ld relinks, %ld conflicts, %ld snapshot checks\n", (int)n, NW * w[0].steps,
           conflicts, w[NW].checks);
    CHECK_EQ(atomic_load(&g_errors), 0);
}

/* The same relinks by transactions interleaved in one thread: two, three
 * or four open at once, committed in a random order, so that conflicts are
 * certain and the same for every run. */
TT_TEST(ring_interleaved_conflicts) {
    serr_reset();
    tome_db *db = ts_new(TS_MEM, NULL, NULL);
    CHECK(db != NULL);
    uint32_t n = 12;
    CHECK_OK(ring_init(db, n));
    uint64_t rng = 99;
    long ok = 0, conflicts = 0;
    char why[200];
    for (int round = 0; round < (ts_short() ? 100 : 600); round++) {
        int k = 2 + (int)(ring_rand(&rng) % 3);
        tome_txn *t[4];
        for (int i = 0; i < k; i++) {
            CHECK_OK(tome_begin(db, &t[i]));
            int rc = ring_stage(t[i], n, &rng, why, sizeof why);
            if (rc) fprintf(stderr, "  %s\n", why);
            CHECK_OK(rc);
        }
        for (int i = k - 1; i >= 0; i--) {
            int rc = tome_commit(t[i]);
            if (rc == TOME_OK) ok++;
            else if (rc == TOME_CONFLICT) conflicts++;
            else CHECK_OK(rc);
        }
        int rc = ring_check_db(db, n, why, sizeof why);
        if (rc) fprintf(stderr, "  round %d: %s\n", round, why);
        CHECK_OK(rc);
    }
    printf("     %ld relinks committed, %ld refused\n", ok, conflicts);
    CHECK(conflicts > 0);
    CHECK(ok > 0);
    CHECK_OK(tome_close(db));
}

/* A child relinks with three threads (merging now and then) and reports
 * every acknowledged relink on a pipe; it is killed with SIGKILL at a
 * random moment after its first reports. Then the store must open, hold
 * at least the acknowledged relinks and the ring must be one cycle. */
typedef struct ring_child_arg {
    tome_db *db;
    uint32_t n;
    int fd;
    uint64_t seed;
} ring_child_arg;

static void *ring_child_thread(void *arg) {
    ring_child_arg *a = arg;
    uint64_t rng = a->seed;
    long conflicts = 0;
    char why[200];
    for (;;) {
        if (ring_step(a->db, a->n, &rng, 0, &conflicts, why, sizeof why)) _exit(30);
        char c = 'x';
        if (write(a->fd, &c, 1) != 1) _exit(31);
        if (ring_rand(&rng) % 40 == 0 && tome_merge(a->db)) _exit(32);
    }
    return NULL;
}

static void ring_child(const char *path, uint32_t n, int fd, int sync, uint64_t seed) {
    tome_options o;
    ring_opts(&o, sync);
    tome_db *db;
    if (tome_open(path, &o, &db)) _exit(20);
    enum { NT = 3 };
    pthread_t th[NT];
    ring_child_arg a[NT];
    for (int i = 0; i < NT; i++) {
        a[i] = (ring_child_arg){db, n, fd, seed + (uint64_t)i};
        if (pthread_create(&th[i], NULL, ring_child_thread, &a[i])) _exit(21);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    _exit(22);
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

TT_TEST(ring_survives_sigkill) {
    serr_reset();
    char path[TF_PATH_MAX];
    snprintf(path, sizeof path, "%s/ring", tt_tmpdir());
    uint32_t n = 40;
    tome_options o;
    ring_opts(&o, TOME_SYNC_FULL);
    tome_db *db = ts_open(path, &o);
    CHECK(db != NULL);
    CHECK_OK(ring_init(db, n));
    CHECK_OK(tome_close(db));
    uint64_t rng = 777, seq_before = 1;
    int rounds = ts_short() ? 3 : 20;
    long total_acks = 0;
    for (int r = 0; r < rounds && !atomic_load(&g_errors); r++) {
        int p[2];
        CHECK_EQ(pipe(p), 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            ring_child(path, n, p[1], r % 2 ? TOME_SYNC_FULL : TOME_SYNC_NONE, 1000 + (uint64_t)r);
        }
        close(p[1]);
        long acks = 0;
        long want = 1 + (long)(ring_rand(&rng) % 150);
        uint64_t start = mono_ms();
        char buf[256];
        /* wait for `want` acknowledged relinks (at most 30 s), then kill */
        while (acks < want && mono_ms() - start < 30000) {
            struct pollfd pf = {p[0], POLLIN, 0};
            if (poll(&pf, 1, 100) <= 0) continue;
            ssize_t got = read(p[0], buf, sizeof buf);
            if (got <= 0) break;
            acks += got;
        }
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        ssize_t got;
        while ((got = read(p[0], buf, sizeof buf)) > 0) acks += got;
        close(p[0]);
        if (!WIFSIGNALED(st)) serr("round %d: the child ended by itself (status 0x%x)", r, st);
        total_acks += acks;
        char when[64];
        snprintf(when, sizeof when, "round %d, after SIGKILL", r);
        ring_check_path(path, n, when);
        db = ts_open(path, &o);
        if (!db) break;
        uint64_t seq = ts_seq(db);
        CHECK_OK(tome_close(db));
        if (seq < seq_before + (uint64_t)acks)
            serr("round %d: %ld relinks acknowledged, but the seq went from %llu to %llu only", r, acks,
                 (unsigned long long)seq_before, (unsigned long long)seq);
        seq_before = seq;
        /* once more from a full scan of the log */
        char idx[TF_PATH_MAX];
        tf_path(idx, sizeof idx, path, "INDEX");
        CHECK_EQ(tf_remove(idx), 0);
        snprintf(when, sizeof when, "round %d, without INDEX", r);
        ring_check_path(path, n, when);
    }
    printf("     %d kills, %ld acknowledged relinks, %llu commits in the store\n", rounds, total_acks,
           (unsigned long long)seq_before);
    CHECK_EQ(atomic_load(&g_errors), 0);
    CHECK(total_acks >= rounds);
}

TT_MAIN()
