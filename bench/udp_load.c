/*
 * udp_load — closed-loop load generator for UDP echo servers.
 *
 * It opens C connected UDP sockets to 127.0.0.1:PORT and keeps W datagrams
 * of M bytes in flight on each: every echo that comes back is counted and
 * replaced by a new datagram.  Each datagram carries its socket's id and a
 * sequence number; a reply with another socket's id is an error.  Replies
 * are read with recvmmsg and the replacements sent as one UDP GSO send
 * (UDP_SEGMENT; sendmmsg where the kernel refuses it), so the client walks
 * the stack once per refill and stays cheaper than the servers it
 * measures.  The window keeps every socket buffer far from
 * full, so loopback loses nothing; should a datagram be lost anyway, a
 * socket silent for a second refills its window and the loss is counted.
 *
 * Deliberately independent of corio (plain epoll, one thread), so the same
 * client measures every server alike.  After a warmup it counts echoes
 * over a fixed window and, given the server's pid, reads the server's CPU
 * time (utime+stime of /proc/PID/stat) at both ends of it: CPU per
 * datagram is the figure that stays meaningful when the client, not the
 * server, is the bottleneck.
 *
 * Output (one `name: value unit` per line):
 *   udp_pps: 123456 dgram/s          (echoes received per second)
 *   udp_cpu_us: 1.20 us/dgram        (server CPU per echoed datagram; with --server-pid)
 *   udp_server_cpu: 99.1 %           (with --server-pid)
 *   udp_client_cpu: 80.3 %
 *   udp_lost: 0 dgram
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXW 64

typedef struct client {
    int fd;
    uint32_t id;
    int inflight;
    uint32_t seq;
    double last; /* time of the last echo (or refill) */
    unsigned char buf[MAXW][2048];
    unsigned char rbuf[MAXW][2048];
} client;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "udp_load: %s: %s\n", what, strerror(err));
    exit(1);
}

/* Server CPU time (all threads, user+system) in seconds, or -1. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces: fields resume after the last ')' */
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static size_t size = 64;
static int window = 8;

