/*
 * btree.c -- the in-memory ordered index: a B+tree of tome_entry pointers.
 *
 * HOW IT WORKS
 *
 * Keys are ordered by (slot, key bytes, length). Internally a key is seen as
 * the byte string S = slot || key; the tree orders S lexicographically, a
 * prefix first. For the small "heads" that let a search skip most key
 * compares, S is also read as an infinite string padded with zero bytes
 * ("padded S"). Padding keeps order in the weak sense: a < b implies
 * padded(a) <= padded(b), and padded(a) < padded(b) implies a < b. So a head
 * comparison that differs decides the order, and equal heads fall back to a
 * full compare (tome_entry_cmp).
 *
 * Leaves hold up to LEAF_MAX (128) entry pointers in key order, plus a
 * parallel array of 16-bit heads. A head is 16 bits of the entry chosen so
 * that they tell the entries of that leaf apart. Each leaf has a pattern:
 *   - pb: every entry of the leaf has the same first pb bits of padded S
 *     (the leaf's prefix), so those bits are useless for telling them apart;
 *   - the window: the 64 bits [pb, pb+64) that follow;
 *   - m: at most 16 window bits, the ones the heads are made of, and lim:
 *     every window bit before lim that is not in m has the same value in all
 *     entries of the leaf (it is constant, so useless too).
 * head[i] is the bits of entry i selected by m, in order, packed to the left
 * of 16 bits (a software pext: a shift and a mask when m is one run of bits,
 * as with random keys; a loop over the runs otherwise, their positions
 * worked out once when a whole leaf's heads are made). Packing keeps order:
 * for entries of the leaf
 * that differ before lim, the first bit where they differ is in m, so
 * comparing heads compares keys; equal heads need a full compare. With 1M
 * random keys m is simply the 16 bits after the prefix; with keys such as
 * "user:0001234567" the constant high nibble of each digit is skipped and a
 * head holds four digits instead of two. Measured: 1.02 (random binary) and
 * 1.04 (random decimal text) full key compares per successful lookup, the
 * one compare that confirms the hit included.
 *
 * A lookup computes the search key's head (its window at pb, then pext),
 * finds the first head >= it (with SSE2 by counting the heads below it, 8 at
 * a time; else a branch-free binary search) and compares the full key with
 * the (usually one) entry whose head matches. It never checks that the
 * search key follows the pattern: an equal key would, and would have the same
 * head. Seek and insert need the order. Each leaf keeps ref, the first 128
 * bits of padded S of a key that follows its pattern (one of its entries,
 * copied), so when pb + lim <= 128 the key is checked against the prefix and
 * the constant bits without reading an entry: a key that follows the pattern
 * and whose head no entry has lies between the heads, its position known
 * from them alone. That is nearly every insert of random keys, and it took
 * the insert's costliest step away (the entry read, a cache miss: 1.4 M
 * random inserts/s at 1M keys before, 2.8 after). Otherwise they find the
 * first bit p where the key departs
 * from the pattern (from the one entry compared anyway): p in the prefix
 * puts the key below or above the whole leaf; p at a constant window bit
 * puts it below or above the run of entries whose pattern bits before p
 * match the key's (a range of heads). An insert of such a key widens the
 * pattern (a shorter prefix, more bits in m); the new heads are computed
 * from the old heads and the constant bits of one entry, without reading the
 * other entries; ref stays valid (the old entries keep their bits). When a
 * leaf splits, each half whose prefix grew by more than REFINE_BITS bits or
 * whose heads tie too often gets its pattern, ref and heads recomputed from
 * its entries, so heads stay discriminating as the tree grows (whether the
 * prefix grew is read from the heads of the first and last entries: where
 * they first differ is where the keys do).
 *
 * Leaves are allocated at the capacity they need, in steps of LEAF_STEP (8)
 * slots (10 bytes per slot: pointer + head; 48-byte header), and grown with
 * tome_realloc.
 * That, and not a fixed node size, is what keeps the memory near 11.4 bytes
 * per key on random inserts (fixed 128-slot leaves would be ~69% full).
 * Steps of 16 were measured: 0.5 byte per key more, no faster.
 * Leaves are doubly linked in key order (next for iteration, prev so a leaf
 * that moves when resized can be relinked).
 *
 * Inner nodes have up to INNER_MAX (64) children and n-1 separators. Each
 * separator is a pointer to an entry of the tree (the smallest entry of the
 * child to its right) and a 64-bit head: the 8 bytes of padded S that follow
 * the node's prefix, which is stored inline (up to PFX_MAX bytes; all the
 * node's separators share it). Routing compares the search key with the
 * inline prefix (below it: child 0; above it: last child), then finds the
 * first head above the key's in two rounds of independent compares (the
 * last head of each group of 8, then the heads of one group) instead of six
 * dependent binary search steps, and compares full keys only for separators
 * whose head equals the key's. A descent prefetches each node as soon as it
 * knows it: an inner node's header and heads (9 lines), a leaf's header and
 * heads (5 lines).
 *
 * Splits: a full leaf splits in two halves, except at the ends of the key
 * space: inserting past the last entry of the rightmost leaf leaves the left
 * leaf full and starts a new one (the same for the first entry of the
 * leftmost leaf), so ascending or descending loads give full leaves; inner
 * nodes follow the same rule on the right and left edges.
 * tome_index_append walks the right edge and uses that path (growing the
 * rightmost leaf straight to LEAF_MAX), which makes bulk loading in order
 * fill every leaf and inner node completely.
 *
 * tome_index_build fills an empty tree bottom-up from a sorted array: full
 * leaves (the last no larger than it needs), and on each level above the
 * fewest inner nodes, sharing the children evenly. Every node is allocated
 * first (TOME_NOMEM has nothing to undo); then each leaf's pattern, ref and
 * heads are computed once (one pass over its entries, prefetched, as each is
 * a cache miss), each inner node's prefix and heads once it is full. The
 * input's order is checked on the way. Same memory as an append load; 25-40
 * M entries/s at 1M, against 3-4 M/s for appends.
 *
 * tome_index_insert_batch goes through a sorted batch with a finger, the
 * path of the previous key: the next one climbs only to the lowest node
 * where it is below the separator right of the path (a head compare), then
 * routes down. After a split (ix->splits), or for a key that does not sort
 * after the previous one, the search starts at the root: any order is
 * correct. When an insert fails, those before it are removed again (removal
 * never fails). Measured (1M random keys, batches of 1000): ~10% faster than
 * the sorted batches one insert at a time, less than a qsort of them costs;
 * fetching the next keys' leaves ahead (a second finger) gained nothing, its
 * descent costing what the misses it hid did.
 *
 * Everything an insert may need (a grown leaf, a new leaf, one new inner
 * node per full level on the path, a new root) is allocated before the tree
 * is modified; on failure nothing has changed and TOME_NOMEM is returned.
 * Only optional allocations (shrinking a leaf that just split, resizing on
 * removal, merging) happen after the change, and their failure is ignored:
 * the tree is valid either way.
 *
 * INVARIANTS (tome_index_check verifies all of them)
 *  1. Empty tree: root == NULL and height == 0. Otherwise every leaf is at
 *     depth `height` (the root is a leaf when height == 0).
 *  2. Every leaf has 1 <= n <= cap <= LEAF_MAX entries; cap is a multiple of
 *     LEAF_STEP. Every inner node has 1 <= n <= INNER_MAX children; the root,
 *     when inner, has at least 2.
 *  3. Entries are strictly increasing in tree order (no duplicates).
 *  4. Separator j of an inner node points to the smallest entry of the
 *     subtree of child j+1. So separators always point to live entries of the
 *     index, and every entry is the separator of at most one node.
 *  5. Leaf pattern: every entry of a leaf shares its first pb bits (padded
 *     S); every window bit before lim outside m is the same in all its
 *     entries; m has at most 16 bits, all before lim; sh = 16 - |m|;
 *     heads[i] = pext(window of entry i, m) << sh; and ref agrees with every
 *     entry on the bits of [0, 128) that the pattern fixes (the prefix and
 *     the constant window bits).
 *  6. Inner prefix: every separator's padded S starts with pfx[0..plen),
 *     plen <= PFX_MAX, and heads[j] is bytes [plen, plen+8) of separator j.
 *  7. Leaves are doubly linked in key order; the first has prev == NULL and
 *     the last next == NULL.
 *  8. count is the number of entries; mem the bytes of all nodes.
 *
 * REMOVAL
 * The entry is deleted from its leaf. If it was the leaf's first entry, the
 * one separator that pointed to it (in the deepest ancestor where the path
 * does not take child 0) is set to the leaf's new first entry (invariant 4).
 * An emptied leaf is freed and unlinked, and its parent drops it; a parent
 * left with no child is freed in turn, and when a node drops its child 0 the
 * separator that pointed to that subtree's old minimum moves to the new one.
 * Underfull nodes are allowed: nothing requires half-full nodes. To bound
 * the waste, a leaf left with fewer than LEAF_MAX/4 entries is merged with
 * an adjacent sibling (same parent) when together they hold at most
 * 3/4*LEAF_MAX; inner nodes below INNER_MAX/4 children likewise. A leaf with
 * 16 or more free slots is shrunk. Merging and shrinking need allocations;
 * when one fails the step is skipped (remove never fails). Finally a root
 * with one child is replaced by that child.
 *
 * LIMITATIONS
 *  - No locking (the engine holds a rwlock).
 *  - Cursors die on any modification: tome_index_next on a cursor whose
 *    mods differ from the index's returns NULL (the engine re-seeks).
 *  - Merges are opportunistic (no borrowing), so after heavy removals nodes
 *    can stay between 1/4 and 3/4 full; the depth only shrinks when the root
 *    is left with one child.
 *  - Keys whose bytes agree beyond what the heads see (a long shared middle
 *    after the prefix, or strings differing only in trailing zero bytes)
 *    make heads tie; searches are then a binary search of full compares
 *    within the tied run: correct, just slower.
 *  - tome_index_insert of a key already present and tome_index_append of a
 *    key that does not sort last are refused with TOME_INVALID (tree
 *    unchanged); tome_index_remove of an absent key does nothing.
 *  - tome_index_memory counts requested bytes, not allocator overhead.
 *  - A failed tome_index_insert_batch that had inserted some keys leaves the
 *    same entries but maybe other nodes, and tome_index_mods changed.
 *  - The tree depth is capped at MAX_HEIGHT (32): an insert that would need
 *    a 33rd level fails with TOME_NOMEM (unreachable in practice: a level is
 *    only added when the root has 64 children).
 */
