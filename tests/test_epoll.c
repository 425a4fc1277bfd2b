/*
 * Operations through corio__op_run() (src/core/op.c + the backend): the
 * try-first path, waiting for readiness, several waiters on one fd,
 * cancellation and deadlines of pending operations, connect/accept, POLL,
 * large transfers against a full socket buffer, pipes and regular files,
 * and sub-millisecond timers.  Written for the epoll backend but run on
 * every backend (ctest sets CORIO_BACKEND); checks that only hold for
 * epoll's emulation are guarded with is_epoll().
 */
#include "runner.h"
#include "internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

static bool is_epoll(void) { return strcmp(corio_backend_name(), "epoll") == 0; }

static void nb_socketpair(int sv[2])
{
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static int op_recv(int fd, void *buf, size_t len)
{
    corio__op op = {.kind = CORIO__OP_RECV, .fd = fd, .buf = buf, .len = len};
    return corio__op_run(&op);
}

static int op_send(int fd, const void *buf, size_t len)
{
    corio__op op = {.kind = CORIO__OP_SEND, .fd = fd, .buf = (void *)buf, .len = len};
    return corio__op_run(&op);
}

/* ---- try first, then wait ---------------------------------------------- */

static void *hot_path_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    CHECK_EQ(write(sv[1], "hello", 5), 5);
    char buf[16];
    CHECK_EQ(op_recv(sv[0], buf, sizeof buf), 5);
    CHECK_MEM(buf, "hello", 5);
    CHECK_EQ(op_send(sv[0], "x", 1), 1);
    if (is_epoll())
        CHECK_EQ(corio__loop()->backend->pending(corio__loop()), 0);
    corio__close_fd(corio__loop(), sv[0]);
    corio__close_fd(corio__loop(), sv[1]);
    return arg;
}

TEST(ready_data_completes_without_waiting) { test_run(hot_path_main, NULL); }

static int writer_fd;
static void *late_writer(void *arg)
{
    CHECK_OK(corio_sleep_ms(10));
    CHECK_EQ(op_send(writer_fd, arg, strlen(arg)), (long long)strlen(arg));
    return NULL;
}

static void *wait_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    writer_fd = sv[1];
    corio_task *w = corio_spawn(late_writer, "later");
    CHECK(w);
    char buf[16];
    uint64_t t0 = test_ms();
    CHECK_EQ(op_recv(sv[0], buf, sizeof buf), 5);
    CHECK(test_ms() - t0 >= 9);
    CHECK_MEM(buf, "later", 5);
    CHECK_OK(corio_task_join(w, NULL));
    /* EOF arrives as a completion too. */
    corio_task *c = corio_spawn(late_writer, "");
    CHECK(c);
    CHECK_OK(corio_task_join(c, NULL));
    corio__close_fd(corio__loop(), sv[1]);
    CHECK_EQ(op_recv(sv[0], buf, sizeof buf), 0);
    corio__close_fd(corio__loop(), sv[0]);
    return arg;
}

TEST(recv_waits_for_data_and_eof) { test_run(wait_main, NULL); }

/* Two readers on one fd: an edge must not be used up by the first one
 * while the second still has something to read. */
static int shared_fd;
static void *reader(void *arg)
{
    char buf[4];
    int n = op_recv(shared_fd, buf, 3);
    return (void *)(intptr_t)n;
}

static void *two_readers_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    shared_fd = sv[0];
    corio_task *a = corio_spawn(reader, NULL);
    CHECK(a);
    corio_task *b = corio_spawn(reader, NULL);
    CHECK(b);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_yield());
    CHECK_EQ(write(sv[1], "abcdef", 6), 6); /* one edge, enough for both */
    void *ra, *rb;
    CHECK_OK(corio_task_join(a, &ra));
    CHECK_OK(corio_task_join(b, &rb));
    CHECK_EQ((intptr_t)ra, 3);
    CHECK_EQ((intptr_t)rb, 3);
    corio__close_fd(corio__loop(), sv[0]);
    corio__close_fd(corio__loop(), sv[1]);
    return arg;
}

TEST(one_edge_serves_every_waiting_reader) { test_run(two_readers_main, NULL); }

/* ---- cancellation and deadlines --------------------------------------- */

