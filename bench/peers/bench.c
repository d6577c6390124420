/*
 * bench.c -- the driver of the peer benchmark (issue 5): tome against LMDB,
 * SQLite, LevelDB, RocksDB and Tkrzw, and, for the Lightning-like
 * workload, against a FilesystemStore-like directory store and SQLite as
 * LDK's SqliteStore uses it, all through their C APIs, on the same
 * generated data, in one run.
 *
 *   build/bench/peers [-n KEYS] [-v VALUE_BYTES] [-e ENGINES] [-w WORKLOADS]
 *                     [-r ROUNDS] [-b BUDGET_S] [-d DIR] [-o OUTDIR] ...
 *   build/bench/peers --help      (every flag, engine and workload)
 *
 * How it measures. Every (workload, engine) pair runs in a fresh process
 * (this binary re-executed with --child), so each figure starts with a
 * cold engine (its caches empty) on a warm page cache, and the process's
 * own peak resident memory (VmHWM) and bytes written (/proc/self/io
 * write_bytes) belong to that engine alone. For each workload the engines
 * run one after the other (interleaved: machine drift hits all alike), in
 * an order rotated each round; rounds repeat the whole pipeline while the
 * time budget allows and each figure is the median over the rounds. Only
 * the engine calls are timed (data generation is not). Every value read is
 * checked against the generated data (length, first and last word; all
 * bytes with --verify), so a figure counts only right answers.
 *
 * Data: key i (0 <= i < n) is 16 bytes: the big-endian 64-bit number 2i,
 * then 8 pseudo-random bytes; key order is i order. A miss key is 2i+1
 * with the same tail: absent, yet inside the key range (bloom filters must
 * work, range checks do not help). Values are pseudo-random (incompressible)
 * bytes determined by (i, version): version 0 for the fills, 1 for the
 * overwrite, 2 for the durable writes.
 *
 * The pipeline of a round: fill-seq (own store, deleted after), fill-rand,
 * overwrite, read-hit, read-miss, scan, merge (tome), open and open-scan
 * (tome without its INDEX file), durable-1/8/32 and lightning (each in a
 * fresh store of its own).
 * Selecting a later workload alone runs fill-rand first, untimed (and the
 * overwrite when it is selected, or reads then expect version 0).
 *
 * Output: progress on stderr, a summary on stdout, and with -o OUTDIR:
 * OUTDIR/RESULTS.md (tables, ratios, targets of issue 5, machine, settings,
 * every round's figures), OUTDIR/results.dat and OUTDIR/ratios.dat (for
 * bench/plot.gp).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

/* ------------------------------------------------------------------------ */
/* Engines and workloads                                                     */
/* ------------------------------------------------------------------------ */

enum { E_TOME, E_LMDB, E_SQLITE, E_LEVELDB, E_ROCKSDB, E_TKRZW, E_FSSTORE, E_COUNT };

static const struct engine {
    const char *name;
    const peer_ops *ops;
    const peer_kvstore_ops *kv;
} engines[E_COUNT] = {
    {"tome", &peer_tome, &peer_kv_tome},
    {"lmdb", &peer_lmdb, NULL},
    {"sqlite", &peer_sqlite, &peer_kv_sqlite},
    {"leveldb", &peer_leveldb, NULL},
    {"rocksdb", &peer_rocksdb, NULL},
    {"tkrzw", &peer_tkrzw, NULL},
    {"fsstore", NULL, &peer_kv_fsstore},
};

enum { K_BULK, K_READ, K_SCAN, K_MERGE, K_OPEN, K_DUR, K_LN };

enum {
    W_FILL_SEQ, W_FILL_RAND, W_OVERWRITE, W_READ_HIT, W_READ_MISS, W_SCAN, W_MERGE,
    W_OPEN, W_OPEN_SCAN, W_DUR1, W_DUR8, W_DUR32, W_LN, W_COUNT
};

static const struct wdef {
    const char *name;
    const char *title;
    int kind;
    int threads;    /* K_DUR */
    int tome_only;  /* merge, open-scan */
    int lower_better; /* open times */
} wl[W_COUNT] = {
    {"fill-seq", "fill in key order (batches)", K_BULK, 0, 0, 0},
    {"fill-rand", "fill in random order (batches)", K_BULK, 0, 0, 0},
    {"overwrite", "overwrite, random order (batches)", K_BULK, 0, 0, 0},
    {"read-hit", "random reads, hits", K_READ, 0, 0, 0},
    {"read-miss", "random reads, misses", K_READ, 0, 0, 0},
    {"scan", "full scan in key order", K_SCAN, 0, 0, 0},
    {"merge", "merge after overwrite (live records/s)", K_MERGE, 0, 1, 0},
    {"open", "open + 1 get, fresh process (ms)", K_OPEN, 0, 0, 1},
    {"open-scan", "open without INDEX: full log scan (ms)", K_OPEN, 0, 1, 1},
    {"durable-1", "durable 1-key commits, 1 thread", K_DUR, 1, 0, 0},
    {"durable-8", "durable 1-key commits, 8 threads", K_DUR, 8, 0, 0},
    {"durable-32", "durable 1-key commits, 32 threads", K_DUR, 32, 0, 0},
    {"lightning", "Lightning-like: 4 KiB durable writes + list/100", K_LN, 0, 0, 0},
};

static int applies(int w, int e) {
    if (wl[w].kind == K_LN) return engines[e].kv != NULL;
    if (!engines[e].ops) return 0;
    if (wl[w].tome_only) return e == E_TOME;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

static struct cfg {
    uint64_t n;
    size_t vlen;
    size_t batch;
    int bulk_sync;
    double dur_secs, ln_secs;
    uint64_t reads;
    unsigned ln_keys;
    size_t ln_vlen;
    unsigned ln_list_every;
    int rounds;
    double budget;
    const char *dir;
    const char *out;
    int keep;
    int verify;
    unsigned emask, wmask;
    /* child only */
    unsigned ver, round;
} C = {
    .n = 1000000, .vlen = 100, .batch = 1000, .dur_secs = 2, .ln_secs = 3, .reads = 0,
    .ln_keys = 1000, .ln_vlen = 4096, .ln_list_every = 100, .rounds = 3, .budget = 720,
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("peers: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ------------------------------------------------------------------------ */
/* Generated data and checks                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void make_key(uint64_t i, int miss, uint8_t k[16]) {
    uint64_t p = 2 * i + (miss ? 1 : 0), t = mix(i ^ 0x5BD1E995ull);
    for (int b = 0; b < 8; b++) k[b] = (uint8_t)(p >> (56 - 8 * b));
    memcpy(k + 8, &t, 8);
}

static uint64_t key_index(const uint8_t *k, int *miss) {
    uint64_t p = 0;
    for (int b = 0; b < 8; b++) p = p << 8 | k[b];
    *miss = (int)(p & 1);
    return p >> 1;
}

static uint64_t vword(uint64_t i, unsigned ver, size_t j) {
    return mix((mix(i * 8 + ver + 0x1234567ull) ^ 0xA5A5A5A5A5A5A5A5ull) + j);
}

static void make_val(uint64_t i, unsigned ver, uint8_t *v, size_t len) {
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        uint64_t x = vword(i, ver, j / 8);
        memcpy(v + j, &x, 8);
    }
    if (j < len) {
        uint64_t x = vword(i, ver, j / 8);
        memcpy(v + j, &x, len - j);
    }
}

static const char *g_engine = "?";
static int g_ordered;
static uint8_t g_prev[16];
static uint64_t g_visited;

static void bad(const char *what, uint64_t i) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s (key index %" PRIu64 ")", what, i);
    peer_die(g_engine, "wrong data", buf);
}

static void check_record(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    int miss;
    if (kl != 16) bad("key length", 0);
    uint64_t i = key_index(k, &miss);
    if (miss || i >= C.n) bad("unexpected key", i);
    uint64_t t = mix(i ^ 0x5BD1E995ull);
    if (memcmp(k + 8, &t, 8)) bad("key tail", i);
    if (vl != C.vlen) bad("value length", i);
    if (C.verify || vl < 16) {
        uint8_t buf[65536];
        if (vl > sizeof buf) bad("value too long to verify", i);
        make_val(i, C.ver, buf, vl);
        if (memcmp(buf, v, vl)) bad("value bytes", i);
        return;
    }
    uint64_t a = vword(i, C.ver, 0), z = vword(i, C.ver, vl / 8 - 1);
    if (memcmp(v, &a, 8) || memcmp(v + (vl / 8 - 1) * 8, &z, 8)) bad("value bytes", i);
}

void peer_check_value(const peer_kv *q, int found, const void *v, size_t vl) {
    if (!q->v) {
        if (found) bad("a missing key was found", 0);
        return;
    }
    if (!found) {
        int miss;
        bad("a present key was not found", key_index(q->k, &miss));
    }
    check_record(q->k, q->kl, v, vl);
}

void peer_visit(const void *k, size_t kl, const void *v, size_t vl) {
    check_record(k, kl, v, vl);
    if (g_ordered) {
        /* check_record() made sure every key has 16 bytes */
        if (g_visited && memcmp(g_prev, k, 16) >= 0) bad("scan out of key order", g_visited);
        memcpy(g_prev, k, 16);
    }
    g_visited++;
}

void peer_die(const char *engine, const char *what, const char *detail) {
    fprintf(stderr, "peers: %s: %s: %s\n", engine, what, detail);
    exit(1);
}

void peer_mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) peer_die("harness", "mkdir", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) peer_die("harness", "mkdir", buf);
}

