/*
 * The backends' operation contract (src/backend/), driven the way the I/O
 * layer drives it: through corio__op_run() and the backend table.  The
 * single-shot tests run on both backends (ctest runs every test once per
 * backend); the multishot and provided-buffer tests are io_uring only and
 * skip on epoll after checking that it refuses those kinds cleanly.
 */
#include "runner.h"
#include "internal.h"

#include "core/threadpool.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static bool on_uring(void)
{
    const char *n = corio_backend_name();
    return n && strcmp(n, "io_uring") == 0;
}

/* fds that went through ops are closed the way the I/O layer closes them,
 * so the epoll backend drops its registration (fd numbers get reused). */
static void xclose(int fd) { corio__close_fd(corio__loop(), fd); }

static int run_op(corio__op *op) { return corio__op_run(op); }

static int op_recv(int fd, void *buf, size_t len)
{
    corio__op op = {.kind = CORIO__OP_RECV, .fd = fd, .buf = buf, .len = len};
    return run_op(&op);
}

static int op_send(int fd, const void *buf, size_t len)
{
    corio__op op = {.kind = CORIO__OP_SEND, .fd = fd, .buf = (void *)buf, .len = len};
    return run_op(&op);
}

static void nb_socketpair(int sv[2])
{
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

static int tcp_listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(fd, (struct sockaddr *)addr, sizeof *addr));
    socklen_t len = sizeof *addr;
    CHECK_OK(getsockname(fd, (struct sockaddr *)addr, &len));
    CHECK_OK(listen(fd, 128));
    return fd;
}

/* ---- single-shot operations (both backends) ----------------------------- */

typedef struct delayed_write {
    int fd;
    unsigned ms;
    const char *msg;
} delayed_write;

static void *delayed_writer(void *arg)
{
    delayed_write *d = arg;
    CHECK_OK(corio_sleep_ms(d->ms));
    CHECK_EQ(op_send(d->fd, d->msg, strlen(d->msg)), (long long)strlen(d->msg));
    return NULL;
}

static void *recv_delayed_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    corio_loop *l = corio__loop();
    CHECK_EQ(l->backend->pending(l), 0); /* the backend's own wake-up op is not counted */
    delayed_write d = {sv[1], 20, "hello, ring"};
    corio_task *w = corio_spawn(delayed_writer, &d);
    CHECK(w);
    char buf[64];
    uint64_t t0 = test_ms();
    int n = op_recv(sv[0], buf, sizeof buf);
    CHECK_EQ(n, 11);
    CHECK_MEM(buf, "hello, ring", 11);
    CHECK(test_ms() - t0 >= 15);
    CHECK_OK(corio_task_join(w, NULL));
    CHECK_EQ(l->backend->pending(l), 0);
    /* EOF */
    xclose(sv[1]);
    CHECK_EQ(op_recv(sv[0], buf, sizeof buf), 0);
    xclose(sv[0]);
    return arg;
}

TEST(recv_waits_for_a_delayed_writer) { test_run(recv_delayed_main, NULL); }

static void *recv_forever(void *arg)
{
    static char buf[64];
    return (void *)(intptr_t)op_recv(*(int *)arg, buf, sizeof buf);
}

static void *cancel_recv_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    corio_task *t = corio_spawn(recv_forever, &sv[0]);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(10));
    CHECK_OK(corio_task_cancel(t));
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_EQ((intptr_t)res, -ECANCELED);
    corio_loop *l = corio__loop();
    CHECK_EQ(l->backend->pending(l), 0);
    /* The cancelled recv consumed nothing: data written now is all there. */
    CHECK_EQ(write(sv[1], "abc", 3), 3);
    char buf[8];
    CHECK_EQ(op_recv(sv[0], buf, sizeof buf), 3);
    CHECK_MEM(buf, "abc", 3);
    xclose(sv[0]);
    xclose(sv[1]);
    return arg;
}

TEST(cancel_during_recv_completes_with_ecanceled) { test_run(cancel_recv_main, NULL); }

static void *deadline_recv_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    char buf[8];
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(30);
    CHECK_ERR(op_recv(sv[0], buf, sizeof buf), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(test_ms() - t0 >= 25);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(op_recv(sv[0], buf, sizeof buf), 1);
    xclose(sv[0]);
    xclose(sv[1]);
    return arg;
}

