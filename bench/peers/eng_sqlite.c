/*
 * eng_sqlite.c -- the SQLite adapters of the peer benchmark (libsqlite3).
 *
 * peer_sqlite, for the key-value workloads: one database file per store in
 * WAL mode with a WITHOUT ROWID table kv(k BLOB PRIMARY KEY, v BLOB), a
 * 64 MiB page cache, reads through a 1 GiB memory map (mmap_size), prepared
 * statements. synchronous=NORMAL for bulk
 * stores (in WAL mode a commit then does not sync; a checkpoint syncs the
 * WAL and the database, and one is run at the end of a load to make it
 * durable), synchronous=FULL for durable writes (a WAL fsync per commit).
 * A bulk batch is BEGIN, 1,000 INSERT OR REPLACE, COMMIT. Durable writes
 * from many threads share one connection opened in serialized mode
 * (SQLITE_OPEN_FULLMUTEX), each thread with its own prepared statement
 * and one autocommit INSERT OR REPLACE per write: SQLite has one writer at
 * a time, and a shared connection avoids the sleeping busy handler that
 * separate connections would hit. Reads run in one read transaction per
 * batch; the scan is SELECT k, v FROM kv ORDER BY k.
 *
 * peer_kv_sqlite, for the Lightning-like workload: SQLite as ldk-node's
 * SqliteStore uses it: the default rollback journal (DELETE), synchronous
 * FULL, one rowid table ldk_data keyed by (primary_namespace,
 * secondary_namespace, key) with the value blob, one autocommit INSERT OR
 * REPLACE per write, SELECT key ... WHERE both namespaces for a listing.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *ins, *get, *begin, *commit;
    int full_sync;
    pthread_mutex_t mu;            /* guards the per-thread statement list */
    sqlite3_stmt *tstmt[128];
    int ntstmt;
} sq;

static void sdie(sqlite3 *db, const char *what) {
    peer_die("sqlite", what, db ? sqlite3_errmsg(db) : "cannot allocate");
}

static void exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s: %s", sql, err ? err : "?");
        peer_die("sqlite", "exec", buf);
    }
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) sdie(db, sql);
    return st;
}

static void step_done(sqlite3 *db, sqlite3_stmt *st, const char *what) {
    if (sqlite3_step(st) != SQLITE_DONE) sdie(db, what);
    sqlite3_reset(st);
}

