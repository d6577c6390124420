/*
 * test_api.c -- contract tests of the handle-level core API (api.md, core
 * part): opening, creating, reopening and closing a store; bad arguments;
 * the store lock within one process and across processes; ":memory:"
 * stores; closing with a transaction open; error texts (tome_strerror,
 * tome_errmsg); the empty key and value, NULL pointers with lengths, the 256
 * slots, the key and value size limits; large values; that a reopen shows
 * exactly the same state after every kind of operation; TOME_SYNC_NONE,
 * tome_sync, tome_last_seq and the figures of tome_stats_get. Each case
 * checks exact values, on a directory store and, where meaningful, on
 * ":memory:".
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/tome.h"
#include "common/store.h"
#include "tt.h"

/* An error detail that says something: not NULL, not empty, not "no error". */
static bool meaningful(const char *m) {
    return m && m[0] && strcmp(m, "no error") != 0;
}

static bool path_missing(const char *path) {
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/* A pointer value that a failing tome_open must overwrite with NULL. */
static int sentinel_obj;
#define SENTINEL ((tome_db *)(void *)&sentinel_obj)

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

TT_TEST(open_creates_and_reopens) {
    char path[TS_PATH_MAX];
    snprintf(path, sizeof path, "%s/store", tt_tmpdir());
    CHECK(path_missing(path));
    tome_db *db = SENTINEL;
    CHECK_OK(tome_open(path, NULL, &db));
    CHECK(db != NULL && db != SENTINEL);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK_U64(ts_seq(db), 0);
    CHECK_OK(ts_put(db, 7, "hello", "world"));
    CHECK_U64(ts_seq(db), 1);
    CHECK_OK(tome_close(db));

    tome_options o;
    tome_options_init(&o);
    o.must_exist = 1;
    db = ts_open(path, &o);
    CHECK(db != NULL);
    CHECK(ts_has(db, 7, "hello", "world"));
    CHECK(ts_has(db, 6, "hello", NULL));
    CHECK_U64(ts_seq(db), 1);
    CHECK_OK(ts_put(db, 7, "hello", "again"));
    CHECK_OK(tome_close(db));

    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(ts_has(db, 7, "hello", "again"));
    CHECK_U64(ts_seq(db), 2);
    CHECK_OK(tome_close(db));
}

TT_TEST(open_must_exist_missing) {
    char path[TS_PATH_MAX];
    snprintf(path, sizeof path, "%s/nothing-here", tt_tmpdir());
    tome_options o;
    tome_options_init(&o);
    o.must_exist = 1;
    tome_db *db = SENTINEL;
    CHECK_RC(tome_open(path, &o, &db), TOME_NOTFOUND);
    CHECK(db == NULL);
    CHECK(meaningful(tome_errmsg(NULL)));
    CHECK(path_missing(path)); /* must_exist creates nothing */
    /* The same path without must_exist creates the store. */
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK_OK(tome_close(db));
    db = ts_open(path, &o);
    CHECK(db != NULL);
    CHECK_OK(tome_close(db));
}

TT_TEST(open_null_and_bad_arguments) {
    tome_db *db = SENTINEL;
    CHECK_RC(tome_open(NULL, NULL, &db), TOME_INVALID);
    CHECK(db == NULL);
    CHECK(meaningful(tome_errmsg(NULL)));

    char path[TS_PATH_MAX];
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    CHECK_RC(tome_open(path, NULL, NULL), TOME_INVALID);
    CHECK_RC(tome_open(":memory:", NULL, NULL), TOME_INVALID);

    tome_options o;
    tome_options_init(&o);
    o.sync = 7; /* neither TOME_SYNC_FULL nor TOME_SYNC_NONE */
    db = SENTINEL;
    CHECK_RC(tome_open(path, &o, &db), TOME_INVALID);
    CHECK(db == NULL);
    CHECK(meaningful(tome_errmsg(NULL)));

    /* After all those refusals the path opens normally. */
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "k", "v"));
    CHECK_OK(tome_close(db));
}

TT_TEST(open_regular_file_is_an_error) {
    const char *dir = tt_tmpdir();
    char path[TS_PATH_MAX], sub[TS_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/plain", dir);
    static const char text[] = "this is a plain file, not a store\n";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK_EQ(fwrite(text, 1, sizeof text - 1, f), sizeof text - 1);
    CHECK_EQ(fclose(f), 0);

    tome_db *db = SENTINEL;
    int rc = tome_open(path, NULL, &db);
    CHECK(rc < 0);
    CHECK(rc != TOME_NOTFOUND); /* NOTFOUND only means "must_exist and no store" */
    CHECK(db == NULL);
    CHECK(meaningful(tome_errmsg(NULL)));

    tome_options o;
    tome_options_init(&o);
    o.must_exist = 1;
    db = SENTINEL;
    CHECK(tome_open(path, &o, &db) < 0);
    CHECK(db == NULL);

    snprintf(sub, sizeof sub, "%s/sub", path); /* a path below a regular file */
    db = SENTINEL;
    CHECK(tome_open(sub, NULL, &db) < 0);
    CHECK(db == NULL);

    /* The file is left as it was. */
    char buf[128];
    f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK_MEM(buf, n, text, sizeof text - 1);
}

TT_TEST(options_defaults) {
    tome_options o;
    memset(&o, 0xA5, sizeof o);
    tome_options_init(&o);
    CHECK_EQ(o.sync, TOME_SYNC_FULL);
    CHECK_EQ(o.read_only, 0);
    CHECK_EQ(o.must_exist, 0);
    CHECK_U64(o.segment_size, 0);
    CHECK_U64(o.history_versions, 0);
    CHECK_U64(o.history_ms, 0);
    /* The defaults open a store, the same as NULL options. */
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, &o);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 1, "a", "b"));
    CHECK_OK(tome_close(db));
    db = ts_open(path, &o);
    CHECK(db != NULL);
    CHECK(ts_has(db, 1, "a", "b"));
    CHECK_OK(tome_close(db));
    CHECK_OK(tome_close(NULL)); /* NULL is a no-op */
}

