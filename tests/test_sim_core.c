/*
 * The sim backend's core, through the public API only (corio/sim.h):
 * virtual time (exact, and fast in wall time), paused time for a user's
 * unit test, the seeded order of ready tasks, replay of the trace hash in
 * one process and across processes, the program's own generator and trace
 * lines, failure reports, stall detection, simulated hosts (start, crash,
 * restart) and the thread pool's inline work.  The network and the disk
 * have test files of their own.  Registered once, as sim/core/<name>.
 */
#include "runner.h"

#include <corio/sim.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000ull
#define SEC 1000000000ull

static const corio_sim_faults no_faults; /* every fault off: paused time */

/* Run fn(arg) under the sim with this seed and faults (NULL: swarm),
 * quietly, filling *rep.  Returns corio_run's result. */
static int sim_run(uint64_t seed, const corio_sim_faults *faults, corio_fn fn, void *arg,
                   corio_sim_report *rep)
{
    corio_sim_config sc = {.seed = seed, .faults = faults, .report = rep, .quiet = 1};
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc};
    return corio_run(&cfg, fn, arg, NULL);
}

/* Run fn under the sim with fd 2 sent to a temporary file; returns what was
 * written there (static buffer) and corio_run's result in *rc. */
static const char *sim_run_stderr(const corio_sim_config *sc, corio_fn fn, void *arg, int *rc)
{
    static char out[16384];
    FILE *tmp = tmpfile();
    CHECK(tmp);
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0);
    CHECK(dup2(fileno(tmp), 2) == 2);
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = sc};
    *rc = corio_run(&cfg, fn, arg, NULL);
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = 0;
    fclose(tmp);
    return out;
}

/* ------------------------------------------------------------------ */
/* Virtual time                                                        */
/* ------------------------------------------------------------------ */

#define HOUR_TASKS 1000
#define HOUR_STEPS 60

static int hour_bad;

/* Task i starts i ms late, then sleeps a minute 60 times: every wake-up at
 * exactly start + i ms + k minutes. */
static void *minute_sleeper(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg, t0 = corio_now_ns();
    if (corio_sleep_ms(i) != 0 || corio_now_ns() - t0 != i * MS)
        hour_bad++;
    for (uint64_t k = 1; k <= HOUR_STEPS; k++)
        if (corio_sleep_ms(60000) != 0 || corio_now_ns() - t0 != i * MS + k * 60 * SEC)
            hour_bad++;
    return NULL;
}

static void *forever(void *arg)
{
    (void)arg;
    corio_sleep_ms(CORIO_NO_TIMEOUT / 2);
    return NULL;
}

