/*
 * The fail-injection wrappers of the test builds (contract and the list of
 * wrapped functions in failinject.h).
 *
 * Each wrapper counts the call; the chosen one fails the way its real
 * function documents (an allocation with ENOMEM, a descriptor-making call
 * with EMFILE, an I/O call with EIO or ECONNRESET, a wait with EINTR, a
 * liburing call with its -errno, getaddrinfo with EAI_AGAIN), and every
 * other call goes to the real function.  close is special: Linux releases
 * the fd even when close(2) reports an error, so the wrapper closes it
 * first and then reports EIO.
 *
 * Counting is process-wide and in atomics: loops on several threads and
 * the pool's workers all pass through here.
 */
#define _GNU_SOURCE 1
#include "failinject.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef CORIO_HAVE_URING
#include <liburing.h>
#endif

#define CORIO__UNLIKELY_FI(x) __builtin_expect(!!(x), 0)

static atomic_long calls;        /* wrapped calls so far */
static atomic_long fail_at = -1; /* call number that fails; -1: CORIO_FAIL_AT not read yet, 0: none */
static atomic_uintptr_t failed_site;
static _Atomic(const char *) failed_fn;
static _Atomic(const char *) target_fn; /* corio_fi_fail_next */
static atomic_long target_left;
static uintptr_t *trace; /* corio_fi_trace */
static const char **trace_fns;
static long trace_cap;

static bool fail_record(const char *fn, void *site)
{
    atomic_store(&failed_site, (uintptr_t)site);
    atomic_store(&failed_fn, fn);
    return true;
}

/* Count one call to fn from site; true if it is the one to fail. */
static bool fail_now(const char *fn, void *site)
{
    long n = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1;
    if (trace && n <= trace_cap) {
        trace[n - 1] = (uintptr_t)site;
        trace_fns[n - 1] = fn;
    }
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (at < 0) {
        const char *s = getenv("CORIO_FAIL_AT");
        long want = s ? atol(s) : 0;
        at = want > 0 ? want : 0;
        atomic_store_explicit(&fail_at, at, memory_order_relaxed); /* every thread stores the same */
    }
    if (at != 0 && n == at)
        return fail_record(fn, site);
    const char *t = atomic_load_explicit(&target_fn, memory_order_relaxed);
    if (CORIO__UNLIKELY_FI(t != NULL) && strcmp(t, fn) == 0 && atomic_fetch_sub(&target_left, 1) == 1) {
        atomic_store(&target_fn, NULL);
        return fail_record(fn, site);
    }
    return false;
}

void corio_fi_fail_at(long n)
{
    atomic_store(&calls, 0);
    atomic_store(&fail_at, n > 0 ? n : 0);
}

void corio_fi_trace(uintptr_t *sites, const char **fns, long cap)
{
    trace = sites;
    trace_fns = fns;
    trace_cap = cap;
}

void corio_fi_fail_next(const char *fn, long n)
{
    atomic_store(&target_fn, NULL);
    atomic_store(&target_left, n);
    if (n > 0)
        atomic_store(&target_fn, fn);
}

long corio_fi_calls(void) { return atomic_load(&calls); }
uintptr_t corio_fi_failed_site(void) { return atomic_load(&failed_site); }
const char *corio_fi_failed_fn(void) { return atomic_load(&failed_fn); }

/* A wrapper for `ret name params` that fails by returning failret with
 * errno = err, else returns name args. */
