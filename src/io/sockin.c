/*
 * Socket input, once for streams and the HTTP server (contract and the
 * reasons in sockin.h): the multishot recv and its completion, the unread
 * buffer it spills into, flow control, the parked reader it copies into,
 * the plain recv used where there is no multishot, and parking the input
 * without a task.
 */
#include "sys.h"
#include "sockin.h"

#include <poll.h>
#include <string.h>

#define UNREAD_INIT 4096u /* first unread buffer (doubles as needed) */
/* A receive this big makes the next one CORIO__OPH_BULK.  Measured on
 * io_uring with bench/unix_bench.sh (docs/benchmarks.md, "io_uring at
 * 1 KiB"): at 1-8 KiB per message the receive inside the ring costs 9-14 %
 * less CPU per request than the poll and the task's own recv (one system
 * call fewer); at 16 KiB the two are even, and at 100 KiB x 100 clients the
 * poll path wins by keeping each reply in the cache until it is sent. */
#define SOCKIN_BULK (16u * 1024u)
#define PAUSE_DEFAULT (16u * 1024u) /* like a small socket buffer: bounded whatever the peer sends */

void corio__sockin_init(corio__sockin *in, corio_loop *l, int fd, const corio__sockin_ops *ops)
{
    memset(in, 0, sizeof *in);
    in->loop = l;
    in->fd = fd;
    in->ops = ops;
    in->multi = l && corio__loop_can(l, CORIO__CAP_MULTISHOT);
    in->pause_at = PAUSE_DEFAULT;
    in->plain_from = SIZE_MAX;
}

size_t corio__sockin_take(corio__sockin *in, void *dst, size_t n)
{
    size_t avail = in->end - in->start;
    size_t k = n < avail ? n : avail;
    memcpy(dst, in->buf + in->start, k);
    in->start += k;
    if (in->start == in->end && !in->pinned)
        in->start = in->end = 0;
    return k;
}

int corio__sockin_append(corio__sockin *in, const char *p, size_t n)
{
    if (in->start == in->end && !in->pinned)
        in->start = in->end = 0;
    if (in->cap - in->end < n) {
        size_t avail = in->end - in->start;
        if (in->start && in->cap - avail >= n && !in->pinned) {
            memmove(in->buf, in->buf + in->start, avail);
        } else {
            size_t ncap = in->cap ? in->cap : UNREAD_INIT;
            while (ncap < avail + n)
                ncap *= 2;
            char *nb = corio__malloc(ncap);
            if (!nb)
                return -ENOMEM;
            if (avail)
                memcpy(nb, in->buf + in->start, avail);
            if (in->pinned && !in->old)
                in->old = in->buf; /* it holds the pinned bytes */
            else
                corio__free(in->buf);
            in->buf = nb;
            in->cap = ncap;
        }
        in->start = 0;
        in->end = avail;
    }
    memcpy(in->buf + in->end, p, n);
    in->end += n;
    return 0;
}

void corio__sockin_free_buf(corio__sockin *in)
{
    corio__free(in->buf);
    corio__free(in->old);
    in->buf = in->old = NULL;
    in->start = in->end = in->cap = 0;
    in->pinned = false;
}

/* The plain receive of either kind: op (in the caller's frame) describes it. */
static inline ssize_t plain_recv(corio__sockin *in, corio__op *op, size_t n)
{
    if (in->drained)
        op->hint |= CORIO__OPH_POLL_FIRST;
    if (in->bulk)
        op->hint |= CORIO__OPH_BULK;
    in->plain = op;
    int r = corio__op_run(op);
    in->plain = NULL;
    in->drained = r > 0 && (size_t)r < n; /* a short read emptied the socket */
    in->bulk = r >= (int)SOCKIN_BULK;
    if (r == 0)
        in->eof = true;
    else if (r < 0 && r != -ECANCELED && r != -CORIO_EDEADLINE && r != -EAGAIN && r != -EINTR && !in->err)
        in->err = r;
    return r;
}

