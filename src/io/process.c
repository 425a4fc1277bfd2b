/*
 * Child processes as objects a task can wait on (asyncio's
 * create_subprocess_exec, tokio::process).
 *
 * Spawning is glibc's posix_spawn: a clone(CLONE_VM|CLONE_VFORK) on a small
 * stack of its own, so nothing of the parent's address space is copied
 * however large it is, and an exec failure comes back as the call's own
 * error (the child writes errno into the shared memory before it exits),
 * so -ENOENT / -EACCES are the spawn's result, never an exit code 127.
 * The child's fds are set up by file actions; every source fd that could
 * collide with a target number (0..2+n_pass) is first copied above them,
 * so any arrangement (stdin from fd 1, stdout into fd 0...) comes out
 * right.  Everything corio opens is close-on-exec, and by default every
 * other fd above the targets is closed too (closefrom, one close_range).
 *
 * Exit notification is a pidfd (pidfd_open right after the spawn; nobody
 * else may reap our child in between, see the contract in corio.h): it
 * polls readable once the child has exited, and the loop waits for that
 * with the ordinary POLL op on either backend.  The child is then reaped
 * with waitid(P_PIDFD), which can only ever touch this child.  No SIGCHLD
 * handler, no thread per child, and signals go through pidfd_send_signal
 * so a recycled pid is never hit.
 *
 * A process freed while its child still runs hands the pidfd to a small
 * detached reaper task, so no zombie is left behind as long as the loop
 * runs.  communicate() runs the stdin writer and the stderr reader as
 * group members next to the caller, which reads stdout: the three proceed
 * concurrently, so no pipe can fill up and block the others.
 */
#define _GNU_SOURCE 1
#include "../core/internal.h"
#include "sys.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct corio_process {
    corio_loop *loop;
    pid_t pid;
    int pidfd;        /* -1 once closed (reaped and no waiter left) */
    unsigned waiters; /* tasks with a POLL op on pidfd */
    bool own_group;   /* leader of its own process group */
    bool kill_on_free;
    bool reaped;
    corio_process_status st;
    corio_stream *streams[3];
};

/* ------------------------------------------------------------------ */
/* Reaping                                                             */
/* ------------------------------------------------------------------ */

static void close_pidfd(corio_process *p)
{
    if (p->pidfd < 0)
        return;
    corio_loop *l = corio__loop();
    corio__close_fd(l == p->loop ? l : NULL, p->pidfd);
    p->pidfd = -1;
}

static void status_from(const siginfo_t *si, corio_process_status *st)
{
    memset(st, 0, sizeof *st);
    if (si->si_code == CLD_EXITED) {
        st->exit_code = si->si_status;
    } else {
        st->exit_code = -1;
        st->signal = si->si_status;
        st->core_dumped = si->si_code == CLD_DUMPED;
    }
}

/* waitid on the pidfd: 0 (reaped, p->st set), -EAGAIN while it runs,
 * -errno. */
static int reap(corio_process *p, int options)
{
    if (p->reaped)
        return 0;
    if (p->pidfd < 0)
        return -ECHILD;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do
        r = waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | options);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (si.si_pid == 0)
        return -EAGAIN;
    status_from(&si, &p->st);
    p->reaped = true;
    if (p->waiters == 0)
        close_pidfd(p);
    return 0;
}

static void give_status(const corio_process *p, corio_process_status *st)
{
    if (st)
        *st = p->st;
}