#include "index.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../include/tome.h"
#include "../os/os.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define LEAF_MAX     128u
#define LEAF_STEP    8u
#define INNER_MAX    64u
#define PFX_MAX      60u
#define MAX_HEIGHT   32
#define REFINE_BITS  3u
#define SCAN_AHEAD   8u    /* entries prefetched ahead by tome_index_next */
#define LEAF_MERGE_MIN  (LEAF_MAX / 4)
#define LEAF_MERGE_MAX  (LEAF_MAX * 3 / 4)
#define INNER_MERGE_MIN (INNER_MAX / 4)
#define INNER_MERGE_MAX (INNER_MAX * 3 / 4)
/* Longest padded S that matters: larger than any entry's S. */
#define SCAN_MAX     ((size_t)TOME_MAX_KEY_LEN + 2)
/* lcp_bits of padded strings that never differ: above any real one. */
#define LCP_INF      ((uint32_t)(8 * (SCAN_MAX + 8)))

#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x)   __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define LIKELY(x)   (x)
#define UNLIKELY(x) (x)
#define PREFETCH(p) ((void)(p))
#endif

/* ---------------------------------------------------------------------- */
/* Nodes                                                                   */
/* ---------------------------------------------------------------------- */

typedef struct leaf {
    uint8_t  n, cap;        /* entries, slots */
    uint8_t  sh;            /* 16 - popcount(m) */
    uint8_t  lim;           /* window bits [0, lim) follow the pattern */
    uint32_t pb;            /* prefix length in bits (invariant 5) */
    uint64_t m;             /* pattern: the window bits that make the heads */
    uint64_t ref[2];        /* bits [0, 128) of padded S of a key that follows
                               the pattern (invariant 5) */
    struct leaf *next, *prev;
    uint16_t heads[];       /* cap heads, then cap entry pointers */
} leaf;

#define LEAF_HDR offsetof(leaf, heads)

typedef struct inner {
    uint16_t n;             /* children */
    uint8_t  plen;          /* prefix bytes (invariant 6) */
    uint8_t  pad;
    uint8_t  pfx[PFX_MAX];
    uint64_t heads[INNER_MAX - 1];
    tome_entry *sep[INNER_MAX - 1];
    void *child[INNER_MAX];
} inner;

struct tome_index {
    void *root;
    unsigned height;        /* inner levels above the leaves */
    size_t count;
    size_t mem;
    uint64_t mods;
    uint64_t splits;        /* changes on every split (batch fingers check it) */
};

typedef struct pathent {
    inner *node;
    unsigned idx;           /* the child taken */
} pathent;

static inline size_t leaf_size(unsigned cap) {
    return LEAF_HDR + (size_t)cap * (sizeof(uint16_t) + sizeof(tome_entry *));
}

static inline tome_entry **lents(const leaf *L) {
    return (tome_entry **)(void *)((char *)(uintptr_t)L + LEAF_HDR + 2u * L->cap);
}

static inline unsigned round_cap(unsigned n) {
    unsigned c = (n + LEAF_STEP - 1) / LEAF_STEP * LEAF_STEP;
    if (c < LEAF_STEP) c = LEAF_STEP;
    return c > LEAF_MAX ? LEAF_MAX : c;
}

/* ---------------------------------------------------------------------- */
/* Keys                                                                    */
/* ---------------------------------------------------------------------- */

typedef struct skey {
    const uint8_t *key;
    size_t klen;
    uint8_t slot;
} skey;

static inline skey ekey(const tome_entry *e) {
    skey k = {e->key, e->klen, e->slot};
    return k;
}

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (defined(__GNUC__) || defined(__clang__))
    return __builtin_bswap64(v);
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return v;
#else
    v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
#endif
}

static inline unsigned clz64(uint64_t x) { /* x != 0 */
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_clzll(x);
#else
    unsigned n = 0;
    while (!(x & (UINT64_C(1) << 63))) { x <<= 1; n++; }
    return n;
#endif
}

static inline unsigned clz8(unsigned x) { /* 0 < x < 256 */
    return clz64((uint64_t)x) - 56;
}

/* Byte i of padded S. */
static inline unsigned kbyte(const skey *k, size_t i) {
    if (i == 0) return k->slot;
    return i - 1 < k->klen ? k->key[i - 1] : 0;
}

/* Bytes [off, off+8) of padded S, big-endian. */
static inline uint64_t khead64(const skey *k, size_t off) {
    if (LIKELY(off >= 1 && k->klen >= off + 7)) return load_be64(k->key + off - 1);
    if (off == 0 && k->klen >= 8) return ((uint64_t)k->slot << 56) | (load_be64(k->key) >> 8);
    if (off >= 1 && k->klen >= 8) {   /* past the key's end: its last 8 bytes, shifted */
        if (off - 1 >= k->klen) return 0;
        return load_be64(k->key + k->klen - 8) << (8 * (off - 1 - (k->klen - 8)));
    }
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++) v = (v << 8) | kbyte(k, off + i);
    return v;
}

/* Bits [pb, pb+64) of padded S (the window of a leaf), bit pb in the MSB. */
static inline uint64_t kwin64(const skey *k, uint32_t pb) {
    size_t b = pb >> 3;
    unsigned s = pb & 7;
    uint64_t v;
    unsigned nb;
    if (LIKELY(b >= 1 && b + 8 <= k->klen)) {
        v = load_be64(k->key + b - 1);
        nb = k->key[b + 7];
    } else if (b >= 1 && k->klen >= 8) {   /* bytes b.. reach past the key's end */
        v = khead64(k, b);
        nb = 0;
    } else {
        v = 0;
        for (size_t i = 0; i < 8; i++) v = (v << 8) | kbyte(k, b + i);
        nb = kbyte(k, b + 8);
    }
    if (s) v = (v << s) | (nb >> (8 - s));
    return v;
}

/* Bits [0, 128) of padded S. */
static inline void kpad128(const skey *k, uint64_t out[2]) {
    out[0] = khead64(k, 0);
    out[1] = khead64(k, 8);
}

/* Bit at absolute position a of padded S. */
static inline unsigned kbit(const skey *k, uint32_t a) {
    return (kbyte(k, a >> 3) >> (7 - (a & 7))) & 1u;
}

static inline unsigned popcount64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_popcountll(x);
#else
    unsigned n = 0;
    for (; x; x &= x - 1) n++;
    return n;
#endif
}

/* The top n bits of a 64-bit word (n <= 64). */
static inline uint64_t topmask(unsigned n) {
    return n >= 64 ? ~UINT64_C(0) : n ? ~(~UINT64_C(0) >> n) : 0;
}

/* The bits of w selected by m (at most 16), in order, left-aligned on 16
 * bits by sh = 16 - popcount(m): an order-keeping compression of w. When m
 * is one run of bits (random keys) that is a shift and a mask; otherwise it
 * works a run at a time (decimal text: one per digit). */
static inline unsigned pext16(uint64_t w, uint64_t m, unsigned sh) {
    if (!m) return 0;
    unsigned t = clz64(m);
    if (LIKELY((m << t) == ~UINT64_C(0) << (48 + sh)))   /* sh <= 15 here */
        return (unsigned)((w << t) >> 48) & (0xFFFFu << sh);
    uint64_t r = 0;
    while (m) {
        t = clz64(m);                          /* a run starts at bit t */
        unsigned len = clz64(~(m << t));       /* m has <= 16 bits: ~(m << t) != 0 */
        r = (r << len) | ((w << t) >> (64 - len));
        m = t + len >= 64 ? 0 : m & (~UINT64_C(0) >> (t + len));
    }
    return (unsigned)r << sh;
}

/* pext16 for many words under one m: the runs of m worked out once. */
typedef struct pextp {
    unsigned nr;
    uint8_t t[16], len[16], dst[16];
} pextp;

static void pext_prep(pextp *x, uint64_t m) {
    unsigned d = 16;
    x->nr = 0;
    while (m) {
        unsigned t = clz64(m), len = clz64(~(m << t));
        d -= len;
        x->t[x->nr] = (uint8_t)t;
        x->len[x->nr] = (uint8_t)len;
        x->dst[x->nr++] = (uint8_t)d;
        m = t + len >= 64 ? 0 : m & (~UINT64_C(0) >> (t + len));
    }
}

