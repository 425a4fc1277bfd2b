/*
 * The sim backend's UDP: datagrams between simulated sockets (the sockets
 * themselves, ports and the fd ops are in sim_net.c; contract in sim.h).
 *
 * A datagram sent is copied whole and delivered by an event one latency
 * later to the socket bound to its destination port (none: it is dropped,
 * as UDP does without ICMP feedback we do not model).  Message boundaries
 * hold; a receive into less room than the datagram truncates it and says
 * MSG_TRUNC, as Linux.  The faults act here: a datagram may be lost,
 * delivered twice, or held back behind later ones.  A receiver's queue is
 * bounded by its SO_RCVBUF: beyond it arrivals are dropped, as the kernel
 * drops them.  Datagrams in flight belong to their sender's host until they
 * land, so the run's end frees them.
 */
#include "sim_net.h"

#include <arpa/inet.h>
#include <string.h>

#define DGRAM_MAX 65507       /* the largest IPv4 UDP payload */
#define REORDER_NS 5000000ull /* a reordered datagram waits up to 5 ms more */

static int fail(int err)
{
    errno = err;
    return -1;
}

/* The socket on host h bound to the datagram's destination, or NULL. */
static simnet_sock *udp_find(corio__sim_host *h, const struct sockaddr_in *to)
{
    simnet_host *hn = h->net;
    if (!hn)
        return NULL;
    for (corio__list *n = hn->socks.next; n != &hn->socks; n = n->next) {
        simnet_sock *s = CORIO__CONTAINER_OF(n, simnet_sock, hlink);
        if (s->type != SOCK_DGRAM || !s->has_fd || s->local.sin_port != to->sin_port || !s->bound)
            continue;
        uint32_t lip = s->local.sin_addr.s_addr;
        if (lip != htonl(INADDR_ANY) && lip != to->sin_addr.s_addr)
            continue;
        return s;
    }
    return NULL;
}

static void land(corio__sim *w, void *arg, uint64_t a)
{
    (void)a;
    simnet_dgram *d = arg;
    corio__list_remove(&d->link);
    corio__sim_host *h = corio__sim_host_get(w, d->to_host);
    simnet_sock *s = h && !h->crashing ? udp_find(h, &d->to) : NULL;
    if (s && s->connected_dgram &&
        (s->remote.sin_port != d->from.sin_port || s->remote.sin_addr.s_addr != d->from.sin_addr.s_addr))
        s = NULL; /* a connected socket takes only its peer's datagrams */
    if (!s || s->dgram_bytes + d->len > (size_t)s->rcvbuf) {
        corio__sim_trace(w, CORIO__SIM_EV_NET, "dgram dropped", d->len, ntohs(d->to.sin_port));
        corio__free(d);
        return;
    }
    corio__sim_trace(w, CORIO__SIM_EV_NET, "dgram", d->len, ntohs(d->to.sin_port));
    corio__list_push_back(&s->dgrams, &d->link);
    s->dgram_bytes += d->len;
    corio__simnet_kick(w, s);
}

/* Put a copy of d in flight from host from, arriving after delay. */
static int launch(corio__sim *w, simnet_host *from, const simnet_dgram *d, uint64_t delay)
{
    simnet_dgram *c = corio__malloc(sizeof *c + d->len);
    if (!c)
        return -ENOMEM;
    memcpy(c, d, sizeof *c + d->len);
    corio__list_push_back(&from->inflight, &c->link);
    if (corio__sim_at(w, delay, land, c, 0) < 0) {
        corio__list_remove(&c->link);
        corio__free(c);
        return -ENOMEM;
    }
    return 0;
}

int corio__simudp_connect(corio__sim *w, simnet_sock *s, const struct sockaddr_in *a)
{
    if (a->sin_family == AF_UNSPEC) {
        s->connected_dgram = false;
        return 0;
    }
    if (!s->bound) {
        struct sockaddr_in any = {.sin_family = AF_INET};
        int r = corio__simnet_bind(w, s, &any);
        if (r)
            return r == -EADDRINUSE ? -EAGAIN : r;
    }
    s->remote = *a;
    if (s->remote.sin_addr.s_addr == htonl(INADDR_ANY))
        s->remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->connected_dgram = true;
    return 0;
}

