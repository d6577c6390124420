/*
 * index.h -- the in-memory ordered index of the local engine.
 *
 * Every key of the store has one tome_entry: its slot, its bytes and the
 * list of its versions (oldest first). The index keeps the entries ordered
 * by (slot, key bytes) so that prefix iteration needs no sorting, and finds
 * one in O(log n).
 *
 * The index itself does no locking: the engine holds a rwlock around it
 * (readers share it, commits and merges take it exclusively). It owns the
 * tree nodes, not the entries: the engine allocates and frees entries.
 */
#ifndef TOME_INDEX_H
#define TOME_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* A version as the local engine holds it: 32 bytes. */
typedef struct tome_ver {
    uint64_t seq;     /* commit sequence number */
    uint64_t ts;      /* commit timestamp, ms */
    uint64_t loc;     /* where the record lies: TOME_LOC(segment number, offset) */
    uint32_t vlen;    /* value length */
    uint32_t flags;   /* TOME_VER_REMOVED, ... */
} tome_ver;

#define TOME_VER_REMOVED 0x1u
#define TOME_VER_MERGED  0x2u   /* the record is a merged record (longer header) */

#define TOME_LOC(segno, off) (((uint64_t)(segno) << 40) | (uint64_t)(off))
#define TOME_LOC_SEG(loc)    ((uint32_t)((loc) >> 40))
#define TOME_LOC_OFF(loc)    ((loc) & ((UINT64_C(1) << 40) - 1))

/* One key. Allocated by the engine as one block: the header, then the key. */
typedef struct tome_entry {
    uint32_t nver;    /* number of versions, >= 1 while in the index */
    uint16_t klen;    /* key length (TOME_MAX_KEY_LEN is 65535) */
    uint8_t  slot;
    uint8_t  spill;   /* 1: the versions are in v.many.a although nver <= 1
                         (room reserved for a commit in flight) */
    union {
        tome_ver one;    /* nver == 1 and !spill */
        struct {         /* otherwise */
            tome_ver *a; /* the versions; capacity = next power of two >= max(nver, 2) */
            /* a copy of a[nver - 1]'s seq, place and length (nver >= 1), so
             * that a read of the newest version need not fetch a[]; kept by
             * tome_entry_sync_newest after every change of a[] */
            uint64_t seq, loc;
            uint32_t vlen, flags;
        } many;
    } v;
    uint8_t key[];
} tome_entry;

static inline tome_ver *tome_entry_vers(tome_entry *e) {
    return (e->nver == 1 && !e->spill) ? &e->v.one : e->v.many.a;
}

/* Refreshes the copy of the newest version kept beside v.many.a. Call after
 * every change of the versions of an entry whose versions are in the array. */
static inline void tome_entry_sync_newest(tome_entry *e) {
    if ((e->nver > 1 || e->spill) && e->nver >= 1) {
        const tome_ver *n = &e->v.many.a[e->nver - 1];
        e->v.many.seq = n->seq;
        e->v.many.loc = n->loc;
        e->v.many.vlen = n->vlen;
        e->v.many.flags = n->flags;
    }
}

/* Compares (slot, key) with the entry's: <0, 0, >0 (slot first, then bytes,
 * then length: a prefix sorts first). */
int tome_entry_cmp(uint8_t slot, const void *key, size_t klen, const tome_entry *e);

typedef struct tome_index tome_index;

/* Cursor: a position in the index. Valid until the index is modified by
 * tome_index_insert or tome_index_remove (check tome_index_mods). */
typedef struct tome_index_cursor {
    const tome_index *ix;
    void *leaf;
    unsigned pos;
    uint64_t mods;
} tome_index_cursor;

/* NULL when out of memory. */
tome_index *tome_index_new(void);
/* Frees the tree; calls free_entry (if not NULL) on every entry. */
void tome_index_free(tome_index *ix, void (*free_entry)(tome_entry *e, void *arg), void *arg);

size_t tome_index_count(const tome_index *ix);
/* Bytes of memory the tree's nodes take (not the entries). */
size_t tome_index_memory(const tome_index *ix);
/* A counter that changes on every insert and remove. */
uint64_t tome_index_mods(const tome_index *ix);

/* The entry for (slot, key), or NULL. */
tome_entry *tome_index_find(const tome_index *ix, uint8_t slot, const void *key, size_t klen);

/* Adds e, whose (slot, key) must not be in the index yet. Returns 0, or
 * TOME_NOMEM (the index is then unchanged). */
int tome_index_insert(tome_index *ix, tome_entry *e);

/* Adds the n entries sorted[0..n), none of which may be in the index yet,
 * as n tome_index_insert calls would, all or nothing. In key order
 * (tome_entry_cmp) each search starts from the previous key's path instead
 * of the root: some 10% faster than n inserts of the same sorted keys (not
 * worth a sort of its own). Any order is correct, just not faster. Returns
 * 0; or TOME_NOMEM, or TOME_INVALID (a key already present, or twice in the
 * batch), with the index holding exactly the entries it held before (in
 * nodes that may differ; tome_index_mods changes if some were inserted and
 * taken out again). */
int tome_index_insert_batch(tome_index *ix, tome_entry **sorted, size_t n);

/* Adds e, which must sort after every entry in the index (bulk loading in
 * order, e.g. from the index file). Faster than insert. 0 or TOME_NOMEM. */
int tome_index_append(tome_index *ix, tome_entry *e);

/* Fills the empty index ix with the n entries sorted[0..n), which must be
 * strictly increasing (tome_entry_cmp order): bulk loading, e.g. from the
 * index file, some ten times faster than n appends, in full leaves (no more
 * memory). Returns 0; or TOME_NOMEM, or TOME_INVALID (entries out of order),
 * with ix left empty; TOME_INVALID, changing nothing, when ix is not empty. */
int tome_index_build(tome_index *ix, tome_entry *const *sorted, size_t n);

/* Removes the entry with e's (slot, key) (it must be present); does not free
 * it. Never fails. */
void tome_index_remove(tome_index *ix, const tome_entry *e);

/* Positions c at the first entry >= (slot, key); returns that entry or NULL
 * at the end. */
tome_entry *tome_index_seek(const tome_index *ix, tome_index_cursor *c,
                            uint8_t slot, const void *key, size_t klen);
/* Positions c at the first entry of the index (NULL if empty). */
tome_entry *tome_index_first(const tome_index *ix, tome_index_cursor *c);
/* Moves c to the next entry and returns it, or NULL at the end. */
tome_entry *tome_index_next(tome_index_cursor *c);

#endif /* TOME_INDEX_H */
