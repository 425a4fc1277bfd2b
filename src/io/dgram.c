/*
 * Datagram endpoints (corio_dgram): UDP over IPv4/IPv6 and AF_UNIX
 * datagram sockets, one datagram or a batch per system call.
 *
 * Every call is made straight away with MSG_DONTWAIT on the loop thread;
 * only when the kernel answers EAGAIN does the task wait, with a POLL op
 * (POLLIN or POLLOUT), and then it tries again.  A datagram socket has no
 * byte stream to buffer, so nothing sits between the caller's memory and
 * the kernel: a busy socket costs exactly one recvmsg/sendmsg, or one
 * recvmmsg/sendmmsg for a whole batch, and no op at all.  The same code
 * runs on both backends; io_uring has no recvmmsg/sendmmsg, and the
 * readiness wait plus the mmsg call is what batching needs anyway.  The
 * POLL op carries CORIO__OPH_POLL_FIRST: the call just failed, so the
 * epoll backend waits without asking poll(2) first.
 *
 * Closing while other tasks wait: corio_dgram_close cancels their POLL ops
 * and the last one to leave closes the fd (a backend must not see an fd
 * closed under a pending op), so close itself never suspends.
 */
#include "sys.h"
#include "../core/internal.h"
#include "dns.h"
#include "unixaddr.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Datagrams per recvmmsg/sendmmsg: the headers live on the task's stack. */
#define BATCH 64

struct corio_dgram {
    corio_loop *loop;
    int fd;
    int family;
    bool closed;
    bool connected;
    bool gso;               /* send_batch may coalesce with UDP_SEGMENT (UDP only; off once refused) */
    unsigned users;         /* tasks parked in a wait on this endpoint */
    corio__list waiters;    /* their wait nodes, for close to cancel */
    corio__unix_file *file; /* the Unix socket file this endpoint made, removed on close */
};

typedef struct dg_waiter {
    corio__list link;
    corio__op op;
} dg_waiter;

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

static corio_dgram *dg_new(int fd, int family, bool connected)
{
    corio_dgram *d = corio__calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = corio__loop();
    d->fd = fd;
    d->family = family;
    d->connected = connected;
    d->gso = family == AF_INET || family == AF_INET6;
    corio__list_init(&d->waiters);
    return d;
}

static void dg_free(corio_dgram *d)
{
    corio_loop *l = corio__loop();
    /* Outside its loop (after corio_run returned) there is no backend
     * left to tell. */
    corio__close_fd(l == d->loop ? l : NULL, d->fd);
    corio__unix_file_remove(d->file);
    corio__free(d);
}

static int set_int(int fd, int level, int name, int v)
{
    return corio__sys_setsockopt(fd, level, name, &v, sizeof v) < 0 ? -errno : 0;
}

/* The options of cfg that apply before bind. */
static int apply_config(int fd, bool inet, const corio_dgram_config *cfg)
{
    int r = 0;
    if (!cfg)
        return 0;
    if (inet && cfg->reuse_addr)
        r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (!r && inet && cfg->reuse_port)
        r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (!r && inet && cfg->broadcast)
        r = set_int(fd, SOL_SOCKET, SO_BROADCAST, 1);
    if (!r && cfg->rcvbuf > 0)
        r = set_int(fd, SOL_SOCKET, SO_RCVBUF, cfg->rcvbuf);
    if (!r && cfg->sndbuf > 0)
        r = set_int(fd, SOL_SOCKET, SO_SNDBUF, cfg->sndbuf);
    return r;
}

/* One UDP socket of family fam: bound to la (or to the wildcard address
 * on port lport when wild), connected to ra if not NULL.  Returns the fd
 * or -errno with nothing left open. */
