/*
 * test_kv_conc.c -- the namespaced store under concurrency and crashes:
 * 8 threads writing, removing and reading shared and distinct keys with
 * self-checking values (a reader must never see a torn or mixed value, a
 * thread must always read back its own last write of a distinct key), the
 * bookkeeping slots staying consistent with the values afterwards (every
 * key listed once by every listing, creation stamps and order entries one
 * per key); and tome_kv_apply all-or-nothing against SIGKILL: a child
 * process applies a large multi-key batch and is killed at varying moments,
 * after which the reopened store holds the whole batch or none of it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/tome.h"
#include "tt.h"

static bool short_mode(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && strcmp(s, "0") != 0;
}

static tome_db *open_db(const char *path) {
    tome_db *db = NULL;
    int rc = tome_open(path, NULL, &db);
    if (rc) fprintf(stderr, "  open %s: %s: %s\n", path, tome_strerror(rc), tome_errmsg(NULL));
    return db;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* A self-checking value: 32-byte header (magic, writer, serial, length)
 * then len bytes derived from (writer, serial), then an 8-byte sum of the
 * whole. */
#define VMAGIC 0x6b7674657374ull
static size_t make_value(uint8_t *buf, uint32_t writer, uint64_t serial, size_t len) {
    /* layout: [0]=magic [8]=writer [16]=serial [24]=len */
    uint64_t hdr[4] = {VMAGIC, writer, serial, len};
    memcpy(buf, hdr, sizeof hdr);
    uint64_t x = mix(((uint64_t)writer << 40) ^ serial);
    for (size_t i = 0; i < len; i++) {
        x = mix(x + i);
        buf[32 + i] = (uint8_t)x;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < 32 + len; i++) sum = sum * 31 + buf[i];
    memcpy(buf + 32 + len, &sum, 8);
    return 32 + len + 8;
}

/* 1 if buf[0..n) is a whole value; fills writer and serial */
static int check_value(const uint8_t *buf, size_t n, uint32_t *writer, uint64_t *serial) {
    if (n < 40) return 0;
    uint64_t hdr[4];
    memcpy(hdr, buf, sizeof hdr);
    if (hdr[0] != VMAGIC || hdr[3] != n - 40) return 0;
    uint64_t sum = 0, want;
    for (size_t i = 0; i < n - 8; i++) sum = sum * 31 + buf[i];
    memcpy(&want, buf + n - 8, 8);
    if (sum != want) return 0;
    uint64_t x = mix((hdr[1] << 40) ^ hdr[2]);
    for (size_t i = 0; i < hdr[3]; i++) {
        x = mix(x + i);
        if (buf[32 + i] != (uint8_t)x) return 0;
    }
    *writer = (uint32_t)hdr[1];
    *serial = hdr[2];
    return 1;
}

/* ------------------------------------------------------------------------ */
/* 8 threads                                                                */
/* ------------------------------------------------------------------------ */

#define NTHREADS 8
#define OWN_KEYS 4
#define SHARED_KEYS 3

