/*
 * corio/sim.h — deterministic simulation: run a corio program on a
 * virtual clock, network and disk, with one seed deciding everything.
 *
 * The sim backend (CORIO_BACKEND_SIM in corio_config, or the environment's
 * CORIO_BACKEND=sim with CORIO_SIM_SEED=N) stands in for io_uring and
 * epoll.  Every corio call keeps its contract, but:
 *  - Time is virtual.  corio_now_ns, sleeps, deadlines and time-outs read
 *    a clock that only moves when every task is waiting, and then jumps
 *    straight to the next thing that can happen.  An hour of keep-alive
 *    time-outs runs in milliseconds, and exactly.  With no faults on this
 *    is tokio's paused time: a unit test of deadlines and retries runs at
 *    once.
 *  - The network is in memory.  TCP and UDP sockets made through corio
 *    (corio_listen, corio_stream_connect, corio_dgram_*, the HTTP server)
 *    are simulated: nothing leaves the process and no real socket is
 *    opened.  Hosts have addresses in 127.0.0.0/8; 127.0.0.1 is always the
 *    host's own.
 *  - Files opened through corio (corio_file_*, corio_stream_open_file) live
 *    on the host's in-memory disk: what was fsynced survives a crash of the
 *    host, what was not may be lost.
 *  - Which ready task runs next, I/O latencies, short reads and writes,
 *    resets, stalls, datagram loss, duplication and reordering, disk
 *    errors and timer jitter are all drawn from one generator seeded by
 *    corio_sim_config.seed.  The same seed gives the same run, bit for bit:
 *    each run ends by printing "corio: sim seed S: trace HASH" to stderr,
 *    and the same seed prints the same HASH (with the same build of the
 *    same program).  CORIO_SIM_TRACE=1 in the environment prints every
 *    event of the trace to stderr as it happens, one line each: two runs'
 *    outputs diff to the first event where they part.
 *
 * Not simulated (they fail with -EOPNOTSUPP under the sim backend, so a
 * run never depends on the real machine): subprocesses, signals, Unix
 * sockets, TLS, corio_fd_wait on a real fd, and loop references used from
 * other threads.  Work handed to the thread pool (corio_to_thread) runs on
 * the loop's thread instead, at once, so it stays deterministic.
 * Task dumps (corio_dump_tasks) and debug mode work as usual, but debug
 * mode's slow-step warning never fires: a task step takes no virtual time.
 * A program that keeps sleeping in a loop is not a stall: virtual time
 * runs on (fast) until the program stops, as real time would.
 *
 * Everything here is for the loop's thread, inside a sim run; called
 * outside one, functions return -EINVAL (or NULL / 0).
 */
#ifndef CORIO_SIM_H
#define CORIO_SIM_H

#include <corio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Probabilities (0.0 .. 1.0) of each fault, per chance to inject it. */
typedef struct corio_sim_faults {
    double short_io;         /* a send or receive moves fewer bytes than it could */
    double reset;            /* a TCP send or receive finds its connection reset (both ends see it) */
    double stall;            /* a connection stops delivering for up to stall_max_ms */
    double dgram_loss;       /* a datagram is dropped */
    double dgram_dup;        /* a datagram is delivered twice */
    double dgram_reorder;    /* a datagram is delayed behind later ones */
    double disk_eio;         /* a disk read, write or fsync fails with EIO */
    double disk_enospc;      /* a disk write fails with ENOSPC */
    double disk_short;       /* a disk write writes fewer bytes than asked */
    double jitter;           /* a timer fires late, by up to jitter_max_us */
    unsigned latency_max_us; /* network delivery takes 0..latency_max_us (0: the default, 200) */
    unsigned stall_max_ms;   /* 0: the default, 2000 */
    unsigned jitter_max_us;  /* 0: the default, 1000 */
} corio_sim_faults;

