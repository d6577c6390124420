/*
 * test_threads.c -- many threads on one handle at once.
 *
 *   - bank: 100 accounts with a constant total; writer threads move money
 *     between two accounts per transaction (read both, write both, retry on
 *     TOME_CONFLICT) while reader threads take snapshots (point reads, an
 *     iteration, and tome_begin_at) and assert the total is exact in every
 *     one; the total is exact at the end and after close/reopen.
 *   - write skew: "at least one doctor on call"; a snapshot-isolated engine
 *     without read-set checks lets two threads go off call at once.
 *   - durable group commit: 8 threads commit single keys with TOME_SYNC_FULL
 *     in a child process that then dies without closing; every commit that
 *     returned OK is in the reopened store with its value, sequence numbers
 *     are distinct and timestamps never go back.
 *   - iteration during inserts: inserters commit batches of keys plus a
 *     per-thread high-water key; iterators check that each snapshot shows
 *     exactly the batches committed at its begin, in order, once each, and
 *     that iterated key memory stays valid until the transaction ends.
 *   - merge during commits: writers overwrite and remove their own keys
 *     (checking each value they read against their model) while a thread
 *     runs tome_merge in a loop (and, in a variant, two threads) and a
 *     long-lived reader checks that its snapshot does not change under the
 *     merges.
 * Checks inside threads record the first failure (the harness's CHECK works
 * only in the test function) and the test function asserts none happened.
 * Fixed seeds; TOME_TEST_SHORT=1 runs smaller loops.
 */
#include "tt.h"
#include "common/files.h"
#include "tome.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int same_fill(const void *v, size_t vl, size_t len, uint64_t seed) {
    if (vl != len) return 0;
    if (len == 0) return 1;
    unsigned char *w = malloc(len);
    if (!w) return 0;
    tf_fill(w, len, seed);
    int same = memcmp(w, v, len) == 0;
    free(w);
    return same;
}

static void open_store(const char *dir, int sync, tome_db **db) {
    tome_options o;
    tome_options_init(&o);
    o.sync = sync;
    *db = NULL;
    int rc = tome_open(dir, &o, db);
    if (rc != TOME_OK) TT_FAIL_("tome_open(%s): %s: %s", dir, tt_rcname(rc), tome_errmsg(NULL));
}

static void run_check(const char *dir) {
    char *report = NULL;
    int rc = tome_check(dir, &report);
    if (rc != TOME_OK) {
        fprintf(stderr, "  tome_check report:\n%s\n", report ? report : "(none)");
        tome_free(report);
        TT_FAIL_("tome_check(%s): %s", dir, tt_rcname(rc));
    }
    tome_free(report);
}

/* ------------------------------------------------------------------------ */
/* Bank: constant total under concurrent transfers                           */
/* ------------------------------------------------------------------------ */

#define NACC 100
#define INIT_BAL 1000
#define TOTAL ((uint64_t)NACC * INIT_BAL)
#define BANK_SLOT 1

typedef struct bank {
    tome_db *db;
    int nxfers;
    uint64_t seed;
    atomic_int *writers_left;
    long commits, conflicts, rounds;
} bank_t;

static void acct_key(char *k, int i) { snprintf(k, 16, "acct%03d", i); }

/* Reads account i: TOME_OK with *bal, or the error (wrong length is
 * reported and gives TOME_CORRUPT). */
static int read_bal(tome_txn *t, int i, uint64_t *bal) {
    char k[16];
    acct_key(k, i);
    const void *v;
    size_t vl;
    int rc = tome_get(t, BANK_SLOT, k, strlen(k), &v, &vl);
    if (rc) return rc;
    if (vl != 8) {
        tt_terr("%s: value of %zu bytes", k, vl);
        return TOME_CORRUPT;
    }
    *bal = get_u64(v);
    return TOME_OK;
}

static int write_bal(tome_txn *t, int i, uint64_t bal) {
    char k[16];
    unsigned char v[8];
    acct_key(k, i);
    put_u64(v, bal);
    return tome_insert(t, BANK_SLOT, k, strlen(k), v, 8);
}

static void *bank_writer(void *arg) {
    bank_t *b = arg;
    uint64_t rng = b->seed;
    for (int x = 0; x < b->nxfers && !tt_terr_count(); x++) {
        for (;;) {
            int i = (int)(tf_rand(&rng) % NACC);
            int j = (int)(tf_rand(&rng) % (NACC - 1));
            if (j >= i) j++;
            tome_txn *t;
            int rc = tome_begin(b->db, &t);
            if (rc) {
                tt_terr("writer: tome_begin: %s", tt_rcname(rc));
                goto out;
            }
            uint64_t bi = 0, bj = 0;
            rc = read_bal(t, i, &bi);
            if (!rc) rc = read_bal(t, j, &bj);
            if (rc) {
                tome_abort(t);
                tt_terr("writer: reading accounts %d, %d: %s", i, j, tt_rcname(rc));
                goto out;
            }
            uint64_t amt = tf_rand(&rng) % 60;
            if (amt > bi) amt = bi;
            rc = write_bal(t, i, bi - amt);
            if (!rc) rc = write_bal(t, j, bj + amt);
            if (rc) {
                tome_abort(t);
                tt_terr("writer: tome_insert: %s", tt_rcname(rc));
                goto out;
            }
            rc = tome_commit(t);
            if (rc == TOME_OK) {
                b->commits++;
                break;
            }
            if (rc != TOME_CONFLICT) {
                tt_terr("writer: tome_commit: %s", tt_rcname(rc));
                goto out;
            }
            b->conflicts++;
        }
    }
out:
    atomic_fetch_sub(b->writers_left, 1);
    return NULL;
}

