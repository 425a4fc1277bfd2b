/*
 * Internal contracts shared by core/, backend/ and io/.
 *
 * Everything in corio that waits goes through one primitive,
 * corio__suspend(): the running task parks itself, and whoever completes the
 * wait calls corio__wake(task, result).  Cancellation and deadlines are
 * delivered through the same path: when one hits a parked task, the task's
 * interrupt hook runs (for a kernel operation it asks the backend to cancel
 * and lets the original completion wake the task, so no buffer is released
 * while the kernel may still write into it).
 *
 * I/O is modelled as completion-based operations (corio__op) that the
 * backend starts and later completes; io_uring maps onto this directly and
 * epoll emulates it (try the call, wait for readiness on EAGAIN, retry).
 */
#ifndef CORIO_INTERNAL_H
#define CORIO_INTERNAL_H

#define _GNU_SOURCE 1
#include "corio.h"
#include "../arch/arch.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define CORIO__LIKELY(x) __builtin_expect(!!(x), 1)
#define CORIO__UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Thread-local storage read on hot paths: initial-exec, so that libcorio.so
 * reads it with one load off the thread pointer instead of a call to
 * __tls_get_addr (the default for position-independent code, and what every
 * lock, queue and yield paid before).  The cost is static TLS space, which
 * glibc also keeps a reserve of for libraries loaded with dlopen; the
 * variables marked so come to well under 64 bytes. */
#define CORIO__HOT_TLS __thread __attribute__((tls_model("initial-exec")))
#define CORIO__CONTAINER_OF(p, T, m) ((T *)(void *)((char *)(p) - (offsetof(T, m))))
#define CORIO__NO_DEADLINE UINT64_MAX

/* The clock time ms milliseconds after now (ns), saturating just below
 * CORIO__NO_DEADLINE: a huge time-out (UINT64_MAX for "as long as it
 * takes") must not wrap around to a time already past. */
static inline uint64_t corio__ns_after_ms(uint64_t now, uint64_t ms)
{
    uint64_t room = CORIO__NO_DEADLINE - 1 - now;
    return ms > room / 1000000u ? CORIO__NO_DEADLINE - 1 : now + ms * 1000000u;
}

/* Invariants that must hold whatever the program does (op and task state
 * transitions, timer heap and list links).  Checked where CORIO_ASSERTS is
 * defined (Debug and sanitizer builds, see CMakeLists.txt): a broken one
 * prints file:line and the condition, then aborts, at the transition that
 * broke it instead of as a crash far away.  Elsewhere compiled out but still
 * type-checked (sizeof does not evaluate its operand).  Not for errors a
 * caller can cause: those return an error code. */
#ifdef CORIO_ASSERTS
#define CORIO__ASSERT(cond) (CORIO__LIKELY(cond) ? (void)0 : corio__assert_fail(#cond, __FILE__, __LINE__))
#else
#define CORIO__ASSERT(cond) ((void)sizeof((cond) ? 1 : 0))
#endif
__attribute__((noreturn, cold)) void corio__assert_fail(const char *cond, const char *file, int line);

typedef struct corio_loop corio_loop;
typedef struct corio__op corio__op;
typedef struct corio__timer corio__timer;

/* ------------------------------------------------------------------ */
/* Intrusive doubly linked list                                        */
/* ------------------------------------------------------------------ */
typedef struct corio__list {
    struct corio__list *prev, *next;
} corio__list;

static inline void corio__list_init(corio__list *l) { l->prev = l->next = l; }
static inline bool corio__list_empty(const corio__list *l) { return l->next == l; }
/* A node is unlinked when it points to itself (after corio__list_remove)
 * or has never been linked (zeroed). */