struct worker {
    pthread_t th;
    tome_db *db;
    uint32_t id;
    int iters;
    int errors;
    char msg[200];
    uint64_t last[OWN_KEYS];   /* serial of the last write, 0 = removed */
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    uint8_t *buf = malloc(40 + 20000);
    uint64_t rnd = 0x1234 + w->id;
    char prim[32], key[32];
    snprintf(prim, sizeof prim, "thread%u", w->id);
    for (int i = 1; i <= w->iters && !w->errors; i++) {
        rnd = mix(rnd + (uint64_t)i);
        uint64_t serial = (uint64_t)i;
        size_t len = 1 + (size_t)(rnd % 20000);
        int own = (int)((rnd >> 20) % OWN_KEYS), sh = (int)((rnd >> 30) % SHARED_KEYS);
        int rc;
        /* own key: write, or now and then remove (lazily or not) */
        snprintf(key, sizeof key, "own%d", own);
        if ((rnd >> 40) % 7 == 0) {
            rc = tome_kv_remove(w->db, prim, "", key, (rnd >> 44) & 1);
            if (rc == TOME_OK) w->last[own] = 0;
        } else {
            size_t n = make_value(buf, w->id, serial, len);
            rc = tome_kv_write(w->db, prim, "", key, buf, n);
            if (rc == TOME_OK) w->last[own] = serial;
        }
        if (rc) {
            snprintf(w->msg, sizeof w->msg, "own write/remove: %s", tome_strerror(rc));
            w->errors++;
            break;
        }
        /* shared key: write, through apply now and then */
        snprintf(key, sizeof key, "shared%d", sh);
        size_t n = make_value(buf, w->id, serial, len / 4);
        if ((rnd >> 48) % 3 == 0) {
            tome_kv_op ops[2] = {{TOME_KV_WRITE, "shared", "", key, buf, n},
                                 {TOME_KV_WRITE, "shared", "all", key, buf, n}};
            rc = tome_kv_apply(w->db, ops, 2);
        } else {
            rc = tome_kv_write(w->db, "shared", "", key, buf, n);
        }
        if (rc) {
            snprintf(w->msg, sizeof w->msg, "shared write: %s", tome_strerror(rc));
            w->errors++;
            break;
        }
        /* read back every own key (must be exactly the last write) and a
         * shared key (must be whole) */
        for (int k = 0; k < OWN_KEYS && !w->errors; k++) {
            snprintf(key, sizeof key, "own%d", k);
            void *v = NULL;
            size_t vl = 0;
            rc = tome_kv_read(w->db, prim, "", key, &v, &vl);
            uint32_t wr;
            uint64_t se;
            if (w->last[k] == 0 && rc != TOME_NOTFOUND) {
                snprintf(w->msg, sizeof w->msg, "own%d: removed but read gives %d", k, rc);
                w->errors++;
            } else if (w->last[k] != 0 &&
                       (rc != TOME_OK || !check_value(v, vl, &wr, &se) || wr != w->id ||
                        se != w->last[k])) {
                snprintf(w->msg, sizeof w->msg, "own%d: rc %d, not the last write %llu", k, rc,
                         (unsigned long long)w->last[k]);
                w->errors++;
            }
            tome_free(v);
        }
        for (int s = 0; s < SHARED_KEYS && !w->errors; s++) {
            snprintf(key, sizeof key, "shared%d", s);
            for (int ns = 0; ns < 2; ns++) {
                void *v = NULL;
                size_t vl = 0;
                uint32_t wr;
                uint64_t se;
                rc = tome_kv_read(w->db, "shared", ns ? "all" : "", key, &v, &vl);
                if (rc == TOME_OK && !check_value(v, vl, &wr, &se)) {
                    snprintf(w->msg, sizeof w->msg, "shared%d: torn value of %zu bytes", s, vl);
                    w->errors++;
                } else if (rc != TOME_OK && rc != TOME_NOTFOUND) {
                    snprintf(w->msg, sizeof w->msg, "shared%d: read %s", s, tome_strerror(rc));
                    w->errors++;
                }
                tome_free(v);
            }
        }
        /* a listing sees each own key at most once, in order */
        char **keys = NULL;
        size_t nk = 0;
        rc = tome_kv_list(w->db, prim, "", &keys, &nk);
        if (rc == TOME_OK) {
            size_t live = 0;
            for (int k = 0; k < OWN_KEYS; k++) live += w->last[k] != 0;
            if (nk != live) {
                snprintf(w->msg, sizeof w->msg, "iteration %d: list gives %zu keys (%s%s%s), %zu live", i, nk,
                         nk > 0 ? keys[0] : "", nk > 1 ? " " : "", nk > 1 ? keys[1] : "", live);
                w->errors++;
            }
            for (size_t j = 1; j < nk; j++)
                if (strcmp(keys[j - 1], keys[j]) >= 0) w->errors++;
        } else {
            w->errors++;
        }
        tome_free(keys);
    }
    free(buf);
    return NULL;
}

/* Every listing agrees: list_all, list per namespace, and all pages of
 * list_page give the same keys, each once. Returns the number of keys or
 * -1. */
