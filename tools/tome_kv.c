/*
 * tome_kv.c -- the `kv` command family of the tome tool: the namespaced
 * store (LDK's KVStore contract) from the shell.
 *
 *   tome PATH kv read PRIMARY SECONDARY KEY          value to stdout, raw
 *   tome PATH kv write PRIMARY SECONDARY KEY [VALUE] VALUE, or stdin if
 *                                                    absent or "-"
 *   tome PATH kv rm [--lazy] PRIMARY SECONDARY KEY
 *   tome PATH kv ls PRIMARY SECONDARY                keys, one per line
 *   tome PATH kv ls-all                              primary/secondary/key
 *   tome PATH kv ls-page PRIMARY SECONDARY [--size N] [--token TOKEN]
 *                                                    newest first; a last
 *                                                    line "#next TOKEN"
 *                                                    when more remain
 *   tome PATH kv import-fs DIR                       from a FilesystemStore
 *   tome PATH kv export-fs [--v2] DIR                to a FilesystemStore
 *
 * An empty namespace is given as "" on the command line. Exit codes as
 * tools/cli.h says: 0 success, 1 not found, 2 usage error, 3 other failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_kv_usage(FILE *f) {
    fprintf(f,
            "  tome PATH kv read PRIMARY SECONDARY KEY     print the value (raw bytes)\n"
            "  tome PATH kv write PRIMARY SECONDARY KEY [VALUE|-]\n"
            "                                              set the value (stdin without VALUE or with -)\n"
            "  tome PATH kv rm [--lazy] PRIMARY SECONDARY KEY\n"
            "                                              remove the key (ok if absent)\n"
            "  tome PATH kv ls PRIMARY SECONDARY           keys under the namespace pair, sorted\n"
            "  tome PATH kv ls-all                         every key as primary/secondary/key\n"
            "  tome PATH kv ls-page PRIMARY SECONDARY [--size N] [--token TOKEN]\n"
            "                                              one page, newest first; then \"#next TOKEN\"\n"
            "  tome PATH kv import-fs DIR                  import an LDK FilesystemStore (v1 or v2)\n"
            "  tome PATH kv export-fs [--v2] DIR           export to an LDK FilesystemStore layout\n"
            "  (an empty namespace is \"\"; names are [A-Za-z0-9_-], at most 120 characters)\n");
}

static int kv_fail(tome_db *db, FILE *err, const char *what, int rc) {
    const char *detail = tome_errmsg(db);
    if (rc == TOME_NOTFOUND && !strcmp(what, "read"))   /* absence has no detail */
        fprintf(err, "tome: kv %s: %s\n", what, tome_strerror(rc));
    else
        fprintf(err, "tome: kv %s: %s (%s)\n", what, tome_strerror(rc), detail);
    return rc == TOME_NOTFOUND ? 1 : rc == TOME_INVALID ? 2 : 3;
}

static int kv_usage_error(FILE *err, const char *msg) {
    fprintf(err, "tome: kv: %s\n", msg);
    cli_kv_usage(err);
    return 2;
}

/* Reads all of f into a malloc'd buffer. */
static int kv_slurp(FILE *f, unsigned char **out, size_t *len_out) {
    size_t cap = 65536, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) return -1;
    for (;;) {
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len_out = len;
    return 0;
}

static int kv_cmd_read(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    if (argc != 4) return kv_usage_error(err, "read needs PRIMARY SECONDARY KEY");
    void *buf = NULL;
    size_t len = 0;
    int rc = tome_kv_read(db, argv[1], argv[2], argv[3], &buf, &len);
    if (rc) return kv_fail(db, err, "read", rc);
    size_t w = len ? fwrite(buf, 1, len, out) : 0;
    tome_free(buf);
    if (w != len || fflush(out) != 0) {
        fprintf(err, "tome: kv read: writing the value failed: %s\n", strerror(errno));
        return 3;
    }
    return 0;
}

static int kv_cmd_write(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    if (argc != 4 && argc != 5) return kv_usage_error(err, "write needs PRIMARY SECONDARY KEY [VALUE|-]");
    int rc;
    if (argc == 5 && strcmp(argv[4], "-") != 0) {
        rc = tome_kv_write(db, argv[1], argv[2], argv[3], argv[4], strlen(argv[4]));
    } else {
        unsigned char *buf = NULL;
        size_t len = 0;
        if (kv_slurp(stdin, &buf, &len) != 0) {
            fprintf(err, "tome: kv write: reading stdin failed\n");
            return 3;
        }
        rc = tome_kv_write(db, argv[1], argv[2], argv[3], buf, len);
        free(buf);
    }
    (void)out;
    return rc ? kv_fail(db, err, "write", rc) : 0;
}

