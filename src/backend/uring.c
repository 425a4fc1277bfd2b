/*
 * The io_uring backend: corio's completion model mapped onto the kernel's.
 *
 * Every operation becomes one SQE whose user_data is the corio__op itself,
 * so a completion leads straight back to its op without a lookup table.
 * submit() only fills SQEs; they reach the kernel in one io_uring_enter per
 * loop turn, made by poll(), which also waits for completions and reaps them
 * in batches.  A turn with ready tasks and nothing queued costs no system
 * call at all: with IORING_SETUP_TASKRUN_FLAG the kernel tells us through
 * the shared SQ flags when deferred completion work waits for us.
 *
 * The ring is set up single-issuer with deferred task running (completions
 * are produced only when this thread enters the kernel, which keeps caches
 * warm and avoids inter-processor interrupts); older kernels get a plainer
 * ring.  Kernels that lack NODROP (completions could be lost) or FAST_POLL
 * (every socket op would cost a kernel thread) are refused so the loop
 * falls back to epoll.
 *
 * Small user_data values are reserved tags: 0 for cancel requests (only the
 * original op's completion matters), 1 for the internal eventfd read that
 * lets other threads wake the loop.  Neither counts as pending work.
 *
 * Multishot accept/recv and the provided-buffer ring (CORIO__CAP_MULTISHOT,
 * contract in src/core/internal.h): multishot recv takes no buffer; the
 * kernel picks one from a ring of buffers the loop owns.  Returned buffers
 * are published to the kernel in batches, at the next poll, so a put costs
 * no system call and no atomic.  The ring is created on first use, starts
 * with a modest number of buffers and grows (up to its capacity) whenever a
 * multishot recv ends with -ENOBUFS, so memory follows the real number of
 * bytes parked in user space; the buffer memory is reserved once and
 * committed lazily by the kernel.  A multishot recv may carry a byte limit
 * (kernel 6.17): within one system call the kernel fills as many buffers
 * as the socket has data for, so only the limit bounds what an owner that
 * stops reading receives; older kernels refuse it (see recv_limit_learn).
 */
#include "../core/internal.h"

#include <liburing.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_ENTRIES 1024u
#define MAX_ENTRIES 32768u
#define REAP_BATCH 64u

#define UD_IGNORE 0u
#define UD_NOTIFY 1u

/* Provided buffers: 16 KiB each, so one completion carries a useful chunk
 * of a bulk transfer, while a small message still touches one page only
 * (the memory is committed lazily).  4096 of them reserve 64 MiB of address
 * space; 256 are handed to the kernel at first and more as -ENOBUFS shows
 * that readers hold on to them. */
#define BR_BGID 0
#define BR_BUF_SIZE (16u * 1024u)
#define BR_MAX_BUFS 4096u
#define BR_INITIAL_BUFS 256u

typedef struct bufring {
    struct io_uring_buf_ring *ring;
    unsigned char *mem;
    uint32_t populated;   /* ids [0, populated) exist; the rest are unused reserve */
    uint32_t unpublished; /* buffers added to the ring but not yet made visible */
    int state;            /* 0 not created, 1 live, <0 creation error */
} bufring;

typedef struct uring {
    struct io_uring ring;
    unsigned inflight;    /* user ops whose last completion has not arrived */
    bool taskrun_flag;    /* kernel flags pending completion work in sq.kflags */
    bool peek_must_enter; /* completions need a kernel entry and nothing tells us when */
    bool has_multishot;
    int8_t recv_limit; /* RECV_MULTI byte limits: 0 not known yet, 1 honoured, -1 refused (kernel < 6.17) */
    bool cqe_skip;
    bool notify_armed;
    bool closing; /* destroy is draining: the wake-up read is not re-armed */
    int evfd;
    uint64_t evbuf;             /* target of the eventfd read */
    atomic_int notified;        /* a wake-up is already on its way: other writers skip the syscall */
    corio__list cancel_backlog; /* cancels that found the SQ unusable; retried each poll */
    bufring br;
} uring;

static inline uring *U(corio_loop *l) { return l->backend_data; }

/* ThreadSanitizer cannot see a ring's memory come and go: liburing maps
 * and unmaps the SQ, CQ and SQE arrays with raw system calls, which TSan
 * does not intercept, so it never forgets the accesses made to a destroyed
 * ring.  When a loop on another thread is then given a new ring at the
 * same addresses, its first SQE writes and CQE reads look like races with
 * the dead ring's owner.  The order is real (the kernel maps a range again
 * only after the munmap returned); this key makes it visible: each ring is
 * released into it just before teardown and acquired right after setup.
 * Rings used concurrently by two threads would still be reported. */
