/*
 * Child processes (src/io/process.c) with real programs (cat, sh, sleep):
 * pipes in every arrangement, exit codes and signals, spawn errors that
 * come from the spawn call itself, the fds a child gets (listed from
 * /proc/<child>/fd), environment and working directory, waits that are
 * cancelled or run out of time (the child stays reapable), signals to the
 * child and to its whole process group, communicate with 100 MB and with
 * both output pipes full at once, a child that closes its pipes early,
 * 1,000 children alive at once, and what freeing a running child does.
 */
#include "runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const CAT[] = {"cat", NULL};

/* Skip where pidfds are missing: a kernel before 5.3, or valgrind 3.19,
 * which knows no pidfd_open (and turns posix_spawn's vfork into a fork). */
static void need_pidfd(void)
{
    int fd = pidfd_open(getpid(), 0);
    if (fd < 0)
        SKIP("no pidfd_open here (old kernel, or valgrind)");
    close(fd);
}

static corio_process *spawn_argv(const char *const *argv, corio_stdio_kind in, corio_stdio_kind out,
                                 corio_stdio_kind err)
{
    corio_process_config cfg = {.argv = argv};
    cfg.stdio[0].kind = in;
    cfg.stdio[1].kind = out;
    cfg.stdio[2].kind = err;
    corio_process *p = NULL;
    CHECK_OK(corio_process_spawn(&cfg, &p));
    CHECK(p);
    return p;
}

static corio_process *spawn_sh(const char *cmd, corio_stdio_kind in, corio_stdio_kind out,
                               corio_stdio_kind err)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return spawn_argv(argv, in, out, err);
}

/* Close the child's stdin so it sees EOF. */
static void close_stdin(corio_process *p)
{
    corio_stream *s = corio_process_take_stream(p, 0);
    CHECK(s);
    CHECK_OK(corio_stream_aclose(s));
}

/* ---- basics ------------------------------------------------------------- */

static void *cat_roundtrip_main(void *arg)
{
    (void)arg;
    corio_process *p = spawn_argv(CAT, CORIO_STDIO_PIPE, CORIO_STDIO_PIPE, CORIO_STDIO_INHERIT);
    CHECK(corio_process_pid(p) > 0);
    CHECK(corio_process_stream(p, 0) && corio_process_stream(p, 1));
    CHECK(corio_process_stream(p, 2) == NULL);
    CHECK_OK(corio_stream_write(corio_process_stream(p, 0), "hello\n", 6));
    char line[64];
    CHECK_EQ(corio_stream_readline(corio_process_stream(p, 1), line, sizeof line), 6);
    CHECK_STR(line, "hello\n");
    corio_process_status st;
    CHECK_ERR(corio_process_try_wait(p, &st), -EAGAIN);
    CHECK_ERR(corio_process_status_get(p, &st), -EAGAIN);
    close_stdin(p);
    CHECK(corio_process_take_stream(p, 0) == NULL && errno == ENOENT);
    CHECK_EQ(corio_stream_read(corio_process_stream(p, 1), line, sizeof line), 0);
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, 0);
    CHECK_EQ(st.signal, 0);
    /* reaped: the status stays, signals find nobody */
    memset(&st, 0xff, sizeof st);
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, 0);
    CHECK_OK(corio_process_status_get(p, &st));
    CHECK_OK(corio_process_try_wait(p, NULL));
    CHECK_ERR(corio_process_kill(p), -ESRCH);
    corio_process_free(p);
    return NULL;
}

TEST(cat_roundtrip)
{
    need_pidfd();
    test_run(cat_roundtrip_main, NULL);
}

static void *exit_status_main(void *arg)
{
    (void)arg;
    corio_process_status st;
    corio_process *p = spawn_sh("exit 7", CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL);
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, 7);
    CHECK_EQ(st.signal, 0);
    CHECK_EQ(corio_process_status_code(&st), 7);
    corio_process_free(p);

    p = spawn_sh("kill -KILL $$", CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL);
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, -1);
    CHECK_EQ(st.signal, SIGKILL);
    CHECK(!st.core_dumped);
    CHECK_EQ(corio_process_status_code(&st), 128 + SIGKILL);
    corio_process_free(p);
    return NULL;
}

