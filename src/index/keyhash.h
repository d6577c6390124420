/*
 * keyhash.h -- a hash table from (slot, key) to index entries, for point
 * lookups beside the ordered tree (see keyhash.c). The table does not own
 * the entries. The caller locks.
 */
#ifndef TOME_KEYHASH_H
#define TOME_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

typedef struct tome_keyhash tome_keyhash;

/* NULL when out of memory (or on a platform where pointers need more than
 * 48 bits; the caller then does without). */
tome_keyhash *tome_keyhash_new(void);
void tome_keyhash_free(tome_keyhash *kh);
size_t tome_keyhash_memory(const tome_keyhash *kh);
tome_entry *tome_keyhash_find(const tome_keyhash *kh, uint8_t slot, const void *key, size_t klen);
/* The same steps with the key's hash computed once by the caller, so that a
 * batch can prefetch the cells of all its keys before looking any up. */
uint64_t tome_keyhash_hash(uint8_t slot, const void *key, size_t klen);
void tome_keyhash_prefetch(const tome_keyhash *kh, uint64_t h);
tome_entry *tome_keyhash_find_h(const tome_keyhash *kh, uint64_t h, uint8_t slot, const void *key, size_t klen);
int tome_keyhash_insert_h(tome_keyhash *kh, tome_entry *e, uint64_t h);
/* Room for `more` inserts without allocating. 0 or TOME_NOMEM. */
int tome_keyhash_reserve(tome_keyhash *kh, size_t more);
/* Adds e (not present yet). 0 or TOME_NOMEM (unchanged). */
int tome_keyhash_insert(tome_keyhash *kh, tome_entry *e);
/* Adds e[0..n), none present yet, after tome_keyhash_reserve(kh, n).
 * Never fails. */
void tome_keyhash_insert_many(tome_keyhash *kh, tome_entry *const *e, size_t n);
/* Removes e if present. Never fails. */
void tome_keyhash_remove(tome_keyhash *kh, const tome_entry *e);

#endif
