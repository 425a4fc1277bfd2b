/*
 * Socket activation in-process: the test plays systemd.  Before any loop
 * runs it puts listening sockets at fds 3 and 4 (whatever the process
 * inherited there is kept aside), without close-on-exec, as
 * a supervisor hands them over) and sets LISTEN_PID / LISTEN_FDS /
 * LISTEN_FDNAMES, then checks corio_listen_fds with sd_listen_fds' rules
 * (another pid's variables ignored, malformed ones refused, names, the
 * variables unset on request, close-on-exec set) and serves the sockets
 * with corio_server_start_fds and corio_http_server_start_fds, talking to
 * them over loopback.  Then every kind of fd that is not a listening
 * stream socket gets its own error, with nothing changed.  The launchers
 * (a Python one and systemd-socket-activate) run corio-serve in
 * tests/activation_test.sh.
 */
#include "runner.h"

#include <corio/http.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A listening TCP socket on 127.0.0.1, blocking, at fd `at` if at >= 0. */
static int tcp_listener(int at, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    CHECK_OK(listen(fd, 16));
    socklen_t l = sizeof a;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &l));
    if (port)
        *port = ntohs(a.sin_port);
    if (at >= 0 && fd != at) {
        CHECK_EQ(dup2(fd, at), at); /* no FD_CLOEXEC, as inherited */
        close(fd);
        fd = at;
    }
    return fd;
}

static uint16_t ports[2];
static int saved[2] = {-1, -1};

/* The test process may have inherited something at 3 or 4 (from whoever
 * started it): keep it aside while the slots hold our sockets. */
static void free_slots(void)
{
    for (int i = 0; i < 2; i++)
        if (fcntl(3 + i, F_GETFD) >= 0) {
            saved[i] = fcntl(3 + i, F_DUPFD_CLOEXEC, 200);
            CHECK(saved[i] >= 0);
            close(3 + i);
        }
}

static void restore_slots(void)
{
    for (int i = 0; i < 2; i++)
        if (saved[i] >= 0) {
            CHECK_EQ(dup2(saved[i], 3 + i), 3 + i);
            close(saved[i]);
        }
}

/* What a supervisor does: two sockets at 3 and 4, the variables set. */
static void pass_two(const char *names)
{
    free_slots();
    tcp_listener(3, &ports[0]);
    tcp_listener(4, &ports[1]);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

TEST(listen_fds_follows_sd_listen_fds)
{
    corio_listen_fd lf[4];
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    CHECK_EQ(corio_listen_fds(lf, 4, false), 0); /* nothing passed */

    pass_two("web:admin");
    CHECK_EQ(fcntl(3, F_GETFD) & FD_CLOEXEC, 0);
    CHECK_EQ(corio_listen_fds(lf, 4, false), 2);
    CHECK_EQ(lf[0].fd, 3);
    CHECK_EQ(lf[1].fd, 4);
    CHECK_STR(lf[0].name, "web");
    CHECK_STR(lf[1].name, "admin");
    /* close-on-exec now: no child inherits them */
    CHECK(fcntl(3, F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(4, F_GETFD) & FD_CLOEXEC);
    CHECK(getenv("LISTEN_FDS")); /* unset_env false: left */

    /* fewer slots than sockets: the count, the first ones described */
    memset(lf, 0, sizeof lf);
    CHECK_EQ(corio_listen_fds(lf, 1, false), 2);
    CHECK_EQ(lf[0].fd, 3);
    CHECK_EQ(lf[1].fd, 0);
    CHECK_EQ(corio_listen_fds(NULL, 0, false), 2);
    CHECK_ERR(corio_listen_fds(NULL, 1, false), -EINVAL);

    /* no names: systemd's "unknown" */
    unsetenv("LISTEN_FDNAMES");
    CHECK_EQ(corio_listen_fds(lf, 4, false), 2);
    CHECK_STR(lf[1].name, "unknown");

    /* malformed */
    setenv("LISTEN_FDNAMES", "only-one", 1);
    CHECK_ERR(corio_listen_fds(lf, 4, false), -EINVAL);
    unsetenv("LISTEN_FDNAMES");
    setenv("LISTEN_FDS", "2x", 1);
    CHECK_ERR(corio_listen_fds(lf, 4, false), -EINVAL);
    setenv("LISTEN_FDS", "-1", 1);
    CHECK_ERR(corio_listen_fds(lf, 4, false), -EINVAL);
    if (fcntl(5, F_GETFD) < 0) {
        setenv("LISTEN_FDS", "3", 1); /* fd 5 is not open */
        CHECK_ERR(corio_listen_fds(lf, 4, false), -EBADF);
    }
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_PID", "abc", 1);
    CHECK_ERR(corio_listen_fds(lf, 4, false), -EINVAL);

    /* another process's: inherited, not ours; unset on request */
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid() + 1);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDNAMES", "a:b", 1);
    CHECK_EQ(corio_listen_fds(lf, 4, true), 0);
    CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES"));

    /* ours, unset on request */
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    CHECK_EQ(corio_listen_fds(lf, 4, true), 2);
    CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS"));
    CHECK_EQ(corio_listen_fds(lf, 4, true), 0); /* gone: nothing the second time */
    close(3);
    close(4);
    restore_slots();
}

/* ------------------------------------------------------------------ */

static void echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[256];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0)
        if (corio_stream_write(s, buf, (size_t)n) < 0)
            break;
}

