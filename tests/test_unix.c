/*
 * Unix domain stream sockets (src/io/unix.c) and passing fds over them
 * (src/io/fdpass.c, the stream's recvmsg path): echo round trips through a
 * socket file and the abstract namespace, a stale socket file replaced
 * but a live one and a non-socket file left alone, name limits, the
 * server removing its own file (and only its own) on close, permissions,
 * peer credentials, fds passed with data (one, several, interleaved with
 * plain data, through a full socket, after readline), fds nobody claims
 * closed with the stream, fds lost at the fd limit reported, and a
 * connect that waits while the server's backlog is full.
 */
#include "runner.h"

#include <fcntl.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64];

/* A fresh directory for the test's socket files; path names one in it. */
static const char *tmp_path(const char *name)
{
    static char path[128];
    if (!dir[0]) {
        strcpy(dir, "/tmp/corio-unix-XXXXXX");
        CHECK(mkdtemp(dir));
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[8192];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0)
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            break;
}

static void round_trip(const char *path, size_t n)
{
    corio_stream *s;
    CHECK_OK(corio_stream_connect_unix(path, &s));
    char *out = malloc(n), *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(i * 7 + 1);
    CHECK_OK(corio_stream_write(s, out, n));
    CHECK_EQ(corio_stream_readexactly(s, in, n, NULL), n);
    CHECK_MEM(in, out, n);
    CHECK_OK(corio_stream_aclose(s));
    free(out);
    free(in);
}

/* ---- servers and clients ------------------------------------------------ */

static void *echo_main(void *arg)
{
    (void)arg;
    const char *p = tmp_path("echo.sock");
    char path[128];
    strcpy(path, p);
    corio_server *srv;
    CHECK_OK(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv));
    CHECK(exists(path));
    CHECK_EQ(corio_server_port(srv), 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    CHECK_OK(corio_server_sockname(srv, 0, &ss, &sl));
    CHECK_EQ(ss.ss_family, AF_UNIX);
    char name[128];
    CHECK_STR(corio_addr_format((struct sockaddr *)&ss, name, sizeof name), path);
    round_trip(path, 5);
    round_trip(path, 1 << 20); /* more than the socket buffers: queued writes both ways */

    corio_stream *s;
    CHECK_OK(corio_stream_connect_unix(path, &s));
    CHECK_OK(corio_stream_peername(s, &ss, &sl));
    CHECK_STR(corio_addr_format((struct sockaddr *)&ss, name, sizeof name), path);
    CHECK_OK(corio_stream_sockname(s, &ss, &sl));
    CHECK_STR(corio_addr_format((struct sockaddr *)&ss, name, sizeof name), "(unnamed)");
    corio_stream_close(s);

    CHECK_OK(corio_server_close(srv, 100));
    CHECK(!exists(path)); /* the server removes the file it made */
    CHECK_ERR(corio_stream_connect_unix(path, &s), -ENOENT);
    rmdir(dir);
    return NULL;
}

TEST(echo_round_trip_and_close_removes_file) { test_run(echo_main, NULL); }

static void *abstract_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "@corio-test-%d", (int)getpid());
    corio_server *srv, *srv2;
    CHECK_OK(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv));
    CHECK(!exists(path) && !exists(path + 1));
    struct sockaddr_storage ss;
    socklen_t sl;
    CHECK_OK(corio_server_sockname(srv, 0, &ss, &sl));
    CHECK_EQ(sl, offsetof(struct sockaddr_un, sun_path) + strlen(path)); /* no NUL counted */
    char name[128];
    CHECK_STR(corio_addr_format((struct sockaddr *)&ss, name, sizeof name), path);
    round_trip(path, 100);
    /* a live abstract name is taken: nothing to replace */
    CHECK_ERR(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv2), -EADDRINUSE);
    CHECK_OK(corio_server_close(srv, 100));
    corio_stream *s;
    CHECK_ERR(corio_stream_connect_unix(path, &s), -ECONNREFUSED);

    /* "@": the kernel picks a name, as port 0 does */
    CHECK_OK(corio_server_start_unix("@", echo_handler, NULL, NULL, &srv));
    CHECK_OK(corio_server_sockname(srv, 0, &ss, &sl));
    CHECK_EQ(sl, offsetof(struct sockaddr_un, sun_path) + 6); /* NUL + 5 hex digits */
    corio_addr_format((struct sockaddr *)&ss, name, sizeof name);
    CHECK_EQ(name[0], '@');
    CHECK_EQ(strlen(name), 6);
    round_trip(name, 10);
    CHECK_OK(corio_server_close(srv, 100));
    CHECK_ERR(corio_stream_connect_unix("@", &s), -EINVAL);
    return NULL;
}

TEST(abstract_namespace) { test_run(abstract_main, NULL); }