TEST(deadline_during_recv_is_etimedout) { test_run(deadline_recv_main, NULL); }

static void *acceptor(void *arg)
{
    int lfd = *(int *)arg;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    corio__op op = {.kind = CORIO__OP_ACCEPT, .fd = lfd, .addr = (struct sockaddr *)&ss, .addrlen = &sl};
    int fd = run_op(&op);
    CHECK(fd >= 0);
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[16];
    int n = op_recv(fd, buf, sizeof buf);
    CHECK_EQ(n, 4);
    CHECK_EQ(op_send(fd, buf, (size_t)n), 4); /* echo */
    return (void *)(intptr_t)fd;
}

static void *accept_connect_main(void *arg)
{
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    corio_task *a = corio_spawn(acceptor, &lfd);
    CHECK(a);
    CHECK_OK(corio_yield()); /* let the accept start first */
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    corio__op op = {
        .kind = CORIO__OP_CONNECT, .fd = cfd, .addr = (struct sockaddr *)&addr, .addr_len = sizeof addr};
    CHECK_OK(run_op(&op));
    /* sendmsg: two pieces in one call */
    struct iovec iov[2] = {{.iov_base = "pi", .iov_len = 2}, {.iov_base = "ng", .iov_len = 2}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    corio__op sm = {.kind = CORIO__OP_SENDMSG, .fd = cfd, .msg = &msg};
    CHECK_EQ(run_op(&sm), 4);
    char buf[8];
    CHECK_EQ(op_recv(cfd, buf, sizeof buf), 4);
    CHECK_MEM(buf, "ping", 4);
    void *sfd;
    CHECK_OK(corio_task_join(a, &sfd));
    xclose((int)(intptr_t)sfd);
    xclose(cfd);

    /* Connecting to a closed port fails with the errno connect(2) gives. */
    xclose(lfd);
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    corio__op op2 = {
        .kind = CORIO__OP_CONNECT, .fd = cfd, .addr = (struct sockaddr *)&addr, .addr_len = sizeof addr};
    CHECK_ERR(run_op(&op2), -ECONNREFUSED);
    xclose(cfd);
    return arg;
}

TEST(accept_connect_sendmsg) { test_run(accept_connect_main, NULL); }

static void *file_rw_main(void *arg)
{
    char path[] = "/tmp/corio_uring_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    corio__op w = {.kind = CORIO__OP_WRITE, .fd = fd, .buf = "0123456789", .len = 10, .off = -1};
    CHECK_EQ(run_op(&w), 10);
    corio__op w2 = {.kind = CORIO__OP_WRITE, .fd = fd, .buf = "AB", .len = 2, .off = 4};
    CHECK_EQ(run_op(&w2), 2);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 10); /* positioned writes leave the offset alone */
    lseek(fd, 2, SEEK_SET);
    char buf[16] = {0};
    corio__op r = {.kind = CORIO__OP_READ, .fd = fd, .buf = buf, .len = 4, .off = -1};
    CHECK_EQ(run_op(&r), 4);
    CHECK_MEM(buf, "23AB", 4);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 6); /* current-position reads advance it */
    corio__op r2 = {.kind = CORIO__OP_READ, .fd = fd, .buf = buf, .len = 16, .off = 0};
    CHECK_EQ(run_op(&r2), 10);
    CHECK_MEM(buf, "0123AB6789", 10);
    xclose(fd);
    return arg;
}

TEST(file_read_write_with_and_without_offset) { test_run(file_rw_main, NULL); }

static void *poll_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    corio__op p = {.kind = CORIO__OP_POLL, .fd = sv[1], .flags = POLLOUT};
    int r = run_op(&p);
    CHECK(r > 0 && (r & POLLOUT));
    delayed_write d = {sv[1], 10, "z"};
    corio_task *w = corio_spawn(delayed_writer, &d);
    CHECK(w);
    corio__op p2 = {.kind = CORIO__OP_POLL, .fd = sv[0], .flags = POLLIN};
    r = run_op(&p2);
    CHECK(r > 0 && (r & POLLIN));
    CHECK_OK(corio_task_join(w, NULL));
    xclose(sv[0]);
    xclose(sv[1]);
    return arg;
}

