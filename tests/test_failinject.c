/*
 * Fail injection (tests/failinject.h): in the test builds every allocation
 * and system call the library makes goes through a wrapper that can make
 * it fail.  Sweeping "the Nth call fails" over every call of a scenario
 * that uses the whole stack (loop, tasks, timers, thread pool, a server, a
 * client, streams, DNS, HTTP, signals) proves that every such failure ends in a
 * clean error: never a crash, a hang, or (under ASan) a leak.  Each N runs
 * in its own child process.
 */
#include "runner.h"

#include "corio/http.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void echo_handler(corio_stream *s, void *arg)
{
    char buf[256];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0) {
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            return;
    }
}

static void *sleeper(void *arg)
{
    corio_sleep_ms(1);
    return arg;
}

/* The scenario: returns 0 when everything worked, an error otherwise. */
static void *scenario(void *arg)
{
    corio_task *t[4];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        t[i] = corio_spawn(sleeper, NULL);
        if (!t[i])
            break;
        n++;
    }
    int r = corio_gather(t, (size_t)n, NULL);
    if (n < 4)
        return (void *)(intptr_t)-ENOMEM;
    if (r < 0)
        return (void *)(intptr_t)r;
    corio_server *srv;
    r = corio_server_start("127.0.0.1", 0, echo_handler, NULL, NULL, &srv);
    if (r < 0)
        return (void *)(intptr_t)r;
    corio_stream *c = NULL;
    r = corio_stream_connect("localhost", corio_server_port(srv), &c);
    if (r == 0) {
        char line[64];
        r = corio_stream_write(c, "ping\n", 5);
        if (r == 0)
            r = corio_stream_drain(c);
        if (r == 0) {
            ssize_t got = corio_stream_readline(c, line, sizeof line);
            r = got == 5 && !memcmp(line, "ping\n", 5) ? 0 : (got < 0 ? (int)got : -EPROTO);
        }
        corio_stream_close(c);
    }
    int rc = corio_server_close(srv, 100);
    return (void *)(intptr_t)(r < 0 ? r : rc);
}

/* The HTTP server's connection life: a request, the connection parked
 * (no task, no buffers) between requests, woken by the next one, a
 * pipelined pair.  Returns 0 when every answer came back exact. */
static void hello_handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req;
    (void)arg;
    corio_http_response_send(resp, 200, "text/plain", "hello", 5);
}

#define HELLO_RESP_END "\r\n\r\nhello"

static int expect_hellos(corio_stream *c, int count)
{
    for (int i = 0; i < count; i++) {
        const char *p;
        ssize_t len = corio_stream_readuntil(c, HELLO_RESP_END, strlen(HELLO_RESP_END), &p);
        if (len < 0)
            return (int)len;
        if (len < 17 || memcmp(p, "HTTP/1.1 200 OK\r\n", 17) != 0)
            return -EPROTO;
    }
    return 0;
}

static void *http_scenario(void *arg)
{
    (void)arg;
    corio_http_server *srv;
    int r = corio_http_server_start("127.0.0.1", 0, hello_handler, NULL, NULL, &srv);
    if (r < 0)
        return (void *)(intptr_t)r;
    corio_stream *c = NULL;
    r = corio_stream_connect("127.0.0.1", corio_http_server_port(srv), &c);
    static const char get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    if (r == 0) {
        r = corio_stream_write(c, get, strlen(get));
        if (r == 0)
            r = expect_hellos(c, 1);
        if (r == 0)
            r = corio_sleep_ms(20); /* the server parks the connection */
        if (r == 0)
            r = corio_stream_write(c, get, strlen(get));
        if (r == 0)
            r = corio_stream_write(c, get, strlen(get));
        if (r == 0)
            r = expect_hellos(c, 2);
        corio_stream_close(c);
    }
    int rc = corio_http_server_close(srv, 100);
    return (void *)(intptr_t)(r < 0 ? r : rc);
}