#define WRAP(ret, name, params, args, failret, err)                                                          \
    ret corio_fi_##name params;                                                                              \
    ret corio_fi_##name params                                                                               \
    {                                                                                                        \
        if (fail_now(#name, __builtin_return_address(0))) {                                                  \
            errno = err;                                                                                     \
            return failret;                                                                                  \
        }                                                                                                    \
        return name args;                                                                                    \
    }

WRAP(void *, malloc, (size_t n), (n), NULL, ENOMEM)
WRAP(void *, calloc, (size_t n, size_t m), (n, m), NULL, ENOMEM)
WRAP(void *, realloc, (void *p, size_t n), (p, n), NULL, ENOMEM)
WRAP(void *, mmap, (void *a, size_t n, int prot, int fl, int fd, off_t off), (a, n, prot, fl, fd, off),
     MAP_FAILED, ENOMEM)
WRAP(int, mprotect, (void *a, size_t n, int prot), (a, n, prot), -1, ENOMEM)
WRAP(int, munmap, (void *a, size_t n), (a, n), -1, ENOMEM)
WRAP(int, madvise, (void *a, size_t n, int adv), (a, n, adv), -1, EAGAIN)

WRAP(int, socket, (int d, int t, int p), (d, t, p), -1, EMFILE)
WRAP(int, bind, (int fd, const struct sockaddr *a, socklen_t n), (fd, a, n), -1, EADDRINUSE)
WRAP(int, listen, (int fd, int backlog), (fd, backlog), -1, EADDRINUSE)
WRAP(int, accept4, (int fd, struct sockaddr *a, socklen_t *n, int fl), (fd, a, n, fl), -1, EMFILE)
WRAP(int, connect, (int fd, const struct sockaddr *a, socklen_t n), (fd, a, n), -1, ECONNREFUSED)
WRAP(int, setsockopt, (int fd, int lv, int o, const void *v, socklen_t n), (fd, lv, o, v, n), -1, ENOMEM)
WRAP(int, getsockopt, (int fd, int lv, int o, void *v, socklen_t *n), (fd, lv, o, v, n), -1, ENOBUFS)
WRAP(int, getsockname, (int fd, struct sockaddr *a, socklen_t *n), (fd, a, n), -1, ENOBUFS)
WRAP(int, getpeername, (int fd, struct sockaddr *a, socklen_t *n), (fd, a, n), -1, ENOTCONN)
WRAP(int, shutdown, (int fd, int how), (fd, how), -1, ENOBUFS)

WRAP(int, epoll_create1, (int fl), (fl), -1, EMFILE)
WRAP(int, epoll_ctl, (int ep, int op, int fd, struct epoll_event *ev), (ep, op, fd, ev), -1, ENOMEM)
WRAP(int, epoll_wait, (int ep, struct epoll_event *ev, int n, int ms), (ep, ev, n, ms), -1, EINTR)
WRAP(int, epoll_pwait2, (int ep, struct epoll_event *ev, int n, const struct timespec *t, const sigset_t *m),
     (ep, ev, n, t, m), -1, EINTR)
WRAP(int, eventfd, (unsigned v, int fl), (v, fl), -1, EMFILE)
WRAP(int, pipe2, (int fds[2], int fl), (fds, fl), -1, EMFILE)
WRAP(int, poll, (struct pollfd * p, nfds_t n, int ms), (p, n, ms), -1, ENOMEM)

WRAP(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n), -1, EIO)
WRAP(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n), -1, EIO)
WRAP(ssize_t, recv, (int fd, void *b, size_t n, int fl), (fd, b, n, fl), -1, ECONNRESET)
WRAP(ssize_t, send, (int fd, const void *b, size_t n, int fl), (fd, b, n, fl), -1, ECONNRESET)
WRAP(ssize_t, sendmsg, (int fd, const struct msghdr *m, int fl), (fd, m, fl), -1, ECONNRESET)
WRAP(ssize_t, sendfile, (int out, int in, off_t *off, size_t n), (out, in, off, n), -1, EIO)
WRAP(ssize_t, pread, (int fd, void *b, size_t n, off_t off), (fd, b, n, off), -1, EIO)
WRAP(ssize_t, pwrite, (int fd, const void *b, size_t n, off_t off), (fd, b, n, off), -1, EIO)
WRAP(ssize_t, readv, (int fd, const struct iovec *v, int n), (fd, v, n), -1, EIO)
WRAP(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n), -1, EIO)
WRAP(ssize_t, preadv, (int fd, const struct iovec *v, int n, off_t off), (fd, v, n, off), -1, EIO)
WRAP(ssize_t, pwritev, (int fd, const struct iovec *v, int n, off_t off), (fd, v, n, off), -1, EIO)
WRAP(ssize_t, preadv2, (int fd, const struct iovec *v, int n, off_t off, int fl), (fd, v, n, off, fl), -1,
     EIO)
