/*
 * test_kv_page.c -- paginated listing of the namespaced store
 * (tome_kv_list_page, LDK 0.3's PaginatedKVStore): newest-created first,
 * whatever the key names; the default page of 50 and explicit page sizes;
 * the last page has no token, also when the keys fill it exactly; an
 * overwrite keeps a key's place, a removal and a new write make it newest;
 * a token whose key was removed resumes at the next older key; keys created
 * after a page was read do not show up on later pages; bad tokens give
 * TOME_INVALID; namespaces are separate; keys created by one tome_kv_apply
 * are ordered by their place in it; the order survives tome_merge and
 * reopening; and a namespace of many keys pages through completely.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tome.h"
#include "tt.h"

static bool short_mode(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && strcmp(s, "0") != 0;
}

static tome_db *open_db(const char *path, int nosync) {
    tome_options o;
    tome_options_init(&o);
    if (nosync) o.sync = TOME_SYNC_NONE;
    tome_db *db = NULL;
    int rc = tome_open(path, &o, &db);
    if (rc) fprintf(stderr, "  open %s: %s: %s\n", path, tome_strerror(rc), tome_errmsg(NULL));
    return db;
}

/* The name of the i-th created key: names do not sort in creation order. */
static void name_of(char *out, size_t cap, int i) {
    snprintf(out, cap, "k%03d", (i * 37) % 1000);
}

/* All pages of (p, s) with page size ps, concatenated into out (cap
 * names), as indexes of the given name table; returns the count or -1. */
static long all_pages(tome_db *db, const char *p, const char *s, size_t ps, char (*out)[32],
                      size_t cap, size_t *pages) {
    size_t n = 0;
    char *tok = NULL;
    *pages = 0;
    do {
        char **keys = NULL, *next = NULL;
        size_t cnt = 0;
        int rc = tome_kv_list_page(db, p, s, tok, ps, &keys, &cnt, &next);
        tome_free(tok);
        if (rc != TOME_OK) {
            fprintf(stderr, "  list_page: %s\n", tome_strerror(rc));
            return -1;
        }
        size_t want = ps ? ps : TOME_KV_PAGE_SIZE;
        if (cnt > want || (next && cnt != want)) {
            fprintf(stderr, "  page of %zu keys (size %zu), next %s\n", cnt, want,
                    next ? "set" : "NULL");
            tome_free(keys);
            tome_free(next);
            return -1;
        }
        for (size_t i = 0; i < cnt && n < cap; i++) snprintf(out[n++], 32, "%s", keys[i]);
        tome_free(keys);
        (*pages)++;
        tok = next;
    } while (tok);
    return (long)n;
}

/* true when got[0..n) are the names of the created indexes want[0..n) */
static bool order_is(char (*got)[32], long n, const int *want, long wn) {
    if (n != wn) {
        fprintf(stderr, "  %ld keys, want %ld\n", n, wn);
        return false;
    }
    for (long i = 0; i < n; i++) {
        char w[32];
        name_of(w, sizeof w, want[i]);
        if (strcmp(got[i], w)) {
            fprintf(stderr, "  position %ld: %s, want %s\n", i, got[i], w);
            return false;
        }
    }
    return true;
}

