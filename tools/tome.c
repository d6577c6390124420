/*
 * tome.c -- the `tome` command-line tool: main(), argument parsing, the core
 * commands (put, get, rm, undelete, keys, versions, merge, check, stats) and
 * the interactive shell that runs when no command is given.
 *
 *   tome [OPTIONS] PATH COMMAND ARGS...     one command, one transaction
 *   tome [OPTIONS] PATH                     a shell reading commands from stdin
 *
 * The tool uses only the public API of include/tome.h. Every command that
 * touches keys runs in a transaction of its own (retried a few times on
 * TOME_CONFLICT), except inside the shell's begin ... commit, where the
 * commands share the shell's transaction. The `kv` family lives in
 * tools/tome_kv.c (see tools/cli.h); this file hands it the open store.
 *
 * Errors are one line on stderr, "tome: <what>: <code text> (<detail>)",
 * and the exit status says what kind: 0 success, 1 not found, 2 usage
 * error, 3 any other failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { CLI_OK = 0, CLI_NOTFOUND = 1, CLI_USAGE = 2, CLI_FAIL = 3 };

/* How many times a one-shot command's transaction is run on TOME_CONFLICT. */
#define CONFLICT_TRIES 8
/* The most positional arguments a core command takes, and words per line. */
#define MAX_POS 4
#define MAX_WORDS 128

/* One argument: bytes that may hold NULs (the shell's escapes), always
 * followed by a NUL so that names and numbers can be read as strings. */
struct arg {
    const char *s;
    size_t n;
};

/* A byte string handed to the engine; `owned` is freed by bytes_free. */
struct bytes {
    const uint8_t *p;
    size_t n;
    uint8_t *owned;
};

/* Options that apply to one command. */
struct opts {
    int slot;
    int hex;
    int raw;
    int have_seq;
    uint64_t seq;
};

/* A command line after option parsing. */
struct parsed {
    struct opts o;
    int npos;
    struct arg pos[MAX_POS];
};

struct ctx {
    const char *path;
    tome_options topts;
    tome_db *db;
    tome_txn *txn;   /* the shell's open transaction (begin ... commit), or NULL */
    int shell;       /* running the shell */
    int dead;        /* the shell lost its store (a reopen after check failed) */
};

struct cmd;
typedef int (*cmd_fn)(struct ctx *c, const struct cmd *cmd, struct parsed *p);

/* open: how a one-shot command opens the store. */
enum { OPEN_NONE = 0, OPEN_EXISTING = 1, OPEN_CREATE = 2 };

struct cmd {
    const char *name;
    int min_pos, max_pos;
    int open;
    cmd_fn fn;
    const char *args; /* for usage messages */
};

/* ------------------------------------------------------------------------ */
/* Messages                                                                   */
/* ------------------------------------------------------------------------ */

static int exit_of(int rc) {
    if (rc == TOME_OK) return CLI_OK;
    if (rc == TOME_NOTFOUND) return CLI_NOTFOUND;
    return CLI_FAIL;
}

/* "tome: <what>: <strerror> (<detail>)"; returns the exit code for rc.
 * The detail comes from tome_errmsg(db) and is left out when it says
 * nothing more than the code. */
__attribute__((format(printf, 3, 4)))
static int fail(tome_db *db, int rc, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *code = tome_strerror(rc);
    const char *detail = tome_errmsg(db);
    fflush(stdout);
    if (!detail || !*detail || !strcmp(detail, "no error") || !strcmp(detail, code))
        fprintf(stderr, "tome: %s: %s\n", what, code);
    else
        fprintf(stderr, "tome: %s: %s (%s)\n", what, code, detail);
    return exit_of(rc);
}

/* "tome: <message>" with a given exit code. */
__attribute__((format(printf, 2, 3)))
static int say(int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "tome: %s\n", msg);
    return code;
}

/* A usage error: one line, exit code 2. */
__attribute__((format(printf, 2, 3)))
static int usage_err(const struct ctx *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "tome: %s (see %s)\n", msg, c && c->shell ? "help" : "tome --help");
    return CLI_USAGE;
}

/* Writes a key the way `keys` shows it: printable ASCII as is, a backslash
 * as \\ and every other byte as \xNN. */
static void put_escaped(FILE *f, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\\') fputs("\\\\", f);
        else if (b[i] >= 0x20 && b[i] < 0x7f) fputc(b[i], f);
        else fprintf(f, "\\x%02x", b[i]);
    }
}

/* The escaped form of a key for messages, in double quotes, cut at about
 * 100 characters. buf must hold 128 bytes. */
static const char *show(char *buf, const void *p, size_t n) {
    const uint8_t *b = p;
    size_t w = 0;
    buf[w++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (w > 100) {
            memcpy(buf + w, "...", 3);
            w += 3;
            break;
        }
        if (b[i] == '\\') { buf[w++] = '\\'; buf[w++] = '\\'; }
        else if (b[i] == '"') { buf[w++] = '\\'; buf[w++] = '"'; }
        else if (b[i] >= 0x20 && b[i] < 0x7f) buf[w++] = (char)b[i];
        else w += (size_t)snprintf(buf + w, 8, "\\x%02x", b[i]);
    }
    buf[w++] = '"';
    buf[w] = 0;
    return buf;
}

/* " (slot N)" when the slot is not 0, for messages. */
static const char *slot_note(char *buf, int slot) {
    if (slot == 0) buf[0] = 0;
    else snprintf(buf, 16, " (slot %d)", slot);
    return buf;
}

static void fmt_time(char *buf, size_t cap, uint64_t ms) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(buf, cap, "@%" PRIu64, ms);
        return;
    }
    size_t k = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, cap - k, ".%03uZ", (unsigned)(ms % 1000));
}