/* ------------------------------------------------------------------------ */
/* Error texts                                                              */
/* ------------------------------------------------------------------------ */

TT_TEST(strerror_every_code) {
    const char *texts[11];
    for (int code = 0; code >= -10; code--) {
        const char *s = tome_strerror(code);
        CHECK(s != NULL);
        CHECK(s[0] != 0);
        CHECK(strcmp(s, "unknown error") != 0);
        CHECK(tome_strerror(code) == s || strcmp(tome_strerror(code), s) == 0);
        texts[-code] = s;
    }
    for (int i = 0; i < 11; i++)
        for (int j = i + 1; j < 11; j++) CHECK(strcmp(texts[i], texts[j]) != 0);
    const int unknown[] = {1, 2, -11, -12, 100, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = tome_strerror(unknown[i]);
        CHECK(s != NULL);
        CHECK(strcmp(s, "unknown error") == 0);
    }
}

struct errmsg_probe {
    tome_db *db;
    char seen_db[128], seen_null[128];
};

static void *errmsg_thread(void *arg) {
    struct errmsg_probe *p = arg;
    const char *a = tome_errmsg(p->db), *b = tome_errmsg(NULL);
    snprintf(p->seen_db, sizeof p->seen_db, "%s", a ? a : "(NULL)");
    snprintf(p->seen_null, sizeof p->seen_null, "%s", b ? b : "(NULL)");
    return NULL;
}

TT_TEST(errmsg_detail) {
    /* A failed open leaves its detail for tome_errmsg(NULL). */
    tome_db *db = SENTINEL;
    char path[TS_PATH_MAX];
    snprintf(path, sizeof path, "%s/missing", tt_tmpdir());
    tome_options o;
    tome_options_init(&o);
    o.must_exist = 1;
    CHECK_RC(tome_open(path, &o, &db), TOME_NOTFOUND);
    const char *m = tome_errmsg(NULL);
    CHECK(meaningful(m));

    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        m = tome_errmsg(db);
        CHECK(m != NULL);
        CHECK(strcmp(m, "no error") == 0);
        CHECK_OK(ts_put(db, 0, "k", "v"));
        tome_txn *t = NULL;
        CHECK_RC(tome_begin_at(db, 1000, &t), TOME_INVALID); /* newer than the newest commit */
        CHECK(t == NULL);
        m = tome_errmsg(db);
        CHECK(meaningful(m));
        char copy[256];
        snprintf(copy, sizeof copy, "%s", m);

        /* Another thread has its own detail: it saw no failure. */
        struct errmsg_probe p = {.db = db};
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, errmsg_thread, &p), 0);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK(strcmp(p.seen_db, "no error") == 0);
        CHECK(strcmp(p.seen_null, "no error") == 0);

        /* Successful calls leave the text valid and non-NULL. */
        CHECK(ts_has(db, 0, "k", "v"));
        m = tome_errmsg(db);
        CHECK(m != NULL);

        /* A failing call in a transaction of db is not a crash and errmsg stays non-NULL. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_insert(t, 0, NULL, 3, "v", 1), TOME_INVALID);
        CHECK(tome_errmsg(db) != NULL);
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
    CHECK(tome_errmsg(NULL) != NULL);
}

/* ------------------------------------------------------------------------ */
/* The lock                                                                 */
/* ------------------------------------------------------------------------ */

/* Opens path in a child process; exit status: -rc of tome_open on failure,
 * 0 when opened and (if key) key holds val, 50 when the value was wrong,
 * 51 when the close failed. Returns the status, or -1 if the child did not
 * exit normally. */
static int child_open(const char *path, int read_only, const char *key, const char *val) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        tome_options o;
        tome_options_init(&o);
        o.read_only = read_only;
        tome_db *d = NULL;
        int rc = tome_open(path, &o, &d);
        if (rc != TOME_OK) _exit(rc < 0 ? -rc : 99);
        int code = 0;
        if (key && !ts_has(d, 0, key, val)) code = 50;
        if (tome_close(d) != TOME_OK && code == 0) code = 51;
        _exit(code);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    if (!WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

TT_TEST(locked_in_same_process) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "k", "v1"));
    for (int ro = 0; ro <= 1; ro++) {
        tome_options o;
        tome_options_init(&o);
        o.read_only = ro;
        tome_db *db2 = SENTINEL;
        CHECK_RC(tome_open(path, &o, &db2), TOME_LOCKED);
        CHECK(db2 == NULL);
        CHECK(meaningful(tome_errmsg(NULL)));
    }
    /* The refused opens did not disturb the first handle nor its lock. */
    CHECK_OK(ts_put(db, 0, "k", "v2"));
    CHECK(ts_has(db, 0, "k", "v2"));
    CHECK_EQ(child_open(path, 0, NULL, NULL), -TOME_LOCKED);
    CHECK_OK(tome_close(db));
    /* Once closed, the store opens again. */
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(ts_has(db, 0, "k", "v2"));
    CHECK_OK(tome_close(db));
}

