/*
 * kv_fs.c -- migration between the namespaced store and LDK's
 * FilesystemStore directories: tome_kv_import_fs reads a v1 tree
 * (DIR/key, DIR/primary/key, DIR/primary/secondary/key) or a v2 tree (every
 * key at DIR/primary/secondary/key, "[empty]" naming an empty namespace),
 * skipping the "*.tmp" and "*.trash" files a crashed FilesystemStore leaves
 * behind; tome_kv_export_fs writes the store back out in either layout the
 * way FilesystemStore writes (temp file, fsync, rename, fsync directory).
 *
 * These functions work on a directory tree that is not a store, so they
 * use POSIX calls directly instead of the store's vfs. The store side goes
 * through the public API and the staging helpers of kv.c.
 *
 * Creation order crosses over through file mtimes, as FilesystemStoreV2
 * keeps it: an import writes keys oldest mtime first (so they get
 * increasing creation stamps), an export sets each file's mtime to the
 * timestamp of the commit that created its key.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../include/tome.h"
#include "../os/os.h"
#include "../util/util.h"
#include "kv.h"

#define KV_FS_EMPTY "[empty]"
#define KV_FS_BATCH_BYTES (32u << 20)
#define KV_FS_BATCH_KEYS  1024u

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */
/* ---------------------------------------------------------------------- */

/* dir "/" name, allocated */
static char *kv_path(const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    char *p = tome_malloc(dl + nl + 2);
    if (!p) return NULL;
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl + 1);
    return p;
}

static int kv_ends_with(const char *s, const char *suffix) {
    size_t l = strlen(s), m = strlen(suffix);
    return l >= m && memcmp(s + l - m, suffix, m) == 0;
}

/* ---------------------------------------------------------------------- */
/* Import                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct kv_fs_ent {
    char *path;
    char p[TOME_KV_NAME_MAX + 1], s[TOME_KV_NAME_MAX + 1], k[TOME_KV_NAME_MAX + 1];
    struct timespec mtime;
} kv_fs_ent;

typedef struct kv_fs_walk {
    tome_db *db;
    kv_fs_ent *ents;
    size_t n, cap;
    uint64_t skipped;
} kv_fs_walk;

static int kv_fs_add(kv_fs_walk *w, char *path, const char *p, const char *s, const char *k,
                     const struct stat *st) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        kv_fs_ent *e = tome_realloc(w->ents, cap * sizeof *e);
        if (!e) return TOME_NOMEM;
        w->ents = e;
        w->cap = cap;
    }
    kv_fs_ent *e = &w->ents[w->n++];
    e->path = path;
    strcpy(e->p, p);
    strcpy(e->s, s);
    strcpy(e->k, k);
    e->mtime = st->st_mtim;
    return TOME_OK;
}

/* depth 0: dir is the root; 1: a primary namespace p; 2: a secondary s */
static int kv_fs_walk_dir(kv_fs_walk *w, const char *dir, int depth, const char *p,
                          const char *s) {
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        if (depth == 0 && e == ENOENT)
            return tome_err(w->db, TOME_NOTFOUND, "kv import: %s: no such directory", dir);
        return tome_err(w->db, TOME_IO, "kv import: opendir %s: %s", dir, strerror(e));
    }
    int rc = TOME_OK;
    struct dirent *de;
    while (rc == TOME_OK && (errno = 0, de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
        if (kv_ends_with(name, ".tmp") || kv_ends_with(name, ".trash")) {
            w->skipped++;
            continue;
        }
        char *path = kv_path(dir, name);
        if (!path) {
            rc = TOME_NOMEM;
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = tome_err(w->db, TOME_IO, "kv import: stat %s: %s", path, strerror(errno));
            tome_free(path);
            break;
        }
        size_t nl = strlen(name);
        int valid = nl > 0 && kv_name_ok(name, nl);
        if (S_ISDIR(st.st_mode) && depth < 2) {
            const char *ns = !strcmp(name, KV_FS_EMPTY) ? "" : valid ? name : NULL;
            if (!ns || (depth == 1 && p[0] == '\0' && ns[0] != '\0')) {
                w->skipped++;      /* not a namespace, or a secondary without a primary */
            } else if (depth == 0) {
                rc = kv_fs_walk_dir(w, path, 1, ns, "");
            } else {
                rc = kv_fs_walk_dir(w, path, 2, p, ns);
            }
            tome_free(path);
        } else if (S_ISREG(st.st_mode) && valid && !(depth == 1 && p[0] == '\0')) {
            /* a v2 "[empty]" primary holds only secondaries, never keys */
            rc = kv_fs_add(w, path, p, s, name, &st);
            if (rc) tome_free(path);
        } else {
            w->skipped++;
            tome_free(path);
        }
    }
    if (rc == TOME_OK && errno != 0 && de == NULL)
        rc = tome_err(w->db, TOME_IO, "kv import: readdir %s: %s", dir, strerror(errno));
    closedir(d);
    return rc;
}

