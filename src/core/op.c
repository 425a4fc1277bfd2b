/*
 * The one "wait for this operation" primitive shared by every kind of I/O.
 *
 * An operation is started through the backend; if it finishes at once (the
 * epoll backend's try-first path) the task never parks.  Otherwise the task
 * parks until the completion.  A cancel or deadline while parked asks the
 * backend to cancel, and the task keeps waiting for the operation's own
 * completion: only then has the kernel let go of the buffer.  If the
 * operation won the race and succeeded, its result is returned so no data is
 * lost; the cancellation stays sticky and surfaces at the next wait.
 */
#include "internal.h"

static void op_interrupted(corio_task *t, int reason)
{
    corio__op *op = t->wait_obj;
    op->interrupt_reason = reason;
    corio__op_cancel(t->loop, op);
}

int corio__op_start(corio_loop *l, corio__op *op)
{
    CORIO__ASSERT(op->state != CORIO__OPS_PENDING && op->state != CORIO__OPS_CANCELLING);
    CORIO__ASSERT(op->done || op->task);
    op->state = CORIO__OPS_PENDING;
    if (l->backend->submit(l, op)) {
        op->state = CORIO__OPS_DONE;
        return 1;
    }
    return 0;
}

void corio__op_cancel(corio_loop *l, corio__op *op)
{
    if (op->state != CORIO__OPS_PENDING) {
        /* Woken to receive (CORIO__OP_READY) but not yet run: the task
         * must not make the call now (a stream closing waits for it). */
        if (op->state == CORIO__OPS_DONE && op->res == CORIO__OP_READY)
            op->res = -ECANCELED;
        return;
    }
    op->state = CORIO__OPS_CANCELLING;
    l->backend->cancel(l, op);
    CORIO__ASSERT(op->state == CORIO__OPS_CANCELLING || op->state == CORIO__OPS_DONE);
}

void corio__op_complete(corio__op *op, int32_t res)
{
    CORIO__ASSERT(op->state == CORIO__OPS_PENDING || op->state == CORIO__OPS_CANCELLING);
    op->res = res;
    op->state = CORIO__OPS_DONE;
    if (op->done)
        op->done(op);
    else
        corio__wake(op->task, res);
}

static const char *const op_names[CORIO__OP_KIND_COUNT] = {
    [CORIO__OP_NONE] = "op",          [CORIO__OP_RECV] = "recv",        [CORIO__OP_SEND] = "send",
    [CORIO__OP_SENDMSG] = "send",     [CORIO__OP_ACCEPT] = "accept",    [CORIO__OP_CONNECT] = "connect",
    [CORIO__OP_READ] = "read",        [CORIO__OP_WRITE] = "write",      [CORIO__OP_POLL] = "poll",
    [CORIO__OP_OPENAT] = "file open", [CORIO__OP_CLOSE] = "file close", [CORIO__OP_FSYNC] = "fsync",
    [CORIO__OP_STATX] = "stat",       [CORIO__OP_UNLINKAT] = "unlink",  [CORIO__OP_RENAMEAT] = "rename",
    [CORIO__OP_MKDIRAT] = "mkdir",    [CORIO__OP_READV] = "readv",      [CORIO__OP_WRITEV] = "writev",
    [CORIO__OP_RECVMSG] = "recv",
};

int corio__op_run(corio__op *op)
{
    int r = corio__check();
    if (r)
        return r;
    corio_loop *l = corio__loop();
    op->task = l->current;
    op->done = NULL;
    op->interrupt_reason = 0;
    if (op->kind == CORIO__OP_RECVMSG)
        op->hint |= CORIO__OPH_TASK_RECV;
    const char *what = op->kind < CORIO__OP_KIND_COUNT && op_names[op->kind] ? op_names[op->kind] : "op";
    for (;;) {
        if (corio__op_start(l, op))
            return op->res;
        r = corio__suspend(op_interrupted, op, what, CORIO__NO_DEADLINE);
        if (CORIO__LIKELY(r != CORIO__OP_READY))
            break;
        /* The fd became readable and nothing was received yet: receive
         * now, unless a cancel or deadline came first (nothing is lost). */
        if (op->interrupt_reason) /* the readiness beat a cancel to the kernel */
            return op->interrupt_reason;
        if (op->res != CORIO__OP_READY) /* cancelled since (corio__op_cancel) */
            return op->res;
        r = corio__check();
        if (r)
            return r;
        op->hint |= CORIO__OPH_READY;
    }
    /* An op the cancel ended reports -ECANCELED, or -EINTR when io_uring
     * had to interrupt a worker blocked in the call (a read of an fd that
     * knows no non-blocking attempt, such as inotify): either way nothing
     * was transferred, and the caller learns why. */
    if (op->interrupt_reason && (r == -ECANCELED || r == -EINTR))
        return op->interrupt_reason;
    return r;
}

int corio__op_wait_fd(const corio_task *t)
{
    if (!(t->flags & CORIO__T_PARKED) || t->on_interrupt != op_interrupted)
        return -1;
    const corio__op *op = t->wait_obj;
    switch (op->kind) {
    /* The path kinds carry a directory fd (often AT_FDCWD), not the file's. */
    case CORIO__OP_OPENAT:
    case CORIO__OP_STATX:
    case CORIO__OP_UNLINKAT:
    case CORIO__OP_RENAMEAT:
    case CORIO__OP_MKDIRAT:
        return -1;
    default:
        return op->fd;
    }
}
