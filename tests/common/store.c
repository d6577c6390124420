/*
 * store.c -- the helpers of tests/common/store.h for the core API contract
 * tests: fresh stores, one-key transactions, reopen, a text dump of all a
 * store shows (to compare states across reopen, merge and recovery paths),
 * segment file sizes and a deterministic generator. Linked into every test
 * binary; every symbol starts with ts_ and nothing here has a main.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../tt.h"

bool ts_short(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && strcmp(s, "0") != 0;
}

uint64_t ts_rand(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void ts_fill(void *buf, size_t n, uint64_t seed) {
    uint8_t *p = buf;
    uint64_t st = seed, r = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0) r = ts_rand(&st);
        p[i] = (uint8_t)(r >> (8 * (i & 7)));
    }
}

uint64_t ts_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

tome_db *ts_open(const char *path, const tome_options *opts) {
    tome_db *db = NULL;
    int rc = tome_open(path, opts, &db);
    if (rc != TOME_OK) {
        fprintf(stderr, "  ts_open(%s): %s: %s\n", path, tt_rcname(rc), tome_errmsg(NULL));
        return NULL;
    }
    if (!db) fprintf(stderr, "  ts_open(%s): TOME_OK but no handle\n", path);
    return db;
}

tome_db *ts_new(int kind, char *path_out, const tome_options *opts) {
    char path[TS_PATH_MAX];
    if (kind == TS_MEM)
        snprintf(path, sizeof path, ":memory:");
    else
        snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    if (path_out) memcpy(path_out, path, strlen(path) + 1);
    return ts_open(path, opts);
}

tome_db *ts_reopen(tome_db *db, const char *path, const tome_options *opts) {
    int rc = tome_close(db);
    if (rc != TOME_OK) {
        fprintf(stderr, "  ts_reopen: tome_close: %s\n", tt_rcname(rc));
        return NULL;
    }
    return ts_open(path, opts);
}

int ts_putm(tome_db *db, uint8_t slot, const void *key, size_t klen, const void *val, size_t vlen) {
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc != TOME_OK) return rc;
    rc = tome_insert(t, slot, key, klen, val, vlen);
    if (rc != TOME_OK) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

int ts_put(tome_db *db, uint8_t slot, const char *key, const char *val) {
    return ts_putm(db, slot, key, strlen(key), val, strlen(val));
}

int ts_del(tome_db *db, uint8_t slot, const char *key) {
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc != TOME_OK) return rc;
    rc = tome_remove(t, slot, key, strlen(key));
    if (rc != TOME_OK) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

bool ts_txn_has(tome_txn *txn, uint8_t slot, const char *key, const char *expect) {
    const void *v = NULL;
    size_t n = 0;
    int rc = tome_get(txn, slot, key, strlen(key), &v, &n);
    if (!expect) {
        if (rc == TOME_NOTFOUND) return true;
        fprintf(stderr, "  get(%u,\"%s\"): %s (%.*s), want NOTFOUND\n", slot, key, tt_rcname(rc),
                rc == TOME_OK ? (int)(n > 60 ? 60 : n) : 0, rc == TOME_OK ? (const char *)v : "");
        return false;
    }
    if (rc != TOME_OK) {
        fprintf(stderr, "  get(%u,\"%s\"): %s, want \"%s\"\n", slot, key, tt_rcname(rc), expect);
        return false;
    }
    if (n != strlen(expect) || (n && memcmp(v, expect, n) != 0)) {
        fprintf(stderr, "  get(%u,\"%s\"): \"%.*s\", want \"%s\"\n", slot, key, (int)(n > 60 ? 60 : n),
                (const char *)v, expect);
        return false;
    }
    return true;
}

bool ts_has(tome_db *db, uint8_t slot, const char *key, const char *expect) {
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc != TOME_OK) {
        fprintf(stderr, "  ts_has: tome_begin: %s\n", tt_rcname(rc));
        return false;
    }
    bool ok = ts_txn_has(t, slot, key, expect);
    tome_abort(t);
    return ok;
}

uint64_t ts_seq(tome_db *db) {
    uint64_t s = 0;
    int rc = tome_last_seq(db, &s);
    if (rc != TOME_OK) {
        fprintf(stderr, "  tome_last_seq: %s\n", tt_rcname(rc));
        return UINT64_MAX;
    }
    return s;
}

int ts_versions(tome_db *db, uint8_t slot, const void *key, size_t klen,
                tome_version *out, size_t cap, size_t *n) {
    tome_txn *t = NULL;
    *n = 0;
    int rc = tome_begin(db, &t);
    if (rc != TOME_OK) return rc;
    const tome_version *v = NULL;
    size_t c = 0;
    rc = tome_versions(t, slot, key, klen, &v, &c);
    if (rc == TOME_OK) {
        *n = c;
        for (size_t i = 0; i < c && i < cap; i++) out[i] = v[i];
    }
    tome_abort(t);
    return rc;
}

/* ---- text dump ---- */

