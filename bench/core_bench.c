/*
 * core_bench.c -- the figures of the core engine on one store:
 * random insert rate (batches of 1,000 per commit), random get rate,
 * durable single-key commit rate with 1 and 8 threads, open time (index
 * file, and full log scan), and resident memory per key.
 *
 *   build/bench/core_bench [-n KEYS] [-v VALUE_BYTES] [-d DIR] [-s SECONDS]
 *
 * Keys are 16 bytes, values incompressible; both come from a fixed-seed
 * generator, so runs are repeatable. Timing figures live here, never in
 * tests. This machine is shared and noisy: compare ratios within one run.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/tome.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void make_key(uint64_t i, uint8_t k[16]) {
    uint64_t a = mix(i), b = mix(i ^ 0xABCDEFull);
    memcpy(k, &a, 8);
    memcpy(k + 8, &b, 8);
}

static void make_val(uint64_t i, uint8_t *v, size_t n) {
    for (size_t j = 0; j < n; j += 8) {
        uint64_t x = mix(i * 1315423911u + j);
        memcpy(v + j, &x, n - j < 8 ? n - j : 8);
    }
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static void die(const char *what, int rc, tome_db *db) {
    fprintf(stderr, "core_bench: %s: %s (%s)\n", what, tome_strerror(rc), tome_errmsg(db));
    exit(1);
}

struct durable_arg {
    tome_db *db;
    int id;
    double until;
    long done;
    size_t vlen;
};

static void *durable_worker(void *p) {
    struct durable_arg *a = p;
    uint8_t k[16], v[4096];
    uint64_t i = (uint64_t)a->id << 40;
    while (now() < a->until) {
        make_key(i, k);
        make_val(i, v, a->vlen);
        tome_txn *t;
        int rc = tome_begin(a->db, &t);
        if (!rc) rc = tome_insert(t, 1, k, 16, v, a->vlen);
        if (!rc) rc = tome_commit(t);
        else tome_abort(t);
        if (rc) die("durable commit", rc, a->db);
        a->done++;
        i++;
    }
    return NULL;
}

static double durable_rate(tome_db *db, int threads, double seconds, size_t vlen) {
    pthread_t th[64];
    struct durable_arg a[64];
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        a[i] = (struct durable_arg){db, i, t0 + seconds, 0, vlen};
        pthread_create(&th[i], NULL, durable_worker, &a[i]);
    }
    long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += a[i].done;
    }
    return (double)total / (now() - t0);
}

/* --rss PATH: open the store in this fresh process and report memory. */
static int measure_rss(const char *path) {
    long before = rss_kb();
    tome_db *db;
    int rc = tome_open(path, NULL, &db);
    if (rc) die("open", rc, NULL);
    long after = rss_kb();
    tome_stats st;
    tome_stats_get(db, &st);
    double per = (double)(after - before) * 1024.0 / (double)(st.keys ? st.keys : 1);
    printf("resident memory of the open store: %.1f MiB = %.1f bytes/key (16-byte keys, one version: %.1f + the key)\n",
           (double)(after - before) / 1024.0, per, per - 16);
    tome_close(db);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--rss")) return measure_rss(argv[2]);
    uint64_t n = 1000000;
    size_t vlen = 100;
    double secs = 3;
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-v")) vlen = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-d")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "-s")) secs = atof(argv[i + 1]);
    }
    if (vlen > 4096) vlen = 4096;
    char path[512], cmd[600];
    char tmpl[] = "/tmp/tome-bench-XXXXXX";
    if (!dir) dir = mkdtemp(tmpl);
    snprintf(path, sizeof path, "%s/store", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) return 1;

    printf("tome core benchmark: %" PRIu64 " keys of 16 bytes, %zu-byte values, store %s\n", n, vlen, path);
    long rss0 = rss_kb();
    tome_db *db;
    int rc = tome_open(path, NULL, &db);
    if (rc) die("open", rc, NULL);

    /* random insert, 1,000 per commit */
    uint64_t *order = malloc(n * sizeof *order);
    for (uint64_t i = 0; i < n; i++) order[i] = i;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = mix(i) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint8_t k[16], v[4096];
    double t0 = now();
    for (uint64_t i = 0; i < n;) {
        tome_txn *t;
        if ((rc = tome_begin(db, &t))) die("begin", rc, db);
        for (int j = 0; j < 1000 && i < n; j++, i++) {
            make_key(order[i], k);
            make_val(order[i], v, vlen);
            if ((rc = tome_insert(t, 0, k, 16, v, vlen))) die("insert", rc, db);
        }
        if ((rc = tome_commit(t))) die("commit", rc, db);
    }
    double t_ins = now() - t0;
    printf("random insert (1000/commit): %10.0f keys/s\n", (double)n / t_ins);

    /* random get (hits), 1,000 per transaction */
    t0 = now();
    for (uint64_t i = 0; i < n;) {
        tome_txn *t;
        if ((rc = tome_begin(db, &t))) die("begin", rc, db);
        for (int j = 0; j < 1000 && i < n; j++, i++) {
            uint64_t x = mix(i + 77) % n;
            make_key(x, k);
            const void *p;
            size_t l;
            if ((rc = tome_get(t, 0, k, 16, &p, &l))) die("get", rc, db);
            if (l != vlen) die("get length", TOME_CORRUPT, db);
        }
        tome_abort(t);
    }
    double t_get = now() - t0;
    printf("random get (hits):           %10.0f keys/s\n", (double)n / t_get);

    /* close, then open through the index file */
    t0 = now();
    if ((rc = tome_close(db))) die("close", rc, NULL);
    double t_close = now() - t0;
    long rss1 = rss_kb();
    t0 = now();
    if ((rc = tome_open(path, NULL, &db))) die("reopen", rc, NULL);
    double t_open = now() - t0;
    long rss2 = rss_kb();
    tome_stats st;
    tome_stats_get(db, &st);
    printf("close (sync + index file):   %10.3f s\n", t_close);
    printf("open (index file):           %10.3f s  (%" PRIu64 " keys)\n", t_open, st.keys);
    (void)rss0;
    (void)rss1;
    (void)rss2;

    /* durable single-key commits */
    double d1 = durable_rate(db, 1, secs, vlen);
    double d8 = durable_rate(db, 8, secs, vlen);
    printf("durable 1-key commit, 1 thread:  %8.0f commits/s\n", d1);
    printf("durable 1-key commit, 8 threads: %8.0f commits/s\n", d8);
    if ((rc = tome_close(db))) die("close", rc, NULL);

    /* resident memory of an open store, measured in a fresh process */
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "'/proc/%d/exe' --rss '%s'", (int)getpid(), path);
    if (system(cmd) != 0) return 1;

    /* open by scanning the whole log (no index file) */
    snprintf(cmd, sizeof cmd, "rm -f '%s/INDEX'", path);
    if (system(cmd) != 0) return 1;
    t0 = now();
    if ((rc = tome_open(path, NULL, &db))) die("open (scan)", rc, NULL);
    double t_scan = now() - t0;
    printf("open (full log scan):        %10.3f s  (index file is %.1fx faster)\n", t_scan, t_scan / t_open);
    tome_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) return 1;
    free(order);
    return 0;
}
