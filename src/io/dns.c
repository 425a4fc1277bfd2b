/*
 * DNS: corio__resolve() and the getaddrinfo error mapping.
 *
 * A lookup request is heap-allocated because the task may be cancelled
 * while a worker is still inside getaddrinfo: the request then belongs to
 * the pool, whose abandon hook frees it (and any result) once the worker
 * returns.  Numeric hosts take the fast path with AI_NUMERICHOST, which
 * getaddrinfo answers without consulting any resolver, so the common
 * "127.0.0.1" / "::1" case costs no thread hand-off.
 */
#include "sys.h"
#include "dns.h"
#include "../core/threadpool.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under the sim backend names are the simulated hosts' (corio/sim.h):
 * resolved here in memory, never by getaddrinfo, whose files and
 * sockets belong to the real machine.  A list made here is marked by its
 * ai_canonname (getaddrinfo sets one only for AI_CANONNAME, which corio
 * never asks for), so corio__resolve_free knows which free it needs. */
static char sim_mark[] = "corio-sim";

typedef struct sim_ai {
    struct addrinfo ai;
    struct sockaddr_storage sa;
} sim_ai;

static int sim_resolve(const char *host, uint16_t port, int socktype, int flags, struct addrinfo **out)
{
    sim_ai *e = corio__calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    struct in_addr a4;
    struct in6_addr a6;
    int r = 0;
    e->ai.ai_family = AF_INET;
    if (!host) {
        a4.s_addr = htonl((flags & AI_PASSIVE) ? INADDR_ANY : INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &a4) == 1) {
    } else if (inet_pton(AF_INET6, host, &a6) == 1) {
        e->ai.ai_family = AF_INET6; /* not simulated: the socket call says so (EAFNOSUPPORT) */
    } else if (flags & AI_NUMERICHOST) {
        r = -ENOENT;
    } else {
        r = corio__sys_resolve(host, &a4);
    }
    if (r) {
        corio__free(e);
        return r;
    }
    if (e->ai.ai_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&e->sa;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr = a4;
        e->ai.ai_addrlen = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&e->sa;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = a6;
        e->ai.ai_addrlen = sizeof *sin6;
    }
    e->ai.ai_socktype = socktype ? socktype : SOCK_STREAM;
    e->ai.ai_protocol = e->ai.ai_socktype == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP;
    e->ai.ai_addr = (struct sockaddr *)&e->sa;
    e->ai.ai_canonname = sim_mark;
    *out = &e->ai;
    return 0;
}

void corio__resolve_free(struct addrinfo *res)
{
    if (res && res->ai_canonname == sim_mark)
        corio__free(CORIO__CONTAINER_OF(res, sim_ai, ai)); /* always one entry */
    else if (res)
        freeaddrinfo(res);
}

typedef struct dns_req {
    struct addrinfo hints;
    struct addrinfo *res;
    int rc;  /* getaddrinfo's return */
    int err; /* errno after it, for EAI_SYSTEM */
    char port[8];
    char host[]; /* NUL-terminated copy */
} dns_req;

int corio__gai_error(int eai, int saved_errno)
{
    switch (eai) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_FAIL:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS:
    case EAI_SERVICE:
        return -EINVAL;
    case EAI_SYSTEM:
        return saved_errno > 0 ? -saved_errno : -EIO;
    default:
        return -EIO;
    }
}

/* Worker thread. */
static void dns_work(void *arg)
{
    dns_req *r = arg;
    r->rc = getaddrinfo(r->host, r->port, &r->hints, &r->res);
    r->err = errno;
}

/* Loop thread, after the task gave up on the lookup. */
static void dns_abandon(void *arg)
{
    dns_req *r = arg;
    if (r->res)
        freeaddrinfo(r->res);
    corio__free(r);
}

int corio__resolve(const char *host, uint16_t port, int socktype, int flags, struct addrinfo **out)
{
    *out = NULL;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = socktype,
        .ai_flags = flags | AI_NUMERICSERV,
    };
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    if (host && !*host)
        host = NULL;
    if (corio__sys_simulating())
        return sim_resolve(host, port, socktype, flags, out);

    /* No resolver involved: a numeric host or the wildcard/loopback. */
    if (!host || (flags & AI_NUMERICHOST)) {
        int rc = getaddrinfo(host, portstr, &hints, out);
        return corio__gai_error(rc, errno);
    }
    hints.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo(host, portstr, &hints, out);
    if (rc != EAI_NONAME)
        return corio__gai_error(rc, errno);
    hints.ai_flags &= ~AI_NUMERICHOST;

    size_t hl = strlen(host);
    dns_req *r = corio__malloc(sizeof *r + hl + 1);
    if (!r)
        return -ENOMEM;
    r->hints = hints;
    r->res = NULL;
    r->rc = 0;
    r->err = 0;
    memcpy(r->port, portstr, sizeof portstr);
    memcpy(r->host, host, hl + 1);
    int pr = corio__pool_run(CORIO__POOL_SLOW, dns_work, r, dns_abandon);
    if (pr)
        return pr; /* r belongs to dns_abandon now */
    int ret = corio__gai_error(r->rc, r->err);
    if (ret == 0)
        *out = r->res;
    else if (r->res)
        freeaddrinfo(r->res);
    corio__free(r);
    return ret;
}