static int kv_fs_ent_cmp(const void *a, const void *b) {
    const kv_fs_ent *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    int c = strcmp(x->p, y->p);
    if (c == 0) c = strcmp(x->s, y->s);
    if (c == 0) c = strcmp(x->k, y->k);
    return c;
}

/* Reads a whole file into a new tome_malloc buffer. */
static int kv_fs_read_file(tome_db *db, const char *path, uint8_t **out, size_t *len_out) {
    *out = NULL;
    *len_out = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tome_err(db, TOME_IO, "kv import: open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tome_err(db, TOME_IO, "kv import: fstat %s: %s", path, strerror(e));
    }
    if ((uint64_t)st.st_size > TOME_MAX_VALUE_LEN) {
        close(fd);
        return tome_err(db, TOME_TOOBIG, "kv import: %s: %lld bytes", path,
                        (long long)st.st_size);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    uint8_t *buf = tome_malloc(cap);
    if (!buf) {
        close(fd);
        return TOME_NOMEM;
    }
    for (;;) {
        if (len == cap) {   /* the file grew while we read it */
            if (cap > TOME_MAX_VALUE_LEN) {
                tome_free(buf);
                close(fd);
                return tome_err(db, TOME_TOOBIG, "kv import: %s grew too big", path);
            }
            uint8_t *nb = tome_realloc(buf, cap * 2);
            if (!nb) {
                tome_free(buf);
                close(fd);
                return TOME_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            tome_free(buf);
            close(fd);
            return tome_err(db, TOME_IO, "kv import: read %s: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len_out = len;
    return TOME_OK;
}

/* Imports ents[from..to) in one transaction (rerun on conflict), committed
 * without a sync. */
static int kv_fs_import_batch(tome_db *db, kv_fs_ent *ents, size_t from, size_t to,
                              uint64_t *bytes) {
    for (unsigned attempt = 0;; attempt++) {
        tome_txn *t = NULL;
        int rc = tome_begin(db, &t);
        if (rc) return rc;
        kv_stamp st = {db, 0};
        int wrote = 0;
        uint64_t b = 0;
        for (size_t i = from; i < to && rc == TOME_OK; i++) {
            kv_name n;
            rc = kv_check(db, ents[i].p, ents[i].s, ents[i].k, 1, &n);
            uint8_t *buf = NULL;
            size_t len = 0;
            if (rc == TOME_OK) rc = kv_fs_read_file(db, ents[i].path, &buf, &len);
            if (rc == TOME_OK)
                rc = kv_stage_write(t, &st, (uint32_t)(i - from), &n, buf, len, &wrote);
            b += len;
            tome_free(buf);
        }
        if (rc != TOME_OK) {
            tome_abort(t);
            return rc;
        }
        rc = tome_commit_ex(t, TOME_COMMIT_NOSYNC);
        if (rc == TOME_OK) *bytes += b;
        if (rc != TOME_CONFLICT || attempt >= 1000) return rc;
    }
}

int tome_kv_import_fs(tome_db *db, const char *dir, tome_kv_fs_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!db || !dir) return TOME_INVALID;
    kv_fs_walk w = {db, NULL, 0, 0, 0};
    int rc = kv_fs_walk_dir(&w, dir, 0, "", "");
    uint64_t bytes = 0;
    size_t done = 0;
    if (rc == TOME_OK) {
        if (w.n) qsort(w.ents, w.n, sizeof *w.ents, kv_fs_ent_cmp);
        while (rc == TOME_OK && done < w.n) {
            /* a batch: up to KV_FS_BATCH_KEYS keys or KV_FS_BATCH_BYTES */
            size_t end = done;
            uint64_t sz = 0;
            while (end < w.n && end - done < KV_FS_BATCH_KEYS && sz < KV_FS_BATCH_BYTES) {
                struct stat st;
                if (stat(w.ents[end].path, &st) == 0) sz += (uint64_t)st.st_size;
                end++;
            }
            rc = kv_fs_import_batch(db, w.ents, done, end, &bytes);
            if (rc == TOME_OK) done = end;
        }
        if (rc == TOME_OK && w.n) {
            rc = tome_sync(db);
            if (rc == TOME_READONLY) rc = TOME_OK;
        }
    }
    if (stats) {
        stats->keys = done;
        stats->bytes = bytes;
        stats->skipped = w.skipped;
    }
    for (size_t i = 0; i < w.n; i++) tome_free(w.ents[i].path);
    tome_free(w.ents);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Export                                                                  */
/* ---------------------------------------------------------------------- */

/* the directories an export touched, fsynced at the end */
typedef struct kv_fs_dirs {
    char **d;
    size_t n, cap;
} kv_fs_dirs;

static int kv_fs_dirs_add(kv_fs_dirs *ds, const char *dir) {
    for (size_t i = ds->n; i-- > 0;)
        if (!strcmp(ds->d[i], dir)) return TOME_OK;
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? 2 * ds->cap : 16;
        char **d = tome_realloc(ds->d, cap * sizeof *d);
        if (!d) return TOME_NOMEM;
        ds->d = d;
        ds->cap = cap;
    }
    ds->d[ds->n] = tome_strndup(dir, strlen(dir));
    if (!ds->d[ds->n]) return TOME_NOMEM;
    ds->n++;
    return TOME_OK;
}

static void kv_fs_dirs_free(kv_fs_dirs *ds) {
    for (size_t i = 0; i < ds->n; i++) tome_free(ds->d[i]);
    tome_free(ds->d);
}

/* Creates dir (its parent exists) unless present; a new directory makes
 * its parent one to fsync. */
static int kv_fs_mkdir(tome_db *db, kv_fs_dirs *ds, const char *parent, const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return TOME_OK;
        return tome_err(db, TOME_INVALID,
                        "kv export: %s is a key file where the v1 layout needs a namespace "
                        "directory (export with the v2 layout)", dir);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return tome_err(db, TOME_IO, "kv export: mkdir %s: %s", dir, strerror(errno));
    return parent ? kv_fs_dirs_add(ds, parent) : TOME_OK;
}

static int kv_fs_sync_dir(tome_db *db, const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return tome_err(db, TOME_IO, "kv export: open %s: %s", dir, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0) return tome_err(db, TOME_IO, "kv export: fsync %s: %s", dir, strerror(e));
    return TOME_OK;
}

/* Writes path through path.tmp: write, set mtime, fsync, rename. */
static int kv_fs_write_file(tome_db *db, const char *path, const void *buf, size_t len,
                            uint64_t mtime_ns) {
    size_t pl = strlen(path);
    char *tmp = tome_malloc(pl + 5);
    if (!tmp) return TOME_NOMEM;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int rc = TOME_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = tome_err(db, TOME_IO, "kv export: create %s: %s", tmp, strerror(errno));
        tome_free(tmp);
        return rc;
    }
    const uint8_t *p = buf;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = tome_err(db, TOME_IO, "kv export: write %s: %s", tmp, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (rc == TOME_OK && mtime_ns) {
        struct timespec ts[2];
        ts[0].tv_sec = ts[1].tv_sec = (time_t)(mtime_ns / 1000000000u);
        ts[0].tv_nsec = ts[1].tv_nsec = (long)(mtime_ns % 1000000000u);
        if (futimens(fd, ts) != 0)
            rc = tome_err(db, TOME_IO, "kv export: futimens %s: %s", tmp, strerror(errno));
    }
    if (rc == TOME_OK && fsync(fd) != 0)
        rc = tome_err(db, TOME_IO, "kv export: fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == TOME_OK)
        rc = tome_err(db, TOME_IO, "kv export: close %s: %s", tmp, strerror(errno));
    if (rc == TOME_OK && rename(tmp, path) != 0)
        rc = tome_err(db, TOME_IO, "kv export: rename %s: %s", tmp, strerror(errno));
    if (rc != TOME_OK) unlink(tmp);
    tome_free(tmp);
    return rc;
}

/* 1 if some key of the list lives in namespace (p, s), or with s NULL in
 * primary p */
static int kv_fs_has_ns(const tome_kv_key *keys, size_t n, const char *p, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i].primary_ns, p) && (!s || !strcmp(keys[i].secondary_ns, s))) return 1;
    return 0;
}

/* Reads the value of one key as of commit seq, in a transaction of its
 * own (so that an export does not hold every value in memory). */
static int kv_fs_read_at(tome_db *db, uint64_t seq, const tome_kv_key *key, uint8_t **buf,
                         size_t *len) {
    kv_name n;
    uint8_t mk[TOME_KV_KEY_MAX];
    int rc = kv_check(db, key->primary_ns, key->secondary_ns, key->key, 1, &n);
    if (rc) return rc;
    size_t mkl = kv_mapkey(&n, mk);
    tome_txn *t = NULL;
    rc = tome_begin_at(db, seq, &t);
    if (rc == TOME_NOTFOUND)
        return tome_err(db, TOME_CONFLICT, "kv export: a merge dropped the snapshot; run again");
    if (rc) return rc;
    const void *v;
    size_t vl;
    rc = tome_get(t, TOME_KV_SLOT, mk, mkl, &v, &vl);
    if (rc == TOME_NOTFOUND)   /* listed in the same snapshot: cannot happen */
        rc = tome_err(db, TOME_CORRUPT, "kv export: %.*s vanished from its snapshot",
                      (int)mkl, (const char *)mk);
    if (rc == TOME_OK) {
        *buf = tome_malloc(vl ? vl : 1);
        if (!*buf) rc = TOME_NOMEM;
        else {
            if (vl) memcpy(*buf, v, vl);
            *len = vl;
        }
    }
    tome_abort(t);
    return rc;
}

/* What an export knows of a key's creation. */
typedef struct kv_fs_meta {
    uint8_t stamp[KV_STAMP_LEN];  /* all 0xff when the key has none: oldest */
    uint64_t ctime_ms;            /* timestamp of the creating commit */
    uint64_t mtime_ns;            /* the mtime given to its file */
} kv_fs_meta;

/* a key's place in the creation order */
typedef struct kv_fs_rank {
    uint8_t stamp[KV_STAMP_LEN];
    size_t idx;
} kv_fs_rank;

/* oldest first (stamps are complements: larger is older) */
static int kv_fs_rank_cmp(const void *a, const void *b) {
    const kv_fs_rank *x = a, *y = b;
    int c = memcmp(y->stamp, x->stamp, KV_STAMP_LEN);
    if (c) return c;
    return x->idx < y->idx ? -1 : 1;
}

/* Reads the creation stamp and time of every key as of seq and gives each
 * key an mtime: its creation time, moved on by nanoseconds where needed so
 * that the mtimes strictly increase in creation order. */
static int kv_fs_meta_at(tome_db *db, uint64_t seq, const tome_kv_key *keys, size_t n,
                         kv_fs_meta *meta) {
    tome_txn *t = NULL;
    int rc = tome_begin_at(db, seq, &t);
    if (rc == TOME_NOTFOUND)
        return tome_err(db, TOME_CONFLICT, "kv export: a merge dropped the snapshot; run again");
    if (rc) return rc;
    for (size_t i = 0; i < n && rc == TOME_OK; i++) {
        kv_name nm;
        uint8_t mk[TOME_KV_KEY_MAX];
        rc = kv_check(db, keys[i].primary_ns, keys[i].secondary_ns, keys[i].key, 1, &nm);
        if (rc) break;
        size_t mkl = kv_mapkey(&nm, mk);
        const void *v;
        size_t vl;
        memset(meta[i].stamp, 0xff, KV_STAMP_LEN);
        meta[i].ctime_ms = 0;
        rc = tome_get(t, TOME_KV_CREATED_SLOT, mk, mkl, &v, &vl);
        if (rc == TOME_OK && vl == KV_STAMP_LEN) memcpy(meta[i].stamp, v, KV_STAMP_LEN);
        if (rc == TOME_NOTFOUND) rc = TOME_OK;
        /* the commit that wrote the stamp created the key; without a stamp
         * the newest value version stands in */
        const tome_version *vers = NULL;
        size_t nv = 0;
        if (rc == TOME_OK) rc = tome_versions(t, TOME_KV_CREATED_SLOT, mk, mkl, &vers, &nv);
        if (rc == TOME_OK && nv && !vers[nv - 1].removed) {
            meta[i].ctime_ms = vers[nv - 1].timestamp;
        } else if (rc == TOME_OK) {
            rc = tome_versions(t, TOME_KV_SLOT, mk, mkl, &vers, &nv);
            if (rc == TOME_OK && nv) meta[i].ctime_ms = vers[nv - 1].timestamp;
        }
    }
    tome_abort(t);
    if (rc) return rc;
    kv_fs_rank *order = tome_calloc(n ? n : 1, sizeof *order);
    if (!order) return TOME_NOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(order[i].stamp, meta[i].stamp, KV_STAMP_LEN);
        order[i].idx = i;
    }
    if (n) qsort(order, n, sizeof *order, kv_fs_rank_cmp);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        kv_fs_meta *m = &meta[order[i].idx];
        uint64_t ns = m->ctime_ms * 1000000u;
        if (ns <= prev) ns = prev + 1;
        m->mtime_ns = prev = ns;
    }
    tome_free(order);
    return TOME_OK;
}

