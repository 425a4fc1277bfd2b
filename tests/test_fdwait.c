/*
 * Readiness waits on fds corio does not own (corio_fd_wait and its
 * conveniences, corio_fd_watch): a pipe readable after another task writes,
 * writable after a drain, hang-up and error reported as poll(2) does,
 * cancellation and deadlines while waiting (and the fd usable afterwards),
 * bad fds and events, several waiters on one fd (reader and writer on one
 * socket; two readers), and an fd closed with close(2) by the task itself
 * whose number comes back as another file: the next wait must see the new
 * file (no stale epoll registration), and the old file, still open through
 * a dup, must not wake it.  Then watches (add_reader): called per
 * readiness, level-triggered, stopped from inside and outside their
 * callback, told of a closed fd, a reader and a writer on one socket.
 * Every test runs on both backends.
 */
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

static void nb_pipe(int p[2]) { CHECK_OK(pipe2(p, O_NONBLOCK | O_CLOEXEC)); }

static void nb_socketpair(int sv[2])
{
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
}

/* Write until the fd's buffer is full (EAGAIN). */
static void fill(int fd)
{
    static char junk[65536];
    for (;;) {
        ssize_t r = write(fd, junk, sizeof junk);
        if (r < 0) {
            CHECK(errno == EAGAIN);
            return;
        }
    }
}

/* Read until empty (EAGAIN) or EOF; returns the byte count. */
static size_t drain(int fd)
{
    static char junk[65536];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, junk, sizeof junk);
        if (r <= 0) {
            CHECK(r == 0 || errno == EAGAIN);
            return n;
        }
        n += (size_t)r;
    }
}

typedef struct waiter {
    int fd;
    int events;
    uint64_t timeout_ms;
} waiter;

static void *wait_task(void *arg)
{
    waiter *w = arg;
    return (void *)(intptr_t)corio_fd_wait(w->fd, w->events, w->timeout_ms);
}

static intptr_t join_int(corio_task *t)
{
    void *r;
    CHECK_OK(corio_task_join(t, &r));
    return (intptr_t)r;
}

/* Let every other ready task run until it parks. */
static void settle(void)
{
    for (int i = 0; i < 3; i++)
        CHECK_OK(corio_yield());
}

/* ------------------------------------------------------------------ */

static void *readable_main(void *arg)
{
    (void)arg;
    int p[2];
    nb_pipe(p);
    waiter w = {p[0], POLLIN, CORIO_NO_TIMEOUT};
    corio_task *t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t)); /* nothing to read yet: parked */
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(join_int(t), POLLIN);
    /* level-triggered: still readable, so the next wait answers at once */
    CHECK_EQ(corio_fd_wait(p[0], POLLIN | POLLPRI, CORIO_NO_TIMEOUT), POLLIN);
    CHECK_OK(corio_fd_wait_readable(p[0]));
    /* the write end of an empty pipe is writable at once */
    CHECK_EQ(corio_fd_wait(p[1], POLLIN | POLLOUT, CORIO_NO_TIMEOUT), POLLOUT);
    close(p[0]);
    close(p[1]);
    return NULL;
}
TEST(pipe_readable_after_another_task_writes) { test_run(readable_main, NULL); }

static void *writable_main(void *arg)
{
    (void)arg;
    int p[2];
    nb_pipe(p);
    fill(p[1]);
    waiter w = {p[1], POLLOUT, CORIO_NO_TIMEOUT};
    corio_task *t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t)); /* full: parked */
    CHECK(drain(p[0]) > 0);
    CHECK_EQ(join_int(t), POLLOUT);
    CHECK_OK(corio_fd_wait_writable(p[1]));
    close(p[0]);
    close(p[1]);
    return NULL;
}
TEST(pipe_writable_after_drain) { test_run(writable_main, NULL); }

