/*
 * bulk_get: download one URL path over one HTTPS/1.1 connection as fast as
 * one CPU can decrypt, and throw the body away: the bulk client of
 * bench/tls_bench.sh (CLIENT=bulk_get), for when curl (which decrypts
 * 16 KiB at a time and copies each into its write callback) is slower
 * than the servers it measures.  Plain OpenSSL and blocking sockets, no
 * corio, so it favours no server.  The CA file verifies the server (TLS
 * 1.3, host 127.0.0.1 is the certificate's IP).
 *
 *   bulk_get PORT PATH CAFILE  ->  "200 BODY_BYTES BYTES_PER_SECOND" on stdout
 *
 * The body must come with a Content-Length (no chunked encoding): the
 * figure counts exactly that many bytes, from the first byte of the
 * request to the last byte of the body.
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "bulk_get: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bulk_get PORT PATH CAFILE\n");
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1)
        die("cannot load the CA file");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    /* Take whole socket reads into OpenSSL's buffer, not a record header
     * and then a record (two read(2)s per 16 KiB). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, fd) || !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1"))
        die("cannot set up the connection");
    double t0 = now();
    if (SSL_connect(ssl) != 1)
        die("handshake failed");
    char req[512];
    int rl =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", argv[2]);
    if (SSL_write(ssl, req, rl) != rl)
        die("cannot send the request");

    static char buf[256 * 1024];
    size_t have = 0, hend = 0;
    /* the head: read until the blank line */
    while (!hend) {
        size_t n = 0;
        if (have == sizeof buf - 1 || SSL_read_ex(ssl, buf + have, sizeof buf - 1 - have, &n) != 1)
            die("no complete response head");
        have += n;
        buf[have] = 0;
        char *e = strstr(buf, "\r\n\r\n");
        if (e)
            hend = (size_t)(e - buf) + 4;
    }
    int status = atoi(buf + 9);
    long long clen = -1;
    for (char *p = strstr(buf, "\r\n"); p && p < buf + hend; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, "content-length:", 15) == 0)
            clen = atoll(p + 17);
    if (clen < 0)
        die("no Content-Length");
    long long got = (long long)(have - hend);
    while (got < clen) {
        size_t n = 0;
        if (SSL_read_ex(ssl, buf, sizeof buf, &n) != 1)
            break;
        got += (long long)n;
    }
    double t = now() - t0;
    printf("%d %lld %.0f\n", status, got, (double)got / t);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return got == clen ? 0 : 1;
}