static void *stale_main(void *arg)
{
    (void)arg;
    char path[128];
    strcpy(path, tmp_path("stale.sock"));
    /* a socket file whose server is gone: bound, never listening, closed */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    CHECK_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
    close(fd);
    CHECK(exists(path));
    corio_stream *s;
    CHECK_ERR(corio_stream_connect_unix(path, &s), -ECONNREFUSED);

    corio_server *srv, *srv2;
    CHECK_OK(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv));
    round_trip(path, 10);
    /* live: refused, and the running server keeps its file */
    CHECK_ERR(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv2), -EADDRINUSE);
    CHECK(exists(path));
    round_trip(path, 10);
    CHECK_OK(corio_server_close(srv, 100));
    CHECK(!exists(path));
    rmdir(dir);
    return NULL;
}

TEST(stale_socket_replaced_live_one_kept) { test_run(stale_main, NULL); }

static void *nonsock_main(void *arg)
{
    (void)arg;
    char path[128];
    strcpy(path, tmp_path("file"));
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "keep", 4), 4);
    close(fd);
    corio_server *srv;
    CHECK_ERR(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv), -EADDRINUSE);
    struct stat st;
    CHECK_OK(stat(path, &st));
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(st.st_size, 4);
    unlink(path);
    /* a directory and a FIFO are left alone the same way */
    CHECK_OK(mkdir(path, 0700));
    CHECK_ERR(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv), -EADDRINUSE);
    CHECK(exists(path));
    rmdir(path);
    CHECK_OK(mkfifo(path, 0600));
    CHECK_ERR(corio_server_start_unix(path, echo_handler, NULL, NULL, &srv), -EADDRINUSE);
    CHECK_OK(stat(path, &st));
    CHECK(S_ISFIFO(st.st_mode));
    unlink(path);
    /* a missing directory */
    CHECK_ERR(corio_server_start_unix(tmp_path("no/such.sock"), echo_handler, NULL, NULL, &srv), -ENOENT);
    rmdir(dir);
    return NULL;
}

TEST(non_socket_file_untouched) { test_run(nonsock_main, NULL); }

static void *names_main(void *arg)
{
    (void)arg;
    char longp[200];
    memset(longp, 'a', sizeof longp);
    longp[108] = '\0'; /* 108 bytes + NUL: one too many */
    corio_server *srv;
    corio_stream *s;
    CHECK_ERR(corio_server_start_unix(longp, echo_handler, NULL, NULL, &srv), -ENAMETOOLONG);
    CHECK_ERR(corio_stream_connect_unix(longp, &s), -ENAMETOOLONG);
    longp[0] = '@'; /* an abstract name of 107 bytes after '@' fits exactly */
    longp[108] = 'a';
    longp[109] = '\0';
    CHECK_ERR(corio_server_start_unix(longp, echo_handler, NULL, NULL, &srv), -ENAMETOOLONG);
    longp[108] = '\0';
    snprintf(longp + 1, 12, "%010d", (int)getpid());
    longp[11] = 'a';
    CHECK_OK(corio_server_start_unix(longp, echo_handler, NULL, NULL, &srv));
    round_trip(longp, 3);
    CHECK_OK(corio_server_close(srv, 0));
    CHECK_ERR(corio_server_start_unix("", echo_handler, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_stream_connect_unix("", &s), -EINVAL);
    return NULL;
}

TEST(name_limits) { test_run(names_main, NULL); }

static void *replaced_main(void *arg)
{
    (void)arg;
    char path[128];
    strcpy(path, tmp_path("swap.sock"));
    corio_server *a, *b;
    corio_server_config cfg = {.mode = 0600};
    CHECK_OK(corio_server_start_unix(path, echo_handler, NULL, &cfg, &a));
    struct stat st;
    CHECK_OK(stat(path, &st));
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* someone removes a's file and starts b at the same path */
    CHECK_OK(unlink(path));
    CHECK_OK(corio_server_start_unix(path, echo_handler, NULL, NULL, &b));
    CHECK_OK(corio_server_close(a, 0));
    CHECK(exists(path)); /* b's file: not a's to remove */
    round_trip(path, 10);
    CHECK_OK(corio_server_close(b, 0));
    CHECK(!exists(path));
    rmdir(dir);
    return NULL;
}

TEST(close_removes_only_its_own_file_and_mode) { test_run(replaced_main, NULL); }

/* ---- peer credentials ---------------------------------------------------- */

static int cred_seen;

static void cred_handler(corio_stream *s, void *arg)
{
    (void)arg;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    CHECK_OK(corio_stream_peercred(s, &pid, &uid, &gid));
    CHECK_EQ(pid, getpid());
    CHECK_EQ(uid, getuid());
    CHECK_EQ(gid, getgid());
    cred_seen = 1;
    corio_stream_write(s, "k", 1);
}

static void *cred_main(void *arg)
{
    (void)arg;
    corio_server *srv;
    char path[64];
    snprintf(path, sizeof path, "@corio-cred-%d", (int)getpid());
    CHECK_OK(corio_server_start_unix(path, cred_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect_unix(path, &s));
    char c;
    CHECK_EQ(corio_stream_read(s, &c, 1), 1);
    CHECK_EQ(cred_seen, 1);
    pid_t pid;
    CHECK_OK(corio_stream_peercred(s, &pid, NULL, NULL));
    CHECK_EQ(pid, getpid());
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 100));

    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    corio_stream *ps = corio_stream_from_fd(p[0]);
    CHECK_ERR(corio_stream_peercred(ps, &pid, NULL, NULL), -ENOTSOCK);
    corio_stream_close(ps);
    close(p[1]);
    return NULL;
}

