/*
 * Small services every layer uses: error text, the report of a broken
 * invariant, the monotonic clock, and fd helpers.  (Fail injection is not
 * here: the test builds wrap the library's system calls and allocations,
 * see tests/failinject.c.)
 */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *corio_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return "success";
    case CORIO_EINCOMPLETE:
        return "end of stream before the requested bytes arrived";
    case CORIO_ELIMIT:
        return "separator not found within the stream's buffer limit";
    case CORIO_EDEADLOCK:
        return "every task is waiting and nothing can wake them";
    case CORIO_EDEADLINE:
        return "the task's deadline passed";
    case CORIO_EBROKEN:
        return "the barrier was aborted or reset";
    case CORIO_ETLS:
        return "TLS protocol error";
    case CORIO_ETLSVERIFY:
        return "TLS peer certificate did not verify";
    case CORIO_ETLSTRUNC:
        return "connection closed without TLS close_notify";
    default:
        return strerror(err);
    }
}

void corio__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "corio: %s:%d: invariant broken: %s\n", file, line, cond);
    abort();
}

__thread const uint64_t *corio__virtual_clock;

uint64_t corio__clock_ns(void)
{
    if (CORIO__UNLIKELY(corio__virtual_clock))
        return *corio__virtual_clock;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int corio__set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

void corio__eventfd_kick(int fd)
{
    int saved = errno;
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno != EAGAIN && errno != EBADF && errno != EINVAL) {
    }
    errno = saved;
}

void corio__close_fd(corio_loop *l, int fd)
{
    if (fd < 0)
        return;
    if (CORIO__UNLIKELY(fd >= CORIO__SIM_FD_BASE)) {
        if (l && l->backend->close_fd)
            l->backend->close_fd(l, fd); /* a virtual fd (the sim's) */
        return;
    }
    if (l)
        l->backend->forget_fd(l, fd);
    close(fd);
}