static long consistent_listings(tome_db *db) {
    tome_kv_key *all = NULL;
    size_t n = 0;
    if (tome_kv_list_all(db, &all, &n) != TOME_OK) return -1;
    long bad = 0;
    for (size_t i = 0; i < n; i++) {
        /* the first key of each namespace pair checks that pair */
        if (i > 0 && !strcmp(all[i].primary_ns, all[i - 1].primary_ns) &&
            !strcmp(all[i].secondary_ns, all[i - 1].secondary_ns))
            continue;
        size_t in_ns = 0;
        for (size_t j = i; j < n && !strcmp(all[j].primary_ns, all[i].primary_ns) &&
                           !strcmp(all[j].secondary_ns, all[i].secondary_ns);
             j++)
            in_ns++;
        char **keys = NULL;
        size_t nk = 0;
        if (tome_kv_list(db, all[i].primary_ns, all[i].secondary_ns, &keys, &nk) != TOME_OK ||
            nk != in_ns)
            bad++;
        for (size_t j = 0; j < nk && j < in_ns; j++)
            if (strcmp(keys[j], all[i + j].key)) bad++;
        tome_free(keys);
        /* pages: the same keys, each once */
        size_t paged = 0;
        char *tok = NULL;
        do {
            char **pk = NULL, *next = NULL;
            size_t pn = 0;
            if (tome_kv_list_page(db, all[i].primary_ns, all[i].secondary_ns, tok, 2, &pk, &pn,
                                  &next) != TOME_OK) {
                bad++;
                break;
            }
            for (size_t j = 0; j < pn; j++) {
                size_t hits = 0;
                for (size_t m = i; m < i + in_ns; m++) hits += !strcmp(all[m].key, pk[j]);
                if (hits != 1) bad++;
            }
            paged += pn;
            tome_free(pk);
            tome_free(tok);
            tok = next;
        } while (tok);
        if (paged != in_ns) bad++;
    }
    tome_free(all);
    if (bad) fprintf(stderr, "  %ld listing disagreements\n", bad);
    return bad ? -1 : (long)n;
}