static void *hangup_main(void *arg)
{
    (void)arg;
    int p[2];
    nb_pipe(p);
    waiter w = {p[0], POLLIN, CORIO_NO_TIMEOUT};
    corio_task *t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t));
    close(p[1]); /* the last writer goes: hang-up, as poll(2) says it */
    CHECK_EQ(join_int(t), POLLHUP);
    CHECK_OK(corio_fd_wait_readable(p[0])); /* hung up counts as readable: read gives EOF */
    char c;
    CHECK_EQ(read(p[0], &c, 1), 0);
    close(p[0]);

    /* the reader goes: the write end reports POLLERR (and a write -EPIPE) */
    nb_pipe(p);
    fill(p[1]);
    w = (waiter){p[1], POLLOUT, CORIO_NO_TIMEOUT};
    t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t));
    close(p[0]);
    intptr_t r = join_int(t);
    CHECK(r > 0 && (r & POLLERR) && !(r & POLLIN));
    CHECK_OK(corio_fd_wait_writable(p[1]));
    close(p[1]);

    /* a socket whose peer closed: POLLIN and POLLHUP; POLLRDHUP when asked */
    int sv[2];
    nb_socketpair(sv);
    w = (waiter){sv[0], POLLIN | POLLRDHUP, CORIO_NO_TIMEOUT};
    t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t));
    close(sv[1]);
    r = join_int(t);
    CHECK(r & POLLRDHUP);
    CHECK(r & POLLIN);
    CHECK_EQ(corio_fd_wait(sv[0], POLLIN, CORIO_NO_TIMEOUT), POLLIN | POLLHUP);
    close(sv[0]);
    return NULL;
}
TEST(hangup_and_error_end_the_wait_as_poll_reports_them) { test_run(hangup_main, NULL); }

