/*
 * Task stacks: lazily committed mappings, a reuse pool, overflow detection.
 *
 * Every stack is anonymous memory mapped with MAP_NORESERVE|MAP_STACK and
 * never touched here except at its very top (and its canary), so a task that
 * sleeps with a shallow call chain costs one committed page however large
 * its stack is.  Stacks come in two kinds:
 *
 *  - GUARD: one mapping per stack with a PROT_NONE page below it.  An
 *    overflow faults at once; the SIGSEGV handler below (running on an
 *    alternate signal stack, since the task's own stack is exhausted) asks
 *    the core which task owns the address and dies with a message naming
 *    it.  The price is two kernel mappings (VMAs) per stack, and a process
 *    may have only vm.max_map_count (65530 by default) of them in total.
 *
 *  - CANARY: once guard stacks would use more than a quarter of
 *    vm.max_map_count (max_map_count/8 stacks, process-wide), stacks are
 *    carved 64 at a time from one mapping (a slab) and protected by a
 *    16-byte canary just below each stack's lo, checked (corio__stack_check)
 *    when its task switches out.  Detection is late and the overflow will
 *    have scribbled on the neighbouring stack, so a failed check is fatal.
 *
 * Canary placement and memory: putting the canary inside a stack's own
 * lowest page would commit that page for every task (8 KiB per sleeping
 * task instead of 4).  Instead slots in a slab are laid out back to back
 * and a stack's usable region ends 16 bytes below the next slot's lo, so the
 * canary of slot i+1 lives in the top page of slot i, which slot i's task
 * touches anyway.  With a slab full of live tasks each costs one page (plus
 * one header page per slab holding slot 0's canary).  Consequence: the top
 * page of a slot must never be discarded while its slab lives (it holds the
 * neighbour's canary), which the release path respects.
 *
 * Reuse: the pool keeps up to max_free stacks on LIFO free lists (one per
 * distinct size) so the most recently used, cache- and TLB-hot stack is
 * handed out next.  Stacks freed beyond that are unmapped (guard) or
 * returned to their slab with their deep pages discarded (canary); an empty
 * slab is unmapped.  A pool belongs to one thread (its loop); only the
 * guard-stack count is shared process-wide, because the map count is.
 *
 * Valgrind: every stack is registered with it for as long as it is mapped
 * (when <valgrind/valgrind.h> was there at build time; outside valgrind
 * the requests cost a few instructions).  Without that, memcheck takes a
 * switch to a task stack less than --max-stackframe away for the stack
 * pointer moving within one stack, and marks the memory in between as
 * dead, then reports every later access to it (other stacks, thread-local
 * storage) as invalid.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "arch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef VALGRIND_STACK_REGISTER
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#define SLAB_STACKS 64
#define CANARY_BYTES 16
#define MIN_STACK (16 * 1024)
#define ALTSTACK_SIZE (64 * 1024)

typedef struct stack_class stack_class;

typedef struct stack_slab {
    struct stack_slab *prev_all, *next_all;         /* pool->slabs */
    struct stack_slab *prev_partial, *next_partial; /* cls->partial: has free slots */
    stack_class *cls;
    char *base;
    size_t map_len;
    unsigned nfree;
    uint8_t free_idx[SLAB_STACKS]; /* free slots; the last is handed out next */
    corio__stack st[SLAB_STACKS];
} stack_slab;

/* All stacks of one mapped size S (page multiple).  Guard stacks map
 * PAGE + S; canary slots have stride S + PAGE too, so both kinds cost the
 * same address space and a canary stack gets PAGE - 16 bytes more. */
struct stack_class {
    stack_class *next;
    size_t S;
    corio__stack *free_head; /* reuse cache, LIFO */
    stack_slab *partial;
};

struct corio__stack_pool {
    size_t default_S;
    unsigned max_free, nfree;
    stack_class *classes;
    stack_slab *slabs;
};

static size_t g_page;
static uint64_t g_secret;
static long g_default_limit;
static _Atomic long g_guard_limit = -1;
static _Atomic long g_guard_count;
static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