static char ring_reuse_key;

/* ------------------------------------------------------------------ */
/* SQE supply                                                          */
/* ------------------------------------------------------------------ */

static void bufring_publish(uring *u)
{
    if (u->br.unpublished) {
        io_uring_buf_ring_advance(u->br.ring, (int)u->br.unpublished);
        u->br.unpublished = 0;
    }
}

/* An SQE, flushing the queue to the kernel first if it is full (the only
 * case where submit() costs a system call).  NULL only if the kernel
 * refuses new submissions. */
static struct io_uring_sqe *get_sqe(uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (CORIO__UNLIKELY(!sqe)) {
        bufring_publish(u);
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

/* ------------------------------------------------------------------ */
/* Cross-thread wake-up                                                */
/* ------------------------------------------------------------------ */

/* One read on the eventfd stays queued; a write from any thread completes
 * it.  A read rather than a multishot poll: the completion consumes the
 * counter itself, so a wake-up costs the loop no extra read(2). */
static void notify_arm(uring *u)
{
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return; /* retried at the next poll */
    io_uring_prep_read(sqe, u->evfd, &u->evbuf, sizeof u->evbuf, 0);
    io_uring_sqe_set_data64(sqe, UD_NOTIFY);
    u->notify_armed = true;
}

static void notify_done(corio_loop *l, uring *u)
{
    u->notify_armed = false;
    if (u->closing)
        return;
    /* Clear before draining, as an acquiring exchange: a writer that saw
     * the flag set and skipped its write had queued its work before, and
     * the drain below sees it. */
    atomic_exchange(&u->notified, 0);
    notify_arm(u);
    corio__loop_on_notify(l);
}

/* ------------------------------------------------------------------ */
/* Provided-buffer ring                                                */
/* ------------------------------------------------------------------ */

static void bufring_add(bufring *b, uint16_t id)
{
    io_uring_buf_ring_add(b->ring, b->mem + (size_t)id * BR_BUF_SIZE, BR_BUF_SIZE, id,
                          io_uring_buf_ring_mask(BR_MAX_BUFS), (int)b->unpublished++);
}

/* Hand never-used buffers to the kernel: the ring ran dry while readers
 * hold the others.  Returns false at capacity. */
static bool bufring_grow(uring *u, uint32_t n)
{
    bufring *b = &u->br;
    if (b->populated + n > BR_MAX_BUFS)
        n = BR_MAX_BUFS - b->populated;
    if (!n)
        return false;
    for (uint32_t i = 0; i < n; i++)
        bufring_add(b, (uint16_t)(b->populated + i));
    b->populated += n;
    bufring_publish(u);
    return true;
}

static int bufring_create(uring *u)
{
    bufring *b = &u->br;
    size_t ring_bytes = BR_MAX_BUFS * sizeof(struct io_uring_buf);
    size_t mem_bytes = (size_t)BR_MAX_BUFS * BR_BUF_SIZE;
    void *ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        return -errno;
    void *mem =
        mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        int e = -errno;
        munmap(ring, ring_bytes);
        return e;
    }
    io_uring_buf_ring_init(ring);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uintptr_t)ring;
    reg.ring_entries = BR_MAX_BUFS;
    reg.bgid = BR_BGID;
    int r = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (r < 0) {
        munmap(mem, mem_bytes);
        munmap(ring, ring_bytes);
        return r;
    }
    b->ring = ring;
    b->mem = mem;
    b->populated = 0;
    b->unpublished = 0;
    bufring_grow(u, BR_INITIAL_BUFS);
    return 0;
}

static void bufring_destroy(uring *u)
{
    bufring *b = &u->br;
    if (b->state != 1)
        return;
    munmap(b->mem, (size_t)BR_MAX_BUFS * BR_BUF_SIZE);
    munmap(b->ring, BR_MAX_BUFS * sizeof(struct io_uring_buf));
    b->state = 0;
}

static int uring_bufring_get(corio_loop *l)
{
    uring *u = U(l);
    if (CORIO__LIKELY(u->br.state == 1))
        return 0;
    if (u->br.state < 0)
        return u->br.state;
    if (!u->has_multishot)
        return u->br.state = -EOPNOTSUPP;
    int r = bufring_create(u);
    /* An injected failure is not remembered, so the caller can retry. */
    if (r == -ENOMEM)
        return r;
    u->br.state = r < 0 ? r : 1;
    return r;
}