static inline unsigned pext_run(const pextp *x, uint64_t w) {
    unsigned r = 0;
    for (unsigned i = 0; i < x->nr; i++) r |= (unsigned)((w << x->t[i]) >> (64 - x->len[i])) << x->dst[i];
    return r;
}

/* Number of leading bits padded S of a and b share; LCP_INF when the padded
 * strings never differ (equal keys, or keys differing in trailing zeros). */
static uint32_t lcp_bits(const skey *a, const skey *b) {
    if (a->slot != b->slot) return clz8((unsigned)(a->slot ^ b->slot));
    size_t m = a->klen < b->klen ? a->klen : b->klen;
    if (m > SCAN_MAX) m = SCAN_MAX;
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        uint64_t x = load_be64(a->key + i) ^ load_be64(b->key + i);
        if (x) return (uint32_t)(8 * (1 + i) + clz64(x));
    }
    for (; i < m; i++)
        if (a->key[i] != b->key[i]) return (uint32_t)(8 * (1 + i) + clz8((unsigned)(a->key[i] ^ b->key[i])));
    const skey *t = a->klen > b->klen ? a : b;
    size_t tl = t->klen < SCAN_MAX ? t->klen : SCAN_MAX;
    for (; i < tl; i++)
        if (t->key[i]) return (uint32_t)(8 * (1 + i) + clz8(t->key[i]));
    return LCP_INF;
}

static inline int kcmp(const skey *k, const tome_entry *e) {
    if (k->slot != e->slot) return k->slot < e->slot ? -1 : 1;
    size_t el = e->klen;
    size_t m = k->klen < el ? k->klen : el;
    if (m) {
        int r = memcmp(k->key, e->key, m);
        if (r) return r < 0 ? -1 : 1;
    }
    return k->klen < el ? -1 : k->klen > el;
}

int tome_entry_cmp(uint8_t slot, const void *key, size_t klen, const tome_entry *e) {
    skey k = {key, klen, slot};
    return kcmp(&k, e);
}

/* First index i in a[0..n) with a[i] >= h (branch-free). */
static inline unsigned lb16(const uint16_t *a, unsigned n, unsigned h) {
    if (!n) return 0;
    const uint16_t *b = a;
    while (n > 1) {
        unsigned half = n >> 1;
        /* a mask, not ?: (which compilers may turn into a branch that
         * random keys mispredict half the time) */
        b += half & (0u - (unsigned)(b[half - 1] < h));
        n -= half;
    }
    return (unsigned)(b - a) + (*b < h);
}

/* The same for the up to 63 heads of an inner node, in two rounds of
 * independent compares instead of six dependent steps: first the last head
 * of each group of 8 (the whole groups below h), then the heads of the
 * group that holds the answer. */
static inline unsigned lb64(const uint64_t *a, unsigned n, uint64_t h) {
    unsigned g = 0;
    for (unsigned j = 7; j < n; j += 8) g += a[j] < h;
    unsigned c = 8 * g, end = c + 8 < n ? c + 8 : n;
    for (unsigned i = c; i < end; i++) c += a[i] < h;
    return c;
}

/* lb16 over all the heads of L: with SSE2, a count of the heads below h,
 * eight at a time (the heads are sorted, so that is the lower bound). The
 * last block may reach past n but not past cap, a multiple of 8; its lanes
 * from n on are masked out. h may be 0x10000 (above every head). */
static inline unsigned leaf_lb16(const leaf *L, unsigned h) {
    unsigned n = L->n;
#if defined(__SSE2__)
    if (h > 0xFFFFu) return n;
    const __m128i bias = _mm_set1_epi16(INT16_MIN);
    const __m128i hv = _mm_set1_epi16((short)(uint16_t)(h ^ 0x8000u));
    __m128i acc = _mm_setzero_si128();
    unsigned i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(L->heads + i)), bias);
        acc = _mm_sub_epi16(acc, _mm_cmplt_epi16(v, hv));
    }
    if (i < n) {
        __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(L->heads + i)), bias);
        __m128i live = _mm_cmplt_epi16(_mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7), _mm_set1_epi16((int16_t)(n - i)));
        acc = _mm_sub_epi16(acc, _mm_and_si128(_mm_cmplt_epi16(v, hv), live));
    }
    acc = _mm_sad_epu8(acc, _mm_setzero_si128());   /* lanes <= 16: bytes sum to the count */
    return (unsigned)_mm_cvtsi128_si32(acc) + (unsigned)_mm_cvtsi128_si32(_mm_srli_si128(acc, 8));
#else
    return lb16(L->heads, n, h);
#endif
}

/* First index i >= from with a[i] != h, given a[from..) starts with h. */
static inline unsigned run16_end(const uint16_t *a, unsigned from, unsigned n, unsigned h) {
    if (h == 0xFFFFu) return n;
    return from + lb16(a + from, n - from, h + 1);
}

static inline unsigned run64_end(const uint64_t *a, unsigned from, unsigned n, uint64_t h) {
    if (h == UINT64_MAX) return n;
    return from + lb64(a + from, n - from, h + 1);
}

/* ---------------------------------------------------------------------- */
/* Leaves                                                                  */
/* ---------------------------------------------------------------------- */

static leaf *leaf_alloc(tome_index *ix, unsigned cap) {
    leaf *L = tome_malloc(leaf_size(cap));
    if (!L) return NULL;
    L->n = 0;
    L->cap = (uint8_t)cap;
    L->pb = 0;
    L->m = 0;
    L->sh = 16;
    L->lim = 64;
    L->ref[0] = L->ref[1] = 0;
    L->next = L->prev = NULL;
    ix->mem += leaf_size(cap);
    return L;
}

static void leaf_free(tome_index *ix, leaf *L) {
    ix->mem -= leaf_size(L->cap);
    tome_free(L);
}

/* Moves L to a block of capacity ncap (>= L->n) and relinks it (parent's
 * child pointer, neighbours, root). NULL when out of memory: L unchanged. */
static leaf *leaf_resize(tome_index *ix, leaf *L, unsigned ncap, inner *parent, unsigned cidx) {
    unsigned ocap = L->cap, n = L->n;
    leaf *N;
    if (ncap > ocap) {
        N = tome_realloc(L, leaf_size(ncap));
        if (!N) return NULL;
        N->cap = (uint8_t)ncap;
        memmove(lents(N), (char *)N + LEAF_HDR + 2u * ocap, n * sizeof(tome_entry *));
    } else {
        N = tome_malloc(leaf_size(ncap));
        if (!N) return NULL;
        memcpy(N, L, LEAF_HDR + 2u * n);
        N->cap = (uint8_t)ncap;
        memcpy(lents(N), lents(L), n * sizeof(tome_entry *));
        tome_free(L);
    }
    ix->mem = ix->mem - leaf_size(ocap) + leaf_size(ncap);
    if (N->prev) N->prev->next = N;
    if (N->next) N->next->prev = N;
    if (parent) parent->child[cidx] = N;
    else ix->root = N;
    return N;
}

/* A leaf's head pattern (invariant 5). */
typedef struct pat {
    uint32_t pb;
    uint64_t m;
    unsigned lim, sh;
} pat;

static inline pat leaf_pat(const leaf *L) {
    pat p = {L->pb, L->m, L->lim, L->sh};
    return p;
}

static inline void leaf_setpat(leaf *L, pat p) {
    L->pb = p.pb;
    L->m = p.m;
    L->lim = (uint8_t)p.lim;
    L->sh = (uint8_t)p.sh;
}

static inline unsigned leaf_head(const leaf *L, const skey *k) {
    return pext16(kwin64(k, L->pb), L->m, L->sh);
}

/* Does k follow L's pattern (the prefix and the constant window bits)?
 * 1 yes, 0 no, -1 when the pattern reaches past the 128 bits of ref (ask
 * an entry). Reads no entry. */
static inline int leaf_follows(const leaf *L, const skey *k) {
    uint32_t pb = L->pb;
    if (pb + L->lim > 128) return -1;
    uint64_t K[2], w;
    kpad128(k, K);
    uint64_t d0 = K[0] ^ L->ref[0], d1 = K[1] ^ L->ref[1];
    if (pb >= 64) {
        if (d0 || (d1 & topmask(pb - 64))) return 0;
        w = pb - 64 < 64 ? d1 << (pb - 64) : 0;
    } else {
        if (d0 & topmask(pb)) return 0;
        w = pb ? (d0 << pb) | (d1 >> (64 - pb)) : d0;
    }
    return !(w & ~L->m & topmask(L->lim));
}

/* Completes a pattern from the candidate bits M, where window bits
 * [0, region) not in M are constant: keeps the first 16 bits of M. */
static pat pat_make(uint32_t pb, uint64_t M, unsigned region) {
    pat p = {pb, 0, region, 16};
    M &= topmask(region);
    for (unsigned i = 0; i < 16 && M; i++) {
        unsigned t = clz64(M);
        uint64_t b = UINT64_C(1) << (63 - t);
        p.m |= b;
        M ^= b;
        p.sh--;
        if (i == 15 && M) p.lim = t + 1;   /* bits after the 16th are not followed */
    }
    return p;
}

/* Rewrites heads h[0..n) made with pattern o into heads of pattern p, for
 * entries that agree with ref on every bit p may take that o does not hold:
 * the prefix of o and the window bits of o below o.lim outside o.m. */
