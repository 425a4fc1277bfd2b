/*
 * A tiny durable key-value service, its client, and a simulation test that
 * crashes the server while clients use it (docs/simulation.md walks
 * through it).
 *
 *   sim_kv serve [PORT [LOG]]          serve on 127.0.0.1:PORT (7000), log in LOG (kv.log)
 *   sim_kv get PORT KEY                print KEY's version and value
 *   sim_kv set PORT KEY VERSION VALUE  store VALUE as KEY's VERSION
 *   sim_kv test [--seeds N | --seed S] [--clients N] [--planted-bug[=BUG]] [--stop]
 *               [--tail EVENTS] [-v]
 *
 * The service speaks lines over TCP:
 *   SET key version value  ->  OK            (stored, or a newer version already is)
 *   GET key                ->  VALUE version value | NONE
 *   anything failing       ->  ERR reason
 * Versions make a SET idempotent: a client may send it again when the
 * answer never came, and a late copy cannot overwrite a newer value.
 *
 * The server appends every SET to a write-ahead log and fsyncs it before
 * answering OK, so an acknowledged write survives a power cut; at start it
 * replays the log.  So it needs no graceful stop: Ctrl-C or kill -9 lose
 * nothing that was acknowledged.  The client gives every request a
 * deadline and retries on a fresh connection inside it.
 *
 * `test` runs the same code under corio's simulator: a server host, a few
 * client hosts and a checker, on a virtual clock and network, with the
 * server crashed and restarted mid-run, for each seed.  Two invariants are
 * checked with corio_sim_fail: every request ends within its deadline, and
 * every acknowledged write is still there after the restart.  It prints
 * "seed S: trace HASH" per seed and "N passed, M failed".
 *
 * --planted-bug puts a real bug back so that you can watch a seed find it
 * and replay it: ack-before-fsync (the default: the server answers OK
 * while the record is still only in the page cache) or no-deadline (the
 * client waits for as long as the network makes it).
 */
#include <corio.h>
#include <corio/sim.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BUG_NONE, BUG_ACK_BEFORE_FSYNC, BUG_NO_DEADLINE };

#define KEY_MAX 32
#define VAL_MAX 64
#define REQUEST_MS 1000 /* a client request's whole budget, retries included */
#define ATTEMPT_MS 200  /* one try on one connection */

/* The program's own randomness (retry jitter, the test's choices): drawn
 * from the simulation's generator when it runs under the sim, so a seed
 * replays it too. */
static uint64_t kv_rand(void)
{
    const char *be = corio_backend_name();
    return be && !strcmp(be, "sim") ? corio_sim_rand() : (uint64_t)random();
}

/* A line for the operator: into the trace under the sim, else to stderr. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const char *be = corio_backend_name();
    if (be && !strcmp(be, "sim"))
        corio_sim_event("%s", buf);
    else
        fprintf(stderr, "sim_kv: %s\n", buf);
}

/* ------------------------------------------------------------------ */
/* The server                                                          */
/* ------------------------------------------------------------------ */

typedef struct entry {
    char key[KEY_MAX + 1];
    uint64_t version;
    char value[VAL_MAX + 1];
} entry;

typedef struct kv_config {
    const char *host; /* where to listen */
    uint16_t port;
    const char *log_path;
    int bug;
} kv_config;

/* One life of the server: everything here is lost when it stops. */
typedef struct kv_server {
    const kv_config *cfg;
    int log_fd;
    corio_lock log_lock; /* one appender at a time: records never interleave */
    int log_error;       /* why the log failed (0: it works) */
    corio_event broken;  /* set when it fails: the server starts over */
    entry *tab;
    size_t n, cap;
} kv_server;

static entry *kv_find(kv_server *kv, const char *key)
{
    for (size_t i = 0; i < kv->n; i++)
        if (!strcmp(kv->tab[i].key, key))
            return &kv->tab[i];
    return NULL;
}

/* Make key's value (version, value) unless it has a newer one. */
static int kv_apply(kv_server *kv, const char *key, uint64_t version, const char *value)
{
    entry *e = kv_find(kv, key);
    if (!e) {
        if (kv->n == kv->cap) {
            size_t cap = kv->cap ? kv->cap * 2 : 64;
            entry *t = realloc(kv->tab, cap * sizeof *t);
            if (!t)
                return -ENOMEM;
            kv->tab = t;
            kv->cap = cap;
        }
        e = &kv->tab[kv->n++];
        snprintf(e->key, sizeof e->key, "%s", key);
        e->version = 0;
    }
    if (version > e->version) {
        e->version = version;
        snprintf(e->value, sizeof e->value, "%s", value);
    }
    return 0;
}

