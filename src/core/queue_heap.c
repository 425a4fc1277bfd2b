/*
 * The PRIORITY queue's storage (asyncio.PriorityQueue): a binary min-heap
 * of item slots ordered by the user's compare, with a sequence number per
 * slot that breaks ties in put order, so equal items leave in the order
 * they came (Python gets this by putting (priority, count, item) tuples).
 *
 * Items are moved through a hole rather than swapped: the entering item
 * waits in the scratch slot past the last one while the items on its path
 * shift by one level, then lands once.  No allocation, no temporary on the
 * stack whatever item_size is.
 */
#include "queue.h"

static inline unsigned char *slot(const corio_queue *q, size_t i) { return q->buf + i * q->isz; }

/* Does the item in slot a go before the one in b? */
static inline bool before(const corio_queue *q, size_t a, size_t b)
{
    int c = q->compare(corio__queue_item_arg(q, slot(q, a)), corio__queue_item_arg(q, slot(q, b)));
    return c < 0 || (c == 0 && q->seq[a] < q->seq[b]);
}

static inline void move(corio_queue *q, size_t to, size_t from)
{
    corio__queue_copy(q, slot(q, to), slot(q, from));
    q->seq[to] = q->seq[from];
}

/* Settle the item in the scratch slot into the hole at i, moving smaller
 * items up over it on the way down.  n items are in the heap, counting
 * the hole. */
static void sift_down(corio_queue *q, size_t i, size_t n)
{
    size_t scratch = q->slots;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(q, c + 1, c))
            c++;
        if (!before(q, c, scratch))
            break;
        move(q, i, c);
        i = c;
    }
    move(q, i, scratch);
}

void corio__queue_heap_push(corio_queue *q, const void *src)
{
    size_t scratch = q->slots;
    corio__queue_copy(q, slot(q, scratch), src);
    q->seq[scratch] = q->next_seq++;
    size_t i = q->len;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(q, scratch, p))
            break;
        move(q, i, p);
        i = p;
    }
    move(q, i, scratch);
}

void corio__queue_heap_pop(corio_queue *q, void *dst)
{
    corio__queue_copy(q, dst, slot(q, 0));
    size_t n = --q->len;
    if (n == 0)
        return;
    /* The last leaf re-enters from the root. */
    move(q, q->slots, n);
    sift_down(q, 0, n);
}
