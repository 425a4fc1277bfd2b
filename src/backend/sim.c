/*
 * The sim backend's world: everything one simulation run shares, and the
 * backend ops that put it under the loop (contract in sim.h and in
 * include/corio/sim.h).
 *
 * The loop asks a backend for completions and blocks until the next timer;
 * here, "blocking" is the moment to move the virtual clock: a poll first
 * runs every event already due, and only if it may wait and nothing is
 * due does it jump the clock to the next event or to the timer the loop
 * waits for, whichever comes first.  Time therefore moves only when every
 * task waits, and never further than the next thing that can happen.
 * pending() counts scheduled events, not parked operations: an operation
 * nobody can ever complete (a receive on a connection whose peer waits
 * too) is a deadlock of the simulated world, and the loop reports it as
 * one.
 *
 * One generator (xoshiro256**, seeded through splitmix64) decides the
 * order of ready tasks (the pick hook), latencies and every fault.  The
 * trace hashes each event's kind, host, numbers and text, never an
 * address, and keeps the last ones in a ring for the failure report.
 */
#include "sim.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define START_NS 1000000000000ull   /* virtual boot time: 1000 s, far from 0 */
#define REALTIME_BASE 1767225600ull /* 2026-01-01T00:00:00Z, the date a run's wall clock starts at */
#define TEXT_MAX 120
#define MAX_EVENTS_PER_POLL 4096

typedef struct sim_event {
    uint64_t when, seq;
    corio__sim_event_fn fn; /* NULL: forgotten */
    void *arg;
    uint64_t a;
} sim_event;

typedef struct trace_rec {
    uint64_t now, a, b;
    uint32_t kind, host;
    char text[TEXT_MAX + 1];
} trace_rec;

struct corio__sim {
    corio_loop *loop;
    uint64_t rng[4];
    uint64_t seed;
    uint64_t now;
    corio_sim_faults faults;
    corio_sim_report *report;
    bool quiet, failed;
    bool trace_all; /* CORIO_SIM_TRACE=1: print every event as it happens */
    unsigned trace_tail;
    /* Event queue: a binary heap on (when, seq). */
    sim_event *heap;
    size_t nheap, cap_heap, live_events;
    uint64_t next_seq;
    /* Trace. */
    uint64_t hash, nevents, nfaults;
    trace_rec *ring;
    size_t ring_cap;
    /* Hosts (index = id) and virtual fds (index = fd - CORIO__SIM_FD_BASE). */
    corio__sim_host **hosts;
    unsigned nhosts;
    corio__sim_fd *fds;
    size_t nfds, cap_fds, fd_hint;
};

/* ------------------------------------------------------------------ */
/* Generator                                                           */
/* ------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t corio__sim_rand(corio__sim *w)
{
    uint64_t *s = w->rng;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

uint64_t corio__sim_below(corio__sim *w, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Lemire's multiply-shift; the tiny bias is harmless here, and it
     * draws exactly one number, which keeps traces easy to follow. */
    return (uint64_t)(((unsigned __int128)corio__sim_rand(w) * n) >> 64);
}

bool corio__sim_chance(corio__sim *w, double p)
{
    if (p <= 0)
        return false;
    if (p >= 1)
        return true;
    return (double)(corio__sim_rand(w) >> 11) * 0x1.0p-53 < p;
}

bool corio__sim_fault(corio__sim *w, double p, const char *what, uint64_t a)
{
    if (!corio__sim_chance(w, p))
        return false;
    w->nfaults++;
    corio__sim_trace(w, CORIO__SIM_EV_FAULT, what, a, 0);
    return true;
}

const corio_sim_faults *corio__sim_faults(corio__sim *w) { return &w->faults; }

uint64_t corio__sim_latency(corio__sim *w)
{
    if (!w->faults.latency_max_us)
        return 0;
    return corio__sim_below(w, (uint64_t)w->faults.latency_max_us * 1000 + 1);
}

