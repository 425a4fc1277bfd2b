/*
 * Handing listening sockets to a successor process (include/corio.h,
 * "Handing listening sockets to a successor"): the zero-downtime reload.
 *
 * The running process listens on a Unix socket of its own (one accept at a
 * time, in the caller's task: one handover at a time needs no more) and
 * passes each successor its listening sockets with SCM_RIGHTS.  Passing
 * the sockets themselves, rather than having the successor bind its own
 * with SO_REUSEPORT, keeps one accept queue: whatever waits in it when the
 * old process stops accepting is accepted by the new one, where closing a
 * REUSEPORT twin would reset it.
 *
 * The exchange is a few text lines, readable with socat when debugging:
 *
 *   old -> new   "corio-handover 1 N\n"   (the N fds travel with it)
 *                N lines, each a label
 *   new -> old   "ready\n"                (it serves the sockets now)
 *   old -> new   "done\n"                 (the old socket at path is gone)
 *
 * or "denied\n" from the old process to a peer of another user.  "done"
 * comes only after the old process closed its socket at path and removed
 * the file, so the successor can bind the same path at once for the next
 * reload.  Until "ready" the old process changes nothing: a successor that
 * dies or gives up costs it one dropped connection.
 */
#include "listen.h"
#include "sys.h"
#include "stream.h"
#include "unixaddr.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define HO_HEAD "corio-handover 1 "
#define HO_MAX_FDS 253 /* the kernel's SCM_MAX_FD */
#define HO_BACKLOG 16

struct corio_handover {
    corio_stream *s; /* to the predecessor, after the sockets and labels were read */
};

/* A line that came (without its '\n'), 0 at EOF or when the peer broke the
 * connection, or -errno: -EPROTO for a line too long to be ours, else the
 * read's error (cancel, deadline). */
static ssize_t read_line(corio_stream *s, char *buf, size_t cap)
{
    ssize_t k = corio_stream_readline(s, buf, cap);
    if (k == -CORIO_ELIMIT)
        return -EPROTO;
    if (k == -ECONNRESET || k == -EPIPE)
        return 0;
    if (k <= 0)
        return k;
    if (buf[k - 1] != '\n')
        return -EPROTO; /* an unterminated tail at EOF: the peer stopped mid-message */
    buf[--k] = '\0';
    return k;
}

/* ------------------------------------------------------------------ */
/* The running process: offering the sockets                           */
/* ------------------------------------------------------------------ */

/* Bind and listen on path, 0600 for a socket file.  Returns the fd and
 * *f (NULL for an abstract name), or -errno. */
static int offer_socket(const char *path, corio__unix_file **f)
{
    struct sockaddr_un sa;
    socklen_t len;
    int r = corio__unix_addr(path, false, &sa, &len);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    r = corio__unix_bind(fd, SOCK_STREAM, path, &sa, len);
    if (r < 0) {
        close(fd);
        return r;
    }
    r = corio__unix_file_note(path, f);
    if (r < 0) {
        (void)unlink(path); /* ours: just bound */
        close(fd);
        return r;
    }
    /* before listen, so nobody connects under the umask's bits: whoever
     * gets in gets our listening sockets */
    if ((*f && chmod(path, 0600) < 0) || listen(fd, HO_BACKLOG) < 0) {
        r = -errno;
        close(fd);
        corio__unix_file_remove(*f);
        return r;
    }
    return fd;
}

/* Accept one successor.  Returns its fd, or -errno: a cancel or deadline,
 * or a broken listening socket. */
static int accept_one(int lfd)
{
    for (;;) {
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_ACCEPT;
        op.fd = lfd;
        op.off = -1;
        int r = corio__op_run(&op);
        if (r >= 0) {
            int c = corio__check(); /* the accept beat a cancel: the cancel still counts */
            if (c == 0)
                return r;
            corio__close_fd(corio__loop(), r);
            return c;
        }
        switch (corio__accept_error(r)) {
        case CORIO__ACCEPT_STOP:
            return r;
        case CORIO__ACCEPT_PAUSE:
            if ((r = corio_sleep_ms(CORIO__ACCEPT_PAUSE_MS)) < 0)
                return r;
            break;
        case CORIO__ACCEPT_RETRY:
            break;
        default:
            return r;
        }
    }
}

/* Hand the sockets to the successor on s and wait for its "ready".
 * Returns 0 (it serves them), 1 (it went away, was refused or spoke
 * nonsense: wait for the next one), or -ECANCELED / -CORIO_EDEADLINE. */
static int offer(corio_stream *s, const int *fds, const corio_listen_fd *lfds, unsigned n, pid_t *pid)
{
    uid_t uid = (uid_t)-1;
    (void)corio_stream_peercred(s, pid, &uid, NULL);
    if (uid != geteuid() && uid != 0) {
        /* an abstract name has no permissions: anyone could ask */
        (void)corio_stream_write(s, "denied\n", 7);
        int r = corio_stream_drain(s);
        return r == -ECANCELED || r == -CORIO_EDEADLINE ? r : 1;
    }
    char head[40];
    int hl = snprintf(head, sizeof head, HO_HEAD "%u\n", n);
    int r = corio_stream_write_fds(s, head, (size_t)hl, fds, n);
    for (unsigned i = 0; r == 0 && i < n; i++) {
        r = corio_stream_write(s, lfds[i].name, strlen(lfds[i].name));
        if (r == 0)
            r = corio_stream_write(s, "\n", 1);
    }
    if (r == 0)
        r = corio_stream_drain(s);
    char line[16];
    ssize_t k = r < 0 ? r : read_line(s, line, sizeof line);
    if (k == -ECANCELED || k == -CORIO_EDEADLINE)
        return (int)k;
    return k > 0 && strcmp(line, "ready") == 0 ? 0 : 1;
}