static void *hour_main(void *arg)
{
    (void)arg;
    uint64_t t0 = corio_now_ns();
    CHECK_STR(corio_backend_name(), "sim");
    corio_task *ts[HOUR_TASKS];
    for (unsigned i = 0; i < HOUR_TASKS; i++)
        CHECK(ts[i] = corio_spawn(minute_sleeper, (void *)(uintptr_t)i));
    /* A deadline scope: the sleep inside ends at exactly 30 minutes. */
    corio_deadline d = corio_deadline_push(30 * 60 * 1000);
    CHECK_ERR(corio_sleep_ms(3600 * 1000), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_EQ(corio_now_ns() - t0, 30 * 60 * SEC);
    /* An event nobody sets, waited for with a 10-minute deadline. */
    corio_event ev;
    corio_event_init(&ev);
    d = corio_deadline_push(10 * 60 * 1000);
    CHECK_ERR(corio_event_wait(&ev), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_EQ(corio_now_ns() - t0, 40 * 60 * SEC);
    /* wait_for: a task that would sleep forever, given 5 minutes. */
    corio_task *f = corio_spawn(forever, NULL);
    CHECK_ERR(corio_task_wait_for(f, 5 * 60 * 1000, NULL), -CORIO_EDEADLINE);
    CHECK_EQ(corio_now_ns() - t0, 45 * 60 * SEC);
    CHECK_OK(corio_gather(ts, HOUR_TASKS, NULL));
    CHECK_EQ(hour_bad, 0);
    /* The last one started 999 ms late. */
    CHECK_EQ(corio_now_ns() - t0, 3600 * SEC + (HOUR_TASKS - 1) * MS);
    return NULL;
}

TEST(virtual_hour_is_exact_and_fast)
{
    uint64_t wall = test_ms();
    corio_sim_report rep;
    CHECK_OK(sim_run(3, &no_faults, hour_main, NULL, &rep));
    CHECK_EQ(rep.virtual_ns, 3600 * SEC + (HOUR_TASKS - 1) * MS);
    CHECK_EQ(rep.faults, 0);
    CHECK_EQ(rep.failed, 0);
    CHECK(rep.events > HOUR_TASKS * HOUR_STEPS);
    uint64_t took = test_ms() - wall;
    CHECK(took < 5000 * TEST_SLOWDOWN * (TEST_VALGRIND ? 20 : 1));
}

/* A user's helper under test: call op until it succeeds, at most tries
 * times, sleeping base_ms, then twice as long each time. */
static int retry_with_backoff(int (*op)(void *), void *arg, unsigned tries, uint64_t base_ms)
{
    int r = -EAGAIN;
    for (unsigned i = 0; i < tries; i++) {
        if ((r = op(arg)) == 0)
            return 0;
        if (i + 1 < tries && corio_sleep_ms(base_ms << i) != 0)
            return -ECANCELED;
    }
    return r;
}

typedef struct flaky {
    unsigned fail_first, calls;
    uint64_t start, at[16];
} flaky;

static int flaky_op(void *arg)
{
    flaky *f = arg;
    f->at[f->calls] = corio_now_ns() - f->start;
    return f->calls++ < f->fail_first ? -EAGAIN : 0;
}

static void *backoff_main(void *arg)
{
    (void)arg;
    flaky f = {.fail_first = 4, .start = corio_now_ns()};
    CHECK_OK(retry_with_backoff(flaky_op, &f, 6, 100));
    CHECK_EQ(f.calls, 5);
    static const uint64_t want[] = {0, 100, 300, 700, 1500};
    for (unsigned i = 0; i < 5; i++)
        CHECK_EQ(f.at[i], want[i] * MS);
    /* Giving up: 3 tries, the last error comes back after 100 + 200 ms. */
    flaky g = {.fail_first = 99, .start = corio_now_ns()};
    CHECK_ERR(retry_with_backoff(flaky_op, &g, 3, 100), -EAGAIN);
    CHECK_EQ(g.calls, 3);
    CHECK_EQ(corio_now_ns() - g.start, 300 * MS);
    return NULL;
}

TEST(paused_time_tests_a_retry_helper_exactly)
{
    /* A day's worth of backoff would not matter either: nothing waits. */
    uint64_t wall = test_ms();
    corio_sim_report rep;
    CHECK_OK(sim_run(1, &no_faults, backoff_main, NULL, &rep));
    CHECK_EQ(rep.virtual_ns, 1800 * MS);
    CHECK(test_ms() - wall < 5000 * TEST_SLOWDOWN);
}

static void *jitter_main(void *arg)
{
    (void)arg;
    unsigned late = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t t0 = corio_now_ns();
        CHECK_OK(corio_sleep_ms(10));
        uint64_t took = corio_now_ns() - t0;
        CHECK(took >= 10 * MS);          /* never early */
        CHECK(took <= 10 * MS + 500000); /* at most jitter_max_us late */
        late += took > 10 * MS;
    }
    CHECK(late > 0);
    return NULL;
}

TEST(timer_jitter_is_late_never_early)
{
    corio_sim_faults f = {.jitter = 1.0, .jitter_max_us = 500};
    corio_sim_report rep;
    CHECK_OK(sim_run(9, &f, jitter_main, NULL, &rep));
    CHECK(rep.faults >= 1);
}

/* ------------------------------------------------------------------ */
/* Seeded order                                                        */
/* ------------------------------------------------------------------ */

static unsigned order_code;

static void *order_task(void *arg)
{
    order_code = order_code * 10 + (unsigned)(uintptr_t)arg;
    return NULL;
}

static void *order_main(void *arg)
{
    (void)arg;
    corio_task *ts[5];
    order_code = 0;
    for (uintptr_t i = 0; i < 5; i++)
        CHECK(ts[i] = corio_spawn(order_task, (void *)(i + 1)));
    CHECK_OK(corio_gather(ts, 5, NULL));
    return NULL;
}

TEST(seed_decides_the_order_of_ready_tasks)
{
    unsigned codes[50], distinct = 0;
    for (unsigned s = 0; s < 50; s++) {
        CHECK_OK(sim_run(s + 1, &no_faults, order_main, NULL, NULL));
        codes[s] = order_code;
        /* a permutation of 1..5 */
        unsigned seen = 0;
        for (unsigned c = order_code; c; c /= 10)
            seen |= 1u << (c % 10);
        CHECK_EQ(seen, 0x3e);
        bool is_new = true;
        for (unsigned j = 0; j < s; j++)
            is_new &= codes[j] != codes[s];
        distinct += is_new;
    }
    CHECK(distinct > 10);
    for (unsigned s = 0; s < 50; s++) {
        CHECK_OK(sim_run(s + 1, &no_faults, order_main, NULL, NULL));
        CHECK_EQ(order_code, codes[s]);
    }
}

/* ------------------------------------------------------------------ */
/* Replay                                                              */
/* ------------------------------------------------------------------ */

static void *busy_worker(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    for (int k = 0; k < 20; k++) {
        corio_sleep_ms(corio_sim_rand() % 50);
        if (corio_sim_chance(0.3))
            corio_yield();
        if ((uintptr_t)k % 7 == i % 7)
            corio_sim_event("worker %u step %d", (unsigned)i, k);
    }
    return (void *)(i * 3);
}

static void *blob_of_memory(void *arg)
{
    /* Addresses differ from run to run (ASLR, malloc): none may reach the
     * trace.  Allocate so the heap layout changes between runs. */
    size_t n = (size_t)(uintptr_t)arg;
    void *p = malloc(n);
    corio_sleep_ms(1);
    free(p);
    return NULL;
}

/* The workload whose trace must replay: tasks with random sleeps, yields,
 * events, a lock, and trace lines of its own. */
static void *replay_main(void *arg)
{
    (void)arg;
    corio_task *ts[16];
    for (uintptr_t i = 0; i < 16; i++)
        CHECK(ts[i] = corio_spawn(busy_worker, (void *)i));
    for (int i = 0; i < 8; i++)
        corio_task_detach(corio_spawn(blob_of_memory, (void *)(uintptr_t)(1000 + i * 4096)));
    void *res[16];
    CHECK_OK(corio_gather(ts, 16, res));
    for (uintptr_t i = 0; i < 16; i++)
        CHECK(res[i] == (void *)(i * 3));
    return NULL;
}

static uint64_t replay_hash(uint64_t seed, const corio_sim_faults *faults)
{
    corio_sim_report rep;
    CHECK_OK(sim_run(seed, faults, replay_main, NULL, &rep));
    CHECK_EQ(rep.seed, seed);
    CHECK_EQ(rep.failed, 0);
    return rep.trace_hash;
}

TEST(same_seed_same_trace_in_one_process)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        uint64_t h = replay_hash(seed, NULL);
        /* Shift the heap between runs: addresses must not matter. */
        void *junk = malloc(seed * 777);
        CHECK_EQ(replay_hash(seed, NULL), h);
        CHECK_EQ(replay_hash(seed, NULL), h);
        free(junk);
        CHECK_EQ(replay_hash(seed, &no_faults), replay_hash(seed, &no_faults));
        /* Swarm (NULL) is not "all off": the seed's own mix of faults. */
        CHECK(replay_hash(seed, &no_faults) != h);
    }
}

