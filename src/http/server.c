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
#include "../io/sys.h"

#include "../core/workers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

struct http_workers;
static unsigned workers_connections(const struct http_workers *hw);
static unsigned workers_listen_fds(const struct http_workers *hw, int *fds, unsigned cap, unsigned k);
static void workers_stop(struct http_workers *hw, uint64_t grace_ms);
static void workers_end(struct http_workers *hw);

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
            if ((w < 0 && !srv->closing) || corio__http_conn_start(srv, r, true) < 0)
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
    if (!handler || !out || (cfg && (cfg->stack_size > CORIO__STACK_SIZE_MAX || cfg->workers > 1)))
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

static int start_workers(const char *host, uint16_t port, const int *fds, unsigned nfds,
                         corio_http_handler handler, void *arg, const corio_http_server_config *cfg,
                         corio_http_server **out);

/* corio_http_server_start on one loop; reuse_port for a worker's sockets. */
static int start_one(const char *host, uint16_t port, bool reuse_port, corio_http_handler handler, void *arg,
                     const corio_http_server_config *cfg, corio_http_server **out)
{
    corio_http_server *srv;
    int r = corio_http_server_new(handler, arg, cfg, &srv);
    if (r < 0)
        return r;
    int fds[CORIO__MAX_LISTENERS];
    corio__listen_opts lo = {.backlog = srv->cfg.backlog, .reuse_port = reuse_port, .nodelay = true};
    int n = corio__listen_all(host, port, &lo, fds, CORIO__MAX_LISTENERS);
    if (n < 0) {
        corio__http_server_free(srv);
        return n;
    }
    r = serve_listeners(srv, fds, n);
    if (r < 0) {
        while (n)
            corio__sys_close(fds[--n]);
        return r;
    }
    *out = srv;
    return 0;
}

int corio_http_server_start(const char *host, uint16_t port, corio_http_handler handler, void *arg,
                            const corio_http_server_config *cfg, corio_http_server **out)
{
    if (!out)
        return -EINVAL;
    if (cfg && cfg->workers > 1)
        return start_workers(host, port, NULL, 0, handler, arg, cfg, out);
    return start_one(host, port, false, handler, arg, cfg, out);
}

int corio_http_server_start_fds(const int *fds, unsigned n, corio_http_handler handler, void *arg,
                                const corio_http_server_config *cfg, corio_http_server **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return -EINVAL;
    /* with workers, up to CORIO__MAX_LISTENERS sockets each: a successor
     * taking over the sockets of N workers (corio_http_server_listen_fds)
     * gets N times as many as one server has */
    if (cfg && cfg->workers > 1 && fds && n > 1 && cfg->workers <= CORIO__WORKERS_MAX &&
        n <= (unsigned long)CORIO__MAX_LISTENERS * cfg->workers)
        return start_workers(NULL, 0, fds, n, handler, arg, cfg, out);
    corio_http_server_config one;
    if (cfg && cfg->workers > 1) { /* one socket: one worker */
        one = *cfg;
        one.workers = 0;
        cfg = &one;
    }
    corio_http_server *srv;
    int r = corio_http_server_new(handler, arg, cfg, &srv);
    if (r < 0)
        return r;
    r = corio__listen_adopt(fds, n, CORIO__MAX_LISTENERS, true);
    if (r == 0)
        r = serve_listeners(srv, fds, (int)n);
    else
        corio__http_server_free(srv);
    if (r == 0)
        *out = srv;
    return r;
}

uint16_t corio_http_server_port(const corio_http_server *srv) { return srv ? srv->port : 0; }

unsigned corio_http_server_connections(const corio_http_server *srv)
{
    if (!srv)
        return 0;
    unsigned n = srv->nconns;
    if (srv->hw)
        n += workers_connections(srv->hw);
    return n;
}

