/*
 * Standalone self-test of the arch layer (src/arch): context switching,
 * FP control word preservation, the stack pool, canaries and guard-page
 * overflow reports.  It links only the src/arch C files and the switch assembly,
 * so it runs before the rest of corio exists and cross-compiles for
 * aarch64 (tests/run_aarch64.sh runs it under qemu).  It provides its own
 * corio__stack_owner_name() (the core's in the real library) backed by a
 * small registry of named test stacks.  Exit status 0 = all checks passed.
 *
 *   cc -O2 -I src tests/arch_selftest.c src/arch/ctx.c src/arch/stack.c src/arch/asan.c src/arch/tsan.c \
 *      src/arch/switch_x86_64.S -lpthread
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "arch/arch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

static int failures;
#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                            \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* ---- owner registry (stands in for the core) --------------------------- */

static struct {
    const corio__stack *s;
    const char *name;
} owners[8];
static int nowners;

const char *corio__stack_owner_name(void *fault_addr, size_t *stack_size)
{
    for (int i = 0; i < nowners; i++)
        if (corio__stack_in_guard(owners[i].s, fault_addr)) {
            *stack_size = owners[i].s->size;
            return owners[i].name;
        }
    return NULL;
}

/* ---- coroutines with ASan and TSan annotations ------------------------ */

typedef struct co {
    corio__ctx ctx;
    corio__stack *st;
    void *fake;
    void *fiber; /* TSan's, NULL without TSan */
    long id;
    long counter;
    void (*body)(struct co *);
    int done;
} co;

static corio__ctx main_ctx;
static void *main_fake;
static void *main_fiber; /* TSan's fiber of the thread that resumes the coroutines */
static const void *main_bottom;
static size_t main_size;

static void resume(co *c)
{
    corio__asan_start_switch(&main_fake, c->st->lo, c->st->size);
    corio__tsan_fiber_switch(c->fiber);
    corio__ctx_switch(&main_ctx, &c->ctx);
    corio__asan_finish_switch(main_fake, NULL, NULL);
}

static void yield_to_main(co *c)
{
    corio__asan_start_switch(&c->fake, main_bottom, main_size);
    corio__tsan_fiber_switch(main_fiber);
    corio__ctx_switch(&c->ctx, &main_ctx);
    corio__asan_finish_switch(c->fake, NULL, NULL);
}

static void co_entry(void *arg)
{
    co *c = arg;
    corio__asan_finish_switch(NULL, &main_bottom, &main_size);
    c->body(c);
    c->done = 1;
    /* Leave for good: NULL lets ASan drop this context's fake stack. */
    corio__asan_start_switch(NULL, main_bottom, main_size);
    corio__tsan_fiber_switch(main_fiber);
    corio__ctx_switch(&c->ctx, &main_ctx);
    abort();
}

static void co_start(co *c, corio__stack *st, void (*body)(co *), long id)
{
    memset(c, 0, sizeof *c);
    c->st = st;
    c->body = body;
    c->id = id;
    corio__ctx_make(&c->ctx, st->lo, st->size, co_entry, c);
    c->fiber = corio__tsan_fiber_create("co");
}

/* c will never be resumed again (done or abandoned): give back its stack
 * and drop its TSan fiber (from main's fiber, never its own). */
static void co_end(co *c, corio__stack_pool *p)
{
    corio__tsan_fiber_destroy(c->fiber);
    c->fiber = NULL;
    corio__stack_put(p, c->st);
}

/* ---- 1. ping-pong ------------------------------------------------------ */

static long shared_step;

static void pingpong_body(co *c)
{
    for (long i = 0; i < 100000; i++) {
        if (shared_step != 2 * i)
            return; /* main sees done early and fails */
        shared_step++;
        c->counter++;
        yield_to_main(c);
    }
}

static void test_pingpong(corio__stack_pool *p)
{
    corio__stack *st = corio__stack_get(p, 0);
    CHECK(st != NULL);
    co c;
    co_start(&c, st, pingpong_body, 1);
    for (long i = 0; i < 100000; i++) {
        resume(&c);
        CHECK(!c.done);
        CHECK(shared_step == 2 * i + 1);
        if (failures)
            break;
        shared_step++;
    }
    resume(&c); /* body returns, co_entry switches back for the last time */
    CHECK(c.done);
    CHECK(c.counter == 100000);
    co_end(&c, p);
}

