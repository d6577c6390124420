/*
 * commit.c -- the commit path of the local log engine: the commit queue
 * (one writer thread writes the commits of every thread waiting to, each
 * validated and written as one pwritev under commit_mu), validation of a
 * transaction's read set, zero-ahead in the active segment, the segment
 * roll-over, and group commit (one fdatasync at a time, for every commit
 * written before it started, started when the round of waiting commits is
 * complete). On a TOME_SYNC_FULL store a synced commit becomes visible
 * only once durable; a failed write or sync poisons the handle, and no
 * sync is tried after a failed one. The protocol is summarised at the
 * top of engine.c and in full in docs/DESIGN.md ("The commit protocol").
 */
#include "local.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <semaphore.h>

/* ---------------------------------------------------------------------- */
/* durability: group commit                                                 */
/* ---------------------------------------------------------------------- */

void local_atomic_max(_Atomic uint64_t *a, uint64_t v) {
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/*
 * Group commit. Every written commit is recorded (gc_written and gc_off,
 * atomics; gc_seg, changed under commit_mu and sync_mu). A sync is a
 * ticket: claimed under sync_mu, it covers every commit written so far
 * (gc_cover); it runs (one fdatasync) outside the locks; it is published
 * in ticket order: durable_seq and visible_seq move to its target only
 * when it and every earlier ticket succeeded. A failed sync poisons the
 * handle; nothing is published after it and no sync is claimed again.
 *
 * One sync runs at a time (overlapping fdatasyncs of one file were slower
 * here). The only overlap is local_rotate's sync of the segment it seals,
 * hence the ordered publication: Linux reports a writeback error to only
 * one of two overlapping syncs, so a sync that succeeded while an earlier
 * one failed proves nothing.
 *
 * Waiting threads sleep on their own semaphore (gc_waiter), so the thread
 * that publishes wakes exactly the commits it made durable (no herd on
 * sync_mu), and hands the next sync to one waiting thread (GW_LEAD).
 *
 * When to start the next sync. A sync covers the commits written before
 * it starts; the threads its end releases come back with their next
 * commits a little later. Starting the next sync at once would cover only
 * the commits written during the last one, and the threads would settle
 * into two groups taking turns, each half the size. So the next sync waits
 * (lingers) until as many commits wait as there were in the last round
 * (gc_target: the commits the last sync released plus those waiting at its
 * end), or until gc_deadline, one sync duration (moving average, at most
 * GC_LINGER_MAX_NS) after the last sync ended. One waiting thread sleeps
 * until the deadline as the timer; the commit that completes the round
 * starts the sync itself. A single thread has a round of one: its sync
 * starts at once.
 */
#define GC_RING (sizeof ((local *)0)->gc_ring / sizeof ((local *)0)->gc_ring[0])
#define GC_LINGER_MAX_NS 1000000u  /* 1 ms */

/* What a sleeping thread is woken for: its commit is settled; run the
 * sync claimed for it; come back to decide (and wait as the timer); write
 * the queued commits (commit queue, below). */
enum { GW_WAIT, GW_DONE, GW_LEAD, GW_RETRY, GW_WRITE };

typedef struct gc_waiter {
    struct gc_waiter *next;
    uint64_t seq;         /* the commit waited for */
    uint64_t ticket;      /* GW_LEAD: the sync to run */
    atomic_int state;     /* set by the waker just before it posts sem */
    int      wake_as;     /* the state the waker sets (under sync_mu) */
    int      listed;      /* on L->gc_waiters (under sync_mu) */
    int      timer;       /* sleeps until gc_deadline (under sync_mu) */
    int      arrived;     /* counted in gc_uncov (under sync_mu) */
    sem_t    sem;         /* one post per wake-up (after it: hands off) */
} gc_waiter;

#define GC_SLOT(L, t) (&(L)->gc_ring[(t) % GC_RING])

static uint64_t gc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Under sync_mu: claims a sync covering the commits up to target, whose
 * data ends at off in segment s. */
static uint64_t gc_claim(local *L, uint64_t target, seg *s, uint64_t off) {
    uint64_t t = L->gc_next++;
    struct gc_ticket *g = GC_SLOT(L, t);
    g->target = target;
    g->off = off;
    g->s = s;
    g->done = 0;
    g->err = 0;
    g->t0 = gc_now();
    if (s) atomic_fetch_add(&s->refs, 1);
    if (target > L->gc_cover) L->gc_cover = target;
    L->gc_uncov = 0;
    return t;
}

/* Claims the next sync for every commit written so far. */
static uint64_t gc_claim_all(local *L) {
    /* gc_seg cannot change while sync_mu is held, so every commit up to
     * gc_written (and gc_off, read after it) is in it, or was made durable
     * by the roll-over that sealed it */
    uint64_t target = atomic_load(&L->gc_written);
    return gc_claim(L, target, L->gc_seg, atomic_load(&L->gc_off));
}

/* Outside the locks: runs ticket t (its slot stays the caller's until it
 * is completed). 0 or -errno; *name is the file's name. */
static int gc_run(local *L, uint64_t t, const char **name) {
    seg *s = GC_SLOT(L, t)->s;
    *name = s ? s->name : "";
    return L->memory || !s ? 0 : L->vfs->sync(s->f, 1);
}

/* Under sync_mu: whether a commit is done waiting: durable, or it never
 * will be (a sync failed; or the handle is poisoned and no claimed sync
 * covers it, and none will be claimed). */
static int gc_settled(local *L, uint64_t seq) {
    return atomic_load(&L->durable_seq) >= seq || L->gc_failed ||
           (atomic_load(&L->poisoned) && seq > L->gc_cover);
}

/* Under sync_mu: whether a sync may start now. */
static int gc_idle(local *L) { return L->gc_next == L->gc_pub && !atomic_load(&L->poisoned); }

/* Under sync_mu: takes w off the waiter list to be woken as `as`. */
static void gc_take(local *L, gc_waiter **pp, int as, gc_waiter **wake) {
    gc_waiter *w = *pp;
    *pp = w->next;
    w->listed = 0;
    if (w->timer) {
        w->timer = 0;
        L->gc_timer = 0;
    }
    w->wake_as = as;
    w->next = *wake;
    *wake = w;
}

/* Under sync_mu: takes the settled waiters off the list (to wake as
 * GW_DONE); returns how many. */
static uint32_t gc_release(local *L, gc_waiter **wake) {
    uint32_t n = 0;
    for (gc_waiter **pp = &L->gc_waiters; *pp;) {
        if (gc_settled(L, (*pp)->seq)) {
            gc_take(L, pp, GW_DONE, wake);
            n++;
        } else {
            pp = &(*pp)->next;
        }
    }
    return n;
}

/* Under sync_mu: when a sync may start, some waiter needs one and no one
 * waits as the timer, takes that waiter off the list: as GW_LEAD with the
 * sync claimed for it if the round has gathered or its time is up, else
 * as GW_RETRY (it comes back to wait as the timer). */
static void gc_kick(local *L, gc_waiter **wake) {
    if (!gc_idle(L) || L->gc_timer) return;
    for (gc_waiter **pp = &L->gc_waiters; *pp; pp = &(*pp)->next) {
        if ((*pp)->seq <= L->gc_cover) continue;
        if (L->gc_uncov >= L->gc_target || gc_now() >= L->gc_deadline) {
            (*pp)->ticket = gc_claim_all(L);
            gc_take(L, pp, GW_LEAD, wake);
        } else {
            gc_take(L, pp, GW_RETRY, wake);
        }
        return;
    }
}

/* Under sync_mu: ends ticket t with error e, publishes the finished
 * tickets in order, starts the next round, and returns the waiters to
 * wake. `mine` is the commit the calling thread waits for (0: none). */
static gc_waiter *gc_complete(local *L, uint64_t t, int e, uint64_t mine) {
    struct gc_ticket *g = GC_SLOT(L, t);
    g->done = 1;
    g->err = e;
    uint64_t now = gc_now(), took = now - g->t0;
    L->gc_sync_ns = L->gc_sync_ns ? (L->gc_sync_ns * 3 + took) / 4 : took;
    while (L->gc_pub < L->gc_next && GC_SLOT(L, L->gc_pub)->done) {
        g = GC_SLOT(L, L->gc_pub);
        if (g->err) {
            L->gc_failed = 1;
            atomic_store(&L->poisoned, 1);
        } else if (!L->gc_failed) {
            if (g->s) local_atomic_max(&g->s->synced, g->off);
            local_atomic_max(&L->durable_seq, g->target);
            local_atomic_max(&L->visible_seq, g->target);
        }
        if (g->s) seg_unref(L, g->s);
        g->s = NULL;
        L->gc_pub++;
    }
    if (L->gc_drain) pthread_cond_broadcast(&L->sync_cv);
    gc_waiter *wake = NULL;
    uint32_t released = gc_release(L, &wake) + (mine && gc_settled(L, mine));
    if (L->gc_next == L->gc_pub) { /* a new round: who was in this one comes back */
        uint64_t linger = L->gc_sync_ns;
        if (linger > GC_LINGER_MAX_NS) linger = GC_LINGER_MAX_NS;
        L->gc_deadline = now + linger;
        L->gc_target = released + L->gc_uncov;
    }
    gc_kick(L, &wake);
    return wake;
}

/* Outside sync_mu: wakes the waiters taken off the list. */
static void gc_wake(gc_waiter *w) {
    while (w) {
        gc_waiter *next = w->next; /* w may be gone once it has its post */
        atomic_store_explicit(&w->state, w->wake_as, memory_order_release);
        sem_post(&w->sem);
        w = next;
    }
}

/* Waits for the post of the waker that took w off the list. */
static int gc_sleep(gc_waiter *w) {
    while (sem_wait(&w->sem) != 0) {
    }
    return atomic_load_explicit(&w->state, memory_order_acquire);
}

/* Waits until commit `seq` (written, and recorded in gc_written) is
 * durable, as waiter w (its semaphore initialised; NULL: none, poll).
 * st GW_WAIT: called with sync_mu held, w not listed. Otherwise w was
 * listed by the writer and has been woken with st; sync_mu is not held.
 * Returns with sync_mu released. */
static int gc_wait(local *L, gc_waiter *w, uint64_t seq, int st) {
    int rc = 0, arrived = w ? w->arrived : 0;
    gc_waiter *wake = NULL;
    for (;;) {
        uint64_t t;
        if (st == GW_WAIT) { /* sync_mu held */
            if (gc_settled(L, seq)) {
                /* poisoned: every waiter no sync covers is settled too */
                if (atomic_load(&L->poisoned)) gc_release(L, &wake);
                pthread_mutex_unlock(&L->sync_mu);
                break;
            }
            if (seq > L->gc_cover && !arrived) {
                L->gc_uncov++;
                arrived = 1;
            }
            if (seq > L->gc_cover && gc_idle(L) &&
                (L->gc_uncov >= L->gc_target || gc_now() >= L->gc_deadline)) {
                t = gc_claim_all(L);
                pthread_mutex_unlock(&L->sync_mu);
                st = GW_LEAD;
            } else if (!w) { /* no semaphore (cannot happen on Linux): poll */
                pthread_mutex_unlock(&L->sync_mu);
                gc_wake(wake);
                wake = NULL;
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
                pthread_mutex_lock(&L->sync_mu);
                continue;
            } else {
                int timer = seq > L->gc_cover && gc_idle(L) && !L->gc_timer;
                if (timer) L->gc_timer = 1;
                w->seq = seq;
                atomic_store_explicit(&w->state, GW_WAIT, memory_order_relaxed);
                w->timer = timer;
                w->listed = 1;
                w->next = L->gc_waiters;
                L->gc_waiters = w;
                uint64_t deadline = L->gc_deadline;
                pthread_mutex_unlock(&L->sync_mu);
                gc_wake(wake);
                wake = NULL;
                if (timer) { /* sleeps out the round's gathering time */
                    struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
                    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
                    }
                    pthread_mutex_lock(&L->sync_mu);
                    if (w->listed) { /* nobody took it: its time is up */
                        for (gc_waiter **pp = &L->gc_waiters;; pp = &(*pp)->next)
                            if (*pp == w) {
                                *pp = w->next;
                                break;
                            }
                        w->listed = 0;
                        if (w->timer) L->gc_timer = 0;
                        w->timer = 0;
                        continue; /* sync_mu held, st GW_WAIT */
                    }
                    pthread_mutex_unlock(&L->sync_mu);
                }
                st = gc_sleep(w); /* taken off the list: its post comes */
                continue;
            }
        } else if (st == GW_DONE) { /* settled: durable_seq and the flags tell */
            break;
        } else if (st == GW_RETRY) {
            pthread_mutex_lock(&L->sync_mu);
            st = GW_WAIT;
            continue;
        } else { /* GW_LEAD: run the sync claimed for it */
            t = w->ticket;
        }
        gc_wake(wake);
        wake = NULL;
        const char *name;
        int e = gc_run(L, t, &name);
        TOME_KILLPOINT("commit.synced");
        if (e) rc = local_io_err(L, e, "sync", name);
        pthread_mutex_lock(&L->sync_mu);
        wake = gc_complete(L, t, e, seq);
        st = GW_WAIT;
    }
    gc_wake(wake);
    if (atomic_load(&L->durable_seq) >= seq) return 0;
    if (rc) return rc;
    return tome_err(L->base.db, TOME_IO, "an earlier write or sync failed: the store refuses writes until it is reopened");
}

