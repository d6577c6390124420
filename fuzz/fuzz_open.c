/*
 * fuzz_open.c -- fuzz target: arbitrary bytes become the files of a store,
 * which is then opened, read, written, merged, closed, reopened and checked.
 *
 * fuzz_one(data, size) is the whole target. It is compiled into the
 * libFuzzer binary (fuzz/libfuzzer_main.c adds LLVMFuzzerTestOneInput, see
 * mk/check.mk) and into tests/test_fuzz_replay.c, which replays the
 * committed corpus (fuzz/corpus/open/) with the ordinary compiler in `make
 * test`. It returns 0, or -1 after printing why the store broke a promise
 * (the libFuzzer wrapper then aborts, so the input is saved as a crash).
 * Crashes, hangs and leaks are the sanitizers' and libFuzzer's to catch.
 *
 * The files live in an in-memory file system (tome_vfs_mem_new, made the
 * engine's vfs for real paths with the tome_local_test_vfs hook), so a run
 * touches no disk and costs microseconds. Input format (fo_ = this file):
 *   byte 0: flags: bit 0 open read-only; bit 1 write a commit after the
 *           open; bit 2 merge; bit 3 keep history (history_versions = 3);
 *           bit 4 TOME_SYNC_NONE.
 *   then records, each: type (1 byte), length (2 bytes, little-endian,
 *   cut to what is left), that many bytes:
 *     type & 7 == 0: a log segment "%016x.log" numbered 1 + (type >> 3);
 *     1: a merged segment "%016x-%016x.mrg", lo = 1 + ((type >> 3) & 3),
 *        hi = lo + (type >> 5);
 *     2: INDEX;  3: INDEX.tmp;
 *     4: appends length * 16 zero bytes to the previous file (the zeroed
 *        preallocated tail of a segment); no bytes follow this record;
 *     5: a directory named by the record's bytes (a name the engine may
 *        trip on, e.g. a segment name); 6: a file named by its first bytes
 *        up to a NUL, holding the rest (names with '/' are skipped);
 *     7: LOCK with these bytes.
 * The promises checked (everything else only must not crash or leak):
 *   - tome_open returns OK, CORRUPT, or IO when the input made directories
 *     or oddly named files; every read returns OK, NOTFOUND or CORRUPT;
 *   - a store that passed tome_check and opened is read the same way
 *     (every key of every slot, its versions, each version's value,
 *     tome_get, tome_get_unremoved, tome_begin_at at the horizon and the
 *     newest commit) after close and reopen, and again after INDEX is
 *     deleted when tome_check still passes; a damaged store that opened
 *     (INDEX covering the damage) opens again or says CORRUPT;
 *   - a commit that returned OK is there after reopen; a merge (OK or
 *     CORRUPT) changes no key's current value;
 *   - tome_check returns OK or CORRUPT with a report, and when it passed
 *     before the open it still passes after close.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tome.h"
#include "../src/log/local.h"
#include "../src/os/os.h"

int fuzz_one(const uint8_t *data, size_t size);

#define FO_DIR "/fz"
#define FO_MAX_KEYS 3000
/* A promise broken (fo_fail printed why); distinct from every tome code. */
#define FO_BROKEN (-1000)

typedef struct fo_in {
    const uint8_t *p;
    size_t n;
} fo_in;

/* FNV-1a over a running digest. */
static uint64_t fo_mix(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t fo_mix64(uint64_t h, uint64_t v) { return fo_mix(h, &v, sizeof v); }

static int fo_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fo_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_open: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return FO_BROKEN;
}

static int fo_write_file(tome_vfs *v, const char *path, const uint8_t *p, size_t n, uint64_t at) {
    tome_file *f;
    int e = v->open(v, path, TOME_VFS_WRITE | TOME_VFS_CREATE, &f);
    if (e) return e;
    struct iovec iov = {(void *)(uintptr_t)p, n};
    if (n) e = v->pwritev(f, &iov, 1, at);
    v->close(f);
    return e;
}

static uint64_t fo_file_size(tome_vfs *v, const char *path) {
    tome_file *f;
    uint64_t sz = 0;
    if (v->open(v, path, TOME_VFS_READ, &f)) return 0;
    v->size(f, &sz);
    v->close(f);
    return sz;
}

/* Builds the store directory from the input. *odd is set when the input
 * made a directory or a file with a name of its own choosing. */
