/*
 * buf.c -- the growable byte buffer (tome_buf).
 *
 * A tome_buf is {p, len, cap}; a zeroed struct is an empty buffer. Capacity
 * grows by doubling (from 64 bytes), every size computation is checked for
 * overflow, memory comes from tome_realloc, and a failure returns
 * TOME_NOMEM leaving the buffer exactly as it was.
 */
#include "util.h"

#include "../os/os.h"

#define BUF_MIN_CAP 64

int tome_buf_reserve(tome_buf *b, size_t n) {
    if (b == NULL) return TOME_INVALID;
    if (n > SIZE_MAX - b->len) return TOME_NOMEM;
    size_t need = b->len + n;
    if (need <= b->cap) return TOME_OK;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = tome_realloc(b->p, cap);
    if (p == NULL) return TOME_NOMEM;
    b->p = p;
    b->cap = cap;
    return TOME_OK;
}

int tome_buf_append(tome_buf *b, const void *data, size_t n) {
    if (b == NULL || (data == NULL && n != 0)) return TOME_INVALID;
    int rc = tome_buf_reserve(b, n);
    if (rc != TOME_OK) return rc;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return TOME_OK;
}

void tome_buf_free(tome_buf *b) {
    if (b == NULL) return;
    tome_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
