/*
 * Datagram endpoints (src/io/dgram.c) on loopback: a loss-free echo of
 * 100,000 datagrams from several senders with the order checked per
 * sender, truncation (single and batched), ICMP port-unreachable as
 * -ECONNREFUSED on a connected socket, IPv6, Unix datagrams (paths,
 * abstract names, stale files, unbound senders), batches, cancellation,
 * deadlines and close while a task waits, multicast on lo when the kernel
 * delivers it, socket options, and the errors of bad input.
 */
#include "runner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static corio_dgram *udp_server(const char *host)
{
    corio_dgram *d = NULL;
    CHECK_OK(corio_dgram_open(host, 0, NULL, 0, NULL, &d));
    CHECK(d);
    CHECK(corio_dgram_port(d) != 0);
    return d;
}

static corio_dgram *udp_client(const char *host, uint16_t port)
{
    corio_dgram *d = NULL;
    CHECK_OK(corio_dgram_open(NULL, 0, host, port, NULL, &d));
    return d;
}

/* Echo every datagram back to its sender, a batch at a time, until closed. */
static void *echo_task(void *arg)
{
    corio_dgram *d = arg;
    corio_dgram_msg msgs[32];
    char bufs[32][256];
    for (unsigned i = 0; i < 32; i++) {
        msgs[i].buf = bufs[i];
        msgs[i].cap = sizeof bufs[i];
    }
    for (;;) {
        int n = corio_dgram_recv_batch(d, msgs, 32);
        if (n < 0)
            return (void *)(intptr_t)n;
        for (int i = 0; i < n;) {
            int s = corio_dgram_send_batch(d, msgs + i, (unsigned)(n - i));
            if (s < 0)
                return (void *)(intptr_t)s;
            i += s;
        }
    }
}

/* ---- the loss-free echo ------------------------------------------------ */

#define SENDERS 5
#define WINDOW 16 /* in flight per sender: 80 small datagrams never fill a socket buffer */

typedef struct sender {
    uint16_t port;
    uint32_t id, count;
} sender;

static void *sender_task(void *arg)
{
    sender *s = arg;
    corio_dgram *d = udp_client("127.0.0.1", s->port);
    uint32_t sent = 0, got = 0;
    corio_dgram_msg out[WINDOW], in[WINDOW];
    uint32_t obuf[WINDOW][4], ibuf[WINDOW][8];
    for (unsigned i = 0; i < WINDOW; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].buf = obuf[i];
        in[i].buf = ibuf[i];
        in[i].cap = sizeof ibuf[i];
    }
    while (got < s->count) {
        unsigned k = 0;
        while (sent < s->count && sent - got < WINDOW) {
            /* Sizes vary (12..16 bytes) so lengths are checked too. */
            obuf[k][0] = s->id;
            obuf[k][1] = sent;
            obuf[k][2] = sent * 2654435761u;
            obuf[k][3] = ~sent;
            out[k].len = 12 + sent % 5;
            k++;
            sent++;
        }
        if (k)
            CHECK_EQ(corio_dgram_send_batch(d, out, k), k);
        int n = corio_dgram_recv_batch(d, in, WINDOW);
        CHECK(n > 0);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(in[i].flags, 0);
            CHECK_EQ(in[i].len, 12 + got % 5);
            CHECK_EQ(ibuf[i][0], s->id);
            CHECK_EQ(ibuf[i][1], got); /* in order, none lost */
            CHECK_EQ(ibuf[i][2], got * 2654435761u);
            got++;
        }
    }
    corio_dgram_close(d);
    return NULL;
}

static void *echo_many_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = udp_server("127.0.0.1");
    corio_task *echo = corio_spawn(echo_task, srv);
    uint32_t total = TEST_SCALE(100000);
    sender s[SENDERS];
    corio_task *t[SENDERS];
    for (uint32_t i = 0; i < SENDERS; i++) {
        s[i] = (sender){.port = corio_dgram_port(srv), .id = i, .count = total / SENDERS};
        t[i] = corio_spawn(sender_task, &s[i]);
    }
    for (int i = 0; i < SENDERS; i++)
        CHECK_OK(corio_task_join(t[i], NULL));
    corio_dgram_close(srv); /* the echo task, parked in recv, gets -EBADF */
    void *res;
    CHECK_OK(corio_task_join(echo, &res));
    CHECK_EQ((intptr_t)res, -EBADF);
    return NULL;
}

TEST(echo_100k_in_order_per_sender) { test_run(echo_many_main, NULL); }

/* ---- single datagrams, addresses --------------------------------------- */

