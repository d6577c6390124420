/*
 * err.c -- names of the return codes and the detail of the last failure.
 *
 * tome_strerror gives static text for every code of tome.h.
 *
 * tome_err(db, code, fmt, ...) records a formatted detail for handle db in
 * the calling thread and returns code; tome_errmsg(db) gives it back. Each
 * thread keeps, in _Thread_local storage, the details of the 8 handles it
 * used most recently (least recently used slot reused first; recording and
 * reading both count as a use), plus one slot reserved for db == NULL (the
 * failures of tome_open), which is never evicted. A message is at most 511
 * bytes and is cut safely. Nothing here allocates, so it works when memory
 * has run out; errno is preserved across tome_err.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>

#define ERR_SLOTS 8
#define ERR_LEN 512

struct err_slot {
    const tome_db *db;
    unsigned long long used;  /* 0: empty; else the time of the last use */
    char msg[ERR_LEN];
};

struct err_state {
    unsigned long long clock;
    struct err_slot open_slot; /* db == NULL */
    struct err_slot slots[ERR_SLOTS];
};

static _Thread_local struct err_state g_err;

const char *tome_strerror(int code) {
    switch (code) {
    case TOME_OK:       return "success";
    case TOME_NOTFOUND: return "not found";
    case TOME_CONFLICT: return "transaction conflict";
    case TOME_INVALID:  return "invalid argument";
    case TOME_TOOBIG:   return "key or value too big";
    case TOME_IO:       return "I/O error";
    case TOME_CORRUPT:  return "data corrupted";
    case TOME_NOMEM:    return "out of memory";
    case TOME_LOCKED:   return "store is locked";
    case TOME_READONLY: return "read-only";
    case TOME_MISUSE:   return "API misuse";
    default:            return "unknown error";
    }
}

/* The slot holding db's detail, or NULL. */
static struct err_slot *find_slot(const tome_db *db) {
    if (db == NULL) return g_err.open_slot.used ? &g_err.open_slot : NULL;
    for (int i = 0; i < ERR_SLOTS; i++)
        if (g_err.slots[i].used && g_err.slots[i].db == db) return &g_err.slots[i];
    return NULL;
}

/* The slot to record db's detail in: its own, an empty one or the LRU. */
static struct err_slot *take_slot(const tome_db *db) {
    struct err_slot *s = find_slot(db);
    if (s) return s;
    if (db == NULL) return &g_err.open_slot;
    s = &g_err.slots[0];
    for (int i = 0; i < ERR_SLOTS; i++) {
        if (!g_err.slots[i].used) return &g_err.slots[i];
        if (g_err.slots[i].used < s->used) s = &g_err.slots[i];
    }
    return s;
}

int tome_err(tome_db *db, int code, const char *fmt, ...) {
    int saved = errno;
    char tmp[ERR_LEN]; /* fmt's arguments may point into the slot itself */
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        if (n < 0) snprintf(tmp, sizeof tmp, "%s", tome_strerror(code));
    } else {
        snprintf(tmp, sizeof tmp, "%s", tome_strerror(code));
    }
    struct err_slot *s = take_slot(db);
    s->db = db;
    s->used = ++g_err.clock;
    memcpy(s->msg, tmp, sizeof tmp);
    s->msg[ERR_LEN - 1] = '\0';
    errno = saved;
    return code;
}

const char *tome_errmsg(tome_db *db) {
    struct err_slot *s = find_slot(db);
    if (s == NULL) return "no error";
    s->used = ++g_err.clock;
    return s->msg;
}

void tome_err_forget(tome_db *db) {
    struct err_slot *s = find_slot(db);
    if (s) {
        s->used = 0;
        s->db = NULL;
        s->msg[0] = '\0';
    }
}