static void *cancel_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    shared_fd = sv[0];
    corio_task *r = corio_spawn(reader, NULL);
    CHECK(r);
    CHECK_OK(corio_sleep_ms(5)); /* r is parked in recv now */
    if (is_epoll())
        CHECK_EQ(corio__loop()->backend->pending(corio__loop()), 1);
    CHECK_OK(corio_task_cancel(r));
    void *res;
    CHECK_OK(corio_task_join(r, &res));
    CHECK_EQ((intptr_t)res, -ECANCELED);
    if (is_epoll())
        CHECK_EQ(corio__loop()->backend->pending(corio__loop()), 0);
    /* The fd is still fine: a new wait on it works. */
    r = corio_spawn(reader, NULL);
    CHECK(r);
    CHECK_OK(corio_sleep_ms(2));
    CHECK_EQ(write(sv[1], "xyz", 3), 3);
    CHECK_OK(corio_task_join(r, &res));
    CHECK_EQ((intptr_t)res, 3);
    corio__close_fd(corio__loop(), sv[0]);
    corio__close_fd(corio__loop(), sv[1]);
    return arg;
}

TEST(cancel_pending_recv) { test_run(cancel_main, NULL); }

static void *deadline_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    char buf[4];
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(20);
    CHECK_ERR(op_recv(sv[0], buf, sizeof buf), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    uint64_t el = test_ms() - t0;
    CHECK(el >= 19 && el < 1000);
    /* Cancelled a pending op, then the task exits: nothing must be left
     * behind for the loop to wait for. */
    corio__close_fd(corio__loop(), sv[0]);
    corio__close_fd(corio__loop(), sv[1]);
    return arg;
}

TEST(deadline_interrupts_pending_recv) { test_run(deadline_main, NULL); }

/* Tasks parked in recv when main returns are cancelled by the loop. */
static void *abandoned_main(void *arg)
{
    static int sv[2];
    nb_socketpair(sv);
    shared_fd = sv[0];
    for (int i = 0; i < 3; i++) {
        corio_task *t = corio_spawn(reader, NULL);
        CHECK(t);
        corio_task_detach(t);
    }
    CHECK_OK(corio_sleep_ms(2));
    return arg;
}

TEST(loop_end_cancels_parked_readers) { test_run(abandoned_main, NULL); }

/* ---- connect / accept --------------------------------------------------- */

static int listen_fd;
static void *acceptor(void *arg)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    corio__op op = {
        .kind = CORIO__OP_ACCEPT, .fd = listen_fd, .addr = (struct sockaddr *)&ss, .addrlen = &sl};
    int fd = corio__op_run(&op);
    CHECK_OK(fd);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    char buf[8];
    CHECK_EQ(op_recv(fd, buf, sizeof buf), 4);
    CHECK_MEM(buf, "ping", 4);
    CHECK_EQ(op_send(fd, "pong", 4), 4);
    corio__close_fd(corio__loop(), fd);
    return NULL;
}

static void *connect_main(void *arg)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(lfd, (struct sockaddr *)&sin, sizeof sin));
    CHECK_OK(listen(lfd, 16));
    socklen_t sl = sizeof sin;
    CHECK_OK(getsockname(lfd, (struct sockaddr *)&sin, &sl));
    listen_fd = lfd;
    corio_task *a = corio_spawn(acceptor, NULL);
    CHECK(a);
    CHECK_OK(corio_yield()); /* the acceptor waits first */

    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    corio__op op = {
        .kind = CORIO__OP_CONNECT, .fd = cfd, .addr = (struct sockaddr *)&sin, .addr_len = sizeof sin};
    CHECK_ERR(corio__op_run(&op), 0);
    CHECK_EQ(op_send(cfd, "ping", 4), 4);
    char buf[8];
    CHECK_EQ(op_recv(cfd, buf, sizeof buf), 4);
    CHECK_MEM(buf, "pong", 4);
    CHECK_OK(corio_task_join(a, NULL));
    corio__close_fd(corio__loop(), cfd);

    /* Nothing listens any more: refused. */
    corio__close_fd(corio__loop(), lfd);
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    corio__op op2 = {
        .kind = CORIO__OP_CONNECT, .fd = cfd, .addr = (struct sockaddr *)&sin, .addr_len = sizeof sin};
    CHECK_ERR(corio__op_run(&op2), -ECONNREFUSED);
    corio__close_fd(corio__loop(), cfd);
    return arg;
}

TEST(connect_accept_and_refused) { test_run(connect_main, NULL); }

/* ---- POLL, pipes, files ------------------------------------------------- */

static int pipe_w;
static void *pipe_writer(void *arg)
{
    CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(write(pipe_w, "p", 1), 1);
    return NULL;
}

