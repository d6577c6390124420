/*
 * faultwl.c -- the workload shared by the fault-injection, out-of-memory and
 * power-loss tests, with its model of what the store must hold (declared in
 * faultvfs.h, section 3).
 *
 * The workload is a fixed list of steps (open, commits, reads, sync, merge,
 * namespaced calls, close, reopen, deleting the index file). Commits are
 * described by tables, their values derived from fixed seeds, so the model
 * can replay any subset of them: slots 1 and 2 hold core keys, slot 255
 * the namespaced values; slots 253 and 254 (the namespaced store's stamps)
 * are checked for consistency with slot 255 rather than modelled. Each
 * commit ends with a status: present (it returned TOME_OK), absent (it
 * failed before reaching storage), or maybe (its sync failed, or the test
 * says so); after a reopen the "maybe" commits are resolved by reading the
 * store, which must match the model with a prefix of them whole.
 */
#include "faultvfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ======================================================================== */
/* 3. The workload and its model                                             */
/* ======================================================================== */

#define WL_SEG      4096u  /* segment_size: small, so the log rolls over often */
#define WL_MAXOPS   6
#define WL_MAXSTEPS 48
#define WL_MAXC     24
#define WL_MAXKEYS  32
#define WL_KEYMAX   48

enum { K_CORE, K_KVW, K_KVA, K_KVR };

typedef struct wop {
    uint8_t slot;
    bool removed;
    uint32_t vlen;
    const char *p, *s, *k;      /* namespaced commits: the names */
    int uid;                    /* index of the key in the universe */
    uint8_t *val;
} wop;

typedef struct wcommit {
    int kind;                   /* K_* */
    unsigned flags;             /* tome_commit_ex flags (core commits) */
    int step;
    int nops;
    wop ops[WL_MAXOPS];
} wcommit;

typedef struct wstep {
    int kind;
    char name[48];
    int commit;                 /* COMMIT and KV steps; else -1 */
    int rc;
    bool ran;
    int acked;                  /* commits acknowledged durable when it begins */
} wstep;

typedef struct ukey {
    uint8_t slot;
    char key[WL_KEYMAX];        /* stored key bytes (namespaced: "p/s/k") */
    size_t klen;
    const char *p, *s, *k;      /* namespaced keys: the names */
} ukey;

struct fv_wl {
    char path[700];
    fv_hooks h;
    wstep steps[WL_MAXSTEPS];
    int nsteps;
    wcommit commits[WL_MAXC];
    int ncommits;
    ukey keys[WL_MAXKEYS];
    int nkeys;
    int status[WL_MAXC];
    bool ackd[WL_MAXC];         /* acknowledged durable (so far) */
    bool vis[WL_MAXC];          /* visible through the current handle */
    tome_db *db;
    int acked;                  /* commits acknowledged so far (a prefix) */
    bool unresolved;            /* reopened with commits in doubt, not resolved */
    int bad;                    /* wrong results seen by read checks */
};

/* The state of the modelled slots after some set of commits. */
typedef struct mstate {
    bool present[WL_MAXKEYS];
    const uint8_t *val[WL_MAXKEYS];
    uint32_t vlen[WL_MAXKEYS];
    uint64_t seqs;              /* commits that wrote something (I1) */
} mstate;

static int uid_of(fv_wl *w, uint8_t slot, const char *key, size_t klen) {
    for (int i = 0; i < w->nkeys; i++)
        if (w->keys[i].slot == slot && w->keys[i].klen == klen && !memcmp(w->keys[i].key, key, klen))
            return i;
    if (w->nkeys == WL_MAXKEYS || klen > WL_KEYMAX) abort();
    ukey *u = &w->keys[w->nkeys];
    u->slot = slot;
    memcpy(u->key, key, klen);
    u->klen = klen;
    return w->nkeys++;
}