static long read_max_map_count(void)
{
    char buf[32];
    long v = 65530;
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            long r = strtol(buf, NULL, 10);
            if (r > 0)
                v = r;
        }
        close(fd);
    }
    return v;
}

static void global_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    g_page = ps > 0 ? (size_t)ps : 4096;
    g_default_limit = read_max_map_count() / 8;
    /* The secret keeps a stale or attacker-chosen value from passing as a
     * canary; a weak fallback is fine (the canary mainly catches bugs). */
    if (getrandom(&g_secret, sizeof g_secret, GRND_NONBLOCK) != (ssize_t)sizeof g_secret)
        g_secret = (uint64_t)(uintptr_t)&g_secret * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    g_secret |= 1; /* never zero, which fresh memory would match */
}

/* Callers keep n <= CORIO__STACK_SIZE_MAX, so this cannot wrap to 0. */
static void valgrind_register(corio__stack *s)
{
    s->valgrind_id = VALGRIND_STACK_REGISTER((char *)s->lo, (char *)s->lo + s->size);
}

static size_t round_page(size_t n) { return (n + g_page - 1) & ~(g_page - 1); }

static long guard_limit(void)
{
    long l = atomic_load_explicit(&g_guard_limit, memory_order_relaxed);
    return l < 0 ? g_default_limit : l;
}

long corio__stack_set_guard_limit(long max_guard_stacks)
{
    pthread_once(&g_init_once, global_init);
    long old = atomic_exchange(&g_guard_limit, max_guard_stacks < 0 ? -1 : max_guard_stacks);
    return old < 0 ? g_default_limit : old;
}

/* ---- canary ---------------------------------------------------------- */

static void canary_write(const corio__stack *s)
{
    uint64_t *c = (uint64_t *)((char *)s->lo - CANARY_BYTES);
    c[0] = g_secret ^ (uint64_t)(uintptr_t)c;
    c[1] = ~c[0];
}

int corio__stack_check(const corio__stack *s)
{
    if (s->kind != CORIO__STACK_CANARY)
        return 1;
    const uint64_t *c = (const uint64_t *)((const char *)s->lo - CANARY_BYTES);
    uint64_t want = g_secret ^ (uint64_t)(uintptr_t)c;
    return c[0] == want && c[1] == ~want;
}

int corio__stack_in_guard(const corio__stack *s, const void *addr)
{
    uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)s->lo;
    return a < lo && a >= lo - g_page;
}

/* ---- pool ------------------------------------------------------------ */

