/*
 * The sim backend's internal contract, shared by its three files:
 *  - sim.c: the world of one run (l->backend_data): the seeded generator,
 *    the virtual clock, the event queue, the trace, the table of virtual
 *    fds, the hosts, and the backend ops that tie them to the loop.
 *  - sim_net.c: TCP and UDP sockets in memory, with their faults.
 *  - sim_disk.c: each host's in-memory disk, with its faults.
 *
 * Everything runs on the loop's thread.  Nothing here may depend on a
 * pointer's value, on the real clock or on anything but the seed and the
 * program: that is what makes a run replay bit for bit.  Iterate in
 * insertion order, never over a hash of addresses.
 *
 * Virtual fds are numbers from CORIO__SIM_FD_BASE up, far above anything
 * the kernel hands out (the hard limit here is 20,000), so the system-call
 * shim in src/io/sys.h can tell them apart by value alone.
 */
#ifndef CORIO_BACKEND_SIM_H
#define CORIO_BACKEND_SIM_H

#include "../core/internal.h"

#include <corio/sim.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#define CORIO__SIM_MAX_HOSTS 1024

typedef struct corio__sim corio__sim;

/* ---- The generator ---- */

/* The next 64 random bits from the run's one generator. */
uint64_t corio__sim_rand(corio__sim *w);
/* A number in [0, n) (0 when n is 0). */
uint64_t corio__sim_below(corio__sim *w, uint64_t n);
/* True with probability p (p <= 0: never, without drawing; p >= 1: always). */
bool corio__sim_chance(corio__sim *w, double p);
/* Inject a fault with probability p: on true, counts it and puts
 * (CORIO__SIM_EV_FAULT, what, a) in the trace.  what is a static string. */
bool corio__sim_fault(corio__sim *w, double p, const char *what, uint64_t a);
/* The run's fault settings, defaults filled in (never NULL). */
const corio_sim_faults *corio__sim_faults(corio__sim *w);

/* ---- Virtual time and the event queue ---- */

/* Virtual now, in ns (what corio__clock_ns returns during a sim run). */
uint64_t corio__sim_now(corio__sim *w);

/* Call fn(w, arg, a) during a later poll, at virtual time now + delay_ns;
 * events due at the same time run in the order they were scheduled.
 * Returns 0 or -ENOMEM.  An event must not outlive arg: whoever frees arg
 * first calls corio__sim_forget(w, arg). */
typedef void (*corio__sim_event_fn)(corio__sim *w, void *arg, uint64_t a);
int corio__sim_at(corio__sim *w, uint64_t delay_ns, corio__sim_event_fn fn, void *arg, uint64_t a);
/* Drop every scheduled event whose arg is arg. */
void corio__sim_forget(corio__sim *w, void *arg);

/* Finish the pending op with res (from an event, i.e. during a poll):
 * puts it in the trace and calls corio__op_complete. */
void corio__sim_complete(corio__sim *w, corio__op *op, int32_t res);

/* A network latency drawn from the faults' latency_max_us (0 when every
 * fault is off). */
uint64_t corio__sim_latency(corio__sim *w);

/* ---- The trace ---- */

enum corio__sim_ev {
    CORIO__SIM_EV_RUN = 1, /* a = task id */
    CORIO__SIM_EV_CLOCK,   /* a = new virtual now */
    CORIO__SIM_EV_SUBMIT,  /* a = fd, b = kind << 32 | len (clamped) */
    CORIO__SIM_EV_DONE,    /* a = fd, b = kind << 32 | (uint32_t)res */
    CORIO__SIM_EV_FAULT,   /* text = what, a = detail */
    CORIO__SIM_EV_NET,     /* text = what, a, b = detail (connect, accept, reset, deliver...) */
    CORIO__SIM_EV_DISK,    /* text = what, a, b = detail (fsync, crash...) */
    CORIO__SIM_EV_HOST,    /* text = what (start, crash), a = host id */
    CORIO__SIM_EV_USER,    /* text = corio_sim_event's line */
};

/* Put one event in the trace: it is hashed (kind, the host of the running
 * task, a, b and text; never a pointer) and kept in the ring of recent
 * events shown when the run fails.  text may be NULL; at most 120 bytes of
 * it count. */
void corio__sim_trace(corio__sim *w, int kind, const char *text, uint64_t a, uint64_t b);

/* ---- Hosts ---- */

typedef struct corio__sim_host {
    unsigned id; /* 0: the main host */
    char name[64];
    struct in_addr addr; /* 127.0.0.1 for the main host */
    bool crashing;       /* crashed, and some of its tasks are still ending */
    unsigned epoch;      /* starts so far: lets a module tell a restart from the run before */
    void *net;           /* sim_net.c's per-host state (ports), NULL until used */
    void *disk;          /* sim_disk.c's per-host disk, NULL until used */
} corio__sim_host;

/* The host of the running task (the main host on the loop's own context). */
corio__sim_host *corio__sim_host_now(corio__sim *w);
/* Host by id (NULL if none). */
corio__sim_host *corio__sim_host_get(corio__sim *w, unsigned id);
/* The host owning IPv4 address addr (network order) as seen from host
 * from: 127.0.0.1 is from itself.  NULL if no host has it. */
corio__sim_host *corio__sim_host_by_addr(corio__sim *w, corio__sim_host *from, uint32_t addr);
/* The host named name as seen from host from ("localhost": from). */
corio__sim_host *corio__sim_host_by_name(corio__sim *w, corio__sim_host *from, const char *name);

/* ---- Virtual fds ---- */

/* What a virtual fd is; its ops are called by sim.c and by the shim's
 * generic calls (close, read, write, fcntl, fstat).  Any may be NULL: the
 * call then fails with the errno in its comment. */
