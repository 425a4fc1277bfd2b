/*
 * Introspection and debug mode (src/core/introspect.c, src/core/debug.c):
 * corio_all_tasks, the task dump on demand and on a signal (names, states,
 * waits, spawn sites, backtraces of suspended tasks, all without disturbing
 * them), debug mode's slow-step warning and its report of task handles
 * never joined or detached.
 *
 * The executable is linked with -rdynamic (tests/CMakeLists.txt), so the
 * non-static functions below have names dladdr can find: the spawn site
 * (introspect_spawn_site) and the functions tasks park in
 * (introspect_parked_here, introspect_sleeping_here) must show by name.
 * stderr is captured in a temporary file for the reports written there.
 */
#include "runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

/* ---- helpers ---- */

/* Spawn from a named function, so each task's spawn site names it. */
__attribute__((noinline)) corio_task *introspect_spawn_site(const char *name, corio_fn fn, void *arg)
{
    corio_task *t = corio_spawn_named(name, 0, fn, arg);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame the caller */
    return t;
}

__attribute__((noinline)) int introspect_parked_here(corio_event *e)
{
    int r = corio_event_wait(e);
    __asm__ volatile("" ::: "memory");
    return r;
}

__attribute__((noinline)) int introspect_sleeping_here(uint64_t ms)
{
    int r = corio_sleep_ms(ms);
    __asm__ volatile("" ::: "memory");
    return r;
}

static void *event_waiter(void *arg) { return (void *)(intptr_t)introspect_parked_here(arg); }

static void *sleeper(void *arg)
{
    corio_deadline d = corio_deadline_push(500000);
    int r = introspect_sleeping_here(600000);
    corio_deadline_pop(d);
    return (void *)(intptr_t)r;
}

static void *return_arg(void *arg) { return arg; }

/* stderr into a temporary file, and back. */
static int cap_fd = -1, cap_saved = -1;

/* A failing CHECK must reach the real stderr, with what was captured. */
static void uncapture_for_failure(void)
{
    if (cap_saved < 0)
        return;
    dup2(cap_saved, STDERR_FILENO);
    cap_saved = -1;
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    fprintf(stderr, "--- captured stderr ---\n");
    while ((n = pread(cap_fd, buf, sizeof buf, off)) > 0) {
        fwrite(buf, 1, (size_t)n, stderr);
        off += n;
    }
    fprintf(stderr, "--- end of captured stderr ---\n");
}
#define test_fail(...) (uncapture_for_failure(), test_fail(__VA_ARGS__))

static void capture_begin(void)
{
    char path[] = "/tmp/corio_introspect_XXXXXX";
    cap_fd = mkstemp(path);
    CHECK(cap_fd >= 0);
    unlink(path);
    fflush(stderr);
    cap_saved = dup(STDERR_FILENO);
    CHECK(cap_saved >= 0);
    CHECK(dup2(cap_fd, STDERR_FILENO) == STDERR_FILENO);
}

/* What was written to fd so far (NUL-terminated; the caller frees it). */
static char *read_all(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    CHECK(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf);
        }
        ssize_t n = pread(fd, buf + len, cap - 1 - len, (off_t)len);
        CHECK(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    return buf;
}

static char *capture_end(void)
{
    fflush(stderr);
    CHECK(dup2(cap_saved, STDERR_FILENO) == STDERR_FILENO);
    close(cap_saved);
    char *text = read_all(cap_fd);
    close(cap_fd);
    cap_fd = cap_saved = -1;
    return text;
}

/* The block of a dump about one task: from its header line ("task 'x'"
 * at the start of a line) to the next task or the end of the dump.  The
 * caller frees it; fails the test if there is none. */
