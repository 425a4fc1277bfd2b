/*
 * An unread request body (issue 4): the bytes already buffered with the
 * head do not count against max_drain, so a response that promised
 * keep-alive keeps it, and the request pipelined behind the body is
 * answered.  (Regression test for the drain allowance disagreeing with the
 * keep-alive decision.)
 */
#include "runner.h"

#include "corio/http.h"

static void ok(corio_http_request *req, corio_http_response *resp, void *arg)
{
    corio_http_response_send(resp, 200, "text/plain", "ok", 2); /* never reads the body */
}

static void *drain_main(void *arg)
{
    corio_http_server_config cfg = {.max_drain = 1024};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, ok, NULL, &cfg, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_http_server_port(srv), &s));
    static char req[4096];
    int n = snprintf(req, sizeof req, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1500\r\n\r\n");
    memset(req + n, 'b', 1500);
    n += 1500;
    n += snprintf(req + n, sizeof req - (size_t)n, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_OK(corio_stream_write(s, req, (size_t)n)); /* one write: body and next request arrive together */
    CHECK_OK(corio_stream_drain(s));
    int answers = 0;
    corio_deadline d = corio_deadline_push(5000);
    for (int i = 0; i < 2; i++) {
        const char *p;
        ssize_t len = corio_stream_readuntil(s, "\r\n\r\nok", 6, &p);
        if (len < 0)
            break;
        CHECK(strncmp(p, "HTTP/1.1 200 OK\r\n", 17) == 0);
        CHECK(!memmem(p, len, "Connection: close", 17));
        answers++;
    }
    corio_deadline_pop(d);
    CHECK_EQ(answers, 2);
    corio_stream_close(s);
    CHECK_OK(corio_http_server_close(srv, 1000));
    return NULL;
}

TEST(buffered_unread_body_keeps_the_promised_keep_alive) { test_run(drain_main, NULL); }