typedef struct ts_str {
    char *p;
    size_t len, cap;
    bool failed;
} ts_str;

__attribute__((format(printf, 2, 3)))
static void ts_cat(ts_str *s, const char *fmt, ...) {
    if (s->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = s->cap - s->len;
        int n = vsnprintf(s->p ? s->p + s->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->failed = true;
            return;
        }
        if ((size_t)n < room) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap - s->len <= (size_t)n) cap *= 2;
        char *q = realloc(s->p, cap);
        if (!q) {
            s->failed = true;
            return;
        }
        s->p = q;
        s->cap = cap;
    }
}

/* Bytes as text: short ones in hex, long ones as length, head and hash. */
static void ts_cat_bytes(ts_str *s, const void *p, size_t n) {
    const uint8_t *b = p;
    size_t show = n <= 64 ? n : 16;
    ts_cat(s, "[%zu:", n);
    for (size_t i = 0; i < show; i++) ts_cat(s, "%02x", b[i]);
    if (show < n) {
        uint64_t h = UINT64_C(1469598103934665603);
        for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * UINT64_C(1099511628211);
        ts_cat(s, "..#%016llx", (unsigned long long)h);
    }
    ts_cat(s, "]");
}

static void ts_cat_read(ts_str *s, const char *what, int rc, const void *v, size_t n) {
    ts_cat(s, " %s=%s", what, tt_rcname(rc));
    if (rc == TOME_OK) ts_cat_bytes(s, v, n);
}

/* The dump of what t sees; stats of db when with_stats. Ends t. */
static char *ts_dump_txn(tome_db *db, tome_txn *t, ts_str s, const ts_key *keys, size_t n, bool with_stats) {
    int rc;
    if (with_stats) {
        tome_stats st;
        memset(&st, 0, sizeof st);
        rc = tome_stats_get(db, &st);
        ts_cat(&s, "stats %s keys %llu keys_total %llu versions %llu last_seq %llu last_ts %llu horizon %llu\n",
               tt_rcname(rc), (unsigned long long)st.keys, (unsigned long long)st.keys_total,
               (unsigned long long)st.versions, (unsigned long long)st.last_seq,
               (unsigned long long)st.last_timestamp, (unsigned long long)st.horizon);
    }
    uint64_t lu = 0;
    rc = tome_last_updated(t, &lu);
    ts_cat(&s, "last_updated %s %llu\n", tt_rcname(rc), (unsigned long long)(rc == TOME_OK ? lu : 0));
    for (int slot = 0; slot < 256; slot++) {
        tome_iter *it = NULL;
        rc = tome_iter_open(t, (uint8_t)slot, NULL, 0, &it);
        if (rc != TOME_OK) {
            ts_cat(&s, "slot %d iter_open %s\n", slot, tt_rcname(rc));
            continue;
        }
        const void *k;
        size_t kl;
        int count = 0;
        while ((rc = tome_iter_next(it, &k, &kl)) == TOME_OK) {
            if (count++ == 0) ts_cat(&s, "slot %d:", slot);
            ts_cat(&s, " ");
            ts_cat_bytes(&s, k, kl);
        }
        if (count) ts_cat(&s, "\n");
        if (rc != TOME_NOTFOUND) ts_cat(&s, "slot %d iter_next %s\n", slot, tt_rcname(rc));
        tome_iter_close(it);
    }
    for (size_t i = 0; i < n; i++) {
        const ts_key *key = &keys[i];
        ts_cat(&s, "key %u ", key->slot);
        ts_cat_bytes(&s, key->key, key->len);
        const void *v = NULL;
        size_t vl = 0;
        rc = tome_get(t, key->slot, key->key, key->len, &v, &vl);
        ts_cat_read(&s, "get", rc, v, vl);
        rc = tome_get_unremoved(t, key->slot, key->key, key->len, &v, &vl);
        ts_cat_read(&s, "unremoved", rc, v, vl);
        const tome_version *vs = NULL;
        size_t nv = 0;
        rc = tome_versions(t, key->slot, key->key, key->len, &vs, &nv);
        ts_cat(&s, " versions=%s %zu\n", tt_rcname(rc), nv);
        for (size_t j = 0; rc == TOME_OK && j < nv; j++) {
            ts_cat(&s, "  seq %llu ts %llu%s%s", (unsigned long long)vs[j].seq,
                   (unsigned long long)vs[j].timestamp, vs[j].removed ? " removed" : "",
                   vs[j].committed ? "" : " pending");
            int r2 = tome_get_version(t, key->slot, key->key, key->len, vs[j].seq, &v, &vl);
            ts_cat_read(&s, "value", r2, v, vl);
            ts_cat(&s, "\n");
        }
    }
    tome_abort(t);
    if (s.failed) {
        fprintf(stderr, "  ts_dump: out of memory\n");
        free(s.p);
        return NULL;
    }
    if (!s.p) {
        s.p = malloc(1);
        if (s.p) s.p[0] = 0;
    }
    return s.p;
}