/* Lists every key as of commit seq, like tome_kv_list_all. */
static int kv_fs_list_at(tome_db *db, uint64_t seq, tome_kv_key **keys, size_t *count) {
    *keys = NULL;
    *count = 0;
    tome_txn *t = NULL;
    int rc = tome_begin_at(db, seq, &t);
    if (rc == TOME_NOTFOUND)
        return tome_err(db, TOME_CONFLICT, "kv export: a merge dropped the snapshot; run again");
    if (rc) return rc;
    tome_iter *it = NULL;
    size_t n = 0, cap = 0, slen = 0, scap = 0;
    struct { size_t off; } *tmp = NULL;
    char *str = NULL;
    rc = tome_iter_open(t, TOME_KV_SLOT, NULL, 0, &it);
    while (rc == TOME_OK) {
        const void *k;
        size_t kl;
        kv_name nm;
        rc = tome_iter_next(it, &k, &kl);
        if (rc != TOME_OK) break;
        if (!kv_split(k, kl, &nm)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            void *nt = tome_realloc(tmp, cap * sizeof *tmp);
            if (!nt) { rc = TOME_NOMEM; break; }
            tmp = nt;
        }
        size_t need = nm.pl + nm.sl + nm.kl + 3;
        if (slen + need > scap) {
            scap = scap ? 2 * scap : 4096;
            while (scap < slen + need) scap *= 2;
            char *ns = tome_realloc(str, scap);
            if (!ns) { rc = TOME_NOMEM; break; }
            str = ns;
        }
        tmp[n].off = slen;
        memcpy(str + slen, nm.p, nm.pl); slen += nm.pl; str[slen++] = '\0';
        memcpy(str + slen, nm.s, nm.sl); slen += nm.sl; str[slen++] = '\0';
        memcpy(str + slen, nm.k, nm.kl); slen += nm.kl; str[slen++] = '\0';
        n++;
    }
    if (rc == TOME_NOTFOUND) rc = TOME_OK;
    tome_iter_close(it);
    tome_abort(t);
    if (rc == TOME_OK && n) {
        size_t head = n * sizeof(tome_kv_key);
        tome_kv_key *arr = tome_malloc(head + slen);
        if (!arr) rc = TOME_NOMEM;
        else {
            char *s = (char *)arr + head;
            memcpy(s, str, slen);
            for (size_t i = 0; i < n; i++) {
                char *e = s + tmp[i].off;
                arr[i].primary_ns = e;
                e += strlen(e) + 1;
                arr[i].secondary_ns = e;
                e += strlen(e) + 1;
                arr[i].key = e;
            }
            *keys = arr;
            *count = n;
        }
    }
    tome_free(tmp);
    tome_free(str);
    return rc;
}