/* Files, a stream over a pipe, the thread pool and a cross-thread call:
 * the file layer's executors (the pool on epoll, the ring on io_uring),
 * src/io/anyfd.c's attempts and the loop references.  Works in the
 * directory scenario_dir (made by the test). */
static char scenario_dir[64];

static void *square(void *arg) { return (void *)((intptr_t)arg * (intptr_t)arg); }

static void posted(void *arg) { *(int *)arg = 1; }

static int file_steps(void)
{
    char a[96], b[96], d[96];
    snprintf(a, sizeof a, "%s/a", scenario_dir);
    snprintf(b, sizeof b, "%s/b", scenario_dir);
    snprintf(d, sizeof d, "%s/d", scenario_dir);
    int r = corio_file_write_all(a, "hello, file\n", 12, 0600);
    if (r < 0)
        return r;
    r = corio_file_append(a, "more\n", 5);
    if (r < 0)
        return r;
    char *all = NULL;
    size_t len = 0;
    r = corio_file_read_all(a, 1024, &all, &len);
    if (r < 0)
        return r;
    r = len == 17 && !memcmp(all, "hello, file\nmore\n", 17) ? 0 : -EPROTO;
    free(all);
    if (r < 0)
        return r;
    int fd = corio_file_open(a, O_RDWR, 0);
    if (fd < 0)
        return fd;
    char buf[8];
    struct iovec iov[2] = {{buf, 3}, {buf + 3, 4}};
    struct stat st;
    ssize_t n = corio_file_pwrite(fd, "HE", 2, 0);
    if (n == 2)
        n = corio_file_pread(fd, buf, 5, 0);
    if (n == 5)
        n = memcmp(buf, "HEllo", 5) ? -EPROTO : corio_file_preadv(fd, iov, 2, 0);
    if (n == 7)
        n = corio_file_fstat(fd, &st) < 0 ? -EIO : (st.st_size == 17 ? corio_file_fsync(fd) : -EPROTO);
    int rc = corio_file_close(fd);
    if (n < 0)
        return (int)n;
    if (rc < 0)
        return rc;
    if ((r = corio_file_rename(a, b)) < 0 || (r = corio_file_stat(b, &st)) < 0 ||
        (r = corio_file_unlink(b)) < 0)
        return r;
    if ((r = corio_file_mkdir(d, 0700)) < 0)
        return r;
    return corio_file_rmdir(d);
}

static int pipe_steps(void)
{
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    corio_stream *w = corio_stream_from_fd(p[1]);
    if (!w) {
        close(p[0]);
        close(p[1]);
        return -ENOMEM;
    }
    corio_stream *rd = corio_stream_from_fd(p[0]);
    if (!rd) {
        close(p[0]);
        corio_stream_close(w);
        return -ENOMEM;
    }
    int r = corio_stream_write(w, "through a pipe\n", 15);
    if (r == 0)
        r = corio_stream_drain(w);
    char line[32];
    if (r == 0) {
        ssize_t got = corio_stream_readline(rd, line, sizeof line);
        r = got == 15 && !memcmp(line, "through a pipe\n", 15) ? 0 : (got < 0 ? (int)got : -EPROTO);
    }
    corio_stream_close(w);
    corio_stream_close(rd);
    return r;
}

static int thread_steps(void)
{
    void *res = NULL;
    int r = corio_to_thread(square, (void *)9, &res);
    if (r < 0)
        return r;
    if (res != (void *)81)
        return -EPROTO;
    corio_loop_ref *ref = corio_loop_ref_get();
    if (!ref)
        return -errno;
    int ran = 0;
    r = corio_loop_ref_call_soon(ref, posted, &ran);
    corio_loop_ref_release(ref);
    for (int i = 0; r == 0 && !ran && i < 1000; i++)
        r = corio_sleep_ms(1);
    return r < 0 ? r : (ran ? 0 : -EPROTO);
}

static void *files_scenario(void *arg)
{
    (void)arg;
    int r = file_steps();
    int r2 = pipe_steps();
    int r3 = thread_steps();
    return (void *)(intptr_t)(r < 0 ? r : r2 < 0 ? r2 : r3);
}

