/*
 * TCP servers and clients on top of streams (asyncio.start_server and
 * asyncio.open_connection).
 *
 * A server owns one listening socket per bound address (one dual-stack
 * socket for "all interfaces"; src/io/listen.c opens them, the same way as
 * for the HTTP server) and runs one accept task per socket; every
 * accepted connection becomes a stream handed to the user's handler in a
 * task of its own, named after the peer ("conn 127.0.0.1:5555").  The server
 * keeps the live handler tasks in a list so that closing it can stop
 * accepting, give the handlers a grace period, then cancel and await the
 * rest.  Running out of file descriptors while accepting (EMFILE/ENFILE)
 * pauses that accept task for 100 ms instead of spinning on a listening
 * socket that stays readable or giving up; it is reported once per server.
 * (The HTTP server closes its longest-idle keep-alive connections to make
 * room instead; here every connection belongs to a handler that may be
 * between reads for good reason, so none is "idle" to close, and the
 * pause, tested by emfile_in_accept_pauses_and_recovers, is all it does.)
 *
 * On io_uring with multishot support an accept task keeps one multishot
 * accept armed instead of submitting an accept per connection: the
 * completion callback starts the handler task directly, and the accept task
 * only wakes when the multishot ends (an error such as EMFILE, or a
 * cancel).  The peer address then comes from getpeername (the kernel would
 * reuse one address buffer for every connection of the multishot).
 *
 * TCP_NODELAY is set on the listening socket: Linux copies it to every
 * accepted socket, which saves a setsockopt per connection.
 */
#include "sys.h"
#include "dns.h"
#include "listen.h"
#include "server.h"
#include "stream.h"
#include "tls_stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TLS_MIN_STACK (64u * 1024u)

typedef struct listener {
    int fd;
    corio_task *task; /* its accept task while that runs */
    corio_server *srv;
    int interrupted;   /* multishot: the accept task was cancelled */
    bool unix_streams; /* an AF_UNIX socket: its streams are Unix streams */
    corio__op mop;     /* multishot accept (io_uring) */
} listener;

typedef struct conn {
    corio__list link; /* srv->conns */
    corio_task *task;
    corio_server *srv;
    corio_stream *stream;
    bool closed; /* the handler closed the stream itself */
} conn;

typedef struct serve_waiter {
    corio__list link;
    corio_task *task;
} serve_waiter;

struct corio_server {
    corio_loop *loop;
    corio_conn_fn handler;
    void *arg;
    size_t stack_size;
    corio_tls *tls; /* a reference: each connection's task runs the handshake first */
    bool closing;
    bool fd_limit_logged;
    bool keep_fds;    /* closing a server that failed to start: its fds go back to the caller */
    bool receive_fds; /* cfg->receive_fds: Unix streams keep the fds their peers pass */
    void (*on_close)(void *);
    void *on_close_arg;
    unsigned nlisteners;
    unsigned nacceptors; /* accept tasks still running */
    unsigned nconns;     /* handler tasks still running */
    corio__list conns;
    corio__list serve_waiters;
    corio__list close_waiters; /* later corio_server_close callers, woken when it is freed */
    corio_task *closer;        /* the task inside corio_server_close, if any */
    listener ls[];
};