/* Sums all accounts by point reads. Returns 0 or reports. */
static int sum_points(tome_txn *t, const char *what, uint64_t *sum_out) {
    uint64_t sum = 0;
    for (int i = 0; i < NACC; i++) {
        uint64_t bal;
        int rc = read_bal(t, i, &bal);
        if (rc) {
            tt_terr("%s: account %d: %s", what, i, tt_rcname(rc));
            return -1;
        }
        sum += bal;
    }
    *sum_out = sum;
    return 0;
}

static void *bank_reader(void *arg) {
    bank_t *b = arg;
    do {
        int mode = (int)(b->rounds % 3);
        tome_txn *t = NULL;
        int rc;
        uint64_t sum = 0;
        if (mode == 2) {
            uint64_t seq = 0;
            rc = tome_last_seq(b->db, &seq);
            if (!rc) rc = tome_begin_at(b->db, seq, &t);
            if (rc) {
                tt_terr("reader: tome_begin_at(last seq %llu): %s", (unsigned long long)seq,
                     tt_rcname(rc));
                break;
            }
        } else if ((rc = tome_begin(b->db, &t)) != TOME_OK) {
            tt_terr("reader: tome_begin: %s", tt_rcname(rc));
            break;
        }
        if (mode != 1) {
            if (sum_points(t, mode ? "reader (begin_at)" : "reader", &sum)) {
                tome_abort(t);
                break;
            }
        } else {
            tome_iter *it;
            rc = tome_iter_open(t, BANK_SLOT, "acct", 4, &it);
            if (rc) {
                tome_abort(t);
                tt_terr("reader: tome_iter_open: %s", tt_rcname(rc));
                break;
            }
            const void *k;
            size_t kl;
            int n = 0;
            while ((rc = tome_iter_next(it, &k, &kl)) == TOME_OK) {
                const void *v;
                size_t vl;
                char kb[16];
                acct_key(kb, n);
                if (kl != strlen(kb) || memcmp(k, kb, kl) != 0) {
                    tt_terr("reader: iteration gave key '%.*s' at position %d, want %s",
                         (int)(kl < 20 ? kl : 20), (const char *)k, n, kb);
                    break;
                }
                int r2 = tome_get(t, BANK_SLOT, k, kl, &v, &vl);
                if (r2 || vl != 8) {
                    tt_terr("reader: get of iterated %s: %s, len %zu", kb, tt_rcname(r2), vl);
                    break;
                }
                sum += get_u64(v);
                n++;
            }
            tome_iter_close(it);
            if (rc != TOME_NOTFOUND || n != NACC) {
                tome_abort(t);
                if (!tt_terr_count())
                    tt_terr("reader: iteration ended with %s after %d keys", tt_rcname(rc), n);
                break;
            }
        }
        if (sum != TOTAL) {
            tt_terr("reader (mode %d): total %llu, want %llu", mode, (unsigned long long)sum,
                 (unsigned long long)TOTAL);
            tome_abort(t);
            break;
        }
        if (mode == 0) {
            rc = tome_commit(t); /* no writes: always OK */
            if (rc) {
                tt_terr("reader: commit of a read-only transaction: %s", tt_rcname(rc));
                break;
            }
        } else {
            tome_abort(t);
        }
        b->rounds++;
    } while (atomic_load(b->writers_left) > 0 && !tt_terr_count());
    return NULL;
}

static void bank_total(tome_db *db) {
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    uint64_t sum = 0;
    for (int i = 0; i < NACC; i++) {
        uint64_t bal = 0;
        int rc = read_bal(t, i, &bal);
        if (rc) {
            tome_abort(t);
            TT_FAIL_("account %d: %s", i, tt_rcname(rc));
        }
        if (bal > TOTAL) {
            tome_abort(t);
            TT_FAIL_("account %d: balance %llu", i, (unsigned long long)bal);
        }
        sum += bal;
    }
    tome_abort(t);
    CHECK_U64(sum, TOTAL);
}

TT_TEST(bank_total_is_constant) {
    tt_terr_reset();
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tome_db *db;
    open_store(dir, TOME_SYNC_NONE, &db);
    if (tt_failed_now) return;
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (int i = 0; i < NACC; i++) CHECK_OK(write_bal(t, i, INIT_BAL));
    CHECK_OK(tome_commit(t));

    enum { NW = 4, NR = 2 };
    atomic_int left = NW;
    bank_t w[NW], r[NR];
    pthread_t th[NW + NR];
    int nx = tf_short() ? 100 : 1500;
    for (int i = 0; i < NW; i++) {
        w[i] = (bank_t){.db = db, .nxfers = nx, .seed = 1000 + (uint64_t)i, .writers_left = &left};
        CHECK_EQ(pthread_create(&th[i], NULL, bank_writer, &w[i]), 0);
    }
    for (int i = 0; i < NR; i++) {
        r[i] = (bank_t){.db = db, .writers_left = &left};
        CHECK_EQ(pthread_create(&th[NW + i], NULL, bank_reader, &r[i]), 0);
    }
    for (int i = 0; i < NW + NR; i++) pthread_join(th[i], NULL);
    long commits = 0, conflicts = 0, rounds = 0;
    for (int i = 0; i < NW; i++) commits += w[i].commits, conflicts += w[i].conflicts;
    for (int i = 0; i < NR; i++) rounds += r[i].rounds;
    printf("     %ld transfers, %ld conflicts retried, %ld reader snapshots\n", commits,
           conflicts, rounds);
    CHECK_THREADS();
    CHECK_EQ(commits, (long)NW * nx);
    bank_total(db);
    if (tt_failed_now) {
        tome_close(db);
        return;
    }
    CHECK_OK(tome_close(db));
    open_store(dir, TOME_SYNC_NONE, &db);
    if (tt_failed_now) return;
    bank_total(db);
    CHECK_OK(tome_close(db));
    run_check(dir);
}

