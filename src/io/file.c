/*
 * Asynchronous files: the corio_file_* calls of corio.h.
 *
 * Every call is described once, as a corio__op, and run by one of two
 * executors.  On io_uring the op goes to the kernel (corio__op_run), which
 * already guarantees that an interrupted op is waited for before its
 * buffers are released.  On epoll, and when the ring rejects an opcode
 * (-EINVAL / -EOPNOTSUPP from an older kernel), op_block() performs the same
 * call as a blocking system call on the thread pool through
 * corio__pool_run_sync(): an item still queued when the task is
 * interrupted is dropped, one already running is waited for, so a worker
 * never writes into a buffer whose call has returned.
 *
 * Reads and writes on epoll first try the call on the loop thread with
 * RWF_NOWAIT: a page-cache hit costs no thread hop at all.  When that
 * would block, a regular file (or block device) goes to the pool.  Any
 * other fd (pipe, FIFO, tty, pty master, socket, eventfd, ...) is a
 * "stream" and never goes to a worker (rw_stream): a blocking call there
 * may wait for ever (data that another reader took first, a write bigger
 * than the room left), nobody could interrupt it, and a few such calls
 * would hold every worker and stall all file I/O of the program.  The task
 * waits for readiness with a POLL op instead and tries again on the loop
 * thread, each try made so that it cannot block even on a blocking file
 * description, without changing that description (which a shell or
 * another process may share); see "Streams" below and src/io/anyfd.c.
 *
 * On io_uring, writes to unseekable fds take the same path: the ring
 * issues a write to a tty inline as soon as poll reports some room, and
 * that write then blocks the loop thread until the whole buffer is taken.
 * Reads stay native there (the ring waits for readiness itself).
 *
 * Opens and closes on epoll get the same treatment where the kernel
 * allows it, mirroring what io_uring does inline before it punts to its
 * workers: an open that creates nothing is tried on the loop thread with
 * openat2(RESOLVE_CACHED | O_NONBLOCK), which fails with EAGAIN instead of
 * touching the disk, and the close of a regular file or directory on a
 * local file system without a flush method is a plain close(2).  For a
 * directory of small cached files that turns three thread hops per file
 * into none (see docs/benchmarks.md, "Files").
 *
 * Close is special: the fd must be released on every path out of a task,
 * so an interrupted close that never reached the kernel is done right here
 * with close(2).
 */
#define _GNU_SOURCE 1
#include "../core/internal.h"
#include "../core/threadpool.h"
#include "anyfd.h"
#include "file.h"
#include "sys.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef CORIO_HAVE_URING
#include <liburing.h>
_Static_assert(IORING_FSYNC_DATASYNC == CORIO__FSYNC_DATASYNC,
               "one FSYNC flag means fdatasync in both executors");
#endif

/* ------------------------------------------------------------------ */
/* Executors                                                           */
/* ------------------------------------------------------------------ */

/* Thread-pool side: the op's blocking system call.  Runs on a worker;
 * touches only the op. */
static void op_block(void *arg)
{
    corio__op *op = arg;
    op->res = corio__op_syscall(op);
}

/* Does the backend run file operations itself, without blocking the loop?
 * (io_uring does; on epoll they go to the thread pool.) */
static inline bool native_files(corio_loop *l) { return corio__loop_can(l, CORIO__CAP_FILE_OPS); }

/* Run op on the thread pool and return its result. */
static int run_pool(corio__op *op)
{
    int r = corio__pool_run_sync(CORIO__POOL_FAST, op_block, op);
    return r < 0 ? r : op->res;
}

/* Run op natively when the backend can, else on the pool.  The
 * caller has checked that a task is running. */
static int run_op(corio__op *op)
{
    corio_loop *l = corio__loop();
    if (native_files(l)) {
        int r = corio__op_run(op);
        /* A kernel that predates the opcode says EINVAL; these calls have no
         * effect when they fail that way, so running them again on the
         * pool is safe (and merely repeats a genuine EINVAL).  Never under
         * the sim: its answer is final, and the pool would make the real
         * call on the real file system. */
        if ((r != -EINVAL && r != -EOPNOTSUPP) || corio__sys_simulating())
            return r;
    }
    return run_pool(op);
}

