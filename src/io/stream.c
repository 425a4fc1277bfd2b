/*
 * Streams: asyncio's StreamReader and StreamWriter in one object over a
 * connected stream socket.
 *
 * Read side.  A read buffer is allocated only when a call needs one (4 KiB
 * to start, doubling up to the separator limit for readuntil/readline, and
 * given back once it has drained after growing), so an idle connection costs
 * the struct alone.  corio_stream_read and corio_stream_readexactly with a large request
 * and nothing buffered receive straight into the caller's memory: no second
 * copy.  Only one task may read at a time (another gets -EBUSY).
 *
 * On io_uring with multishot support the read side instead keeps one
 * multishot recv armed per stream once a read needs the kernel with less
 * than 64 KiB of room (readuntil, readline, small reads; a big read into the
 * caller's memory is served better by one plain recv, which is not limited
 * to the ring's 16 KiB buffers and copies once).  That machinery is the
 * socket input shared with the HTTP server (src/io/sockin.c): the kernel fills
 * buffers from the loop's provided-buffer ring, the completion callback
 * copies them straight into a parked reader's memory (or into the read
 * buffer when nobody waits or the reader's memory is full) and gives the
 * buffer back at once, so no stream ever pins ring memory.  That saves the
 * submission and the poll arming of every recv.  Flow control: the
 * multishot may receive only the room left below max(limit, 64 KiB)
 * unread (a byte limit the kernel enforces: it fills many buffers per
 * system call, so a cancel would come too late), so at most
 * max(limit, 64 KiB) + 16 KiB is ever buffered; it is re-armed at once
 * while below the mark, else by the next read.  A cancelled or timed-out
 * read then loses nothing: the data keeps arriving into the buffer.
 * Unix streams (S_UNIX) receive exactly as TCP streams do unless they
 * were asked to receive passed fds (corio_stream_set_receive_fds, the
 * server's receive_fds: S_RXFDS), as libuv's ipc pipes and Go's
 * ReadMsgUnix are: a recv drops the fds a peer passes (the kernel closes
 * them), which costs nothing, while keeping them costs a recvmsg per
 * receive and the multishot.  An S_RXFDS stream never uses the multishot
 * recv: every receive is a recvmsg with room for the fds
 * (src/io/fdpass.c), which wait in the stream, tied to the offset of the
 * bytes they came with, until corio_stream_read_fds or
 * corio_stream_take_fds hands them out.  The choice is fixed by the first
 * receive (S_RXSTARTED): fds that came before it were dropped already.
 * Because data lands in the buffer while nobody is calling the stream, the
 * bytes of readuntil's last result are "pinned" until the next read call:
 * the callback neither overwrites nor moves them (a buffer that must grow
 * keeps the old block alive until then).
 *
 * Write side.  corio_stream_write never suspends: with nothing queued it sends at
 * once with a non-blocking send() (on io_uring too: a direct syscall is the
 * cheapest way to push a small reply) and queues only what the socket did
 * not take.  Queued bytes live in a list of chunks that are only ever
 * appended to, so memory that a send in flight points into never moves.  A
 * queue is flushed in the background by a small "flusher" task started on
 * demand: it sends the queue with SEND/SENDMSG operations and exits when the
 * queue is empty, so data written without a drain still leaves, and
 * corio_stream_drain only has to wait for the queue to fall below the low-water
 * mark.  The first error that breaks the connection (EPIPE, ECONNRESET, ...)
 * is remembered: the queue is dropped and every later write/drain returns
 * it.  Every send carries MSG_NOSIGNAL, so SIGPIPE never happens.
 *
 * Closing.  corio_stream_close never suspends; when a flusher or a reader
 * still has an operation in the kernel, the stream is only marked closing,
 * the reader's operation is cancelled, and whichever user finishes last
 * closes the fd and frees the memory (buffers stay valid until the kernel
 * lets go).  Data still queued at close is not dropped: like an asyncio
 * transport, the flusher keeps sending it in the background ("linger"), for
 * at most LINGER_MS, after which it is cancelled and the rest discarded.
 */
#include "sys.h"
#include "sockin.h"
#include "stream.h"
#include "tls_stream.h"
#include "anyfd.h"
#include "fdpass.h"
#include "sys.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define RBUF_INIT 4096u                /* first read buffer; also the "large read" threshold */
#define RBUF_KEEP (16u * 1024u)        /* a drained buffer bigger than this is given back */
#define WCHUNK_MIN (16u * 1024u)       /* queue chunk size (bigger writes get their own chunk) */
#define FLUSH_IOV 16                   /* chunks per SENDMSG */
#define MULTI_DIRECT_MAX (64u * 1024u) /* reads this big bypass the multishot recv */
#define FLUSHER_STACK 0                /* the pool's default size: pooled stacks are the cheap ones */
#define LINGER_MS 10000u               /* how long a closed stream may keep flushing in the background */

enum {
    S_WSHUT = 1u << 1,     /* write_eof done: no more writes */
    S_CLOSING = 1u << 2,   /* close called while an operation was in flight */
    S_FILE = 1u << 4,      /* not a socket (pipe, tty, regular file, /dev/null): see fd_io below */
    S_UNIX = 1u << 5,      /* a Unix socket: write_fds and peercred work */
    S_RXFDS = 1u << 6,     /* receives are recvmsgs that keep passed fds (opt-in, Unix only) */
    S_RXSTARTED = 1u << 7, /* a receive was made: S_RXFDS is fixed from now on */
};

typedef struct wchunk {
    struct wchunk *next;
    size_t start, end, cap;
    char data[];
} wchunk;

/* A task parked in drain/write_eof/aclose until the queue shrinks to
 * target bytes.  Lives in the waiting task's frame. */
typedef struct drain_waiter {
    corio__list link;
    corio_task *task;
    size_t target;
} drain_waiter;