unsigned corio_http_server_listen_fds(const corio_http_server *srv, int *fds, unsigned cap)
{
    if (!srv)
        return 0;
    unsigned k = 0;
    for (unsigned i = 0; i < srv->nlisteners; i++)
        if (srv->ls[i].fd >= 0) {
            if (fds && k < cap)
                fds[k] = srv->ls[i].fd;
            k++;
        }
    if (srv->hw)
        k = workers_listen_fds(srv->hw, fds, cap, k);
    return k;
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
    struct http_workers *hw = srv->hw;
    if (hw) /* the other workers close theirs meanwhile, with the same grace */
        workers_stop(hw, grace_ms);
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
    if (hw) {
        srv->hw = NULL;
        workers_end(hw);
    }
    if (own) {
        srv->orphaned = true; /* the last conn_exit frees it */
        return ret;
    }
    corio__http_server_free(srv);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Workers (cfg.workers > 1)                                            */
/* ------------------------------------------------------------------ */

/* The server the caller holds is worker 0's, on the caller's loop; workers
 * 1..N-1 each run a server of their own (cfg.workers 0) on a loop of their
 * own, started through src/core/workers.c.  Nothing is shared between
 * them while they serve: each has its own listening sockets on the same
 * port with SO_REUSEPORT (the kernel hashes each new connection to one
 * of them), its own connections, buffers and timers.  The only
 * cross-thread traffic is the start, each worker's connection count (an
 * atomic store when a connection opens or closes, read by
 * corio_http_server_connections) and the stop.  Worker 0's close never
 * blocks its loop: it waits for the other loops through a remote wake-up.
 *
 * CORIO_HTTP_WORKERS_LISTEN=shared (a measuring knob, see
 * docs/benchmarks.md, "One loop per core") makes the other workers accept
 * on duplicates of worker 0's sockets instead: one accept queue that every
 * worker takes from. */

typedef struct hw_slot {
    atomic_uint nconns; /* the worker's server's nconns_pub */
    unsigned nfds;      /* its own listening sockets, set before it says ready */
    int fds[CORIO__MAX_LISTENERS];
} hw_slot;

struct http_workers {
    corio__workers *g;
    unsigned n;
    char *host; /* NULL: every interface */
    uint16_t port;
    bool shared;
    const int *fds; /* start_fds: the caller's sockets, dealt out round robin (during the start) */
    unsigned nfds;
    corio_http_server *srv0; /* worker 0's, whose sockets the shared mode duplicates */
    corio_http_handler handler;
    void *arg;
    corio_http_server_config cfg; /* each worker's: workers 0 */
    uint64_t grace_ms;            /* written before the stop, read by each worker after it */
    hw_slot slot[];
};

/* Serve worker i's share of hw->fds (adopted by worker 0): fds[i],
 * fds[i + n], ...  On error the sockets are left open (the caller's). */
static int serve_share(struct http_workers *hw, unsigned i, corio_http_server **out)
{
    int mine[CORIO__MAX_LISTENERS];
    int k = 0;
    for (unsigned j = i; j < hw->nfds; j += hw->n)
        mine[k++] = hw->fds[j];
    corio_http_server *srv;
    int r = corio_http_server_new(hw->handler, hw->arg, &hw->cfg, &srv);
    if (r == 0)
        r = serve_listeners(srv, mine, k);
    if (r == 0)
        *out = srv;
    return r;
}

/* Duplicates of worker 0's sockets, served (the shared mode). */
static int serve_dups(struct http_workers *hw, corio_http_server **out)
{
    int fds[CORIO__MAX_LISTENERS];
    unsigned n = 0;
    int r = 0;
    for (unsigned j = 0; j < hw->srv0->nlisteners && r == 0; j++) {
        int fd = fcntl(hw->srv0->ls[j].fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            r = -errno;
        else
            fds[n++] = fd;
    }
    corio_http_server *srv;
    if (r == 0)
        r = corio_http_server_new(hw->handler, hw->arg, &hw->cfg, &srv);
    if (r == 0)
        r = serve_listeners(srv, fds, (int)n);
    if (r < 0) {
        while (n)
            corio__sys_close(fds[--n]);
        return r;
    }
    *out = srv;
    return 0;
}

/* Let srv go without closing the listening sockets it was given (they are
 * the caller's again), as serve_listeners does when it fails. */
static void abandon(corio_http_server *srv)
{
    for (unsigned j = 0; j < srv->nlisteners; j++)
        srv->ls[j].fd = -1;
    (void)corio_http_server_close(srv, 0);
}

/* Workers 1..N-1: bind (or take their sockets), say so, serve until worker
 * 0 closes, close with its grace. */
static void *http_worker_body(corio__worker *w)
{
    struct http_workers *hw = w->g->arg;
    hw_slot *s = &hw->slot[w->index];
    corio_http_server *srv = NULL;
    int r;
    if (hw->fds)
        r = serve_share(hw, w->index, &srv);
    else if (hw->shared)
        r = serve_dups(hw, &srv);
    else
        r = start_one(hw->host, hw->port, true, hw->handler, hw->arg, &hw->cfg, &srv);
    if (r == 0) {
        srv->nconns_pub = &s->nconns;
        if (!hw->shared)
            for (unsigned j = 0; j < srv->nlisteners; j++)
                s->fds[s->nfds++] = srv->ls[j].fd;
    }
    bool given = hw->fds != NULL; /* read before ready: worker 0 clears it after */
    r = corio__workers_ready(w, r, false);
    if (r < 0) {
        if (srv && given)
            abandon(srv);
        else if (srv)
            (void)corio_http_server_close(srv, 0);
        return NULL;
    }
    (void)corio_workers_wait_stop();
    (void)corio_http_server_close(srv, hw->grace_ms);
    return NULL;
}

static void workers_free(struct http_workers *hw)
{
    free(hw->host);
    free(hw);
}

static int start_workers(const char *host, uint16_t port, const int *fds, unsigned nfds,
                         corio_http_handler handler, void *arg, const corio_http_server_config *cfg,
                         corio_http_server **out)
{
    corio_loop *l = corio__loop();
    if (!handler || cfg->workers > CORIO__WORKERS_MAX || cfg->stack_size > CORIO__STACK_SIZE_MAX)
        return -EINVAL;
    if (!l || !corio_current())
        return -EPERM;
    unsigned n = cfg->workers;
    if (fds && nfds < n)
        n = nfds; /* a worker without a socket would have nothing to do */
    struct http_workers *hw = calloc(1, sizeof *hw + n * sizeof hw->slot[0]);
    if (!hw)
        return -ENOMEM;
    if (host && !(hw->host = strdup(host))) {
        free(hw);
        return -ENOMEM;
    }
    hw->handler = handler;
    hw->arg = arg;
    hw->cfg = *cfg;
    hw->cfg.workers = 0;
    hw->cfg.pin_cpus = false;
    const char *mode = getenv("CORIO_HTTP_WORKERS_LISTEN");
    hw->shared = !fds && mode && !strcmp(mode, "shared");
    hw->fds = fds;
    hw->nfds = nfds;
    hw->n = n;

    /* Worker 0 first: it resolves port 0 for the others, and on error
     * nothing else has started. */
    corio_http_server *srv0 = NULL;
    /* each worker serves up to CORIO__MAX_LISTENERS of them */
    int r = fds ? corio__listen_adopt(fds, nfds, CORIO__MAX_LISTENERS * n, true) : 0;
    if (r == 0)
        r = fds ? serve_share(hw, 0, &srv0)
                : start_one(host, port, !hw->shared, handler, arg, &hw->cfg, &srv0);
    if (r < 0) {
        workers_free(hw);
        return r;
    }
    hw->port = srv0->port;
    hw->srv0 = srv0;
    corio__workers *g = corio__workers_new(n, cfg->pin_cpus, l->cfg, http_worker_body, hw, "HTTP worker");
    if (g) {
        hw->g = g;
        r = corio__workers_attach0(g);
        if (r == 0) {
            corio__workers_enter0(g);
            r = corio__workers_start_threads(g);
            if (r == 0)
                r = corio__workers_ready(&g->w[0], 0, true);
            if (r < 0) {
                /* The workers that started saw the error too and are
                 * undoing their start. */
                corio__workers_wait_threads(g);
                corio__workers_leave0(g);
            }
        }
        if (r < 0)
            corio__workers_free(g);
    } else {
        r = -ENOMEM;
    }
    if (r < 0) {
        if (fds)
            abandon(srv0);
        else
            (void)corio_http_server_close(srv0, 0);
        workers_free(hw);
        return r;
    }
    hw->fds = NULL; /* the caller's array: every worker has taken its share */
    srv0->hw = hw;
    *out = srv0;
    return 0;
}

static unsigned workers_connections(const struct http_workers *hw)
{
    unsigned n = 0;
    for (unsigned i = 1; i < hw->n; i++)
        n += atomic_load_explicit(&hw->slot[i].nconns, memory_order_relaxed);
    return n;
}

static unsigned workers_listen_fds(const struct http_workers *hw, int *fds, unsigned cap, unsigned k)
{
    for (unsigned i = 1; i < hw->n; i++)
        for (unsigned j = 0; j < hw->slot[i].nfds; j++, k++)
            if (fds && k < cap)
                fds[k] = hw->slot[i].fds[j];
    return k;
}

static void workers_stop(struct http_workers *hw, uint64_t grace_ms)
{
    hw->grace_ms = grace_ms;
    corio__workers_stop(hw->g, 0);
}

static void workers_end(struct http_workers *hw)
{
    corio__workers_wait_threads(hw->g);
    corio__workers_leave0(hw->g);
    corio__workers_free(hw->g);
    workers_free(hw);
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
