/*
 * Non-blocking calls on any fd (src/io/anyfd.c): the one place that knows
 * how to make a read or write on a pipe, FIFO, tty, pty master, inotify fd
 * or socket without blocking the loop thread and without touching a
 * description other processes may share.  Used by src/io/file.c and
 * src/io/stream.c.  Nothing here suspends; all of it runs on the loop
 * thread (corio__anyfd_try's toggle is also safe with loops on other
 * threads).
 */
#ifndef CORIO_IO_ANYFD_H
#define CORIO_IO_ANYFD_H

#include "../core/internal.h"

#include <sys/types.h>

struct stat;

/* How one attempt on an fd is made non-blocking (see anyfd.c). */
enum { CORIO__WAY_NOWAIT, CORIO__WAY_REOPEN, CORIO__WAY_TOGGLE, CORIO__WAY_POOL };

/* One attempt at op (READ, WRITE, READV or WRITEV; off < 0: the current
 * position) with RWF_NOWAIT.  Returns bytes, -EAGAIN when it would block,
 * -EOPNOTSUPP when the fd does not do RWF_NOWAIT, or -errno. */
ssize_t corio__anyfd_nowait(const corio__op *op, bool is_write);

/* The way for a stream fd that answered RWF_NOWAIT with EOPNOTSUPP; st is
 * its fstat.  Costs an epoll_create1 for fds that cannot be reopened. */
int corio__anyfd_way(int fd, const struct stat *st);

/* One attempt at op that cannot block, made the way *way says: bytes, 0,
 * -EAGAIN when it has to wait, or -errno.  Never for CORIO__WAY_POOL (the
 * caller runs the blocking call on a worker).  A reopen that is refused
 * turns *way into CORIO__WAY_POOL (and says -EAGAIN).  *fl caches fd's
 * F_GETFL flags (-1 until read). */
ssize_t corio__anyfd_try(corio__op *op, bool is_write, int *way, int *fl);

/* May fd be opened again privately (corio__reopen_nonblock)?  True for a
 * FIFO and for a tty other than a pty master (opening /dev/ptmx again would
 * make a new pty); st is fd's fstat. */
bool corio__can_reopen(int fd, const struct stat *st);

/* Open fd's tty or FIFO again through /proc/self/fd, non-blocking, so that
 * calls on the new description cannot block while fd's own description,
 * which is often shared (a shell's terminal, a FIFO other processes use
 * too), stays as it is.  Only for fds corio__can_reopen accepts; fl is
 * fd's F_GETFL flags (the access mode is kept).  Returns the new fd
 * (O_CLOEXEC, O_NOCTTY; the caller closes it) or -1 with errno set: no
 * /proc, an exclusive tty, no permission, a FIFO's write side without a
 * reader (ENXIO). */
int corio__reopen_nonblock(int fd, int fl);

/* A private non-blocking description for a stream on fd, kept for the
 * stream's life: a tty or a named FIFO has no RWF_NOWAIT, and a plain
 * write to it after POLLOUT blocks until all of it is taken.  Returns the
 * new fd (the caller closes it), or -1 when fd needs none (an anonymous
 * pipe keeps RWF_NOWAIT; a pty master cannot be reopened) or it could not
 * be opened. */
int corio__reopen_private(int fd, const struct stat *st);

#endif
