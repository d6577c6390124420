/*
 * test_kv.c -- conformance of the namespaced store to LDK's KVStore
 * contract, following LDK's own tests: the round trip at
 * testspace/testsubspace/testkey with 32 bytes of 0x2A; every invalid name
 * for every function (121-character names, '.', '/', '#', space, non-ASCII,
 * the empty key, a secondary namespace without a primary, NULL pointers)
 * with proof that nothing was written; 120-character names; TOME_NOTFOUND
 * only for absence (also against a damaged log); list and list_all on the
 * 21 keys of LDK's migration test and the migration into a second store;
 * overwrite long/short/long; empty and 64 MiB values; tome_kv_apply all or
 * nothing; the lazy-remove-then-write rule (also across a process crash);
 * and the history of a namespaced key through the documented slot/key
 * mapping. Every step is checked again after reopening the store.
 * Concurrency and kill tests are in test_kv_conc.c, pagination in
 * test_kv_page.c, FilesystemStore migration and the CLI in test_kv_fs.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/tome.h"
#include "os/os.h"
#include "tt.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static bool short_mode(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && strcmp(s, "0") != 0;
}

/* a fresh store path "<tmpdir>/db" (not created yet) */
static void new_path(char *out, size_t cap) {
    snprintf(out, cap, "%s/db", tt_tmpdir());
}

static tome_db *open_db(const char *path) {
    tome_db *db = NULL;
    int rc = tome_open(path, NULL, &db);
    if (rc) fprintf(stderr, "  open %s: %s: %s\n", path, tome_strerror(rc), tome_errmsg(NULL));
    return db;
}

static tome_db *reopen(tome_db *db, const char *path) {
    int rc = tome_close(db);
    if (rc) {
        fprintf(stderr, "  close: %s\n", tome_strerror(rc));
        return NULL;
    }
    return open_db(path);
}

static uint64_t last_seq(tome_db *db) {
    uint64_t s = UINT64_MAX;
    if (tome_last_seq(db, &s) != TOME_OK) return UINT64_MAX;
    return s;
}

/* true when the key holds exactly want[0..wl) (want NULL: absent) */
static bool kv_is(tome_db *db, const char *p, const char *s, const char *k, const void *want,
                  size_t wl) {
    void *buf = NULL;
    size_t len = 0;
    int rc = tome_kv_read(db, p, s, k, &buf, &len);
    bool ok;
    if (!want) {
        ok = rc == TOME_NOTFOUND && buf == NULL && len == 0;
        if (!ok) fprintf(stderr, "  %s/%s/%s: want absent, got rc %d len %zu\n", p, s, k, rc, len);
    } else {
        ok = rc == TOME_OK && buf != NULL && len == wl && (wl == 0 || memcmp(buf, want, wl) == 0);
        if (!ok)
            fprintf(stderr, "  %s/%s/%s: want %zu bytes, got rc %d len %zu\n", p, s, k, wl, rc,
                    len);
    }
    tome_free(buf);
    return ok;
}

static bool kv_is_str(tome_db *db, const char *p, const char *s, const char *k, const char *want) {
    return kv_is(db, p, s, k, want, want ? strlen(want) : 0);
}

/* true when tome_kv_list gives exactly the n names of want, in order */
static bool list_is(tome_db *db, const char *p, const char *s, const char *const *want,
                    size_t n) {
    char **keys = NULL;
    size_t count = 99;
    int rc = tome_kv_list(db, p, s, &keys, &count);
    bool ok = rc == TOME_OK && count == n && (n > 0 || keys == NULL);
    for (size_t i = 0; ok && i < n; i++) ok = strcmp(keys[i], want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "  list %s/%s: rc %d count %zu, want %zu:", p, s, rc, count, n);
        for (size_t i = 0; rc == TOME_OK && i < count; i++) fprintf(stderr, " %s", keys[i]);
        fprintf(stderr, "\n");
    }
    tome_free(keys);
    return ok;
}

static size_t count_all(tome_db *db) {
    tome_kv_key *keys = NULL;
    size_t n = 0;
    if (tome_kv_list_all(db, &keys, &n) != TOME_OK) return SIZE_MAX;
    tome_free(keys);
    return n;
}

