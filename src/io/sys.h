/*
 * The system calls of the I/O layer, routed: a call on a virtual fd (the
 * sim backend's, numbers from CORIO__SIM_FD_BASE up) goes to the
 * simulation, every other call to the kernel as before.  Calls that make a
 * new fd (socket, open) go to the simulation while the thread's loop runs
 * the sim backend.
 *
 * Each has its libc twin's contract exactly (-1 with errno set on
 * failure), so a call site changes only its name.  On a real fd the cost
 * is one compare.  The simulated side lives in src/backend/sim*.c.
 */
#ifndef CORIO_IO_SYS_H
#define CORIO_IO_SYS_H

#include "../backend/sim.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* True if fd is one of the sim backend's. */
static inline bool corio__sys_virtual(int fd) { return CORIO__UNLIKELY(fd >= CORIO__SIM_FD_BASE); }

/* True if the thread's loop runs the sim backend (new fds are virtual). */
static inline bool corio__sys_simulating(void)
{
    corio_loop *l = corio__tls_loop;
    return CORIO__UNLIKELY(l && (l->caps & CORIO__CAP_SIM));
}

/* The simulated side (corio__simsys_*) is declared in ../backend/sim.h. */

static inline int corio__sys_close(int fd)
{
    return corio__sys_virtual(fd) ? corio__simsys_close(fd) : close(fd);
}
static inline int corio__sys_fcntl(int fd, int cmd, int arg)
{
    return corio__sys_virtual(fd) ? corio__simsys_fcntl(fd, cmd, arg) : fcntl(fd, cmd, arg);
}
static inline int corio__sys_fstat(int fd, struct stat *st)
{
    return corio__sys_virtual(fd) ? corio__simsys_fstat(fd, st) : fstat(fd, st);
}
static inline ssize_t corio__sys_read(int fd, void *buf, size_t n)
{
    return corio__sys_virtual(fd) ? corio__simsys_read(fd, buf, n) : read(fd, buf, n);
}
static inline ssize_t corio__sys_write(int fd, const void *buf, size_t n)
{
    return corio__sys_virtual(fd) ? corio__simsys_write(fd, buf, n) : write(fd, buf, n);
}
/* CLOCK_REALTIME: in a sim run, a fixed date plus the virtual time. */
static inline int corio__sys_realtime(struct timespec *ts)
{
    return corio__sys_simulating() ? corio__simsys_realtime(ts) : clock_gettime(CLOCK_REALTIME, ts);
}

static inline int corio__sys_socket(int domain, int type, int protocol)
{
    return corio__sys_simulating() ? corio__simsys_socket(domain, type, protocol)
                                   : socket(domain, type, protocol);
}
static inline int corio__sys_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return corio__sys_virtual(fd) ? corio__simsys_bind(fd, sa, len) : bind(fd, sa, len);
}
static inline int corio__sys_listen(int fd, int backlog)
{
    return corio__sys_virtual(fd) ? corio__simsys_listen(fd, backlog) : listen(fd, backlog);
}
static inline int corio__sys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    return corio__sys_virtual(fd) ? corio__simsys_connect(fd, sa, len) : connect(fd, sa, len);
}
static inline int corio__sys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return corio__sys_virtual(fd) ? corio__simsys_accept4(fd, sa, len, flags) : accept4(fd, sa, len, flags);
}
static inline int corio__sys_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return corio__sys_virtual(fd) ? corio__simsys_getsockname(fd, sa, len) : getsockname(fd, sa, len);
}
static inline int corio__sys_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return corio__sys_virtual(fd) ? corio__simsys_getpeername(fd, sa, len) : getpeername(fd, sa, len);
}
static inline int corio__sys_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return corio__sys_virtual(fd) ? corio__simsys_setsockopt(fd, level, name, val, len)
                                  : setsockopt(fd, level, name, val, len);
}
static inline int corio__sys_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    return corio__sys_virtual(fd) ? corio__simsys_getsockopt(fd, level, name, val, len)
                                  : getsockopt(fd, level, name, val, len);
}
static inline int corio__sys_shutdown(int fd, int how)
{
    return corio__sys_virtual(fd) ? corio__simsys_shutdown(fd, how) : shutdown(fd, how);
}
static inline ssize_t corio__sys_send(int fd, const void *buf, size_t n, int flags)
{
    return corio__sys_virtual(fd) ? corio__simsys_send(fd, buf, n, flags) : send(fd, buf, n, flags);
}
static inline ssize_t corio__sys_recv(int fd, void *buf, size_t n, int flags)
{
    return corio__sys_virtual(fd) ? corio__simsys_recv(fd, buf, n, flags) : recv(fd, buf, n, flags);
}
static inline ssize_t corio__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return corio__sys_virtual(fd) ? corio__simsys_sendmsg(fd, msg, flags) : sendmsg(fd, msg, flags);
}
static inline ssize_t corio__sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    return corio__sys_virtual(fd) ? corio__simsys_recvmsg(fd, msg, flags) : recvmsg(fd, msg, flags);
}
static inline int corio__sys_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    return corio__sys_virtual(fd) ? corio__simsys_sendmmsg(fd, v, n, flags) : sendmmsg(fd, v, n, flags);
}
static inline int corio__sys_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags,
                                      struct timespec *timeout)
{
    return corio__sys_virtual(fd) ? corio__simsys_recvmmsg(fd, v, n, flags, timeout)
                                  : recvmmsg(fd, v, n, flags, timeout);
}
/* The address of a simulated host by name (not libc's: 0 or -errno,
 * -ENOENT outside a sim run); see corio__simsys_resolve. */
static inline int corio__sys_resolve(const char *name, struct in_addr *out)
{
    return corio__sys_simulating() ? corio__simsys_resolve(name, out) : -ENOENT;
}

static inline int corio__sys_open(const char *path, int flags, mode_t mode)
{
    return corio__sys_simulating() ? corio__simsys_open(path, flags, mode) : open(path, flags, mode);
}
static inline off_t corio__sys_lseek(int fd, off_t off, int whence)
{
    return corio__sys_virtual(fd) ? corio__simsys_lseek(fd, off, whence) : lseek(fd, off, whence);
}
static inline ssize_t corio__sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return corio__sys_virtual(fd) ? corio__simsys_pread(fd, buf, n, off) : pread(fd, buf, n, off);
}
static inline ssize_t corio__sys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return corio__sys_virtual(fd) ? corio__simsys_pwrite(fd, buf, n, off) : pwrite(fd, buf, n, off);
}
static inline int corio__sys_fsync(int fd)
{
    return corio__sys_virtual(fd) ? corio__simsys_fsync(fd) : fsync(fd);
}
static inline int corio__sys_unlink(const char *path)
{
    return corio__sys_simulating() ? corio__simsys_unlink(path) : unlink(path);
}
static inline ssize_t corio__sys_sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
    return corio__sys_virtual(out_fd) || corio__sys_virtual(in_fd)
               ? corio__simsys_sendfile(out_fd, in_fd, off, n)
               : sendfile(out_fd, in_fd, off, n);
}

#endif