/* ------------------------------------------------------------------------ */
/* Process figures                                                           */
/* ------------------------------------------------------------------------ */

static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl)) kb = strtol(line + fl, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static uint64_t write_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    char line[256];
    uint64_t b = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "write_bytes:", 12)) b = strtoull(line + 12, NULL, 10);
    if (f) fclose(f);
    return b;
}

/* ------------------------------------------------------------------------ */
/* The child: one workload on one engine                                     */
/* ------------------------------------------------------------------------ */

typedef struct cres {
    uint64_t ops;
    double secs;
    long base_kb, hwm_kb, open_kb;
    uint64_t wb, wbc;
} cres;

static uint32_t *make_perm(uint64_t n, uint64_t seed) {
    uint32_t *p = malloc(n * sizeof *p);
    if (!p) fatal("out of memory");
    for (uint64_t i = 0; i < n; i++) p[i] = (uint32_t)i;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = mix(seed * 0x100000001ull + i) % (i + 1);
        uint32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static void child_bulk(int w, const peer_ops *ops, const char *path, cres *r) {
    uint32_t *perm = w == W_FILL_SEQ ? NULL : make_perm(C.n, w == W_FILL_RAND ? 1 : 2);
    uint8_t *kb = malloc(C.batch * 16), *vb = malloc(C.batch * C.vlen);
    peer_kv *kv = malloc(C.batch * sizeof *kv);
    if (!kb || !vb || !kv) fatal("out of memory");
    r->base_kb = status_kb("VmRSS:");
    uint64_t io0 = write_bytes();
    void *h = ops->open(path, PEER_BULK);
    double el = 0;
    for (uint64_t off = 0; off < C.n;) {
        size_t m = C.n - off < C.batch ? (size_t)(C.n - off) : C.batch;
        for (size_t j = 0; j < m; j++) {
            uint64_t i = perm ? perm[off + j] : off + j;
            make_key(i, 0, kb + 16 * j);
            make_val(i, C.ver, vb + C.vlen * j, C.vlen);
            kv[j] = (peer_kv){kb + 16 * j, 16, vb + C.vlen * j, C.vlen};
        }
        double t0 = now();
        ops->put_batch(h, kv, m, C.bulk_sync);
        el += now() - t0;
        off += m;
    }
    double t0 = now();
    ops->sync(h);
    el += now() - t0;
    r->wb = write_bytes() - io0;
    ops->close(h);
    r->wbc = write_bytes() - io0;
    r->ops = C.n;
    r->secs = el;
    free(perm);
    free(kb);
    free(vb);
    free(kv);
}

static void child_read(int w, const peer_ops *ops, const char *path, cres *r) {
    int miss = w == W_READ_MISS;
    uint64_t reads = C.reads ? C.reads : C.n;
    uint8_t *kb = malloc(C.batch * 16);
    peer_kv *q = malloc(C.batch * sizeof *q);
    static const uint8_t present = 1;
    if (!kb || !q) fatal("out of memory");
    r->base_kb = status_kb("VmRSS:");
    uint64_t io0 = write_bytes();
    void *h = ops->open(path, PEER_READ);
    double el = 0;
    uint64_t hits = 0, seed = mix(C.round * 1000003ull + (uint64_t)w);
    for (uint64_t off = 0; off < reads;) {
        size_t m = reads - off < C.batch ? (size_t)(reads - off) : C.batch;
        for (size_t j = 0; j < m; j++) {
            uint64_t i = mix(seed + off + j) % C.n;
            make_key(i, miss, kb + 16 * j);
            q[j] = (peer_kv){kb + 16 * j, 16, miss ? NULL : &present, miss ? 0 : C.vlen};
        }
        double t0 = now();
        hits += ops->get_batch(h, q, m);
        el += now() - t0;
        off += m;
    }
    if (hits != (miss ? 0 : reads)) peer_die(g_engine, "reads", "wrong hit count");
    r->wb = write_bytes() - io0;
    ops->close(h);
    r->wbc = write_bytes() - io0;
    r->ops = reads;
    r->secs = el;
    free(kb);
    free(q);
}

static void child_scan(const peer_ops *ops, const char *path, cres *r) {
    r->base_kb = status_kb("VmRSS:");
    uint64_t io0 = write_bytes();
    void *h = ops->open(path, PEER_READ);
    g_ordered = ops->ordered;
    double t0 = now();
    uint64_t count = ops->scan(h);
    r->secs = now() - t0;
    if (count != C.n || g_visited != C.n) {
        char buf[128];
        snprintf(buf, sizeof buf, "%" PRIu64 " records, %" PRIu64 " expected", count, C.n);
        peer_die(g_engine, "scan", buf);
    }
    r->wb = write_bytes() - io0;
    ops->close(h);
    r->wbc = write_bytes() - io0;
    r->ops = count;
}

static void child_merge(const peer_ops *ops, const char *path, cres *r) {
    r->base_kb = status_kb("VmRSS:");
    void *h = ops->open(path, PEER_READ);
    uint64_t io0 = write_bytes();
    double t0 = now();
    uint64_t live = ops->merge(h);
    r->secs = now() - t0;
    r->wb = write_bytes() - io0;
    ops->close(h);
    r->wbc = write_bytes() - io0;
    r->ops = live;
    if (live != C.n) peer_die(g_engine, "merge", "wrong live record count");
}

static void child_open(int w, const peer_ops *ops, const char *path, cres *r) {
    if (w == W_OPEN_SCAN) {
        char idx[4200];
        snprintf(idx, sizeof idx, "%s/INDEX", path);
        if (unlink(idx) != 0 && errno != ENOENT) peer_die(g_engine, "unlink INDEX", strerror(errno));
    }
    uint8_t k[16];
    static const uint8_t present = 1;
    uint64_t i = mix(C.round + 17) % C.n;
    make_key(i, 0, k);
    peer_kv q = {k, 16, &present, C.vlen};
    r->base_kb = status_kb("VmRSS:");
    uint64_t io0 = write_bytes();
    double t0 = now();
    void *h = ops->open(path, PEER_READ);
    size_t hits = ops->get_batch(h, &q, 1);
    r->secs = now() - t0;
    r->open_kb = status_kb("VmRSS:") - r->base_kb;
    if (hits != 1) peer_die(g_engine, "open", "the key read after open was not found");
    r->wb = write_bytes() - io0;
    ops->close(h);
    r->wbc = write_bytes() - io0;
    r->ops = 1;
}

typedef struct dur_arg {
    const peer_ops *ops;
    void *h;
    unsigned id;
    double until, end;
    uint64_t done;
} dur_arg;

static void *dur_worker(void *p) {
    dur_arg *a = p;
    uint8_t k[16], *v = malloc(C.vlen);
    if (!v) fatal("out of memory");
    for (uint64_t j = 0;; j++) {
        if (now() >= a->until) break;
        uint64_t i = mix(((uint64_t)a->id << 40) ^ ((uint64_t)C.round << 56) ^ j) % C.n;
        make_key(i, 0, k);
        make_val(i, 2, v, C.vlen);
        peer_kv kv = {k, 16, v, C.vlen};
        a->ops->put_durable(a->h, &kv);
        a->done++;
    }
    a->end = now();
    free(v);
    return NULL;
}

static void child_durable(int w, const peer_ops *ops, const char *path, cres *r) {
    int threads = wl[w].threads;
    pthread_t th[64];
    dur_arg a[64];
    r->base_kb = status_kb("VmRSS:");
    uint64_t io0 = write_bytes();
    void *h = ops->open(path, PEER_DURABLE);
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        a[i] = (dur_arg){ops, h, (unsigned)i, t0 + C.dur_secs, 0, 0};
        if (pthread_create(&th[i], NULL, dur_worker, &a[i])) fatal("pthread_create");
    }
    double end = t0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        r->ops += a[i].done;
        if (a[i].end > end) end = a[i].end;
    }
    r->secs = end - t0;
    r->wb = write_bytes() - io0;
    ops->close(h);
    r->wbc = write_bytes() - io0;
}

