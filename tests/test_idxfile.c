/*
 * test_idxfile.c -- the compact index file (INDEX, version 2; docs/FORMAT.md):
 * what a clean close writes is what the next open loads, and a file whose
 * checksums are right but whose entries are malformed is never trusted
 * beyond its bounds.
 *
 * test_recovery.c covers damaged, truncated and stale index files (which the
 * checksums reject); this file covers the decoder behind the checksums.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/tome.h"
#include "../src/util/util.h"
#include "tt.h"

#define IDX_HDR 104

static int64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

static uint8_t *slurp(const char *p, size_t *n) {
    int64_t sz = file_size(p);
    if (sz <= 0) return NULL;
    uint8_t *b = malloc((size_t)sz);
    int fd = open(p, O_RDONLY);
    if (!b || fd < 0 || pread(fd, b, (size_t)sz, 0) != sz) {
        free(b);
        if (fd >= 0) close(fd);
        return NULL;
    }
    close(fd);
    *n = (size_t)sz;
    return b;
}

static int spit(const char *p, const uint8_t *b, size_t n) {
    int fd = open(p, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    if (fd < 0) return -1;
    int ok = write(fd, b, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

/* keys with shared prefixes, several slots, several versions, removals,
 * timestamps from the commit table and (after a merge) merged records */
static void build(const char *dir, int merge) {
    tome_db *db;
    CHECK_OK(tome_open(dir, NULL, &db));
    for (unsigned g = 0; g < 3; g++) {
        tome_txn *t;
        CHECK_OK(tome_begin(db, &t));
        for (unsigned i = 0; i < 300; i++) {
            char k[32], v[64];
            snprintf(k, sizeof k, "user/%05u/%s", i * 7, i % 2 ? "name" : "mail");
            int vl = snprintf(v, sizeof v, "value %u of generation %u", i, g);
            uint8_t slot = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 7 : 200);
            if (g == 2 && i % 5 == 0) CHECK_OK(tome_remove(t, slot, k, strlen(k)));
            else CHECK_OK(tome_insert(t, slot, k, strlen(k), v, (size_t)vl));
        }
        CHECK_OK(tome_insert(t, 1, "", 0, "empty key", 9));
        CHECK_OK(tome_commit(t));
        if (merge && g == 1) CHECK_OK(tome_merge(db));
    }
    CHECK_OK(tome_close(db));
}

/* Everything the store holds, as text: every key, version and value. */
static char *dump(const char *dir, size_t *len) {
    tome_db *db;
    if (tome_open(dir, NULL, &db) != TOME_OK) return NULL;
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    tome_txn *t;
    if (tome_begin(db, &t) == TOME_OK) {
        for (unsigned s = 0; s < 256; s++) {
            tome_iter *it;
            if (tome_iter_open(t, (uint8_t)s, NULL, 0, &it) != TOME_OK) break;
            const void *k;
            size_t kl;
            while (tome_iter_next(it, &k, &kl) == TOME_OK) {
                const tome_version *vs;
                size_t nv;
                fprintf(f, "%u:%.*s", s, (int)kl, (const char *)k);
                if (tome_versions(t, (uint8_t)s, k, kl, &vs, &nv) == TOME_OK)
                    for (size_t j = 0; j < nv; j++) {
                        const void *v;
                        size_t vl;
                        int rc = tome_get_version(t, (uint8_t)s, k, kl, vs[j].seq, &v, &vl);
                        fprintf(f, " [%llu %llu %d %d %.*s]", (unsigned long long)vs[j].seq,
                                (unsigned long long)vs[j].timestamp, vs[j].removed, rc,
                                rc ? 0 : (int)vl, rc ? "" : (const char *)v);
                    }
                fputc('\n', f);
            }
            tome_iter_close(it);
        }
        tome_abort(t);
    }
    fclose(f);
    tome_close(db);
    return out;
}

static void same_with_and_without_index(int merge) {
    char dir[512], idx[600];
    snprintf(dir, sizeof dir, "%s/s%d", tt_tmpdir(), merge);
    build(dir, merge);
    snprintf(idx, sizeof idx, "%s/INDEX", dir);
    size_t n0 = 0, n1 = 0;
    uint8_t *b = slurp(idx, &n0);
    CHECK(b != NULL);
    CHECK(memcmp(b, "TOMEIDX2", 8) == 0);
    /* 900 keys + versions in well under 36 bytes per version */
    CHECK(n0 < 300 * 3 * 28);
    free(b);
    char *with = dump(dir, &n0); /* loads INDEX (and rewrites it at close) */
    CHECK(with != NULL);
    CHECK_EQ(unlink(idx), 0);
    char *without = dump(dir, &n1); /* scans the log */
    CHECK(without != NULL);
    CHECK(n0 > 10000);
    CHECK_MEM(with, n0, without, n1);
    free(with);
    free(without);
}

TT_TEST(index_loads_what_the_log_holds) { same_with_and_without_index(0); }
TT_TEST(index_loads_what_the_log_holds_after_merge) { same_with_and_without_index(1); }

/* Every byte of the entries changed, in turn, with both checksums made
 * right again: the open must neither crash nor read out of bounds (the
 * sanitizer and valgrind runs check that); it gives TOME_OK (the decoder
 * rejected the file and the log was scanned, or the change decoded into
 * another valid index) or an error code, never anything else. */
TT_TEST(index_entries_malformed_under_valid_checksums) {
    char dir[512], idx[700];
    snprintf(dir, sizeof dir, "%s/src", tt_tmpdir());
    build(dir, 1);
    snprintf(idx, sizeof idx, "%s/INDEX", dir);
    size_t n = 0;
    uint8_t *orig = slurp(idx, &n);
    CHECK(orig != NULL && n > IDX_HDR + 64);
    uint8_t *b = malloc(n);
    CHECK(b != NULL);
    /* a read-only open changes no file: the store itself is the work copy */
    size_t stride = (n - IDX_HDR) / (getenv("TOME_TEST_SHORT") ? 150 : 500) + 1;
    unsigned ok = 0, other = 0;
    static const uint8_t patterns[] = {0x00, 0xFF, 0x80, 0x7F};
    for (size_t x = IDX_HDR; x < n - 12; x += stride) {
        uint8_t pat = patterns[x % 4];
        if (orig[x] == pat) continue;
        memcpy(b, orig, n);
        b[x] = pat;
        tome_put32(b + n - 12, tome_crc32c(0, b + IDX_HDR, n - 12 - IDX_HDR));
        CHECK_EQ(spit(idx, b, n), 0);
        tome_db *db;
        tome_options o;
        tome_options_init(&o);
        o.read_only = 1; /* keep the file as it is */
        int rc = tome_open(dir, &o, &db);
        if (rc == TOME_OK) {
            uint64_t last = 0;
            CHECK_OK(tome_last_seq(db, &last));
            CHECK(last >= 3);
            CHECK_OK(tome_close(db));
            ok++;
        } else {
            CHECK(rc == TOME_CORRUPT || rc == TOME_NOMEM);
            other++;
        }
    }
    CHECK(ok > 0);
    printf("     %u mutated index files: %u opened, %u refused\n", ok + other, ok, other);
    free(b);
    free(orig);
}

TT_MAIN()