static char *task_block(const char *dump, const char *head)
{
    size_t hl = strlen(head);
    const char *p = dump;
    while ((p = strstr(p, head)) != NULL && p != dump && p[-1] != '\n')
        p += hl;
    if (!p)
        test_fail(__FILE__, __LINE__, "no block \"%s\" in the dump:\n%s", head, dump);
    const char *end = strstr(p + hl, "\ntask ");
    const char *end2 = strstr(p + hl, "\ncorio: end of task dump");
    if (!end || (end2 && end2 < end))
        end = end2;
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *b = malloc(n + 1);
    CHECK(b);
    memcpy(b, p, n);
    b[n] = 0;
    return b;
}

#define CHECK_HAS(text, needle)                                                                              \
    do {                                                                                                     \
        if (!strstr((text), (needle)))                                                                       \
            test_fail(__FILE__, __LINE__, "\"%s\" not found in:\n%s", (needle), (text));                     \
    } while (0)

#define CHECK_HASNT(text, needle)                                                                            \
    do {                                                                                                     \
        if (strstr((text), (needle)))                                                                        \
            test_fail(__FILE__, __LINE__, "\"%s\" unexpectedly found in:\n%s", (needle), (text));            \
    } while (0)

static bool has_task(corio_task **v, size_t n, corio_task *t)
{
    size_t seen = 0;
    for (size_t i = 0; i < n; i++)
        seen += v[i] == t;
    return seen == 1;
}

/* ---- corio_all_tasks ---- */

static void *all_tasks_main(void *arg)
{
    corio_task *self = corio_current();
    corio_task *out[8];
    CHECK_EQ(corio_all_tasks(NULL, 0), 1);
    CHECK_EQ(corio_all_tasks(out, 8), 1);
    CHECK(out[0] == self);

    corio_event ev;
    corio_event_init(&ev);
    corio_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = corio_spawn(event_waiter, &ev);
    /* Spawned but not started yet: live already. */
    for (int i = 0; i < 8; i++)
        out[i] = (corio_task *)(uintptr_t)0x1;
    CHECK_EQ(corio_all_tasks(out, 8), 4);
    CHECK(has_task(out, 4, self));
    for (int i = 0; i < 3; i++)
        CHECK(has_task(out, 4, t[i]));
    CHECK(out[4] == (corio_task *)(uintptr_t)0x1); /* nothing past the count */

    CHECK_OK(corio_yield()); /* now they wait on the event */
    corio_task *few[3] = {NULL, NULL, (corio_task *)(uintptr_t)0x2};
    CHECK_EQ(corio_all_tasks(few, 2), 4); /* the count, beyond cap */
    CHECK(few[2] == (corio_task *)(uintptr_t)0x2);
    CHECK(few[0] && few[1] && few[0] != few[1]);
    for (int i = 0; i < 2; i++)
        CHECK(few[i] == self || few[i] == t[0] || few[i] == t[1] || few[i] == t[2]);

    CHECK_OK(corio_task_cancel(t[1]));
    CHECK_OK(corio_task_join(t[1], NULL)); /* over: gone from the list */
    CHECK_EQ(corio_all_tasks(out, 8), 3);
    CHECK(has_task(out, 3, self) && has_task(out, 3, t[0]) && has_task(out, 3, t[2]));
    corio_event_set(&ev);
    CHECK_OK(corio_yield()); /* both end; their handles are not joined yet */
    CHECK(corio_task_done(t[0]) && corio_task_done(t[2]));
    CHECK_EQ(corio_all_tasks(out, 8), 1); /* ended tasks are not live */
    CHECK(out[0] == self);
    CHECK_OK(corio_gather((corio_task *[]){t[0], t[2]}, 2, NULL));
    return NULL;
}

TEST(all_tasks_lists_exactly_the_live_tasks)
{
    corio_task *out[4] = {NULL};
    CHECK_EQ(corio_all_tasks(out, 4), 0); /* outside a loop */
    test_run(all_tasks_main, NULL);
    CHECK(out[0] == NULL);
}

/* ---- corio_dump_tasks ---- */