static void ln_key(unsigned idx, char out[96]) {
    snprintf(out, 96, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "_%u", mix(idx * 4ull),
             mix(idx * 4ull + 1), mix(idx * 4ull + 2), mix(idx * 4ull + 3), idx % 3);
}

static void child_lightning(const peer_kvstore_ops *kv, const char *path, cres *r) {
    uint8_t *v = malloc(C.ln_vlen);
    char key[96];
    if (!v) fatal("out of memory");
    r->base_kb = status_kb("VmRSS:");
    uint64_t io0 = write_bytes();
    void *h = kv->open(path);
    for (unsigned i = 0; i < C.ln_keys; i++) { /* the monitors exist already: untimed */
        ln_key(i, key);
        make_val(i, 0, v, C.ln_vlen);
        kv->write(h, "monitors", "", key, v, C.ln_vlen);
    }
    if (kv->list(h, "monitors", "") != C.ln_keys) peer_die(g_engine, "lightning", "wrong key count after fill");
    double t0 = now(), t1 = t0;
    uint64_t j = 0;
    for (; t1 - t0 < C.ln_secs; j++) {
        unsigned i = (unsigned)(mix(j + 0xC0FFEEull * (C.round + 1)) % C.ln_keys);
        ln_key(i, key);
        make_val(i, (unsigned)(j % 200) + 1, v, C.ln_vlen);
        kv->write(h, "monitors", "", key, v, C.ln_vlen);
        if ((j + 1) % C.ln_list_every == 0 && kv->list(h, "monitors", "") != C.ln_keys)
            peer_die(g_engine, "lightning", "wrong key count in a listing");
        t1 = now();
    }
    r->secs = t1 - t0;
    r->ops = j;
    r->wb = write_bytes() - io0;
    kv->close(h);
    r->wbc = write_bytes() - io0;
    free(v);
}

static int child_main(int w, int e, const char *path) {
    cres r;
    memset(&r, 0, sizeof r);
    g_engine = engines[e].name;
    alarm(900); /* a hung engine must not hang the run */
    const peer_ops *ops = engines[e].ops;
    switch (wl[w].kind) {
    case K_BULK: child_bulk(w, ops, path, &r); break;
    case K_READ: child_read(w, ops, path, &r); break;
    case K_SCAN: child_scan(ops, path, &r); break;
    case K_MERGE: child_merge(ops, path, &r); break;
    case K_OPEN: child_open(w, ops, path, &r); break;
    case K_DUR: child_durable(w, ops, path, &r); break;
    case K_LN: child_lightning(engines[e].kv, path, &r); break;
    }
    r.hwm_kb = status_kb("VmHWM:");
    printf("RESULT %" PRIu64 " %.9f %ld %ld %ld %" PRIu64 " %" PRIu64 "\n", r.ops, r.secs, r.base_kb, r.hwm_kb,
           r.open_kb, r.wb, r.wbc);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The parent: rounds, children, results                                     */
/* ------------------------------------------------------------------------ */

#define MAX_ROUNDS 20

typedef struct res {
    int ok;
    double value;   /* ops/s, or seconds for open workloads */
    cres c;
} res;

static res R[MAX_ROUNDS][W_COUNT][E_COUNT];
static double disk_fill[MAX_ROUNDS][E_COUNT], disk_scan[MAX_ROUNDS][E_COUNT], disk_merge[MAX_ROUNDS];
static double disk_seq[MAX_ROUNDS][E_COUNT];
static int rounds_done;
static char self_exe[PATH_MAX];
static char run_dir[1024];
static double t_start;
static char load_start[128];
static char cmdline[2048];

static int selected_w(int w) { return (C.wmask >> w) & 1; }
static int selected_e(int e) { return (C.emask >> e) & 1; }

static void store_path(int round, int e, const char *store, char *out, size_t cap) {
    snprintf(out, cap, "%s/r%d/%s/%s", run_dir, round, engines[e].name, store);
}

static int run_child(int round, int w, int e, const char *path, unsigned ver, cres *out) {
    char a_n[32], a_v[32], a_b[32], a_ds[32], a_ls[32], a_rd[32], a_ver[16], a_r[16], a_lk[16], a_lv[16],
        a_le[16], a_w[8], a_e[8];
    snprintf(a_n, sizeof a_n, "%" PRIu64, C.n);
    snprintf(a_v, sizeof a_v, "%zu", C.vlen);
    snprintf(a_b, sizeof a_b, "%zu", C.batch);
    snprintf(a_ds, sizeof a_ds, "%.3f", C.dur_secs);
    snprintf(a_ls, sizeof a_ls, "%.3f", C.ln_secs);
    snprintf(a_rd, sizeof a_rd, "%" PRIu64, C.reads);
    snprintf(a_ver, sizeof a_ver, "%u", ver);
    snprintf(a_r, sizeof a_r, "%d", round);
    snprintf(a_lk, sizeof a_lk, "%u", C.ln_keys);
    snprintf(a_lv, sizeof a_lv, "%zu", C.ln_vlen);
    snprintf(a_le, sizeof a_le, "%u", C.ln_list_every);
    snprintf(a_w, sizeof a_w, "%d", w);
    snprintf(a_e, sizeof a_e, "%d", e);
    const char *argv[40];
    int ac = 0;
    argv[ac++] = self_exe;
    argv[ac++] = "-n"; argv[ac++] = a_n;
    argv[ac++] = "-v"; argv[ac++] = a_v;
    argv[ac++] = "--batch"; argv[ac++] = a_b;
    argv[ac++] = "--dur-secs"; argv[ac++] = a_ds;
    argv[ac++] = "--ln-secs"; argv[ac++] = a_ls;
    argv[ac++] = "--reads"; argv[ac++] = a_rd;
    argv[ac++] = "--ln-keys"; argv[ac++] = a_lk;
    argv[ac++] = "--ln-value"; argv[ac++] = a_lv;
    argv[ac++] = "--ln-list-every"; argv[ac++] = a_le;
    argv[ac++] = "--ver"; argv[ac++] = a_ver;
    argv[ac++] = "--round"; argv[ac++] = a_r;
    if (C.bulk_sync) argv[ac++] = "--bulk-sync";
    if (C.verify) argv[ac++] = "--verify";
    argv[ac++] = "--child"; argv[ac++] = a_w; argv[ac++] = a_e; argv[ac++] = path;
    argv[ac] = NULL;

    int fds[2];
    if (pipe(fds) != 0) fatal("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) fatal("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        execv(self_exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char buf[1024];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) len += (size_t)got;
    buf[len] = 0;
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    const char *p = strstr(buf, "RESULT ");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !p) {
        fprintf(stderr, "peers: r%d %s %s: the child failed (%s %d)\n", round, wl[w].name, engines[e].name,
                WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (sscanf(p, "RESULT %" SCNu64 " %lf %ld %ld %ld %" SCNu64 " %" SCNu64, &out->ops, &out->secs, &out->base_kb,
               &out->hwm_kb, &out->open_kb, &out->wb, &out->wbc) != 7) {
        fprintf(stderr, "peers: r%d %s %s: unreadable result '%s'\n", round, wl[w].name, engines[e].name, p);
        return -1;
    }
    return 0;
}

static void fmt_rate(double v, char *out, size_t cap) {
    if (!(v == v) || v <= 0) snprintf(out, cap, "-");
    else if (v >= 1e7) snprintf(out, cap, "%.1fM", v / 1e6);
    else if (v >= 1e6) snprintf(out, cap, "%.2fM", v / 1e6);
    else if (v >= 1e5) snprintf(out, cap, "%.0fk", v / 1e3);
    else if (v >= 1e4) snprintf(out, cap, "%.1fk", v / 1e3);
    else if (v >= 1e3) snprintf(out, cap, "%.2fk", v / 1e3);
    else snprintf(out, cap, "%.0f", v);
}

static void fmt_ms(double s, char *out, size_t cap) {
    if (!(s == s) || s <= 0) snprintf(out, cap, "-");
    else if (s >= 1) snprintf(out, cap, "%.0f ms", s * 1e3);
    else if (s >= 0.01) snprintf(out, cap, "%.1f ms", s * 1e3);
    else snprintf(out, cap, "%.2f ms", s * 1e3);
}

static void fmt_value(int w, double v, char *out, size_t cap) {
    if (wl[w].lower_better) fmt_ms(v, out, cap);
    else fmt_rate(v, out, cap);
}

/* One child; records and prints its figure. setup: run but not reported. */
static int step(int round, int w, int e, const char *path, unsigned ver, int setup) {
    cres c;
    /* Write back what earlier children left dirty in the page cache, so that
     * its writeback does not slow this engine's syncs down (untimed). */
    sync();
    int rc = run_child(round, w, e, path, ver, &c);
    res *r = &R[round - 1][w][e];
    if (rc == 0 && !setup) {
        r->ok = 1;
        r->c = c;
        r->value = wl[w].lower_better ? c.secs : (c.secs > 0 ? (double)c.ops / c.secs : 0);
    }
    char v[32];
    if (rc == 0) fmt_value(w, wl[w].lower_better ? c.secs : (c.secs > 0 ? (double)c.ops / c.secs : 0), v, sizeof v);
    else snprintf(v, sizeof v, "FAILED");
    fprintf(stderr, "[r%d %6.0fs] %-10s %-8s %10s%s  (%.2f s, peak RSS +%.0f MiB)\n", round, now() - t_start,
            wl[w].name, engines[e].name, v, wl[w].lower_better || rc ? "" : " ops/s", rc ? 0 : c.secs,
            rc ? 0 : (double)(c.hwm_kb - c.base_kb) / 1024.0);
    if (setup && rc == 0) fprintf(stderr, "            (setup for a later workload: not reported)\n");
    return rc;
}

static double du_alloc, du_apparent;
static int du_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)p;
    (void)f;
    if (flag == FTW_F) {
        du_alloc += (double)st->st_blocks * 512.0;
        du_apparent += (double)st->st_size;
    }
    return 0;
}
static double disk_usage(const char *path) {
    du_alloc = du_apparent = 0;
    nftw(path, du_cb, 32, FTW_PHYS);
    return du_alloc;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)f;
    if (flag == FTW_DP) rmdir(p);
    else unlink(p);
    return 0;
}
static void rm_rf(const char *path) { nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS); }