/* ------------------------------------------------------------------------ */
/* Write skew: serializable, not just snapshot isolation                     */
/* ------------------------------------------------------------------------ */

#define NDOC 4
#define DOC_SLOT 2

typedef struct doc {
    tome_db *db;
    int id, iters;
    atomic_int *left;
    long offs, ons, conflicts, rounds;
} doc_t;

static int read_docs(tome_txn *t, int on[NDOC]) {
    int n = 0;
    for (int d = 0; d < NDOC; d++) {
        char k[8];
        snprintf(k, sizeof k, "doc%d", d);
        const void *v;
        size_t vl;
        int rc = tome_get(t, DOC_SLOT, k, strlen(k), &v, &vl);
        if (rc || vl != 1) {
            tt_terr("%s: %s (len %zu)", k, tt_rcname(rc), rc ? (size_t)0 : vl);
            return -1;
        }
        on[d] = *(const char *)v == '1';
        n += on[d];
    }
    return n;
}

static void *doc_thread(void *arg) {
    doc_t *d = arg;
    char k[8];
    snprintf(k, sizeof k, "doc%d", d->id);
    for (int i = 0; i < d->iters && !tt_terr_count(); i++) {
        tome_txn *t;
        int rc = tome_begin(d->db, &t);
        if (rc) {
            tt_terr("doc: begin %s", tt_rcname(rc));
            break;
        }
        int on[NDOC];
        int n = read_docs(t, on);
        if (n < 0) {
            tome_abort(t);
            break;
        }
        if (n < 1) tt_terr("doctor %d saw %d on call", d->id, n);
        int off = 0;
        if (on[d->id] && n >= 2) {
            rc = tome_insert(t, DOC_SLOT, k, strlen(k), "0", 1);
            off = 1;
        } else if (!on[d->id]) {
            rc = tome_insert(t, DOC_SLOT, k, strlen(k), "1", 1);
        } else {
            tome_abort(t);
            sched_yield();
            continue;
        }
        if (rc) {
            tome_abort(t);
            tt_terr("doc: insert %s", tt_rcname(rc));
            break;
        }
        rc = tome_commit(t);
        if (rc == TOME_OK) {
            if (off) d->offs++;
            else d->ons++;
        } else if (rc == TOME_CONFLICT) {
            d->conflicts++;
        } else {
            tt_terr("doc: commit %s", tt_rcname(rc));
            break;
        }
    }
    atomic_fetch_sub(d->left, 1);
    return NULL;
}

static void *doc_watcher(void *arg) {
    doc_t *d = arg;
    do {
        tome_txn *t;
        int rc = tome_begin(d->db, &t);
        if (rc) {
            tt_terr("watcher: begin %s", tt_rcname(rc));
            break;
        }
        int on[NDOC];
        int n = read_docs(t, on);
        tome_abort(t);
        if (n < 0) break;
        if (n < 1) {
            tt_terr("a snapshot shows %d doctors on call (write skew)", n);
            break;
        }
        d->rounds++;
    } while (atomic_load(d->left) > 0 && !tt_terr_count());
    return NULL;
}

