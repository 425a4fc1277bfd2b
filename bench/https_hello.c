/*
 * https_hello — the seed's response over HTTPS, the corio server of
 * bench/tls_bench.sh: examples/http_hello's handler behind
 * corio_http_server_config.tls, with the limits set the way the benchmark's
 * nginx is configured (keep-alive 75 s, room for 20,000 connections) so
 * the comparison is like for like.
 *
 *   https_hello --port N --cert FILE --key FILE [--no-tickets]
 *
 * --no-tickets turns session tickets off (every handshake a full one, as
 * the benchmark's nginx with ssl_session_tickets off).  Prints "ready" once
 * listening; SIGINT or SIGTERM stops it.
 */
#include <corio.h>
#include <corio/http.h>

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

static unsigned port;
static corio_tls_cert cert;
static bool no_tickets;

static void *main_task(void *arg)
{
    (void)arg;
    corio_tls_options o = {.certs = &cert, .n_certs = 1, .no_session_tickets = no_tickets};
    corio_tls *tls;
    int r = corio_tls_server_new(&o, &tls);
    if (r < 0) {
        fprintf(stderr, "https_hello: %s: %s\n", cert.cert_file, corio_strerror(r));
        return (void *)1;
    }
    corio_http_server_config cfg = {.max_connections = 20000, .keepalive_timeout_ms = 75000, .tls = tls};
    corio_http_server *srv;
    r = corio_http_server_start("127.0.0.1", (uint16_t)port, handle, NULL, &cfg, &srv);
    corio_tls_free(tls);
    if (r < 0) {
        fprintf(stderr, "https_hello: cannot listen on 127.0.0.1:%u: %s\n", port, corio_strerror(r));
        return (void *)1;
    }
    printf("ready on 127.0.0.1:%u\n", corio_http_server_port(srv));
    fflush(stdout);
    corio_http_server_serve_until_signal(srv);
    corio_http_server_close(srv, 5000);
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--no-tickets"))
            no_tickets = true;
        else if (!strcmp(argv[i], "--port") && v)
            port = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--cert") && v)
            cert.cert_file = argv[++i];
        else if (!strcmp(argv[i], "--key") && v)
            cert.key_file = argv[++i];
        else
            goto usage;
    }
    if (!cert.cert_file || !cert.key_file || port > 65535)
        goto usage;
    void *res = NULL;
    int r = corio_run(NULL, main_task, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "https_hello: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;

usage:
    fprintf(stderr, "usage: https_hello --port N --cert FILE --key FILE [--no-tickets]\n");
    return 2;
}
