/*
 * Channels across threads and loops (corio_channel_*): a bounded
 * multi-producer, multi-consumer FIFO that plain threads and tasks on any
 * loop send into and receive from.
 *
 * The items live in a lock-free ring of cells, each with a stamp that says
 * whose turn the cell is: a sender claims the cell at the tail by moving
 * the tail on with one compare-and-swap, copies its item in and publishes
 * it by advancing the stamp; a receiver does the same at the head.  Head
 * and tail count positions as (lap, index) pairs so that any capacity
 * works, not only powers of two.  Closing sets a mark bit in the tail, so a
 * send either claimed its cell before the close or fails: nothing is
 * accepted after it.  When both sides are busy an item costs two atomic
 * read-modify-writes on each side, no lock, no system call.
 *
 * Waiting is the slow path, kept off the fast one with two counts of
 * waiters that the fast path reads after each operation (Dekker's pattern:
 * the operation's publishing store and a waiter's registration are both
 * sequentially consistent, so either the operation sees the waiter or the
 * waiter, re-trying after it registered, sees the operation's effect).
 * Waiters queue under a mutex held for a few instructions, never across a
 * wait, in records on their own stacks.  Whoever makes progress possible
 * (a send to a channel with waiting receivers, a receive from one with
 * waiting senders, a close) takes the mutex and hands over directly:
 * items go straight into a waiting receiver's memory, a waiting sender's
 * item into the ring, and the waiter is unlinked ("claimed") with its
 * result before it is woken.  So a wake-up is never lost and an item is
 * never handed to two receivers: under the mutex a waiter is either still
 * linked (its own cancellation or deadline may unlink it and return the
 * interrupt error, holding nothing) or claimed (it returns the claimer's
 * result, 0 with the item even if it was cancelled meanwhile; the
 * cancellation stays pending for its next wait).
 *
 * A claimed task is woken on its loop through a remote wake-up
 * (src/core/remote_wake.c: the backend's notify(), once per batch; a
 * direct wake when the claimer runs on that loop's thread), and its wait
 * counts as external for the loop's stall detection, since another thread
 * may end it.  A plain thread blocks on a semaphore in its record.  Before
 * parking, each side spins for a couple of microseconds unless its loop
 * has other tasks ready (SPIN_NS): short gaps cost less that way than a
 * wake-up through the kernel.
 *
 * The spin is shaped by what a cache line costs: between two CPUs one
 * line's trip takes a few hundred nanoseconds on some machines (about 230
 * ns on the 2-core VM of docs/benchmarks.md), several times the work of
 * an item.  A side that polled the cell the other side is working on
 * would pull that line over for nearly every item and keep both sides in
 * lockstep, one line trip per item.  So a spinning side re-tries only
 * after gaps that grow (SPIN_GAP_NS up to SPIN_GAP_MAX_NS), touching
 * nothing shared in between, and a sender that found the ring full waits
 * for room for a batch (a quarter of the capacity, at most SPIN_BATCH
 * cells) before it writes again: each side then works through whole
 * lines the other has finished with.  Neither rule can strand an item:
 * a waiting sender holds its own item, and once the spin ends both sides
 * take the exact path (register, re-try, park) as before.
 */
#include "internal.h"

#include <pthread.h>
#include <semaphore.h>
#include <string.h>

#define CACHE_LINE 64

/* How long a waiter spins before it parks or blocks (the last re-try may
 * come up to one gap later).  Short on purpose: when the kernel has put
 * both sides on one CPU (a busy machine), the other side cannot run while
 * this one spins, and longer spins measured slower there; spinning pays
 * only for the gaps of a few microseconds that a wake-up through the
 * kernel would cost more than. */
#ifndef SPIN_NS
#define SPIN_NS 2000
#endif

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

typedef struct cell {
    atomic_size_t stamp; /* == position: free for it; == position + 1: holds its item */
    unsigned char item[];
} cell;