static void run_round(int round) {
    char path[PATH_MAX];
    int order[E_COUNT], ne = 0, broken[E_COUNT] = {0};
    for (int e = 0; e < E_COUNT; e++)
        if (selected_e(e)) order[ne++] = e;
    int rot = ne ? (round - 1) % ne : 0;
#define FOR_ENGINES(w, body)                                                    \
    for (int oi = 0; oi < ne; oi++) {                                           \
        int e = order[(oi + rot) % ne];                                         \
        if (!applies(w, e) || broken[e]) continue;                              \
        body                                                                    \
    }
    for (int e = 0; e < E_COUNT; e++) {
        snprintf(path, sizeof path, "%s/r%d/%s", run_dir, round, engines[e].name);
        if (selected_e(e)) peer_mkdirs(path);
    }
    if (selected_w(W_FILL_SEQ)) {
        FOR_ENGINES(W_FILL_SEQ, {
            store_path(round, e, "seq", path, sizeof path);
            if (e != E_TOME) peer_mkdirs(path);
            if (step(round, W_FILL_SEQ, e, path, 0, 0) == 0) disk_seq[round - 1][e] = disk_usage(path);
            rm_rf(path);
        })
    }
    int need_main = 0;
    for (int w = W_OVERWRITE; w <= W_OPEN_SCAN; w++) need_main |= selected_w(w);
    need_main |= selected_w(W_FILL_RAND);
    if (need_main) {
        unsigned ver = 0;
        FOR_ENGINES(W_FILL_RAND, {
            store_path(round, e, "main", path, sizeof path);
            if (e != E_TOME) peer_mkdirs(path);
            if (step(round, W_FILL_RAND, e, path, 0, !selected_w(W_FILL_RAND))) broken[e] = 1;
            else disk_fill[round - 1][e] = disk_usage(path);
        })
        if (selected_w(W_OVERWRITE)) {
            ver = 1;
            FOR_ENGINES(W_OVERWRITE, {
                store_path(round, e, "main", path, sizeof path);
                if (step(round, W_OVERWRITE, e, path, 1, 0)) broken[e] = 1;
            })
        }
        static const int reads[] = {W_READ_HIT, W_READ_MISS, W_SCAN};
        for (size_t k = 0; k < 3; k++) {
            int w = reads[k];
            if (!selected_w(w)) continue;
            FOR_ENGINES(w, {
                store_path(round, e, "main", path, sizeof path);
                step(round, w, e, path, ver, 0);
            })
        }
        FOR_ENGINES(W_SCAN, {
            store_path(round, e, "main", path, sizeof path);
            disk_scan[round - 1][e] = disk_usage(path);
        })
        if (selected_w(W_MERGE)) {
            FOR_ENGINES(W_MERGE, {
                store_path(round, e, "main", path, sizeof path);
                if (step(round, W_MERGE, e, path, ver, 0) == 0) disk_merge[round - 1] = disk_usage(path);
            })
        }
        static const int later[] = {W_OPEN, W_OPEN_SCAN};
        for (size_t k = 0; k < 2; k++) {
            int w = later[k];
            if (!selected_w(w)) continue;
            FOR_ENGINES(w, {
                store_path(round, e, "main", path, sizeof path);
                step(round, w, e, path, ver, 0);
            })
        }
    }
    for (int w = W_DUR1; w <= W_DUR32; w++) {
        if (!selected_w(w)) continue;
        FOR_ENGINES(w, {
            store_path(round, e, "dur", path, sizeof path);
            if (e != E_TOME) peer_mkdirs(path);
            step(round, w, e, path, 2, 0);
            rm_rf(path);
        })
    }
    if (selected_w(W_LN)) {
        FOR_ENGINES(W_LN, {
            store_path(round, e, "ln", path, sizeof path);
            peer_mkdirs(path);
            step(round, W_LN, e, path, 0, 0);
        })
    }
#undef FOR_ENGINES
    if (!C.keep) {
        snprintf(path, sizeof path, "%s/r%d", run_dir, round);
        rm_rf(path);
    }
}

