/*
 * ring.h -- the ring workload, shared by tests/test_serial.c (short,
 * deterministic runs in `make test`) and tests/stress/stress_kill.c (long
 * runs with SIGKILL and kill points in `make stress`).
 *
 * N nodes live in slot RING_SLOT under the keys "r000000".."r<N-1>"; the
 * value of node i is the 6-digit decimal number of the node after it. They
 * start as the cycle 0 -> 1 -> ... -> N-1 -> 0. One step is one transaction
 * that moves a node elsewhere in the ring: it reads a's link to b and b's
 * link to c (unlinking b: a -> c), reads d's link to e for a random d that
 * is neither a nor b, and relinks d -> b -> e. It changes exactly three
 * links, and it read every link it changes, so under serializable
 * transactions the ring stays one cycle of N nodes whatever runs at the same
 * time; a lost update, a torn commit or a commit applied twice breaks the
 * cycle (two nodes pointing at one, a node lost, a shorter cycle). Node b is
 * first staged as removed and then re-inserted, so the later write of the
 * same key in one transaction must win.
 *
 * ring_verify() walks the ring in one transaction: an iteration of the slot
 * must list exactly the N node keys and no other, every value must be a
 * node number, and following the links from node 0 must visit every node
 * once and come back to 0 after exactly N steps.
 *
 * Everything here is static inline (the header is included by two programs,
 * each using a part). Codes: a tome code (<= 0) or RING_BROKEN (1) when the
 * data itself is wrong (the detail goes to the `why` buffer).
 */
#ifndef TOME_TESTS_RING_H
#define TOME_TESTS_RING_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tome.h"

#define RING_SLOT    7
#define RING_KEYLEN  7      /* "r" + 6 digits */
#define RING_MAX     999999u
#define RING_BROKEN  1

static inline uint64_t ring_rand(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline void ring_key(char k[RING_KEYLEN + 1], uint32_t i) {
    snprintf(k, RING_KEYLEN + 1, "r%06u", (unsigned)(i % 1000000u));
}

static inline void ring_val(char v[7], uint32_t i) { snprintf(v, 7, "%06u", (unsigned)(i % 1000000u)); }

/* 6 decimal digits -> *out; -1 when the bytes are anything else. */
static inline int ring_parse(const void *p, size_t n, uint32_t *out) {
    const char *s = p;
    if (n != 6) return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < 6; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The link of node i as the transaction sees it. */
static inline int ring_next(tome_txn *t, uint32_t n, uint32_t i, uint32_t *next, char *why, size_t cap) {
    char k[RING_KEYLEN + 1];
    ring_key(k, i);
    const void *v;
    size_t vl;
    int rc = tome_get(t, RING_SLOT, k, RING_KEYLEN, &v, &vl);
    if (rc == TOME_NOTFOUND) {
        snprintf(why, cap, "node %u is missing", (unsigned)i);
        return RING_BROKEN;
    }
    if (rc) {
        snprintf(why, cap, "tome_get(node %u): %s", (unsigned)i, tome_strerror(rc));
        return rc;
    }
    if (ring_parse(v, vl, next) || *next >= n) {
        snprintf(why, cap, "node %u holds %zu bytes that are no node number", (unsigned)i, vl);
        return RING_BROKEN;
    }
    return 0;
}

static inline int ring_link(tome_txn *t, uint32_t from, uint32_t to) {
    char k[RING_KEYLEN + 1], v[7];
    ring_key(k, from);
    ring_val(v, to);
    return tome_insert(t, RING_SLOT, k, RING_KEYLEN, v, 6);
}

/* One transaction that writes the cycle 0 -> 1 -> ... -> n-1 -> 0. */
static inline int ring_init(tome_db *db, uint32_t n) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) return rc;
    for (uint32_t i = 0; i < n && !rc; i++) rc = ring_link(t, i, (i + 1) % n);
    if (rc) {
        tome_abort(t);
        return rc;
    }
    return tome_commit(t);
}