TEST(poll_for_readiness) { test_run(poll_main, NULL); }

/* Many connections on a tiny ring: submissions overflow the SQ and must be
 * flushed on the way, completions come in large batches. */
enum { PAIRS = 200, ROUNDS = 20 };

static void *echo_side(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[32];
    for (int i = 0; i < ROUNDS; i++) {
        int n = op_recv(fd, buf, sizeof buf);
        CHECK_EQ(n, 8);
        CHECK_EQ(op_send(fd, buf, 8), 8);
    }
    return NULL;
}

static void *ping_side(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[32];
    for (int i = 0; i < ROUNDS; i++) {
        char msg[9];
        snprintf(msg, sizeof msg, "%08d", i);
        CHECK_EQ(op_send(fd, msg, 8), 8);
        CHECK_EQ(op_recv(fd, buf, sizeof buf), 8);
        CHECK_MEM(buf, msg, 8);
    }
    return NULL;
}

static void *many_main(void *arg)
{
    static int sv[PAIRS][2];
    static corio_task *tasks[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        nb_socketpair(sv[i]);
        tasks[2 * i] = corio_spawn(echo_side, (void *)(intptr_t)sv[i][0]);
        tasks[2 * i + 1] = corio_spawn(ping_side, (void *)(intptr_t)sv[i][1]);
        CHECK(tasks[2 * i] && tasks[2 * i + 1]);
    }
    CHECK_OK(corio_gather(tasks, 2 * PAIRS, NULL));
    for (int i = 0; i < PAIRS; i++) {
        xclose(sv[i][0]);
        xclose(sv[i][1]);
    }
    return arg;
}

TEST(many_connections_on_a_tiny_ring)
{
    corio_config cfg = {.ring_entries = 8};
    CHECK_OK(corio_run(&cfg, many_main, NULL, NULL));
}

/* While tasks keep the loop busy it only peeks for completions (timeout 0);
 * with deferred task running those must still be fetched from the kernel,
 * or the recv below would never finish while the spinner waits for it. */
typedef struct spin_state {
    int fd;
    volatile bool got;
} spin_state;

static void *thread_write_later(void *arg)
{
    usleep(20 * 1000);
    CHECK_EQ(write(*(int *)arg, "late", 4), 4);
    return NULL;
}

static void *spin_receiver(void *arg)
{
    spin_state *s = arg;
    char buf[8];
    CHECK_EQ(op_recv(s->fd, buf, sizeof buf), 4);
    s->got = true;
    return NULL;
}

static void *busy_loop_main(void *arg)
{
    int sv[2];
    nb_socketpair(sv);
    spin_state s = {sv[0], false};
    corio_task *t = corio_spawn(spin_receiver, &s);
    CHECK(t);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_write_later, &sv[1]), 0);
    uint64_t t0 = test_ms();
    while (!s.got) {
        CHECK_OK(corio_yield());
        CHECK(test_ms() - t0 < 10000);
    }
    pthread_join(th, NULL);
    CHECK_OK(corio_task_join(t, NULL));
    xclose(sv[0]);
    xclose(sv[1]);
    return arg;
}

TEST(completions_arrive_while_tasks_keep_the_loop_busy) { test_run(busy_loop_main, NULL); }

/* ---- waking the loop from other threads --------------------------------- */

static atomic_int pool_done;

static void pool_work(void *arg)
{
    usleep(1000 * (unsigned)(intptr_t)arg);
    atomic_fetch_add(&pool_done, 1);
}

static void *pool_task(void *arg)
{
    CHECK_OK(corio__pool_run(CORIO__POOL_FAST, pool_work, arg, NULL));
    return NULL;
}

typedef struct notifier {
    corio_loop *l;
    unsigned delay_ms;
    atomic_bool sending; /* set just before the first notify */
} notifier;

static void *notify_thread(void *arg)
{
    notifier *n = arg;
    usleep(n->delay_ms * 1000);
    atomic_store(&n->sending, true);
    for (int i = 0; i < 1000; i++)
        n->l->backend->notify(n->l);
    return NULL;
}