/* ------------------------------------------------------------------ */
/* Trace                                                               */
/* ------------------------------------------------------------------ */

static inline uint64_t mix(uint64_t h, uint64_t x)
{
    h ^= x;
    h *= 0x100000001b3ull;
    return h ^ (h >> 29);
}

static unsigned current_host_id(corio__sim *w)
{
    corio_task *t = w->loop->current;
    return t ? t->sim_host : 0;
}

static void print_rec(corio__sim *w, const trace_rec *r);

void corio__sim_trace(corio__sim *w, int kind, const char *text, uint64_t a, uint64_t b)
{
    unsigned host = current_host_id(w);
    uint64_t h = mix(w->hash, (uint64_t)kind << 32 | host);
    h = mix(h, w->now);
    h = mix(h, a);
    h = mix(h, b);
    trace_rec *r = &w->ring[w->nevents % w->ring_cap];
    r->now = w->now;
    r->a = a;
    r->b = b;
    r->kind = (uint32_t)kind;
    r->host = host;
    size_t n = 0;
    if (text) {
        for (; n < TEXT_MAX && text[n]; n++)
            h = mix(h, (unsigned char)text[n]);
        memcpy(r->text, text, n);
    }
    r->text[n] = 0;
    w->hash = h;
    w->nevents++;
    if (CORIO__UNLIKELY(w->trace_all))
        print_rec(w, r);
}

