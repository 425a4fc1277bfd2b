/*
 * Where the HTTP server listens (corio_http_server_start, through
 * src/io/listen.c like corio_server_start): host NULL or "" answers on IPv4
 * and IPv6 through one dual-stack socket; a numeric IPv4 host answers on
 * IPv4 only; a name answers on every address it resolves to, all on one
 * port, each listener with its own accept task.  The connection cap is
 * shared by the listeners, and a graceful close closes every socket (the
 * process's fd count is back at its baseline).
 *
 * The name DUAL_NAME resolves to ::1 and 127.0.0.1 through the getaddrinfo
 * interposed below, so that the two-listener case runs on any machine,
 * whatever its /etc/hosts says about localhost.  The server runs on the
 * test's loop; the client is blocking socket code on a pool worker, and
 * every answer is checked byte for byte (the Date value masked).
 */
#include "runner.h"

#include <corio/http.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a resolver entry with two addresses ---- */

#define DUAL_NAME "dual.corio.invalid"

typedef struct fake_ai {
    struct addrinfo ai[2]; /* first: the pointer handed out is the block */
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
} fake_ai;

static char fake_mark[] = "corio-test";

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    if (node && strcmp(node, DUAL_NAME) == 0 && !(hints && (hints->ai_flags & AI_NUMERICHOST))) {
        fake_ai *f = calloc(1, sizeof *f);
        if (!f)
            return EAI_MEMORY;
        uint16_t port = htons((uint16_t)(service ? atoi(service) : 0));
        f->a6.sin6_family = AF_INET6;
        f->a6.sin6_port = port;
        f->a6.sin6_addr = in6addr_loopback;
        f->a4.sin_family = AF_INET;
        f->a4.sin_port = port;
        f->a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        f->ai[0] = (struct addrinfo){.ai_family = AF_INET6,
                                     .ai_socktype = SOCK_STREAM,
                                     .ai_protocol = IPPROTO_TCP,
                                     .ai_addrlen = sizeof f->a6,
                                     .ai_addr = (struct sockaddr *)&f->a6,
                                     .ai_canonname = fake_mark,
                                     .ai_next = &f->ai[1]};
        f->ai[1] = (struct addrinfo){.ai_family = AF_INET,
                                     .ai_socktype = SOCK_STREAM,
                                     .ai_protocol = IPPROTO_TCP,
                                     .ai_addrlen = sizeof f->a4,
                                     .ai_addr = (struct sockaddr *)&f->a4,
                                     .ai_canonname = fake_mark};
        *res = f->ai;
        return 0;
    }
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(
            RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai)
{
    if (ai && ai->ai_canonname == fake_mark) {
        free(ai);
        return;
    }
    void (*real)(struct addrinfo *) = (void (*)(struct addrinfo *))dlsym(RTLD_NEXT, "freeaddrinfo");
    real(ai);
}

/* ---- helpers ---- */

/* Whether this machine can bind ::1 (else the IPv6 parts are skipped). */
static bool have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int slow_started; /* a /slow request reached the handler */

/* Answer with the peer's address as the body ("/slow": after 100 ms). */
static void handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    if (req->path.len == 5 && memcmp(req->path.ptr, "/slow", 5) == 0) {
        __atomic_store_n(&slow_started, 1, __ATOMIC_SEQ_CST);
        corio_sleep_ms(100);
    }
    char peer[64];
    corio_http_request_peer(req, peer, sizeof peer);
    corio_http_response_send(resp, 200, "text/plain", peer, strlen(peer));
}

