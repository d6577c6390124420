/*
 * stress_kill.c -- `make stress`: writers killed again and again, at random
 * moments with SIGKILL and at the engine's named kill points, with an
 * expected-state record that tells the checker which values are acceptable.
 *
 *   stress_kill [-s SECONDS] [-d DIR] [-m all|sigkill|killpoint|ring] [-r SEED] [-v]
 *
 * Built against a -DTOME_KILLPOINTS library (build-kp/, see mk/check.mk);
 * without that the kill-point rounds never fire and end by SIGKILL after a
 * timeout (the summary says how many ended by a kill point).
 *
 * The random-transaction workload. A child process opens the store (small
 * segments, TOME_SYNC_FULL or TOME_SYNC_NONE by round: a process crash
 * loses nothing either way) and runs three writer threads and a merging
 * thread. Writer w runs transactions n = 1, 2, ... (numbering continues
 * across rounds from what the store holds). Transaction (w, n) reads a few
 * random keys and the keys it writes, then writes 1..6 keys of slot 4
 * (inserts of a value made from (w, n, key), or removals), all chosen by a
 * generator seeded with (w, n), so the parent can recompute the write set,
 * plus its marker "m<w>" = n. On TOME_CONFLICT the same (w, n) is rerun.
 * The expected-state record is a pipe to the parent: before every commit
 * the child writes BEGIN(w, n), after TOME_OK it reads its marker's newest
 * version (whose seq is the commit's) and writes ACK(w, n, seq); records
 * are small fixed-size writes, so threads never interleave inside one. Now
 * and then a writer closes and reopens the store (the index file is
 * written; index.* kill points), so all threads share one handle guarded
 * by a rwlock for that.
 *
 * The check after each kill. The parent reopens the store. For each writer
 * the marker must hold the last acknowledged n, or the one n that was in
 * flight (BEGIN without ACK): then that commit made it whole. The ledger
 * (every present transaction's seq, across all rounds) must cover exactly
 * 1..last_seq. The expected state is the previous round's state with this
 * round's present transactions applied in seq order, and every key of slot
 * 4 must hold exactly that (value bytes, or absent), as must an iteration
 * of the slot; tome_check must pass; and the same again after deleting
 * INDEX (a full scan of the log). Any difference stops the run: the store
 * is copied to DIR/failed-<round> and the program exits 1.
 *
 * The ring workload (tests/stress/ring.h): a child relinks the ring with
 * three threads and merges; after each kill the ring must be one cycle of N
 * and hold at least every acknowledged relink (last_seq).
 *
 * Modes: sigkill (the parent kills at a random moment: while opening, or
 * 5..300 ms after the first acknowledged commit), killpoint (the child sets
 * TOME_KILLPOINT to one named point or "*" with a random probability and
 * TOME_KILLPOINT_SEED; the parent kills it after 3 s if no point fired),
 * ring (both kinds of kill on the ring). "all" rotates through them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/files.h"
#include "ring.h"
#include "tome.h"

#define S_SLOT 4
#define NKEYS 64
#define NW 3
#define RING_N 40
#define SEG_SIZE (16 * 1024)

static int g_verbose;

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rnd(uint64_t *s) { return tf_rand(s); }

/* ------------------------------------------------------------------------ */
/* Transactions (w, n): their write sets, from a generator                   */
/* ------------------------------------------------------------------------ */

typedef struct wop {
    int key;
    int removed;
} wop;

/* The write set of (w, n): 1..6 distinct keys. */
static int write_set(int w, uint64_t n, wop *out) {
    uint64_t s = (uint64_t)w << 48 ^ n * 0x9E3779B97F4A7C15ull;
    int k = 1 + (int)(rnd(&s) % 6), cnt = 0;
    while (cnt < k) {
        int key = (int)(rnd(&s) % NKEYS), dup = 0;
        for (int i = 0; i < cnt; i++) dup |= out[i].key == key;
        if (dup) continue;
        out[cnt].key = key;
        out[cnt].removed = rnd(&s) % 5 == 0;
        cnt++;
    }
    return cnt;
}