/* ------------------------------------------------------------------------ */
/* Usage                                                                      */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fputs(
        "usage: tome [OPTIONS] PATH [COMMAND [ARGS...]]\n"
        "\n"
        "Runs COMMAND on the tome store at PATH (a directory; commands that write\n"
        "create it when missing). With no COMMAND, reads commands from standard\n"
        "input: an interactive shell (see below).\n"
        "\n"
        "Commands:\n"
        "  put KEY [VALUE]     store VALUE under KEY; with no VALUE or with \"-\", the\n"
        "                      value is read from standard input (binary-safe)\n"
        "  get KEY             write the value of KEY to standard output (raw bytes)\n"
        "  get --seq N KEY     the value KEY had as of commit N\n"
        "  rm KEY              remove KEY (it goes to the trash until a merge)\n"
        "  undelete KEY        restore a removed KEY from the trash\n"
        "  keys [PREFIX]       list the keys, one per line, in bytewise order; bytes\n"
        "                      outside printable ASCII show as \\xNN, a backslash as \\\\\n"
        "  versions KEY        KEY's versions, oldest first, one per line:\n"
        "                      SEQ  TIME(UTC)  put|removed  VALUE-LENGTH (- if removed)\n"
        "  merge               compact: keep the newest version of each key, empty the\n"
        "                      trash, give space back\n"
        "  check               verify every checksum of the store (it must not be open\n"
        "                      elsewhere); prints a report\n"
        "  stats               figures about the store\n"
        "  kv SUBCOMMAND ...   the namespaced store (below)\n"
        "\n"
        "Options may come before PATH, between PATH and COMMAND, or among the\n"
        "command's arguments (\"--\" ends them; arguments after `kv` go to kv as they\n"
        "are):\n"
        "  --slot N            key slot 0..255 (default 0)\n"
        "  --hex               KEY, VALUE and PREFIX arguments are written in hex\n"
        "                      (a value read from standard input is always raw)\n"
        "  --raw               keys: print keys as raw bytes; shell get: the raw value\n"
        "  --seq N             get: read as of commit N\n"
        "  --sync full|none    durability of commits (default full: every commit is\n"
        "                      synced to disk)\n"
        "  --readonly          open the store read-only\n"
        "  -h, --help          this text\n"
        "  --version           the library version\n"
        "\n"
        "kv commands:\n",
        f);
    cli_kv_usage(f);
    fputs(
        "\n"
        "Shell (no COMMAND): one command per line, with the options above except\n"
        "--sync and --readonly (which only the command line sets, and whose --slot and\n"
        "--hex become every line's default). Words are split at blanks; \"double\n"
        "quotes\" and 'single quotes' group them; \\ escapes: \\\\ \\\" \\' \\n \\t \\r \\0\n"
        "\\xNN and \\<blank>. A # word starts a comment. Values come from arguments\n"
        "(never from standard input), and get prints the value escaped like keys,\n"
        "then a newline (--raw: raw bytes). Also:\n"
        "  begin               start a transaction: the commands up to commit share it\n"
        "  commit              commit it\n"
        "  abort               drop it\n"
        "  help                the shell's commands\n"
        "  .quit, quit, EOF    leave (an open transaction is aborted)\n"
        "Outside begin ... commit each command is its own transaction. kv, merge and\n"
        "stats never join the shell's transaction.\n"
        "\n"
        "Exit status: 0 success, 1 not found, 2 usage error, 3 any other failure.\n",
        f);
}

static void shell_help(FILE *f) {
    fputs(
        "put KEY VALUE       store VALUE under KEY\n"
        "get KEY             print the value (escaped; --raw: raw bytes)\n"
        "get --seq N KEY     the value as of commit N\n"
        "rm KEY              remove KEY (to the trash)\n"
        "undelete KEY        restore KEY from the trash\n"
        "keys [PREFIX]       list keys\n"
        "versions KEY        list KEY's versions\n"
        "merge | check | stats\n"
        "kv ...              the namespaced store (tome --help)\n"
        "begin | commit | abort   a transaction over several commands\n"
        "help | .quit\n"
        "Options: --slot N, --hex, --raw, --seq N. Quoting: \"..\", '..', \\ escapes (\\xNN).\n",
        f);
}

/* ------------------------------------------------------------------------ */
/* Arguments                                                                  */
/* ------------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out) {
    if (!*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static void bytes_free(struct bytes *b) {
    free(b->owned);
    b->owned = NULL;
}

/* The bytes of a KEY/VALUE/PREFIX argument: as given, or decoded from hex. */
static int arg_bytes(const struct ctx *c, const struct opts *o, const struct arg *a,
                     const char *what, struct bytes *out) {
    out->owned = NULL;
    if (!o->hex) {
        out->p = (const uint8_t *)a->s;
        out->n = a->n;
        return 0;
    }
    if (a->n % 2) return usage_err(c, "%s: odd number of hex digits", what);
    uint8_t *b = malloc(a->n / 2 + 1);
    if (!b) return say(CLI_FAIL, "%s: out of memory", what);
    for (size_t i = 0; i < a->n; i += 2) {
        int h = hexval((unsigned char)a->s[i]), l = hexval((unsigned char)a->s[i + 1]);
        if (h < 0 || l < 0) {
            free(b);
            return usage_err(c, "%s: not hex", what);
        }
        b[i / 2] = (uint8_t)(h << 4 | l);
    }
    out->p = b;
    out->n = a->n / 2;
    out->owned = b;
    return 0;
}

static int is_name(const struct arg *a, const char *name) {
    return strlen(a->s) == a->n && !strcmp(a->s, name);
}

