/*
 * test_index.c -- the in-memory B+tree index (src/index/btree.c).
 *
 * Real data, checked against a sorted reference array: random keys of
 * lengths 0..40 in several slots (with the empty key, prefixes of one
 * another, keys sharing long heads and keys differing only by trailing zero
 * bytes), lookups of present and absent keys, full iteration, seeks between
 * and past keys, removals (random halves, down to empty), bulk append then
 * mixed work, mods and count, and out-of-memory at every allocation of an
 * insert. After every phase the tree's own invariants are verified by
 * tome_index_check (exported by btree.c for tests).
 *
 * TOME_TEST_SHORT=1 (valgrind runs) shrinks the sizes.
 */
#include "tt.h"

#include "../include/tome.h"
#include "index/index.h"
#include "os/os.h"

int tome_index_check(const tome_index *ix, char *err, size_t errlen);

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static int short_run(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && *s != '0';
}
static size_t scale(size_t n) { return short_run() ? n / 10 : n; }

static tome_entry *mk(uint8_t slot, const void *key, size_t klen) {
    tome_entry *e = calloc(1, sizeof(tome_entry) + klen + 1);
    if (!e) {
        perror("calloc");
        exit(2);
    }
    e->nver = 1;
    e->klen = (uint16_t)klen;
    e->slot = slot;
    if (klen) memcpy(e->key, key, klen);
    return e;
}

static int ecmp(const tome_entry *a, const tome_entry *b) {
    return tome_entry_cmp(a->slot, a->key, a->klen, b);
}
static int qcmp(const void *a, const void *b) {
    return ecmp(*(tome_entry *const *)a, *(tome_entry *const *)b);
}

static void shuffle(tome_entry **a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rndn(i);
        tome_entry *t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Sorts a[0..*n), frees duplicates (later ones), compacts. */
static void sort_unique(tome_entry **a, size_t *n) {
    qsort(a, *n, sizeof *a, qcmp);
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (w && ecmp(a[i], a[w - 1]) == 0) free(a[i]);
        else a[w++] = a[i];
    }
    *n = w;
}

static const uint8_t slots[] = {0, 1, 7, 200, 255};

/* n distinct keys of lengths 0..40 in a few slots, in random order, with
 * awkward neighbours on purpose. */
static tome_entry **gen_keys(size_t n, size_t *out_n) {
    tome_entry **a = malloc((n + 64) * sizeof *a);
    size_t k = 0;
    uint8_t buf[64];
    for (size_t s = 0; s < sizeof slots; s++) a[k++] = mk(slots[s], NULL, 0); /* empty keys */
    /* "a", "a\0", "a\0\0"...: differ only in trailing zeros */
    for (size_t z = 0; z < 12; z++) {
        memset(buf, 0, sizeof buf);
        buf[0] = 'a';
        a[k++] = mk(1, buf, 1 + z);
    }
    while (k < n) {
        uint8_t slot = slots[rndn(sizeof slots)];
        size_t mode = rndn(10);
        size_t len = rndn(41);
        if (mode < 5 || k < 100) {                     /* random bytes */
            for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)rnd();
            size_t alpha = rndn(4);
            if (alpha == 0)                           /* small alphabet: more shared bytes */
                for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)('a' + buf[i] % 3);
            else if (alpha == 1)                      /* decimal text: constant bits in every byte */
                for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)('0' + buf[i] % 10);
        } else {
            const tome_entry *b = a[rndn(k)];
            slot = b->slot;
            size_t bl = b->klen;
            memcpy(buf, b->key, bl);
            if (mode < 7) {                           /* a prefix of another key */
                len = bl ? rndn(bl) : 0;
            } else if (mode < 9) {                    /* extends / shares >= 7 bytes */
                size_t keep = bl < 8 ? bl : 7 + rndn(bl - 6);
                len = keep + rndn(41 - keep);
                if (len > 40) len = 40;
                for (size_t i = keep; i < len; i++) buf[i] = (uint8_t)rnd();
            } else {                                  /* trailing zeros or 0xFF */
                len = bl + 1 + rndn(3);
                if (len > 40) len = 40;
                uint8_t f = rndn(2) ? 0 : 0xFF;
                for (size_t i = bl; i < len; i++) buf[i] = f;
            }
        }
        a[k++] = mk(slot, buf, len);
    }
    sort_unique(a, &k);
    shuffle(a, k);
    *out_n = k;
    return a;
}

/* Index of the first element of sorted r[0..n) >= (slot, key). */
static size_t ref_lb(tome_entry **r, size_t n, uint8_t slot, const void *key, size_t klen) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tome_entry_cmp(slot, key, klen, r[mid]) > 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static char errbuf[256];

#define CHECK_TREE(ix)                                                       \
    do {                                                                     \
        if (tome_index_check((ix), errbuf, sizeof errbuf) != 0)              \
            TT_FAIL_("tree invalid: %s", errbuf);                            \
    } while (0)

/* The whole index equals sorted r[0..n): count, iteration, every find. */
static int same_as(const tome_index *ix, tome_entry **r, size_t n) {
    if (tome_index_check(ix, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "  tree invalid: %s\n", errbuf);
        return 0;
    }
    if (tome_index_count(ix) != n) {
        fprintf(stderr, "  count %zu != %zu\n", tome_index_count(ix), n);
        return 0;
    }
    tome_index_cursor c;
    size_t i = 0;
    for (tome_entry *e = tome_index_first(ix, &c); e; e = tome_index_next(&c), i++) {
        if (i >= n || e != r[i]) {
            fprintf(stderr, "  iteration differs at %zu\n", i);
            return 0;
        }
    }
    if (i != n) {
        fprintf(stderr, "  iteration gave %zu of %zu\n", i, n);
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (tome_index_find(ix, r[i]->slot, r[i]->key, r[i]->klen) != r[i]) {
            fprintf(stderr, "  find %zu failed\n", i);
            return 0;
        }
    }
    return 1;
}