TEST(peer_credentials) { test_run(cred_main, NULL); }

/* ---- passing fds --------------------------------------------------------- */

/* Two connected Unix streams; receiving fds when rx_fds. */
static void pair_opt(corio_stream **a, corio_stream **b, bool rx_fds)
{
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    *a = corio_stream_from_fd(sv[0]);
    *b = corio_stream_from_fd(sv[1]);
    CHECK(*a && *b);
    if (rx_fds) {
        CHECK_OK(corio_stream_set_receive_fds(*a, true));
        CHECK_OK(corio_stream_set_receive_fds(*b, true));
    }
}

static void pair(corio_stream **a, corio_stream **b) { pair_opt(a, b, true); }

/* fd (a received pipe write end) and rd (the pipe's read end) are the same
 * pipe: write through one, read from the other.  Closes fd. */
static void check_pipe(int fd, int rd, const char *msg)
{
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    size_t n = strlen(msg);
    CHECK_EQ(write(fd, msg, n), n);
    close(fd);
    char buf[64];
    CHECK_EQ(read(rd, buf, sizeof buf), n);
    CHECK_MEM(buf, msg, n);
}

static void *fd_round_trip_main(void *arg)
{
    (void)arg;
    int base = test_fd_count();
    corio_stream *a, *b;
    pair(&a, &b);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_OK(corio_stream_write_fds(a, "x", 1, &p[1], 1));
    close(p[1]); /* ours: the peer gets its own */
    char buf[16];
    int fds[4];
    size_t nfds = 4;
    int flags = -1;
    CHECK_EQ(corio_stream_read_fds(b, buf, sizeof buf, fds, &nfds, &flags), 1);
    CHECK_EQ(buf[0], 'x');
    CHECK_EQ(nfds, 1);
    CHECK_EQ(flags, 0);
    check_pipe(fds[0], p[0], "through the passed fd");
    CHECK_EQ(read(p[0], buf, sizeof buf), 0); /* every write end is closed: nothing kept a copy */
    close(p[0]);
    corio_stream_close(a);
    corio_stream_close(b);
    CHECK_EQ(test_fd_count(), base);
    return NULL;
}

TEST(fd_passing_round_trip) { test_run(fd_round_trip_main, NULL); }

/* The same through a server and a client made by corio, one per backend's
 * recvmsg op. */
static void fd_server_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[16];
    int fds[8];
    size_t nfds = 8;
    ssize_t n = corio_stream_read_fds(s, buf, sizeof buf, fds, &nfds, NULL);
    CHECK_EQ(n, 3);
    CHECK_EQ(nfds, 2);
    /* hand them back, with a reply */
    CHECK_OK(corio_stream_write_fds(s, "ok", 2, fds, 2));
    close(fds[0]);
    close(fds[1]);
    CHECK_OK(corio_stream_drain(s));
    CHECK_EQ(corio_stream_read(s, buf, 1), 0);
}

static void *fd_server_main(void *arg)
{
    (void)arg;
    int base = test_fd_count();
    char path[64];
    snprintf(path, sizeof path, "@corio-fds-%d", (int)getpid());
    corio_server *srv;
    corio_server_config cfg = {.receive_fds = true};
    CHECK_OK(corio_server_start_unix(path, fd_server_handler, NULL, &cfg, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect_unix(path, &s));
    CHECK_OK(corio_stream_set_receive_fds(s, true));
    int p1[2], p2[2];
    CHECK_OK(pipe2(p1, O_CLOEXEC));
    CHECK_OK(pipe2(p2, O_CLOEXEC));
    int send[2] = {p1[1], p2[1]};
    CHECK_OK(corio_stream_write_fds(s, "abc", 3, send, 2));
    char buf[16];
    int fds[8];
    size_t nfds = 8;
    CHECK_EQ(corio_stream_read_fds(s, buf, sizeof buf, fds, &nfds, NULL), 2);
    CHECK_MEM(buf, "ok", 2);
    CHECK_EQ(nfds, 2);
    check_pipe(fds[0], p1[0], "one");
    check_pipe(fds[1], p2[0], "two");
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 1000));
    close(p1[1]);
    close(p2[1]);
    close(p1[0]);
    close(p2[0]);
    CHECK_EQ(test_fd_count(), base);
    return NULL;
}