TT_TEST(write_skew_is_prevented) {
    tt_terr_reset();
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tome_db *db;
    open_store(dir, TOME_SYNC_NONE, &db);
    if (tt_failed_now) return;
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    for (int i = 0; i < NDOC; i++) {
        char k[8];
        snprintf(k, sizeof k, "doc%d", i);
        CHECK_OK(tome_insert(t, DOC_SLOT, k, strlen(k), "1", 1));
    }
    CHECK_OK(tome_commit(t));
    atomic_int left = NDOC;
    doc_t d[NDOC + 1];
    pthread_t th[NDOC + 1];
    int iters = tf_short() ? 100 : 2000;
    for (int i = 0; i <= NDOC; i++) {
        d[i] = (doc_t){.db = db, .id = i, .iters = iters, .left = &left};
        CHECK_EQ(pthread_create(&th[i], NULL, i < NDOC ? doc_thread : doc_watcher, &d[i]), 0);
    }
    for (int i = 0; i <= NDOC; i++) pthread_join(th[i], NULL);
    long offs = 0, conflicts = 0;
    for (int i = 0; i < NDOC; i++) offs += d[i].offs, conflicts += d[i].conflicts;
    printf("     %ld off-call commits, %ld conflicts, %ld watcher snapshots\n", offs, conflicts,
           d[NDOC].rounds);
    CHECK_THREADS();
    CHECK_OK(tome_begin(db, &t));
    int on[NDOC];
    int n = read_docs(t, on);
    tome_abort(t);
    CHECK_THREADS();
    CHECK(n >= 1);
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Durable group commit, then a crash                                        */
/* ------------------------------------------------------------------------ */

#define GC_THREADS 8
#define GC_SLOT 5

typedef struct gc_arg {
    tome_db *db;
    int id, n, fd;
} gc_arg;

typedef struct gc_ack {
    uint32_t thread;  /* UINT32_MAX: an error, code in n */
    int32_t n;
} gc_ack;

static size_t gc_len(int t, int n) { return (size_t)((t * 131 + n * 17) % 300); }
static uint64_t gc_seed(int t, int n) { return (uint64_t)t * 1000000 + (uint64_t)n + 7; }

static void *gc_thread(void *arg) {
    gc_arg *a = arg;
    unsigned char v[300];
    for (int n = 0; n < a->n; n++) {
        char k[24];
        snprintf(k, sizeof k, "g%d-%05d", a->id, n);
        size_t len = gc_len(a->id, n);
        tf_fill(v, len, gc_seed(a->id, n));
        tome_txn *t;
        int rc = tome_begin(a->db, &t);
        if (!rc) {
            rc = tome_insert(t, GC_SLOT, k, strlen(k), v, len);
            if (rc) tome_abort(t);
            else rc = tome_commit(t);
        }
        gc_ack ack = {(uint32_t)a->id, n};
        if (rc) ack = (gc_ack){UINT32_MAX, rc};
        if (write(a->fd, &ack, sizeof ack) != (ssize_t)sizeof ack) _exit(3);
        if (rc) break;
    }
    return NULL;
}

static void gc_child(const char *dir, int per, int fd) {
    tome_options o;
    tome_options_init(&o);
    o.sync = TOME_SYNC_FULL;
    tome_db *db;
    if (tome_open(dir, &o, &db) != TOME_OK) _exit(2);
    pthread_t th[GC_THREADS];
    gc_arg a[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        a[i] = (gc_arg){db, i, per, fd};
        if (pthread_create(&th[i], NULL, gc_thread, &a[i]) != 0) _exit(4);
    }
    for (int i = 0; i < GC_THREADS; i++) pthread_join(th[i], NULL);
    _exit(0); /* a crash: no tome_close, no INDEX */
}

typedef struct seqts {
    uint64_t seq, ts;
} seqts;

static int cmp_seqts(const void *a, const void *b) {
    const seqts *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

TT_TEST(durable_group_commit_survives_crash) {
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    int per = tf_short() ? 15 : 150;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        gc_child(dir, per, p[1]);
    }
    close(p[1]);
    unsigned char *acked = calloc((size_t)GC_THREADS * (size_t)per, 1);
    CHECK(acked != NULL);
    gc_ack ack;
    long nack = 0;
    int child_err = 0;
    ssize_t r;
    while ((r = read(p[0], &ack, sizeof ack)) == (ssize_t)sizeof ack) {
        if (ack.thread == UINT32_MAX) {
            child_err = ack.n;
            continue;
        }
        if (ack.thread < GC_THREADS && ack.n >= 0 && ack.n < per) {
            acked[ack.thread * (unsigned)per + (unsigned)ack.n] = 1;
            nack++;
        }
    }
    close(p[0]);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (child_err) {
        free(acked);
        TT_FAIL_("a commit in the child failed: %s", tt_rcname(child_err));
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        free(acked);
        TT_FAIL_("child status 0x%x (2: open failed)", st);
    }
    CHECK_EQ(nack, (long)GC_THREADS * per);

    tome_db *db;
    open_store(dir, TOME_SYNC_FULL, &db);
    if (tt_failed_now) {
        free(acked);
        return;
    }
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    seqts *st_ = calloc((size_t)nack, sizeof *st_);
    long ns = 0;
    for (int th = 0; th < GC_THREADS && !tt_failed_now; th++) {
        for (int n = 0; n < per; n++) {
            if (!acked[th * per + n]) continue;
            char k[24];
            snprintf(k, sizeof k, "g%d-%05d", th, n);
            const void *v;
            size_t vl;
            int rc = tome_get(t, GC_SLOT, k, strlen(k), &v, &vl);
            if (rc != TOME_OK || !same_fill(v, vl, gc_len(th, n), gc_seed(th, n))) {
                fprintf(stderr, "  key %s: %s, len %zu\n", k, tt_rcname(rc), rc ? 0 : vl);
                tt_failed_now = 1;
                break;
            }
            const tome_version *vers;
            size_t nv;
            rc = tome_versions(t, GC_SLOT, k, strlen(k), &vers, &nv);
            if (rc != TOME_OK || nv != 1 || !vers[0].committed || vers[0].removed) {
                fprintf(stderr, "  key %s: tome_versions %s, %zu versions\n", k, tt_rcname(rc), nv);
                tt_failed_now = 1;
                break;
            }
            st_[ns++] = (seqts){vers[0].seq, vers[0].timestamp};
        }
    }
    tome_abort(t);
    uint64_t last = 0;
    int rc = tome_last_seq(db, &last);
    CHECK_OK(tome_close(db));
    free(acked);
    if (tt_failed_now) {
        free(st_);
        TT_FAIL_("an acknowledged durable commit is missing or wrong after the crash");
    }
    CHECK_OK(rc);
    qsort(st_, (size_t)ns, sizeof *st_, cmp_seqts);
    for (long i = 1; i < ns; i++) {
        if (st_[i].seq == st_[i - 1].seq || st_[i].ts < st_[i - 1].ts) {
            uint64_t a = st_[i - 1].seq, b = st_[i].seq, ta = st_[i - 1].ts, tb = st_[i].ts;
            free(st_);
            TT_FAIL_("commits seq %llu ts %llu and seq %llu ts %llu: seq reused or time went "
                     "back", (unsigned long long)a, (unsigned long long)ta,
                     (unsigned long long)b, (unsigned long long)tb);
        }
    }
    uint64_t maxseq = ns ? st_[ns - 1].seq : 0;
    free(st_);
    CHECK(last >= maxseq);
    CHECK(ns == nack);
    run_check(dir);
}

/* ------------------------------------------------------------------------ */
/* Iteration while keys are inserted                                         */
/* ------------------------------------------------------------------------ */

#define INS_THREADS 4
#define INS_SLOT 2
#define HI_SLOT 3

typedef struct ins {
    tome_db *db;
    int id, batches;
    atomic_int *left;
    long rounds, keys_seen;
} ins_t;

/* "i<t>-<nnnnnn>-<c>" */
static void ins_key(char *k, int t, int n, char c) { snprintf(k, 16, "i%d-%06d-%c", t, n, c); }
static size_t ins_len(int t, int n, char c) { return (size_t)(8 + (t * 7 + n * 3 + c) % 40); }
static uint64_t ins_seed(int t, int n, char c) { return ((uint64_t)t << 40) | ((uint64_t)n << 8) | (uint64_t)c; }

static void *ins_thread(void *arg) {
    ins_t *a = arg;
    for (int n = 0; n < a->batches && !tt_terr_count(); n++) {
        tome_txn *t;
        int rc = tome_begin(a->db, &t);
        if (rc) {
            tt_terr("inserter: begin %s", tt_rcname(rc));
            break;
        }
        for (char c = 'a'; c <= 'c' && !rc; c++) {
            char k[16];
            unsigned char v[64];
            ins_key(k, a->id, n, c);
            size_t len = ins_len(a->id, n, c);
            tf_fill(v, len, ins_seed(a->id, n, c));
            rc = tome_insert(t, INS_SLOT, k, strlen(k), v, len);
        }
        char hk[8];
        unsigned char hv[8];
        snprintf(hk, sizeof hk, "hi%d", a->id);
        put_u64(hv, (uint64_t)n);
        if (!rc) rc = tome_insert(t, HI_SLOT, hk, strlen(hk), hv, 8);
        if (rc) {
            tome_abort(t);
            tt_terr("inserter: insert %s", tt_rcname(rc));
            break;
        }
        rc = tome_commit(t); /* blind writes: never a conflict */
        if (rc) {
            tt_terr("inserter %d: commit of batch %d: %s", a->id, n, tt_rcname(rc));
            break;
        }
    }
    atomic_fetch_sub(a->left, 1);
    return NULL;
}

typedef struct seen {
    const char *k;
    size_t kl;
} seen_t;

static int parse_ins_key(const char *k, size_t kl, int *t, int *n, char *c) {
    if (kl != 11 || k[0] != 'i' || k[2] != '-' || k[9] != '-') return -1;
    if (k[1] < '0' || k[1] >= '0' + INS_THREADS) return -1;
    int v = 0;
    for (int i = 3; i < 9; i++) {
        if (k[i] < '0' || k[i] > '9') return -1;
        v = v * 10 + (k[i] - '0');
    }
    if (k[10] < 'a' || k[10] > 'c') return -1;
    *t = k[1] - '0';
    *n = v;
    *c = k[10];
    return 0;
}

static void *iter_thread(void *arg) {
    ins_t *a = arg;
    size_t cap = (size_t)INS_THREADS * (size_t)a->batches * 3 + 1;
    seen_t *seen = malloc(cap * sizeof *seen);
    if (!seen) {
        tt_terr("out of memory");
        return NULL;
    }
    do {
        tome_txn *t;
        int rc = tome_begin(a->db, &t);
        if (rc) {
            tt_terr("iterator: begin %s", tt_rcname(rc));
            break;
        }
        long hi[INS_THREADS];
        for (int i = 0; i < INS_THREADS && !rc; i++) {
            char hk[8];
            snprintf(hk, sizeof hk, "hi%d", i);
            const void *v;
            size_t vl;
            rc = tome_get(t, HI_SLOT, hk, strlen(hk), &v, &vl);
            if (rc == TOME_NOTFOUND) {
                hi[i] = -1;
                rc = 0;
            } else if (rc == TOME_OK && vl == 8) {
                hi[i] = (long)get_u64(v);
            } else {
                tt_terr("iterator: %s: %s", hk, tt_rcname(rc));
                rc = -1;
            }
        }
        if (rc) {
            tome_abort(t);
            break;
        }
        /* Half the rounds iterate everything, half one thread's prefix. */
        int only = (a->rounds % 2) ? (int)((a->rounds / 2) % INS_THREADS) : -1;
        char prefix[8] = "";
        if (only >= 0) snprintf(prefix, sizeof prefix, "i%d-", only);
        long want = 0;
        for (int i = 0; i < INS_THREADS; i++)
            if (only < 0 || only == i) want += 3 * (hi[i] + 1);
        tome_iter *it;
        rc = tome_iter_open(t, INS_SLOT, prefix, strlen(prefix), &it);
        if (rc) {
            tome_abort(t);
            tt_terr("iterator: open %s", tt_rcname(rc));
            break;
        }
        size_t n = 0;
        const void *kp;
        size_t kl;
        int bad = 0;
        while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) {
            int kt, kn;
            char kc;
            const char *k = kp;
            if (parse_ins_key(k, kl, &kt, &kn, &kc) || (only >= 0 && kt != only) ||
                kn > hi[kt]) {
                tt_terr("iterator: key '%.*s' not committed at the snapshot (hi%d = %ld)",
                     (int)(kl < 20 ? kl : 20), k, kl == 11 ? k[1] - '0' : -1,
                     kl == 11 && k[1] >= '0' && k[1] < '0' + INS_THREADS ? hi[k[1] - '0'] : -2);
                bad = 1;
                break;
            }
            if (n > 0) {
                const seen_t *pv = &seen[n - 1];
                int c = memcmp(pv->k, k, 11);
                if (c >= 0) {
                    tt_terr("iterator: '%.11s' after '%.11s': not strictly ascending", k, pv->k);
                    bad = 1;
                    break;
                }
            }
            if (n >= cap) {
                tt_terr("iterator: more keys than ever inserted");
                bad = 1;
                break;
            }
            seen[n++] = (seen_t){k, kl};
            if (n % 37 == 0) {
                const void *v;
                size_t vl;
                int r2 = tome_get(t, INS_SLOT, k, kl, &v, &vl);
                if (r2 || !same_fill(v, vl, ins_len(kt, kn, kc), ins_seed(kt, kn, kc))) {
                    tt_terr("iterator: get '%.11s': %s or wrong value", k, tt_rcname(r2));
                    bad = 1;
                    break;
                }
            }
            if (n % 500 == 0) sched_yield();
        }
        tome_iter_close(it);
        if (!bad && rc != TOME_NOTFOUND) {
            tt_terr("iterator: next gave %s", tt_rcname(rc));
            bad = 1;
        }
        if (!bad && (long)n != want) {
            tt_terr("iterator: %zu keys with prefix '%s', want %ld (torn snapshot)", n, prefix, want);
            bad = 1;
        }
        /* The iterated keys' memory is the transaction's until it ends. */
        for (size_t i = 0; !bad && i < n; i++) {
            int kt, kn;
            char kc;
            if (parse_ins_key(seen[i].k, seen[i].kl, &kt, &kn, &kc) ||
                (i > 0 && memcmp(seen[i - 1].k, seen[i].k, 11) >= 0)) {
                tt_terr("iterator: key memory changed before the transaction ended");
                bad = 1;
            }
        }
        tome_abort(t);
        a->keys_seen += (long)n;
        if (bad) break;
        a->rounds++;
    } while (atomic_load(a->left) > 0 && !tt_terr_count());
    free(seen);
    return NULL;
}