/* Connect to loopback of family on port: the fd, or -errno. */
static int cconnect(int family, uint16_t port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        a->sin6_addr = in6addr_loopback;
        sl = sizeof *a;
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void csends(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        CHECK(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Read one response (head + Content-Length body) into buf, NUL-terminated,
 * with the Date value replaced by "X". */
static void read_response(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        buf[n] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strstr(buf, "Content-Length: ");
            CHECK(cl && cl < end);
            size_t want = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
            if (n >= want) {
                CHECK_EQ(n, want);
                break;
            }
        }
        CHECK(n + 1 < cap);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        CHECK(r > 0);
        n += (size_t)r;
    }
    char *p = strstr(buf, "Date: ");
    CHECK(p);
    char *e = strstr(p, "\r\n");
    memmove(p + 7, e, strlen(e) + 1);
    p[6] = 'X';
}

/* The exact answer to GET / from peer (keep-alive, or closing). */
static void expect_answer(const char *got, const char *peer, bool closing)
{
    char want[512];
    snprintf(want, sizeof want,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nDate: X\r\nServer: "
             "corio\r\n%s\r\n%s",
             strlen(peer), closing ? "Connection: close\r\n" : "", peer);
    CHECK_STR(got, want);
}

/* GET / over loopback of family on port (a fresh connection that asks to
 * be closed); the body must be peer, then the server closes. */
static void get_from(int family, uint16_t port, const char *peer)
{
    int fd = cconnect(family, port);
    CHECK_OK(fd);
    csends(fd, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    char buf[1024];
    read_response(fd, buf, sizeof buf);
    expect_answer(buf, peer, true);
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 0);
    close(fd);
}

/* ---- harness: the server on the loop, the client on a worker ---- */

typedef struct tctx {
    const char *host;
    corio_http_server_config cfg;
    void (*client)(struct tctx *t);
    uint16_t port;
    bool v6;      /* ::1 can be bound on this machine */
    bool skipped; /* the client could not run its IPv6 part */
} tctx;

static void *client_thunk(void *a)
{
    tctx *t = a;
    t->client(t);
    return NULL;
}

static void *server_main(void *a)
{
    tctx *t = a;
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start(t->host, 0, handler, NULL, &t->cfg, &srv));
    t->port = corio_http_server_port(srv);
    CHECK(t->port != 0);
    CHECK_OK(corio_to_thread(client_thunk, t, NULL));
    CHECK_OK(corio_http_server_close(srv, 1000));
    return NULL;
}

static void run(const char *host, void (*client)(tctx *t), unsigned max_connections)
{
    tctx t;
    memset(&t, 0, sizeof t);
    t.host = host;
    t.cfg.max_connections = max_connections;
    t.client = client;
    t.v6 = have_ipv6();
    test_run(server_main, &t);
    if (t.skipped)
        SKIP("no IPv6 loopback: only the IPv4 part ran");
}

/* ---- tests ---- */

static void c_any(tctx *t)
{
    /* IPv4 clients reach the dual-stack socket as v4-mapped addresses */
    get_from(AF_INET, t->port, t->v6 ? "::ffff:127.0.0.1" : "127.0.0.1");
    if (!t->v6) {
        t->skipped = true;
        return;
    }
    get_from(AF_INET6, t->port, "::1");
}
TEST(null_host_serves_ipv4_and_ipv6) { run(NULL, c_any, 0); }
TEST(empty_host_serves_ipv4_and_ipv6) { run("", c_any, 0); }

static void c_v4_only(tctx *t)
{
    get_from(AF_INET, t->port, "127.0.0.1");
    if (!t->v6) {
        t->skipped = true;
        return;
    }
    CHECK_ERR(cconnect(AF_INET6, t->port), -ECONNREFUSED);
}
TEST(ipv4_host_does_not_answer_on_ipv6) { run("127.0.0.1", c_v4_only, 0); }

static void c_localhost(tctx *t)
{
    /* every address the resolver gives for localhost, on the one port */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    CHECK_EQ(getaddrinfo("localhost", NULL, &hints, &res), 0);
    int n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET6 && !t->v6)
            continue;
        if (ai->ai_family == AF_INET)
            get_from(AF_INET, t->port, "127.0.0.1");
        else if (ai->ai_family == AF_INET6)
            get_from(AF_INET6, t->port, "::1");
        n++;
    }
    freeaddrinfo(res);
    CHECK(n >= 1);
}
TEST(localhost_serves_every_address_on_one_port) { run("localhost", c_localhost, 0); }

static void c_dual(tctx *t)
{
    get_from(AF_INET, t->port, "127.0.0.1");
    if (!t->v6) {
        t->skipped = true;
        return;
    }
    get_from(AF_INET6, t->port, "::1");
}
TEST(two_addresses_two_listeners_one_port) { run(DUAL_NAME, c_dual, 0); }