static void *uring_buf_addr(corio_loop *l, uint16_t id) { return U(l)->br.mem + (size_t)id * BR_BUF_SIZE; }

static size_t uring_buf_size(corio_loop *l)
{
    (void)l;
    return BR_BUF_SIZE;
}

static void uring_buf_put(corio_loop *l, uint16_t id)
{
    /* Published in bulk by the next poll (or an SQ flush): the kernel only
     * looks at the ring when it runs our requests. */
    bufring_add(&U(l)->br, id);
}

/* ------------------------------------------------------------------ */
/* Backend table                                                       */
/* ------------------------------------------------------------------ */

static int uring_init(corio_loop *l, const corio_config *cfg)
{
    uring *u = corio__calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    u->evfd = -1;
    corio__list_init(&u->cancel_backlog);
    atomic_init(&u->notified, 0);

    unsigned entries = (cfg && cfg->ring_entries) ? cfg->ring_entries : DEFAULT_ENTRIES;
    if (entries > MAX_ENTRIES)
        entries = MAX_ENTRIES;
    /* Best first; each step drops what an older kernel rejects with
     * EINVAL.  CQ four times the SQ: many ops stay parked (one recv per
     * idle connection) and may all complete in one burst. */
    static const unsigned ladder[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int r = -EINVAL;
    struct io_uring_params p;
    for (size_t i = 0; i < sizeof ladder / sizeof ladder[0]; i++) {
        memset(&p, 0, sizeof p);
        p.flags = ladder[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = entries * 4;
        r = io_uring_queue_init_params(entries, &u->ring, &p);
        if (r != -EINVAL)
            break;
    }
    if (r < 0) {
        corio__free(u);
        return r;
    }
    corio__tsan_acquire(&ring_reuse_key);
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_FAST_POLL)) {
        r = -ENOSYS;
        goto fail_ring;
    }
    u->taskrun_flag = (u->ring.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    u->peek_must_enter =
        !u->taskrun_flag && (u->ring.flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN));
    u->cqe_skip = (p.features & IORING_FEAT_CQE_SKIP) != 0;
    /* Saves the fd lookup on every io_uring_enter; optional. */
    (void)io_uring_register_ring_fd(&u->ring);

    /* Multishot recv and SEND_ZC both arrived in 6.0: a kernel that knows
     * SEND_ZC also takes IORING_RECV_MULTISHOT (accept multishot and
     * buffer rings are older, 5.19). */
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    if (probe) {
        u->has_multishot = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
                           io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                           io_uring_opcode_supported(probe, IORING_OP_ACCEPT);
        io_uring_free_probe(probe);
    }
    l->caps = CORIO__CAP_FILE_OPS | (u->has_multishot ? CORIO__CAP_MULTISHOT : 0);

    /* Blocking on purpose: the kernel then arms a poll for the read instead
     * of failing it with EAGAIN.  Writers never block (the counter would
     * have to reach 2^64-2). */
    u->evfd = eventfd(0, EFD_CLOEXEC);
    if (u->evfd < 0) {
        r = -errno;
        goto fail_ring;
    }
    l->backend_data = u;
    notify_arm(u);
    return 0;

fail_ring:
    corio__tsan_release(&ring_reuse_key);
    io_uring_queue_exit(&u->ring);
    corio__free(u);
    return r;
}

static int uring_poll(corio_loop *l, uint64_t timeout_ns);

/* Ops can outlive every task: a multishot recv whose stream was closed
 * just before the loop ended has its cancel queued but not yet answered.
 * Its owner frees its memory in the final callback, so cancel everything
 * and dispatch the last completions (bounded: a kernel that cannot cancel
 * something leaves it to io_uring_queue_exit, and a leak). */
static void drain_inflight(corio_loop *l, uring *u)
{
    if (!u->inflight)
        return;
    u->closing = true;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
    for (int i = 0; i < 100 && u->inflight; i++)
        (void)uring_poll(l, 10u * 1000u * 1000u);
}

static void uring_destroy(corio_loop *l)
{
    uring *u = U(l);
    if (!u)
        return;
    drain_inflight(l, u);
    /* Tearing the ring down cancels the eventfd read and anything else
     * still queued; only then may the memory the kernel pointed into go. */
    corio__tsan_release(&ring_reuse_key);
    io_uring_queue_exit(&u->ring);
    bufring_destroy(u);
    if (u->evfd >= 0)
        close(u->evfd);
    corio__free(u);
    l->backend_data = NULL;
}