static void *reader(void *arg)
{
    corio_stream *s = arg;
    char c;
    ssize_t n = corio_stream_read(s, &c, 1);
    return (void *)(intptr_t)(n == 1 ? c : n);
}

static void *dump_main(void *arg)
{
    corio_event ev;
    corio_event_init(&ev);
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    corio_stream *rs = corio_stream_from_fd(p[0]);
    CHECK(rs);
    corio_task *waiter = introspect_spawn_site("waiter", event_waiter, &ev);
    corio_task *sleepy = introspect_spawn_site("sleeper", sleeper, NULL);
    corio_task *rd = introspect_spawn_site("reader", reader, rs);
    CHECK(waiter && sleepy && rd);
    CHECK_OK(corio_yield());                                                /* each parks in its wait */
    corio_task *fresh = introspect_spawn_site(NULL, return_arg, (void *)5); /* not started */
    CHECK(fresh);

    char path[] = "/tmp/corio_dump_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_OK(corio_dump_tasks(fd));
    char *dump = read_all(fd);
    close(fd);

    CHECK_HAS(dump, "corio: task dump (backend ");
    CHECK_HAS(dump, "): 5 live task(s)\n");
    CHECK_HAS(dump, "\ncorio: end of task dump\n");

    char *b = task_block(dump, "task 'main' (main)");
    CHECK_HAS(b, ": running");
    CHECK_HAS(b, "(corio_dump_tasks+0x"); /* the running task's own stack */
    CHECK_HAS(b, "(test_run+0x");         /* spawned by corio_run, called there */
    free(b);

    b = task_block(dump, "task 'waiter'");
    CHECK_HAS(b, ": waiting on event");
    CHECK_HAS(b, "  spawned at ");
    CHECK_HAS(b, "(introspect_spawn_site+0x");
    CHECK_HAS(b, "(introspect_parked_here+0x"); /* its backtrace */
    CHECK_HAS(b, "(corio_event_wait+0x");
    CHECK_HAS(b, "    #0 ");
    free(b);

    b = task_block(dump, "task 'sleeper'");
    CHECK_HAS(b, ": waiting on sleep (");
    CHECK_HAS(b, " ms left), deadline in ");
    CHECK_HAS(b, "(introspect_spawn_site+0x");
    CHECK_HAS(b, "(introspect_sleeping_here+0x");
    free(b);

    b = task_block(dump, "task 'reader'");
    CHECK_HAS(b, ": waiting on ");
    char fdtext[32];
    snprintf(fdtext, sizeof fdtext, "(fd %d)", p[0]);
    CHECK_HAS(b, fdtext);
    CHECK_HAS(b, "(introspect_spawn_site+0x");
    CHECK_HAS(b, "(corio_stream_read+0x");
    free(b);

    b = task_block(dump, "task (unnamed)");
    CHECK_HAS(b, ": ready, not started yet");
    CHECK_HAS(b, "(introspect_spawn_site+0x");
    CHECK_HAS(b, "  will run ");
    free(b);
    free(dump);

    /* The dump was invisible to the tasks: each wait ends as it would have. */
    void *r;
    CHECK_OK(corio_task_join(fresh, &r));
    CHECK(r == (void *)5);
    corio_event_set(&ev);
    CHECK_OK(corio_task_join(waiter, &r));
    CHECK_EQ((intptr_t)r, 0);
    CHECK(write(p[1], "x", 1) == 1);
    CHECK_OK(corio_task_join(rd, &r));
    CHECK_EQ((intptr_t)r, 'x');
    CHECK_OK(corio_task_cancel(sleepy));
    CHECK_OK(corio_task_join(sleepy, &r));
    CHECK_ERR((intptr_t)r, -ECANCELED);
    corio_stream_close(rs);
    close(p[1]);

    CHECK_ERR(corio_dump_tasks(-1), -EBADF);
    return NULL;
}