int local_sync(tome_backend *b) {
    local *L = (local *)b;
    if (L->read_only) return 0;
    pthread_mutex_lock(&L->commit_mu);
    uint64_t last = L->last_seq;
    seg *act = L->act;
    pthread_mutex_unlock(&L->commit_mu);
    if (!act) return 0;
    if (atomic_load(&L->poisoned))
        return tome_err(b->db, TOME_IO, "an earlier write or sync failed: reopen the store");
    if (atomic_load(&L->durable_seq) >= last) return 0; /* nothing new */
    gc_waiter w;
    memset(&w, 0, sizeof w);
    int have_sem = sem_init(&w.sem, 0, 0) == 0;
    pthread_mutex_lock(&L->sync_mu);
    int rc = gc_wait(L, have_sem ? &w : NULL, last, GW_WAIT);
    if (have_sem) sem_destroy(&w.sem);
    return rc;
}

/* Under commit_mu: makes everything written to the active segment durable
 * with a sync of its own (a segment is sealed only after one), published
 * like any other ticket. */
static int seal_active(local *L) {
    seg *old = L->act;
    pthread_mutex_lock(&L->sync_mu);
    if (atomic_load(&L->poisoned)) {
        pthread_mutex_unlock(&L->sync_mu);
        return tome_err(L->base.db, TOME_IO, "an earlier write or sync failed: reopen the store");
    }
    /* every commit is written (commit_mu): no ticket is claimed after this
     * one until it is published, so the ring has room (GC_RING) */
    uint64_t t = gc_claim(L, L->last_seq, old, old->size);
    pthread_mutex_unlock(&L->sync_mu);
    const char *name;
    int e = gc_run(L, t, &name);
    pthread_mutex_lock(&L->sync_mu);
    gc_waiter *wake = gc_complete(L, t, e, 0);
    pthread_mutex_unlock(&L->sync_mu);
    gc_wake(wake);
    pthread_mutex_lock(&L->sync_mu);
    L->gc_drain++;
    while (L->gc_pub <= t) pthread_cond_wait(&L->sync_cv, &L->sync_mu);
    L->gc_drain--;
    int failed = L->gc_failed;
    pthread_mutex_unlock(&L->sync_mu);
    if (e) return local_io_err(L, e, "sync", name);
    if (failed) return tome_err(L->base.db, TOME_IO, "an earlier sync failed: reopen the store");
    return 0;
}

