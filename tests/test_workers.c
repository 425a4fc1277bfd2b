/*
 * One loop per core (src/core/workers.c, src/io/workers_run.c and the HTTP
 * server's workers, src/http/server.c): every worker runs main_fn once with
 * its own index on its own loop, the loops reach each other, a stop (call
 * or SIGTERM) wakes every waiter, a failing worker is reported while the
 * others run on, pinning puts each worker on its CPU; the HTTP server with
 * workers = 2 serves from both, closes every worker gracefully, and starts
 * all or nothing.
 */
#include "runner.h"

#include "corio/http.h"
#include "failinject.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* corio_workers_run                                                   */
/* ------------------------------------------------------------------ */

static atomic_uint seen_mask;
static atomic_uint runs;

static void *index_main(void *arg)
{
    (void)arg;
    int i = corio_worker_index();
    CHECK(i >= 0 && i < 3);
    CHECK_EQ(corio_worker_count(), 3u);
    for (unsigned k = 0; k < 3; k++)
        CHECK(corio_worker_loop(k) != NULL);
    CHECK(corio_worker_loop(3) == NULL);
    atomic_fetch_or(&seen_mask, 1u << i);
    atomic_fetch_add(&runs, 1);
    return (void *)(intptr_t)(100 + i);
}

TEST(each_worker_runs_main_once_with_its_own_index)
{
    corio_workers_config cfg = {.count = 3};
    corio_outcome out[3];
    memset(out, 0xff, sizeof out);
    CHECK_OK(corio_workers_run(&cfg, index_main, NULL, out));
    CHECK_EQ(atomic_load(&runs), 3u);
    CHECK_EQ(atomic_load(&seen_mask), 7u);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ((intptr_t)out[i].result, 100 + i);
        CHECK_EQ(out[i].error, 0);
    }
    /* Back to a plain thread. */
    CHECK_EQ(corio_worker_index(), -1);
    CHECK_EQ(corio_worker_count(), 0u);
    CHECK(corio_worker_loop(0) == NULL);
}

/* Worker 0 posts a call to every worker's loop; each call notes the
 * worker it ran on, and the last one stops the group. */
static int ran_on[4];
static atomic_uint calls_done;

static void note_worker(void *arg)
{
    intptr_t slot = (intptr_t)arg;
    ran_on[slot] = corio_worker_index();
    if (atomic_fetch_add(&calls_done, 1) + 1 == 4)
        CHECK_OK(corio_workers_stop());
}

static void *call_main(void *arg)
{
    (void)arg;
    if (corio_worker_index() == 0)
        for (intptr_t i = 0; i < 4; i++)
            CHECK_OK(corio_loop_ref_call_soon(corio_worker_loop((unsigned)i), note_worker, (void *)i));
    return (void *)(intptr_t)corio_workers_wait_stop();
}

TEST(worker_loop_call_soon_reaches_each_worker)
{
    corio_workers_config cfg = {.count = 4};
    corio_outcome out[4];
    CHECK_OK(corio_workers_run(&cfg, call_main, NULL, out));
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(ran_on[i], i);
        CHECK_EQ((intptr_t)out[i].result, 0); /* wait_stop: 0 for corio_workers_stop */
    }
}

/* Several tasks of every worker wait; one stop wakes them all; a wait after
 * the stop returns at once. */
static atomic_uint woken;

static void *waiter_task(void *arg)
{
    (void)arg;
    CHECK_EQ(corio_workers_wait_stop(), 0);
    atomic_fetch_add(&woken, 1);
    return NULL;
}

static void *many_waiters_main(void *arg)
{
    (void)arg;
    corio_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = corio_spawn(waiter_task, NULL);
    corio_yield(); /* they all park */
    if (corio_worker_index() == 1) {
        CHECK_OK(corio_workers_stop());
        CHECK_OK(corio_workers_stop()); /* idempotent */
    }
    CHECK_EQ(corio_workers_wait_stop(), 0);
    for (int i = 0; i < 3; i++)
        CHECK_OK(corio_task_join(t[i], NULL));
    CHECK_EQ(corio_workers_wait_stop(), 0); /* after the stop: at once */
    return NULL;
}

TEST(stop_wakes_every_waiter_of_every_worker)
{
    corio_workers_config cfg = {.count = 3};
    CHECK_OK(corio_workers_run(&cfg, many_waiters_main, NULL, NULL));
    CHECK_EQ(atomic_load(&woken), 9u);
}

/* A waiter can be cancelled; the stop still reaches the others. */
static void *cancelled_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)corio_workers_wait_stop();
}

