/*
 * Unix socket addresses and the files behind them, shared by the stream
 * server and client (src/io/unix.c) and the datagram endpoints
 * (src/io/dgram.c): the '@' convention for abstract names, binding over a
 * stale socket file (never a live one or a file that is not a socket),
 * and removing the file on close only if it is still the one we bound.
 */
#ifndef CORIO_IO_UNIXADDR_H
#define CORIO_IO_UNIXADDR_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

/* path -> *sa and its length.  A leading '@' names an abstract address
 * (the '@' becomes the leading NUL, as Go and systemd write it); "@"
 * alone asks the kernel to pick one when `autobind` (a local address),
 * else it is -EINVAL.  -EINVAL for NULL or "", -ENAMETOOLONG when the
 * name does not fit. */
int corio__unix_addr(const char *path, bool autobind, struct sockaddr_un *sa, socklen_t *len);

/* bind(fd) at sa, the address of path.  A socket file there that refuses
 * a probe connect (with a socket of the same `type`) is left over from a
 * dead owner: it is unlinked and the bind tried once more.  A live one, or
 * a file that is not a socket, gives -EADDRINUSE and stays.  -errno. */
int corio__unix_bind(int fd, int type, const char *path, const struct sockaddr_un *sa, socklen_t len);

/* The socket file a bind made, remembered by identity so that it is
 * removed on close only while it is still that file. */
typedef struct corio__unix_file corio__unix_file;

/* Remember the file just bound at path.  *out is NULL for an abstract
 * name (no file).  Returns 0, or -errno (-ENOMEM, or lstat's error). */
int corio__unix_file_note(const char *path, corio__unix_file **out);

/* Unlink the file if the path still names it, then free f (NULL: no-op).
 * Takes a void * to serve as a close hook. */
void corio__unix_file_remove(void *f);

#endif
