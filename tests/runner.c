/*
 * The test runner's main(): runs the named tests (or all of them) of the
 * file it is linked with.  With exactly one test named it runs it in this
 * process (ctest's mode: ctest provides the process and the timeout);
 * otherwise each test runs in a forked child with an alarm as timeout, and
 * the runner prints one line per test and "N passed, M failed".
 */
#include "runner.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    test_fn fn;
} tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, test_fn fn, const char *file)
{
    (void)file;
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    _exit(1);
}

void *test_run(corio_fn fn, void *arg)
{
    void *res = NULL;
    int r = corio_run(NULL, fn, arg, &res);
    if (r != 0)
        test_fail(__FILE__, __LINE__, "corio_run failed: %d (%s)", r, corio_strerror(r));
    return res;
}

uint64_t test_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int test_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int run_forked(int i, unsigned timeout_s)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(timeout_s);
        tests[i].fn();
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    fprintf(stderr, "%s: killed by signal %d%s\n", tests[i].name, WTERMSIG(st),
            WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
    return 1;
}

/* The runner's own time limit for one test: a backstop under ctest's
 * TIMEOUT (tests/CMakeLists.txt), which memcheck's slowdown raises to
 * 600 s; hitting it gives a clearer message than ctest's kill. */
static unsigned test_timeout_s(void) { return TEST_VALGRIND ? 570 : 120; }

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_DFL); /* corio must never raise SIGPIPE, so the tests leave it fatal */
    if (argc == 2 && !strcmp(argv[1], "--list")) {
        for (int i = 0; i < ntests; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 2) {
        for (int i = 0; i < ntests; i++) {
            if (!strcmp(tests[i].name, argv[1])) {
                alarm(test_timeout_s());
                tests[i].fn();
                return 0;
            }
        }
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < ntests; i++) {
        bool selected = argc < 2;
        for (int a = 1; a < argc && !selected; a++)
            selected = !strcmp(argv[a], tests[i].name);
        if (!selected)
            continue;
        int st = run_forked(i, test_timeout_s());
        if (st == 0) {
            passed++;
            printf("PASS %s\n", tests[i].name);
        } else if (st == 77) {
            skipped++;
            printf("SKIP %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