ssize_t corio__simudp_sendmsg(corio__sim *w, simnet_sock *s, const struct msghdr *m, int flags)
{
    (void)flags;
    if (corio__simnet_dead_host(w, s))
        return -ENETDOWN;
    if (s->so_error) {
        int e = s->so_error;
        s->so_error = 0;
        return -e;
    }
    if (m->msg_controllen)
        return -EOPNOTSUPP; /* UDP_SEGMENT and other ancillary data: not simulated (callers fall back) */
    struct sockaddr_in to;
    if (m->msg_name && m->msg_namelen) {
        if (s->connected_dgram)
            return -EISCONN;
        if (m->msg_namelen < sizeof to)
            return -EINVAL;
        memcpy(&to, m->msg_name, sizeof to);
        if (to.sin_family != AF_INET)
            return -EAFNOSUPPORT;
        memset(to.sin_zero, 0, sizeof to.sin_zero);
    } else if (s->connected_dgram) {
        to = s->remote;
    } else {
        return -EDESTADDRREQ;
    }
    size_t len = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        len += m->msg_iov[i].iov_len;
    if (len > DGRAM_MAX)
        return -EMSGSIZE;
    if (!s->bound) {
        struct sockaddr_in any = {.sin_family = AF_INET};
        int r = corio__simnet_bind(w, s, &any);
        if (r)
            return r == -EADDRINUSE ? -EAGAIN : r;
    }
    if (to.sin_addr.s_addr == htonl(INADDR_ANY))
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    corio__sim_host *me = corio__sim_host_get(w, s->host);
    corio__sim_host *dst = corio__simnet_route(w, s->host, to.sin_addr.s_addr);
    simnet_dgram *d = corio__malloc(sizeof *d + len);
    if (!d)
        return -ENOMEM;
    memset(d, 0, sizeof *d);
    d->to = to;
    d->to_host = dst ? dst->id : 0;
    d->from.sin_family = AF_INET;
    d->from.sin_port = s->local.sin_port;
    d->from.sin_addr.s_addr = s->local.sin_addr.s_addr != htonl(INADDR_ANY)  ? s->local.sin_addr.s_addr
                              : to.sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? htonl(INADDR_LOOPBACK)
                                                                             : me->addr.s_addr;
    d->len = len;
    size_t off = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++) {
        memcpy(d->data + off, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len);
        off += m->msg_iov[i].iov_len;
    }
    int r = 0;
    const corio_sim_faults *f = corio__sim_faults(w);
    corio__sim_trace(w, CORIO__SIM_EV_NET, "dgram send", len, ntohs(to.sin_port));
    if (!dst) {
        /* nobody has the address: it vanishes */
    } else if (f->dgram_loss > 0 && corio__sim_fault(w, f->dgram_loss, "dgram loss", len)) {
        /* lost on the way */
    } else {
        uint64_t delay = corio__sim_latency(w);
        if (f->dgram_reorder > 0 && corio__sim_fault(w, f->dgram_reorder, "dgram reorder", len))
            delay += 1 + corio__sim_below(w, REORDER_NS);
        simnet_host *hn = corio__simnet_host(me);
        r = hn ? launch(w, hn, d, delay) : -ENOMEM;
        if (!r && f->dgram_dup > 0 && corio__sim_fault(w, f->dgram_dup, "dgram dup", len))
            (void)launch(w, hn, d, delay + corio__sim_latency(w));
    }
    corio__free(d);
    return r < 0 ? r : (ssize_t)len;
}

ssize_t corio__simudp_recvmsg(corio__sim *w, simnet_sock *s, struct msghdr *m, int flags)
{
    m->msg_flags = 0;
    m->msg_controllen = 0;
    if (s->so_error) {
        int e = s->so_error;
        s->so_error = 0;
        return -e;
    }
    if (corio__list_empty(&s->dgrams))
        return corio__simnet_dead_host(w, s) ? -ENETDOWN : -EAGAIN;
    simnet_dgram *d = CORIO__CONTAINER_OF(s->dgrams.next, simnet_dgram, link);
    size_t off = 0;
    for (size_t i = 0; i < m->msg_iovlen && off < d->len; i++) {
        size_t k = m->msg_iov[i].iov_len < d->len - off ? m->msg_iov[i].iov_len : d->len - off;
        memcpy(m->msg_iov[i].iov_base, d->data + off, k);
        off += k;
    }
    if (off < d->len)
        m->msg_flags |= MSG_TRUNC;
    if (m->msg_name) {
        size_t k = m->msg_namelen < sizeof d->from ? m->msg_namelen : sizeof d->from;
        memcpy(m->msg_name, &d->from, k);
        m->msg_namelen = sizeof d->from;
    }
    ssize_t r = (flags & MSG_TRUNC) ? (ssize_t)d->len : (ssize_t)off;
    if (!(flags & MSG_PEEK)) {
        corio__list_remove(&d->link);
        s->dgram_bytes -= d->len;
        corio__free(d);
    }
    return r;
}

void corio__simudp_free(corio__sim *w, simnet_sock *s)
{
    (void)w;
    while (!corio__list_empty(&s->dgrams)) {
        simnet_dgram *d = CORIO__CONTAINER_OF(s->dgrams.next, simnet_dgram, link);
        corio__list_remove(&d->link);
        corio__free(d);
    }
    s->dgram_bytes = 0;
}

void corio__simudp_destroy_host(corio__sim *w, simnet_host *hn)
{
    while (!corio__list_empty(&hn->inflight)) {
        simnet_dgram *d = CORIO__CONTAINER_OF(hn->inflight.next, simnet_dgram, link);
        corio__sim_forget(w, d);
        corio__list_remove(&d->link);
        corio__free(d);
    }
}

/* ------------------------------------------------------------------ */
/* The batch calls (recvmmsg, sendmmsg): one message at a time          */
/* ------------------------------------------------------------------ */

int corio__simsys_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    unsigned i = 0;
    for (; i < n; i++) {
        ssize_t r = corio__simsys_sendmsg(fd, &v[i].msg_hdr, flags);
        if (r < 0)
            return i ? (int)i : -1;
        v[i].msg_len = (unsigned)r;
    }
    return (int)i;
}

int corio__simsys_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *timeout)
{
    (void)timeout;
    unsigned i = 0;
    for (; i < n; i++) {
        ssize_t r = corio__simsys_recvmsg(fd, &v[i].msg_hdr, flags);
        if (r < 0)
            return i ? (int)i : -1;
        v[i].msg_len = (unsigned)r;
    }
    return i ? (int)i : fail(EAGAIN);
}