static void fill(uint8_t *buf, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

/* a name of n copies of c */
static char *rep(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
/* LDK's round trip, with a reopen after every step                         */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_roundtrip_ldk) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    uint8_t data[32];
    memset(data, 0x2A, sizeof data);
    const char *p = "testspace", *s = "testsubspace", *k = "testkey";

    CHECK(kv_is(db, p, s, k, NULL, 0));
    CHECK_OK(tome_kv_write(db, p, s, k, data, sizeof data));
    CHECK(kv_is(db, p, s, k, data, sizeof data));
    const char *one[] = {"testkey"};
    CHECK(list_is(db, p, s, one, 1));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, p, s, k, data, sizeof data));
    CHECK(list_is(db, p, s, one, 1));
    /* namespace names never appear as keys; unknown namespaces are empty */
    CHECK(list_is(db, p, "", NULL, 0));
    CHECK(list_is(db, "", "", NULL, 0));
    CHECK(list_is(db, "testspac", "testsubspace", NULL, 0));
    CHECK(list_is(db, p, "testsubspac", NULL, 0));
    CHECK(kv_is(db, p, s, "testke", NULL, 0));
    CHECK(kv_is(db, p, s, "testkeyy", NULL, 0));
    CHECK(kv_is(db, p, "", k, NULL, 0));
    CHECK_EQ(count_all(db), 1);

    CHECK_OK(tome_kv_remove(db, p, s, k, false));
    CHECK(kv_is(db, p, s, k, NULL, 0));
    CHECK(list_is(db, p, s, NULL, 0));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, p, s, k, NULL, 0));
    CHECK(list_is(db, p, s, NULL, 0));
    CHECK_EQ(count_all(db), 0);
    /* removing an absent key succeeds, lazily or not */
    CHECK_OK(tome_kv_remove(db, p, s, k, false));
    CHECK_OK(tome_kv_remove(db, p, s, k, true));
    CHECK_OK(tome_kv_remove(db, "nothing", "", "here", false));

    /* the longest names (120 characters) work in every position */
    char *m = rep('A', 120);
    CHECK_OK(tome_kv_write(db, m, m, m, data, sizeof data));
    CHECK(kv_is(db, m, m, m, data, sizeof data));
    const char *mm[] = {m};
    CHECK(list_is(db, m, m, mm, 1));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, m, m, m, data, sizeof data));
    CHECK(list_is(db, m, m, mm, 1));
    tome_kv_key *all = NULL;
    size_t n = 0;
    CHECK_OK(tome_kv_list_all(db, &all, &n));
    CHECK_EQ(n, 1);
    CHECK(!strcmp(all[0].primary_ns, m) && !strcmp(all[0].secondary_ns, m) &&
          !strcmp(all[0].key, m));
    tome_free(all);
    CHECK_OK(tome_kv_remove(db, m, m, m, false));
    CHECK(list_is(db, m, m, NULL, 0));
    CHECK(kv_is(db, m, m, m, NULL, 0));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, m, m, m, NULL, 0));
    free(m);

    /* every character of the alphabet, and empty namespaces */
    const char *alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    CHECK_OK(tome_kv_write(db, alpha, alpha, alpha, "x", 1));
    CHECK_OK(tome_kv_write(db, "", "", "manager", "mgr", 3));
    CHECK_OK(tome_kv_write(db, "monitors", "", "abc_0", "mon", 3));
    CHECK(db = reopen(db, path));
    CHECK(kv_is_str(db, alpha, alpha, alpha, "x"));
    CHECK(kv_is_str(db, "", "", "manager", "mgr"));
    CHECK(kv_is_str(db, "monitors", "", "abc_0", "mon"));
    const char *mgr[] = {"manager"}, *mon[] = {"abc_0"};
    CHECK(list_is(db, "", "", mgr, 1));
    CHECK(list_is(db, "monitors", "", mon, 1));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Invalid names: every case, every function, nothing written               */
/* ------------------------------------------------------------------------ */

struct bad3 { const char *p, *s, *k; };

