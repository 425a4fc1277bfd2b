/*
 * Slow readers (issue 4): the write-progress timeout closes a client that
 * stops reading its response, while a client that reads slowly but keeps
 * making progress gets every byte, however long the whole response takes.
 */
#include "runner.h"

#include "corio/http.h"

/* Far more than loopback socket buffers hold (they grow to several MiB),
 * so a reader that stops really stalls the server's writes. */
#define BODY (48u << 20)

static char *body;

static void big(corio_http_request *req, corio_http_response *resp, void *arg)
{
    corio_http_response_send(resp, 200, "application/octet-stream", body, BODY);
}

static corio_http_server *start(void)
{
    /* 20 times the reader's pause below: the steady reader never comes
     * near it, even on one busy CPU */
    corio_http_server_config cfg = {.write_timeout_ms = 500};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, big, NULL, &cfg, &srv));
    return srv;
}

static corio_stream *ask(corio_http_server *srv)
{
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_http_server_port(srv), &s));
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_OK(corio_stream_write(s, req, sizeof req - 1));
    CHECK_OK(corio_stream_drain(s));
    return s;
}

/* Read the head, then the body in 1 MiB steps with a pause after each. */
static size_t read_body(corio_stream *s, unsigned pause_ms)
{
    const char *head;
    CHECK(corio_stream_readuntil(s, "\r\n\r\n", 4, &head) > 0);
    static char buf[1 << 20];
    size_t got = 0;
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            break;
        if (memcmp(buf, body + got, (size_t)n) != 0)
            test_fail(__FILE__, __LINE__, "bytes differ after offset %zu", got);
        got += (size_t)n;
        if (got == BODY)
            break;
        corio_sleep_ms(pause_ms);
    }
    return got;
}

static void *slow_main(void *arg)
{
    body = malloc(BODY);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)(i * 31 + 7);
    corio_http_server *srv = start();

    /* steady progress: 48 steps x 25 ms, far longer than the 500 ms timeout */
    corio_stream *s = ask(srv);
    uint64_t t0 = test_ms();
    CHECK_EQ(read_body(s, 25), BODY);
    CHECK(test_ms() - t0 >= 1000);
    corio_stream_close(s);

    /* a reader that stalls: the server gives up after ~500 ms of no progress */
    s = ask(srv);
    t0 = test_ms();
    while (corio_http_server_connections(srv) > 0 && test_ms() - t0 < 30000)
        CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(corio_http_server_connections(srv), 0);
    size_t got = read_body(s, 0);
    CHECK(got < BODY); /* what the socket buffers held, then the close */
    corio_stream_close(s);

    CHECK_OK(corio_http_server_close(srv, 1000));
    free(body);
    return NULL;
}

TEST(write_timeout_closes_a_stalled_reader_but_not_a_slow_one) { test_run(slow_main, NULL); }
