/*
 * Tasks, the scheduler, timers, cancellation and deadlines (src/core/).
 */
#include "runner.h"
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- running a loop ---------------------------------------------------- */

static void *return_arg(void *arg) { return arg; }

TEST(run_returns_main_result)
{
    int x;
    CHECK(test_run(return_arg, &x) == &x);
    CHECK(corio_current() == NULL);
    CHECK(corio_backend_name() == NULL);
}

static void *nested_run(void *arg)
{
    CHECK_ERR(corio_run(NULL, return_arg, NULL, NULL), -EBUSY);
    const char *want = getenv("CORIO_BACKEND");
    if (want)
        CHECK_STR(corio_backend_name(), want);
    return arg;
}

TEST(nested_run_is_ebusy_and_backend_is_the_forced_one) { test_run(nested_run, NULL); }

TEST(suspending_outside_a_task_is_eperm)
{
    CHECK_ERR(corio_sleep_ms(1), -EPERM);
    CHECK_ERR(corio_yield(), -EPERM);
    CHECK(corio_spawn(return_arg, NULL) == NULL);
    CHECK_EQ(errno, EPERM);
}

/* ---- spawn, join, gather, ordering ------------------------------------ */

static char order[64];
static int order_len;
static void mark(char c)
{
    order[order_len++] = c;
    order[order_len] = 0;
}

static void *mark_task(void *arg)
{
    mark(*(char *)arg);
    return arg;
}

static void *spawn_join_main(void *arg)
{
    order_len = 0;
    corio_task *t = corio_spawn(mark_task, "b");
    CHECK(t);
    mark('a'); /* the child runs only once we suspend */
    void *res = NULL;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_STR((char *)res, "b");
    CHECK_STR(order, "ab");
    return NULL;
}

TEST(spawn_runs_later_and_join_returns_result) { test_run(spawn_join_main, NULL); }

static void *yielder(void *arg)
{
    for (int i = 0; i < 3; i++) {
        mark(*(char *)arg);
        CHECK_OK(corio_yield());
    }
    return NULL;
}

static void *yield_main(void *arg)
{
    order_len = 0;
    corio_task *t[3] = {corio_spawn(yielder, "x"), corio_spawn(yielder, "y"), corio_spawn(yielder, "z")};
    CHECK_OK(corio_gather(t, 3, NULL));
    CHECK_STR(order, "xyzxyzxyz");
    return NULL;
}

TEST(yield_round_robin_exact_order) { test_run(yield_main, NULL); }

static void *sleeper(void *arg)
{
    uintptr_t ms = (uintptr_t)arg;
    CHECK_OK(corio_sleep_ms(ms));
    mark((char)('0' + ms / 100));
    return (void *)(ms * 2);
}

/* Each sleeper's clock starts when it first runs, one after the other:
 * the 100 ms steps keep the order of their deadlines even when a slow
 * machine (or valgrind translating the code on first use) spends several
 * milliseconds on each start. */
static void *sleep_order_main(void *arg)
{
    order_len = 0;
    uint64_t t0 = test_ms();
    corio_task *t[4] = {corio_spawn(sleeper, (void *)300), corio_spawn(sleeper, (void *)100),
                        corio_spawn(sleeper, (void *)400), corio_spawn(sleeper, (void *)200)};
    void *res[4];
    CHECK_OK(corio_gather(t, 4, res));
    CHECK_STR(order, "1234");
    CHECK(res[0] == (void *)600 && res[1] == (void *)200 && res[2] == (void *)800 && res[3] == (void *)400);
    uint64_t el = test_ms() - t0;
    CHECK(el >= 400);
    CHECK(el < 2000);
    return NULL;
}

TEST(sleep_wakes_in_deadline_order_and_gather_collects) { test_run(sleep_order_main, NULL); }

static void *detached_child(void *arg)
{
    corio_sleep_ms(5);
    (*(int *)arg)++;
    return NULL;
}

static void *detach_main(void *arg)
{
    int n = 0;
    for (int i = 0; i < 10; i++)
        corio_task_detach(corio_spawn(detached_child, &n));
    CHECK_OK(corio_sleep_ms(50));
    CHECK_EQ(n, 10);
    corio_task *t = corio_spawn(return_arg, NULL);
    CHECK_OK(corio_yield());
    CHECK(corio_task_done(t));
    corio_task_detach(t); /* finished and detached: freed at once */
    return NULL;
}

TEST(detached_tasks_run_to_completion) { test_run(detach_main, NULL); }

