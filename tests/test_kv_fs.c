/*
 * test_kv_fs.c -- migration between the namespaced store and LDK's
 * FilesystemStore, and the `tome PATH kv ...` commands.
 *
 * Import: a v1 tree (DIR/key, DIR/primary/key, DIR/primary/secondary/key)
 * with the leftovers of a crashed FilesystemStore (*.tmp, *.trash), names
 * outside the alphabet and a directory too deep, all skipped and counted;
 * a v2 tree with "[empty]" directories; the creation order following the
 * files' mtimes. Export: the v1 and v2 layouts file by file, no temporary
 * file left, the v1 name clash refused; the round trip store -> files ->
 * store compared key by key, creation order included. The CLI: tools/
 * tome_kv.c is compiled into this test and driven through cli_kv().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/tome.h"
#include "tt.h"

/* the command family under test, compiled in */
#include "../tools/tome_kv.c"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static tome_db *open_db(const char *path) {
    tome_db *db = NULL;
    int rc = tome_open(path, NULL, &db);
    if (rc) fprintf(stderr, "  open %s: %s: %s\n", path, tome_strerror(rc), tome_errmsg(NULL));
    return db;
}

/* mkdir -p of dir/rel's parent directories, then writes the file with
 * mtime sec seconds after a fixed base (0: leave the mtime) */
static int put_file(const char *dir, const char *rel, const void *data, size_t len, int sec) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    if (len && write(fd, data, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    if (sec) {
        struct timespec ts[2] = {{1700000000 + sec, 0}, {1700000000 + sec, 0}};
        if (futimens(fd, ts) != 0) {
            close(fd);
            return -1;
        }
    }
    return close(fd);
}

static int put_str(const char *dir, const char *rel, const char *s, int sec) {
    return put_file(dir, rel, s, strlen(s), sec);
}

/* true when dir/rel holds exactly want[0..wl) */
static bool file_is(const char *dir, const char *rel, const void *want, size_t wl) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  %s: missing\n", path);
        return false;
    }
    uint8_t *buf = malloc(wl + 1);
    size_t got = fread(buf, 1, wl + 1, f);
    fclose(f);
    bool ok = got == wl && (wl == 0 || memcmp(buf, want, wl) == 0);
    if (!ok) fprintf(stderr, "  %s: %zu bytes, want %zu\n", path, got, wl);
    free(buf);
    return ok;
}

/* number of files under dir (recursively) whose names end in suffix, and
 * of all regular files */
static void count_files(const char *dir, const char *suffix, int *with_suffix, int *all) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            count_files(path, suffix, with_suffix, all);
        } else {
            (*all)++;
            size_t l = strlen(de->d_name), m = strlen(suffix);
            if (l >= m && !strcmp(de->d_name + l - m, suffix)) (*with_suffix)++;
        }
    }
    closedir(d);
}

static bool kv_is(tome_db *db, const char *p, const char *s, const char *k, const void *want,
                  size_t wl) {
    void *buf = NULL;
    size_t len = 0;
    int rc = tome_kv_read(db, p, s, k, &buf, &len);
    bool ok = want ? rc == TOME_OK && len == wl && (wl == 0 || memcmp(buf, want, wl) == 0)
                   : rc == TOME_NOTFOUND;
    if (!ok) fprintf(stderr, "  %s/%s/%s: rc %d len %zu, want %zu\n", p, s, k, rc, len, wl);
    tome_free(buf);
    return ok;
}

static bool kv_is_str(tome_db *db, const char *p, const char *s, const char *k, const char *want) {
    return kv_is(db, p, s, k, want, want ? strlen(want) : 0);
}

