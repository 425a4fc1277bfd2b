/*
 * io_uring-only facilities the I/O layer may use on top of the generic
 * backend table: multishot operations and the per-loop provided-buffer ring.
 *
 * Multishot recv (CORIO__OP_RECV_MULTI) does not take a buffer: the kernel
 * picks one from a ring of buffers the loop owns and reports its id in
 * op->buf_id.  The reader copies the bytes out (or parses them in place) and
 * hands the buffer back with corio__uring_buf_put(); until then the kernel
 * cannot reuse it.  Returned buffers are published to the kernel in batches,
 * at the next backend poll, so a put costs no system call and no atomic.
 *
 * The ring is created on first use.  It starts with a modest number of
 * buffers and grows (up to its capacity) whenever a multishot recv ends with
 * -ENOBUFS, so memory follows the real number of bytes parked in user space;
 * the buffer memory is reserved once and committed lazily by the kernel.
 *
 * Everything here is loop-thread only.  Without io_uring support (liburing
 * missing at build time, or the loop running on epoll) the capability check
 * says false and nothing else may be called.
 *
 * Contract of a multishot op, for its owner:
 *  - op->done is required; it is called for every completion with op->res,
 *    op->more and (RECV_MULTI) op->buf_id set.  While op->more == 1 the op
 *    stays armed and its memory must stay put; the completion with
 *    op->more == 0 is the last one (it goes through corio__op_complete, so
 *    op->state is DONE by then) and after it the op may be reused or freed.
 *  - RECV_MULTI: res > 0 comes with a buffer; res == 0 is EOF (final);
 *    -ENOBUFS (final) means the ring ran dry because the reader holds every
 *    buffer: put some back, then submit the op again.  Any completion with
 *    buf_id != CORIO__NO_BUF carries a buffer that must be put back, even a
 *    final one.
 *  - ACCEPT_MULTI: res is a new fd (SOCK_NONBLOCK|SOCK_CLOEXEC, owned by the
 *    callback from then on) or -errno; a final error ends the op (submit it
 *    again to keep accepting, e.g. after -EMFILE).  op->addr/addrlen are
 *    normally NULL: every accept would overwrite the same memory (use
 *    getpeername on the new fd instead).
 *  - backend->cancel() stops either kind; the last completion (usually
 *    -ECANCELED) still arrives, possibly preceded by a few more results that
 *    were already queued.
 */
#ifndef CORIO_BACKEND_URING_H
#define CORIO_BACKEND_URING_H

#include "../core/internal.h"

#ifdef CORIO_HAVE_URING

/* True if l runs on io_uring and the kernel supports multishot accept and
 * recv with a provided-buffer ring (probed once at loop start). */
bool corio__uring_has_multishot(corio_loop *l);

/* Make sure the provided-buffer ring exists (it is also created on the
 * first RECV_MULTI submit).  Returns 0 or -errno (-ENOMEM, or the kernel's
 * refusal to register it).  Idempotent; after a failure it keeps returning
 * the same error. */
int corio__uring_bufring_get(corio_loop *l);

/* Address of provided buffer id (valid ids come from op->buf_id after a
 * RECV_MULTI completion; the ring must exist). */
void *corio__uring_buf(corio_loop *l, uint16_t id);

/* Size in bytes of every provided buffer (the most one recv completion
 * delivers). */
size_t corio__uring_buf_size(corio_loop *l);

/* Give buffer id back to the kernel.  The caller must not touch its memory
 * afterwards.  Each id must be put exactly once per completion that
 * delivered it.  Never fails, never suspends. */
void corio__uring_buf_put(corio_loop *l, uint16_t id);

#else

static inline bool corio__uring_has_multishot(corio_loop *l)
{
    (void)l;
    return false;
}
static inline int corio__uring_bufring_get(corio_loop *l)
{
    (void)l;
    return -EOPNOTSUPP;
}
/* Never called without io_uring (no multishot op can have completed). */
static inline void *corio__uring_buf(corio_loop *l, uint16_t id)
{
    (void)l;
    (void)id;
    __builtin_unreachable();
}
static inline size_t corio__uring_buf_size(corio_loop *l)
{
    (void)l;
    return 0;
}
static inline void corio__uring_buf_put(corio_loop *l, uint16_t id)
{
    (void)l;
    (void)id;
}

#endif

#endif
