/*
 * Creating execution contexts (and, without assembly, switching them).
 *
 * On x86-64 and aarch64 the switch itself is hand-written assembly
 * (switch_*.S); this file only lays out the first frame on a new stack so
 * that the first switch into it "returns" into corio__ctx_trampoline, which
 * calls entry(arg).  The frame layout must match the one documented in the
 * .S file of the same architecture.  Only the topmost bytes of the stack
 * are written, so a lazily mapped stack costs one committed page until the
 * task actually uses more.
 *
 * Elsewhere, or when CORIO_FORCE_UCONTEXT is defined, contexts are
 * ucontext_t and the switch is swapcontext(): portable and correct, but it
 * makes a sigprocmask system call per switch (roughly 20x slower).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "arch.h"

#include <stdlib.h>

#if CORIO_ARCH_ASM

/* Defined in switch_*.S. */
extern void corio__ctx_trampoline(void);

void corio__ctx_make(corio__ctx *ctx, void *stack_lo, size_t size, corio__entry_fn entry, void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* 8 words: control words, r15, r14, r13, r12, rbx, rbp, return address.
     * After the switch pops them rsp == top, 16-byte aligned, as the
     * trampoline's call needs. */
    uint64_t *f = (uint64_t *)(top - 64);
    uint32_t mxcsr;
    uint16_t fcw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fcw));
    f[0] = (uint64_t)mxcsr | ((uint64_t)fcw << 32);
    f[1] = 0;                          /* r15 */
    f[2] = 0;                          /* r14 */
    f[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    f[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    f[5] = 0;                          /* rbx */
    f[6] = 0;                          /* rbp: ends frame-pointer chains */
    f[7] = (uint64_t)(uintptr_t)corio__ctx_trampoline;
    ctx->sp = f;
#elif defined(__aarch64__)
    /* 22 words, see switch_aarch64.S; sp == top after the switch. */
    uint64_t *f = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    for (int i = 0; i < 22; i++)
        f[i] = 0;
    f[0] = (uint64_t)(uintptr_t)entry;                  /* x19 */
    f[1] = (uint64_t)(uintptr_t)arg;                    /* x20 */
    f[10] = 0;                                          /* x29: ends frame-pointer chains */
    f[11] = (uint64_t)(uintptr_t)corio__ctx_trampoline; /* x30 */
    f[20] = fpcr;
    ctx->sp = f;
#else
#error "CORIO_ARCH_ASM set for an architecture without a switch"
#endif
}

#else /* ucontext fallback */

/* makecontext passes only int arguments portably, so pointers travel as two
 * 32-bit halves. */
static void ctx_uc_trampoline(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo)
{
    corio__entry_fn entry = (corio__entry_fn)(uintptr_t)(((uint64_t)e_hi << 32) | e_lo);
    void *arg = (void *)(uintptr_t)(((uint64_t)a_hi << 32) | a_lo);
    entry(arg);
    abort();
}

void corio__ctx_make(corio__ctx *ctx, void *stack_lo, size_t size, corio__entry_fn entry, void *arg)
{
    uint64_t e = (uint64_t)(uintptr_t)entry, a = (uint64_t)(uintptr_t)arg;
    if (getcontext(&ctx->uc) != 0)
        abort(); /* cannot fail on Linux; nothing sensible to return */
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))ctx_uc_trampoline, 4, (unsigned)(e >> 32), (unsigned)e,
                (unsigned)(a >> 32), (unsigned)a);
}

void corio__ctx_switch(corio__ctx *from, corio__ctx *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort();
}

#endif
