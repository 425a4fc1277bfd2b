/*
 * Internal hooks of the stream layer for the rest of io/ (the TCP server and
 * client).  The stream itself stays opaque here; these calls only cover what
 * the public API cannot express without costing a system call or a flag the
 * user could get wrong.
 */
#ifndef CORIO_IO_STREAM_H
#define CORIO_IO_STREAM_H

#include "../core/internal.h"

/* As corio_stream_from_fd for an fd that is already non-blocking and
 * close-on-exec (accept4/socket with SOCK_NONBLOCK|SOCK_CLOEXEC), so no
 * fcntl is spent.  Takes ownership of fd only on success; NULL with errno
 * ENOMEM otherwise.  Does not suspend. */
corio_stream *corio__stream_new(int fd);

/* Ask the stream to set *flag = true when corio_stream_close/aclose is
 * called on it (NULL to stop).  The server uses this to know whether a
 * handler left its stream open; flag must outlive the stream or be cleared
 * first. */
void corio__stream_set_close_flag(corio_stream *s, bool *flag);

/* Bytes received and not read yet (what the read buffer holds), for the
 * tests of the input bound (corio_stream_set_limit).  Does not suspend. */
size_t corio__stream_unread(const corio_stream *s);

/* Mark s as a Unix socket stream: corio_stream_write_fds and peercred
 * work on it, and corio_stream_set_receive_fds may make its receives
 * recvmsgs that keep the fds a peer passes (src/io/fdpass.c); until then
 * it receives as a TCP stream does.  Does not suspend. */
void corio__stream_set_unix(corio_stream *s);

#endif