/* ---------------------------------------------------------------------- */
/* commit                                                                   */
/* ---------------------------------------------------------------------- */

/* Seals the active segment (synced, see seal_active) and starts the next
 * one. Under commit_mu. */
int local_rotate(local *L) {
    int rc = seal_active(L);
    if (rc) return rc;
    TOME_KILLPOINT("rotate.sealed");
    /* memory first: once the file exists, nothing may fail */
    pthread_rwlock_wrlock(&L->ix_lock);
    seg **nl = tome_realloc(L->live, (L->nlive + 1) * sizeof *nl);
    if (nl) L->live = nl;
    rc = nl ? seg_table_reserve(L) : TOME_NOMEM;
    pthread_rwlock_unlock(&L->ix_lock);
    if (rc) return tome_err(L->base.db, rc, "out of memory rolling the log over");
    seg *s;
    rc = local_create_log(L, L->next_file, L->last_seq, &s);
    if (rc == TOME_IO) atomic_store(&L->poisoned, 1);
    if (rc) return rc;
    TOME_KILLPOINT("rotate.created");
    pthread_rwlock_wrlock(&L->ix_lock);
    seg_table_add(L, s); /* room reserved above */
    L->live[L->nlive++] = s;
    pthread_rwlock_unlock(&L->ix_lock);
    L->next_file++;
    L->act = s;
    L->gc_zeroed = 0;
    pthread_mutex_lock(&L->sync_mu);
    L->gc_seg = s;
    atomic_store(&L->gc_off, s->size);
    pthread_mutex_unlock(&L->sync_mu);
    return 0;
}