struct corio_channel {
    /* Each hot position on its own cache line, so senders and receivers
     * do not invalidate each other's on every item. */
    _Alignas(CACHE_LINE) atomic_size_t tail; /* next position to send to; | mark once closed */
    _Alignas(CACHE_LINE) atomic_size_t head; /* next position to receive from */
    /* Read on every operation, written only when someone starts or stops
     * waiting. */
    _Alignas(CACHE_LINE) atomic_uint recv_waiting;
    atomic_uint send_waiting;
    atomic_bool closed; /* set, under mu, after the mark */
    size_t cap;         /* items held at most */
    size_t mark;        /* closed bit in tail; mark - 1 masks the index */
    size_t one_lap;     /* added to a position to get the same index one lap on */
    size_t size;        /* bytes per item */
    size_t stride;      /* bytes per cell */
    size_t batch;       /* room a spinning sender waits for */
    bool pointers;      /* items are the pointers passed, not what they point to */
    unsigned char *cells;
    void *raw; /* what malloc returned */
    _Alignas(CACHE_LINE) pthread_mutex_t mu;
    corio__list recvq, sendq; /* waiting receivers and senders, oldest first (under mu) */
};

/* One waiting receiver or sender, on its own stack. */
typedef struct ch_waiter {
    corio__list link; /* in recvq or sendq while linked (under mu) */
    struct ch_waiter *next_claimed;
    corio_channel *ch;
    void *buf;   /* receiver: where the item goes; sender: where it comes from */
    int result;  /* set by the claimer, under mu */
    bool linked; /* under mu */
    bool sender;
    bool is_task;
    corio__rwake rw; /* task: how the claimer wakes it */
    sem_t sem;       /* plain thread: posted by the claimer */
} ch_waiter;

/* Waiters claimed under the mutex, woken after it is released. */
typedef struct claimed {
    ch_waiter *head, **tail;
} claimed;

enum { CH_OK, CH_EMPTY, CH_FULL, CH_BUSY, CH_CLOSED };

static inline cell *cell_at(const corio_channel *ch, size_t pos)
{
    return (cell *)(void *)(ch->cells + (pos & (ch->mark - 1)) * ch->stride);
}

/* The position after pos: the next index, or index 0 of the next lap. */
static inline size_t next_pos(const corio_channel *ch, size_t pos)
{
    return (pos & (ch->mark - 1)) + 1 < ch->cap ? pos + 1 : (pos & ~(ch->one_lap - 1)) + ch->one_lap;
}

/* The position n cells after pos (n < cap). */
static inline size_t pos_add(const corio_channel *ch, size_t pos, size_t n)
{
    size_t idx = pos & (ch->mark - 1);
    return idx + n < ch->cap ? pos + n : (pos & ~(ch->one_lap - 1)) + ch->one_lap + (idx + n - ch->cap);
}

static inline void copy_item(void *to, const void *from, size_t n)
{
    /* The common sizes as single moves, not a call into libc. */
    switch (n) {
    case sizeof(void *):
        memcpy(to, from, sizeof(void *));
        break;
    case 4:
        memcpy(to, from, 4);
        break;
    case 16:
        memcpy(to, from, 16);
        break;
    default:
        memcpy(to, from, n);
    }
}

/* Put an item in the ring.  CH_OK, CH_FULL (also while a receiver is
 * still emptying the cell: it will look for waiting senders once it has),
 * CH_CLOSED. */
static int ring_push(corio_channel *ch, const void *src)
{
    size_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    for (;;) {
        if (CORIO__UNLIKELY(tail & ch->mark))
            return CH_CLOSED;
        cell *c = cell_at(ch, tail);
        size_t stamp = atomic_load_explicit(&c->stamp, memory_order_acquire);
        if (stamp == tail) {
            if (atomic_compare_exchange_weak_explicit(&ch->tail, &tail, next_pos(ch, tail),
                                                      memory_order_relaxed, memory_order_relaxed)) {
                copy_item(c->item, src, ch->size);
                /* Sequentially consistent: see the file comment. */
                atomic_exchange_explicit(&c->stamp, tail + 1, memory_order_seq_cst);
                return CH_OK;
            }
            continue; /* tail reloaded */
        }
        /* The cell still holds the previous lap's item (full), or our
         * tail is stale. */
        size_t now = atomic_load_explicit(&ch->tail, memory_order_relaxed);
        if (now == tail)
            return CH_FULL;
        tail = now;
    }
}

