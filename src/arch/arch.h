/*
 * arch/ — execution contexts and the stacks they run on.
 *
 * A context is the saved state of a suspended coroutine: on x86-64 and
 * aarch64 just a stack pointer (the callee-saved registers and FP control
 * words are pushed on the coroutine's own stack by the hand-written switch),
 * elsewhere a ucontext_t.  The core never looks inside.
 *
 * Stacks are mapped lazily (only touched pages cost memory), pooled and
 * reused.  While mappings are plentiful each stack gets a guard page below
 * it; past a budget derived from vm.max_map_count stacks are carved from
 * large slabs without guard pages and protected by a canary that is checked
 * whenever the task switches out.
 */
#ifndef CORIO_ARCH_H
#define CORIO_ARCH_H

#include <stddef.h>
#include <stdint.h>

/* CORIO_FORCE_UCONTEXT (cmake -DCORIO_UCONTEXT=ON) selects the portable
 * fallback even where assembly exists; every file that includes this header
 * must then be compiled with it, since it changes sizeof(corio__ctx). */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(CORIO_FORCE_UCONTEXT)
#define CORIO_ARCH_ASM 1
typedef struct corio__ctx {
    void *sp;
} corio__ctx;
#else
#include <ucontext.h>
#define CORIO_ARCH_ASM 0
typedef struct corio__ctx {
    ucontext_t uc;
} corio__ctx;
#endif

/* Entry point of a new context.  Must never return (it switches away for
 * the last time instead). */
typedef void (*corio__entry_fn)(void *arg);

/* Prepare ctx so that the first corio__ctx_switch into it calls
 * entry(arg) on the stack [stack_lo, stack_lo + size).  Only the top 64
 * (x86-64) / 176 (aarch64) bytes of the stack are written, so a fresh lazily
 * mapped stack commits one page.  The new context starts with the FP control
 * words (MXCSR/x87 CW, FPCR) of the caller.  Under ASan, entry must begin
 * with corio__asan_finish_switch(NULL, ...) (see below).  Never fails. */
void corio__ctx_make(corio__ctx *ctx, void *stack_lo, size_t size, corio__entry_fn entry, void *arg);

/* Save the current context into from and resume to.  Returns when some
 * later switch resumes from.  Saves only callee-saved registers and the FP
 * control words (the compiler treats the call as clobbering the rest); no
 * system call.  from and to may not be the same context. */
void corio__ctx_switch(corio__ctx *from, corio__ctx *to);

/* corio__ctx_switch, but resuming `to` with a return instead of an
 * indirect jump (x86-64; elsewhere, where the switch always returns, the
 * same function).  Use it where `to` was usually suspended by a call from
 * the same place as this call, e.g. tasks handing the CPU to each other
 * from one function: the return predictor then guesses the resume right
 * and stays in step for the returns that follow.  corio__ctx_switch is
 * better where the two places differ (a scheduler resuming tasks), since
 * its indirect jump is predicted by target.  Either may resume a context
 * the other suspended. */
#if CORIO_ARCH_ASM && defined(__x86_64__)
void corio__ctx_switch_ret(corio__ctx *from, corio__ctx *to);
#else
#define corio__ctx_switch_ret corio__ctx_switch
#endif

/* A task stack.  lo..hi is usable memory; the stack grows down from hi. */
typedef struct corio__stack {
    void *lo;
    size_t size;
    uint8_t kind; /* CORIO__STACK_GUARD or CORIO__STACK_CANARY */
    struct corio__stack *next_free;
    void *owner;          /* stack.c private: the canary slab, or NULL */
    unsigned valgrind_id; /* stack.c private: the stack as registered with valgrind */
} corio__stack;

enum { CORIO__STACK_GUARD = 1, CORIO__STACK_CANARY = 2 };

typedef struct corio__stack_pool corio__stack_pool;

/* The largest stack size accepted; beyond it every call taking a size fails
 * with EINVAL.  Far larger than any address space, and small enough that no
 * size computation in stack.c (rounding up to pages, a slab of 64 stacks
 * with their guard pages) can wrap around. */