static int add_step(fv_wl *w, int kind, const char *name) {
    if (w->nsteps == WL_MAXSTEPS) abort();
    wstep *s = &w->steps[w->nsteps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->commit = -1;
    return w->nsteps++;
}

static wcommit *add_commit(fv_wl *w, int kind, unsigned flags, const char *name) {
    if (w->ncommits == WL_MAXC) abort();
    int st = add_step(w, kind == K_CORE ? FV_S_COMMIT : FV_S_KV, name);
    wcommit *c = &w->commits[w->ncommits];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->flags = flags;
    c->step = st;
    w->steps[st].commit = w->ncommits++;
    return c;
}

static void fill_val(wop *o, int commit, int op) {
    o->val = fv_xmalloc(o->vlen);
    uint64_t st = (uint64_t)commit * 131 + (uint64_t)op * 7 + 1;
    for (uint32_t i = 0; i < o->vlen; i += 8) {
        uint64_t r = fv_rand(&st);
        uint32_t n = o->vlen - i < 8 ? o->vlen - i : 8;
        memcpy(o->val + i, &r, n);
    }
}

static void core_op(fv_wl *w, wcommit *c, uint8_t slot, const char *key, uint32_t vlen, bool removed) {
    wop *o = &c->ops[c->nops];
    memset(o, 0, sizeof *o);
    o->slot = slot;
    o->removed = removed;
    o->vlen = removed ? 0 : vlen;
    o->k = key;
    o->uid = uid_of(w, slot, key, strlen(key));
    if (!removed) fill_val(o, (int)(c - w->commits), c->nops);
    c->nops++;
}

static void kv_op(fv_wl *w, wcommit *c, const char *p, const char *s, const char *k, uint32_t vlen,
                  bool removed) {
    wop *o = &c->ops[c->nops];
    memset(o, 0, sizeof *o);
    o->slot = TOME_KV_SLOT;
    o->removed = removed;
    o->vlen = removed ? 0 : vlen;
    o->p = p;
    o->s = s;
    o->k = k;
    char mk[WL_KEYMAX];
    int n = snprintf(mk, sizeof mk, "%s/%s/%s", p, s, k);
    o->uid = uid_of(w, TOME_KV_SLOT, mk, (size_t)n);
    w->keys[o->uid].p = p;
    w->keys[o->uid].s = s;
    w->keys[o->uid].k = k;
    if (!removed) fill_val(o, (int)(c - w->commits), c->nops);
    c->nops++;
}

fv_wl *fv_wl_new(const char *path, const fv_hooks *hooks) {
    fv_wl *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    snprintf(w->path, sizeof w->path, "%s", path);
    if (hooks) w->h = *hooks;
    wcommit *c;

    add_step(w, FV_S_OPEN, "open");
    c = add_commit(w, K_CORE, 0, "commit a");
    core_op(w, c, 1, "a", 10, false);
    c = add_commit(w, K_CORE, 0, "commit b..f");
    static const char *bf[] = {"b", "c", "d", "e", "f"};
    for (int i = 0; i < 5; i++) core_op(w, c, 1, bf[i], 200, false);
    add_step(w, FV_S_READS, "reads 1");
    c = add_commit(w, K_CORE, 0, "commit big (a segment of its own)");
    core_op(w, c, 2, "big", 70000, false);
    c = add_commit(w, K_CORE, 0, "remove b, overwrite a");
    core_op(w, c, 1, "b", 0, true);
    core_op(w, c, 1, "a", 20, false);
    c = add_commit(w, K_CORE, 0, "commit g (rolls over)");
    core_op(w, c, 1, "g", 3900, false);
    c = add_commit(w, K_CORE, TOME_COMMIT_NOSYNC, "nosync h");
    core_op(w, c, 1, "h", 50, false);
    c = add_commit(w, K_CORE, TOME_COMMIT_NOSYNC, "nosync c, remove d");
    core_op(w, c, 1, "c", 60, false);
    core_op(w, c, 1, "d", 0, true);
    add_step(w, FV_S_SYNC, "sync");
    add_step(w, FV_S_READS, "reads 2");
    add_step(w, FV_S_MERGE, "merge 1");
    c = add_commit(w, K_CORE, 0, "overwrite c and big");
    core_op(w, c, 1, "c", 70, false);
    core_op(w, c, 2, "big", 100, false);
    c = add_commit(w, K_KVW, 0, "kv_write mon//k1");
    kv_op(w, c, "mon", "", "k1", 300, false);
    c = add_commit(w, K_KVA, 0, "kv_apply k2, s/k3, remove k1");
    kv_op(w, c, "mon", "", "k2", 40, false);
    kv_op(w, c, "mon", "s", "k3", 50, false);
    kv_op(w, c, "mon", "", "k1", 0, true);
    c = add_commit(w, K_KVR, 0, "kv_remove mon/s/k3");
    kv_op(w, c, "mon", "s", "k3", 0, true);
    add_step(w, FV_S_READS, "reads 3");
    add_step(w, FV_S_CLOSE, "close 1");
    add_step(w, FV_S_OPEN, "reopen");
    add_step(w, FV_S_READS, "reads 4");
    c = add_commit(w, K_CORE, 0, "overwrite e");
    core_op(w, c, 1, "e", 80, false);
    c = add_commit(w, K_KVW, 0, "kv_write //mgr");
    kv_op(w, c, "", "", "mgr", 50, false);
    add_step(w, FV_S_MERGE, "merge 2");
    c = add_commit(w, K_CORE, 0, "remove a, overwrite f");
    core_op(w, c, 1, "a", 0, true);
    core_op(w, c, 1, "f", 5, false);
    c = add_commit(w, K_KVA, 0, "kv_apply k1, mgr");
    kv_op(w, c, "mon", "", "k1", 10, false);
    kv_op(w, c, "", "", "mgr", 60, false);
    add_step(w, FV_S_READS, "reads 5");
    add_step(w, FV_S_CLOSE, "close 2");
    add_step(w, FV_S_DROP_INDEX, "delete INDEX");
    add_step(w, FV_S_OPEN, "reopen, full scan");
    add_step(w, FV_S_READS, "reads 6");
    c = add_commit(w, K_CORE, 0, "commit after the scan");
    core_op(w, c, 1, "i", 30, false);
    add_step(w, FV_S_CLOSE, "close 3");
    return w;
}

void fv_wl_free(fv_wl *w) {
    if (!w) return;
    if (w->db) tome_close(w->db);
    for (int i = 0; i < w->ncommits; i++)
        for (int j = 0; j < w->commits[i].nops; j++) free(w->commits[i].ops[j].val);
    free(w);
}

int fv_wl_nsteps(const fv_wl *w) { return w->nsteps; }
int fv_wl_step_kind(const fv_wl *w, int step) { return w->steps[step].kind; }
const char *fv_wl_step_name(const fv_wl *w, int step) { return w->steps[step].name; }
int fv_wl_step_rc(const fv_wl *w, int step) { return w->steps[step].rc; }
bool fv_wl_step_ran(const fv_wl *w, int step) { return w->steps[step].ran; }
int fv_wl_step_commit(const fv_wl *w, int step) { return w->steps[step].commit; }
int fv_wl_ncommits(const fv_wl *w) { return w->ncommits; }
int fv_wl_status(const fv_wl *w, int commit) { return w->status[commit]; }
int fv_wl_acked_before(const fv_wl *w, int step) { return w->steps[step].acked; }
bool fv_wl_acked(const fv_wl *w, int commit) { return w->ackd[commit]; }
tome_db *fv_wl_db(fv_wl *w) { return w->db; }

/* ---- the model ---- */

static void model_apply(const fv_wl *w, const bool *incl, mstate *m) {
    memset(m, 0, sizeof *m);
    for (int i = 0; i < w->ncommits; i++) {
        if (!incl[i]) continue;
        const wcommit *c = &w->commits[i];
        bool wrote = false;
        for (int j = 0; j < c->nops; j++) {
            const wop *o = &c->ops[j];
            if (o->removed) {
                /* a namespaced remove of an absent key writes nothing */
                if (c->kind == K_CORE || m->present[o->uid]) wrote = true;
                m->present[o->uid] = false;
            } else {
                m->present[o->uid] = true;
                m->val[o->uid] = o->val;
                m->vlen[o->uid] = o->vlen;
                wrote = true;
            }
        }
        if (wrote) m->seqs++;
    }
}

/* What the handle must show: the commits that returned TOME_OK on it, or
 * that the store held when it was opened. */
static void model_visible(const fv_wl *w, mstate *m) { model_apply(w, w->vis, m); }

/* ---- steps ---- */

typedef struct sstate sstate;
static int resolve_maybes(fv_wl *w, tome_db *db);

static tome_options wl_options(void) {
    tome_options o;
    tome_options_init(&o);
    o.segment_size = WL_SEG;
    return o;
}

static int run_open(fv_wl *w) {
    tome_options o = wl_options();
    tome_db *db = NULL;
    int rc = tome_open(w->path, &o, &db);
    if (rc && getenv("TOME_FAULT_VERBOSE")) /* debugging aid */
        fprintf(stderr, "  open: %s: %s\n", tome_strerror(rc), tome_errmsg(NULL));
    if (rc) {
        if (db) {
            fprintf(stderr, "  open: failed with %s but set *db_out\n", tome_strerror(rc));
            w->bad++;
        }
        /* a failed open must leave nothing locked: try again at once */
        db = NULL;
        int rc2 = tome_open(w->path, &o, &db);
        if (rc2 == TOME_LOCKED) {
            fprintf(stderr, "  open: after a failed open (%s) the store is locked: %s\n",
                    tome_strerror(rc), tome_errmsg(NULL));
            w->bad++;
        }
        if (rc2) db = NULL;
    }
    w->db = db;
    if (db) {
        resolve_maybes(w, db);
        for (int c = 0; c < w->ncommits; c++) w->vis[c] = w->status[c] == FV_C_PRESENT;
    }
    return rc;
}

static int run_core(fv_wl *w, const wcommit *c) {
    tome_txn *t = NULL;
    int rc = tome_begin(w->db, &t);
    if (rc) return rc;
    const void *v;
    size_t vl;
    rc = tome_get(t, 1, "a", 1, &v, &vl); /* joins the read set */
    if (rc != TOME_OK && rc != TOME_NOTFOUND) {
        tome_abort(t);
        return rc;
    }
    for (int i = 0; i < c->nops; i++) {
        const wop *o = &c->ops[i];
        rc = o->removed ? tome_remove(t, o->slot, o->k, strlen(o->k))
                        : tome_insert(t, o->slot, o->k, strlen(o->k), o->val, o->vlen);
        if (rc) {
            tome_abort(t);
            return rc;
        }
    }
    return tome_commit_ex(t, c->flags);
}

static int run_kv(fv_wl *w, const wcommit *c) {
    const wop *o = &c->ops[0];
    switch (c->kind) {
    case K_KVW: return tome_kv_write(w->db, o->p, o->s, o->k, o->val, o->vlen);
    case K_KVR: return tome_kv_remove(w->db, o->p, o->s, o->k, false);
    default: {
        tome_kv_op ops[WL_MAXOPS];
        for (int i = 0; i < c->nops; i++) {
            const wop *q = &c->ops[i];
            ops[i] = (tome_kv_op){q->removed ? TOME_KV_REMOVE : TOME_KV_WRITE, q->p, q->s, q->k,
                                  q->val, q->vlen};
        }
        return tome_kv_apply(w->db, ops, (size_t)c->nops);
    }
    }
}

static bool read_allowed(const fv_wl *w, int rc) {
    for (int i = 0; i < 4; i++)
        if (w->h.read_errors[i] && rc == w->h.read_errors[i]) return true;
    return false;
}

#define RD_BAD(...)                                                              \
    do {                                                                         \
        fprintf(stderr, "  %s: ", w->steps[step].name);                          \
        fprintf(stderr, __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                     \
        w->bad++;                                                                \
    } while (0)

/* rc of a read: OK, NOTFOUND, an allowed error (noted in *err), or bad. */
static bool rd_code(fv_wl *w, int step, const char *what, int rc, int *err) {
    if (rc == TOME_OK || rc == TOME_NOTFOUND) return true;
    if (read_allowed(w, rc)) {
        if (!*err) *err = rc;
        return false;
    }
    RD_BAD("%s: unexpected %s (%s)", what, tome_strerror(rc), tome_errmsg(w->db));
    if (!*err) *err = rc;
    return false;
}

static int ukey_cmp(const void *a, const void *b) {
    const ukey *x = *(const ukey *const *)a, *y = *(const ukey *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void reads_txn(fv_wl *w, int step, const mstate *m, int *err) {
    tome_txn *t = NULL;
    int rc = tome_begin(w->db, &t);
    if (rc) {
        if (!read_allowed(w, rc)) RD_BAD("tome_begin: %s", tome_strerror(rc));
        if (!*err) *err = rc;
        return;
    }
    const void *v;
    size_t vl;
    /* every modelled core key */
    for (int u = 0; u < w->nkeys; u++) {
        const ukey *k = &w->keys[u];
        if (k->slot == TOME_KV_SLOT) continue;
        rc = tome_get(t, k->slot, k->key, k->klen, &v, &vl);
        if (!rd_code(w, step, "tome_get", rc, err)) continue;
        if (rc == TOME_OK && (!m->present[u] || vl != m->vlen[u] || memcmp(v, m->val[u], vl)))
            RD_BAD("tome_get %u:%.*s: wrong value (%zu bytes, model %s %u bytes)", k->slot,
                   (int)k->klen, k->key, vl, m->present[u] ? "present" : "absent", m->vlen[u]);
        if (rc == TOME_NOTFOUND && m->present[u])
            RD_BAD("tome_get %u:%.*s: not found, model has it", k->slot, (int)k->klen, k->key);
    }
    /* iteration of slot 1 */
    const ukey *want[WL_MAXKEYS];
    size_t nwant = 0;
    for (int u = 0; u < w->nkeys; u++)
        if (w->keys[u].slot == 1 && m->present[u]) want[nwant++] = &w->keys[u];
    qsort(want, nwant, sizeof *want, ukey_cmp);
    tome_iter *it = NULL;
    rc = tome_iter_open(t, 1, NULL, 0, &it);
    if (rd_code(w, step, "tome_iter_open", rc, err)) {
        size_t i = 0;
        const void *key;
        size_t kl;
        for (;;) {
            rc = tome_iter_next(it, &key, &kl);
            if (rc == TOME_NOTFOUND) {
                if (i != nwant) RD_BAD("iteration of slot 1: %zu keys, model %zu", i, nwant);
                break;
            }
            if (!rd_code(w, step, "tome_iter_next", rc, err)) break;
            if (i >= nwant || kl != want[i]->klen || memcmp(key, want[i]->key, kl)) {
                RD_BAD("iteration of slot 1: key %zu is %.*s, model %.*s", i, (int)kl,
                       (const char *)key, i < nwant ? (int)want[i]->klen : 4,
                       i < nwant ? want[i]->key : "(end)");
                break;
            }
            i++;
        }
        tome_iter_close(it);
    }
    /* versions of 1:"a" */
    int ua = uid_of(w, 1, "a", 1);
    const tome_version *vs = NULL;
    size_t nv = 0;
    rc = tome_versions(t, 1, "a", 1, &vs, &nv);
    if (rd_code(w, step, "tome_versions", rc, err)) {
        if (rc == TOME_NOTFOUND) RD_BAD("tome_versions gave TOME_NOTFOUND");
        else if (nv == 0 && m->present[ua]) RD_BAD("tome_versions of a: none, model has a");
        else if (nv > 0 && vs[nv - 1].removed == m->present[ua])
            RD_BAD("tome_versions of a: newest removed=%d, model present=%d", vs[nv - 1].removed,
                   m->present[ua]);
        else if (nv > 0 && !vs[nv - 1].removed) {
            rc = tome_get_version(t, 1, "a", 1, vs[nv - 1].seq, &v, &vl);
            if (rd_code(w, step, "tome_get_version", rc, err) &&
                (rc != TOME_OK || vl != m->vlen[ua] || memcmp(v, m->val[ua], vl)))
                RD_BAD("tome_get_version of a's newest version: wrong (%s)", tome_strerror(rc));
        }
    }
    rc = tome_get_unremoved(t, 1, "b", 1, &v, &vl);
    rd_code(w, step, "tome_get_unremoved", rc, err);
    uint64_t ts;
    rc = tome_last_updated(t, &ts);
    rd_code(w, step, "tome_last_updated", rc, err);
    tome_abort(t);

    /* time travel to the first commit */
    t = NULL;
    rc = tome_begin_at(w->db, 1, &t);
    if (rc == TOME_OK) {
        rc = tome_get(t, 1, "a", 1, &v, &vl);
        rd_code(w, step, "tome_get at seq 1", rc, err);
        tome_abort(t);
    } else if (rc != TOME_INVALID) {
        rd_code(w, step, "tome_begin_at", rc, err);
    }
}

static void reads_kv(fv_wl *w, int step, const mstate *m, int *err) {
    for (int u = 0; u < w->nkeys; u++) {
        const ukey *k = &w->keys[u];
        if (k->slot != TOME_KV_SLOT) continue;
        void *buf = NULL;
        size_t len = 0;
        int rc = tome_kv_read(w->db, k->p, k->s, k->k, &buf, &len);
        if (rd_code(w, step, "tome_kv_read", rc, err)) {
            if (rc == TOME_OK && (!m->present[u] || len != m->vlen[u] || memcmp(buf, m->val[u], len)))
                RD_BAD("tome_kv_read %.*s: wrong value", (int)k->klen, k->key);
            if (rc == TOME_NOTFOUND && m->present[u])
                RD_BAD("tome_kv_read %.*s: not found, model has it", (int)k->klen, k->key);
        }
        tome_free(buf);
    }
    /* the keys under ("mon", "") */
    const char *want[WL_MAXKEYS];
    size_t nwant = 0;
    for (int u = 0; u < w->nkeys; u++) {
        const ukey *k = &w->keys[u];
        if (k->slot == TOME_KV_SLOT && m->present[u] && !strcmp(k->p, "mon") && !strcmp(k->s, ""))
            want[nwant++] = k->k;
    }
    qsort(want, nwant, sizeof *want, str_cmp);
    char **keys = NULL;
    size_t n = 0;
    int rc = tome_kv_list(w->db, "mon", "", &keys, &n);
    if (rd_code(w, step, "tome_kv_list", rc, err)) {
        if (rc == TOME_NOTFOUND) RD_BAD("tome_kv_list gave TOME_NOTFOUND");
        bool same = n == nwant;
        for (size_t i = 0; same && i < n; i++) same = !strcmp(keys[i], want[i]);
        if (!same) RD_BAD("tome_kv_list mon: %zu keys, model %zu (or different names)", n, nwant);
    }
    tome_free(keys);
    /* the same through pages of one key */
    char *got[WL_MAXKEYS];
    size_t ngot = 0;
    char *tok = NULL;
    bool pages_ok = true;
    for (int guard = 0; guard < WL_MAXKEYS + 2; guard++) {
        char *next = NULL;
        keys = NULL;
        n = 0;
        rc = tome_kv_list_page(w->db, "mon", "", tok, 1, &keys, &n, &next);
        tome_free(tok);
        tok = NULL;
        if (!rd_code(w, step, "tome_kv_list_page", rc, err) || rc != TOME_OK) {
            if (rc == TOME_NOTFOUND) RD_BAD("tome_kv_list_page gave TOME_NOTFOUND");
            pages_ok = false;
            tome_free(keys);
            tome_free(next);
            break;
        }
        for (size_t i = 0; i < n && ngot < WL_MAXKEYS; i++) got[ngot++] = fv_xstrdup(keys[i]);
        tome_free(keys);
        tok = next;
        if (!tok) break;
    }
    tome_free(tok);
    if (pages_ok) {
        qsort(got, ngot, sizeof *got, str_cmp);
        bool same = ngot == nwant;
        for (size_t i = 0; same && i < ngot; i++) same = !strcmp(got[i], want[i]);
        if (!same) RD_BAD("tome_kv_list_page mon: %zu keys, model %zu", ngot, nwant);
    }
    for (size_t i = 0; i < ngot; i++) free(got[i]);
    tome_stats st;
    rc = tome_stats_get(w->db, &st);
    rd_code(w, step, "tome_stats_get", rc, err);
}

static int run_reads(fv_wl *w, int step) {
    mstate m;
    model_visible(w, &m);
    int err = 0;
    if (w->unresolved) {
        /* which commits in doubt the reopened handle holds is unknown:
         * check only the codes */
        int saved = w->bad;
        reads_txn(w, step, &m, &err);
        reads_kv(w, step, &m, &err);
        w->bad = saved;
        return err;
    }
    reads_txn(w, step, &m, &err);
    reads_kv(w, step, &m, &err);
    return err;
}

/* Everything the handle shows (what returned TOME_OK on it, and what the
 * store held when it was opened) is durable now. */
static void ack_all(fv_wl *w, int attempted) {
    for (int c = 0; c < attempted; c++)
        if (w->vis[c]) w->ackd[c] = true;
    int p = 0;
    while (p < w->ncommits && w->ackd[p]) p++;
    w->acked = p;
}

int fv_wl_run(fv_wl *w) {
    w->bad = 0;
    w->acked = 0;
    memset(w->status, 0, sizeof w->status);
    memset(w->ackd, 0, sizeof w->ackd);
    memset(w->vis, 0, sizeof w->vis);
    for (int i = 0; i < w->nsteps; i++) {
        wstep *s = &w->steps[i];
        s->rc = 0;
        s->ran = false;
        s->acked = w->acked;
        if (w->h.before) w->h.before(w->h.arg, w, i);
        int attempted = 0; /* commits begun so far, for the acknowledgements */
        for (int c = 0; c < w->ncommits; c++)
            if (w->commits[c].step <= i) attempted = c + 1;
        if (s->kind == FV_S_DROP_INDEX) {
            /* as if the process had died before writing it: the next open
             * scans every segment, merged ones included */
            tome_vfs *v = w->h.vfs ? w->h.vfs : tome_vfs_posix();
            char p[800];
            snprintf(p, sizeof p, "%s/INDEX", w->path);
            s->ran = true;
            int e = v->unlink(v, p);
            s->rc = e == 0 || e == -ENOENT ? TOME_OK : TOME_IO;
            if (!w->db && e == 0 && v->sync_dir) {
                snprintf(p, sizeof p, "%s", w->path);
                v->sync_dir(v, p);
            }
        } else if (s->kind == FV_S_OPEN) {
            if (w->db) abort(); /* the script closes before it opens */
            s->ran = true;
            s->rc = run_open(w);
        } else if (w->db) {
            s->ran = true;
            switch (s->kind) {
            case FV_S_COMMIT:
            case FV_S_KV: {
                const wcommit *c = &w->commits[s->commit];
                s->rc = c->kind == K_CORE ? run_core(w, c) : run_kv(w, c);
                if (s->rc == TOME_OK) {
                    w->status[s->commit] = FV_C_PRESENT;
                    w->vis[s->commit] = true;
                    if (!(c->flags & TOME_COMMIT_NOSYNC)) ack_all(w, attempted);
                } else {
                    w->status[s->commit] =
                        w->h.classify ? w->h.classify(w->h.arg, w, i, s->rc) : FV_C_ABSENT;
                }
                break;
            }
            case FV_S_SYNC:
                s->rc = tome_sync(w->db);
                if (s->rc == TOME_OK) ack_all(w, attempted);
                break;
            case FV_S_MERGE: s->rc = tome_merge(w->db); break;
            case FV_S_READS: s->rc = run_reads(w, i); break;
            case FV_S_CLOSE:
                s->rc = tome_close(w->db);
                w->db = NULL;
                if (s->rc == TOME_OK) ack_all(w, attempted);
                break;
            }
        } else if (s->commit >= 0) {
            w->status[s->commit] = FV_C_NONE;
        }
        if (w->h.unsynced_in_doubt && s->ran && s->rc == TOME_IO &&
            (s->kind == FV_S_SYNC || s->kind == FV_S_COMMIT || s->kind == FV_S_KV))
            for (int c = 0; c < w->ncommits; c++)
                if (w->status[c] == FV_C_PRESENT && !w->ackd[c]) w->status[c] = FV_C_MAYBE;
        if (w->h.after) w->h.after(w->h.arg, w, i, s->rc);
    }
    if (w->db) {
        tome_close(w->db);
        w->db = NULL;
    }
    return w->bad;
}

/* ---- verification ---- */

typedef struct sent {
    uint8_t slot;
    uint8_t *key, *val;
    size_t klen, vlen;
} sent;

struct sstate {
    sent *e;
    size_t n, cap;
    uint64_t last_seq;
};

static void sstate_free(sstate *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].key);
        free(s->e[i].val);
    }
    free(s->e);
    memset(s, 0, sizeof *s);
}

/* Every key of slot with its value (the value of slot 254 keys is empty). */
static int read_slot(tome_txn *t, uint8_t slot, sstate *out, char *why, size_t cap) {
    tome_iter *it = NULL;
    int rc = tome_iter_open(t, slot, NULL, 0, &it);
    if (rc) {
        snprintf(why, cap, "tome_iter_open slot %u: %s", slot, tome_strerror(rc));
        return -1;
    }
    for (;;) {
        const void *k;
        size_t kl;
        rc = tome_iter_next(it, &k, &kl);
        if (rc == TOME_NOTFOUND) break;
        if (rc) {
            snprintf(why, cap, "tome_iter_next slot %u: %s", slot, tome_strerror(rc));
            tome_iter_close(it);
            return -1;
        }
        const void *v;
        size_t vl;
        uint8_t kc[TOME_KV_KEY_MAX + 16];
        size_t kcl = kl < sizeof kc ? kl : sizeof kc;
        memcpy(kc, k, kcl);
        rc = tome_get(t, slot, kc, kcl, &v, &vl);
        if (rc) {
            snprintf(why, cap, "tome_get of an iterated key of slot %u: %s", slot, tome_strerror(rc));
            tome_iter_close(it);
            return -1;
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 32;
            out->e = fv_xrealloc(out->e, out->cap * sizeof *out->e);
        }
        sent *e = &out->e[out->n++];
        e->slot = slot;
        e->klen = kcl;
        e->key = fv_xmalloc(kcl);
        memcpy(e->key, kc, kcl);
        e->vlen = vl;
        e->val = fv_xmalloc(vl);
        if (vl) memcpy(e->val, v, vl);
    }
    tome_iter_close(it);
    return 0;
}

static const sent *sfind(const sstate *s, uint8_t slot, const void *key, size_t klen) {
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].slot == slot && s->e[i].klen == klen && !memcmp(s->e[i].key, key, klen)) return &s->e[i];
    return NULL;
}

