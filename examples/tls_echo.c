/*
 * TLS echo server: examples/echo_server.c with TLS on every connection.
 *
 *   tls_echo CERT KEY PORT     (binds 127.0.0.1; PORT 0 picks a free one)
 *
 * CERT is a PEM certificate chain (the leaf first), KEY its unencrypted
 * PEM private key.  Prints "listening on 127.0.0.1:PORT" once it accepts
 * connections.  Try it with
 *
 *   openssl s_client -connect 127.0.0.1:PORT -CAfile ca.pem
 *
 * TLS is a property of the server here (asyncio's start_server(ssl=)):
 * each connection's task runs the handshake before the handler is called,
 * and a client whose handshake fails (plaintext, a bad record, a stall
 * past the handshake time-out) is closed without reaching the handler.
 * The handler itself is the plain echo loop: reads and writes carry
 * plaintext, corio encrypts and decrypts.  TLS 1.2 and 1.3, session
 * tickets (resumption) on.
 *
 * A client that closes properly sends close_notify and the read returns 0;
 * one that just drops the TCP connection reads as -CORIO_ETLSTRUNC (a
 * truncation: the data so far may be cut short), which is logged.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops it as echo_server does: no new
 * connections, GRACE_MS for the open ones, then exit 0.
 */
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_SIZE (64 * 1024) /* a TLS record holds at most 16 KiB: larger reads gain little */
#define GRACE_MS 10000

static void echo(corio_stream *s, void *arg)
{
    (void)arg;
    char *buf = malloc(READ_SIZE);
    if (!buf)
        return;
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, READ_SIZE);
        if (n == -CORIO_ETLSTRUNC)
            fprintf(stderr, "tls_echo: a client left without close_notify\n");
        else if (n < 0 && n != -ECANCELED)
            fprintf(stderr, "tls_echo: read: %s\n", corio_strerror((int)n));
        if (n <= 0)
            break; /* close_notify (0), truncation, reset, or the server is closing */
        int r = corio_stream_write(s, buf, (size_t)n);
        if (r == 0)
            r = corio_stream_drain(s);
        if (r < 0) {
            if (r != -ECANCELED)
                fprintf(stderr, "tls_echo: write: %s\n", corio_strerror(r));
            break;
        }
    }
    free(buf);
    /* Returning closes the stream, which sends our close_notify first. */
}

typedef struct args {
    const char *cert, *key;
    uint16_t port;
} args;

static void *main_task(void *arg)
{
    const args *a = arg;
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    corio_signal_watch *stop = corio_signal_watch_open(&stop_signals);
    if (!stop) {
        fprintf(stderr, "tls_echo: cannot watch for signals: %s\n", corio_strerror(-errno));
        return (void *)1;
    }

    /* One TLS configuration for the whole server: the certificate, its key. */
    corio_tls_cert cert = {.cert_file = a->cert, .key_file = a->key};
    corio_tls_options opt = {.certs = &cert, .n_certs = 1};
    corio_tls *tls;
    int r = corio_tls_server_new(&opt, &tls);
    if (r < 0) {
        fprintf(stderr, "tls_echo: %s / %s: %s\n", a->cert, a->key, corio_strerror(r));
        corio_signal_watch_close(stop);
        return (void *)1;
    }
    corio_server_config cfg = {.tls = tls};
    corio_server *srv;
    r = corio_server_start("127.0.0.1", a->port, echo, NULL, &cfg, &srv);
    corio_tls_free(tls); /* the server holds its own reference */
    if (r < 0) {
        fprintf(stderr, "tls_echo: cannot listen on 127.0.0.1:%u: %s\n", a->port, corio_strerror(r));
        corio_signal_watch_close(stop);
        return (void *)1;
    }
    printf("listening on 127.0.0.1:%u\n", corio_server_port(srv));
    fflush(stdout);

    int sig = corio_signal_watch_wait(stop, CORIO_NO_TIMEOUT);
    if (sig > 0)
        fprintf(stderr, "tls_echo: %s, stopping\n", strsignal(sig));
    corio_signal_watch_close(stop); /* a second signal now ends the process at once */
    corio_server_close(srv, GRACE_MS);
    return sig > 0 ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tls_echo CERT KEY PORT\n");
        return 2;
    }
    char *end;
    unsigned long port = strtoul(argv[3], &end, 10);
    if (*end || port > 65535) {
        fprintf(stderr, "usage: tls_echo CERT KEY PORT\n");
        return 2;
    }
    if (!corio_tls_available()) {
        fprintf(stderr, "tls_echo: this corio was built without TLS (OpenSSL)\n");
        return 1;
    }
    args a = {argv[1], argv[2], (uint16_t)port};
    void *res = NULL;
    int r = corio_run(NULL, main_task, &a, &res);
    if (r < 0) {
        fprintf(stderr, "tls_echo: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