TEST(exit_status)
{
    need_pidfd();
    test_run(exit_status_main, NULL);
}

/* ---- spawn errors ------------------------------------------------------- */

static void *spawn_errors_main(void *arg)
{
    const char *dir = arg;
    corio_process *p = (corio_process *)1;
    const char *missing[] = {"/nonexistent/corio-no-such-program", NULL};
    corio_process_config cfg = {.argv = missing};
    CHECK_ERR(corio_process_spawn(&cfg, &p), -ENOENT);
    CHECK(p == NULL);
    const char *missing_path[] = {"corio-no-such-program-in-path", NULL};
    cfg.argv = missing_path;
    CHECK_ERR(corio_process_spawn(&cfg, &p), -ENOENT);

    /* a file without execute permission */
    char path[512];
    snprintf(path, sizeof path, "%s/not-executable", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "#!/bin/sh\nexit 0\n", 17) == 17);
    close(fd);
    const char *noexec[] = {path, NULL};
    cfg.argv = noexec;
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EACCES);
    unlink(path);

    /* a working directory that does not exist */
    cfg.argv = CAT;
    cfg.cwd = "/nonexistent/corio-dir";
    CHECK_ERR(corio_process_spawn(&cfg, &p), -ENOENT);
    cfg.cwd = NULL;

    /* bad configurations */
    cfg.stdio[0].kind = CORIO_STDIO_STDOUT;
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EINVAL);
    cfg.stdio[0].kind = 99;
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EINVAL);
    cfg.stdio[0].kind = CORIO_STDIO_FD;
    cfg.stdio[0].fd = 987;
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EBADF);
    cfg.stdio[0].kind = CORIO_STDIO_INHERIT;
    const char *empty[] = {NULL};
    cfg.argv = empty;
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EINVAL);
    cfg.argv = CAT;
    CHECK_ERR(corio_process_shell("true", &cfg, &p), -EINVAL);

    /* nothing was left behind: no child at all */
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);

    /* the shell finds no command: that is the shell's exit code */
    CHECK_OK(corio_process_shell("corio-no-such-command-xyz 2>/dev/null", NULL, &p));
    corio_process_status st;
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, 127);
    corio_process_free(p);
    return NULL;
}

TEST(spawn_errors)
{
    need_pidfd();
    char dir[] = "/tmp/corio-proc-XXXXXX";
    CHECK(mkdtemp(dir));
    test_run(spawn_errors_main, dir);
    rmdir(dir);
}

static void *spawn_outside_loop_check(void)
{
    corio_process *p = (corio_process *)1;
    corio_process_config cfg = {.argv = CAT};
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EPERM);
    CHECK(p == NULL);
    return NULL;
}

TEST(spawn_outside_loop) { spawn_outside_loop_check(); }

/* ---- environment, cwd, fds ---------------------------------------------- */

static void *env_cwd_main(void *arg)
{
    (void)arg;
    const char *argv[] = {"/bin/sh", "-c", "echo \"$FOO\"; pwd; echo \"${HOME-unset}\"", NULL};
    const char *env[] = {"FOO=bar baz", NULL};
    corio_process_config cfg = {.argv = argv, .env = env, .cwd = "/"};
    cfg.stdio[1].kind = CORIO_STDIO_PIPE;
    corio_process *p;
    CHECK_OK(corio_process_spawn(&cfg, &p));
    corio_process_output out;
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    CHECK_STR(out.out, "bar baz\n/\nunset\n");
    CHECK(out.err == NULL);
    CHECK_EQ(out.status.exit_code, 0);
    free(out.out);
    corio_process_free(p);

    /* NULL env: the parent's */
    setenv("CORIO_TEST_VAR", "inherited", 1);
    CHECK_OK(corio_process_shell("echo $CORIO_TEST_VAR",
                                 &(corio_process_config){.stdio[1].kind = CORIO_STDIO_PIPE}, &p));
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    CHECK_STR(out.out, "inherited\n");
    free(out.out);
    corio_process_free(p);
    return NULL;
}