/* ------------------------------------------------------------------------ */
/* Statistics and the report                                                 */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 0: figures are medians over the rounds; 1: the best round's figure. */
static int use_best;

/* Median (or, with use_best, best) over the rounds of the figure of
 * (w, e); NAN when none. */
static double med(int w, int e) {
    double v[MAX_ROUNDS];
    int n = 0;
    for (int r = 0; r < rounds_done; r++)
        if (R[r][w][e].ok) v[n++] = R[r][w][e].value;
    if (!use_best) return median(v, n);
    if (n == 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return wl[w].lower_better ? v[0] : v[n - 1];
}

typedef double (*res_fn)(const res *r);
static double med_of(int w, int e, res_fn f) {
    double v[MAX_ROUNDS];
    int n = 0;
    for (int r = 0; r < rounds_done; r++)
        if (R[r][w][e].ok) v[n++] = f(&R[r][w][e]);
    return median(v, n);
}

static double med_arr(double a[][E_COUNT], int e) {
    double v[MAX_ROUNDS];
    int n = 0;
    for (int r = 0; r < rounds_done; r++)
        if (a[r][e] > 0) v[n++] = a[r][e];
    return median(v, n);
}

static double f_peak_mib(const res *r) { return (double)(r->c.hwm_kb - r->c.base_kb) / 1024.0; }
static double f_open_kb(const res *r) { return (double)r->c.open_kb; }
static double f_wbc(const res *r) { return (double)r->c.wbc; }
static double f_wb(const res *r) { return (double)r->c.wb; }

/* Best peer of tome for workload w (excluding tome; for the scan, only
 * ordered engines). Returns its engine or -1; *v its value. */
static int best_peer(int w, double *v) {
    int best = -1;
    double bv = NAN;
    for (int e = 0; e < E_COUNT; e++) {
        if (e == E_TOME || !applies(w, e) || !selected_e(e)) continue;
        if (w == W_SCAN && !engines[e].ops->ordered) continue;
        double x = med(w, e);
        if (!(x == x)) continue;
        if (best < 0 || (wl[w].lower_better ? x < bv : x > bv)) best = e, bv = x;
    }
    *v = bv;
    return best;
}

/* tome's figure over the best peer's: > 1 means tome is better (for open
 * times: the peer's time over tome's). */
static double ratio(int w, int *peer) {
    double bv, t = med(w, E_TOME);
    *peer = best_peer(w, &bv);
    if (*peer < 0 || !(t == t) || t <= 0 || bv <= 0) return NAN;
    return wl[w].lower_better ? bv / t : t / bv;
}

static void read_line(const char *file, const char *key, char *out, size_t cap) {
    FILE *f = fopen(file, "r");
    char line[512];
    out[0] = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, strlen(key))) continue;
        char *p = strchr(line, ':');
        if (!p) continue;
        for (p++; *p == ' ' || *p == '\t'; p++) {}
        p[strcspn(p, "\n")] = 0;
        snprintf(out, cap, "%s", p);
        break;
    }
    if (f) fclose(f);
}

static void read_loadavg(char *out, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = 0;
    if (f && fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = 0;
    if (f) fclose(f);
}

static void fs_of(const char *dir, char *out, size_t cap) {
    char real[PATH_MAX], best_mnt[1024] = "", best[4096] = "unknown";
    if (!realpath(dir, real)) snprintf(real, sizeof real, "%s", dir);
    FILE *f = fopen("/proc/mounts", "r");
    char dev[512], mnt[1024], type[64], opts[512];
    while (f && fscanf(f, "%511s %1023s %63s %511s %*d %*d", dev, mnt, type, opts) == 4) {
        size_t ml = strlen(mnt);
        if (strncmp(real, mnt, ml) || (real[ml] != '/' && real[ml] && ml > 1)) continue;
        if (ml >= strlen(best_mnt)) {
            snprintf(best_mnt, sizeof best_mnt, "%s", mnt);
            snprintf(best, sizeof best, "%s on %s (%s, %s)", type, mnt, dev, opts);
        }
    }
    if (f) fclose(f);
    snprintf(out, cap, "%s", best);
}

static void versions(char *out, size_t cap) {
    FILE *p = popen("dpkg-query -W -f='${Package} ${Version}, ' liblmdb-dev libsqlite3-dev libleveldb-dev "
                    "librocksdb-dev libtkrzw-dev 2>/dev/null",
                    "r");
    size_t n = 0;
    out[0] = 0;
    if (p) {
        n = fread(out, 1, cap - 1, p);
        pclose(p);
    }
    out[n] = 0;
    while (n && (out[n - 1] == ' ' || out[n - 1] == ',')) out[--n] = 0;
}

static const char *pass(double v, double target, int higher) {
    if (!(v == v)) return "not measured";
    return (higher ? v >= target : v <= target) ? "**met**" : "**not met**";
}

static void report_table(FILE *f, int md) {
    char v[64];
    static const int rows[] = {W_FILL_SEQ, W_FILL_RAND, W_OVERWRITE, W_READ_HIT, W_READ_MISS, W_SCAN, W_MERGE,
                               W_OPEN, W_OPEN_SCAN, W_DUR1, W_DUR8, W_DUR32, W_LN};
    if (md) {
        fprintf(f, "| workload |");
        for (int e = 0; e < E_COUNT; e++)
            if (selected_e(e)) fprintf(f, " %s |", engines[e].name);
        fprintf(f, " best peer | tome / best peer |\n|---|");
        for (int e = 0; e < E_COUNT; e++)
            if (selected_e(e)) fprintf(f, "---:|");
        fprintf(f, "---|---:|\n");
    } else {
        fprintf(f, "%-12s", "workload");
        for (int e = 0; e < E_COUNT; e++)
            if (selected_e(e)) fprintf(f, " %9s", engines[e].name);
        fprintf(f, "  %-9s %s\n", "best", "tome/best");
    }
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        int w = rows[k], any = 0;
        for (int e = 0; e < E_COUNT; e++) any |= selected_e(e) && med(w, e) == med(w, e);
        if (!any) continue;
        if (md) fprintf(f, "| %s |", wl[w].title);
        else fprintf(f, "%-12s", wl[w].name);
        for (int e = 0; e < E_COUNT; e++) {
            if (!selected_e(e)) continue;
            if (!applies(w, e)) {
                fprintf(f, md ? " |" : " %9s", md ? "" : "");
                continue;
            }
            fmt_value(w, med(w, e), v, sizeof v);
            if (w == W_SCAN && engines[e].ops && !engines[e].ops->ordered && strcmp(v, "-")) strcat(v, "*");
            if (md) fprintf(f, " %s |", v);
            else fprintf(f, " %9s", v);
        }
        int peer;
        double rt = ratio(w, &peer);
        char rs[32];
        if (rt == rt) snprintf(rs, sizeof rs, rt >= 0.1 ? "%.2fx" : "%.4fx", rt);
        else snprintf(rs, sizeof rs, "-");
        if (md) fprintf(f, " %s | %s |\n", peer >= 0 ? engines[peer].name : "-", rs);
        else fprintf(f, "  %-9s %s\n", peer >= 0 ? engines[peer].name : "-", rs);
    }
}