/* ---- 2. callee-saved registers ----------------------------------------- */

/* regcheck(from, to, out): load known values into every callee-saved
 * register, switch away, and on return store what the registers hold into
 * out.  Written in assembly so the compiler cannot keep the values
 * elsewhere. */
#if CORIO_ARCH_ASM && defined(__x86_64__)
#define NREGS 6
__asm__(".text\n"
        ".globl regcheck_asm\n"
        ".type regcheck_asm,@function\n"
        "regcheck_asm:\n"
        "  pushq %rbp\n pushq %rbx\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
        "  pushq %rdx\n"
        "  movabsq $0x1111111111111111, %rbx\n"
        "  movabsq $0x2222222222222222, %rbp\n"
        "  movabsq $0x3333333333333333, %r12\n"
        "  movabsq $0x4444444444444444, %r13\n"
        "  movabsq $0x5555555555555555, %r14\n"
        "  movabsq $0x6666666666666666, %r15\n"
        "  call corio__ctx_switch\n"
        "  popq %rdx\n"
        "  movq %rbx, 0(%rdx)\n movq %rbp, 8(%rdx)\n movq %r12, 16(%rdx)\n"
        "  movq %r13, 24(%rdx)\n movq %r14, 32(%rdx)\n movq %r15, 40(%rdx)\n"
        "  popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rbx\n popq %rbp\n"
        "  ret\n"
        ".size regcheck_asm, .-regcheck_asm\n");
static const uint64_t reg_expect[NREGS] = {0x1111111111111111ull, 0x2222222222222222ull,
                                           0x3333333333333333ull, 0x4444444444444444ull,
                                           0x5555555555555555ull, 0x6666666666666666ull};
#define CLOBBER_REGS()                                                                                       \
    __asm__ volatile("movq $-1, %%rbx\n movq $-1, %%r12\n movq $-1, %%r13\n movq $-1, %%r14\n"               \
                     "movq $-1, %%r15\n" ::                                                                  \
                         : "rbx", "r12", "r13", "r14", "r15")
#elif CORIO_ARCH_ASM && defined(__aarch64__)
#define NREGS 18
__asm__(".text\n"
        ".globl regcheck_asm\n"
        ".type regcheck_asm,%function\n"
        "regcheck_asm:\n"
        "  stp x29, x30, [sp, #-176]!\n"
        "  stp x19, x20, [sp, #16]\n stp x21, x22, [sp, #32]\n stp x23, x24, [sp, #48]\n"
        "  stp x25, x26, [sp, #64]\n stp x27, x28, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n stp d10, d11, [sp, #112]\n stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n str x2, [sp, #160]\n"
        "  mov x19, #19\n mov x20, #20\n mov x21, #21\n mov x22, #22\n mov x23, #23\n"
        "  mov x24, #24\n mov x25, #25\n mov x26, #26\n mov x27, #27\n mov x28, #28\n"
        "  fmov d8, #1.0\n fmov d9, #2.0\n fmov d10, #3.0\n fmov d11, #4.0\n"
        "  fmov d12, #5.0\n fmov d13, #6.0\n fmov d14, #7.0\n fmov d15, #8.0\n"
        "  bl corio__ctx_switch\n"
        "  ldr x2, [sp, #160]\n"
        "  stp x19, x20, [x2, #0]\n stp x21, x22, [x2, #16]\n stp x23, x24, [x2, #32]\n"
        "  stp x25, x26, [x2, #48]\n stp x27, x28, [x2, #64]\n"
        "  stp d8, d9, [x2, #80]\n stp d10, d11, [x2, #96]\n stp d12, d13, [x2, #112]\n"
        "  stp d14, d15, [x2, #128]\n"
        "  ldp x19, x20, [sp, #16]\n ldp x21, x22, [sp, #32]\n ldp x23, x24, [sp, #48]\n"
        "  ldp x25, x26, [sp, #64]\n ldp x27, x28, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n ldp d10, d11, [sp, #112]\n ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  ldp x29, x30, [sp], #176\n"
        "  ret\n"
        ".size regcheck_asm, .-regcheck_asm\n");
