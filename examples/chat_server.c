/*
 * chat_server: a line-based chat room over TCP.
 *
 *   chat_server [PORT]        (default 7777; 0 picks a free port; binds 127.0.0.1)
 *
 * Every line a client sends goes, unchanged, to every other client (not
 * back to the sender).  Prints "listening on 127.0.0.1:PORT" once it
 * accepts connections, then a "chat: ..." line for each client that joins,
 * leaves or is dropped.  Try it with `nc 127.0.0.1 PORT` in a few terminals.
 *
 * What it shows, beside the streams and the server:
 *  - one session per client, made of a reader task and a writer task in a
 *    task group (corio_group_*): when either half fails the group cancels
 *    the other, and the session ends when both have;
 *  - a bounded queue per client (corio_queue_*) of pointers to refcounted
 *    messages, so a line is stored once however many clients it goes to;
 *  - a slow client is dropped instead of slowing the others: the sender
 *    never waits for anyone (corio_queue_try_put), and a client whose queue
 *    is full, or whose socket has more than MAX_BACKLOG bytes waiting, is
 *    cut off;
 *  - line reading with a limit (corio_stream_readuntil): a client sending a
 *    line longer than MAX_LINE is told so and disconnected, and nobody else
 *    notices;
 *  - Ctrl-C (SIGINT) or SIGTERM stops it politely: every client gets the
 *    lines still queued for it, then "server: goodbye\n", then the
 *    connection is closed (FIN, then close).  The goodbye is
 *    written by each client's writer while its task is being cancelled,
 *    inside a shield (corio_shield_push) with a time limit of its own.
 *
 * Signals: this program shows how a plain thread hands news to the loop,
 * the way any threaded program can: SIGINT and SIGTERM are blocked before
 * the loop starts (every thread created later inherits that), a plain
 * thread waits for them with sigwait(), and hands the news to the loop
 * with corio_loop_ref_call_soon, the one corio call other threads may
 * make.  Without a thread, corio_signal_handler_add or a signal watch
 * does the same (see echo_server.c).
 */
#define _GNU_SOURCE 1
#include <corio.h>

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_LINE 4096            /* longest line accepted, newline included */
#define QUEUE_CAP 256            /* lines waiting for one client */
#define MAX_BACKLOG (128 * 1024) /* bytes waiting in one client's stream */
/* The kernel's share of a client's backlog.  On loopback its automatic
 * sizing gives a socket megabytes of send buffer, which would hide a
 * client that stopped reading for a long while; a fixed, modest size
 * makes a slow client show up in the backlog this program measures. */
#define KERNEL_SNDBUF (32 * 1024)
#define FAREWELL_MS 2000 /* how long a last message may take to leave */

#define GOODBYE "server: goodbye\n"
#define TOO_LONG "server: line too long (limit 4096 bytes), goodbye\n"

/* One line, shared by every queue it sits in; the last reference frees it. */
typedef struct msg {
    unsigned refs;
    size_t len;
    char text[];
} msg;

typedef struct hub hub;

typedef struct client {
    hub *hub;
    corio_stream *s;
    corio_queue *out;     /* msg pointers for the writer */
    corio_group tasks;    /* the reader and the writer */
    const char *farewell; /* last words for this client, if any */
    bool closing;         /* no more lines for it */
    bool dropped;         /* cut off: say nothing more */
    char name[64];        /* the peer's address */
    struct client *prev, *next;
} client;