TEST(env_cwd)
{
    need_pidfd();
    test_run(env_cwd_main, NULL);
}

/* The fd numbers open in process pid, as a sorted list "0 1 2". */
static void list_fds(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    CHECK(d);
    bool seen[256] = {false};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int n = atoi(e->d_name);
        CHECK(n >= 0 && n < 256);
        seen[n] = true;
    }
    closedir(d);
    buf[0] = '\0';
    for (int i = 0; i < 256; i++)
        if (seen[i])
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%d", buf[0] ? " " : "", i);
}

static void *child_fds_main(void *arg)
{
    (void)arg;
    /* an fd of the program's own without O_CLOEXEC, and other children
     * (their pidfds and pipes) around */
    int leak = open("/dev/null", O_RDONLY);
    CHECK(leak >= 3);
    corio_process *other = spawn_argv(CAT, CORIO_STDIO_PIPE, CORIO_STDIO_PIPE, CORIO_STDIO_PIPE);
    int extra[2];
    CHECK(pipe2(extra, O_CLOEXEC) == 0);

    for (int inherit = 0; inherit < 2; inherit++) {
        corio_process_config cfg = {
            .argv = CAT, .pass_fds = &extra[1], .n_pass_fds = 1, .inherit_fds = inherit};
        cfg.stdio[0].kind = CORIO_STDIO_PIPE;
        cfg.stdio[1].kind = CORIO_STDIO_PIPE;
        cfg.stdio[2].kind = CORIO_STDIO_DEVNULL;
        corio_process *p;
        CHECK_OK(corio_process_spawn(&cfg, &p));
        /* one line through it: cat is past its start-up and in its loop */
        CHECK_OK(corio_stream_write(corio_process_stream(p, 0), "x\n", 2));
        char line[16];
        CHECK_EQ(corio_stream_readline(corio_process_stream(p, 1), line, sizeof line), 2);
        char fds[512], want[512];
        list_fds(corio_process_pid(p), fds, sizeof fds);
        if (inherit) {
            /* 0-3, then every fd of ours without close-on-exec (the
             * leak, and any the test harness left us) */
            snprintf(want, sizeof want, "0 1 2 3");
            for (int fd = 4; fd < 256; fd++) {
                int fl = fcntl(fd, F_GETFD);
                if (fl >= 0 && !(fl & FD_CLOEXEC))
                    snprintf(want + strlen(want), sizeof want - strlen(want), " %d", fd);
            }
        } else
            snprintf(want, sizeof want, "0 1 2 3");
        CHECK_STR(fds, want);
        close_stdin(p);
        CHECK_OK(corio_process_wait(p, NULL));
        corio_process_free(p);
    }
    close(extra[0]);
    close(extra[1]);
    close(leak);
    corio_process_free(other); /* its stdin closes: it ends, reaped in the background */
    return NULL;
}

TEST(child_fds)
{
    need_pidfd();
    test_run(child_fds_main, NULL);
}

static void *pass_fds_main(void *arg)
{
    (void)arg;
    int a[2], b[2];
    CHECK(pipe2(a, O_CLOEXEC) == 0 && pipe2(b, O_CLOEXEC) == 0);
    /* pass_fds[i] is the child's 3 + i */
    const char *argv[] = {"/bin/sh", "-c", "echo three >&3; echo four >&4", NULL};
    int pass[] = {a[1], b[1]};
    corio_process_config cfg = {.argv = argv, .pass_fds = pass, .n_pass_fds = 2};
    corio_process *p;
    CHECK_OK(corio_process_spawn(&cfg, &p));
    corio_process_status st;
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, 0);
    corio_process_free(p);
    char buf[32];
    CHECK_EQ(read(a[0], buf, sizeof buf), 6);
    CHECK_MEM(buf, "three\n", 6);
    CHECK_EQ(read(b[0], buf, sizeof buf), 5);
    CHECK_MEM(buf, "four\n", 5);

    /* fds that sit on the targets' numbers: the child's stdout is our
     * fd 0's pipe ... arranged through swaps, still right */
    int saved0 = dup(0);
    CHECK(saved0 >= 0);
    CHECK(dup2(a[1], 0) == 0);
    const char *argv2[] = {"/bin/sh", "-c", "echo swapped", NULL};
    corio_process_config c2 = {.argv = argv2};
    c2.stdio[0].kind = CORIO_STDIO_DEVNULL;
    c2.stdio[1].kind = CORIO_STDIO_FD;
    c2.stdio[1].fd = 0;
    CHECK_OK(corio_process_spawn(&c2, &p));
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.exit_code, 0);
    corio_process_free(p);
    CHECK(dup2(saved0, 0) == 0);
    close(saved0);
    CHECK_EQ(read(a[0], buf, sizeof buf), 8);
    CHECK_MEM(buf, "swapped\n", 8);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    return NULL;
}