ssize_t corio__sockin_recv(corio__sockin *in, void *buf, size_t n)
{
    corio__op op;
    memset(&op, 0, sizeof op);
    op.kind = CORIO__OP_RECV;
    op.fd = in->fd;
    op.buf = buf;
    op.len = n;
    op.off = -1;
    if (in->task_recv)
        op.hint = CORIO__OPH_TASK_RECV;
    return plain_recv(in, &op, n);
}

ssize_t corio__sockin_recvmsg(corio__sockin *in, struct msghdr *msg, size_t n, int flags)
{
    corio__op op;
    memset(&op, 0, sizeof op);
    op.kind = CORIO__OP_RECVMSG;
    op.fd = in->fd;
    op.msg = msg;
    op.len = n;
    op.flags = flags;
    op.off = -1;
    return plain_recv(in, &op, n);
}

/* Bytes of a multishot completion: the owner's claim first, then the
 * waiting reader's memory (only while nothing older is unread, to keep the
 * order), then the unread buffer. */
static void deliver(corio__sockin *in, const char *p, size_t n)
{
    if (in->ops && in->ops->claim) {
        size_t k = in->ops->claim(in, p, n);
        p += k;
        n -= k;
    }
    if (n && in->dst && in->start == in->end && in->dst_got < in->dst_cap) {
        size_t k = in->dst_cap - in->dst_got < n ? in->dst_cap - in->dst_got : n;
        memcpy(in->dst + in->dst_got, p, k);
        in->dst_got += k;
        p += k;
        n -= k;
    }
    if (n && corio__sockin_append(in, p, n) < 0 && !in->err)
        in->err = -ENOMEM;
}

/* Tell the owner, else wake the reader. */
static void notify(corio__sockin *in)
{
    if (in->ops && in->ops->event && in->ops->event(in))
        return;
    if (in->reader)
        corio__wake(in->reader, 0);
}

/* Every completion of the multishot recv (loop context). */
static void multi_done(corio__op *op)
{
    corio__sockin *in = CORIO__CONTAINER_OF(op, corio__sockin, op);
    corio_loop *l = in->loop;
    int res = op->res;
    if (op->buf_id != CORIO__NO_BUF) {
        if (res > 0 && !in->discard)
            deliver(in, corio__buf(l, op->buf_id), (size_t)res);
        corio__buf_put(l, op->buf_id);
    }
    if (res == 0)
        in->eof = true;
    else if (res == -ENOBUFS)
        in->fallback = true; /* the reader holds nothing: the ring is just short */
    else if (res == -EOPNOTSUPP)
        in->multi = false; /* the kernel cannot bound it: plain receives from now on */
    else if (res < 0 && !(res == -ECANCELED && in->bg == CORIO__SOCKIN_STOPPING) && !in->err)
        in->err = res; /* a cancel nobody here asked for is an error too */
    if (!op->more) {
        /* A positive last result: the byte limit was reached.  Below the
         * pause mark the input goes on as if it had never stopped; at it,
         * the next wait arms again. */
        bool again = res > 0 && in->bg == CORIO__SOCKIN_RECV && !in->discard && !in->err &&
                     in->end - in->start < in->pause_at;
        in->bg = CORIO__SOCKIN_OFF;
        if (again)
            (void)corio__sockin_arm(in); /* refused: the next wait tries again */
    } else if (in->bg == CORIO__SOCKIN_RECV && in->end - in->start >= in->pause_at) {
        /* nobody reads: stop taking data until the buffer drains */
        in->bg = CORIO__SOCKIN_STOPPING;
        corio__op_cancel(l, op);
    }
    notify(in);
}

bool corio__sockin_arm(corio__sockin *in)
{
    memset(&in->op, 0, sizeof in->op);
    in->op.kind = CORIO__OP_RECV_MULTI;
    in->op.fd = in->fd;
    in->op.off = -1;
    /* What the kernel may receive before the op ends by itself: the room
     * left below the pause mark (a byte if none, so a reader that needs
     * more gets it).  The kernel fills buffers on its own schedule, many
     * per system call, long before a cancel could reach it; only this
     * limit bounds the unread buffer. */
    size_t unread = in->end - in->start;
    in->op.len = unread < in->pause_at ? in->pause_at - unread : 1;
    in->op.done = multi_done;
    if (corio__op_start(in->loop, &in->op))
        return false; /* refused (ring unavailable, SQ full) */
    in->bg = CORIO__SOCKIN_RECV;
    return true;
}