TEST(swarm_seeds_pick_different_faults)
{
    /* Only jitter touches a program without I/O: some seeds turn it on
     * (and it fires among 320 sleeps), others leave it off. */
    unsigned with = 0, without = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        corio_sim_report rep;
        CHECK_OK(sim_run(seed, NULL, replay_main, NULL, &rep));
        if (rep.faults)
            with++;
        else
            without++;
    }
    CHECK(with > 0 && without > 0);
}

TEST(different_seeds_different_traces)
{
    uint64_t h[20];
    for (unsigned i = 0; i < 20; i++) {
        h[i] = replay_hash(100 + i, NULL);
        for (unsigned j = 0; j < i; j++)
            CHECK(h[i] != h[j]);
    }
}

/* Run in a child process by the next test, from a fresh exec (so with
 * other addresses): the seed comes from CORIO_SIM_SEED, the closing line
 * goes to stderr.  On its own (ctest) it runs seed 1. */
TEST(replay_child)
{
    setenv("CORIO_BACKEND", "sim", 0); /* run by hand: the sim all the same */
    test_run(replay_main, NULL);
}

/* Exec this test binary with CORIO_BACKEND=sim CORIO_SIM_SEED=seed running
 * `test` (plus extra env), and return its stderr; *status gets its exit
 * status. */
