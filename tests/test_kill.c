/*
 * test_kill.c -- a committing process killed with SIGKILL, again and again.
 *
 * A child process opens the store (TOME_SYNC_FULL, small segments so that
 * they roll over often) and commits in a loop: transaction n writes key
 * "k<n>" (a value derived from n, sometimes several KiB), "counter" = n, and
 * either a ~1 KiB "hot" value or its removal; after each tome_commit that
 * returned OK it writes n to a pipe. The parent kills it at a random moment
 * (fixed-seed PRNG, 1 to 40 ms after the fork, or after its first
 * acknowledged commit so that every round makes progress), reopens the
 * store and checks that every n the child reported is there with its value
 * and that the store is consistent: "counter" is the highest k present,
 * every k <= counter is present, no k above it, "hot" matches counter,
 * counter's versions have increasing seqs and timestamps, tome_check passes;
 * then the same once more after deleting INDEX (a full scan of the log).
 * The rounds continue on the same store, so recovery runs after recovery
 * (and kills land during recovery too). A variant also runs tome_merge in
 * the child every few commits, with 16 KiB segments, so kills land inside
 * merges and merges always find older segments to take.
 * 30 rounds per variant; TOME_TEST_SHORT=1: 5.
 */
#include "tt.h"
#include "common/files.h"
#include "tome.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define K_SLOT 6
/* Segment size of the store: small, so that segments roll over often
 * (the merging variant uses even smaller ones, so that there are always
 * older log segments for a merge to take while the newest one is active). */
static uint64_t g_seg_size = 128u * 1024u;

static size_t k_len(uint64_t n) { return (size_t)((n * 7919) % 700 + (n % 23 == 0 ? 6000 : 0)); }
static uint64_t k_seed(uint64_t n) { return n; }
static size_t hot_len(uint64_t n) { return (size_t)(1000 + n % 500); }
static uint64_t hot_seed(uint64_t n) { return (UINT64_C(1) << 40) | n; }

static void k_key(char *k, uint64_t n) { snprintf(k, 24, "k%08llu", (unsigned long long)n); }