TEST(pass_fds)
{
    need_pidfd();
    test_run(pass_fds_main, NULL);
}

static void *stdio_kinds_main(void *arg)
{
    const char *dir = arg;
    /* stderr into stdout, in order */
    corio_process *p =
        spawn_sh("echo a; echo b >&2; echo c", CORIO_STDIO_DEVNULL, CORIO_STDIO_PIPE, CORIO_STDIO_STDOUT);
    corio_process_output out;
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    CHECK_STR(out.out, "a\nb\nc\n");
    CHECK(out.err == NULL);
    free(out.out);
    corio_process_free(p);

    /* /dev/null as stdin: cat ends at once, with nothing */
    p = spawn_argv(CAT, CORIO_STDIO_DEVNULL, CORIO_STDIO_PIPE, CORIO_STDIO_PIPE);
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    CHECK_STR(out.out, "");
    CHECK_STR(out.err, "");
    CHECK_EQ(out.out_len, 0);
    free(out.out);
    free(out.err);
    corio_process_free(p);

    /* stdout into a file the caller opened, which stays the caller's */
    char path[512];
    snprintf(path, sizeof path, "%s/out", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    const char *argv[] = {"/bin/sh", "-c", "echo to-file; echo also-file >&2", NULL};
    corio_process_config cfg = {.argv = argv};
    cfg.stdio[1] = (corio_stdio){CORIO_STDIO_FD, fd};
    cfg.stdio[2].kind = CORIO_STDIO_STDOUT;
    CHECK_OK(corio_process_spawn(&cfg, &p));
    CHECK_OK(corio_process_wait(p, NULL));
    corio_process_free(p);
    char buf[64];
    CHECK_EQ(pread(fd, buf, sizeof buf, 0), 18);
    CHECK_MEM(buf, "to-file\nalso-file\n", 18);
    close(fd);
    unlink(path);

    /* communicate with input needs a stdin pipe */
    p = spawn_argv(CAT, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL);
    CHECK_ERR(corio_process_communicate(p, "x", 1, &out), -EINVAL);
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    CHECK(out.out == NULL && out.err == NULL);
    corio_process_free(p);

    /* the shell variant */
    CHECK_OK(corio_process_shell("echo $((6 * 7))",
                                 &(corio_process_config){.stdio[1].kind = CORIO_STDIO_PIPE}, &p));
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    CHECK_STR(out.out, "42\n");
    free(out.out);
    corio_process_free(p);
    return NULL;
}

TEST(stdio_kinds)
{
    need_pidfd();
    char dir[] = "/tmp/corio-proc-XXXXXX";
    CHECK(mkdtemp(dir));
    test_run(stdio_kinds_main, dir);
    rmdir(dir);
}

/* ---- communicate -------------------------------------------------------- */

static void *communicate_big_main(void *arg)
{
    (void)arg;
    size_t n = TEST_SCALE((size_t)100 << 20);
    char *in = malloc(n);
    CHECK(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i * 7 + (i >> 12));
    /* everything through stdout, and a word on stderr at the end */
    corio_process *p = spawn_sh("cat; echo done >&2", CORIO_STDIO_PIPE, CORIO_STDIO_PIPE, CORIO_STDIO_PIPE);
    corio_process_output out;
    CHECK_OK(corio_process_communicate(p, in, n, &out));
    CHECK_EQ(out.out_len, n);
    CHECK(memcmp(out.out, in, n) == 0);
    CHECK_STR(out.err, "done\n");
    CHECK_EQ(out.status.exit_code, 0);
    free(out.out);
    free(out.err);
    corio_process_free(p);
    free(in);
    return NULL;
}

TEST(communicate_100mb)
{
    need_pidfd();
    test_run(communicate_big_main, NULL);
}

/* A child that fills stderr before it reads anything, then echoes stdin:
 * done one after the other, both sides would wait for ever. */
static void *communicate_both_full_main(void *arg)
{
    (void)arg;
    size_t n = 8u << 20;
    char *in = malloc(n);
    CHECK(in);
    memset(in, 'i', n);
    corio_process *p =
        spawn_sh("head -c 8388608 /dev/zero >&2; cat", CORIO_STDIO_PIPE, CORIO_STDIO_PIPE, CORIO_STDIO_PIPE);
    corio_process_output out;
    CHECK_OK(corio_process_communicate(p, in, n, &out));
    CHECK_EQ(out.out_len, n);
    CHECK_EQ(out.err_len, n);
    CHECK(memcmp(out.out, in, n) == 0);
    for (size_t i = 0; i < n; i++)
        CHECK(out.err[i] == 0);
    free(out.out);
    free(out.err);
    corio_process_free(p);
    free(in);
    return NULL;
}

TEST(communicate_both_full)
{
    need_pidfd();
    test_run(communicate_both_full_main, NULL);
}

/* The child closes its stdin and stdout and lives on: its stdout reads
 * EOF, a write to its stdin fails with -EPIPE (no SIGPIPE), and
 * communicate does not call that an error. */
static void *closed_early_main(void *arg)
{
    (void)arg;
    corio_process *p = spawn_sh("exec 0<&- 1>&-; echo closed >&2; exec sleep 1000", CORIO_STDIO_PIPE,
                                CORIO_STDIO_PIPE, CORIO_STDIO_PIPE);
    char line[32];
    CHECK_EQ(corio_stream_readline(corio_process_stream(p, 2), line, sizeof line), 7);
    CHECK_STR(line, "closed\n");
    CHECK_EQ(corio_stream_read(corio_process_stream(p, 1), line, sizeof line), 0);
    corio_stream *in = corio_process_stream(p, 0);
    int r = corio_stream_write(in, "data\n", 5);
    if (r == 0)
        r = corio_stream_drain(in);
    CHECK_ERR(r, -EPIPE);
    CHECK_OK(corio_process_kill(p));
    corio_process_status st;
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.signal, SIGKILL);
    corio_process_free(p);

    /* communicate: input the child never reads */
    p = spawn_sh("exec 0<&-; echo gone", CORIO_STDIO_PIPE, CORIO_STDIO_PIPE, CORIO_STDIO_INHERIT);
    static char big[1 << 20];
    corio_process_output out;
    CHECK_OK(corio_process_communicate(p, big, sizeof big, &out));
    CHECK_STR(out.out, "gone\n");
    CHECK_EQ(out.status.exit_code, 0);
    free(out.out);
    corio_process_free(p);
    return NULL;
}