/* newest-first names of (p, s), comma-separated, into out */
static void page_order(tome_db *db, const char *p, const char *s, char *out, size_t cap) {
    out[0] = '\0';
    char **keys = NULL, *next = NULL;
    size_t n = 0;
    if (tome_kv_list_page(db, p, s, NULL, 1000, &keys, &n, &next) != TOME_OK) {
        snprintf(out, cap, "(error)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "," : "", keys[i]);
    }
    tome_free(keys);
    tome_free(next);
}

/* true when the two stores hold the same keys with the same values and
 * the same creation order in every namespace */
static bool same_stores(tome_db *a, tome_db *b) {
    tome_kv_key *ka = NULL, *kb = NULL;
    size_t na = 0, nb = 0;
    if (tome_kv_list_all(a, &ka, &na) || tome_kv_list_all(b, &kb, &nb)) return false;
    bool ok = na == nb;
    if (!ok) fprintf(stderr, "  %zu keys against %zu\n", na, nb);
    for (size_t i = 0; ok && i < na; i++) {
        ok = !strcmp(ka[i].primary_ns, kb[i].primary_ns) &&
             !strcmp(ka[i].secondary_ns, kb[i].secondary_ns) && !strcmp(ka[i].key, kb[i].key);
        if (!ok) {
            fprintf(stderr, "  key %zu: %s/%s/%s against %s/%s/%s\n", i, ka[i].primary_ns,
                    ka[i].secondary_ns, ka[i].key, kb[i].primary_ns, kb[i].secondary_ns, kb[i].key);
            break;
        }
        void *va = NULL, *vb = NULL;
        size_t la = 0, lb = 0;
        ok = tome_kv_read(a, ka[i].primary_ns, ka[i].secondary_ns, ka[i].key, &va, &la) == 0 &&
             tome_kv_read(b, kb[i].primary_ns, kb[i].secondary_ns, kb[i].key, &vb, &lb) == 0 &&
             la == lb && (la == 0 || memcmp(va, vb, la) == 0);
        if (!ok) fprintf(stderr, "  value of %s/%s/%s differs\n", ka[i].primary_ns,
                         ka[i].secondary_ns, ka[i].key);
        tome_free(va);
        tome_free(vb);
        if (ok && (i == 0 || strcmp(ka[i].primary_ns, ka[i - 1].primary_ns) ||
                   strcmp(ka[i].secondary_ns, ka[i - 1].secondary_ns))) {
            char oa[4096], ob[4096];
            page_order(a, ka[i].primary_ns, ka[i].secondary_ns, oa, sizeof oa);
            page_order(b, ka[i].primary_ns, ka[i].secondary_ns, ob, sizeof ob);
            ok = !strcmp(oa, ob);
            if (!ok) fprintf(stderr, "  order of %s/%s: %s against %s\n", ka[i].primary_ns,
                             ka[i].secondary_ns, oa, ob);
        }
    }
    tome_free(ka);
    tome_free(kb);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Import                                                                   */
/* ------------------------------------------------------------------------ */

static uint8_t graph[100000];

/* A v1 FilesystemStore tree as LDK leaves it, crash leftovers included. */
static int make_v1_tree(const char *fs) {
    for (size_t i = 0; i < sizeof graph; i++) graph[i] = (uint8_t)(i * 7 + i / 251);
    int e = 0;
    e |= put_str(fs, "manager", "the manager", 1);
    e |= put_file(fs, "network_graph", graph, sizeof graph, 2);
    e |= put_str(fs, "scorer", "", 3);                      /* empty value */
    e |= put_str(fs, "monitors/b_1", "monitor b", 4);
    e |= put_str(fs, "monitors/c_2", "monitor c", 6);
    e |= put_str(fs, "monitors/a_0", "monitor a", 5);
    e |= put_str(fs, "monitor_updates/a_0/1", "update 1", 7);
    e |= put_str(fs, "monitor_updates/a_0/2", "update 2", 8);
    /* leftovers and strangers: skipped */
    e |= put_str(fs, "manager.3.tmp", "half a manager", 9);
    e |= put_str(fs, "monitors/a_0.tmp", "half a monitor", 9);
    e |= put_str(fs, "monitors/c_2.trash", "old monitor", 9);
    e |= put_str(fs, "bad.name", "?", 9);
    e |= put_str(fs, "monitor_updates/a_0/deeper/x", "too deep", 9);
    return e;
}

TT_TEST(kv_import_v1) {
    char fs[700], path[700];
    snprintf(fs, sizeof fs, "%s/fs", tt_tmpdir());
    snprintf(path, sizeof path, "%s/db", tt_tmpdir());
    CHECK_EQ(make_v1_tree(fs), 0);
    tome_db *db = open_db(path);
    CHECK(db);
    CHECK_OK(tome_kv_write(db, "monitors", "", "a_0", "older", 5));   /* overwritten */
    CHECK_OK(tome_kv_write(db, "other", "", "kept", "k", 1));         /* left alone */
    tome_kv_fs_stats st;
    CHECK_OK(tome_kv_import_fs(db, fs, &st));
    CHECK_U64(st.keys, 8);
    CHECK_U64(st.skipped, 5);
    CHECK_U64(st.bytes, 11 + sizeof graph + 0 + 9 * 3 + 8 * 2);
    for (int round = 0; round < 2; round++) {
        CHECK(kv_is_str(db, "", "", "manager", "the manager"));
        CHECK(kv_is(db, "", "", "network_graph", graph, sizeof graph));
        CHECK(kv_is(db, "", "", "scorer", "", 0));
        CHECK(kv_is_str(db, "monitors", "", "a_0", "monitor a"));
        CHECK(kv_is_str(db, "monitors", "", "b_1", "monitor b"));
        CHECK(kv_is_str(db, "monitors", "", "c_2", "monitor c"));
        CHECK(kv_is_str(db, "monitor_updates", "a_0", "1", "update 1"));
        CHECK(kv_is_str(db, "monitor_updates", "a_0", "2", "update 2"));
        CHECK(kv_is_str(db, "other", "", "kept", "k"));
        tome_kv_key *all = NULL;
        size_t n = 0;
        CHECK_OK(tome_kv_list_all(db, &all, &n));
        CHECK_EQ(n, 9);
        for (size_t i = 0; i < n; i++) {
            CHECK(strstr(all[i].key, "tmp") == NULL && strstr(all[i].key, "trash") == NULL);
            CHECK(strcmp(all[i].key, "deeper") != 0 && strcmp(all[i].key, "x") != 0);
        }
        tome_free(all);
        /* creation order: a_0 existed before the import and keeps its place;
         * the new ones follow their mtimes (c_2 newer than b_1) */
        char order[256];
        page_order(db, "monitors", "", order, sizeof order);
        CHECK(!strcmp(order, "c_2,b_1,a_0"));
        page_order(db, "", "", order, sizeof order);
        CHECK(!strcmp(order, "scorer,network_graph,manager"));
        CHECK_OK(tome_close(db));
        CHECK(db = open_db(path));
    }
    /* importing again changes nothing but the values' history */
    CHECK_OK(tome_kv_import_fs(db, fs, &st));
    CHECK_U64(st.keys, 8);
    char order[256];
    page_order(db, "monitors", "", order, sizeof order);
    CHECK(!strcmp(order, "c_2,b_1,a_0"));
    /* a fresh store follows the mtimes completely */
    tome_db *db2 = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db2));
    CHECK_OK(tome_kv_import_fs(db2, fs, NULL));
    page_order(db2, "monitors", "", order, sizeof order);
    CHECK(!strcmp(order, "c_2,a_0,b_1"));
    CHECK_OK(tome_close(db2));
    /* a missing directory */
    char missing[800];
    snprintf(missing, sizeof missing, "%s/nothing", fs);
    CHECK_RC(tome_kv_import_fs(db, missing, &st), TOME_NOTFOUND);
    CHECK_OK(tome_close(db));
}