/* Something corio_server_close waits for changed: let it re-check. */
static void closer_poke(corio_server *srv)
{
    if (srv->closer)
        corio__wake(srv->closer, 1);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static void *conn_main(void *arg)
{
    conn *c = arg;
    corio__stream_set_close_flag(c->stream, &c->closed);
    /* A failed handshake (a scanner, plaintext on the TLS port, a stalled
     * client at its deadline) closes the connection without the handler. */
    if (!c->srv->tls || corio_stream_start_tls(c->stream, c->srv->tls, NULL) == 0)
        c->srv->handler(c->stream, c->srv->arg);
    if (!c->closed) {
        corio__stream_set_close_flag(c->stream, NULL);
        corio_stream_close(c->stream);
    }
    corio_server *srv = c->srv; /* NULL if this handler closed the server itself */
    if (srv) {
        corio__list_remove(&c->link);
        srv->nconns--;
        if (srv->nconns == 0)
            closer_poke(srv);
    }
    corio__free(c);
    return NULL;
}

/* Start the handler task for an accepted fd (peer NULL: ask the socket).
 * Never fails loudly: on exhaustion the connection is dropped (the peer
 * sees it closed). */
static void start_conn(listener *ls, int fd, const struct sockaddr_storage *peer)
{
    corio_server *srv = ls->srv;
    conn *c = corio__malloc(sizeof *c);
    corio_stream *s = c ? corio__stream_new(fd) : NULL;
    if (!s) {
        corio__free(c);
        corio__close_fd(srv->loop, fd);
        return;
    }
    if (ls->unix_streams) {
        corio__stream_set_unix(s);
        if (srv->receive_fds)
            (void)corio_stream_set_receive_fds(s, true); /* a Unix stream nobody has read from */
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss); /* an unnamed Unix peer fills in the family only */
    if (!peer) {
        socklen_t sl = sizeof ss;
        if (corio__sys_getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
            ss.ss_family = AF_UNSPEC;
        peer = &ss;
    }
    char name[64] = "conn ";
    corio_addr_format((const struct sockaddr *)peer, name + 5, sizeof name - 5);
    c->srv = srv;
    c->stream = s;
    c->closed = false;
    c->task = corio__spawn(srv->loop, name, srv->stack_size, conn_main, c);
    if (!c->task) {
        corio_stream_close(s);
        corio__free(c);
        return;
    }
    corio_task_detach(c->task); /* it unlinks itself; close cancels it through the list */
    corio__list_init(&c->link);
    corio__list_push_back(&srv->conns, &c->link);
    srv->nconns++;
}

/* ------------------------------------------------------------------ */
/* Accepting                                                           */
/* ------------------------------------------------------------------ */

/* What to do after accept failed with r: 1 = go on accepting, 0 = this
 * listener stops.  Suspends (the pause after EMFILE). */
static int accept_failed(corio_server *srv, listener *ls, int r)
{
    switch (corio__accept_error(r)) {
    case CORIO__ACCEPT_STOP:
        return 0;
    case CORIO__ACCEPT_PAUSE:
        if (!srv->fd_limit_logged) {
            srv->fd_limit_logged = true;
            fprintf(stderr, "corio: accept: %s; pausing accepts for %d ms at a time until it clears\n",
                    corio_strerror(r), CORIO__ACCEPT_PAUSE_MS);
        }
        return corio_sleep_ms(CORIO__ACCEPT_PAUSE_MS) == 0;
    case CORIO__ACCEPT_RETRY:
        return 1; /* the peer's problem, not the listener's (see accept(2)) */
    default:
        fprintf(stderr, "corio: accept on fd %d failed: %s; this listener stops\n", ls->fd,
                corio_strerror(r));
        return 0;
    }
}

/* Every completion of a multishot accept (loop context). */
static void accept_multi_done(corio__op *op)
{
    listener *ls = CORIO__CONTAINER_OF(op, listener, mop);
    corio_server *srv = ls->srv;
    if (op->res >= 0) {
        /* Accepted as the server closes (the multishot was being
         * cancelled): served all the same, within the close's grace, so no
         * connection the kernel counted as accepted is dropped (with a
         * listening socket handed to a successor process, nobody else
         * would answer it).  Only a loop ending without a close drops it. */
        if (ls->interrupted && !srv->closing)
            corio__close_fd(srv->loop, op->res);
        else
            start_conn(ls, op->res, NULL);
    }
    if (!op->more)
        corio__wake(ls->task, op->res >= 0 ? 0 : op->res);
}

static void accept_multi_interrupted(corio_task *t, int reason)
{
    listener *ls = t->wait_obj;
    ls->interrupted = reason;
    corio__op_cancel(t->loop, &ls->mop);
    /* the final completion wakes the task */
}

/* Accept through a multishot op until the task is cancelled.  Returns 1 if
 * the kernel refused the op at once (the caller falls back to plain
 * accepts), else 0. */
static int accept_multishot(corio_server *srv, listener *ls)
{
    corio_loop *l = srv->loop;
    while (!srv->closing && corio__check() == 0) {
        memset(&ls->mop, 0, sizeof ls->mop);
        ls->mop.kind = CORIO__OP_ACCEPT_MULTI;
        ls->mop.fd = ls->fd;
        ls->mop.off = -1;
        ls->mop.done = accept_multi_done;
        ls->interrupted = 0;
        if (corio__op_start(l, &ls->mop))
            return 1;
        int r = corio__suspend(accept_multi_interrupted, ls, "accept", CORIO__NO_DEADLINE);
        if (ls->interrupted)
            return 0;
        if (r < 0 && !accept_failed(srv, ls, r))
            return 0;
    }
    return 0;
}

static void *accept_main(void *arg)
{
    listener *ls = arg;
    corio_server *srv = ls->srv;
    if (!corio__loop_can(srv->loop, CORIO__CAP_MULTISHOT) || accept_multishot(srv, ls) == 1) {
        while (!srv->closing) {
            struct sockaddr_storage peer;
            socklen_t plen = sizeof peer;
            memset(&peer, 0, sizeof peer); /* an unnamed Unix peer's address is its family alone */
            corio__op op;
            memset(&op, 0, sizeof op);
            op.kind = CORIO__OP_ACCEPT;
            op.fd = ls->fd;
            op.addr = (struct sockaddr *)&peer;
            op.addrlen = &plen;
            op.off = -1;
            int r = corio__op_run(&op);
            if (r >= 0) {
                if (corio_cancelled() && !srv->closing) /* as in accept_multi_done */
                    corio__close_fd(srv->loop, r);
                else
                    start_conn(ls, r, &peer);
            } else if (!accept_failed(srv, ls, r)) {
                break;
            }
        }
    }
    ls->task = NULL;
    srv->nacceptors--;
    if (srv->nacceptors == 0)
        closer_poke(srv);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Starting                                                            */
/* ------------------------------------------------------------------ */

static int server_run(corio_loop *l, const int *fds, int n, corio_conn_fn handler, void *arg,
                      const corio_server_config *cfg, corio_server **out);

int corio__server_begin(corio_conn_fn handler, const corio_server_config **cfg, corio_server **out,
                        corio_loop **l)
{
    static const corio_server_config defaults;
    if (out)
        *out = NULL;
    if (!handler || !out || (*cfg && (*cfg)->stack_size > CORIO__STACK_SIZE_MAX))
        return -EINVAL;
    if (!(*l = corio__loop()))
        return -EPERM;
    if (!*cfg)
        *cfg = &defaults;
    return corio__check();
}

int corio_server_start(const char *host, uint16_t port, corio_conn_fn handler, void *arg,
                       const corio_server_config *cfg, corio_server **out)
{
    corio_loop *l;
    int r = corio__server_begin(handler, &cfg, out, &l);
    if (r)
        return r;

    int fds[CORIO__MAX_LISTENERS];
    corio__listen_opts lo = {
        .backlog = cfg->backlog,
        .reuse_port = cfg->reuse_port,
        .nodelay = !cfg->nagle,
    };
    int n = corio__listen_all(host, port, &lo, fds, CORIO__MAX_LISTENERS);
    if (n < 0)
        return n;
    r = server_run(l, fds, n, handler, arg, cfg, out);
    if (r < 0)
        while (n)
            corio__sys_close(fds[--n]);
    return r;
}

/* Sockets passed in (socket activation, src/io/activation.c): checked and
 * prepared there, then served as if bound here. */
int corio_server_start_fds(const int *fds, unsigned n, corio_conn_fn handler, void *arg,
                           const corio_server_config *cfg, corio_server **out)
{
    corio_loop *l;
    int r = corio__server_begin(handler, &cfg, out, &l);
    if (r)
        return r;
    r = corio__listen_adopt(fds, n, CORIO__MAX_LISTENERS, !cfg->nagle);
    if (r)
        return r;
    return server_run(l, fds, (int)n, handler, arg, cfg, out);
}

int corio__server_adopt(corio_loop *l, const int *fds, int n, corio_conn_fn handler, void *arg,
                        const corio_server_config *cfg, corio_server **out)
{
    return server_run(l, fds, n, handler, arg, cfg, out);
}

void corio__server_on_close(corio_server *srv, void (*fn)(void *), void *arg)
{
    srv->on_close = fn;
    srv->on_close_arg = arg;
}

/* Start serving the n listening sockets fds.  Returns 0 and *out (the
 * server owns the fds from then on), or -errno with the fds still the
 * caller's. */
static int server_run(corio_loop *l, const int *fds, int n, corio_conn_fn handler, void *arg,
                      const corio_server_config *cfg, corio_server **out)
{
    int r;
    corio_server *srv = corio__malloc(sizeof *srv + (size_t)n * sizeof(listener));
    if (!srv)
        return -ENOMEM;
    memset(srv, 0, sizeof *srv);
    srv->loop = l;
    srv->handler = handler;
    srv->arg = arg;
    srv->stack_size = cfg->stack_size;
    srv->receive_fds = cfg->receive_fds;
    r = corio__tls_server_hold(cfg->tls);
    if (r) {
        corio__free(srv);
        return r;
    }
    srv->tls = cfg->tls;
    /* OpenSSL's handshake needs some stack of its own (key exchange and
     * signature arithmetic): a handler asking for less gets this much. */
    if (srv->tls && srv->stack_size && srv->stack_size < TLS_MIN_STACK)
        srv->stack_size = TLS_MIN_STACK;
    corio__list_init(&srv->conns);
    corio__list_init(&srv->serve_waiters);
    corio__list_init(&srv->close_waiters);
    srv->nlisteners = (unsigned)n;
    for (int i = 0; i < n; i++) {
        srv->ls[i].fd = fds[i];
        srv->ls[i].srv = srv;
        srv->ls[i].task = NULL;
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        memset(&ss, 0, sizeof ss); /* an abstract Unix name is not NUL-terminated */
        char name[64] = "accept ";
        if (corio__sys_getsockname(fds[i], (struct sockaddr *)&ss, &sl) == 0)
            corio_addr_format((struct sockaddr *)&ss, name + 7, sizeof name - 7);
        /* by the socket, not by who made the server: socket activation
         * may hand over Unix and TCP sockets together */
        srv->ls[i].unix_streams = ss.ss_family == AF_UNIX;
        corio_task *t = corio__spawn(l, name, 0, accept_main, &srv->ls[i]);
        if (!t) {
            r = errno ? -errno : -ENOMEM;
            srv->keep_fds = true;
            (void)corio_server_close(srv, 0);
            return r;
        }
        corio_task_detach(t);
        srv->ls[i].task = t;
        srv->nacceptors++;
    }
    *out = srv;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Serving, inspecting, closing                                        */
/* ------------------------------------------------------------------ */

static void serve_interrupted(corio_task *t, int reason)
{
    serve_waiter *w = t->wait_obj;
    corio__list_remove(&w->link);
    corio__wake(t, reason);
}

int corio_server_serve_forever(corio_server *srv)
{
    if (!srv)
        return -EINVAL;
    int r = corio__check();
    if (r)
        return r;
    if (srv->closing)
        return 0;
    serve_waiter w = {.task = corio__current_task()};
    corio__list_push_back(&srv->serve_waiters, &w.link);
    /* the result comes through the wake: srv may be freed by then */
    return corio__suspend(serve_interrupted, &w, "serve_forever", CORIO__NO_DEADLINE);
}

int corio_server_sockname(const corio_server *srv, unsigned i, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!srv || !addr)
        return -EINVAL;
    if (i >= srv->nlisteners || srv->ls[i].fd < 0)
        return -ENOENT;
    socklen_t l = sizeof *addr;
    memset(addr, 0, sizeof *addr); /* an abstract Unix name is not NUL-terminated */
    if (corio__sys_getsockname(srv->ls[i].fd, (struct sockaddr *)addr, &l) < 0)
        return -errno;
    if (len)
        *len = l;
    return 0;
}

uint16_t corio_server_port(const corio_server *srv)
{
    if (!srv || srv->nlisteners == 0 || srv->ls[0].fd < 0)
        return 0;
    return corio__fd_port(srv->ls[0].fd);
}

/* A handler closing its own server (a "shutdown" command) must not wait
 * for itself: it leaves the server's books here, and its task no longer
 * touches srv afterwards. */
static void leave_server(corio_server *srv, corio_task *me)
{
    for (corio__list *it = srv->conns.next; it != &srv->conns; it = it->next) {
        conn *c = CORIO__CONTAINER_OF(it, conn, link);
        if (c->task == me) {
            corio__list_remove(&c->link);
            c->srv = NULL;
            srv->nconns--;
            if (srv->nconns == 0)
                closer_poke(srv);
            return;
        }
    }
}

int corio_server_close(corio_server *srv, uint64_t grace_ms)
{
    if (!srv)
        return -EINVAL;
    corio_task *me = corio__current_task();
    int ret = 0;
    leave_server(srv, me);
    if (srv->closing) {
        /* Another task is closing it already (two clients sent "shutdown"
         * at once): wait for that close to finish instead of running a
         * second one over the same memory. */
        ret = corio__check();
        if (ret)
            return ret;
        serve_waiter w = {.task = me};
        corio__list_push_back(&srv->close_waiters, &w.link);
        /* the result comes through the wake: srv is freed by then */
        return corio__suspend(serve_interrupted, &w, "server close: closed by another task",
                              CORIO__NO_DEADLINE);
    }
    srv->closing = true;

    /* 1. stop accepting; the listening fds can only go once no accept is
     * in flight on them */
    for (unsigned i = 0; i < srv->nlisteners; i++)
        if (srv->ls[i].task)
            corio_task_cancel(srv->ls[i].task);
    srv->closer = me;
    while (srv->nacceptors > 0)
        corio__suspend_uninterruptible(srv, "server close: accept tasks");
    for (unsigned i = 0; i < srv->nlisteners; i++) {
        if (!srv->keep_fds)
            corio__close_fd(srv->loop, srv->ls[i].fd);
        srv->ls[i].fd = -1;
    }
    if (srv->on_close)
        srv->on_close(srv->on_close_arg);
    while (!corio__list_empty(&srv->serve_waiters)) {
        serve_waiter *w = CORIO__CONTAINER_OF(srv->serve_waiters.next, serve_waiter, link);
        corio__list_remove(&w->link);
        corio__wake(w->task, 0);
    }

    /* 2. grace period for the handlers */
    if (srv->nconns > 0 && grace_ms > 0) {
        ret = corio__check();
        if (ret == 0) {
            int r = corio__suspend(NULL, srv, "server close: grace period",
                                   corio__ns_after_ms(corio_now_ns(), grace_ms));
            if (r < 0)
                ret = r;
        }
    } else if (srv->nconns > 0) {
        ret = corio__check();
    }

    /* 3. cancel whoever is left and wait for them all */
    if (srv->nconns > 0) {
        for (corio__list *it = srv->conns.next; it != &srv->conns; it = it->next)
            corio_task_cancel(CORIO__CONTAINER_OF(it, conn, link)->task);
        while (srv->nconns > 0)
            corio__suspend_uninterruptible(srv, "server close: cancelled handlers");
    }
    srv->closer = NULL;
    while (!corio__list_empty(&srv->close_waiters)) {
        serve_waiter *w = CORIO__CONTAINER_OF(srv->close_waiters.next, serve_waiter, link);
        corio__list_remove(&w->link);
        corio__wake(w->task, 0);
    }
    corio_tls_free(srv->tls);
    corio__free(srv);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

int corio_stream_connect(const char *host, uint16_t port, corio_stream **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    int r = corio__check();
    if (r)
        return r;
    struct addrinfo *res = NULL;
    r = corio__resolve(host, port, SOCK_STREAM, 0, &res);
    if (r < 0)
        return r;
    int err = -ENOENT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = corio__tcp_socket(ai->ai_family);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_CONNECT;
        op.fd = fd;
        op.addr = ai->ai_addr;
        op.addr_len = ai->ai_addrlen;
        op.off = -1;
        r = corio__op_run(&op);
        if (r == 0) {
            int one = 1;
            (void)corio__sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            corio_stream *s = corio__stream_new(fd);
            if (!s) {
                corio__close_fd(l, fd);
                err = -ENOMEM;
                break;
            }
            corio__resolve_free(res);
            *out = s;
            return 0;
        }
        corio__close_fd(l, fd);
        err = r;
        if (r == -ECANCELED || r == -CORIO_EDEADLINE || r == -ENOMEM)
            break;
    }
    corio__resolve_free(res);
    return err;
}