static void *poll_pipe_main(void *arg)
{
    int p[2];
    CHECK_OK(pipe2(p, O_NONBLOCK | O_CLOEXEC));
    pipe_w = p[1];
    corio_task *w = corio_spawn(pipe_writer, NULL);
    CHECK(w);
    corio__op op = {.kind = CORIO__OP_POLL, .fd = p[0], .flags = POLLIN};
    int r = corio__op_run(&op);
    CHECK(r > 0 && (r & POLLIN));
    /* POLL does not consume: the data is still there, READ gets it. */
    char c = 0;
    corio__op rd = {.kind = CORIO__OP_READ, .fd = p[0], .buf = &c, .len = 1, .off = -1};
    CHECK_EQ(corio__op_run(&rd), 1);
    CHECK_EQ(c, 'p');
    CHECK_OK(corio_task_join(w, NULL));
    /* READ that has to wait on an empty pipe. */
    w = corio_spawn(pipe_writer, NULL);
    CHECK(w);
    corio__op rd2 = {.kind = CORIO__OP_READ, .fd = p[0], .buf = &c, .len = 1, .off = -1};
    CHECK_EQ(corio__op_run(&rd2), 1);
    CHECK_OK(corio_task_join(w, NULL));
    /* POLLOUT on an empty pipe is immediate. */
    corio__op po = {.kind = CORIO__OP_POLL, .fd = p[1], .flags = POLLOUT};
    CHECK(corio__op_run(&po) & POLLOUT);
    corio__close_fd(corio__loop(), p[0]);
    /* Reader gone: POLL on the write end reports POLLERR. */
    corio__op pe = {.kind = CORIO__OP_POLL, .fd = p[1], .flags = POLLOUT};
    CHECK(corio__op_run(&pe) & POLLERR);
    corio__close_fd(corio__loop(), p[1]);
    return arg;
}

TEST(poll_and_read_on_pipes) { test_run(poll_pipe_main, NULL); }

static void *file_main(void *arg)
{
    char path[] = "/tmp/corio-epoll-XXXXXX";
    int fd = mkstemp(path);
    CHECK_OK(fd);
    unlink(path);
    corio__op w = {.kind = CORIO__OP_WRITE, .fd = fd, .buf = "filedata", .len = 8, .off = 0};
    CHECK_EQ(corio__op_run(&w), 8);
    char buf[8];
    corio__op r = {.kind = CORIO__OP_READ, .fd = fd, .buf = buf, .len = 4, .off = 4};
    CHECK_EQ(corio__op_run(&r), 4);
    CHECK_MEM(buf, "data", 4);
    corio__close_fd(corio__loop(), fd);
    /* A bad fd fails cleanly. */
    corio__op bad = {.kind = CORIO__OP_RECV, .fd = fd, .buf = buf, .len = 1};
    CHECK_ERR(corio__op_run(&bad), -EBADF);
    return arg;
}

TEST(regular_file_and_bad_fd) { test_run(file_main, NULL); }

/* ---- bulk transfer through a full socket buffer ------------------------ */

#define BULK (4u << 20)
static void *bulk_reader(void *arg)
{
    unsigned char *buf = malloc(65536);
    size_t got = 0;
    unsigned sum = 0;
    while (got < BULK) {
        int n = op_recv(shared_fd, buf, 65536);
        CHECK(n > 0);
        for (int i = 0; i < n; i++)
            CHECK_EQ(buf[i], (unsigned char)((got + (size_t)i) * 7));
        got += (size_t)n;
        sum += (unsigned)n;
    }
    free(buf);
    return (void *)(uintptr_t)sum;
}

static void *bulk_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    shared_fd = sv[0];
    unsigned char *data = malloc(BULK);
    for (size_t i = 0; i < BULK; i++)
        data[i] = (unsigned char)(i * 7);
    corio_task *r = corio_spawn(bulk_reader, NULL);
    CHECK(r);
    size_t off = 0;
    while (off < BULK) {
        /* sendmsg with two iovecs, as a stream's writev would. */
        size_t left = BULK - off, half = left / 2;
        struct iovec iov[2] = {{data + off, half}, {data + off + half, left - half}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        corio__op op = {.kind = CORIO__OP_SENDMSG, .fd = sv[1], .msg = &msg};
        int n = corio__op_run(&op);
        CHECK(n > 0);
        off += (size_t)n;
    }
    void *res;
    CHECK_OK(corio_task_join(r, &res));
    CHECK_EQ((uintptr_t)res, BULK);
    free(data);
    corio__close_fd(corio__loop(), sv[0]);
    corio__close_fd(corio__loop(), sv[1]);
    return arg;
}

