/*
 * util.h -- small shared helpers: CRC32C, error detail, growable buffers,
 * little-endian encoding and a hash function.
 */
#ifndef TOME_UTIL_H
#define TOME_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../include/tome.h"

/* ---- CRC32C (Castagnoli), hardware-accelerated where the CPU has it ---- */

/* Extends crc (0 to start) over n bytes. crc32c("123456789") == 0xE3069283. */
uint32_t tome_crc32c(uint32_t crc, const void *data, size_t n);

/* ---- error detail (thread-local, per handle; see tome_errmsg) ---- */

/* Records the detail of a failure of a call on db (NULL: of tome_open) in
 * this thread and returns code, so that callers can write
 * `return tome_err(db, TOME_IO, "write %s: %s", path, strerror(e));`. */
int tome_err(tome_db *db, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Forgets the detail stored for db in this thread (called by tome_close so a
 * later handle at the same address starts clean). */
void tome_err_forget(tome_db *db);

/* ---- growable byte buffer ---- */

typedef struct tome_buf {
    uint8_t *p;
    size_t len, cap;
} tome_buf;

/* Makes room for n more bytes; 0 or TOME_NOMEM. */
int  tome_buf_reserve(tome_buf *b, size_t n);
int  tome_buf_append(tome_buf *b, const void *data, size_t n);
void tome_buf_free(tome_buf *b);

/* ---- little-endian fixed-width encoding ---- */

static inline void tome_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void tome_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tome_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tome_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tome_get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t tome_get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ---- hashing (for in-memory hash tables, not for storage) ---- */

uint64_t tome_hash(const void *data, size_t n, uint64_t seed);

/* ---- crash points for tests (see killpoint.c) ---- */

#ifdef TOME_KILLPOINTS
void tome_killpoint(const char *name);
#define TOME_KILLPOINT(name) tome_killpoint(name)
#else
#define TOME_KILLPOINT(name) ((void)0)
#endif

#endif /* TOME_UTIL_H */
