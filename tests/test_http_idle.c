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
/* Long enough for all NCONN clients to connect and get their answer
 * before the first of them times out (TEST_SLOWDOWN: under TSan that
 * takes several times longer). */
#define KEEPALIVE_MS (300 * TEST_SLOWDOWN)

static void hello(corio_http_request *req, corio_http_response *resp, void *arg)
{
    corio_http_respond(resp, 200, "text/plain", "Hello, world!", 13);
}

typedef struct client {
    uint16_t port;
    int result; /* 1: got the answer, then EOF from the server */
} client;

static int idle_clients; /* clients that got their answer and now wait (all on the loop thread) */

/* Connect, make one request and read its answer.  Returns the stream
 * (to close), with *answered telling whether the answer came; NULL if the
 * connection failed. */
static corio_stream *get_once(uint16_t port, bool *answered)
{
    corio_stream *s;
    *answered = false;
    if (corio_open_connection("127.0.0.1", port, &s) < 0)
        return NULL;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *answer;
    *answered = corio_write(s, req, sizeof req - 1) == 0 && corio_drain(s) == 0 &&
                corio_readuntil(s, "Hello, world!", 13, &answer) > 0;
    return s;
}

static void *client_task(void *arg)
{
    client *c = arg;
    bool answered;
    corio_stream *s = get_once(c->port, &answered);
    if (!s)
        return NULL;
    if (answered) {
        char b[16];
        idle_clients++;
        /* now idle: the next thing the server does is close us */
        corio_deadline d = corio_deadline_push(10000);
        ssize_t n = corio_read(s, b, sizeof b);
        corio_deadline_pop(d);
        c->result = n == 0 ? 1 : -1;
    }
    corio_stream_close(s);
    return NULL;
}

static void *idle_main(void *arg)
{
    int baseline = test_fd_count();
    corio_http_server_config cfg = {.keepalive_timeout_ms = KEEPALIVE_MS};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, hello, NULL, &cfg, &srv));
    static client c[NCONN];
    static corio_task *t[NCONN];
    uint64_t t0 = test_ms();
    for (int i = 0; i < NCONN; i++) {
        c[i] = (client){.port = corio_http_server_port(srv)};
        t[i] = corio_spawn(client_task, &c[i]);
        CHECK(t[i]);
    }
    /* while they idle the server holds their sockets but no task for them:
     * wait until every client idles and the server's tasks for them are
     * gone, for at most half the keep-alive time-out (none closed yet) */
    while ((idle_clients < NCONN || corio__loop()->live_count >= NCONN + 10) &&
           test_ms() - t0 < KEEPALIVE_MS / 2)
        CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(idle_clients, NCONN);
    CHECK_EQ(corio_http_server_connections(srv), NCONN);
    /* main + the 1,000 client tasks + the server's accept task(s): a task
     * per idle server connection would double this */
    CHECK(corio__loop()->live_count < NCONN + 10);
    CHECK_OK(corio_gather(t, NCONN, NULL));
    uint64_t el = test_ms() - t0;
    for (int i = 0; i < NCONN; i++)
        CHECK_EQ(c[i].result, 1);
    CHECK(el >= KEEPALIVE_MS && el < 8000 * TEST_SLOWDOWN); /* closed at the timeout, not before */
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
    while (corio_http_server_connections(srv) > 0 && test_ms() - t0 < 5000)
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
    uint64_t t0 = test_ms();
    CHECK_OK(corio_http_server_close(srv, 1000));
    CHECK(test_ms() - t0 < 500);
    CHECK_OK(corio_gather(t, NGONE, NULL));
    for (int i = 0; i < NGONE; i++)
        CHECK_EQ(c[i].result, 1); /* answered, then EOF */
    CHECK_EQ(test_fd_count(), baseline);
    return NULL;
}

TEST(server_close_releases_parked_connections_at_once) { test_run(close_parked_main, NULL); }