static int uring_submit(corio_loop *l, corio__op *op)
{
    uring *u = U(l);
    uint8_t kind = op->kind;
    if (CORIO__UNLIKELY(kind == CORIO__OP_NONE || kind >= CORIO__OP_KIND_COUNT)) {
        op->res = -EINVAL;
        return 1;
    }
    if (CORIO__UNLIKELY(kind >= CORIO__OP_ACCEPT_MULTI)) {
        int r = !u->has_multishot ? -EOPNOTSUPP : !op->done ? -EINVAL : 0;
        if (!r && kind == CORIO__OP_RECV_MULTI)
            r = op->len && u->recv_limit < 0 ? -EOPNOTSUPP : uring_bufring_get(l);
        if (r) {
            op->res = r;
            return 1;
        }
    }
    if (op->hint & CORIO__OPH_READY) {
        /* The poll that stood in for this receive fired: receive now. */
        op->hint &= (uint8_t)~CORIO__OPH_READY;
        int32_t r = corio__op_syscall(op);
        if (r != -EAGAIN) {
            op->res = r;
            return 1;
        }
    }
    struct io_uring_sqe *sqe = get_sqe(u);
    if (CORIO__UNLIKELY(!sqe)) {
        op->res = -EBUSY;
        return 1;
    }
    /* SQE lengths are 32-bit: clamping (to what one call moves anyway)
     * keeps huge sizes from wrapping. */
    unsigned len = op->len > CORIO__MAX_RW ? CORIO__MAX_RW : (unsigned)op->len;
    switch (kind) {
    case CORIO__OP_RECV:
    case CORIO__OP_RECVMSG:
        if ((op->hint & (CORIO__OPH_TASK_RECV | CORIO__OPH_POLL_FIRST | CORIO__OPH_BULK)) ==
            (CORIO__OPH_TASK_RECV | CORIO__OPH_POLL_FIRST | CORIO__OPH_BULK)) {
            /* A drained socket that brings large messages, owned by a
             * task: wait with a plain poll and let the task receive when
             * it runs (CORIO__OPH_TASK_RECV), right before it uses the
             * bytes, instead of the kernel receiving for every ready
             * connection before any of them runs. */
            io_uring_prep_poll_add(sqe, op->fd, POLLIN);
            op->hint |= CORIO__OPH_POLLED;
            break;
        }
        if (kind == CORIO__OP_RECV)
            io_uring_prep_recv(sqe, op->fd, op->buf, len, op->flags);
        else
            io_uring_prep_recvmsg(sqe, op->fd, op->msg, (unsigned)op->flags);
        if (op->hint & CORIO__OPH_POLL_FIRST)
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        break;
    case CORIO__OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->buf, len, op->flags | MSG_NOSIGNAL);
        break;
    case CORIO__OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->msg, (unsigned)(op->flags | MSG_NOSIGNAL));
        break;
    case CORIO__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CORIO__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, op->addr_len);
        break;
    case CORIO__OP_READ:
        /* (__u64)-1 asks for the file's current position. */
        io_uring_prep_read(sqe, op->fd, op->buf, len, op->off < 0 ? (uint64_t)-1 : (uint64_t)op->off);
        break;
    case CORIO__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, len, op->off < 0 ? (uint64_t)-1 : (uint64_t)op->off);
        break;
    case CORIO__OP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
        break;
    /* File kinds (src/io/file.c): paths travel in op->buf. */
    case CORIO__OP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->buf, op->flags, (mode_t)op->len);
        break;
    case CORIO__OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case CORIO__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, (unsigned)op->flags);
        break;
    case CORIO__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->buf, op->flags, STATX_BASIC_STATS, op->stx);
        break;
    case CORIO__OP_UNLINKAT:
        io_uring_prep_unlinkat(sqe, op->fd, op->buf, op->flags);
        break;
    case CORIO__OP_RENAMEAT:
        io_uring_prep_renameat(sqe, op->fd, op->buf, op->fd, op->path2, 0);
        break;
    case CORIO__OP_MKDIRAT:
        io_uring_prep_mkdirat(sqe, op->fd, op->buf, (mode_t)op->len);
        break;
    case CORIO__OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->buf, (unsigned)op->len,
                            op->off < 0 ? (uint64_t)-1 : (uint64_t)op->off);
        break;
    case CORIO__OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->buf, (unsigned)op->len,
                             op->off < 0 ? (uint64_t)-1 : (uint64_t)op->off);
        break;
    case CORIO__OP_ACCEPT_MULTI:
        io_uring_prep_multishot_accept(sqe, op->fd, op->addr, op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CORIO__OP_RECV_MULTI:
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, op->flags);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BR_BGID;
        /* The byte limit travels in sqe->optlen (6.17), which shares its
         * place with file_index (liburing 2.3 knows only that name). */
        sqe->file_index = len;
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    op->state = CORIO__OPS_PENDING;
    op->more = 0;
    op->buf_id = CORIO__NO_BUF;
    op->backend_data = NULL;
    u->inflight++;
    return 0;
}