/* Take the oldest item.  CH_OK, CH_EMPTY, CH_BUSY (a sender has claimed
 * the cell but not filled it yet: it will look for waiting receivers once
 * it has), CH_CLOSED (closed and empty: every send that will ever
 * succeed has been received). */
static int ring_pop(corio_channel *ch, void *dst)
{
    size_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    for (;;) {
        cell *c = cell_at(ch, head);
        size_t stamp = atomic_load_explicit(&c->stamp, memory_order_acquire);
        if (stamp == head + 1) {
            if (atomic_compare_exchange_weak_explicit(&ch->head, &head, next_pos(ch, head),
                                                      memory_order_relaxed, memory_order_relaxed)) {
                copy_item(dst, c->item, ch->size);
                atomic_exchange_explicit(&c->stamp, head + ch->one_lap, memory_order_seq_cst);
                return CH_OK;
            }
            continue;
        }
        if (stamp == head) {
            /* Nothing published here yet.  Open: empty, or a send is
             * filling the cell, which makes no difference to the callers
             * (and the tail's cache line stays with the senders).  Closed:
             * a tail carrying the mark is final (no send can claim a cell
             * after it), so a marked tail equal to head means nothing more
             * will ever arrive.  The flag is set under the mutex after the
             * mark, so a receiver that registers under it and then finds
             * the flag clear is still there for close's settle. */
            if (CORIO__LIKELY(!atomic_load_explicit(&ch->closed, memory_order_acquire)))
                return CH_EMPTY;
            size_t tail = atomic_load_explicit(&ch->tail, memory_order_seq_cst);
            if ((tail & ~ch->mark) == head)
                return CH_CLOSED;
            return CH_BUSY;
        }
        size_t now = atomic_load_explicit(&ch->head, memory_order_relaxed);
        if (now == head)
            return CH_BUSY;
        head = now;
    }
}

/* ------------------------------------------------------------------ */
/* Waiters                                                             */
/* ------------------------------------------------------------------ */

static inline ch_waiter *first_waiter(corio__list *q)
{
    return corio__list_empty(q) ? NULL : CORIO__CONTAINER_OF(q->next, ch_waiter, link);
}

static void unlink_waiter(corio_channel *ch, ch_waiter *w)
{
    corio__list_remove(&w->link);
    w->linked = false;
    atomic_fetch_sub_explicit(w->sender ? &ch->send_waiting : &ch->recv_waiting, 1, memory_order_relaxed);
}

/* Under mu: end w's wait with r; it is woken by release_claimed. */
static void claim(corio_channel *ch, ch_waiter *w, int r, claimed *out)
{
    unlink_waiter(ch, w);
    w->result = r;
    w->next_claimed = NULL;
    *out->tail = w;
    out->tail = &w->next_claimed;
}

static void claim_all(corio_channel *ch, corio__list *q, int r, claimed *out)
{
    ch_waiter *w;
    while ((w = first_waiter(q)))
        claim(ch, w, r, out);
}

/* Under mu: hand items to waiting receivers and waiting senders' items to
 * the ring, for as long as either makes progress; tell waiters the channel
 * is closed once that is all they can get. */
static void settle(corio_channel *ch, claimed *out)
{
    bool progress = true;
    while (progress) {
        progress = false;
        ch_waiter *w;
        while ((w = first_waiter(&ch->recvq))) {
            int r = ring_pop(ch, w->buf);
            if (r == CH_OK) {
                claim(ch, w, 0, out);
                progress = true;
                continue;
            }
            if (r == CH_CLOSED)
                claim_all(ch, &ch->recvq, -ESHUTDOWN, out);
            break;
        }
        while ((w = first_waiter(&ch->sendq))) {
            int r = ring_push(ch, w->buf);
            if (r == CH_OK) {
                claim(ch, w, 0, out);
                progress = true;
                continue;
            }
            if (r == CH_CLOSED)
                claim_all(ch, &ch->sendq, -ESHUTDOWN, out);
            break;
        }
    }
}