static inline bool in_task(void) { return corio__current_task() != NULL; }

/* ------------------------------------------------------------------ */
/* Reads and writes                                                    */
/* ------------------------------------------------------------------ */

/* Is fd a stream: anything but a regular file, block device or directory
 * (pipes, FIFOs, ttys, sockets, eventfds, character devices)?  Those wait
 * for readiness; the others are always ready and wait inside the call. */
static bool mode_is_stream(mode_t mode) { return !S_ISREG(mode) && !S_ISBLK(mode) && !S_ISDIR(mode); }

static bool fd_is_stream(int fd)
{
    struct stat st;
    return corio__sys_fstat(fd, &st) == 0 && mode_is_stream(st.st_mode);
}

/* Did a short RWF_NOWAIT read stop at the end of the file (or is the fd
 * one where short reads are normal), rather than where the page cache
 * ran out?  Costs no thread hop, so reads of whole small files stay on the
 * loop thread. */
static bool short_read_at_eof(const corio__op *op, ssize_t n)
{
    struct stat st;
    if (corio__sys_fstat(op->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return true;
    off_t end = op->off >= 0 ? (off_t)op->off + n : corio__sys_lseek(op->fd, 0, SEEK_CUR);
    return end < 0 || end >= st.st_size;
}

/* How many bytes op asks for: its length, or the sum of its iovecs; at
 * most CORIO__MAX_RW, as much as one call moves. */
static size_t op_bytes(const corio__op *op)
{
    if (op->kind != CORIO__OP_READV && op->kind != CORIO__OP_WRITEV)
        return op->len > CORIO__MAX_RW ? CORIO__MAX_RW : op->len;
    const struct iovec *iov = op->buf;
    size_t n = 0;
    for (size_t i = 0; i < op->len && n < CORIO__MAX_RW; i++) {
        size_t room = CORIO__MAX_RW - n;
        n += iov[i].iov_len < room ? iov[i].iov_len : room;
    }
    return n;
}

/* Fill *rest with the part of op after its first done bytes: a copy of op
 * pointing into the same buffers (a vectored op's iovec array is not
 * modified: when done ends inside one of its buffers, rest is the
 * remainder of that one buffer alone, and the following call goes on with
 * the next iovec). */
static void op_rest(const corio__op *op, size_t done, corio__op *rest)
{
    *rest = *op;
    if (!done)
        return;
    if (rest->off >= 0)
        rest->off += (int64_t)done;
    if (op->kind != CORIO__OP_READV && op->kind != CORIO__OP_WRITEV) {
        rest->buf = (char *)op->buf + done;
        rest->len = op->len - done;
        return;
    }
    const struct iovec *iov = op->buf;
    size_t i = 0;
    while (i < op->len && done >= iov[i].iov_len)
        done -= iov[i++].iov_len;
    if (!done) {
        rest->buf = (void *)(uintptr_t)(iov + i);
        rest->len = op->len - i;
    } else {
        rest->kind = op->kind == CORIO__OP_READV ? CORIO__OP_READ : CORIO__OP_WRITE;
        rest->buf = (char *)iov[i].iov_base + done;
        rest->len = iov[i].iov_len - done;
    }
}

/* ---- Streams ----------------------------------------------------------
 *
 * A read or write on a stream is a series of attempts on the loop thread
 * that cannot block, with a wait for readiness (a POLL op: cancellable,
 * and it holds no thread) whenever one says EAGAIN.  So a read woken for
 * data that another reader took first just waits again, and a write of
 * more than fits writes what fits and waits for room.  How one attempt is
 * made so that it cannot block (a "way" per fd) is src/io/anyfd.c's job.
 *
 * Results follow read(2) and write(2) on the fd's own description: a read
 * returns what is there (at least one byte, or 0 at end of file); a write
 * on a blocking description goes on, waiting for room, until every byte
 * is written, while on a non-blocking one it returns once some went out.
 * A write interrupted (cancel, deadline, error) after some bytes went out
 * returns their count; the interrupt stays pending for the next call. */

/* A read or write on a stream (see "Streams" above), done bytes of it
 * already written.  Suspends in POLL ops; returns as the comment above
 * says.  Never leaves a call running once it returns. */
static ssize_t rw_stream(corio__op *op, bool is_write, int way, size_t done)
{
    size_t want = op_bytes(op);
    int fl = -1;
    bool ready = false;
    unsigned misses = 0;
    for (;;) {
        corio__op rest;
        op_rest(op, done, &rest);
        ssize_t n;
        if (way != CORIO__WAY_POOL)
            n = corio__anyfd_try(&rest, is_write, &way, &fl);
        else
            n = ready ? run_pool(&rest) : -EAGAIN;
        if (n == -EAGAIN) {
            int r;
            /* poll(2) and the call may disagree now and then (a tty that
             * reports room too small for an expanded newline): don't
             * spin on it. */
            if (ready && ++misses > 8) {
                misses = 0;
                r = corio_sleep_ms(1);
            } else {
                corio__op p = {.kind = CORIO__OP_POLL, .fd = op->fd, .flags = is_write ? POLLOUT : POLLIN};
                r = corio__op_run(&p);
            }
            if (r < 0)
                return done ? (ssize_t)done : r;
            ready = true;
            continue;
        }
        if (n < 0)
            return done ? (ssize_t)done : n;
        done += (size_t)n;
        if (!is_write || n == 0 || done >= want)
            return (ssize_t)done;
        /* Part of a write went out: go on if the description blocks. */
        if (fl < 0)
            fl = corio__sys_fcntl(op->fd, F_GETFL, 0);
        if (fl < 0 || (fl & O_NONBLOCK))
            return (ssize_t)done;
        ready = false;
        misses = 0;
    }
}

enum { FS_OTHER, FS_LOCAL, FS_MEMORY };
static int fs_class(int fd);

/* The executor that tries each call on the loop thread first: every read
 * and write on epoll, and on io_uring writes to unseekable fds and reads
 * the ring answered with EAGAIN (see the file comment). */
static ssize_t rw_on_loop(corio__op *op, bool is_write)
{
    int r = corio__check();
    if (r)
        return r;
    ssize_t n = corio__anyfd_nowait(op, is_write);
    if (n >= 0) {
        /* A read served partly from the page cache stops where the cached
         * data ends; finish it on a worker so that a short read of a
         * regular file means end of file, as it does on io_uring.
         * (Vectored reads keep the short count.) */
        if (op->kind == CORIO__OP_READ && n > 0 && (size_t)n < op->len && n < (ssize_t)CORIO__MAX_RW &&
            !short_read_at_eof(op, n)) {
            corio__op rest;
            op_rest(op, (size_t)n, &rest);
            int m = run_pool(&rest);
            if (m > 0)
                n += m;
        } else if (is_write && n > 0 && (size_t)n < op_bytes(op) && fd_is_stream(op->fd)) {
            return rw_stream(op, true, CORIO__WAY_NOWAIT, (size_t)n); /* a pipe took part of it */
        }
        return n;
    }
    if (n == -EOPNOTSUPP && fs_class(op->fd) == FS_MEMORY) {
        /* tmpfs takes no RWF_NOWAIT (Linux 6.x) yet never waits for a
         * device: a thread hop would cost more than the call. */
        return corio__op_syscall(op);
    }
    if (n != -EAGAIN && n != -EOPNOTSUPP)
        return n;
    struct stat st;
    if (corio__sys_fstat(op->fd, &st) < 0 || !mode_is_stream(st.st_mode))
        return run_pool(op); /* a regular file or block device (or an error the call will report) */
    return rw_stream(op, is_write, n == -EAGAIN ? CORIO__WAY_NOWAIT : corio__anyfd_way(op->fd, &st), 0);
}

/* The io_uring executor for READ/WRITE/READV/WRITEV. */
static ssize_t rw_native(corio__op *op, bool is_write)
{
    if (op->off >= 0) {
        /* The ring ignores the offset on pipes and other streams (the call
         * would turn into a plain, possibly blocking, read): report what
         * pread(2) does. */
        if (corio__sys_lseek(op->fd, 0, SEEK_CUR) < 0 && errno == ESPIPE)
            return -ESPIPE;
        return run_op(op);
    }
    if (!is_write) {
        int r = run_op(op);
        /* For a non-blocking description of a file without RWF_NOWAIT (a
         * tty) the ring may answer EAGAIN instead of waiting, depending on
         * the kernel (6.18 waits): then wait here as on epoll. */
        if (r == -EAGAIN && fd_is_stream(op->fd))
            return rw_on_loop(op, false);
        return r;
    }
    /* Pipes, FIFOs, ttys and sockets cannot seek.  A write to them goes
     * the loop-thread way, as on epoll (see the file comment). */
    off_t pos = corio__sys_lseek(op->fd, 0, SEEK_CUR);
    if (pos < 0 && errno == ESPIPE)
        return rw_on_loop(op, true);
    /* A write at the current position that the kernel cuts short (its
     * retry of the rest fails: RLIMIT_FSIZE, a full disk) reports the
     * bytes written but leaves the file position where the write began
     * (seen on Linux 6.x), so the caller's next write would overwrite them
     * and could even succeed: a half-written file reported as complete.
     * So resolve the position here, write at an explicit offset and move
     * the position ourselves.  O_APPEND writes go to the end whatever the
     * offset. */
    int fl = corio__sys_fcntl(op->fd, F_GETFL, 0);
    if (fl < 0 || (fl & O_APPEND) || pos < 0)
        return run_op(op);
    op->off = pos;
    int r = run_op(op);
    if (r > 0)
        (void)corio__sys_lseek(op->fd, pos + r, SEEK_SET);
    return r;
}

static ssize_t rw(uint8_t kind, int fd, void *buf, size_t len, int64_t off)
{
    if (!buf && len)
        return -EINVAL;
    if (!in_task())
        return -EPERM;
    corio__op op = {.kind = kind, .fd = fd, .buf = buf, .len = len, .off = off};
    bool is_write = kind == CORIO__OP_WRITE || kind == CORIO__OP_WRITEV;
    corio_loop *l = corio__loop();
    if (native_files(l))
        return rw_native(&op, is_write);
    return rw_on_loop(&op, is_write);
}

ssize_t corio_file_read(int fd, void *buf, size_t n) { return rw(CORIO__OP_READ, fd, buf, n, -1); }

ssize_t corio_file_write(int fd, const void *buf, size_t n)
{
    return rw(CORIO__OP_WRITE, fd, (void *)(uintptr_t)buf, n, -1);
}

ssize_t corio_file_pread(int fd, void *buf, size_t n, int64_t off)
{
    return off < 0 ? -EINVAL : rw(CORIO__OP_READ, fd, buf, n, off);
}

ssize_t corio__file_pread_seq(int fd, void *buf, size_t n, int64_t off, int *how)
{
    if (!how || off < 0 || (!buf && n))
        return -EINVAL;
    if (!in_task())
        return -EPERM;
    if (*how == CORIO__FILE_UNKNOWN)
        *how = fs_class(fd) == FS_MEMORY ? CORIO__FILE_MEMORY : CORIO__FILE_ANY;
    if (*how != CORIO__FILE_MEMORY)
        return rw(CORIO__OP_READ, fd, buf, n, off);
    /* tmpfs: what rw_on_loop ends up doing for it, without first asking
     * for RWF_NOWAIT and then classifying the file again */
    int r = corio__check();
    if (r)
        return r;
    corio__op op = {.kind = CORIO__OP_READ, .fd = fd, .buf = buf, .len = n, .off = off};
    return corio__op_syscall(&op);
}

ssize_t corio_file_pwrite(int fd, const void *buf, size_t n, int64_t off)
{
    return off < 0 ? -EINVAL : rw(CORIO__OP_WRITE, fd, (void *)(uintptr_t)buf, n, off);
}

static ssize_t rwv(uint8_t kind, int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    return rw(kind, fd, (void *)(uintptr_t)iov, (size_t)iovcnt, off);
}

ssize_t corio_file_readv(int fd, const struct iovec *iov, int iovcnt)
{
    return rwv(CORIO__OP_READV, fd, iov, iovcnt, -1);
}

ssize_t corio_file_writev(int fd, const struct iovec *iov, int iovcnt)
{
    return rwv(CORIO__OP_WRITEV, fd, iov, iovcnt, -1);
}

ssize_t corio_file_preadv(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
    return off < 0 ? -EINVAL : rwv(CORIO__OP_READV, fd, iov, iovcnt, off);
}

ssize_t corio_file_pwritev(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
    return off < 0 ? -EINVAL : rwv(CORIO__OP_WRITEV, fd, iov, iovcnt, off);
}

/* ------------------------------------------------------------------ */
/* Open, close, metadata                                               */
/* ------------------------------------------------------------------ */

static int path_op(uint8_t kind, const char *path, int flags, size_t mode)
{
    if (!path)
        return -EINVAL;
    if (!in_task())
        return -EPERM;
    corio__op op = {
        .kind = kind, .fd = AT_FDCWD, .buf = (void *)(uintptr_t)path, .flags = flags, .len = mode};
    return run_op(&op);
}

/* The epoll fast path of open: the open done on the loop thread when it
 * cannot block, as io_uring tries it before punting to a worker.
 * RESOLVE_CACHED fails with EAGAIN rather than read a directory from disk;
 * O_NONBLOCK keeps a FIFO (or a device that waits for a carrier) from
 * blocking the open and is cleared again afterwards.  Creating or
 * truncating opens may write and are never tried.  Returns the fd, a
 * definitive -errno, or -EAGAIN: use the pool. */
static int open_cached(const char *path, int flags)
{
    /* 1 works, 0 untested, -1 the kernel lacks openat2 or RESOLVE_CACHED
     * (before 5.12).  A benign race between loops: both probe. */
    static int state;
    int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
    if (st < 0 || (flags & (O_CREAT | O_TRUNC | O_PATH | __O_TMPFILE)))
        return -EAGAIN;
    if (st == 0) {
        struct open_how probe = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_CACHED};
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &probe, sizeof probe);
        st = fd >= 0 || errno == EAGAIN ? 1 : -1;
        if (fd >= 0)
            close(fd);
        __atomic_store_n(&state, st, __ATOMIC_RELAXED);
        if (st < 0)
            return -EAGAIN;
    }
    struct open_how how = {.flags = (uint64_t)(unsigned)(flags | O_NONBLOCK), .resolve = RESOLVE_CACHED};
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd < 0) {
        switch (errno) {
        /* Answers that a blocking open would give as well. */
        case ENOENT:
        case ENOTDIR:
        case EACCES:
        case EPERM:
        case EISDIR:
        case ELOOP:
        case ENAMETOOLONG:
        case EROFS:
        case EMFILE:
        case ENFILE:
        case EFAULT:
            return -errno;
        default: /* EAGAIN, ENXIO (FIFO without reader), EINVAL (openat2 is stricter), ... */
            return -EAGAIN;
        }
    }
    /* F_SETFL takes only the status flags; the others were set by open and
     * stay.  O_ASYNC is left out on purpose: open(2) ignores it. */
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & (O_APPEND | O_DIRECT | O_NOATIME)) < 0) {
        close(fd);
        return -EAGAIN;
    }
    return fd;
}