static int key_matches_prefix(const rc_key *k, const tome_rprefix *p) {
    return k->slot == p->slot && k->klen >= p->len && (p->len == 0 || memcmp(k->key, p->prefix, p->len) == 0);
}

#define RC_RING (sizeof ((local *)0)->rc_ring / sizeof ((local *)0)->rc_ring[0])

/* Under commit_mu: the first recent commit after seq s, or NULL. The list
 * holds consecutive seqs; rc_ring finds the newest RC_RING of them without
 * walking past the older ones. */
static rc_entry *rc_after(local *L, uint64_t s) {
    rc_entry *e = L->rc_head;
    if (!e || L->rc_tail->seq <= s) return NULL;
    if (s >= e->seq && L->rc_tail->seq - s <= RC_RING) {
        rc_entry *r = L->rc_ring[(s + 1) % RC_RING];
        if (r && r->seq == s + 1) return r;
    }
    while (e && e->seq <= s) e = e->next;
    return e;
}

/* Under commit_mu: TOME_CONFLICT if a commit after s touched the read set. */
static int validate(local *L, const tome_snap *s, const tome_rset *rs) {
    if (!rs) return 0;
    for (rc_entry *e = rc_after(L, s->seq); e; e = e->next) {
        for (size_t i = 0; i < e->n; i++) {
            const rc_key *k = &e->keys[i];
            if (rs->has_key && rs->has_key(rs->ctx, k->slot, k->key, k->klen))
                return TOME_CONFLICT;
            if (k->changed)
                for (size_t j = 0; j < rs->nprefixes; j++)
                    if (key_matches_prefix(k, &rs->prefixes[j])) return TOME_CONFLICT;
        }
    }
    return 0;
}

/* Under commit_mu: frees recent commits no open snapshot can still need.
 * Finding the oldest snapshot walks every open one under reg_mu, which
 * every tome_begin takes too: small commits prune every RC_PRUNE_EVERY
 * commits, as keeping a few more entries costs only memory. */
#define RC_PRUNE_EVERY 16
static void rc_prune(local *L, size_t nkeys) {
    if (!L->rc_head || (nkeys < RC_PRUNE_EVERY && L->rc_tail->seq % RC_PRUNE_EVERY != 0)) return;
    pthread_mutex_lock(&L->reg_mu);
    uint64_t m = local_reg_min(L);
    pthread_mutex_unlock(&L->reg_mu);
    uint64_t vis = atomic_load(&L->visible_seq);
    if (vis < m) m = vis;
    while (L->rc_head && L->rc_head->seq <= m) {
        rc_entry *e = L->rc_head;
        L->rc_head = e->next;
        tome_free(e);
    }
    if (!L->rc_head) L->rc_tail = NULL;
}

#define BIG_VALUE 65536

/*
 * Zero ahead. Segments are preallocated with fallocate, which leaves
 * unwritten extents: the first write into each block converts its extent,
 * and the fdatasync after it must also write the inode (ext4: one more
 * synchronous write, and another wait, per sync that reaches a new block).
 * Before a synced commit is written, the active segment is kept written
 * (with zeros) ZERO_CHUNK ahead of the append offset, refilled when less
 * than half of it is left: the conversions then happen once per chunk, in
 * a sync before any commit lands there. Zeros are what the unwritten
 * blocks read as anyway, so recovery sees the same log either way (a zero
 * header ends it). Bulk NOSYNC commits never zero: the bytes written for
 * a bulk load stay the same.
 */
#define ZERO_CHUNK (UINT64_C(256) << 10)
static uint8_t zero_block[64 << 10]; /* never written */

/* Under commit_mu: a write that will end at `end` is about to go to the
 * active segment. A failed write of zeros poisons the handle. */
static int zero_ahead(local *L, uint64_t end) {
    seg *a = L->act;
    uint64_t z = L->gc_zeroed > a->size ? L->gc_zeroed : a->size;
    if (end + ZERO_CHUNK / 2 <= z || z >= a->cap) return 0;
    uint64_t len = a->cap - z < ZERO_CHUNK ? a->cap - z : ZERO_CHUNK;
    struct iovec iov[ZERO_CHUNK / sizeof zero_block];
    int n = 0;
    for (uint64_t left = len; left; n++) {
        size_t k = left < sizeof zero_block ? (size_t)left : sizeof zero_block;
        iov[n].iov_base = zero_block;
        iov[n].iov_len = k;
        left -= k;
    }
    int e = L->vfs->pwritev(a->f, iov, n, z);
    if (e) {
        atomic_store(&L->poisoned, 1);
        return local_io_err(L, e, "write", a->name);
    }
    L->gc_zeroed = z + len;
    return 0;
}


