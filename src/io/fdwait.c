/*
 * Readiness waits on fds corio does not own (trio's wait_readable,
 * asyncio's add_reader): the way to drive a library that keeps its own
 * sockets (libcurl's multi interface, c-ares, libpq) from tasks.
 *
 * A wait is one POLL op marked CORIO__OPH_FOREIGN, so both backends serve
 * it, with cancellation and deadlines, and the epoll backend knows the fd
 * may be closed behind its back (src/backend/epoll.c).  io_uring keeps no
 * per-fd state: its poll requests name the fd each time.
 *
 * A watch (corio_fd_watch_start, asyncio's add_reader) is a task that
 * loops on that wait and calls the user's function each time the fd is
 * ready, until stopped.  The task owns the watch and frees it when it
 * ends; stopping only tells it to end (and cancels its wait), so stop
 * never suspends and is safe from the callback itself.
 */
#include "../core/internal.h"
#include "sys.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>

/* What a caller may wait for; POLLERR and POLLHUP are always reported. */
#define FD_EVENTS (POLLIN | POLLOUT | POLLPRI | POLLRDHUP)

static int fd_wait_op(int fd, int events)
{
    corio__op op;
    memset(&op, 0, sizeof op);
    op.kind = CORIO__OP_POLL;
    op.fd = fd;
    op.flags = events;
    op.hint = CORIO__OPH_FOREIGN;
    int r = corio__op_run(&op);
    /* poll(2) (the epoll backend's first try) flags a closed fd with
     * POLLNVAL; io_uring fails the request with -EBADF. */
    if (r > 0 && (r & POLLNVAL))
        return -EBADF;
    /* io_uring adds POLLRDHUP unasked: report what poll(2) would. */
    return r > 0 ? r & (events | POLLERR | POLLHUP) : r;
}

int corio_fd_wait(int fd, int events, uint64_t timeout_ms)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating() && !corio__sys_virtual(fd))
        return -EOPNOTSUPP;
    if ((events & ~FD_EVENTS) || !(events & FD_EVENTS))
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if (timeout_ms == CORIO_NO_TIMEOUT)
        return fd_wait_op(fd, events);
    int r = corio__check();
    if (r)
        return r;
    if (timeout_ms == 0) { /* a look, no wait */
        struct pollfd p = {.fd = fd, .events = (short)events};
        if (poll(&p, 1, 0) < 0)
            return -errno;
        return (p.revents & POLLNVAL) ? -EBADF : p.revents & (events | POLLERR | POLLHUP);
    }
    /* The time limit is a deadline scope of its own: when it is the one
     * that ended the wait (the caller's own deadline has not passed), the
     * answer is poll(2)'s "nothing ready", 0. */
    corio_deadline d = corio_deadline_push(timeout_ms);
    r = fd_wait_op(fd, events);
    corio_deadline_pop(d);
    if (r == -CORIO_EDEADLINE && !corio_deadline_expired())
        return 0;
    return r;
}

int corio_fd_wait_readable(int fd)
{
    int r = corio_fd_wait(fd, POLLIN, CORIO_NO_TIMEOUT);
    return r < 0 ? r : 0;
}

int corio_fd_wait_writable(int fd)
{
    int r = corio_fd_wait(fd, POLLOUT, CORIO_NO_TIMEOUT);
    return r < 0 ? r : 0;
}

/* ------------------------------------------------------------------ */
/* Watches (add_reader / add_writer)                                   */
/* ------------------------------------------------------------------ */

struct corio_fd_watch {
    int fd;
    int events;
    corio_fd_watch_fn fn;
    void *arg;
    corio_task *task;
    bool stopped;     /* corio_fd_watch_stop was called: end, never call fn again */
    bool in_callback; /* fn is running (in the watch's task) */
    bool failed;      /* the wait failed; fn was told, the task waits for stop */
    corio_event stop_ev;
};

static void *watch_main(void *arg)
{
    corio_fd_watch *w = arg;
    while (!w->stopped) {
        int r = w->failed ? corio_event_wait(&w->stop_ev) : corio_fd_wait(w->fd, w->events, CORIO_NO_TIMEOUT);
        if (w->stopped || r == -ECANCELED || r == -CORIO_EDEADLINE)
            break; /* stopped, or the loop is ending and cancels every task */
        if (w->failed)
            continue;
        if (corio_cancelled())
            break; /* the wait won the race with the loop's ending */
        if (r < 0)
            w->failed = true; /* told once (-EBADF: closed without a stop); then idle until stopped */
        w->in_callback = true;
        w->fn(w->fd, r, w->arg);
        w->in_callback = false;
        /* An fd fn left ready answers the next wait at once (the epoll
         * backend tries poll(2) first): let the others run in between. */
        if (!w->stopped && !w->failed && corio_yield() < 0)
            break;
    }
    corio__free(w);
    return NULL;
}

corio_fd_watch *corio_fd_watch_start(int fd, int events, corio_fd_watch_fn fn, void *arg)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating() && !corio__sys_virtual(fd)) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    if (!fn || (events & ~FD_EVENTS) || !(events & FD_EVENTS)) {
        errno = EINVAL;
        return NULL;
    }
    if (!corio__loop()) {
        errno = EPERM;
        return NULL;
    }
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        errno = EBADF;
        return NULL;
    }
    corio_fd_watch *w = corio__calloc(1, sizeof *w);
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    corio_event_init(&w->stop_ev);
    w->task = corio_spawn_named("fd watch", 0, watch_main, w);
    if (!w->task) {
        int e = errno ? errno : ENOMEM;
        corio__free(w);
        errno = e;
        return NULL;
    }
    corio_task_detach(w->task);
    return w;
}

void corio_fd_watch_stop(corio_fd_watch *w)
{
    if (!w || w->stopped)
        return;
    w->stopped = true;
    /* From its own callback: the task sees the flag when fn returns.
     * Otherwise it is parked in its wait, which the cancel ends now (so
     * the fd may be closed as soon as this returns). */
    if (!w->in_callback) {
        corio_event_set(&w->stop_ev);
        (void)corio_task_cancel(w->task);
    }
}
