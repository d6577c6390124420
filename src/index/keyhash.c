/*
 * keyhash.c -- a hash table from (slot, key) to index entries, beside the
 * ordered B+tree, so that point lookups cost one probe instead of a tree
 * descent.
 *
 * How it works: open addressing with linear probing over an array of 8-byte
 * cells. A cell holds the entry pointer in its low 48 bits and a 16-bit tag
 * (the top bits of the key's hash) in its high bits, so a probe that meets
 * another key is rejected without touching that entry's memory. A key's
 * home cell is the low 32 bits of its hash scaled to the capacity
 * ((h32 * cap) >> 32), so the capacity need not be a power of two: a table
 * reserved for n keys (loading the index file) gets n / 0.7 cells, about 11
 * bytes per key instead of up to 16 with doubling alone. Past 4/5 full it
 * doubles, with a full rehash; removal uses backward-shift deletion, so
 * there are no tombstones.
 *
 * What if a pointer does not fit in 48 bits? On x86-64 and AArch64 user
 * space addresses do; kh_new refuses to work (returns NULL) on a platform
 * where a test allocation has high bits set, and the engine then falls back
 * to the tree alone.
 *
 * Locking is the caller's (the engine's index rwlock): lookups may run
 * concurrently with each other, changes need exclusive access.
 */
#include <string.h>

#include "../os/os.h"
#include "../util/util.h"
#include "index.h"
#include "keyhash.h"

#define PTR_MASK ((UINT64_C(1) << 48) - 1)
#define KH_GROUP 16   /* entries placed per group (place_group) */

struct tome_keyhash {
    uint64_t *cells;
    size_t cap;     /* power of two */
    size_t n;
};

static uint64_t key_hash(uint8_t slot, const void *key, size_t klen) {
    return tome_hash(key, klen, 0x51ED270B27F3A1C5ull + slot);
}

static uint64_t tag_of(uint64_t h) { return h & ~PTR_MASK; }
static size_t home_of(uint64_t h, size_t cap) { return (size_t)(((h & 0xffffffffu) * (uint64_t)cap) >> 32); }
static size_t next_of(size_t i, size_t cap) { return i + 1 == cap ? 0 : i + 1; }

tome_keyhash *tome_keyhash_new(void) {
    tome_keyhash *kh = tome_calloc(1, sizeof *kh);
    if (!kh) return NULL;
    if ((uint64_t)(uintptr_t)kh & ~PTR_MASK) {
        tome_free(kh);
        return NULL;
    }
    kh->cap = 1024;
    kh->cells = tome_calloc(kh->cap, sizeof *kh->cells);
    if (!kh->cells) {
        tome_free(kh);
        return NULL;
    }
    return kh;
}

void tome_keyhash_free(tome_keyhash *kh) {
    if (!kh) return;
    tome_free(kh->cells);
    tome_free(kh);
}

size_t tome_keyhash_memory(const tome_keyhash *kh) { return kh ? kh->cap * sizeof(uint64_t) : 0; }

uint64_t tome_keyhash_hash(uint8_t slot, const void *key, size_t klen) { return key_hash(slot, key, klen); }

void tome_keyhash_prefetch(const tome_keyhash *kh, uint64_t h) {
    __builtin_prefetch(&kh->cells[home_of(h, kh->cap)]);
}

tome_entry *tome_keyhash_find(const tome_keyhash *kh, uint8_t slot, const void *key, size_t klen) {
    return tome_keyhash_find_h(kh, key_hash(slot, key, klen), slot, key, klen);
}

tome_entry *tome_keyhash_find_h(const tome_keyhash *kh, uint64_t h, uint8_t slot, const void *key, size_t klen) {
    uint64_t tag = tag_of(h);
    size_t cap = kh->cap;
    for (size_t i = home_of(h, cap);; i = next_of(i, cap)) {
        uint64_t c = kh->cells[i];
        if (!c) return NULL;
        if ((c & ~PTR_MASK) != tag) continue;
        tome_entry *e = (tome_entry *)(uintptr_t)(c & PTR_MASK);
        if (e->slot == slot && e->klen == klen && (!klen || !memcmp(e->key, key, klen))) return e;
    }
}

