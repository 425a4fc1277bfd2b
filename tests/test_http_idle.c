/*
 * Idle keep-alive connections (issue 4): 1,000 clients each make one
 * request and then stay silent; the server must close every one of them at
 * the keep-alive timeout, hold no task for them while they idle, and end
 * with the process's fd count back at its baseline.
 */
#include "runner.h"

#include "corio/http.h"
#include "internal.h"

#include <sys/resource.h>

#define NCONN 1000

static void hello(corio_http_request *req, corio_http_response *resp, void *arg)
{
    corio_http_response_send(resp, 200, "text/plain", "Hello, world!", 13);
}

typedef struct client {
    uint16_t port;
    int result;          /* 1: got the answer, then EOF from the server */
    uint64_t started_ms; /* before the connect */
    uint64_t eof_ms;     /* when the server's close arrived */
} client;

static int idle_clients;   /* clients that got their answer and now wait (all on the loop thread) */
static int closed_clients; /* idle clients whose connection the server has closed since */
static int idle_read_ms;   /* how long an idle client waits for the server's close */

/* Connect, make one request and read its answer.  Returns the stream
 * (to close), with *answered telling whether the answer came; NULL if the
 * connection failed. */
static corio_stream *get_once(uint16_t port, bool *answered)
{
    corio_stream *s;
    *answered = false;
    if (corio_stream_connect("127.0.0.1", port, &s) < 0)
        return NULL;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *answer;
    *answered = corio_stream_write(s, req, sizeof req - 1) == 0 && corio_stream_drain(s) == 0 &&
                corio_stream_readuntil(s, "Hello, world!", 13, &answer) > 0;
    return s;
}

static void *client_task(void *arg)
{
    client *c = arg;
    bool answered;
    c->started_ms = test_ms();
    corio_stream *s = get_once(c->port, &answered);
    if (!s)
        return NULL;
    if (answered) {
        char b[16];
        idle_clients++;
        /* now idle: the next thing the server does is close us */
        corio_deadline d = corio_deadline_push(idle_read_ms ? idle_read_ms : 60000);
        ssize_t n = corio_stream_read(s, b, sizeof b);
        corio_deadline_pop(d);
        c->eof_ms = test_ms();
        c->result = n == 0 ? 1 : -1;
        closed_clients++;
    }
    corio_stream_close(s);
    return NULL;
}

/* Start NCONN clients against srv; return once every one of them idles
 * after its answer and the server holds no task for them, or as soon as
 * the server has closed one of them (the time-out fired first: the caller's
 * checks then fail). */
static void start_idle_clients(corio_http_server *srv, client *c, corio_task **t)
{
    idle_clients = closed_clients = 0;
    for (int i = 0; i < NCONN; i++) {
        c[i] = (client){.port = corio_http_server_port(srv)};
        t[i] = corio_spawn(client_task, &c[i]);
        CHECK(t[i]);
    }
    /* main + the 1,000 client tasks + the server's accept task(s): a task
     * per idle server connection would double this */
    while ((idle_clients < NCONN || corio__loop()->live_count >= NCONN + 10) && closed_clients == 0)
        CHECK_OK(corio_sleep_ms(5));
}

/* The time-out under test must outlast the setup (every client connected,
 * answered and idle) or the first connections close before the last ones
 * idle.  How long the setup takes depends on the machine and its load (on
 * one busy CPU it takes several times longer), so it is measured first,
 * against a server whose time-out cannot fire, and the time-out is set to
 * ten times that: no clock budget in this test is tighter than that. */
static void *idle_main(void *arg)
{
    (void)arg;
    int baseline = test_fd_count();
    static client c[NCONN];
    static corio_task *t[NCONN];
    corio_http_server *srv;

    corio_http_server_config slow = {.keepalive_timeout_ms = 600000};
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, hello, NULL, &slow, &srv));
    uint64_t t0 = test_ms();
    start_idle_clients(srv, c, t);
    uint64_t setup_ms = test_ms() - t0;
    CHECK_EQ(closed_clients, 0);
    CHECK_OK(corio_http_server_close(srv, 60000)); /* closes the parked connections at once */
    CHECK_OK(corio_gather(t, NCONN, NULL));
    CHECK_EQ(test_fd_count(), baseline);

    int keepalive_ms = (int)(setup_ms * 10 > 300 ? setup_ms * 10 : 300);
    idle_read_ms = keepalive_ms + 60000;
    printf("setup of %d idle clients: %llu ms; keep-alive time-out under test: %d ms\n", NCONN,
           (unsigned long long)setup_ms, keepalive_ms);
    corio_http_server_config cfg = {.keepalive_timeout_ms = keepalive_ms};
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, hello, NULL, &cfg, &srv));
    t0 = test_ms();
    start_idle_clients(srv, c, t);
    /* all idle at once, none closed yet: the server holds their sockets
     * but no task for them */
    CHECK_EQ(closed_clients, 0);
    CHECK_EQ(idle_clients, NCONN);
    CHECK_EQ(corio_http_server_connections(srv), NCONN);
    CHECK(corio__loop()->live_count < NCONN + 10);
    CHECK_OK(corio_gather(t, NCONN, NULL));
    for (int i = 0; i < NCONN; i++) {
        CHECK_EQ(c[i].result, 1);
        /* closed at the time-out, not before: the server armed it after
         * answering, by the loop's clock read after a poll that followed
         * t0 (every accept waits for one); and not long after: the close
         * of a thousand connections at once takes far less than the bound
         * even on one busy CPU */
        CHECK(c[i].eof_ms - t0 >= (uint64_t)keepalive_ms);
        CHECK(c[i].eof_ms - c[i].started_ms < (uint64_t)keepalive_ms + 30000);
    }
    CHECK_EQ(corio_http_server_connections(srv), 0);
    CHECK_OK(corio_http_server_close(srv, 1000));
    CHECK_EQ(test_fd_count(), baseline);
    return NULL;
}

