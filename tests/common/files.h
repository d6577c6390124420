/*
 * files.h -- file-level helpers for the durability tests (tf_ prefix).
 *
 * The crash and recovery tests damage a store's files from outside, the way
 * a crash, a torn write or a bad disk would: they copy a store directory,
 * find its newest log segment and where the data in that preallocated file
 * ends, cut the file, zero or flip bytes, append garbage, and search a file
 * for known bytes (to aim damage at one record). These helpers do that with
 * plain POSIX calls; they know nothing of tome's format beyond the file
 * names of docs/FORMAT.md (`%016llx.log` segments, `INDEX`).
 *
 * Every helper returns 0 (or a size/offset >= 0) on success and -1 on
 * failure (errno set), so that test code can CHECK the result. Paths are
 * limited to TF_PATH_MAX bytes.
 */
#ifndef TOME_TESTS_FILES_H
#define TOME_TESTS_FILES_H

#include <stddef.h>
#include <stdint.h>

#define TF_PATH_MAX 1024

/* "dir/name" into out (cap bytes). */
void tf_path(char *out, size_t cap, const char *dir, const char *name);

/* 1 if path exists (any kind), 0 if not. */
int tf_exists(const char *path);

/* Removes dst (a whole tree) if present, creates it and copies every regular
 * file directly inside src into it. Runs of zero bytes are left as holes
 * (the copy of a preallocated segment reads back the same, with the same
 * size, but costs no disk). */
int tf_copy_dir(const char *src, const char *dst);

/* Copies one regular file (same hole handling). */
int tf_copy_file(const char *src, const char *dst);

/* The full path of the log segment with the highest segment number in dir
 * (a name of exactly 16 hex digits + ".log"); *segno_out (if not NULL) gets
 * its number. -1 when dir has no segment. */
int tf_newest_log(const char *dir, char *out, size_t cap, uint64_t *segno_out);

/* Number of names in dir that end with suffix (e.g. ".log"). -1 on error. */
int tf_count_suffix(const char *dir, const char *suffix);

/* The size of a file, or -1. */
int64_t tf_file_size(const char *path);

/* The end of the data in a (preallocated) file: the offset just after its
 * last non-zero byte; 0 for an empty or all-zero file; -1 on error. */
int64_t tf_data_end(const char *path);

/* ftruncate(path, size). */
int tf_truncate(const char *path, uint64_t size);

/* Writes zeros over [from, to) (clamped to the file size); the size stays. */
int tf_zero_range(const char *path, uint64_t from, uint64_t to);

/* XORs the byte at off with mask. */
int tf_flip(const char *path, uint64_t off, uint8_t mask);

/* Writes len bytes at off (the file grows if needed; created if missing). */
int tf_write_at(const char *path, uint64_t off, const void *buf, size_t len);

/* Creates (or truncates to) an empty file. */
int tf_create_empty(const char *path);

/* The offset of the first occurrence of needle[0..n) in the file at or after
 * `from`, or -1 (not found or error). */
int64_t tf_find(const char *path, const void *needle, size_t n, uint64_t from);

/* Searches every segment file (*.log) of dir for needle: on success writes
 * the file's full path to out and returns the offset; -1 if no segment
 * holds it. */
int64_t tf_find_in_logs(const char *dir, const void *needle, size_t n, char *out, size_t cap);

/* An order-independent digest of the names and contents of the regular
 * files directly inside dir, skipping the name `skip` (NULL: none). Two
 * calls give the same value iff (up to hash collisions) the same files hold
 * the same bytes. 0 on error. */
uint64_t tf_dir_digest(const char *dir, const char *skip);

/* Unlinks path; 0 also when it did not exist. */
int tf_remove(const char *path);

/* 1 when TOME_TEST_SHORT is set to something other than "" or "0" (smaller
 * loops, e.g. under valgrind). */
int tf_short(void);

/* A small deterministic PRNG (splitmix64) over caller-held state. */
uint64_t tf_rand(uint64_t *state);

/* Fills buf with len deterministic bytes derived from seed (never all zero
 * for len >= 1; distinct seeds give distinct streams). */
void tf_fill(void *buf, size_t len, uint64_t seed);

#endif /* TOME_TESTS_FILES_H */