static char *spawn_self(const char *test, const char *seed, const char *extra_env, int *status)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        setenv("CORIO_BACKEND", "sim", 1);
        unsetenv("CORIO_SIM_FAULTS");
        if (seed)
            setenv("CORIO_SIM_SEED", seed, 1);
        else
            unsetenv("CORIO_SIM_SEED");
        if (extra_env)
            putenv((char *)extra_env);
        /* argv[0], not /proc/self/exe: under valgrind that is the tool */
        execl(program_invocation_name, "test_sim_core", test, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 65536, n = 0;
    char *out = malloc(cap);
    CHECK(out);
    ssize_t r;
    while ((r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    CHECK(waitpid(pid, status, 0) == pid);
    return out;
}

TEST(same_seed_same_trace_across_processes)
{
    char want[128];
    snprintf(want, sizeof want, "corio: sim seed 4242: trace %016llx\n",
             (unsigned long long)replay_hash(4242, NULL));
    for (int i = 0; i < 3; i++) {
        int st;
        char *out = spawn_self("replay_child", "4242", NULL, &st);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        if (!strstr(out, want))
            test_fail(__FILE__, __LINE__, "child said \"%s\", expected the line \"%s\"", out, want);
        free(out);
    }
    /* No seed in the environment: seed 1.  A bad one: a clear error. */
    int st;
    char *out = spawn_self("replay_child", NULL, NULL, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "corio: sim seed 1: trace "));
    free(out);
    out = spawn_self("replay_child", "12x", NULL, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    CHECK(strstr(out, "CORIO_SIM_SEED=12x is not a seed"));
    free(out);
    /* A leading zero is still decimal: 010 is seed 10. */
    out = spawn_self("replay_child", "010", NULL, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "corio: sim seed 10: trace "));
    free(out);
}

TEST(faults_off_from_the_environment)
{
    /* CORIO_SIM_FAULTS=0 is the zeroed struct: the hash of seed 8 equals
     * an in-process run with every fault off. */
    char want[128];
    snprintf(want, sizeof want, "corio: sim seed 8: trace %016llx\n",
             (unsigned long long)replay_hash(8, &no_faults));
    int st;
    char *out = spawn_self("replay_child", "8", "CORIO_SIM_FAULTS=0", &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!strstr(out, want))
        test_fail(__FILE__, __LINE__, "child said \"%s\", expected the line \"%s\"", out, want);
    free(out);
}

static uint64_t rand_seq[2][10];
static int rand_which;

static void *rand_main(void *arg)
{
    (void)arg;
    CHECK_EQ(corio_sim_seed(), (uint64_t)(uintptr_t)arg);
    for (int i = 0; i < 10; i++)
        rand_seq[rand_which][i] = corio_sim_rand();
    CHECK_EQ(corio_sim_chance(0), 0);
    CHECK_EQ(corio_sim_chance(-1), 0);
    CHECK_EQ(corio_sim_chance(1), 1);
    unsigned hits = 0;
    for (int i = 0; i < 1000; i++)
        hits += corio_sim_chance(0.25) ? 1 : 0;
    CHECK(hits > 150 && hits < 350);
    return NULL;
}

TEST(program_randomness_replays)
{
    rand_which = 0;
    CHECK_OK(sim_run(77, NULL, rand_main, (void *)77, NULL));
    rand_which = 1;
    CHECK_OK(sim_run(77, NULL, rand_main, (void *)77, NULL));
    CHECK_MEM(rand_seq[0], rand_seq[1], sizeof rand_seq[0]);
    CHECK_OK(sim_run(78, NULL, rand_main, (void *)78, NULL));
    CHECK(memcmp(rand_seq[0], rand_seq[1], sizeof rand_seq[0]) != 0);
    /* Outside a run: 0, and no seed. */
    CHECK_EQ(corio_sim_rand(), 0);
    CHECK_EQ(corio_sim_chance(1), 0);
    CHECK_EQ(corio_sim_seed(), 0);
}

static void *event_line_main(void *arg)
{
    corio_sleep_ms(5);
    if (arg)
        corio_sim_event("%s", (const char *)arg);
    corio_sleep_ms(5);
    return NULL;
}

TEST(program_trace_lines_change_the_hash)
{
    corio_sim_report a, b, c, d;
    CHECK_OK(sim_run(5, &no_faults, event_line_main, NULL, &a));
    CHECK_OK(sim_run(5, &no_faults, event_line_main, "hello", &b));
    CHECK_OK(sim_run(5, &no_faults, event_line_main, "hellp", &c));
    CHECK_OK(sim_run(5, &no_faults, event_line_main, "hello", &d));
    CHECK(a.trace_hash != b.trace_hash);
    CHECK(b.trace_hash != c.trace_hash);
    CHECK_EQ(b.trace_hash, d.trace_hash);
    CHECK_EQ(b.events, a.events + 1);
}

/* ------------------------------------------------------------------ */
/* Failure reports and stalls                                          */
/* ------------------------------------------------------------------ */

static void *failing_main(void *arg)
{
    (void)arg;
    corio_sim_event("before the failure");
    corio_sleep_ms(250);
    corio_sim_fail("x=%d", 3);
    return NULL;
}

TEST(fail_marks_the_run_and_prints_seed_and_events)
{
    corio_sim_report rep;
    corio_sim_config sc = {.seed = 42, .faults = &no_faults, .report = &rep, .trace_tail = 4};
    int rc;
    const char *err = sim_run_stderr(&sc, failing_main, NULL, &rc);
    CHECK_OK(rc); /* the run goes on: the caller decides */
    CHECK_EQ(rep.failed, 1);
    CHECK_EQ(rep.seed, 42);
    if (!strstr(err, "corio: sim seed 42: invariant broken: x=3\n"))
        test_fail(__FILE__, __LINE__, "stderr: %s", err);
    CHECK(strstr(err, "corio: sim seed 42: last 4 of "));
    CHECK(strstr(err, "clock")); /* the jump to 0.25 s is among the last events */
    CHECK(strstr(err, "0.250000"));
    CHECK(strstr(err, "corio: sim seed 42: trace "));
    /* quiet: no closing line, but a failure still speaks. */
    sc.quiet = 1;
    err = sim_run_stderr(&sc, failing_main, NULL, &rc);
    CHECK(strstr(err, "invariant broken: x=3"));
    CHECK(!strstr(err, ": trace "));
    sc.quiet = 0;
    err = sim_run_stderr(&sc, event_line_main, NULL, &rc);
    CHECK_OK(rc);
    CHECK(!strstr(err, "invariant"));
    char want[96];
    snprintf(want, sizeof want, "corio: sim seed 42: trace %016llx\n", (unsigned long long)rep.trace_hash);
    (void)want;
    CHECK(strstr(err, "corio: sim seed 42: trace "));
}

static corio_event never;

static void *waits_forever(void *arg)
{
    (void)arg;
    int r = corio_event_wait(&never);
    return (void *)(intptr_t)r;
}

static void *stall_main(void *arg)
{
    (void)arg;
    corio_event_init(&never);
    corio_task *a = corio_spawn_named("stuck-a", 0, waits_forever, NULL);
    corio_task *b = corio_spawn_named("stuck-b", 0, waits_forever, NULL);
    CHECK(a && b);
    /* Time still moves while a timer is left; then nothing can happen. */
    CHECK_OK(corio_sleep_ms(90 * 1000));
    void *r;
    CHECK_ERR(corio_task_join(a, &r), -ECANCELED);
    corio_task_join(b, NULL);
    return NULL;
}

TEST(a_stall_is_reported_not_hung)
{
    corio_sim_report rep;
    corio_sim_config sc = {.seed = 2, .report = &rep, .quiet = 1};
    int rc;
    const char *err = sim_run_stderr(&sc, stall_main, NULL, &rc);
    CHECK_ERR(rc, -CORIO_EDEADLOCK);
    CHECK(strstr(err, "corio: loop stalled"));
    CHECK(strstr(err, "task 'stuck-a'"));
    CHECK(strstr(err, "task 'stuck-b'"));
    CHECK(rep.virtual_ns >= 90 * SEC);
}

static void *channel_stall_main(void *arg)
{
    (void)arg;
    corio_channel *ch = corio_channel_new(1, sizeof(int));
    CHECK(ch);
    int v;
    /* Outside the sim another thread might send; inside, nobody can. */
    CHECK_ERR(corio_channel_recv(ch, &v), -ECANCELED);
    corio_channel_free(ch);
    return NULL;
}

TEST(a_stall_on_a_channel_is_reported_too)
{
    corio_sim_config sc = {.seed = 3, .quiet = 1};
    int rc;
    const char *err = sim_run_stderr(&sc, channel_stall_main, NULL, &rc);
    CHECK_ERR(rc, -CORIO_EDEADLOCK);
    CHECK(strstr(err, "waiting in channel recv"));
}

/* ------------------------------------------------------------------ */
/* Debug mode and task dumps                                           */
/* ------------------------------------------------------------------ */

static void *napper(void *arg)
{
    (void)arg;
    corio_sleep_ms(1000);
    return NULL;
}

static void *dump_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    corio_task *t = corio_spawn_named("napper", 0, napper, NULL);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_dump_tasks(p[1]));
    close(p[1]);
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(p[0]);
    CHECK(strstr(buf, "corio: task dump (backend sim): 2 live task(s)"));
    CHECK(strstr(buf, "task 'napper'"));
    CHECK(strstr(buf, "corio: end of task dump"));
    /* Left unjoined on purpose: debug mode names it at the end. */
    (void)t;
    return NULL;
}