static void place_h(uint64_t *cells, size_t cap, tome_entry *e, uint64_t h) {
    size_t i = home_of(h, cap);
    while (cells[i]) i = next_of(i, cap);
    cells[i] = tag_of(h) | ((uint64_t)(uintptr_t)e & PTR_MASK);
}

/* Places g[0..m) (hashes h) into cells: all their home cells are fetched
 * before any is written, so that the cache misses of a group overlap. */
static void place_group(uint64_t *cells, size_t cap, tome_entry *const *g, uint64_t *h, size_t m) {
    for (size_t j = 0; j < m; j++) {
        h[j] = key_hash(g[j]->slot, g[j]->key, g[j]->klen);
        __builtin_prefetch(&cells[home_of(h[j], cap)], 1);
    }
    for (size_t j = 0; j < m; j++) place_h(cells, cap, g[j], h[j]);
}

void tome_keyhash_insert_many(tome_keyhash *kh, tome_entry *const *e, size_t n) {
    uint64_t h[KH_GROUP];
    for (size_t base = 0; base < n; base += KH_GROUP) {
        size_t m = n - base < KH_GROUP ? n - base : KH_GROUP;
        place_group(kh->cells, kh->cap, e + base, h, m);
        kh->n += m;
    }
}

/* Makes room for `more` entries. 0 or TOME_NOMEM (table unchanged).
 * Growing rehashes every entry, which means reading each entry's key (a
 * cell keeps only 16 bits of the hash): entries and new cells are fetched a
 * group ahead so that those cache misses overlap. */
int tome_keyhash_reserve(tome_keyhash *kh, size_t more) {
    size_t need = kh->n + more;
    if (need <= kh->cap / 5 * 4) return 0;
    size_t nc = kh->cap * 2;
    if (nc / 10 * 7 < need) nc = need / 7 * 10 + 16;
    if (nc > UINT32_MAX) return TOME_NOMEM; /* home_of scales 32-bit hashes */
    uint64_t *cells = tome_calloc(nc, sizeof *cells);
    if (!cells) return TOME_NOMEM;
    tome_entry *g[KH_GROUP];
    uint64_t h[KH_GROUP];
    size_t m = 0;
    for (size_t i = 0; i < kh->cap; i++) {
        if (!kh->cells[i]) continue;
        g[m] = (tome_entry *)(uintptr_t)(kh->cells[i] & PTR_MASK);
        __builtin_prefetch(g[m]);
        if (++m == KH_GROUP) {
            place_group(cells, nc, g, h, m);
            m = 0;
        }
    }
    place_group(cells, nc, g, h, m);
    tome_free(kh->cells);
    kh->cells = cells;
    kh->cap = nc;
    return 0;
}

int tome_keyhash_insert(tome_keyhash *kh, tome_entry *e) {
    return tome_keyhash_insert_h(kh, e, key_hash(e->slot, e->key, e->klen));
}

int tome_keyhash_insert_h(tome_keyhash *kh, tome_entry *e, uint64_t h) {
    if ((uint64_t)(uintptr_t)e & ~PTR_MASK) return TOME_INVALID;
    int rc = tome_keyhash_reserve(kh, 1);
    if (rc) return rc;
    place_h(kh->cells, kh->cap, e, h);
    kh->n++;
    return 0;
}

void tome_keyhash_remove(tome_keyhash *kh, const tome_entry *e) {
    size_t cap = kh->cap;
    uint64_t h = key_hash(e->slot, e->key, e->klen);
    size_t i = home_of(h, cap);
    for (;; i = next_of(i, cap)) {
        uint64_t c = kh->cells[i];
        if (!c) return; /* not present */
        if ((const tome_entry *)(uintptr_t)(c & PTR_MASK) == e) break;
    }
    /* backward-shift deletion */
    size_t j = i;
    for (;;) {
        kh->cells[i] = 0;
        for (;;) {
            j = next_of(j, cap);
            uint64_t c = kh->cells[j];
            if (!c) {
                kh->n--;
                return;
            }
            tome_entry *x = (tome_entry *)(uintptr_t)(c & PTR_MASK);
            size_t home = home_of(key_hash(x->slot, x->key, x->klen), cap);
            /* can x move to i? only if i lies cyclically in [home, j) */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
                kh->cells[i] = c;
                i = j;
                break;
            }
        }
    }
}