char *ts_dump(tome_db *db, const ts_key *keys, size_t n, bool with_stats) {
    ts_str s = {0};
    tome_txn *t = NULL;
    int rc = tome_begin(db, &t);
    if (rc != TOME_OK) {
        fprintf(stderr, "  ts_dump: tome_begin: %s\n", tt_rcname(rc));
        return NULL;
    }
    ts_cat(&s, "last_seq %llu\n", (unsigned long long)ts_seq(db));
    return ts_dump_txn(db, t, s, keys, n, with_stats);
}

char *ts_dump_at(tome_db *db, uint64_t seq, const ts_key *keys, size_t n) {
    ts_str s = {0};
    tome_txn *t = NULL;
    int rc = tome_begin_at(db, seq, &t);
    ts_cat(&s, "begin_at %llu: %s\n", (unsigned long long)seq, tt_rcname(rc));
    if (rc != TOME_OK) {
        if (s.failed) {
            free(s.p);
            return NULL;
        }
        return s.p;
    }
    return ts_dump_txn(db, t, s, keys, n, false);
}

bool ts_same(const char *a, const char *b, const char *what) {
    if (!a || !b) {
        fprintf(stderr, "  %s: missing dump\n", what);
        return false;
    }
    if (strcmp(a, b) == 0) return true;
    size_t line = 1;
    const char *la = a, *lb = b;
    while (*la && *lb) {
        const char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
        size_t na = ea ? (size_t)(ea - la) : strlen(la), nb = eb ? (size_t)(eb - lb) : strlen(lb);
        if (na != nb || memcmp(la, lb, na) != 0) break;
        la += na + (ea ? 1 : 0);
        lb += nb + (eb ? 1 : 0);
        line++;
    }
    fprintf(stderr, "  %s: states differ at line %zu:\n    before: %.*s\n    after:  %.*s\n", what, line,
            (int)(strchr(la, '\n') ? (size_t)(strchr(la, '\n') - la) : strlen(la)), la,
            (int)(strchr(lb, '\n') ? (size_t)(strchr(lb, '\n') - lb) : strlen(lb)), lb);
    return false;
}

/* ---- files ---- */

uint64_t ts_segment_bytes(const char *dir) {
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 4) continue;
        const char *ext = de->d_name + n - 4;
        if (strcmp(ext, ".log") != 0 && strcmp(ext, ".mrg") != 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

bool ts_file_exists(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

bool ts_unlink(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (unlink(p) == 0) return true;
    fprintf(stderr, "  unlink %s: %s\n", p, strerror(errno));
    return false;
}