/* The namespaced slots agree: every value key has a 12-byte stamp and an
 * order entry, and nothing else is in slots 253 and 254. */
static int kv_consistent(const sstate *s, char *why, size_t cap) {
    size_t n255 = 0, n253 = 0, n254 = 0;
    for (size_t i = 0; i < s->n; i++) {
        const sent *e = &s->e[i];
        if (e->slot == TOME_KV_CREATED_SLOT) n253++;
        if (e->slot == TOME_KV_ORDER_SLOT) n254++;
        if (e->slot != TOME_KV_SLOT) continue;
        n255++;
        const sent *st = sfind(s, TOME_KV_CREATED_SLOT, e->key, e->klen);
        if (!st || st->vlen != 12) {
            snprintf(why, cap, "namespaced key %.*s has no creation stamp", (int)e->klen, (const char *)e->key);
            return -1;
        }
        /* order key: "p/s/" stamp "k" */
        const uint8_t *slash = NULL;
        for (size_t j = e->klen; j > 0; j--)
            if (e->key[j - 1] == '/') {
                slash = e->key + j - 1;
                break;
            }
        if (!slash) {
            snprintf(why, cap, "namespaced key without '/'");
            return -1;
        }
        size_t pre = (size_t)(slash - e->key) + 1, kl = e->klen - pre;
        uint8_t ok[TOME_KV_KEY_MAX + 16];
        memcpy(ok, e->key, pre);
        memcpy(ok + pre, st->val, 12);
        memcpy(ok + pre + 12, e->key + pre, kl);
        if (!sfind(s, TOME_KV_ORDER_SLOT, ok, pre + 12 + kl)) {
            snprintf(why, cap, "namespaced key %.*s has no order entry", (int)e->klen, (const char *)e->key);
            return -1;
        }
    }
    if (n253 != n255 || n254 != n255) {
        snprintf(why, cap, "namespaced slots disagree: %zu values, %zu stamps, %zu order entries", n255,
                 n253, n254);
        return -1;
    }
    return 0;
}