TEST(task_dumps_and_debug_mode_work)
{
    corio_sim_config sc = {.seed = 1, .faults = &no_faults, .quiet = 1};
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc, .debug = 1};
    FILE *tmp = tmpfile();
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    int rc = corio_run(&cfg, dump_main, NULL, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK_OK(rc);
    rewind(tmp);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = 0;
    fclose(tmp);
    CHECK(strstr(out, "corio: task 'napper'"));
    CHECK(strstr(out, "was never joined or detached"));
    /* Virtual time never makes a step look slow. */
    CHECK(!strstr(out, "held the loop"));
}

/* ------------------------------------------------------------------ */
/* Hosts                                                               */
/* ------------------------------------------------------------------ */

static void *host_errors_main(void *arg)
{
    (void)arg;
    corio_sim_host *main_host = corio_sim_host_current();
    CHECK(main_host);
    errno = 0;
    CHECK(!corio_sim_host_new("a", "10.0.0.1") && errno == EINVAL);
    CHECK(!corio_sim_host_new("a", "127.0.0.1") && errno == EINVAL);
    CHECK(!corio_sim_host_new("a", "127.0.0.300") && errno == EINVAL);
    CHECK(!corio_sim_host_new("a", "::1") && errno == EINVAL);
    CHECK(!corio_sim_host_new("a", "") && errno == EINVAL);
    CHECK(!corio_sim_host_new("", "127.0.0.2") && errno == EINVAL);
    CHECK(!corio_sim_host_new("localhost", "127.0.0.2") && errno == EINVAL);
    CHECK(!corio_sim_host_new("main", "127.0.0.2") && errno == EINVAL);
    CHECK(!corio_sim_host_new(NULL, "127.0.0.2") && errno == EINVAL);
    CHECK(!corio_sim_host_new("a", NULL) && errno == EINVAL);
    char longname[80];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(!corio_sim_host_new(longname, "127.0.0.2") && errno == EINVAL);
    corio_sim_host *a = corio_sim_host_new("a", "127.0.0.2");
    CHECK(a && a != main_host);
    CHECK(!corio_sim_host_new("a", "127.0.0.3") && errno == EINVAL);
    CHECK(!corio_sim_host_new("b", "127.0.0.2") && errno == EINVAL);
    CHECK(corio_sim_host_new("b", "127.9.8.7"));
    CHECK_EQ(corio_sim_host_running(a), 0);
    /* The main host is not one to start or crash. */
    CHECK(!corio_sim_host_start(main_host, napper, NULL) && errno == EINVAL);
    CHECK_ERR(corio_sim_host_crash(main_host), -EINVAL);
    CHECK(!corio_sim_host_start(a, NULL, NULL) && errno == EINVAL);
    return NULL;
}

