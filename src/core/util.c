/*
 * Small services every layer uses: error text, the allocation wrappers with
 * their fail-injection hook, the monotonic clock, and fd helpers.
 *
 * Fail injection: when the environment variable CORIO_FAIL_AT=N is set, the
 * Nth call through corio__should_fail() (counted per process) reports
 * failure, so tests can prove that every allocation and system-call error
 * path gives a clean error instead of a crash or a leak.  The count is
 * process-wide, and loops on several threads all pass through it, so it
 * is kept in atomics.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdatomic.h>
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
    default:
        return strerror(err);
    }
}

/* Atomic because every thread running a loop calls corio__should_fail()
 * (several loops may start at once and all do the lazy first read); plain
 * variables were a data race (ThreadSanitizer reported it).  Relaxed is
 * enough: nothing else is published through them, each thread that reads
 * the environment stores the same value, and the fast path stays one plain
 * load on the usual CPUs. */
static atomic_long fail_at = -1; /* -1: not read yet, 0: disabled */
static atomic_long fail_count;

bool corio__should_fail(void)
{
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (CORIO__LIKELY(at == 0))
        return false;
    if (at < 0) {
        const char *s = getenv("CORIO_FAIL_AT");
        at = s ? atol(s) : 0;
        if (at <= 0)
            at = 0;
        atomic_store_explicit(&fail_at, at, memory_order_relaxed);
        if (at == 0)
            return false;
    }
    return atomic_fetch_add_explicit(&fail_count, 1, memory_order_relaxed) + 1 == at;
}

void corio__fail_after(long n)
{
    atomic_store_explicit(&fail_count, 0, memory_order_relaxed);
    atomic_store_explicit(&fail_at, n > 0 ? n : 0, memory_order_relaxed);
}

void *corio__malloc(size_t n)
{
    if (corio__should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(n);
}

void *corio__calloc(size_t n, size_t m)
{
    if (corio__should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n, m);
}

void *corio__realloc(void *p, size_t n)
{
    if (corio__should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

void corio__free(void *p) { free(p); }

uint64_t corio__clock_ns(void)
{
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

void corio__close_fd(corio_loop *l, int fd)
{
    if (fd < 0)
        return;
    if (l)
        l->backend->forget_fd(l, fd);
    close(fd);
}