struct corio_stream {
    int fd;
    unsigned flags;
    corio_loop *loop;
    /* read side: the socket input (src/io/sockin.c), whose unread buffer
     * in.buf[in.start, in.end) is the stream's read buffer; on a non-socket
     * only that buffer, eof, err and plain are used */
    corio__sockin in;
    size_t limit;
    bool rbusy;    /* a reader is inside multi_wait (or a file-layer read) */
    bool regular;  /* S_FILE on a regular file or block device */
    bool reopened; /* S_FILE on a private non-blocking reopen (tty, named FIFO: see corio__reopen_private) */
    int shared_fd; /* with reopened: the fd the stream was given, closed with it; else -1 */
    /* write side */
    wchunk *whead, *wtail;
    size_t wsize; /* bytes queued (including those in flight) */
    size_t high, low;
    int werr;            /* sticky write error */
    corio_task *flusher; /* background sender while the queue is non-empty */
    bool wop_inflight;   /* the flusher has a send in the kernel */
    bool linger;         /* closed with data queued: the flusher finishes it */
    corio__timer linger_timer;
    corio__list waiters; /* drain_waiter */
    bool *closed_flag;
    /* fd passing (S_UNIX, src/io/fdpass.c; receiving: S_RXFDS): offsets count the stream's
     * bytes from its start; consumed = rx_total - bytes buffered */
    uint64_t rx_total; /* bytes received */
    uint64_t wsent;    /* bytes sent */
    corio__fdq rxq;    /* fds received, not handed out yet */
    corio__fdq txq;    /* duplicates of fds to send with queued bytes */
    bool fds_lost;     /* received fds dropped for want of memory: told as MSG_CTRUNC */
    /* a TLS stream (src/io/tls_stream.c): the read buffer and the write
     * calls carry plaintext, the engine's transport the ciphertext */
    corio__tls_stream *tls;
};

/* ------------------------------------------------------------------ */
/* Creation, teardown                                                  */
/* ------------------------------------------------------------------ */

static void linger_expired(corio__timer *t);
static bool input_event(corio__sockin *in);
static const corio__sockin_ops stream_input = {.event = input_event};

corio_stream *corio__stream_new(int fd)
{
    corio_stream *s = corio__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fd = fd;
    s->shared_fd = -1;
    s->loop = corio__loop();
    corio__sockin_init(&s->in, s->loop, fd, &stream_input);
    corio_stream_set_limit(s, 64u * 1024u);
    s->in.plain_from = MULTI_DIRECT_MAX;
    s->high = 64u * 1024u;
    s->low = 16u * 1024u;
    corio__list_init(&s->waiters);
    corio__timer_init(&s->linger_timer, linger_expired);
    return s;
}

corio_stream *corio_stream_from_fd(int fd)
{
    struct stat st;
    if (fd < 0 || corio__sys_fstat(fd, &st) < 0) {
        errno = EBADF;
        return NULL;
    }
    if (!S_ISSOCK(st.st_mode)) {
        /* A pipe, tty or file: its open file description is often shared
         * (stdin with the shell), so O_NONBLOCK is left alone and each call
         * is made non-blocking on its own (fd_io below). */
        corio_stream *s = corio__stream_new(fd);
        if (s) {
            s->flags |= S_FILE;
            s->in.multi = false;
            s->regular = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
            int nfd = corio__reopen_private(fd, &st);
            if (nfd >= 0) {
                s->shared_fd = fd;
                s->fd = s->in.fd = nfd;
                s->reopened = true;
            }
        }
        return s;
    }
    /* Allocate first: a failure must leave the caller's fd exactly as it
     * was given (still blocking, close-on-exec unchanged). */
    corio_stream *s = corio__stream_new(fd);
    if (!s)
        return NULL;
    int r = corio__set_nonblock(fd);
    if (r < 0) {
        corio__free(s);
        errno = -r;
        return NULL;
    }
    int dom = 0;
    socklen_t dl = sizeof dom;
    if (corio__sys_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) == 0 && dom == AF_UNIX)
        corio__stream_set_unix(s);
    return s;
}

corio_stream *corio_stream_stdin(void)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    int fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return NULL;
    corio_stream *s = corio_stream_from_fd(fd);
    if (!s) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return s;
}

void corio__stream_set_close_flag(corio_stream *s, bool *flag) { s->closed_flag = flag; }

size_t corio__stream_unread(const corio_stream *s) { return s->in.end - s->in.start; }

void corio__stream_set_unix(corio_stream *s)
{
    s->flags |= S_UNIX;
    /* Its plain recvs are made by the reading task once the socket is
     * readable, as its recvmsgs are (CORIO__OPH_TASK_RECV): with many
     * connections of large messages, receiving for every ready one before
     * any task runs evicts each reply from the cache before it is sent
     * (measured with bench/unix_bench.sh, 100 KiB x 100 clients).  TCP
     * streams keep the loop's receive until measured there. */
    s->in.task_recv = true;
}

int corio_stream_set_receive_fds(corio_stream *s, bool on)
{
    if (!s)
        return -EINVAL;
    if (s->flags & S_FILE)
        return -ENOTSOCK;
    if (!(s->flags & S_UNIX) || (s->tls && on))
        return -EOPNOTSUPP; /* a TLS stream's ciphertext input drops fds */
    if (on == ((s->flags & S_RXFDS) != 0))
        return 0;
    if (s->flags & S_RXSTARTED)
        return -EBUSY; /* fds that came with those bytes are gone already */
    if (on) {
        s->flags |= S_RXFDS;
        /* a multishot recv (or any plain recv) would make the kernel drop
         * the fds a peer passes: receives are recvmsgs with room for them */
        s->in.multi = false;
    } else {
        s->flags &= ~S_RXFDS;
        s->in.multi = s->in.loop && corio__loop_can(s->in.loop, CORIO__CAP_MULTISHOT);
    }
    return 0;
}

static void free_chunks(corio_stream *s)
{
    corio__fdq_clear(&s->txq); /* fds to send go with their bytes */
    wchunk *c = s->whead;
    while (c) {
        wchunk *n = c->next;
        corio__free(c);
        c = n;
    }
    s->whead = s->wtail = NULL;
    s->wsize = 0;
}

/* Wake every drain waiter with r (used on errors and close). */
static void wake_all(corio_stream *s, int r)
{
    while (!corio__list_empty(&s->waiters)) {
        drain_waiter *w = CORIO__CONTAINER_OF(s->waiters.next, drain_waiter, link);
        corio__list_remove(&w->link);
        corio__wake(w->task, r);
    }
}

/* Release everything; no operation may be in flight on s->fd. */
static void finalize(corio_stream *s)
{
    if (corio__timer_armed(&s->linger_timer))
        corio__timer_disarm(s->loop, &s->linger_timer);
    wake_all(s, -EPIPE);
    free_chunks(s);
    corio__sockin_free_buf(&s->in);
    corio__fdq_clear(&s->rxq); /* received and never claimed */
    corio__tls_stream_free(s->tls);
    corio__close_fd(s->loop ? s->loop : corio__loop(), s->fd);
    if (s->shared_fd >= 0)
        close(s->shared_fd);
    corio__free(s);
}