static void *s_open(const char *path, int mode) {
    sq *s = calloc(1, sizeof *s);
    char file[4096];
    if (!s) sdie(NULL, "open");
    snprintf(file, sizeof file, "%s/kv.sqlite", path);
    if (sqlite3_open_v2(file, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK)
        sdie(s->db, "open");
    pthread_mutex_init(&s->mu, NULL);
    exec(s->db, "PRAGMA journal_mode=WAL");
    s->full_sync = mode == PEER_DURABLE;
    exec(s->db, s->full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec(s->db, "PRAGMA cache_size=-65536");
    exec(s->db, "PRAGMA mmap_size=1073741824");
    exec(s->db, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID");
    s->ins = prep(s->db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)");
    s->get = prep(s->db, "SELECT v FROM kv WHERE k = ?1");
    s->begin = prep(s->db, "BEGIN");
    s->commit = prep(s->db, "COMMIT");
    return s;
}

static void s_close(void *h) {
    sq *s = h;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    for (int i = 0; i < s->ntstmt; i++) sqlite3_finalize(s->tstmt[i]);
    if (sqlite3_close(s->db) != SQLITE_OK) sdie(s->db, "close");
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void bind_kv(sqlite3 *db, sqlite3_stmt *st, const peer_kv *kv) {
    if (sqlite3_bind_blob(st, 1, kv->k, (int)kv->kl, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, kv->v, (int)kv->vl, SQLITE_STATIC) != SQLITE_OK)
        sdie(db, "bind");
}

static void s_put_batch(void *h, const peer_kv *kv, size_t n, int sync) {
    sq *s = h;
    if (sync && !s->full_sync) {
        exec(s->db, "PRAGMA synchronous=FULL");
        s->full_sync = 1;
    }
    step_done(s->db, s->begin, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        bind_kv(s->db, s->ins, &kv[i]);
        step_done(s->db, s->ins, "INSERT");
    }
    step_done(s->db, s->commit, "COMMIT");
}

static void s_sync(void *h) {
    sq *s = h;
    /* A checkpoint syncs the WAL, copies it into the database and syncs
     * that: every commit so far is then durable. */
    exec(s->db, "PRAGMA wal_checkpoint(PASSIVE)");
}

static size_t s_get_batch(void *h, const peer_kv *q, size_t n) {
    sq *s = h;
    size_t hits = 0;
    step_done(s->db, s->begin, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        if (sqlite3_bind_blob(s->get, 1, q[i].k, (int)q[i].kl, SQLITE_STATIC) != SQLITE_OK) sdie(s->db, "bind");
        int rc = sqlite3_step(s->get);
        if (rc == SQLITE_ROW) {
            hits++;
            peer_check_value(&q[i], 1, sqlite3_column_blob(s->get, 0), (size_t)sqlite3_column_bytes(s->get, 0));
        } else if (rc == SQLITE_DONE) {
            peer_check_value(&q[i], 0, NULL, 0);
        } else {
            sdie(s->db, "SELECT");
        }
        sqlite3_reset(s->get);
    }
    step_done(s->db, s->commit, "COMMIT");
    return hits;
}

static uint64_t s_scan(void *h) {
    sq *s = h;
    sqlite3_stmt *st = prep(s->db, "SELECT k, v FROM kv ORDER BY k");
    uint64_t count = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *k = sqlite3_column_blob(st, 0);
        size_t kl = (size_t)sqlite3_column_bytes(st, 0);
        const void *v = sqlite3_column_blob(st, 1);
        size_t vl = (size_t)sqlite3_column_bytes(st, 1);
        peer_visit(k, kl, v, vl);
        count++;
    }
    if (rc != SQLITE_DONE) sdie(s->db, "scan");
    sqlite3_finalize(st);
    return count;
}

static __thread sqlite3_stmt *tl_ins;
static __thread sq *tl_owner;

static void s_put_durable(void *h, const peer_kv *kv) {
    sq *s = h;
    if (tl_owner != s) {
        tl_ins = prep(s->db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)");
        tl_owner = s;
        pthread_mutex_lock(&s->mu);
        if (s->ntstmt == (int)(sizeof s->tstmt / sizeof s->tstmt[0])) peer_die("sqlite", "threads", "too many");
        s->tstmt[s->ntstmt++] = tl_ins;
        pthread_mutex_unlock(&s->mu);
    }
    bind_kv(s->db, tl_ins, kv);
    step_done(s->db, tl_ins, "INSERT (durable)");
}

const peer_ops peer_sqlite = {
    .name = "sqlite",
    .settings =
        "- one database file, PRAGMA journal_mode=WAL, cache_size=-65536 (64 MiB), mmap_size=1 GiB, table "
        "kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID, prepared statements, "
        "INSERT OR REPLACE\n"
        "- bulk: synchronous=NORMAL (no sync per commit in WAL mode; FULL with --bulk-sync), "
        "BEGIN + one batch + COMMIT; PRAGMA wal_checkpoint(PASSIVE) at the end (syncs the WAL "
        "and the database), inside the timing\n"
        "- durable: synchronous=FULL, one autocommit INSERT OR REPLACE per write; one "
        "connection in serialized mode (SQLITE_OPEN_FULLMUTEX) shared by all threads, each "
        "with its own prepared statement (SQLite has one writer at a time)\n"
        "- reads: BEGIN + one batch of SELECT v FROM kv WHERE k=? + COMMIT; scan: "
        "SELECT k, v FROM kv ORDER BY k\n",
    .ordered = 1,
    .open = s_open,
    .close = s_close,
    .put_batch = s_put_batch,
    .sync = s_sync,
    .get_batch = s_get_batch,
    .scan = s_scan,
    .put_durable = s_put_durable,
    .merge = NULL,
};

/* ---- LDK SqliteStore-like namespaced store --------------------------------- */

typedef struct sql {
    sqlite3 *db;
    sqlite3_stmt *ins, *list;
} sql;

static void *sl_open(const char *path) {
    sql *s = calloc(1, sizeof *s);
    char file[4096];
    if (!s) sdie(NULL, "open");
    snprintf(file, sizeof file, "%s/ldk_data.sqlite", path);
    if (sqlite3_open_v2(file, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        sdie(s->db, "open");
    exec(s->db, "PRAGMA synchronous=FULL");
    exec(s->db,
         "CREATE TABLE IF NOT EXISTS ldk_data ("
         " primary_namespace TEXT NOT NULL,"
         " secondary_namespace TEXT DEFAULT \"\" NOT NULL,"
         " key TEXT NOT NULL CHECK (key <> ''),"
         " value BLOB, PRIMARY KEY ( primary_namespace, secondary_namespace, key ))");
    s->ins = prep(s->db,
                  "INSERT OR REPLACE INTO ldk_data (primary_namespace, secondary_namespace, key, value) "
                  "VALUES (?1, ?2, ?3, ?4)");
    s->list = prep(s->db, "SELECT key FROM ldk_data WHERE primary_namespace=?1 AND secondary_namespace=?2");
    return s;
}

static void sl_close(void *h) {
    sql *s = h;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->list);
    if (sqlite3_close(s->db) != SQLITE_OK) sdie(s->db, "close");
    free(s);
}

static void sl_write(void *h, const char *p, const char *sec, const char *k, const void *buf, size_t len) {
    sql *s = h;
    if (sqlite3_bind_text(s->ins, 1, p, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s->ins, 2, sec, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s->ins, 3, k, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(s->ins, 4, buf, (int)len, SQLITE_STATIC) != SQLITE_OK)
        sdie(s->db, "bind");
    step_done(s->db, s->ins, "INSERT (ldk)");
}

static size_t sl_list(void *h, const char *p, const char *sec) {
    sql *s = h;
    size_t n = 0, cap = 0;
    char **keys = NULL;
    if (sqlite3_bind_text(s->list, 1, p, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(s->list, 2, sec, -1, SQLITE_STATIC) != SQLITE_OK)
        sdie(s->db, "bind");
    int rc;
    while ((rc = sqlite3_step(s->list)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            keys = realloc(keys, cap * sizeof *keys);
            if (!keys) sdie(NULL, "list");
        }
        keys[n++] = strdup((const char *)sqlite3_column_text(s->list, 0)); /* a Vec<String>, as LDK builds */
    }
    if (rc != SQLITE_DONE) sdie(s->db, "list");
    sqlite3_reset(s->list);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    return n;
}

const peer_kvstore_ops peer_kv_sqlite = {
    .name = "sqlite",
    .settings = "- as ldk-node's SqliteStore: file ldk_data.sqlite, default rollback journal "
                "(DELETE), PRAGMA synchronous=FULL, rowid table ldk_data(primary_namespace TEXT, "
                "secondary_namespace TEXT, key TEXT, value BLOB, PRIMARY KEY(primary_namespace, "
                "secondary_namespace, key)); one autocommit INSERT OR REPLACE per write; listing: "
                "SELECT key ... WHERE primary_namespace=? AND secondary_namespace=?, "
                "copied into an array of strings\n",
    .open = sl_open,
    .close = sl_close,
    .write = sl_write,
    .list = sl_list,
};