static void heads_convert(uint16_t *h, unsigned n, pat o, pat p, const tome_entry *ref) {
    skey r = ekey(ref);
    unsigned cbits = 0, nc = 0;
    unsigned char src[16], dst[16];
    unsigned j = 15;
    for (uint64_t m = p.m; m; j--) {
        unsigned q = clz64(m);
        m ^= UINT64_C(1) << (63 - q);
        uint32_t a = p.pb + q;
        if (a >= o.pb && a - o.pb < 64 && ((o.m >> (63 - (a - o.pb))) & 1)) {
            unsigned rank = popcount64(o.m & topmask(a - o.pb));
            src[nc] = (unsigned char)(15 - rank);
            dst[nc++] = (unsigned char)j;
        } else {
            cbits |= kbit(&r, a) << j;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned v = cbits, old = h[i];
        for (unsigned c = 0; c < nc; c++) v |= ((old >> src[c]) & 1u) << dst[c];
        h[i] = (uint16_t)v;
    }
}

/* Widens L's pattern so that k (not yet in L) follows it; ref is an entry
 * of L. The heads are rewritten from the old ones, no entry is read. */
static void leaf_admit(leaf *L, const skey *k, const tome_entry *ref) {
    skey r = ekey(ref);
    pat o = leaf_pat(L);
    uint32_t l = lcp_bits(k, &r);
    uint32_t npb = o.pb;
    uint64_t M = o.m;
    unsigned region = o.lim;
    if (l < o.pb) {
        uint32_t d = o.pb - l;
        npb = l;
        M = d < 64 ? o.m >> d : 0;
        region = d + o.lim < 64 ? d + o.lim : 64;
    }
    uint64_t X = kwin64(k, npb) ^ kwin64(&r, npb);
    if (npb == o.pb && !(X & ~o.m & topmask(o.lim))) return;   /* k follows the pattern */
    pat p = pat_make(npb, M | X, region);
    heads_convert(L->heads, L->n, o, p, ref);
    leaf_setpat(L, p);
}

/* Sets L's pattern, ref and heads from E[0..n) (sorted, n >= 1; L's own
 * entries or those it is to hold): the prefix the first and last share, the
 * window bits where any entry differs from the first. One pass reads the
 * entries. */
static void leaf_repattern(leaf *L, tome_entry *const *E, unsigned n) {
    uint64_t w[LEAF_MAX], M = 0;
    skey a = ekey(E[0]), b = ekey(E[n - 1]);
    uint32_t l = lcp_bits(&a, &b);
    w[0] = kwin64(&a, l);
    for (unsigned i = 1; i < n; i++) {
        if (i + SCAN_AHEAD < n) PREFETCH(E[i + SCAN_AHEAD]);
        skey k = ekey(E[i]);
        w[i] = kwin64(&k, l);
        M |= w[i] ^ w[0];
    }
    pat p = pat_make(l, M, 64);
    leaf_setpat(L, p);
    kpad128(&a, L->ref);
    pextp x;
    pext_prep(&x, p.m);
    for (unsigned i = 0; i < n; i++) L->heads[i] = (uint16_t)pext_run(&x, w[i]);
}

/* Recomputes the pattern and heads of L from its entries (after a split)
 * when its prefix grew by more than REFINE_BITS or its heads tie too often.
 * The first and last entries follow the pattern, so when their heads
 * differ, the first bit where the keys differ is the m bit where the heads
 * first differ: the test reads no entry. */
static void leaf_refine(leaf *L) {
    unsigned n = L->n, ties = 0;
    for (unsigned i = 1; i < n; i++) ties += L->heads[i] == L->heads[i - 1];
    unsigned hx = (unsigned)L->heads[0] ^ L->heads[n - 1];
    uint32_t l;
    if (hx) {   /* the window bit of the first head bit that differs */
        uint64_t m = L->m;
        for (unsigned r = clz64((uint64_t)hx) - 48; r; r--) m ^= UINT64_C(1) << (63 - clz64(m));
        l = L->pb + clz64(m);
    } else {
        skey a = ekey(lents(L)[0]), b = ekey(lents(L)[n - 1]);
        l = lcp_bits(&a, &b);
    }
    if (l <= L->pb + REFINE_BITS && ties * 16 <= n) return;
    leaf_repattern(L, lents(L), n);
}

static void leaf_put(leaf *L, unsigned pos, tome_entry *e, unsigned h) {
    tome_entry **E = lents(L);
    unsigned n = L->n;
    memmove(L->heads + pos + 1, L->heads + pos, (n - pos) * sizeof(uint16_t));
    memmove(E + pos + 1, E + pos, (n - pos) * sizeof(tome_entry *));
    L->heads[pos] = (uint16_t)h;
    E[pos] = e;
    L->n = (uint8_t)(n + 1);
}

static void leaf_del(leaf *L, unsigned pos) {
    tome_entry **E = lents(L);
    unsigned n = L->n;
    memmove(L->heads + pos, L->heads + pos + 1, (n - pos - 1) * sizeof(uint16_t));
    memmove(E + pos, E + pos + 1, (n - pos - 1) * sizeof(tome_entry *));
    L->n = (uint8_t)(n - 1);
}

/* Exact search: 1 and *pos when k is in L. */
static inline int leaf_find(const leaf *L, const skey *k, unsigned *pos) {
    unsigned n = L->n;
    /* The pointer we will want lies somewhere in the pointer array: fetch it
     * all while the heads are searched (measured ~5% faster lookups). */
    const char *pp = (const char *)lents(L);
    for (unsigned o = 0; o < n * (unsigned)sizeof(tome_entry *); o += 64) PREFETCH(pp + o);
    unsigned h = leaf_head(L, k);
    unsigned i = leaf_lb16(L, h);
    if (i >= n || L->heads[i] != h) return 0;
    tome_entry *const *E = lents(L);
    if (LIKELY(i + 1 >= n || L->heads[i + 1] != h)) {
        if (kcmp(k, E[i]) != 0) return 0;
        *pos = i;
        return 1;
    }
    unsigned lo = i, hi = run16_end(L->heads, i, n, h);
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        int c = kcmp(k, E[mid]);
        if (!c) {
            *pos = mid;
            return 1;
        }
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return 0;
}

typedef struct lbres {
    unsigned pos;     /* first entry >= k */
    int found;        /* entry pos == k */
    int shares;       /* k follows the leaf's pattern (prefix and constant bits) */
    unsigned x;       /* when !shares: the entry k was checked against */
    unsigned h;       /* when shares: k's head */
} lbres;

/* Lower bound of k in L (n >= 1), with what insert needs to know. */
static lbres leaf_lb(const leaf *L, const skey *k) {
    lbres r = {0, 0, 1, 0, 0};
    unsigned n = L->n;
    tome_entry *const *E = lents(L);
    uint64_t wk = kwin64(k, L->pb);
    unsigned h = pext16(wk, L->m, L->sh);
    r.h = h;
    unsigned i = leaf_lb16(L, h);
    /* A key that follows the pattern and whose head no entry has lies
     * between the heads: no entry need be read. */
    if ((i == n || L->heads[i] != h) && leaf_follows(L, k) == 1) {
        r.pos = i;
        return r;
    }
    unsigned x = i < n ? i : n - 1;
    int c = kcmp(k, E[x]);
    if (c != 0) {
        /* Does k follow the pattern? p: the first bit where it does not. */
        skey ke = ekey(E[x]);
        uint32_t l = lcp_bits(k, &ke), p = 0;
        unsigned rbits = 0;
        int bad = 0;
        if (l < L->pb) {
            bad = 1;
            p = l;
        } else {
            uint64_t ill = (wk ^ kwin64(&ke, L->pb)) & ~L->m & topmask(L->lim);
            if (ill) {
                bad = 1;
                unsigned q = clz64(ill);
                p = L->pb + q;
                rbits = popcount64(L->m & topmask(q));
            }
        }
        if (bad) {
            /* The entries whose pattern bits before p equal k's are all
             * below k or all above it, as k's bit p says; the rest are
             * ordered by those bits, which head the heads. */
            r.shares = 0;
            r.x = x;
            unsigned lo = 0, hi = n;
            if (rbits) {
                unsigned top = h & (0xFFFFu << (16 - rbits)) & 0xFFFFu;
                lo = leaf_lb16(L, top);
                hi = leaf_lb16(L, top + (1u << (16 - rbits)));
            }
            r.pos = kbit(k, p) ? hi : lo;
            return r;
        }
    }
    if (i == n || L->heads[i] != h) {   /* every head before i is < h, heads[i] > h */
        r.pos = i;
        return r;
    }
    if (c <= 0) {
        r.pos = i;
        r.found = c == 0;
        return r;
    }
    unsigned lo = i + 1, hi = run16_end(L->heads, i, n, h);
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        int cm = kcmp(k, E[mid]);
        if (!cm) {
            r.pos = mid;
            r.found = 1;
            return r;
        }
        if (cm < 0) hi = mid;
        else lo = mid + 1;
    }
    r.pos = lo;
    return r;
}

/* ---------------------------------------------------------------------- */
/* Inner nodes                                                             */
/* ---------------------------------------------------------------------- */

