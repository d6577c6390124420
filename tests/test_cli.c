/*
 * test_cli.c -- tests of the `tome` command-line tool (tools/tome.c and the
 * kv family of tools/tome_kv.c), run as a child process.
 *
 * The binary under test is ../tome next to the directory of this test
 * binary (build/tome for build/tests/test_cli, build-san/tome under
 * SANITIZE=1). Each case feeds it standard input through a pipe, captures
 * standard output, standard error and the exit status, and checks them
 * against what the commands must print, on stores in tt_tmpdir(): binary
 * round trips, key listing order and escaping, slots, versions, time
 * travel with get --seq (before and after a merge), rm/undelete, merge and
 * stats figures, check on a sound and on a damaged store, usage errors, the
 * shell's transactions, a store held open by this process (TOME_LOCKED) and
 * the kv commands.
 */
#include "tt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "tome.h"

/* ------------------------------------------------------------------------ */
/* Running the tool                                                           */
/* ------------------------------------------------------------------------ */

struct run {
    char *out, *err;
    size_t nout, nerr;
    int code; /* exit status, or 128 + signal */
};

static char tool_path[1024];

static const char *tool(void) {
    if (tool_path[0]) return tool_path;
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "cannot read /proc/self/exe\n");
        exit(2);
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(tool_path, sizeof tool_path, "%s/../tome", self);
    if (access(tool_path, X_OK) != 0) {
        fprintf(stderr, "no tool at %s (build it with make)\n", tool_path);
        exit(2);
    }
    return tool_path;
}