TT_TEST(kv_invalid_names) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    CHECK_OK(tome_kv_write(db, "ok", "ok", "ok", "keep", 4));
    uint64_t seq0 = last_seq(db);

    char *l121 = rep('a', 121);
    static const char *chars[] = {"a.b", "a/b", "a#b", "a b", "caf\xc3\xa9", ".", "/", "#",
                                  " ", "\xff", "a\tb", "a\nb", "a:b", "[empty]", "a*"};
    struct bad3 bad[128];
    size_t nb = 0;
    /* too long, in each position */
    bad[nb++] = (struct bad3){l121, "s", "k"};
    bad[nb++] = (struct bad3){"p", l121, "k"};
    bad[nb++] = (struct bad3){"p", "s", l121};
    bad[nb++] = (struct bad3){l121, "", "k"};
    /* bad characters, in each position */
    for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++) {
        bad[nb++] = (struct bad3){chars[i], "s", "k"};
        bad[nb++] = (struct bad3){"p", chars[i], "k"};
        bad[nb++] = (struct bad3){"p", "s", chars[i]};
    }
    /* empty key; secondary without primary; NULL */
    bad[nb++] = (struct bad3){"", "", ""};
    bad[nb++] = (struct bad3){"p", "s", ""};
    bad[nb++] = (struct bad3){"", "s", "k"};
    bad[nb++] = (struct bad3){"", "testsubspace", "testkey"};
    bad[nb++] = (struct bad3){NULL, "", "k"};
    bad[nb++] = (struct bad3){"p", NULL, "k"};
    bad[nb++] = (struct bad3){"p", "s", NULL};
    bad[nb++] = (struct bad3){NULL, NULL, NULL};

    for (size_t i = 0; i < nb; i++) {
        const struct bad3 *b = &bad[i];
        void *buf = (void *)1;
        size_t len = 7;
        CHECK_RC(tome_kv_read(db, b->p, b->s, b->k, &buf, &len), TOME_INVALID);
        CHECK(buf == NULL && len == 0);
        CHECK_RC(tome_kv_write(db, b->p, b->s, b->k, "v", 1), TOME_INVALID);
        CHECK_RC(tome_kv_write(db, b->p, b->s, b->k, NULL, 0), TOME_INVALID);
        CHECK_RC(tome_kv_remove(db, b->p, b->s, b->k, false), TOME_INVALID);
        CHECK_RC(tome_kv_remove(db, b->p, b->s, b->k, true), TOME_INVALID);
        tome_kv_op w = {TOME_KV_WRITE, b->p, b->s, b->k, "v", 1};
        tome_kv_op r = {TOME_KV_REMOVE, b->p, b->s, b->k, NULL, 0};
        CHECK_RC(tome_kv_apply(db, &w, 1), TOME_INVALID);
        CHECK_RC(tome_kv_apply(db, &r, 1), TOME_INVALID);
        /* one bad operation after good ones: nothing at all is written */
        tome_kv_op ops[3] = {{TOME_KV_WRITE, "good", "", "one", "1", 1},
                             {TOME_KV_REMOVE, "ok", "ok", "ok", NULL, 0},
                             w};
        CHECK_RC(tome_kv_apply(db, ops, 3), TOME_INVALID);
        ops[2] = r;
        CHECK_RC(tome_kv_apply(db, ops, 3), TOME_INVALID);
        uint8_t kb[TOME_KV_KEY_MAX];
        size_t kl = 5;
        CHECK_RC(tome_kv_key_bytes(b->p, b->s, b->k, kb, sizeof kb, &kl), TOME_INVALID);
        CHECK_EQ(kl, 0);
    }
    /* a secondary without a primary is invalid even if nothing is there */
    const char *empty_key = "";
    CHECK_RC(tome_kv_write(db, "p", "s", empty_key, "v", 1), TOME_INVALID);

    /* the namespace pairs of list and list_page */
    struct bad3 badns[] = {{l121, "", NULL}, {"p", l121, NULL}, {"a.b", "", NULL},
                           {"p", "a/b", NULL}, {"#", "", NULL}, {"p", " ", NULL},
                           {"caf\xc3\xa9", "", NULL}, {"", "s", NULL}, {NULL, "", NULL},
                           {"p", NULL, NULL}};
    for (size_t i = 0; i < sizeof badns / sizeof badns[0]; i++) {
        char **keys = (char **)1, *next = (char *)1;
        size_t n = 9;
        CHECK_RC(tome_kv_list(db, badns[i].p, badns[i].s, &keys, &n), TOME_INVALID);
        CHECK(keys == NULL && n == 0);
        keys = (char **)1;
        n = 9;
        CHECK_RC(tome_kv_list_page(db, badns[i].p, badns[i].s, NULL, 0, &keys, &n, &next),
                 TOME_INVALID);
        CHECK(keys == NULL && n == 0 && next == NULL);
    }

    /* unknown operations and bad buffers */
    int badops[] = {0, 3, -1, TOME_KV_WRITE | TOME_KV_REMOVE, 100};
    for (size_t i = 0; i < sizeof badops / sizeof badops[0]; i++) {
        tome_kv_op ops[2] = {{TOME_KV_WRITE, "good", "", "two", "2", 1},
                             {badops[i], "good", "", "three", "3", 1}};
        CHECK_RC(tome_kv_apply(db, ops, 2), TOME_INVALID);
    }
    tome_kv_op nullbuf[2] = {{TOME_KV_WRITE, "good", "", "four", "4", 1},
                             {TOME_KV_WRITE, "good", "", "five", NULL, 3}};
    CHECK_RC(tome_kv_apply(db, nullbuf, 2), TOME_INVALID);
    CHECK_RC(tome_kv_write(db, "good", "", "six", NULL, 3), TOME_INVALID);
    CHECK_RC(tome_kv_apply(db, NULL, 2), TOME_INVALID);
    CHECK_OK(tome_kv_apply(db, NULL, 0));
    static const char small[8];
    CHECK_RC(tome_kv_write(db, "good", "", "big", small, (size_t)TOME_MAX_VALUE_LEN + 1),
             TOME_TOOBIG);
    tome_kv_op big[2] = {{TOME_KV_WRITE, "good", "", "seven", "7", 1},
                         {TOME_KV_WRITE, "good", "", "big", small, (size_t)TOME_MAX_VALUE_LEN + 1}};
    CHECK_RC(tome_kv_apply(db, big, 2), TOME_TOOBIG);

    /* NULL handle and NULL out pointers */
    void *buf = NULL;
    size_t len = 0, n = 0;
    char **keys = NULL, *next = NULL;
    tome_kv_key *all = NULL;
    tome_kv_op op = {TOME_KV_WRITE, "good", "", "eight", "8", 1};
    char kbuf[TOME_KV_KEY_MAX];
    CHECK_RC(tome_kv_read(NULL, "ok", "ok", "ok", &buf, &len), TOME_INVALID);
    CHECK_RC(tome_kv_read(db, "ok", "ok", "ok", NULL, &len), TOME_INVALID);
    CHECK_RC(tome_kv_read(db, "ok", "ok", "ok", &buf, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_write(NULL, "ok", "ok", "ok", "v", 1), TOME_INVALID);
    CHECK_RC(tome_kv_remove(NULL, "ok", "ok", "ok", false), TOME_INVALID);
    CHECK_RC(tome_kv_list(NULL, "ok", "ok", &keys, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list(db, "ok", "ok", NULL, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list(db, "ok", "ok", &keys, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_list_all(NULL, &all, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list_all(db, NULL, &n), TOME_INVALID);
    CHECK_RC(tome_kv_list_all(db, &all, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_list_page(NULL, "ok", "ok", NULL, 0, &keys, &n, &next), TOME_INVALID);
    CHECK_RC(tome_kv_list_page(db, "ok", "ok", NULL, 0, NULL, &n, &next), TOME_INVALID);
    CHECK_RC(tome_kv_list_page(db, "ok", "ok", NULL, 0, &keys, NULL, &next), TOME_INVALID);
    CHECK_RC(tome_kv_list_page(db, "ok", "ok", NULL, 0, &keys, &n, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_apply(NULL, &op, 1), TOME_INVALID);
    CHECK_RC(tome_kv_key_bytes("ok", "ok", "ok", NULL, 10, &len), TOME_INVALID);
    CHECK_RC(tome_kv_key_bytes("ok", "ok", "ok", kbuf, sizeof kbuf, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_import_fs(NULL, "/", NULL), TOME_INVALID);
    CHECK_RC(tome_kv_import_fs(db, NULL, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_export_fs(NULL, "/tmp", 0, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_export_fs(db, NULL, 0, NULL), TOME_INVALID);
    CHECK_RC(tome_kv_export_fs(db, "/nonexistent-kv-export", 0x80, NULL), TOME_INVALID);

    /* the error detail names the problem */
    CHECK_RC(tome_kv_write(db, "", "s", "k", "v", 1), TOME_INVALID);
    CHECK(strstr(tome_errmsg(db), "secondary") != NULL);

    /* nothing of all that was written: no commit, the one key as it was */
    CHECK_U64(last_seq(db), seq0);
    CHECK_EQ(count_all(db), 1);
    CHECK(kv_is_str(db, "ok", "ok", "ok", "keep"));
    CHECK(kv_is_str(db, "good", "", "one", NULL));
    CHECK(db = reopen(db, path));
    CHECK_U64(last_seq(db), seq0);
    CHECK_EQ(count_all(db), 1);
    CHECK(kv_is_str(db, "ok", "ok", "ok", "keep"));
    free(l121);
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* NOTFOUND only for absence                                                */
/* ------------------------------------------------------------------------ */

/* Finds the first occurrence of pat in the segment files (*.log, *.mrg) of
 * the store dir; flips one byte in its middle. 0 on success. */
static int damage_value(const char *dir, const uint8_t *pat, size_t plen) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    int done = -1;
    while (done != 0 && (de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || (strcmp(de->d_name + nl - 4, ".log") && strcmp(de->d_name + nl - 4, ".mrg")))
            continue;
        char fp[1024];
        snprintf(fp, sizeof fp, "%s/%s", dir, de->d_name);
        int fd = open(fp, O_RDWR);
        if (fd < 0) continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size > 0) {
            uint8_t *buf = malloc((size_t)st.st_size);
            if (buf && pread(fd, buf, (size_t)st.st_size, 0) == st.st_size) {
                uint8_t *hit = memmem(buf, (size_t)st.st_size, pat, plen);
                if (hit) {
                    off_t off = (off_t)(hit - buf) + (off_t)plen / 2;
                    uint8_t c = (uint8_t)(buf[off] ^ 0x55);
                    if (pwrite(fd, &c, 1, off) == 1 && fsync(fd) == 0) done = 0;
                }
            }
            free(buf);
        }
        close(fd);
    }
    closedir(d);
    return done;
}

TT_TEST(kv_notfound_only_for_absence) {
    for (int drop_index = 0; drop_index < 2; drop_index++) {
        char path[700];
        new_path(path, sizeof path);
        tome_db *db = open_db(path);
        CHECK(db);
        uint8_t val[4096];
        fill(val, sizeof val, 42 + (uint64_t)drop_index);
        CHECK_OK(tome_kv_write(db, "", "", "manager", val, sizeof val));
        CHECK_OK(tome_kv_write(db, "monitors", "", "later", "x", 1));
        CHECK_OK(tome_kv_write(db, "monitors", "", "last", "y", 1));
        /* absent, removed, lazily removed: NOTFOUND */
        CHECK(kv_is(db, "", "", "nobody", NULL, 0));
        CHECK_OK(tome_kv_remove(db, "monitors", "", "later", false));
        CHECK(kv_is(db, "monitors", "", "later", NULL, 0));
        CHECK_OK(tome_kv_remove(db, "monitors", "", "last", true));
        CHECK(kv_is(db, "monitors", "", "last", NULL, 0));
        CHECK_OK(tome_kv_write(db, "monitors", "", "after", "z", 1));
        CHECK_OK(tome_close(db));

        /* damage the manager's value, which is not in the newest commit */
        CHECK_EQ(damage_value(path, val + 1024, 64), 0);
        if (drop_index) {
            char ip[800];
            snprintf(ip, sizeof ip, "%s/INDEX", path);
            unlink(ip);
        }
        db = NULL;
        int orc = tome_open(path, NULL, &db);
        fprintf(stderr, "  damaged store (%s): open gives %s\n", drop_index ? "no INDEX" : "INDEX",
                tt_rcname(orc));
        if (orc != TOME_OK) {
            /* refusing to open a damaged store is fine; "empty" is not */
            CHECK_RC(orc, TOME_CORRUPT);
            continue;
        }
        void *buf = NULL;
        size_t len = 0;
        int rc = tome_kv_read(db, "", "", "manager", &buf, &len);
        if (rc == TOME_OK) {
            /* the damage went unnoticed: it must at least not be this value */
            CHECK(len != sizeof val || memcmp(buf, val, len) != 0);
            tome_free(buf);
            TT_FAIL_("damaged value read back as TOME_OK");
        }
        fprintf(stderr, "  damaged value: tome_kv_read gives %s\n", tt_rcname(rc));
        CHECK(rc != TOME_NOTFOUND);
        CHECK(rc == TOME_CORRUPT || rc == TOME_IO);
        CHECK(buf == NULL && len == 0);
        /* other keys are unaffected; absent keys are still NOTFOUND */
        CHECK(kv_is_str(db, "monitors", "", "after", "z"));
        CHECK(kv_is(db, "monitors", "", "later", NULL, 0));
        CHECK_OK(tome_close(db));
    }
}

/* Allocation failure: the Nth allocation from now fails. */
static long alloc_countdown = -1;   /* < 0: never fail */
static long alloc_failures;

static void *failing_malloc(size_t n) {
    if (alloc_countdown == 0) {
        alloc_failures++;
        return NULL;
    }
    if (alloc_countdown > 0) alloc_countdown--;
    return malloc(n);
}

static void *failing_realloc(void *p, size_t n) {
    if (alloc_countdown == 0) {
        alloc_failures++;
        return NULL;
    }
    if (alloc_countdown > 0) alloc_countdown--;
    return realloc(p, n);
}

static const tome_alloc_hooks failing_hooks = {failing_malloc, failing_realloc, free};

TT_TEST(kv_nomem_is_never_notfound) {
    /* running out of memory in any allocation of a read, list or write
     * gives TOME_NOMEM (or success), never TOME_NOTFOUND nor a wrong
     * answer; a failed write leaves the old value */
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    uint8_t val[3000];
    fill(val, sizeof val, 7);
    CHECK_OK(tome_kv_write(db, "", "", "manager", val, sizeof val));
    CHECK_OK(tome_kv_write(db, "monitors", "", "a", "1", 1));
    CHECK_OK(tome_kv_write(db, "monitors", "", "b", "2", 1));
    int reads_ok = 0, reads_nomem = 0;
    for (long n = 0; n < 200; n++) {
        void *buf = NULL;
        size_t len = 0;
        alloc_countdown = n;
        alloc_failures = 0;
        tome_alloc_set_hooks(&failing_hooks);
        int rc = tome_kv_read(db, "", "", "manager", &buf, &len);
        tome_alloc_set_hooks(NULL);
        if (rc == TOME_OK) {
            reads_ok++;
            CHECK_MEM(buf, len, val, sizeof val);
        } else {
            reads_nomem++;
            CHECK_RC(rc, TOME_NOMEM);
            CHECK(alloc_failures > 0);
        }
        tome_free(buf);

        char **keys = NULL;
        size_t count = 0;
        alloc_countdown = n;
        tome_alloc_set_hooks(&failing_hooks);
        rc = tome_kv_list(db, "monitors", "", &keys, &count);
        tome_alloc_set_hooks(NULL);
        if (rc == TOME_OK) {
            CHECK_EQ(count, 2);
            CHECK(!strcmp(keys[0], "a") && !strcmp(keys[1], "b"));
        } else {
            CHECK_RC(rc, TOME_NOMEM);
        }
        tome_free(keys);

        char v[32];
        snprintf(v, sizeof v, "w%ld", n);
        alloc_countdown = n;
        tome_alloc_set_hooks(&failing_hooks);
        rc = tome_kv_write(db, "monitors", "", "a", v, strlen(v));
        tome_alloc_set_hooks(NULL);
        if (rc == TOME_OK) {
            CHECK(kv_is_str(db, "monitors", "", "a", v));
        } else {
            CHECK_RC(rc, TOME_NOMEM);
            /* still a whole value: either "1" or an earlier "w.." */
            void *b = NULL;
            size_t bl = 0;
            CHECK_OK(tome_kv_read(db, "monitors", "", "a", &b, &bl));
            CHECK(bl >= 1 && (((char *)b)[0] == '1' || ((char *)b)[0] == 'w'));
            tome_free(b);
            /* and the store keeps working */
            CHECK_OK(tome_kv_write(db, "monitors", "", "a", "1", 1));
        }
    }
    alloc_countdown = -1;
    CHECK(reads_ok > 0 && reads_nomem > 0);   /* both paths were taken */
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, "", "", "manager", val, sizeof val));
    const char *ab[] = {"a", "b"};
    CHECK(list_is(db, "monitors", "", ab, 2));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* The 21 keys of LDK's migration test; list, list_all, migration           */
/* ------------------------------------------------------------------------ */

static const char *const prims[] = {"", "testspaceb", "testspacec"};
static const char *const secs[] = {"", "testsubspaceb", "testsubspacec"};
static const char *const keys3[] = {"testkeya", "testkeyb", "testkeyc"};

static void value_of(char *out, size_t cap, const char *p, const char *s, const char *k) {
    snprintf(out, cap, "value of %s|%s|%s", p, s, k);
}

/* true when the store holds exactly the 21 keys, each with its value */
static bool has_21(tome_db *db) {
    tome_kv_key *all = NULL;
    size_t n = 0;
    if (tome_kv_list_all(db, &all, &n) != TOME_OK) return false;
    bool ok = n == 21;
    size_t seen = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 3; c++) {
                if (!prims[a][0] && secs[b][0]) continue;
                bool found = false;
                for (size_t i = 0; i < n; i++)
                    if (!strcmp(all[i].primary_ns, prims[a]) && !strcmp(all[i].secondary_ns, secs[b]) &&
                        !strcmp(all[i].key, keys3[c]))
                        found = true;
                if (!found) fprintf(stderr, "  list_all lacks %s/%s/%s\n", prims[a], secs[b], keys3[c]);
                ok = ok && found;
                char v[200];
                value_of(v, sizeof v, prims[a], secs[b], keys3[c]);
                ok = ok && kv_is_str(db, prims[a], secs[b], keys3[c], v);
                seen++;
            }
    tome_free(all);
    if (seen != 21) return false;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++) {
            if (!prims[a][0] && secs[b][0]) continue;
            ok = ok && list_is(db, prims[a], secs[b], keys3, 3);
        }
    return ok;
}

TT_TEST(kv_list_21_and_migrate) {
    char path[700], path2[700];
    new_path(path, sizeof path);
    new_path(path2, sizeof path2);
    tome_db *db = open_db(path);
    CHECK(db);
    size_t written = 0, refused = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 3; c++) {
                char v[200];
                value_of(v, sizeof v, prims[a], secs[b], keys3[c]);
                int rc = tome_kv_write(db, prims[a], secs[b], keys3[c], v, strlen(v));
                if (!prims[a][0] && secs[b][0]) {
                    CHECK_RC(rc, TOME_INVALID);
                    refused++;
                } else {
                    CHECK_OK(rc);
                    written++;
                }
            }
    CHECK_EQ(written, 21);
    CHECK_EQ(refused, 6);
    CHECK(has_21(db));
    /* the pairs with a secondary but no primary cannot even be listed */
    char **k = NULL;
    size_t n = 0;
    CHECK_RC(tome_kv_list(db, "", "testsubspaceb", &k, &n), TOME_INVALID);
    /* no namespace name shows up as a key */
    CHECK(list_is(db, "testspaceb", "", keys3, 3));
    CHECK(db = reopen(db, path));
    CHECK(has_21(db));

    /* LDK's migrate_kv_store_data: list_all, then read and write each */
    tome_db *dst = open_db(path2);
    CHECK(dst);
    tome_kv_key *all = NULL;
    CHECK_OK(tome_kv_list_all(db, &all, &n));
    CHECK_EQ(n, 21);
    for (size_t i = 0; i < n; i++) {
        void *buf = NULL;
        size_t len = 0;
        CHECK_OK(tome_kv_read(db, all[i].primary_ns, all[i].secondary_ns, all[i].key, &buf, &len));
        CHECK_OK(tome_kv_write(dst, all[i].primary_ns, all[i].secondary_ns, all[i].key, buf, len));
        tome_free(buf);
    }
    tome_free(all);
    CHECK(has_21(dst));
    CHECK(dst = reopen(dst, path2));
    CHECK(has_21(dst));
    /* compared key by key, in both directions */
    tome_kv_key *a1 = NULL, *a2 = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK_OK(tome_kv_list_all(db, &a1, &n1));
    CHECK_OK(tome_kv_list_all(dst, &a2, &n2));
    CHECK_EQ(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        CHECK(!strcmp(a1[i].primary_ns, a2[i].primary_ns));
        CHECK(!strcmp(a1[i].secondary_ns, a2[i].secondary_ns));
        CHECK(!strcmp(a1[i].key, a2[i].key));
        void *b1 = NULL, *b2 = NULL;
        size_t l1 = 0, l2 = 0;
        CHECK_OK(tome_kv_read(db, a1[i].primary_ns, a1[i].secondary_ns, a1[i].key, &b1, &l1));
        CHECK_OK(tome_kv_read(dst, a2[i].primary_ns, a2[i].secondary_ns, a2[i].key, &b2, &l2));
        CHECK_MEM(b1, l1, b2, l2);
        tome_free(b1);
        tome_free(b2);
    }
    tome_free(a1);
    tome_free(a2);
    CHECK_OK(tome_close(dst));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Values: long/short/long, empty, 64 MiB                                   */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_overwrite_long_short_long) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    size_t l1 = 100000, l3 = 250000;
    uint8_t *v1 = malloc(l1), *v3 = malloc(l3);
    fill(v1, l1, 1);
    fill(v3, l3, 3);
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan", v1, l1));
    CHECK(kv_is(db, "monitors", "", "chan", v1, l1));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, "monitors", "", "chan", v1, l1));
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan", "abc", 3));
    CHECK(kv_is_str(db, "monitors", "", "chan", "abc"));
    CHECK(db = reopen(db, path));
    CHECK(kv_is_str(db, "monitors", "", "chan", "abc"));
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan", v3, l3));
    CHECK(kv_is(db, "monitors", "", "chan", v3, l3));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, "monitors", "", "chan", v3, l3));
    const char *one[] = {"chan"};
    CHECK(list_is(db, "monitors", "", one, 1));
    CHECK_OK(tome_close(db));
    free(v1);
    free(v3);
}

