/*
 * The epoll backend: completion semantics emulated on a readiness API.
 *
 * submit() first performs the system call non-blocking and, when it
 * finishes at once (the common case for sends and for reads on busy
 * connections), returns the result without the task ever parking or any
 * epoll system call being made.  Only on EAGAIN is the op queued on its fd
 * and retried when epoll reports the fd ready; a retry that hits EAGAIN
 * again simply keeps waiting.
 *
 * Registration policy: each fd is added to the epoll set once, the first
 * time an op on it has to wait, edge-triggered with
 * EPOLLIN|EPOLLPRI|EPOLLOUT|EPOLLRDHUP, and never modified afterwards.  A connection
 * therefore costs at most one epoll_ctl in its whole life, which is the
 * "batch epoll_ctl changes" goal taken to its limit (there are no changes
 * left to batch), and a level-triggered set would have to be re-armed or
 * masked every time a direction stops being wanted.  Edge triggering is
 * safe here because every op tries its call before it waits (so data that
 * arrived before the wait is never missed) and, on an edge, waiting ops are
 * retried in order until one of them gets EAGAIN again (so an edge is never
 * consumed while data is left for a later waiter).  POLL ops, which have no
 * call to retry, ask poll(2) with a zero timeout before they wait.
 *
 * An fd that is not corio's (CORIO__OPH_FOREIGN: corio_fd_wait) is closed
 * by its owner behind corio's back, and the number may come back as another
 * file whose registration the set lacks.  So when the last op on such an fd
 * leaves it, its state is dropped as forget_fd would (new generation, not
 * registered) but marked stale: the next wait re-checks the kernel's entry
 * with EPOLL_CTL_MOD (one call, which also re-arms the edge) and adds it
 * only if the kernel has none.  A wait on a foreign fd thus costs one
 * epoll_ctl; corio's own fds keep their single one.
 *
 * Per-fd state lives in a table indexed by fd, in chunks that never move
 * (ops' list links point into them).  Each epoll registration carries the
 * slot's generation next to the fd, so events still queued for an fd that
 * was closed (and maybe reused) in the same batch are dropped.
 *
 * Cancellation removes the op from its wait list and hands it to a deferred
 * list that the next poll() completes with -ECANCELED, keeping the contract
 * that completions arrive through poll and never inside cancel().
 *
 * Regular files cannot be polled (epoll_ctl gives EPERM) and never return
 * EAGAIN anyway; should one do so, the call is finished blocking.  File I/O
 * does not come through here: src/io/file.c tries its calls itself and
 * waits for readiness with POLL ops, or uses the thread pool.
 */
#include "../core/internal.h"

#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_EVENTS 256
#define NOTIFY_KEY UINT64_MAX

typedef struct ep_fd {
    uint32_t gen;        /* bumped by forget_fd; stale events carry an older one */
    bool registered;     /* in the epoll set (under this generation) */
    bool out;            /* ... with EPOLLOUT: added only once something waits to write */
    bool rready;         /* a read-side event came since a recv last found the socket empty */
    bool rclosed;        /* EOF, hang-up, error or TCP urgent data was reported: a
                          * short read no longer proves the socket empty */
    bool stale;          /* the kernel may still hold an entry for this number from a
                          * registration no longer trusted (CORIO__OPH_FOREIGN) */
    corio__list readers; /* RECV, ACCEPT, READ */
    corio__list writers; /* SEND, SENDMSG, WRITE, CONNECT */
    corio__list pollers; /* POLL */
} ep_fd;

typedef struct ep_backend {
    int epfd;
    int evfd;
    bool have_pwait2;
    atomic_bool notified; /* an eventfd write is outstanding: skip further ones */
    unsigned waiting;     /* ops on wait lists */
    unsigned deferred_n;
    corio__list deferred; /* cancelled ops whose completion the next poll delivers */
    ep_fd **chunks;
    size_t nchunks;
    struct epoll_event events[MAX_EVENTS];
} ep_backend;

enum { DIR_READ, DIR_WRITE, DIR_POLL };

/* ------------------------------------------------------------------ */
/* fd table                                                            */
/* ------------------------------------------------------------------ */

static ep_fd *slot_lookup(ep_backend *b, int fd)
{
    size_t c = (size_t)fd >> CHUNK_BITS;
    if (fd < 0 || c >= b->nchunks || !b->chunks[c])
        return NULL;
    return &b->chunks[c][fd & (CHUNK_SIZE - 1)];
}