static void maybe_finalize(corio_stream *s)
{
    if ((s->flags & S_CLOSING) && !s->flusher && !s->in.plain && !s->rbusy && s->in.bg == CORIO__SOCKIN_OFF &&
        (!s->tls || !corio__tls_stream_busy(s->tls)))
        finalize(s);
}

/* ------------------------------------------------------------------ */
/* Read side                                                           */
/* ------------------------------------------------------------------ */

/* Sentinel from recv_op: the stream was closed by another task while this
 * one was receiving, and is gone; the caller must not touch it again. */
#define GONE (-EBADF)

/* One read or write on a non-socket fd without blocking the loop and
 * without touching O_NONBLOCK: RWF_NOWAIT asks for "only if it won't
 * block" per call (pipes, and regular files served from the page cache).
 * When that would block, the task waits for readiness with a POLL op
 * (cancellable, and cancelled by close through s->in.plain) and tries again;
 * a tty or named FIFO is reopened privately non-blocking (corio__reopen_private)
 * and called plainly; other fds that don't know RWF_NOWAIT (/dev/null, a
 * pty master, a tty or FIFO that could not be reopened) are called plainly
 * once poll says they are ready.  Regular files that need the disk go through the file
 * layer (io_uring or the thread pool).  Returns bytes, 0 at EOF, -errno,
 * or GONE when the stream was closed meanwhile. */
static ssize_t fd_io(corio_stream *s, bool writing, void *buf, size_t n)
{
    corio__op attempt = {
        .kind = writing ? CORIO__OP_WRITE : CORIO__OP_READ, .fd = s->fd, .buf = buf, .len = n, .off = -1};
    for (;;) {
        /* A reopened description is our own and already non-blocking. */
        ssize_t r = s->reopened ? corio__op_syscall(&attempt) : corio__anyfd_nowait(&attempt, writing);
        if (r >= 0)
            return r;
        int e = (int)-r;
        if (e != EAGAIN && e != EOPNOTSUPP && e != EINVAL)
            return r;
        if (s->regular) {
            /* not in the page cache (or no RWF_NOWAIT): let the file layer
             * do it.  A writer is the flusher, which close waits for; a
             * reader sets rbusy so close does not free s meanwhile. */
            if (writing)
                return corio_file_write(s->fd, buf, n);
            s->rbusy = true;
            r = corio_file_read(s->fd, buf, n);
            s->rbusy = false;
            if (s->flags & S_CLOSING) {
                maybe_finalize(s);
                return GONE;
            }
            return r;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_POLL;
        op.fd = s->fd;
        op.flags = writing ? POLLOUT : POLLIN;
        if (!writing)
            s->in.plain = &op;
        int pr = corio__op_run(&op);
        if (!writing) {
            s->in.plain = NULL;
            if (s->flags & S_CLOSING) {
                maybe_finalize(s);
                return GONE;
            }
        }
        if (pr < 0)
            return pr;
        if (e == EAGAIN)
            continue;
        /* no RWF_NOWAIT for this fd: it is ready, so one plain call */
        return corio__op_syscall(&attempt);
    }
}

/* Receive into buf (the caller's memory or the stream's buffer).  Suspends.
 * Returns bytes (>0), 0 at EOF (recorded), -errno (a connection error is
 * recorded as sticky), or GONE. */
static ssize_t recv_op(corio_stream *s, void *buf, size_t n)
{
    if (s->in.err)
        return s->in.err;
    if (CORIO__UNLIKELY(!s->loop)) /* wrapped before the loop started */
        s->loop = s->in.loop = corio__loop();
    if (s->flags & S_FILE) {
        int c = corio__check();
        ssize_t r = c ? c : fd_io(s, false, buf, n);
        if (r == GONE)
            return r;
        if (r == 0)
            s->in.eof = true;
        else if (r < 0 && r != -ECANCELED && r != -CORIO_EDEADLINE && r != -EAGAIN && r != -EINTR)
            s->in.err = (int)r;
        return r;
    }
    ssize_t r;
    s->flags |= S_RXSTARTED;
    if (s->flags & S_RXFDS) {
        corio__fdpass_ctl ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = n};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
        r = corio__sockin_recvmsg(&s->in, &msg, n, MSG_CMSG_CLOEXEC);
        if (r > 0) {
            /* queued before a close is looked at: finalize closes them */
            if (msg.msg_controllen || (msg.msg_flags & MSG_CTRUNC))
                corio__fdq_from_msg(&s->rxq, &msg, s->rx_total, &s->fds_lost);
            s->rx_total += (uint64_t)r;
        }
    } else {
        r = corio__sockin_recv(&s->in, buf, n);
    }
    if (CORIO__UNLIKELY(s->flags & S_CLOSING)) {
        maybe_finalize(s);
        return GONE;
    }
    return r;
}

/* Make room for at least one more byte at rbuf + rend without exceeding
 * want bytes of capacity (want >= RBUF_INIT).  Returns 0 or -ENOMEM. */
static int rbuf_make_room(corio_stream *s, size_t want)
{
    if (s->in.start == s->in.end) {
        s->in.start = s->in.end = 0;
        if (s->in.cap > RBUF_KEEP) { /* a burst is over: go back to a small buffer */
            corio__free(s->in.buf);
            s->in.buf = NULL;
            s->in.cap = 0;
        }
    }
    if (!s->in.buf) {
        s->in.buf = corio__malloc(RBUF_INIT);
        if (!s->in.buf)
            return -ENOMEM;
        s->in.cap = RBUF_INIT;
    }
    if (s->in.end < s->in.cap)
        return 0;
    if (s->in.start > 0) {
        memmove(s->in.buf, s->in.buf + s->in.start, s->in.end - s->in.start);
        s->in.end -= s->in.start;
        s->in.start = 0;
        return 0;
    }
    size_t ncap = s->in.cap * 2;
    if (ncap > want)
        ncap = want;
    if (ncap <= s->in.cap)
        return -CORIO_ELIMIT;
    char *nb = corio__realloc(s->in.buf, ncap);
    if (!nb)
        return -ENOMEM;
    s->in.buf = nb;
    s->in.cap = ncap;
    return 0;
}

