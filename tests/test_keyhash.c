/*
 * test_keyhash.c -- the point-lookup hash table beside the index tree
 * (src/index/keyhash.c): any capacity (not a power of two), growth with a
 * prefetched rehash, bulk insert, backward-shift removal across the wrap
 * at the end of the array, and a failed growth that leaves the table as it
 * was. Every check is against a plain array of the entries.
 */
#include "../include/tome.h"
#include "../src/index/keyhash.h"
#include "../src/os/os.h"
#include "tt.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A distinct key for each id (its first bytes), then bytes from k. */
static tome_entry *mk(uint8_t slot, uint32_t id, uint64_t k, size_t klen) {
    tome_entry *e = calloc(1, sizeof *e + 16);
    e->slot = slot;
    e->klen = (uint16_t)klen;
    for (size_t i = 0; i < klen; i++) e->key[i] = i < 3 ? (uint8_t)(id >> (8 * i)) : (uint8_t)(k >> (8 * (i % 8)) ^ i);
    return e;
}

static int found(const tome_keyhash *kh, const tome_entry *e) {
    return tome_keyhash_find(kh, e->slot, e->key, e->klen) == e;
}

TT_TEST(insert_find_remove_against_an_array) {
    enum { N = 60000 };
    static tome_entry *e[N];
    static int in[N];
    tome_keyhash *kh = tome_keyhash_new();
    CHECK(kh != NULL);
    for (size_t i = 0; i < N; i++) {
        /* keys of 3 to 16 bytes, an empty key, several slots */
        e[i] = mk((uint8_t)(i % 3), (uint32_t)i, rnd(), i == 0 ? 0 : 3 + i % 14);
        CHECK_OK(tome_keyhash_insert(kh, e[i]));
        in[i] = 1;
    }
    for (size_t i = 0; i < N; i++) CHECK(found(kh, e[i]));
    /* misses: same bytes in another slot, and keys never inserted */
    for (size_t i = 1; i < N; i += 7) {
        CHECK(tome_keyhash_find(kh, (uint8_t)(e[i]->slot + 3), e[i]->key, e[i]->klen) == NULL);
        tome_entry *x = mk(0, (uint32_t)(N + i), rnd(), 16);
        CHECK(tome_keyhash_find(kh, x->slot, x->key, x->klen) == NULL);
        free(x);
    }
    /* remove two thirds in random order; the rest stay findable */
    for (size_t r = 0; r < 2 * N; r++) {
        size_t i = rnd() % N;
        if (!in[i] || i % 3 == 0) continue;
        tome_keyhash_remove(kh, e[i]);
        in[i] = 0;
    }
    for (size_t i = 0; i < N; i++) CHECK_EQ(found(kh, e[i]), in[i]);
    /* removing an absent entry is a no-op */
    for (size_t i = 0; i < N; i++)
        if (!in[i]) tome_keyhash_remove(kh, e[i]);
    for (size_t i = 0; i < N; i++) CHECK_EQ(found(kh, e[i]), in[i]);
    /* put them back */
    for (size_t i = 0; i < N; i++)
        if (!in[i]) CHECK_OK(tome_keyhash_insert(kh, e[i]));
    for (size_t i = 0; i < N; i++) CHECK(found(kh, e[i]));
    tome_keyhash_free(kh);
    for (size_t i = 0; i < N; i++) free(e[i]);
}

/* A table reserved for n entries holds about n / 0.7 cells (not the next
 * power of two), insert_many fills it, and removals near the end of the
 * array wrap around correctly. */
TT_TEST(reserved_bulk_load_and_wraparound) {
    enum { N = 100003 };
    static tome_entry *e[N];
    tome_keyhash *kh = tome_keyhash_new();
    CHECK(kh != NULL);
    for (size_t i = 0; i < N; i++) e[i] = mk(7, (uint32_t)i, rnd(), 16);
    CHECK_OK(tome_keyhash_reserve(kh, N));
    size_t mem = tome_keyhash_memory(kh);
    CHECK(mem >= N * 8 * 10 / 8);           /* load at most 0.8 */
    CHECK(mem <= (N * 10 / 7 + 64) * 8);    /* about 1/0.7 cells per entry */
    tome_keyhash_insert_many(kh, e, N);
    CHECK_EQ(tome_keyhash_memory(kh), mem); /* no growth */
    for (size_t i = 0; i < N; i++) CHECK(found(kh, e[i]));
    /* remove every other entry and check the others (runs that cross the
     * array's end are moved back across it) */
    for (size_t i = 0; i < N; i += 2) tome_keyhash_remove(kh, e[i]);
    for (size_t i = 0; i < N; i++) CHECK_EQ(found(kh, e[i]), i % 2);
    tome_keyhash_free(kh);
    for (size_t i = 0; i < N; i++) free(e[i]);
}

static int g_fail;
static void *f_malloc(size_t n) { return g_fail ? NULL : malloc(n); }
static void *f_realloc(void *p, size_t n) { return g_fail ? NULL : realloc(p, n); }

/* A growth that cannot allocate returns TOME_NOMEM and changes nothing. */
TT_TEST(failed_growth_changes_nothing) {
    static const tome_alloc_hooks h = {f_malloc, f_realloc, free};
    enum { N = 5000 };
    static tome_entry *e[N];
    tome_keyhash *kh = tome_keyhash_new();
    CHECK(kh != NULL);
    size_t n = 0;
    tome_alloc_set_hooks(&h);
    for (; n < N; n++) {
        e[n] = mk(1, (uint32_t)n, rnd(), 12);
        g_fail = 1;
        int rc = tome_keyhash_insert(kh, e[n]);
        g_fail = 0;
        if (rc == TOME_NOMEM) { /* needed to grow: the table is unchanged */
            CHECK(!found(kh, e[n]));
            for (size_t i = 0; i < n; i++) CHECK(found(kh, e[i]));
            CHECK_OK(tome_keyhash_insert(kh, e[n]));
        } else {
            CHECK_OK(rc);
        }
    }
    tome_alloc_set_hooks(NULL);
    for (size_t i = 0; i < n; i++) CHECK(found(kh, e[i]));
    tome_keyhash_free(kh);
    for (size_t i = 0; i < n; i++) free(e[i]);
}

TT_MAIN()