static uint64_t reg_expect[NREGS];
static void reg_expect_init(void)
{
    for (int i = 0; i < 10; i++)
        reg_expect[i] = (uint64_t)(19 + i);
    for (int i = 0; i < 8; i++) {
        double d = 1.0 + i;
        memcpy(&reg_expect[10 + i], &d, 8);
    }
}
#define CLOBBER_REGS()                                                                                       \
    __asm__ volatile("mov x19, #-1\n mov x20, #-1\n mov x21, #-1\n mov x22, #-1\n mov x23, #-1\n"            \
                     "mov x24, #-1\n mov x25, #-1\n mov x26, #-1\n mov x27, #-1\n mov x28, #-1\n"            \
                     "fmov d8, #-2.0\n fmov d9, #-2.0\n fmov d10, #-2.0\n fmov d11, #-2.0\n"                 \
                     "fmov d12, #-2.0\n fmov d13, #-2.0\n fmov d14, #-2.0\n fmov d15, #-2.0\n" ::            \
                         : "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "d8", "d9", \
                           "d10", "d11", "d12", "d13", "d14", "d15")
#endif

#ifdef NREGS
void regcheck_asm(corio__ctx *from, corio__ctx *to, uint64_t *out);

static void clobber_body(co *c)
{
    for (;;) {
        CLOBBER_REGS();
        c->counter++;
        yield_to_main(c);
    }
}

static void test_registers(corio__stack_pool *p)
{
#if defined(__aarch64__)
    reg_expect_init();
#endif
    corio__stack *st = corio__stack_get(p, 0);
    co c;
    co_start(&c, st, clobber_body, 2);
    for (int round = 0; round < 3; round++) {
        uint64_t out[NREGS];
        memset(out, 0, sizeof out);
        corio__asan_start_switch(&main_fake, c.st->lo, c.st->size);
        corio__tsan_fiber_switch(c.fiber);
        regcheck_asm(&main_ctx, &c.ctx, out);
        corio__asan_finish_switch(main_fake, NULL, NULL);
        for (int i = 0; i < NREGS; i++) {
            if (out[i] != reg_expect[i])
                fprintf(stderr, "register slot %d: got %#llx want %#llx\n", i, (unsigned long long)out[i],
                        (unsigned long long)reg_expect[i]);
            CHECK(out[i] == reg_expect[i]);
        }
    }
    CHECK(c.counter == 3);
    /* The coroutine is abandoned mid-body; its stack just goes back. */
    co_end(&c, p);
}
#else
static void test_registers(corio__stack_pool *p) { (void)p; }
#endif

/* ---- 3. FP control words ------------------------------------------------ */

#if defined(__x86_64__)
static uint64_t fpenv_get(void)
{
    uint32_t mx;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return mx | (uint64_t)cw << 32;
}
static void fpenv_set(uint64_t v)
{
    uint32_t mx = (uint32_t)v;
    uint16_t cw = (uint16_t)(v >> 32);
    __asm__ volatile("ldmxcsr %0" ::"m"(mx));
    __asm__ volatile("fldcw %0" ::"m"(cw));
}
/* Round toward zero / round down in both units, masks unchanged. */
#define FPENV_A(def) (((def) | 0x6000u) | ((uint64_t)0x0C00u << 32))
#define FPENV_B(def)                                                                                         \
    ((((def) & ~0x6000ull) | 0x2000u) | (((def) & ~(0x0C00ull << 32)) & (0xFFFFull << 32)) |                 \
     ((uint64_t)0x0400u << 32))
#elif defined(__aarch64__)
static uint64_t fpenv_get(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void fpenv_set(uint64_t v) { __asm__ volatile("msr fpcr, %0" ::"r"(v)); }
/* RMode (bits 23:22) = round toward zero, resp. toward minus infinity. */
#define FPENV_A(def) ((def) | (3ull << 22))
#define FPENV_B(def) (((def) & ~(3ull << 22)) | (2ull << 22))
#endif

#ifdef FPENV_A
static uint64_t fp_default;

static void fp_body(co *c)
{
    /* Started while main still had the default environment. */
    if (fpenv_get() != fp_default)
        c->counter = -100;
    fpenv_set(FPENV_B(fp_default));
    yield_to_main(c);
    if (fpenv_get() != FPENV_B(fp_default))
        c->counter = -200;
    fpenv_set(fp_default);
}

static void test_fpenv(corio__stack_pool *p)
{
    fp_default = fpenv_get();
    corio__stack *st = corio__stack_get(p, 0);
    co c;
    co_start(&c, st, fp_body, 3);
    fpenv_set(FPENV_A(fp_default));
    resume(&c);
    CHECK(fpenv_get() == FPENV_A(fp_default));
    resume(&c);
    CHECK(c.done);
    CHECK(c.counter == 0);
    CHECK(fpenv_get() == FPENV_A(fp_default));
    fpenv_set(fp_default);
    co_end(&c, p);
}
#else
static void test_fpenv(corio__stack_pool *p) { (void)p; }
#endif

/* ---- 4. many contexts ------------------------------------------------- */

#define MANY 3000
#define ROUNDS 5

static void many_body(co *c)
{
    /* Locals live on this context's own stack across every switch. */
    volatile long mine[16];
    for (int i = 0; i < 16; i++)
        mine[i] = c->id * 100 + i;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < 16; i++)
            if (mine[i] != c->id * 100 + i)
                return;
        c->counter++;
        yield_to_main(c);
    }
}