static void *cancel_wait_main(void *arg)
{
    (void)arg;
    if (corio_worker_index() == 0) {
        corio_task *t = corio_spawn(cancelled_waiter, NULL);
        corio_yield();
        corio_task_cancel(t);
        void *res;
        CHECK_OK(corio_task_join(t, &res));
        CHECK_EQ((intptr_t)res, -ECANCELED);
        CHECK_OK(corio_workers_stop());
    }
    CHECK_EQ(corio_workers_wait_stop(), 0);
    return NULL;
}

TEST(wait_stop_can_be_cancelled)
{
    corio_workers_config cfg = {.count = 2};
    CHECK_OK(corio_workers_run(&cfg, cancel_wait_main, NULL, NULL));
}

static atomic_int stop_signal[2];

static void *sigterm_main(void *arg)
{
    (void)arg;
    int i = corio_worker_index();
    if (i == 0)
        CHECK_EQ(kill(getpid(), SIGTERM), 0);
    stop_signal[i] = corio_workers_wait_stop();
    return NULL;
}

TEST(sigterm_stops_every_worker)
{
    corio_workers_config cfg = {.count = 2};
    CHECK_OK(corio_workers_run(&cfg, sigterm_main, NULL, NULL));
    CHECK_EQ(atomic_load(&stop_signal[0]), SIGTERM);
    CHECK_EQ(atomic_load(&stop_signal[1]), SIGTERM);
    /* The disposition is the default one again. */
    struct sigaction sa;
    CHECK_OK(sigaction(SIGTERM, NULL, &sa));
    CHECK(sa.sa_handler == SIG_DFL);
    CHECK_OK(sigaction(SIGINT, NULL, &sa));
    CHECK(sa.sa_handler == SIG_DFL);
}

/* keep_signals: the signals are left to the program. */
static void *keep_signals_main(void *arg)
{
    (void)arg;
    if (corio_worker_index() == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        corio_signal_watch *w = corio_signal_watch_open(&set);
        CHECK(w != NULL); /* not claimed by the group */
        corio_signal_watch_close(w);
    }
    return NULL;
}

TEST(keep_signals_leaves_sigterm_to_the_program)
{
    corio_workers_config cfg = {.count = 2, .keep_signals = true};
    CHECK_OK(corio_workers_run(&cfg, keep_signals_main, NULL, NULL));
}

/* Capture what fd 2 receives while fn runs. */
static int capture_start(int *saved)
{
    char path[] = "/tmp/corio-workers-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    fflush(stderr);
    *saved = dup(2);
    dup2(fd, 2);
    return fd;
}

static void capture_end(int fd, int saved, char *buf, size_t cap)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    memset(buf, 0, cap);
    CHECK(pread(fd, buf, cap - 1, 0) >= 0);
    close(fd);
}

static void noop(void *arg) { (void)arg; }

/* Worker 0 waits until worker `who`'s loop has ended (its reference says
 * so), with a generous bound. */
static void wait_loop_gone(unsigned who)
{
    uint64_t t0 = test_ms();
    while (corio_loop_ref_call_soon(corio_worker_loop(who), noop, NULL) != -ESHUTDOWN) {
        CHECK(test_ms() - t0 < 30000);
        corio_sleep_ms(1);
    }
}

static atomic_bool two_served;

static void stop_from_worker(void *arg)
{
    (void)arg;
    atomic_store(&two_served, corio_worker_index() == 2);
    CHECK_OK(corio_workers_stop());
}

static void *failing_main(void *arg)
{
    (void)arg;
    int i = corio_worker_index();
    if (i == 1)
        return corio_fail(-EIO);
    if (i == 0) {
        wait_loop_gone(1);
        /* Worker 2 still serves: it answers and stops the group. */
        CHECK_OK(corio_loop_ref_call_soon(corio_worker_loop(2), stop_from_worker, NULL));
    }
    CHECK_EQ(corio_workers_wait_stop(), 0);
    return (void *)(intptr_t)i;
}

TEST(failing_worker_is_reported_and_the_others_run_on)
{
    corio_workers_config cfg = {.count = 3};
    corio_outcome out[3];
    int saved;
    int fd = capture_start(&saved);
    int r = corio_workers_run(&cfg, failing_main, NULL, out);
    char buf[4096];
    capture_end(fd, saved, buf, sizeof buf);
    CHECK_ERR(r, -EIO);
    CHECK(atomic_load(&two_served));
    CHECK_EQ(out[0].error, 0);
    CHECK_EQ((intptr_t)out[0].result, 0);
    CHECK_EQ(out[1].error, -EIO);
    CHECK_EQ(out[2].error, 0);
    CHECK_EQ((intptr_t)out[2].result, 2);
    char want[200];
    snprintf(want, sizeof want, "corio: worker 1 of 3 failed: %s\n", corio_strerror(-EIO));
    CHECK_STR(buf, want);
}