TEST(thousand_idle_keepalive_connections_close_at_the_timeout)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 2 * NCONN + 100)
        SKIP("RLIMIT_NOFILE hard limit too low for 2,000 sockets");
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    test_run(idle_main, NULL);
}

/* Parked connections whose clients go away: half reset (RST, SO_LINGER 0),
 * half close (FIN).  The server notices each one while it holds no task
 * for it, and releases every socket at once, long before the keep-alive
 * timeout. */
#define NGONE 200
static client gone[NGONE];
static void *gone_client(void *arg)
{
    client *c = arg;
    bool answered;
    corio_stream *s = get_once(c->port, &answered);
    if (!s)
        return NULL;
    if (answered) {
        c->result = 1;
        corio_sleep_ms(50); /* the server parks the connection */
        if ((c - gone) % 2) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(corio_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
    }
    corio_stream_close(s);
    return NULL;
}

static void *gone_main(void *arg)
{
    (void)arg;
    int baseline = test_fd_count();
    corio_http_server_config cfg = {.keepalive_timeout_ms = 60000};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, hello, NULL, &cfg, &srv));
    client *c = gone;
    static corio_task *t[NGONE];
    uint64_t t0 = test_ms();
    for (int i = 0; i < NGONE; i++) {
        c[i] = (client){.port = corio_http_server_port(srv)};
        t[i] = corio_spawn(gone_client, &c[i]);
        CHECK(t[i]);
    }
    CHECK_OK(corio_gather(t, NGONE, NULL));
    for (int i = 0; i < NGONE; i++)
        CHECK_EQ(c[i].result, 1);
    /* the event itself, with a ceiling far above what it takes on one busy CPU */
    while (corio_http_server_connections(srv) > 0 && test_ms() - t0 < 30000)
        CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(corio_http_server_connections(srv), 0);
    CHECK_OK(corio_http_server_close(srv, 1000));
    CHECK_EQ(test_fd_count(), baseline);
    return NULL;
}

TEST(parked_connections_whose_clients_reset_or_close_are_released) { test_run(gone_main, NULL); }

/* A server closed while many connections are parked closes them all at
 * once (no task needed to notice), and the fd count returns to baseline. */
static void *close_parked_main(void *arg)
{
    (void)arg;
    int baseline = test_fd_count();
    corio_http_server_config cfg = {.keepalive_timeout_ms = 60000};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, hello, NULL, &cfg, &srv));
    static client c[NGONE];
    static corio_task *t[NGONE];
    for (int i = 0; i < NGONE; i++) {
        c[i] = (client){.port = corio_http_server_port(srv)};
        t[i] = corio_spawn(client_task, &c[i]); /* waits for the server's close */
        CHECK(t[i]);
    }
    while (corio_http_server_connections(srv) < NGONE || corio__loop()->live_count > NGONE + 10)
        CHECK_OK(corio_sleep_ms(5));
    CHECK_OK(corio_sleep_ms(50));
    /* at once: well before the grace period, which a close that had to
     * wait for a task per connection would use up */
    uint64_t t0 = test_ms();
    CHECK_OK(corio_http_server_close(srv, 20000));
    CHECK(test_ms() - t0 < 10000);
    CHECK_OK(corio_gather(t, NGONE, NULL));
    for (int i = 0; i < NGONE; i++)
        CHECK_EQ(c[i].result, 1); /* answered, then EOF */
    CHECK_EQ(test_fd_count(), baseline);
    return NULL;
}

TEST(server_close_releases_parked_connections_at_once) { test_run(close_parked_main, NULL); }
