/*
 * db.h -- the handle behind tome_db, shared by the API layer (api.c) and
 * the transaction layer (src/txn).
 */
#ifndef TOME_DB_H
#define TOME_DB_H

#include <stdatomic.h>

#include "backend.h"

struct tome_db {
    tome_backend *b;
    atomic_long   ntxn;       /* transactions open on this handle */
    int           read_only;
};

#endif