TT_TEST(kv_empty_and_huge_values) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    /* the empty value is a value, distinct from absence */
    CHECK_OK(tome_kv_write(db, "", "", "empty", NULL, 0));
    CHECK_OK(tome_kv_write(db, "", "", "empty2", "ignored", 0));
    CHECK(kv_is(db, "", "", "empty", "", 0));
    CHECK(kv_is(db, "", "", "empty2", "", 0));
    CHECK(kv_is(db, "", "", "absent", NULL, 0));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, "", "", "empty", "", 0));
    const char *both[] = {"empty", "empty2"};
    CHECK(list_is(db, "", "", both, 2));

    size_t big = short_mode() ? (4u << 20) : (64u << 20);
    uint8_t *v = malloc(big);
    CHECK(v);
    fill(v, big, 64);
    CHECK_OK(tome_kv_write(db, "", "", "network_graph", v, big));
    CHECK(kv_is(db, "", "", "network_graph", v, big));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, "", "", "network_graph", v, big));
    /* and back to empty */
    CHECK_OK(tome_kv_write(db, "", "", "network_graph", NULL, 0));
    CHECK(kv_is(db, "", "", "network_graph", "", 0));
    CHECK(db = reopen(db, path));
    CHECK(kv_is(db, "", "", "network_graph", "", 0));
    CHECK(kv_is(db, "", "", "empty", "", 0));
    free(v);
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* tome_kv_apply                                                            */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_apply_atomic_and_ordered) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    CHECK_OK(tome_kv_write(db, "monitors", "", "old", "gone soon", 9));
    uint64_t s0 = last_seq(db);
    tome_kv_op ops[] = {
        {TOME_KV_WRITE, "", "", "manager", "m1", 2},
        {TOME_KV_WRITE, "monitors", "", "a", "A1", 2},
        {TOME_KV_WRITE, "monitors", "", "b", "B1", 2},
        {TOME_KV_REMOVE, "monitors", "", "old", NULL, 0},
        {TOME_KV_WRITE, "monitors", "", "a", "A2", 2},      /* later wins */
        {TOME_KV_WRITE, "monitor_updates", "a", "1", "u1", 2},
        {TOME_KV_REMOVE, "monitor_updates", "a", "1", NULL, 0}, /* created, then removed */
        {TOME_KV_REMOVE, "nothing", "", "there", NULL, 0},
        {TOME_KV_WRITE, "monitor_updates", "a", "2", "u2", 2},
    };
    size_t nops = sizeof ops / sizeof ops[0];
    CHECK_OK(tome_kv_apply(db, ops, nops));
    CHECK_U64(last_seq(db), s0 + 1);   /* one commit */
    for (int round = 0; round < 2; round++) {
        CHECK(kv_is_str(db, "", "", "manager", "m1"));
        CHECK(kv_is_str(db, "monitors", "", "a", "A2"));
        CHECK(kv_is_str(db, "monitors", "", "b", "B1"));
        CHECK(kv_is_str(db, "monitors", "", "old", NULL));
        CHECK(kv_is_str(db, "monitor_updates", "a", "1", NULL));
        CHECK(kv_is_str(db, "monitor_updates", "a", "2", "u2"));
        const char *ab[] = {"a", "b"}, *two[] = {"2"};
        CHECK(list_is(db, "monitors", "", ab, 2));
        CHECK(list_is(db, "monitor_updates", "a", two, 1));
        CHECK_EQ(count_all(db), 4);
        CHECK(db = reopen(db, path));
    }

    /* one invalid operation anywhere: nothing at all */
    uint64_t s1 = last_seq(db);
    tome_kv_op bad[] = {
        {TOME_KV_WRITE, "", "", "manager", "m2", 2},
        {TOME_KV_REMOVE, "monitors", "", "a", NULL, 0},
        {TOME_KV_WRITE, "monitors", "", "c", "C", 1},
        {TOME_KV_WRITE, "monitors", "", "bad.key", "X", 1},
    };
    CHECK_RC(tome_kv_apply(db, bad, 4), TOME_INVALID);
    CHECK_U64(last_seq(db), s1);
    CHECK(kv_is_str(db, "", "", "manager", "m1"));
    CHECK(kv_is_str(db, "monitors", "", "a", "A2"));
    CHECK(kv_is_str(db, "monitors", "", "c", NULL));
    CHECK(db = reopen(db, path));
    CHECK_U64(last_seq(db), s1);
    CHECK(kv_is_str(db, "", "", "manager", "m1"));
    CHECK(kv_is_str(db, "monitors", "", "c", NULL));
    CHECK_EQ(count_all(db), 4);

    /* 20 monitors of 4 KiB and the manager in one commit (rust-lightning
     * issue 4457) */
    tome_kv_op many[21];
    char names[20][16];
    uint8_t vals[20][4096];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "chan_%02d", i);
        fill(vals[i], sizeof vals[i], 100 + (uint64_t)i);
        many[i] = (tome_kv_op){TOME_KV_WRITE, "monitors", "", names[i], vals[i], sizeof vals[i]};
    }
    many[20] = (tome_kv_op){TOME_KV_WRITE, "", "", "manager", "m3", 2};
    uint64_t s2 = last_seq(db);
    CHECK_OK(tome_kv_apply(db, many, 21));
    CHECK_U64(last_seq(db), s2 + 1);
    CHECK(db = reopen(db, path));
    for (int i = 0; i < 20; i++) CHECK(kv_is(db, "monitors", "", names[i], vals[i], 4096));
    CHECK(kv_is_str(db, "", "", "manager", "m3"));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Lazy remove, then write: the write wins                                  */