static ep_fd *slot_get(ep_backend *b, int fd)
{
    size_t c = (size_t)fd >> CHUNK_BITS;
    if (c >= b->nchunks) {
        size_t n = b->nchunks ? b->nchunks : 4;
        while (n <= c)
            n *= 2;
        ep_fd **nc = corio__realloc(b->chunks, n * sizeof *nc);
        if (!nc)
            return NULL;
        for (size_t i = b->nchunks; i < n; i++)
            nc[i] = NULL;
        b->chunks = nc;
        b->nchunks = n;
    }
    if (!b->chunks[c]) {
        ep_fd *ch = corio__calloc(CHUNK_SIZE, sizeof *ch);
        if (!ch)
            return NULL;
        for (unsigned i = 0; i < CHUNK_SIZE; i++) {
            corio__list_init(&ch[i].readers);
            corio__list_init(&ch[i].writers);
            corio__list_init(&ch[i].pollers);
        }
        b->chunks[c] = ch;
    }
    return &b->chunks[c][fd & (CHUNK_SIZE - 1)];
}

/* ------------------------------------------------------------------ */
/* The system calls                                                    */
/* ------------------------------------------------------------------ */

/* A connect takes the two steps below.  Every other kind is tried with
 * corio__op_syscall(), which returns the result, -errno, or -EAGAIN when
 * the op has to wait for readiness.  That never blocks for socket calls
 * (MSG_DONTWAIT) and POLL; READ and WRITE would block on a blocking fd, so
 * they may only be submitted for non-blocking ones (the file layer submits
 * none: it makes its own non-blocking attempts and waits with POLL). */

/* First step of a connect: 0, -errno, or -EAGAIN while it is in progress.
 * (EAGAIN from connect itself, a full AF_UNIX backlog, is an error the
 * caller may retry: no readiness event announces free backlog space.) */
static int32_t connect_start(corio__op *op)
{
    if (connect(op->fd, op->addr, op->addr_len) == 0)
        return 0;
    if (errno == EINPROGRESS || errno == EINTR)
        return -EAGAIN;
    return errno == EAGAIN ? -ECONNREFUSED : -errno;
}

/* The socket became writable (or errored): did the connect finish? */
static int32_t connect_finish(corio__op *op)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        return -errno;
    if (err)
        return -err;
    /* No error yet: a second connect() tells "done" (0 / EISCONN) from
     * "still in progress" (EALREADY) without guessing from the event. */
    if (connect(op->fd, op->addr, op->addr_len) == 0 || errno == EISCONN)
        return 0;
    if (errno == EALREADY || errno == EINPROGRESS || errno == EINTR)
        return -EAGAIN;
    return -errno;
}

static int32_t op_retry(corio__op *op)
{
    return op->kind == CORIO__OP_CONNECT ? connect_finish(op) : corio__op_syscall(op);
}

/* ------------------------------------------------------------------ */
/* Backend operations                                                  */
/* ------------------------------------------------------------------ */

static int ep_init(corio_loop *l, const corio_config *cfg)
{
    (void)cfg;
    ep_backend *b = corio__calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    corio__list_init(&b->deferred);
    b->have_pwait2 = true;
    atomic_init(&b->notified, false);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int e = errno;
        corio__free(b);
        return -e;
    }
    b->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = NOTIFY_KEY};
    if (b->evfd < 0 || epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->evfd, &ev) < 0) {
        int e = errno;
        if (b->evfd >= 0)
            close(b->evfd);
        close(b->epfd);
        corio__free(b);
        return -e;
    }
    l->backend_data = b;
    return 0;
}

static void ep_destroy(corio_loop *l)
{
    ep_backend *b = l->backend_data;
    if (!b)
        return;
    close(b->evfd);
    close(b->epfd);
    for (size_t i = 0; i < b->nchunks; i++)
        corio__free(b->chunks[i]);
    corio__free(b->chunks);
    corio__free(b);
    l->backend_data = NULL;
}

/* Hand op to the next poll() with result res (cancel, forget_fd). */
static void defer_complete(ep_backend *b, corio__op *op, int32_t res)
{
    corio__list_remove(&op->link);
    op->backend_data = NULL;
    b->waiting--;
    op->res = res;
    corio__list_push_back(&b->deferred, &op->link);
    b->deferred_n++;
}

/* op got EAGAIN: queue it on its fd, registering the fd on first use.
 * Returns 0 (queued) or 1 with op->res set (it finished another way). */