TT_TEST(iterate_during_inserts) {
    tt_terr_reset();
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    tome_db *db;
    open_store(dir, TOME_SYNC_NONE, &db);
    if (tt_failed_now) return;
    enum { NI = 2 };
    int batches = tf_short() ? 40 : 400;
    atomic_int left = INS_THREADS;
    ins_t a[INS_THREADS + NI];
    pthread_t th[INS_THREADS + NI];
    for (int i = 0; i < INS_THREADS + NI; i++) {
        a[i] = (ins_t){.db = db, .id = i, .batches = batches, .left = &left};
        CHECK_EQ(pthread_create(&th[i], NULL, i < INS_THREADS ? ins_thread : iter_thread, &a[i]),
                 0);
    }
    for (int i = 0; i < INS_THREADS + NI; i++) pthread_join(th[i], NULL);
    printf("     %ld + %ld snapshots iterated, %ld keys seen\n", a[INS_THREADS].rounds,
           a[INS_THREADS + 1].rounds, a[INS_THREADS].keys_seen + a[INS_THREADS + 1].keys_seen);
    CHECK_THREADS();
    /* A last full check with everything committed, then after reopen. */
    for (int round = 0; round < 2; round++) {
        atomic_int none = 0;
        ins_t last = {.db = db, .id = 0, .batches = batches, .left = &none};
        iter_thread(&last);
        CHECK_THREADS();
        CHECK_EQ(last.keys_seen, (long)INS_THREADS * batches * 3);
        CHECK_OK(tome_close(db));
        if (round == 1) break;
        open_store(dir, TOME_SYNC_NONE, &db);
        if (tt_failed_now) return;
    }
    run_check(dir);
}

