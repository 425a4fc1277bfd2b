/*
 * Fail injection: CORIO_FAIL_AT=N makes the Nth allocation or wrapped
 * system call fail.  Sweeping N over a scenario that uses the whole stack
 * (loop, tasks, timers, thread pool, a server, a client, streams) proves
 * that every such failure ends in a clean error — never a crash, a hang,
 * or (under ASan) a leak.  Each N runs in its own child process.
 */
#include "runner.h"

#include "corio/http.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void echo_handler(corio_stream *s, void *arg)
{
    char buf[256];
    ssize_t n;
    while ((n = corio_read(s, buf, sizeof buf)) > 0) {
        if (corio_write(s, buf, (size_t)n) < 0 || corio_drain(s) < 0)
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
    r = corio_start_server("127.0.0.1", 0, echo_handler, NULL, NULL, &srv);
    if (r < 0)
        return (void *)(intptr_t)r;
    corio_stream *c = NULL;
    r = corio_open_connection("localhost", corio_server_port(srv), &c);
    if (r == 0) {
        char line[64];
        r = corio_write(c, "ping\n", 5);
        if (r == 0)
            r = corio_drain(c);
        if (r == 0) {
            ssize_t got = corio_readline(c, line, sizeof line);
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
    corio_http_respond(resp, 200, "text/plain", "hello", 5);
}

#define HELLO_RESP_END "\r\n\r\nhello"

static int expect_hellos(corio_stream *c, int count)
{
    for (int i = 0; i < count; i++) {
        const char *p;
        ssize_t len = corio_readuntil(c, HELLO_RESP_END, strlen(HELLO_RESP_END), &p);
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
    r = corio_open_connection("127.0.0.1", corio_http_server_port(srv), &c);
    static const char get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    if (r == 0) {
        r = corio_write(c, get, strlen(get));
        if (r == 0)
            r = expect_hellos(c, 1);
        if (r == 0)
            r = corio_sleep_ms(20); /* the server parks the connection */
        if (r == 0)
            r = corio_write(c, get, strlen(get));
        if (r == 0)
            r = corio_write(c, get, strlen(get));
        if (r == 0)
            r = expect_hellos(c, 2);
        corio_stream_close(c);
    }
    int rc = corio_http_server_close(srv, 100);
    return (void *)(intptr_t)(r < 0 ? r : rc);
}

typedef void *(*scenario_fn)(void *);

/* Run fn with the 1st..max-th allocation or system call failing, each in
 * a child process: every run must succeed or end in a clean error. */
static void sweep(scenario_fn fn, int max)
{
    int clean_errors = 0, successes = 0;
    for (int n = 1; n <= max; n++) {
        pid_t pid = fork();
        if (pid == 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", n);
            setenv("CORIO_FAIL_AT", v, 1);
            alarm(20);
            void *res = NULL;
            int r = corio_run(NULL, fn, NULL, &res);
            /* exit(), not _exit(): LeakSanitizer checks at exit */
            exit(r < 0 || (intptr_t)res < 0 ? 3 : 0);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st))
            test_fail(__FILE__, __LINE__, "CORIO_FAIL_AT=%d: killed by signal %d%s", n, WTERMSIG(st),
                      WTERMSIG(st) == SIGALRM ? " (hang)" : "");
        if (WEXITSTATUS(st) == 0)
            successes++;
        else if (WEXITSTATUS(st) == 3)
            clean_errors++;
        else
            test_fail(__FILE__, __LINE__, "CORIO_FAIL_AT=%d: exit status %d", n, WEXITSTATUS(st));
    }
    printf("%d injected failures ended in a clean error, %d runs succeeded anyway\n", clean_errors, successes);
    /* the sweep must actually have hit failure paths */
    CHECK(clean_errors > 10);
    CHECK(successes > 0);
}

TEST(scenario_works_without_injection)
{
    CHECK_OK((intptr_t)test_run(scenario, NULL));
}

TEST(every_injected_failure_is_a_clean_error) { sweep(scenario, 80); }

TEST(http_scenario_works_without_injection)
{
    CHECK_OK((intptr_t)test_run(http_scenario, NULL));
}

TEST(every_injected_failure_in_http_is_a_clean_error) { sweep(http_scenario, 60); }