/* After mu is released: wake every claimed waiter.  A waiter may return
 * (and its record vanish) the moment it is woken, so each one's successor
 * is read first. */
static void release_claimed(claimed *c)
{
    ch_waiter *w = c->head;
    while (w) {
        ch_waiter *next = w->next_claimed;
        if (w->is_task)
            corio__rwake_post(&w->rw, w->result);
        else
            sem_post(&w->sem);
        w = next;
    }
}

static inline void claimed_init(claimed *c)
{
    c->head = NULL;
    c->tail = &c->head;
}

/* Someone may wait for what the caller just did: let them have it. */
static void __attribute__((noinline)) kick(corio_channel *ch)
{
    claimed c;
    claimed_init(&c);
    pthread_mutex_lock(&ch->mu);
    settle(ch, &c);
    pthread_mutex_unlock(&ch->mu);
    release_claimed(&c);
}

static inline void after_push(corio_channel *ch)
{
    if (CORIO__UNLIKELY(atomic_load_explicit(&ch->recv_waiting, memory_order_seq_cst) != 0))
        kick(ch);
}

static inline void after_pop(corio_channel *ch)
{
    if (CORIO__UNLIKELY(atomic_load_explicit(&ch->send_waiting, memory_order_seq_cst) != 0))
        kick(ch);
}

/* A task's wait was interrupted (cancel, deadline; loop thread).  Still
 * linked: nobody handed it anything, so it leaves with the reason.
 * Claimed: the claimer's wake-up is on its way and decides the result;
 * the task stays parked until it arrives. */
static void ch_interrupted(corio_task *t, int reason)
{
    ch_waiter *w = t->wait_obj;
    corio_channel *ch = w->ch;
    pthread_mutex_lock(&ch->mu);
    bool mine = w->linked;
    if (mine)
        unlink_waiter(ch, w);
    pthread_mutex_unlock(&ch->mu);
    if (mine)
        corio__rwake_end(&w->rw, reason);
}

/* Spinning before parking: for up to SPIN_NS, re-trying after gaps that
 * start at SPIN_GAP_NS and double up to SPIN_GAP_MAX_NS (see the file
 * comment: a batch builds up meanwhile).  Not on a loop with other work
 * to do: parking is what lets it run. */
#ifndef SPIN_GAP_NS
#define SPIN_GAP_NS 500
#endif
#ifndef SPIN_GAP_MAX_NS
#define SPIN_GAP_MAX_NS 4000
#endif
typedef struct spin {
    uint64_t now, end, gap;
    unsigned tries; /* re-tries so far */
} spin;

static inline spin spin_start(corio_task *t)
{
    spin sp = {0, 0, 0, 0};
    /* Under the sim no other thread can fill or empty ch, and the clock
     * the spin reads is virtual: it would never end. */
    if (t && (t->loop->ready_head || t->loop->woken_head || (t->loop->caps & CORIO__CAP_SIM)))
        return sp;
    sp.now = corio__clock_ns();
    sp.end = sp.now + SPIN_NS;
    sp.gap = SPIN_GAP_NS;
    return sp;
}

static inline bool spin_more(spin *sp)
{
    if (!sp->end || sp->now >= sp->end)
        return false;
    uint64_t until = sp->now + sp->gap;
    do {
        for (int i = 0; i < 4; i++)
            cpu_relax();
        sp->now = corio__clock_ns();
    } while (sp->now < until);
    if (sp->gap < SPIN_GAP_MAX_NS)
        sp->gap *= 2;
    sp->tries++;
    return true;
}

/* Queue w on q (under mu, with the count already raised for it) and wait
 * until it is claimed or, for a task, interrupted.  Releases mu, then wakes
 * what the caller claimed on its way here. */
