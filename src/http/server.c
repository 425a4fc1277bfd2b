/*
 * The HTTP/1.1 server's life (include/corio/http.h, "Server" section;
 * src/http/server_internal.h has the map of the other files): config,
 * listening sockets, accept tasks, close, and SIGINT/SIGTERM (a
 * corio_signal_wait, src/io/signal.c).
 *
 * Listening sockets are opened by src/io/listen.c exactly as for
 * corio_server_start (one dual-stack socket for "all interfaces", else one
 * per resolved address, all on one port); each has its own accept task,
 * and the connection cap is shared by all of them.
 *
 * Running out of file descriptors while accepting differs from
 * corio_server_start (src/io/tcp.c), which has no notion of an idle
 * connection and only pauses its accepts: here the longest-idle parked
 * keep-alive connections are closed to make room (out_of_fds), so new
 * clients are served at once instead of after the keep-alive time-out.
 *
 * Shutdown: closing marks the server, cancels the accept tasks (each closes
 * its socket as it ends) and every connection that is between requests,
 * and waits (through the closer's task being woken by each exiting
 * connection and accept task) for the ones in a request.  A handler may
 * close its own server: its connection is then left to finish after the
 * handler returns, and frees the server as it goes.
 */
#include "server_internal.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define AT_CAP "http accept (connection cap)"
#define EVICT_MAX 32 /* idle connections closed at once when accept runs out of fds */

/* ------------------------------------------------------------------ */
/* Accepting                                                            */
/* ------------------------------------------------------------------ */

/* Park an accept task until a connection closes (at the connection cap,
 * or out of fds), or until wake_at (CORIO__NO_DEADLINE: no limit).
 * conn_exit wakes only srv->accept_waiter, so with several listeners one
 * accept task takes that role and the others park with `capped` set;
 * whichever resumes first wakes the rest to look again (one of them then
 * takes the role if the server is still at the cap).  Returns 0 (look
 * again), or -ECANCELED / -CORIO_EDEADLINE: this accept task stops. */
static int wait_for_room(listener *ls, const char *what, uint64_t wake_at)
{
    corio_http_server *srv = ls->srv;
    int r = corio__check();
    if (r < 0)
        return r;
    corio_task *me = corio_current();
    if (!srv->accept_waiter)
        srv->accept_waiter = me;
    ls->capped = true;
    r = corio__suspend(NULL, srv, what, wake_at);
    ls->capped = false;
    if (srv->accept_waiter == me)
        srv->accept_waiter = NULL;
    for (unsigned i = 0; i < srv->nlisteners; i++)
        if (srv->ls[i].capped)
            corio__wake(srv->ls[i].task, 0);
    return r;
}

/* Out of file descriptors (EMFILE/ENFILE): close the longest-idle parked
 * connections to make room, as nginx does with its reusable connections
 * (about an eighth of them, at least one, at most EVICT_MAX at a time), and
 * wait until one of our connections has gone or CORIO__ACCEPT_PAUSE_MS
 * passed (none idle: the pause corio_server_start makes too).  Without
 * this, idle keep-alive clients hold every fd until their time-out while
 * new clients wait in the backlog.  Returns 0 or -ECANCELED /
 * -CORIO_EDEADLINE. */
static int out_of_fds(listener *ls)
{
    corio_http_server *srv = ls->srv;
    unsigned n = srv->nidle / 8;
    n = n < 1 ? 1 : n > EVICT_MAX ? EVICT_MAX : n;
    corio__http_idle_evict(srv, n);
    return wait_for_room(ls, "http accept (out of fds)",
                         corio_now_ns() + CORIO__ACCEPT_PAUSE_MS * 1000000ull);
}

/* One listener's accept task: accept until the server closes, leaving new
 * connections in the backlog at the cap and making room (or pausing) after
 * EMFILE.  Closes its socket when it ends. */
