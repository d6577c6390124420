/*
 * eng_fsstore.c -- a FilesystemStore-like directory store for the
 * Lightning-like workload of the peer benchmark: what LDK's
 * FilesystemStore (lightning-persister) does, in C.
 *
 * Layout (v1): <root>/<primary>/<key>, or <root>/<primary>/<secondary>/<key>
 * when the secondary namespace is not empty. A write creates the
 * namespace directory if needed (mkdir, EEXIST ignored, as create_dir_all),
 * writes the value to "<key>.<counter>.tmp" beside the destination, fsyncs
 * it, renames it over the key and fsyncs the directory: the value is then
 * durable and a crash leaves the old or the new value. A listing reads the
 * directory, skipping subdirectories and leftover ".tmp" files, and copies
 * the names into an array of strings (as LDK builds a Vec<String>).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peers.h"

typedef struct fss {
    char root[2048];
    unsigned long counter;
} fss;

static void fdie(const char *what, const char *path) {
    char buf[2300];
    snprintf(buf, sizeof buf, "%s: %s", path, strerror(errno));
    peer_die("fsstore", what, buf);
}

static void *f_open(const char *path) {
    fss *f = calloc(1, sizeof *f);
    if (!f) peer_die("fsstore", "open", "out of memory");
    snprintf(f->root, sizeof f->root, "%s", path);
    peer_mkdirs(path);
    return f;
}

static void f_close(void *h) { free(h); }

static void ns_dir(const fss *f, const char *p, const char *s, char *out, size_t cap) {
    if (*s) snprintf(out, cap, "%s/%s/%s", f->root, p, s);
    else if (*p) snprintf(out, cap, "%s/%s", f->root, p);
    else snprintf(out, cap, "%s", f->root);
}

static void write_all(int fd, const void *buf, size_t len, const char *path) {
    const char *b = buf;
    while (len) {
        ssize_t w = write(fd, b, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            fdie("write", path);
        }
        b += w;
        len -= (size_t)w;
    }
}

static void f_write(void *h, const char *p, const char *s, const char *k, const void *buf, size_t len) {
    fss *f = h;
    char dir[2300], dest[2600], tmp[2700];
    ns_dir(f, p, s, dir, sizeof dir);
    peer_mkdirs(dir);
    snprintf(dest, sizeof dest, "%s/%s", dir, k);
    snprintf(tmp, sizeof tmp, "%s.%lu.tmp", dest, f->counter++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fdie("open", tmp);
    write_all(fd, buf, len, tmp);
    if (fsync(fd) != 0) fdie("fsync", tmp);
    if (close(fd) != 0) fdie("close", tmp);
    if (rename(tmp, dest) != 0) fdie("rename", dest);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) fdie("open", dir);
    if (fsync(dfd) != 0) fdie("fsync", dir);
    close(dfd);
}

static size_t f_list(void *h, const char *p, const char *s) {
    fss *f = h;
    char dir[2300];
    ns_dir(f, p, s, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        fdie("opendir", dir);
    }
    size_t n = 0, cap = 0;
    char **keys = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, 0) == 0) is_dir = S_ISDIR(st.st_mode);
        }
        if (is_dir) continue;
        size_t nl = strlen(e->d_name);
        if (nl > 4 && !strcmp(e->d_name + nl - 4, ".tmp")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            keys = realloc(keys, cap * sizeof *keys);
            if (!keys) peer_die("fsstore", "list", "out of memory");
        }
        keys[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    return n;
}

const peer_kvstore_ops peer_kv_fsstore = {
    .name = "fsstore",
    .settings = "- LDK FilesystemStore-like: <root>/<primary>[/<secondary>]/<key>; write: mkdir of "
                "the namespace (EEXIST ignored), write <key>.<n>.tmp, fsync, close, rename over the "
                "key, fsync the directory; listing: readdir, skipping directories and *.tmp, names "
                "copied into an array of strings\n",
    .open = f_open,
    .close = f_close,
    .write = f_write,
    .list = f_list,
};