static void key_name(char *k, int key) { snprintf(k, 8, "s%03d", key); }

/* The value (w, n) writes to key: 12 header bytes, then bytes from a
 * generator; 12..3012 bytes. */
static size_t value_of(int w, uint64_t n, int key, uint8_t *buf) {
    uint64_t s = (uint64_t)w << 56 ^ n << 8 ^ (uint64_t)key;
    size_t len = 12 + (size_t)(rnd(&s) % 3000);
    buf[0] = (uint8_t)w;
    for (int i = 0; i < 8; i++) buf[1 + i] = (uint8_t)(n >> (8 * i));
    buf[9] = (uint8_t)key;
    buf[10] = buf[11] = 0xee;
    tf_fill(buf + 12, len - 12, s);
    return len;
}

/* ------------------------------------------------------------------------ */
/* The record                                                                */
/* ------------------------------------------------------------------------ */

enum { R_BEGIN = 1, R_ACK = 2, R_RING = 3 };

typedef struct rec {
    uint32_t type, w;
    uint64_t n, seq;
} rec;

static int g_fd = -1;

static void emit(uint32_t type, int w, uint64_t n, uint64_t seq) {
    rec r = {type, (uint32_t)w, n, seq};
    if (write(g_fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(81);
}

/* ------------------------------------------------------------------------ */
/* The child                                                                 */
/* ------------------------------------------------------------------------ */

static tome_db *c_db;
static pthread_rwlock_t c_lock = PTHREAD_RWLOCK_INITIALIZER;
static const char *c_path;
static tome_options c_opts;
static atomic_int c_stop;

/* Exit codes of the child: 20+e open, 40+e a transaction call, 60+e merge,
 * 70 marker, 81 pipe (e = -tome code). */
static void die_rc(int base, int rc) { _exit(base - rc); }

static uint64_t marker_n(tome_txn *t, int w, uint64_t *seq) {
    char mk[8];
    snprintf(mk, sizeof mk, "m%d", w);
    const void *v;
    size_t vl;
    int rc = tome_get(t, S_SLOT + 1, mk, strlen(mk), &v, &vl);
    if (rc == TOME_NOTFOUND) return 0;
    if (rc) die_rc(40, rc);
    if (vl != 8) _exit(70);
    uint64_t n;
    memcpy(&n, v, 8);
    if (seq) {
        const tome_version *vs;
        size_t nv;
        if ((rc = tome_versions(t, S_SLOT + 1, mk, strlen(mk), &vs, &nv)) != 0) die_rc(40, rc);
        if (!nv) _exit(70);
        *seq = vs[nv - 1].seq;
    }
    return n;
}

static void *writer(void *arg) {
    int w = (int)(intptr_t)arg;
    uint64_t rng = (uint64_t)getpid() * 31 + (uint64_t)w;
    static _Thread_local uint8_t buf[4096];
    pthread_rwlock_rdlock(&c_lock);
    tome_txn *t;
    int rc = tome_begin(c_db, &t);
    if (rc) die_rc(40, rc);
    uint64_t n = marker_n(t, w, NULL);
    tome_abort(t);
    pthread_rwlock_unlock(&c_lock);
    while (!atomic_load(&c_stop)) {
        n++;
        wop ws[6];
        int nw = write_set(w, n, ws);
        pthread_rwlock_rdlock(&c_lock);
        for (;;) {
            if ((rc = tome_begin(c_db, &t)) != 0) die_rc(40, rc);
            const void *v;
            size_t vl;
            /* reads: some random keys and the written ones (conflicts) */
            int nr = (int)(rnd(&rng) % 4);
            for (int i = 0; i < nr + nw; i++) {
                char k[8];
                key_name(k, i < nr ? (int)(rnd(&rng) % NKEYS) : ws[i - nr].key);
                rc = tome_get(t, S_SLOT, k, strlen(k), &v, &vl);
                if (rc && rc != TOME_NOTFOUND) die_rc(40, rc);
            }
            for (int i = 0; i < nw; i++) {
                char k[8];
                key_name(k, ws[i].key);
                if (ws[i].removed) rc = tome_remove(t, S_SLOT, k, strlen(k));
                else rc = tome_insert(t, S_SLOT, k, strlen(k), buf, value_of(w, n, ws[i].key, buf));
                if (rc) die_rc(40, rc);
            }
            char mk[8];
            snprintf(mk, sizeof mk, "m%d", w);
            if ((rc = tome_insert(t, S_SLOT + 1, mk, strlen(mk), &n, 8)) != 0) die_rc(40, rc);
            emit(R_BEGIN, w, n, 0);
            rc = tome_commit(t);
            if (rc == TOME_CONFLICT) continue;
            if (rc) die_rc(40, rc);
            break;
        }
        if ((rc = tome_begin(c_db, &t)) != 0) die_rc(40, rc);
        uint64_t seq = 0;
        if (marker_n(t, w, &seq) != n) _exit(70);
        tome_abort(t);
        pthread_rwlock_unlock(&c_lock);
        emit(R_ACK, w, n, seq);
        if (rnd(&rng) % 150 == 0) {
            /* close and reopen: the index file is written */
            pthread_rwlock_wrlock(&c_lock);
            if ((rc = tome_close(c_db)) != 0) die_rc(40, rc);
            if ((rc = tome_open(c_path, &c_opts, &c_db)) != 0) die_rc(20, rc);
            pthread_rwlock_unlock(&c_lock);
        }
    }
    return NULL;
}

static void *merger(void *arg) {
    (void)arg;
    while (!atomic_load(&c_stop)) {
        struct timespec ts = {0, 15 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_rwlock_rdlock(&c_lock);
        int rc = tome_merge(c_db);
        pthread_rwlock_unlock(&c_lock);
        if (rc) die_rc(60, rc);
    }
    return NULL;
}

typedef struct ring_arg {
    uint64_t seed;
} ring_arg;

static void *ring_writer(void *arg) {
    ring_arg *a = arg;
    uint64_t rng = a->seed;
    long conflicts = 0;
    char why[200];
    for (;;) {
        pthread_rwlock_rdlock(&c_lock);
        int rc = ring_step(c_db, RING_N, &rng, 0, &conflicts, why, sizeof why);
        pthread_rwlock_unlock(&c_lock);
        if (rc) {
            fprintf(stderr, "child: ring step: %s\n", why);
            _exit(rc == RING_BROKEN ? 71 : 40 - rc);
        }
        emit(R_RING, 0, 0, 0);
        if (rnd(&rng) % 300 == 0) {
            pthread_rwlock_wrlock(&c_lock);
            if ((rc = tome_close(c_db)) != 0) die_rc(40, rc);
            if ((rc = tome_open(c_path, &c_opts, &c_db)) != 0) die_rc(20, rc);
            pthread_rwlock_unlock(&c_lock);
        }
    }
    return NULL;
}

static void child_main(const char *path, int ring, int sync, const char *kp, uint64_t kp_seed) {
    if (kp) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)kp_seed);
        setenv("TOME_KILLPOINT_SEED", seed, 1);
        setenv("TOME_KILLPOINT", kp, 1);
    }
    c_path = path;
    /* writers first: a close and reopen must not wait behind a stream of readers */
    pthread_rwlockattr_t la;
    pthread_rwlockattr_init(&la);
    pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c_lock, &la);
    tome_options_init(&c_opts);
    c_opts.sync = sync;
    c_opts.segment_size = SEG_SIZE;
    int rc = tome_open(path, &c_opts, &c_db);
    if (rc) die_rc(20, rc);
    pthread_t th[NW + 1];
    ring_arg ra[NW];
    for (int i = 0; i < NW; i++) {
        ra[i].seed = (uint64_t)getpid() * 1000 + (uint64_t)i;
        if (pthread_create(&th[i], NULL, ring ? ring_writer : writer, ring ? (void *)&ra[i] : (void *)(intptr_t)i))
            _exit(82);
    }
    if (pthread_create(&th[NW], NULL, merger, NULL)) _exit(82);
    for (int i = 0; i <= NW; i++) pthread_join(th[i], NULL);
    _exit(83);
}