WRAP(ssize_t, pwritev2, (int fd, const struct iovec *v, int n, off_t off, int fl), (fd, v, n, off, fl), -1,
     EIO)

WRAP(int, fstat, (int fd, struct stat *st), (fd, st), -1, ENOMEM)
WRAP(int, fstatfs, (int fd, struct statfs *st), (fd, st), -1, EIO)
WRAP(int, statx, (int dfd, const char *p, int fl, unsigned mask, struct statx *st), (dfd, p, fl, mask, st),
     -1, ENOMEM)
WRAP(off_t, lseek, (int fd, off_t off, int whence), (fd, off, whence), -1, EIO)
WRAP(ssize_t, readlink, (const char *p, char *b, size_t n), (p, b, n), -1, EACCES)
WRAP(int, mkdirat, (int dfd, const char *p, mode_t m), (dfd, p, m), -1, EIO)
WRAP(int, renameat, (int a, const char *p, int b, const char *q), (a, p, b, q), -1, EIO)
WRAP(int, unlinkat, (int dfd, const char *p, int fl), (dfd, p, fl), -1, EIO)
WRAP(int, fsync, (int fd), (fd), -1, EIO)
WRAP(int, fdatasync, (int fd), (fd), -1, EIO)
WRAP(ssize_t, getrandom, (void *b, size_t n, unsigned fl), (b, n, fl), -1, EAGAIN)
WRAP(int, sigaction, (int sig, const struct sigaction *sa, struct sigaction *old), (sig, sa, old), -1, EINVAL)
WRAP(int, sigaltstack, (const stack_t *ss, stack_t *old), (ss, old), -1, ENOMEM)

/* The variadic ones read their optional argument only when the call has
 * one, and pass it on as the word it is (an int or a pointer; both travel
 * in one register on the ABIs corio supports). */
/* open and openat: the mode is passed only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(ap, fl) ((fl) & (O_CREAT | __O_TMPFILE) ? va_arg(ap, mode_t) : 0)

static int open_or_fail(const char *fn, void *site, int dfd, const char *p, int fl, mode_t m)
{
    if (fail_now(fn, site)) {
        errno = EMFILE;
        return -1;
    }
    return openat(dfd, p, fl, m); /* open(p, ...) is openat(AT_FDCWD, p, ...) */
}

int corio_fi_open(const char *p, int fl, ...);
int corio_fi_open(const char *p, int fl, ...)
{
    va_list ap;
    va_start(ap, fl);
    mode_t m = OPEN_MODE(ap, fl);
    va_end(ap);
    return open_or_fail("open", __builtin_return_address(0), AT_FDCWD, p, fl, m);
}

int corio_fi_openat(int dfd, const char *p, int fl, ...);
int corio_fi_openat(int dfd, const char *p, int fl, ...)
{
    va_list ap;
    va_start(ap, fl);
    mode_t m = OPEN_MODE(ap, fl);
    va_end(ap);
    return open_or_fail("openat", __builtin_return_address(0), dfd, p, fl, m);
}

int corio_fi_fcntl(int fd, int cmd, ...);
int corio_fi_fcntl(int fd, int cmd, ...)
{
    /* The commands without an argument must not read one (undefined). */
    unsigned long arg = 0;
    if (cmd != F_GETFD && cmd != F_GETFL && cmd != F_GETOWN && cmd != F_GETSIG && cmd != F_GETLEASE &&
        cmd != F_GETPIPE_SZ && cmd != F_GET_SEALS) {
        va_list ap;
        va_start(ap, cmd);
        arg = va_arg(ap, unsigned long);
        va_end(ap);
    }
    if (fail_now("fcntl", __builtin_return_address(0))) {
        errno = cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ? EMFILE : EINVAL;
        return -1;
    }
    return fcntl(fd, cmd, arg);
}

