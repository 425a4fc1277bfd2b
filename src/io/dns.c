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
#include "dns.h"
#include "../core/threadpool.h"

#include <stdio.h>
#include <string.h>

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
