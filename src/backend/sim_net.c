/*
 * The sim backend's network: sockets in memory behind virtual fds, their
 * ports on each host, and TCP (contract in sim.h; datagrams are in
 * sim_udp.c).  Linux is the model for every result and errno.
 *
 * A TCP connection is two sockets pointing at each other.  A send copies
 * bytes into the sender's bounded send queue; a delivery event, one
 * network latency later, moves as much as the peer's bounded receive
 * queue has room for, in order, and the FIN after the last byte.  A
 * reader freeing room schedules the next delivery (the window update), so
 * a fast sender waits for a slow reader as it would on a real network.
 * A connect is a SYN event at the server (queued on the listener) and a
 * SYN-ACK event back; an RST is an event too.  A socket whose fd is closed
 * lives on ("orphaned") until its queued bytes and FIN are delivered.
 *
 * A pending op completes only from an event: every change of a socket
 * schedules one service pass (a 0-delay event) that retries its pending
 * ops in FIFO order.  Faults are drawn only where bytes move, so an op
 * that merely retries draws nothing and replays the same.
 */
#include "sim_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>

#define EPHEMERAL_LO 32768u
#define EPHEMERAL_HI 60999u
#define SNDBUF_DEFAULT (64 * 1024)
#define RCVBUF_DEFAULT (128 * 1024)
#define BUF_MIN (2 * 1024)
#define BUF_MAX (4 * 1024 * 1024)
#define SYN_RETRY_NS 1000000000ull /* a full backlog drops the SYN; the client retries after 1 s */
#define SYN_TRIES 6

static const corio__sim_fd_ops sock_ops;

/* Unlink n if it is linked (a socket's qlink often is not). */
static void unlink_node(corio__list *n)
{
    if (n->next && n->next != n)
        corio__list_remove(n);
}