static void reader_interrupted(corio_task *t, int reason)
{
    corio__sockin *in = t->wait_obj;
    in->reader = NULL;
    in->dst = NULL; /* bytes arriving from now on stay unread */
    corio__wake(t, reason);
}

ssize_t corio__sockin_wait(corio__sockin *in, void *dst, size_t cap)
{
    int r = corio__check();
    if (r)
        return r;
    if (in->bg == CORIO__SOCKIN_OFF && !corio__sockin_arm(in)) {
        in->multi = false; /* plain recvs from now on */
        return 0;
    }
    in->dst = dst;
    in->dst_cap = dst ? cap : 0;
    in->dst_got = 0;
    in->reader = corio__current_task();
    r = corio__suspend(reader_interrupted, in, "recv", CORIO__NO_DEADLINE);
    in->reader = NULL;
    in->dst = NULL;
    if (in->dst_got)
        return (ssize_t)in->dst_got;
    return r;
}

bool corio__sockin_wake_reader(corio__sockin *in, int r)
{
    corio_task *t = in->reader;
    if (!t)
        return false;
    in->reader = NULL;
    in->dst = NULL;
    corio__wake(t, r);
    return true;
}

/* The park POLL completed (loop context). */
static void poll_done(corio__op *op)
{
    corio__sockin *in = CORIO__CONTAINER_OF(op, corio__sockin, op);
    if (op->res >= 0)
        in->ready = true;
    else if (!(op->res == -ECANCELED && in->bg == CORIO__SOCKIN_STOPPING) && !in->err)
        in->err = op->res;
    in->bg = CORIO__SOCKIN_OFF;
    notify(in);
}

static bool park(corio__sockin *in, uint8_t hint)
{
    in->ready = false;
    if (in->multi) {
        if (in->end != in->start || in->eof || in->err)
            return false;
        if (in->bg != CORIO__SOCKIN_OFF || corio__sockin_arm(in))
            return true;
        in->multi = false; /* refused: park with a POLL, as corio__sockin_wait falls back */
    }
    memset(&in->op, 0, sizeof in->op);
    in->op.kind = CORIO__OP_POLL;
    in->op.fd = in->fd;
    in->op.flags = POLLIN;
    in->op.off = -1;
    in->op.hint = hint;
    in->op.done = poll_done;
    if (corio__op_start(in->loop, &in->op))
        return false; /* readable already (or an error the recv will report) */
    in->bg = CORIO__SOCKIN_POLL;
    return true;
}

bool corio__sockin_park(corio__sockin *in) { return park(in, 0); }

/* The caller's recv just found the socket empty: on epoll the POLL goes
 * straight to the wait list (an fd added to the set reports its current
 * state, so nothing that arrived since is missed), on io_uring it changes
 * nothing. */
bool corio__sockin_park_empty(corio__sockin *in) { return park(in, CORIO__OPH_POLL_FIRST); }

ssize_t corio__sockin_try(corio__sockin *in, void *buf, size_t n)
{
    ssize_t r = corio__sys_recv(in->fd, buf, n > CORIO__MAX_RW ? CORIO__MAX_RW : n, MSG_DONTWAIT);
    if (r < 0)
        r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
    in->drained = r == -EAGAIN || (r > 0 && (size_t)r < n);
    if (r == 0)
        in->eof = true;
    else if (r < 0 && r != -EAGAIN && r != -EINTR && !in->err)
        in->err = r;
    return r;
}

void corio__sockin_stop(corio__sockin *in)
{
    if (in->bg == CORIO__SOCKIN_RECV || in->bg == CORIO__SOCKIN_POLL) {
        in->bg = CORIO__SOCKIN_STOPPING;
        corio__op_cancel(in->loop, &in->op);
    }
}