TEST(host_new_refuses_bad_names_and_addresses)
{
    CHECK_OK(sim_run(1, &no_faults, host_errors_main, NULL, NULL));
    /* Not in a sim run: NULL / EINVAL, even inside another backend's loop. */
    errno = 0;
    CHECK(!corio_sim_host_new("a", "127.0.0.2") && errno == EINVAL);
    CHECK(!corio_sim_host_current());
    CHECK_ERR(corio_sim_host_crash(NULL), -EINVAL);
    CHECK_EQ(corio_sim_host_running(NULL), 0);
}

typedef struct host_log {
    corio_sim_host *host;
    unsigned ticks, children, child_ticks, cleanups, late_spawns;
    bool child_on_host;
} host_log;

static void *host_child(void *arg)
{
    host_log *lg = arg;
    lg->child_on_host = corio_sim_host_current() == lg->host;
    for (;;) {
        if (corio_sleep_ms(100) != 0)
            break;
        lg->child_ticks++;
    }
    return NULL;
}

static void *late_child(void *arg)
{
    host_log *lg = arg;
    lg->late_spawns++;
    /* Spawned by cleanup code after the crash: a dead machine starts
     * nothing, so this never gets to sleep. */
    CHECK_ERR(corio_sleep_ms(10), -ECANCELED);
    return NULL;
}