TEST(dump_shows_state_wait_spawn_site_and_backtrace)
{
    CHECK_ERR(corio_dump_tasks(STDERR_FILENO), -EPERM); /* outside a loop */
    test_run(dump_main, NULL);
}

/* A task with too little stack left is listed without a backtrace, rather
 * than risk running the unwinder on it. */
static void *deep_task(void *arg)
{
    char big[12 * 1024];
    memset(big, 1, sizeof big);
    __asm__ volatile("" : : "r"(big) : "memory"); /* the array must really be on the stack */
    int r = introspect_parked_here(arg);
    __asm__ volatile("" : : "r"(big) : "memory");
    return (void *)(intptr_t)(r + big[0] + big[sizeof big - 1] - 2);
}

static void *dump_tight_stack_main(void *arg)
{
    corio_event ev;
    corio_event_init(&ev);
    corio_task *t = corio_spawn_named("deep", 16 * 1024, deep_task, &ev);
    CHECK(t);
    CHECK_OK(corio_yield());
    char path[] = "/tmp/corio_dump_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_OK(corio_dump_tasks(fd));
    char *dump = read_all(fd);
    close(fd);
    char *b = task_block(dump, "task 'deep'");
    CHECK_HAS(b, ": waiting on event");
    CHECK_HAS(b, "  (no backtrace: only ");
    free(b);
    free(dump);
    corio_event_set(&ev);
    void *r;
    CHECK_OK(corio_task_join(t, &r));
    CHECK_EQ((intptr_t)r, 0);
    return NULL;
}

TEST(dump_skips_backtrace_of_task_short_of_stack) { test_run(dump_tight_stack_main, NULL); }

/* ---- dump on a signal ---- */

static volatile sig_atomic_t own_handler_calls;
static void own_handler(int signo) { own_handler_calls++; }

static bool captured_has(const char *needle)
{
    char *text = read_all(cap_fd);
    bool has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

/* Sets the event once the dump's last line is in the captured stderr. */
static void *dump_watcher(void *arg)
{
    uint64_t start = test_ms();
    while (!captured_has("corio: end of task dump\n")) {
        CHECK(test_ms() - start < 60000);
        CHECK_OK(corio_sleep_ms(1));
    }
    corio_event_set(arg);
    return NULL;
}

static void *signal_main(void *arg)
{
    corio_event ev, seen;
    corio_event_init(&ev);
    corio_event_init(&seen);
    CHECK_OK(corio_dump_tasks_on_signal(SIGUSR2));
    CHECK_OK(corio_dump_tasks_on_signal(SIGUSR2)); /* again: no change */
    corio_task *t = introspect_spawn_site("waiter", event_waiter, &ev);
    CHECK_OK(corio_yield());
    CHECK(raise(SIGUSR2) == 0);
    CHECK_EQ(own_handler_calls, 0);
    /* The loop writes the dump at its next turn, with this task parked
     * on the event (not on a timer that might have fired by then). */
    corio_task *w = corio_spawn_named("watcher", 0, dump_watcher, &seen);
    CHECK(w);
    CHECK_OK(introspect_parked_here(&seen));
    CHECK_OK(corio_task_join(w, NULL));
    char *text = read_all(cap_fd);
    char *b = task_block(text, "task 'waiter'");
    CHECK_HAS(b, ": waiting on event");
    CHECK_HAS(b, "(introspect_spawn_site+0x");
    CHECK_HAS(b, "(introspect_parked_here+0x");
    free(b);
    b = task_block(text, "task 'main' (main)");
    CHECK_HAS(b, ": waiting on event"); /* suspended too: the loop wrote the dump */
    CHECK_HAS(b, "(introspect_parked_here+0x");
    free(b);
    free(text);

    /* Off: the program's own handler is back. */
    CHECK_OK(corio_dump_tasks_on_signal(0));
    CHECK(raise(SIGUSR2) == 0);
    CHECK_EQ(own_handler_calls, 1);
    /* On again, and left on: the loop's end restores the handler. */
    CHECK_OK(corio_dump_tasks_on_signal(SIGUSR2));
    corio_event_set(&ev);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

TEST(dump_on_signal_writes_report_at_next_turn)
{
    CHECK_ERR(corio_dump_tasks_on_signal(SIGUSR2), -EPERM); /* outside a loop */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR2, &sa, &old) == 0);
    capture_begin();
    test_run(signal_main, NULL);
    free(capture_end());
    CHECK(raise(SIGUSR2) == 0);
    CHECK_EQ(own_handler_calls, 2);
    CHECK(sigaction(SIGUSR2, &old, NULL) == 0);
}