/* ------------------------------------------------------------------------ */
/* The parent: the ledger and the expected state                             */
/* ------------------------------------------------------------------------ */

typedef struct txid {
    int w;
    uint64_t n;
} txid;

typedef struct state {
    /* ledger: seq -> (w, n), for every commit of the workload store */
    txid *by_seq;
    size_t cap;
    uint64_t last;             /* commits verified so far */
    uint64_t acked[NW];        /* per writer: the last n known present */
    /* expected value of each key: the writer (w, n) or absent */
    int present[NKEYS];
    txid who[NKEYS];
} state;

typedef struct stats {
    long rounds[4], self_killed, acks, inflight_present, inflight_absent, ring_acks, commits;
    long killed_opening;
} stats;

static char g_fail[600];

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int failf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_fail, sizeof g_fail, fmt, ap);
    va_end(ap);
    return -1;
}

static int ledger_put(state *st, uint64_t seq, int w, uint64_t n) {
    if (seq >= st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 4096;
        while (nc <= seq) nc *= 2;
        txid *p = realloc(st->by_seq, nc * sizeof *p);
        if (!p) return failf("out of memory");
        memset(p + st->cap, 0, (nc - st->cap) * sizeof *p);
        st->by_seq = p;
        st->cap = nc;
    }
    if (st->by_seq[seq].n) return failf("seq %llu claimed by (%d, %llu) and (%d, %llu)", (unsigned long long)seq,
                                        st->by_seq[seq].w, (unsigned long long)st->by_seq[seq].n, w,
                                        (unsigned long long)n);
    st->by_seq[seq] = (txid){w, n};
    return 0;
}