/* Probes around the keys of r: absent keys are not found, seeks land on the
 * reference lower bound and iterate on from there. */
static int probes_ok(const tome_index *ix, tome_entry **r, size_t n, size_t nprobes) {
    static uint8_t buf[TOME_MAX_KEY_LEN + 1];
    for (size_t p = 0; p < nprobes; p++) {
        uint8_t slot;
        size_t len;
        size_t mode = rndn(6);
        if (n == 0 || mode == 0) {
            slot = (uint8_t)rnd();
            len = rndn(12);
            for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)rnd();
        } else {
            const tome_entry *b = r[rndn(n)];
            slot = b->slot;
            len = b->klen;
            memcpy(buf, b->key, len);
            if (mode == 1 && len) buf[len - 1]++;                 /* sibling */
            else if (mode == 2 && len < TOME_MAX_KEY_LEN) buf[len++] = (uint8_t)rndn(3); /* extension */
            else if (mode == 3 && len) len--;                     /* truncation */
            else if (mode == 4) { slot++; }                       /* other slot */
            /* mode 5: the key itself */
        }
        size_t lb = ref_lb(r, n, slot, buf, len);
        int present = lb < n && tome_entry_cmp(slot, buf, len, r[lb]) == 0;
        tome_entry *f = tome_index_find(ix, slot, buf, len);
        if (f != (present ? r[lb] : NULL)) {
            fprintf(stderr, "  find probe %zu: got %p, want %p\n", p, (void *)f,
                    present ? (void *)r[lb] : NULL);
            return 0;
        }
        tome_index_cursor c;
        tome_entry *e = tome_index_seek(ix, &c, slot, buf, len);
        for (size_t i = lb; i < lb + 5; i++) {
            tome_entry *want = i < n ? r[i] : NULL;
            if (e != want) {
                fprintf(stderr, "  seek probe %zu step %zu: got %p, want %p\n", p, i - lb, (void *)e,
                        (void *)want);
                return 0;
            }
            if (!e) break;
            e = tome_index_next(&c);
        }
    }
    /* past the end and before the start */
    tome_index_cursor c;
    uint8_t ff[48];
    memset(ff, 0xFF, sizeof ff);
    if (tome_index_seek(ix, &c, 255, ff, sizeof ff) != NULL) return 0;
    if (tome_index_next(&c) != NULL) return 0;
    if (tome_index_seek(ix, &c, 0, NULL, 0) != (n ? r[0] : NULL)) return 0;
    return 1;
}

static void free_entry_cb(tome_entry *e, void *arg) {
    (*(size_t *)arg)++;
    free(e);
}

/* ---- cases ---- */

TT_TEST(empty) {
    tome_index *ix = tome_index_new();
    CHECK(ix != NULL);
    tome_index_cursor c;
    CHECK_EQ(tome_index_count(ix), 0);
    CHECK_EQ(tome_index_memory(ix), 0);
    CHECK(tome_index_first(ix, &c) == NULL);
    CHECK(tome_index_next(&c) == NULL);
    CHECK(tome_index_seek(ix, &c, 0, NULL, 0) == NULL);
    CHECK(tome_index_find(ix, 0, NULL, 0) == NULL);
    tome_entry *e = mk(3, "x", 1);
    tome_index_remove(ix, e); /* absent: nothing */
    CHECK_U64(tome_index_mods(ix), 0);
    CHECK_TREE(ix);
    CHECK_OK(tome_index_insert(ix, e));
    CHECK_RC(tome_index_insert(ix, e), TOME_INVALID);
    tome_entry *probe = mk(3, "x", 1);
    CHECK(tome_index_find(ix, 3, "x", 1) == e);
    CHECK(tome_index_find(ix, 3, "x", 2) == NULL);
    CHECK(tome_index_find(ix, 3, NULL, 0) == NULL);
    CHECK(tome_index_seek(ix, &c, 3, NULL, 0) == e);
    CHECK(tome_index_seek(ix, &c, 3, "y", 1) == NULL);
    CHECK_U64(tome_index_mods(ix), 1);
    tome_index_remove(ix, probe); /* by key: a different entry object */
    CHECK_U64(tome_index_mods(ix), 2);
    CHECK_EQ(tome_index_count(ix), 0);
    CHECK_EQ(tome_index_memory(ix), 0);
    CHECK_TREE(ix);
    free(probe);
    size_t freed = 0;
    CHECK_OK(tome_index_insert(ix, e));
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, 1);
    tome_index_free(NULL, NULL, NULL);
}

TT_TEST(random_insert_find_iterate_seek) {
    size_t n;
    tome_entry **a = gen_keys(scale(200000), &n);
    tome_index *ix = tome_index_new();
    CHECK(ix != NULL);
    for (size_t i = 0; i < n; i++) {
        uint64_t m = tome_index_mods(ix);
        CHECK_OK(tome_index_insert(ix, a[i]));
        CHECK_U64(tome_index_mods(ix), m + 1);
        if (i % 9973 == 0) CHECK_TREE(ix);
    }
    CHECK_EQ(tome_index_count(ix), n);
    tome_entry **r = malloc(n * sizeof *r);
    memcpy(r, a, n * sizeof *r);
    qsort(r, n, sizeof *r, qcmp);
    CHECK(same_as(ix, r, n));
    CHECK(probes_ok(ix, r, n, scale(50000)));
    /* duplicate insert refused, nothing changes */
    uint64_t m = tome_index_mods(ix);
    tome_entry *dup = mk(a[5]->slot, a[5]->key, a[5]->klen);
    CHECK_RC(tome_index_insert(ix, dup), TOME_INVALID);
    CHECK_U64(tome_index_mods(ix), m);
    free(dup);
    double bpk = (double)tome_index_memory(ix) / (double)n;
    printf("  %zu random keys: %.2f bytes of tree per key\n", n, bpk);
    CHECK(bpk < 13.0);
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(r);
    free(a);
}