static void *cancel_main(void *arg)
{
    (void)arg;
    int p[2];
    nb_pipe(p);
    waiter w = {p[0], POLLIN, CORIO_NO_TIMEOUT};
    corio_task *t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t));
    CHECK_OK(corio_task_cancel(t));
    CHECK_ERR(join_int(t), -ECANCELED);
    /* the fd is as good as before: a new wait sees the next write */
    t = corio_spawn(wait_task, &w);
    settle();
    CHECK(!corio_task_done(t));
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(join_int(t), POLLIN);
    CHECK_EQ(drain(p[0]), 1u);

    /* the task's deadline ends the wait with -CORIO_EDEADLINE */
    uint64_t t0 = test_ms(); /* before the push: the deadline counts from there */
    corio_deadline d = corio_deadline_push(20);
    CHECK_ERR(corio_fd_wait_readable(p[0]), -CORIO_EDEADLINE);
    CHECK(test_ms() - t0 >= 19);
    corio_deadline_pop(d);
    /* a timeout of its own answers 0, poll's "nothing ready" */
    t0 = test_ms();
    CHECK_EQ(corio_fd_wait(p[0], POLLIN, 20), 0);
    CHECK(test_ms() - t0 >= 19);
    /* ... but an earlier deadline of the task's still says so */
    d = corio_deadline_push(10);
    CHECK_ERR(corio_fd_wait(p[0], POLLIN, 60000), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    /* a ready fd within its timeout: the events, not 0 */
    CHECK_EQ(write(p[1], "y", 1), 1);
    CHECK_EQ(corio_fd_wait(p[0], POLLIN, 60000), POLLIN);
    /* 0 ms: a look without waiting */
    CHECK_EQ(corio_fd_wait(p[0], POLLIN, 0), POLLIN);
    CHECK_EQ(drain(p[0]), 1u);
    CHECK_EQ(corio_fd_wait(p[0], POLLIN, 0), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}
TEST(cancel_deadline_and_timeout_while_waiting) { test_run(cancel_main, NULL); }

static void *badfd_main(void *arg)
{
    (void)arg;
    CHECK_ERR(corio_fd_wait(-1, POLLIN, CORIO_NO_TIMEOUT), -EBADF);
    CHECK_ERR(corio_fd_wait_readable(-5), -EBADF);
    int p[2];
    nb_pipe(p);
    close(p[0]);
    close(p[1]);
    CHECK_ERR(corio_fd_wait_readable(p[0]), -EBADF); /* a closed number */
    CHECK_ERR(corio_fd_wait_writable(p[1]), -EBADF);
    CHECK_ERR(corio_fd_wait(p[0], POLLIN, 10), -EBADF);
    nb_pipe(p);
    CHECK_ERR(corio_fd_wait(p[0], 0, CORIO_NO_TIMEOUT), -EINVAL);
    CHECK_ERR(corio_fd_wait(p[0], POLLNVAL, CORIO_NO_TIMEOUT), -EINVAL);
    CHECK_ERR(corio_fd_wait(p[0], POLLIN | POLLERR, CORIO_NO_TIMEOUT), -EINVAL);
    close(p[0]);
    close(p[1]);
    return NULL;
}
TEST(bad_fd_and_bad_events) { test_run(badfd_main, NULL); }

static void never_called(int fd, int revents, void *arg)
{
    (void)fd;
    (void)revents;
    (void)arg;
    CHECK(!"called");
}

TEST(outside_a_task)
{
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    CHECK_ERR(corio_fd_wait(p[0], POLLIN, 0), -EPERM);
    CHECK_ERR(corio_fd_wait_writable(p[1]), -EPERM);
    errno = 0;
    CHECK(corio_fd_watch_start(p[0], POLLIN, never_called, NULL) == NULL);
    CHECK_EQ(errno, EPERM);
    corio_fd_watch_stop(NULL);
    close(p[0]);
    close(p[1]);
}

static void *two_waiters_main(void *arg)
{
    (void)arg;
    int sv[2];
    nb_socketpair(sv);
    fill(sv[0]); /* sv[0]: neither readable nor writable */
    waiter wr = {sv[0], POLLIN, CORIO_NO_TIMEOUT}, ww = {sv[0], POLLOUT, CORIO_NO_TIMEOUT};
    waiter wr2 = {sv[0], POLLIN | POLLPRI, CORIO_NO_TIMEOUT};
    corio_task *r1 = corio_spawn(wait_task, &wr);
    corio_task *w1 = corio_spawn(wait_task, &ww);
    corio_task *r2 = corio_spawn(wait_task, &wr2);
    settle();
    CHECK(!corio_task_done(r1) && !corio_task_done(w1) && !corio_task_done(r2));
    /* data arrives: both readers wake, the writer keeps waiting */
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(join_int(r1), POLLIN);
    CHECK_EQ(join_int(r2), POLLIN);
    settle();
    CHECK(!corio_task_done(w1));
    /* the peer drains: the writer wakes */
    CHECK(drain(sv[1]) > 0);
    CHECK_EQ(join_int(w1), POLLOUT);

    /* the other order: the writer first, the reader stays */
    fill(sv[0]);
    char c;
    CHECK_EQ(read(sv[0], &c, 1), 1);
    r1 = corio_spawn(wait_task, &wr);
    w1 = corio_spawn(wait_task, &ww);
    settle();
    CHECK(!corio_task_done(r1) && !corio_task_done(w1));
    CHECK(drain(sv[1]) > 0);
    CHECK_EQ(join_int(w1), POLLOUT);
    settle();
    CHECK(!corio_task_done(r1));
    CHECK_EQ(write(sv[1], "y", 1), 1);
    CHECK_EQ(join_int(r1), POLLIN);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}
TEST(reader_and_writer_wait_on_one_socket) { test_run(two_waiters_main, NULL); }

static void *read_one(void *arg)
{
    char c;
    ssize_t r = corio_stream_read(arg, &c, 1);
    return (void *)(intptr_t)(r == 1 ? c : r);
}

/* The number of a closed fd comes back as another file: the wait must be
 * on the new one. */
static void *reuse_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 3; round++) {
        int p[2];
        nb_pipe(p);
        waiter w = {p[0], POLLIN, CORIO_NO_TIMEOUT};
        corio_task *t = corio_spawn(wait_task, &w);
        settle();
        CHECK(!corio_task_done(t)); /* parked: on epoll the fd is in the set now */
        if (round == 1) {
            CHECK_OK(corio_task_cancel(t)); /* leave by cancel this time */
            CHECK_ERR(join_int(t), -ECANCELED);
        } else {
            CHECK_EQ(write(p[1], "x", 1), 1);
            CHECK_EQ(join_int(t), POLLIN);
        }
        int num = p[0];
        /* round 2: the old file stays open through a dup (the kernel keeps
         * its registration), and must not wake a waiter on the new one */
        int keep = round == 2 ? fcntl(p[0], F_DUPFD_CLOEXEC, 100) : -1;
        close(p[0]);
        int q[2];
        nb_pipe(q);
        if (q[0] != num) {
            CHECK_EQ(dup3(q[0], num, O_CLOEXEC), num);
            close(q[0]);
            q[0] = num;
        }
        w.fd = q[0];
        t = corio_spawn(wait_task, &w);
        settle();
        CHECK(!corio_task_done(t));
        if (keep >= 0) {
            CHECK_EQ(write(p[1], "old", 3), 3); /* the old file is readable, the new is not */
            settle();
            CHECK(!corio_task_done(t));
        }
        CHECK_EQ(write(q[1], "y", 1), 1);
        CHECK_EQ(join_int(t), POLLIN);
        /* a stream on the number works too (corio's own registration) */
        CHECK_EQ(drain(q[0]), 1u);
        corio_stream *s = corio_stream_from_fd(q[0]);
        CHECK(s);
        waiter wp = {q[1], POLLOUT, CORIO_NO_TIMEOUT};
        CHECK_EQ((intptr_t)wait_task(&wp), POLLOUT);
        corio_task *wt = corio_spawn(wait_task, &(waiter){q[1], POLLOUT, 0});
        CHECK_EQ(join_int(wt), POLLOUT);
        CHECK_EQ(write(q[1], "z", 1), 1);
        char c;
        CHECK_EQ(corio_stream_read(s, &c, 1), 1);
        CHECK_EQ(c, 'z');
        corio_stream_close(s);
        close(q[1]);
        close(p[1]);
        if (keep >= 0)
            close(keep);
    }
    return NULL;
}
TEST(closed_fd_whose_number_comes_back_is_a_new_file) { test_run(reuse_main, NULL); }

