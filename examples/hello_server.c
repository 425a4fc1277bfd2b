/*
 * The seed's HTTP server (event_loop.py) in corio, one to one: a handler
 * gets the connection as a stream, reads the request, prints it, answers
 * "Hello, world!" with the seed's exact headers, drains and closes.
 *
 * One deliberate difference: the seed reads until EOF (reader.read()), which
 * only works with a client that half-closes; a browser or curl keeps its side
 * open waiting for the answer.  Here the handler reads the request head
 * (through the blank line) instead, so curl gets its reply at once.
 *
 *   hello_server [--quiet] [PORT]     (PORT also from $PORT; default 8000)
 *
 * --quiet drops the per-request prints, for benchmarks.
 *
 * Another difference: where the seed runs until it is killed, Ctrl-C
 * (SIGINT) or SIGTERM stops this one gracefully: no new connection is
 * accepted, requests in flight get their answer (for up to GRACE_MS), and
 * the process exits 0; a second signal ends it at once.
 */
#include <corio.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRACE_MS 10000 /* how long requests in flight may take after a stop signal */

static bool quiet;

static const char response[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Access-Control-Allow-Origin: *\r\n"
                               "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\n"
                               "Access-Control-Allow-Headers: Content-Type\r\n\r\n"
                               "Hello, world!";

static void handle_request(corio_stream *s, void *arg)
{
    (void)arg;
    const char *request;
    char tail[4096];
    ssize_t got = corio_stream_readuntil(s, "\r\n\r\n", 4, &request);
    size_t len = got > 0 ? (size_t)got : 0;
    if (got < 0) {
        if (got != -CORIO_EINCOMPLETE)
            return; /* reset, limit, cancelled: nothing to answer (the stream is closed for us) */
        /* EOF before a blank line: like the seed, answer whatever came */
        ssize_t n = corio_stream_read(s, tail, sizeof tail);
        request = tail;
        len = n > 0 ? (size_t)n : 0;
    }
    if (!quiet) {
        printf("Handling request\n%.*s\n", (int)len, request);
    }

    corio_stream_write(s, response, sizeof response - 1);
    corio_stream_drain(s); /* flush data to client */
    corio_stream_close(s);
    if (!quiet)
        printf("Request processed\n");
}

static uint16_t port = 8000;

static void *main_task(void *arg)
{
    (void)arg;
    /* SIGINT and SIGTERM are queued for this task from here on. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    corio_signal_watch *stop = corio_signal_watch_open(&stop_signals);
    if (!stop) {
        fprintf(stderr, "hello_server: cannot watch for signals: %s\n", corio_strerror(-errno));
        return (void *)1;
    }
    corio_server *srv;
    int r = corio_server_start("127.0.0.1", port, handle_request, NULL, NULL, &srv);
    if (r < 0) {
        fprintf(stderr, "hello_server: cannot listen on 127.0.0.1:%u: %s\n", port, corio_strerror(r));
        corio_signal_watch_close(stop);
        return (void *)1;
    }
    struct sockaddr_storage ss;
    corio_server_sockname(srv, 0, &ss, NULL);
    char host[INET6_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
    printf("Server running on ('%s', %u)\n", host, corio_server_port(srv));
    fflush(stdout);
    /* The server's tasks answer the clients; this one waits for a signal. */
    int sig = corio_signal_watch_wait(stop, CORIO_NO_TIMEOUT);
    if (sig > 0)
        fprintf(stderr, "hello_server: %s, stopping\n", strsignal(sig));
    /* Give the signals back first: a second Ctrl-C during the grace
     * period then ends the process at once, as users expect. */
    corio_signal_watch_close(stop);
    corio_server_close(srv, GRACE_MS);
    return sig > 0 ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    const char *p = getenv("PORT");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            quiet = true;
        else
            p = argv[i];
    }
    if (p && *p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end || v > 65535) {
            fprintf(stderr, "usage: hello_server [--quiet] [PORT]\n");
            return 2;
        }
        port = (uint16_t)v;
    }
    if (!quiet)
        setvbuf(stdout, NULL, _IOLBF, 0);
    void *res = NULL;
    int r = corio_run(NULL, main_task, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "hello_server: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
