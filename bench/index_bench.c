/*
 * index_bench.c -- throughput and memory of the in-memory index
 * (src/index/btree.c). Not part of `make test`.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc -o /tmp/index_bench \
 *      bench/index_bench.c src/index/btree.c src/os/mem.c && /tmp/index_bench [N]
 *
 * N (default 1000000) random 16-byte keys, then N "user:%010u" text keys:
 * random inserts, random lookups (hits, then misses), a full ordered scan,
 * seeks, removals, a sorted bulk load with tome_index_append, the same with
 * tome_index_build, and inserts in sorted batches of 1000. Entries
 * are allocated before the clock starts; times are this thread's CPU time
 * (the figures hold on a busy machine). bytes/key is tome_index_memory()
 * divided by the number of keys (the tree's nodes only, not the entries).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../include/tome.h"
#include "index/index.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static tome_entry *mk(uint8_t slot, const void *key, size_t klen) {
    tome_entry *e = calloc(1, sizeof(tome_entry) + klen);
    if (!e) exit(1);
    e->nver = 1;
    e->slot = slot;
    e->klen = (uint16_t)klen;
    memcpy(e->key, key, klen);
    return e;
}

static int qcmp(const void *a, const void *b) {
    const tome_entry *x = *(tome_entry *const *)a, *y = *(tome_entry *const *)b;
    return tome_entry_cmp(x->slot, x->key, x->klen, y);
}

static void shuffle(tome_entry **a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd() % i;
        tome_entry *t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static volatile uintptr_t sink;

static void run(const char *name, tome_entry **keys, tome_entry **misses, size_t n) {
    printf("%s, %zu keys:\n", name, n);
    tome_index *ix = tome_index_new();
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        if (tome_index_insert(ix, keys[i]) != 0) {
            printf("insert failed\n");
            exit(1);
        }
    double t1 = now();
    printf("  insert (random order) %8.2f M/s   tree %.2f bytes/key\n", n / (t1 - t0) / 1e6,
           (double)tome_index_memory(ix) / (double)n);

    tome_entry **q = malloc(n * sizeof *q);
    memcpy(q, keys, n * sizeof *q);
    shuffle(q, n);
    /* probes: copies of the keys in query order, in one flat buffer, so that
     * the lookup's own access to the entry is a real cache miss */
    size_t stride = 32;
    uint8_t *pk = malloc(n * stride);
    for (size_t i = 0; i < n; i++) {
        pk[i * stride] = q[i]->slot;
        pk[i * stride + 1] = (uint8_t)q[i]->klen;
        memcpy(pk + i * stride + 2, q[i]->key, q[i]->klen);
    }
    uintptr_t acc = 0;
    for (int rep = 0; rep < 2; rep++) {
        t0 = now();
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = pk + i * stride;
            acc += (uintptr_t)tome_index_find(ix, p[0], p + 2, p[1]);
        }
        t1 = now();
    }
    printf("  find hit (random)     %8.2f M/s\n", n / (t1 - t0) / 1e6);
    /* reference: one entry read per step, each depending on the previous
     * (so the misses do not overlap, as in a lookup) */
    t0 = now();
    for (size_t i = 0, j = 0; i < n; i++) {
        unsigned kl = q[j]->klen;
        acc += kl;
        j = (j + 1 + (kl >> 15)) % n;
    }
    t1 = now();
    printf("  (reference: dependent random entry reads %.2f M/s)\n", n / (t1 - t0) / 1e6);
    t0 = now();
    for (size_t i = 0; i < n; i++)
        acc += (uintptr_t)tome_index_find(ix, misses[i]->slot, misses[i]->key, misses[i]->klen);
    t1 = now();
    printf("  find miss (random)    %8.2f M/s\n", n / (t1 - t0) / 1e6);

    tome_index_cursor c;
    size_t cnt = 0;
    for (int rep = 0; rep < 3; rep++) {
        cnt = 0;
        t0 = now();
        for (tome_entry *e = tome_index_first(ix, &c); e; e = tome_index_next(&c)) {
            acc += (uintptr_t)e;
            cnt++;
        }
        t1 = now();
    }
    printf("  ordered scan          %8.2f M keys/s (%zu keys)\n", cnt / (t1 - t0) / 1e6, cnt);
    cnt = 0;
    t0 = now();
    for (tome_entry *e = tome_index_first(ix, &c); e; e = tome_index_next(&c)) {
        acc += e->klen;
        cnt++;
    }
    t1 = now();
    printf("  ordered scan + klen   %8.2f M keys/s (touching each entry)\n", cnt / (t1 - t0) / 1e6);

    size_t ns = n / 4;
    t0 = now();
    for (size_t i = 0; i < ns; i++) {
        tome_entry *e = tome_index_seek(ix, &c, misses[i]->slot, misses[i]->key, misses[i]->klen);
        for (int k = 0; k < 10 && e; k++) e = tome_index_next(&c);
        acc += (uintptr_t)e;
    }
    t1 = now();
    printf("  seek + 10 next        %8.2f M/s\n", ns / (t1 - t0) / 1e6);

    t0 = now();
    for (size_t i = 0; i < n / 2; i++) tome_index_remove(ix, q[i]);
    t1 = now();
    printf("  remove half (random)  %8.2f M/s   tree %.2f bytes/key after\n", (n / 2) / (t1 - t0) / 1e6,
           (double)tome_index_memory(ix) / (double)(n - n / 2));
    tome_index_free(ix, NULL, NULL);

    memcpy(q, keys, n * sizeof *q);
    qsort(q, n, sizeof *q, qcmp);
    ix = tome_index_new();
    t0 = now();
    for (size_t i = 0; i < n; i++)
        if (tome_index_append(ix, q[i]) != 0) {
            printf("append failed\n");
            exit(1);
        }
    t1 = now();
    printf("  append (sorted load)  %8.2f M/s   tree %.2f bytes/key\n", n / (t1 - t0) / 1e6,
           (double)tome_index_memory(ix) / (double)n);
    t0 = now();
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = pk + i * stride;
        acc += (uintptr_t)tome_index_find(ix, p[0], p + 2, p[1]);
    }
    t1 = now();
    printf("  find hit after append %8.2f M/s\n", n / (t1 - t0) / 1e6);
    cnt = 0;
    t0 = now();
    for (tome_entry *e = tome_index_first(ix, &c); e; e = tome_index_next(&c)) cnt++;
    t1 = now();
    printf("  ordered scan          %8.2f M keys/s\n", cnt / (t1 - t0) / 1e6);
    tome_index_free(ix, NULL, NULL);

    /* the same sorted array, built bottom-up */
    ix = tome_index_new();
    t0 = now();
    if (tome_index_build(ix, q, n) != 0) {
        printf("build failed\n");
        exit(1);
    }
    t1 = now();
    printf("  build (sorted array)  %8.2f M/s   tree %.2f bytes/key\n", n / (t1 - t0) / 1e6,
           (double)tome_index_memory(ix) / (double)n);
    t0 = now();
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = pk + i * stride;
        acc += (uintptr_t)tome_index_find(ix, p[0], p + 2, p[1]);
    }
    t1 = now();
    printf("  find hit after build  %8.2f M/s\n", n / (t1 - t0) / 1e6);
    tome_index_free(ix, NULL, NULL);
    free(pk);

    /* a commit's new keys: batches of 1000 in random order, each sorted
     * (timed apart) and inserted with tome_index_insert_batch */
    memcpy(q, keys, n * sizeof *q);
    t0 = now();
    for (size_t i = 0; i < n; i += 1000) qsort(q + i, n - i < 1000 ? n - i : 1000, sizeof *q, qcmp);
    t1 = now();
    double sort_rate = n / (t1 - t0) / 1e6;
    ix = tome_index_new();
    t0 = now();
    for (size_t i = 0; i < n; i += 1000)
        if (tome_index_insert_batch(ix, q + i, n - i < 1000 ? n - i : 1000) != 0) {
            printf("batch insert failed\n");
            exit(1);
        }
    t1 = now();
    printf("  insert sorted batches %8.2f M/s   tree %.2f bytes/key (sorting them: %.2f M/s)\n",
           n / (t1 - t0) / 1e6, (double)tome_index_memory(ix) / (double)n, sort_rate);
    tome_index_free(ix, NULL, NULL);
    sink = acc;
    free(q);
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    tome_entry **keys = malloc(n * sizeof *keys), **miss = malloc(n * sizeof *miss);
    uint8_t k[16];
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 16; j += 8) {
            uint64_t r = rnd();
            memcpy(k + j, &r, 8);
        }
        keys[i] = mk(1, k, 16);
        k[15] ^= 0x55; /* misses: almost certainly absent, near real keys */
        miss[i] = mk(1, k, 16);
    }
    run("random 16-byte keys", keys, miss, n);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(miss[i]);
    }
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(rnd() % 4000000000u);
        int l = snprintf(buf, sizeof buf, "user:%010u", v);
        keys[i] = mk(2, buf, (size_t)l);
        buf[l - 1] = 'x';
        miss[i] = mk(2, buf, (size_t)l);
    }
    /* remove duplicate text keys */
    qsort(keys, n, sizeof *keys, qcmp);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w && qcmp(&keys[i], &keys[w - 1]) == 0) free(keys[i]);
        else keys[w++] = keys[i];
    }
    shuffle(keys, w);
    run("text keys user:%010u", keys, miss, w);
    for (size_t i = 0; i < w; i++) free(keys[i]);
    for (size_t i = 0; i < n; i++) free(miss[i]);
    free(keys);
    free(miss);
    return 0;
}
