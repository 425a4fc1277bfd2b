/*
 * No SIGPIPE, ever: every way corio writes to a pipe, FIFO or socket whose
 * reader is gone ends in -EPIPE (or -ECONNRESET) and the process lives on,
 * with SIGPIPE at its default (fatal) disposition as runner.c leaves it.
 * Covers streams over a pipe and a socket, corio_file_write/writev on a
 * pipe and a named FIFO (also when the reader leaves in the middle of a
 * write that waits for room), a plain write(2) on a corio_to_thread worker,
 * and the HTTP server's two body paths (copied and sendfile) when a client
 * aborts a download part-way: the server keeps answering the next request
 * in full.  Then the signal-mask policy of corio_run: the caller's mask
 * is the same after the run, a SIGPIPE raised by corio's writes is never
 * left pending, and one the caller had pending before the run stays.
 */
#include "runner.h"

#include <corio/http.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BIG (16u << 20) /* more than any pipe or socket buffer takes at once */

static char *big_buffer(void)
{
    char *b = malloc(BIG);
    CHECK(b);
    for (size_t i = 0; i < BIG; i++)
        b[i] = (char)('a' + i % 26);
    return b;
}

static bool sigpipe_pending(void)
{
    sigset_t p;
    sigemptyset(&p);
    CHECK(sigpending(&p) == 0);
    return sigismember(&p, SIGPIPE);
}

/* A pipe whose read end is already closed: the write end. */
static int pipe_without_reader(void)
{
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    close(fds[0]);
    return fds[1];
}

/* ---- streams ---- */

/* Write and wait until all of it is gone (water marks 0: drain waits for
 * an empty buffer). */
static int stream_write_all(corio_stream *s, const void *buf, size_t n)
{
    corio_stream_set_write_limits(s, 0, 0);
    int r = corio_stream_write(s, buf, n);
    return r < 0 ? r : corio_stream_drain(s);
}

static void *stream_pipe_main(void *arg)
{
    corio_stream *s = corio_stream_from_fd(pipe_without_reader());
    CHECK(s);
    CHECK_ERR(stream_write_all(s, "x", 1), -EPIPE);
    corio_stream_close(s);
    return NULL;
}
TEST(stream_on_pipe_without_reader) { test_run(stream_pipe_main, NULL); }

/* The reader takes a little, then leaves while the writer waits for room. */
static void *read_some_then_close(void *arg)
{
    int rfd = (int)(intptr_t)arg;
    char buf[1000];
    CHECK_EQ(corio_file_read(rfd, buf, sizeof buf), sizeof buf);
    CHECK_OK(corio_file_close(rfd));
    return NULL;
}

/* A pipe whose reader task (read_some_then_close) is already spawned:
 * returns the write end, *reader the task to join. */
static int pipe_with_leaving_reader(corio_task **reader)
{
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    *reader = corio_spawn(read_some_then_close, (void *)(intptr_t)fds[0]);
    CHECK(*reader);
    return fds[1];
}

static void *stream_pipe_leaves_main(void *arg)
{
    corio_task *t;
    corio_stream *s = corio_stream_from_fd(pipe_with_leaving_reader(&t));
    CHECK(s);
    char *b = big_buffer();
    CHECK_ERR(stream_write_all(s, b, BIG), -EPIPE);
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(s);
    free(b);
    return NULL;
}
TEST(stream_on_pipe_reader_leaves_midway) { test_run(stream_pipe_leaves_main, NULL); }

static void *stream_socket_main(void *arg)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    close(sv[1]);
    corio_stream *s = corio_stream_from_fd(sv[0]);
    CHECK(s);
    CHECK_ERR(stream_write_all(s, "x", 1), -EPIPE);
    corio_stream_close(s);
    return NULL;
}
TEST(stream_on_socket_without_peer) { test_run(stream_socket_main, NULL); }

/* ---- corio_file_* ---- */

static void *file_pipe_main(void *arg)
{
    int fd = pipe_without_reader();
    CHECK_ERR(corio_file_write(fd, "x", 1), -EPIPE);
    struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
    CHECK_ERR(corio_file_writev(fd, iov, 2), -EPIPE);
    /* pwrite has no meaning on a pipe and never gets to the pipe */
    CHECK_ERR(corio_file_pwrite(fd, "x", 1, 0), -ESPIPE);
    CHECK_OK(corio_file_close(fd));
    return NULL;
}
TEST(file_write_on_pipe_without_reader) { test_run(file_pipe_main, NULL); }