int corio_file_open(const char *path, int flags, mode_t mode)
{
    flags |= O_CLOEXEC;
    if (path && in_task() && !native_files(corio__loop())) {
        int r = corio__check();
        if (r)
            return r;
        r = open_cached(path, flags);
        if (r != -EAGAIN)
            return r;
    }
    return path_op(CORIO__OP_OPENAT, path, flags, mode);
}

/* What kind of file system holds fd, if fd is a regular file or a
 * directory (FS_OTHER for anything else): FS_LOCAL for local disk file
 * systems whose files have no flush method, FS_MEMORY for tmpfs and ramfs,
 * whose reads and writes never wait for a device.  The answer is cached
 * per device for this thread, so the check costs one fstat. */
static int fs_class(int fd)
{
    static _Thread_local struct {
        dev_t dev;
        int cls;
    } cache[8];
    static _Thread_local unsigned cache_next;
    struct stat st;
    if (corio__sys_virtual(fd) || fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return FS_OTHER; /* a simulated file: neither local nor memory, always through the backend */
    for (unsigned i = 0; i < cache_next && i < 8; i++)
        if (cache[i].dev == st.st_dev)
            return cache[i].cls;
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0)
        return FS_OTHER;
    int cls;
    switch ((unsigned long)fs.f_type) {
    case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
        cls = FS_LOCAL;
        break;
    case TMPFS_MAGIC:
    case RAMFS_MAGIC:
        cls = FS_MEMORY;
        break;
    default:
        cls = FS_OTHER;
        break;
    }
    cache[cache_next % 8].dev = st.st_dev;
    cache[cache_next % 8].cls = cls;
    cache_next++;
    return cls;
}