/* Signals (src/io/signal.c): a watch, a waiter task, a handler, a signal
 * from a pool thread, a wait that times out.  A signal is only raised once
 * corio has taken it (the default action would end the run). */
static void sig_hup(int signo, void *arg)
{
    (void)signo;
    corio_event_set(arg);
}

static void *sig_waiter(void *w) { return (void *)(intptr_t)corio_signal_watch_wait(w, 10000); }

static void *sig_kill_usr2(void *arg)
{
    (void)arg;
    kill(getpid(), SIGUSR2);
    return NULL;
}

static int sig_expect(int r, int sig) { return r == sig ? 0 : r < 0 ? r : -EIO; }

static void *signals_scenario(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    corio_signal_watch *w = corio_signal_watch_open(&set);
    if (!w)
        return (void *)(intptr_t)-errno;
    corio_event hup;
    corio_event_init(&hup);
    int r = corio_signal_handler_add(SIGHUP, sig_hup, &hup);
    if (r == 0) {
        raise(SIGHUP);
        corio_deadline d = corio_deadline_push(10000);
        r = corio_event_wait(&hup);
        corio_deadline_pop(d);
        corio_signal_handler_remove(SIGHUP);
    }
    corio_task *t = r == 0 ? corio_spawn(sig_waiter, w) : NULL;
    if (r == 0 && !t)
        r = -errno;
    if (t) {
        corio_yield();
        raise(SIGUSR1);
        void *res = NULL;
        r = corio_task_join(t, &res);
        if (r == 0)
            r = sig_expect((int)(intptr_t)res, SIGUSR1);
    }
    if (r == 0 && (r = corio_to_thread(sig_kill_usr2, NULL, NULL)) == 0)
        r = sig_expect(corio_signal_watch_wait(w, 10000), SIGUSR2);
    if (r == 0)
        r = corio_signal_wait(&set, 1); /* times out: 0 */
    corio_signal_watch_close(w);
    return (void *)(intptr_t)r;
}

typedef void *(*scenario_fn)(void *);

/* More wrapped calls than any scenario makes. */
#define MAX_CALLS 20000

/* Shared with the child processes: the call sites and function names of
 * the child's wrapped calls, in order (tests/failinject.h).  A site stays
 * 0 past the last call, so the parent knows which call failed even when
 * the child died. */
typedef struct sweep_trace {
    long calls;
    uintptr_t sites[MAX_CALLS];
    const char *fns[MAX_CALLS]; /* the same addresses in parent and child */
} sweep_trace;

/* Run fn in a child process with its nth wrapped call failing (0: none).
 * Returns the child's exit status: 0 the scenario worked, 3 it ended in a
 * clean error; fails the test on a crash, a hang or anything else (under
 * ASan, a leak makes the exit status 1). */