static void *single_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = udp_server("127.0.0.1");
    corio_dgram *c = udp_client("127.0.0.1", corio_dgram_port(srv));
    CHECK_EQ(corio_dgram_send(c, "ping", 4), 4);
    char buf[64];
    struct sockaddr_storage from;
    socklen_t fl;
    int flags = -1;
    CHECK_EQ(corio_dgram_recv_from(srv, buf, sizeof buf, &from, &fl, &flags), 4);
    CHECK_MEM(buf, "ping", 4);
    CHECK_EQ(flags, 0);
    CHECK_EQ(fl, sizeof(struct sockaddr_in));
    struct sockaddr_storage cs;
    CHECK_OK(corio_dgram_sockname(c, &cs, NULL));
    CHECK_MEM(&from, &cs, sizeof(struct sockaddr_in)); /* the sender's own address */
    CHECK_EQ(corio_dgram_send_to(srv, "pong!", 5, (struct sockaddr *)&from, fl), 5);
    CHECK_EQ(corio_dgram_recv(c, buf, sizeof buf, NULL), 5);
    CHECK_MEM(buf, "pong!", 5);
    /* empty datagrams exist */
    CHECK_EQ(corio_dgram_send(c, "", 0), 0);
    CHECK_EQ(corio_dgram_recv(srv, buf, sizeof buf, &flags), 0);
    CHECK_EQ(flags, 0);
    /* peer of a connected endpoint is the server; an unconnected one has none */
    struct sockaddr_storage ps;
    socklen_t pl;
    CHECK_OK(corio_dgram_peername(c, &ps, &pl));
    CHECK_EQ(ntohs(((struct sockaddr_in *)&ps)->sin_port), corio_dgram_port(srv));
    CHECK_ERR(corio_dgram_peername(srv, &ps, &pl), -ENOTCONN);
    CHECK_ERR(corio_dgram_send(srv, "x", 1), -EDESTADDRREQ);
    /* every fd is close-on-exec and non-blocking */
    CHECK(fcntl(corio_dgram_fd(srv), F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(corio_dgram_fd(c), F_GETFL) & O_NONBLOCK);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(send_recv_from_addresses) { test_run(single_main, NULL); }

static void *named_main(void *arg)
{
    (void)arg;
    /* by name, and bound to a chosen local port while connected */
    corio_dgram *srv = udp_server("localhost");
    corio_dgram *probe = udp_server("127.0.0.1");
    uint16_t lport = corio_dgram_port(probe);
    corio_dgram_close(probe);
    corio_dgram *c = NULL;
    CHECK_OK(corio_dgram_open("127.0.0.1", lport, "localhost", corio_dgram_port(srv), NULL, &c));
    CHECK_EQ(corio_dgram_port(c), lport);
    CHECK_EQ(corio_dgram_send(c, "n", 1), 1);
    char b[4];
    struct sockaddr_storage from;
    CHECK_EQ(corio_dgram_recv_from(srv, b, sizeof b, &from, NULL, NULL), 1);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&from)->sin_port), lport);
    /* the port is taken now */
    corio_dgram *dup = (corio_dgram *)1;
    CHECK_ERR(corio_dgram_open("127.0.0.1", lport, NULL, 0, NULL, &dup), -EADDRINUSE);
    CHECK(dup == NULL);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    /* the wildcard endpoint takes IPv4 senders (dual-stack or not) */
    corio_dgram *any = NULL;
    CHECK_OK(corio_dgram_open(NULL, 0, NULL, 0, NULL, &any));
    c = udp_client("127.0.0.1", corio_dgram_port(any));
    CHECK_EQ(corio_dgram_send(c, "w", 1), 1);
    CHECK_EQ(corio_dgram_recv(any, b, sizeof b, NULL), 1);
    corio_dgram_close(c);
    corio_dgram_close(any);
    CHECK_ERR(corio_dgram_open("no-such-host.invalid", 1, NULL, 0, NULL, &c), -ENOENT);
    corio_dgram_config cfg = {.family = AF_UNIX};
    CHECK_ERR(corio_dgram_open(NULL, 0, NULL, 0, &cfg, &c), -EAFNOSUPPORT);
    return NULL;
}

TEST(names_local_port_wildcard_errors) { test_run(named_main, NULL); }

/* ---- truncation -------------------------------------------------------- */

static void *trunc_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = udp_server("127.0.0.1");
    corio_dgram *c = udp_client("127.0.0.1", corio_dgram_port(srv));
    char big[100];
    for (int i = 0; i < 100; i++)
        big[i] = (char)i;
    CHECK_EQ(corio_dgram_send(c, big, 100), 100);
    CHECK_EQ(corio_dgram_send(c, big, 100), 100);
    CHECK_EQ(corio_dgram_send(c, big, 7), 7);
    char buf[10] = {0};
    int flags = 0;
    /* cut to the buffer; the call succeeds and says so */
    CHECK_EQ(corio_dgram_recv(srv, buf, 10, &flags), 10);
    CHECK_EQ(flags, CORIO_DGRAM_TRUNC);
    CHECK_MEM(buf, big, 10);
    /* in a batch, each message has its own flag */
    char b1[10], b2[200];
    corio_dgram_msg m[2] = {{.buf = b1, .cap = sizeof b1}, {.buf = b2, .cap = sizeof b2}};
    int got = 0;
    while (got < 2) {
        int n = corio_dgram_recv_batch(srv, m + got, (unsigned)(2 - got));
        CHECK(n > 0);
        got += n;
    }
    CHECK_EQ(m[0].len, 10);
    CHECK_EQ(m[0].flags, CORIO_DGRAM_TRUNC);
    CHECK_MEM(b1, big, 10);
    CHECK_EQ(m[1].len, 7);
    CHECK_EQ(m[1].flags, 0);
    CHECK_EQ(m[1].addr.ss_family, AF_INET);
    /* too large for one UDP datagram: nothing is sent */
    static char huge[70000];
    CHECK_ERR(corio_dgram_send(c, huge, sizeof huge), -EMSGSIZE);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(truncation_reported) { test_run(trunc_main, NULL); }