/* ---------------------------------------------------------------------- */
/* the commit queue                                                         */
/* ---------------------------------------------------------------------- */

/*
 * Commits are written by one thread at a time, the writer, which writes
 * the commits queued by other threads too, each exactly as alone
 * (commit_one: validation, index reservation, one pwritev, index update),
 * under one hold of commit_mu per batch: the others sleep once, on their
 * waiter, instead of queueing on commit_mu and then again for their sync.
 * A committing thread pushes its request on cq_stack (lock-free) and
 * becomes the writer if none is active (cq_busy 0 -> 1); otherwise the
 * writer of the moment takes it. A writer writes the batch it took, then
 * what was queued meanwhile, up to CQ_ROUNDS batches, then hands what is
 * still queued to the oldest of those requests (woken as GW_WRITE; cq_busy
 * stays 1) and goes on with its own commit. Before it lets cq_busy go, it
 * looks at cq_stack once more: a request pushed while it was 1 sleeps,
 * counting on the writer. The written requests that must wait for their
 * sync go on the waiter list of group commit directly, still asleep; the
 * others are woken with their result (the failure's message copied: the
 * detail of an error lives in the calling thread).
 */
typedef struct commit_req {
    gc_waiter w;                 /* its wait, from the push to the end */
    struct commit_req *qnext;    /* cq_stack; then the batch, oldest first */
    struct commit_req *batch;    /* GW_WRITE: the requests to write */
    /* the commit, encoded by its thread */
    const tome_snap *s;
    const tome_wop *ops;
    size_t n;
    const tome_rset *rs;
    unsigned flags;
    uint64_t total;              /* bytes */
    struct iovec *iov;
    size_t ni, bi, run_start;    /* iovecs used; end of buf; start of its last run */
    uint8_t *buf;
    uint64_t *offs;
    uint64_t *hash;              /* each key's index hash (ix_hash) */
    tome_entry **ents;
    uint8_t *isnew;
    rc_entry *rce;               /* handed to the recent-commit list on success */
    /* the outcome (set by the writer) */
    int rc, need_sync;
    uint64_t seq, ts;
    char msg[512];               /* tome_errmsg of a failure */
} commit_req;

/* Under commit_mu: validates and writes one commit, then adds it to the
 * index. 0, or a code with the detail in the calling thread's message. */
