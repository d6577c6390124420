/*
 * local.h -- shared internals of the local log engine: the on-disk record
 * layout (docs/FORMAT.md is the byte-level specification), the segment
 * table, and the engine state that engine.c, recover.c, idxfile.c and
 * merge.c share.
 *
 * Locks, always taken in this order (never the reverse):
 *   merge_mu  -> commit_mu -> ix_lock (rwlock) -> reg_mu
 *   ix_lock -> map_mu (seg_map creates a segment's mapping)
 *   sync_mu is never held while taking commit_mu.
 */
#ifndef TOME_LOCAL_H
#define TOME_LOCAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../api/backend.h"
#include "../index/index.h"
#include "../index/keyhash.h"
#include "../os/os.h"
#include "../util/util.h"

/* ---- on-disk layout (see docs/FORMAT.md) ---- */

#define SEG_HDR_SIZE    64
#define SEG_MAGIC_LOG   "TOMESEG1"
#define SEG_MAGIC_MRG   "TOMEMRG1"
#define FORMAT_VERSION  1

#define REC_HDR_SIZE    16
#define REC_PUT         1
#define REC_DEL         2
#define REC_COMMIT      3
#define REC_MPUT        4   /* merged put: header, seq, ts, key, value */
#define REC_MDEL        5   /* merged removal */
#define REC_MERGED_EXTRA 16
#define COMMIT_PAYLOAD  48
#define COMMIT_SIZE     (REC_HDR_SIZE + COMMIT_PAYLOAD)
#define COMMIT_MAGIC    "TOMECMT!"

#define DEFAULT_SEGMENT_SIZE (UINT64_C(64) << 20)
#define MAX_SEGMENT_OFF      ((UINT64_C(1) << 40) - 1)

/* Segment header fields. */
typedef struct seg_hdr {
    int      merged;      /* 0: log segment, 1: merged segment */
    uint64_t lo, hi;      /* segment numbers covered (lo == hi for a log) */
    uint64_t base_seq;    /* log: last seq before this segment; merged: horizon */
    uint64_t last_seq;    /* merged: newest commit when the merge began */
    uint64_t last_ts;     /* merged: its timestamp */
    uint64_t horizon_ts;  /* merged: timestamp of the horizon commit */
} seg_hdr;

void seg_hdr_encode(uint8_t out[SEG_HDR_SIZE], const seg_hdr *h);
/* 0, or TOME_CORRUPT if the magic, version or checksum is wrong. */
int  seg_hdr_decode(const uint8_t in[SEG_HDR_SIZE], seg_hdr *h);

/* Writes the 16-byte record header (crc left 0). */
void rec_hdr_encode(uint8_t out[REC_HDR_SIZE], int type, uint8_t slot, uint32_t klen, uint32_t vlen);
/* crc of a record = crc32c over bytes 4.. of the record. */

/* ---- segments ---- */

typedef struct seg {
    uint32_t   id;        /* in-memory id, used in tome_ver.loc; never reused */
    int        merged;
    uint64_t   lo, hi;    /* file numbers covered */
    tome_file *f;
    uint64_t   size;      /* end of valid data (log: append offset) */
    uint64_t   cap;       /* preallocated size (log) */
    uint64_t   base_seq;  /* log: the last commit before this segment (header) */
    uint64_t   last_seq;  /* newest commit held (log: written; merged: header) */
    uint64_t   last_ts;
    _Atomic uint64_t synced;  /* bytes known durable (log) */
    atomic_int refs;      /* the table's reference + readers in flight */
    int        dead;      /* superseded by a merge: unlink at last unref */
    char       name[48];
    /* Read-only mapping of the file's first map_len bytes, made at the
     * first read (seg_map); map_len is set before map is published. */
    _Atomic(const uint8_t *) map;
    uint64_t   map_len;
    atomic_int map_failed;   /* mapping is not possible: use pread */
} seg;

/* ---- recent commits, for validation ---- */

typedef struct rc_key {
    const uint8_t *key;
    uint32_t klen;
    uint8_t  slot;
    uint8_t  changed;     /* presence changed (created or removed) */
} rc_key;

typedef struct rc_entry {
    struct rc_entry *next;   /* newer */
    uint64_t seq;
    size_t   n;
    rc_key  *keys;           /* keys point into the same allocation */
} rc_entry;

/* ---- open snapshots ---- */

typedef struct snap_reg {
    struct snap_reg *prev, *next;
    uint64_t seq;
    uint64_t horizon;
    /* Segments this snapshot holds a reference to, because values or keys
     * handed out point into their mappings (read.c). Touched only by the
     * thread using the transaction; released by snap_end. */
    seg    **pins;
    uint32_t npins, pincap;
} snap_reg;

/* ---- the engine ---- */