typedef struct corio__sim_fd_ops {
    const char *kind;
    /* Start op (the backend's submit contract): 1 = done at once with
     * op->res set, 0 = pending, to finish with corio__op_complete during a
     * poll (from an event).  NULL: -EOPNOTSUPP at once. */
    int (*submit)(corio__sim *w, void *obj, corio__op *op);
    /* End a pending op early: its completion (usually -ECANCELED) is then
     * made during a poll.  Required when submit can return 0. */
    void (*cancel)(corio__sim *w, void *obj, corio__op *op);
    /* The last fd referring to obj is closed: release it.  Returns 0 or -errno
     * (the fd is gone either way, as with close(2)). */
    int (*close)(corio__sim *w, void *obj);
    /* read/write without waiting: bytes or -errno (-EAGAIN when it would block). */
    ssize_t (*read)(corio__sim *w, void *obj, void *buf, size_t n);
    ssize_t (*write)(corio__sim *w, void *obj, const void *buf, size_t n);
    /* st_mode and st_size for fstat (-EBADF if NULL). */
    int (*stat)(corio__sim *w, void *obj, struct stat *st);
} corio__sim_fd_ops;

typedef struct corio__sim_fd {
    const corio__sim_fd_ops *ops; /* NULL: the slot is free */
    void *obj;
    unsigned host;    /* the host that made it */
    int status_flags; /* F_GETFL / F_SETFL (O_NONBLOCK, O_APPEND, O_ACCMODE) */
    int fd_flags;     /* F_GETFD / F_SETFD (FD_CLOEXEC) */
} corio__sim_fd;

/* The current loop's world if it runs the sim backend, else NULL. */
corio__sim *corio__sim_world(void);
/* Give obj a new virtual fd (the lowest free one, as the kernel does, so
 * numbers replay).  Returns the fd or -ENOMEM / -EMFILE. */
int corio__sim_fd_new(corio__sim *w, const corio__sim_fd_ops *ops, void *obj, int status_flags);
/* The entry of fd, or NULL (not a live virtual fd). */
corio__sim_fd *corio__sim_fd_get(corio__sim *w, int fd);
/* Another fd for the same obj (dup): obj is closed when the last goes. */
int corio__sim_fd_dup(corio__sim *w, int fd, int min_fd);

/* ---- Hooks each module gives sim.c ---- */

/* sim_net.c */
void corio__sim_net_crash(corio__sim *w, corio__sim_host *h); /* reset h's connections, drop its listeners */
void corio__sim_net_destroy(corio__sim *w);                   /* free what is left at the run's end */
/* sim_disk.c */
void corio__sim_disk_crash(corio__sim *w, corio__sim_host *h); /* forget what h did not fsync */
void corio__sim_disk_destroy(corio__sim *w);
/* Set h's disk capacity (bytes of file data; 1 GiB by default): a write
 * past it is cut short, or fails with ENOSPC when nothing fits.  For
 * tests.  Returns 0 or -ENOMEM. */
int corio__sim_disk_capacity(corio__sim *w, corio__sim_host *h, uint64_t bytes);
/* The disk's ops for the path kinds (OPENAT, STATX, UNLINKAT, RENAMEAT,
 * MKDIRAT with fd AT_FDCWD): as corio__sim_fd_ops.submit. */
int corio__sim_disk_submit_path(corio__sim *w, corio__op *op);

/* ---- The simulated system calls, for src/io/sys.h ---- */

/* Each as its libc twin: -1 with errno on failure.  Generic ones in
 * sim.c, socket ones in sim_net.c, file ones in sim_disk.c. */
int corio__simsys_close(int fd);
int corio__simsys_fcntl(int fd, int cmd, int arg);
int corio__simsys_fstat(int fd, struct stat *st);
ssize_t corio__simsys_read(int fd, void *buf, size_t n);
ssize_t corio__simsys_write(int fd, const void *buf, size_t n);
int corio__simsys_realtime(struct timespec *ts);

int corio__simsys_socket(int domain, int type, int protocol);
int corio__simsys_bind(int fd, const struct sockaddr *sa, socklen_t len);
int corio__simsys_listen(int fd, int backlog);
int corio__simsys_connect(int fd, const struct sockaddr *sa, socklen_t len);
int corio__simsys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int corio__simsys_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int corio__simsys_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int corio__simsys_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int corio__simsys_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int corio__simsys_shutdown(int fd, int how);
ssize_t corio__simsys_send(int fd, const void *buf, size_t n, int flags);
ssize_t corio__simsys_recv(int fd, void *buf, size_t n, int flags);
ssize_t corio__simsys_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t corio__simsys_recvmsg(int fd, struct msghdr *msg, int flags);
int corio__simsys_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags);
int corio__simsys_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *timeout);
/* The IPv4 address of the simulated host called name, as the calling
 * task's host sees it (itself and "localhost": 127.0.0.1).  Returns 0,
 * -ENOENT (no such host) or -EINVAL (not in a sim run).  Not libc's. */
int corio__simsys_resolve(const char *name, struct in_addr *out);

int corio__simsys_open(const char *path, int flags, mode_t mode);
off_t corio__simsys_lseek(int fd, off_t off, int whence);
ssize_t corio__simsys_pread(int fd, void *buf, size_t n, off_t off);
ssize_t corio__simsys_pwrite(int fd, const void *buf, size_t n, off_t off);
int corio__simsys_fsync(int fd);
int corio__simsys_unlink(const char *path);
ssize_t corio__simsys_sendfile(int out_fd, int in_fd, off_t *off, size_t n);

#endif
