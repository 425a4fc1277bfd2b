/*
 * Socket input shared by streams (src/io/stream.c) and the HTTP server
 * (src/http/): how bytes get from a connected socket to the task that wants
 * them, on every backend.
 *
 * With CORIO__CAP_MULTISHOT one multishot recv stays armed for most of the
 * socket's life: the kernel fills buffers from the loop's provided-buffer
 * ring and the completion copies them straight into the memory of the task
 * waiting in corio__sockin_wait (or, when nobody waits or its memory is
 * full, into the unread buffer), then gives the ring buffer back at once,
 * so no socket ever pins ring memory.  Flow control: the multishot is armed
 * with a byte limit, the room left below pause_at unread (one byte if
 * none), and ends by itself there; the kernel may overshoot by less than
 * one ring buffer, so at most pause_at + 16 KiB is ever unread (or what
 * was unread when a wait armed it, + 16 KiB).  Below pause_at it is armed
 * again at once, else by the next wait.  A cancel could not do this: the
 * kernel fills many buffers per system call, all completed before a
 * cancel is even submitted.  A kernel that cannot limit the recv (before
 * 6.17) gets plain recvs instead.
 * Without the capability (epoll, older kernels), a wait is one plain recv
 * operation.  An owner with no task (an idle HTTP connection) parks the
 * input instead: the multishot, or a POLLIN operation, then stands in for
 * the task and the owner's event hook hears of the next bytes.
 *
 * The owner keeps the struct in its own object and reads the unread buffer
 * (buf[start, end)) as it likes: a stream uses it as its read buffer, the
 * HTTP server as a spill for bytes that arrived while a handler ran.
 * Internal to io/ and http/; loop thread only.
 */
#ifndef CORIO_IO_SOCKIN_H
#define CORIO_IO_SOCKIN_H

#include "../core/internal.h"

typedef struct corio__sockin corio__sockin;

/* What the owner hears of the background operation (both optional). */
typedef struct corio__sockin_ops {
    /* Bytes of a multishot completion, before they go anywhere else: the
     * owner may take some and returns how many (n drops the rest too). */
    size_t (*claim)(corio__sockin *in, const char *p, size_t n);
    /* After every completion of the multishot or of the park POLL, once
     * eof/err/bg are updated.  Returns true if the owner took care of it
     * (it may have freed `in`); false: a waiting reader is woken. */
    bool (*event)(corio__sockin *in);
} corio__sockin_ops;

/* What runs in the background (op). */
enum {
    CORIO__SOCKIN_OFF = 0,  /* nothing in the kernel */
    CORIO__SOCKIN_RECV,     /* the multishot recv is armed */
    CORIO__SOCKIN_POLL,     /* the park POLL is armed (no multishot) */
    CORIO__SOCKIN_STOPPING, /* a cancel was asked for; the last completion is due */
};

struct corio__sockin {
    corio_loop *loop;
    const corio__sockin_ops *ops;
    int fd;
    int err;           /* sticky receive error (never an interrupt) */
    uint8_t bg;        /* CORIO__SOCKIN_* */
    bool multi;        /* use the multishot recv (cleared if the backend refuses it) */
    bool fallback;     /* the ring ran dry: the next wait is one plain recv */
    bool drained;      /* the last plain recv came back short: poll before trying */
    bool bulk;         /* the last plain recv brought >= SOCKIN_BULK bytes (CORIO__OPH_BULK) */
    bool discard;      /* the owner is done with the input: arriving bytes are dropped */
    bool ready;        /* the park POLL saw the socket readable (or broken) */
    bool eof;          /* the peer shut its side (recv gave 0) */
    bool pinned;       /* bytes before `start` are still referenced: don't move them */
    bool task_recv;    /* plain recvs carry CORIO__OPH_TASK_RECV (Unix streams: as their recvmsgs do) */
    size_t pause_at;   /* unread bytes at which the multishot is paused */
    size_t plain_from; /* a wait into this much caller memory with nothing armed uses one plain recv */
    /* unread bytes: buf[start, end) of cap */
    char *buf;
    size_t start, end, cap;
    char *old; /* while pinned: the block the pinned bytes live in, if buf moved */
    /* the task in corio__sockin_wait and its memory */
    corio_task *reader;
    char *dst;
    size_t dst_cap, dst_got;
    corio__op *plain; /* the owner's plain recv/poll in flight (a close cancels it) */
    corio__op op;     /* the multishot recv or the park POLL */
};