/* Does the store state equal the model in the modelled slots? */
static int state_matches(const fv_wl *w, const sstate *s, const mstate *m, char *why, size_t cap) {
    for (int u = 0; u < w->nkeys; u++) {
        const ukey *k = &w->keys[u];
        const sent *e = sfind(s, k->slot, k->key, k->klen);
        if (!e && m->present[u]) {
            snprintf(why, cap, "%u:%.*s missing", k->slot, (int)k->klen, k->key);
            return 0;
        }
        if (e && !m->present[u]) {
            snprintf(why, cap, "%u:%.*s present, should be absent", k->slot, (int)k->klen, k->key);
            return 0;
        }
        if (e && (e->vlen != m->vlen[u] || memcmp(e->val, m->val[u], e->vlen))) {
            snprintf(why, cap, "%u:%.*s has a wrong value (%zu bytes, want %u)", k->slot, (int)k->klen,
                     k->key, e->vlen, m->vlen[u]);
            return 0;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        const sent *e = &s->e[i];
        if (e->slot == TOME_KV_CREATED_SLOT || e->slot == TOME_KV_ORDER_SLOT) continue;
        bool known = false;
        for (int u = 0; u < w->nkeys && !known; u++)
            known = w->keys[u].slot == e->slot && w->keys[u].klen == e->klen &&
                    !memcmp(w->keys[u].key, e->key, e->klen);
        if (!known) {
            snprintf(why, cap, "unexpected key %u:%.*s", e->slot, (int)e->klen, (const char *)e->key);
            return 0;
        }
    }
    if (s->last_seq != m->seqs) {
        snprintf(why, cap, "newest seq %llu, the commits held are %llu", (unsigned long long)s->last_seq,
                 (unsigned long long)m->seqs);
        return 0;
    }
    return 1;
}

/* Reads the modelled and namespaced slots of db and its newest seq. */
static int store_state(tome_db *db, sstate *s, char *why, size_t cap) {
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc) {
        snprintf(why, cap, "tome_begin: %s", tome_strerror(rc));
        return -1;
    }
    static const uint8_t slots[] = {1, 2, TOME_KV_CREATED_SLOT, TOME_KV_ORDER_SLOT, TOME_KV_SLOT};
    int bad = 0;
    for (size_t i = 0; !bad && i < sizeof slots; i++) bad = read_slot(t, slots[i], s, why, cap) != 0;
    tome_abort(t);
    if (!bad) tome_last_seq(db, &s->last_seq);
    return bad ? -1 : 0;
}