static void *file_pipe_leaves_main(void *arg)
{
    corio_task *t;
    int wfd = pipe_with_leaving_reader(&t);
    char *b = big_buffer();
    /* blocking description: the write waits for room until the reader
     * leaves, returns what went out, and the next one reports -EPIPE */
    ssize_t n = corio_file_write(wfd, b, BIG);
    CHECK(n > 0 && n < (ssize_t)BIG);
    CHECK_ERR(corio_file_write(wfd, b, BIG), -EPIPE);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_OK(corio_file_close(wfd));
    free(b);
    return NULL;
}
TEST(file_write_on_pipe_reader_leaves_midway) { test_run(file_pipe_leaves_main, NULL); }

static void *file_fifo_main(void *arg)
{
    char dir[] = "/tmp/corio_sigpipe_XXXXXX";
    CHECK(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    int rfd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK(rfd >= 0);
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(wfd >= 0);
    CHECK_EQ(corio_file_write(wfd, "ab", 2), 2);
    close(rfd);
    CHECK_ERR(corio_file_write(wfd, "x", 1), -EPIPE);
    corio_stream *s = corio_stream_from_fd(wfd);
    CHECK(s);
    CHECK_ERR(stream_write_all(s, "x", 1), -EPIPE);
    corio_stream_close(s);
    unlink(path);
    rmdir(dir);
    return NULL;
}
TEST(file_and_stream_on_fifo_without_reader) { test_run(file_fifo_main, NULL); }

/* A blocking function on a worker thread writes to the dead pipe itself. */
static void *raw_write(void *arg)
{
    int fd = *(int *)arg;
    ssize_t r = write(fd, "x", 1);
    return (void *)(intptr_t)(r < 0 ? -errno : r);
}

static void *to_thread_main(void *arg)
{
    int fd = pipe_without_reader();
    void *res = NULL;
    CHECK_OK(corio_to_thread(raw_write, &fd, &res));
    CHECK_ERR((intptr_t)res, -EPIPE);
    close(fd);
    return NULL;
}
TEST(to_thread_write_on_pipe_without_reader) { test_run(to_thread_main, NULL); }

/* ---- HTTP: a client aborts a big download part-way ---- */

typedef struct {
    corio_http_server *srv;
    int port;
    int file_fd;
    int aborted_results[2]; /* what respond / respond_file returned to the aborted downloads */
    int naborted;
    char *body;
} http_ctx;

static bool path_is(const corio_http_request *req, const char *p)
{
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void http_handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    http_ctx *h = arg;
    int r;
    if (path_is(req, "/copy"))
        r = corio_http_response_send(resp, 200, "application/octet-stream", h->body, BIG);
    else if (path_is(req, "/sendfile"))
        r = corio_http_response_send_file(resp, 200, "application/octet-stream", h->file_fd, 0, BIG);
    else
        r = corio_http_response_send(resp, 200, "text/plain", "hello", 5);
    if (r < 0 && h->naborted < 2)
        h->aborted_results[h->naborted++] = r;
}

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {.tv_sec = 10 * TEST_SLOWDOWN};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void client_send(int fd, const char *s)
{
    size_t n = strlen(s);
    CHECK_EQ(send(fd, s, n, MSG_NOSIGNAL), n);
}

/* On fd: GET path, read 100 bytes (the head has gone out, the body has
 * begun), then close: over TCP with a reset (SO_LINGER 0, as a browser
 * that gives up), over a Unix socket plainly, which makes the server's
 * next send fail with EPIPE at once. */
static void client_abort_on(int fd, const char *path, bool reset)
{
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    client_send(fd, req);
    char buf[100];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
        CHECK(r > 0);
        got += (size_t)r;
    }
    CHECK_MEM(buf, "HTTP/1.1 200 OK\r\n", 17);
    if (reset) {
        struct linger lg = {1, 0};
        CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    }
    close(fd);
}

/* A whole answer to GET /hello on a fresh connection. */
static void client_hello(int port)
{
    int fd = client_connect(port);
    client_send(fd, "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    char buf[1024];
    size_t n = 0;
    ssize_t r;
    while ((r = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0)
        n += (size_t)r;
    CHECK_EQ(r, 0);
    buf[n] = 0;
    CHECK(n > 5 && strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && !strcmp(buf + n - 5, "hello"));
    close(fd);
}

static void *hello_client(void *arg)
{
    client_hello(((http_ctx *)arg)->port);
    return NULL;
}

static const char *const paths[2] = {"/copy", "/sendfile"};

static void *tcp_client(void *arg)
{
    http_ctx *h = arg;
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 2; k++) {
            client_abort_on(client_connect(h->port), paths[k], true);
            client_hello(h->port);
        }
    }
    return NULL;
}