typedef struct local {
    tome_backend base;
    tome_vfs *vfs;
    int       own_vfs;
    int       memory;
    int       read_only;
    int       sync_mode;
    uint64_t  segment_size;
    uint32_t  history_versions;
    uint64_t  history_ms;
    char     *dir;
    tome_file *lockf;

    /* index and segment table: ix_lock */
    pthread_rwlock_t ix_lock;
    tome_index *ix;
    tome_keyhash *kh;      /* point lookups; NULL: the tree alone */
    seg      **segs;       /* by in-memory id; NULL when gone */
    uint32_t   nsegs_cap;
    uint32_t   next_id;
    seg      **live;       /* live segments in file order */
    size_t     nlive;
    uint64_t   nversions;

    /* commit path: commit_mu */
    pthread_mutex_t commit_mu;
    seg      *act;         /* active log segment */
    uint64_t  next_file;   /* next segment file number */
    uint64_t  last_seq, last_ts;   /* newest written commit */
    rc_entry *rc_head, *rc_tail;   /* recent commits, oldest first */
    uint64_t *ctab;        /* commit timestamps, ctab[seq - ctab_base] */
    uint64_t  ctab_base, ctab_n, ctab_cap;

    /* durability: sync_mu */
    pthread_mutex_t sync_mu;
    pthread_cond_t  sync_cv;
    int       syncing;
    _Atomic uint64_t durable_seq;
    _Atomic uint64_t visible_seq;
    atomic_int poisoned;   /* a write or sync failed: writes refused */

    /* snapshots: reg_mu */
    pthread_mutex_t reg_mu;
    snap_reg  reg;         /* list head */
    size_t    nreg;
    _Atomic uint64_t horizon;
    uint64_t  disk_horizon;  /* the largest horizon in a live merged header (merge_mu) */

    pthread_mutex_t merge_mu;

    /* mapped reads (read.c): 0 when the vfs cannot map or the options say
     * no; map_mu serialises the creation of mappings */
    int       use_map;
    pthread_mutex_t map_mu;

    /* recovery notes (for tome_check) */
    int       no_index;    /* scan the whole log, ignore INDEX */
    int       index_used;  /* INDEX was loaded */
    int       torn;        /* a torn tail was found (and cut unless read-only) */
    uint64_t  torn_off;
    char      torn_seg[48];

    /* group commit (commit.c), under sync_mu unless atomic; all zero at
     * open. gc_written is the newest commit written, in segment gc_seg
     * (written under commit_mu and sync_mu) ending at gc_off. A sync is a
     * ticket: claimed (covering every commit written so far, up to
     * gc_cover), run outside the locks, published in ticket order. */
    _Atomic uint64_t gc_written, gc_off;
    uint64_t  gc_cover;
    seg      *gc_seg;
    uint64_t  gc_next, gc_pub;   /* next ticket to claim, to publish */
    struct gc_ticket {
        uint64_t target, off;    /* newest seq covered; segment offset synced */
        seg     *s;              /* the segment (a reference), or NULL */
        int      done, err;      /* finished; its error (-errno) */
        uint64_t t0;             /* when it was claimed (ns) */
    } gc_ring[8];
    struct gc_waiter *gc_waiters; /* threads waiting for durability */
    int       gc_failed;         /* a log sync failed: nothing is published again */
    int       gc_drain;          /* local_rotate waits for a ticket (sync_cv) */
    int       gc_timer;          /* a waiter waits until gc_deadline to start a sync */
    uint32_t  gc_uncov;          /* commits waiting that no sync covers */
    uint32_t  gc_target;         /* commits expected this round */
    uint64_t  gc_deadline;       /* when this round's sync starts at the latest (ns) */
    uint64_t  gc_sync_ns;        /* how long a sync takes (moving average) */
    uint64_t  gc_zeroed;         /* the active segment is written (data or zeros) up to here (commit_mu) */
    /* the commit queue (commit.c): requests pushed by committing threads,
     * written by the one thread that holds cq_busy */
    _Atomic(struct commit_req *) cq_stack;
    atomic_int cq_busy;
    /* the newest recent commits by seq, rc_ring[seq % 256] (commit_mu) */
    rc_entry *rc_ring[256];
} local;

int local_open_ex(tome_db *db, const char *path, const tome_options *o, int no_index, tome_backend **out);

/* Tests: makes every later open of a path (not ":memory:") use `vfs`
 * instead of the POSIX one (fault injection, simulated power loss). NULL
 * restores the POSIX vfs. The caller keeps ownership of vfs. */
void tome_local_test_vfs(tome_vfs *vfs);

/* engine.c: the index pair (ordered tree + key hash), under ix_lock */
tome_entry *ix_find(local *L, uint8_t slot, const void *key, size_t klen);
int   ix_insert(local *L, tome_entry *e);   /* 0 or TOME_NOMEM (unchanged) */
/* The same with the key's hash computed once (ix_hash), so that a commit
 * can prefetch the hash cells of all its keys first (ix_prefetch). */