TT_TEST(kv_page_newest_first) {
    char path[700];
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    tome_db *db = open_db(path, 1);
    CHECK(db);
    enum { N = 120 };
    char name[32];
    for (int i = 0; i < N; i++) {
        name_of(name, sizeof name, i);
        CHECK_OK(tome_kv_write(db, "payments", "", name, name, strlen(name)));
    }
    /* other namespaces do not mix in */
    CHECK_OK(tome_kv_write(db, "payments", "sub", "zzz", "x", 1));
    CHECK_OK(tome_kv_write(db, "paymentsX", "", "aaa", "x", 1));
    CHECK_OK(tome_kv_write(db, "", "", "manager", "x", 1));

    int want[N];
    for (int i = 0; i < N; i++) want[i] = N - 1 - i;
    char got[N + 10][32];
    size_t pages = 0;

    /* the default page size: 50, 50, 20 */
    char **keys = NULL, *next = NULL;
    size_t cnt = 0;
    CHECK_OK(tome_kv_list_page(db, "payments", "", NULL, 0, &keys, &cnt, &next));
    CHECK_EQ(cnt, 50);
    CHECK(next != NULL);
    name_of(name, sizeof name, N - 1);
    CHECK(!strcmp(keys[0], name));
    name_of(name, sizeof name, N - 50);
    CHECK(!strcmp(keys[49], name));
    tome_free(keys);
    tome_free(next);
    long n = all_pages(db, "payments", "", 0, got, N + 10, &pages);
    CHECK(order_is(got, n, want, N));
    CHECK_EQ(pages, 3);
    /* other sizes give the same sequence */
    size_t sizes[] = {1, 7, 49, 50, 60, 119, 120, 121, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        n = all_pages(db, "payments", "", sizes[i], got, N + 10, &pages);
        CHECK(order_is(got, n, want, N));
        CHECK_EQ(pages, (N + sizes[i] - 1) / sizes[i]);
    }
    /* the other namespaces */
    n = all_pages(db, "payments", "sub", 0, got, N + 10, &pages);
    CHECK(n == 1 && !strcmp(got[0], "zzz"));
    n = all_pages(db, "nothing", "", 0, got, N + 10, &pages);
    CHECK_EQ(n, 0);
    CHECK_EQ(pages, 1);

    /* overwrite keeps the place; removal + write makes it newest */
    name_of(name, sizeof name, 5);
    CHECK_OK(tome_kv_write(db, "payments", "", name, "new value", 9));
    n = all_pages(db, "payments", "", 13, got, N + 10, &pages);
    CHECK(order_is(got, n, want, N));
    name_of(name, sizeof name, 100);
    CHECK_OK(tome_kv_remove(db, "payments", "", name, false));
    CHECK_OK(tome_kv_write(db, "payments", "", name, "back", 4));
    int want2[N];
    want2[0] = 100;
    for (int i = 0, j = 1; i < N; i++)
        if (want[i] != 100) want2[j++] = want[i];
    n = all_pages(db, "payments", "", 0, got, N + 10, &pages);
    CHECK(order_is(got, n, want2, N));
    /* a lazy removal takes the key out of the pages at once */
    name_of(name, sizeof name, 0);
    CHECK_OK(tome_kv_remove(db, "payments", "", name, true));
    n = all_pages(db, "payments", "", 0, got, N + 10, &pages);
    CHECK(order_is(got, n, want2, N - 1));

    /* the order survives merge and reopen */
    CHECK_OK(tome_merge(db));
    n = all_pages(db, "payments", "", 0, got, N + 10, &pages);
    CHECK(order_is(got, n, want2, N - 1));
    CHECK_OK(tome_close(db));
    CHECK(db = open_db(path, 1));
    n = all_pages(db, "payments", "", 17, got, N + 10, &pages);
    CHECK(order_is(got, n, want2, N - 1));
    CHECK_OK(tome_close(db));
}