/* Receive more bytes into the read buffer.  Returns >0, 0 at EOF, -errno or
 * GONE (as recv_op). */
static ssize_t fill(corio_stream *s, size_t want)
{
    int r = rbuf_make_room(s, want < RBUF_INIT ? RBUF_INIT : want);
    if (r < 0)
        return r;
    ssize_t n = recv_op(s, s->in.buf + s->in.end, s->in.cap - s->in.end);
    if (n > 0)
        s->in.end += (size_t)n;
    return n;
}

/* A completion of the multishot recv: once the last one is in, a closed
 * stream can go. */
static bool input_event(corio__sockin *in)
{
    corio_stream *s = CORIO__CONTAINER_OF(in, corio_stream, in);
    if ((s->flags & S_CLOSING) && in->bg == CORIO__SOCKIN_OFF) {
        maybe_finalize(s);
        return true;
    }
    return false;
}

/* Wait for input through the multishot recv (armed if needed).  Returns
 * as corio__sockin_wait, or GONE. */
static ssize_t multi_wait(corio_stream *s, void *dst, size_t cap)
{
    s->flags |= S_RXSTARTED;
    s->rbusy = true;
    ssize_t r = corio__sockin_wait(&s->in, dst, cap);
    s->rbusy = false;
    if (CORIO__UNLIKELY(s->flags & S_CLOSING)) {
        maybe_finalize(s);
        return GONE;
    }
    return r;
}

static ssize_t tls_input(corio_stream *s, void *dst, size_t cap, size_t want);

/* Get more input.  dst (may be NULL) is the caller's memory for up to cap
 * bytes, used when the read buffer is empty.  Returns >0 bytes placed in
 * dst, 0 when the caller should look at the buffer / EOF again, or -errno
 * / GONE.  want caps the read buffer's growth.  Suspends. */
static ssize_t more_input(corio_stream *s, void *dst, size_t cap, size_t want)
{
    if (s->in.err)
        return s->in.err;
    if (s->in.eof)
        return 0;
    if (s->in.start != s->in.end)
        dst = NULL;
    if (CORIO__UNLIKELY(s->tls))
        return tls_input(s, dst, cap, want);
    if (corio__sockin_wants_multi(&s->in, dst, cap))
        return multi_wait(s, dst, cap);
    s->in.fallback = false;
    if (dst && cap >= RBUF_INIT) {
        ssize_t r = recv_op(s, dst, cap);
        return r; /* 0 (EOF) is recorded: the caller sees it */
    }
    ssize_t r = fill(s, want);
    return r > 0 ? 0 : r;
}

/* more_input for a TLS stream: plaintext from the engine, straight into
 * the caller's memory when it gave some (OpenSSL keeps the rest of a
 * record), else into the read buffer. */
static ssize_t tls_input(corio_stream *s, void *dst, size_t cap, size_t want)
{
    char *p = dst;
    size_t n = cap;
    if (!p) {
        int e = rbuf_make_room(s, want < RBUF_INIT ? RBUF_INIT : want);
        if (e < 0)
            return e;
        p = s->in.buf + s->in.end;
        n = s->in.cap - s->in.end;
    }
    s->rbusy = true;
    ssize_t r = corio__tls_stream_read(s->tls, p, n);
    s->rbusy = false;
    if (CORIO__UNLIKELY(s->flags & S_CLOSING)) {
        maybe_finalize(s);
        return GONE;
    }
    if (r == 0) {
        s->in.eof = true; /* the peer's close_notify */
        return 0;
    }
    if (r < 0) {
        if (r != -ECANCELED && r != -CORIO_EDEADLINE && !s->in.err)
            s->in.err = (int)r;
        return r;
    }
    if (dst)
        return r;
    s->in.end += (size_t)r;
    return 0;
}

/* A read call: readuntil's previous result may go now. */
static inline void unpin(corio_stream *s) { corio__sockin_unpin(&s->in); }

/* Put bytes a cancelled readexactly already took back in front of the
 * buffer, so an interrupted call loses nothing.  False when out of memory
 * (the caller then reports -ENOMEM with the bytes in its memory). */
static bool unread(corio_stream *s, const void *p, size_t n)
{
    size_t avail = s->in.end - s->in.start;
    if (n <= s->in.start) {
        s->in.start -= n;
        memcpy(s->in.buf + s->in.start, p, n);
        return true;
    }
    size_t ncap = n + avail > RBUF_INIT ? n + avail : RBUF_INIT;
    char *nb = corio__malloc(ncap);
    if (!nb)
        return false;
    memcpy(nb, p, n);
    if (avail)
        memcpy(nb + n, s->in.buf + s->in.start, avail);
    corio__free(s->in.buf);
    s->in.buf = nb;
    s->in.cap = ncap;
    s->in.start = 0;
    s->in.end = n + avail;
    return true;
}

static inline bool reader_busy(const corio_stream *s) { return s->in.plain || s->rbusy; }

ssize_t corio_stream_read(corio_stream *s, void *buf, size_t n)
{
    if (!s || (!buf && n))
        return -EINVAL;
    unpin(s);
    if (n == 0)
        return 0;
    for (;;) {
        size_t avail = s->in.end - s->in.start;
        if (avail) {
            if (n > avail)
                n = avail;
            memcpy(buf, s->in.buf + s->in.start, n);
            s->in.start += n;
            return (ssize_t)n;
        }
        if (s->in.eof)
            return 0;
        if (reader_busy(s))
            return -EBUSY;
        ssize_t r = more_input(s, buf, n, RBUF_INIT);
        if (r != 0)
            return r;
    }
}