corio__stack_pool *corio__stack_pool_new(size_t size, unsigned max_free)
{
    pthread_once(&g_init_once, global_init);
    if (size > CORIO__STACK_SIZE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    corio__stack_pool *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->default_S = round_page(size < MIN_STACK ? MIN_STACK : size);
    p->max_free = max_free;
    return p;
}

static stack_class *class_get(corio__stack_pool *p, size_t S, int create)
{
    for (stack_class *c = p->classes; c; c = c->next)
        if (c->S == S)
            return c;
    if (!create)
        return NULL;
    stack_class *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->S = S;
    c->next = p->classes;
    p->classes = c;
    return c;
}

static corio__stack *guard_new(size_t S)
{
    corio__stack *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    size_t len = g_page + S;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    if (m == MAP_FAILED) {
        free(s);
        return NULL;
    }
    if (mprotect(m, g_page, PROT_NONE) != 0) {
        int e = errno;
        munmap(m, len);
        free(s);
        errno = e;
        return NULL;
    }
    s->lo = m + g_page;
    s->size = S;
    s->kind = CORIO__STACK_GUARD;
    s->next_free = NULL;
    s->owner = NULL;
    valgrind_register(s);
    return s;
}

static void guard_release(corio__stack *s)
{
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
    munmap((char *)s->lo - g_page, g_page + s->size);
    free(s);
    atomic_fetch_sub_explicit(&g_guard_count, 1, memory_order_relaxed);
}

static void partial_push(stack_class *c, stack_slab *sl)
{
    sl->prev_partial = NULL;
    sl->next_partial = c->partial;
    if (c->partial)
        c->partial->prev_partial = sl;
    c->partial = sl;
}

static void partial_remove(stack_class *c, stack_slab *sl)
{
    if (sl->prev_partial)
        sl->prev_partial->next_partial = sl->next_partial;
    else
        c->partial = sl->next_partial;
    if (sl->next_partial)
        sl->next_partial->prev_partial = sl->prev_partial;
}

static stack_slab *slab_new(corio__stack_pool *p, stack_class *c)
{
    stack_slab *sl = calloc(1, sizeof *sl);
    if (!sl)
        return NULL;
    size_t stride = c->S + g_page;
    sl->map_len = g_page + SLAB_STACKS * stride;
    sl->base = mmap(NULL, sl->map_len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (sl->base == MAP_FAILED) {
        free(sl);
        return NULL;
    }
    sl->cls = c;
    for (unsigned i = 0; i < SLAB_STACKS; i++) {
        corio__stack *s = &sl->st[i];
        s->lo = sl->base + g_page + i * stride;
        s->size = stride - CANARY_BYTES;
        s->kind = CORIO__STACK_CANARY;
        s->owner = sl;
        valgrind_register(s);
        /* Hand out slot 0 first: slot i+1's canary then lands in the top
         * page of the already-live slot i. */
        sl->free_idx[i] = (uint8_t)(SLAB_STACKS - 1 - i);
    }
    sl->nfree = SLAB_STACKS;
    sl->prev_all = NULL;
    sl->next_all = p->slabs;
    if (p->slabs)
        p->slabs->prev_all = sl;
    p->slabs = sl;
    partial_push(c, sl);
    return sl;
}

static void slab_free(corio__stack_pool *p, stack_slab *sl)
{
    for (unsigned i = 0; i < SLAB_STACKS; i++)
        VALGRIND_STACK_DEREGISTER(sl->st[i].valgrind_id);
    munmap(sl->base, sl->map_len);
    if (sl->prev_all)
        sl->prev_all->next_all = sl->next_all;
    else
        p->slabs = sl->next_all;
    if (sl->next_all)
        sl->next_all->prev_all = sl->prev_all;
    free(sl);
}

static corio__stack *canary_new(corio__stack_pool *p, stack_class *c)
{
    stack_slab *sl = c->partial;
    if (!sl && !(sl = slab_new(p, c)))
        return NULL;
    corio__stack *s = &sl->st[sl->free_idx[--sl->nfree]];
    if (sl->nfree == 0)
        partial_remove(c, sl);
    canary_write(s);
    return s;
}

static void canary_release(corio__stack_pool *p, corio__stack *s)
{
    stack_slab *sl = s->owner;
    stack_class *c = sl->cls;
    /* Give back what the task dirtied below its top page; the top page
     * stays because it holds the next slot's canary. */
    size_t deep = (s->size + CANARY_BYTES) - g_page;
    madvise(s->lo, deep, MADV_DONTNEED);
    if (sl->nfree == 0)
        partial_push(c, sl);
    sl->free_idx[sl->nfree++] = (uint8_t)(s - sl->st);
    if (sl->nfree == SLAB_STACKS) {
        partial_remove(c, sl);
        slab_free(p, sl);
    }
}

corio__stack *corio__stack_get(corio__stack_pool *p, size_t size)
{
    if (size > CORIO__STACK_SIZE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    size_t S = size ? round_page(size < MIN_STACK ? MIN_STACK : size) : p->default_S;
    stack_class *c = class_get(p, S, 1);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    corio__stack *s = c->free_head;
    if (s) {
        c->free_head = s->next_free;
        s->next_free = NULL;
        p->nfree--;
        return s;
    }
    if (atomic_fetch_add_explicit(&g_guard_count, 1, memory_order_relaxed) < guard_limit()) {
        s = guard_new(S);
        if (s)
            return s;
        long n = atomic_fetch_sub_explicit(&g_guard_count, 1, memory_order_relaxed) - 1;
        if (errno != ENOMEM)
            return NULL;
        /* ENOMEM from mmap/mprotect usually means the map count is spent
         * (other code holds more mappings than the budget assumed): stop
         * trying guard stacks beyond the current count, and try a slab,
         * which needs far fewer mappings. */
        atomic_store_explicit(&g_guard_limit, n, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&g_guard_count, 1, memory_order_relaxed);
    }
    s = canary_new(p, c);
    if (!s && errno != ENOMEM)
        errno = ENOMEM;
    return s;
}

void corio__stack_put(corio__stack_pool *p, corio__stack *s)
{
    size_t S = s->kind == CORIO__STACK_GUARD ? s->size : ((stack_slab *)s->owner)->cls->S;
    stack_class *c = class_get(p, S, 0);
    if (c && p->nfree < p->max_free) {
        s->next_free = c->free_head;
        c->free_head = s;
        p->nfree++;
        return;
    }
    if (s->kind == CORIO__STACK_GUARD)
        guard_release(s);
    else
        canary_release(p, s);
}

void corio__stack_pool_free(corio__stack_pool *p)
{
    if (!p)
        return;
    stack_class *c = p->classes;
    while (c) {
        for (corio__stack *s = c->free_head, *n; s; s = n) {
            n = s->next_free;
            if (s->kind == CORIO__STACK_GUARD)
                guard_release(s);
        }
        stack_class *n = c->next;
        free(c);
        c = n;
    }
    /* Slabs go whole, including any stack a caller failed to put back. */
    while (p->slabs)
        slab_free(p, p->slabs);
    free(p);
}

/* ---- overflow reporting ----------------------------------------------- */

static struct sigaction g_prev_segv;
static pthread_key_t g_altstack_key;
static __thread int t_altstack_ready;

static size_t fmt_u(char *out, size_t v)
{
    char tmp[24];
    size_t n = 0, i = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        out[i++] = tmp[--n];
    return i;
}

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    size_t size = 0;
    const char *name = corio__stack_owner_name(si->si_addr, &size);
    if (name) {
        char msg[256], num[24];
        size_t n = 0, cap = sizeof msg - 1;
        char nm[72];
        size_t k = 0;
        while (name[k] && k < 64) {
            nm[k] = name[k];
            k++;
        }
        nm[k] = 0;
        num[fmt_u(num, size)] = 0;
        n = append(msg, n, cap, "corio: stack overflow in task '");
        n = append(msg, n, cap, nm);
        n = append(msg, n, cap, "' (stack size ");
        n = append(msg, n, cap, num);
        n = append(msg, n, cap, " bytes)\n");
        ssize_t w = write(2, msg, n);
        (void)w;
        abort();
    }
    /* Not ours: hand it on.  For SIG_DFL restoring the default and
     * returning re-executes the faulting instruction, which then kills the
     * process with the usual SIGSEGV and core dump. */
    if (g_prev_segv.sa_flags & SA_SIGINFO) {
        if (g_prev_segv.sa_sigaction) {
            g_prev_segv.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (g_prev_segv.sa_handler != SIG_DFL && g_prev_segv.sa_handler != SIG_IGN) {
        g_prev_segv.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGSEGV, &dfl, NULL);
    /* A SIGSEGV sent with kill() is not re-raised by returning; raise it
     * (it stays blocked, hence pending, until this handler returns). */
    if (si->si_code <= 0)
        raise(sig);
}

static void altstack_destroy(void *base)
{
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(base, ALTSTACK_SIZE + g_page);
}

static void handler_init(void)
{
    pthread_once(&g_init_once, global_init);
    pthread_key_create(&g_altstack_key, altstack_destroy);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
}

void corio__stack_overflow_handler_install(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, handler_init);
    if (t_altstack_ready)
        return;
    t_altstack_ready = 1;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return; /* someone (ASan, the application) already gave us one */
    /* Guard page below so a handler bug faults instead of corrupting. */
    size_t len = ALTSTACK_SIZE + g_page;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    if (m == MAP_FAILED)
        return; /* overflows will then die by plain SIGSEGV */
    mprotect(m, g_page, PROT_NONE);
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = m + g_page;
    ss.ss_size = ALTSTACK_SIZE;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(m, len);
        return;
    }
    pthread_setspecific(g_altstack_key, m);
}