TT_TEST(kv_page_tokens) {
    char path[700];
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    tome_db *db = open_db(path, 1);
    CHECK(db);
    char name[32];
    for (int i = 0; i < 30; i++) {
        name_of(name, sizeof name, i);
        CHECK_OK(tome_kv_write(db, "p", "s", name, "v", 1));
    }
    char **keys = NULL, *tok = NULL, *tok2 = NULL;
    size_t cnt = 0;
    CHECK_OK(tome_kv_list_page(db, "p", "s", NULL, 10, &keys, &cnt, &tok));
    CHECK_EQ(cnt, 10);
    CHECK(tok != NULL);
    tome_free(keys);
    /* the token's key (the 10th newest, index 20) is removed: the next page
     * starts at the next older key, index 19 */
    name_of(name, sizeof name, 20);
    CHECK_OK(tome_kv_remove(db, "p", "s", name, false));
    CHECK_OK(tome_kv_list_page(db, "p", "s", tok, 10, &keys, &cnt, &tok2));
    CHECK_EQ(cnt, 10);
    name_of(name, sizeof name, 19);
    CHECK(!strcmp(keys[0], name));
    name_of(name, sizeof name, 10);
    CHECK(!strcmp(keys[9], name));
    tome_free(keys);
    tome_free(tok2);
    /* also when it is written again (it is newest now, not on later pages) */
    name_of(name, sizeof name, 20);
    CHECK_OK(tome_kv_write(db, "p", "s", name, "again", 5));
    /* and a key created after the first page does not show up later */
    CHECK_OK(tome_kv_write(db, "p", "s", "brandnew", "n", 1));
    CHECK_OK(tome_kv_list_page(db, "p", "s", tok, 10, &keys, &cnt, &tok2));
    CHECK_EQ(cnt, 10);
    name_of(name, sizeof name, 19);
    CHECK(!strcmp(keys[0], name));
    for (size_t i = 0; i < cnt; i++) CHECK(strcmp(keys[i], "brandnew") != 0);
    tome_free(keys);
    /* the rest: indexes 9..0, then no token */
    char *tok3 = NULL;
    CHECK_OK(tome_kv_list_page(db, "p", "s", tok2, 10, &keys, &cnt, &tok3));
    CHECK_EQ(cnt, 10);
    CHECK(tok3 == NULL);
    name_of(name, sizeof name, 0);
    CHECK(!strcmp(keys[9], name));
    tome_free(keys);
    tome_free(tok2);
    /* a token still works after a reopen */
    CHECK_OK(tome_close(db));
    CHECK(db = open_db(path, 1));
    CHECK_OK(tome_kv_list_page(db, "p", "s", tok, 10, &keys, &cnt, &tok2));
    CHECK_EQ(cnt, 10);
    name_of(name, sizeof name, 19);
    CHECK(!strcmp(keys[0], name));
    tome_free(keys);
    tome_free(tok2);
    /* exactly one page of keys: no token */
    for (int i = 0; i < 50; i++) {
        name_of(name, sizeof name, i);
        CHECK_OK(tome_kv_write(db, "fifty", "", name, "v", 1));
    }
    CHECK_OK(tome_kv_list_page(db, "fifty", "", NULL, 0, &keys, &cnt, &tok2));
    CHECK_EQ(cnt, 50);
    CHECK(tok2 == NULL);
    tome_free(keys);

    /* bad tokens */
    char good_hex[25];
    memcpy(good_hex, tok, 24);
    good_hex[24] = '\0';
    char bad[8][200];
    snprintf(bad[0], 200, "%s", "");
    snprintf(bad[1], 200, "%s", "garbage");
    snprintf(bad[2], 200, "%s", good_hex);                 /* no key */
    snprintf(bad[3], 200, "%.23s%s", good_hex, "k001");    /* short stamp */
    snprintf(bad[4], 200, "%s%s", "gggggggggggggggggggggggg", "k001");
    snprintf(bad[5], 200, "%s%s", good_hex, "bad/key");
    snprintf(bad[6], 200, "%s%s", good_hex, "bad.key");
    snprintf(bad[7], 200, "%s", good_hex);
    for (int i = 0; i < 24; i++) bad[7][i] = (char)(bad[7][i] >= 'a' ? bad[7][i] - 32 : bad[7][i]);
    strcat(bad[7], "k001");
    int upper = 0;
    for (int i = 0; i < 24; i++) upper |= bad[7][i] >= 'A' && bad[7][i] <= 'F';
    for (int i = 0; i < 8; i++) {
        if (i == 7 && !upper) continue;   /* a stamp of digits only */
        keys = (char **)1;
        tok2 = (char *)1;
        cnt = 5;
        CHECK_RC(tome_kv_list_page(db, "p", "s", bad[i], 10, &keys, &cnt, &tok2), TOME_INVALID);
        CHECK(keys == NULL && cnt == 0 && tok2 == NULL);
    }
    char *longkey = malloc(24 + 122);
    memcpy(longkey, good_hex, 24);
    memset(longkey + 24, 'a', 121);
    longkey[24 + 121] = '\0';
    CHECK_RC(tome_kv_list_page(db, "p", "s", longkey, 10, &keys, &cnt, &tok2), TOME_INVALID);
    longkey[24 + 120] = '\0';   /* 120 characters: a valid (if unknown) position */
    CHECK_OK(tome_kv_list_page(db, "p", "s", longkey, 10, &keys, &cnt, &tok2));
    tome_free(keys);
    tome_free(tok2);
    free(longkey);
    tome_free(tok);
    CHECK_OK(tome_close(db));
}