static void store_opts(tome_options *o) {
    tome_options_init(o);
    o->segment_size = SEG_SIZE;
}

/* Compares the store with the expected state. */
static int compare(tome_db *db, const state *st, const char *when) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return failf("%s: tome_begin: %s", when, tome_strerror(rc));
    static uint8_t want[4096];
    int npresent = 0;
    for (int k = 0; k < NKEYS; k++) {
        char kn[8];
        key_name(kn, k);
        const void *v;
        size_t vl;
        rc = tome_get(t, S_SLOT, kn, strlen(kn), &v, &vl);
        if (!st->present[k]) {
            if (rc != TOME_NOTFOUND) {
                tome_abort(t);
                return failf("%s: key %d: %s, expected absent", when, k, tome_strerror(rc));
            }
            continue;
        }
        npresent++;
        size_t wl = value_of(st->who[k].w, st->who[k].n, k, want);
        if (rc || vl != wl || memcmp(v, want, wl)) {
            int gw = rc || vl < 12 ? -1 : ((const uint8_t *)v)[0];
            uint64_t gn = 0;
            if (gw >= 0) memcpy(&gn, (const uint8_t *)v + 1, 8);
            tome_abort(t);
            return failf("%s: key %d: %s, holds (%d, %llu), expected the value of (%d, %llu)", when, k,
                         tome_strerror(rc), gw, (unsigned long long)gn, st->who[k].w,
                         (unsigned long long)st->who[k].n);
        }
    }
    tome_iter *it;
    if ((rc = tome_iter_open(t, S_SLOT, NULL, 0, &it)) != 0) {
        tome_abort(t);
        return failf("%s: tome_iter_open: %s", when, tome_strerror(rc));
    }
    int count = 0;
    const void *kp;
    size_t kl;
    while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) count++;
    tome_iter_close(it);
    tome_abort(t);
    if (rc != TOME_NOTFOUND || count != npresent)
        return failf("%s: the slot iterates %d keys (%s), expected %d", when, count, tome_strerror(rc), npresent);
    uint64_t last = 0;
    tome_last_seq(db, &last);
    if (last != st->last) return failf("%s: newest seq %llu, expected %llu", when, (unsigned long long)last,
                                       (unsigned long long)st->last);
    return 0;
}

static int check_store(const char *path, const char *when) {
    char *report = NULL;
    int rc = tome_check(path, &report);
    if (rc) {
        failf("%s: tome_check: %s: %.400s", when, tome_strerror(rc), report ? report : "");
        tome_free(report);
        return -1;
    }
    tome_free(report);
    return 0;
}

