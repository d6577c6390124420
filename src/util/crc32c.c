/*
 * crc32c.c -- CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * tome_crc32c(crc, data, n) extends a previous result `crc` (0 to start)
 * over n more bytes, with the usual conventions (initial value ~0, final
 * xor ~0), so that crc32c(crc32c(0, a), b) == crc32c(0, a || b) and
 * crc32c("123456789") == 0xE3069283.
 *
 * On x86_64 it uses the SSE4.2 crc32 instruction when the CPU has it
 * (detected at run time, once); elsewhere, and on CPUs without SSE4.2, a
 * table-driven "slicing-by-8" loop that reads its input one byte at a time
 * (no alignment or endianness assumption). The tables are built once under
 * pthread_once, so the function is thread-safe from the first call.
 * tome_crc32c_sw is the portable loop, exported for the tests.
 */
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TOME_CRC_X86 1
#include <nmmintrin.h>
#else
#define TOME_CRC_X86 0
#endif

#define POLY 0x82F63B78u

static uint32_t g_tab[8][256];
static int g_have_hw;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        g_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            g_tab[t][i] = (g_tab[t - 1][i] >> 8) ^ g_tab[0][g_tab[t - 1][i] & 0xFFu];
#if TOME_CRC_X86
    __builtin_cpu_init();
    g_have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

/* The raw (pre- and post-inverted) table loop. */
static uint32_t crc_sw_raw(uint32_t c, const uint8_t *p, size_t n) {
    while (n >= 8) {
        c ^= (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
             ((uint32_t)p[3] << 24);
        c = g_tab[7][c & 0xFFu] ^ g_tab[6][(c >> 8) & 0xFFu] ^
            g_tab[5][(c >> 16) & 0xFFu] ^ g_tab[4][c >> 24] ^
            g_tab[3][p[4]] ^ g_tab[2][p[5]] ^ g_tab[1][p[6]] ^ g_tab[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ g_tab[0][(c ^ *p++) & 0xFFu];
    return c;
}

uint32_t tome_crc32c_sw(uint32_t crc, const void *data, size_t n);
uint32_t tome_crc32c_sw(uint32_t crc, const void *data, size_t n) {
    pthread_once(&g_once, crc_init);
    if (n == 0) return crc;
    return ~crc_sw_raw(~crc, data, n);
}

#if TOME_CRC_X86
__attribute__((target("sse4.2")))
static uint32_t crc_hw_raw(uint32_t c, const uint8_t *p, size_t n) {
    /* No alignment prologue: x86 loads 8 bytes at any address at full
     * speed, and records (hence the checksummed bytes) start anywhere. */
    uint64_t c64 = c;
    while (n >= 32) {
        uint64_t w[4];
        memcpy(w, p, sizeof w);
        c64 = _mm_crc32_u64(c64, w[0]);
        c64 = _mm_crc32_u64(c64, w[1]);
        c64 = _mm_crc32_u64(c64, w[2]);
        c64 = _mm_crc32_u64(c64, w[3]);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t tome_crc32c(uint32_t crc, const void *data, size_t n) {
    pthread_once(&g_once, crc_init);
    if (n == 0) return crc;
#if TOME_CRC_X86
    if (g_have_hw) return ~crc_hw_raw(~crc, data, n);
#endif
    return ~crc_sw_raw(~crc, data, n);
}