/* Which candidate (PRESENT plus the first t MAYBE commits) is s? */
static int match_state(const fv_wl *w, const sstate *s, const int *statuses, int *held, char *why,
                       size_t cap) {
    int maybe[WL_MAXC], nm = 0;
    for (int i = 0; i < w->ncommits; i++)
        if (statuses[i] == FV_C_MAYBE) maybe[nm++] = i;
    char first[300] = "";
    for (int tt = 0; tt <= nm; tt++) {
        bool incl[WL_MAXC];
        for (int i = 0; i < w->ncommits; i++) incl[i] = statuses[i] == FV_C_PRESENT;
        for (int j = 0; j < tt; j++) incl[maybe[j]] = true;
        mstate m;
        model_apply(w, incl, &m);
        char d[300];
        if (state_matches(w, s, &m, d, sizeof d)) {
            if (held) *held = tt;
            return 0;
        }
        if (tt == 0) snprintf(first, sizeof first, "%s", d);
    }
    snprintf(why, cap, "the store matches no allowed state (%d commits in doubt); against the "
             "acknowledged ones: %s", nm, first);
    return -1;
}

/* After a reopen: the commits in doubt are now either there or not, and
 * stay so. Finds out which (if the reads work) and records it. */
static int resolve_maybes(fv_wl *w, tome_db *db) {
    bool any = false;
    for (int i = 0; i < w->ncommits; i++) any |= w->status[i] == FV_C_MAYBE;
    w->unresolved = false;
    if (!any) return 0;
    sstate s = {0};
    char why[400];
    int held = 0;
    if (store_state(db, &s, why, sizeof why) != 0) {
        w->unresolved = true; /* a read failed (injected): leave them in doubt */
        sstate_free(&s);
        return 0;
    }
    if (match_state(w, &s, w->status, &held, why, sizeof why) != 0) {
        fprintf(stderr, "  reopen with commits in doubt: %s\n", why);
        w->bad++;
        w->unresolved = true;
        sstate_free(&s);
        return -1;
    }
    for (int i = 0; i < w->ncommits; i++)
        if (w->status[i] == FV_C_MAYBE) w->status[i] = held-- > 0 ? FV_C_PRESENT : FV_C_ABSENT;
    sstate_free(&s);
    return 0;
}

