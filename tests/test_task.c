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
static void mark(char c) { order[order_len++] = c; order[order_len] = 0; }

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
    CHECK_OK(corio_join(t, &res));
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
    mark((char)('0' + ms / 10));
    return (void *)(ms * 2);
}

static void *sleep_order_main(void *arg)
{
    order_len = 0;
    uint64_t t0 = test_ms();
    corio_task *t[4] = {corio_spawn(sleeper, (void *)30), corio_spawn(sleeper, (void *)10),
                        corio_spawn(sleeper, (void *)40), corio_spawn(sleeper, (void *)20)};
    void *res[4];
    CHECK_OK(corio_gather(t, 4, res));
    CHECK_STR(order, "1234");
    CHECK(res[0] == (void *)60 && res[1] == (void *)20 && res[2] == (void *)80 && res[3] == (void *)40);
    uint64_t el = test_ms() - t0;
    CHECK(el >= 40);
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
        corio_detach(corio_spawn(detached_child, &n));
    CHECK_OK(corio_sleep_ms(50));
    CHECK_EQ(n, 10);
    corio_task *t = corio_spawn(return_arg, NULL);
    CHECK_OK(corio_yield());
    CHECK(corio_task_done(t));
    corio_detach(t); /* finished and detached: freed at once */
    return NULL;
}

TEST(detached_tasks_run_to_completion) { test_run(detach_main, NULL); }

static void *join_self_main(void *arg)
{
    CHECK_ERR(corio_join(corio_current(), NULL), -EINVAL);
    CHECK_STR(corio_task_name(corio_current()), "main");
    corio_task *t = corio_spawn_named("a-rather-long-task-name-that-gets-truncated-somewhere", 0, return_arg, NULL);
    CHECK_EQ(strlen(corio_task_name(t)), 31);
    CHECK_OK(corio_join(t, NULL));
    return NULL;
}

TEST(join_self_is_einval_and_names_are_kept) { test_run(join_self_main, NULL); }

/* ---- cancellation ----------------------------------------------------- */

static void *cancel_victim(void *arg)
{
    int *log = arg;
    log[0] = corio_sleep_ms(10000);
    log[1] = corio_sleep_ms(1);  /* sticky */
    log[2] = corio_yield();      /* sticky */
    log[3] = corio_cancelled();
    return (void *)7;
}

static void *cancel_sleep_main(void *arg)
{
    int log[4] = {1, 1, 1, 0};
    uint64_t t0 = test_ms();
    corio_task *t = corio_spawn(cancel_victim, log);
    CHECK_OK(corio_sleep_ms(5));
    CHECK_OK(corio_cancel(t));
    void *res;
    CHECK_OK(corio_join(t, &res));
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
    CHECK_OK(corio_cancel(t));
    CHECK_OK(corio_join(t, NULL));
    CHECK_ERR(r, -ECANCELED);
    t = corio_spawn(return_arg, NULL);
    CHECK_OK(corio_yield());
    CHECK_ERR(corio_cancel(t), -EALREADY);
    CHECK_OK(corio_join(t, NULL));
    return NULL;
}

TEST(cancel_before_first_run_and_after_end) { test_run(cancel_before_start_main, NULL); }

static void *self_cancel_main(void *arg)
{
    CHECK_OK(corio_cancel(corio_current()));
    CHECK(corio_cancelled());
    CHECK_ERR(corio_sleep_ms(1), -ECANCELED);
    return (void *)1;
}

TEST(self_cancel_surfaces_at_next_wait) { CHECK(test_run(self_cancel_main, NULL) == (void *)1); }

static void *long_sleeper(void *arg)
{
    return (void *)(intptr_t)corio_sleep_ms(10000);
}

static void *joiner_task(void *arg)
{
    return (void *)(intptr_t)corio_join(arg, NULL);
}

static void *cancel_join_main(void *arg)
{
    corio_task *target = corio_spawn(long_sleeper, NULL);
    corio_task *j = corio_spawn(joiner_task, target);
    CHECK_OK(corio_sleep_ms(5));
    CHECK_OK(corio_cancel(j));
    void *r;
    CHECK_OK(corio_join(j, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK(!corio_task_done(target)); /* the joined task is not affected */
    CHECK_OK(corio_cancel(target));
    CHECK_OK(corio_join(target, &r)); /* and can still be joined */
    CHECK_ERR((intptr_t)r, -ECANCELED);
    return NULL;
}

TEST(cancel_during_join_leaves_target_joinable) { test_run(cancel_join_main, NULL); }

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
    CHECK_OK(corio_cancel(g));
    void *r;
    CHECK_OK(corio_join(g, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    CHECK_EQ(cleanup_ran, 3); /* children were cancelled and awaited */
    return NULL;
}

TEST(cancel_gather_cancels_and_awaits_children) { test_run(cancel_gather_main, NULL); }

static void *orphan_main(void *arg)
{
    cleanup_ran = 0;
    for (int i = 0; i < 5; i++)
        corio_detach(corio_spawn(cleanup_child, NULL));
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
    CHECK_ERR(corio_sleep_ms(10000), -ETIMEDOUT);
    CHECK(corio_deadline_expired());
    CHECK_ERR(corio_yield(), -ETIMEDOUT); /* every wait inside the scope fails */
    corio_deadline_pop(d);
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
    CHECK_ERR(corio_sleep_ms(10000), -ETIMEDOUT);
    corio_deadline_pop(inner);
    corio_deadline_pop(outer);
    CHECK(test_ms() - t0 < 2000);

    /* nested: an inner shorter deadline wins, the outer one still holds after */
    outer = corio_deadline_push(200);
    inner = corio_deadline_push(10);
    CHECK_ERR(corio_sleep_ms(100), -ETIMEDOUT);
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
    CHECK_ERR(corio_join(t, NULL), -ETIMEDOUT);
    corio_deadline_pop(d);
    CHECK_OK(corio_cancel(t));
    CHECK_OK(corio_join(t, NULL));
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
static void *stall_child(void *arg) { return (void *)(intptr_t)corio_join(stall_main_task, NULL); }

static void *stall_main(void *arg)
{
    stall_main_task = corio_current();
    corio_task *t = corio_spawn_named("stuck-child", 0, stall_child, NULL);
    corio_join(t, NULL);
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
    corio_join(t, NULL);
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