/* May fd be closed on the loop thread?  Only files whose close(2) just
 * drops references (io_uring's inline close requires the same: no flush
 * method).  NFS, FUSE, overlayfs and the like flush on close, a tty may
 * drain its output and a socket may linger: those go to the pool.  (The
 * last close of an unlinked big file frees its blocks on this thread, as
 * io_uring's inline close does.) */
static bool close_inline_ok(int fd) { return fs_class(fd) != FS_OTHER; }

int corio_file_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    corio_loop *l = corio__loop();
    if (l)
        l->backend->forget_fd(l, fd);
    int r = -ECANCELED;
    if (in_task() && !native_files(l) && close_inline_ok(fd)) {
        /* Closing is never refused for a pending cancel: the fd would leak. */
        r = corio__sys_close(fd) < 0 && errno != EINTR ? -errno : 0;
        return r;
    }
    if (in_task()) {
        corio__op op = {.kind = CORIO__OP_CLOSE, .fd = fd};
        r = run_op(&op);
    }
    /* Interrupted (or outside a task) before the close ran: it must still
     * happen.  close(2) of a file is quick; an NFS flush is the rare slow
     * case and a price worth paying for never leaking the fd. */
    if (r == -ECANCELED || r == -CORIO_EDEADLINE || r == -EPERM || r == -ENOMEM || r == -EAGAIN ||
        r == -EBUSY) {
        r = corio__sys_close(fd) < 0 && errno != EINTR ? -errno : 0;
    }
    return r;
}