static int wait_for(ep_backend *b, corio__op *op, int dir)
{
    ep_fd *s = slot_get(b, op->fd);
    if (!s) {
        op->res = -ENOMEM;
        return 1;
    }
    /* EPOLLOUT only once a writer (or a poll for POLLOUT) has waited on
     * the fd: registered for it, a socket gets an edge each time its peer
     * reads what it sent (the kernel wakes its waiters for write space),
     * which costs the peer's read an epoll callback and can wake this
     * loop for nothing; in request/response traffic that was every
     * request.  Added with EPOLL_CTL_MOD, which reports the current state
     * (edge-triggered too), so space that appeared meanwhile is not lost;
     * kept from then on, so a socket that fills once does not MOD again. */
    bool need_out = dir == DIR_WRITE || (dir == DIR_POLL && (op->flags & POLLOUT));
    if (!s->registered || (need_out && !s->out)) {
        bool out = need_out || (s->registered && s->out);
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0u),
            .data.u64 = ((uint64_t)s->gen << 32) | (uint32_t)op->fd,
        };
        int r;
        if (s->registered) {
            r = epoll_ctl(b->epfd, EPOLL_CTL_MOD, op->fd, &ev);
        } else if (s->stale) {
            /* Most often the same file, still open: MOD refreshes it.
             * ENOENT: it was closed (the number may be a new file). */
            r = epoll_ctl(b->epfd, EPOLL_CTL_MOD, op->fd, &ev);
            if (r < 0 && errno == ENOENT)
                r = epoll_ctl(b->epfd, EPOLL_CTL_ADD, op->fd, &ev);
        } else {
            r = epoll_ctl(b->epfd, EPOLL_CTL_ADD, op->fd, &ev);
            /* EEXIST: the fd number is still in the set from before a
             * forget_fd whose close did not happen (a dup keeps it alive);
             * refresh it so it carries the current generation. */
            if (r < 0 && errno == EEXIST)
                r = epoll_ctl(b->epfd, EPOLL_CTL_MOD, op->fd, &ev);
        }
        if (r < 0) {
            if (errno != EPERM) {
                op->res = -errno;
                return 1;
            }
            /* Not pollable (regular file, some character devices): it
             * cannot really block for long, so finish it here. */
            struct pollfd p = {.fd = op->fd,
                               .events = dir == DIR_POLL   ? (short)op->flags
                                         : dir == DIR_READ ? POLLIN
                                                           : POLLOUT};
            while (poll(&p, 1, -1) < 0 && errno == EINTR) {
            }
            op->res = op_retry(op);
            return 1;
        }
        s->registered = true;
        s->out = out;
        s->stale = false;
    }
    corio__list *list = dir == DIR_READ ? &s->readers : dir == DIR_WRITE ? &s->writers : &s->pollers;
    corio__list_push_back(list, &op->link);
    op->backend_data = s;
    b->waiting++;
    return 0;
}

/* Track whether a recv found the socket empty: then any data that arrives
 * later produces an epoll event that is harvested after this point, which
 * sets rready again (ep_poll).  So "registered and !rready" proves a try
 * would fail, and a POLL_FIRST recv may skip it: in request/response
 * traffic that saves one failed recv per request.  Once EOF or an error has
 * been reported, a short read no longer proves anything (the EOF stays
 * behind the data and announces itself only once), so rready stays set.
 * TCP urgent data (EPOLLPRI) does the same: recv stops short at the urgent
 * mark with the rest already queued and no event left to announce it. */
static inline void note_recv(ep_backend *b, const corio__op *op, int32_t r)
{
    /* Only a recv's short read proves it: a recvmsg on a Unix stream also
     * stops where fds were attached (or are no longer), with the rest
     * queued and no new edge to come. */
    if (r == -EAGAIN || (r > 0 && (size_t)r < op->len && op->kind == CORIO__OP_RECV)) {
        ep_fd *s = slot_lookup(b, op->fd);
        if (s && !s->rclosed)
            s->rready = false;
    }
}