TEST(closed_early)
{
    need_pidfd();
    test_run(closed_early_main, NULL);
}

/* ---- waits: cancelled, deadlines --------------------------------------- */

typedef struct waiter {
    corio_process *p;
    int r;
    corio_process_status st;
} waiter;

static void *wait_task(void *arg)
{
    waiter *w = arg;
    w->r = corio_process_wait(w->p, &w->st);
    return NULL;
}

static void *wait_interrupted_main(void *arg)
{
    (void)arg;
    corio_process *p = spawn_argv(CAT, CORIO_STDIO_PIPE, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL);
    /* cancelled while waiting */
    waiter w = {.p = p, .r = 1};
    corio_task *t = corio_spawn(wait_task, &w);
    CHECK(t);
    CHECK_OK(corio_yield());
    CHECK_EQ(w.r, 1); /* parked */
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(w.r, -ECANCELED);
    /* a timeout, and the task's own deadline */
    CHECK_ERR(corio_process_wait_for(p, 0, NULL), -CORIO_EDEADLINE);
    CHECK_ERR(corio_process_wait_for(p, 20, NULL), -CORIO_EDEADLINE);
    corio_deadline d = corio_deadline_push(20);
    CHECK_ERR(corio_process_wait(p, NULL), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_ERR(corio_process_try_wait(p, NULL), -EAGAIN);
    /* still there, and reapable: two waiters at once both see the end */
    waiter w1 = {.p = p, .r = 1}, w2 = {.p = p, .r = 1};
    corio_task *t1 = corio_spawn(wait_task, &w1), *t2 = corio_spawn(wait_task, &w2);
    CHECK(t1 && t2);
    CHECK_OK(corio_yield());
    close_stdin(p);
    corio_process_status st;
    CHECK_OK(corio_process_wait_for(p, CORIO_NO_TIMEOUT, &st));
    CHECK_EQ(st.exit_code, 0);
    CHECK_OK(corio_task_join(t1, NULL));
    CHECK_OK(corio_task_join(t2, NULL));
    CHECK_OK(w1.r);
    CHECK_OK(w2.r);
    CHECK_EQ(w1.st.exit_code, 0);
    CHECK_EQ(w2.st.exit_code, 0);
    corio_process_free(p);
    return NULL;
}

TEST(wait_interrupted)
{
    need_pidfd();
    test_run(wait_interrupted_main, NULL);
}

/* ---- signals ------------------------------------------------------------ */

static void *ignores_sigterm_main(void *arg)
{
    (void)arg;
    corio_process *p = spawn_sh("trap '' TERM; echo ready; exec cat", CORIO_STDIO_PIPE, CORIO_STDIO_PIPE,
                                CORIO_STDIO_INHERIT);
    char line[16];
    CHECK_EQ(corio_stream_readline(corio_process_stream(p, 1), line, sizeof line), 6);
    CHECK_OK(corio_process_terminate(p));
    /* it lives on: a line still goes through after the SIGTERM */
    CHECK_OK(corio_stream_write(corio_process_stream(p, 0), "alive\n", 6));
    CHECK_EQ(corio_stream_readline(corio_process_stream(p, 1), line, sizeof line), 6);
    CHECK_STR(line, "alive\n");
    CHECK_ERR(corio_process_try_wait(p, NULL), -EAGAIN);
    /* then the kill, as asyncio's terminate-wait-kill pattern does */
    CHECK_ERR(corio_process_wait_for(p, 50, NULL), -CORIO_EDEADLINE);
    CHECK_OK(corio_process_kill(p));
    corio_process_status st;
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.signal, SIGKILL);
    CHECK_EQ(corio_process_status_code(&st), 137);
    CHECK_ERR(corio_process_send_signal(p, SIGTERM), -ESRCH);
    corio_process_free(p);

    /* a plain child dies of SIGTERM */
    p = spawn_argv(CAT, CORIO_STDIO_PIPE, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL);
    CHECK_OK(corio_process_send_signal(p, SIGTERM));
    CHECK_OK(corio_process_wait(p, &st));
    CHECK_EQ(st.signal, SIGTERM);
    CHECK_ERR(corio_process_signal_group(p, SIGTERM), -EINVAL); /* not its own group */
    corio_process_free(p);
    return NULL;
}