/* One round trip through the echo server on port. */
static void echo_once(uint16_t port, const char *msg)
{
    corio_stream *c;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &c));
    CHECK_OK(corio_stream_write(c, msg, strlen(msg)));
    char buf[64];
    size_t got;
    CHECK_EQ(corio_stream_readexactly(c, buf, strlen(msg), &got), (ssize_t)strlen(msg));
    CHECK_MEM(buf, msg, strlen(msg));
    corio_stream_close(c);
}

static void *tcp_main(void *arg)
{
    int *fds = arg;
    corio_server *srv;
    CHECK_OK(corio_server_start_fds(fds, 2, echo_handler, NULL, NULL, &srv));
    CHECK(fcntl(3, F_GETFL) & O_NONBLOCK);
    CHECK_EQ(corio_server_port(srv), ports[0]);
    struct sockaddr_storage ss;
    CHECK_OK(corio_server_sockname(srv, 1, &ss, NULL));
    CHECK_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), ports[1]);
    echo_once(ports[0], "first socket");
    echo_once(ports[1], "second socket");
    CHECK_OK(corio_server_close(srv, 1000));
    /* the server owned them: closed */
    CHECK(fcntl(3, F_GETFD) < 0 && fcntl(4, F_GETFD) < 0);
    return NULL;
}

TEST(tcp_server_serves_passed_sockets)
{
    pass_two(NULL);
    corio_listen_fd lf[2];
    CHECK_EQ(corio_listen_fds(lf, 2, true), 2);
    int fds[2] = {lf[0].fd, lf[1].fd};
    test_run(tcp_main, fds);
    restore_slots();
}

static void hello(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req;
    (void)arg;
    corio_http_response_send(resp, 200, "text/plain", "activated\n", 10);
}

static void http_get(uint16_t port)
{
    corio_stream *c;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &c));
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK_OK(corio_stream_write(c, req, strlen(req)));
    char buf[1024];
    size_t len = 0;
    ssize_t n;
    while ((n = corio_stream_read(c, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(buf, "\r\n\r\nactivated\n"));
    corio_stream_close(c);
}

static void *http_main(void *arg)
{
    int *fds = arg;
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start_fds(fds, 2, hello, NULL, NULL, &srv));
    CHECK_EQ(corio_http_server_port(srv), ports[0]);
    http_get(ports[0]);
    http_get(ports[1]);
    CHECK_OK(corio_http_server_close(srv, 1000));
    CHECK(fcntl(3, F_GETFD) < 0 && fcntl(4, F_GETFD) < 0);
    return NULL;
}

TEST(http_server_serves_passed_sockets)
{
    pass_two("http:http");
    corio_listen_fd lf[2];
    CHECK_EQ(corio_listen_fds(lf, 2, true), 2);
    CHECK_STR(lf[1].name, "http");
    int fds[2] = {lf[0].fd, lf[1].fd};
    test_run(http_main, fds);
    restore_slots();
}

/* ------------------------------------------------------------------ */

/* Echoes bytes, and answers fds passed with them by writing a byte into
 * each: only a Unix stream can receive them. */
static void fd_echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[256];
    int fds[4];
    size_t nfds = 4;
    ssize_t n;
    while ((n = corio_stream_read_fds(s, buf, sizeof buf, fds, &nfds, NULL)) > 0) {
        for (size_t i = 0; i < nfds; i++) {
            CHECK_EQ(write(fds[i], "!", 1), 1);
            close(fds[i]);
        }
        nfds = 4;
        if (corio_stream_write(s, buf, (size_t)n) < 0)
            break;
    }
}

