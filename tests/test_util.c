/*
 * test_util.c -- tests of src/util: CRC32C (against a bitwise reference, on
 * random data of many lengths and alignments, incremental over random
 * splits), the per-thread/per-handle error detail (isolation between
 * threads, the 8-handle LRU, truncation), the growable buffer (growth,
 * overflow, out of memory) and tome_hash (determinism, alignment, seeds,
 * avalanche).
 */
#include "tt.h"

#include "os/os.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>

/* Exported by src/util/crc32c.c for tests: the portable table loop. */
uint32_t tome_crc32c_sw(uint32_t crc, const void *data, size_t n);

static uint64_t rng_state = 0x0123456789ABCDEFu;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

/* ---- CRC32C ---- */

static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

TT_TEST(crc32c_check_values) {
    CHECK_U64(tome_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_U64(tome_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    CHECK_U64(crc_ref(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
    CHECK_U64(tome_crc32c(0, NULL, 0), 0);
    CHECK_U64(tome_crc32c(0x12345678u, "", 0), 0x12345678u);
    /* RFC 3720 (iSCSI) B.4 vectors. */
    uint8_t b[32];
    memset(b, 0, sizeof b);
    CHECK_U64(tome_crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    CHECK_U64(tome_crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    CHECK_U64(tome_crc32c(0, b, 32), 0x46DD794Eu);
    CHECK_U64(tome_crc32c_sw(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
    CHECK_U64(tome_crc32c(0, b, 32), 0x113FDB5Cu);
}

TT_TEST(crc32c_matches_reference) {
    enum { MAX = 4096 + 64 };
    uint8_t *buf = malloc(MAX);
    CHECK(buf != NULL);
    fill_random(buf, MAX);
    int bad = 0;
    for (size_t align = 0; align < 16; align++) {
        for (size_t n = 0; n <= 300; n++) {
            uint32_t want = crc_ref(0, buf + align, n);
            if (tome_crc32c(0, buf + align, n) != want) bad++;
            if (tome_crc32c_sw(0, buf + align, n) != want) bad++;
        }
        for (int k = 0; k < 40; k++) {
            size_t n = (size_t)(rnd() % 4096);
            uint32_t seed = (uint32_t)rnd();
            uint32_t want = crc_ref(seed, buf + align, n);
            if (tome_crc32c(seed, buf + align, n) != want) bad++;
            if (tome_crc32c_sw(seed, buf + align, n) != want) bad++;
        }
    }
    free(buf);
    CHECK_EQ(bad, 0);
}

TT_TEST(crc32c_incremental_random_splits) {
    enum { MAX = 8192 };
    uint8_t *buf = malloc(MAX);
    CHECK(buf != NULL);
    fill_random(buf, MAX);
    int bad = 0;
    for (int t = 0; t < 2000; t++) {
        size_t off = (size_t)(rnd() % 64);
        size_t n = (size_t)(rnd() % (MAX - 64));
        size_t a = n ? (size_t)(rnd() % (n + 1)) : 0;
        size_t b = (size_t)(rnd() % (n - a + 1));
        const uint8_t *p = buf + off;
        uint32_t whole = tome_crc32c(0, p, n);
        uint32_t parts = tome_crc32c(tome_crc32c(tome_crc32c(0, p, a), p + a, b), p + a + b, n - a - b);
        uint32_t sw = tome_crc32c_sw(tome_crc32c(0, p, a), p + a, n - a);
        if (whole != parts || whole != sw) bad++;
        if (t < 200 && whole != crc_ref(0, p, n)) bad++;
    }
    free(buf);
    CHECK_EQ(bad, 0);
}

/* ---- error detail ---- */

static char handles[16];
#define H(i) ((tome_db *)(void *)&handles[(i)])

TT_TEST(err_strerror) {
    const int codes[] = {TOME_OK, TOME_NOTFOUND, TOME_CONFLICT, TOME_INVALID, TOME_TOOBIG, TOME_IO,
                         TOME_CORRUPT, TOME_NOMEM, TOME_LOCKED, TOME_READONLY, TOME_MISUSE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = tome_strerror(codes[i]);
        CHECK(s != NULL && *s);
        CHECK(strcmp(s, "unknown error") != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, tome_strerror(codes[j])) != 0);
    }
    CHECK(strcmp(tome_strerror(-11), "unknown error") == 0);
    CHECK(strcmp(tome_strerror(1), "unknown error") == 0);
    CHECK(strcmp(tome_strerror(-1000), "unknown error") == 0);
}

TT_TEST(err_per_handle) {
    CHECK(strcmp(tome_errmsg(H(0)), "no error") == 0);
    CHECK(strcmp(tome_errmsg(NULL), "no error") == 0);
    errno = EAGAIN;
    CHECK_RC(tome_err(H(0), TOME_IO, "write %s: %d", "seg-1", 28), TOME_IO);
    CHECK_EQ(errno, EAGAIN);
    CHECK_RC(tome_err(NULL, TOME_LOCKED, "store %s is locked", "/x"), TOME_LOCKED);
    CHECK_RC(tome_err(H(1), TOME_CORRUPT, "%s", ""), TOME_CORRUPT);
    CHECK(strcmp(tome_errmsg(H(0)), "write seg-1: 28") == 0);
    CHECK(strcmp(tome_errmsg(NULL), "store /x is locked") == 0);
    CHECK(strcmp(tome_errmsg(H(1)), "") == 0);
    CHECK(strcmp(tome_errmsg(H(2)), "no error") == 0);
    /* A newer failure replaces the detail; its own text may be an argument. */
    tome_err(H(0), TOME_IO, "again (%s)", tome_errmsg(H(0)));
    CHECK(strcmp(tome_errmsg(H(0)), "again (write seg-1: 28)") == 0);
    tome_err_forget(H(0));
    tome_err_forget(H(1));
    tome_err_forget(NULL);
    tome_err_forget(H(5)); /* nothing stored: no-op */
    CHECK(strcmp(tome_errmsg(H(0)), "no error") == 0);
    CHECK(strcmp(tome_errmsg(H(1)), "no error") == 0);
    CHECK(strcmp(tome_errmsg(NULL), "no error") == 0);
}

TT_TEST(err_truncates_long_messages) {
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tome_err(H(3), TOME_IO, "%s%s", big, big);
    const char *m = tome_errmsg(H(3));
    CHECK_EQ(strlen(m), 511);
    CHECK(m[0] == 'x' && m[510] == 'x');
    tome_err_forget(H(3));
}

TT_TEST(err_lru_of_eight_handles) {
    char msg[32];
    tome_err(NULL, TOME_IO, "open failed");
    for (int i = 0; i < 8; i++) tome_err(H(i), TOME_IO, "h%d", i);
    for (int i = 0; i < 8; i++) {
        snprintf(msg, sizeof msg, "h%d", i);
        CHECK(strcmp(tome_errmsg(H(i)), msg) == 0);
    }
    /* Every handle was just read in order 0..7: 0 is the least recent. Use
     * 0 again, so 1 becomes the least recent, then add a ninth handle. */
    CHECK(strcmp(tome_errmsg(H(0)), "h0") == 0);
    tome_err(H(8), TOME_IO, "h8");
    CHECK(strcmp(tome_errmsg(H(1)), "no error") == 0);
    CHECK(strcmp(tome_errmsg(H(0)), "h0") == 0);
    CHECK(strcmp(tome_errmsg(H(8)), "h8") == 0);
    for (int i = 2; i < 8; i++) {
        snprintf(msg, sizeof msg, "h%d", i);
        CHECK(strcmp(tome_errmsg(H(i)), msg) == 0);
    }
    /* Since then the uses went 0, 8, 2..7: 0 is the least recent, and a
     * tenth handle evicts it. */
    tome_err(H(9), TOME_IO, "h9");
    CHECK(strcmp(tome_errmsg(H(0)), "no error") == 0);
    /* The tome_open slot is never evicted by handles. */
    CHECK(strcmp(tome_errmsg(NULL), "open failed") == 0);
    for (int i = 0; i < 10; i++) tome_err_forget(H(i));
    tome_err_forget(NULL);
}

struct err_thread_arg {
    int id;
    int ok;
    pthread_barrier_t *bar;
};

static void *err_thread(void *p) {
    struct err_thread_arg *a = p;
    char mine[32];
    snprintf(mine, sizeof mine, "thread %d", a->id);
    a->ok = strcmp(tome_errmsg(H(10)), "no error") == 0;
    pthread_barrier_wait(a->bar);
    tome_err(H(10), TOME_IO, "%s", mine);
    tome_err(NULL, TOME_IO, "%s open", mine);
    pthread_barrier_wait(a->bar); /* both threads have written */
    for (int i = 0; i < 1000; i++) {
        if (i % 2) tome_err(H(10), TOME_IO, "%s", mine);
        if (strcmp(tome_errmsg(H(10)), mine) != 0) a->ok = 0;
    }
    char op[48];
    snprintf(op, sizeof op, "%s open", mine);
    if (strcmp(tome_errmsg(NULL), op) != 0) a->ok = 0;
    tome_err_forget(H(10));
    tome_err_forget(NULL);
    return NULL;
}

TT_TEST(err_threads_are_isolated) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    struct err_thread_arg a[2] = {{1, 0, &bar}, {2, 0, &bar}};
    pthread_t t[2];
    tome_err(H(10), TOME_IO, "main thread");
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, err_thread, &a[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    CHECK(a[0].ok);
    CHECK(a[1].ok);
    CHECK(strcmp(tome_errmsg(H(10)), "main thread") == 0);
    CHECK(strcmp(tome_errmsg(NULL), "no error") == 0);
    tome_err_forget(H(10));
}

/* ---- allocation hooks that fail (shared by the buffer tests) ---- */

static long fail_at = -1; /* the allocation number that fails; -1: none */
static long alloc_count;
static void *f_malloc(size_t n) { return alloc_count++ == fail_at ? NULL : malloc(n); }
static void *f_realloc(void *p, size_t n) { return alloc_count++ == fail_at ? NULL : realloc(p, n); }
static void f_free(void *p) { free(p); }
static const tome_alloc_hooks failing_hooks = {f_malloc, f_realloc, f_free};

/* ---- buffer ---- */

TT_TEST(buf_growth_and_content) {
    tome_buf b = {0};
    uint8_t data[1000];
    fill_random(data, sizeof data);
    size_t expect = 0, last_cap = 0, lens[500];
    int grew = 0;
    for (int i = 0; i < 500; i++) {
        size_t n = lens[i] = (size_t)(rnd() % sizeof data);
        CHECK_OK(tome_buf_append(&b, data, n));
        CHECK(memcmp(b.p + expect, data, n) == 0);
        expect += n;
        CHECK_EQ(b.len, expect);
        CHECK(b.cap >= b.len);
        if (b.cap != last_cap) {
            if (last_cap) CHECK(b.cap >= 2 * last_cap); /* doubling */
            CHECK((b.cap & (b.cap - 1)) == 0);         /* 64 * 2^k */
            last_cap = b.cap;
            grew++;
        }
    }
    CHECK(grew > 5 && grew < 30);
    /* The whole buffer still holds every piece, in order. */
    size_t at = 0;
    for (int i = 0; i < 500; i++) {
        CHECK(memcmp(b.p + at, data, lens[i]) == 0);
        at += lens[i];
    }
    CHECK_OK(tome_buf_append(&b, NULL, 0));
    CHECK_EQ(b.len, expect);
    CHECK_RC(tome_buf_append(&b, NULL, 1), TOME_INVALID);
    CHECK_OK(tome_buf_reserve(&b, 0));
    size_t cap = b.cap;
    uint8_t *p = b.p;
    CHECK_RC(tome_buf_reserve(&b, SIZE_MAX), TOME_NOMEM);
    CHECK_RC(tome_buf_reserve(&b, SIZE_MAX - b.len + 1), TOME_NOMEM);
    CHECK(b.p == p && b.cap == cap && b.len == expect);
    tome_buf_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    tome_buf_free(&b);
}

TT_TEST(buf_out_of_memory_keeps_content) {
    tome_buf b = {0};
    CHECK_OK(tome_buf_append(&b, "hello", 5));
    size_t cap = b.cap;
    uint8_t big[256];
    memset(big, 7, sizeof big);
    alloc_count = 0;
    fail_at = 0;
    tome_alloc_set_hooks(&failing_hooks);
    int rc = tome_buf_append(&b, big, sizeof big);
    tome_alloc_set_hooks(NULL);
    fail_at = -1;
    CHECK_RC(rc, TOME_NOMEM);
    CHECK_EQ(b.cap, cap);
    CHECK_MEM(b.p, b.len, "hello", 5);
    CHECK_OK(tome_buf_append(&b, big, sizeof big));
    CHECK_EQ(b.len, 5 + sizeof big);
    tome_buf_free(&b);
}

/* ---- hash ---- */

TT_TEST(hash_basic_properties) {
    uint8_t buf[300 + 16];
    fill_random(buf, sizeof buf);
    /* Deterministic and independent of alignment. */
    uint8_t *copy = malloc(sizeof buf + 16);
    CHECK(copy != NULL);
    int bad = 0;
    for (size_t n = 0; n <= 300; n++) {
        uint64_t h = tome_hash(buf, n, 42);
        if (h != tome_hash(buf, n, 42)) bad++;
        for (size_t al = 1; al < 16; al += 5) {
            memcpy(copy + al, buf, n);
            if (tome_hash(copy + al, n, 42) != h) bad++;
        }
        if (tome_hash(buf, n, 43) == h) bad++;
    }
    free(copy);
    CHECK_EQ(bad, 0);
    /* Every prefix length gives a different hash, even of zero bytes. */
    uint8_t zeros[300] = {0};
    uint64_t hs[301];
    for (size_t n = 0; n <= 300; n++) {
        hs[n] = tome_hash(zeros, n, 0);
        for (size_t m = 0; m < n; m++) CHECK(hs[m] != hs[n]);
    }
    CHECK(tome_hash("", 0, 0) == tome_hash(NULL, 0, 0));
}

TT_TEST(hash_avalanche) {
    /* Flipping any one input bit flips each output bit with probability
     * close to 1/2: check the mean flip count and the worst per-bit bias. */
    const size_t lens[] = {1, 3, 4, 7, 8, 12, 16, 17, 31, 32, 33, 48, 64, 100};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        uint8_t in[100];
        static unsigned counts[64];
        memset(counts, 0, sizeof counts);
        unsigned long samples = 0, flips = 0;
        int trials = n < 12 ? (int)(4000 / (8 * n)) : 40; /* >= 3840 samples */
        for (int t = 0; t < trials; t++) {
            fill_random(in, n);
            uint64_t seed = rnd();
            uint64_t h = tome_hash(in, n, seed);
            for (size_t bit = 0; bit < n * 8; bit++) {
                in[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                uint64_t d = h ^ tome_hash(in, n, seed);
                in[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                flips += (unsigned long)__builtin_popcountll(d);
                for (int o = 0; o < 64; o++) counts[o] += (unsigned)((d >> o) & 1);
                samples++;
            }
        }
        double mean = (double)flips / (double)samples;
        if (mean < 30.0 || mean > 34.0) TT_FAIL_("len %zu: mean flips %.2f", n, mean);
        for (int o = 0; o < 64; o++) {
            double p = (double)counts[o] / (double)samples;
            if (p < 0.40 || p > 0.60) TT_FAIL_("len %zu: output bit %d flips with p=%.3f", n, o, p);
        }
    }
}

TT_MAIN()