static int fail(int err)
{
    errno = err;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Byte queues                                                         */
/* ------------------------------------------------------------------ */

/* Copy n bytes from offset off without taking them. */
static void bq_peek(const simnet_bq *q, size_t off, void *p, size_t n)
{
    size_t at = (q->head + off) % q->cap, k = q->cap - at < n ? q->cap - at : n;
    memcpy(p, q->buf + at, k);
    memcpy((char *)p + k, q->buf, n - k);
}

static int bq_reserve(simnet_bq *q, size_t need)
{
    if (q->cap >= need)
        return 0;
    size_t cap = q->cap ? q->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *b = corio__malloc(cap);
    if (!b)
        return -ENOMEM;
    if (q->len)
        bq_peek(q, 0, b, q->len); /* the ring's two pieces, in order */
    corio__free(q->buf);
    q->buf = b;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static int bq_push(simnet_bq *q, const void *p, size_t n)
{
    if (!n)
        return 0;
    if (bq_reserve(q, q->len + n) < 0)
        return -ENOMEM;
    size_t tail = (q->head + q->len) % q->cap, k = q->cap - tail < n ? q->cap - tail : n;
    memcpy(q->buf + tail, p, k);
    memcpy(q->buf, (const char *)p + k, n - k);
    q->len += n;
    return 0;
}

static void bq_drop(simnet_bq *q, size_t n)
{
    q->head = q->len == n ? 0 : (q->head + n) % q->cap;
    q->len -= n;
}

/* Move n bytes from q to d (which has room reserved by the caller). */
static int bq_move(simnet_bq *q, simnet_bq *d, size_t n)
{
    if (bq_reserve(d, d->len + n) < 0)
        return -ENOMEM;
    while (n) {
        size_t k = q->cap - q->head < n ? q->cap - q->head : n;
        (void)bq_push(d, q->buf + q->head, k);
        bq_drop(q, k);
        n -= k;
    }
    return 0;
}

static void bq_free(simnet_bq *q)
{
    corio__free(q->buf);
    memset(q, 0, sizeof *q);
}

/* ------------------------------------------------------------------ */
/* Hosts, sockets                                                      */
/* ------------------------------------------------------------------ */

simnet_host *corio__simnet_host(corio__sim_host *h)
{
    if (!h->net) {
        simnet_host *hn = corio__calloc(1, sizeof *hn);
        if (!hn)
            return NULL;
        corio__list_init(&hn->socks);
        corio__list_init(&hn->inflight);
        hn->next_port = EPHEMERAL_LO;
        h->net = hn;
    }
    return h->net;
}

bool corio__simnet_dead_host(corio__sim *w, const simnet_sock *s)
{
    corio__sim_host *h = corio__sim_host_get(w, s->host);
    return !h || h->epoch != s->epoch || h->crashing;
}

corio__sim_host *corio__simnet_route(corio__sim *w, unsigned from, uint32_t addr)
{
    corio__sim_host *h = corio__sim_host_by_addr(w, corio__sim_host_get(w, from), addr);
    return h;
}

static simnet_sock *sock_new(corio__sim *w, corio__sim_host *h, int type)
{
    simnet_host *hn = corio__simnet_host(h);
    simnet_sock *s = hn ? corio__calloc(1, sizeof *s) : NULL;
    if (!s)
        return NULL;
    corio__list_init(&s->ops);
    corio__list_init(&s->qlink);
    corio__list_init(&s->acceptq);
    corio__list_init(&s->dgrams);
    s->host = h->id;
    s->epoch = h->epoch;
    s->type = type;
    s->rcvbuf = RCVBUF_DEFAULT;
    s->sndbuf = SNDBUF_DEFAULT;
    s->local.sin_family = AF_INET;
    s->remote.sin_family = AF_INET;
    corio__list_push_back(&hn->socks, &s->hlink);
    (void)w;
    return s;
}

static void complete_later(corio__sim *w, void *arg, uint64_t res);

/* Free s for good: nothing may point at it any more. */
static void sock_free(corio__sim *w, simnet_sock *s)
{
    corio__sim_forget(w, s);
    if (s->peer)
        s->peer->peer = NULL;
    corio__list_remove(&s->hlink);
    unlink_node(&s->qlink);
    bq_free(&s->rcvq);
    bq_free(&s->sndq);
    corio__simudp_free(w, s);
    corio__free(s);
}

static void service(corio__sim *w, void *arg, uint64_t a);

void corio__simnet_kick(corio__sim *w, simnet_sock *s)
{
    if (s->kick_armed || corio__list_empty(&s->ops))
        return;
    if (corio__sim_at(w, 0, service, s, 0) == 0)
        s->kick_armed = true;
}

static simnet_sock *sock_of(corio__sim *w, int fd, corio__sim_fd **fp)
{
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    if (fp)
        *fp = f;
    return f && f->ops == &sock_ops ? f->obj : NULL;
}

/* The calling task's host crashed: its socket calls fail as on a dead machine. */
static bool caller_down(corio__sim *w) { return corio__sim_host_now(w)->crashing; }

/* ------------------------------------------------------------------ */
/* Addresses and ports                                                 */
/* ------------------------------------------------------------------ */

static int get_in(const struct sockaddr *sa, socklen_t len, struct sockaddr_in *out)
{
    if (!sa || len < (socklen_t)sizeof(struct sockaddr_in))
        return -EINVAL;
    if (sa->sa_family != AF_INET)
        return -EAFNOSUPPORT;
    memcpy(out, sa, sizeof *out);
    memset(out->sin_zero, 0, sizeof out->sin_zero);
    return 0;
}

static void put_in(const struct sockaddr_in *a, struct sockaddr *sa, socklen_t *len)
{
    if (!sa || !len)
        return;
    size_t k = *len < sizeof *a ? *len : sizeof *a;
    memcpy(sa, a, k);
    *len = sizeof *a;
}

static bool addr_overlap(uint32_t x, uint32_t y)
{
    return x == htonl(INADDR_ANY) || y == htonl(INADDR_ANY) || x == y;
}

/* May s take port on its host?  Linux's rules, without TIME_WAIT: two
 * sockets overlap on the same port unless both set SO_REUSEPORT; an
 * accepted connection (which shares its listener's port) yields to a new
 * socket with SO_REUSEADDR. */
static bool port_free(corio__sim *w, const simnet_sock *s, uint32_t ip, uint16_t port)
{
    corio__sim_host *h = corio__sim_host_get(w, s->host);
    simnet_host *hn = h->net;
    for (corio__list *n = hn->socks.next; n != &hn->socks; n = n->next) {
        simnet_sock *o = CORIO__CONTAINER_OF(n, simnet_sock, hlink);
        if (o == s || o->type != s->type || o->local.sin_port != port || o->state == SN_DEAD)
            continue;
        if (!o->bound && !(o->type == SOCK_STREAM && (o->state == SN_CONNECTED || o->state == SN_CONNECTING)))
            continue;
        if (!addr_overlap(o->local.sin_addr.s_addr, ip))
            continue;
        if (!o->bound) { /* an accepted connection */
            if (s->reuseaddr)
                continue;
            return false;
        }
        if (s->reuseport && o->reuseport)
            continue;
        return false;
    }
    return true;
}

int corio__simnet_bind(corio__sim *w, simnet_sock *s, const struct sockaddr_in *a)
{
    corio__sim_host *h = corio__sim_host_get(w, s->host);
    uint32_t ip = a->sin_addr.s_addr;
    if (ip != htonl(INADDR_ANY) && ip != htonl(INADDR_LOOPBACK) && ip != h->addr.s_addr)
        return -EADDRNOTAVAIL;
    uint16_t port = a->sin_port;
    if (!port) {
        simnet_host *hn = h->net;
        unsigned span = EPHEMERAL_HI - EPHEMERAL_LO + 1;
        for (unsigned i = 0; i < span && !port; i++) {
            uint16_t p = htons(hn->next_port);
            hn->next_port = (uint16_t)(hn->next_port == EPHEMERAL_HI ? EPHEMERAL_LO : hn->next_port + 1u);
            if (port_free(w, s, ip, p))
                port = p;
        }
        if (!port)
            return -EADDRINUSE;
    } else if (!port_free(w, s, ip, port)) {
        return -EADDRINUSE;
    }
    s->local.sin_addr.s_addr = ip;
    s->local.sin_port = port;
    s->bound = true;
    if (s->state == SN_NEW)
        s->state = SN_BOUND;
    return 0;
}

/* ------------------------------------------------------------------ */
/* TCP: delivery, FIN, RST                                             */
/* ------------------------------------------------------------------ */

static void pump(corio__sim *w, void *arg, uint64_t a);

/* Schedule the delivery of s's queued bytes (and FIN) after a latency,
 * or after a stall when that fault strikes. */
static void pump_later(corio__sim *w, simnet_sock *s)
{
    if (s->pump_armed)
        return;
    uint64_t d = corio__sim_latency(w);
    const corio_sim_faults *f = corio__sim_faults(w);
    if (f->stall > 0 && corio__sim_fault(w, f->stall, "net stall", s->local.sin_port))
        d += corio__sim_below(w, (uint64_t)f->stall_max_ms * 1000000u + 1);
    if (corio__sim_at(w, d, pump, s, 0) == 0)
        s->pump_armed = true;
}

static int reset_errno(const simnet_sock *s) { return s->rd_eof ? EPIPE : ECONNRESET; }

/* s's connection is over by a reset: queues dropped, err pending. */
static void make_reset(corio__sim *w, simnet_sock *s, int err)
{
    s->reset = true;
    s->rst_incoming = false;
    if (err)
        s->so_error = err;
    bq_free(&s->sndq);
    s->fin_pending = false;
    if (s->peer) {
        s->peer->peer = NULL;
        s->peer = NULL;
    }
    if (s->state == SN_CONNECTING)
        s->state = SN_DEAD;
    corio__simnet_kick(w, s);
}

static void free_if_done(corio__sim *w, simnet_sock *s);

static void rst_arrive(corio__sim *w, void *arg, uint64_t a)
{
    (void)a;
    simnet_sock *s = arg;
    corio__sim_trace(w, CORIO__SIM_EV_NET, "rst", ntohs(s->local.sin_port), 0);
    if (s->listener) { /* reset before it was accepted: it just leaves the queue */
        unlink_node(&s->qlink);
        s->listener->nqueued--;
        s->listener = NULL;
        sock_free(w, s);
        return;
    }
    make_reset(w, s, s->reset ? 0 : reset_errno(s));
    free_if_done(w, s);
}

/* Send an RST to s (it arrives after a latency). */
static void rst_to(corio__sim *w, simnet_sock *s)
{
    if (s->rst_incoming || s->reset)
        return;
    s->rst_incoming = true;
    if (s->peer) {
        s->peer->peer = NULL;
        s->peer = NULL;
    }
    (void)corio__sim_at(w, corio__sim_latency(w), rst_arrive, s, 0);
}

/* Reset s's connection from s's side: s at once, its peer by an RST. */
static void reset_conn(corio__sim *w, simnet_sock *s, int err)
{
    simnet_sock *p = s->peer;
    if (p)
        rst_to(w, p);
    corio__sim_trace(w, CORIO__SIM_EV_NET, "reset", ntohs(s->local.sin_port), ntohs(s->remote.sin_port));
    make_reset(w, s, err);
}

/* An orphan (fd closed) that has nothing left to deliver goes. */
static void free_if_done(corio__sim *w, simnet_sock *s)
{
    if (s->has_fd || s->listener)
        return;
    if (s->type == SOCK_STREAM && s->state == SN_CONNECTED && !s->reset && s->peer &&
        (s->sndq.len || (s->fin_pending && !s->fin_sent)))
        return; /* still delivering */
    if (s->rst_incoming)
        return; /* the RST event holds it */
    sock_free(w, s);
}

static void pump(corio__sim *w, void *arg, uint64_t a)
{
    (void)a;
    simnet_sock *s = arg, *p = s->peer;
    s->pump_armed = false;
    if (s->reset || s->state != SN_CONNECTED)
        return;
    if (!p || (!p->has_fd && !p->listener)) {
        /* The other end is gone (closed, crashed) or closed its fd: data
         * sent to it is answered with an RST (Linux does this to a closed
         * socket's incoming bytes). */
        if (s->sndq.len) {
            if (p)
                p->peer = NULL, s->peer = NULL;
            rst_to(w, s);
            if (p)
                free_if_done(w, p);
            return;
        }
        if (!p && s->fin_pending && !s->fin_sent) {
            s->fin_sent = true;
            free_if_done(w, s);
        }
        if (!p)
            return;
    }
    if (corio__simnet_dead_host(w, p))
        return; /* the peer's host crashed: its RST is on the way */
    size_t room = (size_t)p->rcvbuf > p->rcvq.len ? (size_t)p->rcvbuf - p->rcvq.len : 0;
    size_t k = s->sndq.len < room ? s->sndq.len : room;
    if (k) {
        if (p->rd_shut) {
            bq_drop(&s->sndq, k); /* SHUT_RD: Linux accepts and drops */
        } else if (bq_move(&s->sndq, &p->rcvq, k) < 0) {
            pump_later(w, s); /* no memory: retry later */
            return;
        }
        corio__sim_trace(w, CORIO__SIM_EV_NET, "deliver", k, ntohs(s->local.sin_port));
        corio__simnet_kick(w, p);
        corio__simnet_kick(w, s);
    }
    if (!s->sndq.len && s->fin_pending && !s->fin_sent) {
        s->fin_sent = true;
        p->rd_eof = true;
        corio__sim_trace(w, CORIO__SIM_EV_NET, "fin", ntohs(s->local.sin_port), ntohs(s->remote.sin_port));
        corio__simnet_kick(w, p);
        free_if_done(w, s);
    }
}

/* ------------------------------------------------------------------ */
/* TCP: connecting                                                     */
/* ------------------------------------------------------------------ */

static void connect_done(corio__sim *w, simnet_sock *c, int err)
{
    if (c->state != SN_CONNECTING)
        return;
    if (err) {
        c->state = SN_DEAD;
        c->reset = true;
        c->so_error = err;
        corio__sim_trace(w, CORIO__SIM_EV_NET, "connect failed", (uint64_t)err, ntohs(c->remote.sin_port));
    } else {
        c->state = SN_CONNECTED;
        corio__sim_trace(w, CORIO__SIM_EV_NET, "connected", ntohs(c->local.sin_port),
                         ntohs(c->remote.sin_port));
        if (c->sndq.len || c->fin_pending)
            pump_later(w, c);
    }
    corio__simnet_kick(w, c);
}

static void synack_arrive(corio__sim *w, void *arg, uint64_t err) { connect_done(w, arg, (int)err); }

/* The listener for a SYN to (ip, port) on host h: the first that matches,
 * or with SO_REUSEPORT one drawn from those that do. */
static simnet_sock *find_listener(corio__sim *w, corio__sim_host *h, uint32_t ip, uint16_t port, bool own)
{
    simnet_host *hn = h->net;
    if (!hn)
        return NULL;
    simnet_sock *found[16];
    unsigned n = 0;
    for (corio__list *it = hn->socks.next; it != &hn->socks && n < 16; it = it->next) {
        simnet_sock *l = CORIO__CONTAINER_OF(it, simnet_sock, hlink);
        if (l->type != SOCK_STREAM || l->state != SN_LISTEN || l->local.sin_port != port || !l->has_fd)
            continue;
        uint32_t lip = l->local.sin_addr.s_addr;
        /* 127.0.0.1 reaches only the host's own loopback listeners */
        bool ok = lip == htonl(INADDR_ANY) || (lip == ip && (own || ip != htonl(INADDR_LOOPBACK)));
        if (ok)
            found[n++] = l;
    }
    if (!n)
        return NULL;
    return found[n > 1 ? corio__sim_below(w, n) : 0];
}

static void syn_arrive(corio__sim *w, void *arg, uint64_t a)
{
    (void)a;
    simnet_sock *c = arg;
    if (c->state != SN_CONNECTING)
        return;
    corio__sim_host *h = corio__simnet_route(w, c->host, c->remote.sin_addr.s_addr);
    if (!h) {
        (void)corio__sim_at(w, corio__sim_latency(w), synack_arrive, c, EHOSTUNREACH);
        return;
    }
    simnet_sock *l =
        h->crashing ? NULL
                    : find_listener(w, h, c->remote.sin_addr.s_addr, c->remote.sin_port, h->id == c->host);
    if (!l) {
        (void)corio__sim_at(w, corio__sim_latency(w), synack_arrive, c, ECONNREFUSED);
        return;
    }
    if (l->nqueued >= l->backlog) {
        /* A full backlog drops the SYN; the client tries again. */
        if (++c->connect_tries >= SYN_TRIES)
            (void)corio__sim_at(w, 0, synack_arrive, c, ETIMEDOUT);
        else
            (void)corio__sim_at(w, SYN_RETRY_NS << c->connect_tries, syn_arrive, c, 0);
        return;
    }
    simnet_sock *s = sock_new(w, h, SOCK_STREAM);
    if (!s) {
        (void)corio__sim_at(w, 0, synack_arrive, c, ENOMEM);
        return;
    }
    s->epoch = l->epoch;
    s->state = SN_CONNECTED;
    s->local.sin_addr.s_addr =
        c->remote.sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? c->remote.sin_addr.s_addr : h->addr.s_addr;
    s->local.sin_port = l->local.sin_port;
    s->remote = c->local;
    s->nodelay = l->nodelay;
    s->keepalive = l->keepalive;
    s->rcvbuf = l->rcvbuf;
    s->sndbuf = l->sndbuf;
    s->peer = c;
    c->peer = s;
    s->listener = l;
    corio__list_push_back(&l->acceptq, &s->qlink);
    l->nqueued++;
    corio__sim_trace(w, CORIO__SIM_EV_NET, "syn", ntohs(c->local.sin_port), ntohs(l->local.sin_port));
    corio__simnet_kick(w, l);
    (void)corio__sim_at(w, corio__sim_latency(w), synack_arrive, c, 0);
}

/* Start connecting s to a: 0 (in progress) or -errno. */
static int tcp_connect_start(corio__sim *w, simnet_sock *s, const struct sockaddr_in *a)
{
    switch (s->state) {
    case SN_CONNECTING:
        return -EALREADY;
    case SN_CONNECTED:
        return -EISCONN;
    case SN_LISTEN:
    case SN_DEAD:
        return -EINVAL;
    }
    if (a->sin_port == 0)
        return -ECONNREFUSED;
    corio__sim_host *me = corio__sim_host_get(w, s->host);
    struct sockaddr_in dst = *a;
    if (dst.sin_addr.s_addr == htonl(INADDR_ANY))
        dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* Linux connects 0.0.0.0 to the host itself */
    if (!s->bound) {
        struct sockaddr_in any = {.sin_family = AF_INET};
        int r = corio__simnet_bind(w, s, &any);
        if (r < 0)
            return r == -EADDRINUSE ? -EADDRNOTAVAIL : r;
        s->bound = false; /* an ephemeral port held as a connection's, not a bind's */
    }
    if (s->local.sin_addr.s_addr == htonl(INADDR_ANY))
        s->local.sin_addr.s_addr =
            dst.sin_addr.s_addr == htonl(INADDR_LOOPBACK) ? dst.sin_addr.s_addr : me->addr.s_addr;
    s->remote = dst;
    s->state = SN_CONNECTING;
    s->connect_tries = 0;
    corio__sim_trace(w, CORIO__SIM_EV_NET, "connect", ntohs(s->local.sin_port), ntohs(dst.sin_port));
    if (corio__sim_at(w, corio__sim_latency(w), syn_arrive, s, 0) < 0) {
        s->state = SN_NEW;
        return -ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* TCP and UDP: the non-blocking attempts                              */
/* ------------------------------------------------------------------ */

static size_t iov_total(const struct iovec *iov, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

/* The short_io fault: move at least 1 byte, fewer than n. */
static size_t maybe_short(corio__sim *w, size_t n, uint64_t port)
{
    const corio_sim_faults *f = corio__sim_faults(w);
    if (n > 1 && f->short_io > 0 && corio__sim_fault(w, f->short_io, "short io", port))
        return 1 + (size_t)corio__sim_below(w, n - 1);
    return n;
}

/* The reset fault, at a send or a receive of a live connection. */
static bool maybe_reset(corio__sim *w, simnet_sock *s)
{
    const corio_sim_faults *f = corio__sim_faults(w);
    if (f->reset > 0 && s->peer && corio__sim_fault(w, f->reset, "reset", ntohs(s->local.sin_port))) {
        reset_conn(w, s, ECONNRESET);
        return true;
    }
    return false;
}

static int take_error(simnet_sock *s)
{
    int e = s->so_error;
    s->so_error = 0;
    return e;
}

/* recvmsg on a stream: bytes, 0 at EOF, or -errno (-EAGAIN: would block). */
static ssize_t tcp_recv(corio__sim *w, simnet_sock *s, struct msghdr *m, int flags)
{
    if (s->state == SN_LISTEN || s->state == SN_NEW || s->state == SN_BOUND)
        return -ENOTCONN;
    if (s->state == SN_CONNECTING)
        return -EAGAIN;
    if (corio__simnet_dead_host(w, s) && !s->reset)
        make_reset(w, s, ECONNRESET);
    size_t want = iov_total(m->msg_iov, m->msg_iovlen);
    m->msg_flags = 0;
    m->msg_controllen = 0;
    if (m->msg_name)
        m->msg_namelen = 0;
    if (s->rcvq.len && want) {
        if (!(flags & MSG_PEEK) && maybe_reset(w, s))
            return -take_error(s);
        size_t n = s->rcvq.len < want ? s->rcvq.len : want;
        n = maybe_short(w, n, ntohs(s->local.sin_port));
        size_t off = 0;
        for (size_t i = 0; i < m->msg_iovlen && off < n; i++) {
            size_t k = m->msg_iov[i].iov_len < n - off ? m->msg_iov[i].iov_len : n - off;
            bq_peek(&s->rcvq, off, m->msg_iov[i].iov_base, k);
            off += k;
        }
        if (!(flags & MSG_PEEK)) {
            bq_drop(&s->rcvq, n);
            if (s->peer && s->peer->sndq.len)
                pump_later(w, s->peer); /* the window opened */
        }
        return (ssize_t)n;
    }
    if (s->so_error)
        return -take_error(s);
    if (!want)
        return 0;
    if (s->rd_eof || s->rd_shut || s->reset)
        return 0;
    return -EAGAIN;
}

static ssize_t tcp_send(corio__sim *w, simnet_sock *s, const struct msghdr *m)
{
    if (s->state == SN_CONNECTING)
        return -EAGAIN;
    if (s->state != SN_CONNECTED && !s->reset)
        return s->state == SN_DEAD ? -EPIPE : -ENOTCONN;
    if (corio__simnet_dead_host(w, s) && !s->reset)
        make_reset(w, s, ECONNRESET);
    if (s->so_error)
        return -take_error(s);
    if (s->reset || s->fin_pending)
        return -EPIPE;
    size_t want = iov_total(m->msg_iov, m->msg_iovlen);
    if (!want)
        return 0;
    size_t room = (size_t)s->sndbuf > s->sndq.len ? (size_t)s->sndbuf - s->sndq.len : 0;
    if (!room)
        return -EAGAIN;
    if (maybe_reset(w, s))
        return -take_error(s);
    size_t n = want < room ? want : room;
    n = maybe_short(w, n, ntohs(s->local.sin_port));
    if (bq_reserve(&s->sndq, s->sndq.len + n) < 0)
        return -ENOMEM;
    size_t left = n;
    for (size_t i = 0; i < m->msg_iovlen && left; i++) {
        size_t k = m->msg_iov[i].iov_len < left ? m->msg_iov[i].iov_len : left;
        (void)bq_push(&s->sndq, m->msg_iov[i].iov_base, k);
        left -= k;
    }
    pump_later(w, s);
    return (ssize_t)n;
}

static int do_accept(corio__sim *w, simnet_sock *l, struct sockaddr *sa, socklen_t *len, int flags)
{
    if (l->type != SOCK_STREAM || l->state != SN_LISTEN)
        return -EINVAL;
    if (corio__simnet_dead_host(w, l))
        return -ECONNABORTED;
    if (corio__list_empty(&l->acceptq))
        return -EAGAIN;
    simnet_sock *s = CORIO__CONTAINER_OF(l->acceptq.next, simnet_sock, qlink);
    int fd = corio__sim_fd_new(w, &sock_ops, s, O_RDWR | ((flags & SOCK_NONBLOCK) ? O_NONBLOCK : 0));
    if (fd < 0)
        return fd;
    corio__sim_fd_get(w, fd)->host = l->host;
    corio__sim_fd_get(w, fd)->fd_flags = (flags & SOCK_CLOEXEC) ? FD_CLOEXEC : 0;
    unlink_node(&s->qlink);
    l->nqueued--;
    s->listener = NULL;
    s->has_fd = true;
    put_in(&s->remote, sa, len);
    corio__sim_trace(w, CORIO__SIM_EV_NET, "accept", ntohs(s->local.sin_port), ntohs(s->remote.sin_port));
    return fd;
}

static short poll_events(corio__sim *w, simnet_sock *s)
{
    short ev = 0;
    if (s->so_error)
        ev |= POLLERR;
    if (s->type == SOCK_DGRAM) {
        ev |= POLLOUT;
        if (!corio__list_empty(&s->dgrams))
            ev |= POLLIN;
        return ev;
    }
    switch (s->state) {
    case SN_LISTEN:
        if (!corio__list_empty(&s->acceptq))
            ev |= POLLIN;
        break;
    case SN_NEW:
    case SN_BOUND:
        ev |= POLLOUT | POLLHUP;
        break;
    case SN_CONNECTING:
        break;
    case SN_DEAD:
        ev |= POLLIN | POLLOUT | POLLHUP;
        break;
    case SN_CONNECTED:
        if (corio__simnet_dead_host(w, s) && !s->reset)
            make_reset(w, s, ECONNRESET), ev |= POLLERR;
        if (s->rcvq.len || s->rd_eof || s->rd_shut || s->reset)
            ev |= POLLIN;
        if (s->rd_eof || s->reset)
            ev |= POLLRDHUP;
        if (s->reset || (s->rd_eof && s->fin_pending))
            ev |= POLLHUP;
        if (s->reset || s->fin_pending || s->sndq.len < (size_t)s->sndbuf)
            ev |= POLLOUT;
        break;
    }
    return ev;
}

/* Try op once: true if it finished (op->res set). */
static bool try_op(corio__sim *w, simnet_sock *s, corio__op *op)
{
    ssize_t r;
    size_t len = op->len > CORIO__MAX_RW ? CORIO__MAX_RW : op->len;
    switch (op->kind) {
    case CORIO__OP_RECV: {
        struct iovec v = {op->buf, len};
        struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
        r = s->type == SOCK_DGRAM ? corio__simudp_recvmsg(w, s, &m, op->flags)
                                  : tcp_recv(w, s, &m, op->flags);
        break;
    }
    case CORIO__OP_RECVMSG:
        r = s->type == SOCK_DGRAM ? corio__simudp_recvmsg(w, s, op->msg, op->flags)
                                  : tcp_recv(w, s, op->msg, op->flags);
        break;
    case CORIO__OP_SEND:
    case CORIO__OP_WRITE: {
        struct iovec v = {op->buf, len};
        struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
        r = s->type == SOCK_DGRAM ? corio__simudp_sendmsg(w, s, &m, op->flags) : tcp_send(w, s, &m);
        break;
    }
    case CORIO__OP_READ: {
        struct iovec v = {op->buf, len};
        struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
        r = s->type == SOCK_DGRAM ? corio__simudp_recvmsg(w, s, &m, 0) : tcp_recv(w, s, &m, 0);
        break;
    }
    case CORIO__OP_SENDMSG:
        r = s->type == SOCK_DGRAM ? corio__simudp_sendmsg(w, s, op->msg, op->flags) : tcp_send(w, s, op->msg);
        break;
    case CORIO__OP_ACCEPT:
        r = do_accept(w, s, op->addr, op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CORIO__OP_CONNECT:
        if (s->type == SOCK_DGRAM) {
            struct sockaddr_in a;
            r = get_in(op->addr, op->addr_len, &a);
            if (!r)
                r = corio__simudp_connect(w, s, &a);
        } else if (s->state == SN_CONNECTING) {
            r = -EAGAIN;
        } else if (s->state == SN_CONNECTED && op->backend_data) {
            r = 0;
        } else if (s->reset && op->backend_data) {
            r = s->so_error ? -take_error(s) : -ECONNREFUSED;
        } else {
            struct sockaddr_in a;
            r = get_in(op->addr, op->addr_len, &a);
            if (!r)
                r = tcp_connect_start(w, s, &a);
            if (!r) {
                op->backend_data = s; /* started: later tries report the outcome */
                r = -EAGAIN;
            }
        }
        break;
    case CORIO__OP_POLL: {
        short ev = poll_events(w, s) & (short)(op->flags | POLLERR | POLLHUP);
        r = ev ? ev : -EAGAIN;
        break;
    }
    default:
        r = -EOPNOTSUPP;
        break;
    }
    if (r == -EAGAIN)
        return false;
    op->res = r > INT32_MAX ? INT32_MAX : (int32_t)r;
    return true;
}

static void service(corio__sim *w, void *arg, uint64_t a)
{
    (void)a;
    simnet_sock *s = arg;
    s->kick_armed = false;
    /* Completions may start or cancel ops on s: restart after each. */
    bool again = true;
    while (again) {
        again = false;
        for (corio__list *n = s->ops.next; n != &s->ops; n = n->next) {
            corio__op *op = CORIO__CONTAINER_OF(n, corio__op, link);
            if (try_op(w, s, op)) {
                unlink_node(&op->link);
                op->backend_data = NULL;
                corio__sim_complete(w, op, op->res);
                again = true;
                break;
            }
        }
    }
}

static void complete_later(corio__sim *w, void *arg, uint64_t res)
{
    corio__op *op = arg;
    corio__sim_complete(w, op, (int32_t)(int64_t)res);
}

/* ------------------------------------------------------------------ */
/* The fd ops                                                          */
/* ------------------------------------------------------------------ */

static int sock_submit(corio__sim *w, void *obj, corio__op *op)
{
    simnet_sock *s = obj;
    op->backend_data = NULL;
    if (op->kind == CORIO__OP_ACCEPT_MULTI || op->kind == CORIO__OP_RECV_MULTI) {
        op->res = -EOPNOTSUPP;
        return 1;
    }
    if (try_op(w, s, op)) {
        op->backend_data = NULL;
        return 1;
    }
    corio__list_push_back(&s->ops, &op->link);
    return 0;
}

static void sock_cancel(corio__sim *w, void *obj, corio__op *op)
{
    (void)obj;
    unlink_node(&op->link);
    op->backend_data = NULL;
    if (corio__sim_at(w, 0, complete_later, op, (uint64_t)(int64_t)-ECANCELED) < 0)
        corio__sim_complete(w, op, -ECANCELED); /* no memory for the event: the loop copes */
}

static void drop_listener(corio__sim *w, simnet_sock *l)
{
    while (!corio__list_empty(&l->acceptq)) {
        simnet_sock *c = CORIO__CONTAINER_OF(l->acceptq.next, simnet_sock, qlink);
        unlink_node(&c->qlink);
        c->listener = NULL;
        reset_conn(w, c, 0);
        sock_free(w, c);
    }
    l->nqueued = 0;
}

static int sock_close(corio__sim *w, void *obj)
{
    simnet_sock *s = obj;
    s->has_fd = false;
    /* Ops still pending (nobody should leave any): they end with EBADF. */
    while (!corio__list_empty(&s->ops)) {
        corio__op *op = CORIO__CONTAINER_OF(s->ops.next, corio__op, link);
        unlink_node(&op->link);
        (void)corio__sim_at(w, 0, complete_later, op, (uint64_t)(int64_t)-EBADF);
    }
    if (s->type == SOCK_STREAM) {
        if (s->state == SN_LISTEN)
            drop_listener(w, s);
        if (s->state == SN_CONNECTED && !s->reset && s->peer) {
            bool abort = s->rcvq.len > 0 || (s->linger_on && s->linger_s == 0);
            if (abort || corio__simnet_dead_host(w, s)) {
                reset_conn(w, s, 0);
            } else {
                corio__sim_trace(w, CORIO__SIM_EV_NET, "close", ntohs(s->local.sin_port), s->sndq.len);
                s->fin_pending = true;
                if (!s->pump_armed)
                    pump_later(w, s);
                return 0; /* the delivery frees it */
            }
        }
        if (s->state == SN_CONNECTING && s->peer)
            rst_to(w, s->peer); /* the server's end, queued or accepted already */
    }
    sock_free(w, s);
    return 0;
}

static ssize_t sock_read(corio__sim *w, void *obj, void *buf, size_t n)
{
    corio__op op = {.kind = CORIO__OP_RECV, .buf = buf, .len = n};
    return try_op(w, obj, &op) ? op.res : -EAGAIN;
}

static ssize_t sock_write(corio__sim *w, void *obj, const void *buf, size_t n)
{
    corio__op op = {.kind = CORIO__OP_SEND, .buf = (void *)buf, .len = n};
    return try_op(w, obj, &op) ? op.res : -EAGAIN;
}

static int sock_stat(corio__sim *w, void *obj, struct stat *st)
{
    (void)w, (void)obj;
    st->st_mode = S_IFSOCK | 0777;
    return 0;
}

static const corio__sim_fd_ops sock_ops = {
    .kind = "socket",
    .submit = sock_submit,
    .cancel = sock_cancel,
    .close = sock_close,
    .read = sock_read,
    .write = sock_write,
    .stat = sock_stat,
};

/* ------------------------------------------------------------------ */
/* The simulated system calls                                          */
/* ------------------------------------------------------------------ */

/* The socket behind fd for a call from the running task, or NULL with
 * errno set. */
static simnet_sock *call_sock(corio__sim **wp, int fd)
{
    corio__sim *w = corio__sim_world();
    *wp = w;
    corio__sim_fd *f;
    simnet_sock *s = sock_of(w, fd, &f);
    if (!s) {
        errno = f ? ENOTSOCK : EBADF;
        return NULL;
    }
    return s;
}

/* call_sock for a call a dead host cannot make: NULL with ENETDOWN once
 * the caller's host has crashed. */
static simnet_sock *live_sock(corio__sim **wp, int fd)
{
    simnet_sock *s = call_sock(wp, fd);
    if (s && caller_down(*wp)) {
        errno = ENETDOWN;
        return NULL;
    }
    return s;
}

int corio__simsys_socket(int domain, int type, int protocol)
{
    corio__sim *w = corio__sim_world();
    if (!w)
        return fail(EINVAL);
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (domain != AF_INET)
        return fail(EAFNOSUPPORT); /* IPv6 and Unix sockets are not simulated */
    if (base != SOCK_STREAM && base != SOCK_DGRAM)
        return fail(EPROTONOSUPPORT);
    if (protocol && !(base == SOCK_STREAM && protocol == IPPROTO_TCP) &&
        !(base == SOCK_DGRAM && protocol == IPPROTO_UDP))
        return fail(EPROTONOSUPPORT);
    if (caller_down(w))
        return fail(ENETDOWN);
    simnet_sock *s = sock_new(w, corio__sim_host_now(w), base);
    if (!s)
        return fail(ENOMEM);
    int fd = corio__sim_fd_new(w, &sock_ops, s, O_RDWR | ((type & SOCK_NONBLOCK) ? O_NONBLOCK : 0));
    if (fd < 0) {
        sock_free(w, s);
        return fail(-fd);
    }
    corio__sim_fd_get(w, fd)->fd_flags = (type & SOCK_CLOEXEC) ? FD_CLOEXEC : 0;
    s->has_fd = true;
    return fd;
}

int corio__simsys_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    corio__sim *w;
    simnet_sock *s = live_sock(&w, fd);
    if (!s)
        return -1;
    struct sockaddr_in a;
    int r = get_in(sa, len, &a);
    if (r)
        return fail(-r);
    if (s->bound || s->state != SN_NEW)
        return fail(EINVAL);
    r = corio__simnet_bind(w, s, &a);
    if (r == 0)
        corio__sim_trace(w, CORIO__SIM_EV_NET, "bind", ntohs(s->local.sin_port), (uint64_t)s->type);
    return r ? fail(-r) : 0;
}

int corio__simsys_listen(int fd, int backlog)
{
    corio__sim *w;
    simnet_sock *s = live_sock(&w, fd);
    if (!s)
        return -1;
    if (s->type != SOCK_STREAM)
        return fail(EOPNOTSUPP);
    if (s->state != SN_NEW && s->state != SN_BOUND && s->state != SN_LISTEN)
        return fail(EINVAL);
    if (!s->bound) {
        struct sockaddr_in any = {.sin_family = AF_INET};
        int r = corio__simnet_bind(w, s, &any);
        if (r)
            return fail(-r);
    }
    /* Linux clamps to somaxconn (4096) and counts one more */
    s->backlog = backlog < 0 ? 4096 : backlog > 4096 ? 4097 : backlog + 1;
    if (s->state != SN_LISTEN)
        corio__sim_trace(w, CORIO__SIM_EV_NET, "listen", ntohs(s->local.sin_port), 0);
    s->state = SN_LISTEN;
    return 0;
}

int corio__simsys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    corio__sim *w;
    simnet_sock *s = live_sock(&w, fd);
    if (!s)
        return -1;
    struct sockaddr_in a;
    int r = get_in(sa, len, &a);
    if (r)
        return fail(-r);
    if (s->type == SOCK_DGRAM) {
        r = corio__simudp_connect(w, s, &a);
        return r ? fail(-r) : 0;
    }
    if (s->state == SN_CONNECTED)
        return fail(EISCONN);
    if (s->state == SN_DEAD && s->so_error)
        return fail(take_error(s));
    r = tcp_connect_start(w, s, &a);
    return fail(r ? -r : EINPROGRESS);
}

int corio__simsys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    corio__sim *w;
    simnet_sock *s = live_sock(&w, fd);
    if (!s)
        return -1;
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return fail(EINVAL);
    int r = do_accept(w, s, sa, len, flags);
    return r < 0 ? fail(-r) : r;
}

int corio__simsys_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    corio__sim *w;
    simnet_sock *s = call_sock(&w, fd);
    if (!s)
        return -1;
    if (!sa || !len)
        return fail(EFAULT);
    put_in(&s->local, sa, len);
    return 0;
}

int corio__simsys_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    corio__sim *w;
    simnet_sock *s = call_sock(&w, fd);
    if (!s)
        return -1;
    if (!sa || !len)
        return fail(EFAULT);
    bool connected = s->type == SOCK_DGRAM ? s->connected_dgram : s->state == SN_CONNECTED;
    if (!connected)
        return fail(ENOTCONN);
    put_in(&s->remote, sa, len);
    return 0;
}

static int opt_int(const void *val, socklen_t len, int *out)
{
    if (!val || len < (socklen_t)sizeof(int))
        return -EINVAL;
    memcpy(out, val, sizeof *out);
    return 0;
}

int corio__simsys_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    corio__sim *w;
    simnet_sock *s = call_sock(&w, fd);
    if (!s)
        return -1;
    int v = 0, r = 0;
    if (level == SOL_SOCKET && name == SO_LINGER) {
        struct linger lg;
        if (!val || len < (socklen_t)sizeof lg)
            return fail(EINVAL);
        memcpy(&lg, val, sizeof lg);
        s->linger_on = lg.l_onoff;
        s->linger_s = lg.l_linger;
        return 0;
    }
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO))
        return 0; /* every simulated socket is non-blocking */
    r = opt_int(val, len, &v);
    if (r)
        return fail(-r);
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR:
            s->reuseaddr = v != 0;
            return 0;
        case SO_REUSEPORT:
            s->reuseport = v != 0;
            return 0;
        case SO_KEEPALIVE:
            s->keepalive = v != 0;
            return 0;
        case SO_RCVBUF:
        case SO_SNDBUF: {
            /* Linux doubles the value, within its limits */
            long b = (long)v * 2;
            b = b < BUF_MIN ? BUF_MIN : b > BUF_MAX ? BUF_MAX : b;
            if (name == SO_RCVBUF)
                s->rcvbuf = (int)b;
            else
                s->sndbuf = (int)b;
            return 0;
        }
        case SO_BROADCAST:
        case SO_PRIORITY:
        case SO_OOBINLINE:
        case SO_RCVLOWAT:
        case SO_ZEROCOPY:
            return 0;
        default:
            return fail(ENOPROTOOPT);
        }
    }
    if (level == IPPROTO_TCP) {
        if (s->type != SOCK_STREAM)
            return fail(ENOPROTOOPT);
        if (name == TCP_NODELAY)
            s->nodelay = v != 0;
        return 0; /* TCP_CORK, TCP_KEEPIDLE, TCP_DEFER_ACCEPT...: accepted, no effect in memory */
    }
    if (level == IPPROTO_IP)
        return 0; /* IP_TOS, IP_TTL, IP_MULTICAST_*: accepted, no effect */
    return fail(ENOPROTOOPT);
}

