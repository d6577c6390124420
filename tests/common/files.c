/*
 * files.c -- the file-level helpers of files.h: copying a store directory
 * (keeping preallocated zero runs as holes), finding the newest log segment
 * and the end of its data, cutting, zeroing, flipping and searching bytes.
 * Used by the recovery and crash tests to build damaged stores; plain POSIX,
 * no knowledge of tome's record format.
 */
#include "files.h"

#include "../tt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TF_CHUNK 65536

void tf_path(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

int tf_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static int tf_all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int tf_write_full(int fd, const unsigned char *p, size_t n, off_t off) {
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int tf_copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY);
    if (in < 0) return -1;
    struct stat st;
    if (fstat(in, &st) != 0) {
        close(in);
        return -1;
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, st.st_mode & 0777);
    if (out < 0) {
        close(in);
        return -1;
    }
    unsigned char *buf = malloc(TF_CHUNK);
    int rc = buf ? 0 : -1;
    off_t off = 0;
    while (rc == 0) {
        ssize_t r = pread(in, buf, TF_CHUNK, off);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = -1;
            break;
        }
        if (r == 0) break;
        if (!tf_all_zero(buf, (size_t)r)) rc = tf_write_full(out, buf, (size_t)r, off);
        off += r;
    }
    if (rc == 0 && ftruncate(out, off) != 0) rc = -1;
    free(buf);
    close(in);
    if (close(out) != 0) rc = -1;
    return rc;
}

int tf_copy_dir(const char *src, const char *dst) {
    tt_rmtree(dst);
    if (mkdir(dst, 0700) != 0) return -1;
    DIR *d = opendir(src);
    if (!d) return -1;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char a[TF_PATH_MAX], b[TF_PATH_MAX];
        tf_path(a, sizeof a, src, de->d_name);
        tf_path(b, sizeof b, dst, de->d_name);
        struct stat st;
        if (lstat(a, &st) != 0) {
            rc = -1;
            break;
        }
        if (S_ISREG(st.st_mode)) rc = tf_copy_file(a, b);
    }
    closedir(d);
    return rc;
}

/* A segment name: exactly 16 lowercase or uppercase hex digits + ".log". */
static int tf_parse_segment(const char *name, uint64_t *segno) {
    if (strlen(name) != 20 || strcmp(name + 16, ".log") != 0) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int x;
        if (c >= '0' && c <= '9') x = c - '0';
        else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
        else return 0;
        v = (v << 4) | (uint64_t)x;
    }
    *segno = v;
    return 1;
}

int tf_newest_log(const char *dir, char *out, size_t cap, uint64_t *segno_out) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int found = 0;
    uint64_t best = 0;
    char name[256] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t n;
        if (!tf_parse_segment(de->d_name, &n)) continue;
        if (!found || n > best) {
            best = n;
            snprintf(name, sizeof name, "%s", de->d_name);
            found = 1;
        }
    }
    closedir(d);
    if (!found) {
        errno = ENOENT;
        return -1;
    }
    tf_path(out, cap, dir, name);
    if (segno_out) *segno_out = best;
    return 0;
}

int tf_count_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    size_t sl = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l >= sl && !strcmp(de->d_name + l - sl, suffix)) n++;
    }
    closedir(d);
    return n;
}

int64_t tf_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (int64_t)st.st_size;
}

int64_t tf_data_end(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    unsigned char *buf = malloc(TF_CHUNK);
    if (!buf) {
        close(fd);
        return -1;
    }
    int64_t end = 0;
    off_t pos = st.st_size;
    while (pos > 0) {
        off_t start = pos > TF_CHUNK ? pos - TF_CHUNK : 0;
        size_t want = (size_t)(pos - start);
        ssize_t r = pread(fd, buf, want, start);
        if (r != (ssize_t)want) {
            end = -1;
            break;
        }
        size_t i = want;
        while (i > 0 && buf[i - 1] == 0) i--;
        if (i > 0) {
            end = (int64_t)start + (int64_t)i;
            break;
        }
        pos = start;
    }
    free(buf);
    close(fd);
    return end;
}

int tf_truncate(const char *path, uint64_t size) {
    return truncate(path, (off_t)size);
}