/* The value of option `name` (given as --name V or --name=V); advances *i. */
static const char *opt_value(const struct arg *args, int nargs, int *i, const char *name) {
    const char *s = args[*i].s;
    size_t k = strlen(name);
    if (s[k] == '=') return s + k + 1;
    if (*i + 1 >= nargs) return NULL;
    (*i)++;
    return args[*i].s;
}

static int opt_is(const struct arg *a, const char *name) {
    size_t k = strlen(name);
    return a->n == strlen(a->s) && !strncmp(a->s, name, k) && (a->s[k] == 0 || a->s[k] == '=');
}

/* Parses one option at args[*i] into o (and, when topts is not NULL, into
 * the open options). Returns 1 when it was an option, 0 when it is a
 * positional argument, or CLI_USAGE + 100 after a usage message; -1 for
 * --help, -2 for --version. */
static int parse_opt(const struct ctx *c, const struct arg *args, int nargs, int *i,
                     struct opts *o, tome_options *topts) {
    const struct arg *a = &args[*i];
    if (a->n < 2 || a->s[0] != '-' || strlen(a->s) != a->n) return 0;
    if (!strcmp(a->s, "-")) return 0;
    if (a->s[1] != '-') {
        if (!strcmp(a->s, "-h")) return -1;
        return 0; /* "-5": a positional argument */
    }
    const char *v;
    if (opt_is(a, "--slot")) {
        uint64_t n;
        if (!(v = opt_value(args, nargs, i, "--slot"))) goto missing;
        if (parse_u64(v, &n) || n > 255) {
            usage_err(c, "--slot: want a number 0..255, not '%s'", v);
            return CLI_USAGE + 100;
        }
        o->slot = (int)n;
        return 1;
    }
    if (opt_is(a, "--seq")) {
        if (!(v = opt_value(args, nargs, i, "--seq"))) goto missing;
        if (parse_u64(v, &o->seq)) {
            usage_err(c, "--seq: want a commit number, not '%s'", v);
            return CLI_USAGE + 100;
        }
        o->have_seq = 1;
        return 1;
    }
    if (!strcmp(a->s, "--hex")) { o->hex = 1; return 1; }
    if (!strcmp(a->s, "--raw")) { o->raw = 1; return 1; }
    if (!strcmp(a->s, "--help")) return -1;
    if (!strcmp(a->s, "--version")) return -2;
    if (opt_is(a, "--sync") || !strcmp(a->s, "--readonly")) {
        if (!topts) {
            usage_err(c, "%s: only on the command line", a->s);
            return CLI_USAGE + 100;
        }
        if (!strcmp(a->s, "--readonly")) {
            topts->read_only = 1;
            return 1;
        }
        if (!(v = opt_value(args, nargs, i, "--sync"))) goto missing;
        if (!strcmp(v, "none")) topts->sync = TOME_SYNC_NONE;
        else if (!strcmp(v, "full")) topts->sync = TOME_SYNC_FULL;
        else {
            usage_err(c, "--sync: want full or none, not '%s'", v);
            return CLI_USAGE + 100;
        }
        return 1;
    }
    usage_err(c, "unknown option '%s'", a->s);
    return CLI_USAGE + 100;
missing:
    usage_err(c, "%s needs a value", a->s);
    return CLI_USAGE + 100;
}

/* Splits a command's arguments into options (into p->o, which holds the
 * defaults on entry) and positional arguments. Returns 0 or an exit code
 * (2 after a usage message; for --help/--version, 0 with *help set). */