static int commit_one(local *L, commit_req *r) {
    tome_db *db = L->base.db;
    const tome_wop *ops = r->ops;
    size_t n = r->n;
    uint64_t total = r->total;
    tome_entry **ents = r->ents;
    uint8_t *isnew = r->isnew;
    int rc = 0;
    if (atomic_load(&L->poisoned))
        return tome_err(db, TOME_IO, "an earlier write or sync failed: reopen the store");
    if (validate(L, r->s, r->rs) != 0)
        return tome_err(db, TOME_CONFLICT, "a key this transaction read was changed by a later commit");
    /* reserve index memory; the hash cells of every key are fetched
     * first, so that the lookups' cache misses overlap */
    pthread_rwlock_wrlock(&L->ix_lock);
    for (size_t i = 0; i < n; i++) ix_prefetch(L, r->hash[i]);
    for (size_t i = 0; i < n; i++) {
        tome_entry *e = ix_find_h(L, r->hash[i], ops[i].slot, ops[i].key, ops[i].klen);
        if (!e) {
            e = entry_new(ops[i].slot, ops[i].key, ops[i].klen);
            if (!e || ix_insert_h(L, e, r->hash[i]) != 0) {
                entry_free(e, NULL);
                e = NULL;
                rc = TOME_NOMEM;
            } else {
                isnew[i] = 1;
            }
        } else if (entry_reserve(e, e->nver + 1) != 0) {
            rc = TOME_NOMEM;
        }
        if (rc) {
            for (size_t j = 0; j < i; j++) {
                if (isnew[j]) {
                    ix_remove(L, ents[j]);
                    entry_free(ents[j], NULL);
                } else {
                    entry_drop_flags(ents[j]);
                }
                ents[j] = NULL;
                isnew[j] = 0;
            }
            if (e && !isnew[i]) entry_drop_flags(e);
            break;
        }
        ents[i] = e;
    }
    pthread_rwlock_unlock(&L->ix_lock);
    if (rc) return tome_err(db, rc, "out of memory preparing the commit");
    /* seq and timestamp; the timestamp table gets this commit's entry now
     * (an entry for a seq that then fails is overwritten by the next) */
    uint64_t seq = L->last_seq + 1;
    uint64_t now = L->vfs->now_ms(L->vfs);
    uint64_t ts = now > L->last_ts ? now : L->last_ts;
    pthread_mutex_lock(&L->reg_mu);
    rc = ctab_set(L, seq, ts);
    pthread_mutex_unlock(&L->reg_mu);
    if (rc) rc = tome_err(db, rc, "out of memory preparing the commit");
    if (!rc && L->act->size + total > L->act->cap && L->act->size > SEG_HDR_SIZE) {
        uint64_t want = total + SEG_HDR_SIZE;
        uint64_t saved = L->segment_size;
        if (want > L->segment_size) L->segment_size = want;
        rc = local_rotate(L);
        L->segment_size = saved;
    } else if (!rc && L->act->size + total > L->act->cap) {
        /* an empty segment too small for this batch: grow it */
        int e = L->vfs->allocate(L->act->f, 0, L->act->size + total);
        if (e) rc = local_io_err(L, e, "allocate", L->act->name);
        else L->act->cap = L->act->size + total;
    }
    if (!rc && L->act->size + total > MAX_SEGMENT_OFF) rc = tome_err(db, TOME_TOOBIG, "commit too large");
    if (!rc && L->sync_mode == TOME_SYNC_FULL && !L->memory && !(r->flags & TOME_COMMIT_NOSYNC))
        rc = zero_ahead(L, L->act->size + total);
    if (!rc) {
        uint64_t start = L->act->size;
        /* commit record */
        uint8_t *c = r->buf + r->bi;
        rec_hdr_encode(c, REC_COMMIT, 0, 0, COMMIT_PAYLOAD);
        memcpy(c + 16, COMMIT_MAGIC, 8);
        tome_put64(c + 24, seq);
        tome_put64(c + 32, ts);
        tome_put32(c + 40, (uint32_t)n);
        tome_put32(c + 44, 0);
        tome_put64(c + 48, start);
        tome_put64(c + 56, atomic_load(&L->act->synced));
        tome_put32(c, tome_crc32c(0, c + 4, COMMIT_SIZE - 4));
        r->iov[r->ni].iov_base = r->buf + r->run_start;
        r->iov[r->ni].iov_len = r->bi + COMMIT_SIZE - r->run_start;
        TOME_KILLPOINT("commit.before_write");
        int e = L->vfs->pwritev(L->act->f, r->iov, (int)r->ni + 1, start);
        TOME_KILLPOINT("commit.written");
        if (e) {
            atomic_store(&L->poisoned, 1);
            rc = local_io_err(L, e, "write", L->act->name);
        } else {
            L->act->size = start + total;
            L->act->last_seq = seq;
            L->act->last_ts = ts;
            L->last_seq = seq;
            L->last_ts = ts;
            /* apply to the index */
            rc_entry *rce = r->rce;
            pthread_rwlock_wrlock(&L->ix_lock);
            for (size_t i = 0; i < n; i++) {
                tome_entry *en = ents[i];
                int before = en->nver > 0 && !(tome_entry_vers(en)[en->nver - 1].flags & TOME_VER_REMOVED);
                tome_ver v;
                v.seq = seq;
                v.ts = ts;
                v.loc = TOME_LOC(L->act->id, start + r->offs[i]);
                v.vlen = ops[i].removed ? 0 : (uint32_t)ops[i].vlen;
                v.flags = ops[i].removed ? TOME_VER_REMOVED : 0;
                entry_push(en, &v);
                rce->keys[i].changed = (uint8_t)(before != !ops[i].removed);
            }
            L->nversions += n;
            pthread_rwlock_unlock(&L->ix_lock);
            rce->seq = seq;
            if (L->rc_tail) L->rc_tail->next = rce;
            else L->rc_head = rce;
            L->rc_tail = rce;
            L->rc_ring[seq % RC_RING] = rce;
            r->rce = NULL;
            /* Publish now unless this commit must wait for its sync. A
             * NOSYNC commit on a FULL store still waits when earlier
             * commits are waiting for theirs, so that visibility keeps
             * commit order. */
            int need_sync = L->sync_mode == TOME_SYNC_FULL && !L->memory;
            if (need_sync && (r->flags & TOME_COMMIT_NOSYNC) && atomic_load(&L->visible_seq) + 1 >= seq)
                need_sync = 0;
            if (!need_sync) {
                local_atomic_max(&L->visible_seq, seq);
                if (L->memory) local_atomic_max(&L->durable_seq, seq);
            }
            rc_prune(L, n);
            /* record the write for group commit (gc_seg changes only here,
             * after an open, and at a roll-over, always under both locks) */
            if (L->gc_seg != L->act) {
                pthread_mutex_lock(&L->sync_mu);
                L->gc_seg = L->act;
                pthread_mutex_unlock(&L->sync_mu);
            }
            atomic_store(&L->gc_off, L->act->size);
            atomic_store(&L->gc_written, seq);
            r->seq = seq;
            r->ts = ts;
            r->need_sync = need_sync;
            return 0;
        }
    }
    /* undo the reservations */
    pthread_rwlock_wrlock(&L->ix_lock);
    for (size_t j = 0; j < n; j++) {
        if (!ents[j]) continue;
        if (isnew[j]) {
            ix_remove(L, ents[j]);
            entry_free(ents[j], NULL);
        } else {
            entry_drop_flags(ents[j]);
        }
    }
    pthread_rwlock_unlock(&L->ix_lock);
    return rc;
}

/* Pops every queued request, oldest first. */
static commit_req *cq_take(local *L) {
    commit_req *top = atomic_exchange(&L->cq_stack, NULL), *fifo = NULL;
    while (top) {
        commit_req *next = top->qnext;
        top->qnext = fifo;
        fifo = top;
        top = next;
    }
    return fifo;
}

/* Under sync_mu: settles the requests of a written batch that belong to
 * other threads (`me` excepted): failed or not waiting for a sync, to
 * wake as GW_DONE; the others go on the waiter list, still asleep. */