static const char *kind_name(uint32_t k)
{
    static const char *names[] = {"?",     "run", "clock", "submit", "done",
                                  "fault", "net", "disk",  "host",   "user"};
    return k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static void print_rec(corio__sim *w, const trace_rec *r)
{
    const char *hname = r->host < w->nhosts ? w->hosts[r->host]->name : "?";
    if (r->kind == CORIO__SIM_EV_USER) /* the program's own line: its numbers are always 0 */
        fprintf(stderr, "  %10.6f %-6s %-5s %s\n", (double)(r->now - START_NS) / 1e9, hname,
                kind_name(r->kind), r->text);
    else
        fprintf(stderr, "  %10.6f %-6s %-5s %s%s%llu %llu\n", (double)(r->now - START_NS) / 1e9, hname,
                kind_name(r->kind), r->text, r->text[0] ? " " : "", (unsigned long long)r->a,
                (unsigned long long)r->b);
}

static void print_tail(corio__sim *w)
{
    uint64_t n = w->nevents < w->trace_tail ? w->nevents : w->trace_tail;
    if (n > w->ring_cap)
        n = w->ring_cap;
    fprintf(stderr, "corio: sim seed %llu: last %llu of %llu events:\n", (unsigned long long)w->seed,
            (unsigned long long)n, (unsigned long long)w->nevents);
    for (uint64_t i = w->nevents - n; i < w->nevents; i++)
        print_rec(w, &w->ring[i % w->ring_cap]);
}

/* ------------------------------------------------------------------ */
/* Event queue                                                         */
/* ------------------------------------------------------------------ */

static inline bool ev_before(const sim_event *x, const sim_event *y)
{
    return x->when < y->when || (x->when == y->when && x->seq < y->seq);
}

static void heap_up(sim_event *h, size_t i)
{
    sim_event e = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static void heap_down(sim_event *h, size_t n, size_t i)
{
    sim_event e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && ev_before(&h[c + 1], &h[c]))
            c++;
        if (!ev_before(&h[c], &e))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

uint64_t corio__sim_now(corio__sim *w) { return w->now; }

int corio__sim_at(corio__sim *w, uint64_t delay_ns, corio__sim_event_fn fn, void *arg, uint64_t a)
{
    if (w->nheap == w->cap_heap) {
        size_t cap = w->cap_heap ? w->cap_heap * 2 : 256;
        sim_event *h = corio__realloc(w->heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        w->heap = h;
        w->cap_heap = cap;
    }
    sim_event *e = &w->heap[w->nheap];
    e->when = w->now + delay_ns;
    e->seq = w->next_seq++;
    e->fn = fn;
    e->arg = arg;
    e->a = a;
    heap_up(w->heap, w->nheap++);
    w->live_events++;
    return 0;
}

void corio__sim_forget(corio__sim *w, void *arg)
{
    for (size_t i = 0; i < w->nheap; i++) {
        if (w->heap[i].fn && w->heap[i].arg == arg) {
            w->heap[i].fn = NULL;
            w->live_events--;
        }
    }
}

void corio__sim_complete(corio__sim *w, corio__op *op, int32_t res)
{
    corio__sim_trace(w, CORIO__SIM_EV_DONE, NULL, (uint64_t)(uint32_t)op->fd,
                     (uint64_t)op->kind << 32 | (uint32_t)res);
    corio__op_complete(op, res);
}

/* ------------------------------------------------------------------ */
/* Hosts                                                               */
/* ------------------------------------------------------------------ */

corio__sim_host *corio__sim_host_get(corio__sim *w, unsigned id)
{
    return id < w->nhosts ? w->hosts[id] : NULL;
}

corio__sim_host *corio__sim_host_now(corio__sim *w) { return w->hosts[current_host_id(w)]; }

corio__sim_host *corio__sim_host_by_addr(corio__sim *w, corio__sim_host *from, uint32_t addr)
{
    if (addr == htonl(INADDR_LOOPBACK))
        return from;
    for (unsigned i = 1; i < w->nhosts; i++)
        if (w->hosts[i]->addr.s_addr == addr)
            return w->hosts[i];
    return NULL;
}

corio__sim_host *corio__sim_host_by_name(corio__sim *w, corio__sim_host *from, const char *name)
{
    if (!strcmp(name, "localhost"))
        return from;
    for (unsigned i = 1; i < w->nhosts; i++)
        if (!strcmp(w->hosts[i]->name, name))
            return w->hosts[i];
    return NULL;
}

static corio__sim_host *host_add(corio__sim *w, const char *name, struct in_addr addr)
{
    if (w->nhosts == CORIO__SIM_MAX_HOSTS) {
        errno = EINVAL;
        return NULL;
    }
    corio__sim_host **hs = corio__realloc(w->hosts, (w->nhosts + 1) * sizeof *hs);
    if (!hs)
        return NULL;
    w->hosts = hs;
    corio__sim_host *h = corio__calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->id = w->nhosts;
    snprintf(h->name, sizeof h->name, "%s", name);
    h->addr = addr;
    w->hosts[w->nhosts++] = h;
    return h;
}

/* ------------------------------------------------------------------ */
/* Virtual fds                                                         */
/* ------------------------------------------------------------------ */

corio__sim *corio__sim_world(void)
{
    corio_loop *l = corio__tls_loop;
    return l && (l->caps & CORIO__CAP_SIM) ? l->backend_data : NULL;
}

corio__sim_fd *corio__sim_fd_get(corio__sim *w, int fd)
{
    if (!w || fd < CORIO__SIM_FD_BASE)
        return NULL;
    size_t i = (size_t)(fd - CORIO__SIM_FD_BASE);
    return i < w->nfds && w->fds[i].ops ? &w->fds[i] : NULL;
}

static int fd_slot(corio__sim *w, size_t min)
{
    size_t i = min > w->fd_hint ? min : w->fd_hint;
    for (; i < w->nfds; i++)
        if (!w->fds[i].ops)
            break;
    if (i >= 1u << 20)
        return -EMFILE;
    if (i >= w->cap_fds) {
        size_t cap = w->cap_fds ? w->cap_fds * 2 : 64;
        while (cap <= i)
            cap *= 2;
        corio__sim_fd *f = corio__realloc(w->fds, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        memset(f + w->cap_fds, 0, (cap - w->cap_fds) * sizeof *f);
        w->fds = f;
        w->cap_fds = cap;
    }
    if (i >= w->nfds)
        w->nfds = i + 1;
    return (int)i;
}

int corio__sim_fd_new(corio__sim *w, const corio__sim_fd_ops *ops, void *obj, int status_flags)
{
    int i = fd_slot(w, 0);
    if (i < 0)
        return i;
    corio__sim_fd *f = &w->fds[i];
    f->ops = ops;
    f->obj = obj;
    f->host = current_host_id(w);
    f->status_flags = status_flags;
    f->fd_flags = FD_CLOEXEC;
    return CORIO__SIM_FD_BASE + i;
}

int corio__sim_fd_dup(corio__sim *w, int fd, int min_fd)
{
    corio__sim_fd *src = corio__sim_fd_get(w, fd);
    if (!src)
        return -EBADF;
    size_t min = min_fd > CORIO__SIM_FD_BASE ? (size_t)(min_fd - CORIO__SIM_FD_BASE) : 0;
    int i = fd_slot(w, min);
    if (i < 0)
        return i;
    src = corio__sim_fd_get(w, fd); /* the table may have moved */
    w->fds[i] = *src;
    return CORIO__SIM_FD_BASE + i;
}

/* Release slot i; closes its object when no other slot refers to it. */
static int fd_release(corio__sim *w, size_t i)
{
    corio__sim_fd f = w->fds[i];
    memset(&w->fds[i], 0, sizeof w->fds[i]);
    if (i < w->fd_hint)
        w->fd_hint = i;
    for (size_t j = 0; j < w->nfds; j++)
        if (w->fds[j].ops && w->fds[j].obj == f.obj)
            return 0;
    return f.ops->close ? f.ops->close(w, f.obj) : 0;
}

/* ------------------------------------------------------------------ */
/* The generic simulated calls of src/io/sys.h                         */
/* ------------------------------------------------------------------ */

static int fail(int err)
{
    errno = err;
    return -1;
}

int corio__simsys_close(int fd)
{
    corio__sim *w = corio__sim_world();
    if (!corio__sim_fd_get(w, fd))
        return fail(EBADF);
    int r = fd_release(w, (size_t)(fd - CORIO__SIM_FD_BASE));
    return r < 0 ? fail(-r) : 0;
}

int corio__simsys_fcntl(int fd, int cmd, int arg)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    if (!f)
        return fail(EBADF);
    switch (cmd) {
    case F_GETFL:
        return f->status_flags;
    case F_SETFL:
        f->status_flags = (f->status_flags & O_ACCMODE) | (arg & (O_NONBLOCK | O_APPEND));
        return 0;
    case F_GETFD:
        return f->fd_flags;
    case F_SETFD:
        f->fd_flags = arg & FD_CLOEXEC;
        return 0;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = corio__sim_fd_dup(w, fd, arg);
        if (r < 0)
            return fail(-r);
        corio__sim_fd_get(w, r)->fd_flags = cmd == F_DUPFD_CLOEXEC ? FD_CLOEXEC : 0;
        return r;
    }
    default:
        return fail(EINVAL);
    }
}

int corio__simsys_fstat(int fd, struct stat *st)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    if (!f || !f->ops->stat)
        return fail(EBADF);
    memset(st, 0, sizeof *st);
    int r = f->ops->stat(w, f->obj, st);
    return r < 0 ? fail(-r) : 0;
}

ssize_t corio__simsys_read(int fd, void *buf, size_t n)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    if (!f)
        return fail(EBADF);
    if (!f->ops->read)
        return fail(EINVAL);
    ssize_t r = f->ops->read(w, f->obj, buf, n);
    return r < 0 ? fail((int)-r) : r;
}