TEST(ignores_sigterm)
{
    need_pidfd();
    test_run(ignores_sigterm_main, NULL);
}

static void *group_kill_main(void *arg)
{
    (void)arg;
    for (int session = 0; session < 2; session++) {
        const char *argv[] = {"/bin/sh", "-c", "sleep 1000 & echo $!; wait", NULL};
        corio_process_config cfg = {.argv = argv, .new_process_group = !session, .new_session = session};
        cfg.stdio[1].kind = CORIO_STDIO_PIPE;
        corio_process *p;
        CHECK_OK(corio_process_spawn(&cfg, &p));
        pid_t pid = corio_process_pid(p);
        CHECK_EQ(getpgid(pid), pid);
        if (session)
            CHECK_EQ(getsid(pid), pid);
        else
            CHECK(getsid(pid) == getsid(0));
        char line[32];
        CHECK(corio_stream_readline(corio_process_stream(p, 1), line, sizeof line) > 1);
        pid_t grandchild = atoi(line);
        CHECK(grandchild > 0);
        int gfd = pidfd_open(grandchild, 0);
        CHECK(gfd >= 0);
        CHECK_EQ(getpgid(grandchild), pid);
        CHECK_OK(corio_process_signal_group(p, SIGKILL));
        corio_process_status st;
        CHECK_OK(corio_process_wait(p, &st));
        CHECK_EQ(st.signal, SIGKILL);
        /* the grandchild died too (its pidfd turns readable when it exits) */
        struct pollfd pf = {.fd = gfd, .events = POLLIN};
        CHECK_EQ(poll(&pf, 1, 30000), 1);
        close(gfd);
        corio_process_free(p);
    }
    return NULL;
}

