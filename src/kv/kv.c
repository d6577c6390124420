/*
 * kv.c -- the namespaced store: LDK's KVStore contract (read, write, remove,
 * list, list_all), atomic multi-key apply and newest-first paginated
 * listing, built only on the public transaction API (tome_begin, tome_get,
 * tome_insert, tome_remove, tome_iter_*, tome_commit_ex), so it works the
 * same on every backend.
 *
 * Layout (documented for users in tome.h). Names are [A-Za-z0-9_-]{0,120},
 * so '/' can separate them unambiguously:
 *   slot 255  "p/s/k"                  -> the user's value, exactly;
 *   slot 253  "p/s/k"                  -> 12-byte creation stamp;
 *   slot 254  "p/s/" stamp "k"         -> empty (creation order index).
 * The stamp is ~seq (8 bytes big-endian) then ~index (4 bytes big-endian):
 * seq is the sequence number the creating commit is expected to get
 * (tome_last_seq() + 1, read after tome_begin, so a key created after
 * another one's commit always gets a larger seq), index is the operation's
 * place in a tome_kv_apply (so later operations of one apply are newer).
 * Two keys created by concurrent commits may share a stamp: the key bytes
 * break the tie. Stamps live in ordinary keys, so the creation order
 * survives merges (which drop history) and reopening.
 *
 * Each call is one transaction. A write reads the key's stamp (joining the
 * read set) and writes the value blind; only when the key is new does it
 * write the stamp and the order entry. So concurrent overwrites never
 * conflict (last committer wins, as a file rename would), while a creation
 * racing a creation or removal of the same key conflicts and is rerun,
 * which keeps the three slots consistent. TOME_CONFLICT is rerun here,
 * never returned (up to KV_MAX_RETRY attempts).
 *
 * Pagination without a seek: the page after the token position P (stamp +
 * key) is found by prefix iterations only: first the entries sharing P's
 * stamp (skipping those <= P), then for each stamp byte i from the last to
 * the first and each byte value b > P[i], the prefix P[0..i) b. Those
 * prefixes cover exactly the entries after P, in ascending order, without
 * visiting any entry before P; for real sequence numbers most stamp bytes
 * are 0xff and need no iteration at all.
 */
#include <sched.h>
#include <string.h>

#include "../../include/tome.h"
#include "../os/os.h"
#include "../util/util.h"
#include "kv.h"

#define KV_MAX_RETRY 100000u

/* ---------------------------------------------------------------------- */
/* Names                                                                   */
/* ---------------------------------------------------------------------- */

static int kv_char_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

int kv_name_ok(const char *s, size_t len) {
    if (len > TOME_KV_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!kv_char_ok((unsigned char)s[i])) return 0;
    return 1;
}

/* Length of a NUL-terminated valid name, or -1 (looks at no more than
 * TOME_KV_NAME_MAX + 1 characters). */
static long kv_name_len(const char *s) {
    size_t i;
    for (i = 0; s[i]; i++)
        if (i >= TOME_KV_NAME_MAX || !kv_char_ok((unsigned char)s[i])) return -1;
    return (long)i;
}

/* NULL if the names are valid (and *out filled), else what is wrong */
static const char *kv_check_what(const char *p, const char *s, const char *k, int need_key,
                                 kv_name *out) {
    long pl, sl, kl = 0;
    if (!p) return "primary namespace is NULL";
    if (!s) return "secondary namespace is NULL";
    if (need_key && !k) return "key is NULL";
    if ((pl = kv_name_len(p)) < 0) return "primary namespace is not [A-Za-z0-9_-]{0,120}";
    if ((sl = kv_name_len(s)) < 0) return "secondary namespace is not [A-Za-z0-9_-]{0,120}";
    if (pl == 0 && sl > 0) return "secondary namespace without a primary namespace";
    if (need_key && (kl = kv_name_len(k)) < 0) return "key is not [A-Za-z0-9_-]{1,120}";
    if (need_key && kl == 0) return "key is empty";
    out->p = p;
    out->s = s;
    out->k = need_key ? k : "";
    out->pl = (size_t)pl;
    out->sl = (size_t)sl;
    out->kl = (size_t)kl;
    return NULL;
}

