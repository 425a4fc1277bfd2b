/*
 * echo_load — closed-loop load generator for TCP and Unix socket echo servers.
 *
 * It opens C connections to HOST:PORT (or, with -u PATH, to the Unix
 * stream socket PATH, "@NAME" for an abstract one) and keeps each one busy with
 * request/response ping-pong: send M bytes, wait until M bytes came back,
 * repeat.  Every reply's first 8 bytes carry the request's sequence number
 * and are always checked; the whole payload is compared byte for byte on
 * the first request of each connection and on every 16th after that, which
 * catches a server that mixes up or truncates data without letting memcmp
 * of 100 KiB replies dominate the client's own CPU time.
 *
 * It is deliberately independent of corio (plain epoll, one thread) so the
 * same client measures every server alike.  After a warmup it counts
 * completed requests over a fixed window and, given the server's pid, reads
 * the server's CPU time (utime+stime of /proc/PID/stat, i.e. all its
 * threads) at both ends of that window: CPU per request is the figure that
 * stays meaningful when the client, not the server, is the bottleneck.
 *
 * Output (one `name: value unit` per line):
 *   echo_rps: 123456 req/s
 *   echo_cpu_us: 4.20 us/req        (only with --server-pid)
 *   echo_server_cpu: 99.1 %         (only with --server-pid)
 *   echo_client_cpu: 80.3 %
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VERIFY_EVERY 16

typedef struct conn {
    int fd;
    unsigned id;
    bool want_out; /* EPOLLOUT currently registered */
    size_t sent;   /* bytes of the current request written */
    size_t rcvd;   /* bytes of the current reply read */
    uint64_t seq;  /* current request number on this connection */
    unsigned char *sbuf;
    unsigned char *rbuf;
} conn;

static struct {
    const char *host;
    int port;
    unsigned conns;
    size_t size;
    double duration;
    double warmup;
    int server_pid;
    const char *unix_path; /* -u: a Unix socket instead of TCP */
} opt = {"127.0.0.1", 8888, 10, 1024, 3.0, 1.0, 0, NULL};

static int epfd;
static bool measuring;
static uint64_t completed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "echo_load: %s: %s\n", what, strerror(err));
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
    /* comm may contain spaces and parentheses: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    /* Fields 3..13 are skipped; 14 and 15 are utime and stime. */
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

static void set_out_interest(conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl", errno);
    c->want_out = on;
}

static void conn_fail(conn *c, const char *what, int err)
{
    fprintf(stderr, "echo_load: connection %u, request %llu: %s: %s\n", c->id, (unsigned long long)c->seq,
            what, err ? strerror(err) : "connection closed by server");
    exit(1);
}

/* Write as much of the current request as the socket takes. */
static void pump_send(conn *c)
{
    while (c->sent < opt.size) {
        ssize_t n = send(c->fd, c->sbuf + c->sent, opt.size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            set_out_interest(c, true);
            return;
        }
        conn_fail(c, "send", errno);
    }
    set_out_interest(c, false);
}

static void start_request(conn *c)
{
    c->seq++;
    c->sent = c->rcvd = 0;
    size_t hdr = opt.size < 8 ? opt.size : 8;
    memcpy(c->sbuf, &c->seq, hdr);
    pump_send(c);
}

static void check_reply(conn *c)
{
    size_t hdr = opt.size < 8 ? opt.size : 8;
    bool full = c->seq == 1 || c->seq % VERIFY_EVERY == 0;
    if (memcmp(c->rbuf, c->sbuf, full ? opt.size : hdr) != 0) {
        size_t i = 0;
        while (c->rbuf[i] == c->sbuf[i])
            i++;
        fprintf(stderr,
                "echo_load: connection %u, request %llu: reply differs at byte %zu (got %u, want %u)\n",
                c->id, (unsigned long long)c->seq, i, c->rbuf[i], c->sbuf[i]);
        exit(1);
    }
}

static void pump_recv(conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rcvd, opt.size - c->rcvd, 0);
        if (n > 0) {
            c->rcvd += (size_t)n;
            if (c->rcvd < opt.size)
                continue;
            if (c->sent < opt.size)
                conn_fail(c, "reply longer than request", EPROTO);
            check_reply(c);
            if (measuring)
                completed++;
            start_request(c);
            return; /* the new reply cannot be here yet */
        }
        if (n == 0)
            conn_fail(c, "recv", 0);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return;
        conn_fail(c, "recv", errno);
    }
}

