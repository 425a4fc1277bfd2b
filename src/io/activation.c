/*
 * Socket activation: listening sockets handed over by a supervisor
 * (systemd's LISTEN_FDS protocol, sd_listen_fds(3)) instead of bound here.
 *
 * corio_listen_fds reads the protocol's environment: LISTEN_PID names the
 * process the sockets are for (a child that inherited the variables must
 * not take them), LISTEN_FDS counts them from fd 3, LISTEN_FDNAMES
 * optionally names them.  corio__listen_adopt checks fds a server is
 * asked to serve (src/io/tcp.c, src/http/server.c) and prepares them the
 * way corio's own listeners are: non-blocking and close-on-exec.
 * Nothing here binds or accepts.
 */
#include "listen.h"
#include "sys.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A decimal number, all of s; false for anything else. */
static bool parse_ulong(const char *s, unsigned long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int listen_fds(corio_listen_fd *out, unsigned max)
{
    const char *pid_s = getenv("LISTEN_PID");
    if (!pid_s)
        return 0;
    unsigned long pid, n;
    if (!parse_ulong(pid_s, &pid))
        return -EINVAL;
    /* Not ours: the variables were inherited from the process they were
     * meant for. */
    if (pid != (unsigned long)getpid())
        return 0;
    const char *n_s = getenv("LISTEN_FDS");
    if (!n_s)
        return 0;
    if (!parse_ulong(n_s, &n) || n > (unsigned long)(INT_MAX - CORIO_LISTEN_FDS_START))
        return -EINVAL;
    const char *names = getenv("LISTEN_FDNAMES");
    if (names) {
        unsigned long cnt = 1;
        for (const char *c = names; *c; c++)
            cnt += *c == ':';
        if (cnt != n && !(n == 0 && !*names))
            return -EINVAL; /* as sd_listen_fds_with_names: one name per fd */
    }
    for (int fd = CORIO_LISTEN_FDS_START; fd < CORIO_LISTEN_FDS_START + (int)n; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || (!(fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0))
            return -errno;
    }
    const char *name = names;
    for (unsigned i = 0; i < n && i < max; i++) {
        out[i].fd = CORIO_LISTEN_FDS_START + (int)i;
        const char *end = name ? strchr(name, ':') : NULL;
        size_t len = name ? (end ? (size_t)(end - name) : strlen(name)) : 0;
        if (len >= sizeof out[i].name)
            len = sizeof out[i].name - 1;
        if (name)
            memcpy(out[i].name, name, len);
        else
            memcpy(out[i].name, "unknown", len = 7); /* systemd's name when none is given */
        out[i].name[len] = '\0';
        if (name)
            name = end ? end + 1 : name + strlen(name);
    }
    return (int)n;
}

int corio_listen_fds(corio_listen_fd *out, unsigned max, bool unset_env)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating())
        return -EOPNOTSUPP;
    if (!out && max)
        return -EINVAL;
    int r = listen_fds(out, max);
    /* Unset whatever the outcome, as sd_listen_fds does: a child started
     * later must not see sockets that are not its own. */
    if (unset_env) {
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
    }
    return r;
}

/* What accept(2) would say of fd: 0 for a listening stream socket. */
static int check_listener(int fd)
{
    int type, acc;
    socklen_t len = sizeof type;
    if (fcntl(fd, F_GETFL) < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno; /* -ENOTSOCK */
    if (type != SOCK_STREAM)
        return -EOPNOTSUPP;
    len = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
        return -errno;
    return acc ? 0 : -EINVAL;
}

int corio__listen_adopt(const int *fds, unsigned n, unsigned max, bool nodelay)
{
    if (!fds || n == 0)
        return -EINVAL;
    if (n > max)
        return -E2BIG;
    /* Check every one before changing any: on error the caller keeps
     * its fds as they were. */
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] < 0)
            return -EBADF;
        for (unsigned j = 0; j < i; j++)
            if (fds[j] == fds[i])
                return -EINVAL; /* twice: would be closed twice */
        int r = check_listener(fds[i]);
        if (r)
            return r;
    }
    for (unsigned i = 0; i < n; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0))
            return -errno;
        fl = fcntl(fds[i], F_GETFD);
        if (fl < 0 || (!(fl & FD_CLOEXEC) && fcntl(fds[i], F_SETFD, fl | FD_CLOEXEC) < 0))
            return -errno;
        /* As for corio's own listeners: Linux copies it to accepted
         * sockets.  Unix stream sockets have no such option. */
        if (nodelay) {
            int one = 1;
            (void)setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    }
    return 0;
}