static int ep_submit(corio_loop *l, corio__op *op)
{
    ep_backend *b = l->backend_data;
    int dir;
    int32_t r;
    op->backend_data = NULL;
    switch (op->kind) {
    case CORIO__OP_RECV:
    case CORIO__OP_RECVMSG:
        dir = DIR_READ;
        if (op->hint & CORIO__OPH_POLL_FIRST) {
            /* The last recv drained the socket.  If no read event has come
             * since, the try would only say EAGAIN: wait at once. */
            ep_fd *s = slot_lookup(b, op->fd);
            if (s && s->registered && !s->rready)
                return wait_for(b, op, dir);
        }
        r = corio__op_syscall(op);
        note_recv(b, op, r);
        break;
    case CORIO__OP_ACCEPT:
    case CORIO__OP_READ:
        dir = DIR_READ;
        r = corio__op_syscall(op);
        break;
    case CORIO__OP_SEND:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_WRITE:
        dir = DIR_WRITE;
        r = corio__op_syscall(op);
        break;
    case CORIO__OP_CONNECT:
        dir = DIR_WRITE;
        r = connect_start(op);
        break;
    case CORIO__OP_POLL:
        dir = DIR_POLL;
        /* The caller's own call just said EAGAIN (src/io/dgram.c): the
         * fd is not ready, so poll(2) would only agree.  Waiting at once
         * is safe with edge triggering: an fd not yet registered reports
         * its current state when added, and a registered one produces a
         * fresh edge for anything that arrives after that call. */
        if (op->hint & CORIO__OPH_POLL_FIRST)
            return wait_for(b, op, dir);
        /* A wait for input on a socket a recv just found empty (an idle
         * keep-alive connection parking after its reply): as for a
         * POLL_FIRST recv above, no event since proves poll(2) would say
         * "not ready", and anything arriving later brings an edge. */
        if (op->flags == POLLIN && !(op->hint & CORIO__OPH_FOREIGN)) {
            ep_fd *s = slot_lookup(b, op->fd);
            if (s && s->registered && !s->rready)
                return wait_for(b, op, dir);
        }
        r = corio__op_syscall(op);
        break;
    default: /* multishot kinds are io_uring only */
        op->res = -EOPNOTSUPP;
        return 1;
    }
    if (CORIO__LIKELY(r != -EAGAIN)) {
        op->res = r;
        return 1;
    }
    return wait_for(b, op, dir);
}

/* A foreign op (CORIO__OPH_FOREIGN) left s: once nothing waits on the fd,
 * stop trusting its registration, since its owner may close it unseen. */
static void foreign_left(ep_fd *s)
{
    if (!s->registered || !corio__list_empty(&s->readers) || !corio__list_empty(&s->writers) ||
        !corio__list_empty(&s->pollers))
        return;
    s->gen++; /* events still queued for the old registration are dropped */
    s->registered = false;
    s->out = false;
    s->stale = true;
    s->rready = true;
    s->rclosed = false;
}

static void ep_cancel(corio_loop *l, corio__op *op)
{
    /* Not on a wait list: already completed or already cancelled. */
    ep_fd *s = op->backend_data;
    if (!s)
        return;
    bool foreign = op->hint & CORIO__OPH_FOREIGN;
    defer_complete(l->backend_data, op, -ECANCELED);
    if (foreign)
        foreign_left(s);
}

/* Retry the ops of one wait list in order until one has to keep waiting:
 * with edge triggering, stopping earlier would strand the rest. */
static int run_list(ep_backend *b, corio__list *list)
{
    int n = 0;
    while (!corio__list_empty(list)) {
        corio__op *op = CORIO__CONTAINER_OF(list->next, corio__op, link);
        if ((op->hint & CORIO__OPH_TASK_RECV) && list->next->next == list) {
            /* The only reader is a task: let it receive when it runs
             * (CORIO__OPH_TASK_RECV).  rready stays set, so its retry
             * makes the call; alone on the list, no reader behind it can
             * be stranded if it finds nothing after all. */
            corio__list_remove(&op->link);
            op->backend_data = NULL;
            b->waiting--;
            corio__op_complete(op, CORIO__OP_READY);
            return n + 1;
        }
        int32_t r = op_retry(op);
        if (op->kind == CORIO__OP_RECV || op->kind == CORIO__OP_RECVMSG)
            note_recv(b, op, r);
        if (r == -EAGAIN)
            break;
        corio__list_remove(&op->link);
        op->backend_data = NULL;
        b->waiting--;
        corio__op_complete(op, r);
        n++;
    }
    return n;
}

static int run_pollers(ep_backend *b, ep_fd *s, uint32_t events)
{
    corio__list *list = &s->pollers;
    bool foreign = false;
    /* Collect first: completion callbacks may cancel other pollers, which
     * works on the local list as well. */
    corio__list hit;
    corio__list_init(&hit);
    for (corio__list *n = list->next; n != list;) {
        corio__op *op = CORIO__CONTAINER_OF(n, corio__op, link);
        n = n->next;
        if (events & ((uint32_t)op->flags | EPOLLERR | EPOLLHUP)) {
            foreign |= op->hint & CORIO__OPH_FOREIGN;
            corio__list_remove(&op->link);
            corio__list_push_back(&hit, &op->link);
        }
    }
    int cnt = 0;
    while (!corio__list_empty(&hit)) {
        corio__op *op = CORIO__CONTAINER_OF(hit.next, corio__op, link);
        corio__list_remove(&op->link);
        op->backend_data = NULL;
        b->waiting--;
        /* EPOLL* and POLL* bits have the same values on Linux. */
        corio__op_complete(op, (int32_t)(events & ((uint32_t)op->flags | EPOLLERR | EPOLLHUP)));
        cnt++;
    }
    if (foreign)
        foreign_left(s);
    return cnt;
}