/* Queue a cancel for op (submitted with the next batch: the kernel handles
 * SQEs in order, so it cannot hit a later op that reuses the address). */
static bool cancel_queue(uring *u, corio__op *op)
{
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return false;
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    if (u->cqe_skip)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return true;
}

static void uring_cancel(corio_loop *l, corio__op *op)
{
    uring *u = U(l);
    if (op->backend_data == &u->cancel_backlog)
        return;
    if (CORIO__UNLIKELY(!cancel_queue(u, op))) {
        /* The kernel refuses submissions for now; a lost cancel would leave
         * the task waiting on a recv that may never end, so keep it. */
        op->backend_data = &u->cancel_backlog;
        corio__list_push_back(&u->cancel_backlog, &op->link);
    }
}

static void cancel_backlog_flush(uring *u)
{
    while (!corio__list_empty(&u->cancel_backlog)) {
        corio__op *op = CORIO__CONTAINER_OF(u->cancel_backlog.next, corio__op, link);
        if (!cancel_queue(u, op))
            return;
        corio__list_remove(&op->link);
        op->backend_data = NULL;
    }
}

typedef struct cqe_copy {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
} cqe_copy;

/* The first completion of a RECV_MULTI with a byte limit tells whether the
 * kernel honours limits: before 6.17 the field was file_index, which a
 * receive refuses with -EINVAL before doing anything.  That answer becomes
 * -EOPNOTSUPP (the owner falls back to plain receives), for the ops
 * submitted before it was known too, and later limited starts are refused
 * at once; any other answer means the limit is in force.  Returns the
 * result to report. */
static int32_t recv_limit_learn(uring *u, const cqe_copy *c)
{
    if (c->res == -EINVAL && !(c->flags & IORING_CQE_F_MORE)) {
        u->recv_limit = -1;
        return -EOPNOTSUPP;
    }
    if (u->recv_limit == 0)
        u->recv_limit = 1;
    return c->res;
}

static inline void dispatch(corio_loop *l, uring *u, const cqe_copy *c)
{
    corio__op *op = (corio__op *)(uintptr_t)c->ud;
    int32_t res = c->res;
    if (op->kind == CORIO__OP_RECV_MULTI) {
        op->buf_id = (c->flags & IORING_CQE_F_BUFFER) ? (uint16_t)(c->flags >> IORING_CQE_BUFFER_SHIFT)
                                                      : CORIO__NO_BUF;
        if (CORIO__UNLIKELY(u->recv_limit <= 0) && op->len)
            res = recv_limit_learn(u, c);
    }
    if (c->flags & IORING_CQE_F_MORE) {
        op->more = 1;
        op->res = res;
        op->done(op);
        return;
    }
    op->more = 0;
    u->inflight--;
    if (CORIO__UNLIKELY(op->backend_data == &u->cancel_backlog)) {
        corio__list_remove(&op->link);
        op->backend_data = NULL;
    }
    if (op->hint & CORIO__OPH_POLLED) {
        /* A poll standing in for a receive (uring_submit): readable, or
         * in error, which the receive the task now makes reports. */
        op->hint &= (uint8_t)~CORIO__OPH_POLLED;
        corio__op_complete(op, c->res >= 0 ? CORIO__OP_READY : c->res);
        return;
    }
    /* The ring ran dry: give the kernel more buffers so the owner's
     * re-arm can make progress while its readers still hold the rest. */
    if (CORIO__UNLIKELY(res == -ENOBUFS) && op->kind == CORIO__OP_RECV_MULTI)
        bufring_grow(u, u->br.populated);
    corio__op_complete(op, res);
}

/* Dispatch every completion available.  CQEs are copied out and the CQ head
 * advanced per batch before any handler runs, so handlers may submit (and
 * even flush the SQ) without the CQ filling behind them. */
