/*
 * What the sim backend's two socket files share (sim_net.c: sockets,
 * ports, TCP; sim_udp.c: datagrams): the socket object, each host's
 * network state and the few helpers both use.  Nothing outside those two
 * files includes it.
 */
#ifndef CORIO_BACKEND_SIM_NET_H
#define CORIO_BACKEND_SIM_NET_H

#include "sim.h"

/* A byte queue (a ring) that grows up to its owner's limit. */
typedef struct simnet_bq {
    char *buf;
    size_t cap, head, len;
} simnet_bq;

/* One datagram, queued at a receiver or in flight between hosts. */
typedef struct simnet_dgram {
    corio__list link; /* receiver's queue, or the sender host's in-flight list */
    struct sockaddr_in from;
    struct sockaddr_in to;
    unsigned to_host;
    size_t len;
    char data[];
} simnet_dgram;

enum simnet_state { SN_NEW, SN_BOUND, SN_LISTEN, SN_CONNECTING, SN_CONNECTED, SN_DEAD };

typedef struct simnet_sock simnet_sock;
struct simnet_sock {
    corio__list hlink;    /* its host's sockets, in creation order */
    corio__list ops;      /* pending ops, FIFO (op->link) */
    corio__list qlink;    /* a listener's accept queue */
    corio__list acceptq;  /* listener: established connections not accepted yet */
    unsigned host, epoch; /* the host that made it, and that host's epoch then */
    int type;             /* SOCK_STREAM or SOCK_DGRAM */
    int state;            /* enum simnet_state */
    bool has_fd;          /* some fd refers to it (false: orphaned, or never accepted) */
    bool bound;           /* holds its local port */
    bool kick_armed;      /* a service event is scheduled */
    bool pump_armed;      /* a delivery event is scheduled */
    bool reuseaddr, reuseport, nodelay, keepalive;
    bool fin_pending; /* shutdown(SHUT_WR) or close: a FIN goes after sndq */
    bool fin_sent;
    bool rd_eof;          /* the peer's FIN arrived */
    bool rd_shut;         /* shutdown(SHUT_RD) */
    bool reset;           /* the connection was reset (or refused) */
    bool rst_incoming;    /* an RST is on its way here */
    bool connected_dgram; /* UDP: connect() set a default peer */
    int so_error;         /* pending error (SO_ERROR), positive errno */
    int backlog, nqueued;
    int linger_on, linger_s;
    int rcvbuf, sndbuf;
    struct sockaddr_in local, remote;
    simnet_sock *peer;     /* TCP: the other end while both exist */
    simnet_sock *listener; /* an established connection not accepted yet */
    simnet_bq rcvq, sndq;  /* TCP bytes */
    corio__list dgrams;    /* UDP: received datagrams (simnet_dgram) */
    size_t dgram_bytes;
    unsigned connect_tries;
};

/* Each host's network (corio__sim_host.net). */
typedef struct simnet_host {
    corio__list socks;    /* simnet_sock.hlink */
    corio__list inflight; /* datagrams sent from here, not delivered yet */
    uint16_t next_port;   /* the next ephemeral port to try */
} simnet_host;

/* The host's network state (made on first use; NULL only without memory). */
simnet_host *corio__simnet_host(corio__sim_host *h);
/* True if s's host crashed since s was made (its sockets are dead). */
bool corio__simnet_dead_host(corio__sim *w, const simnet_sock *s);
/* Schedule a 0-delay pass over s's pending ops (they complete from it). */
void corio__simnet_kick(corio__sim *w, simnet_sock *s);
/* Bind s to its local address (port 0: an ephemeral one).  0 or -errno. */
int corio__simnet_bind(corio__sim *w, simnet_sock *s, const struct sockaddr_in *a);
/* The host seen at address a (network order) from host from, or NULL. */
corio__sim_host *corio__simnet_route(corio__sim *w, unsigned from, uint32_t addr);

/* sim_udp.c */
ssize_t corio__simudp_sendmsg(corio__sim *w, simnet_sock *s, const struct msghdr *msg, int flags);
ssize_t corio__simudp_recvmsg(corio__sim *w, simnet_sock *s, struct msghdr *msg, int flags);
int corio__simudp_connect(corio__sim *w, simnet_sock *s, const struct sockaddr_in *a);
void corio__simudp_free(corio__sim *w, simnet_sock *s);
void corio__simudp_destroy_host(corio__sim *w, simnet_host *hn);

#endif