static inline void corio__list_push_back(corio__list *l, corio__list *n)
{
    CORIO__ASSERT(n->next == NULL || n->next == n);
    CORIO__ASSERT(l->prev->next == l);
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}
static inline void corio__list_remove(corio__list *n)
{
    CORIO__ASSERT(n->next != n && n->next->prev == n && n->prev->next == n);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* ------------------------------------------------------------------ */
/* Timers: a 4-ary min-heap keyed on absolute monotonic ns.            */
/* ------------------------------------------------------------------ */
typedef void (*corio__timer_fn)(corio__timer *t);

struct corio__timer {
    uint64_t when;       /* absolute, corio__clock_ns() scale */
    uint32_t heap_index; /* UINT32_MAX when not armed */
    corio__timer_fn fire;
};

void corio__timer_init(corio__timer *t, corio__timer_fn fire);
static inline bool corio__timer_armed(const corio__timer *t) { return t->heap_index != UINT32_MAX; }
/* Arm (or re-arm) t to fire at `when`.  Returns 0 or -ENOMEM. */
int corio__timer_arm(corio_loop *l, corio__timer *t, uint64_t when);
void corio__timer_disarm(corio_loop *l, corio__timer *t);
void corio__timers_run(corio_loop *l, uint64_t now);
uint64_t corio__timers_next(corio_loop *l, uint64_t now);

/* ------------------------------------------------------------------ */
/* Tasks                                                               */
/* ------------------------------------------------------------------ */

/* Called when a cancel or deadline hits a parked task.  It must arrange for
 * corio__wake(t, ...) to be called, now or later (reason is -ECANCELED or
 * -CORIO_EDEADLINE). */
typedef void (*corio__interrupt_fn)(corio_task *t, int reason);

enum {
    CORIO__T_DONE = 1u << 0,
    /* Cancellation in force (what corio__check tests): set by
     * corio_task_cancel for good (CANCEL_USER), or by a group cancelling
     * its owner, which withdraws it again (group_cancels, src/core/group.c). */
    CORIO__T_CANCELLED = 1u << 1,
    CORIO__T_DETACHED = 1u << 2,
    CORIO__T_READY = 1u << 3,       /* in the run queue */
    CORIO__T_PARKED = 1u << 4,      /* suspended in corio__suspend */
    CORIO__T_INTERRUPTED = 1u << 5, /* interrupt hook already ran for this park */
    CORIO__T_MAIN = 1u << 6,
    CORIO__T_UNINTERRUPTIBLE = 1u << 7, /* parked in corio__suspend_uninterruptible */
    CORIO__T_MARK = 1u << 8,            /* scratch bit for duplicate checks (gather, wait) */
    CORIO__T_CANCEL_USER = 1u << 9,     /* corio_task_cancel was called: never withdrawn */
    CORIO__T_SHIELDED = 1u << 10,       /* inside corio_shield_push: cancellation held back */
    CORIO__T_GROUPED = 1u << 11,        /* a group member: group/group_link valid, no joiner */
    CORIO__T_GATHERING = 1u << 12,      /* in corio_gather*: wait_obj is its corio__gather_state */
    CORIO__T_KILLED = 1u << 13,         /* corio__task_kill: cancelled through any shield */
    /* Has run: its context is suspended inside switch_out (task.c), so a
     * task dump may resume it to take its backtrace (introspect.c). */
    CORIO__T_STARTED = 1u << 16,
};

struct corio__group;
struct corio__watch;

struct corio_task {
    corio__ctx ctx;
    corio_task *next_ready; /* run queue link */
    corio_loop *loop;
    uint32_t flags;
    int wake_result;
    corio__stack *stack;
    corio_fn fn;
    void *arg;
    void *result;
    int error;              /* corio_fail's code, 0 = success */
    uint16_t open_groups;   /* groups this task owns that are not joined yet */
    uint16_t group_cancels; /* groups that cancelled this task (their owner) and will withdraw it */
    /* The sim backend's view (src/backend/sim.c): the simulated host the
     * task runs on (inherited from its spawner) and its spawn number, which
     * names it in the trace the same way run after run. */
    uint32_t sim_host;
    uint32_t sim_id;
    uint64_t deadline; /* absolute ns, CORIO__NO_DEADLINE if none */
    union {
        uint64_t sleep_until; /* absolute ns when parked in a sleep, else CORIO__NO_DEADLINE */
        uint64_t end_seq;     /* once ended: the loop's end counter then (ends in order) */
    };
    corio__timer timer; /* sleep end or deadline, whichever is first */
    corio__interrupt_fn on_interrupt;
    void *wait_obj;        /* what the task waits on (for the interrupt hook and reports) */
    const char *wait_what; /* short description for stall reports */
    /* Who hears of the task's end: a handle the program owns has at most
     * one joiner and any number of corio_wait / as_completed watchers; a
     * group member (CORIO__T_GROUPED) has its group instead, which alone
     * owns it. */
    union {
        struct {
            corio_task *joiner;            /* task parked in corio_task_join / gather on this one */
            struct corio__watch *watchers; /* src/core/wait.c */
        };
        struct {
            struct corio__group *group;
            /* The group's owner, known without reading the group: an owner
             * that ends unjoined orphans its members after its frames (and
             * often the group with them) are gone. */
            corio_task *group_owner;
            corio__list group_link; /* the group's members */
        };
    };
    corio__list live; /* loop->live_tasks */
    void *asan_fake_stack;
    void *tsan_fiber;       /* TSan's fiber for this task's context (NULL without TSan) */
    const void *spawn_site; /* return address of the spawn call, for reports (introspect.c) */
    char name[32];
};

/* The running task (NULL on the loop's own context): corio__current_task,
 * defined with the loop (below) so that it inlines. */

/* Park the running task until corio__wake(task, r) and return r.
 *  - on_interrupt: run when a cancel or deadline hits while parked (NULL =
 *    wake at once with the reason).  wait_obj/what describe the wait.
 *  - wake_at: absolute ns to wake with result 0 (a sleep), or
 *    CORIO__NO_DEADLINE.
 * Does NOT check for a pending cancel/deadline before parking: callers call
 * corio__check() first (before starting any operation).  While parked, a
 * cancel or passing deadline triggers on_interrupt exactly once. */
int corio__suspend(corio__interrupt_fn on_interrupt, void *wait_obj, const char *what, uint64_t wake_at);

/* As corio__suspend but cancel and deadline are ignored (waiting for the
 * kernel to release a buffer after an interrupt, awaiting cancelled
 * children). */
int corio__suspend_uninterruptible(void *wait_obj, const char *what);

/* -ECANCELED if the current task is cancelled, -CORIO_EDEADLINE if its deadline
 * passed, else 0.  Every suspending public call starts with this. */
int corio__check(void);

/* Make a parked task runnable; corio__suspend returns r in it.  Safe to call
 * from completion handlers and timers.  A task that is not parked is left
 * alone. */
void corio__wake(corio_task *t, int r);

/* Spawn with all options (internal users: servers). */
corio_task *corio__spawn(corio_loop *l, const char *name, size_t stack_size, corio_fn fn, void *arg);

/* Free a finished task (joined or detached). */
void corio__task_free(corio_task *t);

/* Deliver a cancel/deadline reason to a parked task as the loop would. */
void corio__task_interrupt(corio_task *t, int reason);

/* Cancel t as a group cancels its owner (src/core/group.c): in force
 * like corio_task_cancel's, but withdrawn by corio__task_uncancel. */
void corio__task_group_cancel(corio_task *t);
/* Cancel t for good, shields or not: what a simulated host's crash does to
 * its tasks (src/backend/sim.c), since a power cut spares no cleanup.
 * Every wait of t from now on ends with -ECANCELED. */
void corio__task_kill(corio_task *t);
/* Withdraw one corio__task_group_cancel; the task stays cancelled if
 * corio_task_cancel was called on it too, or another group's stands. */
void corio__task_uncancel(corio_task *t);

/* A task failed in the sense groups, corio_wait and as_completed use: it
 * set an error, other than the -ECANCELED a cancelled task reports (that
 * is just the cancellation taking effect). */
static inline bool corio__task_failed(const corio_task *t)
{
    return t->error != 0 && !(t->error == -ECANCELED && (t->flags & CORIO__T_CANCELLED));
}

/* End-of-task hooks, called by corio__task_finished (task.c) on the
 * loop's context, after the task's stack is released. */
/* t is a member of a group: record its outcome, free it (group.c). */
void corio__group_member_ended(corio_task *t);
/* t owns groups it never joined and is ending: their members become
 * detached tasks, so nothing touches the groups' memory again (group.c). */
void corio__group_orphan(corio_task *t);
/* t has corio_wait / as_completed watchers: tell each (wait.c). */
void corio__watchers_fire(corio_task *t);
/* t ended while a gather waits for it (task.c's gather state). */
void corio__gather_child_ended(corio_task *gatherer, corio_task *t);

/* Scheduler side (loop.c <-> task.c). */
void corio__set_loop(corio_loop *l);
/* Run t from the loop's context until control comes back to it, and
 * return the task that came back: t, or the last of a chain of tasks that
 * switched straight to each other (task.c, switch_out).  That task is
 * suspended, ready (it yielded) or done. */
corio_task *corio__task_resume(corio_loop *l, corio_task *t);
void corio__task_finished(corio_loop *l, corio_task *t);
/* Give a task's stack back to the pool (and drop its TSan fiber): t's
 * context can never run again.  Called on the loop's context. */
void corio__task_release_stack(corio_loop *l, corio_task *t);

/* ------------------------------------------------------------------ */
/* Operations and backends                                             */
/* ------------------------------------------------------------------ */

enum corio__op_kind {
    CORIO__OP_NONE = 0,
    CORIO__OP_RECV,    /* recv(fd, buf, len, flags) */
    CORIO__OP_SEND,    /* send(fd, buf, len, flags | MSG_NOSIGNAL) */
    CORIO__OP_SENDMSG, /* sendmsg(fd, msg, flags | MSG_NOSIGNAL): writev for sockets */
    CORIO__OP_ACCEPT,  /* accept4(fd, addr, addrlen, SOCK_NONBLOCK|SOCK_CLOEXEC) */
    CORIO__OP_CONNECT, /* connect(fd, addr, addrlen) on a non-blocking socket */
    CORIO__OP_READ,    /* read/pread(fd, buf, len, off) (off < 0: current position) */
    CORIO__OP_WRITE,   /* write/pwrite */
    CORIO__OP_POLL,    /* wait for poll events (POLLIN/POLLOUT) on fd; res = revents */
    /* File kinds (src/io/file.c), native on io_uring only: the epoll
     * backend completes them at once with -EOPNOTSUPP and file.c runs the
     * blocking call on the thread pool instead.  Paths go in buf (as a
     * const char *), they and every other pointer stay valid until the op
     * completes; dirfd-relative kinds take the dirfd in fd (AT_FDCWD). */
    CORIO__OP_OPENAT,   /* openat(fd, buf, flags, mode = len) */
    CORIO__OP_CLOSE,    /* close(fd) */
    CORIO__OP_FSYNC,    /* fsync(fd); flags = CORIO__FSYNC_DATASYNC for fdatasync */
    CORIO__OP_STATX,    /* statx(fd, buf, flags, STATX_BASIC_STATS, stx) */
    CORIO__OP_UNLINKAT, /* unlinkat(fd, buf, flags) (AT_REMOVEDIR: rmdir) */
    CORIO__OP_RENAMEAT, /* renameat(fd, buf, fd, path2) */
    CORIO__OP_MKDIRAT,  /* mkdirat(fd, buf, mode = len) */
    CORIO__OP_READV,    /* readv/preadv(fd, iov = buf, iovcnt = len, off) (off < 0: current position) */
    CORIO__OP_WRITEV,   /* writev/pwritev */
    /* recvmsg(fd, msg, flags) on a socket: ancillary data (SCM_RIGHTS) too;
     * len = the iovecs' total, for the drained hint as with RECV */
    CORIO__OP_RECVMSG,
    /* Multishot kinds (CORIO__CAP_MULTISHOT; a backend without it completes
     * them at once with -EOPNOTSUPP).  The op stays armed: every completion
     * calls op->done (required) with op->res set and op->more = 1 while
     * more completions will follow; the last one (more = 0) goes through
     * corio__op_complete.  Contract below, at CORIO__CAP_MULTISHOT. */
    CORIO__OP_ACCEPT_MULTI, /* accept4 repeatedly; res = new fd or -errno */
    CORIO__OP_RECV_MULTI,   /* recv repeatedly into the loop's provided buffer ring; res = bytes, buf_id;
                             * len > 0: a byte limit (contract at CORIO__CAP_MULTISHOT) */
    CORIO__OP_KIND_COUNT
};

typedef void (*corio__op_done_fn)(corio__op *op);

/* One operation.  Lives in the caller's frame (or in the object that owns
 * the wait) until it completes. */
struct corio__op {
    uint8_t kind;
    uint8_t state;   /* CORIO__OPS_* */
    uint8_t more;    /* multishot: 1 while more completions will follow */
    uint8_t hint;    /* CORIO__OPH_*: optional backend hints */
    uint16_t buf_id; /* RECV_MULTI: provided buffer holding the data, CORIO__NO_BUF if none */
    int32_t res;     /* result: >=0 or -errno */
    int fd;
    int flags;            /* recv/send flags, or poll events */
    socklen_t addr_len;   /* CONNECT */
    int interrupt_reason; /* set when the op is being cancelled */
    void *buf;
    size_t len;
    int64_t off; /* READ/WRITE offset, -1 = current position */
    struct sockaddr *addr;
    socklen_t *addrlen; /* ACCEPT */
    /* What only one kind uses shares one place: an op is as small as it
     * can be, since one sits in every stream, connection and waiting
     * frame.  Fields packed above for the same reason (no padding). */
    union {
        struct msghdr *msg; /* SENDMSG, RECVMSG */
        const char *path2;  /* RENAMEAT: the new name */
        struct statx *stx;  /* STATX: where the kernel writes the result */
    };
    corio_task *task;       /* woken on completion when done == NULL */
    corio__op_done_fn done; /* completion callback; NULL = wake task with res */
    corio__list link;       /* backend bookkeeping (epoll wait lists) */
    void *backend_data;
};

#define CORIO__NO_BUF UINT16_MAX

/* FSYNC's flag for fdatasync (the value io_uring gives it). */
#define CORIO__FSYNC_DATASYNC 1

/* As Linux's MAX_RW_COUNT: no single read or write moves more, so every
 * result fits op->res (int32_t).  Lengths are clamped to it. */
#define CORIO__MAX_RW 0x7ffff000u

/* The fd was just drained (the last recv came back short), so data is not
 * expected at once: io_uring arms the poll without trying the recv first.
 * On a POLL op it says the caller's own non-blocking call just failed with
 * EAGAIN: epoll waits without asking poll(2) first.  Backends may ignore
 * hints. */
#define CORIO__OPH_POLL_FIRST 1

/* POLL on an fd that is not corio's (corio_fd_wait): its owner closes it
 * with close(2), never through corio, so no forget_fd announces it and the
 * number may come back as another file.  The epoll backend therefore drops
 * its registration state for the fd when the last such op leaves it, and
 * re-checks the kernel's entry (EPOLL_CTL_MOD, then ADD) at the next wait. */
#define CORIO__OPH_FOREIGN 2

/* Set by corio__op_run on a RECVMSG, and by the owner on a RECV it wants
 * treated alike (Unix streams, src/io/sockin.c): its owner is a task that
 * can make the call itself.  A backend may then, instead of receiving in the loop, wake
 * the task with CORIO__OP_READY once the fd is readable, and the task
 * resubmits the op with CORIO__OPH_READY.  Why: the receive then happens
 * right before the task uses the bytes (an echo's send follows at once),
 * not in a batch of every ready connection's receives first; with 100
 * connections of 100 KiB that batch evicted each reply from the cache
 * before it was sent, and every reply waited for all the receives. */
#define CORIO__OPH_TASK_RECV 4

/* The resubmission after CORIO__OP_READY: the fd was readable a moment
 * ago, so the backend tries the call at once. */
#define CORIO__OPH_READY 8

/* io_uring only: the op's SQE is a POLL_ADD standing in for the receive
 * (CORIO__OPH_TASK_RECV), so its completion means CORIO__OP_READY. */
#define CORIO__OPH_POLLED 16

/* The receive before this one brought 16 KiB or more (SOCKIN_BULK in
 * src/io/sockin.c): io_uring then takes the CORIO__OPH_TASK_RECV path (a
 * poll, then the task's own recv), and keeps receiving inside the ring for
 * smaller messages, where one system call fewer per request beats the
 * cache (measured with bench/unix_bench.sh: 64 B to 8 KiB echoes cost
 * 9-14 % more CPU per request with the poll path). */
#define CORIO__OPH_BULK 32

/* The result that tells corio__op_run "readable now: make the call".  No
 * errno and no byte count can take this value. */
#define CORIO__OP_READY INT32_MIN

enum { CORIO__OPS_IDLE = 0, CORIO__OPS_PENDING, CORIO__OPS_CANCELLING, CORIO__OPS_DONE };

typedef struct corio__backend_ops {
    const char *name;
    /* Set up backend state on l (l->backend_data).  Returns 0 or -errno;
     * io_uring's failure makes AUTO fall back to epoll. */
    int (*init)(corio_loop *l, const corio_config *cfg);
    void (*destroy)(corio_loop *l);
    /* Start op.  Returns 1 if it completed at once (op->res holds the
     * result, no callback is made), 0 if it is pending and will complete
     * through op_complete() during a later poll. */
    int (*submit)(corio_loop *l, corio__op *op);
    /* Ask for a pending op to end early; its completion (often -ECANCELED)
     * still arrives through poll. */
    void (*cancel)(corio_loop *l, corio__op *op);
    /* Wait up to timeout_ns (0 = don't block, UINT64_MAX = forever) for
     * completions and dispatch them with corio__op_complete().  Returns the
     * number dispatched or -errno. */
    int (*poll)(corio_loop *l, uint64_t timeout_ns);
    /* fd is about to be closed: drop any registration.  Must not be called
     * with ops still pending on fd. */
    void (*forget_fd)(corio_loop *l, int fd);
    /* Number of ops in flight (stall detection). */
    unsigned (*pending)(corio_loop *l);
    /* Wake a loop blocked in poll from another thread (async-signal safe). */
    void (*notify)(corio_loop *l);
    /* The provided-buffer ring of CORIO__CAP_MULTISHOT (NULL on a backend
     * without it); reached through corio__bufring_get() and friends below,
     * never directly. */
    int (*bufring_get)(corio_loop *l);
    void *(*buf_addr)(corio_loop *l, uint16_t id);
    size_t (*buf_size)(corio_loop *l);
    void (*buf_put)(corio_loop *l, uint16_t id);
    /* CORIO__CAP_SIM only (NULL elsewhere):
     *  - on_run: task t is about to run (the sim puts it in its trace);
     *  - pick: which of the n tasks in a run queue runs next, in [0, n):
     *    the sim draws it from its seed, so that every seed tries another
     *    order of the ready tasks.
     * With CORIO__CAP_SIM the thread pool also runs its work on the loop's
     * thread, at once, instead of on workers (whose timing no seed
     * decides). */
    void (*on_run)(corio_loop *l, corio_task *t);
    unsigned (*pick)(corio_loop *l, unsigned n);
    /* Close virtual fd fd (CORIO__SIM_FD_BASE and up, which the kernel
     * never sees), for corio__close_fd. */
    void (*close_fd)(corio_loop *l, int fd);
} corio__backend_ops;

/* What the running backend can do beyond the ops every backend has, as bits
 * in l->caps (set by the backend's init).  The I/O layer asks for a
 * capability and never for a particular backend, so a new backend only has
 * to say what it offers.
 *  - FILE_OPS: the file kinds (OPENAT ... WRITEV) and READ/WRITE on regular
 *    files run natively and never block the loop; without it they complete
 *    at once with -EOPNOTSUPP and src/io/file.c uses the thread pool.
 *  - MULTISHOT: ACCEPT_MULTI and RECV_MULTI work, with the provided-buffer
 *    ring below.  Contract of a multishot op, for its owner:
 *     - op->done is required; it is called for every completion with
 *       op->res, op->more and (RECV_MULTI) op->buf_id set.  While
 *       op->more == 1 the op stays armed and its memory must stay put; the
 *       completion with op->more == 0 is the last one (it goes through
 *       corio__op_complete, so op->state is DONE by then) and after it the
 *       op may be reused or freed.
 *     - RECV_MULTI takes no buffer: the kernel picks one from a ring the
 *       loop owns and reports its id in op->buf_id.  res > 0 comes with a
 *       buffer; res == 0 is EOF (final); -ENOBUFS (final) means the ring ran
 *       dry because the reader holds every buffer: put some back, then
 *       start the op again.  Any completion with buf_id != CORIO__NO_BUF
 *       carries a buffer that must be put back, even a final one.
 *       op->len > 0 limits the bytes received: once they reach it the op
 *       ends (a final res > 0), having received less than len plus one
 *       ring buffer (16 KiB).  Where the kernel cannot limit it (io_uring
 *       before 6.17) a limited op fails with -EOPNOTSUPP, either at start
 *       or as its first and final completion: use plain recvs then.
 *       Without a limit nothing bounds what one kernel entry delivers but
 *       the ring itself: a cancel cannot stop it in time.
 *     - ACCEPT_MULTI: res is a new fd (SOCK_NONBLOCK|SOCK_CLOEXEC, owned by
 *       the callback from then on) or -errno; a final error ends the op
 *       (start it again to keep accepting, e.g. after -EMFILE).
 *       op->addr/addrlen are normally NULL: every accept would overwrite
 *       the same memory (use getpeername on the new fd instead).
 *     - corio__op_cancel() stops either kind; the last completion (usually
 *       -ECANCELED) still arrives, possibly after a few more results that
 *       were already queued.
 *  - SIM: the deterministic simulation backend (src/backend/sim.c): the
 *    on_run and pick hooks above are set, and the thread pool runs work
 *    inline. */
enum { CORIO__CAP_FILE_OPS = 1u << 0, CORIO__CAP_MULTISHOT = 1u << 1, CORIO__CAP_SIM = 1u << 2 };

extern const corio__backend_ops corio__backend_epoll;
extern const corio__backend_ops corio__backend_sim;
/* The sim backend's virtual fds start here (src/backend/sim.h says why).
 * They are never the kernel's: corio__close_fd leaves them to the
 * backend's close_fd. */
#define CORIO__SIM_FD_BASE 0x40000000
#ifdef CORIO_HAVE_URING
extern const corio__backend_ops corio__backend_uring;
#endif

/* Called by backends when a pending op finishes: sets state DONE and runs
 * op->done or wakes op->task with op->res. */
void corio__op_complete(corio__op *op, int32_t res);

/* Make op's system call directly, on the calling thread, exactly once
 * (an EINTR is retried, except by close: Linux has released the fd by
 * then).  Returns the result (clamped to INT32_MAX; lengths are clamped to
 * CORIO__MAX_RW) or -errno, EWOULDBLOCK as -EAGAIN.  Touches only op and
 * what it points to, never the loop, so a pool worker may call it.
 * Whether it blocks depends on the kind: RECV, SEND and SENDMSG add
 * MSG_DONTWAIT (sends MSG_NOSIGNAL too), ACCEPT makes the new fd
 * non-blocking and close-on-exec, and POLL asks poll(2) with a zero timeout
 * (revents, or -EAGAIN when none is ready): these never block.  The file
 * kinds, READ, WRITE and their vectored forms block whenever the fd's
 * description would: on the loop thread, make them only where that cannot
 * happen (a non-blocking description, see src/io/file.c "Streams"; a file
 * in memory), elsewhere on a pool worker.  CONNECT and the multishot kinds have no single call:
 * -EOPNOTSUPP.  src/core/op_syscall.c. */
int32_t corio__op_syscall(corio__op *op);

/* Run op from the current task and wait for it: the one "wait for this
 * operation" primitive.  Checks cancel/deadline first (returns -ECANCELED /
 * -CORIO_EDEADLINE without starting it); on interrupt while pending it cancels
 * the op and waits for its completion: if the op still succeeded, its
 * result is returned (nothing is lost; the cancel stays sticky for the next
 * call), else the interrupt reason.  Returns op->res. */
int corio__op_run(corio__op *op);

/* Start op with no task parked on it (multishot ops, parked connections):
 * its completions call op->done.  The only place besides corio__op_run and
 * corio__op_cancel that moves op->state.  Returns 1 if the op completed at
 * once (op->res holds the result, state DONE, no callback is made), 0 if it
 * is pending.  op must not be pending already. */
int corio__op_start(corio_loop *l, corio__op *op);

/* Ask a pending op started with corio__op_start to end early; its final
 * completion still arrives through op->done.  Does nothing unless the op is
 * pending and not already being cancelled, so it is safe to call twice. */
void corio__op_cancel(corio_loop *l, corio__op *op);

/* ------------------------------------------------------------------ */
/* Loop                                                                */
/* ------------------------------------------------------------------ */

/* The loop thread's SIGPIPE while corio_run runs (src/core/sigpipe.c). */
typedef struct corio__sigpipe_state {
    bool was_blocked; /* in the caller's mask already: leave it blocked */
    bool was_pending; /* the caller's own, pending at the start: never consume it */
} corio__sigpipe_state;

/* Block SIGPIPE in this thread, remembering how the caller had it. */
void corio__sigpipe_block(corio__sigpipe_state *st);
/* Consume a SIGPIPE corio's writes left pending (unless the caller had one
 * pending before), then give SIGPIPE back its place in the caller's mask. */
void corio__sigpipe_restore(const corio__sigpipe_state *st);

typedef struct corio__heap {
    corio__timer **items;
    uint32_t len, cap;
} corio__heap;

struct corio_loop {
    const corio__backend_ops *backend;
    void *backend_data;
    unsigned caps;                       /* CORIO__CAP_* of the backend, set by its init */
    uint64_t now;                        /* cached monotonic ns, refreshed each turn */
    corio_task *ready_head, *ready_tail; /* spawned, yielded, woken by another task */
    corio_task *woken_head, *woken_tail; /* woken by a harvest, or by those tasks: run first (loop.c) */
    unsigned woken_len;
    bool to_woken; /* harvesting or running woken_*: what is made ready joins woken_* */
    /* Task runs left before run_ready must end its current phase (the
     * woken tasks, then the rest): a direct switch from task to task
     * (task.c, switch_out) spends it like a run by the loop, so the loop
     * still polls at least as often.  0 outside run_ready. */
    unsigned run_budget;
    corio_task *current;  /* running task, NULL on the scheduler */
    corio__ctx sched_ctx; /* the loop's own context (thread stack) */
    void *sched_asan_fake_stack;
    void *sched_tsan_fiber; /* TSan's fiber of the thread running the loop (NULL without TSan) */
    const void *sched_stack_bottom;
    size_t sched_stack_size;
    corio__heap timers;
    corio__list live_tasks;
    uint64_t spawn_seq;   /* tasks spawned so far (end-of-run cancellation) */
    uint64_t end_seq;     /* tasks ended so far (corio_task.end_seq: the order they ended) */
    corio__list unjoined; /* finished tasks whose handle was neither joined nor detached yet */
    corio__list remotes;  /* tasks started here by corio_loop_ref_spawn, still running (remote.c) */
    unsigned live_count;
    unsigned external_pending; /* waits completed from outside the backend (thread pool) */
    corio__stack_pool *stacks;
    size_t stack_size;
    corio_task *main_task;
    corio_task *task_cache; /* freed task structs kept for reuse */
    unsigned task_cache_len;
    struct corio__threadpool *pool;
    struct corio_loop_ref
        *ref; /* cross-thread handle and call queue (src/core/loop_ref.c), NULL until asked for */
    const corio_config *cfg;
    corio__sigpipe_state sigpipe; /* the caller's SIGPIPE, given back when the run ends */
    /* Introspection and debug mode (introspect.c, debug.c). */
    struct corio__dump_req *dump; /* set while a task dump resumes a task for its backtrace */
    bool debug;                   /* corio_config.debug / CORIO_DEBUG resolved */
    bool dump_on_signal;          /* this loop owns the dump signal */
    /* Signal watches and handlers (src/io/signal.c): its per-loop state,
     * and the hook corio_run calls once every task has ended, which gives
     * the signals back and orphans the watches left open.  NULL until a
     * task asks for a signal. */
    struct corio__signals *signals;
    void (*signals_end)(corio_loop *l);
    uint64_t slow_step_ns; /* debug: a task step longer than this is reported */
    /* Remote wake-ups (src/core/remote_wake.c), written by other threads:
     * kept apart from the fields above, which only the loop thread uses. */
    _Alignas(64) _Atomic(struct corio__rwake *) rwake_inbox; /* posted, not yet woken (newest first) */
    atomic_uint rwake_posting; /* threads inside corio__rwake_post for this loop */
};

/* The loop running on this thread, or NULL. */
corio_loop *corio__loop(void);

/* Introspection (src/core/introspect.c).
 *  - dump_serve: called by a task's context when it is resumed with
 *    l->dump set (switch_out checks, one predictable branch): it
 *    records its own backtrace for the dump and switches straight back to
 *    the dumper, until l->dump is clear again; the task's state is
 *    untouched.
 *  - dump_signal_poll: once per loop turn while l->dump_on_signal: writes
 *    the dump to stderr if the signal came.
 *  - dump_signal_off: at loop end; gives the signal its old handler back.
 *  - format_site: "module(function+0xoff) [0xaddr]" for a code address
 *    into buf (always NUL-terminated); returns the length. */
void corio__dump_serve(corio_loop *l, corio_task *t);
void corio__dump_signal_poll(corio_loop *l);
void corio__dump_signal_off(corio_loop *l);
size_t corio__format_site(char *buf, size_t n, const void *addr);

/* Debug mode (src/core/debug.c).
 *  - init: resolve corio_config.debug / slow_step_ms and the environment.
 *  - step: resume t as corio__task_resume does, timing the step.
 *  - unjoined: report t, whose handle was never joined or detached, at
 *    the loop's end. */
void corio__debug_init(corio_loop *l, const corio_config *cfg);
void corio__debug_step(corio_loop *l, corio_task *t);
void corio__debug_unjoined(corio_loop *l, corio_task *t);

/* One owner per signal number, process-wide (src/core/sigclaim.c): whoever
 * installs a handler for a signal claims it first (owner: any non-NULL
 * token) and unclaims it once the previous disposition is back.  claim
 * returns false if the signal is someone else's (or out of range). */
bool corio__signal_claim(int signo, const void *owner);
void corio__signal_unclaim(int signo);

/* The fd a task parked in corio__op_run waits on, or -1 (src/core/op.c). */
int corio__op_wait_fd(const corio_task *t);

/* What corio__loop() returns (src/core/task.c), read directly only by the
 * inline accessors here: the fast paths of locks and semaphores take a
 * free one in a few instructions, with no call to find the running task. */
extern CORIO__HOT_TLS corio_loop *corio__tls_loop;

/* Take the first task off a run queue (woken_* or ready_*), not empty. */
static inline corio_task *corio__runq_pop(corio_task **head, corio_task **tail)
{
    corio_task *t = *head;
    *head = t->next_ready;
    if (!*head)
        *tail = NULL;
    return t;
}

static inline corio_task *corio__current_task(void)
{
    corio_loop *l = corio__tls_loop;
    return l ? l->current : NULL;
}

/* corio__check() for the running task t (not NULL), inline where nothing
 * is pending: it defers to corio__check() whenever t is cancelled or has a
 * deadline, so it must only be kept in step with the flags and fields
 * corio__check() looks at (CORIO__T_CANCELLED, t->deadline). */
static inline int corio__check_task(const corio_task *t)
{
    if (CORIO__LIKELY(!(t->flags & CORIO__T_CANCELLED) && t->deadline == CORIO__NO_DEADLINE))
        return 0;
    return corio__check();
}

/* True if l's backend has every capability in caps (CORIO__CAP_*). */
static inline bool corio__loop_can(const corio_loop *l, unsigned caps) { return (l->caps & caps) == caps; }

/* The provided-buffer ring, for owners of RECV_MULTI ops; only with
 * CORIO__CAP_MULTISHOT.  Loop thread only; none of them suspends.
 *  - bufring_get: make sure the ring exists (it is also created by the first
 *    RECV_MULTI).  Returns 0 or -errno (-ENOMEM, the kernel's refusal);
 *    idempotent, and after a failure other than -ENOMEM it keeps returning
 *    that error.
 *  - buf: the address of buffer id (ids come from op->buf_id).
 *  - buf_size: the size of every buffer (the most one completion delivers).
 *  - buf_put: give buffer id back; its memory must not be touched after.
 *    Each id is put exactly once per completion that delivered it.  Costs
 *    no system call: returned buffers are published at the next poll. */
static inline int corio__bufring_get(corio_loop *l)
{
    return corio__loop_can(l, CORIO__CAP_MULTISHOT) ? l->backend->bufring_get(l) : -EOPNOTSUPP;
}
static inline void *corio__buf(corio_loop *l, uint16_t id) { return l->backend->buf_addr(l, id); }
static inline size_t corio__buf_size(corio_loop *l) { return l->backend->buf_size(l); }
static inline void corio__buf_put(corio_loop *l, uint16_t id) { l->backend->buf_put(l, id); }

/* Monotonic clock in ns (not cached): the sim backend's virtual clock
 * while a sim run is on this thread. */
uint64_t corio__clock_ns(void);

/* Set by the sim backend for its run's thread: where its virtual now is
 * (NULL: the real clock).  Read by corio__clock_ns. */
extern __thread const uint64_t *corio__virtual_clock;

/* Make fd non-blocking and close-on-exec.  Returns 0 or -errno. */
int corio__set_nonblock(int fd);

/* Add 1 to the eventfd fd, for a backend's notify(): async-signal safe,
 * errno preserved.  The caller has already claimed "a wake-up is on its
 * way" (its notified flag), so the write must not be lost: it is retried
 * on every error but those that mean the counter already wakes the reader
 * (EAGAIN: full) or that retrying cannot mend (EBADF, EINVAL). */
void corio__eventfd_kick(int fd);

/* Close fd, letting the backend forget it first. */
void corio__close_fd(corio_loop *l, int fd);

/* Called by a backend when notify() woke it: the loop runs work handed
 * over by other threads (thread-pool completions). */
void corio__loop_on_notify(corio_loop *l);

/* Thread pool hooks the loop calls (src/core/threadpool.c). */
void corio__pool_drain(corio_loop *l);
void corio__pool_shutdown(corio_loop *l);

/* Loop references and corio_loop_ref_call_soon (src/core/loop_ref.c); all
 * loop thread only, and cheap no-ops while l->ref is NULL.
 *  - drain: from corio__loop_on_notify; hands queued calls to the task
 *    that runs them (spawned when none is running).
 *  - busy: true while calls are queued, or another thread holds a
 *    reference to the still-open loop: a call may yet arrive, so the loop
 *    is not stalled.
 *  - close: when the loop is about to end (main returned, no task left);
 *    rejects further calls (-ESHUTDOWN) and returns true if none was
 *    queued, else starts the queued ones and returns false (the loop runs
 *    them, then calls close again).
 *  - shutdown: at corio_run's end, before the backend is destroyed; closes
 *    the queue (dropping calls left only after a stall or a fatal backend
 *    error) and drops the loop's own reference. */
void corio__loop_ref_drain(corio_loop *l);
bool corio__loop_ref_busy(corio_loop *l);
bool corio__loop_ref_close(corio_loop *l);
void corio__loop_ref_shutdown(corio_loop *l);
/* corio_loop_ref_get for a holder that is not a reason to keep the loop
 * waiting (src/core/workers.c: a group holds every worker's loop for its
 * whole life): the stall detector ignores it.  Release it with
 * corio__loop_ref_release_weak. */
corio_loop_ref *corio__loop_ref_get_weak(void);
void corio__loop_ref_release_weak(corio_loop_ref *ref);
/* Any thread.  post: corio_loop_ref_call_soon, and if the call is accepted
 * but can never run (the loop stopped without its normal end: a stall, a
 * fatal backend error), drop(arg) is called instead (may be NULL), on the
 * loop's thread, with no lock held.  hold: one more reference for the
 * caller, who already holds one (give it back with
 * corio_loop_ref_release).  is_current: whether ref's loop is the one
 * running on this thread. */
int corio__loop_ref_post(corio_loop_ref *ref, void (*fn)(void *arg), void (*drop)(void *arg), void *arg);
void corio__loop_ref_hold(corio_loop_ref *ref);
bool corio__loop_ref_is_current(corio_loop_ref *ref);

/* Tasks started by corio_loop_ref_spawn (src/core/remote.c), loop thread.
 * loop_end: the loop stopped with err (< 0: a stall, a fatal backend
 * error) and its tasks are about to be discarded: every remote task still
 * running on it ends with err for its joiner. */
void corio__remote_loop_end(corio_loop *l, int err);

/* ------------------------------------------------------------------ */
/* Remote wake-ups: ending a task's wait from another thread           */
/* ------------------------------------------------------------------ */

/* A task parked on an object other threads use (src/core/channel.c) is
 * woken by whichever thread completes its wait, through a node the waiting
 * task owns (usually on its stack, inside its waiter record).  src/core/
 * remote_wake.c.  The protocol, for an object's author:
 *  - Loop thread, before parking: corio__rwake_arm(w).  From then on the
 *    wait counts as external for the stall detector (another thread may
 *    end it), until it ends.
 *  - Exactly one party ends the wait, decided under the object's own lock
 *    (typically: whoever unlinks the waiter first):
 *     - another thread (or the same one): corio__rwake_post(w, r) wakes
 *       the task with r on its loop.  The poster must not touch w after the
 *       call starts, and the task must stay parked until the wake-up
 *       arrives, interrupts included: the interrupt hook, finding the wait
 *       already claimed, simply returns (the post is on its way, so the
 *       hook's "must lead to a wake" holds).
 *     - the loop thread itself (the interrupt hook won the race):
 *       corio__rwake_end(w, r) uncounts the wait and wakes the task now.
 *  - The loop never touches w after it has woken the task, and keeps
 *    itself alive until every post for it has finished (shutdown).
 * Posting costs no system call when the loop already has a wake-up on its
 * way (the inbox was not empty), and none at all on the loop's own
 * thread. */
typedef struct corio__rwake {
    struct corio__rwake *next; /* the loop's inbox */
    corio_task *task;
    int result;
} corio__rwake;

/* Loop thread: the running task is about to park waiting for w. */
void corio__rwake_arm(corio__rwake *w);
/* Any thread: end w's wait with r (see above). */
void corio__rwake_post(corio__rwake *w, int r);
/* Loop thread: end w's wait with r now, without a post. */
void corio__rwake_end(corio__rwake *w, int r);
/* Loop thread: wake the tasks whose posts arrived (corio__loop_on_notify). */
void corio__rwake_drain(corio_loop *l);
/* At corio_run's end, before the backend is destroyed: wait until no
 * thread is still inside corio__rwake_post for l (a few instructions). */
void corio__rwake_shutdown(corio_loop *l);

/* The library's allocations.  Plain libc: fail injection wraps malloc,
 * calloc and realloc themselves, with every system call, in the test
 * builds only (tests/failinject.c). */
static inline void *corio__malloc(size_t n) { return malloc(n); }
static inline void *corio__calloc(size_t n, size_t m) { return calloc(n, m); }
static inline void *corio__realloc(void *p, size_t n) { return realloc(p, n); }
static inline void corio__free(void *p) { free(p); }

#endif