static int run_child(scenario_fn fn, long n, sweep_trace *tr)
{
    tr->calls = 0;
    memset(tr->sites, 0, sizeof tr->sites);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        corio_fi_trace(tr->sites, tr->fns, MAX_CALLS);
        corio_fi_fail_at(n);
        alarm(20);
        void *res = NULL;
        int r = corio_run(NULL, fn, NULL, &res);
        tr->calls = corio_fi_calls();
        /* exit(), not _exit(): LeakSanitizer checks at exit */
        exit(r < 0 || (intptr_t)res < 0 ? 3 : 0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    const char *what = n > 0 && n <= MAX_CALLS && tr->sites[n - 1] ? tr->fns[n - 1] : "none";
    /* The site as addr2line -e <test executable> wants it. */
    Dl_info di = {0};
    uintptr_t site = n > 0 && n <= MAX_CALLS ? tr->sites[n - 1] : 0;
    uintptr_t at = site && dladdr((void *)site, &di) ? site - (uintptr_t)di.dli_fbase : site;
    if (!WIFEXITED(st))
        test_fail(__FILE__, __LINE__, "call %ld (%s at %#lx) failing: killed by signal %d%s", n, what,
                  (unsigned long)at, WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (hang)" : "");
    if (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 3)
        test_fail(__FILE__, __LINE__, "call %ld (%s at %#lx) failing: exit status %d", n, what,
                  (unsigned long)at, WEXITSTATUS(st));
    return WEXITSTATUS(st);
}

/* Run fn once clean, counting its wrapped calls (allocations and system
 * calls, tests/failinject.h), then once more for each call with that one
 * call failing, each run in its own child process: every run must succeed
 * or end in a clean error.  Reports the distinct call sites the sweep made
 * fail: its injection points. */
static void sweep(scenario_fn fn)
{
    sweep_trace *tr = mmap(NULL, sizeof *tr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(tr != MAP_FAILED);
    CHECK_EQ(run_child(fn, 0, tr), 0);
    long total = tr->calls;
    CHECK(total > 0 && total < MAX_CALLS);
    /* A few calls more than the clean run made: a run whose timing differs
     * (one more wait) still has its last calls covered. */
    long last = total + 8;
    static uintptr_t sites[MAX_CALLS];
    static const char *fns[MAX_CALLS];
    long nsites = 0;
    int clean_errors = 0, successes = 0;
    for (long n = 1; n <= last; n++) {
        if (run_child(fn, n, tr) == 0)
            successes++;
        else
            clean_errors++;
        uintptr_t site = tr->sites[n - 1];
        if (!site)
            continue; /* this run made fewer calls: nothing failed */
        long k = 0;
        while (k < nsites && sites[k] != site)
            k++;
        if (k == nsites) {
            sites[nsites] = site;
            fns[nsites] = tr->fns[n - 1];
            nsites++;
        }
    }
    printf("%ld wrapped calls in a clean run; %d injected failures ended in a clean error, %d runs succeeded "
           "anyway; %ld distinct call sites failed:",
           total, clean_errors, successes, nsites);
    /* Per function: how many distinct sites failed. */
    for (long k = 0; k < nsites; k++) {
        if (!fns[k])
            continue;
        int same = 0;
        const char *name = fns[k];
        for (long m = k; m < nsites; m++)
            if (fns[m] && strcmp(fns[m], name) == 0) {
                same++;
                fns[m] = NULL;
            }
        printf(" %s %d", name, same);
    }
    printf("\n");
    munmap(tr, sizeof *tr);
    /* the sweep must actually have hit failure paths */
    CHECK(clean_errors > 10);
    CHECK(nsites > 10);
}

TEST(scenario_works_without_injection) { CHECK_OK((intptr_t)test_run(scenario, NULL)); }

TEST(every_injected_failure_is_a_clean_error) { sweep(scenario); }

TEST(http_scenario_works_without_injection) { CHECK_OK((intptr_t)test_run(http_scenario, NULL)); }

TEST(every_injected_failure_in_http_is_a_clean_error) { sweep(http_scenario); }

/* The files scenario in a fresh directory, removed afterwards with
 * whatever a failed run left there. */
static void with_scenario_dir(void (*body)(void))
{
    snprintf(scenario_dir, sizeof scenario_dir, "/tmp/corio-failinject-XXXXXX");
    CHECK(mkdtemp(scenario_dir) != NULL);
    body();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scenario_dir);
    CHECK_EQ(system(cmd), 0);
}

static void files_clean(void) { CHECK_OK((intptr_t)test_run(files_scenario, NULL)); }
static void files_sweep(void) { sweep(files_scenario); }

TEST(files_scenario_works_without_injection) { with_scenario_dir(files_clean); }

TEST(every_injected_failure_in_files_is_a_clean_error) { with_scenario_dir(files_sweep); }

TEST(signals_scenario_works_without_injection) { CHECK_OK((intptr_t)test_run(signals_scenario, NULL)); }

TEST(every_injected_failure_in_signals_is_a_clean_error) { sweep(signals_scenario); }
