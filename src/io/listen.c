/*
 * Listening sockets for both servers (src/io/listen.h): the wildcard case
 * as one dual-stack socket, a host as one socket per resolved address on a
 * shared port.  Pure socket setup; accepting is each server's business.
 */
#include "sys.h"
#include "listen.h"
#include "dns.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

int corio__tcp_socket(int family)
{
    return corio__sys_socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* One listening socket on sa: into *out and 0, or -errno (nothing left
 * open). */
static int open_listener(const struct sockaddr *sa, socklen_t len, bool v6only, const corio__listen_opts *o,
                         int *out)
{
    int fd = corio__tcp_socket(sa->sa_family);
    if (fd < 0)
        return -errno;
    int one = 1, r;
    if (corio__sys_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (o->reuse_port && corio__sys_setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6) {
        int v = v6only;
        if (corio__sys_setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v) < 0)
            goto fail;
    }
    if (o->nodelay)
        (void)corio__sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (corio__sys_bind(fd, sa, len) < 0)
        goto fail;
    if (corio__sys_listen(fd, o->backlog > 0 ? o->backlog : 4096) < 0)
        goto fail;
    *out = fd;
    return 0;
fail:
    r = -errno;
    corio__sys_close(fd);
    return r;
}

static uint16_t sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return 0;
}

static void set_port(struct sockaddr *sa, uint16_t port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)(void *)sa)->sin_port = htons(port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)sa)->sin6_port = htons(port);
}

uint16_t corio__fd_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (corio__sys_getsockname(fd, (struct sockaddr *)&ss, &l) < 0)
        return 0;
    return sockaddr_port((struct sockaddr *)&ss);
}

/* Bind every address of the list (all on the same port: with port 0 the
 * first one's ephemeral port is reused for the rest).  Returns the number
 * of sockets opened into fds, or -errno.  An address the machine cannot
 * bind (no IPv6, address not local) is skipped if another one works. */
static int bind_all(struct addrinfo *res, const corio__listen_opts *o, int *fds, unsigned max)
{
    unsigned n = 0;
    int err = -EADDRNOTAVAIL;
    uint16_t port = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (port && sockaddr_port(ai->ai_addr) == 0)
            set_port(ai->ai_addr, port);
        int fd, r = open_listener(ai->ai_addr, ai->ai_addrlen, true, o, &fd);
        if (r < 0) {
            if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
                err = r;
                continue;
            }
            while (n)
                corio__sys_close(fds[--n]);
            return r;
        }
        if (!port)
            port = corio__fd_port(fd);
        fds[n++] = fd;
    }
    return n ? (int)n : err;
}

/* host NULL or "": one dual-stack IPv6 socket, or IPv4 only when the
 * machine has no IPv6. */
static int bind_any(uint16_t port, const corio__listen_opts *o, int *fd)
{
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_any;
    a6.sin6_port = htons(port);
    int r = open_listener((struct sockaddr *)&a6, sizeof a6, false, o, fd);
    if (r != -EAFNOSUPPORT && r != -EADDRNOTAVAIL)
        return r;
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    a4.sin_port = htons(port);
    return open_listener((struct sockaddr *)&a4, sizeof a4, true, o, fd);
}

int corio__listen_all(const char *host, uint16_t port, const corio__listen_opts *o, int *fds, unsigned max)
{
    if (max == 0)
        return -EINVAL;
    if (!host || !*host) {
        int r = bind_any(port, o, &fds[0]);
        return r < 0 ? r : 1;
    }
    struct addrinfo *res = NULL;
    int r = corio__resolve(host, port, SOCK_STREAM, AI_PASSIVE, &res);
    if (r < 0)
        return r;
    r = bind_all(res, o, fds, max);
    corio__resolve_free(res);
    return r;
}

int corio__accept_error(int r)
{
    if (r == -ECANCELED || r == -CORIO_EDEADLINE)
        return CORIO__ACCEPT_STOP;
    if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM)
        return CORIO__ACCEPT_PAUSE;
    if (r == -ECONNABORTED || r == -EINTR || r == -EAGAIN || r == -EPROTO || r == -EPERM || r == -ENETDOWN ||
        r == -ENOPROTOOPT || r == -EHOSTDOWN || r == -ENONET || r == -EHOSTUNREACH || r == -EOPNOTSUPP ||
        r == -ENETUNREACH)
        return CORIO__ACCEPT_RETRY;
    return CORIO__ACCEPT_BROKEN;
}
