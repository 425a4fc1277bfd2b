/*
 * The seed's HTTP server, served through corio's HTTP/1.1 module: every
 * request gets the seed's exact answer (status 200, its Content-Type and
 * CORS headers, "Hello, world!") plus what HTTP requires of a real server
 * (Content-Length, Date, Server), with keep-alive, pipelining, limits and
 * timeouts handled by the module.  SIGINT or SIGTERM stops it gracefully:
 * requests in flight are finished, then it exits.  --workers N serves with
 * N loops on N threads, one per core (the handler only reads constants, so
 * it is thread-safe as workers require); bench/workers_bench.sh uses it.
 *
 *   http_hello [--workers N] [PORT]   (PORT also from $PORT; default 8000; 0 = any free port)
 */
#include <corio.h>
#include <corio/http.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hello[] = "Hello, world!";

static void handle(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req;
    (void)arg;
    corio_http_response_add_header(resp, "Access-Control-Allow-Origin", "*");
    corio_http_response_add_header(resp, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    corio_http_response_add_header(resp, "Access-Control-Allow-Headers", "Content-Type");
    corio_http_response_send(resp, 200, "text/plain", hello, sizeof hello - 1);
}

static uint16_t port = 8000;
static corio_http_server_config cfg; /* zero: every default, one worker */

static void *main_task(void *arg)
{
    (void)arg;
    corio_http_server *srv;
    int r = corio_http_server_start("127.0.0.1", port, handle, NULL, &cfg, &srv);
    if (r < 0) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%u: %s\n", port, corio_strerror(r));
        return (void *)1;
    }
    printf("Server running on ('127.0.0.1', %u)\n", corio_http_server_port(srv));
    fflush(stdout);
    r = corio_http_server_serve_until_signal(srv);
    if (r > 0)
        printf("Got %s, shutting down\n", r == SIGINT ? "SIGINT" : "SIGTERM");
    corio_http_server_close(srv, 5000);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: http_hello [--workers N] [PORT]\n");
    return 2;
}

/* A decimal number in [lo, hi], or -1. */
static long number(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= lo && v <= hi ? v : -1;
}

int main(int argc, char **argv)
{
    const char *p = getenv("PORT");
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--workers")) {
        long n = number(argv[i + 1], 1, 1024);
        if (n < 0)
            return usage();
        cfg.workers = (unsigned)n;
        i += 2;
    }
    if (argc - i > 1 || (argc - i == 1 && argv[i][0] == '-'))
        return usage();
    if (argc - i == 1)
        p = argv[i];
    if (p && *p) {
        long v = number(p, 0, 65535);
        if (v < 0)
            return usage();
        port = (uint16_t)v;
    }
    void *res = NULL;
    int r = corio_run(NULL, main_task, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "http_hello: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
