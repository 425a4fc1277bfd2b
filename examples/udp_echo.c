/*
 * UDP echo server: every datagram goes back to whoever sent it.
 *
 *   udp_echo PORT        (binds 127.0.0.1; PORT 0 lets the system pick)
 *
 * Prints "listening on 127.0.0.1:PORT" once it receives, so scripts can
 * wait for that line.  One task does all the work, a batch at a time:
 * corio_dgram_recv_batch takes every datagram already queued (up to 64)
 * in one recvmmsg, and corio_dgram_send_batch sends the replies in one
 * sendmmsg, each to the address its datagram came from.  Under load that
 * is two system calls per 64 datagrams instead of 128.
 */
#include <corio.h>

#include <stdio.h>
#include <stdlib.h>

#define BATCH 64
#define MAX_DATAGRAM 65536 /* anything longer is cut (and counted) */

static void *main_task(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    corio_dgram *d;
    int r = corio_dgram_open("127.0.0.1", port, NULL, 0, NULL, &d);
    if (r < 0) {
        fprintf(stderr, "udp_echo: cannot bind 127.0.0.1:%u: %s\n", port, corio_strerror(r));
        return (void *)1;
    }
    printf("listening on 127.0.0.1:%u\n", corio_dgram_port(d));
    fflush(stdout);

    /* The batch's messages point into one buffer; each reply reuses its
     * datagram's buffer, length and sender address as they came. */
    static corio_dgram_msg msgs[BATCH];
    char *bufs = malloc((size_t)BATCH * MAX_DATAGRAM);
    if (!bufs)
        return (void *)1;
    for (int i = 0; i < BATCH; i++) {
        msgs[i].buf = bufs + (size_t)i * MAX_DATAGRAM;
        msgs[i].cap = MAX_DATAGRAM;
    }
    unsigned long truncated = 0;
    for (;;) {
        int n = corio_dgram_recv_batch(d, msgs, BATCH);
        if (n < 0) {
            fprintf(stderr, "udp_echo: receive: %s\n", corio_strerror(n));
            break;
        }
        for (int i = 0; i < n; i++)
            if (msgs[i].flags & CORIO_DGRAM_TRUNC)
                truncated++;
        for (int i = 0; i < n;) {
            int s = corio_dgram_send_batch(d, msgs + i, (unsigned)(n - i));
            /* A reply that cannot go (its sender's address is refused)
             * is dropped; the others still go. */
            i += s > 0 ? s : 1;
        }
    }
    if (truncated)
        fprintf(stderr, "udp_echo: %lu datagrams were longer than %d bytes and were cut\n", truncated,
                MAX_DATAGRAM);
    free(bufs);
    corio_dgram_close(d);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: udp_echo PORT\n");
        return 2;
    }
    char *end;
    unsigned long port = strtoul(argv[1], &end, 10);
    if (*end || port > 65535) {
        fprintf(stderr, "udp_echo: bad port '%s'\n", argv[1]);
        return 2;
    }
    void *res = NULL;
    int r = corio_run(NULL, main_task, (void *)(uintptr_t)port, &res);
    if (r < 0) {
        fprintf(stderr, "udp_echo: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