static void *accept_main(void *arg)
{
    listener *ls = arg;
    corio_http_server *srv = ls->srv;
    while (!srv->closing) {
        if (srv->nconns >= srv->cfg.max_connections) {
            /* at the cap: leave new connections in the backlog until one
             * of ours closes */
            if (wait_for_room(ls, AT_CAP, CORIO__NO_DEADLINE) < 0)
                break;
            continue;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_ACCEPT;
        op.fd = ls->fd;
        op.off = -1;
        int r = corio__op_run(&op);
        if (r >= 0) {
            /* another listener may have filled the last place while this
             * accept was pending: hold the connection until one frees */
            int w = 0;
            while (!srv->closing && srv->nconns >= srv->cfg.max_connections &&
                   (w = wait_for_room(ls, AT_CAP, CORIO__NO_DEADLINE)) == 0)
                ;
            /* Accepted as the server closes (io_uring: the accept was in
             * flight when close cancelled it): served all the same, within
             * the close's grace, as a fresh connection; dropping it would
             * lose a client the kernel counted as connected.  Only a loop
             * ending without a close drops it. */
            if ((w < 0 && !srv->closing) || corio__http_conn_start(srv, r) < 0)
                corio__close_fd(srv->loop, r);
            if (w < 0)
                break;
        } else {
            int kind = corio__accept_error(r);
            if (kind == CORIO__ACCEPT_STOP)
                break;
            if (kind == CORIO__ACCEPT_PAUSE && out_of_fds(ls) < 0)
                break;
            if (kind == CORIO__ACCEPT_BROKEN) {
                fprintf(stderr, "corio http: accept failed: %s; this listener accepts no more connections\n",
                        corio_strerror(r));
                break;
            }
        }
    }
    corio__close_fd(srv->loop, ls->fd);
    ls->fd = -1;
    ls->task = NULL;
    srv->nacceptors--;
    if (srv->nacceptors == 0 &&
        !srv->closing) /* the loop is ending without a close: let parked connections go */
        corio__http_conns_cancel(srv, false);
    if (srv->closer)
        corio__wake(srv->closer, 0);
    return NULL;
}

int corio_http_server_new(corio_http_handler handler, void *arg, const corio_http_server_config *cfg,
                          corio_http_server **out)
{
    corio_loop *l = corio__loop();
    if (!handler || !out || (cfg && cfg->stack_size > CORIO__STACK_SIZE_MAX))
        return -EINVAL;
    if (!l || !corio_current())
        return -EPERM;
    corio_http_server *srv = corio__calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    if (cfg)
        srv->cfg = *cfg;
    corio_http_server_config *c = &srv->cfg;
    if (!c->limits.max_head)
        c->limits.max_head = CORIO_HTTP_DEFAULT_MAX_HEAD;
    if (!c->limits.max_target)
        c->limits.max_target = CORIO_HTTP_DEFAULT_MAX_TARGET;
    if (!c->limits.max_headers)
        c->limits.max_headers = CORIO_HTTP_DEFAULT_MAX_HEADERS;
    if (!c->limits.max_body)
        c->limits.max_body = CORIO_HTTP_DEFAULT_MAX_BODY;
    if (!c->max_connections)
        c->max_connections = 10000;
    if (!c->head_timeout_ms)
        c->head_timeout_ms = 10000;
    if (!c->body_timeout_ms)
        c->body_timeout_ms = 30000;
    if (!c->write_timeout_ms)
        c->write_timeout_ms = 30000;
    if (!c->keepalive_timeout_ms)
        c->keepalive_timeout_ms = 15000;
    if (!c->max_drain)
        c->max_drain = 65536;
    if (!c->backlog)
        c->backlog = 4096;
    if (!c->server_header)
        c->server_header = "corio";
    if (c->tls) {
#ifdef CORIO_HAVE_TLS
        if (!corio__tls_is_server(c->tls)) {
            corio__free(srv);
            return -EINVAL; /* a client configuration has no certificate to serve */
        }
        corio__tls_ref(c->tls); /* dropped by corio__http_server_free */
#else
        corio__free(srv);
        return -EOPNOTSUPP;
#endif
    }
    srv->loop = l;
    srv->handler = handler;
    srv->arg = arg;
    corio__list_init(&srv->conns);
    corio__list_init(&srv->idle);
    *out = srv;
    return 0;
}

/* Serve the n listening sockets fds (the server's from now on): one accept
 * task each.  Returns 0, or -ENOMEM with srv closed and the fds left open
 * (the caller's again). */
static int serve_listeners(corio_http_server *srv, const int *fds, int n)
{
    srv->port = corio__fd_port(fds[0]);
    srv->nlisteners = (unsigned)n;
    for (int i = 0; i < n; i++) {
        srv->ls[i].srv = srv;
        srv->ls[i].fd = fds[i];
    }
    for (int i = 0; i < n; i++) {
        corio_task *t = corio_spawn_named("http-accept", 0, accept_main, &srv->ls[i]);
        if (!t) {
            /* the running accept tasks close their own sockets: take the
             * fds back from them first */
            for (int j = 0; j < n; j++)
                srv->ls[j].fd = -1;
            (void)corio_http_server_close(srv, 0);
            return -ENOMEM;
        }
        corio_task_detach(t);
        srv->ls[i].task = t;
        srv->nacceptors++;
    }
    return 0;
}

int corio_http_server_start(const char *host, uint16_t port, corio_http_handler handler, void *arg,
                            const corio_http_server_config *cfg, corio_http_server **out)
{
    if (!out)
        return -EINVAL;
    corio_http_server *srv;
    int r = corio_http_server_new(handler, arg, cfg, &srv);
    if (r < 0)
        return r;
    int fds[CORIO__MAX_LISTENERS];
    corio__listen_opts lo = {.backlog = srv->cfg.backlog};
    int n = corio__listen_all(host, port, &lo, fds, CORIO__MAX_LISTENERS);
    if (n < 0) {
        corio__http_server_free(srv);
        return n;
    }
    r = serve_listeners(srv, fds, n);
    if (r < 0) {
        while (n)
            close(fds[--n]);
        return r;
    }
    *out = srv;
    return 0;
}

int corio_http_server_start_fds(const int *fds, unsigned n, corio_http_handler handler, void *arg,
                                const corio_http_server_config *cfg, corio_http_server **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return -EINVAL;
    corio_http_server *srv;
    int r = corio_http_server_new(handler, arg, cfg, &srv);
    if (r < 0)
        return r;
    r = corio__listen_adopt(fds, n, false);
    if (r == 0)
        r = serve_listeners(srv, fds, (int)n);
    else
        corio__http_server_free(srv);
    if (r == 0)
        *out = srv;
    return r;
}

uint16_t corio_http_server_port(const corio_http_server *srv) { return srv ? srv->port : 0; }

unsigned corio_http_server_connections(const corio_http_server *srv) { return srv ? srv->nconns : 0; }

unsigned corio_http_server_listen_fds(const corio_http_server *srv, int *fds, unsigned cap)
{
    unsigned n = 0;
    for (unsigned i = 0; srv && i < srv->nlisteners; i++)
        if (srv->ls[i].fd >= 0) { /* closed when its accept task ended */
            if (fds && n < cap)
                fds[n] = srv->ls[i].fd;
            n++;
        }
    return n;
}

/* The closer's own connection, when corio_http_server_close runs in one of
 * srv's handlers. */
static conn *own_conn(corio_http_server *srv, corio_task *me)
{
    for (corio__list *n = srv->conns.next; n != &srv->conns; n = n->next) {
        conn *c = CORIO__CONTAINER_OF(n, conn, link);
        if (c->task == me && c->state == CONN_HANDLING)
            return c;
    }
    return NULL;
}

void corio__http_server_free(corio_http_server *srv)
{
    corio__http_bufs_free_kept(srv);
    corio_tls_free(srv->cfg.tls);
    corio__free(srv);
}

int corio_http_server_close(corio_http_server *srv, uint64_t grace_ms)
{
    if (!srv)
        return -EINVAL;
    int ret = corio__check();
    corio_task *me = corio_current();
    /* From a handler: its own connection is neither waited for nor
     * cancelled; it is the last to go (its answer says "Connection:
     * close"), and srv is freed when it has. */
    conn *own = own_conn(srv, me);
    unsigned left = own ? 1 : 0;
    srv->closing = true;
    srv->closer = me;
    srv->closer_conn = own;
    for (unsigned i = 0; i < srv->nlisteners; i++)
        if (srv->ls[i].task)
            corio_task_cancel(srv->ls[i].task);
    corio__http_conns_cancel(srv, false);
    uint64_t now = corio_now_ns();
    uint64_t end = corio__ns_after_ms(now, grace_ms);
    uint64_t fresh_end = corio__ns_after_ms(now, FRESH_GRACE_MS);
    if (fresh_end > end)
        fresh_end = end;
    while (ret == 0 && (srv->nconns > left || srv->nacceptors > 0) && (now = corio_now_ns()) < end) {
        if (!srv->fresh_cut && now >= fresh_end) {
            /* fresh connections still without a request had their chance */
            srv->fresh_cut = true;
            corio__http_conns_cancel(srv, false);
        }
        int r = corio__suspend(NULL, srv, "http server close", srv->fresh_cut ? end : fresh_end);
        if (r < 0)
            ret = r;
    }
    if (srv->nconns > left)
        corio__http_conns_cancel(srv, true);
    while (srv->nconns > left || srv->nacceptors > 0)
        corio__suspend_uninterruptible(srv, "http server close (cancelled connections)");
    srv->closer = NULL;
    if (own) {
        srv->orphaned = true; /* the last conn_exit frees it */
        return ret;
    }
    corio__http_server_free(srv);
    return ret;
}

/* ------------------------------------------------------------------ */
/* SIGINT / SIGTERM                                                     */
/* ------------------------------------------------------------------ */

int corio_http_server_serve_until_signal(corio_http_server *srv)
{
    (void)srv;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return corio_signal_wait(&set, CORIO_NO_TIMEOUT);
}