/* ------------------------------------------------------------------------ */

/* Runs fn in a child process on the store at path, which ends without
 * closing the store (a process crash); returns the child's exit status. */
static int in_crashing_child(const char *path, int (*fn)(tome_db *)) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        tome_db *db = NULL;
        if (tome_open(path, NULL, &db) != TOME_OK) _exit(10);
        _exit(fn(db));
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int child_lazy_then_write(tome_db *db) {
    if (tome_kv_write(db, "monitors", "", "k", "old", 3)) return 1;
    if (tome_kv_remove(db, "monitors", "", "k", true)) return 2;
    if (tome_kv_write(db, "monitors", "", "k", "new", 3)) return 3;
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        if (tome_kv_remove(db, "monitors", "", "loop", true)) return 4;
        if (tome_kv_write(db, "monitors", "", "loop", v, strlen(v))) return 5;
    }
    return 0;
}

static int child_lazy_then_remove(tome_db *db) {
    if (tome_kv_write(db, "monitors", "", "r", "old", 3)) return 1;
    if (tome_kv_remove(db, "monitors", "", "r", true)) return 2;
    if (tome_kv_remove(db, "monitors", "", "r", false)) return 3;  /* absent: still durable */
    return 0;
}

static int child_lazy_only(tome_db *db) {
    if (tome_kv_write(db, "monitors", "", "l", "old", 3)) return 1;
    if (tome_kv_remove(db, "monitors", "", "l", true)) return 2;
    return 0;
}