static void *join_self_main(void *arg)
{
    CHECK_ERR(corio_task_join(corio_current(), NULL), -EINVAL);
    CHECK_STR(corio_task_name(corio_current()), "main");
    corio_task *t =
        corio_spawn_named("a-rather-long-task-name-that-gets-truncated-somewhere", 0, return_arg, NULL);
    CHECK_EQ(strlen(corio_task_name(t)), 31);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

TEST(join_self_is_einval_and_names_are_kept) { test_run(join_self_main, NULL); }

/* ---- cancellation ----------------------------------------------------- */

static void *cancel_victim(void *arg)
{
    int *log = arg;
    log[0] = corio_sleep_ms(10000);
    log[1] = corio_sleep_ms(1); /* sticky */
    log[2] = corio_yield();     /* sticky */
    log[3] = corio_cancelled();
    return (void *)7;
}

static void *cancel_sleep_main(void *arg)
{
    int log[4] = {1, 1, 1, 0};
    uint64_t t0 = test_ms();
    corio_task *t = corio_spawn(cancel_victim, log);
    CHECK_OK(corio_sleep_ms(5));
    CHECK_OK(corio_task_cancel(t));
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK(res == (void *)7); /* cancellation never kills a task: it returns normally */
    CHECK_ERR(log[0], -ECANCELED);
    CHECK_ERR(log[1], -ECANCELED);
    CHECK_ERR(log[2], -ECANCELED);
    CHECK_EQ(log[3], 1);
    CHECK(test_ms() - t0 < 2000);
    return NULL;
}

TEST(cancel_during_sleep_is_delivered_and_sticky) { test_run(cancel_sleep_main, NULL); }

static void *first_wait(void *arg)
{
    *(int *)arg = corio_sleep_ms(1);
    return NULL;
}

static void *cancel_before_start_main(void *arg)
{
    int r = 1;
    corio_task *t = corio_spawn(first_wait, &r);
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(r, -ECANCELED);
    t = corio_spawn(return_arg, NULL);
    CHECK_OK(corio_yield());
    CHECK_ERR(corio_task_cancel(t), -EALREADY);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

TEST(cancel_before_first_run_and_after_end) { test_run(cancel_before_start_main, NULL); }

static void *self_cancel_main(void *arg)
{
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK(corio_cancelled());
    CHECK_ERR(corio_sleep_ms(1), -ECANCELED);
    return (void *)1;
}

TEST(self_cancel_surfaces_at_next_wait) { CHECK(test_run(self_cancel_main, NULL) == (void *)1); }

static void *long_sleeper(void *arg) { return (void *)(intptr_t)corio_sleep_ms(10000); }

/* Joins arg; records what the join returned and what the target returned. */
static intptr_t joined_ret, joined_res;
static void *joiner_task(void *arg)
{
    void *res = (void *)1;
    joined_ret = corio_task_join(arg, &res);
    joined_res = (intptr_t)res;
    return NULL;
}

/* asyncio's `await task`: cancelling the awaiting task cancels the awaited
 * one, waits for it to end, and frees it. */
static void *cancel_join_main(void *arg)
{
    corio_task *target = corio_spawn(long_sleeper, NULL);
    corio_task *j = corio_spawn(joiner_task, target);
    CHECK_OK(corio_sleep_ms(5));
    CHECK_OK(corio_task_cancel(j));
    CHECK_OK(corio_task_join(j, NULL));
    CHECK_ERR(joined_ret, -ECANCELED);
    CHECK_ERR(joined_res, -ECANCELED); /* the target's own return value: its sleep was cancelled */
    return NULL;
}

TEST(cancel_during_join_cancels_and_awaits_target) { test_run(cancel_join_main, NULL); }

static int cleanup_ran;
static void *cleanup_child(void *arg)
{
    int r = corio_sleep_ms(10000);
    if (r == -ECANCELED)
        cleanup_ran++;
    return NULL;
}

static void *gather_parent(void *arg)
{
    corio_task *t[3] = {corio_spawn(cleanup_child, NULL), corio_spawn(cleanup_child, NULL),
                        corio_spawn(cleanup_child, NULL)};
    return (void *)(intptr_t)corio_gather(t, 3, NULL);
}

static void *cancel_gather_main(void *arg)
{
    cleanup_ran = 0;
    corio_task *g = corio_spawn(gather_parent, NULL);
    CHECK_OK(corio_sleep_ms(5));
    CHECK_OK(corio_task_cancel(g));
    void *r;
    CHECK_OK(corio_task_join(g, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(cleanup_ran, 3); /* children were cancelled and awaited */
    return NULL;
}

TEST(cancel_gather_cancels_and_awaits_children) { test_run(cancel_gather_main, NULL); }

static void *orphan_main(void *arg)
{
    cleanup_ran = 0;
    for (int i = 0; i < 5; i++)
        corio_task_detach(corio_spawn(cleanup_child, NULL));
    corio_task *t = corio_spawn(cleanup_child, NULL);
    (void)t; /* never joined: the loop still cancels and awaits it */
    CHECK_OK(corio_yield());
    return NULL;
}

TEST(main_return_cancels_and_awaits_the_rest)
{
    test_run(orphan_main, NULL);
    CHECK_EQ(cleanup_ran, 6);
}

/* ---- deadlines -------------------------------------------------------- */

static void *deadline_main(void *arg)
{
    uint64_t t0 = test_ms();
    corio_deadline d = corio_deadline_push(30);
    CHECK_ERR(corio_sleep_ms(10000), -CORIO_EDEADLINE);
    CHECK(corio_deadline_expired());
    CHECK_ERR(corio_yield(), -CORIO_EDEADLINE); /* every wait inside the scope fails */
    corio_deadline_pop(d);
    /* a deadline is told apart from the network's -ETIMEDOUT, by code and by text */
    CHECK(CORIO_EDEADLINE != ETIMEDOUT);
    CHECK_STR(corio_strerror(-CORIO_EDEADLINE), "the task's deadline passed");
    CHECK(strcmp(corio_strerror(-CORIO_EDEADLINE), corio_strerror(-ETIMEDOUT)) != 0);
    uint64_t el = test_ms() - t0;
    CHECK(el >= 25 && el < 2000);
    CHECK(!corio_deadline_expired());
    CHECK_OK(corio_sleep_ms(1)); /* and works again outside it */

    /* a short sleep inside a long deadline completes normally */
    d = corio_deadline_push(1000);
    CHECK_OK(corio_sleep_ms(5));
    corio_deadline_pop(d);

    /* nested: an inner longer deadline does not extend the outer one */
    t0 = test_ms();
    corio_deadline outer = corio_deadline_push(30);
    corio_deadline inner = corio_deadline_push(5000);
    CHECK_ERR(corio_sleep_ms(10000), -CORIO_EDEADLINE);
    corio_deadline_pop(inner);
    corio_deadline_pop(outer);
    CHECK(test_ms() - t0 < 2000);

    /* nested: an inner shorter deadline wins, the outer one still holds after */
    outer = corio_deadline_push(5000); /* far beyond the inner one, even on a busy CPU */
    inner = corio_deadline_push(10);
    CHECK_ERR(corio_sleep_ms(100), -CORIO_EDEADLINE);
    corio_deadline_pop(inner);
    CHECK_OK(corio_sleep_ms(5));
    corio_deadline_pop(outer);
    return NULL;
}

TEST(deadline_scopes_time_out_every_wait_and_nest) { test_run(deadline_main, NULL); }

static void *deadline_join_main(void *arg)
{
    corio_task *t = corio_spawn(long_sleeper, NULL);
    corio_deadline d = corio_deadline_push(20);
    void *res = NULL;
    CHECK_ERR(corio_task_join(t, &res), -CORIO_EDEADLINE); /* t cancelled, awaited, freed */
    CHECK_ERR((intptr_t)res, -ECANCELED);
    CHECK(corio_deadline_expired());
    corio_deadline_pop(d);
    return NULL;
}

TEST(deadline_during_join) { test_run(deadline_join_main, NULL); }

/* ---- scale ------------------------------------------------------------ */

#define MANY 10000
static int many_done;

static void *many_child(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    CHECK_OK(corio_sleep_ms(i % 50));
    CHECK_OK(corio_yield());
    many_done++;
    return (void *)(i + 1);
}

static void *many_main(void *arg)
{
    static corio_task *t[MANY];
    static void *res[MANY];
    many_done = 0;
    for (uintptr_t i = 0; i < MANY; i++) {
        t[i] = corio_spawn(many_child, (void *)i);
        CHECK(t[i]);
    }
    CHECK_OK(corio_gather(t, MANY, res));
    CHECK_EQ(many_done, MANY);
    for (uintptr_t i = 0; i < MANY; i++)
        CHECK(res[i] == (void *)(i + 1));
    return NULL;
}

TEST(ten_thousand_concurrent_tasks)
{
    uint64_t t0 = test_ms();
    test_run(many_main, NULL);
    CHECK(test_ms() - t0 < 20000);
}

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void heap_fire(corio__timer *t) { (void)t; }

static void *timer_heap_main(void *arg)
{
    enum { N = 100000 };
    corio_loop *l = corio__loop();
    corio__timer *tm = calloc(N, sizeof *tm);
    for (int i = 0; i < N; i++) {
        corio__timer_init(&tm[i], heap_fire);
        CHECK_OK(corio__timer_arm(l, &tm[i], l->now + 1000000000000ull + rnd() % 1000000));
    }
    /* re-arm and disarm a third at random */
    for (int i = 0; i < N / 3; i++) {
        int k = (int)(rnd() % N);
        if (i & 1)
            corio__timer_disarm(l, &tm[k]);
        else
            CHECK_OK(corio__timer_arm(l, &tm[k], l->now + 1000000000000ull + rnd() % 1000000));
    }
    uint64_t prev = 0;
    unsigned popped = 0;
    while (l->timers.len) {
        corio__timer *top = l->timers.items[0];
        CHECK(top->when >= prev);
        prev = top->when;
        corio__timer_disarm(l, top);
        popped++;
    }
    CHECK(popped > N / 2);
    free(tm);
    return NULL;
}

TEST(timer_heap_orders_100k_timers) { test_run(timer_heap_main, NULL); }

/* ---- stalls and overflow ---------------------------------------------- */

static corio_task *stall_main_task;
static void *stall_child(void *arg) { return (void *)(intptr_t)corio_task_join(stall_main_task, NULL); }

static void *stall_main(void *arg)
{
    stall_main_task = corio_current();
    corio_task *t = corio_spawn_named("stuck-child", 0, stall_child, NULL);
    corio_task_join(t, NULL);
    return NULL;
}

TEST(stalled_loop_reports_live_tasks_instead_of_hanging)
{
    char path[] = "/tmp/corio-stall-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    int r = corio_run(NULL, stall_main, NULL, NULL);
    dup2(saved, 2);
    CHECK_ERR(r, -CORIO_EDEADLOCK);
    char buf[4096] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
    CHECK(strstr(buf, "loop stalled"));
    CHECK(strstr(buf, "task 'stuck-child' waiting in join"));
    CHECK(strstr(buf, "task 'main' (main) waiting in join"));
}

static volatile int recurse_forever = 1;

static int recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    if (!recurse_forever)
        return pad[0];
    return recurse(depth + 1) + pad[0];
}

static void *overflow_task(void *arg) { return (void *)(intptr_t)recurse(0); }

static void *overflow_main(void *arg)
{
    corio_task *t = corio_spawn_named("deep-recursion", 64 * 1024, overflow_task, NULL);
    corio_task_join(t, NULL);
    return NULL;
}

TEST(stack_overflow_is_caught_and_names_the_task)
{
#if defined(__SANITIZE_ADDRESS__)
    SKIP("ASan reports stack overflows itself");
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    SKIP("ASan reports stack overflows itself");
#endif
#endif
    int pipefd[2];
    CHECK_OK(pipe(pipefd));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        corio_run(NULL, overflow_main, NULL, NULL);
        _exit(0);
    }
    close(pipefd[1]);
    char buf[4096] = {0};
    size_t got = 0;
    ssize_t n;
    while ((n = read(pipefd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    CHECK_EQ(WTERMSIG(st), SIGABRT);
    CHECK(strstr(buf, "stack overflow in task 'deep-recursion'"));
}

TEST(strerror_covers_corio_codes)
{
    CHECK_STR(corio_strerror(-CORIO_EINCOMPLETE), "end of stream before the requested bytes arrived");
    CHECK_STR(corio_strerror(-CORIO_ELIMIT), "separator not found within the stream's buffer limit");
    CHECK_STR(corio_strerror(-ECANCELED), "Operation canceled");
    CHECK_STR(corio_strerror(0), "success");
}

/* ---- adversarial review: timers that cannot be armed, gather misuse ----- */

static void *long_sleeper2(void *arg)
{
    corio_sleep_ms(100000);
    return arg;
}

static void *late_writer(void *arg)
{
    corio_sleep_ms(2);
    CHECK_EQ(write(*(int *)arg, "p", 1), 1);
    return NULL;
}

/* Fill the timer heap to its capacity (64) with sleeping tasks, so that the
 * next timer to be armed has to grow it. */
static corio_task *heap_fillers[64];
static void fill_timer_heap(void)
{
    for (int i = 0; i < 64; i++) {
        heap_fillers[i] = corio_spawn(long_sleeper2, NULL);
        CHECK(heap_fillers[i]);
        corio_task_detach(heap_fillers[i]);
    }
    CHECK_OK(corio_yield());
    CHECK_EQ(corio__loop()->timers.len, corio__loop()->timers.cap);
}

/* The deadline timer of a task that parks on a started operation cannot be
 * armed (no memory to grow the heap): the operation was already handed to
 * the backend, so corio__suspend must not simply return -ENOMEM while the
 * kernel (or epoll's wait list) still holds the buffer. */
static void *arm_fail_op_main(void *arg)
{
    corio_loop *l = corio__loop();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    /* Prime: one recv that has to wait (registers the fd with epoll). */
    corio_task *w = corio_spawn(late_writer, &sv[1]);
    char buf[8];
    corio__op op = {.kind = CORIO__OP_RECV, .fd = sv[0], .buf = buf, .len = sizeof buf};
    CHECK_EQ(corio__op_run(&op), 1);
    CHECK_OK(corio_task_join(w, NULL));

    fill_timer_heap();
    memset(buf, 0, sizeof buf);
    corio_deadline d = corio_deadline_push(100000);
    corio_fi_fail_next("realloc", 1); /* the heap growth in park */
    corio__op op2 = {.kind = CORIO__OP_RECV, .fd = sv[0], .buf = buf, .len = sizeof buf};
    int r = corio__op_run(&op2);
    corio_fi_fail_next("realloc", 0);
    corio_deadline_pop(d);
    CHECK_ERR(r, -ENOMEM);
    /* The op is over: nothing in flight, and data sent now stays in the
     * socket instead of landing in buf. */
    CHECK_EQ(l->backend->pending(l), 0);
    CHECK_EQ(write(sv[1], "Z", 1), 1);
    CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(buf[0], 0);
    CHECK_EQ(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), 1);
    CHECK_EQ(buf[0], 'Z');
    corio__close_fd(l, sv[0]);
    corio__close_fd(l, sv[1]);
    return arg;
}

TEST(timer_arm_failure_while_parking_on_an_op_ends_the_op) { test_run(arm_fail_op_main, NULL); }

static void *quick_child(void *arg)
{
    corio_sleep_ms(20);
    return arg;
}

/* The same failure in a join must not leave the target pointing at the
 * joiner (it would wake a task that is no longer waiting for it). */
static void *arm_fail_join_main(void *arg)
{
    corio_task *c = corio_spawn(quick_child, (void *)7);
    CHECK(c);
    CHECK_OK(corio_yield());
    /* heap: c's timer + 63 fillers = full */
    for (int i = 0; i < 63; i++)
        corio_task_detach(corio_spawn(long_sleeper2, NULL));
    CHECK_OK(corio_yield());
    CHECK_EQ(corio__loop()->timers.len, corio__loop()->timers.cap);
    corio_deadline d = corio_deadline_push(100000);
    corio_fi_fail_next("realloc", 1); /* the heap growth in park */
    int r = corio_task_join(c, NULL);
    corio_fi_fail_next("realloc", 0);
    corio_deadline_pop(d);
    CHECK_ERR(r, -ENOMEM); /* and c was cancelled, awaited and freed */
    /* A later sleep of this task is not cut short by anything c left. */
    uint64_t t0 = test_ms();
    CHECK_OK(corio_sleep_ms(60));
    CHECK(test_ms() - t0 >= 55);
    return arg;
}

TEST(timer_arm_failure_in_join_leaves_no_stale_joiner) { test_run(arm_fail_join_main, NULL); }

static void *gather_misuse_main(void *arg)
{
    corio_task *a = corio_spawn(quick_child, (void *)1);
    corio_task *b = corio_spawn(quick_child, (void *)2);
    CHECK(a && b);
    /* A task listed twice: -EINVAL, nothing joined or freed. */
    corio_task *dup[3] = {a, b, a};
    CHECK_ERR(corio_gather(dup, 3, NULL), -EINVAL);
    /* The caller itself in the list. */
    corio_task *self[2] = {a, corio_current()};
    CHECK_ERR(corio_gather(self, 2, NULL), -EINVAL);
    CHECK(!corio_task_done(a) && !corio_task_done(b));
    CHECK(!corio_cancelled());
    void *res[2];
    corio_task *ok[2] = {a, b};
    CHECK_OK(corio_gather(ok, 2, res));
    CHECK(res[0] == (void *)1 && res[1] == (void *)2);

    /* A detached task in the list: -EINVAL, and the others untouched. */
    corio_task *c = corio_spawn(quick_child, (void *)3);
    corio_task *dt = corio_spawn(quick_child, (void *)4);
    corio_task_detach(dt);
    corio_task *withdet[2] = {c, dt};
    CHECK_ERR(corio_gather(withdet, 2, NULL), -EINVAL);
    CHECK_OK(corio_task_join(c, &res[0]));
    CHECK(res[0] == (void *)3);

    /* Already-finished tasks are fine. */
    corio_task *e = corio_spawn(return_arg, (void *)5);
    corio_task *f = corio_spawn(return_arg, (void *)6);
    CHECK_OK(corio_sleep_ms(1));
    CHECK(corio_task_done(e) && corio_task_done(f));
    corio_task *fin[2] = {e, f};
    CHECK_OK(corio_gather(fin, 2, res));
    CHECK(res[0] == (void *)5 && res[1] == (void *)6);
    CHECK_OK(corio_gather(fin, 0, NULL));
    return arg;
}

TEST(gather_rejects_duplicates_self_and_detached_tasks) { test_run(gather_misuse_main, NULL); }

/* While main gathers {a, b} (waiting for a), another task tries to join b:
 * b belongs to the gather, so that join is -EINVAL and b is freed once. */
static corio_task *g_b;
static void *rival_joiner(void *arg) { return (void *)(intptr_t)corio_task_join(g_b, NULL); }

static void *gather_rival_main(void *arg)
{
    corio_task *a = corio_spawn(quick_child, (void *)1);
    g_b = corio_spawn(quick_child, (void *)2);
    corio_task *r = corio_spawn(rival_joiner, NULL);
    corio_task *ab[2] = {a, g_b};
    void *res[2];
    CHECK_OK(corio_gather(ab, 2, res));
    CHECK(res[0] == (void *)1 && res[1] == (void *)2);
    void *rr;
    CHECK_OK(corio_task_join(r, &rr));
    CHECK_ERR((intptr_t)rr, -EINVAL);
    /* Every task struct freed exactly once: three fresh spawns get three
     * distinct structs. */
    corio_task *x = corio_spawn(return_arg, NULL), *y = corio_spawn(return_arg, NULL),
               *z = corio_spawn(return_arg, NULL);
    CHECK(x != y && y != z && x != z);
    corio_task *xyz[3] = {x, y, z};
    CHECK_OK(corio_gather(xyz, 3, NULL));
    return arg;
}

TEST(gather_owns_its_tasks_against_other_joiners) { test_run(gather_rival_main, NULL); }

/* The gathered task cancels the gatherer, then finishes. */
static corio_task *gatherer;
static void *cancel_the_gatherer(void *arg)
{
    corio_task_cancel(gatherer);
    corio_sleep_ms(5); /* cancelled by the gather in turn */
    return arg;
}

static void *gathering_task(void *arg)
{
    corio_task *c[2] = {corio_spawn(cancel_the_gatherer, (void *)1), corio_spawn(quick_child, (void *)2)};
    return (void *)(intptr_t)corio_gather(c, 2, NULL);
}

static void *gatherer_main(void *arg)
{
    gatherer = corio_spawn(gathering_task, NULL);
    void *r;
    CHECK_OK(corio_task_join(gatherer, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    return arg;
}

TEST(gathered_task_cancelling_its_gatherer) { test_run(gatherer_main, NULL); }

/* A task cancelled while it sits in the run queue (woken, not yet run)
 * keeps the result it was woken with; the cancel shows at its next wait.
 * Main wakes it itself (an event) and so runs on before it: the loop runs
 * a task its timer or I/O woke at the start of the next round, before
 * main, so main could not catch such a task in the run queue. */
static corio_task *woken;
static corio_event woken_ev;

static void *waits_once(void *arg)
{
    int r1 = corio_event_wait(&woken_ev);
    int r2 = corio_yield();
    return (void *)(intptr_t)(r1 == 0 && r2 == -ECANCELED ? 1 : 0);
}

static void *ready_cancel_main(void *arg)
{
    corio_event_init(&woken_ev);
    woken = corio_spawn(waits_once, NULL);
    CHECK_OK(corio_yield()); /* woken parks in its wait */
    corio_event_set(&woken_ev);
    CHECK(woken->flags & CORIO__T_READY); /* woken, not run yet */
    CHECK_OK(corio_task_cancel(woken));
    void *r;
    CHECK_OK(corio_task_join(woken, &r));
    CHECK_EQ((intptr_t)r, 1);
    return arg;
}

TEST(cancel_of_a_ready_task_keeps_its_wake_result) { test_run(ready_cancel_main, NULL); }

/* A task whose I/O completes runs in the next round, and so does a task it
 * spawns then, not behind every task queued before the completion came in
 * (issue 8: 1,000 clients each waited behind all the others' connects
 * before sending a request).  The reader's data is there before main
 * spawns NSPAWNED tasks; the loop polls after at most POLL_EVERY (128) of
 * them, so the reader runs long before the last of them (FIFO alone ran it
 * after all of them).  A yield still goes behind every ready task. */
#define NSPAWNED 600
static int run_log[NSPAWNED + 3], run_log_len;

static void *log_run(void *arg)
{
    run_log[run_log_len++] = (int)(intptr_t)arg;
    return NULL;
}

static void *io_reader(void *arg)
{
    char c;
    CHECK_EQ(corio_stream_read(arg, &c, 1), 1);
    log_run((void *)(intptr_t)-1);
    corio_task *child = corio_spawn(log_run, (void *)(intptr_t)-2);
    CHECK(child);
    CHECK_OK(corio_yield());
    log_run((void *)(intptr_t)-3);
    CHECK_OK(corio_task_join(child, NULL));
    return NULL;
}

static int log_pos(int v)
{
    for (int i = 0; i < run_log_len; i++)
        if (run_log[i] == v)
            return i;
    return -1;
}

static void *io_first_main(void *arg)
{
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    corio_stream *s = corio_stream_from_fd(sv[0]);
    CHECK(s);
    corio_task *r = corio_spawn(io_reader, s);
    CHECK(r);
    CHECK_OK(corio_yield()); /* the reader waits for its byte */
    CHECK(!corio_task_done(r));
    CHECK_EQ(write(sv[1], "x", 1), 1);
    static corio_task *t[NSPAWNED];
    for (int i = 0; i < NSPAWNED; i++)
        CHECK((t[i] = corio_spawn(log_run, (void *)(intptr_t)i)));
    CHECK_OK(corio_task_join(r, NULL));
    CHECK_OK(corio_gather(t, NSPAWNED, NULL));
    CHECK_EQ(run_log_len, NSPAWNED + 3);
    CHECK(log_pos(-1) < NSPAWNED / 2);              /* woken by I/O: early */
    CHECK_EQ(log_pos(-2), log_pos(-1) + 1);         /* what it spawned: right after */
    CHECK_EQ(log_pos(-3), NSPAWNED + 2);            /* its yield: behind everyone */
    for (int i = 0, want = 0; i < run_log_len; i++) /* the others in spawn order */
        if (run_log[i] >= 0)
            CHECK_EQ(run_log[i], want++);
    corio_stream_close(s);
    close(sv[1]);
    return arg;
}

TEST(tasks_woken_by_io_and_their_spawns_run_before_tasks_queued_earlier) { test_run(io_first_main, NULL); }

static void *forever_sleeper(void *arg) { return (void *)(intptr_t)corio_sleep_ms(UINT64_MAX); }

static void *huge_sleep_main(void *arg)
{
    corio_task *t = corio_spawn(forever_sleeper, NULL);
    corio_task *u = corio_spawn(forever_sleeper, NULL);
    CHECK_OK(corio_sleep_ms(5));
    CHECK(!corio_task_done(t));
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_cancel(u));
    void *r;
    CHECK_OK(corio_task_join(t, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_OK(corio_task_join(u, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    /* A deadline of UINT64_MAX ms is no deadline at all in practice. */
    corio_deadline d = corio_deadline_push(UINT64_MAX);
    CHECK_OK(corio_sleep_ms(1));
    corio_deadline_pop(d);
    return arg;
}

TEST(sleep_of_uint64_max_ms_waits_until_cancelled) { test_run(huge_sleep_main, NULL); }

/* Cleanup code of a cancelled leftover task spawns another long sleeper:
 * the loop must cancel that one too instead of waiting forever. */
static int late_cancelled;
static void *late_sleeper(void *arg)
{
    if (corio_sleep_ms(100000) == -ECANCELED)
        late_cancelled++;
    return NULL;
}

static void *spawning_cleanup(void *arg)
{
    int r = corio_sleep_ms(100000);
    if (r == -ECANCELED)
        corio_task_detach(corio_spawn(late_sleeper, NULL)); /* spawned after the loop's cancel */
    return NULL;
}

static void *late_spawn_main(void *arg)
{
    late_cancelled = 0;
    corio_task_detach(corio_spawn(spawning_cleanup, NULL));
    CHECK_OK(corio_yield());
    return NULL;
}

TEST(tasks_spawned_by_cleanup_after_main_returns_are_cancelled_too)
{
    uint64_t t0 = test_ms();
    test_run(late_spawn_main, NULL);
    CHECK_EQ(late_cancelled, 1);
    CHECK(test_ms() - t0 < 5000);
}

static void *deadline_zero_main(void *arg)
{
    corio_deadline d = corio_deadline_push(0);
    CHECK(corio_deadline_expired());
    CHECK_ERR(corio_yield(), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(!corio_deadline_expired());
    CHECK(corio_now_ns() > 0);
    uint64_t a = corio_now_ns();
    CHECK_OK(corio_sleep_ms(2));
    CHECK(corio_now_ns() >= a + 2000000); /* the cached clock moves with the loop */
    return NULL;
}

TEST(zero_deadline_is_expired_at_once_and_now_advances) { test_run(deadline_zero_main, NULL); }

/* corio_now_ns is the turn's cached reading: it stands still while a task
 * computes without suspending, though corio_clock_read_ns (same clock, read
 * afresh) moves on; the next wait for a timer catches up. */
static void *clock_main(void *arg)
{
    uint64_t cached = corio_now_ns();
    uint64_t fresh = corio_clock_read_ns();
    CHECK(fresh >= cached);
    while (corio_clock_read_ns() - fresh < 2000000) {
        /* busy for 2 ms of monotonic time, no suspension */
    }
    CHECK_EQ(corio_now_ns(), cached);
    uint64_t later = corio_clock_read_ns();
    CHECK(later >= fresh + 2000000);
    CHECK_OK(corio_sleep_ms(1));
    CHECK(corio_now_ns() >= later + 1000000); /* refreshed when the loop polled */
    CHECK(corio_clock_read_ns() >= corio_now_ns());
    return arg;
}

TEST(now_is_cached_per_turn_and_clock_read_is_fresh)
{
    test_run(clock_main, NULL);
    /* outside a loop both read the clock */
    uint64_t a = corio_now_ns();
    CHECK(corio_clock_read_ns() >= a);
}

/* After a stall report every task is cancelled, so cleanup code runs and an
 * event waiter leaves the event's list before its stack goes away. */
static corio_event stall_event;
static int stall_cleanups;

static void *stuck_on_event(void *arg)
{
    if (corio_event_wait(&stall_event) == -ECANCELED)
        stall_cleanups++;
    return NULL;
}

static void *stall_cleanup_main(void *arg)
{
    corio_event_init(&stall_event);
    corio_task *t = corio_spawn(stuck_on_event, NULL);
    if (corio_task_join(t, NULL) == -ECANCELED)
        stall_cleanups++;
    return NULL;
}

TEST(stall_cancels_every_task_so_cleanup_runs)
{
    stall_cleanups = 0;
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    int r = corio_run(NULL, stall_cleanup_main, NULL, NULL);
    dup2(saved, 2);
    CHECK_ERR(r, -CORIO_EDEADLOCK);
    CHECK_EQ(stall_cleanups, 2);
    /* the event's waiter list is empty again: setting it touches nothing */
    corio_event_set(&stall_event);
    CHECK(corio_event_is_set(&stall_event));
}

/* Detaching a task that another task is joining (or gathering) would free
 * it twice: it is -EINVAL and changes nothing; the waiter still gets the
 * result.  Detaching twice is -EINVAL too. */
static corio_task *d_target;
static void *rival_detacher(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)corio_task_detach(d_target);
}

static void *slow_child(void *arg)
{
    corio_sleep_ms(5);
    return arg;
}

static void *detach_joined_main(void *arg)
{
    d_target = corio_spawn(slow_child, (void *)7);
    corio_task *r = corio_spawn(rival_detacher, NULL);
    void *res;
    CHECK_OK(corio_task_join(d_target, &res)); /* the rival runs while we wait */
    CHECK(res == (void *)7);
    void *rr;
    CHECK_OK(corio_task_join(r, &rr));
    CHECK_ERR((intptr_t)rr, -EINVAL);

    corio_task *a = corio_spawn(slow_child, (void *)1), *b = corio_spawn(slow_child, (void *)2);
    d_target = b;
    r = corio_spawn(rival_detacher, NULL);
    corio_task *ab[2] = {a, b};
    void *res2[2];
    CHECK_OK(corio_gather(ab, 2, res2));
    CHECK(res2[0] == (void *)1 && res2[1] == (void *)2);
    CHECK_OK(corio_task_join(r, &rr));
    CHECK_ERR((intptr_t)rr, -EINVAL);

    corio_task *c = corio_spawn(slow_child, NULL);
    CHECK_OK(corio_task_detach(c));
    CHECK_ERR(corio_task_detach(c), -EINVAL);
    CHECK_ERR(corio_task_detach(NULL), -EINVAL);
    return arg;
}

TEST(detach_refuses_a_task_being_joined) { test_run(detach_joined_main, NULL); }

/* Cleanup code in a cancelled task: corio_task_join and corio_gather both
 * cancel the child and wait until the child's own cleanup has run.  The
 * contracts in corio.h and docs/asyncio-guide.md say so. */
static int gathered_cleanups;

static void *sleeping_child(void *arg)
{
    CHECK_ERR(corio_sleep_ms(60000), -ECANCELED);
    gathered_cleanups++;
    return arg;
}

static void *cancelled_parent(void *arg)
{
    corio_task *child = corio_spawn(sleeping_child, (void *)(intptr_t)7);
    CHECK(child);
    CHECK_ERR(corio_sleep_ms(60000), -ECANCELED);
    /* cleanup from here on */
    void *res = NULL;
    CHECK_ERR(corio_task_join(child, &res), -ECANCELED);
    CHECK_EQ(gathered_cleanups, 1);
    CHECK_EQ((intptr_t)res, 7);
    child = corio_spawn(sleeping_child, (void *)(intptr_t)8);
    CHECK(child);
    CHECK_ERR(corio_gather(&child, 1, &res), -ECANCELED);
    CHECK_EQ(gathered_cleanups, 2);
    CHECK_EQ((intptr_t)res, 8);
    return arg;
}

static void *cleanup_wait_main(void *arg)
{
    corio_task *p = corio_spawn(cancelled_parent, NULL);
    CHECK(p);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(p));
    CHECK_OK(corio_task_join(p, NULL));
    CHECK_EQ(gathered_cleanups, 2);
    return arg;
}

TEST(cancelled_task_join_and_gather_wait_for_child)
{
    gathered_cleanups = 0;
    test_run(cleanup_wait_main, NULL);
}

/* A task that parks or yields switches straight to the next one without
 * passing through the loop (task.c, switch_out), and a yield with nothing
 * else ready returns at once.  Neither may keep the loop from polling:
 * every POLL_EVERY runs, direct or not, control goes back to it, so a
 * socket's data and a timer still reach their tasks while one task yields
 * alone, or two ping-pong through queues, without end.  (Without that
 * bound these tests would never end; the caps only turn a hang into a
 * failure.) */
static bool io_seen, timer_seen;

static void *byte_reader(void *arg)
{
    char c;
    CHECK_EQ(corio_stream_read(arg, &c, 1), 1);
    CHECK_EQ(c, 'x');
    io_seen = true;
    return NULL;
}

static void *short_sleeper(void *arg)
{
    (void)arg;
    CHECK_OK(corio_sleep_ms(1));
    timer_seen = true;
    return NULL;
}

/* Start a reader on a socket pair and a 1 ms sleeper, both parked once
 * this returns; then write the reader's byte. */
static void start_io_and_timer(int sv[2], corio_stream **s, corio_task **r, corio_task **z)
{
    io_seen = timer_seen = false;
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    *s = corio_stream_from_fd(sv[0]);
    CHECK(*s);
    CHECK((*r = corio_spawn(byte_reader, *s)));
    CHECK((*z = corio_spawn(short_sleeper, NULL)));
    CHECK_OK(corio_yield()); /* both wait now */
    CHECK(!io_seen && !timer_seen);
    CHECK_EQ(write(sv[1], "x", 1), 1);
}

static void finish_io_and_timer(int sv[2], corio_stream *s, corio_task *r, corio_task *z)
{
    CHECK_OK(corio_task_join(r, NULL));
    CHECK_OK(corio_task_join(z, NULL));
    corio_stream_close(s);
    close(sv[1]);
}

static void *lone_yield_main(void *arg)
{
    int sv[2];
    corio_stream *s;
    corio_task *r, *z;
    start_io_and_timer(sv, &s, &r, &z);
    long n = 0;
    while (!(io_seen && timer_seen) && n < 1000000000L) {
        CHECK_OK(corio_yield());
        n++;
    }
    CHECK(io_seen && timer_seen);
    finish_io_and_timer(sv, s, r, z);
    return arg;
}

TEST(a_task_yielding_alone_still_lets_io_and_timers_run) { test_run(lone_yield_main, NULL); }

struct pingpong {
    corio_queue *to_b, *to_a;
    long rounds;
};

static void *pong_task(void *arg)
{
    struct pingpong *p = arg;
    void *v;
    for (;;) {
        CHECK_OK(corio_queue_get(p->to_b, &v));
        CHECK_OK(corio_queue_put(p->to_a, v));
        if (!v)
            return NULL;
    }
}

static void *chain_main(void *arg)
{
    int sv[2];
    corio_stream *s;
    corio_task *r, *z;
    corio_queue_config cfg = {.kind = CORIO_QUEUE_FIFO, .capacity = 1};
    struct pingpong p = {corio_queue_new(&cfg), corio_queue_new(&cfg), 0};
    CHECK(p.to_b && p.to_a);
    corio_task *b = corio_spawn(pong_task, &p);
    CHECK(b);
    start_io_and_timer(sv, &s, &r, &z);
    void *v;
    while (!(io_seen && timer_seen) && p.rounds < 1000000000L) {
        p.rounds++;
        CHECK_OK(corio_queue_put(p.to_b, (void *)(intptr_t)p.rounds));
        CHECK_OK(corio_queue_get(p.to_a, &v));
        CHECK_EQ((intptr_t)v, p.rounds);
    }
    CHECK(io_seen && timer_seen);
    CHECK_OK(corio_queue_put(p.to_b, NULL));
    CHECK_OK(corio_queue_get(p.to_a, &v));
    CHECK(v == NULL);
    CHECK_OK(corio_task_join(b, NULL));
    finish_io_and_timer(sv, s, r, z);
    corio_queue_free(p.to_b);
    corio_queue_free(p.to_a);
    return arg;
}

TEST(tasks_handing_off_to_each_other_still_let_io_and_timers_run) { test_run(chain_main, NULL); }
