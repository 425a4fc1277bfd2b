/*
 * HTTPS GET: fetch one URL over TLS and print the response body.
 *
 *   tls_get [--cacert FILE] HOST PORT PATH
 *
 * The server's certificate is verified, as a browser or curl does: its
 * chain against the system's CA store (or only against FILE with
 * --cacert) and its names against HOST.  A certificate that does not
 * verify ends the program with status 1 and says why, e.g.
 *
 *   tls_get: localhost:8443: certificate did not verify: certificate has expired
 *
 * The body goes to stdout as it arrives; the exit status is 0 for a 2xx
 * answer and 1 for anything else (the status line then goes to stderr).
 *
 * The request is HTTP/1.0 on purpose: a server then never answers in
 * chunks, so the body is either Content-Length bytes or everything up to
 * the end of the connection.  In the latter case the server's TLS
 * close_notify is what tells a whole body from one an attacker cut short
 * (corio reports a missing one as -CORIO_ETLSTRUNC, never as EOF).
 */
#include <corio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct args {
    const char *cacert; /* NULL: the system's CA store */
    const char *host, *path;
    uint16_t port;
} args;

/* The value of header `name` in the head h (length n), or -1. */
static long long content_length(const char *h, size_t n)
{
    static const char name[] = "\r\ncontent-length:";
    for (size_t i = 0; i + sizeof name - 1 < n; i++)
        if (strncasecmp(h + i, name, sizeof name - 1) == 0)
            return strtoll(h + i + sizeof name - 1, NULL, 10);
    return -1;
}

static void *main_task(void *arg)
{
    const args *a = arg;
    corio_tls_options opt = {.ca_file = a->cacert};
    corio_tls *tls;
    int r = corio_tls_client_new(&opt, &tls);
    if (r < 0) {
        fprintf(stderr, "tls_get: %s: %s\n", a->cacert ? a->cacert : "system CA store", corio_strerror(r));
        return (void *)1;
    }

    /* Connect, then the handshake: SNI and the name checked are HOST. */
    corio_stream *s;
    r = corio_stream_connect_tls(a->host, a->port, tls, &s);
    corio_tls_free(tls); /* the stream keeps its own reference */
    if (r < 0) {
        /* the stream is gone: corio_stream_tls_error(NULL) keeps the reason */
        const char *why = corio_stream_tls_error(NULL);
        if (r == -CORIO_ETLSVERIFY)
            fprintf(stderr, "tls_get: %s:%u: certificate did not verify: %s\n", a->host, a->port, why);
        else
            fprintf(stderr, "tls_get: %s:%u: %s%s%s\n", a->host, a->port, corio_strerror(r), *why ? ": " : "",
                    why);
        return (void *)1;
    }

    char req[2048];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: corio-tls_get\r\n\r\n",
                       a->path, a->host);
    if (len < 0 || (size_t)len >= sizeof req) {
        fprintf(stderr, "tls_get: path too long\n");
        corio_stream_close(s);
        return (void *)1;
    }
    corio_stream_write(s, req, (size_t)len);

    /* The head: status line and headers, up to the blank line. */
    const char *head;
    ssize_t hl = corio_stream_readuntil(s, "\r\n\r\n", 4, &head);
    if (hl < 0) {
        fprintf(stderr, "tls_get: no response head: %s\n", corio_strerror((int)hl));
        corio_stream_close(s);
        return (void *)1;
    }
    int status = 0;
    sscanf(head, "HTTP/%*d.%*d %d", &status);
    bool ok = status >= 200 && status < 300;
    if (!ok)
        fprintf(stderr, "tls_get: %.*s\n", (int)(strcspn(head, "\r")), head);
    long long left = content_length(head, (size_t)hl); /* -1: up to the end */

    /* The body, straight to stdout. */
    char buf[16384];
    while (left != 0) {
        size_t want = left > 0 && (unsigned long long)left < sizeof buf ? (size_t)left : sizeof buf;
        ssize_t n = corio_stream_read(s, buf, want);
        if (n == 0 && left > 0)
            n = -CORIO_EINCOMPLETE; /* the server closed before Content-Length bytes came */
        if (n == 0)
            break; /* close_notify: the whole body */
        if (n < 0) {
            fprintf(stderr, "tls_get: body cut short: %s\n", corio_strerror((int)n));
            ok = false;
            break;
        }
        fwrite(buf, 1, (size_t)n, stdout);
        if (left > 0)
            left -= n;
    }
    fflush(stdout);
    corio_stream_aclose(s); /* sends our close_notify */
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    args a = {0};
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--cacert") == 0) {
        a.cacert = argv[2];
        i = 3;
    }
    char *end = NULL;
    unsigned long port = argc - i == 3 ? strtoul(argv[i + 1], &end, 10) : 0;
    if (argc - i != 3 || *end || port == 0 || port > 65535) {
        fprintf(stderr, "usage: tls_get [--cacert FILE] HOST PORT PATH\n");
        return 2;
    }
    a.host = argv[i];
    a.port = (uint16_t)port;
    a.path = argv[i + 2];
    void *res = NULL;
    int r = corio_run(NULL, main_task, &a, &res);
    if (r < 0) {
        fprintf(stderr, "tls_get: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