/* ---- ICMP errors ------------------------------------------------------- */

static void *icmp_main(void *arg)
{
    (void)arg;
    /* a port that was just free: nobody listens there */
    corio_dgram *gone = udp_server("127.0.0.1");
    uint16_t port = corio_dgram_port(gone);
    corio_dgram_close(gone);
    corio_dgram *c = udp_client("127.0.0.1", port);
    CHECK_EQ(corio_dgram_send(c, "anyone?", 7), 7);
    char buf[16];
    /* the port-unreachable reply wakes the parked receive */
    CHECK_ERR(corio_dgram_recv(c, buf, sizeof buf, NULL), -ECONNREFUSED);
    /* reported once; the next send goes out and fails the same way later */
    CHECK_EQ(corio_dgram_send(c, "again", 5), 5);
    CHECK_ERR(corio_dgram_recv(c, buf, sizeof buf, NULL), -ECONNREFUSED);
    /* in a batch: recv_batch reports it when nothing came */
    corio_dgram_msg m = {.buf = buf, .cap = sizeof buf};
    CHECK_EQ(corio_dgram_send_batch(c, &(corio_dgram_msg){.buf = "b", .len = 1}, 1), 1);
    CHECK_ERR(corio_dgram_recv_batch(c, &m, 1), -ECONNREFUSED);
    corio_dgram_close(c);
    return NULL;
}

TEST(icmp_refused_on_connected) { test_run(icmp_main, NULL); }

/* ---- IPv6 -------------------------------------------------------------- */

static void *v6_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = NULL;
    int r = corio_dgram_open("::1", 0, NULL, 0, NULL, &srv);
    if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT || r == -ENOENT)
        return (void *)1;
    CHECK_OK(r);
    corio_dgram *c = udp_client("::1", corio_dgram_port(srv));
    CHECK_EQ(corio_dgram_send(c, "six", 3), 3);
    char buf[8];
    struct sockaddr_storage from;
    socklen_t fl;
    CHECK_EQ(corio_dgram_recv_from(srv, buf, sizeof buf, &from, &fl, NULL), 3);
    CHECK_EQ(from.ss_family, AF_INET6);
    CHECK_EQ(fl, sizeof(struct sockaddr_in6));
    CHECK(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&from)->sin6_addr));
    char text[64];
    CHECK(strncmp(corio_addr_format((struct sockaddr *)&from, text, sizeof text), "[::1]:", 6) == 0);
    CHECK_EQ(corio_dgram_send_to(srv, "back", 4, (struct sockaddr *)&from, fl), 4);
    CHECK_EQ(corio_dgram_recv(c, buf, sizeof buf, NULL), 4);
    CHECK_MEM(buf, "back", 4);
    /* forcing IPv4 on an IPv6 address finds nothing */
    corio_dgram_config cfg = {.family = AF_INET};
    corio_dgram *x = NULL;
    CHECK_ERR(corio_dgram_open("::1", 0, NULL, 0, &cfg, &x), -ENOENT);
    /* IPv6 options: hop limits */
    CHECK_OK(corio_dgram_set_option(c, CORIO_DGRAM_MULTICAST_TTL, 3));
    int v = 0;
    CHECK_OK(corio_dgram_get_option(c, CORIO_DGRAM_MULTICAST_TTL, &v));
    CHECK_EQ(v, 3);
    CHECK_OK(corio_dgram_set_option(c, CORIO_DGRAM_TTL, 9));
    CHECK_OK(corio_dgram_get_option(c, CORIO_DGRAM_TTL, &v));
    CHECK_EQ(v, 9);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(ipv6)
{
    if (test_run(v6_main, NULL))
        SKIP("no IPv6 loopback here");
}

/* ---- Unix datagrams ---------------------------------------------------- */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char p[4][128];
    static int i;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/corio-dgram-XXXXXX");
        CHECK(mkdtemp(tmpdir));
    }
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, name);
    return p[i];
}

