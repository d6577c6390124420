/*
 * kv.h -- what the two halves of the namespaced store share: kv.c (the
 * KVStore contract, pagination, apply) and kv_fs.c (import from and export
 * to an LDK FilesystemStore directory). Only these two files include it.
 * The mapping of names to slots and key bytes is documented in tome.h.
 */
#ifndef TOME_KV_H
#define TOME_KV_H

#include <stddef.h>
#include <stdint.h>

#include "../../include/tome.h"

/* A checked (primary, secondary, key) with the lengths of its parts. */
typedef struct kv_name {
    const char *p, *s, *k;
    size_t pl, sl, kl;
} kv_name;

/* Length of the creation stamp (see tome.h). */
#define KV_STAMP_LEN 12

/* 1 if s[0..len) is a valid name (empty allowed) */
int kv_name_ok(const char *s, size_t len);

/* Checks the names (key only if need_key) and fills *out. TOME_OK or
 * TOME_INVALID, with the detail recorded on db (if not NULL). */
int kv_check(tome_db *db, const char *p, const char *s, const char *k, int need_key,
             kv_name *out);

/* Writes primary "/" secondary "/" key into buf (TOME_KV_KEY_MAX bytes);
 * returns the length. */
size_t kv_mapkey(const kv_name *n, uint8_t *buf);

/* A creation stamp source for one transaction attempt: the seq the commit
 * is expected to get, read lazily (after tome_begin) from tome_last_seq. */
typedef struct kv_stamp {
    tome_db *db;
    uint64_t seq;   /* 0 until read */
} kv_stamp;

/* Stages a write of (n) = buf[0..len) in t: the value, and for a key not
 * present in t's snapshot its creation stamp (seq from st, index sub) and
 * order entry. *wrote is set to 1. */
int kv_stage_write(tome_txn *t, kv_stamp *st, uint32_t sub, const kv_name *n,
                   const void *buf, size_t len, int *wrote);

/* Stages the removal of (n); sets *wrote when there was something to
 * remove. */
int kv_stage_remove(tome_txn *t, const kv_name *n, int *wrote);

/* Splits a slot-255 key into names; 1 if it is a valid mapped key. The
 * pointers point into key (not NUL-terminated: use the lengths). */
int kv_split(const uint8_t *key, size_t len, kv_name *out);

#endif /* TOME_KV_H */