TT_TEST(remove_halves_and_reuse) {
    size_t n;
    tome_entry **a = gen_keys(scale(100000), &n);
    tome_index *ix = tome_index_new();
    for (size_t i = 0; i < n; i++) CHECK_OK(tome_index_insert(ix, a[i]));
    /* remove random halves until empty, checking everything each round */
    size_t live = n;
    tome_entry **r = malloc(n * sizeof *r);
    for (int round = 0; live > 0; round++) {
        shuffle(a, live);
        size_t drop = live > 3 ? live / 2 : live;
        for (size_t i = 0; i < drop; i++) {
            uint64_t m = tome_index_mods(ix);
            tome_index_remove(ix, a[live - 1 - i]);
            CHECK_U64(tome_index_mods(ix), m + 1);
            if (i % 4999 == 0) CHECK_TREE(ix);
        }
        for (size_t i = 0; i < drop; i++) {
            tome_entry *e = a[live - 1 - i];
            CHECK(tome_index_find(ix, e->slot, e->key, e->klen) == NULL);
            uint64_t m = tome_index_mods(ix);
            tome_index_remove(ix, e); /* absent: no change */
            CHECK_U64(tome_index_mods(ix), m);
        }
        live -= drop;
        memcpy(r, a, live * sizeof *r);
        qsort(r, live, sizeof *r, qcmp);
        CHECK(same_as(ix, r, live));
        CHECK(probes_ok(ix, r, live, scale(5000)));
        size_t mem = tome_index_memory(ix);
        if (live > 1000) CHECK(mem / live < 40); /* merges and shrinks keep waste bounded */
    }
    CHECK_EQ(tome_index_count(ix), 0);
    CHECK_EQ(tome_index_memory(ix), 0);
    tome_index_cursor c;
    CHECK(tome_index_first(ix, &c) == NULL);
    /* reuse: everything back in, in another order */
    shuffle(a, n);
    for (size_t i = 0; i < n; i++) CHECK_OK(tome_index_insert(ix, a[i]));
    memcpy(r, a, n * sizeof *r);
    qsort(r, n, sizeof *r, qcmp);
    CHECK(same_as(ix, r, n));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(r);
    free(a);
}

