/*
 * kv_bench.c -- the Lightning-like workload of issue 3, side by side in one
 * run: 4 KiB values written durably, one per call, to 1,000 keys under the
 * primary namespace "monitors" (keys shaped like LDK's "<txid>_<index>"),
 * with 1 and with 8 threads, for tome_kv_write and for a plain directory
 * store doing what LDK's FilesystemStore does for each write (write a temp
 * file, fsync it, rename it over the key, fsync the directory). Not part of
 * `make test`.
 *
 *   make build/bench/kv_bench && build/bench/kv_bench [DIR] [REPS]
 *   (or `make bench-kv`, which runs it with the defaults)
 *
 * DIR (default $TMPDIR or /tmp) must be on the disk to measure; REPS
 * (default 3) repetitions. Each repetition runs every (threads, engine)
 * pair on a fresh directory, alternating which engine goes first; each run
 * has three phases: "create" (every key written once: new files / new
 * keys), "update" (every key written twice more: what a node does to its
 * monitors; threads write disjoint keys, as LDK serialises writes per key)
 * and "apply20", which writes the keys in groups of 20 (the 20
 * monitors of rust-lightning issue 4457): one tome_kv_apply per group
 * against 20 separate FilesystemStore writes. The table gives the median
 * ops/s (key writes per second) over the repetitions, and tome/fs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../include/tome.h"

#define NKEYS 1000
#define VLEN 4096
#define UPDATE_ROUNDS 2
#define GROUP 20

enum { ENG_TOME = 0, ENG_FS = 1 };
enum { PH_CREATE = 0, PH_UPDATE = 1, PH_APPLY = 2, NPHASES = 3 };
static const char *phase_names[NPHASES] = {"create", "update", "apply20"};

static char keys[NKEYS][80];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "kv_bench: %s: %s\n", what, detail);
    exit(1);
}

static void rmtree(const char *path) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) die("rm -rf", path);
}

static void fill(uint8_t *buf, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < VLEN; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
}

/* ---- the FilesystemStore way ---- */

static void fs_write(const char *dir, const char *key, const void *buf, size_t len, int tid) {
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/%s", dir, key);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, tid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("open", strerror(errno));
    if (write(fd, buf, len) != (ssize_t)len) die("write", strerror(errno));
    if (fsync(fd) != 0) die("fsync", strerror(errno));
    if (close(fd) != 0) die("close", strerror(errno));
    if (rename(tmp, path) != 0) die("rename", strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die("open dir", strerror(errno));
    if (fsync(dfd) != 0) die("fsync dir", strerror(errno));
    close(dfd);
}

/* ---- one run ---- */

struct run {
    int engine, nthreads, phase;
    tome_db *db;          /* ENG_TOME */
    char fsdir[1100];     /* ENG_FS: DIR/monitors */
    uint64_t seed;
};

struct worker {
    pthread_t th;
    struct run *r;
    int tid;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct run *r = w->r;
    uint8_t *vals = malloc((size_t)GROUP * VLEN);
    int rounds = r->phase == PH_UPDATE ? UPDATE_ROUNDS : 1;
    for (int round = 0; round < rounds; round++) {
        if (r->phase == PH_APPLY) {
            /* groups of GROUP consecutive keys, group g to thread g % T */
            for (int g = w->tid; g * GROUP < NKEYS; g += r->nthreads) {
                tome_kv_op ops[GROUP];
                int n = 0;
                for (int k = g * GROUP; k < NKEYS && n < GROUP; k++, n++) {
                    fill(vals + (size_t)n * VLEN, r->seed + (uint64_t)k);
                    ops[n] = (tome_kv_op){TOME_KV_WRITE, "monitors", "", keys[k],
                                          vals + (size_t)n * VLEN, VLEN};
                }
                if (r->engine == ENG_TOME) {
                    int rc = tome_kv_apply(r->db, ops, (size_t)n);
                    if (rc) die("tome_kv_apply", tome_errmsg(r->db));
                } else {
                    for (int i = 0; i < n; i++) fs_write(r->fsdir, ops[i].key, ops[i].buf, VLEN, w->tid);
                }
            }
            continue;
        }
        for (int k = w->tid; k < NKEYS; k += r->nthreads) {
            fill(vals, r->seed + (uint64_t)round * NKEYS + (uint64_t)k);
            if (r->engine == ENG_TOME) {
                int rc = tome_kv_write(r->db, "monitors", "", keys[k], vals, VLEN);
                if (rc) die("tome_kv_write", tome_errmsg(r->db));
            } else {
                fs_write(r->fsdir, keys[k], vals, VLEN, w->tid);
            }
        }
    }
    free(vals);
    return NULL;
}

/* ops/s of one phase */
static double run_phase(struct run *r) {
    struct worker w[8];
    double t0 = now();
    for (int i = 0; i < r->nthreads; i++) {
        w[i].r = r;
        w[i].tid = i;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) die("pthread_create", "");
    }
    for (int i = 0; i < r->nthreads; i++) pthread_join(w[i].th, NULL);
    double dt = now() - t0;
    int writes = NKEYS * (r->phase == PH_UPDATE ? UPDATE_ROUNDS : 1);
    return writes / dt;
}