static void *unix_main(void *arg)
{
    (void)arg;
    const char *sp = tmp_path("srv.sock");
    const char *cp = tmp_path("cli.sock");
    corio_dgram *srv = NULL, *c = NULL;
    CHECK_OK(corio_dgram_open_unix(sp, NULL, NULL, &srv));
    CHECK_OK(corio_dgram_open_unix(cp, sp, NULL, &c));
    CHECK_EQ(corio_dgram_send(c, "hello unix", 10), 10);
    char buf[32];
    struct sockaddr_storage from;
    socklen_t fl;
    CHECK_EQ(corio_dgram_recv_from(srv, buf, sizeof buf, &from, &fl, NULL), 10);
    CHECK_MEM(buf, "hello unix", 10);
    CHECK_EQ(from.ss_family, AF_UNIX);
    CHECK_STR(((struct sockaddr_un *)&from)->sun_path, cp);
    CHECK_EQ(corio_dgram_send_to(srv, "reply", 5, (struct sockaddr *)&from, fl), 5);
    CHECK_EQ(corio_dgram_recv(c, buf, sizeof buf, NULL), 5);
    CHECK_MEM(buf, "reply", 5);
    /* options of the IP level do not apply */
    int v;
    CHECK_ERR(corio_dgram_get_option(srv, CORIO_DGRAM_MULTICAST_TTL, &v), -ENOPROTOOPT);
    CHECK_ERR(corio_dgram_join(srv, "239.1.2.3", NULL), -EAFNOSUPPORT);
    CHECK_EQ(corio_dgram_port(srv), 0);
    /* a second endpoint on a live path is refused */
    corio_dgram *dup = NULL;
    CHECK_ERR(corio_dgram_open_unix(sp, NULL, NULL, &dup), -EADDRINUSE);
    /* an unbound sender can send, but has no address to answer to */
    corio_dgram *anon = NULL;
    CHECK_OK(corio_dgram_open_unix(NULL, sp, NULL, &anon));
    CHECK_EQ(corio_dgram_send(anon, "anon", 4), 4);
    CHECK_EQ(corio_dgram_recv_from(srv, buf, sizeof buf, &from, &fl, NULL), 4);
    CHECK_EQ(fl, 0);
    corio_dgram_close(anon);
    corio_dgram_close(c);
    struct stat st;
    CHECK_EQ(stat(cp, &st), 0 - 1); /* close unlinked the client's file */
    corio_dgram_close(srv);
    CHECK_EQ(stat(sp, &st), -1);
    /* nobody at the path */
    CHECK_ERR(corio_dgram_open_unix(NULL, sp, NULL, &c), -ENOENT);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    CHECK_ERR(corio_dgram_open_unix(longp, NULL, NULL, &c), -ENAMETOOLONG);
    CHECK_ERR(corio_dgram_open_unix("", NULL, NULL, &c), -EINVAL);
    rmdir(tmpdir);
    return NULL;
}

TEST(unix_paths) { test_run(unix_main, NULL); }

static void *unix_stale_main(void *arg)
{
    (void)arg;
    const char *sp = tmp_path("stale.sock");
    /* a socket file left by an endpoint that is gone */
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, sp);
    CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    corio_dgram *srv = NULL;
    CHECK_OK(corio_dgram_open_unix(sp, NULL, NULL, &srv));
    corio_dgram *c = NULL;
    CHECK_OK(corio_dgram_open_unix(NULL, sp, NULL, &c));
    CHECK_EQ(corio_dgram_send(c, "s", 1), 1);
    char b[4];
    CHECK_EQ(corio_dgram_recv(srv, b, sizeof b, NULL), 1);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    /* a plain file is not a socket: it is left alone */
    FILE *f = fopen(sp, "w");
    CHECK(f);
    fclose(f);
    CHECK_ERR(corio_dgram_open_unix(sp, NULL, NULL, &srv), -EADDRINUSE);
    unlink(sp);
    rmdir(tmpdir);
    return NULL;
}

TEST(unix_stale_file_replaced) { test_run(unix_stale_main, NULL); }

