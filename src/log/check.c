/*
 * check.c -- tome_check for the local engine: a read-only verification of
 * every checksum and invariant of a store, with a readable report.
 *
 * It opens the store read-only twice, one after the other: first scanning
 * the whole log (which reads and verifies every record of every segment,
 * the sequence of commits and the order of every key's versions), then the
 * way a normal open does (through the index file, if it is valid). Both
 * views of the index must agree exactly. Invariants checked on the scanned
 * index: every key has at least one version, versions strictly increase by
 * seq (I3), timestamps never decrease with seq (I2), every location lies in
 * a live segment inside its data. Nothing is written.
 */
#include "local.h"
#include "../api/db.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct digest {
    uint64_t keys, versions, bytes, last_seq;
    uint32_t crc;
    int bad;
    char why[200];
} digest;

static void take_digest(local *L, digest *d) {
    memset(d, 0, sizeof *d);
    tome_index_cursor c;
    uint64_t prev_ts_seq = 0, prev_ts = 0;
    (void)prev_ts_seq;
    (void)prev_ts;
    for (tome_entry *e = tome_index_first(L->ix, &c); e; e = tome_index_next(&c)) {
        if (e->nver == 0 && !d->bad) {
            d->bad = 1;
            snprintf(d->why, sizeof d->why, "a key with no version");
        }
        d->keys++;
        const tome_ver *v = tome_entry_vers(e);
        uint8_t kh[4] = {e->slot, 0, (uint8_t)e->klen, (uint8_t)(e->klen >> 8)};
        d->crc = tome_crc32c(d->crc, kh, 4);
        d->crc = tome_crc32c(d->crc, e->key, e->klen);
        for (uint32_t i = 0; i < e->nver; i++) {
            d->versions++;
            if (i && v[i].seq <= v[i - 1].seq && !d->bad) {
                d->bad = 1;
                snprintf(d->why, sizeof d->why, "versions out of order");
            }
            if (i && v[i].ts < v[i - 1].ts && !d->bad) {
                d->bad = 1;
                snprintf(d->why, sizeof d->why, "timestamps decrease");
            }
            uint32_t id = TOME_LOC_SEG(v[i].loc);
            seg *s = id < L->nsegs_cap ? L->segs[id] : NULL;
            if ((!s || TOME_LOC_OFF(v[i].loc) >= s->size) && !d->bad) {
                d->bad = 1;
                snprintf(d->why, sizeof d->why, "a version outside its segment");
            }
            uint8_t vb[28];
            tome_put64(vb, v[i].seq);
            tome_put64(vb + 8, v[i].ts);
            tome_put64(vb + 16, TOME_LOC_OFF(v[i].loc));
            tome_put32(vb + 24, v[i].vlen ^ (v[i].flags << 31));
            d->crc = tome_crc32c(d->crc, vb, sizeof vb);
            if (!(v[i].flags & TOME_VER_REMOVED)) d->bytes += v[i].vlen;
        }
    }
    d->last_seq = L->last_seq;
}

int tome_local_check(const char *path, char **report) {
    tome_buf out = {0};
    char line[512];
    struct tome_db tmp;
    memset(&tmp, 0, sizeof tmp);
    tome_options o;
    tome_options_init(&o);
    o.read_only = 1;
    o.must_exist = 1;
    tome_backend *b = NULL;
    int rc = local_open_ex(&tmp, path, &o, 1, &b);
    int result = 0;
    digest full, quick;
    if (rc) {
        snprintf(line, sizeof line, "open (full log scan): %s: %s\n", tome_strerror(rc), tome_errmsg(&tmp));
        tome_buf_append(&out, line, strlen(line));
        result = rc;
        goto done;
    }
    local *L = (local *)b;
    take_digest(L, &full);
    snprintf(line, sizeof line,
             "segments: %zu\nlast commit: %llu\nhorizon: %llu\nkeys: %llu\nversions: %llu\n"
             "every record of every segment: checksums verified\n",
             L->nlive, (unsigned long long)L->last_seq, (unsigned long long)atomic_load(&L->horizon),
             (unsigned long long)full.keys, (unsigned long long)full.versions);
    tome_buf_append(&out, line, strlen(line));
    if (L->torn) {
        snprintf(line, sizeof line, "torn tail: %s at offset %llu (uncommitted; the next open cuts it)\n",
                 L->torn_seg, (unsigned long long)L->torn_off);
        tome_buf_append(&out, line, strlen(line));
    }
    if (full.bad) {
        snprintf(line, sizeof line, "CORRUPT: %s\n", full.why);
        tome_buf_append(&out, line, strlen(line));
        result = TOME_CORRUPT;
    }
    b->ops->close(b);
    b = NULL;
    rc = local_open_ex(&tmp, path, &o, 0, &b);
    if (rc) {
        snprintf(line, sizeof line, "open (normal): %s: %s\n", tome_strerror(rc), tome_errmsg(&tmp));
        tome_buf_append(&out, line, strlen(line));
        if (!result) result = rc;
        goto done;
    }
    L = (local *)b;
    if (!L->index_used) {
        tome_buf_append(&out, "index file: absent or stale (ignored; rebuilt at the next close)\n", 66);
    } else {
        take_digest(L, &quick);
        if (quick.crc != full.crc || quick.keys != full.keys || quick.versions != full.versions ||
            quick.last_seq != full.last_seq) {
            tome_buf_append(&out, "CORRUPT: the index file disagrees with the log\n", 47);
            result = TOME_CORRUPT;
        } else {
            tome_buf_append(&out, "index file: valid, agrees with the log\n", 39);
        }
    }
    b->ops->close(b);
done:
    snprintf(line, sizeof line, "result: %s\n", result ? tome_strerror(result) : "ok");
    tome_buf_append(&out, line, strlen(line));
    tome_buf_append(&out, "", 1);
    tome_err_forget(&tmp);
    if (report && out.p) *report = (char *)out.p;
    else tome_buf_free(&out);
    return result;
}