TT_TEST(kv_import_v2) {
    char fs[700];
    snprintf(fs, sizeof fs, "%s/fs2", tt_tmpdir());
    int e = 0;
    e |= put_str(fs, "[empty]/[empty]/manager", "mgr v2", 3);
    e |= put_str(fs, "[empty]/[empty]/scorer", "scr", 1);
    e |= put_str(fs, "monitors/[empty]/m1", "mon 1", 2);
    e |= put_str(fs, "monitors/[empty]/m2", "mon 2", 2);      /* same mtime as m1 */
    e |= put_str(fs, "monitor_updates/m1/7", "u7", 4);
    e |= put_str(fs, "[empty]/sub/key", "no primary", 5);    /* invalid: skipped */
    e |= put_str(fs, "[empty]/[empty]/x.tmp", "tmp", 5);       /* skipped */
    e |= put_str(fs, "[empty]/stray", "stray", 5);            /* a key in [empty]: skipped */
    e |= put_str(fs, "monitors/[empty]/m3.trash", "old", 5);   /* skipped */
    CHECK_EQ(e, 0);
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    tome_kv_fs_stats st;
    CHECK_OK(tome_kv_import_fs(db, fs, &st));
    CHECK_U64(st.keys, 5);
    CHECK_U64(st.skipped, 4);
    CHECK(kv_is_str(db, "", "", "manager", "mgr v2"));
    CHECK(kv_is_str(db, "", "", "scorer", "scr"));
    CHECK(kv_is_str(db, "monitors", "", "m1", "mon 1"));
    CHECK(kv_is_str(db, "monitors", "", "m2", "mon 2"));
    CHECK(kv_is_str(db, "monitor_updates", "m1", "7", "u7"));
    tome_kv_key *all = NULL;
    size_t n = 0;
    CHECK_OK(tome_kv_list_all(db, &all, &n));
    CHECK_EQ(n, 5);
    tome_free(all);
    /* FilesystemStoreV2 pages equal mtimes by key, descending */
    char order[256];
    page_order(db, "monitors", "", order, sizeof order);
    CHECK(!strcmp(order, "m2,m1"));
    page_order(db, "", "", order, sizeof order);
    CHECK(!strcmp(order, "manager,scorer"));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* Export and the round trip                                                */
/* ------------------------------------------------------------------------ */

TT_TEST(kv_export_roundtrip) {
    char base[700], p1[800], e1[800], e2[800], p3[800], p4[800];
    snprintf(base, sizeof base, "%s", tt_tmpdir());
    snprintf(p1, sizeof p1, "%s/src", base);
    snprintf(e1, sizeof e1, "%s/export_v1", base);
    snprintf(e2, sizeof e2, "%s/export_v2", base);
    snprintf(p3, sizeof p3, "%s/from_v1", base);
    snprintf(p4, sizeof p4, "%s/from_v2", base);
    tome_db *src = open_db(p1);
    CHECK(src);
    /* LDK's keys, created in an order unlike their names */
    static uint8_t big[300000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i ^ (i >> 9));
    CHECK_OK(tome_kv_write(src, "", "", "manager", "mgr", 3));
    CHECK_OK(tome_kv_write(src, "monitors", "", "z_9", "mon z", 5));
    CHECK_OK(tome_kv_write(src, "monitors", "", "a_1", "mon a", 5));
    CHECK_OK(tome_kv_write(src, "", "", "network_graph", big, sizeof big));
    CHECK_OK(tome_kv_write(src, "", "", "scorer", NULL, 0));
    tome_kv_op ops[] = {{TOME_KV_WRITE, "monitor_updates", "z_9", "3", "u3", 2},
                        {TOME_KV_WRITE, "monitor_updates", "z_9", "1", "u1", 2},
                        {TOME_KV_WRITE, "monitor_updates", "z_9", "2", "u2", 2},
                        {TOME_KV_WRITE, "monitors", "", "m_5", "mon m", 5}};
    CHECK_OK(tome_kv_apply(src, ops, 4));
    CHECK_OK(tome_kv_write(src, "archived_monitors", "", "old_0", "arch", 4));
    CHECK_OK(tome_kv_write(src, "monitors", "", "gone", "x", 1));
    CHECK_OK(tome_kv_remove(src, "monitors", "", "gone", false));   /* not exported */

    tome_kv_fs_stats st;
    CHECK_OK(tome_kv_export_fs(src, e1, 0, &st));
    CHECK_U64(st.keys, 10);
    CHECK_U64(st.bytes, 3 + 5 + 5 + sizeof big + 0 + 2 * 3 + 5 + 4);
    CHECK(file_is(e1, "manager", "mgr", 3));
    CHECK(file_is(e1, "network_graph", big, sizeof big));
    CHECK(file_is(e1, "scorer", "", 0));
    CHECK(file_is(e1, "monitors/z_9", "mon z", 5));
    CHECK(file_is(e1, "monitors/a_1", "mon a", 5));
    CHECK(file_is(e1, "monitors/m_5", "mon m", 5));
    CHECK(file_is(e1, "monitor_updates/z_9/1", "u1", 2));
    CHECK(file_is(e1, "archived_monitors/old_0", "arch", 4));
    int tmps = 0, files = 0;
    count_files(e1, ".tmp", &tmps, &files);
    CHECK_EQ(tmps, 0);
    CHECK_EQ(files, 10);

    CHECK_OK(tome_kv_export_fs(src, e2, TOME_KV_FS_V2, &st));
    CHECK_U64(st.keys, 10);
    CHECK(file_is(e2, "[empty]/[empty]/manager", "mgr", 3));
    CHECK(file_is(e2, "monitors/[empty]/z_9", "mon z", 5));
    CHECK(file_is(e2, "monitor_updates/z_9/2", "u2", 2));
    tmps = files = 0;
    count_files(e2, ".tmp", &tmps, &files);
    CHECK_EQ(tmps, 0);
    CHECK_EQ(files, 10);
    /* the mtimes follow the creation order */
    struct stat s1, s2;
    char f1[1024], f2[1024];
    snprintf(f1, sizeof f1, "%s/monitors/[empty]/z_9", e2);
    snprintf(f2, sizeof f2, "%s/monitors/[empty]/a_1", e2);
    CHECK(stat(f1, &s1) == 0 && stat(f2, &s2) == 0);
    CHECK(s1.st_mtim.tv_sec < s2.st_mtim.tv_sec ||
          (s1.st_mtim.tv_sec == s2.st_mtim.tv_sec && s1.st_mtim.tv_nsec < s2.st_mtim.tv_nsec));

    /* back into fresh stores: key by key, order included */
    tome_db *d3 = open_db(p3), *d4 = open_db(p4);
    CHECK(d3 && d4);
    CHECK_OK(tome_kv_import_fs(d3, e1, &st));
    CHECK_U64(st.keys, 10);
    CHECK_U64(st.skipped, 0);
    CHECK_OK(tome_kv_import_fs(d4, e2, &st));
    CHECK_U64(st.keys, 10);
    CHECK(same_stores(src, d3));
    CHECK(same_stores(src, d4));
    char order[256];
    page_order(d3, "monitors", "", order, sizeof order);
    CHECK(!strcmp(order, "m_5,a_1,z_9"));
    page_order(d4, "monitor_updates", "z_9", order, sizeof order);
    CHECK(!strcmp(order, "2,1,3"));
    CHECK_OK(tome_close(d3));
    CHECK_OK(tome_close(d4));
    CHECK(d3 = open_db(p3));
    CHECK(same_stores(src, d3));
    CHECK_OK(tome_close(d3));

    /* exporting again over the same directory gives the same files */
    CHECK_OK(tome_kv_export_fs(src, e1, 0, &st));
    tmps = files = 0;
    count_files(e1, ".tmp", &tmps, &files);
    CHECK_EQ(files, 10);
    CHECK_EQ(tmps, 0);
    CHECK_OK(tome_close(src));
}

TT_TEST(kv_export_v1_clash) {
    char base[700], e1[800], e2[800];
    snprintf(base, sizeof base, "%s", tt_tmpdir());
    snprintf(e1, sizeof e1, "%s/v1", base);
    snprintf(e2, sizeof e2, "%s/v2", base);
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    /* "monitors" is both a key at the top and a primary namespace */
    CHECK_OK(tome_kv_write(db, "", "", "monitors", "k", 1));
    CHECK_OK(tome_kv_write(db, "monitors", "", "m", "v", 1));
    CHECK_RC(tome_kv_export_fs(db, e1, 0, NULL), TOME_INVALID);
    CHECK(strstr(tome_errmsg(db), "v2") != NULL);
    int tmps = 0, files = 0;
    count_files(e1, "", &tmps, &files);
    CHECK_EQ(files, 0);   /* refused before writing anything */
    CHECK_OK(tome_kv_export_fs(db, e2, TOME_KV_FS_V2, NULL));
    CHECK(file_is(e2, "[empty]/[empty]/monitors", "k", 1));
    CHECK(file_is(e2, "monitors/[empty]/m", "v", 1));
    /* the same clash one level down */
    CHECK_OK(tome_kv_remove(db, "", "", "monitors", false));
    CHECK_OK(tome_kv_write(db, "updates", "", "chan", "k", 1));
    CHECK_OK(tome_kv_write(db, "updates", "chan", "1", "v", 1));
    CHECK_RC(tome_kv_export_fs(db, e1, 0, NULL), TOME_INVALID);
    CHECK_OK(tome_kv_remove(db, "updates", "", "chan", false));
    CHECK_OK(tome_kv_export_fs(db, e1, 0, NULL));
    CHECK(file_is(e1, "updates/chan/1", "v", 1));
    CHECK(file_is(e1, "monitors/m", "v", 1));
    /* an empty store exports nothing, successfully */
    tome_db *empty = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &empty));
    char e3[800];
    snprintf(e3, sizeof e3, "%s/empty", base);
    tome_kv_fs_stats st;
    CHECK_OK(tome_kv_export_fs(empty, e3, 0, &st));
    CHECK_U64(st.keys, 0);
    struct stat sb;
    CHECK(stat(e3, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK_OK(tome_close(empty));
    CHECK_OK(tome_close(db));
}

/* ------------------------------------------------------------------------ */
/* The CLI                                                                  */
/* ------------------------------------------------------------------------ */

static char cli_out[65536], cli_err[8192];

/* Runs cli_kv with the given arguments (NULL-terminated, "kv" first);
 * captures out and err into cli_out and cli_err. Returns the exit code. */
static int run_kv(tome_db *db, ...) {
    char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, db);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 15) argv[argc++] = strdup(a);
    va_end(ap);
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    int rc = cli_kv(db, argc, argv, out, err);
    fflush(out);
    fflush(err);
    rewind(out);
    rewind(err);
    size_t n = fread(cli_out, 1, sizeof cli_out - 1, out);
    cli_out[n] = '\0';
    n = fread(cli_err, 1, sizeof cli_err - 1, err);
    cli_err[n] = '\0';
    fclose(out);
    fclose(err);
    for (int i = 0; i < argc; i++) free(argv[i]);
    return rc;
}

