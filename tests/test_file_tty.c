/*
 * corio_file_* on fds that are not files: ttys (a pty's slave), pty
 * masters, named FIFOs, pipes and inotify, in blocking mode as a shell
 * hands them over.  What must hold on both backends:
 *  - a read or write that has to wait never occupies a thread-pool worker
 *    (nor blocks the loop), even when the data it was woken for is taken
 *    by another reader first or a write only partly fits; the pool (sized
 *    2 here) keeps serving regular files meanwhile;
 *  - such a wait is cancellable and honours deadlines, and the loop ends
 *    cleanly afterwards (no thread left stuck);
 *  - a write on a blocking description moves every byte, as write(2)
 *    would, however small the pipe or tty buffer; one interrupted part-way
 *    returns the count that went out, and exactly that arrives;
 *  - on a non-blocking description a write returns once part went out;
 *  - the fd's own file description is left as it was (O_NONBLOCK).
 * Before the fix, epoll ran such calls as blocking calls on the pool once
 * poll said ready (the race tests and the tty writes ran out of workers,
 * a cancelled tty write never returned), and io_uring's inline write to a
 * tty blocked the loop thread itself.
 */
#include "runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <stdatomic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#define POOL 2
#define BIG (1024 * 1024 + 123) /* far more than a pipe or tty buffers */

/* Run fn as the main task of a loop whose thread pool has POOL workers.
 * A thread stuck in a blocking call would hang the test: the alarm ends
 * it sooner than ctest's timeout. */
static void run_small_pool(corio_fn fn, void *arg)
{
    alarm(30);
    corio_config cfg = {.threadpool_size = POOL};
    int r = corio_run(&cfg, fn, arg, NULL);
    CHECK_ERR(r, 0);
}

static void open_pty(int *master, int *slave, bool raw)
{
    if (openpty(master, slave, NULL, NULL, NULL) < 0)
        SKIP("no pty available");
    if (raw) { /* bytes through unchanged, no echo */
        struct termios tio;
        CHECK_OK(tcgetattr(*slave, &tio));
        cfmakeraw(&tio);
        CHECK_OK(tcsetattr(*slave, TCSANOW, &tio));
    }
}

/* run_small_pool(fn, fds) with fds = {master, slave} of a new pty. */
static void run_on_pty(corio_fn fn, bool raw)
{
    int fds[2];
    open_pty(&fds[0], &fds[1], raw);
    run_small_pool(fn, fds);
    close(fds[0]);
    close(fds[1]);
}

/* A FIFO in a new temporary directory, with a blocking reader. */
typedef struct fifo {
    char dir[32];
    char path[64];
    int rfd;
} fifo;