static int run_deferred(ep_backend *b)
{
    int n = 0;
    while (!corio__list_empty(&b->deferred)) {
        corio__op *op = CORIO__CONTAINER_OF(b->deferred.next, corio__op, link);
        corio__list_remove(&op->link);
        b->deferred_n--;
        corio__op_complete(op, op->res);
        n++;
    }
    return n;
}

static int ep_wait(ep_backend *b, uint64_t timeout_ns)
{
    if (timeout_ns == 0)
        return epoll_wait(b->epfd, b->events, MAX_EVENTS, 0);
    if (timeout_ns == UINT64_MAX)
        return epoll_wait(b->epfd, b->events, MAX_EVENTS, -1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    /* Timers have ns resolution: rounding a 100 us timer up to 1 ms would
     * make it late, rounding down would spin. */
    if (b->have_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                              .tv_nsec = (long)(timeout_ns % 1000000000u)};
        int r = epoll_pwait2(b->epfd, b->events, MAX_EVENTS, &ts, NULL);
        if (r >= 0 || (errno != ENOSYS && errno != EPERM))
            return r;
        b->have_pwait2 = false; /* old kernel or seccomp filter */
    }
#endif
    uint64_t ms = (timeout_ns + 999999u) / 1000000u;
    return epoll_wait(b->epfd, b->events, MAX_EVENTS, ms > INT_MAX ? INT_MAX : (int)ms);
}

static int ep_poll(corio_loop *l, uint64_t timeout_ns)
{
    ep_backend *b = l->backend_data;
    int n = run_deferred(b);
    if (n > 0 || b->deferred_n > 0)
        timeout_ns = 0;
    int got = ep_wait(b, timeout_ns);
    if (got < 0)
        return errno == EINTR ? n : -errno;
    for (int i = 0; i < got; i++) {
        uint64_t key = b->events[i].data.u64;
        uint32_t ev = b->events[i].events;
        if (key == NOTIFY_KEY) {
            uint64_t v;
            while (read(b->evfd, &v, sizeof v) < 0 && errno == EINTR) {
            }
            /* Cleared after the read and before the drain: work handed
             * over after this point writes the eventfd again. */
            atomic_store(&b->notified, false);
            corio__loop_on_notify(l);
            n++;
            continue;
        }
        ep_fd *s = slot_lookup(b, (int)(uint32_t)key);
        if (!s || s->gen != (uint32_t)(key >> 32))
            continue;
        if (ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
            s->rready = true;
        if (ev & (EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
            s->rclosed = true; /* a short read may leave the EOF (or data past an urgent mark) behind it */
        if ((ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) && !corio__list_empty(&s->readers))
            n += run_list(b, &s->readers);
        if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !corio__list_empty(&s->writers))
            n += run_list(b, &s->writers);
        if (!corio__list_empty(&s->pollers))
            n += run_pollers(b, s, ev);
    }
    return n;
}

static void ep_forget_fd(corio_loop *l, int fd)
{
    ep_backend *b = l->backend_data;
    ep_fd *s = slot_lookup(b, fd);
    if (!s)
        return;
    /* Contract violation (ops still waiting on an fd being closed): fail
     * them rather than leave them waiting on a number that will be
     * reused. */
    corio__list *lists[3] = {&s->readers, &s->writers, &s->pollers};
    for (int i = 0; i < 3; i++)
        while (!corio__list_empty(lists[i]))
            defer_complete(b, CORIO__CONTAINER_OF(lists[i]->next, corio__op, link), -EBADF);
    /* close() removes the registration from the kernel's set; the new
     * generation makes events already queued for it harmless. */
    s->gen++;
    s->registered = false;
    s->out = false;
    s->stale = false;
    s->rready = true;
    s->rclosed = false;
}

static unsigned ep_pending(corio_loop *l)
{
    ep_backend *b = l->backend_data;
    return b->waiting + b->deferred_n;
}

/* Any thread, async-signal safe: one eventfd write per batch of wake-ups. */
static void ep_notify(corio_loop *l)
{
    ep_backend *b = l->backend_data;
    if (atomic_exchange(&b->notified, true))
        return;
    corio__eventfd_kick(b->evfd);
}

const corio__backend_ops corio__backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .destroy = ep_destroy,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .poll = ep_poll,
    .forget_fd = ep_forget_fd,
    .pending = ep_pending,
    .notify = ep_notify,
};
