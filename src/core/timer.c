/*
 * Timers: a 4-ary min-heap of armed timers keyed on their absolute expiry.
 *
 * Every sleeping task and every task with a deadline owns one embedded timer,
 * so the heap must stay cheap with 100k entries: insert, remove and re-arm
 * are O(log4 n) and touch half as many levels as a binary heap, and each
 * timer remembers its slot so removal needs no search.  Timers never
 * allocate except to grow the heap array (amortised, and never shrinks).
 */
#include "internal.h"

#include <stdlib.h>

#define HEAP_ARITY 4

void corio__timer_init(corio__timer *t, corio__timer_fn fire)
{
    t->when = 0;
    t->heap_index = UINT32_MAX;
    t->fire = fire;
}

static inline void heap_place(corio__heap *h, uint32_t i, corio__timer *t)
{
    h->items[i] = t;
    t->heap_index = i;
}

static void sift_up(corio__heap *h, uint32_t i)
{
    corio__timer *t = h->items[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / HEAP_ARITY;
        if (h->items[parent]->when <= t->when)
            break;
        heap_place(h, i, h->items[parent]);
        i = parent;
    }
    heap_place(h, i, t);
}

static void sift_down(corio__heap *h, uint32_t i)
{
    corio__timer *t = h->items[i];
    for (;;) {
        uint32_t first = i * HEAP_ARITY + 1;
        if (first >= h->len)
            break;
        uint32_t best = first;
        uint32_t end = first + HEAP_ARITY < h->len ? first + HEAP_ARITY : h->len;
        for (uint32_t c = first + 1; c < end; c++)
            if (h->items[c]->when < h->items[best]->when)
                best = c;
        if (h->items[best]->when >= t->when)
            break;
        heap_place(h, i, h->items[best]);
        i = best;
    }
    heap_place(h, i, t);
}

int corio__timer_arm(corio_loop *l, corio__timer *t, uint64_t when)
{
    corio__heap *h = &l->timers;
    CORIO__ASSERT(t->fire != NULL);
    if (corio__timer_armed(t)) {
        CORIO__ASSERT(t->heap_index < h->len && h->items[t->heap_index] == t);
        uint64_t old = t->when;
        t->when = when;
        if (when < old)
            sift_up(h, t->heap_index);
        else
            sift_down(h, t->heap_index);
        return 0;
    }
    if (h->len == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        corio__timer **items = corio__realloc(h->items, cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    t->when = when;
    h->items[h->len] = t;
    t->heap_index = h->len++;
    sift_up(h, t->heap_index);
    return 0;
}

void corio__timer_disarm(corio_loop *l, corio__timer *t)
{
    corio__heap *h = &l->timers;
    if (!corio__timer_armed(t))
        return;
    CORIO__ASSERT(t->heap_index < h->len && h->items[t->heap_index] == t);
    uint32_t i = t->heap_index;
    t->heap_index = UINT32_MAX;
    corio__timer *last = h->items[--h->len];
    if (i == h->len)
        return;
    heap_place(h, i, last);
    if (i > 0 && h->items[(i - 1) / HEAP_ARITY]->when > last->when)
        sift_up(h, i);
    else
        sift_down(h, i);
}

/* Fire every timer due at or before now, earliest first.  A fired timer is
 * disarmed before its callback so the callback may re-arm it. */
void corio__timers_run(corio_loop *l, uint64_t now)
{
    corio__heap *h = &l->timers;
    while (h->len && h->items[0]->when <= now) {
        corio__timer *t = h->items[0];
        CORIO__ASSERT(t->heap_index == 0);
        corio__timer_disarm(l, t);
        t->fire(t);
    }
}

/* Nanoseconds until the next timer fires (0 if one is due), or UINT64_MAX
 * when none is armed. */
uint64_t corio__timers_next(corio_loop *l, uint64_t now)
{
    corio__heap *h = &l->timers;
    if (!h->len)
        return UINT64_MAX;
    uint64_t when = h->items[0]->when;
    return when <= now ? 0 : when - now;
}