ssize_t corio__simsys_write(int fd, const void *buf, size_t n)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    if (!f)
        return fail(EBADF);
    if (!f->ops->write)
        return fail(EINVAL);
    ssize_t r = f->ops->write(w, f->obj, buf, n);
    return r < 0 ? fail((int)-r) : r;
}

int corio__simsys_realtime(struct timespec *ts)
{
    corio__sim *w = corio__sim_world();
    uint64_t ns = w ? w->now - START_NS : 0;
    ts->tv_sec = (time_t)(REALTIME_BASE + ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Backend ops                                                         */
/* ------------------------------------------------------------------ */

static bool path_kind(int kind)
{
    return kind == CORIO__OP_OPENAT || kind == CORIO__OP_STATX || kind == CORIO__OP_UNLINKAT ||
           kind == CORIO__OP_RENAMEAT || kind == CORIO__OP_MKDIRAT;
}

static int sim_submit(corio_loop *l, corio__op *op)
{
    corio__sim *w = l->backend_data;
    corio__sim_trace(w, CORIO__SIM_EV_SUBMIT, NULL, (uint64_t)(uint32_t)op->fd,
                     (uint64_t)op->kind << 32 | (op->len > UINT32_MAX ? UINT32_MAX : op->len));
    int r;
    corio__sim_fd *f = corio__sim_fd_get(w, op->fd);
    if (path_kind(op->kind) && op->fd == AT_FDCWD) {
        r = corio__sim_disk_submit_path(w, op);
    } else if (f && f->ops->submit) {
        r = f->ops->submit(w, f->obj, op);
    } else {
        /* A real fd (stdin, a user's fd), a closed virtual one, or a kind
         * the fd's module does not simulate: nothing outside the
         * simulation may take part in a run. */
        op->res = f || op->fd >= CORIO__SIM_FD_BASE ? (f ? -EOPNOTSUPP : -EBADF) : -EOPNOTSUPP;
        r = 1;
    }
    if (r == 1)
        corio__sim_trace(w, CORIO__SIM_EV_DONE, NULL, (uint64_t)(uint32_t)op->fd,
                         (uint64_t)op->kind << 32 | (uint32_t)op->res);
    return r;
}

static void sim_cancel(corio_loop *l, corio__op *op)
{
    corio__sim *w = l->backend_data;
    corio__sim_fd *f = corio__sim_fd_get(w, op->fd);
    if (f && f->ops->cancel) {
        f->ops->cancel(w, f->obj, op);
        return;
    }
    /* A pending path op: the disk finishes those from an event of its own
     * and needs no cancel (disk work is never left waiting). */
}

static sim_event heap_pop(corio__sim *w)
{
    sim_event e = w->heap[0];
    w->heap[0] = w->heap[--w->nheap];
    if (w->nheap)
        heap_down(w->heap, w->nheap, 0);
    return e;
}

/* Drop forgotten events from the top, so the head is a real one. */
static void heap_trim(corio__sim *w)
{
    while (w->nheap && !w->heap[0].fn)
        (void)heap_pop(w);
}

static void advance(corio__sim *w, uint64_t to)
{
    if (to <= w->now)
        return;
    w->now = to;
    corio__sim_trace(w, CORIO__SIM_EV_CLOCK, NULL, to - START_NS, 0);
}

static int sim_poll(corio_loop *l, uint64_t timeout_ns)
{
    corio__sim *w = l->backend_data;
    heap_trim(w);
    if (timeout_ns > 0 && (!w->nheap || w->heap[0].when > w->now)) {
        /* Every task waits: move the clock to whatever comes first, the
         * next event or the loop's next timer (made late by the jitter
         * fault). */
        uint64_t next = w->nheap ? w->heap[0].when : UINT64_MAX, to = next;
        if (timeout_ns != UINT64_MAX && w->now + timeout_ns < next) {
            to = w->now + timeout_ns;
            /* Late, never early, and never past the next event: an event
             * the jump skipped would run late too, which no fault asked
             * for. */
            if (w->faults.jitter > 0 && corio__sim_fault(w, w->faults.jitter, "timer jitter", 0)) {
                to += corio__sim_below(w, (uint64_t)w->faults.jitter_max_us * 1000 + 1);
                if (to > next)
                    to = next;
            }
        }
        if (to == UINT64_MAX)
            return 0; /* nothing can happen: the loop sees pending() == 0 and reports the stall */
        advance(w, to);
    }
    int n = 0;
    while (n < MAX_EVENTS_PER_POLL) {
        heap_trim(w);
        if (!w->nheap || w->heap[0].when > w->now)
            break;
        sim_event e = heap_pop(w);
        w->live_events--;
        e.fn(w, e.arg, e.a);
        n++;
    }
    return n;
}

static unsigned sim_pending(corio_loop *l)
{
    corio__sim *w = l->backend_data;
    return (unsigned)(w->live_events > UINT32_MAX ? UINT32_MAX : w->live_events);
}

static void sim_forget_fd(corio_loop *l, int fd)
{
    (void)l;
    (void)fd;
}

/* corio__close_fd's close of a virtual fd (the kernel never sees one). */
static void sim_close_fd(corio_loop *l, int fd)
{
    (void)l;
    (void)corio__simsys_close(fd);
}

static void sim_notify(corio_loop *l)
{
    /* No other thread takes part in a run (corio/sim.h). */
    (void)l;
}

static void sim_on_run(corio_loop *l, corio_task *t)
{
    corio__sim *w = l->backend_data;
    corio__sim_trace(w, CORIO__SIM_EV_RUN, NULL, t->sim_id, 0);
    /* A task of a crashed host that was not cancelled with the others (one
     * its cleanup code spawned after the crash) is cancelled the first
     * time it runs: nothing new starts on a dead machine, and
     * corio_sim_host_running turns false once they have all ended. */
    if (CORIO__UNLIKELY(t->sim_host) && w->hosts[t->sim_host]->crashing && !(t->flags & CORIO__T_KILLED))
        corio__task_kill(t);
}

static unsigned sim_pick(corio_loop *l, unsigned n) { return (unsigned)corio__sim_below(l->backend_data, n); }

static double swarm_p(corio__sim *w)
{
    /* Each fault is on for half the seeds, at one of three rates. */
    if (corio__sim_rand(w) & 1)
        return 0;
    static const double rates[] = {0.001, 0.01, 0.05};
    return rates[corio__sim_below(w, 3)];
}

static void faults_setup(corio__sim *w, const corio_sim_faults *f)
{
    if (f) {
        w->faults = *f;
        bool any = f->short_io > 0 || f->reset > 0 || f->stall > 0 || f->dgram_loss > 0 || f->dgram_dup > 0 ||
                   f->dgram_reorder > 0 || f->disk_eio > 0 || f->disk_enospc > 0 || f->disk_short > 0 ||
                   f->jitter > 0 || f->latency_max_us > 0;
        if (!any)
            return; /* all off: paused time, every latency 0 */
        if (!w->faults.latency_max_us)
            w->faults.latency_max_us = 200; /* corio/sim.h: 0 is the default */
    } else {
        const char *env = getenv("CORIO_SIM_FAULTS");
        if (env && !strcmp(env, "0"))
            return;
        corio_sim_faults s = {0};
        s.short_io = swarm_p(w);
        s.reset = swarm_p(w) / 10;
        s.stall = swarm_p(w) / 10;
        s.dgram_loss = swarm_p(w);
        s.dgram_dup = swarm_p(w);
        s.dgram_reorder = swarm_p(w);
        s.disk_eio = swarm_p(w) / 10;
        s.disk_enospc = swarm_p(w) / 10;
        s.disk_short = swarm_p(w);
        s.jitter = swarm_p(w);
        s.latency_max_us = (corio__sim_rand(w) & 1) ? 0 : 200;
        w->faults = s;
    }
    if (!w->faults.stall_max_ms)
        w->faults.stall_max_ms = 2000;
    if (!w->faults.jitter_max_us)
        w->faults.jitter_max_us = 1000;
}

static int sim_init(corio_loop *l, const corio_config *cfg)
{
    const corio_sim_config *sc = cfg ? cfg->sim : NULL;
    corio__sim *w = corio__calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->loop = l;
    if (sc) {
        w->seed = sc->seed;
    } else {
        /* Decimal, as the closing line prints it (base 0 would read a
         * leading 0 as octal and replay another seed). */
        const char *env = getenv("CORIO_SIM_SEED");
        w->seed = 1;
        if (env && *env) {
            char *end;
            errno = 0;
            w->seed = strtoull(env, &end, 10);
            if (errno || *end || *env == '-') {
                fprintf(stderr, "corio: CORIO_SIM_SEED=%s is not a seed (a decimal number)\n", env);
                corio__free(w);
                return -EINVAL;
            }
        }
    }
    uint64_t x = w->seed;
    for (int i = 0; i < 4; i++)
        w->rng[i] = splitmix(&x);
    w->now = START_NS;
    w->hash = 0xcbf29ce484222325ull ^ w->seed;
    w->report = sc ? sc->report : NULL;
    w->quiet = sc && sc->quiet;
    w->trace_tail = sc && sc->trace_tail ? sc->trace_tail : 32;
    const char *tenv = getenv("CORIO_SIM_TRACE");
    w->trace_all = tenv && *tenv && strcmp(tenv, "0") != 0;
    w->ring_cap = w->trace_tail > 256 ? w->trace_tail : 256;
    w->ring = corio__calloc(w->ring_cap, sizeof *w->ring);
    struct in_addr lo = {htonl(INADDR_LOOPBACK)};
    if (!w->ring || !host_add(w, "main", lo)) {
        corio__free(w->ring);
        corio__free(w);
        return -ENOMEM;
    }
    faults_setup(w, sc ? sc->faults : NULL);
    l->backend_data = w;
    l->caps = CORIO__CAP_FILE_OPS | CORIO__CAP_SIM;
    corio__virtual_clock = &w->now;
    l->now = w->now;
    return 0;
}

static void sim_destroy(corio_loop *l)
{
    corio__sim *w = l->backend_data;
    /* Leftover fds (a program that leaked them): close in order, so their
     * objects go too. */
    for (size_t i = 0; i < w->nfds; i++)
        if (w->fds[i].ops)
            (void)fd_release(w, i);
    corio__sim_net_destroy(w);
    corio__sim_disk_destroy(w);
    if (w->report) {
        w->report->seed = w->seed;
        w->report->trace_hash = w->hash;
        w->report->events = w->nevents;
        w->report->faults = w->nfaults;
        w->report->virtual_ns = w->now - START_NS;
        w->report->failed = w->failed;
    }
    if (!w->quiet)
        fprintf(stderr, "corio: sim seed %llu: trace %016llx\n", (unsigned long long)w->seed,
                (unsigned long long)w->hash);
    corio__virtual_clock = NULL;
    for (unsigned i = 0; i < w->nhosts; i++)
        corio__free(w->hosts[i]);
    corio__free(w->hosts);
    corio__free(w->fds);
    corio__free(w->heap);
    corio__free(w->ring);
    corio__free(w);
    l->backend_data = NULL;
}

const corio__backend_ops corio__backend_sim = {
    .name = "sim",
    .init = sim_init,
    .destroy = sim_destroy,
    .submit = sim_submit,
    .cancel = sim_cancel,
    .poll = sim_poll,
    .forget_fd = sim_forget_fd,
    .pending = sim_pending,
    .notify = sim_notify,
    .on_run = sim_on_run,
    .pick = sim_pick,
    .close_fd = sim_close_fd,
};

/* ------------------------------------------------------------------ */
/* Public API (corio/sim.h)                                            */
/* ------------------------------------------------------------------ */

corio_sim_host *corio_sim_host_new(const char *name, const char *addr)
{
    corio__sim *w = corio__sim_world();
    struct in_addr a;
    if (!w || !name || !*name || !addr || inet_pton(AF_INET, addr, &a) != 1 ||
        (ntohl(a.s_addr) >> 24) != 127 || a.s_addr == htonl(INADDR_LOOPBACK) || !strcmp(name, "localhost") ||
        strlen(name) >= 64) {
        errno = EINVAL;
        return NULL;
    }
    for (unsigned i = 0; i < w->nhosts; i++) {
        if (!strcmp(w->hosts[i]->name, name) || (i > 0 && w->hosts[i]->addr.s_addr == a.s_addr)) {
            errno = EINVAL;
            return NULL;
        }
    }
    corio__sim_host *h = host_add(w, name, a);
    return (corio_sim_host *)h;
}

int corio_sim_host_running(const corio_sim_host *hh)
{
    corio__sim *w = corio__sim_world();
    const corio__sim_host *h = (const corio__sim_host *)hh;
    if (!w || !h)
        return 0;
    corio_loop *l = w->loop;
    for (corio__list *n = l->live_tasks.next; n != &l->live_tasks; n = n->next)
        if (CORIO__CONTAINER_OF(n, corio_task, live)->sim_host == h->id)
            return 1;
    return 0;
}

corio_task *corio_sim_host_start(corio_sim_host *hh, corio_fn fn, void *arg)
{
    corio__sim *w = corio__sim_world();
    corio__sim_host *h = (corio__sim_host *)hh;
    if (!w || !h || !fn || h->id == 0 || corio_sim_host_running(hh)) {
        errno = EINVAL;
        return NULL;
    }
    corio_task *t = corio_spawn_named(h->name, 0, fn, arg);
    if (!t)
        return NULL;
    t->sim_host = h->id; /* it has not run yet: everything it does is h's */
    h->crashing = false;
    h->epoch++;
    corio__sim_trace(w, CORIO__SIM_EV_HOST, "start", h->id, h->epoch);
    return t;
}

int corio_sim_host_crash(corio_sim_host *hh)
{
    corio__sim *w = corio__sim_world();
    corio__sim_host *h = (corio__sim_host *)hh;
    if (!w || !h || h->id == 0)
        return -EINVAL;
    corio__sim_trace(w, CORIO__SIM_EV_HOST, "crash", h->id, h->epoch);
    h->crashing = true;
    corio__sim_net_crash(w, h);
    corio__sim_disk_crash(w, h);
    corio_loop *l = w->loop;
    for (corio__list *n = l->live_tasks.next; n != &l->live_tasks;) {
        corio_task *t = CORIO__CONTAINER_OF(n, corio_task, live);
        n = n->next;
        if (t->sim_host == h->id)
            corio__task_kill(t); /* a shield does not outlive a power cut */
    }
    return 0;
}

corio_sim_host *corio_sim_host_current(void)
{
    corio__sim *w = corio__sim_world();
    return w ? (corio_sim_host *)corio__sim_host_now(w) : NULL;
}

uint64_t corio_sim_seed(void)
{
    corio__sim *w = corio__sim_world();
    return w ? w->seed : 0;
}

uint64_t corio_sim_rand(void)
{
    corio__sim *w = corio__sim_world();
    return w ? corio__sim_rand(w) : 0;
}

int corio_sim_chance(double p)
{
    corio__sim *w = corio__sim_world();
    return w ? corio__sim_chance(w, p) : 0;
}

void corio_sim_event(const char *fmt, ...)
{
    corio__sim *w = corio__sim_world();
    if (!w || !fmt)
        return;
    char buf[TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    corio__sim_trace(w, CORIO__SIM_EV_USER, buf, 0, 0);
}

void corio_sim_fail(const char *fmt, ...)
{
    corio__sim *w = corio__sim_world();
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt ? fmt : "(no text)", ap);
    va_end(ap);
    if (!w) {
        fprintf(stderr, "corio: invariant broken outside a sim run: %s\n", buf);
        return;
    }
    w->failed = true;
    corio__sim_trace(w, CORIO__SIM_EV_USER, "invariant broken", 0, 0);
    fprintf(stderr, "corio: sim seed %llu: invariant broken: %s\n", (unsigned long long)w->seed, buf);
    print_tail(w);
}