static void test_many(corio__stack_pool *p)
{
    /* Half guard stacks, half canary stacks. */
    long old = corio__stack_set_guard_limit(MANY / 2);
    co *cs = calloc(MANY, sizeof *cs);
    int nguard = 0;
    for (int i = 0; i < MANY; i++) {
        corio__stack *st = corio__stack_get(p, 0);
        CHECK(st != NULL);
        if (!st)
            return;
        nguard += st->kind == CORIO__STACK_GUARD;
        co_start(&cs[i], st, many_body, i);
    }
    CHECK(nguard > 0 && nguard <= MANY / 2);
    for (int r = 0; r <= ROUNDS; r++)
        for (int i = 0; i < MANY; i++)
            resume(&cs[i]);
    for (int i = 0; i < MANY; i++) {
        CHECK(cs[i].done && cs[i].counter == ROUNDS);
        CHECK(corio__stack_check(cs[i].st));
        co_end(&cs[i], p);
    }
    free(cs);
    corio__stack_set_guard_limit(old);
}

/* ---- 5. pool reuse ---------------------------------------------------- */

static void test_pool(void)
{
    corio__stack_pool *p = corio__stack_pool_new(64 * 1024, 2);
    CHECK(p != NULL);
    corio__stack *a = corio__stack_get(p, 0);
    CHECK(a && a->size >= 64 * 1024 && a->kind == CORIO__STACK_GUARD);
    CHECK(((uintptr_t)a->lo & 4095) == 0);
    /* Usable end to end. */
    memset(a->lo, 1, a->size);
    corio__stack_put(p, a);
    corio__stack *b = corio__stack_get(p, 0);
    CHECK(b == a);

    corio__stack *s[4];
    s[0] = b;
    for (int i = 1; i < 4; i++)
        s[i] = corio__stack_get(p, 0);
    for (int i = 0; i < 4; i++)
        corio__stack_put(p, s[i]);         /* keeps s[0], s[1]; unmaps the rest */
    CHECK(corio__stack_get(p, 0) == s[1]); /* LIFO */
    CHECK(corio__stack_get(p, 0) == s[0]);

    /* Sizes other than the pool's are cached too (the cache is empty now:
     * s[0] and s[1] are out). */
    corio__stack *big = corio__stack_get(p, 100000);
    CHECK(big && big->size >= 100000);
    corio__stack_put(p, big);
    CHECK(corio__stack_get(p, 100000) == big);
    corio__stack_put(p, big);
    corio__stack_put(p, s[0]);
    corio__stack_put(p, s[1]); /* beyond max_free: unmapped */
    corio__stack_pool_free(p);
}

