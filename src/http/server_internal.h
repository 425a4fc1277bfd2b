/*
 * What the files of the HTTP server share (include/corio/http.h, "Server"
 * section, is the public side): the server and connection structs, the
 * connection's states and their allowed transitions, and the calls each
 * file offers the others.
 *
 *   server.c    the server's life: config, listening sockets, accept tasks
 *               (connection cap, running out of fds), close, signals;
 *   conn.c      a connection's life: its task, the request loop, parking
 *               between requests (and the idle list), its buffers, its end;
 *   conn_io.c   a connection's bytes: receiving through the socket input
 *               (src/io/sockin.c), the output buffer, sending, and TLS
 *               (src/io/tls.h) between those and the socket for HTTPS;
 *   body.c      the request body: Content-Length and chunked, for the
 *               handler and for draining what it left;
 *   response.c  the response: head, sized and streamed bodies, files,
 *               headers, the server's own error answers.
 *
 * The server works at the operation level rather than through
 * corio_stream: each busy connection owns one fixed read buffer (max_head +
 * 8 KiB) and one growable output buffer, and its task runs every request's
 * handler on its own stack.  That keeps pipelining cheap: every request
 * already buffered is parsed and answered in place (the parser's strings
 * point into the read buffer, never copied), the responses pile up in the
 * output buffer, and one send goes out when the connection is about to wait
 * for more bytes, i.e. once per batch.
 */
#ifndef CORIO_HTTP_SERVER_INTERNAL_H
#define CORIO_HTTP_SERVER_INTERNAL_H

#include "../core/internal.h"
#include "../io/listen.h"
#include "../io/sockin.h"
#include "../io/tls.h"
#include "corio/http.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>

#define BODY_SLACK 8192    /* read buffer beyond max_head: room for body bytes */
#define OUT_FLUSH_AT 65536 /* output buffered before a streaming handler is made to wait */
#define BUF_CACHE 32       /* spare connection buffer sets a server keeps */
/* How long a closing server waits (within its grace) for the first request
 * of a fresh connection: its client connected before the close and sends
 * at once, a round trip (or a TLS handshake's few) later; a silent one
 * does not hold the close for the whole grace. */
#define FRESH_GRACE_MS 2000

/* The server is closing and, for c, that means: no more requests (a fresh
 * connection still gets its first while the window lasts). */
#define CONN_STOPS(srv, c) ((srv)->closing && ((c)->served || (srv)->fresh_cut))

typedef struct conn conn;

struct corio_http_response {
    conn *c;
};

enum { R_NONE = 0, R_SENT, R_STREAM, R_ENDED }; /* the response, as far as the handler got */
enum { B_NONE = 0, B_LENGTH, B_CHUNKED };       /* how the request body is framed */

/* A connection's life.  Its task moves between READING and the three
 * states that do one thing and come back (WAIT_HEAD, HANDLING, FLUSHING);
 * between requests it may give the task up (PARKED); every end goes
 * through CLOSING (with a task) or PARK_ENDING (without) to EXITING,
 * where only the socket input's last completion may still be due. */
typedef enum conn_state {
    CONN_READING = 0, /* the task parses what is buffered, or decides what to do next */
    CONN_WAIT_HEAD,   /* the task waits for (more of) a request head: a server close cancels it */
    CONN_HANDLING,    /* the task runs a request: handler, then what it left of the body */
    CONN_FLUSHING,    /* the task sends the answers of a batch */
    CONN_PARKED,      /* no task, no buffers: the socket input and ka_timer wait for the next request */
    CONN_PARK_ENDING, /* parked, and told to go (time-out, close, eviction): the input's last completion
                         closes it */
    CONN_CLOSING,     /* the task's last flush and linger before the end */
    CONN_EXITING,     /* off the server's list; freed once the socket input is quiet */
    CONN_STATE_COUNT
} conn_state;