static void run_free(struct run *r) {
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static void append(char **buf, size_t *n, const char *p, size_t k) {
    *buf = realloc(*buf, *n + k + 1);
    if (!*buf) abort();
    memcpy(*buf + *n, p, k);
    *n += k;
    (*buf)[*n] = 0;
}

/* Runs the tool with argv (NULL-terminated, without argv[0]), feeding it
 * in[0..nin) on standard input. Output buffers are NUL-terminated. */
static void run_argv(struct run *r, const void *in, size_t nin, const char *const *args) {
    char *argv[64];
    int k = 0;
    argv[k++] = (char *)(uintptr_t)tool();
    while (args[k - 1] && k < 63) {
        argv[k] = (char *)(uintptr_t)args[k - 1];
        k++;
    }
    argv[k] = NULL;
    memset(r, 0, sizeof *r);
    append(&r->out, &r->nout, "", 0);
    append(&r->err, &r->nerr, "", 0);
    signal(SIGPIPE, SIG_IGN);
    int pin[2], pout[2], perr[2];
    if (pipe(pin) || pipe(pout) || pipe(perr)) abort();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[0]); close(pin[1]);
        close(pout[0]); close(pout[1]);
        close(perr[0]); close(perr[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    const char *ip = in;
    size_t off = 0;
    int infd = pin[1];
    if (nin == 0) {
        close(infd);
        infd = -1;
    }
    int open_out = 1, open_err = 1;
    while (open_out || open_err || infd >= 0) {
        struct pollfd fds[3];
        int nf = 0, iout = -1, ierr = -1, iin = -1;
        if (open_out) { iout = nf; fds[nf++] = (struct pollfd){pout[0], POLLIN, 0}; }
        if (open_err) { ierr = nf; fds[nf++] = (struct pollfd){perr[0], POLLIN, 0}; }
        if (infd >= 0) { iin = nf; fds[nf++] = (struct pollfd){infd, POLLOUT, 0}; }
        if (poll(fds, (nfds_t)nf, -1) < 0) {
            if (errno == EINTR) continue;
            abort();
        }
        char buf[65536];
        if (iout >= 0 && fds[iout].revents) {
            ssize_t got = read(pout[0], buf, sizeof buf);
            if (got > 0) append(&r->out, &r->nout, buf, (size_t)got);
            else if (got == 0 || errno != EINTR) open_out = 0;
        }
        if (ierr >= 0 && fds[ierr].revents) {
            ssize_t got = read(perr[0], buf, sizeof buf);
            if (got > 0) append(&r->err, &r->nerr, buf, (size_t)got);
            else if (got == 0 || errno != EINTR) open_err = 0;
        }
        if (iin >= 0 && fds[iin].revents) {
            ssize_t put = write(infd, ip + off, nin - off);
            if (put > 0) off += (size_t)put;
            if ((put < 0 && errno != EAGAIN && errno != EINTR) || off == nin) {
                close(infd);
                infd = -1;
            }
        }
    }
    close(pout[0]);
    close(perr[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* run(r, stdin-string-or-NULL, args..., NULL) */
static void run(struct run *r, const char *in, ...) {
    const char *args[64];
    int k = 0;
    va_list ap;
    va_start(ap, in);
    while (k < 63 && (args[k] = va_arg(ap, const char *)) != NULL) k++;
    va_end(ap);
    args[k] = NULL;
    run_argv(r, in, in ? strlen(in) : 0, args);
}

/* A fresh store path (the store itself does not exist yet). */
static const char *new_store(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/db", tt_tmpdir());
    return buf;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        if (*s == '\n') n++;
    return n;
}

static int short_mode(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && strcmp(s, "0");
}

/* Checks that a run ended with `code`, and when it failed, that it said
 * so in exactly one line on stderr. */
#define CHECK_RUN(r, want)                                                       \
    do {                                                                         \
        if ((r).code != (want))                                                  \
            TT_FAIL_("exit %d, want %d; stderr: %s", (r).code, (want), (r).err); \
        if ((want) != 0 && (want) != 2 && count_lines((r).err) != 1)             \
            TT_FAIL_("want one error line, got: %s", (r).err);                   \
    } while (0)

/* The figure `name: N` of `stats` output. */
static uint64_t stat_of(const char *out, const char *name) {
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s: ", name);
    char *buf = malloc(strlen(out) + 2);
    buf[0] = '\n';
    strcpy(buf + 1, out);
    const char *p = strstr(buf, pat);
    uint64_t v = p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
    free(buf);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                      */
/* ------------------------------------------------------------------------ */

TT_TEST(binary_roundtrip) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    const char *args[] = {p, "put", "bin", NULL};
    run_argv(&r, all, sizeof all, args);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "bin", NULL);
    CHECK_RUN(r, 0);
    CHECK_MEM(r.out, r.nout, all, sizeof all);
    CHECK_EQ(r.nerr, 0);
    run_free(&r);

    /* "-" as VALUE reads standard input too; a larger value crosses many
     * pipe buffers both ways. */
    size_t big = short_mode() ? 200000 : 3000000;
    uint8_t *b = malloc(big);
    uint32_t x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
    const char *args2[] = {p, "put", "big", "-", NULL};
    run_argv(&r, b, big, args2);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "big", NULL);
    CHECK_RUN(r, 0);
    CHECK_MEM(r.out, r.nout, b, big);
    run_free(&r);
    free(b);

    /* --hex key and value */
    run(&r, NULL, "--hex", p, "put", "00ff0a", "DEADbeef00", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "--hex", "00ff0a", NULL);
    CHECK_RUN(r, 0);
    CHECK_MEM(r.out, r.nout, "\xde\xad\xbe\xef\x00", 5);
    run_free(&r);
}

TT_TEST(empty_value_and_key) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, p, "put", "e", "", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "e", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nout, 0);
    CHECK_EQ(r.nerr, 0);
    run_free(&r);
    /* an empty standard input is an empty value too */
    run(&r, "", p, "put", "e2", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "e2", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
    /* the empty key */
    run(&r, NULL, p, "put", "", "empty-key", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "empty-key");
    run_free(&r);
    /* absent is not empty */
    run(&r, NULL, p, "get", "e3", NULL);
    CHECK_RUN(r, 1);
    CHECK(strstr(r.err, tome_strerror(TOME_NOTFOUND)) != NULL);
    CHECK(strstr(r.err, "\"e3\"") != NULL);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
}

TT_TEST(keys_order_and_escaping) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    const char *plain[] = {"b", "a", "a\\b", "ab", "a b", "c\n"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        run(&r, NULL, p, "put", plain[i], "v", NULL);
        CHECK_RUN(r, 0);
        run_free(&r);
    }
    run(&r, NULL, p, "put", "--hex", "00ff61", "76", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "put", "--slot", "1", "zz-other-slot", "v", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);

    run(&r, NULL, p, "keys", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "\\x00\\xffa\na\na b\na\\\\b\nab\nb\nc\\x0a\n");
    run_free(&r);
    run(&r, NULL, p, "keys", "a", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "a\na b\na\\\\b\nab\n");
    run_free(&r);
    run(&r, NULL, p, "keys", "--raw", "--hex", "00", NULL);
    CHECK_RUN(r, 0);
    CHECK_MEM(r.out, r.nout, "\x00\xff" "a\n", 4);
    run_free(&r);
    run(&r, NULL, p, "keys", "nothing", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
    /* the escaped form read back through the shell finds the key */
    run(&r, "get --raw \\x00\\xffa\n", p, NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "v\n");
    run_free(&r);
}

TT_TEST(slots) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, p, "put", "--slot", "5", "k", "five", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "put", "k", "zero", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, "--slot=200", p, "put", "k", "last", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "zero");
    run_free(&r);
    run(&r, NULL, "--slot", "5", p, "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "five");
    run_free(&r);
    run(&r, NULL, p, "--slot", "200", "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "last");
    run_free(&r);
    run(&r, NULL, p, "get", "--slot", "7", "k", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
    run(&r, NULL, p, "keys", "--slot", "5", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "k\n");
    run_free(&r);
    run(&r, NULL, p, "keys", "--slot", "7", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
    /* rm in slot 5 leaves slot 0 alone */
    run(&r, NULL, p, "rm", "--slot", "5", "k", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "zero");
    run_free(&r);
    run(&r, NULL, p, "get", "--slot", "5", "k", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
    run(&r, NULL, p, "get", "--slot", "256", "k", NULL);
    CHECK_RUN(r, 2);
    CHECK_EQ(count_lines(r.err), 1);
    run_free(&r);
}

/* Parses one `versions` line: SEQ TIME KIND LEN. */
static int parse_version(const char *line, uint64_t *seq, char *tm, char *kind, char *len) {
    unsigned long long s;
    if (sscanf(line, "%llu %63s %15s %31s", &s, tm, kind, len) != 4) return -1;
    *seq = s;
    return 0;
}

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS.mmmZ", or -1. */
static long long parse_iso(const char *s) {
    struct tm tm = {0};
    int ms;
    char z;
    if (strlen(s) != 24) return -1;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 || z != 'Z')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm);
}

TT_TEST(versions_listing) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, p, "put", "k", "v1", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "put", "other", "x", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "put", "k", "value2", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "rm", "k", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "versions", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(count_lines(r.out), 3);
    const char *want_kind[] = {"put", "put", "removed"};
    const char *want_len[] = {"2", "6", "-"};
    uint64_t prev = 0;
    const char *line = r.out;
    long long now = (long long)time(NULL);
    for (int i = 0; i < 3; i++) {
        uint64_t seq;
        char tm[64], kind[16], len[32];
        CHECK(parse_version(line, &seq, tm, kind, len) == 0);
        CHECK(seq > prev);
        prev = seq;
        long long t = parse_iso(tm);
        CHECK(t > 0);
        CHECK(t > now - 86400 && t < now + 86400); /* UTC, not local time off by a day */
        CHECK(!strcmp(kind, want_kind[i]));
        CHECK(!strcmp(len, want_len[i]));
        line = strchr(line, '\n') + 1;
    }
    run_free(&r);
    /* the stats' last_seq is the seq of the rm */
    run(&r, NULL, p, "stats", NULL);
    CHECK_RUN(r, 0);
    CHECK_U64(stat_of(r.out, "last_seq"), prev);
    run_free(&r);
    run(&r, NULL, p, "versions", "never", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
}

/* The seq of the newest version of key, from `versions`. */
static uint64_t newest_seq(const char *p, const char *key) {
    struct run r;
    run(&r, NULL, p, "versions", key, NULL);
    uint64_t seq = 0;
    const char *line = r.out;
    while (r.code == 0 && *line) {
        char tm[64], kind[16], len[32];
        if (parse_version(line, &seq, tm, kind, len)) break;
        line = strchr(line, '\n') + 1;
    }
    run_free(&r);
    return seq;
}

TT_TEST(get_seq_time_travel) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, p, "put", "k", "old", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    uint64_t s1 = newest_seq(p, "k");
    CHECK(s1 > 0);
    run(&r, NULL, p, "put", "k", "new", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    uint64_t s2 = newest_seq(p, "k");
    CHECK(s2 > s1);
    run(&r, NULL, p, "put", "later", "x", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    char n[32];
    snprintf(n, sizeof n, "%" PRIu64, s1);
    run(&r, NULL, p, "get", "--seq", n, "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "old");
    run_free(&r);
    snprintf(n, sizeof n, "%" PRIu64, s2);
    run(&r, NULL, p, "get", "k", "--seq", n, NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "new");
    run_free(&r);
    /* before the key existed */
    snprintf(n, sizeof n, "%" PRIu64, s1 - 1);
    run(&r, NULL, p, "get", "--seq", n, "k", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
    /* beyond the newest commit */
    run(&r, NULL, p, "get", "--seq", "999999", "k", NULL);
    CHECK_RUN(r, 3);
    run_free(&r);

    /* After a merge the horizon is the newest commit (the put of "later"):
     * s2 is below it, but the version of s2 is k's newest and kept, so the
     * fallback still finds it; s1's version is gone. */
    run(&r, NULL, p, "merge", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    snprintf(n, sizeof n, "%" PRIu64, s2);
    run(&r, NULL, p, "get", "--seq", n, "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "new");
    run_free(&r);
    snprintf(n, sizeof n, "%" PRIu64, s1);
    run(&r, NULL, p, "get", "--seq", n, "k", NULL);
    CHECK_RUN(r, 1);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
}

TT_TEST(rm_and_undelete) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, p, "put", "k", "precious", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "rm", "k", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 1);
    CHECK(strstr(r.err, "tome: ") == r.err);
    run_free(&r);
    run(&r, NULL, p, "rm", "k", NULL); /* already gone */
    CHECK_RUN(r, 1);
    run_free(&r);
    run(&r, NULL, p, "keys", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
    run(&r, NULL, p, "undelete", "k", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "precious");
    run_free(&r);
    run(&r, NULL, p, "undelete", "k", NULL); /* present: nothing to restore */
    CHECK_RUN(r, 3);
    run_free(&r);
    run(&r, NULL, p, "undelete", "never", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
    /* a merge empties the trash */
    run(&r, NULL, p, "rm", "k", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "merge", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "undelete", "k", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
}

TT_TEST(merge_and_stats) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    /* one shell session: 10 keys, 5 overwritten, 2 removed, each its own
     * transaction: 17 commits */
    char script[4096];
    size_t w = 0;
    for (int i = 0; i < 10; i++) w += (size_t)snprintf(script + w, sizeof script - w, "put key%d value-%d\n", i, i);
    for (int i = 0; i < 5; i++) w += (size_t)snprintf(script + w, sizeof script - w, "put key%d v2-%d\n", i, i);
    w += (size_t)snprintf(script + w, sizeof script - w, "rm key8\nrm key9\n");
    run(&r, script, p, NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(r.nerr, 0);
    run_free(&r);
    uint64_t last = newest_seq(p, "key9");
    run(&r, NULL, p, "stats", NULL);
    CHECK_RUN(r, 0);
    CHECK_U64(stat_of(r.out, "keys"), 8);
    CHECK_U64(stat_of(r.out, "keys_total"), 10);
    CHECK_U64(stat_of(r.out, "versions"), 17);
    CHECK_U64(stat_of(r.out, "last_seq"), last);
    CHECK_U64(stat_of(r.out, "horizon"), 0);
    CHECK(stat_of(r.out, "segments") >= 1);
    run_free(&r);
    run(&r, NULL, p, "merge", NULL);
    CHECK_RUN(r, 0);
    CHECK(strstr(r.out, "versions 17 -> 8") != NULL);
    run_free(&r);
    run(&r, NULL, p, "stats", NULL);
    CHECK_RUN(r, 0);
    CHECK_U64(stat_of(r.out, "keys"), 8);
    CHECK_U64(stat_of(r.out, "keys_total"), 8);
    CHECK_U64(stat_of(r.out, "versions"), 8);
    /* key0..4 (4 bytes) hold "v2-N" (4), key5..7 hold "value-N" (7) */
    CHECK_U64(stat_of(r.out, "live_bytes"), 5 * (4 + 4) + 3 * (4 + 7));
    CHECK_U64(stat_of(r.out, "last_seq"), last);
    CHECK_U64(stat_of(r.out, "horizon"), last);
    run_free(&r);
    run(&r, NULL, p, "get", "key3", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "v2-3");
    run_free(&r);
    run(&r, NULL, p, "get", "key9", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
}

/* The path of the segment file with the lowest number in store p. */
static int first_log(const char *p, char *out, size_t cap) {
    DIR *d = opendir(p);
    if (!d) return -1;
    struct dirent *de;
    char best[256] = "";
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n == 20 && !strcmp(de->d_name + 16, ".log") && (!best[0] || strcmp(de->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", de->d_name);
    }
    closedir(d);
    if (!best[0]) return -1;
    snprintf(out, cap, "%s/%s", p, best);
    return 0;
}

TT_TEST(check_sound_and_damaged) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    char script[8192];
    size_t w = 0;
    for (int i = 0; i < 40; i++)
        w += (size_t)snprintf(script + w, sizeof script - w,
                              "put record%02d \"some value of record %02d, long enough to matter\"\n", i, i);
    run(&r, script, p, NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "check", NULL);
    CHECK_RUN(r, 0);
    CHECK(r.nout > 0);
    run_free(&r);

    /* flip a byte in the middle of the data of the first segment: an old
     * record, followed by many sound commits */
    char log[1024], idx[1024];
    CHECK(first_log(p, log, sizeof log) == 0);
    int fd = open(log, O_RDWR);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    uint8_t *data = malloc((size_t)st.st_size);
    CHECK(pread(fd, data, (size_t)st.st_size, 0) == st.st_size);
    size_t end = (size_t)st.st_size;
    while (end > 0 && data[end - 1] == 0) end--;
    CHECK(end > 2000);
    size_t mid = end / 2;
    uint8_t b = data[mid] ^ 0x5a;
    CHECK(pwrite(fd, &b, 1, (off_t)mid) == 1);
    close(fd);
    free(data);
    snprintf(idx, sizeof idx, "%s/INDEX", p);
    unlink(idx);

    run(&r, NULL, p, "check", NULL);
    CHECK(r.code != 0);
    CHECK_RUN(r, 3);
    CHECK(strstr(r.err, tome_strerror(TOME_CORRUPT)) != NULL);
    CHECK(r.nout > 0); /* the report */
    run_free(&r);

    run(&r, NULL, new_store(p, sizeof p), "check", NULL); /* no store there */
    CHECK(r.code != 0);
    CHECK_EQ(count_lines(r.err), 1);
    run_free(&r);
}

TT_TEST(usage_errors) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, NULL);
    CHECK_EQ(r.code, 2);
    CHECK(strstr(r.err, "usage: tome") != NULL);
    run_free(&r);
    run(&r, NULL, "--help", NULL);
    CHECK_EQ(r.code, 0);
    CHECK(strstr(r.out, "usage: tome") != NULL);
    CHECK(strstr(r.out, "undelete") != NULL);
    CHECK(strstr(r.out, "kv") != NULL);
    run_free(&r);
    const char *bad[][7] = {
        {p, "frob", NULL},
        {p, "put", NULL},
        {p, "get", NULL},
        {p, "get", "a", "b", NULL},
        {p, "keys", "a", "b", NULL},
        {p, "merge", "x", NULL},
        {p, "--bogus", "get", "k", NULL},
        {"--slot", "x", p, "get", "k", NULL},
        {p, "get", "--slot", NULL},
        {"--hex", p, "put", "zz", "00", NULL},
        {"--hex", p, "put", "abc", "00", NULL},
        {p, "put", "--seq", "3", "k", "v", NULL},
        {p, "--sync", "sometimes", "put", "k", "v", NULL},
        {p, "begin", NULL},
        {NULL},
    };
    for (int i = 0; bad[i][0]; i++) {
        run_argv(&r, NULL, 0, bad[i]);
        if (r.code != 2 || count_lines(r.err) != 1 || strncmp(r.err, "tome: ", 6) != 0)
            TT_FAIL_("case %d (%s %s): exit %d, stderr: %s", i, bad[i][1], bad[i][2] ? bad[i][2] : "",
                     r.code, r.err);
        run_free(&r);
    }
    /* none of these created the store */
    struct stat st;
    CHECK(stat(p, &st) != 0);
}

TT_TEST(options_sync_readonly) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, "--sync", "none", p, "put", "k", "fast", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "k", "--readonly", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "fast");
    run_free(&r);
    run(&r, NULL, "--readonly", p, "put", "k", "no", NULL);
    CHECK_RUN(r, 3);
    CHECK(strstr(r.err, tome_strerror(TOME_READONLY)) != NULL);
    run_free(&r);
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "fast");
    run_free(&r);
    /* reading commands do not create a store */
    char q[700];
    new_store(q, sizeof q);
    run(&r, NULL, q, "get", "k", NULL);
    CHECK_RUN(r, 3);
    run_free(&r);
    struct stat st;
    CHECK(stat(q, &st) != 0);
    /* values starting with dashes after -- */
    run(&r, NULL, p, "put", "--", "--k", "--v", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "--", "--k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "--v");
    run_free(&r);
    run(&r, NULL, p, "put", "neg", "-5", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "neg", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "-5");
    run_free(&r);
}

TT_TEST(shell_transactions) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    /* commit: both writes land; inside, the transaction sees its writes */
    run(&r, "begin\nput a 1\nput b 2\nget a\ncommit\nget b\n", p, NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "1\n2\n");
    CHECK_EQ(r.nerr, 0);
    run_free(&r);
    run(&r, NULL, p, "get", "a", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "1");
    run_free(&r);
    /* both writes of one transaction share a seq */
    CHECK_U64(newest_seq(p, "a"), newest_seq(p, "b"));

    /* abort: neither write lands */
    run(&r, "begin\nput c 3\nput d 4\nkeys\nabort\nkeys\n", p, NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "a\nb\nc\nd\na\nb\n");
    run_free(&r);
    run(&r, NULL, p, "get", "c", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
    run(&r, NULL, p, "get", "d", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);

    /* end of input inside a transaction: aborted, and said so */
    run(&r, "begin\nput e 5\n", p, NULL);
    CHECK_EQ(r.code, 3);
    CHECK(strstr(r.err, "abort") != NULL);
    run_free(&r);
    run(&r, NULL, p, "get", "e", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);

    /* errors print one line and the shell goes on; quoting and escapes */
    run(&r, "get nope\nfrob\nput \"sp ace\" \"x\\x00y\"  # comment\nget \"sp ace\"\n"
            "put 'q\"uote' v\\ w\n.quit\nput after quit\n",
        p, NULL);
    CHECK_EQ(r.code, 2); /* the last failure was a usage error */
    CHECK_EQ(count_lines(r.err), 2);
    CHECK_STRMEM(r.out, r.nout, "x\\x00y\n");
    run_free(&r);
    run(&r, NULL, p, "get", "sp ace", NULL);
    CHECK_RUN(r, 0);
    CHECK_MEM(r.out, r.nout, "x\0y", 3);
    run_free(&r);
    run(&r, NULL, p, "get", "q\"uote", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "v w");
    run_free(&r);
    run(&r, NULL, p, "get", "after", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);

    /* shell-level defaults from the command line; versions/undelete inside */
    run(&r, "put k v\nbegin\nrm k\nget k\nundelete k\nget k\ncommit\nversions k\n", "--slot", "9", p,
        NULL);
    CHECK_EQ(r.code, 1); /* the get of the removed key */
    CHECK(strncmp(r.out, "v\n", 2) == 0);
    CHECK_EQ(count_lines(r.out), 3); /* v, then two versions */
    run_free(&r);
    run(&r, NULL, p, "get", "--slot", "9", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "v");
    run_free(&r);

    /* a check from the shell closes and reopens the store */
    run(&r, "check\nget a\n", p, NULL);
    CHECK_RUN(r, 0);
    CHECK(r.nout > 2 && !strcmp(r.out + r.nout - 2, "1\n"));
    run_free(&r);
}

TT_TEST(locked_store) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, NULL, p, "put", "k", "v", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    tome_db *db;
    CHECK_OK(tome_open(p, NULL, &db));
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 3);
    CHECK(strstr(r.err, tome_strerror(TOME_LOCKED)) != NULL);
    CHECK(strstr(r.err, p) != NULL);
    CHECK_EQ(r.nout, 0);
    run_free(&r);
    run(&r, NULL, p, "check", NULL);
    CHECK_RUN(r, 3);
    CHECK(strstr(r.err, tome_strerror(TOME_LOCKED)) != NULL);
    run_free(&r);
    run(&r, "get k\n", p, NULL);
    CHECK_RUN(r, 3);
    run_free(&r);
    CHECK_OK(tome_close(db));
    run(&r, NULL, p, "get", "k", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "v");
    run_free(&r);
}

TT_TEST(kv_commands) {
    char p[700];
    new_store(p, sizeof p);
    struct run r;
    run(&r, "monitor data\x01\x02", p, "kv", "write", "monitors", "", "chan1", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, "other", p, "kv", "write", "monitors", "", "chan2", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "kv", "read", "monitors", "", "chan1", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "monitor data\x01\x02");
    run_free(&r);
    run(&r, NULL, p, "kv", "ls", "monitors", "", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "chan1\nchan2\n");
    run_free(&r);
    run(&r, NULL, p, "kv", "rm", "monitors", "", "chan1", NULL);
    CHECK_RUN(r, 0);
    run_free(&r);
    run(&r, NULL, p, "kv", "read", "monitors", "", "chan1", NULL);
    CHECK_RUN(r, 1);
    run_free(&r);
    run(&r, NULL, p, "kv", "ls", "monitors", "", NULL);
    CHECK_RUN(r, 0);
    CHECK_STRMEM(r.out, r.nout, "chan2\n");
    run_free(&r);
    run(&r, NULL, p, "kv", "read", "bad name!", "", "k", NULL);
    CHECK(r.code == 2 || r.code == 3);
    CHECK_EQ(count_lines(r.err), 1);
    run_free(&r);
    /* the namespaced keys are ordinary keys: slot 255, "primary/secondary/key" */
    run(&r, NULL, "--slot", "255", p, "versions", "monitors//chan1", NULL);
    CHECK_RUN(r, 0);
    CHECK_EQ(count_lines(r.out), 2);
    CHECK(strstr(r.out, "  put  14\n") != NULL);
    CHECK(strstr(r.out, "  removed  -\n") != NULL);
    run_free(&r);
    /* in the shell the value is an argument; kv never reads the script */
    run(&r, "kv write monitors \"\" chan3 shell-value\nkv read monitors \"\" chan3\nkv write monitors \"\" chan4\nkv ls monitors \"\"\n",
        p, NULL);
    CHECK_EQ(r.code, 2); /* the kv write without a value */
    CHECK_EQ(count_lines(r.err), 1);
    CHECK_STRMEM(r.out, r.nout, "shell-valuechan2\nchan3\n");
    run_free(&r);
}

TT_MAIN()
