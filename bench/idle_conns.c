/*
 * idle_conns — what an idle keep-alive connection costs an HTTP server, in
 * resident memory (bench/http_bench.sh).
 *
 * From one process (plain epoll, no corio) it opens N connections to
 * 127.0.0.1:PORT with nonblocking connect, sends one GET on each, reads each
 * response up to its body, and then leaves all of them open and silent: the
 * state a browser leaves a server in between page loads.  The server's VmRSS
 * (from /proc/PID/status) is read before the first connect and again once
 * all N are idle and SETTLE_MS have passed; the difference divided by N is
 * the figure.  Connections are opened in batches of BATCH so the server's
 * listen backlog never overflows (an overflowing SYN is retried by the
 * kernel a second later, which only makes the run slow).  Before exiting it
 * checks that the server has closed none of them (a server that drops idle
 * connections early would otherwise look cheap) and closes them with
 * SO_LINGER 0 so 10,000 TIME_WAIT sockets are not left behind.
 *
 * Usage: idle_conns -p PORT -n N --server-pid PID [--settle-ms MS] [--batch B]
 * Output (stdout):
 *   idle_conns: N
 *   idle_rss_before_kib: K
 *   idle_rss_after_kib: K
 *   idle_bytes_per_conn: B
 * Exit status 1 when a connection failed or was closed by the server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "idle_common.h"

static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle_conns\r\n\r\n";

/* Per connection: how far it has come. */
enum { CONNECTING, SENT, DONE };

int main(int argc, char **argv)
{
    idle_opts o = {.settle_ms = 1000, .batch = 500};
    if (idle_parse_opts(argc, argv, &o) < 0)
        goto usage;
    int port = o.port, n = o.n, pid = o.pid, settle_ms = o.settle_ms, batch = o.batch;
    if (idle_raise_nofile(n, "idle_conns") < 0)
        return 2;

    int *fds = calloc((size_t)n, sizeof *fds);
    unsigned char *state = calloc((size_t)n, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!fds || !state || ep < 0) {
        perror("idle_conns");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    long before = proc_kib(pid, "status", "VmRSS:");
    if (before < 0) {
        fprintf(stderr, "idle_conns: no process %d\n", pid);
        return 2;
    }
    double t0 = now_s();
    char buf[4096];
    int failed = 0;
    for (int base = 0; base < n; base += batch) {
        int end = base + batch < n ? base + batch : n;
        for (int i = base; i < end; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                perror("idle_conns: socket");
                return 2;
            }
            fds[i] = fd;
            int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
            if (r < 0 && errno != EINPROGRESS) {
                fprintf(stderr, "idle_conns: connect #%d: %s\n", i, strerror(errno));
                return 1;
            }
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        int pending = end - base;
        while (pending > 0) {
            struct epoll_event evs[256];
            int k = epoll_wait(ep, evs, 256, 10000);
            if (k == 0) {
                fprintf(stderr, "idle_conns: %d connections of batch at %d got no answer in 10 s\n", pending,
                        base);
                return 1;
            }
            for (int j = 0; j < k; j++) {
                int i = (int)evs[j].data.u32;
                int fd = fds[i];
                if (state[i] == CONNECTING && (evs[j].events & EPOLLOUT)) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    if (err || send(fd, REQ, sizeof REQ - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof REQ - 1)) {
                        fprintf(stderr, "idle_conns: connection #%d: %s\n", i, strerror(err ? err : errno));
                        return 1;
                    }
                    state[i] = SENT;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                } else if (state[i] == SENT && (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                    /* The whole response is small; one read holding a
                     * status line is proof enough that it was answered. */
                    ssize_t r = recv(fd, buf, sizeof buf, 0);
                    if (r < 0 && errno == EAGAIN)
                        continue;
                    if (r <= 0 || r < 12 || memcmp(buf, "HTTP/1.", 7) != 0) {
                        fprintf(stderr, "idle_conns: connection #%d: bad or no response\n", i);
                        failed++;
                    }
                    state[i] = DONE;
                    pending--;
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                }
            }
        }
    }
    double t_open = now_s() - t0;
    if (failed)
        return 1;
    usleep((useconds_t)settle_ms * 1000);
    long after = proc_kib(pid, "status", "VmRSS:");

    /* A connection the server closed is readable (EOF) now. */
    int closed = 0;
    for (int i = 0; i < n; i++) {
        ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN))
            closed++;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < n; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fds[i]);
    }
    fprintf(stderr, "idle_conns: %d connections opened and answered in %.2f s; %d closed by the server\n", n,
            t_open, closed);
    if (after < 0 || closed) {
        fprintf(stderr, "idle_conns: the server %s\n", after < 0 ? "died" : "closed idle connections early");
        return 1;
    }
    printf("idle_conns: %d\n", n);
    printf("idle_rss_before_kib: %ld\n", before);
    printf("idle_rss_after_kib: %ld\n", after);
    printf("idle_bytes_per_conn: %.0f\n", (double)(after - before) * 1024.0 / n);
    return 0;

usage:
    fprintf(stderr, "usage: idle_conns -p PORT -n N --server-pid PID [--settle-ms MS] [--batch B]\n");
    return 2;
}