int corio__simsys_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    corio__sim *w;
    simnet_sock *s = call_sock(&w, fd);
    if (!s)
        return -1;
    if (!val || !len)
        return fail(EFAULT);
    int v;
    if (level == SOL_SOCKET && name == SO_LINGER) {
        struct linger lg = {.l_onoff = s->linger_on, .l_linger = s->linger_s};
        size_t k = *len < sizeof lg ? *len : sizeof lg;
        memcpy(val, &lg, k);
        *len = (socklen_t)k;
        return 0;
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_ERROR:
            v = take_error(s);
            break;
        case SO_TYPE:
            v = s->type;
            break;
        case SO_DOMAIN:
            v = AF_INET;
            break;
        case SO_PROTOCOL:
            v = s->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
            break;
        case SO_ACCEPTCONN:
            v = s->state == SN_LISTEN;
            break;
        case SO_REUSEADDR:
            v = s->reuseaddr;
            break;
        case SO_REUSEPORT:
            v = s->reuseport;
            break;
        case SO_KEEPALIVE:
            v = s->keepalive;
            break;
        case SO_RCVBUF:
            v = s->rcvbuf;
            break;
        case SO_SNDBUF:
            v = s->sndbuf;
            break;
        default:
            return fail(ENOPROTOOPT);
        }
    } else if (level == IPPROTO_TCP && s->type == SOCK_STREAM && name == TCP_NODELAY) {
        v = s->nodelay;
    } else {
        return fail(ENOPROTOOPT);
    }
    size_t k = *len < sizeof v ? *len : sizeof v;
    memcpy(val, &v, k);
    *len = (socklen_t)k;
    return 0;
}