int corio_fi_ioctl(int fd, unsigned long req, ...);
int corio_fi_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (fail_now("ioctl", __builtin_return_address(0))) {
        errno = EIO;
        return -1;
    }
    return ioctl(fd, req, arg);
}

/* syscall(2) is variadic with a count that depends on the call, so only
 * the ones the library makes are known here: reading an argument that was
 * never passed is undefined (ASan reports it). */
long corio_fi_syscall(long nr, ...);
long corio_fi_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[5];
    switch (nr) {
    case SYS_openat2: /* dirfd, path, how, size */
        for (int i = 0; i < 4; i++)
            a[i] = va_arg(ap, long);
        break;
    case SYS_ppoll: /* fds, nfds, timeout, sigmask, sigsetsize: the zero-time-out poll of TSan builds
                     * (src/core/op_syscall.c), passed through: poll itself is not injected either */
        for (int i = 0; i < 5; i++)
            a[i] = va_arg(ap, long);
        va_end(ap);
        return syscall(nr, a[0], a[1], a[2], a[3], a[4]);
    default:
        fprintf(stderr, "failinject: syscall %ld has no wrapper yet (tests/failinject.c)\n", nr);
        abort();
    }
    va_end(ap);
    if (fail_now("syscall", __builtin_return_address(0))) {
        errno = ENOMEM;
        return -1;
    }
    return syscall(nr, a[0], a[1], a[2], a[3]);
}

int corio_fi_close(int fd);
int corio_fi_close(int fd)
{
    bool fail = fail_now("close", __builtin_return_address(0));
    int r = close(fd);
    if (fail && r == 0) {
        errno = EIO;
        return -1;
    }
    return r;
}

/* Error numbers, not errno. */
int corio_fi_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int corio_fi_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (fail_now("pthread_create", __builtin_return_address(0)))
        return EAGAIN;
    return pthread_create(t, a, fn, arg);
}

int corio_fi_pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
int corio_fi_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    if (fail_now("pthread_sigmask", __builtin_return_address(0)))
        return EINVAL;
    return pthread_sigmask(how, set, old);
}

int corio_fi_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                         struct addrinfo **res);
int corio_fi_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                         struct addrinfo **res)
{
    if (fail_now("getaddrinfo", __builtin_return_address(0)))
        return EAI_AGAIN;
    return getaddrinfo(node, service, hints, res);
}

#ifdef CORIO_HAVE_URING
/* liburing reports -errno. */
#define WRAP_URING(name, params, args, err)                                                                  \
    int corio_fi_##name params;                                                                              \
    int corio_fi_##name params                                                                               \
    {                                                                                                        \
        if (fail_now(#name, __builtin_return_address(0)))                                                    \
            return -(err);                                                                                   \
        return name args;                                                                                    \
    }

WRAP_URING(io_uring_queue_init_params, (unsigned n, struct io_uring *r, struct io_uring_params *p), (n, r, p),
           ENOMEM)
WRAP_URING(io_uring_submit, (struct io_uring * r), (r), EINTR)
WRAP_URING(io_uring_submit_and_wait, (struct io_uring * r, unsigned n), (r, n), EINTR)
WRAP_URING(io_uring_submit_and_wait_timeout,
           (struct io_uring * r, struct io_uring_cqe **c, unsigned n, struct __kernel_timespec *ts,
            sigset_t *m),
           (r, c, n, ts, m), EINTR)
WRAP_URING(io_uring_submit_and_get_events, (struct io_uring * r), (r), EINTR)
WRAP_URING(io_uring_register_buf_ring, (struct io_uring * r, struct io_uring_buf_reg *reg, unsigned fl),
           (r, reg, fl), ENOMEM)
WRAP_URING(io_uring_register_ring_fd, (struct io_uring * r), (r), EINVAL)

struct io_uring_probe *corio_fi_io_uring_get_probe_ring(struct io_uring *r);
struct io_uring_probe *corio_fi_io_uring_get_probe_ring(struct io_uring *r)
{
    if (fail_now("io_uring_get_probe_ring", __builtin_return_address(0)))
        return NULL;
    return io_uring_get_probe_ring(r);
}
#endif