ssize_t corio_stream_readexactly(corio_stream *s, void *buf, size_t n, size_t *got)
{
    char *p = buf;
    size_t have = 0;
    if (got)
        *got = 0;
    if (!s || (!buf && n))
        return -EINVAL;
    unpin(s);
    /* Another reader is parked: only what is already buffered may be taken
     * without waiting (waiting would take its place). */
    if (reader_busy(s) && s->in.end - s->in.start < n)
        return -EBUSY;
    while (have < n) {
        size_t avail = s->in.end - s->in.start;
        if (avail) {
            size_t k = n - have < avail ? n - have : avail;
            memcpy(p + have, s->in.buf + s->in.start, k);
            s->in.start += k;
            have += k;
            continue;
        }
        if (s->in.eof) {
            if (got)
                *got = have;
            return -CORIO_EINCOMPLETE;
        }
        ssize_t r = more_input(s, p + have, n - have, RBUF_INIT);
        if (r > 0) {
            have += (size_t)r;
            continue;
        }
        if (r == GONE)
            return r;
        if (r < 0) {
            if (have && (r == -ECANCELED || r == -CORIO_EDEADLINE) && !unread(s, p, have)) {
                /* The bytes could not go back: they are only in buf now,
                 * and the caller (told "interrupted, nothing taken")
                 * would lose them silently.  Say so, and break the read
                 * side so that later reads cannot return data with a
                 * hole in it. */
                if (!s->in.err)
                    s->in.err = -ENOMEM;
                r = -ENOMEM;
            }
            if (got && !(r == -ECANCELED || r == -CORIO_EDEADLINE))
                *got = have;
            return r;
        }
    }
    return (ssize_t)n;
}

/* Find sep in the buffered data, reading more as needed.  On success *len
 * is the length through the separator (data not consumed).  Returns 0,
 * -CORIO_ELIMIT, -CORIO_EINCOMPLETE (EOF first), a read error or GONE. */
static int scan(corio_stream *s, const void *sep, size_t sep_len, size_t *len)
{
    size_t searched = 0; /* bytes past rstart already known not to start a match */
    unpin(s);
    if (sep_len == 0 || sep_len > 64)
        return -EINVAL;
    if (reader_busy(s))
        return -EBUSY;
    for (;;) {
        size_t avail = s->in.end - s->in.start;
        size_t window = avail < s->limit ? avail : s->limit;
        if (window >= sep_len) {
            const char *base = s->in.buf + s->in.start;
            const char *hit = memmem(base + searched, window - searched, sep, sep_len);
            if (hit) {
                *len = (size_t)(hit - base) + sep_len;
                return 0;
            }
            searched = window - sep_len + 1;
        }
        if (avail >= s->limit)
            return -CORIO_ELIMIT;
        if (s->in.eof)
            return -CORIO_EINCOMPLETE;
        ssize_t r = more_input(s, NULL, 0, s->limit);
        if (r < 0)
            return (int)r;
    }
}

ssize_t corio_stream_readuntil(corio_stream *s, const void *sep, size_t sep_len, const char **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!s || !sep)
        return -EINVAL;
    size_t n = 0;
    int r = scan(s, sep, sep_len, &n);
    if (r < 0)
        return r;
    *out = s->in.buf + s->in.start;
    s->in.start += n;
    s->in.pinned = true; /* the multishot must not reuse these bytes until the next read call */
    return (ssize_t)n;
}

ssize_t corio_stream_readline(corio_stream *s, char *buf, size_t cap)
{
    if (!s || (!buf && cap))
        return -EINVAL;
    size_t n = 0;
    int r = scan(s, "\n", 1, &n);
    if (r == -CORIO_EINCOMPLETE) {
        n = s->in.end - s->in.start; /* the unterminated tail is the last line */
        if (n == 0)
            return 0;
    } else if (r < 0) {
        return r;
    }
    if (n + 1 > cap)
        return -CORIO_ELIMIT; /* over the caller's limit, as over the stream's: the line stays buffered */
    memcpy(buf, s->in.buf + s->in.start, n);
    buf[n] = '\0';
    s->in.start += n;
    return (ssize_t)n;
}

bool corio_stream_at_eof(const corio_stream *s) { return s && (s->in.eof) && s->in.start == s->in.end; }

void corio_stream_set_limit(corio_stream *s, size_t limit)
{
    if (!s)
        return;
    s->limit = limit ? limit : 1;
    /* the multishot pauses once more than a full separator window is unread */
    s->in.pause_at = s->limit > 65536 ? s->limit : 65536;
}

/* ------------------------------------------------------------------ */
/* Write side                                                          */
/* ------------------------------------------------------------------ */

/* The connection broke: remember why, drop the queue, wake the drainers. */
static void write_failed(corio_stream *s, int err)
{
    if (!s->werr)
        s->werr = err;
    if (!s->wop_inflight)
        free_chunks(s);
    wake_all(s, s->werr);
}

/* Wake drainers whose target the queue has reached. */
static void wake_ready(corio_stream *s)
{
    corio__list *it = s->waiters.next;
    while (it != &s->waiters) {
        corio__list *next = it->next;
        drain_waiter *w = CORIO__CONTAINER_OF(it, drain_waiter, link);
        if (s->wsize <= w->target) {
            corio__list_remove(&w->link);
            corio__wake(w->task, 0);
        }
        it = next;
    }
}

/* Drop n sent bytes from the head of the queue. */
static void consume(corio_stream *s, size_t n)
{
    s->wsize -= n;
    s->wsent += n;
    while (n) {
        wchunk *c = s->whead;
        size_t k = c->end - c->start;
        if (n < k) {
            c->start += n;
            return;
        }
        n -= k;
        s->whead = c->next;
        if (!s->whead)
            s->wtail = NULL;
        corio__free(c);
    }
    /* a fully sent tail chunk was freed above; keep the invariant */
    if (!s->whead)
        s->wtail = NULL;
}

static int fill_iov(corio_stream *s, struct iovec *iov, int max)
{
    int cnt = 0;
    for (wchunk *c = s->whead; c && cnt < max; c = c->next) {
        if (c->end == c->start)
            continue;
        iov[cnt].iov_base = c->data + c->start;
        iov[cnt].iov_len = c->end - c->start;
        cnt++;
    }
    return cnt;
}

/* With fds waiting to be sent, shape the next send (iov, *cnt entries):
 * it either starts with the bytes of the first waiting batch and carries
 * its fds (the cmsg goes into ctl), or stops before those bytes; either
 * way it stops before the next batch's bytes, so each batch's fds leave
 * with the first of its own bytes.  Returns the cmsg's length, 0 for a
 * send without fds. */
static size_t plan_fds(corio_stream *s, struct iovec *iov, int *cnt, corio__fdpass_ctl *ctl)
{
    corio__fdbatch *b = s->txq.head;
    if (CORIO__LIKELY(!b))
        return 0;
    size_t clen = 0;
    uint64_t limit;
    if (b->at == s->wsent) {
        clen = corio__fdpass_cmsg(ctl, b->fds, b->n);
        limit = b->next ? b->next->at - s->wsent : UINT64_MAX;
    } else {
        limit = b->at - s->wsent;
    }
    uint64_t tot = 0;
    for (int i = 0; i < *cnt; i++) {
        if (tot + iov[i].iov_len >= limit) {
            iov[i].iov_len = (size_t)(limit - tot);
            *cnt = i + 1;
            break;
        }
        tot += iov[i].iov_len;
    }
    return clen;
}