static int reap(corio_loop *l, uring *u)
{
    struct io_uring *ring = &u->ring;
    int total = 0;
    for (;;) {
        cqe_copy batch[REAP_BATCH];
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(ring, head, cqe)
        {
            batch[n].ud = cqe->user_data;
            batch[n].res = cqe->res;
            batch[n].flags = cqe->flags;
            if (++n == REAP_BATCH)
                break;
        }
        if (!n)
            break;
        io_uring_cq_advance(ring, n);
        for (unsigned i = 0; i < n; i++) {
            uint64_t ud = batch[i].ud;
            if (CORIO__UNLIKELY(ud <= UD_NOTIFY || ud == LIBURING_UDATA_TIMEOUT)) {
                if (ud == UD_NOTIFY)
                    notify_done(l, u);
                continue;
            }
            dispatch(l, u, &batch[i]);
            total++;
        }
        if (n < REAP_BATCH)
            break;
    }
    return total;
}

/* Is there completion work in the kernel that only an io_uring_enter will
 * bring out? */
static inline bool kernel_has_work(uring *u)
{
    unsigned kflags = IO_URING_READ_ONCE(*u->ring.sq.kflags);
    if (kflags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN))
        return true;
    return u->peek_must_enter;
}

static int uring_poll(corio_loop *l, uint64_t timeout_ns)
{
    uring *u = U(l);
    struct io_uring *ring = &u->ring;
    bufring_publish(u);
    if (CORIO__UNLIKELY(!corio__list_empty(&u->cancel_backlog)))
        cancel_backlog_flush(u);
    if (CORIO__UNLIKELY(!u->notify_armed) && !u->closing)
        notify_arm(u);

    int r = 0;
    if (CORIO__TSAN_MAX_WAIT_NS != UINT64_MAX && timeout_ns > CORIO__TSAN_MAX_WAIT_NS) {
        /* TSan only (arch.h): wait in slices, letting TSan deliver held
         * signals between them, until a completion or the whole timeout:
         * the caller still sees one wait that ends on an event or time. */
        uint64_t end = timeout_ns == UINT64_MAX ? UINT64_MAX : corio__clock_ns() + timeout_ns;
        for (;;) {
            corio__tsan_run_signals();
            uint64_t now = corio__clock_ns();
            uint64_t left = end == UINT64_MAX ? UINT64_MAX : end > now ? end - now : 0;
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)CORIO__TSAN_MAX_WAIT_NS};
            if (left < CORIO__TSAN_MAX_WAIT_NS)
                ts.tv_nsec = (long long)left;
            struct io_uring_cqe *cqe;
            r = left ? io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) : 0;
            if (io_uring_cq_ready(ring) || !left || (r < 0 && r != -ETIME && r != -EINTR))
                break;
        }
        timeout_ns = 0; /* what is left below is the non-blocking reap */
    }
    if (timeout_ns == 0 || io_uring_cq_ready(ring)) {
        /* Don't wait; enter only to hand over SQEs or fetch completions
         * the kernel holds back. */
        if (io_uring_sq_ready(ring) || kernel_has_work(u))
            r = io_uring_submit_and_get_events(ring);
    } else if (timeout_ns == UINT64_MAX) {
        r = io_uring_submit_and_wait(ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(timeout_ns / 1000000000u),
            .tv_nsec = (long long)(timeout_ns % 1000000000u),
        };
        struct io_uring_cqe *cqe;
        r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    }
    /* ETIME: the timeout passed; EINTR: a signal; EAGAIN/EBUSY: the kernel
     * is short of memory or CQ room, which reaping below relieves. */
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
        return r;
    return reap(l, u);
}

static void uring_forget_fd(corio_loop *l, int fd)
{
    /* Nothing is registered per fd: ops name the fd in each SQE. */
    (void)l;
    (void)fd;
}

static unsigned uring_pending(corio_loop *l) { return U(l)->inflight; }

static void uring_notify(corio_loop *l)
{
    uring *u = U(l);
    if (atomic_exchange(&u->notified, 1))
        return;
    corio__eventfd_kick(u->evfd);
}

const corio__backend_ops corio__backend_uring = {
    .name = "io_uring",
    .init = uring_init,
    .destroy = uring_destroy,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .poll = uring_poll,
    .forget_fd = uring_forget_fd,
    .pending = uring_pending,
    .notify = uring_notify,
    .bufring_get = uring_bufring_get,
    .buf_addr = uring_buf_addr,
    .buf_size = uring_buf_size,
    .buf_put = uring_buf_put,
};