/* ---- 6. canary -------------------------------------------------------- */

static void smash_body(co *c)
{
    /* Reserve more than the whole stack: the block starts below lo (in the
     * neighbouring slot, which is mapped and unused) and covers the
     * canary, like a deep call chain would. */
    size_t n = c->st->size;
    char *blk = __builtin_alloca(n);
    memset(blk, 0xA5, n);
    __asm__ volatile("" ::"r"(blk) : "memory");
}

static void test_canary(void)
{
    long old = corio__stack_set_guard_limit(0);
    corio__stack_pool *p = corio__stack_pool_new(32 * 1024, 0);
    corio__stack *s0 = corio__stack_get(p, 0);
    corio__stack *s1 = corio__stack_get(p, 0);
    CHECK(s0 && s1 && s0->kind == CORIO__STACK_CANARY && s1->kind == CORIO__STACK_CANARY);
    CHECK(s0->size >= 32 * 1024 && s1->size >= 32 * 1024);
    CHECK(corio__stack_check(s0) && corio__stack_check(s1));
    /* Usable end to end without disturbing any canary. */
    memset(s0->lo, 0x5A, s0->size);
    CHECK(corio__stack_check(s0) && corio__stack_check(s1));

    /* A one-byte underflow is caught. */
    char *below = (char *)s0->lo - 1;
    char saved = *below;
    *below ^= 1;
    CHECK(!corio__stack_check(s0));
    *below = saved;
    CHECK(corio__stack_check(s0));

    /* A real overflow from a running context is caught at switch-out. */
    co c;
    co_start(&c, s1, smash_body, 6);
    resume(&c);
    CHECK(c.done);
    CHECK(!corio__stack_check(s1));
    CHECK(corio__stack_check(s0));
    corio__stack_put(p, s0);
    co_end(&c, p);
    corio__stack_pool_free(p);
    corio__stack_set_guard_limit(old);
}

/* ---- 7. memory per sleeping context ----------------------------------- */

static long rss_pages(void)
{
    long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss;
}

static void sleeper_body(co *c)
{
    volatile char frame[512]; /* a modest call chain */
    frame[0] = (char)c->id;
    yield_to_main(c);
    (void)frame[0];
}

static void measure_rss(const char *label, long guard_limit, int n)
{
    long old = corio__stack_set_guard_limit(guard_limit);
    corio__stack_pool *p = corio__stack_pool_new(256 * 1024, 64);
    co *cs = malloc((size_t)n * sizeof *cs);
    corio__stack **st = malloc((size_t)n * sizeof *st);
    /* Commit the bookkeeping first so only the stacks are measured (not
     * zeroes: the compiler turns malloc+memset(0) into a lazy calloc). */
    memset(cs, 0xff, (size_t)n * sizeof *cs);
    memset(st, 0xff, (size_t)n * sizeof *st);
    long before = rss_pages();
    for (int i = 0; i < n; i++) {
        st[i] = corio__stack_get(p, 0);
        CHECK(st[i] != NULL);
        if (!st[i])
            return;
        co_start(&cs[i], st[i], sleeper_body, i);
        resume(&cs[i]);
    }
    long after = rss_pages();
    double kib = (double)(after - before) * (double)sysconf(_SC_PAGESIZE) / 1024.0 / n;
    printf("rss per sleeping context (%s, 256 KiB stacks, %d contexts): %.2f KiB\n", label, n, kib);
#if !defined(TEST_ASAN) && !defined(TEST_TSAN) /* their shadow memory counts in RSS */
    /* Target: about one page (plus the 48-byte descriptor and, for canary
     * stacks, one header page per 64).  Not checked under an emulator
     * (run_aarch64.sh sets CORIO_SELFTEST_EMULATED), whose own memory
     * shows up in our RSS. */
    if (!getenv("CORIO_SELFTEST_EMULATED"))
        CHECK(kib <= 5.0);
#endif
    for (int i = 0; i < n; i++) {
        resume(&cs[i]);
        CHECK(cs[i].done);
        CHECK(corio__stack_check(st[i]));
        co_end(&cs[i], p);
    }
    corio__stack_pool_free(p);
    free(cs);
    free(st);
    corio__stack_set_guard_limit(old);
}