struct conn {
    corio_http_request req; /* the handler's request: body calls find the conn from it */
    corio_http_response resp;
    corio_http_server *srv;
    corio_task *task;      /* NULL while PARKED, PARK_ENDING, EXITING */
    corio__list link;      /* srv->conns, until EXITING */
    corio__list idle_link; /* srv->idle while PARKED (least recently parked first) */
    uint8_t state;         /* conn_state: change it with conn_set_state */
    uint8_t rstate;        /* R_* */
    uint8_t bmode;         /* B_* */
    /* facts about the request being served */
    bool keep_alive;
    bool linger; /* an error answer went out: drain unread input before closing */
    bool is_head;
    bool send_more;        /* plain sends carry MSG_MORE: a sendfile body follows at once */
    uint8_t peer_family;   /* corio_http_request_peer's cache: 0 not asked yet, AF_INET,
                            * AF_INET6, or UINT8_MAX (none: a Unix socket, an error) */
    uint8_t peer_addr[16]; /* ... its address (4 bytes for AF_INET) */
    bool continue_sent;
    bool raw_stream; /* streaming to a 1.0 client: no chunk framing */
    bool body_done;
    /* a request was read whole: the connection is no longer fresh.  A
     * server close spares fresh connections for a moment (their client
     * has no answer yet and, unlike one reusing a keep-alive connection,
     * would not retry: see corio__http_conns_cancel) */
    bool served;
    /* HTTPS (srv->cfg.tls): the TLS engine sits between the request loop
     * and the socket input / send path (conn_io.c) */
    bool tls_up;     /* the handshake is done */
    bool tls_seen;   /* the first bytes of the handshake were looked at */
    bool plain_http; /* ... and they were a plain HTTP request: answer 400 in clear */
    int body_err;
    char *rbuf;
    size_t rcap, rpos, rend;
    size_t head_len;
    size_t body_pos;           /* next body byte in rbuf */
    size_t pend_pos, pend_len; /* chunk data decoded but not handed out yet */
    uint64_t body_left;        /* Content-Length bytes not yet read from the socket or buffer */
    corio_http_chunked ch;
    char *body_mem;
    corio_http_header *hdrs;
    char *obuf;
    size_t olen, ocap;
    char *xh; /* extra response header lines */
    size_t xhlen, xhcap;
    int werr;
    /* The socket (in.fd) and its input: on io_uring with multishot
     * support a multishot recv armed for most of the connection's life,
     * whose unread buffer holds what arrives while a handler runs;
     * otherwise plain recvs, and a POLLIN wait while parked. */
    corio__sockin in;
    corio__timer ka_timer; /* keep-alive timeout while parked */
    corio__tls *tls;       /* HTTPS: this connection's TLS engine (NULL: plain HTTP) */
    char *tout;            /* HTTPS: records the engine made, not sent yet (see conn_io.c) */
    size_t toutlen, toutcap;
};

#define CONN_TO(s) (1u << (s))

/* Move c to state `to`, checking that its life allows that step. */
static inline void conn_set_state(conn *c, conn_state to)
{
    static const uint16_t next[CONN_STATE_COUNT] = {
        [CONN_READING] = CONN_TO(CONN_WAIT_HEAD) | CONN_TO(CONN_HANDLING) | CONN_TO(CONN_FLUSHING) |
                         CONN_TO(CONN_PARKED) | CONN_TO(CONN_CLOSING),
        [CONN_WAIT_HEAD] = CONN_TO(CONN_READING),
        [CONN_HANDLING] = CONN_TO(CONN_READING),
        [CONN_FLUSHING] = CONN_TO(CONN_READING),
        [CONN_PARKED] = CONN_TO(CONN_READING) | CONN_TO(CONN_PARK_ENDING) | CONN_TO(CONN_EXITING),
        [CONN_PARK_ENDING] = CONN_TO(CONN_EXITING),
        [CONN_CLOSING] = CONN_TO(CONN_EXITING),
        [CONN_EXITING] = 0,
    };
    (void)next; /* without CORIO_ASSERTS, only the assignment is left */
    CORIO__ASSERT(c->state < CONN_STATE_COUNT && (next[c->state] & CONN_TO(to)));
    c->state = (uint8_t)to;
}

/* A connection's buffers, kept by the server for the next connection that
 * needs them while it is between requests (saves four allocations per
 * keep-alive request, and the heap trimming they cause). */
typedef struct conn_bufs {
    char *rbuf;
    corio_http_header *hdrs;
    char *obuf;
    size_t ocap;
    char *xh;
    size_t xhcap;
    char *tout; /* HTTPS only (else NULL) */
    size_t toutcap;
} conn_bufs;

/* One listening socket and its accept task. */
typedef struct listener {
    corio_http_server *srv;
    corio_task *task; /* its accept task while that runs */
    int fd;           /* -1 once the accept task closed it */
    bool capped;      /* its accept task is parked at the connection cap */
} listener;

struct corio_http_server {
    corio_loop *loop;
    uint16_t port; /* shared by every listener */
    corio_http_handler handler;
    void *arg;
    corio_http_server_config cfg;
    unsigned nlisteners;
    unsigned nacceptors; /* accept tasks still running */
    bool closing;
    bool fresh_cut;            /* closing, and the fresh connections' window is over (see FRESH_GRACE_MS) */
    corio__list conns;         /* every connection not EXITING */
    corio__list idle;          /* the PARKED ones, least recently parked first */
    unsigned nconns;           /* every connection until it is freed */
    unsigned nidle;            /* on the idle list */
    corio_task *accept_waiter; /* the acceptor that connections closing wake (cap, fds) */
    corio_task *closer;        /* task in corio_http_server_close */
    conn *closer_conn;         /* its connection, when the closer is one of our handlers */
    bool orphaned;             /* closed from a handler: freed by the last conn_exit */
    unsigned nbufs;            /* spare buffer sets in bufs */
    conn_bufs bufs[BUF_CACHE];
    listener ls[CORIO__MAX_LISTENERS];
    /* cfg.workers > 1: worker 0's server (the one the caller holds) keeps
     * the group of the others (server.c, "Workers"); each worker's server
     * mirrors its nconns into nconns_pub for corio_http_server_connections
     * on worker 0's thread. */
    struct http_workers *hw;
    atomic_uint *nconns_pub;
};