TT_TEST(kv_threads_shared_and_distinct) {
    char path[700];
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    tome_db *db = open_db(path);
    CHECK(db);
    struct worker w[NTHREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].db = db;
        w[i].id = (uint32_t)i;
        w[i].iters = short_mode() ? 8 : 150;
        CHECK(pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(w[i].th, NULL);
    for (int i = 0; i < NTHREADS; i++) {
        if (w[i].errors) fprintf(stderr, "  thread %d: %s\n", i, w[i].msg);
        CHECK_EQ(w[i].errors, 0);
    }
    for (int round = 0; round < 2; round++) {
        /* every own key holds its thread's last write */
        for (int i = 0; i < NTHREADS; i++) {
            char prim[32], key[32];
            snprintf(prim, sizeof prim, "thread%d", i);
            for (int k = 0; k < OWN_KEYS; k++) {
                snprintf(key, sizeof key, "own%d", k);
                void *v = NULL;
                size_t vl = 0;
                int rc = tome_kv_read(db, prim, "", key, &v, &vl);
                uint32_t wr;
                uint64_t se;
                if (w[i].last[k] == 0) {
                    CHECK_RC(rc, TOME_NOTFOUND);
                } else {
                    CHECK_OK(rc);
                    CHECK(check_value(v, vl, &wr, &se));
                    CHECK_EQ(wr, i);
                    CHECK_U64(se, w[i].last[k]);
                }
                tome_free(v);
            }
        }
        for (int s = 0; s < SHARED_KEYS; s++) {
            char key[32];
            snprintf(key, sizeof key, "shared%d", s);
            void *v = NULL;
            size_t vl = 0;
            uint32_t wr;
            uint64_t se;
            CHECK_OK(tome_kv_read(db, "shared", "", key, &v, &vl));
            CHECK(check_value(v, vl, &wr, &se));
            tome_free(v);
        }
        CHECK(consistent_listings(db) > 0);
        /* the bookkeeping slots hold exactly one entry per key */
        tome_txn *t = NULL;
        CHECK_OK(tome_begin(db, &t));
        size_t cnt[3] = {0, 0, 0};
        uint8_t slots[3] = {TOME_KV_SLOT, TOME_KV_ORDER_SLOT, TOME_KV_CREATED_SLOT};
        for (int s = 0; s < 3; s++) {
            tome_iter *it = NULL;
            CHECK_OK(tome_iter_open(t, slots[s], NULL, 0, &it));
            const void *k;
            size_t kl;
            while (tome_iter_next(it, &k, &kl) == TOME_OK) cnt[s]++;
            tome_iter_close(it);
        }
        tome_abort(t);
        CHECK_EQ(cnt[0], cnt[1]);
        CHECK_EQ(cnt[0], cnt[2]);
        CHECK_OK(tome_close(db));
        CHECK(db = open_db(path));
    }
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* SIGKILL during a large apply                                             */
/* ------------------------------------------------------------------------ */

#define APPLY_KEYS 200
#define APPLY_VAL  20000

static void apply_value(uint8_t *buf, int key, int round) {
    uint64_t x = mix(((uint64_t)round << 32) | (uint64_t)key);
    for (size_t i = 0; i < APPLY_VAL; i += 8) {
        x = mix(x + i);
        memcpy(buf + i, &x, 8);
    }
    buf[0] = (uint8_t)round;   /* the round is readable from the first byte */
}

/* the child: open, say ready, apply round r on every key, then wait */
static void apply_child(const char *path, int round, int ready_fd) {
    tome_db *db = NULL;
    if (tome_open(path, NULL, &db) != TOME_OK) _exit(10);
    uint8_t *vals = malloc((size_t)APPLY_KEYS * APPLY_VAL);
    static char names[APPLY_KEYS][16];
    tome_kv_op *ops = calloc(APPLY_KEYS + 1, sizeof *ops);
    for (int k = 0; k < APPLY_KEYS; k++) {
        snprintf(names[k], sizeof names[k], "chan_%03d", k);
        apply_value(vals + (size_t)k * APPLY_VAL, k, round);
        ops[k] = (tome_kv_op){TOME_KV_WRITE, "monitors", "", names[k],
                              vals + (size_t)k * APPLY_VAL, APPLY_VAL};
    }
    /* a removal and a new key in the batch too */
    char newkey[32];
    snprintf(newkey, sizeof newkey, "round_%d", round);
    ops[APPLY_KEYS] = (tome_kv_op){TOME_KV_WRITE, "rounds", "", newkey, "x", 1};
    if (write(ready_fd, "r", 1) != 1) _exit(11);
    int rc = tome_kv_apply(db, ops, APPLY_KEYS + 1);
    if (write(ready_fd, rc == TOME_OK ? "d" : "e", 1) != 1) _exit(12);
    pause();
    _exit(0);
}

/* the round whose values all keys hold, or -1 when mixed or damaged */
static int uniform_round(tome_db *db) {
    int round = -2;
    uint8_t *want = malloc(APPLY_VAL);
    for (int k = 0; k < APPLY_KEYS; k++) {
        char name[16];
        snprintf(name, sizeof name, "chan_%03d", k);
        void *v = NULL;
        size_t vl = 0;
        int rc = tome_kv_read(db, "monitors", "", name, &v, &vl);
        int r = rc == TOME_NOTFOUND ? 0 : rc == TOME_OK && vl == APPLY_VAL ? ((uint8_t *)v)[0] : -1;
        if (r > 0) {
            apply_value(want, k, r);
            if (memcmp(v, want, APPLY_VAL) != 0) r = -1;
        }
        tome_free(v);
        if (r < 0 || (round != -2 && r != round)) {
            free(want);
            return -1;
        }
        round = r;
    }
    free(want);
    /* the marker key of that round exists exactly when the round does */
    for (int r = 1; r <= round; r++) {
        char newkey[32];
        snprintf(newkey, sizeof newkey, "round_%d", r);
        void *v = NULL;
        size_t vl = 0;
        int rc = tome_kv_read(db, "rounds", "", newkey, &v, &vl);
        tome_free(v);
        if (r == round && rc != TOME_OK) return -1;
    }
    char newkey[32];
    snprintf(newkey, sizeof newkey, "round_%d", round + 1);
    void *v = NULL;
    size_t vl = 0;
    int rc = tome_kv_read(db, "rounds", "", newkey, &v, &vl);
    tome_free(v);
    if (rc != TOME_NOTFOUND) return -1;
    return round;
}

TT_TEST(kv_apply_all_or_nothing_sigkill) {
    char path[700];
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    tome_db *db = open_db(path);
    CHECK(db);
    CHECK_OK(tome_close(db));
    /* kill delays in microseconds after the child says it is about to
     * apply; whatever the moment, the batch is all there or not at all */
    static const int delays_us[] = {0, 3000, 10000, 30000, 1000, 60000, 20000, 5000};
    int rounds = short_mode() ? 3 : 8;
    int committed = 0;   /* the round the store holds */
    int seen_all = 0, seen_none = 0;
    for (int r = 1; r <= rounds; r++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            apply_child(path, r, fds[1]);
        }
        close(fds[1]);
        char c = 0;
        CHECK(read(fds[0], &c, 1) == 1 && c == 'r');
        struct timespec ts = {0, delays_us[(r - 1) % 8] * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid);
        char done = 0;
        ssize_t got = read(fds[0], &done, 1);
        close(fds[0]);
        CHECK(got != 1 || done == 'd');   /* the apply did not fail */

        db = open_db(path);
        CHECK(db);
        int u = uniform_round(db);
        CHECK(u == committed || u == r);
        if (got == 1) CHECK_EQ(u, r);   /* it returned TOME_OK: it must be there */
        if (u == r) seen_all++;
        else seen_none++;
        committed = u;
        CHECK_OK(tome_close(db));
    }
    fprintf(stderr, "  kill rounds: %d whole batches, %d absent\n", seen_all, seen_none);
}

TT_MAIN()