/* ------------------------------------------------------------------------ */
/* Merges while others commit and read                                       */
/* ------------------------------------------------------------------------ */

#define MW 3
#define MKEYS 25
#define M_SLOT 4

typedef struct mstate {
    int state;  /* 0 never, 1 present, 2 removed */
    size_t len;
    uint64_t seed;
} mstate;

typedef struct mshared {
    tome_db *db;
    atomic_int writers_left;
    atomic_int readers_left;
    atomic_int mergers_left;
    atomic_long merges;
} mshared;

typedef struct mw {
    mshared *sh;
    int id, ops;
    mstate model[MKEYS];
    long commits, conflicts;
} mw_t;

static void m_key(char *k, int w, int i) { snprintf(k, 16, "m%d-%02d", w, i); }

static void *merge_writer(void *arg) {
    mw_t *w = arg;
    uint64_t rng = 77 + (uint64_t)w->id;
    uint64_t next_seed = ((uint64_t)w->id + 1) << 32;
    unsigned char *v = malloc(2000);
    for (int op = 0; v && op < w->ops && !tt_terr_count(); op++) {
        int nk = 1 + (int)(tf_rand(&rng) % 3);
        int idx[3];
        mstate nw[3];
        for (;;) {
            tome_txn *t;
            int rc = tome_begin(w->sh->db, &t);
            if (rc) {
                tt_terr("merge writer: begin %s", tt_rcname(rc));
                goto out;
            }
            for (int j = 0; j < nk && !rc; j++) {
                idx[j] = (int)(tf_rand(&rng) % MKEYS);
                for (int q = 0; q < j; q++)
                    if (idx[q] == idx[j]) idx[j] = (idx[j] + 1) % MKEYS, q = -1;
                char k[16];
                m_key(k, w->id, idx[j]);
                const mstate *m = &w->model[idx[j]];
                const void *val;
                size_t vl;
                rc = tome_get(t, M_SLOT, k, strlen(k), &val, &vl);
                if (m->state == 1) {
                    if (rc != TOME_OK || !same_fill(val, vl, m->len, m->seed)) {
                        tt_terr("merge writer: %s: %s or wrong value (len %zu, want %zu)", k,
                             tt_rcname(rc), rc ? 0 : vl, m->len);
                        rc = -1;
                        break;
                    }
                } else if (rc != TOME_NOTFOUND) {
                    tt_terr("merge writer: %s: %s, want NOTFOUND", k, tt_rcname(rc));
                    rc = -1;
                    break;
                }
                rc = 0;
                if (tf_rand(&rng) % 100 < 15) {
                    nw[j] = (mstate){2, 0, 0};
                    rc = tome_remove(t, M_SLOT, k, strlen(k));
                } else {
                    nw[j] = (mstate){1, 10 + (size_t)(tf_rand(&rng) % 1500), next_seed++};
                    tf_fill(v, nw[j].len, nw[j].seed);
                    rc = tome_insert(t, M_SLOT, k, strlen(k), v, nw[j].len);
                }
                if (rc) tt_terr("merge writer: write %s: %s", k, tt_rcname(rc));
            }
            if (rc) {
                tome_abort(t);
                goto out;
            }
            rc = tome_commit(t);
            if (rc == TOME_OK) {
                for (int j = 0; j < nk; j++) w->model[idx[j]] = nw[j];
                w->commits++;
                break;
            }
            if (rc != TOME_CONFLICT) {
                tt_terr("merge writer: commit %s", tt_rcname(rc));
                goto out;
            }
            w->conflicts++;
        }
    }
out:
    free(v);
    atomic_fetch_sub(&w->sh->writers_left, 1);
    return NULL;
}