/* Send k new datagrams on c. */
static void refill(client *c, int k)
{
    struct mmsghdr h[MAXW];
    struct iovec iov[MAXW];
    for (int i = 0; i < k; i++) {
        unsigned char *b = c->buf[i];
        memcpy(b, &c->id, 4);
        memcpy(b + 4, &c->seq, 4);
        c->seq++;
        iov[i] = (struct iovec){.iov_base = b, .iov_len = size};
        memset(&h[i], 0, sizeof h[i]);
        h[i].msg_hdr.msg_iov = &iov[i];
        h[i].msg_hdr.msg_iovlen = 1;
    }
    /* One UDP GSO send for the whole refill (all the same size, to the
     * connected server): the client walks the stack once, so it stays
     * cheaper than the servers it measures.  Where GSO is refused, one
     * sendmmsg. */
    static int gso = 1;
    if (gso && k > 1) {
        union {
            char buf[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } ctl;
        struct msghdr m = {.msg_iov = iov,
                           .msg_iovlen = (size_t)k,
                           .msg_control = ctl.buf,
                           .msg_controllen = sizeof ctl.buf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)size;
        memcpy(CMSG_DATA(cm), &seg, sizeof seg);
        ssize_t r;
        while ((r = sendmsg(c->fd, &m, 0)) < 0 && errno == EINTR) {
        }
        if (r >= 0) {
            c->inflight += k;
            return;
        }
        gso = 0;
    }
    int done = 0;
    while (done < k) {
        int r = sendmmsg(c->fd, h + done, (unsigned)(k - done), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("sendmmsg", errno);
        }
        done += r;
    }
    c->inflight += k;
}

/* Read the echoes queued on c; returns how many. */
static int drain(client *c)
{
    struct mmsghdr h[MAXW];
    struct iovec iov[MAXW];
    for (int i = 0; i < MAXW; i++) {
        iov[i] = (struct iovec){.iov_base = c->rbuf[i], .iov_len = sizeof c->rbuf[i]};
        memset(&h[i], 0, sizeof h[i]);
        h[i].msg_hdr.msg_iov = &iov[i];
        h[i].msg_hdr.msg_iovlen = 1;
    }
    int r = recvmmsg(c->fd, h, MAXW, MSG_DONTWAIT, NULL);
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        die("recvmmsg", errno);
    }
    for (int i = 0; i < r; i++) {
        uint32_t id;
        memcpy(&id, c->rbuf[i], 4);
        if (h[i].msg_len != size || id != c->id) {
            fprintf(stderr, "udp_load: bad echo on socket %u: %u bytes, id %u\n", c->id, h[i].msg_len, id);
            exit(1);
        }
    }
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: udp_load -p PORT [-c CLIENTS] [-m SIZE] [-W WINDOW] [-d SECONDS] [-w WARMUP] "
                    "[--server-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0, nclients = 10, pid = 0;
    double duration = 3, warmup = 1;
    static const struct option lo[] = {{"server-pid", required_argument, NULL, 'P'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "p:c:m:W:d:w:", lo, NULL)) != -1) {
        switch (o) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nclients = atoi(optarg);
            break;
        case 'm':
            size = (size_t)atol(optarg);
            break;
        case 'W':
            window = atoi(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'P':
            pid = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || nclients <= 0 || size < 8 || size > 2048 || window <= 0 || window > MAXW)
        usage();
    if (pid && proc_cpu_s(pid) < 0) {
        fprintf(stderr, "udp_load: cannot read /proc/%d/stat\n", pid);
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    client *cl = calloc((size_t)nclients, sizeof *cl);
    if (ep < 0 || !cl)
        die("setup", errno);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nclients; i++) {
        client *c = &cl[i];
        c->id = (uint32_t)i;
        c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("socket", errno);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl", errno);
    }
    double t = now_s();
    for (int i = 0; i < nclients; i++) {
        refill(&cl[i], window);
        cl[i].last = t;
    }
    double start = t, t0 = start + warmup, t1 = t0 + duration;
    double srv0 = 0, self0 = 0;
    unsigned long long count = 0, lost = 0;
    int measuring = 0;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, 20);
        if (n < 0 && errno != EINTR)
            die("epoll_wait", errno);
        t = now_s();
        if (!measuring && t >= t0) {
            measuring = 1;
            count = 0;
            srv0 = pid ? proc_cpu_s(pid) : 0;
            self0 = self_cpu_s();
            t0 = t;
            t1 = t0 + duration;
        }
        if (measuring && t >= t1)
            break;
        for (int i = 0; i < n; i++) {
            client *c = evs[i].data.ptr;
            int got = drain(c);
            if (!got)
                continue;
            count += (unsigned)got;
            c->last = t;
            c->inflight -= got;
            if (c->inflight < 0)
                c->inflight = 0; /* late echoes of datagrams counted as lost */
            refill(c, window - c->inflight);
        }
        for (int i = 0; i < nclients; i++) {
            client *c = &cl[i];
            if (t - c->last > 1.0) {
                lost += (unsigned)c->inflight;
                c->inflight = 0;
                c->last = t;
                refill(c, window);
            }
        }
    }
    double wall = t - t0;
    double srv1 = pid ? proc_cpu_s(pid) : 0;
    double self1 = self_cpu_s();
    printf("udp_pps: %.0f dgram/s\n", (double)count / wall);
    if (pid) {
        printf("udp_cpu_us: %.3f us/dgram\n", count ? (srv1 - srv0) * 1e6 / (double)count : 0.0);
        printf("udp_server_cpu: %.1f %%\n", (srv1 - srv0) * 100.0 / wall);
    }
    printf("udp_client_cpu: %.1f %%\n", (self1 - self0) * 100.0 / wall);
    printf("udp_lost: %llu dgram\n", lost);
    return 0;
}