int kv_check(tome_db *db, const char *p, const char *s, const char *k, int need_key,
             kv_name *out) {
    const char *what = kv_check_what(p, s, k, need_key, out);
    if (!what) return TOME_OK;
    if (db) tome_err(db, TOME_INVALID, "kv: %s", what);
    return TOME_INVALID;
}

/* "p/s/" into buf; returns its length */
static size_t kv_nsprefix(const kv_name *n, uint8_t *buf) {
    memcpy(buf, n->p, n->pl);
    buf[n->pl] = '/';
    memcpy(buf + n->pl + 1, n->s, n->sl);
    buf[n->pl + 1 + n->sl] = '/';
    return n->pl + n->sl + 2;
}

size_t kv_mapkey(const kv_name *n, uint8_t *buf) {
    size_t l = kv_nsprefix(n, buf);
    memcpy(buf + l, n->k, n->kl);
    return l + n->kl;
}

int kv_split(const uint8_t *key, size_t len, kv_name *out) {
    const uint8_t *a = memchr(key, '/', len);
    if (!a) return 0;
    size_t pl = (size_t)(a - key);
    const uint8_t *b = memchr(a + 1, '/', len - pl - 1);
    if (!b) return 0;
    size_t sl = (size_t)(b - a - 1);
    size_t kl = len - pl - sl - 2;
    const char *p = (const char *)key, *s = (const char *)a + 1, *k = (const char *)b + 1;
    if (!kv_name_ok(p, pl) || !kv_name_ok(s, sl) || !kv_name_ok(k, kl)) return 0;
    if (kl == 0 || (pl == 0 && sl > 0)) return 0;
    out->p = p; out->pl = pl;
    out->s = s; out->sl = sl;
    out->k = k; out->kl = kl;
    return 1;
}

int tome_kv_key_bytes(const char *primary_ns, const char *secondary_ns, const char *key,
                      void *buf, size_t cap, size_t *len_out) {
    kv_name n;
    if (!len_out || (!buf && cap)) return TOME_INVALID;
    *len_out = 0;
    int rc = kv_check(NULL, primary_ns, secondary_ns, key, 1, &n);
    if (rc) return rc;
    size_t need = n.pl + n.sl + n.kl + 2;
    if (cap < need) return TOME_TOOBIG;
    uint8_t tmp[TOME_KV_KEY_MAX];
    kv_mapkey(&n, tmp);
    memcpy(buf, tmp, need);
    *len_out = need;
    return TOME_OK;
}

/* ---------------------------------------------------------------------- */
/* Staging inside one transaction                                          */
/* ---------------------------------------------------------------------- */