static void fifo_make(fifo *f)
{
    strcpy(f->dir, "/tmp/corio_fifo_XXXXXX");
    CHECK(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/f", f->dir);
    CHECK_OK(mkfifo(f->path, 0600));
    /* O_NONBLOCK only so that the open need not wait for a writer. */
    f->rfd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK(f->rfd >= 0);
    CHECK_OK(fcntl(f->rfd, F_SETFL, 0));
}

static void fifo_remove(fifo *f)
{
    close(f->rfd);
    unlink(f->path);
    rmdir(f->dir);
}

static void *nothing(void *arg) { return arg; }

/* The thread pool still serves file work promptly: everything here needs
 * a worker on epoll (open with O_CREAT, fsync) or is a to_thread call. */
static void pool_still_serves(void)
{
    char path[] = "/tmp/corio_tty_XXXXXX";
    int tfd = mkstemp(path);
    CHECK(tfd >= 0);
    close(tfd);
    /* promptly: far within a ceiling that only a pool stuck behind the
     * blocked tty calls would reach (fsync on a busy disk is slow) */
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(30000);
    CHECK_OK(corio_file_write_all(path, "regular", 7, 0600));
    int fd = corio_file_open(path, O_RDWR, 0);
    CHECK_OK(fd);
    CHECK_OK(corio_file_fsync(fd));
    char buf[16];
    CHECK_ERR(corio_file_read(fd, buf, sizeof buf), 7);
    CHECK_MEM(buf, "regular", 7);
    CHECK_OK(corio_file_close(fd));
    void *res = NULL;
    CHECK_OK(corio_to_thread(nothing, buf, &res));
    CHECK(res == buf);
    corio_deadline_pop(d);
    CHECK(test_ms() - t0 < 20000);
    CHECK_OK(corio_file_unlink(path));
}

/* One corio_file_read (into buf) or corio_file_write (of BIG bytes of
 * data) in a task of its own. */
typedef struct call {
    int fd;
    const char *data; /* NULL: a read */
    char buf[64];
    ssize_t n;
    bool done;
} call;

static void *call_task(void *arg)
{
    call *c = arg;
    c->n = c->data ? corio_file_write(c->fd, c->data, BIG) : corio_file_read(c->fd, c->buf, sizeof c->buf);
    c->done = true;
    return NULL;
}

/* ---- reads that lose the race for the data ------------------------------- */

typedef struct race {
    int rfd, wfd;
    const char *msg;
} race;

#define NREADERS (POOL + 1)

/* NREADERS tasks read the same blocking fd and one message arrives: all
 * are woken, one gets it, the others must go back to waiting without
 * holding a worker (before the fix each blocked in read(2) on the pool,
 * so a few of them took every worker and the file calls below stalled). */
static void *race_main(void *arg)
{
    race *c = arg;
    int fl = fcntl(c->rfd, F_GETFL);
    call rd[NREADERS];
    corio_task *t[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        rd[i] = (call){.fd = c->rfd};
        t[i] = corio_spawn(call_task, &rd[i]);
        CHECK(t[i]);
    }
    CHECK_OK(corio_sleep_ms(30));
    for (int i = 0; i < NREADERS; i++)
        CHECK(!rd[i].done);
    size_t len = strlen(c->msg);
    CHECK_EQ(write(c->wfd, c->msg, len), (ssize_t)len);
    /* Let every woken reader make its attempt. */
    size_t got = 0;
    for (int k = 0; k < 200 && got < len; k++) {
        CHECK_OK(corio_sleep_ms(5));
        got = 0;
        for (int i = 0; i < NREADERS; i++)
            if (rd[i].done) {
                CHECK(rd[i].n > 0);
                CHECK_MEM(rd[i].buf, c->msg + got, (size_t)rd[i].n);
                got += (size_t)rd[i].n;
            }
    }
    CHECK_EQ(got, len);
    CHECK_OK(corio_sleep_ms(30));
    int waiting = 0;
    for (int i = 0; i < NREADERS; i++)
        waiting += !rd[i].done;
    CHECK(waiting >= 1);

    pool_still_serves();

    for (int i = 0; i < NREADERS; i++)
        if (!rd[i].done)
            CHECK_OK(corio_task_cancel(t[i]));
    CHECK_OK(corio_gather(t, NREADERS, NULL));
    for (int i = 0; i < NREADERS; i++)
        CHECK(rd[i].n > 0 || rd[i].n == -ECANCELED);
    CHECK_EQ(fcntl(c->rfd, F_GETFL), fl); /* the description is untouched */
    return NULL;
}

TEST(tty_readers_that_lose_the_race_hold_no_worker)
{
    int m, s;
    open_pty(&m, &s, false); /* canonical: one line */
    race c = {.rfd = s, .wfd = m, .msg = "one line\n"};
    run_small_pool(race_main, &c);
    close(m);
    close(s);
}

TEST(pty_master_readers_that_lose_the_race_hold_no_worker)
{
    int m, s;
    open_pty(&m, &s, true);
    race c = {.rfd = m, .wfd = s, .msg = "output"};
    run_small_pool(race_main, &c);
    close(m);
    close(s);
}

TEST(pipe_readers_that_lose_the_race_hold_no_worker)
{
    int p[2];
    CHECK_OK(pipe(p));
    race c = {.rfd = p[0], .wfd = p[1], .msg = "through the pipe"};
    run_small_pool(race_main, &c);
    close(p[0]);
    close(p[1]);
}

/* A named FIFO knows no RWF_NOWAIT (unlike a pipe(2) pipe). */
TEST(fifo_readers_that_lose_the_race_hold_no_worker)
{
    fifo f;
    fifo_make(&f);
    int wfd = open(f.path, O_WRONLY | O_CLOEXEC);
    CHECK(wfd >= 0);
    race c = {.rfd = f.rfd, .wfd = wfd, .msg = "through the fifo"};
    run_small_pool(race_main, &c);
    close(wfd);
    fifo_remove(&f);
}

/* ---- cancel and deadline while a tty read waits -------------------------- */

static void *tty_interrupt_main(void *arg)
{
    int *fds = arg; /* master, slave */
    int m = fds[0], s = fds[1];
    struct termios tio;
    CHECK_OK(tcgetattr(s, &tio));
    tio.c_lflag &= ~(tcflag_t)ECHO; /* keep the master's input side empty */
    CHECK_OK(tcsetattr(s, TCSANOW, &tio));
    for (int nonblock = 0; nonblock < 2; nonblock++) {
        int fl = fcntl(s, F_GETFL);
        CHECK_OK(fcntl(s, F_SETFL, nonblock ? fl | O_NONBLOCK : fl & ~O_NONBLOCK));
        int mine = fcntl(s, F_GETFL);

        /* deadline */
        char buf[64];
        uint64_t t0 = test_ms();
        corio_deadline d = corio_deadline_push(60);
        CHECK_ERR(corio_file_read(s, buf, sizeof buf), -CORIO_EDEADLINE);
        corio_deadline_pop(d);
        uint64_t el = test_ms() - t0;
        CHECK(el >= 50 && el < 2000);

        /* cancel */
        call rd = {.fd = s};
        corio_task *t = corio_spawn(call_task, &rd);
        CHECK_OK(corio_sleep_ms(30));
        CHECK(!rd.done); /* waits, also on a non-blocking description */
        t0 = test_ms();
        CHECK_OK(corio_task_cancel(t));
        CHECK_OK(corio_task_join(t, NULL));
        CHECK(test_ms() - t0 < 2000);
        CHECK_ERR(rd.n, -ECANCELED);

        /* the interrupted reads took nothing, and a waiting read
         * completes when a line comes */
        rd = (call){.fd = s};
        t = corio_spawn(call_task, &rd);
        CHECK_OK(corio_sleep_ms(20));
        CHECK(!rd.done);
        CHECK_EQ(write(m, "typed\n", 6), 6);
        CHECK_OK(corio_task_join(t, NULL));
        CHECK_ERR(rd.n, 6);
        CHECK_MEM(rd.buf, "typed\n", 6);

        CHECK_EQ(fcntl(s, F_GETFL), mine);
        CHECK_OK(fcntl(s, F_SETFL, fl));
    }
    return NULL;
}

TEST(tty_read_cancel_and_deadline) { run_on_pty(tty_interrupt_main, false); }

/* An inotify fd has neither RWF_NOWAIT nor a path to open again: O_NONBLOCK
 * is set just for each attempt.  Two readers, one event: the other reader
 * waits on and is cancelled.  (io_uring moves that loser to one of its own
 * workers, blocked in read(2), and its cancel came back as -EINTR.) */
static void *inotify_main(void *arg)
{
    (void)arg;
    char dir[] = "/tmp/corio_ino_XXXXXX";
    CHECK(mkdtemp(dir));
    int ifd = inotify_init1(IN_CLOEXEC);
    CHECK(ifd >= 0);
    CHECK(inotify_add_watch(ifd, dir, IN_CREATE) >= 0);
    int fl = fcntl(ifd, F_GETFL);
    call rd[2];
    corio_task *t[2];
    for (int i = 0; i < 2; i++) {
        rd[i] = (call){.fd = ifd};
        t[i] = corio_spawn(call_task, &rd[i]);
    }
    CHECK_OK(corio_sleep_ms(30));
    CHECK(!rd[0].done && !rd[1].done);
    char path[64];
    snprintf(path, sizeof path, "%s/new", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);
    /* the event reaches one of them (waiting for it, with a ceiling) */
    uint64_t t0 = test_ms();
    while (!rd[0].done && !rd[1].done && test_ms() - t0 < 30000)
        CHECK_OK(corio_sleep_ms(1));
    CHECK(rd[0].done != rd[1].done);
    call *won = rd[0].done ? &rd[0] : &rd[1];
    CHECK(won->n >= (ssize_t)sizeof(struct inotify_event));
    struct inotify_event ev;
    memcpy(&ev, won->buf, sizeof ev);
    CHECK(ev.mask & IN_CREATE);
    CHECK_STR(won->buf + sizeof ev, "new");
    CHECK_OK(corio_task_cancel(t[rd[0].done ? 1 : 0]));
    CHECK_OK(corio_gather(t, 2, NULL));
    CHECK_ERR((rd[0].n < 0 ? rd[0].n : rd[1].n), -ECANCELED);
    CHECK_EQ(fcntl(ifd, F_GETFL), fl);
    close(ifd);
    unlink(path);
    rmdir(dir);
    return NULL;
}

TEST(inotify_reader_that_loses_the_race_waits_and_cancels) { run_small_pool(inotify_main, NULL); }

/* ---- writes bigger than the buffer -------------------------------------- */

/* Byte i of writer who's data; the top bit tells the writers apart. */
static char pattern(size_t i, int who) { return (char)(((i * 13 + 1) & 0x7f) | (unsigned)who << 7); }

static char *make_data(int who)
{
    char *p = malloc(BIG);
    CHECK(p);
    for (size_t i = 0; i < BIG; i++)
        p[i] = pattern(i, who);
    return p;
}

/* A thread that reads fd once go is set, until it has want bytes or EOF. */
typedef struct drainer {
    int fd;
    size_t want;
    atomic_bool go;
    char *buf;
    atomic_size_t got; /* the loop thread watches it grow */
    pthread_t th;
} drainer;

static void *drain_thread(void *arg)
{
    drainer *d = arg;
    while (!atomic_load(&d->go))
        usleep(1000);
    size_t got = 0;
    while (got < d->want) {
        ssize_t n = read(d->fd, d->buf + got, d->want - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        atomic_store(&d->got, got);
    }
    return NULL;
}

static void drainer_start(drainer *d, int fd, size_t want)
{
    d->fd = fd;
    d->want = want;
    atomic_init(&d->got, 0);
    atomic_init(&d->go, false);
    d->buf = malloc(want);
    CHECK(d->buf);
    CHECK_EQ(pthread_create(&d->th, NULL, drain_thread, d), 0);
}

/* Wait for the drainer without blocking the loop (to_thread would do, but
 * the point is to leave the pool alone). */
static void drainer_join(drainer *d)
{
    while (atomic_load(&d->got) < d->want) {
        size_t before = atomic_load(&d->got);
        CHECK_OK(corio_sleep_ms(50));
        if (atomic_load(&d->got) == before)
            break; /* stuck: the checks below say why */
    }
    pthread_join(d->th, NULL);
}

/* Two writers of BIG bytes each to a tty nobody reads yet: both wait
 * without holding a worker, then both finish with every byte once the
 * other side reads. */
static void *tty_big_write_main(void *arg)
{
    int *fds = arg; /* the side to read, the side to write */
    int fl = fcntl(fds[1], F_GETFL);
    drainer dr;
    drainer_start(&dr, fds[0], 2 * (size_t)BIG);
    call w[2];
    corio_task *t[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (call){.fd = fds[1], .data = make_data(i)};
        t[i] = corio_spawn(call_task, &w[i]);
    }
    CHECK_OK(corio_sleep_ms(50));
    CHECK(!w[0].done && !w[1].done);

    pool_still_serves();

    atomic_store(&dr.go, true);
    CHECK_OK(corio_gather(t, 2, NULL));
    drainer_join(&dr);
    CHECK_ERR(w[0].n, BIG);
    CHECK_ERR(w[1].n, BIG);
    CHECK_EQ(dr.got, 2 * (size_t)BIG);
    /* The two writers' bytes may interleave, each in its own order. */
    size_t k[2] = {0, 0};
    for (size_t i = 0; i < dr.got; i++) {
        int who = (unsigned char)dr.buf[i] >> 7;
        if (k[who] >= BIG || dr.buf[i] != pattern(k[who], who))
            test_fail(__FILE__, __LINE__, "byte %zu: writer %d's byte %zu is wrong", i, who, k[who]);
        k[who]++;
    }
    CHECK_EQ(k[0], BIG);
    CHECK_EQ(k[1], BIG);
    CHECK_EQ(fcntl(fds[1], F_GETFL), fl);
    for (int i = 0; i < 2; i++)
        free((void *)w[i].data);
    free(dr.buf);
    return NULL;
}

TEST(tty_big_writes_wait_without_a_worker_and_complete) { run_on_pty(tty_big_write_main, true); }

/* The same into a pty master (typed input for the slave side), which can
 * not be opened again: O_NONBLOCK is set just for each call. */
static void *pty_master_big_write_main(void *arg)
{
    int *fds = arg;
    int swapped[2] = {fds[1], fds[0]}; /* read the slave, write the master */
    return tty_big_write_main(swapped);
}

TEST(pty_master_big_writes_wait_without_a_worker_and_complete)
{
    run_on_pty(pty_master_big_write_main, true);
}

/* A write cancelled while the tty is full returns what went out, and that
 * is exactly what the other side reads. */
static void *tty_write_cancel_main(void *arg)
{
    int *fds = arg;
    call w = {.fd = fds[1], .data = make_data(0)};
    corio_task *t = corio_spawn(call_task, &w);
    CHECK_OK(corio_sleep_ms(50));
    CHECK(!w.done);
    uint64_t t0 = test_ms();
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK(test_ms() - t0 < 2000);
    CHECK(w.n > 0 && w.n < BIG); /* part of it went out before the tty filled */
    /* Read back what is in the tty without blocking. */
    int fl = fcntl(fds[0], F_GETFL);
    CHECK_OK(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
    char *back = malloc(BIG);
    size_t got = 0;
    for (int idle = 0; idle < 20;) {
        ssize_t n = read(fds[0], back + got, BIG - got);
        if (n > 0) {
            got += (size_t)n;
            idle = 0;
        } else {
            idle++;
            CHECK_OK(corio_sleep_ms(5));
        }
    }
    CHECK_EQ(got, (size_t)w.n);
    CHECK_MEM(back, w.data, got);
    free(back);
    free((void *)w.data);
    return NULL;
}

TEST(tty_write_cancelled_when_full_returns_what_went_out) { run_on_pty(tty_write_cancel_main, true); }

/* A write into a FIFO opened blocking: one call moves all BIG bytes (the
 * buffer holds 64 KiB) while the loop keeps running, once a reader
 * drains it; bytes exact; vectored the same. */
static void *fifo_big_write_main(void *arg)
{
    (void)arg;
    fifo f;
    fifo_make(&f);
    int wfd = corio_file_open(f.path, O_WRONLY, 0);
    CHECK_OK(wfd);
    CHECK_EQ(fcntl(wfd, F_GETFL) & O_NONBLOCK, 0);
    char *data = make_data(0);

    for (int vectored = 0; vectored < 2; vectored++) {
        drainer dr;
        drainer_start(&dr, f.rfd, BIG);
        ssize_t n;
        if (!vectored) {
            call w = {.fd = wfd, .data = data};
            corio_task *t = corio_spawn(call_task, &w);
            CHECK_OK(corio_sleep_ms(50));
            CHECK(!w.done); /* the FIFO is full */
            atomic_store(&dr.go, true);
            CHECK_OK(corio_task_join(t, NULL));
            n = w.n;
        } else {
            /* pieces that straddle the pipe's pages */
            struct iovec iov[3] = {{data, 1000}, {data + 1000, 300000}, {data + 301000, BIG - 301000}};
            atomic_store(&dr.go, true);
            n = corio_file_writev(wfd, iov, 3);
        }
        CHECK_ERR(n, BIG);
        drainer_join(&dr);
        CHECK_EQ(dr.got, (size_t)BIG);
        CHECK_MEM(dr.buf, data, BIG);
        free(dr.buf);
    }

    /* On a non-blocking description a write returns once part went out,
     * as write(2) does. */
    CHECK_OK(fcntl(wfd, F_SETFL, O_NONBLOCK));
    ssize_t n = corio_file_write(wfd, data, BIG);
    CHECK(n > 0 && n < BIG);
    CHECK_OK(corio_file_close(wfd));
    fifo_remove(&f);
    free(data);
    return NULL;
}

TEST(blocking_fifo_write_bigger_than_the_pipe_completes) { run_small_pool(fifo_big_write_main, NULL); }