static void write_report(const char *outdir, double total) {
    char file[PATH_MAX], buf[1024];
    snprintf(file, sizeof file, "%s/RESULTS.md", outdir);
    FILE *f = fopen(file, "w");
    if (!f) fatal("cannot write %s: %s", file, strerror(errno));
    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
    struct utsname u;
    uname(&u);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    double user_mb = (double)C.n * (double)(16 + C.vlen);

    fprintf(f, "# tome against its peers: benchmark results\n\n");
    fprintf(f, "Generated by `bench/run.sh` (build/bench/peers, sources in bench/peers/) on %s.\n"
               "Total run time: %.0f s (%d round%s). Command: `%s`\n\n",
            date, total, rounds_done, rounds_done == 1 ? "" : "s", cmdline);
    {
        FILE *g = popen("git rev-parse --short HEAD 2>/dev/null && git status --porcelain -- src include 2>/dev/null "
                        "| wc -l",
                        "r");
        char rev[64] = "", dirty[32] = "";
        if (g) {
            if (fgets(rev, sizeof rev, g)) rev[strcspn(rev, "\n")] = 0;
            if (fgets(dirty, sizeof dirty, g)) dirty[strcspn(dirty, "\n")] = 0;
            pclose(g);
        }
        fprintf(f, "tome: commit %s%s.\n\n", rev[0] ? rev : "unknown",
                atoi(dirty) > 0 ? " with uncommitted changes in src/ or include/" : "");
    }
    fprintf(f, "## Machine\n\n");
    read_line("/proc/cpuinfo", "model name", buf, sizeof buf);
    fprintf(f, "- CPU: %s; %ld online CPUs (nproc)\n", buf[0] ? buf : "unknown", sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, "- memory: %.1f GiB\n", (double)pages * (double)psz / (1024.0 * 1024 * 1024));
    fprintf(f, "- kernel: %s %s %s\n", u.sysname, u.release, u.machine);
    fs_of(run_dir, buf, sizeof buf);
    fprintf(f, "- bench directory: %s, file system: %s\n", run_dir, buf);
    versions(buf, sizeof buf);
    fprintf(f, "- peers (Debian packages): %s\n", buf[0] ? buf : "unknown");
    read_loadavg(buf, sizeof buf);
    fprintf(f, "- /proc/loadavg at the start: %s; at the end: %s (the machine is shared: other work may "
               "run during the benchmark, which the interleaving spreads over all engines)\n\n",
            load_start, buf);

    fprintf(f, "## Method\n\n");
    fprintf(f,
            "- data: %" PRIu64 " keys of 16 bytes (big-endian 2i, then 8 pseudo-random bytes), %zu-byte "
            "pseudo-random (incompressible) values; misses are keys 2i+1, inside the key range; the "
            "same generated data for every engine\n",
            C.n, C.vlen);
    fprintf(f, "- every (workload, engine) runs in a fresh process (cold engine caches, warm page cache); "
               "for each workload the engines run one after the other, in an order rotated each round; "
               "each figure is the **median over %d round%s**; only engine calls are timed\n",
            rounds_done, rounds_done == 1 ? "" : "s");
    fprintf(f, "- every value read is checked (length, first and last 8 bytes%s); misses must be absent; "
               "the scan checks key order (ordered engines) and the count\n",
            C.verify ? ", and with --verify every byte" : "");
    fprintf(f,
            "- fills and overwrite: batches of %zu records per commit (per transaction or write batch), "
            "%s, then one sync making the whole load durable, timed; the overwrite writes every key "
            "again, in another random order\n",
            C.batch,
            C.bulk_sync ? "each batch committed durably (--bulk-sync)"
                        : "each batch committed without waiting for the disk (process-crash safe; a "
                          "machine crash may lose the newest batches)");
    fprintf(f, "- reads: %" PRIu64 " random keys per workload, batches of %zu per read transaction "
               "(engines with transactions or snapshots: LMDB, SQLite, tome; LevelDB/RocksDB/Tkrzw: "
               "plain gets); run after the overwrite (two versions per key, before any merge)\n",
            C.reads ? C.reads : C.n, C.batch);
    fprintf(f, "- durable: one record (16-byte key, %zu-byte value) per commit, each commit durable on "
               "return, for %g s per thread count, into a fresh store per thread count (random keys of "
               "the key space: mostly inserts); the threads share one handle (SQLite: one connection)\n",
            C.vlen, C.dur_secs);
    fprintf(f, "- open: a fresh exec'd process opens the filled store (after the merge for tome) and "
               "reads one key; warm page cache\n");
    fprintf(f,
            "- Lightning-like: namespace (\"monitors\", \"\"), %u keys of 66-67 characters written "
            "first (untimed), then for %g s: a durable write of a %zu-byte value to a random one of "
            "them, and a listing of the namespace every %u writes (checked: %u keys); figure: writes/s, "
            "listings included in the time; a fresh store per engine\n\n",
            C.ln_keys, C.ln_secs, C.ln_vlen, C.ln_list_every, C.ln_keys);

    fprintf(f, "## Operations per second (median)\n\n");
    report_table(f, 1);
    fprintf(f, "\nOpen rows are times (lower is better; their ratio is the best peer's time over tome's). "
               "`*` Tkrzw's hash database scans in hash order, not key order: not compared. "
               "The merge and open-scan rows are tome's alone.\n\n");
    if (rounds_done > 1) {
        fprintf(f, "## Best round of each figure\n\nThe same figures, each the best of its %d rounds "
                   "(other work on the shared machine only ever slows a run down, so the best round "
                   "shows what each engine reaches undisturbed; the medians above are the reference).\n\n",
                rounds_done);
        use_best = 1;
        report_table(f, 1);
        use_best = 0;
        fprintf(f, "\n");
    }

    fprintf(f, "## Memory, disk and write amplification (medians)\n\n");
    fprintf(f, "| engine | RSS added by open + 1 get | per key | peak RSS added, read-hit | "
               "peak RSS added, fill-rand | disk after fill-rand | after overwrite | written / user bytes, "
               "fill-rand (until sync / with close) | overwrite (with close) | fill-rand..scan, all processes |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int e = 0; e < E_COUNT; e++) {
        if (!selected_e(e) || !engines[e].ops) continue;
        double okb = med_of(W_OPEN, e, f_open_kb);
        double pr = med_of(W_READ_HIT, e, f_peak_mib), pf = med_of(W_FILL_RAND, e, f_peak_mib);
        double df = med_arr(disk_fill, e), ds = med_arr(disk_scan, e);
        double wf = med_of(W_FILL_RAND, e, f_wb), wfc = med_of(W_FILL_RAND, e, f_wbc);
        double wo = med_of(W_OVERWRITE, e, f_wbc);
        double cum = NAN;
        if (selected_w(W_OVERWRITE) && selected_w(W_READ_HIT) && selected_w(W_READ_MISS) && selected_w(W_SCAN)) {
            double v[MAX_ROUNDS];
            int n = 0;
            for (int r = 0; r < rounds_done; r++) {
                static const int ws[] = {W_FILL_RAND, W_OVERWRITE, W_READ_HIT, W_READ_MISS, W_SCAN};
                double s = 0;
                int ok = 1;
                for (int k = 0; k < 5; k++) {
                    ok &= R[r][ws[k]][e].ok;
                    s += (double)R[r][ws[k]][e].c.wbc;
                }
                if (ok) v[n++] = s / (2 * user_mb);
            }
            cum = median(v, n);
        }
        fprintf(f, "| %s | %.1f MiB | %.0f B | %.0f MiB | %.0f MiB | %.0f MiB (%.2fx) | %.0f MiB (%.2fx) | "
                   "%.2f / %.2f | %.2f | %.2f |\n",
                engines[e].name, okb / 1024, okb * 1024 / (double)C.n, pr, pf, df / 1048576, df / user_mb,
                ds / 1048576, ds / user_mb, wf / user_mb, wfc / user_mb, wo / user_mb, cum);
    }
    if (selected_e(E_TOME) && selected_w(W_MERGE)) {
        double v[MAX_ROUNDS];
        int n = 0;
        for (int r = 0; r < rounds_done; r++)
            if (disk_merge[r] > 0) v[n++] = disk_merge[r];
        double dm = median(v, n);
        fprintf(f, "\ntome after merge: %.0f MiB on disk (%.2fx the user bytes).\n", dm / 1048576, dm / user_mb);
    }
    fprintf(f, "\nUser bytes: %" PRIu64 " x (16 + %zu) = %.1f MiB per full load. \"RSS added\": resident "
               "memory of the process after minus before (VmRSS; for mmap-based engines, LMDB and Tkrzw, it "
               "counts the file pages touched). \"Peak RSS added\": VmHWM minus VmRSS before the open. "
               "Disk: allocated blocks of the store's files (preallocated space included). Written bytes: "
               "/proc/self/io write_bytes of the workload's process (page-cache pages dirtied, counted once "
               "per dirtying, so rewriting a page before writeback counts once); LevelDB and RocksDB "
               "compact in the background, partly in later processes: the last column sums every process "
               "from fill-rand to the scan over the bytes of both loads.\n\n",
            C.n, C.vlen, user_mb / 1048576);

    fprintf(f, "## Targets of issue 5 (tome against the best peer of this run)\n\n");
    fprintf(f, "| target | measured | verdict |\n|---|---|---|\n");
    int peer;
    double rt;
    char bo[64];
#define TROW(label, w, target)                                                                     \
    use_best = 1;                                                                                  \
    rt = ratio(w, &peer);                                                                          \
    use_best = 0;                                                                                  \
    snprintf(bo, sizeof bo, rounds_done > 1 ? "; best rounds: %.2fx" : "", rt);                  \
    rt = ratio(w, &peer);                                                                          \
    fprintf(f, "| %s | %.2fx (best peer: %s%s) | %s |\n", label, rt, peer >= 0 ? engines[peer].name : "-", \
            bo, pass(rt, target, 1));
    TROW("random fill >= 1.5x", W_FILL_RAND, 1.5)
    TROW("overwrite >= 1.5x", W_OVERWRITE, 1.5)
    TROW("random reads, hits >= 1.0x", W_READ_HIT, 1.0)
    TROW("random reads, misses >= 1.0x", W_READ_MISS, 1.0)
    {
        double ts = med(W_SCAN, E_TOME), l = med(W_SCAN, E_LEVELDB);
        rt = ts / l;
        fprintf(f, "| ordered full scan >= 1.0x LevelDB | %.2fx LevelDB", rt);
        rt = ratio(W_SCAN, &peer);
        fprintf(f, " (%.2fx the best ordered peer, %s) | %s |\n", rt, peer >= 0 ? engines[peer].name : "-",
                pass(ts / l, 1.0, 1));
    }
    TROW("durable single-key commits, 1 thread >= 1.2x", W_DUR1, 1.2)
    TROW("durable, 8 threads >= 1.5x", W_DUR8, 1.5)
    TROW("durable, 32 threads >= 1.5x", W_DUR32, 1.5)
#undef TROW
    {
        double o = med(W_OPEN, E_TOME), s = med(W_OPEN_SCAN, E_TOME);
        fprintf(f, "| open >= 3x faster than scanning the whole log | %.1fx (%.0f ms with INDEX, %.0f ms "
                   "scanning) | %s |\n",
                s / o, o * 1e3, s * 1e3, pass(s / o, 3, 1));
        double okb = med_of(W_OPEN, E_TOME, f_open_kb), per = okb * 1024 / (double)C.n - 16;
        fprintf(f, "| memory <= 64 bytes per key + the key (one version per key, after merge) | %.1f + 16 "
                   "bytes per key (RSS added by the open) | %s |\n",
                per, pass(per, 64, 0));
        double wa = med_of(W_FILL_RAND, E_TOME, f_wbc) / user_mb, wa0 = med_of(W_FILL_RAND, E_TOME, f_wb) / user_mb;
        fprintf(f, "| write amplification before merge <= 1.2 | %.2f (fill-rand, with close and its INDEX "
                   "file; %.2f until the final sync) | %s |\n",
                wa, wa0, pass(wa, 1.2, 0));
        double fs = med(W_LN, E_FSSTORE), sq = med(W_LN, E_SQLITE), tl = med(W_LN, E_TOME);
        fprintf(f, "| Lightning-like >= 2x FilesystemStore-like and SQLite | %.2fx fsstore, %.2fx sqlite | %s |\n",
                tl / fs, tl / sq, pass(fmin(tl / fs, tl / sq), 2, 1));
        double mg = med(W_MERGE, E_TOME);
        char m[32];
        fmt_rate(mg, m, sizeof m);
        fprintf(f, "| merge rate (no target; ceiling of the design family: 0.8-0.9M live records/s) | %s "
                   "live records/s | - |\n",
                m);
    }

    fprintf(f, "\n## Settings of each engine\n\n");
    for (int e = 0; e < E_COUNT; e++) {
        if (!selected_e(e)) continue;
        if (engines[e].ops) fprintf(f, "### %s\n\n%s\n", engines[e].name, engines[e].ops->settings);
        if (engines[e].kv) {
            if (!engines[e].ops) fprintf(f, "### %s\n\n", engines[e].name);
            fprintf(f, "Lightning-like workload:\n\n%s\n", engines[e].kv->settings);
        }
    }

    fprintf(f, "## Every round\n\n| round | workload | engine | figure | seconds | peak RSS added |\n"
               "|---:|---|---|---:|---:|---:|\n");
    for (int r = 0; r < rounds_done; r++)
        for (int w = 0; w < W_COUNT; w++)
            for (int e = 0; e < E_COUNT; e++) {
                if (!R[r][w][e].ok) continue;
                char v[32];
                fmt_value(w, R[r][w][e].value, v, sizeof v);
                fprintf(f, "| %d | %s | %s | %s | %.3f | %.0f MiB |\n", r + 1, wl[w].name, engines[e].name, v,
                        R[r][w][e].c.secs, f_peak_mib(&R[r][w][e]));
            }
    fclose(f);

    /* Chart data: throughput rows (no merge/open), engines as columns. */
    snprintf(file, sizeof file, "%s/results.dat", outdir);
    f = fopen(file, "w");
    if (!f) fatal("cannot write %s", file);
    fprintf(f, "workload");
    for (int e = 0; e < E_COUNT; e++) fprintf(f, " %s", engines[e].name);
    fprintf(f, "\n");
    static const int crow[] = {W_FILL_SEQ, W_FILL_RAND, W_OVERWRITE, W_READ_HIT, W_READ_MISS, W_SCAN,
                               W_DUR1, W_DUR8, W_DUR32, W_LN};
    for (size_t k = 0; k < sizeof crow / sizeof crow[0]; k++) {
        int w = crow[k];
        fprintf(f, "%s", wl[w].name);
        for (int e = 0; e < E_COUNT; e++) {
            double x = selected_e(e) && applies(w, e) ? med(w, e) : NAN;
            if (w == W_SCAN && engines[e].ops && !engines[e].ops->ordered) x = NAN;
            if (x == x) fprintf(f, " %.1f", x);
            else fprintf(f, " -");
        }
        fprintf(f, "\n");
    }
    fclose(f);
    snprintf(file, sizeof file, "%s/ratios.dat", outdir);
    f = fopen(file, "w");
    if (!f) fatal("cannot write %s", file);
    fprintf(f, "workload ratio target\n");
    static const struct { int w; double target; } tr[] = {
        {W_FILL_RAND, 1.5}, {W_OVERWRITE, 1.5}, {W_READ_HIT, 1.0}, {W_READ_MISS, 1.0}, {W_SCAN, 1.0},
        {W_DUR1, 1.2}, {W_DUR8, 1.5}, {W_DUR32, 1.5}, {W_LN, 2.0}};
    for (size_t k = 0; k < sizeof tr / sizeof tr[0]; k++) {
        double x = tr[k].w == W_SCAN ? med(W_SCAN, E_TOME) / med(W_SCAN, E_LEVELDB) : ratio(tr[k].w, &peer);
        if (x == x) fprintf(f, "%s%s %.3f %.2f\n", wl[tr[k].w].name, tr[k].w == W_SCAN ? "(vs-leveldb)" : "", x,
                            tr[k].target);
        else fprintf(f, "%s - %.2f\n", wl[tr[k].w].name, tr[k].target);
    }
    fclose(f);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: peers [options]\n"
            "  -n KEYS           keys (default 1000000)\n"
            "  -v BYTES          value size (default 100)\n"
            "  -e LIST           engines, comma-separated (default all): tome,lmdb,sqlite,leveldb,\n"
            "                    rocksdb,tkrzw,fsstore (fsstore: Lightning-like workload only)\n"
            "  -w LIST           workloads (default all): fill-seq,fill-rand,overwrite,read-hit,\n"
            "                    read-miss,scan,merge,open,open-scan,durable-1,durable-8,durable-32,\n"
            "                    lightning; also 'durable' (the three) and 'reads' (hit, miss, scan)\n"
            "  -r ROUNDS         at most this many rounds (default 3; at least 1 always runs)\n"
            "  -b SECONDS        time budget: no new round starts unless it fits (default 720)\n"
            "  -d DIR            where stores live (default /var/tmp); a fresh subdirectory is used\n"
            "  -o OUTDIR         write OUTDIR/RESULTS.md, results.dat, ratios.dat\n"
            "  --batch N         records per bulk commit and per read transaction (default 1000)\n"
            "  --bulk-sync       commit every bulk batch durably (default: one sync at the end)\n"
            "  --reads N         reads per read workload (default: KEYS)\n"
            "  --dur-secs S      seconds per durable workload and engine (default 2)\n"
            "  --ln-secs S       seconds of the Lightning-like workload (default 3)\n"
            "  --ln-keys N, --ln-value BYTES, --ln-list-every N   (defaults 1000, 4096, 100)\n"
            "  --verify          check every byte of every value read (default: length + 2 words)\n"
            "  --keep            keep the stores afterwards\n");
}

