/*
 * The queue's private structure, shared by src/core/queue.c (FIFO and LIFO
 * rings, waiting, shutdown) and src/core/queue_heap.c (the PRIORITY heap).
 */
#ifndef CORIO_QUEUE_H
#define CORIO_QUEUE_H

#include "waitq.h"

#include <string.h>

struct corio_queue {
    /* Touched by every put and get first. */
    unsigned char *buf; /* item slots: a ring (FIFO, LIFO) or a heap (PRIORITY) */
    size_t head;        /* ring: slot of the oldest item */
    size_t len;         /* items stored */
    size_t slots;       /* items buf holds (PRIORITY: plus one scratch slot) */
    size_t limit;       /* capacity; SIZE_MAX when unbounded */
    size_t isz;         /* bytes per item; sizeof(void *) for pointer items */
    uint8_t kind;       /* corio_queue_kind */
    bool ptr_items;     /* item_size 0: items are the pointers themselves */
    bool shut;
    corio__waitq getters; /* parked only while len == 0 */
    corio__waitq putters; /* parked only while len == limit */
    size_t unfinished;    /* put and not yet task_done (Queue._unfinished_tasks) */
    corio__waitq joiners;
    /* PRIORITY only: the put order of the item in each heap slot, so equal
     * items come out in the order they went in. */
    uint64_t *seq;
    uint64_t next_seq;
    int (*compare)(const void *a, const void *b);
    void (*drop)(void *item);
};

/* Copy one item.  A word (pointer items, and values of that size) is one
 * load and store, not a call to memcpy. */
static inline void corio__queue_copy(const corio_queue *q, void *dst, const void *src)
{
    if (CORIO__LIKELY(q->isz == sizeof(void *)))
        memcpy(dst, src, sizeof(void *));
    else
        memcpy(dst, src, q->isz);
}

/* The item in slot as compare and drop take it: the pointer itself for
 * pointer items, else the address of the copy. */
static inline void *corio__queue_item_arg(const corio_queue *q, void *slot)
{
    return q->ptr_items ? *(void **)slot : slot;
}

/* Add the item at src to the heap (q->len < q->slots; the caller counts
 * it in q->len afterwards). */
void corio__queue_heap_push(corio_queue *q, const void *src);

/* Move the smallest item (the oldest of equals) into dst and remove it
 * (q->len > 0; counted out of q->len here). */
void corio__queue_heap_pop(corio_queue *q, void *dst);

#endif