static void *bad_signal_main(void *arg)
{
    CHECK_ERR(corio_dump_tasks_on_signal(SIGKILL), -EINVAL);
    CHECK_ERR(corio_dump_tasks_on_signal(SIGSTOP), -EINVAL);
    CHECK_ERR(corio_dump_tasks_on_signal(SIGSEGV), -EINVAL);
    CHECK_ERR(corio_dump_tasks_on_signal(-1), -EINVAL);
    CHECK_ERR(corio_dump_tasks_on_signal(NSIG), -EINVAL);
    CHECK_OK(corio_dump_tasks_on_signal(0)); /* off while off: nothing to do */
    return NULL;
}

TEST(dump_on_signal_rejects_signals_it_cannot_serve)
{
    CHECK_ERR(corio_dump_tasks_on_signal(SIGKILL), -EINVAL);
    test_run(bad_signal_main, NULL);
}

/* Another loop (thread) owns the signal: -EBUSY until its loop ends. */
static int to_main[2], to_other[2];

static void *other_loop_main(void *arg)
{
    CHECK_OK(corio_dump_tasks_on_signal(SIGUSR2));
    CHECK(write(to_main[1], "1", 1) == 1);
    corio_stream *s = corio_stream_from_fd(to_other[0]);
    CHECK(s);
    char c;
    CHECK_EQ(corio_stream_read(s, &c, 1), 1);
    corio_stream_close(s);
    return NULL;
}

static void *other_loop_thread(void *arg)
{
    test_run(other_loop_main, NULL);
    return NULL;
}

static void *busy_main(void *arg)
{
    corio_stream *s = corio_stream_from_fd(to_main[0]);
    CHECK(s);
    char c;
    CHECK_EQ(corio_stream_read(s, &c, 1), 1);
    CHECK_ERR(corio_dump_tasks_on_signal(SIGUSR2), -EBUSY);
    CHECK_ERR(corio_dump_tasks_on_signal(SIGUSR1), -EBUSY);
    CHECK(write(to_other[1], "1", 1) == 1);
    corio_stream_close(s);
    return NULL;
}

static void *free_again_main(void *arg)
{
    CHECK_OK(corio_dump_tasks_on_signal(SIGUSR1));
    return NULL;
}

TEST(dump_on_signal_is_busy_while_another_loop_has_it)
{
    CHECK(pipe2(to_main, O_CLOEXEC) == 0);
    CHECK(pipe2(to_other, O_CLOEXEC) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_loop_thread, NULL) == 0);
    test_run(busy_main, NULL);
    CHECK(pthread_join(th, NULL) == 0);
    close(to_main[1]);
    close(to_other[1]);
    test_run(free_again_main, NULL); /* the other loop's end let it go */
}

/* ---- debug mode ---- */

static void *hog(void *arg)
{
    uint64_t until = corio_clock_read_ns() + (uint64_t)(uintptr_t)arg * 1000000u;
    while (corio_clock_read_ns() < until) {
    }
    return NULL;
}