static void *unix_main(void *arg)
{
    const char *path = arg;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    unlink(path);
    CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    CHECK_OK(listen(fd, 4));
    corio_server *srv;
    corio_server_config cfg = {.receive_fds = true};
    CHECK_OK(corio_server_start_fds(&fd, 1, fd_echo_handler, NULL, &cfg, &srv));
    CHECK_EQ(corio_server_port(srv), 0);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_OK(connect(c, (struct sockaddr *)&a, sizeof a));
    corio_stream *s = corio_stream_from_fd(c);
    CHECK(s);
    CHECK_OK(corio_stream_write(s, "unix", 4));
    char buf[4];
    size_t got;
    CHECK_EQ(corio_stream_readexactly(s, buf, 4, &got), 4);
    CHECK_MEM(buf, "unix", 4);
    /* the accepted streams are Unix streams receiving fds (cfg.receive_fds):
     * a passed fd reaches the handler */
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_OK(corio_stream_write_fds(s, "fd", 2, &p[1], 1));
    close(p[1]);
    CHECK_EQ(corio_stream_readexactly(s, buf, 2, &got), 2);
    CHECK_MEM(buf, "fd", 2);
    CHECK_EQ(read(p[0], buf, sizeof buf), 1); /* the handler wrote through it */
    CHECK_EQ(buf[0], '!');
    close(p[0]);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 1000));
    unlink(path);
    return NULL;
}

TEST(unix_stream_socket_is_served_too)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/corio-act-%d.sock", (int)getpid());
    test_run(unix_main, path);
}

static bool nonblocking(int fd) { return fcntl(fd, F_GETFL) & O_NONBLOCK; }

static void *bad_main(void *arg)
{
    (void)arg;
    corio_server *srv = (corio_server *)1;
    corio_http_server *hs = (corio_http_server *)1;
    uint16_t port;
    int good = tcp_listener(-1, &port);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* a stream socket, not listening */
    int closed = dup(p[0]);
    close(closed);
    struct {
        int fd, err;
    } cases[] = {{p[0], -ENOTSOCK}, {udp, -EOPNOTSUPP}, {idle, -EINVAL}, {closed, -EBADF}, {-1, -EBADF}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fds[2] = {good, cases[i].fd};
        CHECK_ERR(corio_server_start_fds(fds, 2, echo_handler, NULL, NULL, &srv), cases[i].err);
        CHECK(srv == NULL);
        CHECK_ERR(corio_http_server_start_fds(fds, 2, hello, NULL, NULL, &hs), cases[i].err);
        CHECK(hs == NULL);
        /* nothing changed, on the good one either */
        CHECK(!nonblocking(good));
        CHECK_EQ(fcntl(good, F_GETFD) & FD_CLOEXEC, 0);
    }
    int twice[2] = {good, good};
    CHECK_ERR(corio_server_start_fds(twice, 2, echo_handler, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_http_server_start_fds(twice, 2, hello, NULL, NULL, &hs), -EINVAL);
    CHECK_ERR(corio_server_start_fds(&good, 0, echo_handler, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_fds(NULL, 1, echo_handler, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_fds(&good, 1, NULL, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_fds(&good, 1, echo_handler, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_http_server_start_fds(&good, 1, NULL, NULL, NULL, &hs), -EINVAL);
    CHECK_ERR(corio_http_server_start_fds(&good, 1, hello, NULL, NULL, NULL), -EINVAL);
    int many[17];
    for (int i = 0; i < 17; i++)
        many[i] = good;
    CHECK_ERR(corio_server_start_fds(many, 17, echo_handler, NULL, NULL, &srv), -E2BIG);
    CHECK_ERR(corio_http_server_start_fds(many, 17, hello, NULL, NULL, &hs), -E2BIG);
    CHECK(!nonblocking(good));
    /* and it still works after all that */
    CHECK_OK(corio_server_start_fds(&good, 1, echo_handler, NULL, NULL, &srv));
    echo_once(port, "still good");
    CHECK_OK(corio_server_close(srv, 1000));
    close(p[0]);
    close(p[1]);
    close(udp);
    close(idle);
    return NULL;
}
TEST(fds_that_are_not_listening_stream_sockets_are_refused) { test_run(bad_main, NULL); }

TEST(outside_a_task)
{
    int fd = tcp_listener(-1, NULL);
    corio_server *srv;
    corio_http_server *hs;
    CHECK_ERR(corio_server_start_fds(&fd, 1, echo_handler, NULL, NULL, &srv), -EPERM);
    CHECK_ERR(corio_http_server_start_fds(&fd, 1, hello, NULL, NULL, &hs), -EPERM);
    CHECK(!nonblocking(fd));
    close(fd);
}
