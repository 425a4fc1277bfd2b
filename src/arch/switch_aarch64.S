/*
 * Context switch for AArch64 (AAPCS64).
 *
 * As on x86-64 a suspended context is just its stack pointer.  The switch
 * saves the callee-saved general registers x19-x28, the frame pointer x29,
 * the link register x30 (the resume address), the callee-saved low halves
 * of v8-v15 (d8-d15) and FPCR on the current stack, swaps sp and restores
 * the same frame from the other stack.  FPCR (rounding mode, flush-to-zero)
 * is kept per context so a coroutine that changes its rounding mode cannot
 * leak it into others; writing FPCR can be slow on some cores, so it is only
 * written when the incoming value differs.  No signal mask is touched.
 *
 * Frame on a suspended stack (176 bytes, keeps sp 16-byte aligned):
 *     [sp+0]   x19 x20   [sp+16] x21 x22   [sp+32] x23 x24
 *     [sp+48]  x25 x26   [sp+64] x27 x28   [sp+80] x29 x30
 *     [sp+96]  d8  d9    [sp+112] d10 d11  [sp+128] d12 d13
 *     [sp+144] d14 d15   [sp+160] fpcr, pad
 * corio__ctx_make (ctx.c) builds the same frame with x30 pointing at
 * corio__ctx_trampoline, entry in x19 and arg in x20.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT)
#define CORIO_BTI_C hint #34
#else
#define CORIO_BTI_C
#endif

/* Empty when the portable ucontext switch is forced (ctx.c has it). */
#if !defined(CORIO_FORCE_UCONTEXT)

    .text

/* void corio__ctx_switch(corio__ctx *from, corio__ctx *to)   x0, x1 */
    .globl corio__ctx_switch
    .hidden corio__ctx_switch
    .type corio__ctx_switch, %function
    .p2align 4
corio__ctx_switch:
    .cfi_startproc
    CORIO_BTI_C
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x10, fpcr
    str x10, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldr x9, [sp, #160]
    cmp x9, x10
    b.eq 1f
    msr fpcr, x9
1:
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .cfi_endproc
    .size corio__ctx_switch, .-corio__ctx_switch

/* First code a new context runs (reached by the switch's ret through x30,
 * with sp at the aligned stack top).  x29 is 0 and x30 is marked undefined
 * so frame walkers and unwinders stop here. */
    .globl corio__ctx_trampoline
    .hidden corio__ctx_trampoline
    .type corio__ctx_trampoline, %function
    .p2align 4
corio__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    CORIO_BTI_C
    mov x0, x20
    blr x19
    /* entry must never return: there is no frame to return to. */
    bl abort
    brk #1
    .cfi_endproc
    .size corio__ctx_trampoline, .-corio__ctx_trampoline

#endif

    .section .note.GNU-stack,"",%progbits