TT_TEST(kv_page_apply_order) {
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    CHECK_OK(tome_kv_write(db, "m", "", "before", "b", 1));
    tome_kv_op ops[] = {
        {TOME_KV_WRITE, "m", "", "zeta", "1", 1},
        {TOME_KV_WRITE, "m", "", "alpha", "2", 1},
        {TOME_KV_WRITE, "m", "", "before", "3", 1},   /* existing: keeps its place */
        {TOME_KV_WRITE, "m", "", "mid", "4", 1},
    };
    CHECK_OK(tome_kv_apply(db, ops, 4));
    CHECK_OK(tome_kv_write(db, "m", "", "after", "5", 1));
    char **keys = NULL, *next = NULL;
    size_t cnt = 0;
    CHECK_OK(tome_kv_list_page(db, "m", "", NULL, 0, &keys, &cnt, &next));
    CHECK_EQ(cnt, 5);
    CHECK(next == NULL);
    const char *want[] = {"after", "mid", "alpha", "zeta", "before"};
    for (size_t i = 0; i < 5 && i < cnt; i++) CHECK(!strcmp(keys[i], want[i]));
    tome_free(keys);
    /* page by page through the keys of one commit */
    CHECK_OK(tome_kv_list_page(db, "m", "", NULL, 2, &keys, &cnt, &next));
    CHECK(cnt == 2 && !strcmp(keys[1], "mid"));
    tome_free(keys);
    char *next2 = NULL;
    CHECK_OK(tome_kv_list_page(db, "m", "", next, 2, &keys, &cnt, &next2));
    CHECK(cnt == 2 && !strcmp(keys[0], "alpha") && !strcmp(keys[1], "zeta"));
    tome_free(keys);
    tome_free(next);
    CHECK_OK(tome_kv_list_page(db, "m", "", next2, 2, &keys, &cnt, &next));
    CHECK(cnt == 1 && !strcmp(keys[0], "before") && next == NULL);
    tome_free(keys);
    tome_free(next2);
    CHECK_OK(tome_close(db));
}

TT_TEST(kv_page_many_keys) {
    /* a large namespace interleaved with writes elsewhere, so that the
     * creation stamps are spread over several stamp bytes */
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    int n = short_mode() ? 600 : 3000;
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "p%05d", (i * 7919) % 100000);
        CHECK_OK(tome_kv_write(db, "payments", "", name, "v", 1));
        for (int j = 0; j < i % 5; j++) CHECK_OK(tome_kv_write(db, "other", "", "x", "v", 1));
    }
    size_t ps = 50, total = 0, pages = 0;
    char *tok = NULL;
    int expect = n - 1;
    do {
        char **keys = NULL, *next = NULL;
        size_t cnt = 0;
        CHECK_OK(tome_kv_list_page(db, "payments", "", tok, ps, &keys, &cnt, &next));
        for (size_t i = 0; i < cnt; i++, expect--) {
            snprintf(name, sizeof name, "p%05d", (expect * 7919) % 100000);
            CHECK(!strcmp(keys[i], name));
        }
        total += cnt;
        pages++;
        tome_free(keys);
        tome_free(tok);
        tok = next;
    } while (tok);
    CHECK_EQ(total, n);
    CHECK_EQ(pages, ((size_t)n + ps - 1) / ps);
    CHECK_OK(tome_close(db));
}

TT_MAIN()