/* A stream's own fd read by corio after a foreign wait on its number
 * closed behind corio's back (the stream's registration must be made
 * anew, not assumed). */
static void *reuse_stream_main(void *arg)
{
    (void)arg;
    int p[2];
    nb_pipe(p);
    CHECK_EQ(write(p[1], "a", 1), 1);
    waiter w = {p[0], POLLIN, CORIO_NO_TIMEOUT};
    CHECK_EQ((intptr_t)wait_task(&w), POLLIN); /* ready at once */
    CHECK_EQ(drain(p[0]), 1u);
    corio_task *t = corio_spawn(wait_task, &w);
    settle();
    CHECK_EQ(write(p[1], "b", 1), 1);
    CHECK_EQ(join_int(t), POLLIN);
    int num = p[0];
    close(p[0]);
    close(p[1]);
    int sv[2];
    nb_socketpair(sv);
    if (sv[0] != num) {
        CHECK_EQ(dup3(sv[0], num, O_CLOEXEC), num);
        close(sv[0]);
        sv[0] = num;
    }
    corio_stream *s = corio_stream_from_fd(sv[0]);
    CHECK(s);
    corio_task *rd = corio_spawn(read_one, s);
    settle();
    CHECK(!corio_task_done(rd)); /* parked in the stream's own wait */
    CHECK_EQ(write(sv[1], "c", 1), 1);
    CHECK_EQ(join_int(rd), 'c');
    corio_stream_close(s);
    close(sv[1]);
    return NULL;
}
TEST(stream_on_a_number_a_foreign_wait_used) { test_run(reuse_stream_main, NULL); }

/* ------------------------------------------------------------------ */
/* Watches                                                             */
/* ------------------------------------------------------------------ */

typedef struct watch_state {
    int calls;
    int last;
    size_t bytes;
    bool read_it;      /* drain in the callback (else leave the data: level-triggered) */
    bool stop_inside;  /* stop from the callback at the first call */
    bool close_inside; /* close the fd (without a stop) at the first call */
    corio_fd_watch *w;
    corio_event called;
} watch_state;

static void on_ready(int fd, int revents, void *arg)
{
    watch_state *st = arg;
    st->calls++;
    st->last = revents;
    if (st->read_it && revents > 0)
        st->bytes += drain(fd);
    if (st->stop_inside)
        corio_fd_watch_stop(st->w);
    if (st->close_inside && st->calls == 1)
        close(fd);
    corio_event_set(&st->called);
}

static void wait_called(watch_state *st)
{
    CHECK_OK(corio_event_wait(&st->called));
    corio_event_clear(&st->called);
}

