/*
 * Context switch for x86-64 (System V ABI).
 *
 * A suspended context is nothing but a stack pointer: corio__ctx_switch
 * pushes the registers the ABI makes callee-saved (rbx, rbp, r12-r15) and the
 * two FP control words (MXCSR and the x87 control word, also callee-saved
 * per the ABI) on the current stack, stores rsp into *from, loads to->sp and
 * pops the same frame off the other stack.  Caller-saved registers need no
 * saving because the switch is an ordinary function call to the compiler.
 * No signal mask is touched (that is what makes swapcontext slow: it does a
 * sigprocmask system call every time).
 *
 * Frame left on a suspended stack, from the saved sp upward:
 *     [sp+0]  MXCSR (4 bytes) | x87 CW (2 bytes) | pad
 *     [sp+8]  r15  [sp+16] r14  [sp+24] r13  [sp+32] r12
 *     [sp+40] rbx  [sp+48] rbp  [sp+56] return address
 * corio__ctx_make (ctx.c) builds the same frame by hand with the return
 * address pointing at corio__ctx_trampoline, entry in r12 and arg in r13.
 */

#if defined(__CET__)
#define CORIO_ENDBR endbr64
#else
#define CORIO_ENDBR
#endif

/* Empty when the portable ucontext switch is forced (ctx.c has it). */
#if !defined(CORIO_FORCE_UCONTEXT)

    .text

/* Everything but the resume: save this context, load the other. */
.macro CORIO_SWITCH_BODY
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    /* The control words are loaded unconditionally: a compare-and-skip
     * was measured slower here (the compare reloads what stmxcsr/fnstcw
     * just stored, and adds a branch). */
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
.endm

/* void corio__ctx_switch(corio__ctx *from, corio__ctx *to)   rdi, rsi */
    .globl corio__ctx_switch
    .hidden corio__ctx_switch
    .type corio__ctx_switch, @function
    .p2align 4
corio__ctx_switch:
    .cfi_startproc
    CORIO_ENDBR
    CORIO_SWITCH_BODY
    /* Resume with an indirect jump, not ret: the return-stack predictor
     * always guesses the caller of *this* switch, which is wrong every
     * time, while the branch target predictor learns that tasks resume at
     * the same few places (measured ~10.5 ns -> ~4.5 ns per switch).  rcx
     * is caller-saved, so it is free here.  This is also why the file
     * carries no IBT/SHSTK property note: with CET enforced, the jump would
     * need endbr64 at every resume point and the shadow stack would reject
     * the stack swap. */
    popq %rcx
    jmpq *%rcx
    .cfi_endproc
    .size corio__ctx_switch, .-corio__ctx_switch

/* void corio__ctx_switch_ret(corio__ctx *from, corio__ctx *to)
 * The same switch resumed with ret (arch.h says when to use which): the
 * return-stack predictor guesses the caller of this switch, right when
 * `to` was suspended by a call from the same place, and the predictor
 * stays in step for the returns that follow, where the indirect jump
 * leaves one entry too many and every return up the resumed task's call
 * chain is guessed wrong. */
    .globl corio__ctx_switch_ret
    .hidden corio__ctx_switch_ret
    .type corio__ctx_switch_ret, @function
    .p2align 4
corio__ctx_switch_ret:
    .cfi_startproc
    CORIO_ENDBR
    CORIO_SWITCH_BODY
    ret
    .cfi_endproc
    .size corio__ctx_switch_ret, .-corio__ctx_switch_ret

/* First code a new context runs: the switch jumps here with rsp at the
 * 16-byte aligned stack top, so a call keeps the ABI alignment.  rbp is 0
 * (set by corio__ctx_make) and rip is marked undefined so debuggers and
 * unwinders stop here instead of walking off the stack. */
    .globl corio__ctx_trampoline
    .hidden corio__ctx_trampoline
    .type corio__ctx_trampoline, @function
    .p2align 4
corio__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    CORIO_ENDBR
    movq %r13, %rdi
    callq *%r12
    /* entry must never return: there is no frame to return to. */
    callq abort@PLT
    ud2
    .cfi_endproc
    .size corio__ctx_trampoline, .-corio__ctx_trampoline

#endif

    .section .note.GNU-stack,"",@progbits
