/*
 * Opening listening TCP sockets, shared by the two servers: the stream
 * server (corio_server_start, src/io/tcp.c) and the HTTP server
 * (corio_http_server_start, src/http/server.c).  Both bind the same way:
 * host NULL or "" is every interface through one dual-stack IPv6 socket
 * (IPv4 only when the machine has no IPv6), a name or address is every
 * address it resolves to ("localhost": 127.0.0.1 and ::1), all on one port.
 * The servers then run one accept task per socket.
 */
#ifndef CORIO_IO_LISTEN_H
#define CORIO_IO_LISTEN_H

#include "../core/internal.h"

#include <stdint.h>

/* Most sockets one server opens; addresses past it are ignored. */
#define CORIO__MAX_LISTENERS 16

typedef struct corio__listen_opts {
    int backlog;     /* listen(2) backlog; <= 0: 4096 */
    bool reuse_port; /* SO_REUSEPORT on every socket */
    bool nodelay;    /* TCP_NODELAY on every socket (Linux copies it to accepted ones) */
} corio__listen_opts;

/* Open, bind and listen on host:port.  host NULL or "": one socket on ::
 * with IPV6_V6ONLY off (IPv4 and IPv6), or on 0.0.0.0 when the machine
 * has no IPv6.  Otherwise every IPv4/IPv6 address host resolves to (name
 * resolution suspends the calling task, which must be a task), each with
 * IPV6_V6ONLY on, all on the same port: with port 0 the first socket's
 * ephemeral port is reused for the rest; an address the machine can not
 * bind (-EADDRNOTAVAIL, -EAFNOSUPPORT) is skipped if another one works.
 * Every socket is non-blocking, close-on-exec and has SO_REUSEADDR.  At
 * most max sockets are opened into fds[0..n).  Returns n >= 1, or -errno
 * (-EADDRINUSE, -EACCES, -ENOENT for an unknown host, -ECANCELED /
 * -CORIO_EDEADLINE if the task was interrupted while resolving, ...) with no
 * socket left open. */
int corio__listen_all(const char *host, uint16_t port, const corio__listen_opts *o, int *fds, unsigned max);

/* socket(family, SOCK_STREAM, 0), non-blocking and close-on-exec, behind
 * the fail-injection hook (a failure reports EMFILE).  Returns the fd or
 * -1 with errno set. */
int corio__tcp_socket(int family);

/* What an accept that failed with r means for its listener, the same for
 * both servers: the task was interrupted (STOP), the process or system is
 * out of fds or memory (PAUSE: wait CORIO__ACCEPT_PAUSE_MS, then go on),
 * the failure was the peer's or its network's, as accept(2) lists them
 * (RETRY at once), or the listener itself is broken (BROKEN: stop). */
enum { CORIO__ACCEPT_STOP, CORIO__ACCEPT_PAUSE, CORIO__ACCEPT_RETRY, CORIO__ACCEPT_BROKEN };
#define CORIO__ACCEPT_PAUSE_MS 100
int corio__accept_error(int r);

/* Check that fds[0..n) are listening stream sockets, then make them
 * non-blocking and close-on-exec (and TCP_NODELAY if nodelay): the
 * adoption of passed sockets (corio_server_start_fds and its HTTP twin;
 * src/io/activation.c).  More than max is -E2BIG (CORIO__MAX_LISTENERS
 * for one server; the HTTP server's workers take that many each).
 * Returns 0, or -errno with no fd changed (errors as
 * corio_server_start_fds lists them). */
int corio__listen_adopt(const int *fds, unsigned n, unsigned max, bool nodelay);

/* The local port fd is bound to, 0 if it can not be read. */
uint16_t corio__fd_port(int fd);

#endif