static void store_opts(tome_options *o) {
    tome_options_init(o);
    o->sync = TOME_SYNC_FULL;
    o->segment_size = g_seg_size;
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

/* Reads "counter": 0 when absent. Returns a tome code (CORRUPT when the
 * value is not a decimal number). */
static int read_counter(tome_txn *t, uint64_t *out) {
    const void *v;
    size_t vl;
    int rc = tome_get(t, K_SLOT, "counter", 7, &v, &vl);
    if (rc == TOME_NOTFOUND) {
        *out = 0;
        return TOME_OK;
    }
    if (rc) return rc;
    if (vl == 0 || vl > 20) return TOME_CORRUPT;
    uint64_t n = 0;
    for (size_t i = 0; i < vl; i++) {
        char c = ((const char *)v)[i];
        if (c < '0' || c > '9') return TOME_CORRUPT;
        n = n * 10 + (uint64_t)(c - '0');
    }
    *out = n;
    return TOME_OK;
}

/* ------------------------------------------------------------------------ */
/* The child                                                                 */
/* ------------------------------------------------------------------------ */

/* Exit codes: 20+e open failed, 30+e reading counter, 40+e a write or the
 * commit, 60+e tome_merge, 80 pipe, 81 memory (e = -tome code). */
static void child_main(const char *dir, int fd, int merge_every) {
    tome_options o;
    store_opts(&o);
    tome_db *db;
    int rc = tome_open(dir, &o, &db);
    if (rc) _exit(20 - rc);
    unsigned char *buf = malloc(8000);
    if (!buf) _exit(81);
    for (;;) {
        tome_txn *t;
        rc = tome_begin(db, &t);
        if (rc) _exit(40 - rc);
        uint64_t n0;
        rc = read_counter(t, &n0);
        if (rc) _exit(30 - rc);
        uint64_t n = n0 + 1;
        char key[24], cnt[24];
        k_key(key, n);
        tf_fill(buf, k_len(n), k_seed(n));
        rc = tome_insert(t, K_SLOT, key, strlen(key), buf, k_len(n));
        snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)n);
        if (!rc) rc = tome_insert(t, K_SLOT, "counter", 7, cnt, strlen(cnt));
        if (!rc && n % 5 == 0) {
            rc = tome_remove(t, K_SLOT, "hot", 3);
        } else if (!rc) {
            tf_fill(buf, hot_len(n), hot_seed(n));
            rc = tome_insert(t, K_SLOT, "hot", 3, buf, hot_len(n));
        }
        if (rc) _exit(40 - rc);
        rc = tome_commit(t);
        if (rc) _exit(40 - rc);
        if (write(fd, &n, sizeof n) != (ssize_t)sizeof n) _exit(80);
        if (merge_every && n % (uint64_t)merge_every == 0) {
            rc = tome_merge(db);
            if (rc) _exit(60 - rc);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The parent                                                                */
/* ------------------------------------------------------------------------ */

typedef struct acks {
    uint64_t *n;
    size_t count, cap;
    unsigned char part[8];
    size_t have;   /* bytes of a partly read number */
} acks_t;

static int acks_push(acks_t *a, uint64_t n) {
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        uint64_t *p = realloc(a->n, cap * sizeof *p);
        if (!p) return -1;
        a->n = p;
        a->cap = cap;
    }
    a->n[a->count++] = n;
    return 0;
}

/* Reads what the pipe holds now. Returns 1 at end of file, 0 otherwise,
 * -1 on error. */
static int acks_read(acks_t *a, int fd) {
    unsigned char buf[4096];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0) return 1;
    if (r < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
    for (ssize_t i = 0; i < r; i++) {
        a->part[a->have++] = buf[i];
        if (a->have == 8) {
            uint64_t n;
            memcpy(&n, a->part, 8);
            a->have = 0;
            if (acks_push(a, n)) return -1;
        }
    }
    return 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *child_status(int st, char *buf, size_t cap) {
    if (WIFSIGNALED(st)) snprintf(buf, cap, "killed by signal %d", WTERMSIG(st));
    else if (WIFEXITED(st)) {
        int c = WEXITSTATUS(st);
        const char *what = c >= 80 ? "pipe/memory" : c >= 60 ? "tome_merge" : c >= 40 ? "commit"
                         : c >= 30 ? "reading counter" : c >= 20 ? "tome_open" : "?";
        int e = c >= 80 ? 0 : c % 20;
        snprintf(buf, cap, "exited %d (%s failed: %s)", c, what, tt_rcname(-e));
    } else snprintf(buf, cap, "status 0x%x", st);
    return buf;
}

/* Checks the store after a kill. */
static void verify_store(const char *dir, const acks_t *a, uint64_t max_acked, uint64_t *cnt_out) {
    tome_options o;
    store_opts(&o);
    tome_db *db = NULL;
    int rc = tome_open(dir, &o, &db);
    if (rc) TT_FAIL_("reopen after the kill: %s: %s", tt_rcname(rc), tome_errmsg(NULL));
    tome_txn *t;
    rc = tome_begin(db, &t);
    if (rc) {
        tome_close(db);
        TT_FAIL_("tome_begin: %s", tt_rcname(rc));
    }
    uint64_t cnt = 0;
    char key[24];
    const void *v;
    size_t vl;
    rc = read_counter(t, &cnt);
    if (rc) {
        fprintf(stderr, "  counter: %s\n", tt_rcname(rc));
        goto fail;
    }
    if (cnt < max_acked) {
        fprintf(stderr, "  counter %llu, but the child reported commit %llu\n",
                (unsigned long long)cnt, (unsigned long long)max_acked);
        goto fail;
    }
    for (size_t i = 0; i < a->count; i++) {
        k_key(key, a->n[i]);
        rc = tome_get(t, K_SLOT, key, strlen(key), &v, &vl);
        if (rc || !same_fill(v, vl, k_len(a->n[i]), k_seed(a->n[i]))) {
            fprintf(stderr, "  reported commit %s: %s%s\n", key, tt_rcname(rc),
                    rc ? "" : " with a wrong value");
            goto fail;
        }
    }
    for (uint64_t n = 1; n <= cnt + 1; n++) {
        k_key(key, n);
        rc = tome_get(t, K_SLOT, key, strlen(key), &v, &vl);
        if (n <= cnt && (rc || !same_fill(v, vl, k_len(n), k_seed(n)))) {
            fprintf(stderr, "  %s (counter %llu): %s%s\n", key, (unsigned long long)cnt,
                    tt_rcname(rc), rc ? "" : " with a wrong value");
            goto fail;
        }
        if (n > cnt && rc != TOME_NOTFOUND) {
            fprintf(stderr, "  %s above counter %llu: %s\n", key, (unsigned long long)cnt,
                    tt_rcname(rc));
            goto fail;
        }
    }
    tome_iter *it;
    rc = tome_iter_open(t, K_SLOT, "k", 1, &it);
    if (rc) {
        fprintf(stderr, "  tome_iter_open: %s\n", tt_rcname(rc));
        goto fail;
    }
    uint64_t nk = 0;
    const void *kp;
    size_t kl;
    while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) nk++;
    tome_iter_close(it);
    if (rc != TOME_NOTFOUND || nk != cnt) {
        fprintf(stderr, "  iteration of k*: %llu keys (%s), counter %llu\n",
                (unsigned long long)nk, tt_rcname(rc), (unsigned long long)cnt);
        goto fail;
    }
    rc = tome_get(t, K_SLOT, "hot", 3, &v, &vl);
    if (cnt == 0 || cnt % 5 == 0 ? rc != TOME_NOTFOUND
                                 : (rc || !same_fill(v, vl, hot_len(cnt), hot_seed(cnt)))) {
        fprintf(stderr, "  hot (counter %llu): %s\n", (unsigned long long)cnt, tt_rcname(rc));
        goto fail;
    }
    const tome_version *vers;
    size_t nv;
    rc = tome_versions(t, K_SLOT, "counter", 7, &vers, &nv);
    if (rc || (cnt > 0 && nv == 0) || nv > cnt) {
        fprintf(stderr, "  versions of counter: %s, %zu\n", tt_rcname(rc), nv);
        goto fail;
    }
    for (size_t i = 1; i < nv; i++) {
        if (vers[i].seq <= vers[i - 1].seq || vers[i].timestamp < vers[i - 1].timestamp ||
            !vers[i].committed) {
            fprintf(stderr, "  versions of counter: seq %llu ts %llu then seq %llu ts %llu\n",
                    (unsigned long long)vers[i - 1].seq, (unsigned long long)vers[i - 1].timestamp,
                    (unsigned long long)vers[i].seq, (unsigned long long)vers[i].timestamp);
            goto fail;
        }
    }
    uint64_t last = 0;
    rc = tome_last_seq(db, &last);
    if (rc || last < cnt || (nv && last < vers[nv - 1].seq)) {
        fprintf(stderr, "  last seq %llu (%s), counter %llu\n", (unsigned long long)last,
                tt_rcname(rc), (unsigned long long)cnt);
        goto fail;
    }
    tome_abort(t);
    CHECK_OK(tome_close(db));
    char *report = NULL;
    rc = tome_check(dir, &report);
    if (rc != TOME_OK) fprintf(stderr, "  tome_check report:\n%s\n", report ? report : "(none)");
    tome_free(report);
    CHECK_RC(rc, TOME_OK);
    *cnt_out = cnt;
    return;
fail:
    tome_abort(t);
    tome_close(db);
    TT_FAIL_("store inconsistent after the kill");
}

typedef struct kill_stats {
    long rounds_no_ack, acks;
} kill_stats;

/* One round: fork the committing child, kill it, check the store. */
static void kill_round(const char *dir, int merge_every, int round, uint64_t *rng,
                       uint64_t *max_acked, kill_stats *ks) {
    int p[2];
    CHECK_EQ(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_main(dir, p[1], merge_every);
        _exit(99);
    }
    close(p[1]);
    acks_t a = {0};
    int eof = 0;
    uint64_t delay = 1 + tf_rand(rng) % 40;
    int wait_first = round % 2 == 1;
    uint64_t start = now_ms();
    /* Odd rounds: the delay starts at the first acknowledged commit (at most
     * 60 s: a child that commits nothing for that long is stuck). */
    while (wait_first && a.count == 0 && !eof && now_ms() - start < 60000) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 1000) > 0) {
            int r = acks_read(&a, p[0]);
            if (r) eof = 1;
        }
    }
    uint64_t deadline = now_ms() + delay;
    while (!eof) {
        uint64_t now = now_ms();
        if (now >= deadline) break;
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, (int)(deadline - now)) > 0 && acks_read(&a, p[0])) eof = 1;
    }
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    while (!eof) {
        int r = acks_read(&a, p[0]);
        if (r) eof = 1;
    }
    close(p[0]);
    if (!WIFSIGNALED(st)) {
        char buf[128];
        free(a.n);
        TT_FAIL_("round %d: the child was not killed: %s", round, child_status(st, buf, sizeof buf));
    }
    for (size_t i = 0; i < a.count; i++)
        if (a.n[i] > *max_acked) *max_acked = a.n[i];
    if (a.count == 0) ks->rounds_no_ack++;
    ks->acks += (long)a.count;
    uint64_t cnt = 0, cnt2 = 0;
    verify_store(dir, &a, *max_acked, &cnt);
    if (!tt_failed_now) {
        /* Again from a full scan of the log, as when no INDEX is usable. */
        char idx[TF_PATH_MAX];
        tf_path(idx, sizeof idx, dir, "INDEX");
        if (tf_remove(idx) != 0) {
            fprintf(stderr, "  cannot remove %s\n", idx);
            tt_failed_now = 1;
        } else {
            verify_store(dir, &a, cnt, &cnt2);
            if (tt_failed_now) fprintf(stderr, "  (second open, without INDEX)\n");
            else if (cnt2 != cnt) {
                fprintf(stderr, "  counter %llu, but %llu without INDEX\n",
                        (unsigned long long)cnt, (unsigned long long)cnt2);
                tt_failed_now = 1;
            }
        }
    }
    if (tt_failed_now)
        fprintf(stderr, "  round %d: killed %llu ms after %s; %zu commits reported this round, "
                "highest ever %llu\n", round, (unsigned long long)delay,
                wait_first ? "its first commit" : "the fork", a.count,
                (unsigned long long)*max_acked);
    free(a.n);
    /* Commits that completed but were not reported before the kill count
     * too: the next round starts from the counter the store holds. */
    if (cnt > *max_acked) *max_acked = cnt;
}

static void kill_loop(int merge_every, uint64_t seed, uint64_t seg_size) {
    g_seg_size = seg_size;
    char dir[TF_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tt_tmpdir());
    int rounds = tf_short() ? 5 : 30;
    uint64_t rng = seed, max_acked = 0;
    kill_stats ks = {0, 0};
    for (int r = 0; r < rounds; r++) {
        kill_round(dir, merge_every, r, &rng, &max_acked, &ks);
        if (tt_failed_now) return;
    }
    printf("     %d kills, %ld commits reported, counter at %llu, %ld rounds killed before "
           "any commit; %d segments, %d merged files\n",
           rounds, ks.acks, (unsigned long long)max_acked, ks.rounds_no_ack,
           tf_count_suffix(dir, ".log"), tf_count_suffix(dir, ".mrg"));
    /* Every odd round waited for a commit before the kill. */
    CHECK(max_acked >= (uint64_t)rounds / 2);
}

TT_TEST(sigkill_while_committing) { kill_loop(0, 12345, 128u * 1024u); }
TT_TEST(sigkill_while_committing_and_merging) { kill_loop(4, 54321, 16u * 1024u); }

TT_MAIN()
