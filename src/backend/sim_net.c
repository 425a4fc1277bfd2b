/*
 * The sim backend's network: TCP and UDP sockets in memory (contract in
 * sim.h).  Not simulated yet: every socket call fails with EOPNOTSUPP, so
 * a run never reaches the real network.
 */
#include "sim.h"

#include <errno.h>

static int unsupported(void)
{
    errno = EOPNOTSUPP;
    return -1;
}

int corio__simsys_socket(int domain, int type, int protocol)
{
    (void)domain, (void)type, (void)protocol;
    return unsupported();
}
int corio__simsys_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    (void)fd, (void)sa, (void)len;
    return unsupported();
}
int corio__simsys_listen(int fd, int backlog)
{
    (void)fd, (void)backlog;
    return unsupported();
}
int corio__simsys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    (void)fd, (void)sa, (void)len;
    return unsupported();
}
int corio__simsys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    (void)fd, (void)sa, (void)len, (void)flags;
    return unsupported();
}
int corio__simsys_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    (void)fd, (void)sa, (void)len;
    return unsupported();
}
int corio__simsys_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    (void)fd, (void)sa, (void)len;
    return unsupported();
}
int corio__simsys_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    (void)fd, (void)level, (void)name, (void)val, (void)len;
    return unsupported();
}
int corio__simsys_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    (void)fd, (void)level, (void)name, (void)val, (void)len;
    return unsupported();
}
int corio__simsys_shutdown(int fd, int how)
{
    (void)fd, (void)how;
    return unsupported();
}
ssize_t corio__simsys_send(int fd, const void *buf, size_t n, int flags)
{
    (void)fd, (void)buf, (void)n, (void)flags;
    return unsupported();
}
ssize_t corio__simsys_recv(int fd, void *buf, size_t n, int flags)
{
    (void)fd, (void)buf, (void)n, (void)flags;
    return unsupported();
}
ssize_t corio__simsys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    (void)fd, (void)msg, (void)flags;
    return unsupported();
}
ssize_t corio__simsys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    (void)fd, (void)msg, (void)flags;
    return unsupported();
}

void corio__sim_net_crash(corio__sim *w, corio__sim_host *h) { (void)w, (void)h; }
void corio__sim_net_destroy(corio__sim *w) { (void)w; }