static int connect_unix(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(opt.unix_path);
    if (n >= sizeof sa.sun_path) {
        fprintf(stderr, "echo_load: socket path too long: %s\n", opt.unix_path);
        exit(2);
    }
    memcpy(sa.sun_path, opt.unix_path, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    if (opt.unix_path[0] == '@') { /* abstract: a leading NUL, no terminating one */
        sa.sun_path[0] = '\0';
        len--;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", errno);
    if (connect(fd, (struct sockaddr *)&sa, len) < 0)
        die("connect", errno);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int connect_one(void)
{
    if (opt.unix_path)
        return connect_unix();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_load: bad IPv4 address %s\n", opt.host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", errno);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect", errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_load [-h HOST] [-p PORT] [-c CONNS] [-m BYTES] [-d SECONDS] [-w SECONDS]\n"
                    "                 [-u/--unix PATH] [--server-pid PID]\n"
                    "  -p/--port 8888  -c/--conns 10  -m/--size 1024  -d/--duration 3  -w/--warmup 1\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", required_argument, 0, 'h'},
        {"port", required_argument, 0, 'p'},
        {"conns", required_argument, 0, 'c'},
        {"size", required_argument, 0, 'm'},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'w'},
        {"server-pid", required_argument, 0, 'P'},
        {"unix", required_argument, 0, 'u'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:c:m:d:w:P:u:", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            opt.unix_path = optarg;
            break;
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'c':
            opt.conns = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            opt.size = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            opt.duration = strtod(optarg, NULL);
            break;
        case 'w':
            opt.warmup = strtod(optarg, NULL);
            break;
        case 'P':
            opt.server_pid = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (opt.conns == 0 || opt.size == 0 || opt.port <= 0 || opt.duration <= 0)
        usage();
    if (opt.server_pid && proc_cpu_s(opt.server_pid) < 0) {
        fprintf(stderr, "echo_load: cannot read /proc/%d/stat\n", opt.server_pid);
        return 2;
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1", errno);
    conn *conns = calloc(opt.conns, sizeof *conns);
    if (!conns)
        die("calloc", ENOMEM);
    for (unsigned i = 0; i < opt.conns; i++) {
        conn *c = &conns[i];
        c->id = i;
        c->fd = connect_one();
        c->sbuf = malloc(opt.size);
        c->rbuf = malloc(opt.size);
        if (!c->sbuf || !c->rbuf)
            die("malloc", ENOMEM);
        /* A pattern that differs per connection and per offset, so a reply
         * routed to the wrong connection or shifted by a few bytes fails. */
        for (size_t j = 0; j < opt.size; j++)
            c->sbuf[j] = (unsigned char)(j * 31 + i * 7 + (j >> 8));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl", errno);
    }
    for (unsigned i = 0; i < opt.conns; i++)
        start_request(&conns[i]);

    enum { MAX_EVENTS = 256 };
    struct epoll_event evs[MAX_EVENTS];
    double t_start = now_s(), t0 = 0, t1 = 0;
    double srv0 = 0, self0 = 0;
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLOUT | EPOLLERR))
                pump_send(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                pump_recv(c);
        }
        double t = now_s();
        if (!measuring && t - t_start >= opt.warmup) {
            measuring = true;
            completed = 0;
            t0 = t;
            self0 = self_cpu_s();
            if (opt.server_pid)
                srv0 = proc_cpu_s(opt.server_pid);
        } else if (measuring && t - t0 >= opt.duration) {
            t1 = t;
            break;
        }
    }
    double srv1 = opt.server_pid ? proc_cpu_s(opt.server_pid) : 0;
    double self1 = self_cpu_s();
    double wall = t1 - t0;
    uint64_t done = completed;

    printf("echo_rps: %.0f req/s\n", (double)done / wall);
    if (opt.server_pid) {
        if (srv1 < 0 || srv0 < 0) {
            fprintf(stderr, "echo_load: server %d vanished during the run\n", opt.server_pid);
            return 1;
        }
        printf("echo_cpu_us: %.3f us/req\n", done ? (srv1 - srv0) * 1e6 / (double)done : 0.0);
        printf("echo_server_cpu: %.1f %%\n", (srv1 - srv0) * 100.0 / wall);
    }
    printf("echo_client_cpu: %.1f %%\n", (self1 - self0) * 100.0 / wall);
    fflush(stdout);
    for (unsigned i = 0; i < opt.conns; i++) {
        close(conns[i].fd);
        free(conns[i].sbuf);
        free(conns[i].rbuf);
    }
    free(conns);
    close(epfd);
    return 0;
}