static void *watch_main(void *arg)
{
    (void)arg;
    int p[2];
    nb_pipe(p);
    watch_state st = {.read_it = true};
    corio_event_init(&st.called);
    corio_fd_watch *w = corio_fd_watch_start(p[0], POLLIN, on_ready, &st);
    CHECK(w);
    settle();
    CHECK_EQ(st.calls, 0); /* not ready: not called */
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ(write(p[1], "abc", 3), 3);
        wait_called(&st);
        CHECK_EQ(st.calls, i);
        CHECK_EQ(st.last, POLLIN);
        CHECK_EQ(st.bytes, 3u * (size_t)i);
    }
    corio_fd_watch_stop(w);
    /* stopped: data no longer calls it */
    CHECK_EQ(write(p[1], "d", 1), 1);
    settle();
    CHECK_EQ(st.calls, 3);
    close(p[0]); /* may close at once after the stop */
    close(p[1]);

    /* level-triggered: a callback that leaves the data is called again */
    nb_pipe(p);
    watch_state lv = {.read_it = false};
    corio_event_init(&lv.called);
    w = corio_fd_watch_start(p[0], POLLIN, on_ready, &lv);
    CHECK(w);
    CHECK_EQ(write(p[1], "x", 1), 1);
    for (int i = 0; i < 3; i++)
        wait_called(&lv);
    CHECK(lv.calls >= 3);
    corio_fd_watch_stop(w);
    int before = lv.calls;
    settle();
    CHECK_EQ(lv.calls, before);

    /* stopped from inside its own callback */
    watch_state in = {.read_it = true, .stop_inside = true};
    corio_event_init(&in.called);
    in.w = corio_fd_watch_start(p[0], POLLIN, on_ready, &in);
    CHECK(in.w);
    wait_called(&in); /* the byte still there */
    CHECK_EQ(in.calls, 1);
    CHECK_EQ(write(p[1], "y", 1), 1);
    settle();
    CHECK_EQ(in.calls, 1);
    close(p[0]);
    close(p[1]);

    /* the fd closed by the callback without a stop: told -EBADF once, then
     * idle until stopped */
    nb_pipe(p);
    watch_state cl = {.read_it = true, .close_inside = true};
    corio_event_init(&cl.called);
    w = corio_fd_watch_start(p[0], POLLIN, on_ready, &cl);
    CHECK(w);
    CHECK_EQ(write(p[1], "x", 1), 1);
    wait_called(&cl);
    wait_called(&cl);
    CHECK_EQ(cl.calls, 2);
    CHECK_ERR(cl.last, -EBADF);
    settle();
    CHECK_EQ(cl.calls, 2);
    corio_fd_watch_stop(w);
    close(p[1]);
    return NULL;
}
TEST(watch_calls_until_stopped) { test_run(watch_main, NULL); }

static void *watch_pair_main(void *arg)
{
    (void)arg;
    int sv[2];
    nb_socketpair(sv);
    fill(sv[0]);
    watch_state rd = {.read_it = true}, wr = {0};
    corio_event_init(&rd.called);
    corio_event_init(&wr.called);
    /* add_reader and add_writer on one socket */
    corio_fd_watch *r = corio_fd_watch_start(sv[0], POLLIN, on_ready, &rd);
    wr.stop_inside = true; /* a writer stops once it could write */
    corio_fd_watch *w = wr.w = corio_fd_watch_start(sv[0], POLLOUT, on_ready, &wr);
    CHECK(r && w);
    settle();
    CHECK(rd.calls == 0 && wr.calls == 0);
    CHECK_EQ(write(sv[1], "hello", 5), 5);
    wait_called(&rd);
    CHECK_EQ(rd.bytes, 5u);
    CHECK_EQ(wr.calls, 0);
    CHECK(drain(sv[1]) > 0);
    wait_called(&wr);
    CHECK_EQ(wr.last, POLLOUT);
    CHECK_EQ(rd.calls, 1);
    corio_fd_watch_stop(r);
    close(sv[0]);
    close(sv[1]);

    /* misuse */
    errno = 0;
    CHECK(!corio_fd_watch_start(0, POLLIN, NULL, NULL));
    CHECK_EQ(errno, EINVAL);
    CHECK(!corio_fd_watch_start(sv[0], 0, on_ready, NULL));
    CHECK_EQ(errno, EINVAL);
    CHECK(!corio_fd_watch_start(sv[0], POLLIN, on_ready, NULL)); /* closed */
    CHECK_EQ(errno, EBADF);
    CHECK(!corio_fd_watch_start(-1, POLLIN, on_ready, NULL));
    CHECK_EQ(errno, EBADF);
    corio_fd_watch_stop(NULL);
    return NULL;
}
TEST(watch_reader_and_writer_on_one_socket) { test_run(watch_pair_main, NULL); }

/* Watches never stopped are freed with the loop (ASan checks). */
static void *watch_leftover_main(void *arg)
{
    (void)arg;
    static int p[2];
    nb_pipe(p);
    static watch_state st = {.read_it = true};
    corio_event_init(&st.called);
    CHECK(corio_fd_watch_start(p[0], POLLIN, on_ready, &st));
    static watch_state wst;
    corio_event_init(&wst.called);
    CHECK(corio_fd_watch_start(p[1], POLLOUT, on_ready, &wst));
    settle();
    return NULL;
}
TEST(watches_left_running_end_with_the_loop) { test_run(watch_leftover_main, NULL); }