TEST(bulk_sendmsg_through_full_buffer) { test_run(bulk_main, NULL); }

/* ---- fd reuse ----------------------------------------------------------- */

static void *reuse_main(void *arg)
{
    /* Register an fd, close it, get the same number back for a new
     * socket: waits on the new one must work. */
    for (int round = 0; round < 50; round++) {
        int sv[2];
        nb_socketpair(sv);
        shared_fd = sv[0];
        corio_task *r = corio_spawn(reader, NULL);
        CHECK(r);
        CHECK_OK(corio_yield());
        CHECK_OK(corio_yield());
        CHECK_EQ(write(sv[1], "abc", 3), 3);
        void *res;
        CHECK_OK(corio_task_join(r, &res));
        CHECK_EQ((intptr_t)res, 3);
        corio__close_fd(corio__loop(), sv[0]);
        corio__close_fd(corio__loop(), sv[1]);
    }
    return arg;
}

TEST(closed_fd_numbers_are_reused_safely) { test_run(reuse_main, NULL); }

/* ---- multishot on epoll ------------------------------------------------- */

static void *multishot_main(void *arg)
{
    if (!is_epoll())
        return arg;
    corio__op op = {.kind = CORIO__OP_ACCEPT_MULTI, .fd = 0};
    CHECK_EQ(corio__loop()->backend->submit(corio__loop(), &op), 1);
    CHECK_EQ(op.res, -EOPNOTSUPP);
    return arg;
}

TEST(epoll_rejects_multishot) { test_run(multishot_main, NULL); }

/* ---- sub-millisecond timers do not round up to 1 ms --------------------- */

/* 0.1 ms and 1 ms sleeps, interleaved so that whatever load the machine
 * carries weighs on both series alike: rounding every wait up to a whole
 * millisecond would make the two series take the same time, and a loaded
 * machine adds its latency to both.  What is compared is the difference
 * (about 500 x 0.9 ms = 450 ms), against half of it; no wall-clock budget. */
static void *short_sleep_main(void *arg)
{
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t short_ns = 0, long_ns = 0;
    for (int i = 0; i < 500; i++) {
        uint64_t t0 = corio__clock_ns();
        CHECK_OK(corio_sleep_ns(100000));
        uint64_t t1 = corio__clock_ns();
        CHECK_OK(corio_sleep_ns(1000000));
        short_ns += t1 - t0;
        long_ns += corio__clock_ns() - t1;
    }
    getrusage(RUSAGE_SELF, &ru1);
    CHECK(short_ns >= 500 * 100000ull);
    CHECK(long_ns >= 500 * 1000000ull);
    if (long_ns - short_ns < 400 * 1000000ull || short_ns > 200 * 1000000ull)
        printf("note: 500 x 100us sleeps took %llu ms, 500 x 1 ms %llu ms\n",
               (unsigned long long)(short_ns / 1000000), (unsigned long long)(long_ns / 1000000));
    CHECK(long_ns > short_ns + 225 * 1000000ull);
    /* And the loop slept rather than spun: every sleep blocked in the
     * kernel, a voluntary context switch (spinning makes none). */
    CHECK(ru1.ru_nvcsw - ru0.ru_nvcsw >= 500);
    return arg;
}

TEST(sub_ms_sleeps_are_precise_and_do_not_spin)
{
    /* The backend's sub-millisecond waits need epoll_pwait2 (glibc 2.35,
     * Linux 5.11); without it, as under valgrind, which does not know the
     * system call, it waits in whole milliseconds by design. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    struct epoll_event ev;
    if (epoll_pwait2(-1, &ev, 1, NULL, NULL) < 0 && (errno == ENOSYS || errno == EPERM))
        SKIP("no epoll_pwait2: epoll waits in whole milliseconds");
#else
    SKIP("built without epoll_pwait2: epoll waits in whole milliseconds");
#endif
    test_run(short_sleep_main, NULL);
}

/* ---- adversarial review: the POLL_FIRST skip never loses a wake-up ------ */

/* A loopback TCP pair made with blocking calls (connect completes at once
 * on loopback), both ends non-blocking afterwards. */
static void tcp_pair(int *client, int *server)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(lfd, (struct sockaddr *)&sin, sizeof sin));
    CHECK_OK(listen(lfd, 1));
    socklen_t sl = sizeof sin;
    CHECK_OK(getsockname(lfd, (struct sockaddr *)&sin, &sl));
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_OK(connect(c, (struct sockaddr *)&sin, sizeof sin));
    int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    CHECK(s >= 0);
    close(lfd);
    CHECK_OK(corio__set_nonblock(c));
    *client = c;
    *server = s;
}