static void *slow_step_main(void *arg)
{
    corio_task *t = introspect_spawn_site("hog", hog, arg);
    CHECK(t);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

static char *run_captured(const corio_config *cfg, corio_fn fn, void *arg)
{
    capture_begin();
    int r = corio_run(cfg, fn, arg, NULL);
    char *text = capture_end();
    CHECK_OK(r);
    return text;
}

/* The number right after needle in the first line of text that starts
 * with line_start, or -1.  Other tasks may be reported too (under
 * valgrind the main task's spawn, which takes a backtrace, can pass the
 * limit itself), so the line is picked by its task. */
static long number_after(const char *text, const char *line_start, const char *needle)
{
    const char *line = strstr(text, line_start);
    if (!line)
        return -1;
    const char *end = strchr(line, '\n');
    const char *p = strstr(line, needle);
    return p && (!end || p < end) ? strtol(p + strlen(needle), NULL, 10) : -1;
}

TEST(debug_mode_warns_about_a_step_that_holds_the_loop)
{
    /* 20 ms allowed, 60 ms taken. */
    corio_config cfg = {.debug = 1, .slow_step_ms = 20};
    char *text = run_captured(&cfg, slow_step_main, (void *)(uintptr_t)60);
    CHECK_HAS(text, "corio: task 'hog' (spawned at ");
    CHECK_HAS(text, "(introspect_spawn_site+0x");
    CHECK(number_after(text, "corio: task 'hog'", ") held the loop for ") >= 60);
    CHECK_HAS(text, " ms\n");
    free(text);

    /* The same from the environment. */
    setenv("CORIO_DEBUG", "1", 1);
    setenv("CORIO_DEBUG_SLOW_MS", "20", 1);
    text = run_captured(NULL, slow_step_main, (void *)(uintptr_t)60);
    CHECK_HAS(text, "corio: task 'hog' (spawned at ");
    CHECK(number_after(text, "corio: task 'hog'", ") held the loop for ") >= 60);
    free(text);

    /* The config's -1 overrides the environment: off. */
    corio_config off = {.debug = -1, .slow_step_ms = 20};
    text = run_captured(&off, slow_step_main, (void *)(uintptr_t)60);
    CHECK_HASNT(text, "held the loop");
    free(text);
    unsetenv("CORIO_DEBUG");
    unsetenv("CORIO_DEBUG_SLOW_MS");

    /* A threshold 10,000 times the step: no warning. */
    corio_config lax = {.debug = 1, .slow_step_ms = 600000};
    text = run_captured(&lax, slow_step_main, (void *)(uintptr_t)60);
    CHECK_HASNT(text, "held the loop");
    free(text);
}

static void *unjoined_main(void *arg)
{
    CHECK(introspect_spawn_site("forgotten", return_arg, NULL));
    CHECK(introspect_spawn_site("leftover", sleeper, NULL)); /* cancelled when main returns */
    corio_task *d = introspect_spawn_site("detached", return_arg, NULL);
    CHECK_OK(corio_task_detach(d));
    corio_task *j = introspect_spawn_site("joined", return_arg, NULL);
    CHECK_OK(corio_task_join(j, NULL));
    CHECK_OK(corio_yield()); /* forgotten ends, leftover parks */
    return NULL;
}

TEST(debug_mode_reports_handles_never_joined_or_detached)
{
    corio_config cfg = {.debug = 1};
    char *text = run_captured(&cfg, unjoined_main, NULL);
    CHECK_HAS(text, "corio: task 'forgotten' (spawned at ");
    CHECK_HAS(text, "(introspect_spawn_site+0x");
    CHECK_HAS(text, ") ended, but its handle was never joined or detached\n");
    CHECK_HAS(text, "corio: task 'leftover' (spawned at ");
    CHECK_HAS(text, ") was cancelled and ended, but its handle was never joined or detached\n");
    CHECK_HASNT(text, "'detached'");
    CHECK_HASNT(text, "'joined'");
    CHECK_HASNT(text, "'main'");
    free(text);

    corio_config off = {.debug = -1};
    text = run_captured(&off, unjoined_main, NULL);
    CHECK_HASNT(text, "never joined");
    free(text);
}