static void cq_settle(local *L, commit_req *batch, commit_req *me, gc_waiter **wake) {
    for (commit_req *r = batch, *rn; r; r = rn) {
        rn = r->qnext; /* r may be gone once woken */
        if (r == me) continue;
        if (r->rc || !r->need_sync || gc_settled(L, r->seq)) {
            r->w.wake_as = GW_DONE;
            r->w.next = *wake;
            *wake = &r->w;
        } else {
            r->w.seq = r->seq;
            r->w.timer = 0;
            r->w.listed = 1;
            r->w.arrived = r->seq > L->gc_cover;
            if (r->w.arrived) L->gc_uncov++;
            r->w.next = L->gc_waiters;
            L->gc_waiters = &r->w;
        }
    }
}

/* With cq_busy held: the requests queued now, oldest first, keeping
 * cq_busy for them; or NULL with cq_busy released. A request pushed
 * before cq_busy went 0 found it 1 and sleeps: it is taken, unless a new
 * writer already has it. */
static commit_req *cq_next(local *L) {
    for (;;) {
        commit_req *next = cq_take(L);
        if (next) return next;
        atomic_store(&L->cq_busy, 0);
        int zero = 0;
        if (!atomic_load(&L->cq_stack) || !atomic_compare_exchange_strong(&L->cq_busy, &zero, 1))
            return NULL;
    }
}

/* Hands the writer's part (cq_busy) and the batch to its oldest request. */
static void cq_hand(commit_req *batch, gc_waiter **wake) {
    batch->batch = batch;
    batch->w.wake_as = GW_WRITE;
    batch->w.next = *wake;
    *wake = &batch->w;
}

#define CQ_ROUNDS 4  /* batches a writer writes before it hands on */

/* The writer: writes the batch (oldest first; `me`, the calling thread's
 * own request, is in it and left to the caller) and what is queued
 * meanwhile, up to CQ_ROUNDS batches, settling each batch's requests as it
 * goes; then hands the writer's part to the oldest request still queued,
 * if any. */
static void cq_write(local *L, commit_req *batch, commit_req *me) {
    tome_db *db = L->base.db;
    for (int round = 1;; round++) {
        pthread_mutex_lock(&L->commit_mu);
        for (commit_req *r = batch; r; r = r->qnext) {
            r->rc = commit_one(L, r);
            if (r->rc) snprintf(r->msg, sizeof r->msg, "%s", tome_errmsg(db));
        }
        pthread_mutex_unlock(&L->commit_mu);
        commit_req *next = cq_next(L); /* queued meanwhile */
        gc_waiter *wake = NULL;
        int hand_on = next && round >= CQ_ROUNDS;
        if (hand_on) cq_hand(next, &wake);
        pthread_mutex_lock(&L->sync_mu);
        cq_settle(L, batch, me, &wake);
        gc_kick(L, &wake);
        pthread_mutex_unlock(&L->sync_mu);
        gc_wake(wake);
        if (!next || hand_on) return;
        batch = next;
        me = NULL;
    }
}