static void fo_build(tome_vfs *v, const char *dir, fo_in in, int *odd) {
    char path[600], last[600] = "";
    v->mkdir(v, dir);
    size_t i = 0;
    int files = 0;
    while (i + 3 <= in.n && files < 64) {
        uint8_t type = in.p[i];
        size_t len = (size_t)in.p[i + 1] | (size_t)in.p[i + 2] << 8;
        i += 3;
        if ((type & 7) != 4) { /* a zero run has no bytes of its own */
            if (len > in.n - i) len = in.n - i;
        }
        const uint8_t *b = in.p + i;
        if ((type & 7) != 4) i += len;
        files++;
        switch (type & 7) {
        case 0:
            snprintf(path, sizeof path, "%s/%016llx.log", dir, (unsigned long long)(1 + (type >> 3)));
            break;
        case 1: {
            unsigned long long lo = 1 + ((type >> 3) & 3), hi = lo + (type >> 5);
            snprintf(path, sizeof path, "%s/%016llx-%016llx.mrg", dir, lo, hi);
            break;
        }
        case 2: snprintf(path, sizeof path, "%s/INDEX", dir); break;
        case 3: snprintf(path, sizeof path, "%s/INDEX.tmp", dir); break;
        case 4:
            if (last[0] && len) {
                size_t z = len * 16;
                uint8_t *zeros = calloc(1, z);
                if (zeros) {
                    fo_write_file(v, last, zeros, z, fo_file_size(v, last));
                    free(zeros);
                }
            }
            continue;
        case 5: {
            char name[256];
            size_t k = 0;
            for (size_t j = 0; j < len && k < 255; j++)
                if (b[j] && b[j] != '/') name[k++] = (char)b[j];
            name[k] = 0;
            if (!k || !strcmp(name, ".") || !strcmp(name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, name);
            v->mkdir(v, path);
            *odd = 1;
            continue;
        }
        case 6: {
            size_t k = 0;
            while (k < len && k < 255 && b[k]) k++;
            if (k == 0 || memchr(b, '/', k)) continue;
            char name[256];
            memcpy(name, b, k);
            name[k] = 0;
            if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, name);
            size_t skip = k < len ? k + 1 : k;
            b += skip;
            len -= skip;
            *odd = 1;
            break;
        }
        default: snprintf(path, sizeof path, "%s/LOCK", dir); break;
        }
        if (fo_write_file(v, path, b, len, 0) == 0) snprintf(last, sizeof last, "%s", path);
    }
}

static int fo_read_rc_ok(int rc) { return rc == TOME_OK || rc == TOME_NOTFOUND || rc == TOME_CORRUPT; }

/* A digest of everything a new transaction of db sees (see the top).
 * cur_only: only each key's current value (what a merge must keep).
 * Returns 0 or FO_BROKEN. Reads may return TOME_CORRUPT (a damaged value
 * is found when read): that goes into the digest like any other result. */