/* A worker whose tasks all wait for nothing is reported stalled: the
 * group's references to the loops do not hide a stall. */
static void *stalling_main(void *arg)
{
    (void)arg;
    int i = corio_worker_index();
    if (i == 1) {
        corio_event never;
        corio_event_init(&never);
        (void)corio_event_wait(&never);
        return NULL;
    }
    wait_loop_gone(1);
    return NULL;
}

TEST(stalled_worker_is_reported)
{
    corio_workers_config cfg = {.count = 2};
    corio_outcome out[2];
    int saved;
    int fd = capture_start(&saved);
    int r = corio_workers_run(&cfg, stalling_main, NULL, out);
    char buf[4096];
    capture_end(fd, saved, buf, sizeof buf);
    CHECK_ERR(r, -CORIO_EDEADLOCK);
    CHECK_EQ(out[0].error, 0);
    CHECK_EQ(out[1].error, -CORIO_EDEADLOCK);
    CHECK(strstr(buf, "loop stalled"));
    char want[200];
    snprintf(want, sizeof want, "corio: worker 1 of 2 failed: %s\n", corio_strerror(-CORIO_EDEADLOCK));
    CHECK(strstr(buf, want));
}

static atomic_uint count_seen;

static void *count_main(void *arg)
{
    (void)arg;
    atomic_store(&count_seen, corio_worker_count());
    return NULL;
}

TEST(count_zero_is_the_cpu_count)
{
    cpu_set_t set;
    CHECK_OK(sched_getaffinity(0, sizeof set, &set));
    CHECK_OK(corio_workers_run(NULL, count_main, NULL, NULL));
    CHECK_EQ(atomic_load(&count_seen), (unsigned)CPU_COUNT(&set));
}

static int cpus_allowed[CPU_SETSIZE];
static int ncpus_allowed;
static atomic_int pinned_ok[3];

static void *pin_main(void *arg)
{
    (void)arg;
    int i = corio_worker_index();
    int want = cpus_allowed[i % ncpus_allowed];
    cpu_set_t set;
    CHECK_OK(pthread_getaffinity_np(pthread_self(), sizeof set, &set));
    CHECK_EQ(CPU_COUNT(&set), 1);
    CHECK(CPU_ISSET(want, &set));
    CHECK_EQ(sched_getcpu(), want);
    atomic_store(&pinned_ok[i], 1);
    return NULL;
}

TEST(pinning_puts_each_worker_on_its_cpu)
{
    cpu_set_t before;
    CHECK_OK(pthread_getaffinity_np(pthread_self(), sizeof before, &before));
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &before))
            cpus_allowed[ncpus_allowed++] = c;
    corio_workers_config cfg = {.count = 3, .pin_cpus = true};
    CHECK_OK(corio_workers_run(&cfg, pin_main, NULL, NULL));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(atomic_load(&pinned_ok[i]), 1);
    /* The calling thread's own affinity is back. */
    cpu_set_t after;
    CHECK_OK(pthread_getaffinity_np(pthread_self(), sizeof after, &after));
    CHECK(CPU_EQUAL(&before, &after));
}

/* SIGTERM already taken by another loop: nothing starts. */
static void *never_main(void *arg)
{
    (void)arg;
    CHECK(!"main_fn must not run");
    return NULL;
}

static void *holder_thread(void *arg)
{
    (void)arg;
    corio_workers_config cfg = {.count = 2};
    return (void *)(intptr_t)corio_workers_run(&cfg, never_main, NULL, NULL);
}

static void *hold_sigterm_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    corio_signal_watch *w = corio_signal_watch_open(&set);
    CHECK(w != NULL);
    /* corio_workers_run blocks: run it on a thread of its own (this loop
     * has nothing to do meanwhile, so joining it blocking is fine). */
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, holder_thread, NULL));
    void *r;
    CHECK_OK(pthread_join(th, &r));
    CHECK_EQ((intptr_t)r, -EBUSY);
    corio_signal_watch_close(w);
    return NULL;
}

