/*
 * The system call behind each kind of operation, made directly.
 *
 * corio__op describes a call once (internal.h lists what each kind means);
 * io_uring hands it to the kernel as it is, and everywhere else the same
 * description is turned into the plain system call by this one function:
 * the epoll backend's attempts and retries on the loop thread, the thread
 * pool's workers that run file operations on epoll (src/io/file.c), and
 * file.c's non-blocking attempts on pipes and ttys.  Keeping the mapping in
 * one place means an op behaves the same whichever of them runs it.
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h> /* renameat */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int32_t corio__op_syscall(corio__op *op)
{
    const char *path = op->buf;
    size_t len = op->len > CORIO__MAX_RW ? CORIO__MAX_RW : op->len;
    for (;;) {
        ssize_t r;
        switch (op->kind) {
        case CORIO__OP_RECV:
            r = recv(op->fd, op->buf, len, op->flags | MSG_DONTWAIT);
            break;
        case CORIO__OP_RECVMSG:
            r = recvmsg(op->fd, op->msg, op->flags | MSG_DONTWAIT);
            break;
        case CORIO__OP_SEND:
            r = send(op->fd, op->buf, len, op->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
            break;
        case CORIO__OP_SENDMSG:
            r = sendmsg(op->fd, op->msg, op->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
            break;
        case CORIO__OP_ACCEPT:
            r = accept4(op->fd, op->addr, op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
            break;
        case CORIO__OP_READ:
            r = op->off < 0 ? read(op->fd, op->buf, len) : pread(op->fd, op->buf, len, (off_t)op->off);
            break;
        case CORIO__OP_WRITE:
            r = op->off < 0 ? write(op->fd, op->buf, len) : pwrite(op->fd, op->buf, len, (off_t)op->off);
            break;
        case CORIO__OP_READV:
            r = op->off < 0 ? readv(op->fd, op->buf, (int)op->len)
                            : preadv(op->fd, op->buf, (int)op->len, (off_t)op->off);
            break;
        case CORIO__OP_WRITEV:
            r = op->off < 0 ? writev(op->fd, op->buf, (int)op->len)
                            : pwritev(op->fd, op->buf, (int)op->len, (off_t)op->off);
            break;
        case CORIO__OP_POLL: {
            struct pollfd p = {.fd = op->fd, .events = (short)op->flags};
#ifdef CORIO__TSAN_ON
            /* TSan only: its poll interceptor counts as a blocking call,
             * where a signal that arrives is run at once from the signal
             * frame, and in testing (3,000 signals while a loop polled the
             * signal eventfd, src/io/signal.c) one in 100 to 4,000 never
             * reached its handler.  A poll with no time-out never blocks,
             * so it loses nothing by going straight to the kernel. */
            struct timespec zero = {0, 0};
            r = (int)syscall(SYS_ppoll, &p, 1, &zero, NULL, (size_t)_NSIG / 8);
#else
            r = poll(&p, 1, 0);
#endif
            if (r > 0)
                return p.revents;
            if (r == 0)
                return -EAGAIN;
            break;
        }
        case CORIO__OP_OPENAT:
            r = openat(op->fd, path, op->flags, (mode_t)op->len);
            break;
        case CORIO__OP_CLOSE:
            /* Linux releases the fd even when close reports EINTR: never
             * retry, another thread may own the number by now. */
            r = close(op->fd);
            return r < 0 && errno != EINTR ? -errno : 0;
        case CORIO__OP_FSYNC:
            r = op->flags & CORIO__FSYNC_DATASYNC ? fdatasync(op->fd) : fsync(op->fd);
            break;
        case CORIO__OP_STATX:
            r = statx(op->fd, path, op->flags, STATX_BASIC_STATS, op->stx);
            break;
        case CORIO__OP_UNLINKAT:
            r = unlinkat(op->fd, path, op->flags);
            break;
        case CORIO__OP_RENAMEAT:
            r = renameat(op->fd, path, op->fd, op->path2);
            break;
        case CORIO__OP_MKDIRAT:
            r = mkdirat(op->fd, path, (mode_t)op->len);
            break;
        default: /* CONNECT (two steps, see the epoll backend), multishot kinds */
            return -EOPNOTSUPP;
        }
        if (r >= 0)
            return r > INT32_MAX ? INT32_MAX : (int32_t)r;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}