struct hub {
    uint16_t port;
    corio_server *srv;
    client *clients; /* everyone online */
    unsigned online;
    bool stopping;
    corio_event stop; /* set from the signal thread's call */
    int signo;        /* the signal that stopped us */
    sigset_t sigs;    /* SIGINT, SIGTERM */
    corio_loop_ref *ref;
    pthread_t sig_thread;
    bool have_thread;
};

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("chat: ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static msg *msg_new(const char *text, size_t len)
{
    msg *m = malloc(sizeof *m + len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = len;
    memcpy(m->text, text, len);
    return m;
}

static void msg_unref(msg *m)
{
    if (--m->refs == 0)
        free(m);
}

/* The queue's drop hook: a line thrown away with the queue loses the
 * reference it held. */
static void msg_drop(void *item) { msg_unref(item); }

/* ------------------------------------------------------------------ */
/* Sending to everyone                                                 */
/* ------------------------------------------------------------------ */

/* Cut a client off.  Its tasks are cancelled and its queued lines thrown
 * away; the session notices that its group has ended and closes the
 * connection.  Does not suspend, so the sender's loop over the clients
 * stays valid. */
static void drop(client *c, const char *why)
{
    c->closing = true;
    c->dropped = true;
    say("%s dropped: %s", c->name, why);
    corio_queue_shutdown(c->out, true);
    corio_group_cancel(&c->tasks);
}

/* Queue one line for every other client, without ever waiting: whoever
 * cannot take it now is too slow and is dropped. */
static void broadcast(client *from, const char *line, size_t len)
{
    msg *m = msg_new(line, len);
    if (!m) {
        say("%s: out of memory, a line was lost", from->name);
        return;
    }
    for (client *c = from->hub->clients; c; c = c->next) {
        if (c == from || c->closing)
            continue;
        if (corio_stream_write_buffer_size(c->s) > MAX_BACKLOG) {
            drop(c, "too slow");
            continue;
        }
        m->refs++;
        int r = corio_queue_try_put(c->out, m);
        if (r == 0)
            continue;
        m->refs--;
        if (r == -EAGAIN)
            drop(c, "too slow");
        /* -ESHUTDOWN: the client is on its way out */
    }
    msg_unref(m);
}

/* ------------------------------------------------------------------ */
/* A session: reader + writer                                          */
/* ------------------------------------------------------------------ */

static void *reader_main(void *arg)
{
    client *c = arg;
    for (;;) {
        const char *line;
        ssize_t n = corio_stream_readuntil(c->s, "\n", 1, &line);
        if (n > 0) {
            broadcast(c, line, (size_t)n);
            continue;
        }
        if (n == -CORIO_ELIMIT) {
            /* The writer sends what is queued, then the notice, then
             * closes: the queue's shutdown is how it learns there is no
             * more (Python 3.13's Queue.shutdown). */
            say("%s dropped: line too long", c->name);
            c->closing = true;
            c->farewell = TOO_LONG;
            corio_queue_shutdown(c->out, false);
        } else if (n != -ECANCELED) {
            /* EOF (an unterminated tail is not a line and is dropped) or
             * a reset: nobody is left to write to. */
            c->closing = true;
            corio_group_cancel(&c->tasks);
        }
        return NULL;
    }
}

static void *writer_main(void *arg)
{
    client *c = arg;
    msg *m;
    int r;
    while ((r = corio_queue_get(c->out, &m)) == 0) {
        r = corio_stream_write(c->s, m->text, m->len);
        msg_unref(m);
        if (r == 0)
            r = corio_stream_drain(c->s); /* waits only above the high-water mark */
        if (r < 0)
            break;
    }
    /* -ESHUTDOWN: the session ends politely.  -ECANCELED: it is being torn
     * down (the server stops, the client left or was dropped).  Either
     * way there may be last words; a cancelled task could not wait for
     * them to leave, so the shield holds the cancellation back, with a
     * time limit of its own in case the client does not read. */
    const char *bye = c->farewell ? c->farewell : c->hub->stopping ? GOODBYE : NULL;
    if (bye && !c->dropped && (r == -ESHUTDOWN || r == -ECANCELED)) {
        corio_shield sh = corio_shield_push(FAREWELL_MS);
        /* lines said before the end still go out first (never waits) */
        while (corio_queue_try_get(c->out, &m) == 0) {
            corio_stream_write(c->s, m->text, m->len);
            msg_unref(m);
        }
        if (corio_stream_write(c->s, bye, strlen(bye)) == 0)
            corio_stream_write_eof(c->s); /* flush, then FIN: a polite close */
        corio_shield_pop(sh);
    }
    if (r == -ESHUTDOWN || r == -ECANCELED)
        return NULL;
    return corio_fail(r); /* the group cancels the reader */
}

/* The server's handler for one connection: the session's owner. */
static void session(corio_stream *s, void *arg)
{
    hub *h = arg;
    client c = {.hub = h, .s = s};
    struct sockaddr_storage peer;
    if (corio_stream_peername(s, &peer, NULL) < 0 || !corio_addr_format((void *)&peer, c.name, sizeof c.name))
        snprintf(c.name, sizeof c.name, "?");
    corio_queue_config qc = {.kind = CORIO_QUEUE_FIFO, .capacity = QUEUE_CAP, .drop = msg_drop};
    c.out = corio_queue_new(&qc);
    if (!c.out) {
        say("%s refused: %s", c.name, strerror(errno));
        return;
    }
    corio_stream_set_limit(s, MAX_LINE);
    corio_stream_set_write_limits(s, MAX_BACKLOG, MAX_BACKLOG / 4);
    setsockopt(corio_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &(int){KERNEL_SNDBUF}, sizeof(int));

    corio_group_init(&c.tasks);
    c.next = h->clients;
    if (h->clients)
        h->clients->prev = &c;
    h->clients = &c;
    h->online++;
    say("%s joined (%u online)", c.name, h->online);
    if (!corio_group_spawn_named(&c.tasks, "reader", 64 * 1024, reader_main, &c) ||
        !corio_group_spawn_named(&c.tasks, "writer", 64 * 1024, writer_main, &c)) {
        say("%s: cannot start its tasks: %s", c.name, strerror(errno));
        corio_group_cancel(&c.tasks);
    }
    /* Cancelled here when the server stops: the group then cancels both
     * members and waits for them (the writer's goodbye included). */
    int r = corio_group_join(&c.tasks);

    if (c.prev)
        c.prev->next = c.next;
    else
        h->clients = c.next;
    if (c.next)
        c.next->prev = c.prev;
    h->online--;
    if (r < 0 && r != -ECANCELED)
        say("%s: %s", c.name, corio_strerror(r));
    say("%s left (%u online)", c.name, h->online);
    if (c.dropped) /* whatever is still buffered for it is not worth sending */
        shutdown(corio_stream_fd(s), SHUT_RDWR);
    corio_queue_free(c.out);
    /* the server closes s when we return */
}

/* ------------------------------------------------------------------ */
/* Signals and the main task                                           */
/* ------------------------------------------------------------------ */

/* Runs on the loop, queued by the signal thread. */
static void on_signal(void *arg)
{
    hub *h = arg;
    corio_event_set(&h->stop);
}

static void *signal_thread(void *arg)
{
    hub *h = arg;
    int sig;
    if (sigwait(&h->sigs, &sig) == 0) {
        h->signo = sig; /* published to the loop by the call below */
        corio_loop_ref_call_soon(h->ref, on_signal, h);
    }
    corio_loop_ref_release(h->ref);
    return NULL;
}

static void *main_task(void *arg)
{
    hub *h = arg;
    corio_event_init(&h->stop);
    int r = corio_server_start("127.0.0.1", h->port, session, h, NULL, &h->srv);
    if (r < 0) {
        fprintf(stderr, "chat_server: cannot listen on 127.0.0.1:%u: %s\n", h->port, corio_strerror(r));
        return (void *)1;
    }
    h->ref = corio_loop_ref_get();
    if (!h->ref || (r = pthread_create(&h->sig_thread, NULL, signal_thread, h)) != 0) {
        fprintf(stderr, "chat_server: cannot watch for signals: %s\n", strerror(h->ref ? r : errno));
        corio_loop_ref_release(h->ref);
        corio_server_close(h->srv, 0);
        return (void *)1;
    }
    h->have_thread = true;
    printf("listening on 127.0.0.1:%u\n", corio_server_port(h->srv));

    corio_event_wait(&h->stop);
    say("%s, saying goodbye to %u client%s", h->signo == SIGINT ? "SIGINT" : "SIGTERM", h->online,
        h->online == 1 ? "" : "s");
    h->stopping = true;
    /* Stop accepting, cancel every session and wait until each has said
     * goodbye and closed. */
    corio_server_close(h->srv, 0);
    say("stopped");
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long port = 7777;
    if (argc > 2 || (argc == 2 && (argv[1][0] < '0' || argv[1][0] > '9'))) {
        fprintf(stderr, "usage: chat_server [PORT]\n");
        return 2;
    }
    if (argc == 2) {
        char *end;
        port = strtoul(argv[1], &end, 10);
        if (*end || port > 65535) {
            fprintf(stderr, "usage: chat_server [PORT]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, also into a pipe or file */

    static hub h;
    h.port = (uint16_t)port;
    sigemptyset(&h.sigs);
    sigaddset(&h.sigs, SIGINT);
    sigaddset(&h.sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &h.sigs, NULL); /* before any thread exists: all inherit it */

    void *res = NULL;
    int r = corio_run(NULL, main_task, &h, &res);
    if (h.have_thread) {
        /* Normally it has delivered its signal and ended; if the loop
         * ended otherwise, wake it (its call then fails with -ESHUTDOWN). */
        pthread_kill(h.sig_thread, SIGTERM);
        pthread_join(h.sig_thread, NULL);
    }
    if (r < 0) {
        fprintf(stderr, "chat_server: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