static void *unix_abstract_main(void *arg)
{
    (void)arg;
    char sname[64], cname[64];
    snprintf(sname, sizeof sname, "@corio-test-dgram-%d", (int)getpid());
    snprintf(cname, sizeof cname, "@corio-test-dgram-%d-c", (int)getpid());
    corio_dgram *srv = NULL, *c = NULL;
    CHECK_OK(corio_dgram_open_unix(sname, NULL, NULL, &srv));
    CHECK_OK(corio_dgram_open_unix(cname, sname, NULL, &c));
    /* batch of ten to the abstract name, echoed back */
    corio_dgram_msg m[10];
    char data[10][8];
    for (int i = 0; i < 10; i++) {
        memset(&m[i], 0, sizeof m[i]);
        snprintf(data[i], sizeof data[i], "m%d", i);
        m[i].buf = data[i];
        m[i].len = strlen(data[i]);
    }
    CHECK_EQ(corio_dgram_send_batch(c, m, 10), 10);
    corio_dgram_msg r[10];
    char rb[10][8];
    for (int i = 0; i < 10; i++) {
        r[i].buf = rb[i];
        r[i].cap = sizeof rb[i];
    }
    int got = 0;
    while (got < 10) {
        int n = corio_dgram_recv_batch(srv, r + got, (unsigned)(10 - got));
        CHECK(n > 0);
        got += n;
    }
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(r[i].len, strlen(data[i]));
        CHECK_MEM(rb[i], data[i], r[i].len);
        struct sockaddr_un *su = (struct sockaddr_un *)&r[i].addr;
        CHECK_EQ(su->sun_path[0], '\0'); /* abstract */
        CHECK_EQ(r[i].addr_len, offsetof(struct sockaddr_un, sun_path) + strlen(cname));
        CHECK_MEM(su->sun_path + 1, cname + 1, strlen(cname) - 1);
    }
    CHECK_EQ(corio_dgram_send_batch(srv, r, 10), 10); /* straight back to each sender */
    for (int i = 0; i < 10; i++) {
        char b[8];
        CHECK_EQ(corio_dgram_recv(c, b, sizeof b, NULL), strlen(data[i]));
        CHECK_MEM(b, data[i], strlen(data[i]));
    }
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(unix_abstract_batch) { test_run(unix_abstract_main, NULL); }

/* A client bound to "@" gets a kernel-picked abstract name the server can
 * answer to; "@" as the remote is an error. */
static void *unix_autobind_main(void *arg)
{
    (void)arg;
    char sname[64];
    snprintf(sname, sizeof sname, "@corio-test-dgram-auto-%d", (int)getpid());
    corio_dgram *srv = NULL, *c = NULL;
    CHECK_OK(corio_dgram_open_unix(sname, NULL, NULL, &srv));
    CHECK_ERR(corio_dgram_open_unix(NULL, "@", NULL, &c), -EINVAL);
    CHECK(c == NULL);
    CHECK_OK(corio_dgram_open_unix("@", sname, NULL, &c));
    struct sockaddr_storage me;
    socklen_t me_len = 0;
    CHECK_OK(corio_dgram_sockname(c, &me, &me_len));
    CHECK(me_len > offsetof(struct sockaddr_un, sun_path) + 1); /* a name was picked */
    CHECK_EQ(((struct sockaddr_un *)&me)->sun_path[0], '\0');
    CHECK_EQ(corio_dgram_send(c, "ping", 4), 4);
    char b[8];
    struct sockaddr_storage from;
    socklen_t from_len = 0;
    CHECK_EQ(corio_dgram_recv_from(srv, b, sizeof b, &from, &from_len, NULL), 4);
    CHECK_EQ(from_len, me_len);
    CHECK_MEM(&from, &me, me_len);
    CHECK_EQ(corio_dgram_send_to(srv, "pong", 4, (struct sockaddr *)&from, from_len), 4);
    CHECK_EQ(corio_dgram_recv(c, b, sizeof b, NULL), 4);
    CHECK_MEM(b, "pong", 4);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(unix_autobind_client_gets_replies) { test_run(unix_autobind_main, NULL); }

/* A Unix receiver that reads nothing: connected senders wait for room in
 * its queue, then everything arrives in order. */
static void *unix_full_reader(void *arg)
{
    corio_dgram *srv = arg;
    for (int i = 0; i < 2000; i++) {
        int v = -1;
        CHECK_EQ(corio_dgram_recv(srv, &v, sizeof v, NULL), sizeof v);
        CHECK_EQ(v, i);
    }
    return NULL;
}

static void *unix_backpressure_main(void *arg)
{
    (void)arg;
    char sname[64];
    snprintf(sname, sizeof sname, "@corio-test-dgram-bp-%d", (int)getpid());
    corio_dgram *srv = NULL, *c = NULL, *u = NULL;
    CHECK_OK(corio_dgram_open_unix(sname, NULL, NULL, &srv));
    CHECK_OK(corio_dgram_open_unix(NULL, sname, NULL, &c));
    /* far more than the receiver's queue holds (max_dgram_qlen, 10 by
     * default... 512): the sender parks until the reader makes room */
    corio_task *rd = NULL;
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(corio_dgram_send(c, &i, sizeof i), sizeof i);
        if (i == 0)
            rd = corio_spawn(unix_full_reader, srv);
    }
    /* the unconnected sender (send_to) waits too, by backing off */
    CHECK_OK(corio_dgram_open_unix(NULL, NULL, NULL, &u));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path + 1, sname + 1, strlen(sname) - 1);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sname));
    for (int i = 1000; i < 2000; i++)
        CHECK_EQ(corio_dgram_send_to(u, &i, sizeof i, (struct sockaddr *)&sa, sl), sizeof i);
    CHECK_OK(corio_task_join(rd, NULL));
    corio_dgram_close(u);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(unix_sender_waits_for_room) { test_run(unix_backpressure_main, NULL); }