int tf_zero_range(const char *path, uint64_t from, uint64_t to) {
    int64_t size = tf_file_size(path);
    if (size < 0) return -1;
    if (to > (uint64_t)size) to = (uint64_t)size;
    if (from >= to) return 0;
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    static const unsigned char zeros[4096];
    int rc = 0;
    uint64_t off = from;
    while (rc == 0 && off < to) {
        size_t n = to - off > sizeof zeros ? sizeof zeros : (size_t)(to - off);
        rc = tf_write_full(fd, zeros, n, (off_t)off);
        off += n;
    }
    if (close(fd) != 0) rc = -1;
    return rc;
}

int tf_flip(const char *path, uint64_t off, uint8_t mask) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return -1;
    unsigned char c;
    int rc = -1;
    if (pread(fd, &c, 1, (off_t)off) == 1) {
        c ^= mask;
        rc = tf_write_full(fd, &c, 1, (off_t)off);
    } else {
        errno = EINVAL;
    }
    if (close(fd) != 0) rc = -1;
    return rc;
}

int tf_write_at(const char *path, uint64_t off, const void *buf, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return -1;
    int rc = tf_write_full(fd, buf, len, (off_t)off);
    if (close(fd) != 0) rc = -1;
    return rc;
}

int tf_create_empty(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    return close(fd);
}

int64_t tf_find(const char *path, const void *needle, size_t n, uint64_t from) {
    if (n == 0) return (int64_t)from;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < from) {
        close(fd);
        return -1;
    }
    size_t len = (size_t)((uint64_t)st.st_size - from);
    unsigned char *buf = malloc(len ? len : 1);
    int64_t res = -1;
    if (buf && pread(fd, buf, len, (off_t)from) == (ssize_t)len && len >= n) {
        void *hit = memmem(buf, len, needle, n);
        if (hit) res = (int64_t)from + ((unsigned char *)hit - buf);
    }
    free(buf);
    close(fd);
    return res;
}

int64_t tf_find_in_logs(const char *dir, const void *needle, size_t n, char *out, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int64_t res = -1;
    struct dirent *de;
    while (res < 0 && (de = readdir(d)) != NULL) {
        uint64_t segno;
        if (!tf_parse_segment(de->d_name, &segno)) continue;
        char p[TF_PATH_MAX];
        tf_path(p, sizeof p, dir, de->d_name);
        res = tf_find(p, needle, n, 0);
        if (res >= 0) snprintf(out, cap, "%s", p);
    }
    closedir(d);
    return res;
}

static uint64_t tf_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t tf_dir_digest(const char *dir, const char *skip) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    unsigned char *buf = malloc(TF_CHUNK);
    uint64_t sum = 1;
    int ok = buf != NULL;
    struct dirent *de;
    while (ok && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (skip && !strcmp(de->d_name, skip)) continue;
        char p[TF_PATH_MAX];
        tf_path(p, sizeof p, dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) {
            ok = 0;
            break;
        }
        if (!S_ISREG(st.st_mode)) continue;
        uint64_t h = tf_fnv(UINT64_C(0xcbf29ce484222325), de->d_name, strlen(de->d_name) + 1);
        int fd = open(p, O_RDONLY);
        if (fd < 0) {
            ok = 0;
            break;
        }
        ssize_t r;
        uint64_t total = 0;
        while ((r = read(fd, buf, TF_CHUNK)) > 0) {
            h = tf_fnv(h, buf, (size_t)r);
            total += (uint64_t)r;
        }
        if (r < 0) ok = 0;
        close(fd);
        h = tf_fnv(h, &total, sizeof total);
        sum += h * 2 + 1;
    }
    closedir(d);
    free(buf);
    return ok ? sum : 0;
}

int tf_remove(const char *path) {
    if (unlink(path) == 0 || errno == ENOENT) return 0;
    return -1;
}

int tf_short(void) {
    const char *s = getenv("TOME_TEST_SHORT");
    return s && *s && strcmp(s, "0") != 0;
}

uint64_t tf_rand(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void tf_fill(void *buf, size_t len, uint64_t seed) {
    unsigned char *p = buf;
    uint64_t st = seed * UINT64_C(0x2545F4914F6CDD1D) + 1;
    uint64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) r = tf_rand(&st);
        unsigned char c = (unsigned char)(r >> (8 * (i % 8)));
        p[i] = c ? c : 0x5a; /* never zero: data ends are measured by zeros */
    }
}