static int udp_try(int fam, const struct addrinfo *la, bool wild, uint16_t lport, bool dual,
                   const struct addrinfo *ra, const corio_dgram_config *cfg)
{
    int fd = corio__sys_socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = apply_config(fd, true, cfg);
    if (!r && fam == AF_INET6 && wild && !la)
        r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? 0 : 1);
    if (!r && la) {
        if (corio__sys_bind(fd, la->ai_addr, la->ai_addrlen) < 0)
            r = -errno;
    } else if (!r && wild) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        socklen_t len;
        if (fam == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_any;
            a->sin6_port = htons(lport);
            len = sizeof *a;
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_ANY);
            a->sin_port = htons(lport);
            len = sizeof *a;
        }
        if (corio__sys_bind(fd, (struct sockaddr *)&ss, len) < 0)
            r = -errno;
    }
    /* A UDP connect only sets the default destination: it never waits. */
    if (!r && ra && corio__sys_connect(fd, ra->ai_addr, ra->ai_addrlen) < 0)
        r = -errno;
    if (r) {
        corio__sys_close(fd);
        return r;
    }
    return fd;
}

int corio_dgram_open(const char *local_host, uint16_t local_port, const char *remote_host,
                     uint16_t remote_port, const corio_dgram_config *cfg, corio_dgram **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    int family = cfg ? cfg->family : 0;
    if (family != 0 && family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    int r = corio__check();
    if (r)
        return r;
    bool wild_local = !local_host || !*local_host;
    struct addrinfo *rres = NULL, *lres = NULL;
    if (remote_host && (r = corio__resolve(remote_host, remote_port, SOCK_DGRAM, 0, &rres)) < 0)
        return r;
    if (!wild_local && (r = corio__resolve(local_host, local_port, SOCK_DGRAM, AI_PASSIVE, &lres)) < 0) {
        if (rres)
            corio__resolve_free(rres);
        return r;
    }
    /* Bind the wildcard when asked for a port, or when nothing else gives
     * the socket an address (no remote: it exists to receive). */
    bool wild = wild_local && (local_port != 0 || !remote_host);
    int fd = -ENOENT;
    int fam = 0;
    bool done = false;
    for (struct addrinfo *ra = rres; !done && (ra || !remote_host); ra = ra ? ra->ai_next : NULL) {
        for (struct addrinfo *la = lres; !done && (la || wild_local); la = la ? la->ai_next : NULL) {
            int f = ra ? ra->ai_family : la ? la->ai_family : family ? family : AF_INET6;
            if ((family && f != family) || (la && f != la->ai_family) || (f != AF_INET && f != AF_INET6)) {
                if (!la)
                    break;
                continue;
            }
            r = udp_try(f, la, wild, local_port, !family && !ra, ra, cfg);
            /* No IPv6 on this machine: the wildcard falls back to IPv4. */
            if (r == -EAFNOSUPPORT && !ra && !la && !family && f == AF_INET6) {
                f = AF_INET;
                r = udp_try(f, NULL, wild, local_port, false, NULL, cfg);
            }
            if (r >= 0) {
                fd = r;
                fam = f;
                done = true;
            } else if (fd == -ENOENT || r != -EAFNOSUPPORT) {
                fd = r; /* the most telling error: not "no address" */
            }
            if (!la)
                break;
        }
        if (!ra)
            break;
    }
    if (rres)
        corio__resolve_free(rres);
    if (lres)
        corio__resolve_free(lres);
    if (!done)
        return fd;
    corio_dgram *d = dg_new(fd, fam, remote_host != NULL);
    if (!d) {
        corio__sys_close(fd);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

int corio_dgram_open_unix(const char *local_path, const char *remote_path, const corio_dgram_config *cfg,
                          corio_dgram **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!corio__loop())
        return -EPERM;
    struct sockaddr_un la, ra;
    socklen_t llen = 0, rlen = 0;
    int r;
    if (local_path && (r = corio__unix_addr(local_path, true, &la, &llen)) < 0)
        return r;
    if (remote_path && (r = corio__unix_addr(remote_path, false, &ra, &rlen)) < 0)
        return r;
    int fd = corio__sys_socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    r = apply_config(fd, false, cfg);
    corio__unix_file *file = NULL;
    if (!r && local_path && !(r = corio__unix_bind(fd, SOCK_DGRAM, local_path, &la, llen)) &&
        (r = corio__unix_file_note(local_path, &file)) < 0)
        (void)unlink(local_path); /* ours: just bound */
    if (!r && remote_path && corio__sys_connect(fd, (struct sockaddr *)&ra, rlen) < 0)
        r = errno == EAGAIN ? -ECONNREFUSED : -errno;
    corio_dgram *d = NULL;
    if (!r && !(d = dg_new(fd, AF_UNIX, remote_path != NULL)))
        r = -ENOMEM;
    if (r) {
        corio__unix_file_remove(file);
        corio__sys_close(fd);
        return r;
    }
    d->file = file;
    *out = d;
    return 0;
}

int corio_dgram_from_fd(int fd, corio_dgram **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating() && !corio__sys_virtual(fd)) { /* a real fd */
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    if (!out || fd < 0) {
        if (out)
            *out = NULL;
        return -EINVAL;
    }
    *out = NULL;
    int type = 0, dom = 0, r = 0;
    socklen_t sl = sizeof type;
    if (corio__sys_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
        r = -errno;
    else if (type != SOCK_DGRAM)
        r = -EPROTOTYPE;
    sl = sizeof dom;
    if (!r && corio__sys_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &sl) < 0)
        r = -errno;
    int fl = r ? 0 : fcntl(fd, F_GETFL);
    if (!r && (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0))
        r = -errno;
    struct sockaddr_storage ss;
    socklen_t pl = sizeof ss;
    bool connected = !r && corio__sys_getpeername(fd, (struct sockaddr *)&ss, &pl) == 0;
    corio_dgram *d = NULL;
    if (!r && !(d = dg_new(fd, dom, connected)))
        r = -ENOMEM;
    if (r) {
        corio__sys_close(fd);
        return r;
    }
    *out = d;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Waiting                                                             */
/* ------------------------------------------------------------------ */

/* Park until d's fd is ready for events (the call just said EAGAIN).
 * Returns 0, the interrupt (-ECANCELED, -CORIO_EDEADLINE), or -EBADF if d
 * was closed meanwhile: then d may be freed already and must not be
 * touched again. */
static int dg_wait(corio_dgram *d, short events)
{
    dg_waiter w;
    corio__list_init(&w.link);
    memset(&w.op, 0, sizeof w.op);
    w.op.kind = CORIO__OP_POLL;
    w.op.fd = d->fd;
    w.op.flags = events;
    w.op.hint = CORIO__OPH_POLL_FIRST;
    w.op.off = -1;
    corio__list_push_back(&d->waiters, &w.link);
    d->users++;
    int r = corio__op_run(&w.op);
    corio__list_remove(&w.link);
    d->users--;
    if (d->closed) {
        if (d->users == 0)
            dg_free(d);
        return -EBADF;
    }
    return r < 0 ? r : 0;
}

/* The checks every data call starts with. */
static inline int dg_enter(const corio_dgram *d)
{
    if (CORIO__UNLIKELY(d->closed))
        return -EBADF;
    corio_loop *l = corio__loop();
    if (CORIO__UNLIKELY(l != d->loop || !l->current))
        return -EPERM;
    return corio__check_task(l->current);
}

static inline int errno_r(void) { return errno == EWOULDBLOCK ? -EAGAIN : -errno; }

/* Wait until a send that said EAGAIN may succeed.  A send to an
 * unconnected Unix socket whose receiver's queue is full fails with
 * EAGAIN while poll(2) calls the sender writable (the kernel tracks only a
 * connected peer's queue, and the queue may be full of other senders'
 * datagrams), so no readiness wait can tell when there is room: such a
 * send backs off for a millisecond and tries again.  Returns 0 or an
 * error as dg_wait. */
static int dg_wait_send(corio_dgram *d)
{
    if (d->family != AF_UNIX || d->connected)
        return dg_wait(d, POLLOUT);
    d->users++;
    int r = corio_sleep_ms(1);
    d->users--;
    if (d->closed) {
        if (d->users == 0)
            dg_free(d);
        return -EBADF;
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* One datagram                                                        */
/* ------------------------------------------------------------------ */

ssize_t corio_dgram_send_to(corio_dgram *d, const void *buf, size_t len, const struct sockaddr *to,
                            socklen_t to_len)
{
    if (!d || (!buf && len) || (!to && to_len))
        return -EINVAL;
    int r = dg_enter(d);
    if (r)
        return r;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr m = {
        .msg_name = (void *)to, .msg_namelen = to ? to_len : 0, .msg_iov = &iov, .msg_iovlen = 1};
    for (;;) {
        ssize_t n = corio__sys_sendmsg(d->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        n = errno_r();
        if (n == -EINTR)
            continue;
        if (n != -EAGAIN)
            return n;
        if ((r = dg_wait_send(d)) < 0)
            return r;
    }
}

ssize_t corio_dgram_send(corio_dgram *d, const void *buf, size_t len)
{
    return corio_dgram_send_to(d, buf, len, NULL, 0);
}

ssize_t corio_dgram_recv_from(corio_dgram *d, void *buf, size_t cap, struct sockaddr_storage *from,
                              socklen_t *from_len, int *flags)
{
    if (!d || (!buf && cap))
        return -EINVAL;
    if (flags)
        *flags = 0;
    if (from_len)
        *from_len = 0;
    int r = dg_enter(d);
    if (r)
        return r;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    for (;;) {
        m.msg_name = from;
        m.msg_namelen = from ? sizeof *from : 0;
        ssize_t n = corio__sys_recvmsg(d->fd, &m, MSG_DONTWAIT);
        if (n >= 0) {
            if (flags && (m.msg_flags & MSG_TRUNC))
                *flags = CORIO_DGRAM_TRUNC;
            if (from_len)
                *from_len = m.msg_namelen;
            return n;
        }
        n = errno_r();
        if (n == -EINTR)
            continue;
        if (n != -EAGAIN)
            return n;
        if ((r = dg_wait(d, POLLIN)) < 0)
            return r;
    }
}

ssize_t corio_dgram_recv(corio_dgram *d, void *buf, size_t cap, int *flags)
{
    return corio_dgram_recv_from(d, buf, cap, NULL, NULL, flags);
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

int corio_dgram_recv_batch(corio_dgram *d, corio_dgram_msg *msgs, unsigned n)
{
    if (!d || (!msgs && n))
        return -EINVAL;
    int r = dg_enter(d);
    if (r || n == 0)
        return r;
    struct mmsghdr h[BATCH];
    struct iovec iov[BATCH];
    unsigned got = 0;
    while (got < n) {
        unsigned k = n - got < BATCH ? n - got : BATCH;
        for (unsigned i = 0; i < k; i++) {
            corio_dgram_msg *m = &msgs[got + i];
            iov[i].iov_base = m->buf;
            iov[i].iov_len = m->buf ? m->cap : 0;
            h[i].msg_hdr = (struct msghdr){
                .msg_name = &m->addr, .msg_namelen = sizeof m->addr, .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int c = corio__sys_recvmmsg(d->fd, h, k, MSG_DONTWAIT, NULL);
        if (c < 0) {
            c = errno_r();
            if (c == -EINTR)
                continue;
            if (got)
                break; /* what came is returned; the error (if real) shows next time */
            if (c != -EAGAIN)
                return c;
            if ((r = dg_wait(d, POLLIN)) < 0)
                return r;
            continue;
        }
        for (int i = 0; i < c; i++) {
            corio_dgram_msg *m = &msgs[got + (unsigned)i];
            m->len = h[i].msg_len;
            m->flags = (h[i].msg_hdr.msg_flags & MSG_TRUNC) ? CORIO_DGRAM_TRUNC : 0;
            m->addr_len = h[i].msg_hdr.msg_namelen;
        }
        got += (unsigned)c;
        if ((unsigned)c < k)
            break; /* the queue is empty: don't wait for more */
    }
    return (int)got;
}

/* How many datagrams from m on can leave as one UDP GSO send
 * (UDP_SEGMENT): consecutive ones of the same size to the same address.
 * The stack is then walked once for the whole run and the datagrams are
 * cut apart at its bottom, each still its own datagram for the receiver;
 * for an echo or a reply burst to one peer that is most of a send's cost.
 * A size above what an Ethernet MTU carries is left alone, so GSO never
 * has to fragment. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_LEN 1452
#define GSO_MAX_TOTAL 65000

static unsigned gso_run(const corio_dgram *d, const corio_dgram_msg *m, unsigned n)
{
    size_t len = m[0].len;
    if (!d->gso || n < 2 || len == 0 || len > GSO_MAX_LEN)
        return 1;
    unsigned r = 1;
    size_t total = len;
    while (r < n && r < GSO_MAX_SEGS && m[r].len == len && total + len <= GSO_MAX_TOTAL &&
           m[r].addr_len == m[0].addr_len &&
           (!m[0].addr_len || memcmp(&m[r].addr, &m[0].addr, m[0].addr_len) == 0)) {
        total += len;
        r++;
    }
    return r;
}

int corio_dgram_send_batch(corio_dgram *d, const corio_dgram_msg *msgs, unsigned n)
{
    if (!d || (!msgs && n))
        return -EINVAL;
    int r = dg_enter(d);
    if (r || n == 0)
        return r;
    struct mmsghdr h[BATCH];
    struct iovec iov[BATCH];
    unsigned cnt[BATCH]; /* datagrams in each header */
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl[BATCH];
    unsigned sent = 0;
    while (sent < n) {
        unsigned hk = 0, used = 0;
        while (hk < BATCH && used < BATCH && sent + used < n) {
            const corio_dgram_msg *m = &msgs[sent + used];
            unsigned run = gso_run(d, m, n - sent - used);
            if (run > BATCH - used)
                run = BATCH - used;
            for (unsigned j = 0; j < run; j++) {
                iov[used + j].iov_base = m[j].buf;
                iov[used + j].iov_len = m[j].len;
            }
            h[hk].msg_hdr = (struct msghdr){.msg_name = m->addr_len ? (void *)&m->addr : NULL,
                                            .msg_namelen = m->addr_len,
                                            .msg_iov = &iov[used],
                                            .msg_iovlen = run};
            if (run > 1) {
                memset(&ctl[hk], 0, sizeof ctl[hk]); /* the padding goes to the kernel too */
                struct cmsghdr *cm = &ctl[hk].align;
                cm->cmsg_level = SOL_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t seg = (uint16_t)m->len;
                memcpy(CMSG_DATA(cm), &seg, sizeof seg);
                h[hk].msg_hdr.msg_control = ctl[hk].buf;
                h[hk].msg_hdr.msg_controllen = sizeof ctl[hk].buf;
            }
            cnt[hk++] = run;
            used += run;
        }
        int c = corio__sys_sendmmsg(d->fd, h, hk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (c > 0) {
            for (int i = 0; i < c; i++)
                sent += cnt[i];
            continue;
        }
        c = c < 0 ? errno_r() : -EAGAIN;
        if (c == -EINTR)
            continue;
        /* A kernel or route without UDP GSO (no UDP_SEGMENT, no checksum
         * offload on the way out, a smaller MTU) refuses the run: send
         * this endpoint's datagrams one by one from now on. */
        if (cnt[0] > 1 &&
            (c == -EIO || c == -EINVAL || c == -ENOPROTOOPT || c == -EOPNOTSUPP || c == -EMSGSIZE)) {
            d->gso = false;
            continue;
        }
        if (c != -EAGAIN)
            return sent ? (int)sent : c;
        if ((r = dg_wait_send(d)) < 0)
            return r == -EBADF || !sent ? r : (int)sent;
    }
    return (int)sent;
}

/* ------------------------------------------------------------------ */
/* Options and addresses                                               */
/* ------------------------------------------------------------------ */

/* Where opt lives for d's family: level and name, or -errno. */
static int opt_where(const corio_dgram *d, corio_dgram_option opt, int *level, int *name)
{
    bool v6 = d->family == AF_INET6, ip = d->family == AF_INET || v6;
    *level = SOL_SOCKET;
    switch (opt) {
    case CORIO_DGRAM_BROADCAST:
        *name = SO_BROADCAST;
        return 0;
    case CORIO_DGRAM_REUSEADDR:
        *name = SO_REUSEADDR;
        return 0;
    case CORIO_DGRAM_REUSEPORT:
        *name = SO_REUSEPORT;
        return 0;
    case CORIO_DGRAM_RCVBUF:
        *name = SO_RCVBUF;
        return 0;
    case CORIO_DGRAM_SNDBUF:
        *name = SO_SNDBUF;
        return 0;
    case CORIO_DGRAM_MULTICAST_TTL:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
        *name = v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL;
        break;
    case CORIO_DGRAM_MULTICAST_LOOP:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
        *name = v6 ? IPV6_MULTICAST_LOOP : IP_MULTICAST_LOOP;
        break;
    case CORIO_DGRAM_MULTICAST_IF:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
        *name = v6 ? IPV6_MULTICAST_IF : IP_MULTICAST_IF;
        break;
    case CORIO_DGRAM_TTL:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
        *name = v6 ? IPV6_UNICAST_HOPS : IP_TTL;
        break;
    default:
        return -EINVAL;
    }
    return ip ? 0 : -ENOPROTOOPT;
}

int corio_dgram_set_option(corio_dgram *d, corio_dgram_option opt, int value)
{
    if (!d)
        return -EINVAL;
    int level, name, r = opt_where(d, opt, &level, &name);
    if (r)
        return r;
    switch (opt) {
    case CORIO_DGRAM_BROADCAST:
    case CORIO_DGRAM_REUSEADDR:
    case CORIO_DGRAM_REUSEPORT:
    case CORIO_DGRAM_MULTICAST_LOOP:
        if (value != 0 && value != 1)
            return -EINVAL;
        break;
    case CORIO_DGRAM_MULTICAST_TTL:
        if (value < 0 || value > 255)
            return -EINVAL;
        break;
    case CORIO_DGRAM_TTL:
        if (value < 1 || value > 255)
            return -EINVAL;
        break;
    default:
        if (value < 0)
            return -EINVAL;
        break;
    }
    if (opt == CORIO_DGRAM_MULTICAST_IF && d->family == AF_INET) {
        /* IPv4 names the interface by index through ip_mreqn. */
        struct ip_mreqn mr;
        memset(&mr, 0, sizeof mr);
        mr.imr_ifindex = value;
        return corio__sys_setsockopt(d->fd, level, name, &mr, sizeof mr) < 0 ? -errno : 0;
    }
    return set_int(d->fd, level, name, value);
}

int corio_dgram_get_option(const corio_dgram *d, corio_dgram_option opt, int *value)
{
    if (!d || !value)
        return -EINVAL;
    int level, name, r = opt_where(d, opt, &level, &name);
    if (r)
        return r;
    if (opt == CORIO_DGRAM_MULTICAST_IF && d->family == AF_INET) {
        /* Linux reads back only the interface address here; the index
         * set through ip_mreqn is kept but not reported. */
        return -ENOPROTOOPT;
    }
    /* IP_MULTICAST_TTL/LOOP may come back as a single byte. */
    int v = 0;
    socklen_t len = sizeof v;
    if (corio__sys_getsockopt(d->fd, level, name, &v, &len) < 0)
        return -errno;
    *value = len == 1 ? *(unsigned char *)&v : v;
    return 0;
}

static int membership(corio_dgram *d, const char *group, const char *ifname, bool join)
{
    if (!d || !group)
        return -EINVAL;
    if (d->family != AF_INET && d->family != AF_INET6)
        return -EAFNOSUPPORT;
    unsigned ifindex = 0;
    if (ifname && *ifname && !(ifindex = if_nametoindex(ifname)))
        return -ENODEV;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, group, &a4) == 1) {
        if (!IN_MULTICAST(ntohl(a4.s_addr)))
            return -EINVAL;
        /* SOL_IP works on a dual-stack IPv6 socket too. */
        struct ip_mreqn mr;
        memset(&mr, 0, sizeof mr);
        mr.imr_multiaddr = a4;
        mr.imr_ifindex = (int)ifindex;
        int name = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
        return corio__sys_setsockopt(d->fd, IPPROTO_IP, name, &mr, sizeof mr) < 0 ? -errno : 0;
    }
    if (inet_pton(AF_INET6, group, &a6) == 1) {
        if (d->family != AF_INET6)
            return -EAFNOSUPPORT;
        if (!IN6_IS_ADDR_MULTICAST(&a6))
            return -EINVAL;
        struct ipv6_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.ipv6mr_multiaddr = a6;
        mr.ipv6mr_interface = ifindex;
        int name = join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP;
        return corio__sys_setsockopt(d->fd, IPPROTO_IPV6, name, &mr, sizeof mr) < 0 ? -errno : 0;
    }
    return -EINVAL;
}

int corio_dgram_join(corio_dgram *d, const char *group, const char *ifname)
{
    return membership(d, group, ifname, true);
}

int corio_dgram_leave(corio_dgram *d, const char *group, const char *ifname)
{
    return membership(d, group, ifname, false);
}

/* getsockname or getpeername into *addr, zeroed first: an abstract Unix
 * name is not NUL-terminated. */
static int name_of(const corio_dgram *d, int (*get)(int, struct sockaddr *, socklen_t *),
                   struct sockaddr_storage *addr, socklen_t *len)
{
    if (!d || !addr)
        return -EINVAL;
    memset(addr, 0, sizeof *addr);
    socklen_t l = sizeof *addr;
    if (get(d->fd, (struct sockaddr *)addr, &l) < 0)
        return -errno;
    if (len)
        *len = l;
    return 0;
}

int corio_dgram_sockname(const corio_dgram *d, struct sockaddr_storage *addr, socklen_t *len)
{
    return name_of(d, corio__sys_getsockname, addr, len);
}

int corio_dgram_peername(const corio_dgram *d, struct sockaddr_storage *addr, socklen_t *len)
{
    return name_of(d, corio__sys_getpeername, addr, len);
}

uint16_t corio_dgram_port(const corio_dgram *d)
{
    struct sockaddr_storage ss;
    if (!d || corio_dgram_sockname(d, &ss, NULL) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int corio_dgram_fd(const corio_dgram *d) { return d ? d->fd : -EINVAL; }

void corio_dgram_close(corio_dgram *d)
{
    if (!d || d->closed)
        return;
    d->closed = true;
    if (d->users == 0) {
        dg_free(d);
        return;
    }
    /* The waiters see d->closed when their op completes, answer -EBADF,
     * and the last one out frees d. */
    for (corio__list *it = d->waiters.next; it != &d->waiters; it = it->next)
        corio__op_cancel(d->loop, &CORIO__CONTAINER_OF(it, dg_waiter, link)->op);
}