TT_TEST(kv_lazy_remove_then_write) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    CHECK_OK(tome_kv_write(db, "", "", "k", "v1", 2));
    CHECK_OK(tome_kv_remove(db, "", "", "k", true));
    CHECK(kv_is_str(db, "", "", "k", NULL));   /* visible at once */
    CHECK(list_is(db, "", "", NULL, 0));
    CHECK_OK(tome_kv_write(db, "", "", "k", "v2", 2));
    CHECK(kv_is_str(db, "", "", "k", "v2"));
    CHECK(db = reopen(db, path));
    CHECK(kv_is_str(db, "", "", "k", "v2"));
    /* many rounds, the write always last */
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof v, "r%d", i);
        CHECK_OK(tome_kv_remove(db, "", "", "k", true));
        CHECK_OK(tome_kv_write(db, "", "", "k", v, strlen(v)));
        CHECK(kv_is_str(db, "", "", "k", v));
    }
    CHECK(db = reopen(db, path));
    CHECK(kv_is_str(db, "", "", "k", "r19"));
    CHECK_OK(tome_close(db));

    /* the same in a process that dies without closing the store */
    CHECK_EQ(in_crashing_child(path, child_lazy_then_write), 0);
    CHECK(db = open_db(path));
    CHECK(kv_is_str(db, "monitors", "", "k", "new"));
    CHECK(kv_is_str(db, "monitors", "", "loop", "v49"));
    CHECK_OK(tome_close(db));
    /* a non-lazy remove of a lazily removed key is durable */
    CHECK_EQ(in_crashing_child(path, child_lazy_then_remove), 0);
    CHECK(db = open_db(path));
    CHECK(kv_is_str(db, "monitors", "", "r", NULL));
    CHECK_OK(tome_close(db));
    /* a lazy remove survives a process crash (only a machine crash may
     * lose it) */
    CHECK_EQ(in_crashing_child(path, child_lazy_only), 0);
    CHECK(db = open_db(path));
    CHECK(kv_is_str(db, "monitors", "", "l", NULL));
    const char *mon[] = {"k", "loop"};
    CHECK(list_is(db, "monitors", "", mon, 2));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* History through the documented mapping                                   */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_history_mapping) {
    char path[700];
    new_path(path, sizeof path);
    tome_db *db = open_db(path);
    CHECK(db);
    uint8_t kb[TOME_KV_KEY_MAX];
    size_t kl = 0;
    CHECK_OK(tome_kv_key_bytes("monitors", "", "chan_1", kb, sizeof kb, &kl));
    CHECK_STRMEM(kb, kl, "monitors//chan_1");
    CHECK_RC(tome_kv_key_bytes("monitors", "", "chan_1", kb, 15, &kl), TOME_TOOBIG);
    CHECK_OK(tome_kv_key_bytes("", "", "manager", kb, sizeof kb, &kl));
    CHECK_STRMEM(kb, kl, "//manager");
    CHECK_OK(tome_kv_key_bytes("a", "b", "c", kb, sizeof kb, &kl));
    CHECK_STRMEM(kb, kl, "a/b/c");

    uint64_t seqs[5];
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan_1", "first", 5));
    seqs[0] = last_seq(db);
    CHECK_OK(tome_kv_write(db, "monitors", "", "other", "x", 1));
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan_1", "second!", 7));
    seqs[1] = last_seq(db);
    CHECK_OK(tome_kv_remove(db, "monitors", "", "chan_1", false));
    seqs[2] = last_seq(db);
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan_1", "", 0));
    seqs[3] = last_seq(db);
    CHECK_OK(tome_kv_write(db, "monitors", "", "chan_1", "fourth", 6));
    seqs[4] = last_seq(db);
    CHECK(db = reopen(db, path));

    CHECK_OK(tome_kv_key_bytes("monitors", "", "chan_1", kb, sizeof kb, &kl));
    tome_txn *t = NULL;
    CHECK_OK(tome_begin(db, &t));
    const tome_version *v = NULL;
    size_t nv = 0;
    CHECK_OK(tome_versions(t, TOME_KV_SLOT, kb, kl, &v, &nv));
    CHECK_EQ(nv, 5);
    static const char *vals[] = {"first", "second!", NULL, "", "fourth"};
    for (size_t i = 0; i < 5; i++) {
        CHECK_U64(v[i].seq, seqs[i]);
        CHECK_EQ(v[i].removed, vals[i] == NULL);
        CHECK(v[i].committed);
        const void *val = NULL;
        size_t vl = 0;
        if (vals[i]) {
            CHECK_OK(tome_get_version(t, TOME_KV_SLOT, kb, kl, seqs[i], &val, &vl));
            CHECK_STRMEM(val, vl, vals[i]);
        } else {
            CHECK_RC(tome_get_version(t, TOME_KV_SLOT, kb, kl, seqs[i], &val, &vl), TOME_NOTFOUND);
        }
    }
    tome_abort(t);
    /* time travel */
    for (size_t i = 0; i < 5; i++) {
        CHECK_OK(tome_begin_at(db, seqs[i], &t));
        const void *val = NULL;
        size_t vl = 0;
        int rc = tome_get(t, TOME_KV_SLOT, kb, kl, &val, &vl);
        if (vals[i]) {
            CHECK_OK(rc);
            CHECK_STRMEM(val, vl, vals[i]);
        } else {
            CHECK_RC(rc, TOME_NOTFOUND);
            /* read back from the trash */
            CHECK_OK(tome_get_unremoved(t, TOME_KV_SLOT, kb, kl, &val, &vl));
            CHECK_STRMEM(val, vl, "second!");
        }
        tome_abort(t);
    }
    /* the mapped keys of a namespace are what slot 255 iterates */
    CHECK_OK(tome_begin(db, &t));
    tome_iter *it = NULL;
    CHECK_OK(tome_iter_open(t, TOME_KV_SLOT, "monitors//", 10, &it));
    const void *k = NULL;
    size_t klen = 0;
    CHECK_OK(tome_iter_next(it, &k, &klen));
    CHECK_STRMEM(k, klen, "monitors//chan_1");
    CHECK_OK(tome_iter_next(it, &k, &klen));
    CHECK_STRMEM(k, klen, "monitors//other");
    CHECK_RC(tome_iter_next(it, &k, &klen), TOME_NOTFOUND);
    tome_iter_close(it);
    tome_abort(t);
    CHECK(kv_is_str(db, "monitors", "", "chan_1", "fourth"));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* The same contract on a ":memory:" store and a read-only handle           */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_memory_and_readonly) {
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    CHECK_OK(tome_kv_write(db, "p", "s", "k", "v", 1));
    CHECK(kv_is_str(db, "p", "s", "k", "v"));
    const char *one[] = {"k"};
    CHECK(list_is(db, "p", "s", one, 1));
    CHECK_OK(tome_kv_remove(db, "p", "s", "k", false));
    CHECK(kv_is_str(db, "p", "s", "k", NULL));
    CHECK_OK(tome_close(db));

    char path[700];
    new_path(path, sizeof path);
    CHECK(db = open_db(path));
    CHECK_OK(tome_kv_write(db, "p", "", "k", "v", 1));
    CHECK_OK(tome_close(db));
    tome_options o;
    tome_options_init(&o);
    o.read_only = 1;
    CHECK_OK(tome_open(path, &o, &db));
    CHECK(kv_is_str(db, "p", "", "k", "v"));
    CHECK(kv_is_str(db, "p", "", "x", NULL));
    CHECK(list_is(db, "p", "", one, 1));
    CHECK_RC(tome_kv_write(db, "p", "", "k", "w", 1), TOME_READONLY);
    CHECK_RC(tome_kv_remove(db, "p", "", "k", false), TOME_READONLY);
    CHECK(kv_is_str(db, "p", "", "k", "v"));
    CHECK_OK(tome_close(db));
}

TT_MAIN()