TEST(fd_passing_through_server) { test_run(fd_server_main, NULL); }

/* A reader parked on a drained socket is woken to receive and makes the
 * recvmsg itself (src/core/op.c, CORIO__OP_READY): the fds that arrive
 * while it waits come with its bytes, and a close that comes between that
 * wake-up and the receive ends the read instead of leaving it waiting. */
/* A receive this big makes io_uring wait for the next one with a poll
 * and let the task receive (SOCKIN_BULK in src/io/sockin.c). */
#define BULK_MSG (16 * 1024)

typedef struct parked_reader {
    corio_stream *s;
    corio_stream *close_after; /* closed once this read returns (NULL: none) */
    ssize_t got;
    char buf[8];
    int fds[4];
    size_t nfds;
} parked_reader;

static void *parked_read(void *arg)
{
    parked_reader *r = arg;
    r->nfds = 4;
    r->got = corio_stream_read_fds(r->s, r->buf, sizeof r->buf, r->fds, &r->nfds, NULL);
    if (r->close_after)
        corio_stream_close(r->close_after);
    return NULL;
}

static void *parked_fds_main(void *arg)
{
    (void)arg;
    int base = test_fd_count();
    corio_stream *a, *b;
    pair(&a, &b);
    /* a short read first: the socket is drained, the next read waits (a
     * bulk one, so io_uring too takes that path: CORIO__OPH_BULK) */
    static char msg[BULK_MSG], back[2 * BULK_MSG];
    CHECK_OK(corio_stream_write(a, msg, sizeof msg));
    CHECK_EQ(corio_stream_read(b, back, sizeof back), sizeof msg);
    parked_reader r = {.s = b};
    corio_task *t = corio_spawn(parked_read, &r);
    CHECK(t);
    CHECK_OK(corio_yield()); /* it parks */
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_OK(corio_stream_write_fds(a, "fd", 2, &p[1], 1));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(r.got, 2);
    CHECK_MEM(r.buf, "fd", 2);
    CHECK_EQ(r.nfds, 1);
    check_pipe(r.fds[0], p[0], "parked");
    close(p[0]);
    close(p[1]);

    /* Two parked readers, woken by one poll in the order their data came:
     * the first closes the second's stream before the second runs. */
    corio_stream *a2, *b2;
    pair(&a2, &b2);
    CHECK_OK(corio_stream_write(a2, msg, sizeof msg));
    CHECK_EQ(corio_stream_read(b2, back, sizeof back), sizeof msg);
    parked_reader first = {.s = b2, .close_after = b};
    parked_reader second = {.s = b};
    corio_task *t1 = corio_spawn(parked_read, &first);
    corio_task *t2 = corio_spawn(parked_read, &second);
    CHECK(t1 && t2);
    CHECK_OK(corio_yield()); /* both park */
    /* raw writes: both sockets readable before the loop polls again */
    CHECK_EQ(write(corio_stream_fd(a2), "1", 1), 1);
    CHECK_EQ(write(corio_stream_fd(a), "2", 1), 1);
    CHECK_OK(corio_task_join(t1, NULL));
    CHECK_OK(corio_task_join(t2, NULL));
    CHECK_EQ(first.got, 1);
    CHECK_EQ(first.buf[0], '1');
    CHECK_ERR(second.got, -EBADF); /* its stream closed under it: no hang */
    corio_stream_close(a);
    corio_stream_close(a2);
    corio_stream_close(b2);
    CHECK_EQ(test_fd_count(), base);
    return NULL;
}

TEST(parked_reader_receives_fds_and_sees_a_close) { test_run(parked_fds_main, NULL); }

