/*
 * api.c -- the public entry points that concern a whole store: options,
 * open, sync, close, merge, figures and check. They check their arguments,
 * keep the count of open transactions, and hand the work to the backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../os/os.h"
#include "../util/util.h"
#include "db.h"

void tome_options_init(tome_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->sync = TOME_SYNC_FULL;
}

int tome_open(const char *path, const tome_options *opts, tome_db **db_out) {
    if (db_out) *db_out = NULL;
    if (!path || !db_out || !*path) return tome_err(NULL, TOME_INVALID, "NULL or empty path or output pointer");
    tome_options o;
    if (opts) o = *opts;
    else tome_options_init(&o);
    if (o.sync != TOME_SYNC_FULL && o.sync != TOME_SYNC_NONE)
        return tome_err(NULL, TOME_INVALID, "unknown sync option %d", o.sync);
    if ((o.read_only != 0 && o.read_only != 1) || (o.must_exist != 0 && o.must_exist != 1))
        return tome_err(NULL, TOME_INVALID, "read_only and must_exist take 0 or 1");
    tome_db *db = tome_calloc(1, sizeof *db);
    if (!db) return tome_err(NULL, TOME_NOMEM, "out of memory");
    atomic_init(&db->ntxn, 0);
    db->read_only = o.read_only;
    int rc = tome_local_open(db, path, &o, &db->b);
    if (rc) {
        /* the backend recorded the detail under db: move it to the open slot */
        const char *m = tome_errmsg(db);
        tome_err(NULL, rc, "%s", strcmp(m, "no error") ? m : tome_strerror(rc));
        tome_err_forget(db);
        tome_free(db);
        return rc;
    }
    *db_out = db;
    return 0;
}

int tome_sync(tome_db *db) {
    if (!db) return TOME_INVALID;
    return db->b->ops->sync(db->b);
}

int tome_close(tome_db *db) {
    if (!db) return 0;
    long n = atomic_load(&db->ntxn);
    if (n > 0) return tome_err(db, TOME_MISUSE, "%ld transaction(s) still open", n);
    int rc = db->b->ops->close(db->b);
    if (rc) {
        /* the handle is gone: keep the detail where tome_errmsg(NULL) finds it */
        tome_err(NULL, rc, "close: %s", tome_errmsg(db));
    }
    tome_err_forget(db);
    tome_free(db);
    return rc;
}

int tome_merge(tome_db *db) {
    if (!db) return TOME_INVALID;
    return db->b->ops->merge(db->b);
}

int tome_stats_get(tome_db *db, tome_stats *out) {
    if (!db || !out) return TOME_INVALID;
    return db->b->ops->stats(db->b, out);
}

int tome_last_seq(tome_db *db, uint64_t *seq_out) {
    if (!db || !seq_out) return TOME_INVALID;
    uint64_t ts;
    db->b->ops->last(db->b, seq_out, &ts);
    return 0;
}

int tome_is_read_only(tome_db *db) {
    if (!db) return TOME_INVALID;
    return db->read_only ? 1 : 0;
}

int tome_check(const char *path, char **report) {
    if (report) *report = NULL;
    if (!path) return TOME_INVALID;
    return tome_local_check(path, report);
}
