/*
 * backend.h -- the internal interface between tome's transactions and a
 * storage backend.
 *
 * The public API (src/api) checks arguments and owns handles; the
 * transaction layer (src/txn) keeps each transaction's read cache, write
 * buffer and read set. Everything that touches storage goes through a
 * tome_backend: snapshots, version lookups, value reads, ordered key
 * cursors, validated commits, merge and figures. The local log engine
 * (src/log) is the first backend; a PostgreSQL backend implements the same
 * table later.
 *
 * Error detail: a backend reports failures with tome_err(b->db, code, ...)
 * and returns the code.
 */
#ifndef TOME_BACKEND_H
#define TOME_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../../include/tome.h"

typedef struct tome_backend tome_backend;
typedef struct tome_bcursor tome_bcursor;

/* A snapshot: what a transaction sees. */
typedef struct tome_snap {
    uint64_t seq;       /* sees the commits <= seq */
    uint64_t ts;        /* timestamp of commit seq (0 if seq == 0) */
    uint64_t horizon;   /* history horizon when the snapshot began */
    void    *reg;       /* the backend's registration of this snapshot */
} tome_snap;

/* A committed version as a backend hands it out. */
typedef struct tome_bver {
    uint64_t seq, ts;
    uint64_t loc;       /* backend-private: where the value lies */
    uint32_t vlen;
    uint32_t flags;     /* TOME_BVER_REMOVED, backend-private bits above 0xff */
    const void *rec;    /* backend-private: the record, readable in place
                           for the snapshot's life, or NULL */
} tome_bver;
#define TOME_BVER_REMOVED 0x1u

/* One staged write, as a commit passes it down. */
typedef struct tome_wop {
    const uint8_t *key;
    const uint8_t *val;
    size_t   klen, vlen;
    uint8_t  slot;
    uint8_t  removed;
} tome_wop;

/* One iterated prefix of a read set. */
typedef struct tome_rprefix {
    const uint8_t *prefix;
    size_t len;
    uint8_t slot;
} tome_rprefix;

/* The read set of a committing transaction. */
typedef struct tome_rset {
    /* 1 if (slot, key) was read by a point read (present or not). */
    int (*has_key)(void *ctx, uint8_t slot, const uint8_t *key, size_t klen);
    void *ctx;
    const tome_rprefix *prefixes;
    size_t nprefixes;
} tome_rset;

/* Allocator for memory a read hands out (the transaction's arena). */
typedef void *(*tome_alloc_fn)(void *ctx, size_t n);

typedef struct tome_backend_ops {
    const char *name;
    /* Makes everything durable and frees the backend. */
    int  (*close)(tome_backend *b);
    int  (*sync)(tome_backend *b);
    /* at == UINT64_MAX: the newest visible commit; otherwise time travel
     * (TOME_NOTFOUND below the horizon, TOME_INVALID past the newest). */
    int  (*snap_begin)(tome_backend *b, uint64_t at, tome_snap *out);
    void (*snap_end)(tome_backend *b, tome_snap *s);
    /* The versions of (slot, key) visible to s, oldest first, written to
     * an array allocated with alloc (NULL, 0 when none). */
    int  (*versions)(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key,
                     size_t klen, tome_alloc_fn alloc, void *actx, tome_bver **out, size_t *n);
    /* Reads and verifies the value of version v of (slot, key), a version
     * snapshot s saw. *val_out stays valid until s ends: it points into
     * memory allocated with alloc, or into storage the backend keeps for
     * the snapshot's life. */
    int  (*read)(tome_backend *b, const tome_snap *s, const tome_bver *v, uint8_t slot, const void *key,
                 size_t klen, tome_alloc_fn alloc, void *actx, const void **val_out);
    /* The value of the newest version of (slot, key) visible to s (memory
     * as read): versions + read in one step. TOME_NOTFOUND if there is
     * none or it is a removal. */
    int  (*newest)(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key, size_t klen,
                   tome_alloc_fn alloc, void *actx, const void **val_out, size_t *len_out);
    /* Ordered cursor over the keys of slot starting with prefix whose newest
     * version visible to s is not a removal. next gives TOME_NOTFOUND at the
     * end; the key stays valid until the next call or close; *newest is
     * that version (for reading the value with read). */
    int  (*cursor_open)(tome_backend *b, const tome_snap *s, uint8_t slot, const void *prefix,
                        size_t plen, tome_bcursor **out);
    int  (*cursor_next)(tome_bcursor *c, const uint8_t **key, size_t *klen, tome_bver *newest);
    void (*cursor_close)(tome_bcursor *c);
    /* Validates the read set against the commits after s, then writes ops
     * as one commit. TOME_CONFLICT leaves nothing written. flags:
     * TOME_COMMIT_NOSYNC. */
    int  (*commit)(tome_backend *b, const tome_snap *s, const tome_wop *ops, size_t n,
                   const tome_rset *rs, unsigned flags, uint64_t *seq_out, uint64_t *ts_out);
    int  (*merge)(tome_backend *b);
    int  (*stats)(tome_backend *b, tome_stats *out);
    /* The newest visible commit. */
    void (*last)(tome_backend *b, uint64_t *seq, uint64_t *ts);
    /* The clock the backend stamps commits with. */
    uint64_t (*now_ms)(tome_backend *b);
} tome_backend_ops;

struct tome_backend {
    const tome_backend_ops *ops;
    tome_db *db;
};

/* The local log engine (src/log). path ":memory:" uses an in-memory vfs. */
int tome_local_open(tome_db *db, const char *path, const tome_options *opts, tome_backend **out);
/* Read-only full verification of a local store (tome_check). */
int tome_local_check(const char *path, char **report);

#endif /* TOME_BACKEND_H */