/* After a send of r bytes planned by plan_fds with a cmsg: the fds left
 * with its first byte. */
static inline void sent_fds(corio_stream *s, size_t clen, ssize_t r)
{
    if (clen && r > 0)
        corio__fdq_pop(&s->txq);
}

/* One write that never blocks, for the S_FILE paths that must not suspend.
 * Returns bytes, -EAGAIN when it would block (or the fd can't say), or
 * -errno. */
static ssize_t file_try_write(corio_stream *s, const void *p, size_t n)
{
    corio__op attempt = {
        .kind = CORIO__OP_WRITE, .fd = s->fd, .buf = (void *)(uintptr_t)p, .len = n, .off = -1};
    ssize_t r = s->reopened ? corio__op_syscall(&attempt) : corio__anyfd_nowait(&attempt, true);
    return r == -EOPNOTSUPP || r == -EINVAL ? -EAGAIN : r;
}

/* Non-blocking sends of the queue until it is empty or the socket is full.
 * Only when no flusher send is in flight (ordering).  Returns 0 or -errno. */
static int flush_nowait(corio_stream *s)
{
    while (s->wsize) {
        struct iovec iov[FLUSH_IOV];
        int cnt = fill_iov(s, iov, FLUSH_IOV);
        corio__fdpass_ctl ctl;
        size_t clen = plan_fds(s, iov, &cnt, &ctl);
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        if (clen) {
            msg.msg_control = ctl.buf;
            msg.msg_controllen = clen;
        }
        if (s->flags & S_FILE) {
            ssize_t r = file_try_write(s, iov[0].iov_base, iov[0].iov_len);
            if (r < 0)
                return r == -EAGAIN ? 0 : (int)r;
            consume(s, (size_t)r);
            continue;
        }
        ssize_t r = corio__sys_sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        }
        sent_fds(s, clen, r);
        consume(s, (size_t)r);
    }
    return 0;
}

/* The background sender: one per stream while its queue is non-empty. */
static void *flusher_main(void *arg)
{
    corio_stream *s = arg;
    while (s->wsize && !s->werr && (!(s->flags & S_CLOSING) || s->linger)) {
        struct iovec iov[FLUSH_IOV];
        int cnt = fill_iov(s, iov, FLUSH_IOV);
        corio__fdpass_ctl ctl;
        size_t clen = plan_fds(s, iov, &cnt, &ctl);
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        if (clen) {
            msg.msg_control = ctl.buf;
            msg.msg_controllen = clen;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.fd = s->fd;
        op.off = -1;
        if (cnt == 1 && !clen) {
            op.kind = CORIO__OP_SEND;
            op.buf = iov[0].iov_base;
            op.len = iov[0].iov_len;
        } else {
            op.kind = CORIO__OP_SENDMSG;
            op.msg = &msg;
        }
        op.flags = MSG_NOSIGNAL;
        s->wop_inflight = true;
        int r;
        if (s->flags & S_FILE) {
            r = corio__check();
            if (r == 0)
                r = (int)fd_io(s, true, iov[0].iov_base, iov[0].iov_len);
        } else {
            r = corio__op_run(&op);
        }
        s->wop_inflight = false;
        sent_fds(s, clen, r);
        if (r > 0)
            consume(s, (size_t)r);
        if ((s->flags & S_CLOSING) && (!s->linger || (r < 0 && r != -EAGAIN && r != -EINTR)))
            break; /* cancelled by close, the linger ran out, or the peer is gone */
        if (r < 0 && r != -EAGAIN && r != -EINTR) {
            write_failed(s, r == -ECANCELED || r == -CORIO_EDEADLINE ? -EPIPE : r);
            break;
        }
        wake_ready(s);
    }
    s->flusher = NULL;
    if (s->flags & S_CLOSING)
        maybe_finalize(s);
    else if (s->werr)
        free_chunks(s);
    return NULL;
}

/* Append n bytes to the queue.  Returns 0 or -ENOMEM. */
static int enqueue(corio_stream *s, const char *p, size_t n)
{
    wchunk *t = s->wtail;
    if (t) {
        size_t room = t->cap - t->end;
        size_t k = n < room ? n : room;
        memcpy(t->data + t->end, p, k);
        t->end += k;
        s->wsize += k;
        p += k;
        n -= k;
    }
    if (n) {
        size_t cap = n > WCHUNK_MIN ? n : WCHUNK_MIN;
        wchunk *c = corio__malloc(sizeof *c + cap);
        if (!c)
            return -ENOMEM;
        c->next = NULL;
        c->start = 0;
        c->end = n;
        c->cap = cap;
        memcpy(c->data, p, n);
        if (s->wtail)
            s->wtail->next = c;
        else
            s->whead = c;
        s->wtail = c;
        s->wsize += n;
    }
    return 0;
}

static int queue_rest(corio_stream *s, const char *p, size_t n);

static int raw_write(corio_stream *s, const void *buf, size_t n);

int corio_stream_write(corio_stream *s, const void *buf, size_t n)
{
    if (CORIO__UNLIKELY(!s || (!buf && n)))
        return -EINVAL;
    if (CORIO__UNLIKELY(s->tls)) {
        if (s->werr)
            return s->werr;
        if (s->flags & (S_WSHUT | S_CLOSING))
            return -EPIPE;
        return corio__tls_stream_write(s->tls, buf, n);
    }
    return raw_write(s, buf, n);
}

/* The plain write: bytes as they are to the socket (for a TLS stream, the
 * engine's records). */
static inline int raw_write(corio_stream *s, const void *buf, size_t n)
{
    if (CORIO__UNLIKELY(s->werr))
        return s->werr;
    if (CORIO__UNLIKELY(s->flags & (S_WSHUT | S_CLOSING)))
        return -EPIPE;
    if (n == 0)
        return 0;
    const char *p = buf;
    if (s->wsize == 0) {
        ssize_t r = CORIO__UNLIKELY(s->flags & S_FILE)
                        ? file_try_write(s, p, n)
                        : corio__sys_send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r == -EAGAIN && (s->flags & S_FILE)) {
            r = -1;
            errno = EAGAIN;
        } else if (r < -1) {
            errno = (int)-r;
            r = -1;
        }
        if (CORIO__LIKELY((size_t)r == n))
            return 0;
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                write_failed(s, -errno);
                return s->werr;
            }
            r = 0;
        }
        p += r;
        n -= (size_t)r;
    }
    return queue_rest(s, p, n);
}