TT_TEST(locked_from_child_process) {
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    CHECK_OK(ts_put(db, 0, "k", "parent"));
    CHECK_EQ(child_open(path, 0, NULL, NULL), -TOME_LOCKED);
    CHECK_EQ(child_open(path, 1, NULL, NULL), -TOME_LOCKED);
    /* The parent's handle still works after the child's attempts. */
    CHECK_OK(ts_put(db, 0, "k", "parent2"));
    CHECK_OK(tome_close(db));
    /* Closed: the child opens it, sees the data and closes it again. */
    CHECK_EQ(child_open(path, 0, "k", "parent2"), 0);
    db = ts_open(path, NULL);
    CHECK(db != NULL);
    CHECK(ts_has(db, 0, "k", "parent2"));
    CHECK_OK(tome_close(db));
}

TT_TEST(memory_handles_are_separate_stores) {
    tome_db *a = ts_open(":memory:", NULL);
    CHECK(a != NULL);
    tome_db *b = ts_open(":memory:", NULL); /* not LOCKED */
    CHECK(b != NULL);
    CHECK_OK(ts_put(a, 0, "k", "in-a"));
    CHECK_U64(ts_seq(a), 1);
    CHECK_U64(ts_seq(b), 0);
    CHECK(ts_has(b, 0, "k", NULL));
    CHECK_OK(ts_put(b, 0, "k", "in-b"));
    CHECK_OK(ts_put(b, 0, "only-b", "x"));
    CHECK(ts_has(a, 0, "k", "in-a"));
    CHECK(ts_has(a, 0, "only-b", NULL));
    CHECK(ts_has(b, 0, "k", "in-b"));
    CHECK_U64(ts_seq(b), 2);
    CHECK_OK(tome_close(a));
    CHECK(ts_has(b, 0, "k", "in-b"));
    CHECK_OK(tome_close(b));
    /* A new ":memory:" handle starts empty. */
    tome_db *c = ts_open(":memory:", NULL);
    CHECK(c != NULL);
    CHECK_U64(ts_seq(c), 0);
    CHECK(ts_has(c, 0, "k", NULL));
    CHECK_OK(tome_close(c));
}