TEST(signals_taken_elsewhere_start_nothing)
{
    int saved;
    int fd = capture_start(&saved);
    test_run(hold_sigterm_main, NULL);
    char buf[4096];
    capture_end(fd, saved, buf, sizeof buf);
    CHECK(strstr(buf, "corio: workers: cannot watch SIGINT and SIGTERM"));
}

/* ------------------------------------------------------------------ */
/* The HTTP server's workers                                           */
/* ------------------------------------------------------------------ */

static atomic_uint served_by[2];
static atomic_uint in_flight_on[2];
static atomic_bool close_started;

/* "/" answers with the worker's index; "/slow" waits until the server's
 * close has begun, then answers: a request in flight during the close. */
static void http_handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    int i = corio_worker_index();
    CHECK(i == 0 || i == 1);
    atomic_fetch_add(&served_by[i], 1);
    if (req->path.len == 5 && !memcmp(req->path.ptr, "/slow", 5)) {
        atomic_fetch_add(&in_flight_on[i], 1);
        uint64_t t0 = test_ms();
        while (!atomic_load(&close_started)) {
            CHECK(test_ms() - t0 < 30000);
            CHECK_OK(corio_sleep_ms(1));
        }
        CHECK_OK(corio_sleep_ms(20)); /* still answering after the close began */
        (void)corio_http_response_send(resp, 200, "text/plain", "done", 4);
        return;
    }
    char body[2] = {(char)('0' + i), 0};
    (void)corio_http_response_send(resp, 200, "text/plain", body, 1);
}

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        CHECK(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Read to EOF (every request here asks for Connection: close). */
static size_t recv_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        CHECK(n + 1 < cap);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        CHECK(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = 0;
    return n;
}

typedef struct http_ctx {
    uint16_t port;
    int conns;
    unsigned answered[2];
} http_ctx;

static void *many_clients(void *arg)
{
    http_ctx *c = arg;
    for (int k = 0; k < c->conns; k++) {
        int fd = connect_to(c->port);
        CHECK(fd >= 0);
        send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        char buf[1024];
        recv_all(fd, buf, sizeof buf);
        close(fd);
        CHECK(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
        const char *body = strstr(buf, "\r\n\r\n");
        CHECK(body);
        CHECK(!strcmp(body + 4, "0") || !strcmp(body + 4, "1"));
        c->answered[body[4] - '0']++;
    }
    return NULL;
}

static void *http_both_main(void *arg)
{
    (void)arg;
    corio_http_server_config cfg = {.workers = 2};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, http_handler, NULL, &cfg, &srv));
    CHECK_EQ(corio_worker_index(), 0); /* the caller's loop is worker 0 */
    CHECK_EQ(corio_worker_count(), 2u);
    int fds[4];
    CHECK_EQ(corio_http_server_listen_fds(srv, fds, 4), 2u); /* one socket per worker */
    CHECK(fds[0] != fds[1]);
    http_ctx c = {.port = corio_http_server_port(srv), .conns = TEST_SCALE(200)};
    CHECK(c.port != 0);
    CHECK_OK(corio_to_thread(many_clients, &c, NULL));
    CHECK_EQ(c.answered[0] + c.answered[1], (unsigned)c.conns);
    /* SO_REUSEPORT hashes each connection's source port: over this many,
     * both workers get some. */
    CHECK(c.answered[0] > 0);
    CHECK(c.answered[1] > 0);
    CHECK_EQ(atomic_load(&served_by[0]), c.answered[0]);
    CHECK_EQ(atomic_load(&served_by[1]), c.answered[1]);
    CHECK_OK(corio_http_server_close(srv, 1000));
    CHECK_EQ(corio_worker_index(), -1); /* back to a plain loop */
    CHECK_ERR(connect_to(c.port), -ECONNREFUSED);
    return NULL;
}

TEST(http_two_workers_both_serve)
{
    int fds0 = test_fd_count();
    test_run(http_both_main, NULL);
    CHECK_EQ(test_fd_count(), fds0);
}

#define SLOW_CONNS 40

typedef struct slow_ctx {
    uint16_t port;
    int fds[SLOW_CONNS];
    atomic_bool sent;
    int done;
} slow_ctx;