/* What a sim run did, filled in when corio_run returns. */
typedef struct corio_sim_report {
    uint64_t seed;
    uint64_t trace_hash; /* the same for the same seed and program, run after run */
    uint64_t events;     /* events in the trace */
    uint64_t faults;     /* faults injected */
    uint64_t virtual_ns; /* virtual time the run took */
    int failed;          /* corio_sim_fail was called */
} corio_sim_report;

/* A sim run's settings, given in corio_config.sim (NULL: seed from
 * CORIO_SIM_SEED, else 1; faults by swarm). */
typedef struct corio_sim_config {
    uint64_t seed;
    /* Which faults are on, and how likely.  NULL: swarm testing, the seed
     * itself picks which faults are on (each with even odds) and their
     * probabilities, so that many seeds cover many mixes.  To turn every
     * fault off (paused time, exact latencies of 0) point it at a zeroed
     * struct. */
    const corio_sim_faults *faults;
    corio_sim_report *report; /* filled in at the end of the run if not NULL */
    int quiet;                /* 1: do not print the closing "corio: sim seed" line */
    unsigned trace_tail;      /* events printed when the run fails; 0: 32 */
} corio_sim_config;

/* A simulated machine: its own addresses, sockets, disk and tasks. */
typedef struct corio_sim_host corio_sim_host;

/* Create a simulated host named name (copied; also its DNS name for
 * corio_stream_connect) with the IPv4 address addr, "127.A.B.C" other
 * than 127.0.0.1: on every host 127.0.0.1 (and the name "localhost") is
 * the host itself.  The run's main task lives on the host "main", which has
 * only 127.0.0.1: other hosts cannot reach it.  Does not suspend.  Returns NULL with errno EINVAL (not in a
 * sim run, a bad or taken address or name) or ENOMEM.  Hosts live until
 * the run ends. */
CORIO_API corio_sim_host *corio_sim_host_new(const char *name, const char *addr);

/* Start fn(arg) as the host's main task: it and every task it spawns run
 * on h (their sockets and files are h's).  Returns the task handle (join
 * or detach it as any other), or NULL with errno EINVAL (h is running
 * already) or ENOMEM.  Does not suspend. */
CORIO_API corio_task *corio_sim_host_start(corio_sim_host *h, corio_fn fn, void *arg);

/* Crash h, as a power cut would: its connections are reset (peers see
 * ECONNRESET), its listeners vanish (new connections are refused), its
 * disk forgets what was not fsynced, and each of its tasks is cancelled,
 * shielded or not (corio_shield_push holds back a cancel, not a power
 * cut), with every further operation of theirs failing as on a dead
 * machine, so their handles still end.  The host can be started again with
 * corio_sim_host_start once corio_sim_host_running says false.  Returns 0
 * or -EINVAL.  Does not suspend. */
CORIO_API int corio_sim_host_crash(corio_sim_host *h);

/* True while any task of h is alive. */
CORIO_API int corio_sim_host_running(const corio_sim_host *h);

/* The host the calling task runs on (the main host for the main task). */
CORIO_API corio_sim_host *corio_sim_host_current(void);

/* The run's seed, and 0 outside a sim run. */
CORIO_API uint64_t corio_sim_seed(void);

/* A number from the run's generator (so a test's own choices replay with
 * the seed too); 0 outside a sim run. */
CORIO_API uint64_t corio_sim_rand(void);

/* True with probability p, from the run's generator. */
CORIO_API int corio_sim_chance(double p);

/* Add a line of the program's own to the trace (hashed, and shown among
 * the last events when the run fails).  printf-style; at most 120 bytes
 * are kept. */
CORIO_API void corio_sim_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a broken invariant: prints "corio: sim seed S: invariant broken:
 * TEXT" and the trace's last events to stderr, and marks the run failed
 * (corio_sim_report.failed).  The run goes on; the caller decides whether
 * to stop it. */
CORIO_API void corio_sim_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