int local_commit(tome_backend *b, const tome_snap *s, const tome_wop *ops, size_t n,
                    const tome_rset *rs, unsigned flags, uint64_t *seq_out, uint64_t *ts_out) {
    local *L = (local *)b;
    tome_db *db = b->db;
    if (L->read_only) return tome_err(db, TOME_READONLY, "the store is open read-only");
    if (n == 0) return 0;
    if (atomic_load(&L->poisoned))
        return tome_err(db, TOME_IO, "an earlier write or sync failed: reopen the store");

    /* 1. encode the batch outside the locks */
    int rc = 0;
    size_t small = 0, extra = 0, nbig = 0, keybytes = 0;
    uint64_t total = COMMIT_SIZE;
    if (n > SIZE_MAX / 64) return tome_err(db, TOME_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t vl = ops[i].removed ? 0 : ops[i].vlen;
        total += REC_HDR_SIZE + ops[i].klen + vl;
        keybytes += ops[i].klen;
        if (vl >= BIG_VALUE) {
            nbig++;
            extra += REC_HDR_SIZE + ops[i].klen;
        } else {
            small += REC_HDR_SIZE + ops[i].klen + vl;
        }
    }
    /* One scratch block (on the stack for a small commit): iov, offs, hash,
     * ents, isnew, then buf, which holds the small records, the headers and keys
     * of the big ones, and the commit record. rce outlives the call. */
    size_t niov = 2 * nbig + 2;
    size_t o_offs = niov * sizeof(struct iovec);
    size_t o_hash = o_offs + n * sizeof(uint64_t);
    size_t o_ents = o_hash + n * sizeof(uint64_t);
    size_t o_isnew = o_ents + n * sizeof(tome_entry *);
    size_t o_buf = o_isnew + n;
    size_t scratch_len = o_buf + small + extra + COMMIT_SIZE;
    _Alignas(max_align_t) unsigned char stack_scratch[768];
    unsigned char *scratch = scratch_len <= sizeof stack_scratch ? stack_scratch : tome_malloc(scratch_len);
    rc_entry *rce = tome_malloc(sizeof *rce + n * sizeof(rc_key) + keybytes);
    if (!scratch || !rce) {
        tome_free(rce);
        if (scratch != stack_scratch) tome_free(scratch);
        return tome_err(db, TOME_NOMEM, "out of memory");
    }
    commit_req r;
    r.s = s;
    r.ops = ops;
    r.n = n;
    r.rs = rs;
    r.flags = flags;
    r.total = total;
    r.iov = (struct iovec *)(void *)scratch;
    r.offs = (uint64_t *)(void *)(scratch + o_offs);
    r.hash = (uint64_t *)(void *)(scratch + o_hash);
    r.ents = (tome_entry **)(void *)(scratch + o_ents);
    r.isnew = scratch + o_isnew;
    r.buf = scratch + o_buf;
    r.rce = rce;
    memset(r.ents, 0, n * sizeof *r.ents);
    memset(r.isnew, 0, n);
    /* Layout: small records are copied into buf in op order; a big value
     * ends the current buffer run and goes out as its own iovec. To keep
     * the log in op order, big records are written as: [buf run] [header +
     * key copied into buf] [value iovec] [next buf run] ... The commit
     * record, written under the lock, ends the last run. */
    uint8_t *buf = r.buf;
    struct iovec *iov = r.iov;
    size_t bi = 0, ni = 0;
    uint64_t rel = 0;
    size_t run_start = 0;
    for (size_t i = 0; i < n; i++) {
        const tome_wop *o = &ops[i];
        size_t vl = o->removed ? 0 : o->vlen;
        uint8_t *h = buf + bi;
        rec_hdr_encode(h, o->removed ? REC_DEL : REC_PUT, o->slot, (uint32_t)o->klen, (uint32_t)vl);
        if (o->klen) memcpy(h + REC_HDR_SIZE, o->key, o->klen);
        uint32_t crc = tome_crc32c(0, h + 4, REC_HDR_SIZE - 4 + o->klen);
        if (vl) crc = tome_crc32c(crc, o->val, vl);
        tome_put32(h, crc);
        r.offs[i] = rel;
        r.hash[i] = ix_hash(o->slot, o->key, o->klen);
        bi += REC_HDR_SIZE + o->klen;
        rel += REC_HDR_SIZE + o->klen + vl;
        if (vl >= BIG_VALUE) {
            iov[ni].iov_base = buf + run_start;
            iov[ni].iov_len = bi - run_start;
            ni++;
            iov[ni].iov_base = (void *)o->val;
            iov[ni].iov_len = vl;
            ni++;
            run_start = bi;
        } else if (vl) {
            memcpy(buf + bi, o->val, vl);
            bi += vl;
        }
    }
    r.ni = ni;
    r.bi = bi;
    r.run_start = run_start;
    /* prepare the recent-commit record (keys copied) */
    rce->next = NULL;
    rce->n = n;
    rce->keys = (rc_key *)(rce + 1);
    {
        uint8_t *kp = (uint8_t *)(rce->keys + n);
        for (size_t i = 0; i < n; i++) {
            rce->keys[i].slot = ops[i].slot;
            rce->keys[i].klen = (uint32_t)ops[i].klen;
            rce->keys[i].key = kp;
            rce->keys[i].changed = 0;
            if (ops[i].klen) memcpy(kp, ops[i].key, ops[i].klen);
            kp += ops[i].klen;
        }
    }

    /* 2. written by the writer: this thread, or the one active now */
    int have_sem = sem_init(&r.w.sem, 0, 0) == 0;
    atomic_store_explicit(&r.w.state, GW_WAIT, memory_order_relaxed);
    r.w.listed = r.w.timer = r.w.arrived = 0;
    int st;
    if (!have_sem) { /* cannot happen on Linux: write alone, under commit_mu */
        pthread_mutex_lock(&L->commit_mu);
        r.rc = commit_one(L, &r);
        pthread_mutex_unlock(&L->commit_mu);
        if (r.rc) snprintf(r.msg, sizeof r.msg, "%s", tome_errmsg(db));
        st = GW_WRITE + 1; /* written */
    } else {
        commit_req *top = atomic_load(&L->cq_stack);
        do r.qnext = top;
        while (!atomic_compare_exchange_weak(&L->cq_stack, &top, &r));
        int zero = 0, mine = 0;
        if (atomic_compare_exchange_strong(&L->cq_busy, &zero, 1)) {
            /* the writer now; but the writer before may have taken r
             * between the push and cq_busy going 0: then that one has
             * settled r (it may even be on the waiter list, to run a sync),
             * so this thread must not write for others now: it passes
             * what it found on and waits for the word */
            commit_req *batch = cq_take(L);
            for (commit_req *q = batch; q && !mine; q = q->qnext) mine = q == &r;
            if (mine) {
                cq_write(L, batch, &r);
            } else if (batch || (batch = cq_next(L)) != NULL) {
                gc_waiter *wake = NULL;
                cq_hand(batch, &wake);
                gc_wake(wake);
            }
        }
        if (mine) {
            st = GW_WRITE + 1;
        } else {
            st = gc_sleep(&r.w);
            if (st == GW_WRITE) { /* handed the queue: r first */
                cq_write(L, r.batch, &r);
                st = GW_WRITE + 1;
            }
        }
    }
    if (st == GW_WRITE + 1) {
        /* this thread wrote its own commit */
        if (r.rc) {
            rc = tome_err(db, r.rc, "%s", r.msg);
        } else if (r.need_sync) {
            pthread_mutex_lock(&L->sync_mu);
            rc = gc_wait(L, have_sem ? &r.w : NULL, r.seq, GW_WAIT);
        }
    } else if (r.rc) { /* written by another thread: failed (GW_DONE) */
        rc = tome_err(db, r.rc, "%s", r.msg);
    } else if (r.need_sync) { /* on the waiter list (or settled): woken with st */
        rc = gc_wait(L, &r.w, r.seq, st);
    }
    if (have_sem) sem_destroy(&r.w.sem);
    if (!rc) {
        *seq_out = r.seq;
        *ts_out = r.ts;
    }
    tome_free(r.rce);
    if (scratch != stack_scratch) tome_free(scratch);
    return rc;
}