static inner *inner_alloc(tome_index *ix) {
    inner *N = tome_malloc(sizeof(inner));
    if (!N) return NULL;
    N->n = 0;
    N->plen = 0;
    N->pad = 0;
    ix->mem += sizeof(inner);
    return N;
}

static void inner_free(tome_index *ix, inner *N) {
    ix->mem -= sizeof(inner);
    tome_free(N);
}

/* <0: k is below every separator's prefix; >0 above; 0: k shares it. */
static inline int inner_pfx_cmp(const inner *N, const skey *k) {
    unsigned pl = N->plen;
    if (!pl) return 0;
    if (k->slot != N->pfx[0]) return k->slot < N->pfx[0] ? -1 : 1;
    size_t m = pl - 1;
    size_t kl = k->klen < m ? k->klen : m;
    if (kl) {
        int r = memcmp(k->key, N->pfx + 1, kl);
        if (r) return r;
    }
    for (size_t i = kl; i < m; i++)
        if (N->pfx[1 + i]) return -1;
    return 0;
}

/* The child of N whose subtree holds k: the number of separators <= k. */
static inline unsigned inner_route(const inner *N, const skey *k) {
    unsigned nsep = (unsigned)N->n - 1;
    if (!nsep) return 0;
    int r = inner_pfx_cmp(N, k);
    if (r) return r < 0 ? 0 : nsep;
    uint64_t h = khead64(k, N->plen);
    unsigned i = lb64(N->heads, nsep, h);
    if (i < nsep && N->heads[i] == h) {
        unsigned lo = i, hi = run64_end(N->heads, i, nsep, h);
        while (lo < hi) {
            unsigned mid = lo + (hi - lo) / 2;
            if (kcmp(k, N->sep[mid]) >= 0) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
    return i;
}

/* Recomputes prefix and heads of N from its separators. */
static void inner_recompute(inner *N) {
    unsigned nsep = (unsigned)N->n - 1;
    if (!nsep) {
        N->plen = 0;
        return;
    }
    skey a = ekey(N->sep[0]), b = ekey(N->sep[nsep - 1]);
    uint32_t l = lcp_bits(&a, &b) / 8;
    if (l > PFX_MAX) l = PFX_MAX;
    N->plen = (uint8_t)l;
    for (uint32_t i = 0; i < l; i++) N->pfx[i] = (uint8_t)kbyte(&a, i);
    for (unsigned j = 0; j < nsep; j++) {
        skey k = ekey(N->sep[j]);
        N->heads[j] = khead64(&k, l);
    }
}

/* Makes N's prefix one that e shares too (shortening it: the new heads are
 * the dropped prefix bytes followed by the old heads). */
static void inner_admit(inner *N, const tome_entry *e) {
    unsigned pl = N->plen;
    if (!pl) return;
    skey k = ekey(e);
    unsigned np = 0;
    while (np < pl && kbyte(&k, np) == N->pfx[np]) np++;
    if (np == pl) return;
    unsigned d = pl - np;
    unsigned nsep = (unsigned)N->n - 1;
    for (unsigned j = 0; j < nsep; j++) {
        uint64_t old = N->heads[j], v = 0;
        for (unsigned b = 0; b < 8; b++) {
            unsigned byte = np + b < pl ? N->pfx[np + b] : (unsigned)(old >> (56 - 8 * (b - d))) & 0xFFu;
            v = (v << 8) | byte;
        }
        N->heads[j] = v;
    }
    N->plen = (uint8_t)np;
}

static void inner_set_sep(inner *N, unsigned j, tome_entry *e) {
    inner_admit(N, e);
    skey k = ekey(e);
    N->sep[j] = e;
    N->heads[j] = khead64(&k, N->plen);
}

/* Inserts separator sep at index j and child at index j+1 (N not full). */
static void inner_put(inner *N, unsigned j, tome_entry *sep, void *child) {
    unsigned n = N->n, nsep = n - 1;
    memmove(N->heads + j + 1, N->heads + j, (nsep - j) * sizeof(uint64_t));
    memmove(N->sep + j + 1, N->sep + j, (nsep - j) * sizeof(tome_entry *));
    memmove(N->child + j + 2, N->child + j + 1, (n - j - 1) * sizeof(void *));
    N->child[j + 1] = child;
    N->n = (uint16_t)(n + 1);
    if (nsep == 0) {
        N->sep[0] = sep;
        inner_recompute(N);
    } else {
        N->sep[j] = sep;       /* placeholder while admitting */
        N->heads[j] = 0;
        inner_admit(N, sep);
        skey k = ekey(sep);
        N->heads[j] = khead64(&k, N->plen);
    }
}

/* Drops child c and the separator beside it (c-1, or 0 when c == 0). */
static void inner_del(inner *N, unsigned c) {
    unsigned n = N->n, nsep = n - 1;
    unsigned s = c ? c - 1 : 0;
    memmove(N->heads + s, N->heads + s + 1, (nsep - s - 1) * sizeof(uint64_t));
    memmove(N->sep + s, N->sep + s + 1, (nsep - s - 1) * sizeof(tome_entry *));
    memmove(N->child + c, N->child + c + 1, (n - c - 1) * sizeof(void *));
    N->n = (uint16_t)(n - 1);
    if (N->n == 1) N->plen = 0;
}

/* ---------------------------------------------------------------------- */
/* Index                                                                   */
/* ---------------------------------------------------------------------- */

tome_index *tome_index_new(void) {
    tome_index *ix = tome_malloc(sizeof *ix);
    if (!ix) return NULL;
    ix->root = NULL;
    ix->height = 0;
    ix->count = 0;
    ix->mem = 0;
    ix->mods = 0;
    ix->splits = 0;
    return ix;
}

static void free_inner_rec(inner *N, unsigned h) {
    if (h > 1)
        for (unsigned i = 0; i < N->n; i++) free_inner_rec(N->child[i], h - 1);
    tome_free(N);
}

static leaf *leftmost(const tome_index *ix) {
    void *p = ix->root;
    for (unsigned h = ix->height; h > 0 && p; h--) p = ((inner *)p)->child[0];
    return p;
}

void tome_index_free(tome_index *ix, void (*free_entry)(tome_entry *e, void *arg), void *arg) {
    if (!ix) return;
    if (ix->root) {
        leaf *L = leftmost(ix);
        while (L) {
            leaf *next = L->next;
            if (free_entry) {
                tome_entry **E = lents(L);
                for (unsigned i = 0; i < L->n; i++) free_entry(E[i], arg);
            }
            tome_free(L);
            L = next;
        }
        if (ix->height) free_inner_rec(ix->root, ix->height);
    }
    tome_free(ix);
}

size_t tome_index_count(const tome_index *ix) { return ix ? ix->count : 0; }
size_t tome_index_memory(const tome_index *ix) { return ix ? ix->mem : 0; }
uint64_t tome_index_mods(const tome_index *ix) { return ix ? ix->mods : 0; }

/* Starts fetching what a search of node p reads first: an inner node's
 * header and heads, a leaf's header and heads (its first 5 lines). */
static inline void prefetch_node(const void *p, int is_inner) {
    for (unsigned o = 0; o < (is_inner ? 9u : 5u) * 64; o += 64) PREFETCH((const char *)p + o);
}

/* Walks from the root to the leaf for k; fills path[0..height). */
static inline leaf *descend(const tome_index *ix, const skey *k, pathent *path) {
    void *p = ix->root;
    for (unsigned l = 0; l < ix->height; l++) {
        inner *N = p;
        unsigned c = inner_route(N, k);
        if (path) {
            path[l].node = N;
            path[l].idx = c;
        }
        p = N->child[c];
        prefetch_node(p, l + 1 < ix->height);
    }
    return p;
}

tome_entry *tome_index_find(const tome_index *ix, uint8_t slot, const void *key, size_t klen) {
    if (!ix || !ix->root || klen > TOME_MAX_KEY_LEN) return NULL;
    skey k = {key, klen, slot};
    const leaf *L = descend(ix, &k, NULL);
    unsigned pos;
    return leaf_find(L, &k, &pos) ? lents(L)[pos] : NULL;
}

/* ---- insertion ---- */

static int edge_right(const pathent *path, int lvl) {
    for (int l = 0; l < lvl; l++)
        if (path[l].idx != (unsigned)path[l].node->n - 1) return 0;
    return 1;
}

static int edge_left(const pathent *path, int lvl) {
    for (int l = 0; l < lvl; l++)
        if (path[l].idx != 0) return 0;
    return 1;
}

/* Inserts (sep, child) after path[lvl]'s child, splitting full nodes with
 * the preallocated ones in pre[] and adding a root when needed. */
static void insert_up(tome_index *ix, pathent *path, int lvl, tome_entry *sep, void *child,
                      inner **pre, unsigned npre) {
    for (;;) {
        if (lvl < 0) {
            inner *R = pre[--npre];
            R->n = 2;
            R->child[0] = ix->root;
            R->child[1] = child;
            R->sep[0] = sep;
            inner_recompute(R);
            ix->root = R;
            ix->height++;
            return;
        }
        inner *N = path[lvl].node;
        unsigned c = path[lvl].idx;
        if (N->n < INNER_MAX) {
            inner_put(N, c, sep, child);
            return;
        }
        /* Split N: combined children T = INNER_MAX + 1. */
        tome_entry *S[INNER_MAX];
        void *C[INNER_MAX + 1];
        unsigned n = N->n, nsep = n - 1;
        memcpy(S, N->sep, c * sizeof(tome_entry *));
        S[c] = sep;
        memcpy(S + c + 1, N->sep + c, (nsep - c) * sizeof(tome_entry *));
        memcpy(C, N->child, (c + 1) * sizeof(void *));
        C[c + 1] = child;
        memcpy(C + c + 2, N->child + c + 1, (n - c - 1) * sizeof(void *));
        unsigned T = n + 1, mc;
        if (c + 1 == n && edge_right(path, lvl)) mc = n;
        else if (c == 0 && edge_left(path, lvl)) mc = 1;
        else mc = T / 2;
        inner *M = pre[--npre];
        memcpy(N->child, C, mc * sizeof(void *));
        memcpy(N->sep, S, (mc - 1) * sizeof(tome_entry *));
        N->n = (uint16_t)mc;
        memcpy(M->child, C + mc, (T - mc) * sizeof(void *));
        memcpy(M->sep, S + mc, (T - mc - 1) * sizeof(tome_entry *));
        M->n = (uint16_t)(T - mc);
        inner_recompute(N);
        inner_recompute(M);
        sep = S[mc - 1];
        child = M;
        lvl--;
    }
}

/* Inserts e at the position r found in leaf L (reached by path). */
static int insert_at(tome_index *ix, pathent *path, leaf *L, lbres r, tome_entry *e, int bulk) {
    int h = (int)ix->height;
    inner *parent = h ? path[h - 1].node : NULL;
    unsigned cidx = h ? path[h - 1].idx : 0;
    skey ke = ekey(e);

    if (L->n < LEAF_MAX) {
        if (L->n == L->cap) {
            unsigned ncap = bulk ? LEAF_MAX : round_cap(L->cap + LEAF_STEP);
            leaf *N = leaf_resize(ix, L, ncap, parent, cidx);
            if (!N) return TOME_NOMEM;
            L = N;
        }
        if (!r.shares) {
            leaf_admit(L, &ke, lents(L)[r.x]);
            r.h = leaf_head(L, &ke);
        }
        leaf_put(L, r.pos, e, r.h);
        return 0;
    }

    /* Split: allocate everything first. */
    unsigned n = L->n, total = n + 1, pos = r.pos, m;
    if (pos == n && !L->next) m = n;
    else if (pos == 0 && !L->prev) m = 1;
    else m = total / 2;
    unsigned rcount = total - m;
    unsigned rcap = bulk ? LEAF_MAX : round_cap(rcount + 1);
    inner *pre[MAX_HEIGHT + 1];
    unsigned npre = 0, need = 0;
    int lvl = h - 1;
    while (lvl >= 0 && path[lvl].node->n == INNER_MAX) {
        need++;
        lvl--;
    }
    if (lvl < 0) {
        if (h >= MAX_HEIGHT) return TOME_NOMEM;
        need++;
    }
    leaf *R = leaf_alloc(ix, rcap);
    if (!R) return TOME_NOMEM;
    while (npre < need) {
        inner *N = inner_alloc(ix);
        if (!N) {
            while (npre) inner_free(ix, pre[--npre]);
            leaf_free(ix, R);
            return TOME_NOMEM;
        }
        pre[npre++] = N;
    }

    if (!r.shares) {
        leaf_admit(L, &ke, lents(L)[r.x]);
        r.h = leaf_head(L, &ke);
    }
    unsigned he = r.h;
    tome_entry **E = lents(L), **RE = lents(R);
    leaf_setpat(R, leaf_pat(L));
    R->ref[0] = L->ref[0];
    R->ref[1] = L->ref[1];
    if (pos < m) {
        unsigned cnt = n - (m - 1);
        memcpy(R->heads, L->heads + m - 1, cnt * sizeof(uint16_t));
        memcpy(RE, E + m - 1, cnt * sizeof(tome_entry *));
        L->n = (uint8_t)(m - 1);
        leaf_put(L, pos, e, he);
    } else {
        unsigned a = pos - m;
        memcpy(R->heads, L->heads + m, a * sizeof(uint16_t));
        memcpy(RE, E + m, a * sizeof(tome_entry *));
        R->heads[a] = (uint16_t)he;
        RE[a] = e;
        memcpy(R->heads + a + 1, L->heads + pos, (n - pos) * sizeof(uint16_t));
        memcpy(RE + a + 1, E + pos, (n - pos) * sizeof(tome_entry *));
        L->n = (uint8_t)m;
    }
    R->n = (uint8_t)rcount;
    leaf_refine(L);
    leaf_refine(R);
    /* Optional: give back the half of L that moved to R. */
    if ((unsigned)L->cap - L->n >= 2 * LEAF_STEP) {
        leaf *N = leaf_resize(ix, L, round_cap(L->n + 1u), parent, cidx);
        if (N) L = N;
    }
    R->next = L->next;
    if (R->next) R->next->prev = R;
    R->prev = L;
    L->next = R;
    insert_up(ix, path, h - 1, lents(R)[0], R, pre, npre);
    ix->splits++;
    return 0;
}

static int insert_first(tome_index *ix, tome_entry *e, int bulk) {
    leaf *L = leaf_alloc(ix, bulk ? LEAF_MAX : LEAF_STEP);
    if (!L) return TOME_NOMEM;
    skey k = ekey(e);
    L->pb = lcp_bits(&k, &k);   /* LCP_INF: one entry, every bit is prefix */
    kpad128(&k, L->ref);
    L->heads[0] = 0;
    lents(L)[0] = e;
    L->n = 1;
    ix->root = L;
    ix->height = 0;
    return 0;
}

/* Inserts e into leaf L, reached by path. */
static int insert_leaf(tome_index *ix, pathent *path, leaf *L, tome_entry *e) {
    skey k = ekey(e);
    lbres r = leaf_lb(L, &k);
    if (r.found) return TOME_INVALID;
    int rc = insert_at(ix, path, L, r, e, 0);
    if (rc == 0) {
        ix->count++;
        ix->mods++;
    }
    return rc;
}

int tome_index_insert(tome_index *ix, tome_entry *e) {
    if (!ix || !e) return TOME_INVALID;
    if (!ix->root) {
        int rc = insert_first(ix, e, 0);
        if (rc == 0) {
            ix->count++;
            ix->mods++;
        }
        return rc;
    }
    skey k = ekey(e);
    pathent path[MAX_HEIGHT];
    leaf *L = descend(ix, &k, path);
    return insert_leaf(ix, path, L, e);
}

/* ---- batch insertion ---- */

#define BATCH_AHEAD 4u   /* entries of a batch prefetched ahead */

/* The path taken for the previous key of a batch (see the top comment). */
typedef struct finger {
    pathent path[MAX_HEIGHT];
    const tome_entry *last;    /* the key the path leads to (NULL: none) */
    uint64_t splits;
} finger;

/* 1 when k sorts before separator c of N (the upper bound of child c). */
static inline int below_sep(const inner *N, unsigned c, const skey *k) {
    int r = inner_pfx_cmp(N, k);
    if (r) return r < 0;
    uint64_t h = khead64(k, N->plen);
    if (h != N->heads[c]) return h < N->heads[c];
    return kcmp(k, N->sep[c]) < 0;
}

/* The leaf for e's key; f->path leads to it afterwards. */
static leaf *finger_descend(const tome_index *ix, finger *f, const tome_entry *e) {
    skey k = ekey(e);
    unsigned h = ix->height, from = 0;
    void *p = ix->root;
    if (f->last && f->splits == ix->splits && kcmp(&k, f->last) > 0) {
        for (int l = (int)h - 1; l >= 0; l--) {
            const inner *N = f->path[l].node;
            unsigned c = f->path[l].idx;
            if (c + 1 < N->n && below_sep(N, c, &k)) {
                p = N->child[c];
                from = (unsigned)l + 1;
                break;
            }
        }
    }
    for (unsigned l = from; l < h; l++) {
        inner *N = p;
        unsigned c = inner_route(N, &k);
        f->path[l].node = N;
        f->path[l].idx = c;
        p = N->child[c];
        prefetch_node(p, l + 1 < h);
    }
    f->last = e;
    f->splits = ix->splits;
    return p;
}

int tome_index_insert_batch(tome_index *ix, tome_entry **sorted, size_t n) {
    if (!ix || (n && !sorted)) return TOME_INVALID;
    finger f = {.last = NULL, .splits = 0};
    for (size_t i = 0; i < n; i++) {
        if (i + BATCH_AHEAD < n) PREFETCH(sorted[i + BATCH_AHEAD]);
        int rc;
        if (!ix->root) {
            rc = tome_index_insert(ix, sorted[i]);
        } else {
            leaf *L = finger_descend(ix, &f, sorted[i]);
            rc = insert_leaf(ix, f.path, L, sorted[i]);
        }
        if (rc) {
            while (i--) tome_index_remove(ix, sorted[i]);
            return rc;
        }
    }
    return 0;
}

int tome_index_append(tome_index *ix, tome_entry *e) {
    if (!ix || !e) return TOME_INVALID;
    int rc;
    if (!ix->root) {
        rc = insert_first(ix, e, 1);
    } else {
        pathent path[MAX_HEIGHT];
        void *p = ix->root;
        for (unsigned l = 0; l < ix->height; l++) {
            inner *N = p;
            path[l].node = N;
            path[l].idx = (unsigned)N->n - 1;
            p = N->child[N->n - 1];
        }
        leaf *L = p;
        unsigned n = L->n;
        tome_entry *last = lents(L)[n - 1];
        skey k = ekey(e);
        if (kcmp(&k, last) <= 0) return TOME_INVALID;
        lbres r = {n, 0, 0, n - 1, 0};   /* leaf_admit checks the pattern */
        rc = insert_at(ix, path, L, r, e, 1);
    }
    if (rc == 0) {
        ix->count++;
        ix->mods++;
    }
    return rc;
}

/* ---- bottom-up build ---- */

#define BUILD_AHEAD 16u   /* entries prefetched ahead by tome_index_build */

/* Fills leaf L with E[0..n); 0 when E[from - 1 ..n) is not strictly
 * increasing (from is 0 when E[-1] is the previous leaf's last entry). */
static int build_leaf(leaf *L, tome_entry *const *E, unsigned n, unsigned from, tome_entry *const *end) {
    for (unsigned i = from; i < n; i++) {
        if (E + i + BUILD_AHEAD < end) PREFETCH(E[i + BUILD_AHEAD]);
        skey k = ekey(E[i]);
        if (kcmp(&k, (E + i)[-1]) <= 0) return 0;   /* E[-1] when from is 0 */
    }
    leaf_repattern(L, E, n);
    memcpy(lents(L), E, n * sizeof(tome_entry *));
    L->n = (uint8_t)n;
    return 1;
}

int tome_index_build(tome_index *ix, tome_entry *const *sorted, size_t n) {
    if (!ix || (n && !sorted) || ix->root) return TOME_INVALID;
    if (!n) return 0;
    /* The plan: full leaves (the last as small as its entries allow); on
     * each level above, the fewest inner nodes, sharing the children evenly. */
    size_t cnt[MAX_HEIGHT + 1];
    unsigned h = 0;
    cnt[0] = (n + LEAF_MAX - 1) / LEAF_MAX;
    while (cnt[h] > 1) {
        if (h == MAX_HEIGHT) return TOME_NOMEM;
        cnt[h + 1] = (cnt[h] + INNER_MAX - 1) / INNER_MAX;
        h++;
    }
    /* Every node is allocated first: the leaves chained by next, the inner
     * nodes by child[0]. */
    leaf *leaves = NULL, *L = NULL;
    inner *pool = NULL;
    int rc = 0;
    for (size_t i = 0; i < cnt[0] && !rc; i++) {
        size_t rest = n - i * LEAF_MAX;
        leaf *N = leaf_alloc(ix, rest >= LEAF_MAX ? LEAF_MAX : round_cap((unsigned)rest));
        if (!N) {
            rc = TOME_NOMEM;
            break;
        }
        N->prev = L;
        *(L ? &L->next : &leaves) = N;
        L = N;
    }
    for (unsigned j = 1; j <= h && !rc; j++)
        for (size_t i = 0; i < cnt[j]; i++) {
            inner *N = inner_alloc(ix);
            if (!N) {
                rc = TOME_NOMEM;
                break;
            }
            N->child[0] = pool;
            pool = N;
        }
    /* Then filled left to right: a node that has its share of children
     * goes up to its parent. */
    inner *cur[MAX_HEIGHT + 1] = {0};
    tome_entry *nmin[MAX_HEIGHT + 1];   /* the minimum under cur[j] */
    size_t done[MAX_HEIGHT + 1] = {0};  /* nodes finished on level j */
    void *root = leaves;
    L = leaves;
    for (size_t i = 0; i < cnt[0] && !rc; i++, L = L->next) {
        size_t off = i * LEAF_MAX;
        unsigned m = n - off >= LEAF_MAX ? LEAF_MAX : (unsigned)(n - off);
        if (!build_leaf(L, sorted + off, m, off ? 0 : 1, sorted + n)) {
            rc = TOME_INVALID;
            break;
        }
        void *child = L;
        tome_entry *min = lents(L)[0];
        for (unsigned j = 1; j <= h; j++) {
            inner *N = cur[j];
            if (!N) {
                N = cur[j] = pool;
                pool = pool->child[0];
                N->n = 0;
                nmin[j] = min;
            } else {
                N->sep[N->n - 1] = min;
            }
            N->child[N->n++] = child;
            if (N->n < cnt[j - 1] / cnt[j] + (done[j] < cnt[j - 1] % cnt[j])) break;
            inner_recompute(N);
            cur[j] = NULL;
            done[j]++;
            child = root = N;
            min = nmin[j];
        }
    }
    if (rc) {
        /* Nothing is in ix yet. The nodes taken from the pool hang from the
         * unfinished ones (a finished node is its parent's child at once). */
        for (unsigned j = h; j >= 1; j--)
            if (cur[j]) free_inner_rec(cur[j], j);
        for (inner *N; pool; pool = N) N = pool->child[0], tome_free(pool);
        for (; leaves; leaves = L) L = leaves->next, tome_free(leaves);
        ix->mem = 0;   /* it was empty */
        return rc;
    }
    ix->root = root;
    ix->height = h;
    ix->count = n;
    ix->mods++;
    return 0;
}

/* ---- removal ---- */

/* The separator that points to the minimum of the subtree reached through
 * path[0..lvl) (in the deepest node where the path leaves child 0) becomes
 * nm. Nothing when that subtree is the leftmost one. */
static void fix_min(pathent *path, int lvl, tome_entry *nm) {
    for (int l = lvl - 1; l >= 0; l--) {
        if (path[l].idx > 0) {
            inner_set_sep(path[l].node, path[l].idx - 1, nm);
            return;
        }
    }
}

/* Drops the child path[lvl].idx of path[lvl].node; frees nodes left empty.
 * Returns the level of the node that kept its other children (-1: none). */
static int remove_child(tome_index *ix, pathent *path, int lvl) {
    for (;;) {
        inner *N = path[lvl].node;
        unsigned c = path[lvl].idx;
        if (N->n == 1) {
            inner_free(ix, N);
            if (lvl == 0) {
                ix->root = NULL;
                ix->height = 0;
                return -1;
            }
            lvl--;
            continue;
        }
        if (c > 0) {
            inner_del(N, c);
        } else {
            tome_entry *nm = N->sep[0];
            inner_del(N, 0);
            fix_min(path, lvl, nm);
        }
        return lvl;
    }
}

/* Merges underfull inner nodes upward from level lvl. */
static void rebalance_inner(tome_index *ix, pathent *path, int lvl) {
    while (lvl > 0) {
        inner *N = path[lvl].node;
        if (N->n >= INNER_MERGE_MIN) return;
        inner *P = path[lvl - 1].node;
        unsigned c = path[lvl - 1].idx, li;
        if (c > 0 && ((inner *)P->child[c - 1])->n + N->n <= INNER_MERGE_MAX) li = c - 1;
        else if (c + 1 < P->n && ((inner *)P->child[c + 1])->n + N->n <= INNER_MERGE_MAX) li = c;
        else return;
        inner *A = P->child[li], *B = P->child[li + 1];
        unsigned an = A->n, bn = B->n;
        A->sep[an - 1] = P->sep[li];   /* the minimum of B */
        memcpy(A->sep + an, B->sep, (bn - 1) * sizeof(tome_entry *));
        memcpy(A->child + an, B->child, bn * sizeof(void *));
        A->n = (uint16_t)(an + bn);
        inner_recompute(A);
        inner_free(ix, B);
        inner_del(P, li + 1);
        path[lvl - 1].idx = li;
        lvl--;
    }
}

/* Merges leaf child li+1 of P into child li. 0 when out of memory. */
static int leaf_merge(tome_index *ix, inner *P, unsigned li) {
    leaf *A = P->child[li], *B = P->child[li + 1];
    unsigned an = A->n, bn = B->n, total = an + bn;
    if (A->cap < total) {
        leaf *N = leaf_resize(ix, A, round_cap(total + 1), P, li);
        if (!N) return 0;
        A = N;
    }
    tome_entry **AE = lents(A), **BE = lents(B);
    /* The merged pattern: a prefix all share, the bits either pattern
     * follows plus those where A's constants and B's differ, within the
     * window both constrain. */
    skey a = ekey(AE[0]), b = ekey(BE[bn - 1]), b0 = ekey(BE[0]);
    uint32_t npb = lcp_bits(&a, &b);
    if (A->pb < npb) npb = A->pb;
    if (B->pb < npb) npb = B->pb;
    uint32_t end = A->pb + A->lim;
    if (B->pb + B->lim < end) end = B->pb + B->lim;
    if (npb + 64 < end) end = npb + 64;
    uint32_t dA = A->pb - npb, dB = B->pb - npb;
    uint64_t M = (dA < 64 ? A->m >> dA : 0) | (dB < 64 ? B->m >> dB : 0) | (kwin64(&a, npb) ^ kwin64(&b0, npb));
    pat p = pat_make(npb, M, end - npb);
    heads_convert(A->heads, an, leaf_pat(A), p, AE[0]);
    heads_convert(B->heads, bn, leaf_pat(B), p, BE[0]);
    leaf_setpat(A, p);
    memcpy(A->heads + an, B->heads, bn * sizeof(uint16_t));
    memcpy(AE + an, BE, bn * sizeof(tome_entry *));
    A->n = (uint8_t)total;
    A->next = B->next;
    if (A->next) A->next->prev = A;
    leaf_free(ix, B);
    inner_del(P, li + 1);
    leaf_refine(A);
    return 1;
}

static void collapse_root(tome_index *ix) {
    while (ix->height > 0 && ((inner *)ix->root)->n == 1) {
        inner *R = ix->root;
        ix->root = R->child[0];
        ix->height--;
        inner_free(ix, R);
    }
}

void tome_index_remove(tome_index *ix, const tome_entry *e) {
    if (!ix || !ix->root || !e) return;
    skey k = ekey(e);
    pathent path[MAX_HEIGHT];
    leaf *L = descend(ix, &k, path);
    unsigned pos;
    if (!leaf_find(L, &k, &pos)) return;
    int h = (int)ix->height;
    ix->count--;
    ix->mods++;
    if (L->n == 1) {
        if (L->prev) L->prev->next = L->next;
        if (L->next) L->next->prev = L->prev;
        leaf_free(ix, L);
        if (h == 0) {
            ix->root = NULL;
            return;
        }
        int lvl = remove_child(ix, path, h - 1);
        if (lvl >= 0) rebalance_inner(ix, path, lvl);
        collapse_root(ix);
        return;
    }
    leaf_del(L, pos);
    if (pos == 0) fix_min(path, h, lents(L)[0]);
    inner *parent = h ? path[h - 1].node : NULL;
    unsigned c = h ? path[h - 1].idx : 0;
    if (parent && L->n < LEAF_MERGE_MIN) {
        int merged = 0;
        if (c > 0 && ((leaf *)parent->child[c - 1])->n + L->n <= LEAF_MERGE_MAX)
            merged = leaf_merge(ix, parent, c - 1);
        if (!merged && c + 1 < parent->n && ((leaf *)parent->child[c + 1])->n + L->n <= LEAF_MERGE_MAX)
            merged = leaf_merge(ix, parent, c);
        if (merged) {
            rebalance_inner(ix, path, h - 1);
            collapse_root(ix);
            return;
        }
    }
    if ((unsigned)L->cap - L->n >= 2 * LEAF_STEP) leaf_resize(ix, L, round_cap(L->n + 1u), parent, c);
}

/* ---- cursors ---- */

tome_entry *tome_index_seek(const tome_index *ix, tome_index_cursor *c, uint8_t slot, const void *key,
                            size_t klen) {
    c->ix = ix;
    c->mods = ix->mods;
    c->leaf = NULL;
    c->pos = 0;
    if (!ix->root) return NULL;
    skey k = {key, klen, slot};
    leaf *L = descend(ix, &k, NULL);
    lbres r = leaf_lb(L, &k);
    unsigned pos = r.pos;
    if (pos >= L->n) {
        L = L->next;
        pos = 0;
        if (!L) return NULL;
    }
    c->leaf = L;
    c->pos = pos;
    return lents(L)[pos];
}

tome_entry *tome_index_first(const tome_index *ix, tome_index_cursor *c) {
    c->ix = ix;
    c->mods = ix->mods;
    c->pos = 0;
    c->leaf = ix->root ? leftmost(ix) : NULL;
    return c->leaf ? lents(c->leaf)[0] : NULL;
}

tome_entry *tome_index_next(tome_index_cursor *c) {
    leaf *L = c->leaf;
    if (!L) return NULL;
    if (UNLIKELY(c->mods != c->ix->mods)) {
        c->leaf = NULL;
        return NULL;
    }
    unsigned pos = c->pos + 1, n = L->n;
    if (LIKELY(pos < n)) {
        tome_entry **E = lents(L);
        c->pos = pos;
        /* Callers read the entries they step over: start fetching a few
         * ahead (entries lie in memory in no particular order). */
        if (pos + SCAN_AHEAD < n) PREFETCH(E[pos + SCAN_AHEAD]);
        return E[pos];
    }
    L = L->next;
    c->leaf = L;
    c->pos = 0;
    if (!L) return NULL;
    tome_entry **E = lents(L);
    PREFETCH(L->next);
    for (unsigned i = 1; i <= SCAN_AHEAD && i < L->n; i++) PREFETCH(E[i]);
    return E[0];
}

/* ---------------------------------------------------------------------- */
/* Consistency check (tests; not in index.h)                               */
/* ---------------------------------------------------------------------- */

int tome_index_check(const tome_index *ix, char *err, size_t errlen);

typedef struct chk {
    const tome_index *ix;
    const leaf *prevleaf;
    const tome_entry *last;
    size_t count, mem;
    char *err;
    size_t errlen;
} chk;

#define CHK_FAIL(...)                                                       \
    do {                                                                    \
        if (st->err && st->errlen) snprintf(st->err, st->errlen, __VA_ARGS__); \
        return -1;                                                          \
    } while (0)

/* k agrees with L->ref on every bit of [0, 128) the pattern constrains. */
static int chk_ref(const leaf *L, const skey *k) {
    uint64_t K[2];
    kpad128(k, K);
    for (uint32_t a = 0; a < 128; a++) {
        int constrained = a < L->pb || (a - L->pb < L->lim && !((L->m >> (63 - (a - L->pb))) & 1));
        if (constrained && (((K[a / 64] ^ L->ref[a / 64]) >> (63 - a % 64)) & 1)) return 0;
    }
    return 1;
}

static int chk_node(chk *st, const void *p, unsigned depth, int is_root, const tome_entry **minp) {
    if (depth == st->ix->height) {
        const leaf *L = p;
        tome_entry *const *E = lents(L);
        if (L->n < 1 || L->n > L->cap || L->cap > LEAF_MAX || L->cap % LEAF_STEP)
            CHK_FAIL("leaf %p: n %u cap %u", (const void *)L, L->n, L->cap);
        if (L->prev != st->prevleaf) CHK_FAIL("leaf %p: prev link", (const void *)L);
        if (st->prevleaf && st->prevleaf->next != L) CHK_FAIL("leaf %p: next link", (const void *)L);
        if (L->lim > 64 || popcount64(L->m) > 16 || L->sh != 16 - popcount64(L->m) ||
            (L->m & ~topmask(L->lim)))
            CHK_FAIL("leaf %p: pattern m %016llx lim %u sh %u", (const void *)L, (unsigned long long)L->m,
                     L->lim, L->sh);
        skey k0 = ekey(E[0]);
        uint64_t w0 = kwin64(&k0, L->pb);
        for (unsigned i = 0; i < L->n; i++) {
            skey k = ekey(E[i]);
            if (st->last && kcmp(&k, st->last) <= 0) CHK_FAIL("leaf %p: order at %u", (const void *)L, i);
            st->last = E[i];
            if (lcp_bits(&k0, &k) < L->pb) CHK_FAIL("leaf %p: entry %u lacks prefix %u", (const void *)L, i, L->pb);
            if ((kwin64(&k, L->pb) ^ w0) & ~L->m & topmask(L->lim))
                CHK_FAIL("leaf %p: entry %u breaks the pattern", (const void *)L, i);
            if (L->heads[i] != leaf_head(L, &k)) CHK_FAIL("leaf %p: head %u", (const void *)L, i);
            if (!chk_ref(L, &k)) CHK_FAIL("leaf %p: entry %u disagrees with ref", (const void *)L, i);
        }
        st->prevleaf = L;
        st->count += L->n;
        st->mem += leaf_size(L->cap);
        *minp = E[0];
        return 0;
    }
    const inner *N = p;
    if (N->n < (is_root ? 2 : 1) || N->n > INNER_MAX) CHK_FAIL("inner %p: n %u", (const void *)N, N->n);
    if (N->plen > PFX_MAX) CHK_FAIL("inner %p: plen", (const void *)N);
    st->mem += sizeof(inner);
    for (unsigned j = 0; j + 1 < N->n; j++) {
        skey k = ekey(N->sep[j]);
        for (unsigned i = 0; i < N->plen; i++)
            if (kbyte(&k, i) != N->pfx[i]) CHK_FAIL("inner %p: sep %u lacks prefix", (const void *)N, j);
        if (N->heads[j] != khead64(&k, N->plen)) CHK_FAIL("inner %p: head %u", (const void *)N, j);
    }
    for (unsigned i = 0; i < N->n; i++) {
        const tome_entry *mn = NULL;
        if (chk_node(st, N->child[i], depth + 1, 0, &mn)) return -1;
        if (i == 0) *minp = mn;
        else if (N->sep[i - 1] != mn) CHK_FAIL("inner %p: sep %u is not the minimum of child %u", (const void *)N, i - 1, i);
    }
    return 0;
}

int tome_index_check(const tome_index *ix, char *err, size_t errlen) {
    chk s = {ix, NULL, NULL, 0, 0, err, errlen}, *st = &s;
    if (err && errlen) err[0] = 0;
    if (!ix->root) {
        if (ix->height || ix->count || ix->mem) CHK_FAIL("empty tree: height %u count %zu mem %zu", ix->height, ix->count, ix->mem);
        return 0;
    }
    if (ix->height > MAX_HEIGHT) CHK_FAIL("height %u", ix->height);
    const tome_entry *mn = NULL;
    if (chk_node(st, ix->root, 0, 1, &mn)) return -1;
    if (s.prevleaf->next) CHK_FAIL("last leaf has a next");
    if (s.count != ix->count) CHK_FAIL("count %zu, tree holds %zu", ix->count, s.count);
    if (s.mem != ix->mem) CHK_FAIL("mem %zu, nodes take %zu", ix->mem, s.mem);
    return 0;
}