int corio__simsys_shutdown(int fd, int how)
{
    corio__sim *w;
    simnet_sock *s = call_sock(&w, fd);
    if (!s)
        return -1;
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return fail(EINVAL);
    if (s->type == SOCK_DGRAM) {
        if (!s->connected_dgram)
            return fail(ENOTCONN);
        return 0;
    }
    if (s->state == SN_LISTEN) { /* Linux: stops the listener */
        drop_listener(w, s);
        s->state = SN_DEAD;
        corio__simnet_kick(w, s);
        return 0;
    }
    if (s->state != SN_CONNECTED)
        return fail(ENOTCONN);
    if (how != SHUT_WR)
        s->rd_shut = true;
    if (how != SHUT_RD && !s->fin_pending && !s->reset) {
        s->fin_pending = true;
        corio__sim_trace(w, CORIO__SIM_EV_NET, "shutdown", ntohs(s->local.sin_port), s->sndq.len);
        pump_later(w, s);
    }
    corio__simnet_kick(w, s);
    return 0;
}

/* A call made directly by a task: never blocks (every simulated socket is
 * non-blocking), pending ops see the change through a service pass. */
static ssize_t direct(corio__op *op, int fd)
{
    corio__sim *w;
    simnet_sock *s = call_sock(&w, fd);
    if (!s)
        return -1;
    if (caller_down(w))
        return fail(s->type == SOCK_STREAM ? ECONNRESET : ENETDOWN);
    if (!try_op(w, s, op))
        return fail(EAGAIN);
    corio__simnet_kick(w, s);
    if (s->peer)
        corio__simnet_kick(w, s->peer);
    return op->res < 0 ? fail(-op->res) : op->res;
}