TEST(group_kill)
{
    need_pidfd();
    test_run(group_kill_main, NULL);
}

/* ---- many children ------------------------------------------------------ */

static void *many_wait(void *arg)
{
    waiter *w = arg;
    w->r = corio_process_wait(w->p, &w->st);
    return w->r ? corio_fail(w->r) : NULL;
}

static void *many_children_main(void *arg)
{
    (void)arg;
    size_t n = TEST_SCALE(1000);
    /* every child reads one shared pipe: none can end before its write
     * end closes, so all n are alive at once */
    int gate[2];
    CHECK(pipe2(gate, O_CLOEXEC) == 0);
    waiter *w = calloc(n, sizeof *w);
    CHECK(w);
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    for (size_t i = 0; i < n; i++) {
        corio_process_config cfg = {.argv = CAT};
        cfg.stdio[0] = (corio_stdio){CORIO_STDIO_FD, gate[0]};
        cfg.stdio[1].kind = CORIO_STDIO_DEVNULL;
        CHECK_OK(corio_process_spawn(&cfg, &w[i].p));
        w[i].r = 1;
        CHECK(corio_group_spawn(&g, many_wait, &w[i]));
    }
    CHECK_OK(corio_yield());
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(w[i].r, 1);
        CHECK_ERR(corio_process_try_wait(w[i].p, NULL), -EAGAIN);
    }
    close(gate[0]);
    close(gate[1]);
    CHECK_OK(corio_group_join(&g));
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(w[i].r);
        CHECK_EQ(w[i].st.exit_code, 0);
        corio_process_free(w[i].p);
    }
    free(w);
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    return NULL;
}

TEST(many_children)
{
    need_pidfd();
    test_run(many_children_main, NULL);
}

/* ---- free --------------------------------------------------------------- */

/* Wait (bounded) until pid is gone altogether: neither running nor a zombie. */
static void wait_gone(pid_t pid)
{
    for (int i = 0; i < 30000 && kill(pid, 0) == 0; i++)
        CHECK_OK(corio_sleep_ms(1));
    CHECK(kill(pid, 0) < 0 && errno == ESRCH);
}

static void *free_running_main(void *arg)
{
    (void)arg;
    /* kill_on_free: killed, then reaped in the background */
    corio_process_config cfg = {.argv = (const char *const[]){"sleep", "1000", NULL}, .kill_on_free = true};
    corio_process *p;
    CHECK_OK(corio_process_spawn(&cfg, &p));
    pid_t pid = corio_process_pid(p);
    corio_process_free(p);
    wait_gone(pid);

    /* default: left running; here it ends when its stdin closes (free
     * closes the pipe), and is reaped too */
    p = spawn_argv(CAT, CORIO_STDIO_PIPE, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL);
    pid = corio_process_pid(p);
    corio_process_free(p);
    wait_gone(pid);

    /* left running past the loop's end: the reaper is cancelled then */
    p = spawn_argv((const char *const[]){"sleep", "1000", NULL}, CORIO_STDIO_DEVNULL, CORIO_STDIO_DEVNULL,
                   CORIO_STDIO_DEVNULL);
    pid = corio_process_pid(p);
    corio_process_free(p);
    CHECK(kill(pid, 0) == 0);
    return (void *)(intptr_t)pid;
}