/* ---- batches ----------------------------------------------------------- */

static void *batch_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = udp_server("127.0.0.1");
    corio_dgram *c = udp_client("127.0.0.1", corio_dgram_port(srv));
    CHECK_EQ(corio_dgram_send_batch(c, NULL, 0), 0);
    CHECK_EQ(corio_dgram_recv_batch(srv, NULL, 0), 0);
    /* 150 datagrams (more than one system call's worth), sizes 1..150 */
    enum { N = 150 };
    static char data[N][N];
    static corio_dgram_msg m[N];
    for (int i = 0; i < N; i++) {
        memset(data[i], (char)i, sizeof data[i]);
        memset(&m[i], 0, sizeof m[i]);
        m[i].buf = data[i];
        m[i].len = (size_t)i + 1;
    }
    CHECK_EQ(corio_dgram_send_batch(c, m, N), N);
    static char rb[N][N + 10];
    static corio_dgram_msg r[N];
    for (int i = 0; i < N; i++) {
        r[i].buf = rb[i];
        r[i].cap = sizeof rb[i];
    }
    int got = 0, calls = 0;
    while (got < N) {
        int n = corio_dgram_recv_batch(srv, r + got, (unsigned)(N - got));
        CHECK(n > 0);
        got += n;
        calls++;
    }
    CHECK(calls <= N / 2); /* batched, not one by one */
    struct sockaddr_storage cs;
    CHECK_OK(corio_dgram_sockname(c, &cs, NULL));
    for (int i = 0; i < N; i++) {
        CHECK_EQ(r[i].len, i + 1);
        CHECK_EQ(r[i].flags, 0);
        CHECK_EQ(rb[i][0], (char)i);
        CHECK_EQ(rb[i][i], (char)i);
        CHECK_EQ(r[i].addr_len, sizeof(struct sockaddr_in));
        CHECK_MEM(&r[i].addr, &cs, sizeof(struct sockaddr_in));
    }
    /* a bad one in the middle: the count before it, then its error */
    m[3].len = 70000;
    CHECK_EQ(corio_dgram_send_batch(c, m, 5), 3);
    CHECK_ERR(corio_dgram_send_batch(c, m + 3, 2), -EMSGSIZE);
    CHECK_EQ(corio_dgram_send_batch(c, m + 4, 1), 1);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(batch_send_recv) { test_run(batch_main, NULL); }

/* Runs of equal-size datagrams to one address leave as one UDP GSO send
 * where the kernel allows it: the receiver must still see each datagram on
 * its own, in order, whatever the run and chunk boundaries.  Each phase
 * stays far below the receiver's socket buffer. */
static void recv_check(corio_dgram *srv, const corio_dgram_msg *m, unsigned n,
                       const struct sockaddr_storage *from)
{
    static char rb[100][300];
    static corio_dgram_msg r[100];
    CHECK(n <= 100);
    for (int i = 0; i < 100; i++) {
        r[i].buf = rb[i];
        r[i].cap = sizeof rb[i];
    }
    unsigned got = 0;
    while (got < n) {
        int k = corio_dgram_recv_batch(srv, r + got, n - got);
        CHECK(k > 0);
        got += (unsigned)k;
    }
    for (unsigned i = 0; i < n; i++) {
        CHECK_EQ(r[i].len, m[i].len);
        CHECK_MEM(rb[i], m[i].buf, m[i].len);
        CHECK_EQ(r[i].flags, 0);
        CHECK_MEM(&r[i].addr, from, sizeof(struct sockaddr_in));
    }
}

static void *batch_runs_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = udp_server("127.0.0.1");
    corio_dgram *c = udp_client("127.0.0.1", corio_dgram_port(srv));
    struct sockaddr_storage to, cs;
    socklen_t tl;
    CHECK_OK(corio_dgram_sockname(srv, &to, &tl));
    CHECK_OK(corio_dgram_sockname(c, &cs, NULL));
    enum { N = 140 };
    static uint32_t data[N][64];
    static corio_dgram_msg m[N];
    for (uint32_t i = 0; i < N; i++) {
        memset(&m[i], 0, sizeof m[i]);
        for (int j = 0; j < 64; j++)
            data[i][j] = i * 64 + (uint32_t)j;
        m[i].buf = data[i];
        /* a run of 90 (more than one system call's worth), a lone 37-byte
         * one, then runs of 256 and of 8 bytes; explicitly addressed */
        m[i].len = i < 90 ? 100 : i == 90 ? 37 : i < 120 ? 256 : 8;
        m[i].addr = to;
        m[i].addr_len = tl;
    }
    CHECK_EQ(corio_dgram_send_batch(c, m, 91), 91);
    recv_check(srv, m, 91, &cs);
    CHECK_EQ(corio_dgram_send_batch(c, m + 91, N - 91), N - 91);
    recv_check(srv, m + 91, N - 91, &cs);
    /* connected sends (no address) coalesce too */
    for (uint32_t i = 0; i < 20; i++)
        m[i].addr_len = 0;
    CHECK_EQ(corio_dgram_send_batch(c, m, 20), 20);
    recv_check(srv, m, 20, &cs);
    corio_dgram_close(c);
    corio_dgram_close(srv);
    return NULL;
}