static void *merger(void *arg) {
    mshared *sh = arg;
    do {
        int rc = tome_merge(sh->db);
        if (rc) {
            tt_terr("tome_merge: %s: %s", tt_rcname(rc), tome_errmsg(sh->db));
            break;
        }
        atomic_fetch_add(&sh->merges, 1);
    } while ((atomic_load(&sh->writers_left) > 0 || atomic_load(&sh->readers_left) > 0) &&
             !tt_terr_count());
    atomic_fetch_sub(&sh->mergers_left, 1);
    return NULL;
}

typedef struct snapval {
    char key[16];
    size_t len;
    unsigned char *val;
    size_t nver;
} snapval;

/* Reads every key of M_SLOT in t: values (copied) and version counts. */
static int snap_read(tome_txn *t, snapval *out, size_t cap, size_t *n_out) {
    tome_iter *it;
    int rc = tome_iter_open(t, M_SLOT, NULL, 0, &it);
    if (rc) {
        tt_terr("reader: iter_open %s", tt_rcname(rc));
        return -1;
    }
    size_t n = 0;
    const void *k;
    size_t kl;
    while ((rc = tome_iter_next(it, &k, &kl)) == TOME_OK) {
        if (n >= cap || kl >= sizeof out[n].key) {
            tt_terr("reader: unexpected key");
            tome_iter_close(it);
            return -1;
        }
        memcpy(out[n].key, k, kl);
        out[n].key[kl] = 0;
        const void *v;
        size_t vl;
        int r2 = tome_get(t, M_SLOT, k, kl, &v, &vl);
        const tome_version *vers;
        size_t nv = 0;
        if (!r2) r2 = tome_versions(t, M_SLOT, k, kl, &vers, &nv);
        if (r2) {
            tt_terr("reader: %s: %s", out[n].key, tt_rcname(r2));
            tome_iter_close(it);
            return -1;
        }
        out[n].val = malloc(vl ? vl : 1);
        if (out[n].val) memcpy(out[n].val, v, vl);
        out[n].len = vl;
        out[n].nver = nv;
        n++;
    }
    tome_iter_close(it);
    if (rc != TOME_NOTFOUND) {
        tt_terr("reader: iter_next %s", tt_rcname(rc));
        return -1;
    }
    *n_out = n;
    return 0;
}

static void snap_free(snapval *s, size_t n) {
    for (size_t i = 0; i < n; i++) free(s[i].val);
}

/* Holds a snapshot open across merges: what it sees must not change. */
static void *long_reader(void *arg) {
    mshared *sh = arg;
    enum { CAP = MW * MKEYS };
    snapval a[CAP], b[CAP];
    for (int round = 0; round < 3 && !tt_terr_count(); round++) {
        tome_txn *t;
        int rc = tome_begin(sh->db, &t);
        if (rc) {
            tt_terr("reader: begin %s", tt_rcname(rc));
            break;
        }
        size_t na = 0, nb = 0;
        if (snap_read(t, a, CAP, &na)) {
            tome_abort(t);
            break;
        }
        long m0 = atomic_load(&sh->merges);
        while (atomic_load(&sh->merges) < m0 + 2 && atomic_load(&sh->mergers_left) > 0 &&
               !tt_terr_count())
            sleep_ms(1);
        int ok = snap_read(t, b, CAP, &nb) == 0;
        if (ok && nb != na) {
            tt_terr("reader: snapshot had %zu keys, %zu after merges", na, nb);
            ok = 0;
        }
        for (size_t i = 0; ok && i < na; i++) {
            if (strcmp(a[i].key, b[i].key) || a[i].len != b[i].len || a[i].nver != b[i].nver ||
                !a[i].val || !b[i].val || memcmp(a[i].val, b[i].val, a[i].len)) {
                tt_terr("reader: %s changed under a merge (len %zu -> %zu, %zu -> %zu versions)",
                     a[i].key, a[i].len, b[i].len, a[i].nver, b[i].nver);
                ok = 0;
            }
        }
        tome_abort(t);
        snap_free(a, na);
        snap_free(b, nb);
        if (!ok) break;
    }
    atomic_fetch_sub(&sh->readers_left, 1);
    return NULL;
}

