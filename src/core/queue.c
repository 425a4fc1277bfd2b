/*
 * Queues (asyncio.Queue, LifoQueue and PriorityQueue, with Python 3.13's
 * shutdown) between the tasks of one loop.
 *
 * Storage is allocated once: a ring of item slots for FIFO and LIFO (a
 * bounded queue gets all its slots up front, an unbounded one doubles its
 * ring when full) or a binary heap for PRIORITY (src/core/queue_heap.c), so
 * a put or get costs no allocation, only a copy of item_size bytes (pointer
 * items are copied as one word).
 *
 * Waiting getters and putters park in FIFO wait queues (src/core/waitq.h)
 * and items are handed over directly, so nothing is lost or stolen:
 *  - getters wait only while the queue is empty: a put then copies its
 *    item straight into the longest-waiting getter's destination and wakes
 *    it with 0.  A task calling try_get before that getter runs finds
 *    nothing to steal, and a getter cancelled after the hand-over still
 *    returns 0 with its item (the cancel stays pending for its next wait).
 *    For LIFO and PRIORITY the item handed over is the one a get would take
 *    anyway, since the queue was empty.
 *  - putters wait only while the queue is full: a get that frees a slot
 *    moves the longest-waiting putter's item into the queue (its memory is
 *    still the putter's, which has not returned) and wakes it with 0.
 *  - a waiter interrupted before anything was handed to it unlinks itself
 *    (waitq.h) and returns the reason with nothing taken or put.
 * The fast path of a FIFO pointer queue, the common case, makes no
 * indirect call.
 */
#include "queue.h"

#include <string.h>

/* An unbounded queue starts with this many bytes of slots (at least one
 * slot) and doubles from there. */
#define QUEUE_FIRST_BYTES 1024u

/* ------------------------------------------------------------------ */
/* Storage                                                             */
/* ------------------------------------------------------------------ */

/* The ring's slot i places after head (i < slots). */
static inline unsigned char *ring_at(const corio_queue *q, size_t i)
{
    size_t at = q->head + i;
    if (at >= q->slots)
        at -= q->slots;
    return q->buf + at * q->isz;
}

/* Bytes of a buffer of n slots (plus the heap's scratch slot and its
 * sequence numbers for PRIORITY), or 0 if that overflows. */
static size_t storage_bytes(size_t n, size_t isz, bool prio)
{
    if (prio) {
        if (n > SIZE_MAX - 1)
            return 0;
        n++; /* the scratch slot the heap sifts through */
    }
    if (n > SIZE_MAX / isz)
        return 0;
    size_t items = n * isz;
    if (!prio)
        return items;
    size_t off = (items + 7u) & ~(size_t)7u;
    if (off < items || n > (SIZE_MAX - off) / sizeof(uint64_t))
        return 0;
    return off + n * sizeof(uint64_t);
}

/* Point the heap's sequence array into a buffer of n slots. */
static inline void place_seq(corio_queue *q)
{
    if (q->kind == CORIO_QUEUE_PRIORITY)
        q->seq = (uint64_t *)(void *)(q->buf + (((q->slots + 1) * q->isz + 7u) & ~(size_t)7u));
}

/* Double an unbounded queue's storage, keeping its items in order.
 * Returns 0 or -ENOMEM (q unchanged). */
static int grow(corio_queue *q)
{
    bool prio = q->kind == CORIO_QUEUE_PRIORITY;
    size_t n = q->slots > SIZE_MAX / 2 ? 0 : q->slots * 2;
    size_t bytes = n ? storage_bytes(n, q->isz, prio) : 0;
    if (!bytes)
        return -ENOMEM;
    unsigned char *nb = corio__malloc(bytes);
    if (!nb)
        return -ENOMEM;
    if (prio) {
        memcpy(nb, q->buf, q->len * q->isz);
        uint64_t *nseq = (uint64_t *)(void *)(nb + (((n + 1) * q->isz + 7u) & ~(size_t)7u));
        memcpy(nseq, q->seq, q->len * sizeof(uint64_t));
    } else {
        /* The ring is full: its items run from head to the end, then from
         * the start up to head. */
        size_t first = q->slots - q->head;
        if (first > q->len)
            first = q->len;
        memcpy(nb, q->buf + q->head * q->isz, first * q->isz);
        memcpy(nb + first * q->isz, q->buf, (q->len - first) * q->isz);
    }
    corio__free(q->buf);
    q->buf = nb;
    q->slots = n;
    q->head = 0;
    place_seq(q);
    return 0;
}

/* Add the item at src to the storage (there is room under the bound).
 * Returns 0 or -ENOMEM (only an unbounded queue grows). */
static int store(corio_queue *q, const void *src)
{
    if (CORIO__UNLIKELY(q->len == q->slots)) {
        int r = grow(q);
        if (r)
            return r;
    }
    if (q->kind == CORIO_QUEUE_PRIORITY)
        corio__queue_heap_push(q, src);
    else
        corio__queue_copy(q, ring_at(q, q->len), src);
    q->len++;
    return 0;
}

