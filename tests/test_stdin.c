/*
 * Streams over standard input and other non-socket fds (issue 3): a task
 * awaits a line from the user while other tasks run, whether stdin is a
 * pipe, a tty (a pty here), a regular file or /dev/null.
 */
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <sys/wait.h>
#include <unistd.h>

static int ticks;

/* The "user" (a child process) types once the ticker has ticked 5 times
 * while the read waits: the event, not a guess at how fast a loaded
 * machine ticks.  -1: nobody waits for it. */
static int go_fd = -1;

static void *ticker(void *arg)
{
    while (corio_sleep_ms(2) == 0)
        if (++ticks == 5 && go_fd >= 0)
            CHECK(write(go_fd, "g", 1) == 1);
    return NULL;
}

/* In the child: wait for the parent's ticker (at most 30 s: a loop that
 * does not tick then fails the ticks check instead of hanging). */
static void wait_for_go(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 30000);
}

typedef struct line_result {
    char line[256];
    ssize_t n;
    int ticks_while_waiting;
} line_result;

/* Read one line from stdin while a ticker runs. */
static void *read_line_main(void *arg)
{
    line_result *lr = arg;
    ticks = 0;
    corio_task *t = corio_spawn(ticker, NULL);
    corio_stream *in = corio_stream_stdin();
    CHECK(in);
    lr->n = corio_stream_readline(in, lr->line, sizeof lr->line);
    lr->ticks_while_waiting = ticks;
    corio_stream_close(in);
    corio_task_cancel(t);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

static void redirect_stdin(int fd)
{
    CHECK(dup2(fd, STDIN_FILENO) == STDIN_FILENO);
    close(fd);
}

TEST(stdin_pipe_line_arrives_while_others_run)
{
    int p[2], go[2];
    CHECK_OK(pipe(p));
    CHECK_OK(pipe(go));
    redirect_stdin(p[0]);
    pid_t pid = fork();
    if (pid == 0) {
        wait_for_go(go[0]); /* the user types after a while */
        CHECK(write(p[1], "hello from the pipe\nsecond\n", 27) == 27);
        _exit(0);
    }
    close(p[1]);
    go_fd = go[1];
    line_result lr = {0};
    test_run(read_line_main, &lr);
    CHECK_EQ(lr.n, 20);
    CHECK_STR(lr.line, "hello from the pipe\n");
    CHECK(lr.ticks_while_waiting >= 5); /* the loop kept running other tasks */
    /* stdin's file description is shared with the parent shell: left blocking */
    CHECK_EQ(fcntl(STDIN_FILENO, F_GETFL) & O_NONBLOCK, 0);
}

TEST(stdin_tty_line_arrives_while_others_run)
{
    int master, slave;
    if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
        SKIP("no pty available");
    int go[2];
    CHECK_OK(pipe(go));
    redirect_stdin(slave);
    pid_t pid = fork();
    if (pid == 0) {
        wait_for_go(go[0]);
        CHECK(write(master, "typed line\n", 11) == 11);
        usleep(200 * 1000);
        _exit(0);
    }
    go_fd = go[1];
    line_result lr = {0};
    test_run(read_line_main, &lr);
    CHECK_STR(lr.line, "typed line\n");
    CHECK_EQ(lr.n, 11);
    CHECK(lr.ticks_while_waiting >= 5);
    CHECK_EQ(fcntl(STDIN_FILENO, F_GETFL) & O_NONBLOCK, 0);
    close(master);
}

TEST(stdin_regular_file_reads_lines_then_eof)
{
    char path[] = "/tmp/corio-stdin-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "one\ntwo\nlast-without-newline", 28) == 28);
    lseek(fd, 0, SEEK_SET);
    unlink(path);
    redirect_stdin(fd);
    line_result lr = {0};
    test_run(read_line_main, &lr);
    CHECK_STR(lr.line, "one\n");
}

static void *read_all_main(void *arg)
{
    corio_stream *in = corio_stream_stdin();
    CHECK(in);
    char buf[64];
    ssize_t n;
    size_t total = 0;
    while ((n = corio_stream_read(in, buf, sizeof buf)) > 0)
        total += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK(corio_stream_at_eof(in));
    corio_stream_close(in);
    return (void *)total;
}

TEST(stdin_dev_null_is_eof_at_once)
{
    int fd = open("/dev/null", O_RDONLY);
    CHECK(fd >= 0);
    redirect_stdin(fd);
    CHECK(test_run(read_all_main, NULL) == (void *)0);
}

TEST(stdin_regular_file_read_to_eof_exact_bytes)
{
    char path[] = "/tmp/corio-stdin-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    static char data[300000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    CHECK(write(fd, data, sizeof data) == (ssize_t)sizeof data);
    lseek(fd, 0, SEEK_SET);
    unlink(path);
    redirect_stdin(fd);
    CHECK(test_run(read_all_main, NULL) == (void *)sizeof data);
}

static void *cancel_stdin_main(void *arg)
{
    corio_stream *in = corio_stream_stdin();
    CHECK(in);
    char line[64];
    corio_deadline d = corio_deadline_push(30);
    CHECK_ERR(corio_stream_readline(in, line, sizeof line), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    corio_stream_close(in);
    return NULL;
}

TEST(stdin_read_honours_deadline_when_nothing_is_typed)
{
    int p[2];
    CHECK_OK(pipe(p));
    redirect_stdin(p[0]);
    test_run(cancel_stdin_main, NULL);
    close(p[1]);
}

static void *pipe_write_main(void *arg)
{
    int *p = arg;
    corio_stream *out = corio_stream_from_fd(p[1]);
    CHECK(out);
    CHECK_OK(corio_stream_write(out, "to the pipe\n", 12));
    CHECK_OK(corio_stream_drain(out));
    CHECK_OK(corio_stream_aclose(out));
    return NULL;
}

TEST(stream_over_a_pipe_writes)
{
    int p[2];
    CHECK_OK(pipe(p));
    test_run(pipe_write_main, p);
    char buf[32] = {0};
    CHECK_EQ(read(p[0], buf, sizeof buf), 12);
    CHECK_STR(buf, "to the pipe\n");
    CHECK_EQ(read(p[0], buf, sizeof buf), 0); /* the stream closed its end */
    close(p[0]);
}

static void *pipe_big_write_main(void *arg)
{
    int *p = arg;
    corio_stream *out = corio_stream_from_fd(p[1]);
    CHECK(out);
    static char data[1 << 20];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 13 + 1);
    CHECK_OK(corio_stream_write(out, data, sizeof data)); /* far more than a pipe holds */
    CHECK(corio_stream_write_buffer_size(out) > 0);
    CHECK_OK(corio_stream_drain(out));
    CHECK_OK(corio_stream_write_eof(out)); /* flush only: a pipe has no half-close */
    CHECK_ERR(corio_stream_write(out, "x", 1), -EPIPE);
    CHECK_OK(corio_stream_aclose(out));
    return NULL;
}

TEST(stream_over_a_pipe_waits_for_a_slow_reader)
{
    int p[2];
    CHECK_OK(pipe(p));
    pid_t pid = fork();
    if (pid == 0) {
        close(p[1]);
        static char buf[1 << 20];
        size_t got = 0;
        ssize_t n;
        usleep(20 * 1000);
        while ((n = read(p[0], buf + got, 8192 < sizeof buf - got ? 8192 : sizeof buf - got)) > 0) {
            got += (size_t)n;
            if (got % (64 * 1024) < 8192)
                usleep(1000);
        }
        if (got != sizeof buf)
            _exit(2);
        for (size_t i = 0; i < got; i++)
            if (buf[i] != (char)(i * 13 + 1))
                _exit(3);
        _exit(0);
    }
    close(p[0]);
    test_run(pipe_big_write_main, p);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

/* A tty knows no RWF_NOWAIT, and its file description is shared (stdout
 * with the shell), so O_NONBLOCK cannot be set on it: a big write to a
 * terminal nobody reads (scrolled back, stopped with ^S, a hung ssh) must
 * still leave the loop running. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define TTY_BIG (256 * 1024)

static atomic_bool reader_go;
static bool reader_fallback_used;

static void *slow_reader(void *arg)
{
    int master = *(int *)arg;
    for (int i = 0; i < 1000 && !atomic_load(&reader_go); i++)
        usleep(1000);
    reader_fallback_used = !atomic_load(&reader_go);
    static char buf[TTY_BIG];
    size_t got = 0;
    while (got < TTY_BIG) {
        ssize_t n = read(master, buf + got, TTY_BIG - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    for (size_t i = 0; i < got; i++)
        if (buf[i] != (char)('a' + i % 26))
            return (void *)-1;
    return (void *)got;
}

static void *join_it(void *arg)
{
    void *res = NULL;
    pthread_join(*(pthread_t *)arg, &res);
    return res;
}

static void *big_write_main(void *arg)
{
    int *fds = arg; /* the side a slow thread reads, the side the stream writes */
    ticks = 0;
    corio_task *t = corio_spawn(ticker, NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, slow_reader, &fds[0]), 0);
    corio_stream *out = corio_stream_from_fd(fds[1]);
    CHECK(out);
    static char data[TTY_BIG];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    CHECK_OK(corio_stream_write(out, data, sizeof data));
    int before = ticks;
    /* nobody reads the terminal yet, and the loop keeps ticking (waiting
     * for the ticks themselves, with a ceiling far above their 2 ms) */
    uint64_t t0 = test_ms();
    while (ticks - before < 5 && test_ms() - t0 < 30000)
        CHECK_OK(corio_sleep_ms(2));
    CHECK(ticks - before >= 5);
    atomic_store(&reader_go, true);
    CHECK_OK(corio_stream_aclose(out));
    void *got = NULL;
    CHECK_OK(corio_to_thread(join_it, &th, &got));
    CHECK_EQ((intptr_t)got, TTY_BIG);
    CHECK(!reader_fallback_used); /* the loop was never stuck in write() */
    corio_task_cancel(t);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

TEST(stream_over_a_tty_big_write_does_not_block_the_loop)
{
    int fds[2];
    struct termios tio;
    if (openpty(&fds[0], &fds[1], NULL, NULL, NULL) < 0)
        SKIP("no pty available");
    CHECK_OK(tcgetattr(fds[1], &tio));
    cfmakeraw(&tio); /* bytes through unchanged */
    CHECK_OK(tcsetattr(fds[1], TCSANOW, &tio));
    alarm(20);
    test_run(big_write_main, fds);
    /* the slave's description is left as it was */
    close(fds[0]);
}

/* Closing a pipe stream while another task is parked reading it: the reader
 * gets an error (the stream is gone, not touched again), and the fd is
 * closed once, after the poll has let go of it. */
typedef struct close_race {
    corio_stream *s;
    ssize_t r;
    bool done;
} close_race;

static void *parked_reader(void *arg)
{
    close_race *c = arg;
    char buf[64];
    c->r = corio_stream_read(c->s, buf, sizeof buf);
    c->done = true;
    return NULL;
}

static void *close_parked_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK_OK(pipe(p));
    close_race c = {0};
    c.s = corio_stream_from_fd(p[0]);
    CHECK(c.s);
    corio_task *t = corio_spawn(parked_reader, &c);
    CHECK_OK(corio_sleep_ms(10)); /* parked in the poll */
    CHECK(!c.done);
    corio_stream_close(c.s);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK(c.done);
    CHECK(c.r < 0);
    CHECK(fcntl(p[0], F_GETFD) < 0); /* closed */
    close(p[1]);
    return NULL;
}

TEST(pipe_stream_closed_while_a_reader_is_parked) { test_run(close_parked_main, NULL); }

/* As for a tty above, for a named FIFO opened blocking (no RWF_NOWAIT
 * either): a write bigger than the pipe leaves the loop running while the
 * reader is slow, and every byte arrives in order. */
#include <sys/stat.h>

TEST(stream_over_a_named_fifo_big_write_does_not_block_the_loop)
{
    char dir[] = "/tmp/corio-fifo.XXXXXX", path[64];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/f", dir);
    CHECK_OK(mkfifo(path, 0600));
    int fds[2];
    fds[0] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* so the writer's open does not wait */
    CHECK(fds[0] >= 0);
    fds[1] = open(path, O_WRONLY | O_CLOEXEC); /* a blocking description */
    CHECK(fds[1] >= 0);
    CHECK_OK(fcntl(fds[0], F_SETFL, 0)); /* the reader thread blocks */
    alarm(20);
    test_run(big_write_main, fds);
    close(fds[0]);
    unlink(path);
    rmdir(dir);
}