/* ---- 8. overflow in a child ------------------------------------------- */

static int __attribute__((noinline)) recurse(int n)
{
    volatile char buf[256];
    buf[n & 255] = (char)n;
    if (n > 1 << 30)
        return 0;
    return recurse(n + 1) + buf[(n * 7) & 255];
}

static void overflow_body(co *c) { c->counter = recurse(0); }

static const char *victim_name = "deep-recursion";

static void *overflow_thread(void *arg)
{
    (void)arg;
    corio__stack_overflow_handler_install();
    corio__stack_pool *p = corio__stack_pool_new(64 * 1024, 4);
    corio__stack *st = corio__stack_get(p, 0);
    if (!st || st->kind != CORIO__STACK_GUARD)
        _exit(3);
    owners[0].s = st;
    owners[0].name = victim_name;
    nowners = 1;
    main_fiber = corio__tsan_fiber_current(); /* maybe a new thread: resume from its fiber */
    co c;
    co_start(&c, st, overflow_body, 8);
    resume(&c);
    _exit(4); /* the overflow should have killed us */
}

static void null_deref(void)
{
    corio__stack_overflow_handler_install();
    volatile int *volatile np = NULL;
    *np = 1;
    _exit(5);
}

/* Run fn in a child with stderr captured; returns the wait status. */
static int run_child(int mode, char *out, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        if (mode == 0) {
            overflow_thread(NULL);
        } else if (mode == 1) {
            /* From a second thread: its own alternate signal stack. */
            pthread_t t;
            pthread_create(&t, NULL, overflow_thread, NULL);
            pthread_join(t, NULL);
        } else {
            null_deref();
        }
        _exit(6);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, cap - 1 - n)) > 0 && n < cap - 1)
        n += (size_t)r;
    out[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void test_overflow(void)
{
    char out[8192];
    for (int mode = 0; mode < 2; mode++) {
        int f0 = failures;
        int st = run_child(mode, out, sizeof out);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
        CHECK(strstr(out, "stack overflow") != NULL);
        CHECK(strstr(out, "'deep-recursion'") != NULL);
        CHECK(strstr(out, "stack size 65536 bytes") != NULL);
        if (failures != f0)
            fprintf(stderr, "child %d status %#x, stderr:\n%s\n", mode, st, out);
    }
    /* A fault outside any guard page is passed on, not reported as ours. */
    int st = run_child(2, out, sizeof out);
    CHECK(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT));
    CHECK(strstr(out, "stack overflow") == NULL);
#if !defined(TEST_ASAN) && !defined(TEST_TSAN) /* they report the fault and exit themselves */
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
#endif
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    main_fiber = corio__tsan_fiber_current();
    corio__stack_pool *p = corio__stack_pool_new(128 * 1024, 1024);
    CHECK(p != NULL);
    struct {
        const char *name;
        void (*fn)(corio__stack_pool *);
    } pt[] = {{"pingpong", test_pingpong},
              {"registers", test_registers},
              {"fpenv", test_fpenv},
              {"many", test_many}};
    for (size_t i = 0; i < sizeof pt / sizeof pt[0]; i++) {
        int f0 = failures;
        pt[i].fn(p);
        printf("%-10s %s\n", pt[i].name, failures == f0 ? "ok" : "FAILED");
    }
    corio__stack_pool_free(p);
    struct {
        const char *name;
        void (*fn)(void);
    } t[] = {{"pool", test_pool}, {"canary", test_canary}, {"overflow", test_overflow}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int f0 = failures;
        t[i].fn();
        printf("%-10s %s\n", t[i].name, failures == f0 ? "ok" : "FAILED");
    }
    int f0 = failures;
    measure_rss("guard", 100000, 10000);
    measure_rss("canary", 0, 10000);
    printf("%-10s %s\n", "rss", failures == f0 ? "ok" : "FAILED");
    printf("arch_selftest: %s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
