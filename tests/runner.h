/*
 * The test runner's interface: every tests/test_*.c file declares tests with
 * TEST(name) and checks with the CHECK* macros below.  Each file becomes one
 * executable (linked with tests/runner.c); ctest runs every test in its own
 * process, once per backend (CORIO_BACKEND=epoll and =io_uring), with a
 * timeout.  Run a file's tests by hand with `build/tests/test_x [name...]`
 * (no name: all of them, each in a forked child; prints "N passed, M
 * failed").  A failed CHECK prints where and why and exits the process with
 * status 1; a test that wants to be skipped calls SKIP("why") (exit 77).
 */
#ifndef CORIO_TEST_RUNNER_H
#define CORIO_TEST_RUNNER_H

#define _GNU_SOURCE 1
#include "corio.h"
#include "failinject.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn, const char *file);

#define TEST(name)                                                                                           \
    static void test_##name(void);                                                                           \
    __attribute__((constructor)) static void test_register_##name(void)                                      \
    {                                                                                                        \
        test_register(#name, test_##name, __FILE__);                                                         \
    }                                                                                                        \
    static void test_##name(void)

void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                                        \
    } while (0)

#define CHECK_EQ(a, b)                                                                                       \
    do {                                                                                                     \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                                \
        if (va_ != vb_)                                                                                      \
            test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s) failed: %lld != %lld", #a, #b, va_, vb_);        \
    } while (0)

/* An int result that must be an exact (negative) error code. */
#define CHECK_ERR(expr, err)                                                                                 \
    do {                                                                                                     \
        long long v_ = (long long)(expr);                                                                    \
        if (v_ != (long long)(err))                                                                          \
            test_fail(__FILE__, __LINE__, "%s returned %lld (%s), expected %s", #expr, v_,                   \
                      v_ < 0 ? corio_strerror((int)v_) : "ok", #err);                                        \
    } while (0)

/* A call that must succeed (return >= 0). */
#define CHECK_OK(expr)                                                                                       \
    do {                                                                                                     \
        long long v_ = (long long)(expr);                                                                    \
        if (v_ < 0)                                                                                          \
            test_fail(__FILE__, __LINE__, "%s failed: %lld (%s)", #expr, v_, corio_strerror((int)v_));       \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *sa_ = (a), *sb_ = (b);                                                                   \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                           \
            test_fail(__FILE__, __LINE__, "CHECK_STR(%s, %s) failed: \"%s\" != \"%s\"", #a, #b,              \
                      sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                           \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                                   \
    do {                                                                                                     \
        if (memcmp((a), (b), (n)) != 0)                                                                      \
            test_fail(__FILE__, __LINE__, "CHECK_MEM(%s, %s, %s) failed", #a, #b, #n);                       \
    } while (0)

/* TEST_TSAN is 1 in a ThreadSanitizer build (cmake -DCORIO_TSAN=ON, make
 * test-tsan), else 0.  TSan runs the code several times slower (and `ctest
 * -j` runs two such tests side by side), so a test whose expectations
 * assume full speed (work to finish within a time-out) scales them by
 * TEST_SLOWDOWN; lower bounds (a time-out must not fire early) stay as
 * they are.  A test that cannot work under TSan at all would SKIP when
 * TEST_TSAN is set (none needs to today). */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif
#define TEST_SLOWDOWN (TEST_TSAN ? 4 : 1)

/* TEST_VALGRIND is true while the test runs under valgrind (make
 * test-valgrind); always false when <valgrind/valgrind.h> was missing at
 * build time.  Only for what valgrind cannot emulate faithfully, never for
 * timing (a test must cope with a slow machine anyway). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_VALGRIND (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TEST_VALGRIND
#define TEST_VALGRIND 0
#endif

/* The count for a scale test (100,000 waiters on one primitive): a tenth
 * under valgrind, which runs every task switch through its JIT and tracks
 * every stack, so the test walks the same paths under memcheck within its
 * time-out; the full count everywhere else. */
#define TEST_SCALE(n) (TEST_VALGRIND ? (n) / 10 : (n))

#define SKIP(why)                                                                                            \
    do {                                                                                                     \
        printf("SKIP: %s\n", why);                                                                           \
        fflush(stdout);                                                                                      \
        exit(77);                                                                                            \
    } while (0)

/* Run fn(arg) as the main task of a fresh loop; the loop must end cleanly
 * (status 0).  Returns the main task's result. */
void *test_run(corio_fn fn, void *arg);

/* Monotonic milliseconds, for generous upper bounds on elapsed time. */
uint64_t test_ms(void);

/* Open fds of this process (for "back to baseline" checks). */
int test_fd_count(void);

#endif