uint64_t ix_hash(uint8_t slot, const void *key, size_t klen);
void  ix_prefetch(local *L, uint64_t h);
tome_entry *ix_find_h(local *L, uint64_t h, uint8_t slot, const void *key, size_t klen);
int   ix_insert_h(local *L, tome_entry *e, uint64_t h);
int   ix_append(local *L, tome_entry *e);   /* sorted bulk load */
/* Fills the empty index with ents[0..n), strictly increasing (the tree
 * built bottom-up). 0, or TOME_NOMEM / TOME_CORRUPT (not in order) with the
 * index empty and the entries still the caller's. */
int   ix_build(local *L, tome_entry **ents, size_t n);
void  ix_remove(local *L, tome_entry *e);   /* does not free e */
int   ix_reset(local *L);                   /* frees every entry; empty index */

/* engine.c */
int   local_rotate(local *L);   /* under commit_mu: seal the active segment */
seg  *seg_new(local *L);
void  seg_unref(local *L, seg *s);
/* The segment's mapping if it covers [0, end), else NULL (read with pread).
 * Maps the file at the first call. Caller holds a reference or ix_lock. */
const uint8_t *seg_map(local *L, seg *s, uint64_t end);
void  seg_unmap(local *L, seg *s);   /* at the segment's end */
int   seg_table_add(local *L, seg *s);   /* under ix_lock (write) or before use */
int   seg_table_reserve(local *L);       /* room for one more id */
void  seg_name(char *out, size_t n, int merged, uint64_t lo, uint64_t hi);
int   local_path(local *L, const char *name, char **out);
int   local_create_log(local *L, uint64_t fileno, uint64_t base_seq, seg **out);
int   ctab_set(local *L, uint64_t seq, uint64_t ts);
uint64_t ctab_get(local *L, uint64_t seq);
tome_entry *entry_new(uint8_t slot, const void *key, size_t klen);
void  entry_free(tome_entry *e, void *arg);
int   entry_reserve(tome_entry *e, uint32_t want);
void  entry_push(tome_entry *e, const tome_ver *v);
void  entry_drop_flags(tome_entry *e);
int   local_read_record(local *L, seg *s, uint64_t off, uint8_t slot, const void *key,
                        size_t klen, uint32_t vlen, int merged, tome_alloc_fn alloc,
                        void *actx, const void **val_out);


int   local_io_err(local *L, int e, const char *what, const char *name);
/* The versions [*b, *m) of v[0..n) that a snapshot (seq, horizon h) sees. */
void  local_vis_range(local *L, const tome_ver *v, uint32_t n, uint64_t seq, uint64_t h,
                      uint32_t *b_out, uint32_t *m_out);
void  local_atomic_max(_Atomic uint64_t *a, uint64_t v);

/* read.c: snapshots, reads and cursors (backend ops) */
int   local_snap_begin(tome_backend *b, uint64_t at, tome_snap *out);
void  local_snap_end(tome_backend *b, tome_snap *s);
uint64_t local_reg_min(local *L);   /* oldest open snapshot seq, under reg_mu */
int   local_versions(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key, size_t klen,
                     tome_alloc_fn alloc, void *actx, tome_bver **out, size_t *n);
int   local_read(tome_backend *b, const tome_snap *s, const tome_bver *v, uint8_t slot, const void *key,
                 size_t klen, tome_alloc_fn alloc, void *actx, const void **val_out);
int   local_newest(tome_backend *b, const tome_snap *s, uint8_t slot, const void *key, size_t klen,
                   tome_alloc_fn alloc, void *actx, const void **val_out, size_t *len_out);
int   local_cursor_open(tome_backend *b, const tome_snap *s, uint8_t slot, const void *prefix,
                        size_t plen, tome_bcursor **out);
int   local_cursor_next(tome_bcursor *c, const uint8_t **key, size_t *klen, tome_bver *newest);
void  local_cursor_close(tome_bcursor *c);

/* commit.c: the commit path and group commit (backend ops) */
int   local_sync(tome_backend *b);
int   local_commit(tome_backend *b, const tome_snap *s, const tome_wop *ops, size_t n,
                   const tome_rset *rs, unsigned flags, uint64_t *seq_out, uint64_t *ts_out);

/* recover.c */
int  local_recover(local *L);
/* Scans one log segment from `from`; applies complete commits. */
int  local_scan_log(local *L, seg *s, uint64_t from, int is_last, int *damaged);

/* idxfile.c */
int  idxfile_write(local *L);
/* 1 if loaded (index filled), 0 if absent/stale/damaged (index empty),
 * or a negative code for other failures. On 1, from_live and from_off say
 * where the log replay starts. */
int  idxfile_load(local *L, size_t *from_live, uint64_t *from_off);

/* merge.c */
int  local_merge(tome_backend *b);

#endif /* TOME_LOCAL_H */