static void *interleave_main(void *arg)
{
    (void)arg;
    corio_stream *a, *b;
    pair(&a, &b);
    int p[4][2];
    for (int i = 0; i < 4; i++)
        CHECK_OK(pipe2(p[i], O_CLOEXEC));
    CHECK_OK(corio_stream_write(a, "0", 1)); /* plain data first */
    CHECK_OK(corio_stream_write_fds(a, "A", 1, &p[0][1], 1));
    int two[2] = {p[1][1], p[2][1]};
    CHECK_OK(corio_stream_write_fds(a, "BB", 2, two, 2));
    CHECK_OK(corio_stream_write(a, "CCC", 3));
    CHECK_OK(corio_stream_write_fds(a, "D", 1, &p[3][1], 1));
    CHECK_OK(corio_stream_write(a, "E", 1));
    CHECK_OK(corio_stream_write_eof(a));
    for (int i = 0; i < 4; i++)
        close(p[i][1]);

    /* Read everything, noting which fds came with which bytes. */
    char all[32];
    size_t got = 0;
    int order[4], at[4], nrecv = 0;
    for (;;) {
        int fds[4];
        size_t nfds = 4;
        ssize_t n = corio_stream_read_fds(b, all + got, sizeof all - got, fds, &nfds, NULL);
        CHECK(n >= 0);
        CHECK(nfds <= 2);
        for (size_t i = 0; i < nfds; i++) {
            order[nrecv] = fds[i];
            at[nrecv++] = (int)(got + (size_t)n); /* end of the read that brought it */
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    CHECK_EQ(got, 9);
    CHECK_MEM(all, "0ABBCCCDE", 9);
    CHECK_EQ(nrecv, 4);
    /* in order, each no later than its first byte */
    CHECK(at[0] <= 2);
    CHECK(at[1] <= 4 && at[2] <= 4);
    CHECK(at[3] <= 8);
    check_pipe(order[0], p[0][0], "p0");
    check_pipe(order[1], p[1][0], "p1");
    check_pipe(order[2], p[2][0], "p2");
    check_pipe(order[3], p[3][0], "p3");
    for (int i = 0; i < 4; i++)
        close(p[i][0]);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(several_fds_interleaved_with_data) { test_run(interleave_main, NULL); }

/* A write_fds that has to wait in the queue (the socket is full) keeps
 * duplicates of the fds, so the caller may close its own at once. */
static void *queued_main(void *arg)
{
    (void)arg;
    int base = test_fd_count();
    corio_stream *a, *b;
    pair(&a, &b);
    size_t big = 4u << 20;
    char *fill = calloc(1, big);
    CHECK_OK(corio_stream_write(a, fill, big));
    CHECK(corio_stream_write_buffer_size(a) > 0);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_OK(corio_stream_write_fds(a, "F", 1, &p[1], 1));
    close(p[1]);
    CHECK_OK(corio_stream_write(a, "tail", 4));
    /* read the filler with plain reads, then the byte with the fd */
    char *sink = malloc(big);
    CHECK_EQ(corio_stream_readexactly(b, sink, big, NULL), big);
    char buf[8];
    int fd;
    size_t nfds = 1;
    CHECK_EQ(corio_stream_read_fds(b, buf, sizeof buf, &fd, &nfds, NULL), 5);
    CHECK_MEM(buf, "Ftail", 5);
    CHECK_EQ(nfds, 1);
    check_pipe(fd, p[0], "queued");
    CHECK_EQ(read(p[0], buf, sizeof buf), 0); /* the duplicate was closed once sent */
    close(p[0]);
    corio_stream_close(a);
    corio_stream_close(b);
    free(fill);
    free(sink);
    CHECK_EQ(test_fd_count(), base);
    return NULL;
}

TEST(fd_passing_through_a_full_socket) { test_run(queued_main, NULL); }

static void *readline_main(void *arg)
{
    (void)arg;
    corio_stream *a, *b;
    pair(&a, &b);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_OK(corio_stream_write_fds(a, "hdr\n", 4, &p[1], 1));
    close(p[1]);
    CHECK_OK(corio_stream_write(a, "body\n", 5));
    char line[16];
    int fd = -1;
    CHECK_EQ(corio_stream_take_fds(b, &fd, 1, NULL), 0); /* nothing read yet */
    CHECK_EQ(corio_stream_readline(b, line, sizeof line), 4);
    CHECK_EQ(corio_stream_take_fds(b, &fd, 1, NULL), 1);
    check_pipe(fd, p[0], "after readline");
    CHECK_EQ(corio_stream_readline(b, line, sizeof line), 5);
    CHECK_STR(line, "body\n");
    CHECK_EQ(corio_stream_take_fds(b, &fd, 1, NULL), 0);
    close(p[0]);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(fds_after_readline_with_take_fds) { test_run(readline_main, NULL); }

static void *unclaimed_main(void *arg)
{
    (void)arg;
    int base = test_fd_count();
    corio_stream *a, *b;
    pair(&a, &b);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    int three[3] = {p[0], p[1], p[1]};
    CHECK_OK(corio_stream_write_fds(a, "1", 1, three, 3));
    CHECK_OK(corio_stream_write_fds(a, "2", 1, three, 2));
    close(p[0]);
    close(p[1]);
    char buf[4];
    /* a plain read takes the first byte: its fds wait in the stream */
    CHECK_EQ(corio_stream_read(b, buf, 1), 1);
    /* room for one fd: the others stay for later */
    int fd;
    size_t nfds = 1;
    CHECK_EQ(corio_stream_read_fds(b, buf, sizeof buf, &fd, &nfds, NULL), 1);
    CHECK_EQ(buf[0], '2');
    CHECK_EQ(nfds, 1); /* the first of the oldest batch */
    close(fd);
    CHECK_EQ(test_fd_count(), base + 2 + 2 + 2); /* the pair + 2 + 2 waiting */
    corio_stream_close(b);                       /* never claimed: closed with it */
    corio_stream_close(a);
    CHECK_EQ(test_fd_count(), base);
    return NULL;
}

TEST(unclaimed_fds_closed_with_stream) { test_run(unclaimed_main, NULL); }

static void *ctrunc_main(void *arg)
{
    (void)arg;
    if (TEST_VALGRIND)
        SKIP("valgrind keeps fds of its own above the limit this test lowers");
    corio_stream *a, *b;
    pair(&a, &b);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    int four[4] = {p[1], p[1], p[1], p[1]};
    /* room for exactly two more fds in this process: lower the limit to
     * two above the highest open fd, fill every free slot below it (the
     * gaps, if any, and the two new ones), then free two */
    struct rlimit old, rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
    int hi = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            hi = fd;
    rl = old;
    rl.rlim_cur = (rlim_t)hi + 3;
    CHECK_OK(corio_stream_write_fds(a, "z", 1, four, 4));
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
    int fillers[4096], nfill = 0;
    while (nfill < 4096 && (fillers[nfill] = fcntl(p[0], F_DUPFD_CLOEXEC, 0)) >= 0)
        nfill++;
    CHECK(nfill >= 2);
    close(fillers[--nfill]);
    close(fillers[--nfill]);
    char buf[4];
    int fds[4];
    size_t nfds = 4;
    int flags = 0;
    ssize_t n = corio_stream_read_fds(b, buf, sizeof buf, fds, &nfds, &flags);
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    while (nfill)
        close(fillers[--nfill]);
    CHECK_EQ(n, 1);
    CHECK_EQ(flags, MSG_CTRUNC);
    CHECK_EQ(nfds, 2);
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    close(p[0]);
    close(p[1]);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(lost_fds_reported_as_ctrunc) { test_run(ctrunc_main, NULL); }

static void *fd_errors_main(void *arg)
{
    (void)arg;
    corio_stream *a, *b;
    pair(&a, &b);
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    int bad = -1;
    CHECK_ERR(corio_stream_write_fds(a, "x", 0, &p[1], 1), -EINVAL);
    CHECK_ERR(corio_stream_write_fds(a, "x", 1, &p[1], 0), -EINVAL);
    int many[254];
    for (int i = 0; i < 254; i++)
        many[i] = p[1];
    CHECK_ERR(corio_stream_write_fds(a, "x", 1, many, 254), -EINVAL);
    CHECK_OK(corio_stream_write_fds(a, "x", 1, many, 253)); /* the kernel's limit works */
    CHECK_ERR(corio_stream_write_fds(a, "x", 1, &bad, 1), -EBADF);
    int closed = dup(p[1]);
    close(closed);
    CHECK_ERR(corio_stream_write_fds(a, "y", 1, &closed, 1), -EBADF);
    /* nothing was sent by the failed calls */
    char buf[4];
    int fds[253];
    size_t nfds = 253;
    CHECK_EQ(corio_stream_read_fds(b, buf, sizeof buf, fds, &nfds, NULL), 1);
    CHECK_EQ(nfds, 253);
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    CHECK_OK(corio_stream_write(a, "!", 1));
    nfds = 253;
    CHECK_EQ(corio_stream_read_fds(b, buf, sizeof buf, fds, &nfds, NULL), 1);
    CHECK_EQ(buf[0], '!');
    CHECK_EQ(nfds, 0);
    /* a pipe stream carries no fds: write_fds, read_fds and receiving are refused */
    corio_stream *ps = corio_stream_from_fd(p[1]);
    CHECK_ERR(corio_stream_write_fds(ps, "x", 1, &p[0], 1), -EOPNOTSUPP);
    CHECK_ERR(corio_stream_set_receive_fds(ps, true), -ENOTSOCK);
    CHECK_OK(corio_stream_write(ps, "pp", 2));
    corio_stream *pr = corio_stream_from_fd(p[0]);
    nfds = 4;
    CHECK_ERR(corio_stream_read_fds(pr, buf, sizeof buf, fds, &nfds, NULL), -EOPNOTSUPP);
    CHECK_EQ(nfds, 0);
    CHECK_EQ(corio_stream_read(pr, buf, sizeof buf), 2); /* nothing was taken */
    CHECK_MEM(buf, "pp", 2);
    /* nor does a TCP socket */
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(tcp >= 0);
    corio_stream *ts = corio_stream_from_fd(tcp);
    CHECK(ts);
    CHECK_ERR(corio_stream_set_receive_fds(ts, true), -EOPNOTSUPP);
    CHECK_ERR(corio_stream_set_receive_fds(ts, false), -EOPNOTSUPP);
    CHECK_ERR(corio_stream_take_fds(ts, fds, 4, NULL), -EOPNOTSUPP);
    corio_stream_close(ts);
    corio_stream_close(ps);
    corio_stream_close(pr);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(fd_passing_errors) { test_run(fd_errors_main, NULL); }

/* A Unix stream that was not asked to receive fds takes TCP's receive
 * path: the kernel drops what a peer passes (nothing lands in this
 * process: the pipe's write end has no copy left, so its read end sees
 * EOF), read_fds / take_fds say so instead of returning none, and the
 * choice is fixed once a receive was made. */
static void drop_check(corio_stream *a, corio_stream *b, size_t room)
{
    int base = test_fd_count();
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
    CHECK_OK(corio_stream_write_fds(a, "xy", 2, &p[1], 1)); /* sending works on every Unix stream */
    close(p[1]);
    char *buf = malloc(room);
    int fds[4];
    size_t nfds = 4;
    int flags = -1;
    CHECK_ERR(corio_stream_read_fds(b, buf, room, fds, &nfds, &flags), -EOPNOTSUPP);
    CHECK_EQ(nfds, 0);
    CHECK_EQ(flags, 0);
    CHECK_ERR(corio_stream_take_fds(b, fds, 4, NULL), -EOPNOTSUPP);
    size_t got = 0;
    while (got < 2) {
        ssize_t n = corio_stream_read(b, buf + got, room - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(got, 2);
    CHECK_MEM(buf, "xy", 2);
    CHECK_ERR(corio_stream_set_receive_fds(b, true), -EBUSY); /* too late: a receive was made */
    CHECK_OK(corio_stream_set_receive_fds(b, false));         /* as it is */
    char c;
    CHECK_EQ(read(p[0], &c, 1), 0);      /* the passed write end was closed by the kernel */
    CHECK_EQ(test_fd_count(), base + 1); /* p[0] only */
    close(p[0]);
    free(buf);
}

static void *not_asked_main(void *arg)
{
    (void)arg;
    corio_stream *a, *b, *a1, *b1;
    /* small reads (on io_uring: the multishot recv), then a read into
     * big caller memory (a plain recv).  Nothing is closed until the end:
     * a stream closed with its multishot armed closes its fd only when
     * the kernel has confirmed the cancel, which would move the counts. */
    pair_opt(&a1, &b1, false);
    drop_check(a1, b1, 16);
    drop_check(a1, b1, 16);
    pair_opt(&a, &b, false);
    drop_check(a, b, 256 * 1024);
    /* the other direction still works once asked, before the first read */
    CHECK_OK(corio_stream_set_receive_fds(a, true));
    CHECK_OK(corio_stream_set_receive_fds(a, true));
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_OK(corio_stream_write_fds(b, "r", 1, &p[1], 1));
    close(p[1]);
    char buf[4];
    int fd = -1;
    size_t nfds = 1;
    CHECK_EQ(corio_stream_read_fds(a, buf, sizeof buf, &fd, &nfds, NULL), 1);
    CHECK_EQ(nfds, 1);
    check_pipe(fd, p[0], "asked");
    close(p[0]);
    corio_stream_close(a);
    corio_stream_close(b);
    corio_stream_close(a1);
    corio_stream_close(b1);
    return NULL;
}

TEST(fds_dropped_unless_asked) { test_run(not_asked_main, NULL); }

/* The same wake-up-then-receive path for a Unix stream that does not
 * receive fds (plain recvs carrying CORIO__OPH_TASK_RECV; on io_uring a
 * read into 64 KiB or more of the caller's memory is a plain recv): the
 * reader gets its bytes, and one whose stream is closed between its
 * wake-up and its receive returns instead of waiting. */
typedef struct big_reader {
    corio_stream *s;
    corio_stream *close_after;
    ssize_t got;
    char *buf;
} big_reader;

#define BIG_READ (128 * 1024)

static void *big_read(void *arg)
{
    big_reader *r = arg;
    r->got = corio_stream_read(r->s, r->buf, BIG_READ);
    if (r->close_after)
        corio_stream_close(r->close_after);
    return NULL;
}

static void *parked_plain_main(void *arg)
{
    (void)arg;
    corio_stream *a, *b, *a2, *b2;
    pair_opt(&a, &b, false);
    pair_opt(&a2, &b2, false);
    static char msg[BULK_MSG], buf1[BIG_READ], buf2[BIG_READ];
    /* a short bulk read first on each: drained, and bulk (io_uring polls) */
    CHECK_OK(corio_stream_write(a, msg, sizeof msg));
    CHECK_EQ(corio_stream_read(b, buf1, BIG_READ), sizeof msg);
    CHECK_OK(corio_stream_write(a2, msg, sizeof msg));
    CHECK_EQ(corio_stream_read(b2, buf2, BIG_READ), sizeof msg);
    big_reader first = {.s = b2, .close_after = b, .buf = buf2};
    big_reader second = {.s = b, .buf = buf1};
    corio_task *t1 = corio_spawn(big_read, &first);
    corio_task *t2 = corio_spawn(big_read, &second);
    CHECK(t1 && t2);
    CHECK_OK(corio_yield()); /* both park */
    CHECK_EQ(write(corio_stream_fd(a2), "12", 2), 2);
    CHECK_EQ(write(corio_stream_fd(a), "3", 1), 1);
    CHECK_OK(corio_task_join(t1, NULL));
    CHECK_OK(corio_task_join(t2, NULL));
    CHECK_EQ(first.got, 2);
    CHECK_MEM(buf2, "12", 2);
    CHECK_ERR(second.got, -EBADF); /* its stream closed under it: no hang */
    /* and an undisturbed parked reader gets its bytes */
    big_reader third = {.s = b2, .buf = buf2};
    corio_task *t3 = corio_spawn(big_read, &third);
    CHECK(t3);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_stream_write(a2, "45", 2));
    CHECK_OK(corio_task_join(t3, NULL));
    CHECK_EQ(third.got, 2);
    CHECK_MEM(buf2, "45", 2);
    corio_stream_close(a);
    corio_stream_close(a2);
    corio_stream_close(b2);
    return NULL;
}

TEST(parked_plain_reader_receives_and_sees_a_close) { test_run(parked_plain_main, NULL); }

/* A read parked on the socket has issued its receive: too late to ask. */
static void *busy_read(void *arg)
{
    char c;
    CHECK_EQ(corio_stream_read(arg, &c, 1), 1);
    return NULL;
}

static void *busy_main(void *arg)
{
    (void)arg;
    corio_stream *a, *b;
    pair_opt(&a, &b, false);
    corio_task *t = corio_spawn(busy_read, b);
    CHECK(t);
    CHECK_OK(corio_yield()); /* it parks */
    CHECK_ERR(corio_stream_set_receive_fds(b, true), -EBUSY);
    CHECK_OK(corio_stream_write(a, "z", 1));
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(receive_fds_refused_while_a_read_waits) { test_run(busy_main, NULL); }

/* A server without receive_fds: its streams drop passed fds. */
static void no_fds_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[8];
    int fd;
    size_t nfds = 1;
    CHECK_ERR(corio_stream_read_fds(s, buf, sizeof buf, &fd, &nfds, NULL), -EOPNOTSUPP);
    ssize_t n = corio_stream_read(s, buf, sizeof buf);
    CHECK_EQ(n, 2);
    CHECK_OK(corio_stream_write(s, buf, (size_t)n));
    CHECK_OK(corio_stream_drain(s));
    CHECK_EQ(corio_stream_read(s, buf, 1), 0);
}

static void *server_default_main(void *arg)
{
    (void)arg;
    int base = test_fd_count();
    char path[64];
    snprintf(path, sizeof path, "@corio-nofds-%d", (int)getpid());
    corio_server *srv;
    CHECK_OK(corio_server_start_unix(path, no_fds_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect_unix(path, &s));
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
    CHECK_OK(corio_stream_write_fds(s, "hi", 2, &p[1], 1));
    close(p[1]);
    char buf[4];
    CHECK_EQ(corio_stream_readexactly(s, buf, 2, NULL), 2);
    CHECK_MEM(buf, "hi", 2);
    CHECK_EQ(read(p[0], buf, 1), 0); /* dropped by the server's kernel side */
    close(p[0]);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 1000));
    CHECK_EQ(test_fd_count(), base);
    return NULL;
}

TEST(server_streams_drop_fds_by_default) { test_run(server_default_main, NULL); }

/* A full backlog: connect(2) on a non-blocking Unix socket says EAGAIN, a
 * blocking one would wait; corio_stream_connect_unix waits too (retrying),
 * within the task's deadline, and gets in once the server accepts. */
static void *connect_task(void *arg)
{
    corio_stream *s = NULL;
    int r = corio_stream_connect_unix(arg, &s);
    if (r == 0)
        corio_stream_close(s);
    return (void *)(intptr_t)r;
}

static void *backlog_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "@corio-backlog-%d", (int)getpid());
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path + 1, path + 1, strlen(path) - 1);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    CHECK_OK(bind(l, (struct sockaddr *)&sa, len));
    CHECK_OK(listen(l, 0));
    int fills[64], nf = 0;
    for (; nf < 64; nf++) {
        fills[nf] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (connect(fills[nf], (struct sockaddr *)&sa, len) < 0) {
            CHECK_EQ(errno, EAGAIN);
            close(fills[nf]);
            break;
        }
    }
    CHECK(nf < 64);
    /* nobody accepts: the deadline ends the wait */
    corio_deadline d = corio_deadline_push(30);
    corio_stream *s;
    CHECK_ERR(corio_stream_connect_unix(path, &s), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    /* the server accepts: a waiting connect gets in */
    corio_task *t = corio_spawn(connect_task, path);
    CHECK_OK(corio_yield()); /* it tries, finds the backlog full, waits to retry */
    for (int i = 0; i < nf; i++) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        CHECK(c >= 0);
        close(c);
        close(fills[i]);
    }
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_EQ((intptr_t)res, 0);
    close(l);
    return NULL;
}

TEST(connect_waits_while_the_backlog_is_full) { test_run(backlog_main, NULL); }