static void *notify_main(void *arg)
{
    corio_loop *l = corio__loop();
    /* A blocked poll returns after another thread notifies (not before:
     * the thread says when it starts), and long before its 60 s time-out. */
    notifier n = {l, 30, false};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, notify_thread, &n), 0);
    uint64_t t0 = test_ms();
    CHECK_OK(l->backend->poll(l, 60ull * 1000 * 1000 * 1000));
    CHECK(atomic_load(&n.sending));
    CHECK(test_ms() - t0 < 30000);
    pthread_join(th, NULL);
    /* The burst of 1000 notifies leaves at most one wake-up behind. */
    CHECK_OK(l->backend->poll(l, 0));
    t0 = test_ms();
    CHECK_OK(l->backend->poll(l, 50ull * 1000 * 1000));
    CHECK(test_ms() - t0 >= 40);

    /* Thread-pool completions arrive through the same path. */
    enum { N = 64 };
    corio_task *ts[N];
    atomic_store(&pool_done, 0);
    for (int i = 0; i < N; i++)
        CHECK((ts[i] = corio_spawn(pool_task, (void *)(intptr_t)(i % 5))));
    CHECK_OK(corio_gather(ts, N, NULL));
    CHECK_EQ(atomic_load(&pool_done), N);
    return arg;
}

TEST(notify_from_other_threads_wakes_the_loop) { test_run(notify_main, NULL); }

/* ---- multishot (io_uring) ------------------------------------------------ */

typedef struct msh {
    corio__op op;
    corio_task *waiter;
    int fds[16];
    int nfds;
    bool final;
    int final_res;
    int completions;
    /* recv */
    unsigned char *data;
    size_t got;
    bool hold; /* keep buffers until the end */
    struct {
        uint16_t id;
        int len;
    } held[4096];
    int nheld;
} msh;

static void msh_wake(msh *m)
{
    if (m->waiter) {
        corio_task *t = m->waiter;
        m->waiter = NULL;
        corio__wake(t, 0);
    }
}

static void msh_wait(msh *m)
{
    m->waiter = corio_current();
    corio__suspend_uninterruptible(m, "multishot");
}

static void accept_cb(corio__op *op)
{
    msh *m = CORIO__CONTAINER_OF(op, msh, op);
    m->completions++;
    if (op->res >= 0)
        m->fds[m->nfds++] = op->res;
    if (!op->more) {
        CHECK_EQ(op->state, CORIO__OPS_DONE);
        m->final = true;
        m->final_res = op->res;
    } else {
        CHECK_EQ(op->state, CORIO__OPS_PENDING);
    }
    msh_wake(m);
}

static void *multi_accept_main(void *arg)
{
    corio_loop *l = corio__loop();
    static msh m;
    memset(&m, 0, sizeof m);
    struct sockaddr_in addr;
    int lfd = tcp_listener(&addr);
    m.op = (corio__op){.kind = CORIO__OP_ACCEPT_MULTI, .fd = lfd, .done = accept_cb};
    if (!on_uring() || !corio__loop_can(l, CORIO__CAP_MULTISHOT)) {
        CHECK(!corio__loop_can(l, CORIO__CAP_MULTISHOT));
        CHECK_EQ(l->backend->submit(l, &m.op), 1);
        CHECK_ERR(m.op.res, -EOPNOTSUPP);
        xclose(lfd);
        return NULL;
    }
    CHECK_EQ(l->backend->submit(l, &m.op), 0);
    CHECK_EQ(l->backend->pending(l), 1);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK_OK(connect(c[i], (struct sockaddr *)&addr, sizeof addr));
    }
    while (m.nfds < 3)
        msh_wait(&m);
    CHECK(!m.final);
    for (int i = 0; i < 3; i++) {
        CHECK(fcntl(m.fds[i], F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(m.fds[i], F_GETFD) & FD_CLOEXEC);
    }
    /* One more after a pause: the op is still armed. */
    CHECK_OK(corio_sleep_ms(5));
    int c4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_OK(connect(c4, (struct sockaddr *)&addr, sizeof addr));
    while (m.nfds < 4)
        msh_wait(&m);
    l->backend->cancel(l, &m.op);
    while (!m.final)
        msh_wait(&m);
    CHECK_ERR(m.final_res, -ECANCELED);
    CHECK_EQ(l->backend->pending(l), 0);
    for (int i = 0; i < m.nfds; i++)
        xclose(m.fds[i]);
    for (int i = 0; i < 3; i++)
        xclose(c[i]);
    xclose(c4);
    xclose(lfd);
    return arg;
}

