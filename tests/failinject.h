/*
 * Fail injection for the test builds (tests/failinject.c).
 *
 * The library itself has no hook: the test executables link a copy of the
 * static library in which every call to a function listed below is
 * renamed to corio_fi_<name> (objcopy --redefine-syms, tests/CMakeLists.txt),
 * and failinject.c defines those wrappers.  Each asks the fail counter and
 * either fails the way the real function can fail or calls the real one.
 * Only the library's own calls are wrapped, never the tests' (nor libc's
 * or liburing's internal ones); the installed libcorio never sees any of
 * this.
 *
 * Control (all process-wide, every thread counts):
 *  - CORIO_FAIL_AT=N in the environment: the Nth wrapped call fails.
 *  - corio_fi_fail_next(fn, n): the nth call to fn from now on fails.
 *
 * Every line FI(name) below is one wrapped function (CMake reads them to
 * build the rename list; keep one per line).
 */
#ifndef CORIO_TEST_FAILINJECT_H
#define CORIO_TEST_FAILINJECT_H

#include <stdbool.h>
#include <stdint.h>

#define CORIO_FI_FUNCTIONS(FI)                                                                               \
    FI(malloc)                                                                                               \
    FI(calloc)                                                                                               \
    FI(realloc)                                                                                              \
    FI(mmap)                                                                                                 \
    FI(mprotect)                                                                                             \
    FI(munmap)                                                                                               \
    FI(madvise)                                                                                              \
    FI(socket)                                                                                               \
    FI(bind)                                                                                                 \
    FI(listen)                                                                                               \
    FI(accept4)                                                                                              \
    FI(connect)                                                                                              \
    FI(setsockopt)                                                                                           \
    FI(getsockopt)                                                                                           \
    FI(getsockname)                                                                                          \
    FI(getpeername)                                                                                          \
    FI(shutdown)                                                                                             \
    FI(epoll_create1)                                                                                        \
    FI(epoll_ctl)                                                                                            \
    FI(epoll_wait)                                                                                           \
    FI(epoll_pwait2)                                                                                         \
    FI(eventfd)                                                                                              \
    FI(pipe2)                                                                                                \
    FI(poll)                                                                                                 \
    FI(read)                                                                                                 \
    FI(write)                                                                                                \
    FI(recv)                                                                                                 \
    FI(send)                                                                                                 \
    FI(sendmsg)                                                                                              \
    FI(sendfile)                                                                                             \
    FI(pread)                                                                                                \
    FI(pwrite)                                                                                               \
    FI(readv)                                                                                                \
    FI(writev)                                                                                               \
    FI(preadv)                                                                                               \
    FI(pwritev)                                                                                              \
    FI(preadv2)                                                                                              \
    FI(pwritev2)                                                                                             \
    FI(open)                                                                                                 \
    FI(openat)                                                                                               \
    FI(close)                                                                                                \
    FI(fstat)                                                                                                \
    FI(fstatfs)                                                                                              \
    FI(statx)                                                                                                \
    FI(fcntl)                                                                                                \
    FI(ioctl)                                                                                                \
    FI(lseek)                                                                                                \
    FI(readlink)                                                                                             \
    FI(mkdirat)                                                                                              \
    FI(renameat)                                                                                             \
    FI(unlinkat)                                                                                             \
    FI(fsync)                                                                                                \
    FI(fdatasync)                                                                                            \
    FI(syscall)                                                                                              \
    FI(getrandom)                                                                                            \
    FI(pthread_create)                                                                                       \
    FI(pthread_sigmask)                                                                                      \
    FI(sigaction)                                                                                            \
    FI(sigaltstack)                                                                                          \
    FI(getaddrinfo)                                                                                          \
    CORIO_FI_URING(FI)

#ifdef CORIO_HAVE_URING
#define CORIO_FI_URING(FI)                                                                                   \
    FI(io_uring_queue_init_params)                                                                           \
    FI(io_uring_submit)                                                                                      \
    FI(io_uring_submit_and_wait)                                                                             \
    FI(io_uring_submit_and_wait_timeout)                                                                     \
    FI(io_uring_submit_and_get_events)                                                                       \
    FI(io_uring_register_buf_ring)                                                                           \
    FI(io_uring_register_ring_fd)                                                                            \
    FI(io_uring_get_probe_ring)
#else
#define CORIO_FI_URING(FI)
#endif

/* Make the nth call to the wrapped function fn (its name: "realloc") from
 * now on fail (n >= 1; 0 turns this off), for tests that need one specific
 * failure rather than a sweep.  Independent of CORIO_FAIL_AT. */
void corio_fi_fail_next(const char *fn, long n);

/* Restart the count: the nth wrapped call from now on fails (0: none);
 * overrides CORIO_FAIL_AT.  For a sweep's child process. */
void corio_fi_fail_at(long n);

/* Record the call site (return address) and the function name of the ith
 * wrapped call counted from now on in sites[i - 1] and fns[i - 1], for
 * i <= cap (NULL: stop).  Not to be changed while other threads make
 * calls. */
void corio_fi_trace(uintptr_t *sites, const char **fns, long cap);

/* What the process's wrapped calls did, for the sweeps
 * (tests/test_failinject.c).  calls: wrapped calls counted so far;
 * failed_site: the return address of the call that was made to fail (0 if
 * none yet); failed_fn: its function's name (NULL if none). */
long corio_fi_calls(void);
uintptr_t corio_fi_failed_site(void);
const char *corio_fi_failed_fn(void);

#endif