static void *slow_clients_send(void *arg)
{
    slow_ctx *c = arg;
    for (int k = 0; k < SLOW_CONNS; k++) {
        c->fds[k] = connect_to(c->port);
        CHECK(c->fds[k] >= 0);
        send_all(c->fds[k], "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    return NULL;
}

static void *slow_clients_read(void *arg)
{
    slow_ctx *c = arg;
    for (int k = 0; k < SLOW_CONNS; k++) {
        char buf[1024];
        recv_all(c->fds[k], buf, sizeof buf);
        close(c->fds[k]);
        CHECK(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
        CHECK(strstr(buf, "Connection: close\r\n"));
        const char *body = strstr(buf, "\r\n\r\n");
        CHECK(body && !strcmp(body + 4, "done"));
        c->done++;
    }
    return NULL;
}

static void *reader_task(void *arg)
{
    CHECK_OK(corio_to_thread(slow_clients_read, arg, NULL));
    return NULL;
}

static void *http_grace_main(void *arg)
{
    (void)arg;
    corio_http_server_config cfg = {.workers = 2};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, http_handler, NULL, &cfg, &srv));
    slow_ctx c = {.port = corio_http_server_port(srv)};
    CHECK_OK(corio_to_thread(slow_clients_send, &c, NULL));
    /* Every request is in a handler, on both workers. */
    uint64_t t0 = test_ms();
    while (atomic_load(&in_flight_on[0]) + atomic_load(&in_flight_on[1]) < SLOW_CONNS) {
        CHECK(test_ms() - t0 < 30000);
        CHECK_OK(corio_sleep_ms(1));
    }
    CHECK(atomic_load(&in_flight_on[0]) > 0);
    CHECK(atomic_load(&in_flight_on[1]) > 0);
    CHECK_EQ(corio_http_server_connections(srv), (unsigned)SLOW_CONNS);
    corio_task *reader = corio_spawn(reader_task, &c);
    atomic_store(&close_started, true);
    CHECK_OK(corio_http_server_close(srv, 30000));
    CHECK_OK(corio_task_join(reader, NULL));
    CHECK_EQ(c.done, SLOW_CONNS);
    return NULL;
}

TEST(http_close_with_grace_finishes_requests_on_every_worker)
{
    int fds0 = test_fd_count();
    test_run(http_grace_main, NULL);
    CHECK_EQ(test_fd_count(), fds0);
}

static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f);
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void *http_port_in_use_main(void *arg)
{
    (void)arg;
    /* A plain listener (no SO_REUSEPORT) holds the port. */
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(busy, (struct sockaddr *)&a, sizeof a));
    CHECK_OK(listen(busy, 8));
    socklen_t alen = sizeof a;
    CHECK_OK(getsockname(busy, (struct sockaddr *)&a, &alen));
    int fds0 = test_fd_count();
    int threads0 = thread_count();
    corio_http_server_config cfg = {.workers = 2};
    corio_http_server *srv = NULL;
    CHECK_ERR(corio_http_server_start("127.0.0.1", ntohs(a.sin_port), http_handler, NULL, &cfg, &srv),
              -EADDRINUSE);
    CHECK(srv == NULL);
    CHECK_EQ(test_fd_count(), fds0);
    CHECK_EQ(thread_count(), threads0);
    CHECK_EQ(corio_worker_index(), -1);
    close(busy);
    return NULL;
}

TEST(http_workers_port_in_use_starts_nothing) { test_run(http_port_in_use_main, NULL); }

static void *http_misuse_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = NULL;
    corio_http_server_config cfg = {.workers = 2};
    CHECK_ERR(corio_http_server_new(http_handler, NULL, &cfg, &srv), -EINVAL);
    cfg.workers = 1025;
    CHECK_ERR(corio_http_server_start("127.0.0.1", 0, http_handler, NULL, &cfg, &srv), -EINVAL);
    CHECK(srv == NULL);
    return NULL;
}

TEST(http_workers_misuse) { test_run(http_misuse_main, NULL); }

/* Worker 1's listen fails (injected): worker 0's socket is closed again,
 * no thread is left, the error comes back. */
static void *http_worker1_fails_main(void *arg)
{
    (void)arg;
    int fds0 = test_fd_count();
    corio_http_server_config cfg = {.workers = 2};
    corio_http_server *srv = NULL;
    corio_fi_fail_next("listen", 2); /* worker 0's is the first */
    int r = corio_http_server_start("127.0.0.1", 0, http_handler, NULL, &cfg, &srv);
    CHECK(r < 0);
    CHECK(srv == NULL);
    CHECK_EQ(test_fd_count(), fds0);
    CHECK_EQ(corio_worker_index(), -1);
    return NULL;
}

TEST(http_worker_start_failure_starts_nothing)
{
    int threads0 = thread_count();
    test_run(http_worker1_fails_main, NULL);
    if (!TEST_TSAN) /* TSan starts a thread of its own with the first one */
        CHECK_EQ(thread_count(), threads0);
}
