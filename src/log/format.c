/*
 * format.c -- encoding and decoding of the fixed-size parts of the local
 * engine's files: segment headers and record headers. docs/FORMAT.md is the
 * byte-by-byte specification; this file is its executable form.
 */
#include "local.h"

void seg_hdr_encode(uint8_t out[SEG_HDR_SIZE], const seg_hdr *h) {
    memset(out, 0, SEG_HDR_SIZE);
    memcpy(out, h->merged ? SEG_MAGIC_MRG : SEG_MAGIC_LOG, 8);
    tome_put32(out + 8, FORMAT_VERSION);
    tome_put32(out + 12, h->merged ? 1u : 0u);
    tome_put64(out + 16, h->lo);
    tome_put64(out + 24, h->hi);
    tome_put64(out + 32, h->base_seq);
    tome_put64(out + 40, h->last_seq);
    tome_put64(out + 48, h->last_ts);
    /* bytes 56..59: last_ts - horizon_ts, saturating (the horizon's time
     * is only used for tome_last_updated of a snapshot at the horizon). */
    uint64_t d = h->last_ts >= h->horizon_ts ? h->last_ts - h->horizon_ts : 0;
    tome_put32(out + 56, d > UINT32_MAX ? UINT32_MAX : (uint32_t)d);
    tome_put32(out + 60, tome_crc32c(0, out, 60));
}

int seg_hdr_decode(const uint8_t in[SEG_HDR_SIZE], seg_hdr *h) {
    int merged;
    if (!memcmp(in, SEG_MAGIC_LOG, 8)) merged = 0;
    else if (!memcmp(in, SEG_MAGIC_MRG, 8)) merged = 1;
    else return TOME_CORRUPT;
    if (tome_get32(in + 60) != tome_crc32c(0, in, 60)) return TOME_CORRUPT;
    if (tome_get32(in + 8) != FORMAT_VERSION) return TOME_CORRUPT;
    if (tome_get32(in + 12) != (merged ? 1u : 0u)) return TOME_CORRUPT;
    h->merged = merged;
    h->lo = tome_get64(in + 16);
    h->hi = tome_get64(in + 24);
    h->base_seq = tome_get64(in + 32);
    h->last_seq = tome_get64(in + 40);
    h->last_ts = tome_get64(in + 48);
    uint32_t d = tome_get32(in + 56);
    h->horizon_ts = h->last_ts >= d ? h->last_ts - d : 0;
    if (h->lo == 0 || h->hi < h->lo || (!merged && h->lo != h->hi)) return TOME_CORRUPT;
    return 0;
}

void rec_hdr_encode(uint8_t out[REC_HDR_SIZE], int type, uint8_t slot, uint32_t klen, uint32_t vlen) {
    tome_put32(out, 0);
    out[4] = (uint8_t)type;
    out[5] = slot;
    out[6] = 0;
    out[7] = 0;
    tome_put32(out + 8, klen);
    tome_put32(out + 12, vlen);
}