/* The waiting itself, once corio__check passed. */
static int wait_loop(corio_process *p, corio_process_status *st)
{
    for (;;) {
        int r = reap(p, WNOHANG);
        if (r != -EAGAIN) {
            if (r == 0)
                give_status(p, st);
            return r;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_POLL;
        op.fd = p->pidfd;
        op.flags = POLLIN;
        op.off = -1;
        p->waiters++;
        r = corio__op_run(&op);
        p->waiters--;
        if (p->reaped && p->waiters == 0)
            close_pidfd(p);
        if (r < 0)
            return r;
    }
}

int corio_process_wait(corio_process *p, corio_process_status *st)
{
    if (!p)
        return -EINVAL;
    int r = corio__check();
    if (r)
        return r;
    return wait_loop(p, st);
}

int corio_process_wait_for(corio_process *p, uint64_t timeout_ms, corio_process_status *st)
{
    if (!p)
        return -EINVAL;
    int r = corio__check();
    if (r)
        return r;
    r = reap(p, WNOHANG);
    if (r != -EAGAIN) {
        if (r == 0)
            give_status(p, st);
        return r;
    }
    if (timeout_ms == 0)
        return -CORIO_EDEADLINE;
    if (timeout_ms == CORIO_NO_TIMEOUT)
        return wait_loop(p, st);
    corio_deadline d = corio_deadline_push(timeout_ms);
    r = wait_loop(p, st);
    corio_deadline_pop(d);
    return r;
}

int corio_process_try_wait(corio_process *p, corio_process_status *st)
{
    if (!p)
        return -EINVAL;
    int r = reap(p, WNOHANG);
    if (r == 0)
        give_status(p, st);
    return r;
}

int corio_process_status_get(const corio_process *p, corio_process_status *st)
{
    if (!p)
        return -EINVAL;
    if (!p->reaped)
        return -EAGAIN;
    give_status(p, st);
    return 0;
}

int corio_process_status_code(const corio_process_status *st)
{
    if (!st)
        return -EINVAL;
    return st->signal ? 128 + st->signal : st->exit_code;
}

/* ------------------------------------------------------------------ */
/* Signals                                                             */
/* ------------------------------------------------------------------ */

int corio_process_send_signal(corio_process *p, int sig)
{
    if (!p)
        return -EINVAL;
    if (p->reaped || p->pidfd < 0)
        return -ESRCH;
    return pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int corio_process_terminate(corio_process *p) { return corio_process_send_signal(p, SIGTERM); }

int corio_process_kill(corio_process *p) { return corio_process_send_signal(p, SIGKILL); }

int corio_process_signal_group(corio_process *p, int sig)
{
    if (!p || !p->own_group)
        return -EINVAL;
    return killpg(p->pid, sig) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------ */
/* Spawning                                                            */
/* ------------------------------------------------------------------ */

pid_t corio_process_pid(const corio_process *p) { return p ? p->pid : 0; }

corio_stream *corio_process_stream(corio_process *p, int child_fd)
{
    if (!p || child_fd < 0 || child_fd > 2) {
        errno = EINVAL;
        return NULL;
    }
    return p->streams[child_fd];
}

corio_stream *corio_process_take_stream(corio_process *p, int child_fd)
{
    corio_stream *s = corio_process_stream(p, child_fd);
    if (!p || child_fd < 0 || child_fd > 2)
        return NULL;
    if (!s) {
        errno = ENOENT;
        return NULL;
    }
    p->streams[child_fd] = NULL;
    return s;
}

/* The fds a spawn opens in the parent, closed whatever happens. */
typedef struct spawn_fds {
    int tmp[64]; /* child ends of pipes and copies made to dodge targets */
    size_t ntmp;
} spawn_fds;

static void close_tmp(spawn_fds *f)
{
    for (size_t i = 0; i < f->ntmp; i++)
        close(f->tmp[i]);
    f->ntmp = 0;
}

/* A source fd for target slot low-bound `low`: if src could be clobbered
 * by (or is itself) one of the targets 0..low-1, use a close-on-exec copy
 * at or above low instead.  Returns the fd to dup2 from, or -errno. */
static int above(spawn_fds *f, int src, int low, bool *own)
{
    *own = false;
    if (src >= low)
        return src;
    int c = fcntl(src, F_DUPFD_CLOEXEC, low);
    if (c < 0)
        return -errno;
    *own = true;
    return c;
}

static int remember(spawn_fds *f, int fd)
{
    if (f->ntmp >= sizeof f->tmp / sizeof f->tmp[0]) {
        close(fd);
        return -EMFILE;
    }
    f->tmp[f->ntmp++] = fd;
    return 0;
}

static bool config_valid(const corio_process_config *cfg)
{
    if (!cfg->argv || !cfg->argv[0] || !cfg->argv[0][0])
        return false;
    for (int i = 0; i < 3; i++) {
        unsigned k = (unsigned)cfg->stdio[i].kind;
        if (k > CORIO_STDIO_STDOUT || (k == CORIO_STDIO_STDOUT && i != 2))
            return false;
    }
    if (cfg->n_pass_fds && !cfg->pass_fds)
        return false;
    return cfg->n_pass_fds <= 32;
}

static void process_destroy(corio_process *p)
{
    for (int i = 0; i < 3; i++)
        corio_stream_close(p->streams[i]);
    close_pidfd(p);
    corio__free(p);
}

/* Build the file actions and attributes, spawn, open the pidfd.  Fills
 * p->pid and p->pidfd; the parent's pipe ends are in parent[]. */
static int do_spawn(const corio_process_config *cfg, corio_process *p, spawn_fds *f, int parent[3])
{
    int low = 3 + (int)cfg->n_pass_fds;
    int src[3] = {-1, -1, -1};
    int r;
    for (int i = 0; i < 3; i++) {
        const corio_stdio *io = &cfg->stdio[i];
        if (io->kind == CORIO_STDIO_PIPE) {
            int pp[2];
            if (pipe2(pp, O_CLOEXEC) < 0)
                return -errno;
            /* the child reads fd 0 and writes 1 and 2 */
            parent[i] = i == 0 ? pp[1] : pp[0];
            int child = i == 0 ? pp[0] : pp[1];
            if ((r = remember(f, child)) < 0)
                return r;
            src[i] = child;
        } else if (io->kind == CORIO_STDIO_FD) {
            if (io->fd < 0 || fcntl(io->fd, F_GETFD) < 0)
                return -EBADF;
            src[i] = io->fd;
        }
    }
    int pass[32];
    for (size_t j = 0; j < cfg->n_pass_fds; j++) {
        if (cfg->pass_fds[j] < 0 || fcntl(cfg->pass_fds[j], F_GETFD) < 0)
            return -EBADF;
        pass[j] = cfg->pass_fds[j];
    }
    /* Move every source out of the targets' way. */
    for (int i = 0; i < 3; i++) {
        if (src[i] < 0)
            continue;
        bool own;
        int c = above(f, src[i], low, &own);
        if (c < 0)
            return c;
        if (own && (r = remember(f, c)) < 0)
            return r;
        src[i] = c;
    }
    for (size_t j = 0; j < cfg->n_pass_fds; j++) {
        bool own;
        int c = above(f, pass[j], low, &own);
        if (c < 0)
            return c;
        if (own && (r = remember(f, c)) < 0)
            return r;
        pass[j] = c;
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if ((r = posix_spawn_file_actions_init(&fa)) != 0)
        return -r;
    if ((r = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -r;
    }
    for (int i = 0; i < 3 && !r; i++) {
        switch (cfg->stdio[i].kind) {
        case CORIO_STDIO_INHERIT:
            break;
        case CORIO_STDIO_DEVNULL:
            r = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        case CORIO_STDIO_STDOUT:
            r = posix_spawn_file_actions_adddup2(&fa, 1, 2);
            break;
        default:
            r = posix_spawn_file_actions_adddup2(&fa, src[i], i);
            break;
        }
    }
    for (size_t j = 0; j < cfg->n_pass_fds && !r; j++)
        r = posix_spawn_file_actions_adddup2(&fa, pass[j], 3 + (int)j);
    if (!r && !cfg->inherit_fds)
        r = posix_spawn_file_actions_addclosefrom_np(&fa, low);
    if (!r && cfg->cwd)
        r = posix_spawn_file_actions_addchdir_np(&fa, cfg->cwd);

    /* The child starts with no signal blocked (the loop thread blocks
     * SIGPIPE while it runs) and SIGPIPE at its default, as a shell would
     * start it. */
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (cfg->new_session)
        flags |= POSIX_SPAWN_SETSID;
    else if (cfg->new_process_group)
        flags |= POSIX_SPAWN_SETPGROUP;
    if (!r)
        r = posix_spawnattr_setflags(&attr, flags);
    if (!r)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (!r)
        r = posix_spawnattr_setsigdefault(&attr, &def);
    if (!r && cfg->new_process_group && !cfg->new_session)
        r = posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = 0;
    if (!r)
        r = posix_spawnp(&pid, cfg->argv[0], &fa, &attr, (char *const *)cfg->argv,
                         cfg->env ? (char *const *)cfg->env : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_tmp(f);
    if (r)
        return -r;
    p->pid = pid;
    p->pidfd = pidfd_open(pid, 0);
    if (p->pidfd < 0) {
        /* ESRCH: the child is gone already and someone else reaped it
         * (SIGCHLD ignored, a waitpid(-1) of the program's): its pid may
         * be reused now, so it is not touched.  Otherwise (no pidfds: a
         * kernel before 5.3) nothing could ever wait for it: end it. */
        r = -errno;
        if (r == -ESRCH)
            return -ECHILD;
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        return r;
    }
    return 0;
}

int corio_process_spawn(const corio_process_config *cfg, corio_process **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    if (out)
        *out = NULL;
    if (!cfg || !out || !config_valid(cfg))
        return -EINVAL;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    corio_process *p = corio__malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->loop = l;
    p->pidfd = -1;
    p->own_group = cfg->new_process_group || cfg->new_session;
    p->kill_on_free = cfg->kill_on_free;
    spawn_fds f = {.ntmp = 0};
    int parent[3] = {-1, -1, -1};
    int r = do_spawn(cfg, p, &f, parent);
    close_tmp(&f);
    /* The child runs (or never will): wrap the parent's ends. */
    for (int i = 0; i < 3; i++) {
        if (parent[i] < 0)
            continue;
        if (r == 0 && (p->streams[i] = corio_stream_from_fd(parent[i])) != NULL)
            continue;
        if (r == 0)
            r = -errno;
        close(parent[i]);
    }
    if (r < 0) {
        if (p->pidfd >= 0) {
            /* The child started but its streams could not be made. */
            (void)pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
            (void)reap(p, 0);
        }
        process_destroy(p);
        return r;
    }
    *out = p;
    return 0;
}

int corio_process_shell(const char *cmd, const corio_process_config *cfg, corio_process **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    if (out)
        *out = NULL;
    if (!cmd || !out || (cfg && cfg->argv))
        return -EINVAL;
    corio_process_config c;
    if (cfg)
        c = *cfg;
    else
        memset(&c, 0, sizeof c);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    c.argv = argv;
    return corio_process_spawn(&c, out);
}

/* ------------------------------------------------------------------ */
/* communicate                                                         */
/* ------------------------------------------------------------------ */

typedef struct pipe_job {
    corio_stream *s;
    const char *in;
    size_t in_len;
    char *buf;
    size_t len, cap;
} pipe_job;

#define FEED_CHUNK (256u << 10)

static int feed(pipe_job *j)
{
    int r = 0;
    for (size_t off = 0; off < j->in_len && r == 0;) {
        size_t n = j->in_len - off < FEED_CHUNK ? j->in_len - off : FEED_CHUNK;
        r = corio_stream_write(j->s, j->in + off, n);
        if (r == 0)
            r = corio_stream_drain(j->s);
        off += n;
    }
    int c = corio_stream_aclose(j->s);
    j->s = NULL;
    if (r == 0)
        r = c;
    /* A child that stops reading is its own business (asyncio ignores
     * BrokenPipeError / ConnectionResetError here too). */
    return r == -EPIPE || r == -ECONNRESET ? 0 : r;
}

static int collect(pipe_job *j)
{
    for (;;) {
        if (j->cap - j->len < 4096) {
            size_t cap = j->cap ? j->cap * 2 : 65536;
            char *b = realloc(j->buf, cap);
            if (!b)
                return -ENOMEM;
            j->buf = b;
            j->cap = cap;
        }
        ssize_t n = corio_stream_read(j->s, j->buf + j->len, j->cap - j->len - 1);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        j->len += (size_t)n;
    }
    j->buf[j->len] = '\0';
    return 0;
}

static void *feed_task(void *arg)
{
    int r = feed(arg);
    return r ? corio_fail(r) : NULL;
}

static void *collect_task(void *arg)
{
    int r = collect(arg);
    return r ? corio_fail(r) : NULL;
}

int corio_process_communicate(corio_process *p, const void *input, size_t input_len,
                              corio_process_output *res)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!p || !res || (input_len && !input))
        return -EINVAL;
    if (input_len && !p->streams[0])
        return -EINVAL;
    int r = corio__check();
    if (r)
        return r;
    pipe_job jin = {.s = corio_process_take_stream(p, 0), .in = input, .in_len = input_len};
    pipe_job jout = {.s = corio_process_take_stream(p, 1)};
    pipe_job jerr = {.s = corio_process_take_stream(p, 2)};
    bool want_out = jout.s != NULL, want_err = jerr.s != NULL;
    corio_group g;
    r = corio_group_init(&g);
    if (r == 0 && jin.s && !corio_group_spawn_named(&g, "communicate stdin", 0, feed_task, &jin))
        r = -errno;
    if (r == 0 && jerr.s && !corio_group_spawn_named(&g, "communicate stderr", 0, collect_task, &jerr))
        r = -errno;
    if (r == 0 && jout.s)
        r = collect(&jout);
    if (r)
        corio_group_cancel(&g);
    int gr = corio_group_join(&g);
    if (r == 0)
        r = gr;
    if (jin.s) /* the writer never ran */
        corio_stream_close(jin.s);
    corio_stream_close(jout.s);
    corio_stream_close(jerr.s);
    if (r == 0)
        r = corio_process_wait(p, &res->status);
    if (r) {
        free(jout.buf);
        free(jerr.buf);
        memset(res, 0, sizeof *res);
        return r;
    }
    res->out = jout.buf;
    res->out_len = jout.len;
    res->err = jerr.buf;
    res->err_len = jerr.len;
    /* An fd that was a pipe but gave nothing still gets an empty string. */
    if ((want_out && !res->out && !(res->out = calloc(1, 1))) ||
        (want_err && !res->err && !(res->err = calloc(1, 1)))) {
        free(res->out);
        free(res->err);
        memset(res, 0, sizeof *res);
        return -ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Freeing                                                             */
/* ------------------------------------------------------------------ */

/* A freed process's child, still running: reap it once it exits.  arg is
 * the pidfd.  Cancelled when the loop ends (the child is left to init). */
static void *reaper_task(void *arg)
{
    corio_process q;
    memset(&q, 0, sizeof q);
    q.loop = corio__loop();
    q.pidfd = (int)(intptr_t)arg;
    (void)wait_loop(&q, NULL);
    close_pidfd(&q);
    return NULL;
}

void corio_process_free(corio_process *p)
{
    if (!p)
        return;
    CORIO__ASSERT(p->waiters == 0);
    if (!p->reaped && reap(p, WNOHANG) == -EAGAIN) {
        if (p->kill_on_free)
            (void)pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        corio_loop *l = corio__loop();
        if (l && l == p->loop) {
            corio_task *t = corio__spawn(l, "process reaper", 0, reaper_task, (void *)(intptr_t)p->pidfd);
            if (t) {
                (void)corio_task_detach(t);
                p->pidfd = -1;
            }
        }
    }
    process_destroy(p);
}