/* Queue n bytes behind what is queued and make sure a flusher sends them. */
static int queue_rest(corio_stream *s, const char *p, size_t n)
{
    int e = enqueue(s, p, n);
    if (e < 0) {
        write_failed(s, e);
        return e;
    }
    if (!s->flusher) {
        if (!s->loop) /* a stream wrapped before the loop started */
            s->loop = s->in.loop = corio__loop();
        if (!s->loop) {
            write_failed(s, -EPERM);
            return -EPERM;
        }
        s->flusher = corio__spawn(s->loop, "stream flush", FLUSHER_STACK, flusher_main, s);
        if (!s->flusher) {
            write_failed(s, -ENOMEM);
            return -ENOMEM;
        }
        corio_task_detach(s->flusher);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Passing fds (Unix streams)                                          */
/* ------------------------------------------------------------------ */

int corio_stream_write_fds(corio_stream *s, const void *buf, size_t n, const int *fds, size_t nfds)
{
    if (!s || !buf || n == 0 || !fds || nfds == 0 || nfds > CORIO__FDPASS_MAX)
        return -EINVAL;
    if (!(s->flags & S_UNIX) || s->tls)
        return -EOPNOTSUPP;
    if (s->werr)
        return s->werr;
    if (s->flags & (S_WSHUT | S_CLOSING))
        return -EPIPE;
    for (size_t i = 0; i < nfds; i++)
        if (fds[i] < 0)
            return -EBADF;
    const char *p = buf;
    if (s->wsize == 0) {
        corio__fdpass_ctl ctl;
        struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.buf,
                             .msg_controllen = corio__fdpass_cmsg(&ctl, fds, nfds)};
        ssize_t r;
        do
            r = corio__sys_sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if ((size_t)r == n)
            return 0;
        if (r > 0) /* the fds left with the first byte: the rest is plain data */
            return queue_rest(s, p + r, n - (size_t)r);
        if (errno == EBADF || errno == EINVAL || errno == ETOOMANYREFS || errno == ENOMEM ||
            errno == ENOBUFS || errno == EMFILE)
            return -errno; /* about these fds, not the connection: nothing was sent */
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            write_failed(s, -errno);
            return s->werr;
        }
    }
    /* Queued: the fds must stay open until their bytes leave, whatever the
     * caller does with its own, hence the duplicates. */
    int err = 0;
    corio__fdbatch *b = corio__fdbatch_dup(fds, nfds, s->wsent + s->wsize, &err);
    if (!b)
        return err;
    corio__fdq_append(&s->txq, b);
    return queue_rest(s, p, n);
}

/* Bytes of the stream consumed so far (received and no longer buffered). */
static inline uint64_t rx_consumed(const corio_stream *s) { return s->rx_total - (s->in.end - s->in.start); }

static size_t claim_fds(corio_stream *s, int *fds, size_t cap, int *flags)
{
    size_t k = corio__fdq_claim(&s->rxq, rx_consumed(s), fds, cap, flags);
    if (s->fds_lost && flags) {
        *flags |= MSG_CTRUNC;
        s->fds_lost = false;
    }
    return k;
}

ssize_t corio_stream_read_fds(corio_stream *s, void *buf, size_t n, int *fds, size_t *nfds, int *flags)
{
    size_t cap = nfds ? *nfds : 0;
    if (flags)
        *flags = 0;
    if (nfds)
        *nfds = 0;
    if (!s || (!buf && n) || !nfds || (!fds && cap))
        return -EINVAL;
    if (!(s->flags & S_RXFDS) || s->tls)
        return -EOPNOTSUPP; /* its receives drop passed fds: say so rather than return none */
    unpin(s);
    if (n == 0)
        return 0;
    for (;;) {
        size_t avail = s->in.end - s->in.start;
        if (avail) {
            uint64_t lim = corio__fdq_limit(&s->rxq, rx_consumed(s));
            size_t k = n < avail ? n : avail;
            if (lim < k)
                k = (size_t)lim;
            memcpy(buf, s->in.buf + s->in.start, k);
            s->in.start += k;
            *nfds = claim_fds(s, fds, cap, flags);
            return (ssize_t)k;
        }
        if (s->in.eof) {
            *nfds = claim_fds(s, fds, cap, flags);
            return 0;
        }
        if (reader_busy(s))
            return -EBUSY;
        /* through the read buffer, where the batch limits can be applied */
        ssize_t r = more_input(s, NULL, 0, RBUF_INIT);
        if (r != 0)
            return r;
    }
}

int corio_stream_take_fds(corio_stream *s, int *fds, size_t cap, int *flags)
{
    if (flags)
        *flags = 0;
    if (!s || (!fds && cap))
        return -EINVAL;
    if (!(s->flags & S_RXFDS) || s->tls)
        return -EOPNOTSUPP;
    return (int)claim_fds(s, fds, cap, flags);
}

int corio_stream_peercred(const corio_stream *s, pid_t *pid, uid_t *uid, gid_t *gid)
{
    if (!s)
        return -EINVAL;
    if (s->flags & S_FILE)
        return -ENOTSOCK;
    if (!(s->flags & S_UNIX))
        return -EOPNOTSUPP;
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0)
        return -errno;
    if (pid)
        *pid = cr.pid;
    if (uid)
        *uid = cr.uid;
    if (gid)
        *gid = cr.gid;
    return 0;
}

static void drain_interrupted(corio_task *t, int reason)
{
    drain_waiter *w = t->wait_obj;
    corio__list_remove(&w->link);
    corio__wake(t, reason);
}

/* Park until the queue holds at most target bytes (or the connection
 * breaks).  Returns 0, the connection's error, -ECANCELED or -CORIO_EDEADLINE.
 * The result comes through the wake, so a stream closed meanwhile is not
 * touched after waking. */