ssize_t corio__simsys_send(int fd, const void *buf, size_t n, int flags)
{
    corio__op op = {.kind = CORIO__OP_SEND, .fd = fd, .buf = (void *)buf, .len = n, .flags = flags};
    return direct(&op, fd);
}

ssize_t corio__simsys_recv(int fd, void *buf, size_t n, int flags)
{
    corio__op op = {.kind = CORIO__OP_RECV, .fd = fd, .buf = buf, .len = n, .flags = flags};
    return direct(&op, fd);
}

ssize_t corio__simsys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    corio__op op = {.kind = CORIO__OP_SENDMSG, .fd = fd, .flags = flags};
    op.msg = (struct msghdr *)msg;
    return direct(&op, fd);
}

ssize_t corio__simsys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    corio__op op = {.kind = CORIO__OP_RECVMSG, .fd = fd, .flags = flags};
    op.msg = msg;
    return direct(&op, fd);
}

int corio__simsys_resolve(const char *name, struct in_addr *out)
{
    corio__sim *w = corio__sim_world();
    if (!w)
        return -EINVAL;
    corio__sim_host *me = corio__sim_host_now(w);
    corio__sim_host *h = corio__sim_host_by_name(w, me, name);
    if (!h)
        return -ENOENT;
    out->s_addr = h == me ? htonl(INADDR_LOOPBACK) : h->addr.s_addr;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Crash and the run's end                                             */
/* ------------------------------------------------------------------ */

void corio__sim_net_crash(corio__sim *w, corio__sim_host *h)
{
    simnet_host *hn = h->net;
    if (!hn)
        return;
    for (corio__list *n = hn->socks.next; n != &hn->socks;) {
        simnet_sock *s = CORIO__CONTAINER_OF(n, simnet_sock, hlink);
        n = n->next;
        if (s->type == SOCK_STREAM) {
            if (s->state == SN_LISTEN) {
                drop_listener(w, s);
                n = s->hlink.next; /* the queue's sockets were this host's too */
                s->state = SN_DEAD;
            } else if (s->state == SN_CONNECTED && !s->reset) {
                reset_conn(w, s, ECONNRESET);
            } else if (s->state == SN_CONNECTING) {
                s->state = SN_DEAD;
                s->reset = true;
                s->so_error = ECONNRESET;
            }
        } else {
            s->so_error = ENETDOWN;
        }
        corio__simnet_kick(w, s);
        if (!s->has_fd && !s->listener && !s->rst_incoming && !s->kick_armed) {
            n = s->hlink.next;
            sock_free(w, s);
        }
    }
}

void corio__sim_net_destroy(corio__sim *w)
{
    for (unsigned i = 0;; i++) {
        corio__sim_host *h = corio__sim_host_get(w, i);
        if (!h)
            break;
        simnet_host *hn = h->net;
        if (!hn)
            continue;
        while (!corio__list_empty(&hn->socks)) {
            simnet_sock *s = CORIO__CONTAINER_OF(hn->socks.next, simnet_sock, hlink);
            s->peer = NULL;
            corio__list_remove(&s->hlink);
            corio__list_init(&s->hlink);
            bq_free(&s->rcvq);
            bq_free(&s->sndq);
            corio__simudp_free(w, s);
            corio__free(s);
        }
        corio__simudp_destroy_host(w, hn);
        corio__free(hn);
        h->net = NULL;
    }
}