/* Prints the versions of a key (for failure messages). */
static void print_versions(tome_txn *t, uint8_t slot, const char *k) {
    const tome_version *v;
    size_t n = 0;
    int rc = tome_versions(t, slot, k, strlen(k), &v, &n);
    fprintf(stderr, "  versions of %s (%s):", k, tt_rcname(rc));
    for (size_t i = 0; rc == TOME_OK && i < n; i++)
        fprintf(stderr, " seq %llu%s", (unsigned long long)v[i].seq, v[i].removed ? " (removed)" : "");
    fprintf(stderr, "\n");
}

static void check_model(tome_db *db, const mw_t *w, const char *phase) {
    tome_txn *t;
    CHECK_OK(tome_begin(db, &t));
    long present = 0;
    for (int i = 0; i < MW; i++) {
        for (int j = 0; j < MKEYS; j++) {
            char k[16];
            m_key(k, i, j);
            const mstate *m = &w[i].model[j];
            const void *v;
            size_t vl;
            int rc = tome_get(t, M_SLOT, k, strlen(k), &v, &vl);
            if (m->state == 1) {
                present++;
                if (rc != TOME_OK || !same_fill(v, vl, m->len, m->seed)) {
                    print_versions(t, M_SLOT, k);
                    tome_abort(t);
                    TT_FAIL_("%s: %s: %s or wrong value", phase, k, tt_rcname(rc));
                }
            } else if (rc != TOME_NOTFOUND) {
                print_versions(t, M_SLOT, k);
                tome_abort(t);
                TT_FAIL_("%s: %s: %s, want NOTFOUND (%s)", phase, k, tt_rcname(rc),
                         m->state ? "removed" : "never written");
            }
        }
    }
    tome_iter *it;
    CHECK_OK(tome_iter_open(t, M_SLOT, NULL, 0, &it));
    long n = 0;
    const void *k;
    size_t kl;
    int rc;
    while ((rc = tome_iter_next(it, &k, &kl)) == TOME_OK) n++;
    tome_iter_close(it);
    tome_abort(t);
    CHECK_RC(rc, TOME_NOTFOUND);
    CHECK_EQ(n, present);
}

static void merge_test(int nmergers) {
    tt_terr_reset();
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    mshared sh;
    memset(&sh, 0, sizeof sh);
    open_store(dir, TOME_SYNC_NONE, &sh.db);
    if (tt_failed_now) return;
    atomic_store(&sh.writers_left, MW);
    atomic_store(&sh.readers_left, 1);
    atomic_store(&sh.mergers_left, nmergers);
    mw_t *w = calloc(MW, sizeof *w);
    CHECK(w != NULL);
    int ops = tf_short() ? 60 : (nmergers > 1 ? 300 : 800);
    pthread_t th[MW + 3];
    int nt = 0;
    for (int i = 0; i < MW; i++) {
        w[i].sh = &sh;
        w[i].id = i;
        w[i].ops = ops;
        CHECK_EQ(pthread_create(&th[nt++], NULL, merge_writer, &w[i]), 0);
    }
    CHECK_EQ(pthread_create(&th[nt++], NULL, long_reader, &sh), 0);
    for (int i = 0; i < nmergers; i++) CHECK_EQ(pthread_create(&th[nt++], NULL, merger, &sh), 0);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    long commits = 0;
    for (int i = 0; i < MW; i++) commits += w[i].commits;
    printf("     %ld commits, %ld merges\n", commits, (long)atomic_load(&sh.merges));
    if (tt_terr_count()) {
        free(w);
        tome_close(sh.db);
        CHECK_THREADS();
    }
    CHECK_EQ(commits, (long)MW * ops);
    CHECK(atomic_load(&sh.merges) >= 2);
    check_model(sh.db, w, "after the threads");
    if (tt_failed_now) {
        free(w);
        tome_close(sh.db);
        return;
    }
    CHECK_OK(tome_close(sh.db));
    for (int round = 0; round < 2 && !tt_failed_now; round++) {
        open_store(dir, TOME_SYNC_NONE, &sh.db);
        if (tt_failed_now) break;
        check_model(sh.db, w, round ? "after a merge and reopen" : "after reopen");
        if (!tt_failed_now && round == 0) {
            /* Nothing open: this merge empties the trash. */
            int rc = tome_merge(sh.db);
            if (rc) fprintf(stderr, "  final merge: %s\n", tt_rcname(rc));
            CHECK_OK(rc);
            check_model(sh.db, w, "after a merge with nothing open");
        }
        tome_close(sh.db);
    }
    free(w);
    if (tt_failed_now) return;
    run_check(dir);
}

TT_TEST(merge_while_committing) { merge_test(1); }
TT_TEST(two_mergers_while_committing) { merge_test(2); }

TT_MAIN()