/* The verification after a kill of the workload child. */
static int verify_workload(const char *path, state *st, const rec *rs, size_t nr, stats *sx) {
    uint64_t last_ack[NW], ack_seq[NW], inflight[NW];
    for (int w = 0; w < NW; w++) {
        last_ack[w] = st->acked[w];
        ack_seq[w] = 0;
        inflight[w] = 0;
    }
    /* acks of this round, in ledger order per writer */
    typedef struct pend {
        int w;
        uint64_t n, seq;
    } pend;
    pend *ps = malloc((nr + NW + 1) * sizeof *ps);
    size_t np = 0;
    if (!ps) return failf("out of memory");
    for (size_t i = 0; i < nr; i++) {
        const rec *r = &rs[i];
        if (r->w >= NW) {
            free(ps);
            return failf("a bad record");
        }
        if (r->type == R_BEGIN) inflight[r->w] = r->n;
        else if (r->type == R_ACK) {
            if (r->n != last_ack[r->w] + 1) {
                free(ps);
                return failf("writer %u acknowledged %llu after %llu", r->w, (unsigned long long)r->n,
                             (unsigned long long)last_ack[r->w]);
            }
            last_ack[r->w] = r->n;
            ack_seq[r->w] = r->seq;
            inflight[r->w] = 0;
            ps[np++] = (pend){(int)r->w, r->n, r->seq};
            sx->acks++;
        }
    }
    tome_options o;
    store_opts(&o);
    tome_db *db;
    int rc = tome_open(path, &o, &db);
    if (rc) {
        free(ps);
        return failf("reopen: %s (%s)", tome_strerror(rc), tome_errmsg(NULL));
    }
    tome_txn *t;
    if ((rc = tome_begin(db, &t)) != 0) {
        tome_close(db);
        free(ps);
        return failf("tome_begin: %s", tome_strerror(rc));
    }
    for (int w = 0; w < NW; w++) {
        char mk[8];
        snprintf(mk, sizeof mk, "m%d", w);
        const void *v;
        size_t vl;
        uint64_t n = 0, seq = 0;
        rc = tome_get(t, S_SLOT + 1, mk, strlen(mk), &v, &vl);
        if (rc == TOME_OK && vl == 8) {
            memcpy(&n, v, 8);
            const tome_version *vs;
            size_t nv;
            if (tome_versions(t, S_SLOT + 1, mk, strlen(mk), &vs, &nv) == 0 && nv) seq = vs[nv - 1].seq;
        } else if (rc != TOME_NOTFOUND) {
            tome_abort(t);
            tome_close(db);
            free(ps);
            return failf("marker %d: %s", w, tome_strerror(rc));
        }
        if (n == last_ack[w]) {
            if (inflight[w]) sx->inflight_absent++;
            if (ack_seq[w] && seq != ack_seq[w]) {
                tome_abort(t);
                tome_close(db);
                free(ps);
                return failf("writer %d: commit %llu acknowledged with seq %llu, the store says %llu", w,
                             (unsigned long long)n, (unsigned long long)ack_seq[w], (unsigned long long)seq);
            }
        } else if (inflight[w] && n == inflight[w] && n == last_ack[w] + 1) {
            sx->inflight_present++; /* committed, killed before the ACK */
            ps[np++] = (pend){w, n, seq};
            last_ack[w] = n;
        } else {
            tome_abort(t);
            tome_close(db);
            free(ps);
            return failf("writer %d: the store holds transaction %llu; acknowledged %llu, in flight %llu", w,
                         (unsigned long long)n, (unsigned long long)last_ack[w], (unsigned long long)inflight[w]);
        }
    }
    tome_abort(t);
    /* the ledger: this round's commits fill st->last+1 .. last_seq exactly */
    for (size_t i = 0; i < np; i++)
        if (ledger_put(st, ps[i].seq, ps[i].w, ps[i].n)) {
            tome_close(db);
            free(ps);
            return -1;
        }
    uint64_t newlast = st->last + np;
    for (uint64_t s = st->last + 1; s <= newlast; s++)
        if (s >= st->cap || !st->by_seq[s].n) {
            tome_close(db);
            free(ps);
            return failf("seq %llu belongs to no present transaction (commits %llu..%llu)", (unsigned long long)s,
                         (unsigned long long)st->last + 1, (unsigned long long)newlast);
        }
    /* apply them in seq order */
    for (uint64_t s = st->last + 1; s <= newlast; s++) {
        txid x = st->by_seq[s];
        wop ws[6];
        int nw = write_set(x.w, x.n, ws);
        for (int i = 0; i < nw; i++) {
            st->present[ws[i].key] = !ws[i].removed;
            st->who[ws[i].key] = x;
        }
    }
    st->last = newlast;
    for (int w = 0; w < NW; w++) st->acked[w] = last_ack[w];
    sx->commits += (long)np;
    free(ps);
    rc = compare(db, st, "after the kill");
    tome_close(db);
    if (rc) return rc;
    if (check_store(path, "after the kill")) return -1;
    /* again from a full scan of the log */
    char idx[TF_PATH_MAX];
    tf_path(idx, sizeof idx, path, "INDEX");
    tf_remove(idx);
    if ((rc = tome_open(path, &o, &db)) != 0) return failf("open without INDEX: %s", tome_strerror(rc));
    rc = compare(db, st, "without INDEX");
    tome_close(db);
    return rc;
}