static int wait_linked(corio_channel *ch, ch_waiter *w, corio__list *q, corio_task *t, claimed *c)
{
    w->ch = ch;
    w->linked = true;
    w->is_task = t != NULL;
    w->result = 0;
    w->link.prev = w->link.next = NULL;
    corio__list_push_back(q, &w->link);
    if (t) {
        corio__rwake_arm(&w->rw);
        pthread_mutex_unlock(&ch->mu);
        release_claimed(c);
        return corio__suspend(ch_interrupted, w, w->sender ? "channel send" : "channel recv",
                              CORIO__NO_DEADLINE);
    }
    sem_init(&w->sem, 0, 0);
    pthread_mutex_unlock(&ch->mu);
    release_claimed(c);
    while (sem_wait(&w->sem) != 0)
        ; /* EINTR */
    sem_destroy(&w->sem);
    return w->result;
}

/* The most room a spinning sender waits for before it writes again. */
#ifndef SPIN_BATCH
#define SPIN_BATCH 256
#endif
/* Is there room for n more items?  Only a hint (the cell n - 1 after the
 * tail is free for it), for the spin: ring_push decides. */
static inline bool room_for(corio_channel *ch, size_t n)
{
    size_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    if (tail & ch->mark)
        return true;
    size_t pos = pos_add(ch, tail, n - 1);
    return atomic_load_explicit(&cell_at(ch, pos)->stamp, memory_order_relaxed) == pos;
}

static int __attribute__((noinline)) send_slow(corio_channel *ch, const void *src, corio_task *t)
{
    for (spin sp = spin_start(t); spin_more(&sp);) {
        if (atomic_load_explicit(&ch->send_waiting, memory_order_relaxed))
            break;
        if (!room_for(ch, ch->batch))
            continue;
        int r = ring_push(ch, src);
        if (r == CH_OK) {
            after_push(ch);
            return 0;
        }
        if (r == CH_CLOSED)
            return -ESHUTDOWN;
    }
    claimed c;
    claimed_init(&c);
    pthread_mutex_lock(&ch->mu);
    settle(ch, &c); /* senders already waiting go first */
    atomic_fetch_add_explicit(&ch->send_waiting, 1, memory_order_seq_cst);
    int r = CH_FULL;
    if (corio__list_empty(&ch->sendq)) {
        /* Registered first, then one more try (see the file comment). */
        atomic_thread_fence(memory_order_seq_cst);
        r = ring_push(ch, src);
    } /* else: queued behind the others, whose receivers will kick */
    if (r != CH_FULL) {
        atomic_fetch_sub_explicit(&ch->send_waiting, 1, memory_order_relaxed);
        if (r == CH_OK)
            settle(ch, &c); /* a receiver may wait for it */
        pthread_mutex_unlock(&ch->mu);
        release_claimed(&c);
        return r == CH_OK ? 0 : -ESHUTDOWN;
    }
    ch_waiter w;
    w.sender = true;
    w.buf = (void *)(uintptr_t)src;
    return wait_linked(ch, &w, &ch->sendq, t, &c);
}

/* Are n items ready?  A hint like room_for: the cell n - 1 after the head
 * holds its item (or the channel is closed). */
static inline bool items_for(corio_channel *ch, size_t n)
{
    size_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    size_t pos = pos_add(ch, head, n - 1);
    return atomic_load_explicit(&cell_at(ch, pos)->stamp, memory_order_relaxed) == pos + 1 ||
           atomic_load_explicit(&ch->closed, memory_order_relaxed);
}

/* How many of a receiver's re-tries wait for a batch of items; later ones
 * take what there is, so an item sent alone waits a few microseconds at
 * most (the sender's wait for room has no such bound: it holds its own
 * item). */
#ifndef SPIN_RECV_BATCH_TRIES
#define SPIN_RECV_BATCH_TRIES 2
#endif