int tome_kv_export_fs(tome_db *db, const char *dir, unsigned flags, tome_kv_fs_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!db || !dir || (flags & ~TOME_KV_FS_V2)) return TOME_INVALID;
    int v2 = (flags & TOME_KV_FS_V2) != 0;
    uint64_t seq = 0;
    int rc = tome_last_seq(db, &seq);
    if (rc) return rc;
    tome_kv_key *keys = NULL;
    size_t n = 0;
    rc = kv_fs_list_at(db, seq, &keys, &n);
    if (rc) return rc;

    /* the v1 layout cannot hold a key file and a namespace directory of
     * the same name side by side */
    for (size_t i = 0; i < n && !v2 && rc == TOME_OK; i++) {
        const tome_kv_key *k = &keys[i];
        if (k->secondary_ns[0] != '\0') continue;
        int clash = k->primary_ns[0] == '\0' ? kv_fs_has_ns(keys, n, k->key, NULL)
                                              : kv_fs_has_ns(keys, n, k->primary_ns, k->key);
        if (clash)
            rc = tome_err(db, TOME_INVALID,
                          "kv export: key %s/%s/%s has the name of a namespace beside it, which "
                          "the v1 layout cannot hold (export with the v2 layout)",
                          k->primary_ns, k->secondary_ns, k->key);
    }

    kv_fs_meta *meta = NULL;
    if (rc == TOME_OK) {
        meta = tome_calloc(n ? n : 1, sizeof *meta);
        if (!meta) rc = TOME_NOMEM;
        else rc = kv_fs_meta_at(db, seq, keys, n, meta);
    }
    kv_fs_dirs ds = {0};
    if (rc == TOME_OK) {
        struct stat st;
        if (stat(dir, &st) != 0) {
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                rc = tome_err(db, TOME_IO, "kv export: mkdir %s: %s", dir, strerror(errno));
            else {
                /* its parent gains an entry */
                char *parent = tome_strndup(dir, strlen(dir));
                if (!parent) rc = TOME_NOMEM;
                else {
                    char *slash = strrchr(parent, '/');
                    if (slash == parent) slash[1] = '\0';
                    else if (slash) *slash = '\0';
                    else strcpy(parent, ".");
                    rc = kv_fs_dirs_add(&ds, parent);
                    tome_free(parent);
                }
            }
        } else if (!S_ISDIR(st.st_mode)) {
            rc = tome_err(db, TOME_INVALID, "kv export: %s is not a directory", dir);
        }
    }
    uint64_t bytes = 0, done = 0;
    for (size_t i = 0; i < n && rc == TOME_OK; i++) {
        const tome_kv_key *k = &keys[i];
        const char *d1 = k->primary_ns[0] ? k->primary_ns : v2 ? KV_FS_EMPTY : NULL;
        const char *d2 = k->secondary_ns[0] ? k->secondary_ns : v2 ? KV_FS_EMPTY : NULL;
        char *p1 = NULL, *p2 = NULL, *file = NULL;
        const char *fdir = dir;
        if (d1) {
            p1 = kv_path(dir, d1);
            if (!p1) rc = TOME_NOMEM;
            else rc = kv_fs_mkdir(db, &ds, dir, p1);
            fdir = p1;
        }
        if (rc == TOME_OK && d2) {
            p2 = kv_path(p1, d2);
            if (!p2) rc = TOME_NOMEM;
            else rc = kv_fs_mkdir(db, &ds, p1, p2);
            fdir = p2;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        if (rc == TOME_OK) {
            file = kv_path(fdir, k->key);
            if (!file) rc = TOME_NOMEM;
        }
        if (rc == TOME_OK) {
            struct stat st;
            if (stat(file, &st) == 0 && S_ISDIR(st.st_mode))
                rc = tome_err(db, TOME_INVALID,
                              "kv export: %s is a directory where the v1 layout needs a key "
                              "file (export with the v2 layout)", file);
        }
        if (rc == TOME_OK) rc = kv_fs_read_at(db, seq, k, &buf, &len);
        if (rc == TOME_OK) rc = kv_fs_write_file(db, file, buf, len, meta[i].mtime_ns);
        if (rc == TOME_OK) rc = kv_fs_dirs_add(&ds, fdir);
        if (rc == TOME_OK) {
            bytes += len;
            done++;
        }
        tome_free(buf);
        tome_free(file);
        tome_free(p2);
        tome_free(p1);
    }
    /* deepest directories first: a new directory's entry in its parent is
     * made durable after its own entries */
    for (size_t i = ds.n; i-- > 0 && rc == TOME_OK;) rc = kv_fs_sync_dir(db, ds.d[i]);
    if (rc == TOME_OK && n == 0) rc = kv_fs_sync_dir(db, dir);
    kv_fs_dirs_free(&ds);
    tome_free(meta);
    tome_free(keys);
    if (stats) {
        stats->keys = done;
        stats->bytes = bytes;
    }
    return rc;
}