TEST(free_running)
{
    need_pidfd();
    pid_t pid = (pid_t)(intptr_t)test_run(free_running_main, NULL);
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(waitpid(pid, NULL, 0) == pid);
}

/* ---- the child's signal state ------------------------------------------ */

/* Nothing blocked (the loop thread blocks SIGPIPE while it runs), SIGPIPE
 * at its default even when the program ignores it, other ignored signals
 * still ignored (exec's rule), as Python and Rust start children. */
static void *signal_state_main(void *arg)
{
    (void)arg;
    const char *argv[] = {"grep", "^Sig[BI]", "/proc/self/status", NULL};
    corio_process_config cfg = {.argv = argv};
    cfg.stdio[1].kind = CORIO_STDIO_PIPE;
    corio_process *p;
    CHECK_OK(corio_process_spawn(&cfg, &p));
    corio_process_output out;
    CHECK_OK(corio_process_communicate(p, NULL, 0, &out));
    unsigned long long blk = 1, ign = 0;
    CHECK_EQ(sscanf(out.out, "SigBlk:\t%llx\nSigIgn:\t%llx\n", &blk, &ign), 2);
    CHECK_EQ(blk, 0);
    /* signals 1-31 only: glibc's posix_spawn ignores its own internal
     * signals (32, 33) in the child, whose glibc installs them again */
    CHECK_EQ(ign & 0x7fffffffull, 1ull << (SIGUSR1 - 1));
    free(out.out);
    corio_process_free(p);
    return NULL;
}

TEST(signal_state)
{
    need_pidfd();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    test_run(signal_state_main, NULL);
}

/* SIGCHLD ignored: the kernel reaps children itself, so there is no
 * status to collect; corio says -ECHILD rather than hang or invent one. */
static void *sigchld_ignored_main(void *arg)
{
    (void)arg;
    corio_process *p = NULL;
    corio_process_config cfg = {.argv = (const char *const[]){"/bin/sh", "-c", "exit 3", NULL}};
    int r = corio_process_spawn(&cfg, &p);
    if (r == 0) {
        r = corio_process_wait(p, NULL);
        corio_process_free(p);
    }
    CHECK_ERR(r, -ECHILD);
    return NULL;
}

TEST(sigchld_ignored)
{
    need_pidfd();
    signal(SIGCHLD, SIG_IGN);
    test_run(sigchld_ignored_main, NULL);
}

/* ---- failures leave nothing behind -------------------------------------- */

#include "failinject.h"

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void *failures_main(void *arg)
{
    (void)arg;
    corio_process_config cfg = {.argv = CAT};
    for (int i = 0; i < 3; i++)
        cfg.stdio[i].kind = CORIO_STDIO_PIPE;
    corio_process *p = (corio_process *)1;
    int before = count_fds();
    corio_fi_fail_next("malloc", 1);
    CHECK_ERR(corio_process_spawn(&cfg, &p), -ENOMEM);
    CHECK(p == NULL);
    for (long k = 1; k <= 3; k++) { /* the first, second, third pipe */
        corio_fi_fail_next("pipe2", k);
        CHECK_ERR(corio_process_spawn(&cfg, &p), -EMFILE);
        corio_fi_fail_next("pipe2", 0);
    }
    CHECK_EQ(count_fds(), before);
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD); /* no child was started */

    /* communicate runs out of memory: an error, nothing allocated; the
     * child can still be waited for */
    CHECK_OK(corio_process_spawn(&cfg, &p));
    corio_fi_fail_next("realloc", 1);
    corio_process_output out;
    CHECK_ERR(corio_process_communicate(p, "abc", 3, &out), -ENOMEM);
    CHECK(out.out == NULL && out.err == NULL);
    corio_process_status st;
    CHECK_OK(corio_process_wait(p, &st));
    corio_process_free(p);
    CHECK_EQ(count_fds(), before);
    return NULL;
}

TEST(failures_leave_nothing)
{
    need_pidfd();
    test_run(failures_main, NULL);
}