static unsigned parse_list(const char *s, int engines_not_workloads) {
    unsigned mask = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        if (engines_not_workloads) {
            for (int e = 0; e < E_COUNT; e++)
                if (!strcmp(t, engines[e].name)) mask |= 1u << e, found = 1;
        } else {
            for (int w = 0; w < W_COUNT; w++)
                if (!strcmp(t, wl[w].name)) mask |= 1u << w, found = 1;
            if (!strcmp(t, "durable")) mask |= 1u << W_DUR1 | 1u << W_DUR8 | 1u << W_DUR32, found = 1;
            if (!strcmp(t, "reads")) mask |= 1u << W_READ_HIT | 1u << W_READ_MISS | 1u << W_SCAN, found = 1;
        }
        if (!found) {
            usage(stderr);
            fatal("unknown %s '%s'", engines_not_workloads ? "engine" : "workload", t);
        }
    }
    return mask;
}

int main(int argc, char **argv) {
    enum { O_BATCH = 256, O_BULK_SYNC, O_READS, O_DUR, O_LN, O_LNK, O_LNV, O_LNE, O_VERIFY, O_KEEP, O_VER,
           O_ROUND, O_CHILD, O_HELP };
    static const struct option lo[] = {
        {"batch", 1, 0, O_BATCH}, {"bulk-sync", 0, 0, O_BULK_SYNC}, {"reads", 1, 0, O_READS},
        {"dur-secs", 1, 0, O_DUR}, {"ln-secs", 1, 0, O_LN}, {"ln-keys", 1, 0, O_LNK},
        {"ln-value", 1, 0, O_LNV}, {"ln-list-every", 1, 0, O_LNE}, {"verify", 0, 0, O_VERIFY},
        {"keep", 0, 0, O_KEEP}, {"ver", 1, 0, O_VER}, {"round", 1, 0, O_ROUND}, {"child", 0, 0, O_CHILD},
        {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    int child = 0, c;
    C.emask = (1u << E_COUNT) - 1;
    C.wmask = (1u << W_COUNT) - 1;
    size_t cl = 0;
    for (int i = 0; i < argc && cl + 2 < sizeof cmdline; i++)
        cl += (size_t)snprintf(cmdline + cl, sizeof cmdline - cl, "%s%s", i ? " " : "", argv[i]);
    while ((c = getopt_long(argc, argv, "n:v:e:w:r:b:d:o:h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': C.n = strtoull(optarg, NULL, 10); break;
        case 'v': C.vlen = strtoul(optarg, NULL, 10); break;
        case 'e': C.emask = parse_list(optarg, 1); break;
        case 'w': C.wmask = parse_list(optarg, 0); break;
        case 'r': C.rounds = atoi(optarg); break;
        case 'b': C.budget = atof(optarg); break;
        case 'd': C.dir = optarg; break;
        case 'o': C.out = optarg; break;
        case O_BATCH: C.batch = strtoul(optarg, NULL, 10); break;
        case O_BULK_SYNC: C.bulk_sync = 1; break;
        case O_READS: C.reads = strtoull(optarg, NULL, 10); break;
        case O_DUR: C.dur_secs = atof(optarg); break;
        case O_LN: C.ln_secs = atof(optarg); break;
        case O_LNK: C.ln_keys = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_LNV: C.ln_vlen = strtoul(optarg, NULL, 10); break;
        case O_LNE: C.ln_list_every = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_VERIFY: C.verify = 1; break;
        case O_KEEP: C.keep = 1; break;
        case O_VER: C.ver = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_ROUND: C.round = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_CHILD: child = 1; break;
        case 'h': case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (C.n < 2 || C.n > UINT32_MAX || C.vlen < 8 || C.vlen > 65536 || C.batch < 1 || C.ln_keys < 1 ||
        C.ln_list_every < 1 || C.ln_vlen < 8)
        fatal("bad sizes (keys 2..2^32-1, value 8..65536 bytes, batch >= 1)");
    if (child) {
        if (optind + 3 != argc) fatal("--child W E PATH");
        int w = atoi(argv[optind]), e = atoi(argv[optind + 1]);
        if (w < 0 || w >= W_COUNT || e < 0 || e >= E_COUNT || !applies(w, e)) fatal("bad child");
        return child_main(w, e, argv[optind + 2]);
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (C.rounds < 1) C.rounds = 1;
    if (C.rounds > MAX_ROUNDS) C.rounds = MAX_ROUNDS;
    ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (sl <= 0) fatal("readlink /proc/self/exe");
    self_exe[sl] = 0;
    snprintf(run_dir, sizeof run_dir, "%s/tome-peers-XXXXXX", C.dir ? C.dir : "/var/tmp");
    peer_mkdirs(C.dir ? C.dir : "/var/tmp");
    if (!mkdtemp(run_dir)) fatal("mkdtemp %s: %s", run_dir, strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    t_start = now();
    read_loadavg(load_start, sizeof load_start);
    fprintf(stderr, "peers: %" PRIu64 " keys, %zu-byte values, stores in %s, at most %d rounds in %.0f s\n", C.n,
            C.vlen, run_dir, C.rounds, C.budget);
    double last = 0;
    for (int r = 1; r <= C.rounds; r++) {
        double t0 = now();
        if (r > 1 && (t0 - t_start) + last * 1.05 > C.budget) {
            fprintf(stderr, "peers: round %d would not fit the %.0f s budget (a round takes %.0f s): stopping\n", r,
                    C.budget, last);
            break;
        }
        run_round(r);
        rounds_done = r;
        last = now() - t0;
        fprintf(stderr, "peers: round %d done in %.0f s\n", r, last);
    }
    double total = now() - t_start;
    if (!C.keep) rmdir(run_dir);

    printf("tome against its peers: %" PRIu64 " keys, %zu-byte values, median of %d round%s, %.0f s\n", C.n,
           C.vlen, rounds_done, rounds_done == 1 ? "" : "s", total);
    report_table(stdout, 0);
    if (C.out) {
        peer_mkdirs(C.out);
        write_report(C.out, total);
        printf("report: %s/RESULTS.md\n", C.out);
    }
    return 0;
}