TT_TEST(close_with_open_transaction) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "a", "1"));
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_close(db), TOME_MISUSE);
        /* The handle and the transaction still work. */
        CHECK(ts_txn_has(t, 0, "a", "1"));
        CHECK_OK(tome_insert(t, 0, "b", 1, "2", 1));
        CHECK_OK(tome_commit(t));
        CHECK(ts_has(db, 0, "a", "1"));
        CHECK(ts_has(db, 0, "b", "2"));
        CHECK_OK(ts_put(db, 0, "c", "3"));
        /* A historical transaction counts as open as well. */
        CHECK_OK(tome_begin_at(db, 1, &t));
        CHECK_RC(tome_close(db), TOME_MISUSE);
        CHECK(ts_txn_has(t, 0, "a", "1"));
        CHECK(ts_txn_has(t, 0, "b", NULL));
        tome_abort(t);
        /* Two open, one ended: still MISUSE; both ended: closes. */
        tome_txn *t2 = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_begin(db, &t2));
        CHECK_OK(tome_commit(t));
        CHECK_RC(tome_close(db), TOME_MISUSE);
        tome_abort(t2);
        CHECK_U64(ts_seq(db), 3);
        CHECK_OK(tome_close(db));
        if (kind == TS_DIR) {
            db = ts_open(path, NULL);
            CHECK(db != NULL);
            CHECK(ts_has(db, 0, "a", "1"));
            CHECK(ts_has(db, 0, "b", "2"));
            CHECK(ts_has(db, 0, "c", "3"));
            CHECK_U64(ts_seq(db), 3);
            CHECK_OK(tome_close(db));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Keys and values                                                          */
/* ------------------------------------------------------------------------ */

/* Reads (slot,key) in txn and checks it holds exactly (val, vlen). */
static bool txn_value_is(tome_txn *t, uint8_t slot, const void *key, size_t klen, const void *val,
                         size_t vlen) {
    const void *v = NULL;
    size_t n = 12345;
    int rc = tome_get(t, slot, key, klen, &v, &n);
    if (rc != TOME_OK) {
        fprintf(stderr, "  get (slot %u, %zu-byte key): %s\n", slot, klen, tt_rcname(rc));
        return false;
    }
    if (n != vlen || (n && memcmp(v, val, n) != 0)) {
        fprintf(stderr, "  get (slot %u, %zu-byte key): %zu bytes, want %zu\n", slot, klen, n, vlen);
        return false;
    }
    return true;
}

TT_TEST(empty_key_and_empty_value) {
    static const ts_key keys[] = {
        {0, "", 0}, {0, "ev", 2}, {0, "ev2", 3}, {1, "", 0}, {2, "", 0}, {0, "ew", 2},
    };
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        const void *v;
        size_t n;
        const tome_version *vs;
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_get(t, 0, NULL, 0, &v, &n), TOME_NOTFOUND);
        CHECK_OK(tome_versions(t, 0, NULL, 0, &vs, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(tome_insert(t, 0, NULL, 0, "ek", 2));    /* empty key (NULL, 0) */
        CHECK_OK(tome_insert(t, 0, "ev", 2, NULL, 0));    /* empty value (NULL, 0) */
        CHECK_OK(tome_insert(t, 0, "ev2", 3, "", 0));     /* empty value, non-NULL */
        CHECK_OK(tome_insert(t, 1, "", 0, "", 0));        /* both empty, non-NULL */
        CHECK(txn_value_is(t, 0, NULL, 0, "ek", 2));
        CHECK(txn_value_is(t, 0, "", 0, "ek", 2));        /* "" and NULL are the same key */
        CHECK(txn_value_is(t, 0, "ev", 2, "", 0));
        CHECK(txn_value_is(t, 1, NULL, 0, "", 0));
        CHECK_OK(tome_commit(t));

        CHECK_OK(tome_begin(db, &t));
        CHECK(txn_value_is(t, 0, NULL, 0, "ek", 2));
        CHECK(txn_value_is(t, 0, "ev", 2, "", 0));
        CHECK(txn_value_is(t, 0, "ev2", 3, "", 0));
        CHECK(txn_value_is(t, 1, "", 0, "", 0));
        CHECK_RC(tome_get(t, 2, NULL, 0, &v, &n), TOME_NOTFOUND); /* other slot: absent */
        CHECK_RC(tome_get(t, 0, "ew", 2, &v, &n), TOME_NOTFOUND);
        /* The iteration lists the empty key first. */
        tome_iter *it = NULL;
        const void *k;
        size_t kl;
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        CHECK_OK(tome_iter_next(it, &k, &kl));
        CHECK_EQ(kl, 0);
        CHECK_OK(tome_iter_next(it, &k, &kl));
        CHECK_STRMEM(k, kl, "ev");
        CHECK_OK(tome_iter_next(it, &k, &kl));
        CHECK_STRMEM(k, kl, "ev2");
        CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
        tome_iter_close(it);
        CHECK_OK(tome_iter_open(t, 1, "", 0, &it));
        CHECK_OK(tome_iter_next(it, &k, &kl));
        CHECK_EQ(kl, 0);
        CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
        tome_iter_close(it);
        tome_abort(t);

        /* Removing the empty value: absent for get, empty in the trash. */
        CHECK_OK(ts_del(db, 0, "ev"));
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_get(t, 0, "ev", 2, &v, &n), TOME_NOTFOUND);
        n = 99;
        CHECK_OK(tome_get_unremoved(t, 0, "ev", 2, &v, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(tome_versions(t, 0, "ev", 2, &vs, &n));
        CHECK_EQ(n, 2);
        CHECK(!vs[0].removed && vs[1].removed);
        tome_abort(t);
        /* Removing the empty key. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_remove(t, 0, NULL, 0));
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_get(t, 0, NULL, 0, &v, &n), TOME_NOTFOUND);
        CHECK_OK(tome_iter_open(t, 0, NULL, 0, &it));
        CHECK_OK(tome_iter_next(it, &k, &kl));
        CHECK_STRMEM(k, kl, "ev2");
        CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
        tome_iter_close(it);
        tome_abort(t);
        CHECK_U64(ts_seq(db), 3);

        if (kind == TS_DIR) {
            char *before = ts_dump(db, keys, sizeof keys / sizeof keys[0], true);
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            char *after = ts_dump(db, keys, sizeof keys / sizeof keys[0], true);
            bool same = ts_same(before, after, "empty key/value after reopen");
            free(before);
            free(after);
            CHECK(same);
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(null_pointer_with_length) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        const void *v = NULL;
        size_t n = 0;
        const tome_version *vs = NULL;
        tome_iter *it = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_insert(t, 0, NULL, 1, "v", 1), TOME_INVALID);
        CHECK_RC(tome_insert(t, 0, "bad", 3, NULL, 1), TOME_INVALID);
        CHECK_RC(tome_remove(t, 0, NULL, 2), TOME_INVALID);
        CHECK_RC(tome_get(t, 0, NULL, 1, &v, &n), TOME_INVALID);
        CHECK_RC(tome_get_unremoved(t, 0, NULL, 1, &v, &n), TOME_INVALID);
        CHECK_RC(tome_get_version(t, 0, NULL, 1, 1, &v, &n), TOME_INVALID);
        CHECK_RC(tome_versions(t, 0, NULL, 1, &vs, &n), TOME_INVALID);
        CHECK_RC(tome_iter_open(t, 0, NULL, 1, &it), TOME_INVALID);
        /* NULL out pointers and NULL handles. */
        CHECK_RC(tome_get(t, 0, "bad", 3, NULL, &n), TOME_INVALID);
        CHECK_RC(tome_get(t, 0, "bad", 3, &v, NULL), TOME_INVALID);
        CHECK_RC(tome_versions(t, 0, "bad", 3, NULL, &n), TOME_INVALID);
        CHECK_RC(tome_iter_open(t, 0, "b", 1, NULL), TOME_INVALID);
        CHECK_RC(tome_get(NULL, 0, "bad", 3, &v, &n), TOME_INVALID);
        CHECK_RC(tome_insert(NULL, 0, "bad", 3, "v", 1), TOME_INVALID);
        CHECK_RC(tome_remove(NULL, 0, "bad", 3), TOME_INVALID);
        CHECK_RC(tome_commit(NULL), TOME_INVALID);
        tome_abort(NULL);
        tome_iter_close(NULL);
        tome_txn *t2 = NULL;
        CHECK_RC(tome_begin(NULL, &t2), TOME_INVALID);
        CHECK_RC(tome_begin(db, NULL), TOME_INVALID);
        CHECK_RC(tome_sync(NULL), TOME_INVALID);
        CHECK_RC(tome_merge(NULL), TOME_INVALID);
        /* Nothing was staged and the transaction is still usable. */
        CHECK_RC(tome_get(t, 0, "bad", 3, &v, &n), TOME_NOTFOUND);
        CHECK_OK(tome_versions(t, 0, "bad", 3, &vs, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(tome_insert(t, 0, "good", 4, "v", 1));
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 1);
        CHECK(ts_has(db, 0, "good", "v"));
        CHECK(ts_has(db, 0, "bad", NULL));
        tome_version ver[4];
        CHECK_OK(ts_versions(db, 0, "bad", 3, ver, 4, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(ts_versions(db, 0, "good", 4, ver, 4, &n));
        CHECK_EQ(n, 1);
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(slots_are_separate_keyspaces) {
    static const ts_key keys[] = {{0, "same", 4}, {1, "same", 4}, {254, "same", 4}, {255, "same", 4},
                                  {255, "samf", 4}};
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        char val[16];
        CHECK_OK(tome_begin(db, &t));
        for (int s = 0; s < 256; s++) {
            int n = snprintf(val, sizeof val, "v%d", s);
            CHECK_OK(tome_insert(t, (uint8_t)s, "same", 4, val, (size_t)n));
        }
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 1); /* one commit for all 256 */
        CHECK_OK(tome_begin(db, &t));
        for (int s = 0; s < 256; s++) {
            snprintf(val, sizeof val, "v%d", s);
            CHECK(ts_txn_has(t, (uint8_t)s, "same", val));
            tome_iter *it = NULL;
            const void *k;
            size_t kl;
            CHECK_OK(tome_iter_open(t, (uint8_t)s, NULL, 0, &it));
            CHECK_OK(tome_iter_next(it, &k, &kl));
            CHECK_STRMEM(k, kl, "same");
            CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
            tome_iter_close(it);
        }
        tome_abort(t);
        /* Removing in slots 0 and 255 leaves the others alone. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_remove(t, 0, "same", 4));
        CHECK_OK(tome_remove(t, 255, "same", 4));
        CHECK_OK(tome_insert(t, 255, "samf", 4, "f", 1));
        CHECK_OK(tome_commit(t));
        CHECK(ts_has(db, 0, "same", NULL));
        CHECK(ts_has(db, 255, "same", NULL));
        CHECK(ts_has(db, 1, "same", "v1"));
        CHECK(ts_has(db, 254, "same", "v254"));
        CHECK(ts_has(db, 255, "samf", "f"));
        CHECK(ts_has(db, 0, "samf", NULL));
        tome_version ver[4];
        size_t n = 0;
        CHECK_OK(ts_versions(db, 255, "same", 4, ver, 4, &n));
        CHECK_EQ(n, 2);
        CHECK(ver[1].removed);
        CHECK_OK(ts_versions(db, 1, "same", 4, ver, 4, &n));
        CHECK_EQ(n, 1);
        CHECK_U64(ver[0].seq, 1);
        tome_stats st;
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 255);        /* 254 "same" + "samf" */
        CHECK_U64(st.keys_total, 257);  /* and the two in the trash */
        if (kind == TS_DIR) {
            char *before = ts_dump(db, keys, sizeof keys / sizeof keys[0], true);
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            char *after = ts_dump(db, keys, sizeof keys / sizeof keys[0], true);
            bool same = ts_same(before, after, "slots after reopen");
            free(before);
            free(after);
            CHECK(same);
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(key_length_limit) {
    size_t max = TOME_MAX_KEY_LEN;
    CHECK(max >= 65535);
    uint8_t *key = malloc(max + 1);
    CHECK(key != NULL);
    ts_fill(key, max + 1, 7);
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        const void *v;
        size_t n;
        /* A transaction whose only write is refused commits nothing. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_insert(t, 3, key, max + 1, "big", 3), TOME_TOOBIG);
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 0);

        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 3, key, max, "max", 3));
        CHECK_RC(tome_insert(t, 3, key, max + 1, "big", 3), TOME_TOOBIG);
        CHECK_RC(tome_remove(t, 3, key, max + 1), TOME_TOOBIG);
        CHECK_RC(tome_insert(t, 3, key, (size_t)1 << 40, "huge", 4), TOME_TOOBIG);
        /* Still usable, and the refused writes staged nothing. */
        CHECK(txn_value_is(t, 3, key, max, "max", 3));
        CHECK_RC(tome_get(t, 3, key, max + 1, &v, &n), TOME_NOTFOUND);
        CHECK_OK(tome_insert(t, 3, "after", 5, "1", 1));
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 1);

        for (int round = 0; round < 2; round++) {
            CHECK_OK(tome_begin(db, &t));
            CHECK(txn_value_is(t, 3, key, max, "max", 3));
            CHECK_RC(tome_get(t, 3, key, max + 1, &v, &n), TOME_NOTFOUND);
            CHECK_RC(tome_get_unremoved(t, 3, key, max + 1, &v, &n), TOME_NOTFOUND);
            CHECK_RC(tome_get_version(t, 3, key, max + 1, 1, &v, &n), TOME_NOTFOUND);
            /* A key far beyond the limit is never read from the (small) buffer. */
            CHECK_RC(tome_get(t, 3, "k", (size_t)1 << 40, &v, &n), TOME_NOTFOUND);
            const tome_version *vs;
            CHECK_OK(tome_versions(t, 3, key, max, &vs, &n));
            CHECK_EQ(n, 1);
            CHECK_U64(vs[0].seq, 1);
            tome_iter *it = NULL;
            const void *k;
            size_t kl;
            CHECK_OK(tome_iter_open(t, 3, NULL, 0, &it));
            int found = 0, count = 0;
            while (tome_iter_next(it, &k, &kl) == TOME_OK) {
                count++;
                if (kl == max && memcmp(k, key, max) == 0) found++;
            }
            tome_iter_close(it);
            CHECK_EQ(count, 2);
            CHECK_EQ(found, 1);
            /* A prefix of the full maximum length finds it too. */
            CHECK_OK(tome_iter_open(t, 3, key, max, &it));
            CHECK_OK(tome_iter_next(it, &k, &kl));
            CHECK_MEM(k, kl, key, max);
            CHECK_RC(tome_iter_next(it, &k, &kl), TOME_NOTFOUND);
            tome_iter_close(it);
            tome_abort(t);
            if (kind == TS_MEM) break;
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
        }
        /* Removing the longest key works. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_remove(t, 3, key, max));
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        CHECK_RC(tome_get(t, 3, key, max, &v, &n), TOME_NOTFOUND);
        CHECK_OK(tome_get_unremoved(t, 3, key, max, &v, &n));
        CHECK_STRMEM(v, n, "max");
        tome_abort(t);
        CHECK_OK(tome_close(db));
    }
    free(key);
}

TT_TEST(value_length_limit_without_allocating) {
    CHECK((uint64_t)TOME_MAX_VALUE_LEN >= (UINT64_C(1) << 30));
    static const char small[8] = "1234567";
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        tome_txn *t = NULL;
        const void *v;
        size_t n;
        CHECK_OK(tome_begin(db, &t));
        /* Huge lengths over a small buffer: refused before any byte is read. */
        CHECK_RC(tome_insert(t, 0, "k", 1, small, (size_t)TOME_MAX_VALUE_LEN + 1), TOME_TOOBIG);
        CHECK_RC(tome_insert(t, 0, "k", 1, small, (size_t)TOME_MAX_VALUE_LEN * 4), TOME_TOOBIG);
        CHECK_RC(tome_insert(t, 0, "k", 1, small, SIZE_MAX), TOME_TOOBIG);
        CHECK_RC(tome_insert(t, 0, small, SIZE_MAX, "v", 1), TOME_TOOBIG);
        CHECK_RC(tome_remove(t, 0, small, SIZE_MAX), TOME_TOOBIG);
        CHECK_RC(tome_get(t, 0, "k", 1, &v, &n), TOME_NOTFOUND);
        const tome_version *vs;
        CHECK_OK(tome_versions(t, 0, "k", 1, &vs, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(tome_commit(t)); /* nothing staged: no commit */
        CHECK_U64(ts_seq(db), 0);

        /* The same transaction stays usable after a refusal. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 0, "k", 1, "old", 3));
        CHECK_RC(tome_insert(t, 0, "k", 1, small, (size_t)TOME_MAX_VALUE_LEN + 1), TOME_TOOBIG);
        CHECK(txn_value_is(t, 0, "k", 1, "old", 3)); /* the refused write replaced nothing */
        CHECK_OK(tome_insert(t, 0, "k2", 2, small, strlen(small)));
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 1);
        CHECK(ts_has(db, 0, "k", "old"));
        CHECK(ts_has(db, 0, "k2", "1234567"));
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(large_value) {
    size_t size = ts_short() ? ((size_t)4 << 20) : ((size_t)64 << 20);
    uint8_t *big = malloc(size);
    CHECK(big != NULL);
    ts_fill(big, size, 42);
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        CHECK_OK(ts_put(db, 0, "before", "b"));
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 0, "big", 3, big, size));
        CHECK_OK(tome_insert(t, 0, "small", 5, "s", 1));
        CHECK(txn_value_is(t, 0, "big", 3, big, size));
        CHECK_OK(tome_commit(t));
        CHECK_OK(ts_put(db, 0, "after", "a"));
        for (int round = 0; round < 2; round++) {
            CHECK_OK(tome_begin(db, &t));
            CHECK(txn_value_is(t, 0, "big", 3, big, size));
            CHECK(ts_txn_has(t, 0, "small", "s"));
            CHECK(ts_txn_has(t, 0, "before", "b"));
            CHECK(ts_txn_has(t, 0, "after", "a"));
            tome_abort(t);
            CHECK_U64(ts_seq(db), 3);
            if (kind == TS_MEM) break;
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
        }
        CHECK_OK(tome_close(db));
    }
    free(big);
}

/* ------------------------------------------------------------------------ */
/* Reopen, durability options, figures                                      */
/* ------------------------------------------------------------------------ */

/* Dumps the state, reopens, dumps again: the two must be equal. */
static void reopen_same(tome_db **db, const char *path, const ts_key *keys, size_t n, const char *what) {
    char *before = ts_dump(*db, keys, n, true);
    *db = ts_reopen(*db, path, NULL);
    CHECK(*db != NULL);
    char *after = ts_dump(*db, keys, n, true);
    bool same = ts_same(before, after, what);
    free(before);
    free(after);
    CHECK(same);
}

TT_TEST(reopen_after_every_kind_of_operation) {
    static const ts_key keys[] = {{1, "a", 1}, {1, "b", 1}, {1, "c", 1}, {2, "a", 1},
                                  {1, "gone", 4}, {3, "", 0}, {1, "never", 5}};
    const size_t nk = sizeof keys / sizeof keys[0];
    char path[TS_PATH_MAX];
    tome_db *db = ts_new(TS_DIR, path, NULL);
    CHECK(db != NULL);
    reopen_same(&db, path, keys, nk, "empty store");
    if (tt_failed_now) return;
    CHECK_OK(ts_put(db, 1, "a", "1"));
    CHECK_OK(ts_put(db, 1, "gone", "g"));
    reopen_same(&db, path, keys, nk, "after insert");
    if (tt_failed_now) return;
    CHECK_OK(ts_put(db, 1, "a", "2"));
    reopen_same(&db, path, keys, nk, "after overwrite");
    if (tt_failed_now) return;
    CHECK_OK(ts_del(db, 1, "a"));
    reopen_same(&db, path, keys, nk, "after remove");
    if (tt_failed_now) return;
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    CHECK_OK(tome_insert(t, 1, "b", 1, "x", 1));
    CHECK_OK(tome_insert(t, 1, "c", 1, "y", 1));
    CHECK_OK(tome_insert(t, 2, "a", 1, "z", 1));
    CHECK_OK(tome_remove(t, 1, "gone", 4));
    CHECK_OK(tome_insert(t, 3, NULL, 0, NULL, 0));
    CHECK_OK(tome_commit(t));
    reopen_same(&db, path, keys, nk, "after multi-key commit");
    if (tt_failed_now) return;
    CHECK_U64(ts_seq(db), 5);
    CHECK_OK(tome_merge(db));
    reopen_same(&db, path, keys, nk, "after merge");
    if (tt_failed_now) return;
    CHECK_OK(ts_put(db, 1, "a", "3"));
    CHECK_OK(ts_del(db, 1, "c"));
    reopen_same(&db, path, keys, nk, "after writes following a merge");
    if (tt_failed_now) return;
    /* The final state is the expected one, not just a stable one. */
    CHECK(ts_has(db, 1, "a", "3"));
    CHECK(ts_has(db, 1, "b", "x"));
    CHECK(ts_has(db, 1, "c", NULL));
    CHECK(ts_has(db, 2, "a", "z"));
    CHECK(ts_has(db, 1, "gone", NULL));
    CHECK(ts_has(db, 3, "", ""));
    CHECK_U64(ts_seq(db), 7);
    CHECK_OK(tome_close(db));
}

TT_TEST(sync_none_commits_are_kept) {
    int n = ts_short() ? 40 : 200;
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_options o;
        tome_options_init(&o);
        o.sync = TOME_SYNC_NONE;
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, &o);
        CHECK(db != NULL);
        char key[32], val[32];
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "k%04d", i);
            snprintf(val, sizeof val, "v%d", i * 7);
            CHECK_OK(ts_put(db, 5, key, val));
            CHECK(ts_has(db, 5, key, val)); /* visible at once */
            if (i == n / 2) CHECK_OK(tome_sync(db));
        }
        CHECK_OK(tome_sync(db));
        CHECK_OK(ts_del(db, 5, "k0000")); /* after the last sync: kept by close */
        CHECK_U64(ts_seq(db), (uint64_t)n + 1);
        if (kind == TS_DIR) {
            db = ts_reopen(db, path, NULL); /* reopened with the default options */
            CHECK(db != NULL);
        }
        CHECK_U64(ts_seq(db), (uint64_t)n + 1);
        CHECK(ts_has(db, 5, "k0000", NULL));
        for (int i = 1; i < n; i++) {
            snprintf(key, sizeof key, "k%04d", i);
            snprintf(val, sizeof val, "v%d", i * 7);
            CHECK(ts_has(db, 5, key, val));
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(sync_on_any_store) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        tome_db *db = ts_new(kind, NULL, NULL);
        CHECK(db != NULL);
        CHECK_OK(tome_sync(db)); /* empty store */
        CHECK_OK(ts_put(db, 0, "k", "v"));
        CHECK_OK(tome_sync(db));
        CHECK_OK(tome_sync(db)); /* nothing new */
        CHECK(ts_has(db, 0, "k", "v"));
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(last_seq_counts_commits_with_writes) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        uint64_t s = 99;
        CHECK_OK(tome_last_seq(db, &s));
        CHECK_U64(s, 0);
        CHECK_OK(ts_put(db, 0, "a", "1"));
        CHECK_U64(ts_seq(db), 1);
        tome_txn *t = NULL, *t2 = NULL;
        /* No writes, aborted writes, a historical transaction: no seq. */
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        CHECK(ts_txn_has(t, 0, "a", "1"));
        CHECK_OK(tome_commit(t));
        CHECK_OK(tome_begin(db, &t));
        CHECK_OK(tome_insert(t, 0, "b", 1, "2", 1));
        tome_abort(t);
        CHECK_OK(tome_begin_at(db, 1, &t));
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 1);
        /* A conflict uses none either. */
        CHECK_OK(tome_begin(db, &t));
        CHECK(ts_txn_has(t, 0, "a", "1"));
        CHECK_OK(tome_insert(t, 0, "c", 1, "3", 1));
        CHECK_OK(tome_begin(db, &t2));
        CHECK_OK(tome_insert(t2, 0, "a", 1, "4", 1));
        CHECK_OK(tome_commit(t2));
        CHECK_U64(ts_seq(db), 2);
        CHECK_RC(tome_commit(t), TOME_CONFLICT);
        CHECK_U64(ts_seq(db), 2);
        /* Neither does a merge. */
        CHECK_OK(tome_merge(db));
        CHECK_U64(ts_seq(db), 2);
        /* Many keys, one seq. */
        CHECK_OK(tome_begin(db, &t));
        for (int i = 0; i < 10; i++) {
            char k[8];
            snprintf(k, sizeof k, "m%d", i);
            CHECK_OK(tome_insert(t, 1, k, strlen(k), "x", 1));
        }
        CHECK_OK(tome_commit(t));
        CHECK_U64(ts_seq(db), 3);
        if (kind == TS_DIR) {
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            CHECK_U64(ts_seq(db), 3);
            CHECK_OK(ts_put(db, 0, "d", "5"));
            CHECK_U64(ts_seq(db), 4);
        }
        CHECK_OK(tome_close(db));
    }
}

TT_TEST(stats_after_known_workload) {
    for (int kind = TS_DIR; kind <= TS_MEM; kind++) {
        char path[TS_PATH_MAX];
        tome_db *db = ts_new(kind, path, NULL);
        CHECK(db != NULL);
        tome_stats st;
        memset(&st, 0xFF, sizeof st);
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 0);
        CHECK_U64(st.keys_total, 0);
        CHECK_U64(st.versions, 0);
        CHECK_U64(st.live_bytes, 0);
        CHECK_U64(st.last_seq, 0);
        CHECK_U64(st.horizon, 0);

        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));                 /* seq 1 */
        CHECK_OK(tome_insert(t, 1, "a", 1, "aaaa", 4));
        CHECK_OK(tome_insert(t, 1, "b", 1, "bb", 2));
        CHECK_OK(tome_insert(t, 1, "c", 1, "cccccc", 6));
        CHECK_OK(tome_commit(t));
        CHECK_OK(ts_put(db, 1, "b", "BBBBBBBB"));     /* seq 2 */
        CHECK_OK(ts_del(db, 1, "c"));                 /* seq 3 */
        CHECK_OK(ts_put(db, 2, "a", "x"));            /* seq 4 */
        tome_version ver[2];
        size_t n = 0;
        CHECK_OK(ts_versions(db, 2, "a", 1, ver, 2, &n));
        CHECK_EQ(n, 1);
        memset(&st, 0, sizeof st);
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 3);         /* 1/a 1/b 2/a */
        CHECK_U64(st.keys_total, 4);   /* and 1/c in the trash */
        CHECK_U64(st.versions, 6);     /* a:1 b:2 c:2 2/a:1 */
        CHECK_U64(st.last_seq, 4);
        CHECK_U64(st.last_timestamp, ver[0].timestamp);
        CHECK_U64(st.horizon, 0);
        /* Live keys and values: 1+4, 1+8, 1+1 = 16 bytes (a removed key may count its key). */
        CHECK(st.live_bytes >= 16 && st.live_bytes <= 17);
        if (kind == TS_DIR) {
            CHECK(st.segments >= 1);
            CHECK(st.total_bytes > 0);
        }
        CHECK_OK(tome_merge(db));
        memset(&st, 0, sizeof st);
        CHECK_OK(tome_stats_get(db, &st));
        CHECK_U64(st.keys, 3);
        CHECK_U64(st.keys_total, 3);
        CHECK_U64(st.versions, 3);
        CHECK_U64(st.last_seq, 4);
        CHECK_U64(st.last_timestamp, ver[0].timestamp);
        CHECK_U64(st.horizon, 4);
        CHECK_U64(st.live_bytes, 16);
        if (kind == TS_DIR) {
            db = ts_reopen(db, path, NULL);
            CHECK(db != NULL);
            memset(&st, 0, sizeof st);
            CHECK_OK(tome_stats_get(db, &st));
            CHECK_U64(st.keys, 3);
            CHECK_U64(st.keys_total, 3);
            CHECK_U64(st.versions, 3);
            CHECK_U64(st.last_seq, 4);
            CHECK_U64(st.horizon, 4);
            CHECK_U64(st.live_bytes, 16);
        }
        CHECK_OK(tome_close(db));
    }
}

TT_MAIN()