TEST(batch_runs_to_one_address) { test_run(batch_runs_main, NULL); }

/* ---- cancellation, deadlines, close ------------------------------------ */

static void *blocked_recv(void *arg)
{
    char b[8];
    return (void *)(intptr_t)corio_dgram_recv(arg, b, sizeof b, NULL);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    corio_dgram *srv = udp_server("127.0.0.1");
    corio_task *t = corio_spawn(blocked_recv, srv);
    CHECK_OK(corio_yield()); /* t parks in its receive */
    CHECK_OK(corio_task_cancel(t));
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_EQ((intptr_t)res, -ECANCELED);
    /* the deadline ends a wait with nothing received */
    corio_deadline dl = corio_deadline_push(20);
    char b[8];
    CHECK_ERR(corio_dgram_recv(srv, b, sizeof b, NULL), -CORIO_EDEADLINE);
    corio_dgram_msg m = {.buf = b, .cap = sizeof b};
    CHECK_ERR(corio_dgram_recv_batch(srv, &m, 1), -CORIO_EDEADLINE);
    corio_deadline_pop(dl);
    /* nothing was lost: a datagram sent now is the next one received */
    corio_dgram *c = udp_client("127.0.0.1", corio_dgram_port(srv));
    CHECK_EQ(corio_dgram_send(c, "after", 5), 5);
    CHECK_EQ(corio_dgram_recv(srv, b, sizeof b, NULL), 5);
    CHECK_MEM(b, "after", 5);
    /* close wakes every task parked on the endpoint with -EBADF */
    corio_task *t1 = corio_spawn(blocked_recv, srv);
    corio_task *t2 = corio_spawn(blocked_recv, srv);
    CHECK_OK(corio_yield());
    corio_dgram_close(srv);
    CHECK_OK(corio_task_join(t1, &res));
    CHECK_EQ((intptr_t)res, -EBADF);
    CHECK_OK(corio_task_join(t2, &res));
    CHECK_EQ((intptr_t)res, -EBADF);
    corio_dgram_close(c);
    return NULL;
}

TEST(cancel_deadline_close_during_recv) { test_run(cancel_main, NULL); }

/* ---- options, multicast ------------------------------------------------ */

static void *options_main(void *arg)
{
    (void)arg;
    corio_dgram *d = udp_server("127.0.0.1");
    int v = -1;
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_BROADCAST, &v));
    CHECK_EQ(v, 0);
    CHECK_OK(corio_dgram_set_option(d, CORIO_DGRAM_BROADCAST, 1));
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_BROADCAST, &v));
    CHECK_EQ(v, 1);
    CHECK_ERR(corio_dgram_set_option(d, CORIO_DGRAM_BROADCAST, 2), -EINVAL);
    CHECK_OK(corio_dgram_set_option(d, CORIO_DGRAM_MULTICAST_TTL, 4));
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_MULTICAST_TTL, &v));
    CHECK_EQ(v, 4);
    CHECK_ERR(corio_dgram_set_option(d, CORIO_DGRAM_MULTICAST_TTL, 256), -EINVAL);
    CHECK_OK(corio_dgram_set_option(d, CORIO_DGRAM_MULTICAST_LOOP, 0));
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_MULTICAST_LOOP, &v));
    CHECK_EQ(v, 0);
    CHECK_OK(corio_dgram_set_option(d, CORIO_DGRAM_RCVBUF, 65536));
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_RCVBUF, &v));
    CHECK_EQ(v, 131072); /* Linux doubles it for its bookkeeping */
    CHECK_OK(corio_dgram_set_option(d, CORIO_DGRAM_TTL, 17));
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_TTL, &v));
    CHECK_EQ(v, 17);
    CHECK_ERR(corio_dgram_set_option(d, (corio_dgram_option)99, 1), -EINVAL);
    CHECK_ERR(corio_dgram_get_option(d, (corio_dgram_option)0, &v), -EINVAL);
    CHECK_ERR(corio_dgram_join(d, "10.0.0.1", NULL), -EINVAL);
    CHECK_ERR(corio_dgram_join(d, "not an address", NULL), -EINVAL);
    CHECK_ERR(corio_dgram_join(d, "239.1.1.1", "no-such-if0"), -ENODEV);
    CHECK_ERR(corio_dgram_join(d, "ff02::1:3", NULL), -EAFNOSUPPORT);
    corio_dgram_close(d);
    /* options from the configuration */
    corio_dgram_config cfg = {.broadcast = true, .reuse_addr = true, .reuse_port = true, .sndbuf = 32768};
    CHECK_OK(corio_dgram_open("127.0.0.1", 0, NULL, 0, &cfg, &d));
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_BROADCAST, &v));
    CHECK_EQ(v, 1);
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_REUSEADDR, &v));
    CHECK_EQ(v, 1);
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_REUSEPORT, &v));
    CHECK_EQ(v, 1);
    CHECK_OK(corio_dgram_get_option(d, CORIO_DGRAM_SNDBUF, &v));
    CHECK_EQ(v, 65536);
    /* a second socket on the same port, as reuse_port allows */
    corio_dgram *d2 = NULL;
    CHECK_OK(corio_dgram_open("127.0.0.1", corio_dgram_port(d), NULL, 0, &cfg, &d2));
    corio_dgram_close(d2);
    corio_dgram_close(d);
    return NULL;
}