/* After every change of srv->nconns: worker 0 may read the count. */
static inline void corio__http_conns_publish(corio_http_server *srv)
{
    if (srv->nconns_pub)
        atomic_store_explicit(srv->nconns_pub, srv->nconns, memory_order_relaxed);
}

static inline conn *req_conn(corio_http_request *req) { return CORIO__CONTAINER_OF(req, conn, req); }

/* -- conn.c -- */
/* Set up a connection on fd (connected, non-blocking) and start it: a
 * plain one parks until its first bytes (or, on epoll, gets its task at
 * once if one recv finds them), an HTTPS one gets its task for the
 * handshake.  accepted: fd came from one of srv's listeners, which carry
 * TCP_NODELAY for it (else it is set here).  Returns 0 (fd is the
 * connection's now, even if it was closed at once: EOF before a request)
 * or -ENOMEM (fd left to the caller). */
int corio__http_conn_start(corio_http_server *srv, int fd, bool accepted);
/* Cancel the connections waiting for a request (all == false: but, while
 * the server closes, not the fresh ones until fresh_cut, which wait for
 * their first request), or every one but the closer's own.  The others see `closing`
 * once their current request is answered. */
void corio__http_conns_cancel(corio_http_server *srv, bool all);
/* Close up to n of the least recently parked idle connections (their fds
 * are released when their input's last completion arrives, which wakes
 * srv->accept_waiter).  Returns how many were told to go. */
unsigned corio__http_idle_evict(corio_http_server *srv, unsigned n);
/* Free the buffer sets the server keeps. */
void corio__http_bufs_free_kept(corio_http_server *srv);
/* Free srv itself (its connections and acceptors are all gone). */
void corio__http_server_free(corio_http_server *srv);

/* -- conn_io.c -- */
/* Receive up to n bytes into buf, waiting at most timeout_ms (0: no limit
 * of our own).  On HTTPS the bytes are plaintext from the TLS engine.
 * Returns bytes, 0 at EOF (over TLS also a close without close_notify:
 * HTTP's own framing tells a cut-off message) or -errno.  Suspends. */
ssize_t corio__http_recv(conn *c, void *buf, size_t n, uint64_t timeout_ms);
/* Is input already there, so that a receive would not wait?  Plaintext the
 * TLS engine holds, or bytes in the socket input's unread buffer. */
bool corio__http_input_buffered(const conn *c);
/* Send every byte of iov[0..cnt) (the array is consumed), each wait
 * bounded by the write timeout; on HTTPS through the TLS engine.  Returns
 * 0 or -errno (kept as werr). */
int corio__http_send_all(conn *c, struct iovec *iov, int cnt);
/* HTTPS: set up c's TLS engine (at the connection's start; does not
 * suspend).  Returns 0 or -ENOMEM / -CORIO_ETLS. */
int corio__http_tls_new(conn *c);
/* HTTPS: send close_notify (and what is staged before it).  Suspends. */
void corio__http_tls_close(conn *c);
/* HTTPS: run the handshake within the head time-out.  On failure the
 * engine is gone (c->tls NULL) and, for a plain HTTP request, the 400
 * answer waits in the output buffer (with linger set).  Suspends.
 * Returns 0 or -errno. */
int corio__http_tls_handshake(conn *c);
/* Send the output buffer (and, on HTTPS, every record made so far).
 * Returns 0 or the connection's write error. */
int corio__http_flush(conn *c);
/* Is anything waiting to be sent? */
static inline bool corio__http_out_pending(const conn *c) { return c->olen || c->toutlen; }
/* Make room for n more bytes in the output buffer.  False when out of
 * memory. */
bool corio__http_ob_reserve(conn *c, size_t n);
void corio__http_ob_putu(conn *c, uint64_t v);
void corio__http_ob_puthex(conn *c, uint64_t v);
static inline void corio__http_ob_put(conn *c, const void *p, size_t n)
{
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}
static inline void corio__http_ob_puts(conn *c, const char *s) { corio__http_ob_put(c, s, strlen(s)); }

/* -- body.c -- */
/* Before a head goes out: decide whether the connection survives this
 * request, so that the head can say so. */
void corio__http_settle_keep_alive(conn *c);
/* After the handler: read and drop what it left of the body, within
 * max_drain.  Returns true if the connection can go on. */
bool corio__http_drain_body(conn *c);

/* -- response.c -- */
/* An answer of the server's own (errors, timeouts); always closes. */
void corio__http_respond_error(conn *c, int status);

#endif
