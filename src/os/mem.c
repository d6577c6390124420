/*
 * mem.c -- the allocator of the library.
 *
 * Every allocation of tome goes through tome_malloc, tome_calloc,
 * tome_realloc and tome_free, so that tests can replace the allocator with
 * tome_alloc_set_hooks (for instance to fail the Nth allocation) and so that
 * memory handed to the caller is always freed through the same allocator
 * that made it. The hooks live in one global table published through an
 * atomic pointer; the documented rule (os.h) is that the hooks are changed
 * only while no store is in use. A hook member left NULL means the C
 * library's function.
 *
 * Guarantees: tome_malloc(0) and tome_realloc(p, 0) return a unique non-NULL
 * pointer (they allocate one byte), so NULL always means "out of memory";
 * tome_calloc returns NULL when count * size overflows; tome_free(NULL) does
 * nothing.
 */
#include "os.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static tome_alloc_hooks g_custom;
static _Atomic(const tome_alloc_hooks *) g_hooks; /* NULL: the C library */

static const tome_alloc_hooks *hooks(void) {
    return atomic_load_explicit(&g_hooks, memory_order_acquire);
}

void tome_alloc_set_hooks(const tome_alloc_hooks *h) {
    if (h == NULL) {
        atomic_store_explicit(&g_hooks, NULL, memory_order_release);
        return;
    }
    /* The rule of os.h says no allocation is in flight: copying is safe. */
    atomic_store_explicit(&g_hooks, NULL, memory_order_release);
    g_custom = *h;
    atomic_store_explicit(&g_hooks, &g_custom, memory_order_release);
}

void *tome_malloc(size_t n) {
    const tome_alloc_hooks *h = hooks();
    if (n == 0) n = 1;
    return h && h->malloc ? h->malloc(n) : malloc(n);
}

void *tome_calloc(size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    size_t n = count * size;
    void *p = tome_malloc(n);
    if (p) memset(p, 0, n ? n : 1);
    return p;
}

void *tome_realloc(void *p, size_t n) {
    const tome_alloc_hooks *h = hooks();
    if (n == 0) n = 1;
    return h && h->realloc ? h->realloc(p, n) : realloc(p, n);
}

void tome_free(void *p) {
    if (p == NULL) return;
    const tome_alloc_hooks *h = hooks();
    if (h && h->free) h->free(p);
    else free(p);
}

char *tome_strndup(const char *s, size_t len) {
    if (len == SIZE_MAX || (s == NULL && len != 0)) return NULL;
    char *d = tome_malloc(len + 1);
    if (d == NULL) return NULL;
    if (len) memcpy(d, s, len);
    d[len] = '\0';
    return d;
}