TEST(options_broadcast_ttl_buffers) { test_run(options_main, NULL); }

static void *mcast_main(void *arg)
{
    const char *group = arg;
    bool v6 = strchr(group, ':') != NULL;
    unsigned lo = if_nametoindex("lo");
    if (!lo)
        return "no lo interface";
    corio_dgram_config cfg = {.reuse_addr = true, .family = v6 ? AF_INET6 : AF_INET};
    corio_dgram *rx = NULL, *tx = NULL;
    CHECK_OK(corio_dgram_open(NULL, 0, NULL, 0, &cfg, &rx));
    int r = corio_dgram_join(rx, group, "lo");
    if (r == -ENODEV || r == -ENOBUFS || r == -EADDRNOTAVAIL || r == -EINVAL || r == -EPERM) {
        corio_dgram_close(rx);
        return "the kernel refuses multicast membership on lo";
    }
    CHECK_OK(r);
    CHECK_ERR(corio_dgram_join(rx, group, "lo"), -EADDRINUSE);
    CHECK_OK(corio_dgram_open(NULL, 0, NULL, 0, &cfg, &tx));
    CHECK_OK(corio_dgram_set_option(tx, CORIO_DGRAM_MULTICAST_IF, (int)lo));
    CHECK_OK(corio_dgram_set_option(tx, CORIO_DGRAM_MULTICAST_LOOP, 1));
    struct sockaddr_storage ga;
    memset(&ga, 0, sizeof ga);
    socklen_t gl;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ga;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, group, &a->sin6_addr);
        a->sin6_port = htons(corio_dgram_port(rx));
        a->sin6_scope_id = lo;
        gl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ga;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, group, &a->sin_addr);
        a->sin_port = htons(corio_dgram_port(rx));
        gl = sizeof *a;
    }
    r = (int)corio_dgram_send_to(tx, "group", 5, (struct sockaddr *)&ga, gl);
    const char *skip = NULL;
    if (r == -ENETUNREACH || r == -EADDRNOTAVAIL || r == -ENODEV || r == -EPERM) {
        skip = "no multicast route over lo";
    } else {
        CHECK_EQ(r, 5);
        /* Delivery over lo is up to the kernel's configuration: allow it
         * a generous while, and skip (not fail) if it never comes. */
        corio_deadline dl = corio_deadline_push(3000);
        char b[8];
        ssize_t n = corio_dgram_recv(rx, b, sizeof b, NULL);
        corio_deadline_pop(dl);
        if (n == -CORIO_EDEADLINE) {
            skip = "multicast sent on lo is not looped back here";
        } else {
            CHECK_EQ(n, 5);
            CHECK_MEM(b, "group", 5);
        }
    }
    CHECK_OK(corio_dgram_leave(rx, group, "lo"));
    CHECK_ERR(corio_dgram_leave(rx, group, "lo"), -EADDRNOTAVAIL);
    corio_dgram_close(tx);
    corio_dgram_close(rx);
    return (void *)skip;
}

TEST(multicast_ipv4_on_lo)
{
    const char *why = test_run(mcast_main, "239.255.77.1");
    if (why)
        SKIP(why);
}

TEST(multicast_ipv6_on_lo)
{
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    if (probe < 0)
        SKIP("no IPv6");
    close(probe);
    const char *why = test_run(mcast_main, "ff02::4c:77");
    if (why)
        SKIP(why);
}

/* ---- adopting an fd ---------------------------------------------------- */

static void *from_fd_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    corio_dgram *a = NULL, *b = NULL;
    CHECK_OK(corio_dgram_from_fd(sv[0], &a));
    CHECK_OK(corio_dgram_from_fd(sv[1], &b));
    CHECK(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(corio_dgram_send(a, "pair", 4), 4);
    char buf[8];
    CHECK_EQ(corio_dgram_recv(b, buf, sizeof buf, NULL), 4);
    corio_dgram_close(a);
    corio_dgram_close(b);
    int st = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_ERR(corio_dgram_from_fd(st, &a), -EPROTOTYPE); /* and st is closed */
    CHECK(fcntl(st, F_GETFD) < 0);
    return NULL;
}

TEST(from_fd) { test_run(from_fd_main, NULL); }
