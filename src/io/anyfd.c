/*
 * Non-blocking calls on any fd: one read or write attempt that cannot
 * block the loop thread, whatever kind of file the fd is and however its
 * description was opened, without changing a description that other
 * processes may share.  The file layer (src/io/file.c, its "Streams") and
 * the stream layer (src/io/stream.c, streams on pipes, ttys and FIFOs)
 * both make their attempts through here, so the kernel facts below are
 * kept in one place.
 *
 * What makes one attempt non-blocking depends on the fd (a "way", chosen
 * once per call by corio__anyfd_way):
 *  - CORIO__WAY_NOWAIT: preadv2/pwritev2 with RWF_NOWAIT, which asks for "only if
 *    it won't block" per call.  Linux honours it on pipes made by pipe(2),
 *    sockets and eventfds (checked on 6.18 on blocking descriptions: EAGAIN
 *    from an empty pipe; a write that does not fit writes what does, or
 *    says EAGAIN).  The common case; it touches nothing.
 *  - CORIO__WAY_REOPEN: ttys, and FIFOs opened by name, answer RWF_NOWAIT with
 *    EOPNOTSUPP (6.18 too).  Their file description is usually shared (a
 *    shell's terminal, a FIFO that other processes write too), so
 *    O_NONBLOCK must not be set on it even briefly: another process
 *    writing the same terminal meanwhile would get EAGAIN and might lose
 *    its output.  But both can be opened again: each attempt opens a
 *    private non-blocking description of the same tty or pipe
 *    (corio__reopen_nonblock), makes the call on it and closes it, so
 *    nothing outlives the attempt (a FIFO sees one more reader or writer
 *    for that long, next to the fd's own, so nobody sees an end close).
 *  - CORIO__WAY_TOGGLE: other pollable fds without RWF_NOWAIT, where opening
 *    again would make a new object (a pty master: /dev/ptmx) or is not
 *    possible (inotify and other anonymous fds).  These belong to the
 *    program that made them rather than to a shell, so O_NONBLOCK is set
 *    for the one call and restored before anything else runs on this
 *    thread; a mutex keeps loops on other threads from taking the flag
 *    for the user's.
 *  - CORIO__WAY_POOL: fds that cannot be polled (readiness means nothing there),
 *    and ttys or FIFOs that could not be opened again (no /proc, TIOCEXCL,
 *    no permission): wait for readiness if possible, then the blocking
 *    call on a worker, as before.  Rare, and the one place where a stalled
 *    stream can still hold a worker.
 *
 * A description that is already non-blocking is called plainly.
 */
#define _GNU_SOURCE 1
#include "anyfd.h"
#include "sys.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t corio__anyfd_nowait(const corio__op *op, bool is_write)
{
    /* A simulated fd has no RWF_NOWAIT: its callers then go through the
     * file layer, i.e. the sim backend, where the disk's latency and
     * faults apply. */
    if (corio__sys_virtual(op->fd))
        return -EOPNOTSUPP;
    struct iovec one;
    const struct iovec *iov;
    int cnt;
    if (op->kind == CORIO__OP_READV || op->kind == CORIO__OP_WRITEV) {
        iov = op->buf;
        cnt = (int)op->len;
    } else {
        one.iov_base = op->buf;
        one.iov_len = op->len > CORIO__MAX_RW ? CORIO__MAX_RW : op->len;
        iov = &one;
        cnt = 1;
    }
    off_t off = op->off < 0 ? (off_t)-1 : (off_t)op->off;
    ssize_t r;
    do
        r = is_write ? pwritev2(op->fd, iov, cnt, off, RWF_NOWAIT)
                     : preadv2(op->fd, iov, cnt, off, RWF_NOWAIT);
    while (r < 0 && errno == EINTR);
    if (r >= 0)
        return r;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

bool corio__can_reopen(int fd, const struct stat *st)
{
    int n;
    if (S_ISFIFO(st->st_mode))
        return true;
    /* TIOCGPTN answers on a pty master only. */
    return S_ISCHR(st->st_mode) && isatty(fd) && ioctl(fd, TIOCGPTN, &n) < 0;
}

int corio__reopen_nonblock(int fd, int fl)
{
    if (fl < 0) {
        errno = EBADF;
        return -1;
    }
    char path[40];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    /* O_NONBLOCK also keeps the open itself from waiting: for a FIFO's
     * other end, for a serial line's carrier. */
    return open(path, (fl & O_ACCMODE) | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
}

/* Does fd's file support poll?  epoll refuses (EPERM) the files that do
 * not; for those, readiness says nothing about whether a call blocks. */
static bool fd_can_poll(int fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return false;
    struct epoll_event ev = {.events = EPOLLIN};
    bool ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
    close(ep);
    return ok;
}

int corio__anyfd_way(int fd, const struct stat *st)
{
    if (corio__can_reopen(fd, st))
        return CORIO__WAY_REOPEN;
    return fd_can_poll(fd) ? CORIO__WAY_TOGGLE : CORIO__WAY_POOL;
}

static pthread_mutex_t toggle_lock = PTHREAD_MUTEX_INITIALIZER;

/* CORIO__WAY_TOGGLE's attempt: op's call with O_NONBLOCK set on fd's description
 * for its duration.  *fl receives the description's own flags. */
static ssize_t call_toggled(corio__op *op, int *fl)
{
    ssize_t n;
    pthread_mutex_lock(&toggle_lock);
    int f = fcntl(op->fd, F_GETFL);
    if (f < 0)
        n = -errno;
    else if (f & O_NONBLOCK)
        n = corio__op_syscall(op);
    else if (fcntl(op->fd, F_SETFL, f | O_NONBLOCK) < 0)
        n = -errno;
    else {
        n = corio__op_syscall(op);
        (void)fcntl(op->fd, F_SETFL, f);
    }
    pthread_mutex_unlock(&toggle_lock);
    *fl = f;
    return n;
}

ssize_t corio__anyfd_try(corio__op *op, bool is_write, int *way, int *fl)
{
    if (*way == CORIO__WAY_NOWAIT)
        return corio__anyfd_nowait(op, is_write);
    if (*way == CORIO__WAY_TOGGLE)
        return call_toggled(op, fl);
    /* CORIO__WAY_REOPEN */
    if (*fl < 0 && (*fl = fcntl(op->fd, F_GETFL)) < 0)
        return -errno;
    if (*fl & O_NONBLOCK)
        return corio__op_syscall(op);
    corio__op mine = *op;
    mine.fd = corio__reopen_nonblock(op->fd, *fl);
    if (mine.fd < 0) {
        *way = CORIO__WAY_POOL;
        return -EAGAIN;
    }
    ssize_t n = corio__op_syscall(&mine);
    close(mine.fd);
    return n;
}

int corio__reopen_private(int fd, const struct stat *st)
{
    if (!corio__can_reopen(fd, st))
        return -1;
    if (S_ISFIFO(st->st_mode)) {
        char path[40], link[16];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link);
        if (n >= 5 && memcmp(link, "pipe:", 5) == 0)
            return -1; /* anonymous: RWF_NOWAIT works */
    }
    return corio__reopen_nonblock(fd, fcntl(fd, F_GETFL));
}
