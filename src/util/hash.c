/*
 * hash.c -- tome_hash, a fast 64-bit non-cryptographic hash for in-memory
 * hash tables (never stored: the result may differ between platforms).
 *
 * The mixing step is "multiply and fold": the 128-bit product of two 64-bit
 * words, its halves xored together. Inputs of up to 16 bytes are read as two
 * (possibly overlapping) words that together cover every byte; longer inputs
 * go through two independent lanes of 32 bytes per round, then the last 16
 * bytes (overlapping what came before). The length and the seed enter the
 * final mix. Input is read with memcpy, so any alignment is safe.
 */
#include "util.h"

#define K0 UINT64_C(0x9E3779B97F4A7C15)
#define K1 UINT64_C(0xC2B2AE3D27D4EB4F)
#define K2 UINT64_C(0x165667B19E3779F9)
#define K3 UINT64_C(0xD6E8FEB86659FD93)

static inline uint64_t mum(uint64_t a, uint64_t b) {
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 u128;
    u128 r = (u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    uint64_t lo = (ll & 0xFFFFFFFFu) | (mid << 32);
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

static inline uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

uint64_t tome_hash(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data;
    uint64_t s = seed ^ mum(seed ^ K0, K1);
    uint64_t a, b;
    if (n <= 16) {
        if (n >= 8) {
            a = rd64(p);
            b = rd64(p + n - 8);
        } else if (n >= 4) {
            a = rd32(p);
            b = rd32(p + n - 4);
        } else if (n > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = n;
        if (i > 32) {
            uint64_t s2 = s ^ K3;
            do {
                s = mum(rd64(p) ^ K1, rd64(p + 8) ^ s);
                s2 = mum(rd64(p + 16) ^ K2, rd64(p + 24) ^ s2);
                p += 32;
                i -= 32;
            } while (i > 32);
            s ^= s2;
        }
        if (i > 16) {
            s = mum(rd64(p) ^ K1, rd64(p + 8) ^ s);
            p += 16;
            i -= 16;
        }
        /* 0 < i <= 16 bytes are left; the last 16 bytes of the input
         * cover them (n > 16, so they lie inside the input). */
        a = rd64(p + i - 16);
        b = rd64(p + i - 8);
    }
    uint64_t h = mum(a ^ K1, b ^ s);
    return mum(h ^ K2 ^ (uint64_t)n, s ^ K3);
}