static void *unix_client(void *arg)
{
    int *fd = arg;
    client_abort_on(fd[0], paths[fd[1]], false);
    return NULL;
}

static void *http_main(void *arg)
{
    http_ctx *h = arg;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, http_handler, h, NULL, &h->srv));
    h->port = corio_http_server_port(h->srv);
    /* Unix sockets first: their aborts must reach the handlers as -EPIPE */
    for (int k = 0; k < 2; k++) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK_OK(corio_http_server_serve_fd(h->srv, sv[1]));
        int arg2[2] = {sv[0], k};
        CHECK_OK(corio_to_thread(unix_client, arg2, NULL));
        while (h->naborted == k)
            CHECK_OK(corio_sleep_ms(1));
        CHECK_ERR(h->aborted_results[k], -EPIPE);
        CHECK_OK(corio_to_thread(hello_client, h, NULL));
    }
    CHECK_OK(corio_to_thread(tcp_client, h, NULL));
    CHECK_OK(corio_http_server_close(h->srv, 1000));
    return NULL;
}

TEST(http_download_aborted_by_client)
{
    http_ctx h = {.body = big_buffer()};
    char path[] = "/tmp/corio_sigpipe_file_XXXXXX";
    h.file_fd = mkostemp(path, O_CLOEXEC);
    CHECK(h.file_fd >= 0);
    unlink(path);
    CHECK_EQ(write(h.file_fd, h.body, BIG), BIG);
    test_run(http_main, &h);
    close(h.file_fd);
    free(h.body);
}

/* ---- the signal mask around corio_run ---- */

static void *epipe_main(void *arg)
{
    int fd = pipe_without_reader();
    CHECK_ERR(corio_file_write(fd, "x", 1), -EPIPE);
    corio_stream *s = corio_stream_from_fd(fd);
    CHECK(s);
    CHECK_ERR(stream_write_all(s, "x", 1), -EPIPE);
    corio_stream_close(s);
    return NULL;
}

static void check_same_mask(const sigset_t *a, const sigset_t *b)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != 32 && sig != 33) /* glibc's own, never in a user-visible mask */
            CHECK_EQ(sigismember(a, sig), sigismember(b, sig));
}

TEST(caller_mask_restored)
{
    /* an arbitrary mask of the caller's, without SIGPIPE */
    sigset_t set, before, after;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGWINCH);
    CHECK(pthread_sigmask(SIG_SETMASK, &set, NULL) == 0);
    CHECK(pthread_sigmask(SIG_SETMASK, NULL, &before) == 0);
    test_run(epipe_main, NULL);
    CHECK(pthread_sigmask(SIG_SETMASK, NULL, &after) == 0);
    check_same_mask(&before, &after);
    CHECK(!sigismember(&after, SIGPIPE));
    CHECK(!sigpipe_pending());
    /* and a SIGPIPE after the run is the caller's again: delivered */
    CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
    CHECK(raise(SIGPIPE) == 0);
    CHECK(!sigpipe_pending());
    signal(SIGPIPE, SIG_DFL);
}

TEST(caller_blocked_sigpipe_ours_consumed)
{
    sigset_t set, before, after;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
    CHECK(pthread_sigmask(SIG_SETMASK, NULL, &before) == 0);
    test_run(epipe_main, NULL);
    CHECK(pthread_sigmask(SIG_SETMASK, NULL, &after) == 0);
    check_same_mask(&before, &after);
    CHECK(sigismember(&after, SIGPIPE));
    CHECK(!sigpipe_pending()); /* corio's own SIGPIPEs are not left behind */
}

TEST(caller_pending_sigpipe_kept)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
    CHECK(raise(SIGPIPE) == 0);
    CHECK(sigpipe_pending());
    test_run(epipe_main, NULL);
    CHECK(sigpipe_pending()); /* the caller's own is still there */
    struct timespec zero = {0, 0};
    CHECK_EQ(sigtimedwait(&set, NULL, &zero), SIGPIPE);
    CHECK(!sigpipe_pending());
}