int corio_handover_listen(const char *path, const corio_listen_fd *fds, unsigned n, pid_t *successor)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating())
        return -EOPNOTSUPP;
    if (!path || !*path || !fds || n == 0 || n > HO_MAX_FDS)
        return -EINVAL;
    int raw[HO_MAX_FDS];
    for (unsigned i = 0; i < n; i++) {
        if (memchr(fds[i].name, '\n', strnlen(fds[i].name, sizeof fds[i].name)) ||
            strnlen(fds[i].name, sizeof fds[i].name) == sizeof fds[i].name)
            return -EINVAL;
        if (fcntl(fds[i].fd, F_GETFD) < 0)
            return -EBADF;
        raw[i] = fds[i].fd;
    }
    corio_loop *l = corio__loop();
    if (!l || !corio_current())
        return -EPERM;
    int r = corio__check();
    if (r)
        return r;
    corio__unix_file *f = NULL;
    int lfd = offer_socket(path, &f);
    if (lfd < 0)
        return lfd;
    for (;;) {
        int cfd = accept_one(lfd);
        if (cfd < 0) {
            r = cfd;
            break;
        }
        corio_stream *s = corio__stream_new(cfd);
        if (!s) {
            corio__close_fd(l, cfd);
            continue; /* that successor sees the connection closed and fails; the next may fare better */
        }
        corio__stream_set_unix(s);
        pid_t pid = 0;
        r = offer(s, raw, fds, n, &pid);
        if (r == 1) {
            corio_stream_close(s);
            continue;
        }
        if (r < 0) {
            corio_stream_close(s);
            break;
        }
        /* It serves the sockets.  Let go of path before saying so: the
         * successor binds it next, for its own successor. */
        corio__close_fd(l, lfd);
        corio__unix_file_remove(f);
        lfd = -1;
        (void)corio_stream_write(s, "done\n", 5);
        (void)corio_stream_aclose(s); /* it may be gone already: it has the sockets either way */
        if (successor)
            *successor = pid;
        return 0;
    }
    corio__close_fd(l, lfd);
    corio__unix_file_remove(f);
    return r;
}

/* ------------------------------------------------------------------ */
/* The successor: taking them                                          */
/* ------------------------------------------------------------------ */

/* Read the offer on s into out.  Returns n, or -errno with no fd kept. */
static int receive_offer(corio_stream *s, corio_listen_fd *out, unsigned max)
{
    char line[sizeof out->name + 2];
    ssize_t k = read_line(s, line, sizeof line);
    if (k <= 0)
        return k == 0 ? -ECONNRESET : (int)k;
    if (strcmp(line, "denied") == 0)
        return -EACCES;
    size_t hl = sizeof HO_HEAD - 1;
    char *end;
    if (strncmp(line, HO_HEAD, hl) != 0 || line[hl] < '1' || line[hl] > '9')
        return -EPROTO;
    unsigned long n = strtoul(line + hl, &end, 10);
    if (*end || n > HO_MAX_FDS)
        return -EPROTO;
    int fds[HO_MAX_FDS];
    int flags = 0;
    int got = corio_stream_take_fds(s, fds, HO_MAX_FDS, &flags);
    if (got < 0)
        return got;
    int r = (flags & MSG_CTRUNC) ? -EMFILE : (unsigned long)got != n ? -EPROTO : n > max ? -E2BIG : 0;
    for (unsigned i = 0; r == 0 && i < n; i++) {
        k = read_line(s, line, sizeof line);
        if (k <= 0)
            r = k == 0 ? -ECONNRESET : (int)k;
        else if ((size_t)k >= sizeof out->name)
            r = -EPROTO;
        else {
            out[i].fd = fds[i];
            memcpy(out[i].name, line, (size_t)k + 1);
        }
    }
    if (r < 0) {
        for (int i = 0; i < got; i++)
            close(fds[i]);
        return r;
    }
    return (int)n;
}

int corio_handover_take(const char *path, corio_listen_fd *out, unsigned max, corio_handover **h)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (h)
            *h = NULL;
        return -EOPNOTSUPP;
    }
    if (h)
        *h = NULL;
    if (!path || !*path || !out || !h || max == 0)
        return -EINVAL;
    corio_handover *ho = corio__malloc(sizeof *ho);
    if (!ho)
        return -ENOMEM;
    corio_stream *s;
    int r = corio_stream_connect_unix(path, &s);
    if (r < 0) {
        corio__free(ho);
        return r;
    }
    (void)corio_stream_set_receive_fds(s, true); /* a Unix stream before its first read */
    r = receive_offer(s, out, max);
    if (r < 0) {
        corio_stream_close(s); /* the predecessor sees us go, and keeps serving */
        corio__free(ho);
        return r;
    }
    ho->s = s;
    *h = ho;
    return r;
}

int corio_handover_ready(corio_handover *h)
{
    if (!h)
        return -EINVAL;
    corio_stream *s = h->s;
    corio__free(h);
    int r = corio_stream_write(s, "ready\n", 6);
    if (r == 0)
        r = corio_stream_drain(s);
    char line[16];
    ssize_t k = r < 0 ? r : read_line(s, line, sizeof line);
    corio_stream_close(s);
    if (k == -EPIPE || k == -ECONNRESET || k == 0)
        return -ECONNRESET;
    if (k < 0)
        return (int)k;
    return strcmp(line, "done") == 0 ? 0 : -EPROTO;
}

void corio_handover_abort(corio_handover *h)
{
    if (!h)
        return;
    corio_stream_close(h->s);
    corio__free(h);
}