static int op_recv_hint(int fd, void *buf, size_t len, bool poll_first)
{
    corio__op op = {.kind = CORIO__OP_RECV, .fd = fd, .buf = buf, .len = len};
    op.hint = poll_first ? CORIO__OPH_POLL_FIRST : 0;
    return corio__op_run(&op);
}

static int oob_peer;
static void *send_one_later(void *arg)
{
    CHECK_OK(corio_sleep_ms(2));
    CHECK_EQ(send(oob_peer, "x", 1, 0), 1);
    return arg;
}

/* A connected pair whose server side s has been registered by a recv
 * that had to wait, and whose short read marked it drained. */
static void drained_pair(int *c, int *s)
{
    char buf[64];
    tcp_pair(c, s);
    oob_peer = *c;
    corio_task *w = corio_spawn(send_one_later, NULL);
    CHECK_EQ(op_recv_hint(*s, buf, sizeof buf, false), 1);
    CHECK_OK(corio_task_join(w, NULL));
}

/* TCP urgent data makes recv stop short at the urgent mark with more data
 * queued behind it, and no new event will announce that data: a short read
 * must not be taken as proof that the socket is empty then. */
static void *oob_main(void *arg)
{
    int c, s;
    drained_pair(&c, &s);
    char buf[64];
    CHECK_EQ(send(c, "abc", 3, 0), 3);
    CHECK_EQ(send(c, "d", 1, MSG_OOB), 1);
    CHECK_EQ(send(c, "efg", 3, 0), 3);
    CHECK_OK(corio_sleep_ms(5)); /* the loop harvests the events meanwhile */
    corio_deadline d = corio_deadline_push(1000);
    int r1 = op_recv_hint(s, buf, sizeof buf, true);
    int r2 = op_recv_hint(s, buf + 3, sizeof buf - 3, true); /* short read before: poll first */
    corio_deadline_pop(d);
    CHECK_EQ(r1, 3);
    CHECK_MEM(buf, "abc", 3);
    CHECK_EQ(r2, 3);
    CHECK_MEM(buf + 3, "efg", 3);
    corio__close_fd(corio__loop(), c);
    corio__close_fd(corio__loop(), s);
    return arg;
}

TEST(urgent_data_does_not_strand_a_poll_first_recv) { test_run(oob_main, NULL); }

/* Data and FIN arriving together, then a reset: every POLL_FIRST recv
 * still sees what is there. */
static void *fin_main(void *arg)
{
    int c, s;
    drained_pair(&c, &s);
    char buf[64];
    /* Data + FIN in one go, harvested while nobody reads. */
    CHECK_EQ(send(c, "hello", 5, 0), 5);
    CHECK_OK(shutdown(c, SHUT_WR));
    CHECK_OK(corio_sleep_ms(5));
    corio_deadline d = corio_deadline_push(1000);
    CHECK_EQ(op_recv_hint(s, buf, 3, true), 3);
    CHECK_EQ(op_recv_hint(s, buf, sizeof buf, false), 2); /* short */
    CHECK_EQ(op_recv_hint(s, buf, sizeof buf, true), 0);  /* EOF */
    CHECK_EQ(op_recv_hint(s, buf, sizeof buf, true), 0);
    corio_deadline_pop(d);
    /* Half-close the other way still works for sending. */
    CHECK_EQ(op_send(s, "bye", 3), 3);
    corio__close_fd(corio__loop(), c);
    corio__close_fd(corio__loop(), s);

    /* A reset while a POLL_FIRST recv waits. */
    drained_pair(&c, &s);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK_OK(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(c); /* RST; c was never registered with the loop */
    d = corio_deadline_push(1000);
    CHECK_ERR(op_recv_hint(s, buf, sizeof buf, true), -ECONNRESET);
    corio_deadline_pop(d);
    corio__close_fd(corio__loop(), s);
    return arg;
}

TEST(data_fin_and_reset_reach_poll_first_recvs) { test_run(fin_main, NULL); }