static int fo_digest(tome_db *db, int cur_only, uint64_t *out) {
    uint64_t h = 0xcbf29ce484222325ull;
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return fo_fail("tome_begin: %s", tome_strerror(rc));
    long keys = 0;
    int broken = 0;
    for (int slot = 0; slot < 256 && keys < FO_MAX_KEYS && !broken; slot++) {
        tome_iter *it;
        rc = tome_iter_open(t, (uint8_t)slot, NULL, 0, &it);
        if (rc) {
            tome_abort(t);
            return fo_fail("tome_iter_open: %s", tome_strerror(rc));
        }
        const void *kp;
        size_t kl;
        while (keys < FO_MAX_KEYS && !broken && (rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) {
            keys++;
            h = fo_mix64(h, (uint64_t)slot << 32 | kl);
            h = fo_mix(h, kp, kl);
            const void *v;
            size_t vl;
            rc = tome_get(t, (uint8_t)slot, kp, kl, &v, &vl);
            h = fo_mix64(h, (uint64_t)(rc + 100));
            if (rc == TOME_OK) h = fo_mix(fo_mix64(h, vl), v, vl);
            if (rc == TOME_NOTFOUND) broken = fo_fail("iteration listed a key that tome_get does not find");
            else if (!fo_read_rc_ok(rc)) broken = fo_fail("tome_get: %s", tome_strerror(rc));
            if (broken || cur_only) continue;
            rc = tome_get_unremoved(t, (uint8_t)slot, kp, kl, &v, &vl);
            h = fo_mix64(h, (uint64_t)(rc + 100));
            if (rc == TOME_OK) h = fo_mix(fo_mix64(h, vl), v, vl);
            if (!fo_read_rc_ok(rc)) broken = fo_fail("tome_get_unremoved: %s", tome_strerror(rc));
            const tome_version *vs;
            size_t nv = 0;
            rc = tome_versions(t, (uint8_t)slot, kp, kl, &vs, &nv);
            h = fo_mix64(h, (uint64_t)(rc + 100));
            if (rc != TOME_OK && rc != TOME_CORRUPT) broken = fo_fail("tome_versions: %s", tome_strerror(rc));
            if (rc == TOME_OK && nv == 0) broken = fo_fail("a listed key without versions");
            for (size_t i = 0; rc == TOME_OK && i < nv && i < 64 && !broken; i++) {
                if (!vs[i].committed || (i && vs[i].seq <= vs[i - 1].seq)) {
                    broken = fo_fail("versions out of order or not committed");
                    break;
                }
                h = fo_mix64(h, vs[i].seq);
                h = fo_mix64(h, vs[i].timestamp);
                h = fo_mix64(h, vs[i].removed);
                int vrc = tome_get_version(t, (uint8_t)slot, kp, kl, vs[i].seq, &v, &vl);
                h = fo_mix64(h, (uint64_t)(vrc + 100));
                if (vrc == TOME_OK) h = fo_mix(fo_mix64(h, vl), v, vl);
                if (!fo_read_rc_ok(vrc)) broken = fo_fail("tome_get_version: %s", tome_strerror(vrc));
                else if ((vrc == TOME_NOTFOUND) != vs[i].removed)
                    broken = fo_fail("tome_get_version disagrees with the removed flag");
            }
        }
        tome_iter_close(it);
        if (!broken && rc != TOME_NOTFOUND && rc != TOME_OK)
            broken = fo_fail("tome_iter_next: %s", tome_strerror(rc));
    }
    if (broken) {
        tome_abort(t);
        return FO_BROKEN;
    }
    tome_abort(t);
    if (!cur_only) {
        tome_stats st;
        rc = tome_stats_get(db, &st);
        if (rc) return fo_fail("tome_stats_get: %s", tome_strerror(rc));
        h = fo_mix64(h, st.last_seq);
        h = fo_mix64(h, st.horizon);
        uint64_t seqs[2] = {st.horizon, st.last_seq};
        for (int i = 0; i < 2; i++) {
            rc = tome_begin_at(db, seqs[i], &t);
            h = fo_mix64(h, (uint64_t)(rc + 100));
            if (rc == TOME_OK) {
                uint64_t ts = 0;
                rc = tome_last_updated(t, &ts);
                h = fo_mix64(fo_mix64(h, (uint64_t)(rc + 100)), ts);
                tome_abort(t);
            } else if (rc != TOME_NOTFOUND) {
                return fo_fail("tome_begin_at(%llu): %s", (unsigned long long)seqs[i], tome_strerror(rc));
            }
        }
    }
    *out = h;
    return 0;
}

static int fo_check(const char *what, int odd, int *rc_out) {
    char *report = NULL;
    int rc = tome_check(FO_DIR, &report);
    *rc_out = rc;
    /* NOTFOUND: the input made no store (no segment file) */
    if (rc != TOME_OK && rc != TOME_CORRUPT && rc != TOME_NOTFOUND && !(rc == TOME_IO && odd)) {
        tome_free(report);
        return fo_fail("tome_check %s: %s", what, tome_strerror(rc));
    }
    if ((rc == TOME_OK || rc == TOME_CORRUPT) && !report) return fo_fail("tome_check %s: no report", what);
    tome_free(report);
    return 0;
}

static int fo_open(const tome_options *o, tome_db **db, int odd) {
    int rc = tome_open(FO_DIR, o, db);
    /* NOTFOUND: a read-only open of a directory that holds no store */
    if (rc != TOME_OK && rc != TOME_CORRUPT && !(rc == TOME_IO && odd) && !(rc == TOME_NOTFOUND && o->read_only))
        return fo_fail("tome_open: %s (%s)", tome_strerror(rc), tome_errmsg(NULL));
    return rc;
}

static int fo_run(tome_vfs *v, uint8_t flags, int odd) {
    tome_options o;
    tome_options_init(&o);
    o.read_only = flags & 1;
    o.segment_size = 4096;
    o.history_versions = flags & 8 ? 3 : 0;
    o.sync = flags & 16 ? TOME_SYNC_NONE : TOME_SYNC_FULL;
    int check_before;
    if (fo_check("before the open", odd, &check_before)) return -1;
    tome_db *db = NULL;
    int rc = fo_open(&o, &db, odd);
    if (rc == TOME_NOTFOUND) return 0;
    if (rc < 0 && rc != TOME_CORRUPT && rc != TOME_IO) return -1;
    if (rc) {
        if (check_before == TOME_OK && rc == TOME_CORRUPT)
            return fo_fail("tome_check passed but tome_open says CORRUPT (%s)", tome_errmsg(NULL));
        return 0;
    }
    uint64_t d_full = 0, d_cur = 0, d2 = 0;
    if (fo_digest(db, 0, &d_full) || fo_digest(db, 1, &d_cur)) {
        tome_close(db);
        return -1;
    }
    int wrote = 0, merged = 0;
    if ((flags & 2) && !o.read_only) {
        tome_txn *t;
        rc = tome_begin(db, &t);
        if (rc) {
            tome_close(db);
            return fo_fail("tome_begin: %s", tome_strerror(rc));
        }
        rc = tome_insert(t, 0, "fuzz-key", 8, "fuzz-value", 10);
        if (!rc) rc = tome_remove(t, 1, "gone", 4);
        if (rc) {
            tome_abort(t);
            tome_close(db);
            return fo_fail("staging a write: %s", tome_strerror(rc));
        }
        rc = tome_commit(t);
        if (rc != TOME_OK && rc != TOME_IO) {
            tome_close(db);
            return fo_fail("tome_commit: %s", tome_strerror(rc));
        }
        wrote = rc == TOME_OK;
    }
    if (flags & 4) {
        rc = tome_merge(db);
        if (rc != TOME_OK && rc != TOME_CORRUPT && !(rc == TOME_READONLY && o.read_only) &&
            !(rc == TOME_IO && odd)) {
            tome_close(db);
            return fo_fail("tome_merge: %s (%s)", tome_strerror(rc), tome_errmsg(db));
        }
        merged = rc == TOME_OK;
        if (!wrote) {
            uint64_t dc = 0;
            if (fo_digest(db, 1, &dc)) {
                tome_close(db);
                return -1;
            }
            if (dc != d_cur) {
                tome_close(db);
                return fo_fail("tome_merge (%s) changed the current values", tome_strerror(rc));
            }
        }
    }
    rc = tome_close(db);
    if (rc != TOME_OK && !(rc == TOME_IO && odd)) return fo_fail("tome_close: %s", tome_strerror(rc));
    /* reopen: the same store */
    rc = fo_open(&o, &db, odd);
    /* A store tome_check finds damaged may open only while INDEX covers the
     * damage (the open does not read what INDEX covers); once the INDEX is
     * stale the open finds it. */
    if (rc == TOME_CORRUPT && check_before != TOME_OK) return 0;
    if (rc) return rc == FO_BROKEN ? FO_BROKEN : fo_fail("the store opened, but not after close: %s (%s)", tome_strerror(rc),
                                           tome_errmsg(NULL));
    if (wrote) {
        tome_txn *t;
        const void *val;
        size_t vl;
        if (tome_begin(db, &t) == 0) {
            rc = tome_get(t, 0, "fuzz-key", 8, &val, &vl);
            int same = rc == TOME_OK && vl == 10 && !memcmp(val, "fuzz-value", 10);
            tome_abort(t);
            if (!same) {
                tome_close(db);
                return fo_fail("a commit that returned OK is gone after reopen (%s)", tome_strerror(rc));
            }
        }
    } else if (check_before != TOME_OK) {
        /* a damaged store may read differently once INDEX no longer covers
         * the damage (e.g. a damaged last commit becomes a torn tail) */
    } else if (!merged) {
        if (fo_digest(db, 0, &d2)) {
            tome_close(db);
            return -1;
        }
        if (d2 != d_full) {
            tome_close(db);
            return fo_fail("the store reads differently after close and reopen");
        }
    } else {
        if (fo_digest(db, 1, &d2)) {
            tome_close(db);
            return -1;
        }
        if (d2 != d_cur) {
            tome_close(db);
            return fo_fail("current values differ after merge, close and reopen");
        }
    }
    uint64_t d_idx = 0;
    if (fo_digest(db, 0, &d_idx)) {
        tome_close(db);
        return -1;
    }
    rc = tome_close(db);
    if (rc != TOME_OK && !(rc == TOME_IO && odd)) return fo_fail("tome_close: %s", tome_strerror(rc));
    int check_after;
    if (fo_check("after close", odd, &check_after)) return -1;
    if (check_before == TOME_OK && check_after != TOME_OK && !odd)
        return fo_fail("tome_check passed before the open and fails after it: %s", tome_strerror(check_after));
    if (check_after == TOME_OK) {
        /* without INDEX (a full scan of the log): the same store */
        v->unlink(v, FO_DIR "/INDEX");
        rc = fo_open(&o, &db, odd);
        if (rc) return rc == FO_BROKEN ? FO_BROKEN : fo_fail("tome_check passed, but without INDEX the open says %s (%s)",
                                               tome_strerror(rc), tome_errmsg(NULL));
        uint64_t d_scan = 0;
        int frc = fo_digest(db, 0, &d_scan);
        tome_close(db);
        if (frc) return -1;
        if (d_scan != d_idx) return fo_fail("tome_check passed, but the store reads differently without INDEX");
    }
    return 0;
}

int fuzz_one(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    tome_vfs *v = tome_vfs_mem_new();
    if (!v) return 0;
    int odd = 0;
    fo_in in = {data + 1, size - 1};
    fo_build(v, FO_DIR, in, &odd);
    tome_local_test_vfs(v);
    int rc = fo_run(v, data[0], odd);
    tome_local_test_vfs(NULL);
    v->destroy(v);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Seeds: real stores in the input format                                    */
/* ------------------------------------------------------------------------ */
/* These build the committed corpus (fuzz/mkcorpus.c) and the mutated
 * inputs of tests/test_fuzz_replay.c. */

int fuzz_open_encode(tome_vfs *v, const char *dir, uint8_t flags, uint8_t **out, size_t *n_out);
int fuzz_open_seed(int which, uint8_t **out, size_t *n_out);
int fuzz_open_unpack(const uint8_t *data, size_t size, const char *dir);

/* Writes the store an input describes into a real directory (created; it
 * should not exist), for reproducing a finding with the tome tool. */
int fuzz_open_unpack(const uint8_t *data, size_t size, const char *dir) {
    if (size < 1) return -1;
    int odd = 0;
    fo_in in = {data + 1, size - 1};
    fo_build(tome_vfs_posix(), dir, in, &odd);
    return 0;
}

typedef struct fo_buf {
    uint8_t *p;
    size_t n, cap;
} fo_buf;

static int fo_put(fo_buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->n + n) nc *= 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q) return -1;
        b->p = q;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int fo_record(fo_buf *b, uint8_t type, const void *p, size_t n) {
    if (n > 65535) n = 65535;
    uint8_t h[3] = {type, (uint8_t)n, (uint8_t)(n >> 8)};
    return fo_put(b, h, 3) || fo_put(b, p, n);
}

/* Encodes the files of `dir` in vfs v (segments with their zero tails
 * trimmed and restored by a type-4 record). Returns 0 or -1. */
int fuzz_open_encode(tome_vfs *v, const char *dir, uint8_t flags, uint8_t **out, size_t *n_out) {
    fo_buf b = {0};
    char **names = NULL;
    size_t nn = 0;
    if (fo_put(&b, &flags, 1) || v->list(v, dir, &names, &nn)) {
        free(b.p);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < nn && !rc; i++) {
        const char *nm = names[i];
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        tome_file *f;
        if (v->open(v, path, TOME_VFS_READ, &f)) continue;
        uint64_t sz = 0;
        v->size(f, &sz);
        if (sz > 65535) sz = 65535;
        uint8_t *data = malloc(sz ? sz : 1);
        if (!data || v->pread(f, data, sz, 0) != (int64_t)sz) {
            free(data);
            v->close(f);
            rc = -1;
            break;
        }
        v->close(f);
        size_t used = sz;
        while (used && !data[used - 1]) used--;
        unsigned long long lo, hi;
        size_t len = strlen(nm);
        uint8_t type;
        if (len == 20 && !strcmp(nm + 16, ".log") && sscanf(nm, "%16llx", &lo) == 1 && lo >= 1 && lo <= 32) {
            type = (uint8_t)((lo - 1) << 3);
        } else if (len == 37 && !strcmp(nm + 33, ".mrg") && sscanf(nm, "%16llx-%16llx", &lo, &hi) == 2 && lo >= 1 &&
                   lo <= 4 && hi >= lo && hi - lo <= 7) {
            type = (uint8_t)(1 | (lo - 1) << 3 | (hi - lo) << 5);
        } else if (!strcmp(nm, "INDEX")) {
            type = 2;
            used = sz;
        } else if (!strcmp(nm, "LOCK")) {
            type = 7;
            used = sz;
        } else {
            /* any other file: by name */
            fo_buf r = {0};
            rc = fo_put(&r, nm, len + 1) || fo_put(&r, data, sz) || fo_record(&b, 6, r.p, r.n);
            free(r.p);
            free(data);
            continue;
        }
        rc = fo_record(&b, type, data, used);
        if (!rc && used < sz) {
            size_t z = (sz - used + 15) / 16;
            rc = fo_record(&b, 4, NULL, 0);
            if (!rc) {
                b.p[b.n - 2] = (uint8_t)z;
                b.p[b.n - 1] = (uint8_t)(z >> 8);
            }
        }
        free(data);
    }
    tome_free(names);
    if (rc) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *n_out = b.n;
    return 0;
}

static int fo_put_kv(tome_db *db, uint8_t slot, const char *k, const char *val) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    rc = val ? tome_insert(t, slot, k, strlen(k), val, strlen(val)) : tome_remove(t, slot, k, strlen(k));
    if (rc) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

#define FO_NSEEDS 8

/* Seed `which` (0..FO_NSEEDS-1; -1 past the end): a store made through the
 * API in an in-memory vfs, then encoded. */
int fuzz_open_seed(int which, uint8_t **out, size_t *n_out) {
    if (which < 0 || which >= FO_NSEEDS) return -1;
    tome_vfs *v = tome_vfs_mem_new();
    if (!v) return -1;
    tome_local_test_vfs(v);
    tome_options o;
    tome_options_init(&o);
    o.segment_size = 4096;
    if (which == 5) o.history_versions = 3;
    tome_db *db = NULL;
    int rc = tome_open(FO_DIR, &o, &db);
    int commits = which == 0 ? 0 : which == 1 ? 3 : 40;
    char k[32], val[200];
    for (int i = 0; i < commits && !rc; i++) {
        snprintf(k, sizeof k, "key%d", i % 7);
        size_t vl = (size_t)(i * 37 % 150);
        for (size_t j = 0; j < vl; j++) val[j] = (char)('a' + (i + (int)j) % 26);
        val[vl] = 0;
        rc = fo_put_kv(db, (uint8_t)(i % 3), k, i % 5 == 4 ? NULL : val);
        if (!rc && i == 0) rc = fo_put_kv(db, 0, "", ""); /* the empty key and value */
        if (!rc && (which == 3 || which == 5) && i % 13 == 12) rc = tome_merge(db);
        if (!rc && which == 6 && i % 10 == 0) rc = tome_kv_write(db, "mon", "", "chan1", val, vl);
    }
    if (!rc && which == 4) rc = tome_merge(db);
    if (!rc) rc = tome_close(db);
    else tome_close(db);
    if (!rc && (which == 2 || which == 7)) v->unlink(v, FO_DIR "/INDEX"); /* as after a crash */
    if (!rc && which == 7) {
        /* a torn tail: cut the newest log segment inside its last commit */
        char **names = NULL;
        size_t nn = 0;
        if (v->list(v, FO_DIR, &names, &nn) == 0) {
            const char *newest = NULL;
            for (size_t i = 0; i < nn; i++)
                if (strlen(names[i]) == 20 && !strcmp(names[i] + 16, ".log")) newest = names[i];
            if (newest) {
                char path[600];
                snprintf(path, sizeof path, FO_DIR "/%s", newest);
                tome_file *f;
                if (v->open(v, path, TOME_VFS_WRITE, &f) == 0) {
                    uint64_t sz = 0;
                    v->size(f, &sz);
                    uint8_t *d = malloc(sz ? sz : 1);
                    if (d && v->pread(f, d, sz, 0) == (int64_t)sz) {
                        uint64_t end = sz;
                        while (end && !d[end - 1]) end--;
                        if (end > 64 + 30) v->truncate(f, end - 30);
                    }
                    free(d);
                    v->close(f);
                }
            }
            tome_free(names);
        }
    }
    tome_local_test_vfs(NULL);
    if (!rc) rc = fuzz_open_encode(v, FO_DIR, (uint8_t)(which == 3 ? 6 : which == 4 ? 2 : which == 5 ? 12 : 0), out,
                                   n_out);
    v->destroy(v);
    return rc ? -1 : 0;
}