/* Set up in for fd (non-blocking, connected).  multi is on when l has
 * CORIO__CAP_MULTISHOT (and goes off if the kernel cannot limit a
 * multishot recv); pause_at defaults to 16 KiB and plain_from to "never".
 * Does not touch the kernel. */
void corio__sockin_init(corio__sockin *in, corio_loop *l, int fd, const corio__sockin_ops *ops);

static inline size_t corio__sockin_unread(const corio__sockin *in) { return in->end - in->start; }

/* Should a wait for up to cap bytes into dst (NULL: the unread buffer) go
 * through the multishot?  Always while it is armed (it owns the order of
 * arriving bytes); otherwise not after a dry ring (one plain recv first),
 * nor for a big read into the caller's memory (one plain recv copies once
 * and is not cut into ring-buffer pieces).  The caller clears `fallback`
 * when it makes the plain recv. */
static inline bool corio__sockin_wants_multi(const corio__sockin *in, const void *dst, size_t cap)
{
    return in->multi && (in->bg != CORIO__SOCKIN_OFF || (!in->fallback && (!dst || cap < in->plain_from)));
}

/* Move up to n unread bytes into dst.  Returns how many. */
size_t corio__sockin_take(corio__sockin *in, void *dst, size_t n);

/* Append n bytes to the unread buffer, growing it (bytes before start are
 * neither moved nor overwritten while pinned: a buffer that must grow
 * keeps the old block in `old` until corio__sockin_unpin).  Returns 0 or
 * -ENOMEM. */
int corio__sockin_append(corio__sockin *in, const char *p, size_t n);

/* The pinned bytes may go now. */
static inline void corio__sockin_unpin(corio__sockin *in)
{
    if (CORIO__UNLIKELY(in->pinned)) {
        in->pinned = false;
        corio__free(in->old);
        in->old = NULL;
    }
}

/* Free the unread buffer (with whatever it holds). */
void corio__sockin_free_buf(corio__sockin *in);

/* One plain recv operation into buf (in->plain points at it meanwhile).
 * Records EOF, a receive error and whether the socket was drained.
 * Suspends.  Returns bytes, 0 at EOF or -errno. */
ssize_t corio__sockin_recv(corio__sockin *in, void *buf, size_t n);

/* The same with recvmsg, for sockets that carry ancillary data (Unix
 * streams passing fds): msg describes n bytes of room.  flags go to
 * recvmsg (MSG_CMSG_CLOEXEC). */
ssize_t corio__sockin_recvmsg(corio__sockin *in, struct msghdr *msg, size_t n, int flags);

/* Wait for the multishot (armed here if needed).  dst (may be NULL) takes
 * up to cap bytes while the unread buffer is empty.  Returns > 0: bytes put
 * in dst (an interrupt that came with them surfaces at the next wait); 0:
 * look at the unread buffer, eof and err again (also when the backend
 * refused the multishot: multi is then off); or -ECANCELED /
 * -CORIO_EDEADLINE, or what corio__sockin_wake_reader passed.  Suspends. */
ssize_t corio__sockin_wait(corio__sockin *in, void *dst, size_t cap);

/* Wake the task in corio__sockin_wait with r (its dst is no longer
 * written).  Returns false if none waits. */
bool corio__sockin_wake_reader(corio__sockin *in, int r);

/* Arm the multishot.  False if the backend refused it. */
bool corio__sockin_arm(corio__sockin *in);

/* Let the input wait without a task: the multishot stays armed, or (no
 * multishot) a POLLIN operation is started; their completions call the
 * event hook (`ready` says the POLL saw the socket readable or broken).
 * Returns true if parked, false if there is input to read already (or
 * the backend refused, or the POLL completed at once): read it now. */
bool corio__sockin_park(corio__sockin *in);

/* corio__sockin_park right after the caller's own receive (corio__sockin_try)
 * said EAGAIN, with nothing run in between: the POLL (no multishot) waits
 * at once instead of asking poll(2) again, which on epoll saves a system
 * call per fresh connection.  Same results as corio__sockin_park. */
bool corio__sockin_park_empty(corio__sockin *in);

/* One non-blocking receive made directly, never suspending (a fresh
 * connection's first look, whose bytes usually came with the handshake).
 * Records EOF, a receive error and whether the socket was drained, as
 * corio__sockin_recv.  Returns bytes, 0 at EOF, -EAGAIN or -errno. */
ssize_t corio__sockin_try(corio__sockin *in, void *buf, size_t n);

/* Stop the background operation: its last completion still comes through
 * the event hook (with bg back to OFF).  Safe to call in any state. */
void corio__sockin_stop(corio__sockin *in);

#endif