TEST(multishot_accept_stays_armed_until_cancelled) { test_run(multi_accept_main, NULL); }

static unsigned char pattern(size_t i) { return (unsigned char)((i * 7 + (i >> 13)) & 0xff); }

typedef struct bulk {
    int fd;
    size_t total;
} bulk;

static void *bulk_writer(void *arg)
{
    bulk *b = arg;
    static unsigned char chunk[65536];
    size_t off = 0;
    while (off < b->total) {
        size_t n = b->total - off < sizeof chunk ? b->total - off : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(off + i);
        ssize_t w = write(b->fd, chunk, n);
        if (w < 0 && errno == EINTR)
            continue;
        CHECK(w > 0);
        off += (size_t)w;
    }
    shutdown(b->fd, SHUT_WR);
    return NULL;
}

static void recv_cb(corio__op *op)
{
    msh *m = CORIO__CONTAINER_OF(op, msh, op);
    corio_loop *l = corio__loop();
    m->completions++;
    if (op->res > 0) {
        CHECK(op->buf_id != CORIO__NO_BUF);
        CHECK((size_t)op->res <= corio__buf_size(l));
        if (m->hold) {
            CHECK(m->nheld < 4096);
            m->held[m->nheld].id = op->buf_id;
            m->held[m->nheld].len = op->res;
            m->nheld++;
        } else {
            memcpy(m->data + m->got, corio__buf(l, op->buf_id), (size_t)op->res);
            corio__buf_put(l, op->buf_id);
        }
        m->got += (size_t)op->res;
    } else if (op->buf_id != CORIO__NO_BUF) {
        corio__buf_put(l, op->buf_id);
    }
    if (!op->more) {
        m->final = true;
        m->final_res = op->res;
    }
    msh_wake(m);
}

static void multi_recv(bool hold, size_t total)
{
    corio_loop *l = corio__loop();
    static msh m;
    memset(&m, 0, sizeof m);
    int sv[2];
    nb_socketpair(sv);
    m.op = (corio__op){.kind = CORIO__OP_RECV_MULTI, .fd = sv[0], .done = recv_cb};
    if (!on_uring() || !corio__loop_can(l, CORIO__CAP_MULTISHOT)) {
        CHECK_EQ(l->backend->submit(l, &m.op), 1);
        CHECK_ERR(m.op.res, -EOPNOTSUPP);
        xclose(sv[0]);
        xclose(sv[1]);
        SKIP("multishot recv needs io_uring");
    }
    CHECK_OK(corio__bufring_get(l));
    m.hold = hold;
    m.data = malloc(total);
    CHECK(m.data);
    /* the writer blocks, so it gets a thread of its own */
    int wfd = fcntl(sv[1], F_GETFL);
    fcntl(sv[1], F_SETFL, wfd & ~O_NONBLOCK);
    bulk b = {sv[1], total};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, bulk_writer, &b), 0);
    int rearms = 0;
    CHECK_EQ(l->backend->submit(l, &m.op), 0);
    for (;;) {
        while (!m.final)
            msh_wait(&m);
        if (m.final_res == 0)
            break;
        CHECK_ERR(m.final_res, -ENOBUFS); /* ring ran dry: it grew, arm again */
        CHECK(hold);
        rearms++;
        m.final = false;
        CHECK_EQ(l->backend->submit(l, &m.op), 0);
    }
    pthread_join(th, NULL);
    CHECK_EQ(m.got, total);
    if (hold) {
        CHECK(rearms >= 1);
        size_t off = 0;
        for (int i = 0; i < m.nheld; i++) {
            memcpy(m.data + off, corio__buf(l, m.held[i].id), (size_t)m.held[i].len);
            off += (size_t)m.held[i].len;
            corio__buf_put(l, m.held[i].id);
        }
    } else {
        CHECK_EQ(rearms, 0);
        /* cycled through the ring many times */
        CHECK(m.completions > 256);
    }
    for (size_t i = 0; i < total; i++)
        if (m.data[i] != pattern(i))
            test_fail(__FILE__, __LINE__, "byte %zu differs", i);
    CHECK_EQ(l->backend->pending(l), 0);
    free(m.data);
    xclose(sv[0]);
    xclose(sv[1]);
}