#define CORIO__STACK_SIZE_MAX (SIZE_MAX / 128)

/* Create a pool handing out stacks of (at least) size bytes; max_free
 * stacks are kept for reuse.  NULL with errno ENOMEM, or EINVAL for a size
 * above CORIO__STACK_SIZE_MAX. */
corio__stack_pool *corio__stack_pool_new(size_t size, unsigned max_free);
void corio__stack_pool_free(corio__stack_pool *p);

/* Get a stack of the pool's size (size 0) or of a specific size.  Returns
 * NULL with errno set (ENOMEM, EAGAIN when the map count is exhausted,
 * EINVAL for a size above CORIO__STACK_SIZE_MAX). */
corio__stack *corio__stack_get(corio__stack_pool *p, size_t size);
void corio__stack_put(corio__stack_pool *p, corio__stack *s);

/* True if the canary of a canary-protected stack is intact (always true
 * for guard-page stacks).  Cheap (two loads); meant to be called each time
 * a task switches out.  The canary sits in the 16 bytes just below lo, so a
 * detected overflow has already scribbled on the top of the neighbouring
 * stack in the slab: treat a failure as fatal. */
int corio__stack_check(const corio__stack *s);

/* True if addr lies in the page just below s->lo: the guard page of a
 * guard-page stack (where an overflow faults), or for a canary stack the
 * zone an overflow runs into first.  Async-signal-safe. */
int corio__stack_in_guard(const corio__stack *s, const void *addr);

/* Test hook: set the process-wide limit on guard-page stacks (negative =
 * back to the default, vm.max_map_count / 8) and return the previous limit.
 * Setting 0 forces canary stacks from now on. */
long corio__stack_set_guard_limit(long max_guard_stacks);

/* Install (once per process) the SIGSEGV handler on an alternate signal
 * stack that reports a guard-page hit as a stack overflow naming the
 * current task, and set the alternate stack for this thread (idempotent;
 * call it from every thread that runs tasks, e.g. at each loop start; a
 * thread that already has an alternate stack keeps it).  The handler asks
 * corio__stack_owner_name(); if that says the address is in no task's
 * guard it hands the fault to the previously installed handler (or the
 * default action, so the fault re-raises and dumps core as usual). */
void corio__stack_overflow_handler_install(void);

/* The overflow handler calls this to find which task owns a faulting
 * address; the core provides it.  Returns the task name or NULL; if it
 * returns a name it sets *stack_size.  Runs inside a SIGSEGV handler, so it
 * must be async-signal-safe (no locks, no malloc): typically check the
 * current task's stack with corio__stack_in_guard(). */
const char *corio__stack_owner_name(void *fault_addr, size_t *stack_size);

/* AddressSanitizer fiber annotations; no-ops without ASan.  Protocol
 * around every corio__ctx_switch(from, to):
 *     corio__asan_start_switch(&from_fake, to_stack_lo, to_stack_size);
 *     corio__ctx_switch(from, to);
 *     corio__asan_finish_switch(from_fake, NULL, NULL);
 * A context leaving for the last time passes NULL instead of &from_fake (so
 * ASan frees its fake stack), and a new context's entry function starts with
 * corio__asan_finish_switch(NULL, &prev_bottom, &prev_size), which also tells
 * it the bounds of the stack it came from (for the loop's context, whose
 * bounds are otherwise unknown; NULL, NULL when they are not needed).  The
 * entry function's frame is never left, so it must not hold locals whose
 * address is taken: their redzones would stay poisoned for the next
 * context made on the same stack. */
