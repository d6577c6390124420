/*
 * slab.c -- a process-wide allocator for the many small blocks of the
 * in-memory index (one key entry per key of every open store).
 *
 * Why: malloc adds an 8-byte header to every block and rounds its size up
 * to 16 bytes. For a 16-byte key the entry is 56 bytes and malloc makes it
 * 64; over a million keys that is 8 MB for nothing, and the memory budget
 * of the index is counted in bytes per key (docs/DESIGN.md).
 *
 * How: blocks of up to SLAB_MAX bytes are rounded up to a multiple of 8 and
 * served from the size class of that multiple. A class carves blocks from
 * 64 KiB chunks taken with tome_malloc (so allocation failure and the test
 * hooks apply) and keeps freed blocks on a free list threaded through them;
 * there is no header per block, the caller passes the size back to
 * tome_slab_free. Larger blocks go straight to tome_malloc. One mutex
 * guards everything: the index changes under the engine's own locks, so
 * contention only comes from different stores.
 *
 * Chunks are not returned one by one (a chunk with one live block must
 * stay); when the last block of the process is freed (every store closed),
 * all chunks go back to tome_free, so a closed store leaves nothing behind.
 *
 * Under AddressSanitizer every block is a plain tome_malloc, so that the
 * sanitizer keeps seeing each block's bounds and lifetime.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "os.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_OFF 1
#endif
#endif

#ifndef SLAB_OFF
#define SLAB_MAX   512
#define SLAB_CHUNK 65536
#define NCLASS     (SLAB_MAX / 8)

typedef struct chunk {
    struct chunk *next;
    _Alignas(16) unsigned char data[];
} chunk;

static struct {
    pthread_mutex_t mu;
    void *free[NCLASS];          /* free lists, by class */
    unsigned char *bump[NCLASS]; /* unused tail of the class's newest chunk */
    size_t left[NCLASS];         /* bytes left there */
    chunk *chunks;               /* every chunk, for the final release */
    size_t live;                 /* blocks handed out and not freed */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t class_of(size_t n) { return (n + 7) / 8 - 1; }
#endif

void *tome_slab_alloc(size_t n) {
#ifdef SLAB_OFF
    return tome_malloc(n ? n : 1);
#else
    if (n == 0) n = 1;
    if (n > SLAB_MAX) return tome_malloc(n);
    size_t c = class_of(n), sz = (c + 1) * 8;
    void *p = NULL;
    pthread_mutex_lock(&g.mu);
    if (g.free[c]) {
        p = g.free[c];
        memcpy(&g.free[c], p, sizeof(void *));
    } else {
        if (g.left[c] < sz) {
            chunk *k = tome_malloc(sizeof *k + SLAB_CHUNK);
            if (!k) {
                pthread_mutex_unlock(&g.mu);
                return NULL;
            }
            k->next = g.chunks;
            g.chunks = k;
            g.bump[c] = k->data;
            g.left[c] = SLAB_CHUNK;
        }
        p = g.bump[c];
        g.bump[c] += sz;
        g.left[c] -= sz;
    }
    g.live++;
    pthread_mutex_unlock(&g.mu);
    return p;
#endif
}

void tome_slab_free(void *p, size_t n) {
#ifdef SLAB_OFF
    (void)n;
    tome_free(p);
#else
    if (!p) return;
    if (n == 0) n = 1;
    if (n > SLAB_MAX) {
        tome_free(p);
        return;
    }
    size_t c = class_of(n);
    chunk *all = NULL;
    pthread_mutex_lock(&g.mu);
    memcpy(p, &g.free[c], sizeof(void *));
    g.free[c] = p;
    if (--g.live == 0) { /* nothing is in use: give every chunk back */
        all = g.chunks;
        g.chunks = NULL;
        memset(g.free, 0, sizeof g.free);
        memset(g.bump, 0, sizeof g.bump);
        memset(g.left, 0, sizeof g.left);
    }
    pthread_mutex_unlock(&g.mu);
    while (all) {
        chunk *next = all->next;
        tome_free(all);
        all = next;
    }
#endif
}