int fv_wl_verify(fv_wl *w, const char *path, const int *statuses, int *held, char *why, size_t cap) {
    if (!statuses) statuses = w->status;
    if (held) *held = 0;
    bool any_present = false;
    for (int i = 0; i < w->ncommits; i++) any_present |= statuses[i] == FV_C_PRESENT;
    char *rep = NULL;
    int rc = tome_check(path, &rep);
    if (rc != TOME_OK && !(rc == TOME_NOTFOUND && !any_present)) {
        snprintf(why, cap, "tome_check before reopening: %s\n%s", tome_strerror(rc), rep ? rep : "");
        tome_free(rep);
        return -1;
    }
    tome_free(rep);
    tome_options o = wl_options();
    tome_db *db = NULL;
    rc = tome_open(path, &o, &db);
    if (rc) {
        snprintf(why, cap, "reopen: %s (%s)", tome_strerror(rc), tome_errmsg(NULL));
        return -1;
    }
    sstate s = {0};
    int bad = store_state(db, &s, why, cap) != 0;
    if (!bad) bad = kv_consistent(&s, why, cap) != 0;
    rc = tome_close(db);
    if (!bad && rc) {
        snprintf(why, cap, "close after reopen: %s (%s)", tome_strerror(rc), tome_errmsg(NULL));
        bad = 1;
    }
    if (!bad) {
        rep = NULL;
        rc = tome_check(path, &rep);
        if (rc) {
            snprintf(why, cap, "tome_check after reopen and close: %s\n%s", tome_strerror(rc),
                     rep ? rep : "");
            bad = 1;
        }
        tome_free(rep);
    }
    if (!bad) bad = match_state(w, &s, statuses, held, why, cap) != 0;
    sstate_free(&s);
    return bad ? -1 : 0;
}