static int verify_ring(const char *path, uint64_t *seq_before, long acks) {
    tome_options o;
    store_opts(&o);
    tome_db *db;
    int rc = tome_open(path, &o, &db);
    if (rc) return failf("ring reopen: %s (%s)", tome_strerror(rc), tome_errmsg(NULL));
    char why[200];
    rc = ring_check_db(db, RING_N, why, sizeof why);
    uint64_t seq = 0;
    tome_last_seq(db, &seq);
    tome_close(db);
    if (rc) return failf("ring after the kill: %s", why);
    if (seq < *seq_before + (uint64_t)acks)
        return failf("ring: %ld relinks acknowledged, but the newest seq went from %llu to %llu", acks,
                     (unsigned long long)*seq_before, (unsigned long long)seq);
    *seq_before = seq;
    if (check_store(path, "ring after the kill")) return -1;
    char idx[TF_PATH_MAX];
    tf_path(idx, sizeof idx, path, "INDEX");
    tf_remove(idx);
    if ((rc = tome_open(path, &o, &db)) != 0) return failf("ring open without INDEX: %s", tome_strerror(rc));
    rc = ring_check_db(db, RING_N, why, sizeof why);
    tome_close(db);
    if (rc) return failf("ring without INDEX: %s", why);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Rounds                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const g_points[] = {
    "commit.before_write", "commit.written", "commit.synced", "rotate.sealed", "rotate.created",
    "merge.group_written", "merge.group_synced", "merge.group_renamed", "merge.before_switch", "merge.switched",
    "merge.unlinked", "index.tmp_written", "index.renamed", "recover.before_cut",
};
#define NPOINTS (sizeof g_points / sizeof g_points[0])

/* One round: fork, kill (or let a kill point fire), read the record.
 * mode: 0 sigkill, 1 killpoint, 2 ring sigkill, 3 ring killpoint.
 * Returns the records read (malloc'd) and their count. */
static rec *round_run(const char *path, int mode, uint64_t *rng, size_t *nr_out, int *self_killed,
                      int *killed_opening) {
    int ring = mode >= 2, kpmode = mode % 2;
    char kp[96] = "";
    if (kpmode) {
        if (rnd(rng) % 3 == 0) snprintf(kp, sizeof kp, "*:%.4f", 0.0005 + (double)(rnd(rng) % 100) / 10000.0);
        else snprintf(kp, sizeof kp, "%s:%.3f", g_points[rnd(rng) % NPOINTS], 0.05 + (double)(rnd(rng) % 50) / 100.0);
    }
    int p[2];
    if (pipe(p)) return NULL;
    int sync = rnd(rng) % 2 ? TOME_SYNC_FULL : TOME_SYNC_NONE;
    uint64_t kp_seed = rnd(rng);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return NULL;
    if (pid == 0) {
        close(p[0]);
        g_fd = p[1];
        child_main(path, ring, sync, kpmode ? kp : NULL, kp_seed);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    size_t cap = 1024, nr = 0, have = 0;
    rec *rs = malloc(cap * sizeof *rs);
    uint8_t part[sizeof(rec)];
    uint64_t start = mono_ms(), deadline;
    int opening = !kpmode && rnd(rng) % 8 == 0;
    if (opening) deadline = start + rnd(rng) % 5; /* during open and recovery */
    else if (kpmode) deadline = start + 3000;
    else deadline = UINT64_MAX;
    uint64_t delay = 5 + rnd(rng) % 300;
    int eof = 0, st = 0, reaped = 0;
    while (!eof) {
        uint64_t now = mono_ms();
        if (now >= deadline) break;
        if (!kpmode && !opening && deadline == UINT64_MAX && nr > 0) deadline = now + delay;
        if (!kpmode && now - start > 30000) break; /* a child that acknowledges nothing */
        struct pollfd pf = {p[0], POLLIN, 0};
        uint64_t wait = deadline == UINT64_MAX ? 50 : deadline - now;
        poll(&pf, 1, (int)(wait > 50 ? 50 : wait));
        for (;;) {
            uint8_t buf[8192];
            ssize_t r = read(p[0], buf, sizeof buf);
            if (r == 0) {
                eof = 1;
                break;
            }
            if (r < 0) break;
            for (ssize_t i = 0; i < r; i++) {
                part[have++] = buf[i];
                if (have == sizeof(rec)) {
                    if (nr == cap) rs = realloc(rs, (cap *= 2) * sizeof *rs);
                    memcpy(&rs[nr++], part, sizeof(rec));
                    have = 0;
                }
            }
        }
    }
    if (!eof) kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    reaped = 1;
    (void)reaped;
    fcntl(p[0], F_SETFL, 0);
    for (;;) {
        uint8_t buf[8192];
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            part[have++] = buf[i];
            if (have == sizeof(rec)) {
                if (nr == cap) rs = realloc(rs, (cap *= 2) * sizeof *rs);
                memcpy(&rs[nr++], part, sizeof(rec));
                have = 0;
            }
        }
    }
    close(p[0]);
    *self_killed = eof && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    *killed_opening = opening;
    if (!WIFSIGNALED(st)) {
        failf("the child ended by itself: exit %d (20+e open, 40+e a call, 60+e merge, 70 marker, 71 ring "
              "broken; e = -code)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        free(rs);
        *nr_out = (size_t)-1;
        return NULL;
    }
    if (g_verbose)
        printf("  round: mode %d %s sync %s, %zu records, %s\n", mode, kp, sync ? "none" : "full", nr,
               *self_killed ? "killed itself" : "killed");
    *nr_out = nr;
    return rs;
}

static void usage(void) {
    fprintf(stderr, "usage: stress_kill [-s SECONDS] [-d DIR] [-m all|sigkill|killpoint|ring] [-r SEED] [-v]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int seconds = 60, opt;
    const char *dir = NULL, *mode = "all";
    uint64_t seed = 1;
    while ((opt = getopt(argc, argv, "s:d:m:r:v")) != -1) {
        switch (opt) {
        case 's': seconds = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 'm': mode = optarg; break;
        case 'r': seed = strtoull(optarg, NULL, 10); break;
        case 'v': g_verbose = 1; break;
        default: usage();
        }
    }
    int modes[4] = {0, 0, 0, 0};
    if (!strcmp(mode, "all")) modes[0] = modes[1] = modes[2] = modes[3] = 1;
    else if (!strcmp(mode, "sigkill")) modes[0] = modes[2] = 1;
    else if (!strcmp(mode, "killpoint")) modes[1] = modes[3] = 1;
    else if (!strcmp(mode, "ring")) modes[2] = modes[3] = 1;
    else usage();
    char base[TF_PATH_MAX - 64], wpath[TF_PATH_MAX], rpath[TF_PATH_MAX];
    if (dir) snprintf(base, sizeof base, "%s", dir);
    else {
        snprintf(base, sizeof base, "%s/tome-stress-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(base)) {
            perror("mkdtemp");
            return 2;
        }
    }
    mkdir(base, 0755);
    snprintf(wpath, sizeof wpath, "%s/workload", base);
    snprintf(rpath, sizeof rpath, "%s/ring", base);
    /* the ring starts as one cycle */
    tome_options o;
    store_opts(&o);
    tome_db *db;
    int rc = tome_open(rpath, &o, &db);
    uint64_t ring_seq = 0;
    if (!rc) {
        tome_last_seq(db, &ring_seq);
        if (ring_seq == 0) rc = ring_init(db, RING_N);
        tome_last_seq(db, &ring_seq);
        tome_close(db);
    }
    if (rc) {
        fprintf(stderr, "stress_kill: cannot set up %s: %s\n", rpath, tome_strerror(rc));
        return 2;
    }
    state st;
    memset(&st, 0, sizeof st);
    stats sx;
    memset(&sx, 0, sizeof sx);
    uint64_t rng = seed, start = mono_ms(), last_report = start;
    long round = 0;
    printf("stress_kill: %d s in %s (seed %llu)%s\n", seconds, base, (unsigned long long)seed,
#ifdef TOME_KILLPOINTS
           ""
#else
           " -- built without TOME_KILLPOINTS: kill-point rounds end by SIGKILL"
#endif
    );
    int m = -1;
    while (mono_ms() - start < (uint64_t)seconds * 1000) {
        do m = (m + 1) % 4; while (!modes[m]);
        size_t nr = 0;
        int self = 0, opening = 0;
        rec *rs = round_run(m >= 2 ? rpath : wpath, m, &rng, &nr, &self, &opening);
        round++;
        if (!rs && nr == (size_t)-1) rc = -1;
        else if (!rs) rc = failf("fork or pipe failed");
        else if (m >= 2) {
            long acks = 0;
            for (size_t i = 0; i < nr; i++) acks += rs[i].type == R_RING;
            sx.ring_acks += acks;
            rc = verify_ring(rpath, &ring_seq, acks);
        } else {
            rc = verify_workload(wpath, &st, rs, nr, &sx);
        }
        free(rs);
        sx.rounds[m]++;
        sx.self_killed += self;
        sx.killed_opening += opening;
        if (rc) {
            char keep[TF_PATH_MAX + 32];
            snprintf(keep, sizeof keep, "%s/failed-%ld", base, round);
            tf_copy_dir(m >= 2 ? rpath : wpath, keep);
            fprintf(stderr, "stress_kill: FAILED in round %ld (mode %d): %s\nstore copied to %s\n", round, m, g_fail,
                    keep);
            return 1;
        }
        if (mono_ms() - last_report >= 10000) {
            last_report = mono_ms();
            printf("  %3llu s: %ld rounds, %ld commits verified\n", (unsigned long long)(last_report - start) / 1000,
                   round, sx.commits);
            fflush(stdout);
        }
    }
    printf("stress_kill: %ld rounds in %d s, all verified:\n"
           "  random transactions: %ld SIGKILL rounds (%ld while opening), %ld kill-point rounds\n"
           "    %ld commits verified (%ld acknowledged; of the commits in flight at a kill %ld were present, "
           "%ld absent)\n"
           "  ring of %d: %ld SIGKILL rounds, %ld kill-point rounds, %ld relinks acknowledged, %llu commits\n"
           "  %ld rounds ended at a kill point\n",
           round, seconds, sx.rounds[0], sx.killed_opening, sx.rounds[1], sx.commits, sx.acks, sx.inflight_present,
           sx.inflight_absent, RING_N, sx.rounds[2], sx.rounds[3], sx.ring_acks, (unsigned long long)ring_seq,
           sx.self_killed);
    if (!dir) {
        char cmd[TF_PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        if (system(cmd)) fprintf(stderr, "stress_kill: could not remove %s\n", base);
    }
    free(st.by_seq);
    return 0;
}