/* Stages one relink in t (see the top of the file); n >= 4. */
static inline int ring_stage(tome_txn *t, uint32_t n, uint64_t *rng, char *why, size_t cap) {
    uint32_t a = (uint32_t)(ring_rand(rng) % n), b, c, d, e;
    int rc = ring_next(t, n, a, &b, why, cap);
    if (rc) return rc;
    if ((rc = ring_next(t, n, b, &c, why, cap)) != 0) return rc;
    do d = (uint32_t)(ring_rand(rng) % n); while (d == a || d == b);
    if ((rc = ring_next(t, n, d, &e, why, cap)) != 0) return rc;
    char kb[RING_KEYLEN + 1];
    ring_key(kb, b);
    /* unlink b (staged as a removal, replaced below by its new link) */
    if ((rc = tome_remove(t, RING_SLOT, kb, RING_KEYLEN)) != 0) return rc;
    if ((rc = ring_link(t, a, c)) != 0) return rc;
    /* d != a, so d's link read above is the committed one; e != b */
    if ((rc = ring_link(t, d, b)) != 0) return rc;
    return ring_link(t, b, e);
}

/* One relink, rerun on TOME_CONFLICT until it commits. *conflicts counts
 * the reruns. Returns the code of the commit that ended it (or of a read). */
static inline int ring_step(tome_db *db, uint32_t n, uint64_t *rng, unsigned flags, long *conflicts,
                            char *why, size_t cap) {
    for (;;) {
        tome_txn *t;
        int rc = tome_begin(db, &t);
        if (rc) {
            snprintf(why, cap, "tome_begin: %s", tome_strerror(rc));
            return rc;
        }
        rc = ring_stage(t, n, rng, why, cap);
        if (rc) {
            tome_abort(t);
            return rc;
        }
        rc = tome_commit_ex(t, flags);
        if (rc != TOME_CONFLICT) {
            if (rc) snprintf(why, cap, "tome_commit: %s", tome_strerror(rc));
            return rc;
        }
        (*conflicts)++;
    }
}

/* Checks that t sees exactly one cycle of n nodes. */
static inline int ring_verify(tome_txn *t, uint32_t n, char *why, size_t cap) {
    uint8_t *seen = calloc(n ? n : 1, 1);
    if (!seen) {
        snprintf(why, cap, "out of memory");
        return TOME_NOMEM;
    }
    tome_iter *it;
    int rc = tome_iter_open(t, RING_SLOT, NULL, 0, &it);
    if (rc) {
        snprintf(why, cap, "tome_iter_open: %s", tome_strerror(rc));
        free(seen);
        return rc;
    }
    uint32_t count = 0;
    const void *kp;
    size_t kl;
    while ((rc = tome_iter_next(it, &kp, &kl)) == TOME_OK) {
        const char *k = kp;
        uint32_t id;
        if (kl != RING_KEYLEN || k[0] != 'r' || ring_parse(k + 1, 6, &id) || id >= n) {
            snprintf(why, cap, "the slot holds a key of %zu bytes that is no node", kl);
            rc = RING_BROKEN;
            break;
        }
        count++;
    }
    tome_iter_close(it);
    if (rc != TOME_NOTFOUND) {
        if (rc != RING_BROKEN) snprintf(why, cap, "tome_iter_next: %s", tome_strerror(rc));
        free(seen);
        return rc;
    }
    if (count != n) {
        snprintf(why, cap, "%u nodes instead of %u", (unsigned)count, (unsigned)n);
        free(seen);
        return RING_BROKEN;
    }
    uint32_t at = 0;
    for (uint32_t step = 0; step < n; step++) {
        if (seen[at]) {
            snprintf(why, cap, "node %u reached twice: a cycle of %u nodes instead of %u", (unsigned)at,
                     (unsigned)step, (unsigned)n);
            free(seen);
            return RING_BROKEN;
        }
        seen[at] = 1;
        uint32_t nx;
        if ((rc = ring_next(t, n, at, &nx, why, cap)) != 0) {
            free(seen);
            return rc;
        }
        at = nx;
    }
    free(seen);
    if (at != 0) {
        snprintf(why, cap, "after %u steps from node 0 the walk is at node %u", (unsigned)n, (unsigned)at);
        return RING_BROKEN;
    }
    return 0;
}

/* ring_verify in a transaction of its own. */
static inline int ring_check_db(tome_db *db, uint32_t n, char *why, size_t cap) {
    tome_txn *t;
    int rc = tome_begin(db, &t);
    if (rc) {
        snprintf(why, cap, "tome_begin: %s", tome_strerror(rc));
        return rc;
    }
    rc = ring_verify(t, n, why, cap);
    tome_abort(t);
    return rc;
}

#endif /* TOME_TESTS_RING_H */