/* The cap (1) counts the connections of both listeners: a connection on
 * the other address waits in the backlog until the open one closes. */
static void c_cap(tctx *t)
{
    if (!t->v6) {
        t->skipped = true;
        return;
    }
    char buf[1024];
    int fam[3] = {AF_INET, AF_INET6, AF_INET};
    const char *peer[3] = {"127.0.0.1", "::1", "127.0.0.1"};
    int fd[3];
    fd[0] = cconnect(fam[0], t->port);
    CHECK_OK(fd[0]);
    csends(fd[0], "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    read_response(fd[0], buf, sizeof buf);
    expect_answer(buf, peer[0], false);
    for (int i = 1; i < 3; i++) {
        /* the next one, on the other listener, is not served while fd[i-1] is open */
        fd[i] = cconnect(fam[i], t->port);
        CHECK_OK(fd[i]);
        csends(fd[i], "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        struct pollfd p = {.fd = fd[i], .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 200), 0);
        close(fd[i - 1]);
        read_response(fd[i], buf, sizeof buf);
        expect_answer(buf, peer[i], false);
    }
    close(fd[2]);
}
TEST(connection_cap_is_shared_by_the_listeners) { run(DUAL_NAME, c_cap, 1); }

/* Graceful close with two listeners: a request in flight on one is
 * finished, an idle connection on the other is closed at once, both
 * addresses refuse afterwards, and no fd is left open. */
typedef struct gctx {
    uint16_t port;
    bool v6;
} gctx;

static void *c_graceful(void *a)
{
    gctx *g = a;
    char buf[1024];
    int idle = cconnect(g->v6 ? AF_INET6 : AF_INET, g->port);
    CHECK_OK(idle);
    csends(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    read_response(idle, buf, sizeof buf);
    expect_answer(buf, g->v6 ? "::1" : "127.0.0.1", false);
    int busy = cconnect(AF_INET, g->port);
    CHECK_OK(busy);
    csends(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    /* the server closes while /slow sleeps: the idle connection goes first */
    CHECK_EQ(recv(idle, buf, sizeof buf, 0), 0);
    read_response(busy, buf, sizeof buf);
    expect_answer(buf, "127.0.0.1", true);
    CHECK_EQ(recv(busy, buf, sizeof buf, 0), 0);
    close(idle);
    close(busy);
    return NULL;
}

static void *client_task(void *a)
{
    CHECK_OK(corio_to_thread(c_graceful, a, NULL));
    return NULL;
}

static void *graceful_main(void *a)
{
    gctx *g = a;
    corio_http_server *srv;
    /* a first server warms up what stays open for the whole process (the
     * thread pool that resolves the name) */
    CHECK_OK(corio_http_server_start(DUAL_NAME, 0, handler, NULL, NULL, &srv));
    CHECK_OK(corio_http_server_close(srv, 0));
    int baseline = test_fd_count();

    CHECK_OK(corio_http_server_start(DUAL_NAME, 0, handler, NULL, NULL, &srv));
    g->port = corio_http_server_port(srv);
    CHECK_EQ(test_fd_count(), baseline + (g->v6 ? 2 : 1));
    corio_task *ct = corio_spawn(client_task, g);
    CHECK(ct);
    while (!__atomic_load_n(&slow_started, __ATOMIC_SEQ_CST))
        CHECK_OK(corio_sleep_ms(2));
    CHECK_OK(corio_http_server_close(srv, 3000));
    CHECK_OK(corio_task_join(ct, NULL));
    CHECK_EQ(test_fd_count(), baseline);
    CHECK_ERR(cconnect(AF_INET, g->port), -ECONNREFUSED);
    if (g->v6)
        CHECK_ERR(cconnect(AF_INET6, g->port), -ECONNREFUSED);
    return NULL;
}
TEST(graceful_close_with_two_listeners_leaves_no_fd)
{
    gctx g = {.v6 = have_ipv6()};
    test_run(graceful_main, &g);
    if (!g.v6)
        SKIP("no IPv6 loopback: one listener only");
}
