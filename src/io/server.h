/*
 * The stream server (src/io/tcp.c) for other io/ files that open their
 * listening sockets themselves (Unix sockets, src/io/unix.c): they hand
 * the sockets over and get the same corio_server, with its accept tasks,
 * handlers and close.
 */
#ifndef CORIO_IO_SERVER_H
#define CORIO_IO_SERVER_H

#include "../core/internal.h"

/* The checks every server start makes first, in this order: NULL handler
 * or out, or an oversized stack (-EINVAL; *out is NULLed when out is
 * given), no loop (-EPERM), a pending cancel or passed deadline.  A NULL
 * *cfg becomes the defaults.  Returns 0 and *l, or the error. */
int corio__server_begin(corio_conn_fn handler, const corio_server_config **cfg, corio_server **out,
                        corio_loop **l);

/* Make a server from n (1..CORIO__MAX_LISTENERS) listening, non-blocking,
 * close-on-exec sockets, which it owns from then on (the streams of an
 * AF_UNIX one are Unix streams, receiving passed fds if cfg->receive_fds).  cfg is as for
 * corio_server_start (not NULL).  Does not suspend.  Returns 0 and *out,
 * or -errno with the fds still the caller's. */
int corio__server_adopt(corio_loop *l, const int *fds, int n, corio_conn_fn handler, void *arg,
                        const corio_server_config *cfg, corio_server **out);

/* Have fn(arg) called by corio_server_close once the listening sockets are
 * closed (before the handlers' grace period); the Unix server removes its
 * socket file there.  arg is the caller's (fn may free it). */
void corio__server_on_close(corio_server *srv, void (*fn)(void *), void *arg);

#endif