static void *host_main_task(void *arg)
{
    host_log *lg = arg;
    CHECK(corio_sim_host_current() == lg->host);
    corio_task *c = corio_spawn(host_child, lg);
    CHECK(c);
    lg->children++;
    for (;;) {
        if (corio_sleep_ms(100) != 0)
            break;
        lg->ticks++;
    }
    /* Cleanup runs (the cancel is how the crash ends its tasks); whatever
     * it spawns ends too. */
    lg->cleanups++;
    corio_task_detach(corio_spawn(late_child, lg));
    corio_task_join(c, NULL);
    return NULL;
}

static void *host_main(void *arg)
{
    (void)arg;
    host_log lg = {0};
    lg.host = corio_sim_host_new("server", "127.0.0.5");
    CHECK(lg.host);
    corio_task *t = corio_sim_host_start(lg.host, host_main_task, &lg);
    CHECK(t);
    CHECK(corio_sim_host_running(lg.host));
    CHECK(!corio_sim_host_start(lg.host, host_main_task, &lg) && errno == EINVAL);
    CHECK(corio_sim_host_current() != lg.host); /* main stays on main */
    CHECK_OK(corio_sleep_ms(1050));
    CHECK_EQ(lg.ticks, 10);
    CHECK_EQ(lg.child_ticks, 10);
    CHECK(lg.child_on_host);
    CHECK_OK(corio_sim_host_crash(lg.host));
    /* Its tasks end; until they have, it cannot start again. */
    CHECK(!corio_sim_host_start(lg.host, host_main_task, &lg) && errno == EINVAL);
    CHECK_OK(corio_task_join(t, NULL)); /* it returned normally from its cleanup */
    while (corio_sim_host_running(lg.host))
        CHECK_OK(corio_sleep_ms(1));
    CHECK_EQ(lg.cleanups, 1);
    CHECK_EQ(lg.late_spawns, 1);
    CHECK_EQ(lg.ticks, 10);
    /* Restart: a new run of the same host. */
    t = corio_sim_host_start(lg.host, host_main_task, &lg);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(550));
    CHECK_EQ(lg.ticks, 15);
    CHECK_EQ(lg.children, 2);
    CHECK_OK(corio_sim_host_crash(lg.host));
    corio_task_join(t, NULL);
    /* Crashing a host with nothing running is fine too. */
    while (corio_sim_host_running(lg.host))
        CHECK_OK(corio_sleep_ms(1));
    CHECK_OK(corio_sim_host_crash(lg.host));
    return NULL;
}