static void *multi_recv_return_main(void *arg)
{
    multi_recv(false, 32u << 20);
    return arg;
}

TEST(multishot_recv_returns_buffers_and_reaches_eof) { test_run(multi_recv_return_main, NULL); }

static void *multi_recv_hold_main(void *arg)
{
    multi_recv(true, 6u << 20);
    return arg;
}

TEST(multishot_recv_grows_the_ring_when_readers_hold_buffers) { test_run(multi_recv_hold_main, NULL); }

static void *multi_recv_cancel_main(void *arg)
{
    corio_loop *l = corio__loop();
    static msh m;
    memset(&m, 0, sizeof m);
    int sv[2];
    nb_socketpair(sv);
    if (!on_uring() || !corio__loop_can(l, CORIO__CAP_MULTISHOT)) {
        xclose(sv[0]);
        xclose(sv[1]);
        SKIP("multishot recv needs io_uring");
    }
    static unsigned char data[64];
    m.data = data;
    m.op = (corio__op){.kind = CORIO__OP_RECV_MULTI, .fd = sv[0], .done = recv_cb};
    CHECK_EQ(l->backend->submit(l, &m.op), 0);
    CHECK_EQ(write(sv[1], "one", 3), 3);
    while (m.got < 3)
        msh_wait(&m);
    CHECK_EQ(write(sv[1], "two", 3), 3);
    while (m.got < 6)
        msh_wait(&m);
    CHECK_MEM(data, "onetwo", 6);
    CHECK(!m.final);
    l->backend->cancel(l, &m.op);
    while (!m.final)
        msh_wait(&m);
    CHECK_ERR(m.final_res, -ECANCELED);
    CHECK_EQ(l->backend->pending(l), 0);
    xclose(sv[0]);
    xclose(sv[1]);
    return arg;
}

TEST(multishot_recv_cancel) { test_run(multi_recv_cancel_main, NULL); }

/* ---- one loop per thread ------------------------------------------------- */

static void *loop_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        void *res = (void *)1;
        if (corio_run(NULL, recv_delayed_main, NULL, &res) != 0 || res != NULL)
            return (void *)1;
    }
    return NULL;
}

TEST(independent_loops_on_several_threads)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, loop_thread, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }
}

/* An op whose owner is not a task (a multishot recv of a closed stream) may
 * still be in the kernel when the last task ends: the loop's teardown
 * cancels it and delivers its final completion, so the owner can free its
 * memory. */
static msh leftover;
static int leftover_fds[2];

static void *leftover_main(void *arg)
{
    corio_loop *l = corio__loop();
    memset(&leftover, 0, sizeof leftover);
    nb_socketpair(leftover_fds);
    if (!on_uring() || !corio__loop_can(l, CORIO__CAP_MULTISHOT))
        SKIP("multishot recv needs io_uring");
    static unsigned char data[16];
    leftover.data = data;
    leftover.op = (corio__op){.kind = CORIO__OP_RECV_MULTI, .fd = leftover_fds[0], .done = recv_cb};
    CHECK_EQ(l->backend->submit(l, &leftover.op), 0);
    if (arg) /* cancel requested but not yet answered when main returns */
        l->backend->cancel(l, &leftover.op);
    return NULL;
}

TEST(ops_left_in_flight_get_their_final_completion_at_loop_end)
{
    for (int cancel = 0; cancel < 2; cancel++) {
        test_run(leftover_main, cancel ? (void *)1 : NULL);
        CHECK(leftover.final);
        CHECK_ERR(leftover.final_res, -ECANCELED);
        close(leftover_fds[0]);
        close(leftover_fds[1]);
    }
}