static int parse_args(const struct ctx *c, const struct cmd *cmd, const struct arg *args,
                      int nargs, struct parsed *p, tome_options *topts) {
    int opts_done = 0;
    p->npos = 0;
    for (int i = 0; i < nargs; i++) {
        if (!opts_done) {
            if (is_name(&args[i], "--")) {
                opts_done = 1;
                continue;
            }
            int r = parse_opt(c, args, nargs, &i, &p->o, topts);
            if (r == 1) continue;
            if (r > 1) return CLI_USAGE;
            if (r < 0) return usage_err(c, "%s: %s is not a command option", cmd->name, args[i].s);
        }
        if (p->npos >= cmd->max_pos)
            return usage_err(c, "%s: too many arguments; usage: %s%s%s", cmd->name, cmd->name,
                             *cmd->args ? " " : "", cmd->args);
        p->pos[p->npos++] = args[i];
    }
    if (p->npos < cmd->min_pos)
        return usage_err(c, "%s: missing arguments; usage: %s %s", cmd->name, cmd->name,
                         cmd->args);
    if (p->o.have_seq && strcmp(cmd->name, "get"))
        return usage_err(c, "%s: --seq applies only to get", cmd->name);
    /* Every positional argument of a core command is a KEY, VALUE or
     * PREFIX: with --hex, check them now, before the store is opened. */
    for (int i = 0; p->o.hex && i < p->npos; i++) {
        const struct arg *a = &p->pos[i];
        if (i == 1 && is_name(a, "-")) continue;
        if (a->n % 2) return usage_err(c, "%s: odd number of hex digits in '%s'", cmd->name, a->s);
        for (size_t k = 0; k < a->n; k++)
            if (hexval((unsigned char)a->s[k]) < 0)
                return usage_err(c, "%s: '%s' is not hex", cmd->name, a->s);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                               */
/* ------------------------------------------------------------------------ */

typedef int (*txn_body)(struct ctx *c, tome_txn *txn, void *data);

/* Runs body in the shell's open transaction, or in a transaction of its
 * own that is committed afterwards and rerun on TOME_CONFLICT. body returns
 * 0 or an exit code after printing its error (the transaction is then
 * aborted). Bodies that write print nothing, so a rerun shows nothing twice. */
static int with_txn(struct ctx *c, const char *what, txn_body body, void *data) {
    if (c->txn) return body(c, c->txn, data);
    for (int attempt = 1;; attempt++) {
        tome_txn *txn;
        int rc = tome_begin(c->db, &txn);
        if (rc) return fail(c->db, rc, "%s: begin", what);
        int ec = body(c, txn, data);
        if (ec) {
            tome_abort(txn);
            return ec;
        }
        rc = tome_commit(txn);
        if (rc == TOME_OK) return CLI_OK;
        if (rc != TOME_CONFLICT || attempt >= CONFLICT_TRIES)
            return fail(c->db, rc, "%s: commit", what);
        struct timespec ts = {0, 1000000L * attempt};
        nanosleep(&ts, NULL);
    }
}

/* The key's versions; *present tells whether the newest is not a removal. */
static int key_state(struct ctx *c, tome_txn *txn, int slot, const struct bytes *k,
                     const tome_version **v, size_t *n, int *present) {
    int rc = tome_versions(txn, (uint8_t)slot, k->p, k->n, v, n);
    if (rc) return rc;
    *present = *n > 0 && !(*v)[*n - 1].removed;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* put, get, rm, undelete                                                     */
/* ------------------------------------------------------------------------ */

struct kvdata {
    int slot;
    int raw;
    uint64_t seq;
    struct bytes key, val;
};

/* Reads all of standard input (at most TOME_MAX_VALUE_LEN bytes). */
static int read_stdin(const struct ctx *c, const char *what, struct bytes *out) {
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) return say(CLI_FAIL, "%s: out of memory", what);
    for (;;) {
        if (n == cap) {
            if (cap > TOME_MAX_VALUE_LEN) {
                free(b);
                return say(CLI_FAIL, "%s: %s (standard input holds more than %u bytes)", what,
                           tome_strerror(TOME_TOOBIG), TOME_MAX_VALUE_LEN);
            }
            size_t ncap = cap * 2;
            if (ncap > (size_t)TOME_MAX_VALUE_LEN + 1) ncap = (size_t)TOME_MAX_VALUE_LEN + 1;
            uint8_t *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                return say(CLI_FAIL, "%s: out of memory reading standard input", what);
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(0, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(b);
            return say(CLI_FAIL, "%s: reading standard input: %s", what, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    (void)c;
    out->p = b;
    out->n = n;
    out->owned = b;
    return 0;
}

static int body_put(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16];
    int rc = tome_insert(txn, (uint8_t)d->slot, d->key.p, d->key.n, d->val.p, d->val.n);
    if (rc) return fail(c->db, rc, "put %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    return 0;
}

static int cmd_put(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    struct kvdata d = {.slot = p->o.slot};
    int ec = arg_bytes(c, &p->o, &p->pos[0], "put: KEY", &d.key);
    if (ec) return ec;
    if (p->npos == 2 && !is_name(&p->pos[1], "-")) {
        ec = arg_bytes(c, &p->o, &p->pos[1], "put: VALUE", &d.val);
    } else if (c->shell) {
        ec = usage_err(c, "put: in the shell the VALUE is an argument");
    } else {
        ec = read_stdin(c, "put", &d.val);
    }
    if (!ec) ec = with_txn(c, "put", body_put, &d);
    bytes_free(&d.key);
    bytes_free(&d.val);
    return ec;
}

static int print_value(struct ctx *c, const struct kvdata *d, const void *v, size_t n) {
    if (c->shell && !d->raw) {
        put_escaped(stdout, v, n);
        fputc('\n', stdout);
    } else {
        if (n && fwrite(v, 1, n, stdout) != n) return say(CLI_FAIL, "writing the value: %s", strerror(errno));
        if (c->shell) fputc('\n', stdout);
    }
    return 0;
}

static int body_get(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16];
    const void *v;
    size_t n;
    int rc = tome_get(txn, (uint8_t)d->slot, d->key.p, d->key.n, &v, &n);
    if (rc) return fail(c->db, rc, "get %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    return print_value(c, d, v, n);
}

/* get --seq N below the history horizon: the newest version at or before N
 * among those a merge kept. A merge keeps, for each key, a run of its newest
 * versions (the history options keep a longer run), so that version is the
 * value as of N whenever one at or before N is kept. */
static int body_get_asof(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16];
    const tome_version *v;
    size_t n;
    int rc = tome_versions(txn, (uint8_t)d->slot, d->key.p, d->key.n, &v, &n);
    if (rc) return fail(c->db, rc, "get --seq %" PRIu64 " %s%s", d->seq, show(kb, d->key.p, d->key.n),
                        slot_note(sb, d->slot));
    const tome_version *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i].committed && v[i].seq <= d->seq) best = &v[i];
    if (!best)
        return say(CLI_NOTFOUND, "get --seq %" PRIu64 " %s%s: %s (no version at or before that commit is held)",
                   d->seq, show(kb, d->key.p, d->key.n), slot_note(sb, d->slot),
                   tome_strerror(TOME_NOTFOUND));
    if (best->removed)
        return say(CLI_NOTFOUND, "get --seq %" PRIu64 " %s%s: %s (removed at seq %" PRIu64 ")", d->seq,
                   show(kb, d->key.p, d->key.n), slot_note(sb, d->slot),
                   tome_strerror(TOME_NOTFOUND), best->seq);
    const void *val;
    size_t vn;
    rc = tome_get_version(txn, (uint8_t)d->slot, d->key.p, d->key.n, best->seq, &val, &vn);
    if (rc) return fail(c->db, rc, "get --seq %" PRIu64 " %s%s", d->seq, show(kb, d->key.p, d->key.n),
                        slot_note(sb, d->slot));
    return print_value(c, d, val, vn);
}

static int get_at(struct ctx *c, struct kvdata *d) {
    char kb[128], sb[16];
    tome_txn *t;
    int rc = tome_begin_at(c->db, d->seq, &t);
    if (rc == TOME_NOTFOUND) return with_txn(c, "get", body_get_asof, d);
    if (rc) return fail(c->db, rc, "get --seq %" PRIu64, d->seq);
    const void *v;
    size_t n;
    rc = tome_get(t, (uint8_t)d->slot, d->key.p, d->key.n, &v, &n);
    int ec;
    if (rc) ec = fail(c->db, rc, "get --seq %" PRIu64 " %s%s", d->seq, show(kb, d->key.p, d->key.n),
                      slot_note(sb, d->slot));
    else ec = print_value(c, d, v, n);
    tome_abort(t);
    return ec;
}

static int cmd_get(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    struct kvdata d = {.slot = p->o.slot, .raw = p->o.raw, .seq = p->o.seq};
    int ec = arg_bytes(c, &p->o, &p->pos[0], "get: KEY", &d.key);
    if (ec) return ec;
    if (p->o.have_seq) ec = get_at(c, &d);
    else ec = with_txn(c, "get", body_get, &d);
    bytes_free(&d.key);
    return ec;
}

static int body_rm(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16];
    const tome_version *v;
    size_t n;
    int present;
    int rc = key_state(c, txn, d->slot, &d->key, &v, &n, &present);
    if (!rc && !present) rc = TOME_NOTFOUND;
    if (!rc) rc = tome_remove(txn, (uint8_t)d->slot, d->key.p, d->key.n);
    if (rc) return fail(c->db, rc, "rm %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    return 0;
}

static int cmd_rm(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    struct kvdata d = {.slot = p->o.slot};
    int ec = arg_bytes(c, &p->o, &p->pos[0], "rm: KEY", &d.key);
    if (!ec) ec = with_txn(c, "rm", body_rm, &d);
    bytes_free(&d.key);
    return ec;
}

static int body_undelete(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16];
    const tome_version *v;
    size_t n;
    int present;
    const void *val;
    size_t vn;
    int rc = key_state(c, txn, d->slot, &d->key, &v, &n, &present);
    if (!rc && present)
        return say(CLI_FAIL, "undelete %s%s: the key is present (nothing to restore)",
                   show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    if (!rc) rc = tome_get_unremoved(txn, (uint8_t)d->slot, d->key.p, d->key.n, &val, &vn);
    if (rc == TOME_NOTFOUND)
        return say(CLI_NOTFOUND, "undelete %s%s: %s (not in the trash)", show(kb, d->key.p, d->key.n),
                   slot_note(sb, d->slot), tome_strerror(TOME_NOTFOUND));
    if (!rc) rc = tome_insert(txn, (uint8_t)d->slot, d->key.p, d->key.n, val, vn);
    if (rc)
        return fail(c->db, rc, "undelete %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    return 0;
}

static int cmd_undelete(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    struct kvdata d = {.slot = p->o.slot};
    int ec = arg_bytes(c, &p->o, &p->pos[0], "undelete: KEY", &d.key);
    if (!ec) ec = with_txn(c, "undelete", body_undelete, &d);
    bytes_free(&d.key);
    return ec;
}

/* ------------------------------------------------------------------------ */
/* keys, versions                                                             */
/* ------------------------------------------------------------------------ */

static int body_keys(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16];
    tome_iter *it;
    int rc = tome_iter_open(txn, (uint8_t)d->slot, d->key.p, d->key.n, &it);
    if (rc) return fail(c->db, rc, "keys %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    const void *k;
    size_t kn;
    while ((rc = tome_iter_next(it, &k, &kn)) == TOME_OK) {
        if (d->raw) fwrite(k, 1, kn, stdout);
        else put_escaped(stdout, k, kn);
        fputc('\n', stdout);
    }
    tome_iter_close(it);
    if (rc != TOME_NOTFOUND)
        return fail(c->db, rc, "keys %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    return 0;
}

static int cmd_keys(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    struct kvdata d = {.slot = p->o.slot, .raw = p->o.raw};
    int ec = 0;
    if (p->npos == 1) ec = arg_bytes(c, &p->o, &p->pos[0], "keys: PREFIX", &d.key);
    else d.key.p = (const uint8_t *)"";
    if (!ec) ec = with_txn(c, "keys", body_keys, &d);
    bytes_free(&d.key);
    return ec;
}

static int body_versions(struct ctx *c, tome_txn *txn, void *data) {
    struct kvdata *d = data;
    char kb[128], sb[16], tb[64], lb[32];
    const tome_version *v;
    size_t n;
    int rc = tome_versions(txn, (uint8_t)d->slot, d->key.p, d->key.n, &v, &n);
    if (!rc && n == 0) rc = TOME_NOTFOUND;
    if (rc) return fail(c->db, rc, "versions %s%s", show(kb, d->key.p, d->key.n), slot_note(sb, d->slot));
    for (size_t i = 0; i < n; i++) {
        char seqb[32];
        if (v[i].committed) snprintf(seqb, sizeof seqb, "%" PRIu64, v[i].seq);
        else snprintf(seqb, sizeof seqb, "pending");
        fmt_time(tb, sizeof tb, v[i].timestamp);
        if (v[i].removed) {
            snprintf(lb, sizeof lb, "-");
        } else {
            const void *val;
            size_t vn;
            rc = tome_get_version(txn, (uint8_t)d->slot, d->key.p, d->key.n, v[i].seq, &val, &vn);
            if (rc == TOME_OK) snprintf(lb, sizeof lb, "%zu", vn);
            else if (rc == TOME_NOTFOUND) snprintf(lb, sizeof lb, "?");
            else return fail(c->db, rc, "versions %s%s: reading seq %" PRIu64,
                             show(kb, d->key.p, d->key.n), slot_note(sb, d->slot), v[i].seq);
        }
        printf("%s  %s  %s  %s\n", seqb, tb, v[i].removed ? "removed" : "put", lb);
    }
    return 0;
}

static int cmd_versions(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    struct kvdata d = {.slot = p->o.slot};
    int ec = arg_bytes(c, &p->o, &p->pos[0], "versions: KEY", &d.key);
    if (!ec) ec = with_txn(c, "versions", body_versions, &d);
    bytes_free(&d.key);
    return ec;
}

/* ------------------------------------------------------------------------ */
/* merge, check, stats                                                        */
/* ------------------------------------------------------------------------ */

static int cmd_merge(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    tome_stats a, b;
    int rc = tome_stats_get(c->db, &a);
    if (rc) return fail(c->db, rc, "merge: stats");
    rc = tome_merge(c->db);
    if (rc) return fail(c->db, rc, "merge");
    rc = tome_stats_get(c->db, &b);
    if (rc) return fail(c->db, rc, "merge: stats");
    printf("merged: versions %" PRIu64 " -> %" PRIu64 ", keys held %" PRIu64 " -> %" PRIu64
           ", bytes %" PRIu64 " -> %" PRIu64 ", segments %" PRIu64 " -> %" PRIu64 "\n",
           a.versions, b.versions, a.keys_total, b.keys_total, a.total_bytes, b.total_bytes,
           a.segments, b.segments);
    return 0;
}

static int do_check(const char *path) {
    char *report = NULL;
    int rc = tome_check(path, &report);
    if (report) {
        size_t n = strlen(report);
        fputs(report, stdout);
        if (n && report[n - 1] != '\n') fputc('\n', stdout);
        tome_free(report);
    }
    if (rc) return fail(NULL, rc, "check %s", path);
    return 0;
}

static int open_store(struct ctx *c, int must_exist);

static int cmd_check(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    if (!c->shell) return do_check(c->path);
    /* The shell holds the store open: close it, check, open it again. */
    if (c->txn) return say(CLI_FAIL, "check: not inside a transaction (commit or abort first)");
    int rc = tome_close(c->db);
    c->db = NULL;
    if (rc) fail(NULL, rc, "check: closing %s", c->path);
    int ec = do_check(c->path);
    if (open_store(c, 1)) {
        c->dead = 1;
        return CLI_FAIL;
    }
    return ec;
}

static int cmd_stats(struct ctx *c, const struct cmd *cmd, struct parsed *p) {
    tome_stats s;
    char tb[64];
    int rc = tome_stats_get(c->db, &s);
    if (rc) return fail(c->db, rc, "stats");
    if (s.last_seq) fmt_time(tb, sizeof tb, s.last_timestamp);
    else snprintf(tb, sizeof tb, "-");
    printf("keys: %" PRIu64 "\n"
           "keys_total: %" PRIu64 "\n"
           "versions: %" PRIu64 "\n"
           "live_bytes: %" PRIu64 "\n"
           "total_bytes: %" PRIu64 "\n"
           "segments: %" PRIu64 "\n"
           "last_seq: %" PRIu64 "\n"
           "last_time: %s\n"
           "horizon: %" PRIu64 "\n",
           s.keys, s.keys_total, s.versions, s.live_bytes, s.total_bytes, s.segments, s.last_seq,
           tb, s.horizon);
    return 0;
}

static const struct cmd commands[] = {
    {"put", 1, 2, OPEN_CREATE, cmd_put, "KEY [VALUE]"},
    {"get", 1, 1, OPEN_EXISTING, cmd_get, "[--seq N] KEY"},
    {"rm", 1, 1, OPEN_CREATE, cmd_rm, "KEY"},
    {"undelete", 1, 1, OPEN_CREATE, cmd_undelete, "KEY"},
    {"keys", 0, 1, OPEN_EXISTING, cmd_keys, "[PREFIX]"},
    {"versions", 1, 1, OPEN_EXISTING, cmd_versions, "KEY"},
    {"merge", 0, 0, OPEN_EXISTING, cmd_merge, ""},
    {"check", 0, 0, OPEN_NONE, cmd_check, ""},
    {"stats", 0, 0, OPEN_EXISTING, cmd_stats, ""},
};

static const struct cmd *find_cmd(const struct arg *a) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (is_name(a, commands[i].name)) return &commands[i];
    return NULL;
}

static int is_shell_word(const struct arg *a) {
    return is_name(a, "begin") || is_name(a, "commit") || is_name(a, "abort") ||
           is_name(a, "help") || is_name(a, "quit") || is_name(a, ".quit");
}

/* Runs `kv ARGS...`: the arguments (NUL-terminated) go to cli_kv as they are. */
static int run_kv(struct ctx *c, const struct arg *args, int nargs) {
    char *argv[MAX_WORDS + 1];
    if (nargs > MAX_WORDS) return usage_err(c, "kv: too many arguments");
    for (int i = 0; i < nargs; i++) {
        if (strlen(args[i].s) != args[i].n) return usage_err(c, "kv: an argument holds a NUL byte");
        argv[i] = (char *)(uintptr_t)args[i].s;
    }
    argv[nargs] = NULL;
    /* In the shell standard input is the command stream (kv sees
     * /dev/null), so a value to write must be an argument. */
    if (c->shell && nargs >= 2 && !strcmp(argv[1], "write") &&
        (nargs < 6 || !strcmp(argv[5], "-")))
        return usage_err(c, "kv write: in the shell the VALUE is an argument");
    fflush(stdout);
    int ec = cli_kv(c->db, nargs, argv, stdout, stderr);
    fflush(stdout);
    return ec;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                    */
/* ------------------------------------------------------------------------ */

static int open_store(struct ctx *c, int must_exist) {
    tome_options o = c->topts;
    if (must_exist) o.must_exist = 1;
    int rc = tome_open(c->path, &o, &c->db);
    if (rc == TOME_NOTFOUND && must_exist)
        return say(CLI_FAIL, "open %s: no store there (%s)", c->path, tome_strerror(rc));
    if (rc) {
        fail(NULL, rc, "open %s", c->path);
        return CLI_FAIL;
    }
    return 0;
}

static int close_store(struct ctx *c) {
    if (!c->db) return 0;
    int rc = tome_close(c->db);
    c->db = NULL;
    if (rc) {
        fail(NULL, rc, "close %s", c->path);
        return CLI_FAIL;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The shell                                                                  */
/* ------------------------------------------------------------------------ */

/* One \ escape at s[*i] (the backslash); writes the byte to buf[*w]. */
static int unescape(const char *s, size_t n, size_t *i, char *buf, size_t *w) {
    (*i)++;
    if (*i >= n) return -1;
    char ch = s[*i];
    switch (ch) {
    case 'n': ch = '\n'; break;
    case 't': ch = '\t'; break;
    case 'r': ch = '\r'; break;
    case '0': ch = 0; break;
    case 'x': {
        if (n - *i < 3) return -2;
        int h = hexval((unsigned char)s[*i + 1]), l = hexval((unsigned char)s[*i + 2]);
        if (h < 0 || l < 0) return -2;
        ch = (char)(h << 4 | l);
        *i += 2;
        break;
    }
    default: break;
    }
    buf[(*w)++] = ch;
    (*i)++;
    return 0;
}

/* Splits a line into words (see usage()). buf must hold 2 * n + 1 bytes;
 * the words point into it, each followed by a NUL. Returns the number of
 * words, or -1 with *err set. */
static int tokenize(const char *s, size_t n, char *buf, struct arg *words, int max,
                    const char **err) {
    size_t i = 0, w = 0;
    int nw = 0;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
        if (i >= n || s[i] == '#') break;
        if (nw >= max) {
            *err = "too many words on the line";
            return -1;
        }
        size_t start = w;
        while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            int r = 0;
            if (s[i] == '"') {
                i++;
                while (i < n && s[i] != '"') {
                    if (s[i] == '\\') {
                        if ((r = unescape(s, n, &i, buf, &w))) break;
                    } else {
                        buf[w++] = s[i++];
                    }
                }
                if (!r && i >= n) {
                    *err = "unterminated \"";
                    return -1;
                }
                if (!r) i++;
            } else if (s[i] == '\'') {
                i++;
                while (i < n && s[i] != '\'') buf[w++] = s[i++];
                if (i >= n) {
                    *err = "unterminated '";
                    return -1;
                }
                i++;
            } else if (s[i] == '\\') {
                r = unescape(s, n, &i, buf, &w);
            } else {
                buf[w++] = s[i++];
            }
            if (r == -1) {
                *err = "a \\ at the end of the line";
                return -1;
            }
            if (r == -2) {
                *err = "\\x wants two hex digits";
                return -1;
            }
        }
        words[nw].s = buf + start;
        words[nw].n = w - start;
        buf[w++] = 0;
        nw++;
    }
    return nw;
}

/* Looks up the command words[0] and parses its arguments into *p, with
 * base as the default options; topts is the open options in one-shot mode,
 * NULL in the shell. Returns 0 or an exit code after a usage message. */
static int prepare_command(struct ctx *c, const struct opts *base, const struct arg *words, int nw,
                           tome_options *topts, const struct cmd **cmd_out, struct parsed *p) {
    const struct cmd *cmd = find_cmd(&words[0]);
    if (!cmd) {
        if (!c->shell && is_shell_word(&words[0]))
            return usage_err(c, "%s: only in the shell (run tome PATH without a command)", words[0].s);
        char kb[128];
        return usage_err(c, "unknown command %s", show(kb, words[0].s, words[0].n));
    }
    p->o = *base;
    *cmd_out = cmd;
    return parse_args(c, cmd, words + 1, nw - 1, p, topts);
}

static int shell_line(struct ctx *c, const struct opts *base, const struct arg *w, int nw) {
    if (is_name(&w[0], "help")) {
        shell_help(stdout);
        return 0;
    }
    if (is_name(&w[0], "begin") || is_name(&w[0], "commit") || is_name(&w[0], "abort")) {
        if (nw > 1) return usage_err(c, "%s takes no arguments", w[0].s);
        if (is_name(&w[0], "begin")) {
            if (c->txn) return say(CLI_FAIL, "begin: a transaction is already open");
            int rc = tome_begin(c->db, &c->txn);
            if (rc) {
                c->txn = NULL;
                return fail(c->db, rc, "begin");
            }
            return 0;
        }
        if (!c->txn) return say(CLI_FAIL, "%s: no transaction is open", w[0].s);
        tome_txn *t = c->txn;
        c->txn = NULL;
        if (is_name(&w[0], "abort")) {
            tome_abort(t);
            return 0;
        }
        int rc = tome_commit(t);
        if (rc) return fail(c->db, rc, "commit (the transaction is dropped)");
        return 0;
    }
    if (is_name(&w[0], "kv")) return run_kv(c, w, nw);
    const struct cmd *cmd;
    struct parsed p;
    int ec = prepare_command(c, base, w, nw, NULL, &cmd, &p);
    return ec ? ec : cmd->fn(c, cmd, &p);
}

/* The shell: reads commands from `in` until EOF or .quit. Returns 0 when
 * every command succeeded, else the exit code of the last that failed. */
static int shell(struct ctx *c, const struct opts *base, FILE *in, int tty) {
    char *line = NULL, *buf = NULL;
    size_t cap = 0, bufcap = 0;
    int status = 0;
    c->shell = 1;
    for (;;) {
        if (tty) {
            fputs(c->txn ? "tome*> " : "tome> ", stdout);
            fflush(stdout);
        }
        ssize_t len = getline(&line, &cap, in);
        if (len < 0) {
            if (tty) fputc('\n', stdout);
            break;
        }
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (2 * n + 1 > bufcap) {
            free(buf);
            bufcap = 2 * n + 1;
            buf = malloc(bufcap);
            if (!buf) {
                status = say(CLI_FAIL, "out of memory");
                bufcap = 0;
                break;
            }
        }
        struct arg words[MAX_WORDS];
        const char *err = NULL;
        int nw = tokenize(line, n, buf, words, MAX_WORDS, &err);
        int ec;
        if (nw < 0) ec = usage_err(c, "%s", err);
        else if (nw == 0) continue;
        else if (is_name(&words[0], ".quit") || is_name(&words[0], "quit")) break;
        else ec = shell_line(c, base, words, nw);
        fflush(stdout);
        if (ec) status = ec;
        if (c->dead) break;
    }
    if (c->txn) {
        tome_abort(c->txn);
        c->txn = NULL;
        status = say(CLI_FAIL, "end of input inside a transaction: it was aborted");
    }
    free(line);
    free(buf);
    return status;
}

/* Runs the shell on the open store. Standard input is moved aside first
 * (the shell reads a copy of it and fd 0 becomes /dev/null), so that
 * nothing a command runs, kv included, can eat the shell's input. */
static int run_shell(struct ctx *c, const struct opts *base) {
    int tty = isatty(0);
    int fd = dup(0);
    FILE *in = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!in) {
        if (fd >= 0) close(fd);
        return say(CLI_FAIL, "reading standard input: %s", strerror(errno));
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
        dup2(nul, 0);
        close(nul);
    }
    int status = shell(c, base, in, tty);
    fclose(in);
    return status;
}

/* ------------------------------------------------------------------------ */
/* main                                                                       */
/* ------------------------------------------------------------------------ */

/* Parses leading options of argv from *i on; returns 0, or an exit code
 * (with *done set) for --help, --version and usage errors. */
static int leading_opts(const struct ctx *c, struct arg *args, int nargs, int *i, struct opts *o,
                        tome_options *topts, int *done) {
    while (*i < nargs) {
        if (is_name(&args[*i], "--")) return 0;
        int r = parse_opt(c, args, nargs, i, o, topts);
        if (r == 0) return 0;
        if (r == -1) {
            usage(stdout);
            *done = 1;
            return 0;
        }
        if (r == -2) {
            printf("tome %s\n", TOME_VERSION_STRING);
            *done = 1;
            return 0;
        }
        if (r > 1) {
            *done = 1;
            return CLI_USAGE;
        }
        (*i)++;
    }
    return 0;
}

static int finish(int ec) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tome: writing to standard output: %s\n", strerror(errno));
        if (!ec) ec = CLI_FAIL;
    }
    return ec;
}

int main(int argc, char **argv) {
    struct ctx c = {0};
    struct opts base = {0};
    tome_options_init(&c.topts);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    int nargs = argc - 1;
    struct arg *args = calloc((size_t)nargs, sizeof *args);
    if (!args) return say(CLI_FAIL, "out of memory");
    for (int k = 0; k < nargs; k++) {
        args[k].s = argv[k + 1];
        args[k].n = strlen(argv[k + 1]);
    }
    int i = 0, done = 0;
    int ec = leading_opts(&c, args, nargs, &i, &base, &c.topts, &done);
    if (done) goto out;
    if (i < nargs && is_name(&args[i], "--")) i++;
    if (i >= nargs) {
        ec = usage_err(&c, "missing PATH");
        goto out;
    }
    c.path = args[i++].s;
    ec = leading_opts(&c, args, nargs, &i, &base, &c.topts, &done);
    if (done) goto out;
    if (i < nargs && is_name(&args[i], "--")) i++;

    if (i >= nargs) { /* the shell */
        ec = open_store(&c, 0);
        if (ec) goto out;
        ec = run_shell(&c, &base);
        int cec = close_store(&c);
        if (!ec) ec = cec;
        goto out;
    }
    if (is_name(&args[i], "kv")) {
        ec = open_store(&c, 0);
        if (ec) goto out;
        ec = run_kv(&c, args + i, nargs - i);
        int cec = close_store(&c);
        if (!ec) ec = cec;
        goto out;
    }
    /* A core command: parse everything first (options after the command
     * may change how the store is opened), then open, run, close. */
    const struct cmd *cmd;
    struct parsed p;
    ec = prepare_command(&c, &base, args + i, nargs - i, &c.topts, &cmd, &p);
    if (ec) goto out;
    if (cmd->open != OPEN_NONE) {
        ec = open_store(&c, cmd->open == OPEN_EXISTING);
        if (ec) goto out;
    }
    ec = cmd->fn(&c, cmd, &p);
    int cec = close_store(&c);
    if (!ec) ec = cec;
out:
    free(args);
    return finish(ec);
}