TEST(hosts_start_crash_and_restart)
{
    corio_sim_report r1, r2;
    CHECK_OK(sim_run(11, &no_faults, host_main, NULL, &r1));
    CHECK_OK(sim_run(11, &no_faults, host_main, NULL, &r2));
    CHECK_EQ(r1.trace_hash, r2.trace_hash);
    CHECK_OK(sim_run(12, NULL, host_main, NULL, NULL));
}

/* A shield keeps a cancel out, not a power cut: the shielded hour-long
 * sleep of a crashed host ends at once, and so does every wait after it. */
static void *shielded_sleeper(void *arg)
{
    int *results = arg;
    corio_shield sh = corio_shield_push(CORIO_NO_TIMEOUT);
    results[0] = corio_sleep_ms(3600 * 1000);
    results[1] = corio_sleep_ms(10);
    corio_shield_pop(sh);
    results[2] = corio_sleep_ms(10);
    return NULL;
}

static void *shielded_cancel_only(void *arg)
{
    int *res = arg;
    corio_shield sh = corio_shield_push(CORIO_NO_TIMEOUT);
    *res = corio_sleep_ms(500);
    corio_shield_pop(sh);
    return NULL;
}

static void *shield_crash_main(void *arg)
{
    (void)arg;
    corio_sim_host *h = corio_sim_host_new("worker", "127.0.0.6");
    CHECK(h);
    int results[3] = {1, 1, 1};
    corio_task *t = corio_sim_host_start(h, shielded_sleeper, results);
    CHECK(t);
    /* A plain cancel still waits for the shield, as everywhere else. */
    int plain = 1;
    corio_task *p = corio_spawn(shielded_cancel_only, &plain);
    CHECK(p);
    CHECK_OK(corio_sleep_ms(100));
    CHECK_OK(corio_task_cancel(p));
    uint64_t t0 = corio_now_ns();
    CHECK_OK(corio_sim_host_crash(h));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(corio_now_ns(), t0); /* no virtual time passed */
    CHECK_ERR(results[0], -ECANCELED);
    CHECK_ERR(results[1], -ECANCELED);
    CHECK_ERR(results[2], -ECANCELED);
    CHECK(!corio_sim_host_running(h));
    CHECK_OK(corio_task_join(p, NULL));
    CHECK_OK(plain); /* its shielded sleep ran its full 500 ms */
    CHECK_EQ(corio_now_ns() - t0, 400 * 1000000ull);
    return NULL;
}

TEST(crash_ends_shielded_waits_too) { CHECK_OK(sim_run(13, &no_faults, shield_crash_main, NULL, NULL)); }

/* ------------------------------------------------------------------ */
/* The thread pool                                                     */
/* ------------------------------------------------------------------ */

static pthread_t loop_thread;

static void *pool_work(void *arg)
{
    int *n = arg;
    CHECK(pthread_equal(pthread_self(), loop_thread));
    return (void *)(intptr_t)(*n * 2);
}

static void *pool_main(void *arg)
{
    (void)arg;
    loop_thread = pthread_self();
    uint64_t t0 = corio_now_ns();
    for (int i = 0; i < 100; i++) {
        void *res = NULL;
        CHECK_OK(corio_to_thread(pool_work, &i, &res));
        CHECK_EQ((intptr_t)res, i * 2);
    }
    CHECK_EQ(corio_now_ns(), t0);
    CHECK_ERR(corio_to_thread(NULL, NULL, NULL), -EINVAL);
    return NULL;
}

TEST(thread_pool_work_runs_inline)
{
    corio_sim_report a, b;
    CHECK_OK(sim_run(6, NULL, pool_main, NULL, &a));
    CHECK_OK(sim_run(6, NULL, pool_main, NULL, &b));
    CHECK_EQ(a.trace_hash, b.trace_hash);
}