static int kv_cmd_rm(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    int lazy = 0, i = 1;
    if (i < argc && !strcmp(argv[i], "--lazy")) {
        lazy = 1;
        i++;
    }
    if (argc - i != 3) return kv_usage_error(err, "rm needs [--lazy] PRIMARY SECONDARY KEY");
    int rc = tome_kv_remove(db, argv[i], argv[i + 1], argv[i + 2], lazy);
    (void)out;
    return rc ? kv_fail(db, err, "rm", rc) : 0;
}

static int kv_cmd_ls(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    if (argc != 3) return kv_usage_error(err, "ls needs PRIMARY SECONDARY");
    char **keys = NULL;
    size_t n = 0;
    int rc = tome_kv_list(db, argv[1], argv[2], &keys, &n);
    if (rc) return kv_fail(db, err, "ls", rc);
    for (size_t i = 0; i < n; i++) fprintf(out, "%s\n", keys[i]);
    tome_free(keys);
    return 0;
}

static int kv_cmd_ls_all(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    (void)argv;
    if (argc != 1) return kv_usage_error(err, "ls-all takes no arguments");
    tome_kv_key *keys = NULL;
    size_t n = 0;
    int rc = tome_kv_list_all(db, &keys, &n);
    if (rc) return kv_fail(db, err, "ls-all", rc);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s/%s/%s\n", keys[i].primary_ns, keys[i].secondary_ns, keys[i].key);
    tome_free(keys);
    return 0;
}

static int kv_cmd_ls_page(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    const char *token = NULL, *ns[2] = {NULL, NULL};
    size_t size = 0;
    int nns = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--token") && i + 1 < argc) {
            token = argv[++i];
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v == 0)
                return kv_usage_error(err, "--size needs a positive number");
            size = (size_t)v;
        } else if (nns < 2) {
            ns[nns++] = argv[i];
        } else {
            return kv_usage_error(err, "ls-page: too many arguments");
        }
    }
    if (nns != 2) return kv_usage_error(err, "ls-page needs PRIMARY SECONDARY");
    char **keys = NULL, *next = NULL;
    size_t n = 0;
    int rc = tome_kv_list_page(db, ns[0], ns[1], token, size, &keys, &n, &next);
    if (rc) return kv_fail(db, err, "ls-page", rc);
    for (size_t i = 0; i < n; i++) fprintf(out, "%s\n", keys[i]);
    if (next) fprintf(out, "#next %s\n", next);
    tome_free(keys);
    tome_free(next);
    return 0;
}

static int kv_cmd_import(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    if (argc != 2) return kv_usage_error(err, "import-fs needs DIR");
    tome_kv_fs_stats st;
    int rc = tome_kv_import_fs(db, argv[1], &st);
    if (rc) return kv_fail(db, err, "import-fs", rc);
    fprintf(out, "imported %llu keys, %llu bytes; skipped %llu entries\n",
            (unsigned long long)st.keys, (unsigned long long)st.bytes,
            (unsigned long long)st.skipped);
    return 0;
}

static int kv_cmd_export(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    unsigned flags = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--v2")) flags |= TOME_KV_FS_V2;
        else if (!dir) dir = argv[i];
        else return kv_usage_error(err, "export-fs: too many arguments");
    }
    if (!dir) return kv_usage_error(err, "export-fs needs DIR");
    tome_kv_fs_stats st;
    int rc = tome_kv_export_fs(db, dir, flags, &st);
    if (rc) return kv_fail(db, err, "export-fs", rc);
    fprintf(out, "exported %llu keys, %llu bytes (%s layout)\n", (unsigned long long)st.keys,
            (unsigned long long)st.bytes, flags ? "v2" : "v1");
    return 0;
}

int cli_kv(tome_db *db, int argc, char **argv, FILE *out, FILE *err) {
    if (argc < 2) return kv_usage_error(err, "missing subcommand");
    static const struct {
        const char *name;
        int (*fn)(tome_db *, int, char **, FILE *, FILE *);
    } cmds[] = {
        {"read", kv_cmd_read},       {"write", kv_cmd_write},
        {"rm", kv_cmd_rm},           {"ls", kv_cmd_ls},
        {"ls-all", kv_cmd_ls_all},   {"ls-page", kv_cmd_ls_page},
        {"import-fs", kv_cmd_import}, {"export-fs", kv_cmd_export},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(db, argc - 1, argv + 1, out, err);
    fprintf(err, "tome: kv: unknown subcommand '%s' (tome --help lists them)\n", argv[1]);
    return 2;
}