/* A log record is "key version value check\n"; the check (FNV-1a of the
 * rest) tells a whole record from one torn by a crash mid-write. */
static uint32_t check_of(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int format_record(char *buf, size_t cap, const char *key, uint64_t version, const char *value)
{
    int n = snprintf(buf, cap, "%s %" PRIu64 " %s", key, version, value);
    return n + snprintf(buf + n, cap - (size_t)n, " %08x\n", check_of(buf, (size_t)n));
}

static void replay_line(kv_server *kv, const char *line)
{
    char key[KEY_MAX + 1], value[VAL_MAX + 1], again[160];
    uint64_t version;
    unsigned check;
    if (sscanf(line, "%32s %" SCNu64 " %64s %8x", key, &version, value, &check) != 4)
        return; /* torn */
    int n = snprintf(again, sizeof again, "%s %" PRIu64 " %s", key, version, value);
    if (check_of(again, (size_t)n) == check)
        (void)kv_apply(kv, key, version, value);
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = corio_file_write(fd, buf, n);
        if (w < 0)
            return (int)w;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Replay the log into the table and open it for appending. */
static int kv_recover(kv_server *kv)
{
    char *data = NULL;
    size_t len = 0;
    int r = corio_file_read_all(kv->cfg->log_path, 64 << 20, &data, &len);
    if (r < 0 && r != -ENOENT)
        return r;
    bool torn = false;
    for (char *p = data, *end = data ? data + len : NULL; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            torn = true; /* a record cut short by a crash: ignore it */
            break;
        }
        *nl = 0;
        replay_line(kv, p);
        p = nl + 1;
    }
    free(data);
    kv->log_fd = corio_file_open(kv->cfg->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (kv->log_fd < 0)
        return kv->log_fd;
    /* End a torn record, so the next one starts on a line of its own; and
     * make what we replayed durable before anyone can read it (it may
     * have been only in the page cache of a process that exited). */
    r = torn ? write_all(kv->log_fd, "\n", 1) : 0;
    return r < 0 ? r : corio_file_fsync(kv->log_fd);
}

static void reply(corio_stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(corio_stream *s, const char *fmt, ...)
{
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (void)corio_stream_write(s, buf, (size_t)n); /* an error shows at the next drain */
}

static void log_failed(kv_server *kv, int err)
{
    if (!kv->log_error)
        kv->log_error = err;
    corio_event_set(&kv->broken);
}

static void kv_set(kv_server *kv, corio_stream *s, const char *key, uint64_t version, const char *value)
{
    if (corio_lock_acquire(&kv->log_lock) < 0)
        return; /* cancelled: the server is stopping */
    const entry *e = kv_find(kv, key);
    if (e && e->version >= version) {
        reply(s, "OK\n"); /* a retry of a write we already have, or an older one */
        goto out;
    }
    if (kv->log_error) {
        reply(s, "ERR log\n");
        goto out;
    }
    char rec[160];
    int n = format_record(rec, sizeof rec, key, version, value);
    int r = write_all(kv->log_fd, rec, (size_t)n);
    if (r == 0 && kv->cfg->bug == BUG_ACK_BEFORE_FSYNC) {
        /* PLANTED BUG: answer as soon as the record is written, and sync
         * while the client goes on: a crash now loses an acknowledged
         * write. */
        (void)kv_apply(kv, key, version, value);
        reply(s, "OK\n");
        (void)corio_stream_drain(s);
        if ((r = corio_file_fsync(kv->log_fd)) < 0)
            log_failed(kv, r);
        goto out;
    }
    if (r == 0)
        r = corio_file_fsync(kv->log_fd);
    if (r == 0)
        r = kv_apply(kv, key, version, value);
    if (r == 0) {
        reply(s, "OK\n");
        goto out;
    }
    /* The record may be half on disk: append nothing more in this life.
     * The server starts over, and its replay drops a torn record. */
    reply(s, "ERR %s\n", corio_strerror(r));
    if (r != -ECANCELED && r != -ENOMEM)
        log_failed(kv, r);
out:
    corio_lock_release(&kv->log_lock);
}

/* One connection: a request per line, an answer per request. */
static void kv_conn(corio_stream *s, void *arg)
{
    kv_server *kv = arg;
    char line[256], key[KEY_MAX + 1], value[VAL_MAX + 1];
    uint64_t version;
    for (;;) {
        ssize_t n = corio_stream_readline(s, line, sizeof line);
        if (n <= 0 || line[n - 1] != '\n')
            break; /* EOF, reset, a line too long or cut short */
        if (sscanf(line, "SET %32s %" SCNu64 " %64s", key, &version, value) == 3 && version > 0) {
            kv_set(kv, s, key, version, value);
        } else if (sscanf(line, "GET %32s", key) == 1) {
            const entry *e = kv_find(kv, key);
            if (e)
                reply(s, "VALUE %" PRIu64 " %s\n", e->version, e->value);
            else
                reply(s, "NONE\n");
        } else {
            reply(s, "ERR bad request\n");
        }
        if (corio_stream_drain(s) < 0)
            break;
    }
}

/* The server process: recover, serve until the log fails, start over. */
static void *kv_serve(void *arg)
{
    const kv_config *cfg = arg;
    for (;;) {
        kv_server kv = {.cfg = cfg, .log_fd = -1};
        corio_lock_init(&kv.log_lock);
        corio_event_init(&kv.broken);
        corio_server *srv = NULL;
        int r = kv_recover(&kv);
        if (r == 0)
            r = corio_server_start(cfg->host, cfg->port, kv_conn, &kv, NULL, &srv);
        if (r == 0) {
            note("kv: serving %zu keys on %s:%u", kv.n, cfg->host, corio_server_port(srv));
            r = corio_event_wait(&kv.broken);
        }
        if (srv)
            corio_server_close(srv, 0); /* its handlers end before kv goes */
        if (kv.log_fd >= 0)
            corio_file_close(kv.log_fd);
        free(kv.tab);
        if (corio_cancelled())
            return NULL;
        note("kv: %s%s; starting over in 100 ms", kv.log_error ? "log: " : "",
             corio_strerror(kv.log_error ? kv.log_error : r));
        if (corio_sleep_ms(100) < 0)
            return NULL;
    }
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

typedef struct kv_client {
    const char *host;
    uint16_t port;
    corio_stream *s; /* kept open between requests; NULL after an error */
    bool no_deadline;
} kv_client;

/* One try: send req on the connection (made if needed), read one line. */
static ssize_t kv_try(kv_client *c, const char *req, char *out, size_t cap)
{
    int r = 0;
    if (!c->s)
        r = corio_stream_connect(c->host, c->port, &c->s);
    if (r == 0)
        r = corio_stream_write(c->s, req, strlen(req));
    if (r == 0)
        r = corio_stream_drain(c->s);
    if (r < 0)
        return r;
    ssize_t n = corio_stream_readline(c->s, out, cap);
    if (n == 0 || (n > 0 && out[n - 1] != '\n'))
        return -ECONNRESET; /* the server went away mid-answer */
    return n;
}

/* Send one request line and read its answer into out, retrying on a fresh
 * connection (after a growing, jittered pause) until it gets an answer
 * other than ERR or REQUEST_MS has passed.  Returns the answer's length or
 * -errno: -CORIO_EDEADLINE when the time ran out, -ECANCELED. */
static ssize_t kv_call(kv_client *c, const char *req, char *out, size_t cap)
{
    corio_deadline whole = {0};
    if (!c->no_deadline)
        whole = corio_deadline_push(REQUEST_MS);
    ssize_t r;
    for (unsigned attempt = 0;; attempt++) {
        if (c->no_deadline) {
            /* PLANTED BUG: no time-out at all; a stalled connection
             * holds the request for as long as it stalls. */
            r = kv_try(c, req, out, cap);
        } else {
            corio_deadline one = corio_deadline_push(ATTEMPT_MS);
            r = kv_try(c, req, out, cap);
            corio_deadline_pop(one);
        }
        if (r > 0 && strncmp(out, "ERR", 3) != 0)
            break;
        if (c->s) {
            corio_stream_close(c->s);
            c->s = NULL;
        }
        if (corio_cancelled() || corio_deadline_expired()) {
            r = corio_cancelled() ? -ECANCELED : -CORIO_EDEADLINE;
            break;
        }
        unsigned pause = 10u << (attempt < 4 ? attempt : 4);
        int s = corio_sleep_ms(pause / 2 + kv_rand() % pause);
        if (s < 0) {
            r = s;
            break;
        }
    }
    if (!c->no_deadline)
        corio_deadline_pop(whole);
    return r;
}

/* ------------------------------------------------------------------ */
/* The simulation test                                                 */
/* ------------------------------------------------------------------ */

#define KEYS_PER_CLIENT 4
#define OPS_PER_CLIENT 40
#define PORT 7000

/* What the test knows of one key (only its client writes it). */
typedef struct key_state {
    uint64_t acked;     /* the newest version the server acknowledged */
    uint64_t attempted; /* the newest version ever sent */
    uint64_t acked_ns;  /* when acked was acknowledged */
} key_state;

typedef struct sim_client {
    int id;
    int bug;
    key_state keys[KEYS_PER_CLIENT];
} sim_client;

typedef struct sim_run {
    int bug, nclients;
    kv_config kv;
    corio_sim_host *kv_host;
    corio_task *kv_task;
    sim_client *clients;
} sim_run;

static uint64_t run_start_ns; /* virtual time at the run's start, for messages */

static void value_of(char *buf, size_t cap, int client, int k, uint64_t version)
{
    snprintf(buf, cap, "c%dk%dv%" PRIu64, client, k, version);
}

/* A GET's answer must hold at least the acknowledged version, and only a
 * version that was sent, with its value. */
static void check_get(const char *who, int client, int k, const key_state *ks, const char *answer)
{
    uint64_t version = 0;
    char value[VAL_MAX + 1], want[VAL_MAX + 1];
    if (!strcmp(answer, "NONE\n")) {
        version = 0;
    } else if (sscanf(answer, "VALUE %" SCNu64 " %64s", &version, value) == 2) {
        value_of(want, sizeof want, client, k, version);
        if (strcmp(value, want))
            corio_sim_fail("%s: GET c%dk%d: version %" PRIu64 " has value %s, not %s", who, client, k,
                           version, value, want);
    } else {
        corio_sim_fail("%s: GET c%dk%d: bad answer %s", who, client, k, answer);
        return;
    }
    if (version < ks->acked)
        corio_sim_fail("%s: GET c%dk%d returned version %" PRIu64 ", but version %" PRIu64
                       " was acknowledged at %.6f s: an acknowledged write is lost",
                       who, client, k, version, ks->acked, (double)(ks->acked_ns - run_start_ns) / 1e9);
    if (version > ks->attempted)
        corio_sim_fail("%s: GET c%dk%d returned version %" PRIu64 ", never written", who, client, k, version);
}

static void *sim_client_main(void *arg)
{
    sim_client *sc = arg;
    kv_client c = {.host = "kv", .port = PORT, .no_deadline = sc->bug == BUG_NO_DEADLINE};
    char who[16], req[160], answer[160], value[VAL_MAX + 1];
    snprintf(who, sizeof who, "client %d", sc->id);
    for (int i = 0; i < OPS_PER_CLIENT && !corio_cancelled(); i++) {
        if (corio_sleep_ms(kv_rand() % 5) < 0)
            break;
        int k = (int)(kv_rand() % KEYS_PER_CLIENT);
        key_state *ks = &sc->keys[k];
        key_state before = *ks;
        bool set = kv_rand() % 10 < 7;
        if (set) {
            uint64_t v = ++ks->attempted;
            value_of(value, sizeof value, sc->id, k, v);
            snprintf(req, sizeof req, "SET c%dk%d %" PRIu64 " %s\n", sc->id, k, v, value);
        } else {
            snprintf(req, sizeof req, "GET c%dk%d\n", sc->id, k);
        }
        uint64_t t0 = corio_now_ns();
        ssize_t r = kv_call(&c, req, answer, sizeof answer);
        uint64_t took_ms = (corio_now_ns() - t0) / 1000000;
        corio_sim_event("%s: %.*s -> %.*s", who, (int)strlen(req) - 1, req, r > 0 ? (int)r - 1 : 99,
                        r > 0 ? answer : corio_strerror((int)r));
        /* A timer may fire up to a millisecond late (the jitter fault). */
        if (took_ms > REQUEST_MS + 5)
            corio_sim_fail("%s: %.*s (sent at %.6f s) took %" PRIu64 " ms, past its %d ms deadline", who,
                           (int)strlen(req) - 1, req, (double)(t0 - run_start_ns) / 1e9, took_ms, REQUEST_MS);
        if (r > 0 && set && !strcmp(answer, "OK\n") && ks->attempted > ks->acked) {
            ks->acked = ks->attempted;
            ks->acked_ns = corio_now_ns();
        } else if (r > 0 && !set)
            check_get(who, sc->id, k, &before, answer);
    }
    if (c.s)
        corio_stream_close(c.s);
    return NULL;
}

/* After the last restart: every key must hold what was acknowledged. */
static void *sim_checker_main(void *arg)
{
    sim_run *run = arg;
    kv_client c = {.host = "kv", .port = PORT};
    char req[64], answer[160];
    for (int i = 0; i < run->nclients; i++) {
        for (int k = 0; k < KEYS_PER_CLIENT; k++) {
            snprintf(req, sizeof req, "GET c%dk%d\n", i, k);
            ssize_t r = -CORIO_EDEADLINE;
            for (int tries = 0; tries < 10 && r < 0; tries++) /* up to 10 s for the restart */
                r = kv_call(&c, req, answer, sizeof answer);
            if (r < 0)
                corio_sim_fail("checker: GET c%dk%d got no answer: %s", i, k, corio_strerror((int)r));
            else
                check_get("checker", i, k, &run->clients[i].keys[k], answer);
        }
    }
    if (c.s)
        corio_stream_close(c.s);
    return NULL;
}

static void server_start(sim_run *run)
{
    run->kv_task = corio_sim_host_start(run->kv_host, kv_serve, &run->kv);
}

static void server_crash(sim_run *run)
{
    corio_sim_event("test: crash the server");
    corio_sim_host_crash(run->kv_host);
    corio_task_join(run->kv_task, NULL); /* its tasks end, cancelled */
    run->kv_task = NULL;
}

/* Crash the server twice while the clients work, at times the seed picks. */
static void *sim_chaos(void *arg)
{
    sim_run *run = arg;
    for (int i = 0; i < 2; i++) {
        corio_sleep_ms(kv_rand() % 150);
        server_crash(run);
        corio_sleep_ms(kv_rand() % 100);
        server_start(run);
    }
    return NULL;
}

static void *sim_main(void *arg)
{
    sim_run *run = arg;
    run_start_ns = corio_now_ns();
    run->kv_host = corio_sim_host_new("kv", "127.0.0.2");
    corio_sim_host *checker = corio_sim_host_new("checker", "127.0.0.3");
    corio_task *clients[16];
    if (!run->kv_host || !checker)
        return (void *)1;
    server_start(run);
    for (int i = 0; i < run->nclients; i++) {
        char name[16], addr[16];
        snprintf(name, sizeof name, "client%d", i);
        snprintf(addr, sizeof addr, "127.0.0.%d", 10 + i);
        clients[i] = corio_sim_host_start(corio_sim_host_new(name, addr), sim_client_main, &run->clients[i]);
    }
    corio_task *chaos = corio_spawn(sim_chaos, run);
    for (int i = 0; i < run->nclients; i++)
        corio_task_join(clients[i], NULL);
    corio_task_join(chaos, NULL);
    /* One more power cut once everyone is done, then check every key. */
    server_crash(run);
    server_start(run);
    corio_task_join(corio_sim_host_start(checker, sim_checker_main, run), NULL);
    server_crash(run);
    return NULL;
}

/* Run one seed; prints its line and returns true if it passed. */
static bool sim_seed(uint64_t seed, int bug, int nclients, bool verbose, unsigned tail)
{
    sim_client clients[16];
    memset(clients, 0, sizeof clients);
    for (int i = 0; i < nclients; i++)
        clients[i] = (sim_client){.id = i, .bug = bug};
    sim_run run = {.bug = bug,
                   .nclients = nclients,
                   .kv = {.host = "0.0.0.0", .port = PORT, .log_path = "kv.log", .bug = bug},
                   .clients = clients};
    corio_sim_report rep = {0};
    corio_sim_config sc = {.seed = seed, .report = &rep, .quiet = 1, .trace_tail = tail};
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc};
    void *res = NULL;
    int r = corio_run(&cfg, sim_main, &run, &res);
    bool ok = r == 0 && !rep.failed && !res;
    printf("seed %" PRIu64 ": trace %016" PRIx64 "%s\n", seed, rep.trace_hash, ok ? "" : " FAILED");
    if (verbose)
        printf("  %" PRIu64 " events, %" PRIu64 " faults, %.3f s of virtual time\n", rep.events, rep.faults,
               (double)rep.virtual_ns / 1e9);
    if (r < 0)
        fprintf(stderr, "sim_kv: seed %" PRIu64 ": the run ended with: %s\n", seed, corio_strerror(r));
    fflush(stdout);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: sim_kv serve [PORT [LOG]]\n"
                    "       sim_kv get PORT KEY\n"
                    "       sim_kv set PORT KEY VERSION VALUE\n"
                    "       sim_kv test [--seeds N | --seed S] [--clients N (1..16)]\n"
                    "                   [--planted-bug[=ack-before-fsync|no-deadline]]\n"
                    "                   [--stop] [--tail EVENTS] [-v]\n");
    return 2;
}

static int sim_test(int argc, char **argv)
{
    uint64_t first = 1, count = 100;
    int bug = BUG_NONE, nclients = 3;
    bool stop = false, verbose = false;
    unsigned tail = 0; /* events shown when a seed fails; 0: the sim's default */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--seeds") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            first = strtoull(argv[++i], NULL, 10);
            count = 1;
        } else if (!strcmp(a, "--clients") && i + 1 < argc) {
            nclients = atoi(argv[++i]);
            if (nclients < 1 || nclients > 16)
                return usage();
        } else if (!strcmp(a, "--planted-bug") || !strcmp(a, "--planted-bug=ack-before-fsync")) {
            bug = BUG_ACK_BEFORE_FSYNC;
        } else if (!strcmp(a, "--planted-bug=no-deadline")) {
            bug = BUG_NO_DEADLINE;
        } else if (!strcmp(a, "--tail") && i + 1 < argc) {
            tail = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(a, "-v")) {
            verbose = true; /* what each run did */
        } else if (!strcmp(a, "--stop")) {
            stop = true; /* at the first failing seed */
        } else {
            return usage();
        }
    }
    unsigned passed = 0, failed = 0;
    for (uint64_t s = first; s < first + count; s++) {
        if (sim_seed(s, bug, nclients, verbose, tail)) {
            passed++;
        } else {
            failed++;
            if (stop)
                break;
        }
    }
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* The real programs                                                   */
/* ------------------------------------------------------------------ */

typedef struct cli {
    uint16_t port;
    const char *req;
} cli;

static void *cli_main(void *arg)
{
    cli *a = arg;
    kv_client c = {.host = "127.0.0.1", .port = a->port};
    char answer[160];
    ssize_t r = kv_call(&c, a->req, answer, sizeof answer);
    if (c.s)
        corio_stream_close(c.s);
    if (r < 0) {
        fprintf(stderr, "sim_kv: %s\n", corio_strerror((int)r));
        return (void *)1;
    }
    fputs(answer, stdout);
    return strncmp(answer, "ERR", 3) ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    void *res = NULL;
    int r;
    char req[256];
    if (!strcmp(argv[1], "test"))
        return sim_test(argc - 2, argv + 2);
    srandom((unsigned)getpid()); /* for real, clients' retry jitter differs */
    if (!strcmp(argv[1], "serve") && argc <= 4) {
        kv_config cfg = {.host = "127.0.0.1",
                         .port = (uint16_t)(argc > 2 ? atoi(argv[2]) : PORT),
                         .log_path = argc > 3 ? argv[3] : "kv.log"};
        r = corio_run(NULL, kv_serve, &cfg, &res);
    } else if (!strcmp(argv[1], "get") && argc == 4) {
        snprintf(req, sizeof req, "GET %s\n", argv[3]);
        cli a = {(uint16_t)atoi(argv[2]), req};
        r = corio_run(NULL, cli_main, &a, &res);
    } else if (!strcmp(argv[1], "set") && argc == 6) {
        snprintf(req, sizeof req, "SET %s %s %s\n", argv[3], argv[4], argv[5]);
        cli a = {(uint16_t)atoi(argv[2]), req};
        r = corio_run(NULL, cli_main, &a, &res);
    } else {
        return usage();
    }
    if (r < 0) {
        fprintf(stderr, "sim_kv: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