static int __attribute__((noinline)) recv_slow(corio_channel *ch, void *dst, corio_task *t)
{
    for (spin sp = spin_start(t); spin_more(&sp);) {
        if (atomic_load_explicit(&ch->recv_waiting, memory_order_relaxed))
            break;
        if (sp.tries <= SPIN_RECV_BATCH_TRIES && !items_for(ch, ch->batch))
            continue;
        int r = ring_pop(ch, dst);
        if (r == CH_OK) {
            after_pop(ch);
            return 0;
        }
        if (r == CH_CLOSED)
            return -ESHUTDOWN;
    }
    claimed c;
    claimed_init(&c);
    pthread_mutex_lock(&ch->mu);
    settle(ch, &c); /* receivers already waiting go first */
    atomic_fetch_add_explicit(&ch->recv_waiting, 1, memory_order_seq_cst);
    int r = CH_EMPTY;
    if (corio__list_empty(&ch->recvq)) {
        atomic_thread_fence(memory_order_seq_cst);
        r = ring_pop(ch, dst);
    }
    if (r == CH_OK || r == CH_CLOSED) {
        atomic_fetch_sub_explicit(&ch->recv_waiting, 1, memory_order_relaxed);
        if (r == CH_OK)
            settle(ch, &c); /* a sender may wait for the room */
        pthread_mutex_unlock(&ch->mu);
        release_claimed(&c);
        return r == CH_OK ? 0 : -ESHUTDOWN;
    }
    ch_waiter w;
    w.sender = false;
    w.buf = dst;
    return wait_linked(ch, &w, &ch->recvq, t, &c);
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

corio_channel *corio_channel_new(size_t capacity, size_t item_size)
{
    size_t size = item_size ? item_size : sizeof(void *);
    /* Positions need a few bits above the index (the mark, the laps). */
    if (capacity == 0 || capacity > ((size_t)1 << 48) || size > ((size_t)1 << 48)) {
        errno = EINVAL;
        return NULL;
    }
    size_t stride = sizeof(atomic_size_t) + ((size + 7) & ~(size_t)7);
    size_t room = SIZE_MAX - sizeof(corio_channel) - CACHE_LINE;
    if (capacity > room / stride) {
        errno = ENOMEM;
        return NULL;
    }
    void *raw = corio__malloc(sizeof(corio_channel) + CACHE_LINE + capacity * stride);
    if (!raw) {
        errno = ENOMEM;
        return NULL;
    }
    corio_channel *ch = (corio_channel *)(((uintptr_t)raw + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1));
    memset(ch, 0, sizeof *ch);
    size_t mark = 1;
    while (mark < capacity + 1) /* room for index capacity in a stamp */
        mark <<= 1;
    atomic_init(&ch->tail, 0);
    atomic_init(&ch->head, 0);
    atomic_init(&ch->recv_waiting, 0);
    atomic_init(&ch->send_waiting, 0);
    atomic_init(&ch->closed, false);
    ch->cap = capacity;
    ch->mark = mark;
    ch->one_lap = mark << 1;
    ch->size = size;
    ch->stride = stride;
    ch->pointers = item_size == 0;
    ch->batch = capacity / 4 < SPIN_BATCH ? (capacity / 4 ? capacity / 4 : 1) : SPIN_BATCH;
    ch->cells = (unsigned char *)(ch + 1);
    ch->raw = raw;
    for (size_t i = 0; i < capacity; i++)
        atomic_init(&cell_at(ch, i)->stamp, i);
    pthread_mutex_init(&ch->mu, NULL);
    corio__list_init(&ch->recvq);
    corio__list_init(&ch->sendq);
    return ch;
}

void corio_channel_free(corio_channel *ch)
{
    if (!ch)
        return;
    CORIO__ASSERT(corio__list_empty(&ch->recvq) && corio__list_empty(&ch->sendq));
    pthread_mutex_destroy(&ch->mu);
    corio__free(ch->raw);
}

/* Who is calling: a task (checked for cancel and deadline first), a plain
 * thread (*t = NULL), or a loop's own context outside any task, which must
 * not block (-EPERM). */
static inline int caller(corio_task **t)
{
    corio_loop *l = corio__loop();
    *t = NULL;
    if (!l)
        return 0;
    if (CORIO__UNLIKELY(!l->current))
        return -EPERM;
    *t = l->current;
    return corio__check();
}

int corio_channel_send(corio_channel *ch, const void *item)
{
    if (CORIO__UNLIKELY(!ch) || (CORIO__UNLIKELY(!item) && !ch->pointers))
        return -EINVAL;
    const void *src = ch->pointers ? (const void *)&item : item;
    corio_task *t;
    int r = caller(&t);
    if (CORIO__UNLIKELY(r))
        return r;
    if (CORIO__LIKELY(!atomic_load_explicit(&ch->send_waiting, memory_order_relaxed))) {
        r = ring_push(ch, src);
        if (CORIO__LIKELY(r == CH_OK)) {
            after_push(ch);
            return 0;
        }
        if (r == CH_CLOSED)
            return -ESHUTDOWN;
    }
    return send_slow(ch, src, t);
}

int corio_channel_try_send(corio_channel *ch, const void *item)
{
    if (CORIO__UNLIKELY(!ch) || (CORIO__UNLIKELY(!item) && !ch->pointers))
        return -EINVAL;
    const void *src = ch->pointers ? (const void *)&item : item;
    int r;
    if (CORIO__LIKELY(!atomic_load_explicit(&ch->send_waiting, memory_order_relaxed))) {
        r = ring_push(ch, src);
        if (r == CH_OK)
            after_push(ch);
    } else {
        /* Waiting senders go first: never overtake them. */
        claimed c;
        claimed_init(&c);
        pthread_mutex_lock(&ch->mu);
        settle(ch, &c);
        r = corio__list_empty(&ch->sendq) ? ring_push(ch, src) : CH_FULL;
        if (r == CH_OK)
            settle(ch, &c);
        pthread_mutex_unlock(&ch->mu);
        release_claimed(&c);
    }
    return r == CH_OK ? 0 : r == CH_CLOSED ? -ESHUTDOWN : -EAGAIN;
}

int corio_channel_recv(corio_channel *ch, void *item)
{
    if (CORIO__UNLIKELY(!ch || !item))
        return -EINVAL;
    corio_task *t;
    int r = caller(&t);
    if (CORIO__UNLIKELY(r))
        return r;
    if (CORIO__LIKELY(!atomic_load_explicit(&ch->recv_waiting, memory_order_relaxed))) {
        r = ring_pop(ch, item);
        if (CORIO__LIKELY(r == CH_OK)) {
            after_pop(ch);
            return 0;
        }
        if (r == CH_CLOSED)
            return -ESHUTDOWN;
    }
    return recv_slow(ch, item, t);
}

int corio_channel_try_recv(corio_channel *ch, void *item)
{
    if (CORIO__UNLIKELY(!ch || !item))
        return -EINVAL;
    int r;
    if (CORIO__LIKELY(!atomic_load_explicit(&ch->recv_waiting, memory_order_relaxed))) {
        r = ring_pop(ch, item);
        if (r == CH_OK)
            after_pop(ch);
    } else {
        claimed c;
        claimed_init(&c);
        pthread_mutex_lock(&ch->mu);
        settle(ch, &c);
        r = corio__list_empty(&ch->recvq) ? ring_pop(ch, item) : CH_EMPTY;
        if (r == CH_OK)
            settle(ch, &c);
        pthread_mutex_unlock(&ch->mu);
        release_claimed(&c);
    }
    return r == CH_OK ? 0 : r == CH_CLOSED ? -ESHUTDOWN : -EAGAIN;
}

int corio_channel_close(corio_channel *ch)
{
    if (!ch)
        return -EINVAL;
    claimed c;
    claimed_init(&c);
    pthread_mutex_lock(&ch->mu);
    atomic_fetch_or_explicit(&ch->tail, ch->mark, memory_order_seq_cst);
    atomic_store_explicit(&ch->closed, true, memory_order_release);
    /* Waiting senders fail; waiting receivers get what is left, then
     * -ESHUTDOWN (those a send still in progress will feed wait for it). */
    settle(ch, &c);
    pthread_mutex_unlock(&ch->mu);
    release_claimed(&c);
    return 0;
}