#if defined(__SANITIZE_ADDRESS__)
#define CORIO__ASAN_ON 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO__ASAN_ON 1
#endif
#endif
#ifdef CORIO__ASAN_ON
void corio__asan_start_switch(void **fake_stack_save, const void *bottom, size_t size);
void corio__asan_finish_switch(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#else
/* Inline no-ops, so a task-to-task switch does not even load the
 * arguments. */
static inline void corio__asan_start_switch(void **fake_stack_save, const void *bottom, size_t size)
{
    (void)fake_stack_save;
    (void)bottom;
    (void)size;
}
static inline void corio__asan_finish_switch(void *fake_stack_save, const void **bottom_old, size_t *size_old)
{
    (void)fake_stack_save;
    (void)bottom_old;
    (void)size_old;
}
#endif

/* ThreadSanitizer fiber annotations (tsan.c); no-ops returning NULL
 * without TSan.  Every context has a fiber: the one a thread starts on is
 * corio__tsan_fiber_current() (taken before the first switch away from
 * it), every context made with corio__ctx_make gets
 * corio__tsan_fiber_create(name) when it is made.  Immediately before
 * every corio__ctx_switch(from, to) (after corio__asan_start_switch):
 *     corio__tsan_fiber_switch(fiber_of_to);
 * A task's context leaving for another uses corio__tsan_fiber_leave(fiber)
 * instead, which also hands TSan's held signals over (see "Signals under
 * TSan" below).
 * Nothing is needed after the switch.  Once a made context will never run
 * again, corio__tsan_fiber_destroy(its_fiber) from another context (never
 * from the fiber itself; NULL is ignored). */
#if defined(__SANITIZE_THREAD__)
#define CORIO__TSAN_ON 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO__TSAN_ON 1
#endif
#endif
#ifdef CORIO__TSAN_ON
void *corio__tsan_fiber_current(void);
void *corio__tsan_fiber_create(const char *name);
void corio__tsan_fiber_switch(void *to);
void corio__tsan_fiber_leave(void *to);
void corio__tsan_fiber_destroy(void *fiber);
#else
static inline void *corio__tsan_fiber_current(void) { return NULL; }
static inline void *corio__tsan_fiber_create(const char *name)
{
    (void)name;
    return NULL;
}
static inline void corio__tsan_fiber_switch(void *to) { (void)to; }
static inline void corio__tsan_fiber_leave(void *to) { (void)to; }
static inline void corio__tsan_fiber_destroy(void *fiber) { (void)fiber; }
#endif

/* A happens-before edge TSan cannot observe by itself (no-ops without
 * TSan): everything the caller of corio__tsan_release(addr) did before it
 * happens-before everything any later caller of corio__tsan_acquire(addr)
 * does after it.  addr is only a key.  For orderings the kernel provides
 * behind TSan's back; never a substitute for real synchronisation. */
#ifdef CORIO__TSAN_ON
void corio__tsan_release(void *addr);
void corio__tsan_acquire(void *addr);
#else
static inline void corio__tsan_release(void *addr) { (void)addr; }
static inline void corio__tsan_acquire(void *addr) { (void)addr; }
#endif

/* Signals under TSan.  TSan runs a process's signal handlers late: one
 * that arrives while the thread is outside an intercepted call waits until
 * the thread next enters one.  A loop that blocks in io_uring_enter (a raw
 * system call TSan does not intercept) may never make such a call, and
 * then a signal meant to wake it (corio's handler kicks the loop's
 * eventfd) is held forever.  TSan also holds signals per fiber, so one
 * that arrived while a task ran waits until that task runs again.
 * corio__tsan_fiber_leave() closes that gap for a task leaving its fiber
 * (src/arch/tsan.c).  corio__tsan_run_signals() makes one intercepted call
 * so that TSan delivers what it holds, and a wait that
 * TSan cannot see into is capped at CORIO__TSAN_MAX_WAIT_NS so a signal
 * arriving just before it is delivered within that bound.  No-ops without
 * TSan. */
#ifdef CORIO__TSAN_ON
void corio__tsan_run_signals(void);
#define CORIO__TSAN_MAX_WAIT_NS 10000000u /* 10 ms */
#else
static inline void corio__tsan_run_signals(void) {}
#define CORIO__TSAN_MAX_WAIT_NS UINT64_MAX
#endif

#endif