static void kv_put_be(uint8_t *p, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static int kv_stamp_get(kv_stamp *st, uint32_t sub, uint8_t out[KV_STAMP_LEN]) {
    if (st->seq == 0) {
        uint64_t last = 0;
        int rc = tome_last_seq(st->db, &last);
        if (rc) return rc;
        st->seq = last + 1;
    }
    kv_put_be(out, ~st->seq, 8);
    kv_put_be(out + 8, (uint32_t)~sub, 4);
    return TOME_OK;
}

/* "p/s/" stamp "k" into buf (TOME_KV_KEY_MAX + KV_STAMP_LEN bytes) */
static size_t kv_orderkey(const kv_name *n, const uint8_t *stamp, uint8_t *buf) {
    size_t l = kv_nsprefix(n, buf);
    memcpy(buf + l, stamp, KV_STAMP_LEN);
    memcpy(buf + l + KV_STAMP_LEN, n->k, n->kl);
    return l + KV_STAMP_LEN + n->kl;
}

int kv_stage_write(tome_txn *t, kv_stamp *st, uint32_t sub, const kv_name *n,
                   const void *buf, size_t len, int *wrote) {
    uint8_t mk[TOME_KV_KEY_MAX], ok[TOME_KV_KEY_MAX + KV_STAMP_LEN];
    size_t mkl = kv_mapkey(n, mk);
    const void *v;
    size_t vl;
    int rc = tome_get(t, TOME_KV_CREATED_SLOT, mk, mkl, &v, &vl);
    if (rc == TOME_NOTFOUND || (rc == TOME_OK && vl != KV_STAMP_LEN)) {
        /* a new key (or a damaged stamp, which gets replaced) */
        uint8_t stamp[KV_STAMP_LEN];
        if ((rc = kv_stamp_get(st, sub, stamp)) != TOME_OK) return rc;
        if ((rc = tome_insert(t, TOME_KV_CREATED_SLOT, mk, mkl, stamp, KV_STAMP_LEN)) != TOME_OK)
            return rc;
        size_t okl = kv_orderkey(n, stamp, ok);
        if ((rc = tome_insert(t, TOME_KV_ORDER_SLOT, ok, okl, NULL, 0)) != TOME_OK) return rc;
        *wrote = 1;
    } else if (rc != TOME_OK) {
        return rc;
    }
    if ((rc = tome_insert(t, TOME_KV_SLOT, mk, mkl, buf, len)) != TOME_OK) return rc;
    *wrote = 1;
    return TOME_OK;
}

/* 1 if slot 255 holds the exact key (present, not removed), 0 if not,
 * or a negative code. Uses an iteration so that no value is read. */
static int kv_value_present(tome_txn *t, const uint8_t *mk, size_t mkl) {
    tome_iter *it;
    int rc = tome_iter_open(t, TOME_KV_SLOT, mk, mkl, &it);
    if (rc) return rc;
    const void *k;
    size_t kl;
    rc = tome_iter_next(it, &k, &kl);
    int present = rc == TOME_OK && kl == mkl;   /* the exact key sorts first */
    tome_iter_close(it);
    if (rc != TOME_OK && rc != TOME_NOTFOUND) return rc;
    return present;
}

int kv_stage_remove(tome_txn *t, const kv_name *n, int *wrote) {
    uint8_t mk[TOME_KV_KEY_MAX], ok[TOME_KV_KEY_MAX + KV_STAMP_LEN];
    size_t mkl = kv_mapkey(n, mk);
    const void *v;
    size_t vl;
    int rc = tome_get(t, TOME_KV_CREATED_SLOT, mk, mkl, &v, &vl);
    if (rc == TOME_OK) {
        if (vl == KV_STAMP_LEN) {
            size_t okl = kv_orderkey(n, v, ok);
            if ((rc = tome_remove(t, TOME_KV_ORDER_SLOT, ok, okl)) != TOME_OK) return rc;
        }
        if ((rc = tome_remove(t, TOME_KV_CREATED_SLOT, mk, mkl)) != TOME_OK) return rc;
        if ((rc = tome_remove(t, TOME_KV_SLOT, mk, mkl)) != TOME_OK) return rc;
        *wrote = 1;
        return TOME_OK;
    }
    if (rc != TOME_NOTFOUND) return rc;
    /* no stamp: a value may still be there (written by an older release or
     * directly); remove it if so, else there is nothing to do */
    rc = kv_value_present(t, mk, mkl);
    if (rc < 0) return rc;
    if (rc == 1) {
        if ((rc = tome_remove(t, TOME_KV_SLOT, mk, mkl)) != TOME_OK) return rc;
        *wrote = 1;
    }
    return TOME_OK;
}

/* ---------------------------------------------------------------------- */
/* Running one call as a transaction, rerun on conflict                    */
/* ---------------------------------------------------------------------- */

typedef int (*kv_body_fn)(tome_txn *t, kv_stamp *st, void *arg, int *wrote);

/* Makes everything committed so far durable. */
static int kv_sync(tome_db *db) {
    int rc = tome_sync(db);
    return rc == TOME_READONLY ? TOME_OK : rc;
}

/* Runs body in a fresh transaction until it commits without conflict.
 * flags go to tome_commit_ex. With sync_if_idle, a run that staged nothing
 * still makes earlier commits durable (a non-lazy remove of a key that a
 * lazy remove already took away must be durable on return). */
static int kv_run(tome_db *db, kv_body_fn body, void *arg, unsigned flags, int sync_if_idle) {
    if (tome_is_read_only(db) == 1) return tome_err(db, TOME_READONLY, "kv: the store is open read-only");
    for (unsigned attempt = 0;; attempt++) {
        tome_txn *t = NULL;
        int rc = tome_begin(db, &t);
        if (rc) return rc;
        kv_stamp st = {db, 0};
        int wrote = 0;
        rc = body(t, &st, arg, &wrote);
        if (rc != TOME_OK) {
            tome_abort(t);
            return rc;
        }
        if (!wrote) {
            tome_abort(t);
            return sync_if_idle ? kv_sync(db) : TOME_OK;
        }
        rc = tome_commit_ex(t, flags);
        if (rc != TOME_CONFLICT || attempt + 1 >= KV_MAX_RETRY) return rc;
        if (attempt >= 2) sched_yield();
    }
}

/* ---------------------------------------------------------------------- */
/* read, write, remove, apply                                              */
/* ---------------------------------------------------------------------- */

int tome_kv_read(tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                 void **buf_out, size_t *len_out) {
    if (buf_out) *buf_out = NULL;
    if (len_out) *len_out = 0;
    if (!db || !buf_out || !len_out) return TOME_INVALID;
    kv_name n;
    int rc = kv_check(db, primary_ns, secondary_ns, key, 1, &n);
    if (rc) return rc;
    uint8_t mk[TOME_KV_KEY_MAX];
    size_t mkl = kv_mapkey(&n, mk);
    tome_txn *t = NULL;
    if ((rc = tome_begin(db, &t)) != TOME_OK) return rc;
    const void *v;
    size_t vl;
    rc = tome_get(t, TOME_KV_SLOT, mk, mkl, &v, &vl);
    if (rc == TOME_OK) {
        void *copy = tome_malloc(vl ? vl : 1);
        if (!copy) {
            rc = TOME_NOMEM;
        } else {
            if (vl) memcpy(copy, v, vl);
            *buf_out = copy;
            *len_out = vl;
        }
    }
    tome_abort(t);
    return rc;
}

struct kv_write_arg {
    const kv_name *n;
    const void *buf;
    size_t len;
};

static int kv_write_body(tome_txn *t, kv_stamp *st, void *arg, int *wrote) {
    struct kv_write_arg *a = arg;
    return kv_stage_write(t, st, 0, a->n, a->buf, a->len, wrote);
}

int tome_kv_write(tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                  const void *buf, size_t len) {
    if (!db) return TOME_INVALID;
    kv_name n;
    int rc = kv_check(db, primary_ns, secondary_ns, key, 1, &n);
    if (rc) return rc;
    if (!buf && len) return tome_err(db, TOME_INVALID, "kv: NULL buffer with length %zu", len);
    if (len > TOME_MAX_VALUE_LEN)
        return tome_err(db, TOME_TOOBIG, "kv: value of %zu bytes (limit %u)", len,
                        TOME_MAX_VALUE_LEN);
    struct kv_write_arg a = {&n, buf, len};
    return kv_run(db, kv_write_body, &a, 0, 0);
}

static int kv_remove_body(tome_txn *t, kv_stamp *st, void *arg, int *wrote) {
    (void)st;
    return kv_stage_remove(t, arg, wrote);
}

int tome_kv_remove(tome_db *db, const char *primary_ns, const char *secondary_ns, const char *key,
                   bool lazy) {
    if (!db) return TOME_INVALID;
    kv_name n;
    int rc = kv_check(db, primary_ns, secondary_ns, key, 1, &n);
    if (rc) return rc;
    return kv_run(db, kv_remove_body, &n, lazy ? TOME_COMMIT_NOSYNC : 0, !lazy);
}

struct kv_apply_arg {
    const tome_kv_op *ops;
    const kv_name *names;
    size_t count;
};

static int kv_apply_body(tome_txn *t, kv_stamp *st, void *arg, int *wrote) {
    struct kv_apply_arg *a = arg;
    for (size_t i = 0; i < a->count; i++) {
        const tome_kv_op *o = &a->ops[i];
        int rc = o->op == TOME_KV_WRITE
                     ? kv_stage_write(t, st, (uint32_t)i, &a->names[i], o->buf, o->len, wrote)
                     : kv_stage_remove(t, &a->names[i], wrote);
        if (rc) return rc;
    }
    return TOME_OK;
}

int tome_kv_apply(tome_db *db, const tome_kv_op *ops, size_t count) {
    if (!db || (!ops && count)) return TOME_INVALID;
    if (count == 0) return TOME_OK;
    if (count > UINT32_MAX) return tome_err(db, TOME_TOOBIG, "kv: %zu operations", count);
    kv_name *names = tome_calloc(count, sizeof *names);
    if (!names) return TOME_NOMEM;
    int rc = TOME_OK, any_remove = 0;
    for (size_t i = 0; i < count && rc == TOME_OK; i++) {
        const tome_kv_op *o = &ops[i];
        if (o->op != TOME_KV_WRITE && o->op != TOME_KV_REMOVE) {
            rc = tome_err(db, TOME_INVALID, "kv: operation %zu: unknown op %d", i, o->op);
            break;
        }
        const char *what = kv_check_what(o->primary_ns, o->secondary_ns, o->key, 1, &names[i]);
        if (what) {
            rc = tome_err(db, TOME_INVALID, "kv: operation %zu: %s", i, what);
            break;
        }
        if (o->op == TOME_KV_REMOVE) {
            any_remove = 1;
        } else if (!o->buf && o->len) {
            rc = tome_err(db, TOME_INVALID, "kv: operation %zu: NULL buffer with length %zu", i,
                          o->len);
        } else if (o->len > TOME_MAX_VALUE_LEN) {
            rc = tome_err(db, TOME_TOOBIG, "kv: operation %zu: value of %zu bytes", i, o->len);
        }
    }
    if (rc == TOME_OK) {
        struct kv_apply_arg a = {ops, names, count};
        rc = kv_run(db, kv_apply_body, &a, 0, any_remove);
    }
    tome_free(names);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Collecting names into one caller-owned block                            */
/* ---------------------------------------------------------------------- */

/* NUL-terminated strings back to back */
typedef struct kv_strs {
    char *p;
    size_t len, cap, n;
} kv_strs;

static int kv_strs_add(kv_strs *v, const void *s, size_t len) {
    if (v->len + len + 1 > v->cap) {
        size_t cap = v->cap ? v->cap : 256;
        while (cap < v->len + len + 1) cap *= 2;
        char *p = tome_realloc(v->p, cap);
        if (!p) return TOME_NOMEM;
        v->p = p;
        v->cap = cap;
    }
    if (len) memcpy(v->p + v->len, s, len);
    v->p[v->len + len] = '\0';
    v->len += len + 1;
    v->n++;
    return TOME_OK;
}

/* an array of char* and the strings, in one block (NULL when empty) */
static int kv_strs_block(const kv_strs *v, char ***out) {
    *out = NULL;
    if (v->n == 0) return TOME_OK;
    size_t head = v->n * sizeof(char *);
    char **arr = tome_malloc(head + v->len);
    if (!arr) return TOME_NOMEM;
    char *str = (char *)arr + head;
    memcpy(str, v->p, v->len);
    size_t off = 0;
    for (size_t i = 0; i < v->n; i++) {
        arr[i] = str + off;
        off += strlen(str + off) + 1;
    }
    *out = arr;
    return TOME_OK;
}

int tome_kv_list(tome_db *db, const char *primary_ns, const char *secondary_ns,
                 char ***keys_out, size_t *count_out) {
    if (keys_out) *keys_out = NULL;
    if (count_out) *count_out = 0;
    if (!db || !keys_out || !count_out) return TOME_INVALID;
    kv_name n;
    int rc = kv_check(db, primary_ns, secondary_ns, NULL, 0, &n);
    if (rc) return rc;
    uint8_t pre[TOME_KV_KEY_MAX];
    size_t prel = kv_nsprefix(&n, pre);
    tome_txn *t = NULL;
    if ((rc = tome_begin(db, &t)) != TOME_OK) return rc;
    tome_iter *it = NULL;
    kv_strs v = {0};
    rc = tome_iter_open(t, TOME_KV_SLOT, pre, prel, &it);
    while (rc == TOME_OK) {
        const void *k;
        size_t kl;
        rc = tome_iter_next(it, &k, &kl);
        if (rc != TOME_OK) break;
        const char *name = (const char *)k + prel;
        size_t nl = kl - prel;
        if (nl == 0 || !kv_name_ok(name, nl)) continue;   /* not a kv key */
        rc = kv_strs_add(&v, name, nl);
    }
    if (rc == TOME_NOTFOUND) rc = TOME_OK;
    tome_iter_close(it);
    tome_abort(t);
    if (rc == TOME_OK) rc = kv_strs_block(&v, keys_out);
    if (rc == TOME_OK) *count_out = v.n;
    tome_free(v.p);
    return rc;
}

int tome_kv_list_all(tome_db *db, tome_kv_key **keys_out, size_t *count_out) {
    if (keys_out) *keys_out = NULL;
    if (count_out) *count_out = 0;
    if (!db || !keys_out || !count_out) return TOME_INVALID;
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    tome_iter *it = NULL;
    kv_strs v = {0};
    size_t nkeys = 0;
    rc = tome_iter_open(t, TOME_KV_SLOT, NULL, 0, &it);
    while (rc == TOME_OK) {
        const void *k;
        size_t kl;
        kv_name n;
        rc = tome_iter_next(it, &k, &kl);
        if (rc != TOME_OK) break;
        if (!kv_split(k, kl, &n)) continue;
        if ((rc = kv_strs_add(&v, n.p, n.pl)) == TOME_OK &&
            (rc = kv_strs_add(&v, n.s, n.sl)) == TOME_OK &&
            (rc = kv_strs_add(&v, n.k, n.kl)) == TOME_OK)
            nkeys++;
    }
    if (rc == TOME_NOTFOUND) rc = TOME_OK;
    tome_iter_close(it);
    tome_abort(t);
    if (rc == TOME_OK && nkeys) {
        size_t head = nkeys * sizeof(tome_kv_key);
        tome_kv_key *arr = tome_malloc(head + v.len);
        if (!arr) {
            rc = TOME_NOMEM;
        } else {
            char *str = (char *)arr + head;
            memcpy(str, v.p, v.len);
            size_t off = 0;
            for (size_t i = 0; i < nkeys; i++) {
                arr[i].primary_ns = str + off;
                off += strlen(str + off) + 1;
                arr[i].secondary_ns = str + off;
                off += strlen(str + off) + 1;
                arr[i].key = str + off;
                off += strlen(str + off) + 1;
            }
            *keys_out = arr;
            *count_out = nkeys;
        }
    }
    tome_free(v.p);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Paginated listing                                                       */
/* ---------------------------------------------------------------------- */

typedef struct kv_pager {
    size_t page;        /* keys to return */
    size_t seen;        /* entries taken so far (up to page + 1) */
    kv_strs keys;
    uint8_t last[KV_STAMP_LEN + TOME_KV_NAME_MAX]; /* stamp + key of the last returned */
    size_t lastlen;
    size_t nslen;       /* length of "p/s/" */
} kv_pager;

/* bytewise compare, a prefix first */
static int kv_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

/* Takes the entries of slot 254 under prefix, skipping those <= after (if
 * not NULL; compared after the namespace prefix). Stops when the pager has
 * page + 1 entries. */
static int kv_pager_scan(tome_txn *t, kv_pager *pg, const uint8_t *prefix, size_t plen,
                         const uint8_t *after, size_t afterlen) {
    tome_iter *it = NULL;
    int rc = tome_iter_open(t, TOME_KV_ORDER_SLOT, prefix, plen, &it);
    while (rc == TOME_OK && pg->seen <= pg->page) {
        const void *k;
        size_t kl;
        rc = tome_iter_next(it, &k, &kl);
        if (rc != TOME_OK) break;
        const uint8_t *e = (const uint8_t *)k + pg->nslen;
        size_t el = kl - pg->nslen;
        if (el <= KV_STAMP_LEN || !kv_name_ok((const char *)e + KV_STAMP_LEN, el - KV_STAMP_LEN))
            continue;
        if (after && kv_cmp(e, el, after, afterlen) <= 0) continue;
        if (pg->seen < pg->page) {
            rc = kv_strs_add(&pg->keys, e + KV_STAMP_LEN, el - KV_STAMP_LEN);
            memcpy(pg->last, e, el);
            pg->lastlen = el;
        }
        pg->seen++;
    }
    if (rc == TOME_NOTFOUND) rc = TOME_OK;
    tome_iter_close(it);
    return rc;
}

static const char kv_hex[] = "0123456789abcdef";

static int kv_unhex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* token = 24 lowercase hex digits of the stamp, then the key */
static int kv_token_parse(const char *tok, uint8_t *pos, size_t *poslen) {
    size_t tl = strnlen(tok, 2 * KV_STAMP_LEN + TOME_KV_NAME_MAX + 1);
    if (tl <= 2 * KV_STAMP_LEN || tl > 2 * KV_STAMP_LEN + TOME_KV_NAME_MAX) return 0;
    for (size_t i = 0; i < KV_STAMP_LEN; i++) {
        int hi = kv_unhex(tok[2 * i]), lo = kv_unhex(tok[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        pos[i] = (uint8_t)(hi << 4 | lo);
    }
    size_t kl = tl - 2 * KV_STAMP_LEN;
    if (!kv_name_ok(tok + 2 * KV_STAMP_LEN, kl)) return 0;
    memcpy(pos + KV_STAMP_LEN, tok + 2 * KV_STAMP_LEN, kl);
    *poslen = KV_STAMP_LEN + kl;
    return 1;
}

static char *kv_token_make(const uint8_t *pos, size_t poslen) {
    size_t kl = poslen - KV_STAMP_LEN;
    char *tok = tome_malloc(2 * KV_STAMP_LEN + kl + 1);
    if (!tok) return NULL;
    for (size_t i = 0; i < KV_STAMP_LEN; i++) {
        tok[2 * i] = kv_hex[pos[i] >> 4];
        tok[2 * i + 1] = kv_hex[pos[i] & 15];
    }
    memcpy(tok + 2 * KV_STAMP_LEN, pos + KV_STAMP_LEN, kl);
    tok[2 * KV_STAMP_LEN + kl] = '\0';
    return tok;
}

int tome_kv_list_page(tome_db *db, const char *primary_ns, const char *secondary_ns,
                      const char *page_token, size_t page_size,
                      char ***keys_out, size_t *count_out, char **next_token_out) {
    if (keys_out) *keys_out = NULL;
    if (count_out) *count_out = 0;
    if (next_token_out) *next_token_out = NULL;
    if (!db || !keys_out || !count_out || !next_token_out) return TOME_INVALID;
    kv_name n;
    int rc = kv_check(db, primary_ns, secondary_ns, NULL, 0, &n);
    if (rc) return rc;
    uint8_t pos[KV_STAMP_LEN + TOME_KV_NAME_MAX];
    size_t poslen = 0;
    if (page_token && !kv_token_parse(page_token, pos, &poslen))
        return tome_err(db, TOME_INVALID, "kv: not a page token of tome_kv_list_page");
    if (page_size == 0) page_size = TOME_KV_PAGE_SIZE;
    if (page_size > SIZE_MAX / 2) page_size = SIZE_MAX / 2;

    kv_pager pg = {0};
    pg.page = page_size;
    uint8_t pre[TOME_KV_KEY_MAX + KV_STAMP_LEN];
    pg.nslen = kv_nsprefix(&n, pre);
    tome_txn *t = NULL;
    if ((rc = tome_begin(db, &t)) != TOME_OK) return rc;
    if (!page_token) {
        rc = kv_pager_scan(t, &pg, pre, pg.nslen, NULL, 0);
    } else {
        /* entries with the token's stamp, after its key */
        memcpy(pre + pg.nslen, pos, KV_STAMP_LEN);
        rc = kv_pager_scan(t, &pg, pre, pg.nslen + KV_STAMP_LEN, pos, poslen);
        /* then, byte by byte from the last, the larger stamps */
        for (int i = KV_STAMP_LEN - 1; i >= 0 && rc == TOME_OK && pg.seen <= pg.page; i--) {
            for (unsigned b = (unsigned)pos[i] + 1; b <= 255 && rc == TOME_OK && pg.seen <= pg.page;
                 b++) {
                pre[pg.nslen + (size_t)i] = (uint8_t)b;
                rc = kv_pager_scan(t, &pg, pre, pg.nslen + (size_t)i + 1, NULL, 0);
            }
        }
    }
    tome_abort(t);
    if (rc == TOME_OK && pg.seen > pg.page) {
        *next_token_out = kv_token_make(pg.last, pg.lastlen);
        if (!*next_token_out) rc = TOME_NOMEM;
    }
    if (rc == TOME_OK) rc = kv_strs_block(&pg.keys, keys_out);
    if (rc == TOME_OK) {
        *count_out = pg.keys.n;
    } else {
        tome_free(*next_token_out);
        *next_token_out = NULL;
    }
    tome_free(pg.keys.p);
    return rc;
}