/* all phases of one (engine, threads) pair on a fresh directory */
static void run_all(const char *base, int engine, int nthreads, uint64_t seed,
                    double out[NPHASES]) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s-%d", base, engine == ENG_TOME ? "tome" : "fs", nthreads);
    rmtree(dir);
    struct run r;
    memset(&r, 0, sizeof r);
    r.engine = engine;
    r.nthreads = nthreads;
    r.seed = seed;
    if (engine == ENG_TOME) {
        int rc = tome_open(dir, NULL, &r.db);
        if (rc) die("tome_open", tome_errmsg(NULL));
    } else {
        if (mkdir(dir, 0755) != 0) die("mkdir", strerror(errno));
        snprintf(r.fsdir, sizeof r.fsdir, "%s/monitors", dir);
        if (mkdir(r.fsdir, 0755) != 0) die("mkdir", strerror(errno));
    }
    for (int ph = 0; ph < NPHASES; ph++) {
        r.phase = ph;
        out[ph] = run_phase(&r);
    }
    if (engine == ENG_TOME) {
        /* check: every key holds the apply20 value */
        uint8_t *want = malloc(VLEN);
        for (int k = 0; k < NKEYS; k += 97) {
            void *v = NULL;
            size_t vl = 0;
            fill(want, seed + (uint64_t)k);
            if (tome_kv_read(r.db, "monitors", "", keys[k], &v, &vl) || vl != VLEN ||
                memcmp(v, want, VLEN))
                die("check", keys[k]);
            tome_free(v);
        }
        free(want);
        if (tome_close(r.db)) die("tome_close", "");
    }
    rmtree(dir);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *t = getenv("TMPDIR");
    const char *parent = argc > 1 ? argv[1] : (t && *t ? t : "/tmp");
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (reps < 1) reps = 1;
    char base[1000];
    snprintf(base, sizeof base, "%s/tome-kv-bench-%d", parent, (int)getpid());
    rmtree(base);
    if (mkdir(base, 0755) != 0) die("mkdir", base);
    for (int k = 0; k < NKEYS; k++) {
        uint64_t x = 0x1234567 + (uint64_t)k * 0x9E3779B97F4A7C15ull;
        snprintf(keys[k], sizeof keys[k], "%016llx%016llx%016llx%016llx_%d",
                 (unsigned long long)x, (unsigned long long)(x * 3), (unsigned long long)(x * 5),
                 (unsigned long long)(x * 7), k % 4);
    }
    static const int threads[2] = {1, 8};
    double res[2][2][NPHASES][16];   /* [threads][engine][phase][rep] */
    printf("kv_bench: %d keys x %d B under \"monitors\", durable writes, %d repetitions, in %s\n",
           NKEYS, VLEN, reps, base);
    for (int rep = 0; rep < reps && rep < 16; rep++) {
        for (int ti = 0; ti < 2; ti++) {
            for (int e = 0; e < 2; e++) {
                int engine = (rep + ti) % 2 ? 1 - e : e;   /* alternate who goes first */
                double out[NPHASES];
                run_all(base, engine, threads[ti], (uint64_t)rep * 1000003u + (uint64_t)ti, out);
                for (int ph = 0; ph < NPHASES; ph++) res[ti][engine][ph][rep] = out[ph];
                printf("  rep %d, %d thread%s, %-4s:", rep + 1, threads[ti], threads[ti] > 1 ? "s" : "",
                       engine == ENG_TOME ? "tome" : "fs");
                for (int ph = 0; ph < NPHASES; ph++) printf(" %s %.0f/s", phase_names[ph], out[ph]);
                printf("\n");
                fflush(stdout);
            }
        }
    }
    printf("\nmedian key writes per second (each write durable on return):\n");
    printf("%-8s %-8s %12s %12s %8s\n", "threads", "phase", "tome", "fs-store", "tome/fs");
    for (int ti = 0; ti < 2; ti++) {
        for (int ph = 0; ph < NPHASES; ph++) {
            double med[2];
            for (int e = 0; e < 2; e++) {
                double v[16];
                int n = reps < 16 ? reps : 16;
                memcpy(v, res[ti][e][ph], sizeof(double) * (size_t)n);
                qsort(v, (size_t)n, sizeof v[0], cmp_double);
                med[e] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
            }
            printf("%-8d %-8s %12.0f %12.0f %8.2f\n", threads[ti], phase_names[ph], med[ENG_TOME],
                   med[ENG_FS], med[ENG_TOME] / med[ENG_FS]);
        }
    }
    printf("(apply20: tome commits 20 keys per tome_kv_apply, one sync; fs-store writes the 20\n"
           " files one by one, each durable. create: new keys/files; update: overwrites.)\n");
    rmtree(base);
    return 0;
}