static int fsync_op(int fd, int flags)
{
    if (!in_task())
        return -EPERM;
    corio__op op = {.kind = CORIO__OP_FSYNC, .fd = fd, .flags = flags};
    return run_op(&op);
}

int corio_file_fsync(int fd) { return fsync_op(fd, 0); }
int corio_file_fdatasync(int fd) { return fsync_op(fd, CORIO__FSYNC_DATASYNC); }

static void statx_to_stat(const struct statx *x, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
    st->st_ino = x->stx_ino;
    st->st_mode = x->stx_mode;
    st->st_nlink = x->stx_nlink;
    st->st_uid = x->stx_uid;
    st->st_gid = x->stx_gid;
    st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
    st->st_size = (off_t)x->stx_size;
    st->st_blksize = (blksize_t)x->stx_blksize;
    st->st_blocks = (blkcnt_t)x->stx_blocks;
    st->st_atim.tv_sec = x->stx_atime.tv_sec;
    st->st_atim.tv_nsec = x->stx_atime.tv_nsec;
    st->st_mtim.tv_sec = x->stx_mtime.tv_sec;
    st->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
    st->st_ctim.tv_sec = x->stx_ctime.tv_sec;
    st->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

static int stat_op(int dirfd, const char *path, int flags, struct stat *st)
{
    if (!path || !st)
        return -EINVAL;
    if (!in_task())
        return -EPERM;
    struct statx x;
    corio__op op = {
        .kind = CORIO__OP_STATX, .fd = dirfd, .buf = (void *)(uintptr_t)path, .flags = flags, .stx = &x};
    int r = run_op(&op);
    if (r == 0)
        statx_to_stat(&x, st);
    return r;
}

int corio_file_fstat(int fd, struct stat *st)
{
    if (fd < 0)
        return -EBADF; /* with AT_EMPTY_PATH, AT_FDCWD would stat the cwd */
    return stat_op(fd, "", AT_EMPTY_PATH, st);
}

int corio_file_stat(const char *path, struct stat *st) { return stat_op(AT_FDCWD, path, 0, st); }

int corio_file_unlink(const char *path) { return path_op(CORIO__OP_UNLINKAT, path, 0, 0); }
int corio_file_rmdir(const char *path) { return path_op(CORIO__OP_UNLINKAT, path, AT_REMOVEDIR, 0); }
int corio_file_mkdir(const char *path, mode_t mode) { return path_op(CORIO__OP_MKDIRAT, path, 0, mode); }

int corio_file_rename(const char *from, const char *to)
{
    if (!from || !to)
        return -EINVAL;
    if (!in_task())
        return -EPERM;
    corio__op op = {.kind = CORIO__OP_RENAMEAT, .fd = AT_FDCWD, .buf = (void *)(uintptr_t)from, .path2 = to};
    return run_op(&op);
}

/* ------------------------------------------------------------------ */
/* Whole-file helpers                                                  */
/* ------------------------------------------------------------------ */

int corio_file_read_all(const char *path, size_t cap, char **out, size_t *len)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (len)
        *len = 0;
    if (cap >= SIZE_MAX - 1)
        cap = SIZE_MAX - 2;
    int fd = corio_file_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    char *buf = NULL;
    size_t used = 0, room;
    struct stat st;
    int r = corio_file_fstat(fd, &st);
    if (r < 0)
        goto fail;
    if (S_ISDIR(st.st_mode)) {
        r = -EISDIR;
        goto fail;
    }
    /* Room for the whole file plus one byte, so the read that sees end of
     * file needs no reallocation; files that report no size (/proc, pipes)
     * start small and grow. */
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uint64_t)st.st_size > cap) {
            r = -EFBIG;
            goto fail;
        }
        room = (size_t)st.st_size + 1;
    } else {
        room = 16384;
    }
    if (room > cap)
        room = cap;
    if (!(buf = corio__malloc(room + 1))) {
        r = -ENOMEM;
        goto fail;
    }
    for (;;) {
        if (used == room) {
            if (used >= cap) {
                /* Full at the cap: only end of file right here is fine. */
                char probe;
                ssize_t n = corio_file_read(fd, &probe, 1);
                if (n < 0) {
                    r = (int)n;
                    goto fail;
                }
                if (n > 0) {
                    r = -EFBIG;
                    goto fail;
                }
                break;
            }
            size_t nroom = room < 4096 ? 8192 : room * 2;
            if (nroom > cap || nroom < room)
                nroom = cap;
            char *nb = corio__realloc(buf, nroom + 1);
            if (!nb) {
                r = -ENOMEM;
                goto fail;
            }
            buf = nb;
            room = nroom;
        }
        ssize_t n = corio_file_read(fd, buf + used, room - used);
        if (n < 0) {
            r = (int)n;
            goto fail;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    r = corio_file_close(fd);
    if (r < 0) {
        corio__free(buf);
        return r;
    }
    buf[used] = '\0';
    *out = buf;
    if (len)
        *len = used;
    return 0;

fail:
    corio__free(buf);
    corio_file_close(fd);
    return r;
}

/* Write all of buf to fd, continuing after short writes, then close fd. */
static int write_fully_and_close(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    int r = 0;
    while (len > 0) {
        ssize_t n = corio_file_write(fd, p, len);
        if (n < 0) {
            r = (int)n;
            break;
        }
        if (n == 0) { /* no progress and no reason given: never call that success */
            r = -EIO;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    int c = corio_file_close(fd);
    return r < 0 ? r : c;
}

int corio_file_write_all(const char *path, const void *buf, size_t len, mode_t mode)
{
    if (!buf && len)
        return -EINVAL;
    int fd = corio_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return fd;
    return write_fully_and_close(fd, buf, len);
}

int corio_file_append(const char *path, const void *buf, size_t len)
{
    if (!buf && len)
        return -EINVAL;
    int fd = corio_file_open(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd < 0)
        return fd;
    return write_fully_and_close(fd, buf, len);
}
