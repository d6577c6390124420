/*
 * os.h -- the OS layer: every file operation, the clock and every memory
 * allocation of the library go through here.
 *
 * Files and directories are reached through a tome_vfs, a table of function
 * pointers. The library ships two: the POSIX one (real files) and an
 * in-memory one (":memory:" stores, and the base on which tests build
 * fault-injecting and crash-simulating layers). Allocation goes through
 * tome_malloc/tome_realloc/tome_free, whose hooks tests can replace to fail
 * the Nth allocation.
 *
 * Conventions: every vfs function returns 0 (or a byte count where said) on
 * success and a negative errno value (-EIO, -ENOSPC, -ENOENT, ...) on
 * failure. A function never retries a failed sync. Paths are plain C
 * strings; the library only ever uses a store directory and names directly
 * inside it.
 */
#ifndef TOME_OS_H
#define TOME_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct tome_vfs  tome_vfs;
typedef struct tome_file tome_file;   /* an open file of some vfs */

/* flags of tome_vfs.open */
#define TOME_VFS_READ    0x1  /* read only */
#define TOME_VFS_WRITE   0x2  /* read and write */
#define TOME_VFS_CREATE  0x4  /* create if missing */
#define TOME_VFS_EXCL    0x8  /* with CREATE: fail with -EEXIST if present */

/* kinds returned by tome_vfs.stat */
#define TOME_VFS_NONE 0
#define TOME_VFS_FILE 1
#define TOME_VFS_DIR  2

struct tome_vfs {
    const char *name;
    /* Files. pread returns the number of bytes read (less than len only at
     * end of file) or -errno. pwritev writes every byte or returns -errno
     * (some bytes may have been written). */
    int     (*open)(tome_vfs *vfs, const char *path, int flags, tome_file **out);
    int     (*close)(tome_file *f);
    int64_t (*pread)(tome_file *f, void *buf, size_t len, uint64_t off);
    int     (*pwritev)(tome_file *f, const struct iovec *iov, int iovcnt, uint64_t off);
    int     (*sync)(tome_file *f, int data_only);        /* fdatasync or fsync */
    int     (*truncate)(tome_file *f, uint64_t size);
    int     (*allocate)(tome_file *f, uint64_t off, uint64_t len); /* reserve space, keeps size semantics of fallocate(mode 0) */
    int     (*size)(tome_file *f, uint64_t *size_out);
    int     (*lock)(tome_file *f);                       /* exclusive, non-blocking: -EWOULDBLOCK when held */
    /* Names. */
    int     (*stat)(tome_vfs *vfs, const char *path, int *kind_out);
    int     (*mkdir)(tome_vfs *vfs, const char *path);
    int     (*rename)(tome_vfs *vfs, const char *from, const char *to);
    int     (*unlink)(tome_vfs *vfs, const char *path);
    /* The names in a directory (no "." or ".."), as one block: *names_out is
     * an array of *count_out strings; free the block with tome_free. */
    int     (*list)(tome_vfs *vfs, const char *dir, char ***names_out, size_t *count_out);
    int     (*sync_dir)(tome_vfs *vfs, const char *dir);
    /* Clock: milliseconds since the Unix epoch (wall clock, may step back). */
    uint64_t (*now_ms)(tome_vfs *vfs);
    /* Frees the vfs itself (NULL for static ones). */
    void    (*destroy)(tome_vfs *vfs);
    /* Optional (NULL: not supported; the library then reads with pread).
     * map: maps the first len bytes of f read-only and shared (it sees
     * later writes to f), *out the address. The mapping outlives f's close
     * until unmap. Reading a mapped byte that the file no longer holds, or
     * whose page the disk fails to read, raises SIGBUS: the library maps
     * only what it will not truncate (see docs/DESIGN.md, "Reads"). */
    int     (*map)(tome_file *f, uint64_t len, const void **out);
    void    (*unmap)(tome_vfs *vfs, const void *p, uint64_t len);
};

/* The process-wide POSIX vfs (static; destroy is NULL). */
tome_vfs *tome_vfs_posix(void);

/* A new, empty in-memory file system. NULL when out of memory. Free it with
 * vfs->destroy(vfs) once no file of it is open. Thread-safe. */
tome_vfs *tome_vfs_mem_new(void);

/* ---------------------------------------------------------------------- */
/* Memory. Every allocation of the library goes through these.             */
/* ---------------------------------------------------------------------- */

void *tome_malloc(size_t n);
void *tome_calloc(size_t count, size_t size);   /* NULL on overflow too */
void *tome_realloc(void *p, size_t n);
/* tome_free is public (tome.h). */
void  tome_free(void *p);

typedef struct tome_alloc_hooks {
    void *(*malloc)(size_t n);
    void *(*realloc)(void *p, size_t n);
    void  (*free)(void *p);
} tome_alloc_hooks;

/* Replaces the allocator (tests). NULL restores the C library's. Not
 * thread-safe with respect to allocations in flight: call it while no store
 * is in use. */
void tome_alloc_set_hooks(const tome_alloc_hooks *hooks);

/* Small blocks without a per-block header (slab.c): n bytes, rounded up to
 * a multiple of 8, 8-byte aligned; NULL when out of memory. The block is
 * freed with tome_slab_free and the same n. Thread-safe. */
void *tome_slab_alloc(size_t n);
void  tome_slab_free(void *p, size_t n);

/* Duplicates len bytes into a new allocation with a NUL after them. */
char *tome_strndup(const char *s, size_t len);

#endif /* TOME_OS_H */