/* Move the item a get takes next into dst (q is not empty). */
static inline void take(corio_queue *q, void *dst)
{
    if (CORIO__LIKELY(q->kind == CORIO_QUEUE_FIFO)) {
        corio__queue_copy(q, dst, q->buf + q->head * q->isz);
        if (++q->head == q->slots)
            q->head = 0;
        q->len--;
    } else if (q->kind == CORIO_QUEUE_LIFO) {
        corio__queue_copy(q, dst, ring_at(q, q->len - 1));
        q->len--;
    } else {
        corio__queue_heap_pop(q, dst);
    }
}

/* Remove one item from the storage without copying it anywhere and
 * return where it still lies (valid until the next put, which cannot come
 * while q is shut down).  For throwing items away. */
static unsigned char *discard_one(corio_queue *q)
{
    unsigned char *slot;
    if (q->kind == CORIO_QUEUE_FIFO) {
        slot = q->buf + q->head * q->isz;
        if (++q->head == q->slots)
            q->head = 0;
    } else {
        /* LIFO: the top; PRIORITY: the heap's last leaf, whose removal
         * leaves a valid heap. */
        slot = q->kind == CORIO_QUEUE_LIFO ? ring_at(q, q->len - 1) : q->buf + (q->len - 1) * q->isz;
    }
    q->len--;
    return slot;
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

corio_queue *corio_queue_new(const corio_queue_config *cfg)
{
    corio_queue_config dflt = {.kind = CORIO_QUEUE_FIFO};
    if (!cfg)
        cfg = &dflt;
    if ((unsigned)cfg->kind > CORIO_QUEUE_PRIORITY || (cfg->kind == CORIO_QUEUE_PRIORITY && !cfg->compare)) {
        errno = EINVAL;
        return NULL;
    }
    bool prio = cfg->kind == CORIO_QUEUE_PRIORITY;
    size_t isz = cfg->item_size ? cfg->item_size : sizeof(void *);
    size_t slots = cfg->capacity;
    if (!slots) {
        slots = QUEUE_FIRST_BYTES / isz;
        if (!slots)
            slots = 1;
    }
    size_t bytes = storage_bytes(slots, isz, prio);
    if (!bytes) {
        errno = EINVAL;
        return NULL;
    }
    corio_queue *q = corio__calloc(1, sizeof *q);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    q->buf = corio__malloc(bytes);
    if (!q->buf) {
        corio__free(q);
        errno = ENOMEM;
        return NULL;
    }
    q->slots = slots;
    q->limit = cfg->capacity ? cfg->capacity : SIZE_MAX;
    q->isz = isz;
    q->kind = (uint8_t)cfg->kind;
    q->ptr_items = cfg->item_size == 0;
    q->compare = cfg->compare;
    q->drop = cfg->drop;
    place_seq(q);
    corio__waitq_init(&q->getters);
    corio__waitq_init(&q->putters);
    corio__waitq_init(&q->joiners);
    return q;
}

void corio_queue_free(corio_queue *q)
{
    if (!q)
        return;
    /* Nobody may be waiting (the contract); should someone be, end their
     * waits instead of leaving them parked on freed memory: their frames
     * touch nothing of q once woken. */
    corio__waitq_wake_all(&q->getters, -ESHUTDOWN);
    corio__waitq_wake_all(&q->putters, -ESHUTDOWN);
    corio__waitq_wake_all(&q->joiners, -ESHUTDOWN);
    q->shut = true;
    while (q->drop && q->len)
        q->drop(corio__queue_item_arg(q, discard_one(q)));
    corio__free(q->buf);
    corio__free(q);
}

/* ------------------------------------------------------------------ */
/* Put and get                                                         */
/* ------------------------------------------------------------------ */

/* Put the item at src into a queue with room: straight to the longest
 * waiting getter if there is one (the queue is empty then), else into the
 * storage.  Returns 0 or -ENOMEM. */
static inline int put_room(corio_queue *q, const void *src)
{
    corio__waiter *w = corio__waitq_first(&q->getters);
    if (w) {
        corio__queue_copy(q, w->data, src);
        corio__waitq_unlink(w);
        corio__wake(w->task, 0);
    } else if (CORIO__LIKELY(q->kind != CORIO_QUEUE_PRIORITY && q->len < q->slots)) {
        corio__queue_copy(q, ring_at(q, q->len), src);
        q->len++;
    } else {
        int r = store(q, src);
        if (r)
            return r;
    }
    q->unfinished++;
    return 0;
}

/* After a get took an item from a full queue: move the longest waiting
 * putter's item into the freed slot and wake it with 0. */
static inline void admit_putter(corio_queue *q)
{
    corio__waiter *w = corio__waitq_first(&q->putters);
    if (CORIO__LIKELY(!w))
        return;
    /* A bounded queue never grows, so this cannot fail. */
    if (q->kind == CORIO_QUEUE_PRIORITY)
        corio__queue_heap_push(q, w->data);
    else
        corio__queue_copy(q, ring_at(q, q->len), w->data);
    q->len++;
    q->unfinished++;
    corio__waitq_unlink(w);
    corio__wake(w->task, 0);
}

/* The suspending put and get honour a cancellation or a passed deadline
 * before anything else, also when they would not have to wait, as every
 * suspending call does: a cancelled consumer draining a full queue stops
 * at its next get instead of holding the loop until the queue is empty.
 * (try_put / try_get never wait, so they do not check.)  Outside a task
 * there is nothing to interrupt. */
static inline int interrupted(void)
{
    corio_task *t = corio__current_task();
    return t ? corio__check_task(t) : 0;
}

/* The bytes a put copies in: for a pointer queue the pointer itself, i.e.
 * the parameter's own bytes (they stay put while the call waits), else the
 * caller's item (NULL when it is missing). */
static inline const void *put_source(const corio_queue *q, const void *const *item)
{
    return q->ptr_items ? (const void *)item : *item;
}

int corio_queue_put(corio_queue *q, const void *item)
{
    if (CORIO__UNLIKELY(!q))
        return -EINVAL;
    const void *src = put_source(q, &item);
    if (CORIO__UNLIKELY(!src))
        return -EINVAL;
    if (CORIO__UNLIKELY(q->shut))
        return -ESHUTDOWN;
    int r = interrupted();
    if (r)
        return r;
    if (CORIO__LIKELY(q->len < q->limit))
        return put_room(q, src);
    if (!corio__current_task())
        return -EPERM;
    corio__waiter w = {.data = (void *)src};
    /* 0: a get moved the item in; -ESHUTDOWN, or the interruption with
     * nothing put. */
    return corio__waitq_wait(&q->putters, &w, "queue put");
}

int corio_queue_try_put(corio_queue *q, const void *item)
{
    if (CORIO__UNLIKELY(!q))
        return -EINVAL;
    const void *src = put_source(q, &item);
    if (CORIO__UNLIKELY(!src))
        return -EINVAL;
    if (CORIO__UNLIKELY(q->shut))
        return -ESHUTDOWN;
    if (q->len >= q->limit)
        return -EAGAIN;
    return put_room(q, src);
}

int corio_queue_get(corio_queue *q, void *item)
{
    if (CORIO__UNLIKELY(!q || !item))
        return -EINVAL;
    int r = interrupted();
    if (r)
        return r;
    if (CORIO__LIKELY(q->len != 0)) {
        take(q, item);
        admit_putter(q);
        return 0;
    }
    if (q->shut)
        return -ESHUTDOWN;
    if (!corio__current_task())
        return -EPERM;
    corio__waiter w = {.data = item};
    /* 0: a put handed its item over into *item; -ESHUTDOWN, or the
     * interruption with nothing taken. */
    return corio__waitq_wait(&q->getters, &w, "queue get");
}

int corio_queue_try_get(corio_queue *q, void *item)
{
    if (CORIO__UNLIKELY(!q || !item))
        return -EINVAL;
    if (q->len == 0)
        return q->shut ? -ESHUTDOWN : -EAGAIN;
    take(q, item);
    admit_putter(q);
    return 0;
}

/* ------------------------------------------------------------------ */
/* task_done / join / shutdown                                         */
/* ------------------------------------------------------------------ */

/* One unfinished item fewer; the last wakes every joiner. */
static void finish_one(corio_queue *q)
{
    if (--q->unfinished == 0)
        corio__waitq_wake_all(&q->joiners, 0);
}

int corio_queue_task_done(corio_queue *q)
{
    if (!q)
        return -EINVAL;
    if (q->unfinished == 0)
        return -EOVERFLOW;
    finish_one(q);
    return 0;
}

int corio_queue_join(corio_queue *q)
{
    if (!q)
        return -EINVAL;
    int r = interrupted();
    if (r)
        return r;
    if (q->unfinished == 0)
        return 0;
    if (!corio__current_task())
        return -EPERM;
    corio__waiter w = {.data = NULL};
    return corio__waitq_wait(&q->joiners, &w, "queue join");
}

int corio_queue_shutdown(corio_queue *q, bool immediate)
{
    if (!q)
        return -EINVAL;
    q->shut = true;
    if (immediate) {
        /* One at a time, each out of the storage before drop sees it, so a
         * drop that calls back into q finds it consistent (and a put can
         * no longer reuse the slot: q is shut). */
        while (q->len) {
            unsigned char *slot = discard_one(q);
            if (q->drop)
                q->drop(corio__queue_item_arg(q, slot));
            if (q->unfinished)
                finish_one(q);
        }
    }
    /* Getters wait only on an empty queue, putters only on a full one: at
     * most one of the two lists has anyone in it. */
    corio__waitq_wake_all(&q->getters, -ESHUTDOWN);
    corio__waitq_wake_all(&q->putters, -ESHUTDOWN);
    return 0;
}

size_t corio_queue_size(const corio_queue *q) { return q ? q->len : 0; }