TT_TEST(kv_cli) {
    char base[700], fs[800], ex[800];
    snprintf(base, sizeof base, "%s", tt_tmpdir());
    snprintf(fs, sizeof fs, "%s/fs", base);
    snprintf(ex, sizeof ex, "%s/ex", base);
    tome_db *db = NULL;
    CHECK_OK(tome_open(":memory:", NULL, &db));
    CHECK_EQ(run_kv(db, "kv", "write", "monitors", "", "chan_1", "hello", NULL), 0);
    CHECK_EQ(run_kv(db, "kv", "read", "monitors", "", "chan_1", NULL), 0);
    CHECK(!strcmp(cli_out, "hello"));
    CHECK_EQ(run_kv(db, "kv", "write", "monitors", "", "chan_0", "x", NULL), 0);
    CHECK_EQ(run_kv(db, "kv", "write", "", "", "manager", "m", NULL), 0);
    CHECK_EQ(run_kv(db, "kv", "ls", "monitors", "", NULL), 0);
    CHECK(!strcmp(cli_out, "chan_0\nchan_1\n"));
    CHECK_EQ(run_kv(db, "kv", "ls-all", NULL), 0);
    CHECK(!strcmp(cli_out, "//manager\nmonitors//chan_0\nmonitors//chan_1\n"));
    /* pages, newest first, with the token line */
    CHECK_EQ(run_kv(db, "kv", "ls-page", "monitors", "", "--size", "1", NULL), 0);
    CHECK(!strncmp(cli_out, "chan_0\n#next ", 13));
    char tok[256];
    size_t tl = strcspn(cli_out + 13, "\n");
    CHECK(tl < sizeof tok);
    memcpy(tok, cli_out + 13, tl);
    tok[tl] = '\0';
    CHECK_EQ(run_kv(db, "kv", "ls-page", "monitors", "", "--size", "1", "--token", tok, NULL), 0);
    CHECK(!strcmp(cli_out, "chan_1\n"));
    CHECK_EQ(run_kv(db, "kv", "ls-page", "monitors", "", "--token", "bogus", NULL), 2);
    CHECK(strstr(cli_err, "tome: kv ls-page") != NULL);
    /* not found: exit 1 and a message */
    CHECK_EQ(run_kv(db, "kv", "read", "monitors", "", "nope", NULL), 1);
    CHECK(cli_out[0] == '\0');
    CHECK(strstr(cli_err, "not found") != NULL || strstr(cli_err, "NOTFOUND") != NULL ||
          strstr(cli_err, "found") != NULL);
    /* remove, lazily or not */
    CHECK_EQ(run_kv(db, "kv", "rm", "monitors", "", "chan_0", NULL), 0);
    CHECK_EQ(run_kv(db, "kv", "rm", "--lazy", "monitors", "", "chan_1", NULL), 0);
    CHECK_EQ(run_kv(db, "kv", "rm", "monitors", "", "never", NULL), 0);
    CHECK_EQ(run_kv(db, "kv", "ls", "monitors", "", NULL), 0);
    CHECK(cli_out[0] == '\0');
    /* bad names and usage errors: exit 2 */
    CHECK_EQ(run_kv(db, "kv", "write", "bad.ns", "", "k", "v", NULL), 2);
    CHECK_EQ(run_kv(db, "kv", "write", "", "sec", "k", "v", NULL), 2);
    CHECK_EQ(run_kv(db, "kv", "read", "", "", "", NULL), 2);
    CHECK_EQ(run_kv(db, "kv", "read", "a", "b", NULL), 2);
    CHECK_EQ(run_kv(db, "kv", "frobnicate", NULL), 2);
    CHECK(strstr(cli_err, "unknown subcommand") != NULL);
    CHECK_EQ(run_kv(db, "kv", NULL), 2);
    CHECK_EQ(run_kv(db, "kv", "ls-page", "a", NULL), 2);
    CHECK_EQ(run_kv(db, "kv", "ls-page", "a", "", "--size", "0", NULL), 2);
    /* the value from stdin */
    char in[800];
    snprintf(in, sizeof in, "%s/stdin", base);
    CHECK_EQ(put_str(base, "stdin", "from\nstdin", 0), 0);
    int fd = open(in, O_RDONLY), saved = dup(0);
    CHECK(fd >= 0 && saved >= 0);
    CHECK(dup2(fd, 0) == 0);
    clearerr(stdin);
    int rc = run_kv(db, "kv", "write", "", "", "piped", NULL);
    CHECK(dup2(saved, 0) == 0);
    close(fd);
    close(saved);
    clearerr(stdin);
    CHECK_EQ(rc, 0);
    CHECK(kv_is_str(db, "", "", "piped", "from\nstdin"));
    /* import and export */
    CHECK_EQ(make_v1_tree(fs), 0);
    CHECK_EQ(run_kv(db, "kv", "import-fs", fs, NULL), 0);
    CHECK(strstr(cli_out, "imported 8 keys") != NULL);
    CHECK(strstr(cli_out, "skipped 5") != NULL);
    CHECK_EQ(run_kv(db, "kv", "read", "monitor_updates", "a_0", "2", NULL), 0);
    CHECK(!strcmp(cli_out, "update 2"));
    CHECK_EQ(run_kv(db, "kv", "export-fs", "--v2", ex, NULL), 0);
    CHECK(strstr(cli_out, "exported 9 keys") != NULL);   /* the tree has a manager too */
    CHECK(file_is(ex, "monitor_updates/a_0/2", "update 2", 8));
    CHECK(file_is(ex, "[empty]/[empty]/piped", "from\nstdin", 10));
    CHECK_EQ(run_kv(db, "kv", "import-fs", NULL), 2);
    char missing[900];
    snprintf(missing, sizeof missing, "%s/missing", base);
    CHECK_EQ(run_kv(db, "kv", "import-fs", missing, NULL), 1);
    /* usage text */
    FILE *f = tmpfile();
    cli_kv_usage(f);
    rewind(f);
    size_t n = fread(cli_out, 1, sizeof cli_out - 1, f);
    cli_out[n] = '\0';
    fclose(f);
    CHECK(strstr(cli_out, "kv read") && strstr(cli_out, "kv write") && strstr(cli_out, "--lazy") &&
          strstr(cli_out, "ls-all") && strstr(cli_out, "import-fs") && strstr(cli_out, "export-fs"));
    CHECK_OK(tome_close(db));
}

TT_MAIN()