TT_TEST(remove_in_order) {
    /* ascending and descending removal exercise the separator updates of the
     * leftmost/rightmost paths and the emptying of whole subtrees */
    size_t n;
    tome_entry **a = gen_keys(scale(60000), &n);
    qsort(a, n, sizeof *a, qcmp);
    for (int dir = 0; dir < 2; dir++) {
        tome_index *ix = tome_index_new();
        for (size_t i = 0; i < n; i++) CHECK_OK(tome_index_insert(ix, a[i]));
        for (size_t i = 0; i < n; i++) {
            size_t j = dir ? n - 1 - i : i;
            tome_index_remove(ix, a[j]);
            if (i % 1111 == 0) {
                CHECK_TREE(ix);
                tome_index_cursor c;
                tome_entry *f = tome_index_first(ix, &c);
                CHECK(f == (dir ? a[0] : a[i + 1]));
            }
        }
        CHECK_EQ(tome_index_count(ix), 0);
        CHECK_EQ(tome_index_memory(ix), 0);
        CHECK_TREE(ix);
        tome_index_free(ix, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

TT_TEST(sequential_inserts_fill_nodes) {
    size_t n = scale(100000);
    tome_entry **a = malloc(n * sizeof *a);
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(buf, sizeof buf, "user:%010zu", i);
        a[i] = mk(2, buf, (size_t)l);
    }
    for (int dir = 0; dir < 2; dir++) {
        tome_index *ix = tome_index_new();
        for (size_t i = 0; i < n; i++) CHECK_OK(tome_index_insert(ix, a[dir ? n - 1 - i : i]));
        CHECK(same_as(ix, a, n));
        CHECK(probes_ok(ix, a, n, 2000));
        double bpk = (double)tome_index_memory(ix) / (double)n;
        printf("  %s inserts: %.2f bytes per key\n", dir ? "descending" : "ascending", bpk);
        CHECK(bpk < 11.5);
        tome_index_free(ix, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

TT_TEST(append_then_mixed) {
    size_t n;
    tome_entry **a = gen_keys(scale(120000), &n);
    qsort(a, n, sizeof *a, qcmp);
    /* load the even ones by append; the odd ones go in later by insert */
    size_t ne = (n + 1) / 2, no = n / 2;
    tome_entry **ev = malloc(ne * sizeof *ev), **od = malloc(no * sizeof *od);
    for (size_t i = 0; i < n; i++) {
        if (i % 2 == 0) ev[i / 2] = a[i];
        else od[i / 2] = a[i];
    }
    tome_index *ix = tome_index_new();
    for (size_t i = 0; i < ne; i++) {
        uint64_t m = tome_index_mods(ix);
        CHECK_OK(tome_index_append(ix, ev[i]));
        CHECK_U64(tome_index_mods(ix), m + 1);
    }
    CHECK(same_as(ix, ev, ne));
    double bpk = (double)tome_index_memory(ix) / (double)ne;
    printf("  append load: %.2f bytes per key\n", bpk);
    CHECK(bpk < 11.0);
    /* out of order appends are refused */
    CHECK_RC(tome_index_append(ix, ev[0]), TOME_INVALID);
    if (no) CHECK_RC(tome_index_append(ix, od[0]), TOME_INVALID);
    CHECK(probes_ok(ix, ev, ne, scale(20000)));
    /* mixed: insert the odd keys in random order while removing a random
     * third of the even ones */
    shuffle(od, no);
    tome_entry **evs = malloc(ne * sizeof *evs);
    memcpy(evs, ev, ne * sizeof *evs);
    shuffle(evs, ne);
    size_t nrem = ne / 3;
    for (size_t i = 0; i < no || i < nrem; i++) {
        if (i < no) CHECK_OK(tome_index_insert(ix, od[i]));
        if (i < nrem) tome_index_remove(ix, evs[i]);
        if (i % 7919 == 0) CHECK_TREE(ix);
    }
    /* reference: odd keys + the even ones kept */
    size_t nr = 0;
    tome_entry **r = malloc(n * sizeof *r);
    for (size_t i = 0; i < no; i++) r[nr++] = od[i];
    for (size_t i = nrem; i < ne; i++) r[nr++] = evs[i];
    qsort(r, nr, sizeof *r, qcmp);
    CHECK(same_as(ix, r, nr));
    CHECK(probes_ok(ix, r, nr, scale(20000)));
    /* appends after mixed work still work (41 and 42 0xFF bytes in slot 255
     * sort after every generated key) */
    uint8_t ffs[42];
    memset(ffs, 0xFF, sizeof ffs);
    for (size_t l = 41; l <= 42; l++) {
        tome_entry *big = mk(255, ffs, l);
        CHECK_OK(tome_index_append(ix, big));
        r[nr++] = big;
    }
    CHECK(same_as(ix, r, nr));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, nr);
    for (size_t i = 0; i < nrem; i++) free(evs[i]);
    free(r);
    free(evs);
    free(ev);
    free(od);
    free(a);
}

TT_TEST(long_shared_prefixes) {
    /* keys with 0..300 bytes of common prefix: heads tie, inner prefixes hit
     * their cap, the full-compare paths do the work */
    size_t n = scale(20000);
    tome_entry **a = malloc(n * sizeof *a);
    uint8_t buf[400];
    size_t k = 0;
    while (k < n) {
        size_t pl = (size_t[]){0, 8, 61, 100, 300}[rndn(5)];
        memset(buf, 'p', pl);
        size_t tail = rndn(6);
        for (size_t i = 0; i < tail; i++) buf[pl + i] = (uint8_t)("ab\0\xff"[rndn(4)]);
        a[k++] = mk(9, buf, pl + tail);
    }
    sort_unique(a, &k);
    n = k;
    tome_entry **s = malloc(n * sizeof *s);
    memcpy(s, a, n * sizeof *s);
    shuffle(s, n);
    tome_index *ix = tome_index_new();
    for (size_t i = 0; i < n; i++) CHECK_OK(tome_index_insert(ix, s[i]));
    CHECK(same_as(ix, a, n));
    CHECK(probes_ok(ix, a, n, 5000));
    for (size_t i = 0; i < n / 2; i++) tome_index_remove(ix, s[i]);
    tome_entry **r = malloc(n * sizeof *r);
    memcpy(r, s + n / 2, (n - n / 2) * sizeof *r);
    qsort(r, n - n / 2, sizeof *r, qcmp);
    CHECK(same_as(ix, r, n - n / 2));
    tome_index_free(ix, NULL, NULL);
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
    free(s);
    free(r);
}

TT_TEST(trailing_zeros_and_max_keys) {
    /* "", "\0", "\0\0", ... 600 zeros: padded heads all equal */
    tome_index *ix = tome_index_new();
    size_t n = 600;
    tome_entry **a = malloc((n + 4) * sizeof *a);
    static uint8_t zeros[TOME_MAX_KEY_LEN + 1];
    for (size_t i = 0; i < n; i++) a[i] = mk(0, zeros, i);
    tome_entry **s = malloc((n + 4) * sizeof *s);
    memcpy(s, a, n * sizeof *s);
    shuffle(s, n);
    for (size_t i = 0; i < n; i++) CHECK_OK(tome_index_insert(ix, s[i]));
    /* the longest keys */
    a[n++] = mk(0, zeros, TOME_MAX_KEY_LEN);
    CHECK_OK(tome_index_insert(ix, a[n - 1]));
    zeros[TOME_MAX_KEY_LEN - 1] = 1;
    a[n++] = mk(0, zeros, TOME_MAX_KEY_LEN);
    CHECK_OK(tome_index_insert(ix, a[n - 1]));
    zeros[TOME_MAX_KEY_LEN - 1] = 0;
    qsort(a, n, sizeof *a, qcmp);
    CHECK(same_as(ix, a, n));
    tome_index_cursor c;
    CHECK(tome_index_seek(ix, &c, 0, zeros, 300) == a[300]);
    CHECK(tome_index_find(ix, 0, zeros, TOME_MAX_KEY_LEN + 1) == NULL);
    tome_entry *e = tome_index_seek(ix, &c, 0, zeros, TOME_MAX_KEY_LEN + 1);
    CHECK(e == a[n - 1]);
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(a);
    free(s);
}

TT_TEST(stale_cursor) {
    tome_index *ix = tome_index_new();
    tome_entry *e[300];
    char buf[16];
    for (int i = 0; i < 300; i++) {
        int l = snprintf(buf, sizeof buf, "k%05d", i);
        e[i] = mk(0, buf, (size_t)l);
        CHECK_OK(tome_index_insert(ix, e[i]));
    }
    tome_index_cursor c;
    CHECK(tome_index_seek(ix, &c, 0, "k00010", 6) == e[10]);
    CHECK(tome_index_next(&c) == e[11]);
    CHECK_U64(c.mods, tome_index_mods(ix));
    tome_index_remove(ix, e[12]);
    CHECK(c.mods != tome_index_mods(ix));
    CHECK(tome_index_next(&c) == NULL); /* stale: no stepping into freed nodes */
    CHECK(tome_index_seek(ix, &c, 0, "k00012", 6) == e[13]);
    free(e[12]);
    e[12] = NULL;
    for (int i = 0; i < 300; i++) free(e[i]);
    tome_index_free(ix, NULL, NULL);
}

/* ---- out of memory ---- */

static long fail_at = -1; /* fail the Nth allocation from now (1-based); -1: never; 0: always */
static long nalloc = 0;
static void *h_malloc(size_t n) {
    nalloc++;
    if (fail_at == 0 || nalloc == fail_at) return NULL;
    return malloc(n);
}
static void *h_realloc(void *p, size_t n) {
    nalloc++;
    if (fail_at == 0 || nalloc == fail_at) return NULL;
    return realloc(p, n);
}
static void h_free(void *p) { free(p); }
static const tome_alloc_hooks hooks = {h_malloc, h_realloc, h_free};
static void arm(long n) {
    nalloc = 0;
    fail_at = n;
}

TT_TEST(oom_insert_leaves_tree_unchanged) {
    size_t n;
    /* big enough for inserts that split inner nodes, even in short runs */
    tome_entry **a = gen_keys(short_run() ? 16000 : 40000, &n);
    tome_index *ix = tome_index_new();
    size_t base = n / 2;
    for (size_t i = 0; i < base; i++) CHECK_OK(tome_index_insert(ix, a[i]));
    tome_entry **r = malloc(n * sizeof *r);
    memcpy(r, a, base * sizeof *r);
    qsort(r, base, sizeof *r, qcmp);
    size_t nr = base;
    tome_alloc_set_hooks(&hooks);
    size_t nomems = 0, maxn = 0, checked_full = 0;
    for (size_t i = base; i < n; i++) {
        for (long k = 1;; k++) {
            uint64_t m = tome_index_mods(ix);
            size_t mem = tome_index_memory(ix);
            arm(k);
            int rc = tome_index_insert(ix, a[i]);
            arm(-1);
            if (rc == 0) {
                if ((size_t)k > maxn) maxn = (size_t)k;
                /* an optional allocation after the change may have failed */
                if (k > 1 && tome_index_check(ix, errbuf, sizeof errbuf) != 0) {
                    tome_alloc_set_hooks(NULL);
                    TT_FAIL_("insert %zu with allocation %ld failing: %s", i, k, errbuf);
                }
                break;
            }
            if (rc != TOME_NOMEM) {
                tome_alloc_set_hooks(NULL);
                TT_FAIL_("insert %zu with allocation %ld failing: rc %d", i, k, rc);
            }
            nomems++;
            if (tome_index_mods(ix) != m || tome_index_memory(ix) != mem ||
                tome_index_find(ix, a[i]->slot, a[i]->key, a[i]->klen) != NULL ||
                tome_index_check(ix, errbuf, sizeof errbuf) != 0) {
                tome_alloc_set_hooks(NULL);
                TT_FAIL_("insert %zu, allocation %ld failed: tree changed (%s)", i, k, errbuf);
            }
            /* full comparison now and then (it is O(n)) */
            if (nomems % 97 == 0 || k > 1) {
                checked_full++;
                if (!same_as(ix, r, nr)) {
                    tome_alloc_set_hooks(NULL);
                    TT_FAIL_("insert %zu, allocation %ld failed: content changed", i, k);
                }
            }
        }
        /* keep r sorted: insert a[i] at its place */
        size_t lb = ref_lb(r, nr, a[i]->slot, a[i]->key, a[i]->klen);
        memmove(r + lb + 1, r + lb, (nr - lb) * sizeof *r);
        r[lb] = a[i];
        nr++;
    }
    tome_alloc_set_hooks(NULL);
    printf("  %zu NOMEM insert failures checked (%zu fully), up to %zu allocations per insert\n", nomems,
           checked_full, maxn);
    CHECK(nomems > 0);
    CHECK(maxn >= 3); /* some insert split a leaf and an inner node */
    CHECK(same_as(ix, r, nr));

    /* removals with every allocation failing: still correct (merges and
     * shrinks are skipped) */
    tome_alloc_set_hooks(&hooks);
    arm(0);
    shuffle(a, n);
    size_t half = n / 2;
    for (size_t i = 0; i < half; i++) tome_index_remove(ix, a[i]);
    arm(-1);
    tome_alloc_set_hooks(NULL);
    memcpy(r, a + half, (n - half) * sizeof *r);
    qsort(r, n - half, sizeof *r, qcmp);
    CHECK(same_as(ix, r, n - half));

    /* append and insert into an empty index under OOM */
    tome_index *ix2 = tome_index_new();
    tome_alloc_set_hooks(&hooks);
    arm(0);
    int rc1 = tome_index_insert(ix2, a[0]), rc2 = tome_index_append(ix2, a[0]);
    arm(-1);
    tome_alloc_set_hooks(NULL);
    CHECK_RC(rc1, TOME_NOMEM);
    CHECK_RC(rc2, TOME_NOMEM);
    CHECK_EQ(tome_index_count(ix2), 0);
    CHECK_U64(tome_index_mods(ix2), 0);
    CHECK_TREE(ix2);
    tome_index_free(ix2, NULL, NULL);

    /* tome_index_new under OOM */
    tome_alloc_set_hooks(&hooks);
    arm(1);
    tome_index *ix3 = tome_index_new();
    arm(-1);
    tome_alloc_set_hooks(NULL);
    CHECK(ix3 == NULL);

    tome_index_free(ix, NULL, NULL);
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
    free(r);
}

TT_TEST(oom_append) {
    size_t n;
    tome_entry **a = gen_keys(scale(30000), &n);
    qsort(a, n, sizeof *a, qcmp);
    tome_index *ix = tome_index_new();
    tome_alloc_set_hooks(&hooks);
    size_t nomems = 0;
    for (size_t i = 0; i < n; i++) {
        for (long k = 1;; k++) {
            uint64_t m = tome_index_mods(ix);
            arm(k);
            int rc = tome_index_append(ix, a[i]);
            arm(-1);
            if (rc == 0) break;
            if (rc != TOME_NOMEM || tome_index_mods(ix) != m || tome_index_count(ix) != i ||
                tome_index_check(ix, errbuf, sizeof errbuf) != 0) {
                tome_alloc_set_hooks(NULL);
                TT_FAIL_("append %zu, allocation %ld failing: rc %d (%s)", i, k, rc, errbuf);
            }
            nomems++;
        }
    }
    tome_alloc_set_hooks(NULL);
    CHECK(nomems > 0);
    CHECK(same_as(ix, a, n));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(a);
}

/* ---- bottom-up build ---- */

/* Builds an index from sorted r[0..n) and checks it against r; also that
 * it takes no more memory than the same keys appended one by one. */
static tome_index *build_checked(tome_entry **r, size_t n, int *ok) {
    *ok = 0;
    tome_index *ix = tome_index_new();
    if (!ix) return NULL;
    uint64_t m = tome_index_mods(ix);
    if (tome_index_build(ix, r, n) != 0) {
        fprintf(stderr, "  build of %zu failed\n", n);
        return ix;
    }
    if (n && tome_index_mods(ix) == m) {
        fprintf(stderr, "  build of %zu left mods alone\n", n);
        return ix;
    }
    if (!same_as(ix, r, n) || !probes_ok(ix, r, n, n < 2000 ? 2000 : n / 4)) {
        fprintf(stderr, "  build of %zu differs\n", n);
        return ix;
    }
    tome_index *ap = tome_index_new();
    for (size_t i = 0; i < n; i++)
        if (tome_index_append(ap, r[i]) != 0) {
            tome_index_free(ap, NULL, NULL);
            return ix;
        }
    size_t bm = tome_index_memory(ix), am = tome_index_memory(ap);
    tome_index_free(ap, NULL, NULL);
    if (bm > am) {
        fprintf(stderr, "  build of %zu: %zu bytes, append %zu\n", n, bm, am);
        return ix;
    }
    *ok = 1;
    return ix;
}

TT_TEST(build_sizes) {
    /* around every leaf (128 entries) and inner (64 children) boundary */
    size_t maxn = short_run() ? 8300 : 128 * 64 * 2 + 300;
    size_t n;
    tome_entry **a = gen_keys(maxn, &n);
    qsort(a, n, sizeof *a, qcmp);
    static const size_t sizes[] = {0, 1, 2, 3, 127, 128, 129, 255, 256, 257, 1000,
                                   128 * 64 - 1, 128 * 64, 128 * 64 + 1, 128 * 65,
                                   128 * 64 * 2, 128 * 64 * 2 + 1, 128 * 64 * 2 + 129};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t k = sizes[s];
        if (k > n) continue;
        int ok;
        tome_index *ix = build_checked(a, k, &ok);
        if (!ok) {
            tome_index_free(ix, NULL, NULL);
            TT_FAIL_("build of %zu entries", k);
        }
        if (k == 0) {
            CHECK_EQ(tome_index_count(ix), 0);
            CHECK_EQ(tome_index_memory(ix), 0);
        }
        /* a built index takes inserts, appends and removals */
        if (k > 2) {
            tome_index_remove(ix, a[k / 2]);
            tome_index_remove(ix, a[0]);
            CHECK_TREE(ix);
            CHECK_OK(tome_index_insert(ix, a[0]));
            CHECK_OK(tome_index_insert(ix, a[k / 2]));
            if (k < n) CHECK_OK(tome_index_append(ix, a[k]));
            CHECK(same_as(ix, a, k < n ? k + 1 : k));
        }
        tome_index_free(ix, NULL, NULL);
    }
    size_t freed = 0;
    tome_index *ix = tome_index_new();
    CHECK_OK(tome_index_build(ix, a, n));
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(a);
}

TT_TEST(build_refuses) {
    size_t n;
    tome_entry **a = gen_keys(scale(5000), &n);
    qsort(a, n, sizeof *a, qcmp);
    tome_index *ix = tome_index_new();
    /* out of order (inside a leaf, then across leaves), or a duplicate:
     * TOME_INVALID and the index stays empty */
    size_t swaps[] = {1, 64, 127, 128, 129, 1000, n - 1};
    for (size_t s = 0; s < sizeof swaps / sizeof *swaps; s++) {
        size_t i = swaps[s];
        if (i >= n) continue;
        tome_entry *t = a[i];
        a[i] = a[i - 1];
        a[i - 1] = t;
        CHECK_RC(tome_index_build(ix, a, n), TOME_INVALID);
        a[i - 1] = a[i];
        a[i] = t;
        CHECK_EQ(tome_index_count(ix), 0);
        CHECK_EQ(tome_index_memory(ix), 0);
        CHECK_U64(tome_index_mods(ix), 0);
        CHECK_TREE(ix);
        tome_entry *dup = a[i - 1];
        a[i - 1] = a[i];
        CHECK_RC(tome_index_build(ix, a, n), TOME_INVALID);
        a[i - 1] = dup;
        CHECK_EQ(tome_index_memory(ix), 0);
        CHECK_TREE(ix);
    }
    /* not empty */
    CHECK_OK(tome_index_insert(ix, a[0]));
    CHECK_RC(tome_index_build(ix, a + 1, n - 1), TOME_INVALID);
    CHECK(same_as(ix, a, 1));
    tome_index_remove(ix, a[0]);
    /* emptied again: builds */
    CHECK_OK(tome_index_build(ix, a, n));
    CHECK(same_as(ix, a, n));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(a);
}

TT_TEST(build_100k_then_mixed) {
    size_t n;
    tome_entry **a = gen_keys(scale(100000), &n);
    /* built from the even keys of the sorted set; the odd ones come later */
    qsort(a, n, sizeof *a, qcmp);
    size_t ne = (n + 1) / 2, no = n / 2;
    tome_entry **ev = malloc(ne * sizeof *ev), **od = malloc(no * sizeof *od);
    for (size_t i = 0; i < n; i++) {
        if (i % 2 == 0) ev[i / 2] = a[i];
        else od[i / 2] = a[i];
    }
    int ok;
    tome_index *ix = build_checked(ev, ne, &ok);
    CHECK(ok);
    printf("  build of %zu keys: %.2f bytes per key\n", ne, (double)tome_index_memory(ix) / (double)ne);
    /* the odd keys are all misses; seeks between them land on the even ones */
    for (size_t i = 0; i < no; i++) CHECK(tome_index_find(ix, od[i]->slot, od[i]->key, od[i]->klen) == NULL);
    tome_index_cursor c;
    for (size_t i = 0; i < no; i += 7) {
        tome_entry *e = tome_index_seek(ix, &c, od[i]->slot, od[i]->key, od[i]->klen);
        CHECK(e == (i + 1 < ne ? ev[i + 1] : NULL));
    }
    /* then inserts of the odd keys in random order, and removals of a
     * random third of the even ones */
    shuffle(od, no);
    tome_entry **evs = malloc(ne * sizeof *evs);
    memcpy(evs, ev, ne * sizeof *evs);
    shuffle(evs, ne);
    size_t nrem = ne / 3;
    for (size_t i = 0; i < no || i < nrem; i++) {
        if (i < no) CHECK_OK(tome_index_insert(ix, od[i]));
        if (i < nrem) tome_index_remove(ix, evs[i]);
        if (i % 4999 == 0) CHECK_TREE(ix);
    }
    size_t nr = 0;
    tome_entry **r = malloc(n * sizeof *r);
    for (size_t i = 0; i < no; i++) r[nr++] = od[i];
    for (size_t i = nrem; i < ne; i++) r[nr++] = evs[i];
    qsort(r, nr, sizeof *r, qcmp);
    CHECK(same_as(ix, r, nr));
    CHECK(probes_ok(ix, r, nr, scale(20000)));
    tome_index_free(ix, NULL, NULL);
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(r);
    free(evs);
    free(ev);
    free(od);
    free(a);
}

/* ---- batch insert ---- */

/* Sorts the n entries of b and inserts them as one batch into ix, whose
 * sorted content is r[0..*nr) (r has room); r follows. */
static int batch_in(tome_index *ix, tome_entry **b, size_t n, tome_entry **r, size_t *nr) {
    qsort(b, n, sizeof *b, qcmp);
    int rc = tome_index_insert_batch(ix, b, n);
    if (rc) return rc;
    memcpy(r + *nr, b, n * sizeof *b);
    *nr += n;
    qsort(r, *nr, sizeof *r, qcmp);
    return 0;
}

TT_TEST(batch_insert) {
    size_t n;
    tome_entry **a = gen_keys(scale(150000), &n);
    tome_entry **r = malloc(n * sizeof *r), **gone = malloc(n * sizeof *gone);
    size_t nr = 0, i = 0, ngone = 0;
    tome_index *ix = tome_index_new();
    CHECK_OK(tome_index_insert_batch(ix, a, 0));   /* empty batch: nothing */
    CHECK_U64(tome_index_mods(ix), 0);
    /* batches of every size from 1 up, into an empty index first */
    for (size_t bs = 1; i < n / 3; bs = bs * 3 + 1) {
        size_t k = bs < n / 3 - i ? bs : n / 3 - i;
        CHECK_OK(batch_in(ix, a + i, k, r, &nr));
        i += k;
        CHECK_TREE(ix);
    }
    CHECK(same_as(ix, r, nr));
    /* batches of 1000 (a commit's worth), with removals between */
    while (i < n) {
        size_t k = n - i < 1000 ? n - i : 1000;
        CHECK_OK(batch_in(ix, a + i, k, r, &nr));
        i += k;
        if ((i / 1000) % 10 == 0) {
            for (size_t j = 0; j < 50 && nr > 0; j++) {
                size_t x = rndn(nr);
                tome_index_remove(ix, r[x]);
                gone[ngone++] = r[x];
                memmove(r + x, r + x + 1, (nr - x - 1) * sizeof *r);
                nr--;
            }
            CHECK_TREE(ix);
        }
    }
    CHECK(same_as(ix, r, nr));
    CHECK(probes_ok(ix, r, nr, scale(20000)));
    /* order is not required for correctness */
    size_t nb = nr < 3000 ? nr : 3000;
    tome_entry **back = malloc(nb * sizeof *back);
    for (size_t j = 0; j < nb; j++) {
        back[j] = r[nr - 1 - j];
        tome_index_remove(ix, back[j]);
    }
    CHECK_OK(tome_index_insert_batch(ix, back, nb));   /* descending */
    CHECK(same_as(ix, r, nr));
    /* all or nothing: a key already present, or twice in the batch */
    uint64_t m = tome_index_mods(ix);
    for (size_t j = 0; j < nb; j++) tome_index_remove(ix, back[j]);
    nr -= nb;
    CHECK_TREE(ix);
    qsort(back, nb, sizeof *back, qcmp);
    tome_entry *keep = back[nb / 2];
    back[nb / 2] = r[rndn(nr)];                            /* present */
    CHECK_RC(tome_index_insert_batch(ix, back, nb), TOME_INVALID);
    CHECK(same_as(ix, r, nr));
    back[nb / 2] = back[nb / 2 - 1];                       /* twice */
    CHECK_RC(tome_index_insert_batch(ix, back, nb), TOME_INVALID);
    CHECK(same_as(ix, r, nr));
    back[nb / 2] = keep;
    CHECK(tome_index_mods(ix) != m);
    CHECK_OK(batch_in(ix, back, nb, r, &nr));
    CHECK(same_as(ix, r, nr));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed + ngone, n);
    for (size_t j = 0; j < ngone; j++) free(gone[j]);
    free(gone);
    free(back);
    free(r);
    free(a);
}

TT_TEST(oom_build) {
    size_t n;
    /* 3 levels of inner nodes in full runs: the plan allocates each level */
    tome_entry **a = gen_keys(short_run() ? 9000 : 128 * 64 * 2 + 500, &n);
    qsort(a, n, sizeof *a, qcmp);
    tome_index *ix = tome_index_new();
    tome_alloc_set_hooks(&hooks);
    size_t nomems = 0;
    for (long k = 1;; k++) {
        arm(k);
        int rc = tome_index_build(ix, a, n);
        arm(-1);
        if (rc == 0) break;
        if (rc != TOME_NOMEM || tome_index_count(ix) != 0 || tome_index_memory(ix) != 0 ||
            tome_index_mods(ix) != 0 || tome_index_check(ix, errbuf, sizeof errbuf) != 0) {
            tome_alloc_set_hooks(NULL);
            TT_FAIL_("build, allocation %ld failing: rc %d (%s)", k, rc, errbuf);
        }
        nomems++;
    }
    tome_alloc_set_hooks(NULL);
    printf("  %zu NOMEM build failures checked\n", nomems);
    CHECK(nomems > n / 128);   /* one per node at least */
    CHECK(same_as(ix, a, n));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(a);
}

TT_TEST(oom_batch_insert) {
    size_t n;
    tome_entry **a = gen_keys(short_run() ? 12000 : 40000, &n);
    tome_entry **r = malloc(n * sizeof *r);
    size_t base = n / 2, nr = base;
    tome_index *ix = tome_index_new();
    memcpy(r, a, base * sizeof *r);
    qsort(r, nr, sizeof *r, qcmp);
    CHECK_OK(tome_index_build(ix, r, nr));
    size_t nomems = 0, batches = 0, rollbacks = 0;
    /* batches of growing size; each fails at every allocation in turn */
    for (size_t i = base, bs = 1; i < n; bs = bs < 600 ? bs * 2 + 1 : bs) {
        size_t k = bs < n - i ? bs : n - i;
        qsort(a + i, k, sizeof *a, qcmp);
        tome_alloc_set_hooks(&hooks);
        for (long f = 1;; f++) {
            size_t cnt = tome_index_count(ix);
            uint64_t mods = tome_index_mods(ix);
            arm(f);
            int rc = tome_index_insert_batch(ix, a + i, k);
            arm(-1);
            if (rc == 0) break;
            rollbacks += tome_index_mods(ix) != mods;
            if (rc != TOME_NOMEM || tome_index_count(ix) != cnt ||
                tome_index_check(ix, errbuf, sizeof errbuf) != 0) {
                tome_alloc_set_hooks(NULL);
                TT_FAIL_("batch at %zu of %zu, allocation %ld failing: rc %d (%s)", i, k, f, rc, errbuf);
            }
            for (size_t j = i; j < i + k; j++)
                if (tome_index_find(ix, a[j]->slot, a[j]->key, a[j]->klen) != NULL) {
                    tome_alloc_set_hooks(NULL);
                    TT_FAIL_("batch at %zu, allocation %ld failing: key %zu left in", i, f, j);
                }
            nomems++;
            if (nomems % 50 == 0 && !same_as(ix, r, nr)) {
                tome_alloc_set_hooks(NULL);
                TT_FAIL_("batch at %zu, allocation %ld failing: content changed", i, f);
            }
        }
        tome_alloc_set_hooks(NULL);
        memcpy(r + nr, a + i, k * sizeof *r);
        nr += k;
        qsort(r, nr, sizeof *r, qcmp);
        i += k;
        batches++;
    }
    /* every allocation failing: the inserts that needed none are taken out
     * again (slot 3 holds no generated key) */
    tome_entry *fresh[300];
    for (size_t j = 0; j < 300; j++) {
        uint8_t kb[20];
        for (size_t q = 0; q < sizeof kb; q++) kb[q] = (uint8_t)rnd();
        fresh[j] = mk(3, kb, sizeof kb);
    }
    qsort(fresh, 300, sizeof *fresh, qcmp);
    tome_alloc_set_hooks(&hooks);
    arm(0);
    size_t m = tome_index_count(ix);
    int rc = tome_index_insert_batch(ix, fresh, 300);
    tome_alloc_set_hooks(NULL);
    arm(-1);
    CHECK_RC(rc, TOME_NOMEM);
    CHECK_EQ(tome_index_count(ix), m);
    for (size_t j = 0; j < 300; j++) {
        CHECK(tome_index_find(ix, 3, fresh[j]->key, fresh[j]->klen) == NULL);
        free(fresh[j]);
    }
    printf("  %zu NOMEM batch failures checked in %zu batches (%zu after some inserts)\n", nomems, batches,
           rollbacks);
    CHECK(nomems > batches);
    CHECK(rollbacks > 0);
    CHECK(same_as(ix, r, nr));
    size_t freed = 0;
    tome_index_free(ix, free_entry_cb, &freed);
    CHECK_EQ(freed, n);
    free(r);
    free(a);
}

TT_TEST(mods_and_count) {
    tome_index *ix = tome_index_new();
    tome_entry *e[50];
    uint64_t m = tome_index_mods(ix);
    for (int i = 0; i < 50; i++) {
        uint8_t k = (uint8_t)(i * 5);
        e[i] = mk(4, &k, 1);
        CHECK_OK(i < 25 ? tome_index_append(ix, e[i]) : tome_index_insert(ix, e[i]));
        CHECK(tome_index_mods(ix) != m);
        m = tome_index_mods(ix);
        CHECK_EQ(tome_index_count(ix), i + 1);
    }
    for (int i = 0; i < 50; i++) {
        tome_index_remove(ix, e[i]);
        CHECK(tome_index_mods(ix) != m);
        m = tome_index_mods(ix);
        CHECK_EQ(tome_index_count(ix), 49 - i);
        free(e[i]);
    }
    CHECK_TREE(ix);
    tome_index_free(ix, NULL, NULL);
}

TT_MAIN()