static int wait_queue(corio_stream *s, size_t target)
{
    if (s->werr)
        return s->werr;
    if (s->wsize <= target)
        return 0;
    drain_waiter w = {.task = corio__current_task(), .target = target};
    corio__list_push_back(&s->waiters, &w.link);
    return corio__suspend(drain_interrupted, &w, "drain", CORIO__NO_DEADLINE);
}

int corio_stream_drain(corio_stream *s)
{
    if (!s)
        return -EINVAL;
    int r = corio__check();
    if (r)
        return r;
    if (s->werr)
        return s->werr;
    if (s->wsize <= s->high)
        return 0;
    return wait_queue(s, s->low);
}

void corio_stream_set_write_limits(corio_stream *s, size_t high, size_t low)
{
    if (!s)
        return;
    if (low > high)
        low = high;
    s->high = high;
    s->low = low;
}

size_t corio_stream_write_buffer_size(const corio_stream *s) { return s ? s->wsize : 0; }

int corio_stream_write_eof(corio_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->flags & S_WSHUT)
        return 0;
    int r = corio__check();
    if (r)
        return r;
    if (s->tls && (r = corio__tls_stream_shutdown(s->tls)) != 0) /* close_notify before the FIN */
        return r;
    r = wait_queue(s, 0);
    if (r)
        return r;
    /* a pipe or file has no half-close: the flush is all there is */
    if (!(s->flags & S_FILE) && corio__sys_shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return -errno;
    s->flags |= S_WSHUT;
    return 0;
}

static void linger_expired(corio__timer *t)
{
    corio_stream *s = CORIO__CONTAINER_OF(t, corio_stream, linger_timer);
    if (s->flusher)
        corio_task_cancel(s->flusher);
}

void corio_stream_close(corio_stream *s)
{
    if (!s)
        return;
    if (s->closed_flag) {
        *s->closed_flag = true;
        s->closed_flag = NULL;
    }
    if (s->tls && !(s->flags & (S_WSHUT | S_CLOSING)) && !s->werr)
        (void)corio__tls_stream_shutdown(s->tls); /* close_notify leaves with the queue */
    if (s->wsize && !s->wop_inflight && !s->werr)
        (void)flush_nowait(s);
    s->flags |= S_CLOSING;
    wake_all(s, -EPIPE);
    corio_loop *l = s->loop;
    if (s->flusher) {
        /* the flusher finalizes once it is done: with data left, it lingers
         * to deliver it, bounded by a timer */
        if (s->wsize && !s->werr &&
            corio__timer_arm(l, &s->linger_timer, corio_now_ns() + LINGER_MS * 1000000ull) == 0)
            s->linger = true;
        else
            corio_task_cancel(s->flusher);
    }
    if (s->in.plain)
        corio__op_cancel(l, s->in.plain);
    /* a reader parked on the multishot finalizes with GONE */
    (void)corio__sockin_wake_reader(&s->in, GONE);
    s->in.discard = true;
    corio__sockin_stop(&s->in);
    if (s->tls)
        corio__tls_stream_stop(s->tls);
    maybe_finalize(s);
}

int corio_stream_aclose(corio_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->tls && !(s->flags & (S_WSHUT | S_CLOSING)) && !s->werr)
        (void)corio__tls_stream_shutdown(s->tls); /* close_notify, then wait for it to leave */
    int r = corio__check();
    if (r == 0 && s->wsize && !s->werr)
        r = wait_queue(s, 0);
    if (r == 0)
        r = s->werr;
    corio_stream_close(s);
    return r;
}

int corio_stream_fd(const corio_stream *s) { return !s ? -EINVAL : s->shared_fd >= 0 ? s->shared_fd : s->fd; }

int corio_stream_sockname(const corio_stream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!s || !addr)
        return -EINVAL;
    socklen_t l = sizeof *addr;
    memset(addr, 0, sizeof *addr); /* an abstract Unix name is not NUL-terminated */
    if (corio__sys_getsockname(s->fd, (struct sockaddr *)addr, &l) < 0)
        return -errno;
    if (len)
        *len = l;
    return 0;
}

int corio_stream_peername(const corio_stream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!s || !addr)
        return -EINVAL;
    socklen_t l = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    if (corio__sys_getpeername(s->fd, (struct sockaddr *)addr, &l) < 0)
        return -errno;
    if (len)
        *len = l;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Hooks for TLS streams (src/io/tls_stream.c)                         */
/* ------------------------------------------------------------------ */

int corio__stream_raw_write(corio_stream *s, const void *buf, size_t n) { return raw_write(s, buf, n); }

bool corio__stream_closing(const corio_stream *s) { return (s->flags & S_CLOSING) != 0; }

void corio__stream_maybe_finalize(corio_stream *s) { maybe_finalize(s); }

corio__tls_stream *corio__stream_tls(const corio_stream *s) { return s->tls; }

void corio__stream_set_rbusy(corio_stream *s, bool busy) { s->rbusy = busy; }

int corio__stream_attach_tls(corio_stream *s, corio__tls_stream *x,
                             int (*take)(corio__tls_stream *x, const char *p, size_t n))
{
    if (s->tls || reader_busy(s) || (s->flags & (S_WSHUT | S_CLOSING)))
        return -EINVAL;
    if (s->flags & S_FILE)
        return -ENOTSOCK;
    if (!s->loop)
        s->loop = s->in.loop = corio__loop();
    /* What was written in plain (a STARTTLS command) leaves first. */
    int r = wait_queue(s, 0);
    if (r)
        return r == -EPIPE && (s->flags & S_CLOSING) ? GONE : r;
    /* The plain multishot owns the order of arriving bytes: let it end. */
    if (s->in.bg != CORIO__SOCKIN_OFF) {
        corio__sockin_stop(&s->in);
        while (s->in.bg != CORIO__SOCKIN_OFF) {
            ssize_t w = multi_wait(s, NULL, 0);
            if (w < 0)
                return (int)w;
        }
    }
    if (s->in.err)
        return s->in.err;
    if (s->in.eof)
        return -CORIO_ETLSTRUNC; /* the peer is gone before the handshake began */
    /* Bytes already read past the plain part are the peer's first records. */
    if (s->in.start != s->in.end) {
        r = take(x, s->in.buf + s->in.start, s->in.end - s->in.start);
        if (r)
            return r;
    }
    corio__sockin_unpin(&s->in);
    corio__sockin_free_buf(&s->in);
    s->in.multi = false; /* the plaintext side never touches the socket */
    s->tls = x;
    return 0;
}
