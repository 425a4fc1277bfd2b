/* Handing listening sockets to a successor (corio_handover_*): both sides in
 * one loop, over an abstract Unix name unique to the test process. */
#include "runner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char path[64];

static void set_path(const char *what)
{
    snprintf(path, sizeof path, "@corio-ho-%d-%s", (int)getpid(), what);
}

static int tcp_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(fd, 16), 0);
    return fd;
}

static uint16_t port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    return ntohs(a.sin_port);
}

typedef struct offer_args {
    corio_listen_fd fds[3];
    unsigned n;
    pid_t successor;
    int r;
} offer_args;

static void *offer_main(void *arg)
{
    offer_args *o = arg;
    o->r = corio_handover_listen(path, o->fds, o->n, &o->successor);
    return NULL;
}

static void offer_init(offer_args *o)
{
    static const char *labels[3] = {"http", "https", "admin:9000"};
    memset(o, 0, sizeof *o);
    o->n = 3;
    for (unsigned i = 0; i < 3; i++) {
        o->fds[i].fd = tcp_listener();
        snprintf(o->fds[i].name, sizeof o->fds[i].name, "%s", labels[i]);
    }
    o->r = 1;
}

static void offer_done(offer_args *o)
{
    for (unsigned i = 0; i < o->n; i++)
        close(o->fds[i].fd);
}

/* Take from the offer, check fds and labels, then ready. */
static void take_all(offer_args *o)
{
    corio_listen_fd got[4];
    corio_handover *h;
    CHECK_EQ(corio_handover_take(path, got, 4, &h), 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_STR(got[i].name, o->fds[i].name);
        CHECK(got[i].fd != o->fds[i].fd);
        CHECK_EQ(port_of(got[i].fd), port_of(o->fds[i].fd)); /* the same socket */
        CHECK(fcntl(got[i].fd, F_GETFD) & FD_CLOEXEC);
    }
    CHECK_EQ(o->r, 1); /* still waiting for our "ready" */
    CHECK_OK(corio_handover_ready(h));
    for (unsigned i = 0; i < 3; i++)
        close(got[i].fd);
}

static void *three_main(void *arg)
{
    (void)arg;
    set_path("three");
    offer_args o;
    offer_init(&o);
    corio_task *t = corio_spawn(offer_main, &o);
    CHECK(t);
    CHECK_OK(corio_yield()); /* it listens */
    take_all(&o);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(o.r, 0);
    CHECK_EQ(o.successor, getpid());
    /* it let go of the path: nobody offers there now */
    corio_listen_fd got[1];
    corio_handover *h = (corio_handover *)1;
    CHECK_ERR(corio_handover_take(path, got, 1, &h), -ECONNREFUSED);
    CHECK(h == NULL);
    offer_done(&o);
    return NULL;
}

TEST(hands_over_three_sockets_with_labels) { test_run(three_main, NULL); }

static void *none_main(void *arg)
{
    (void)arg;
    corio_listen_fd got[1];
    corio_handover *h;
    set_path("none");
    CHECK_ERR(corio_handover_take(path, got, 1, &h), -ECONNREFUSED); /* abstract: nobody listens */
    char file[64];
    snprintf(file, sizeof file, "/tmp/corio-ho-%d-none.sock", (int)getpid());
    CHECK_ERR(corio_handover_take(file, got, 1, &h), -ENOENT);
    CHECK_ERR(corio_handover_take("", got, 1, &h), -EINVAL);
    CHECK_ERR(corio_handover_take(path, NULL, 1, &h), -EINVAL);
    CHECK_ERR(corio_handover_take(path, got, 0, &h), -EINVAL);
    CHECK_ERR(corio_handover_take(path, got, 1, NULL), -EINVAL);
    corio_listen_fd bad = {.fd = 1000, .name = "x"};
    CHECK_ERR(corio_handover_listen(path, &bad, 1, NULL), -EBADF);
    corio_listen_fd nl = {.fd = 0, .name = "a\nb"};
    CHECK_ERR(corio_handover_listen(path, &nl, 1, NULL), -EINVAL);
    CHECK_ERR(corio_handover_listen(path, &nl, 0, NULL), -EINVAL);
    corio_listen_fd ok = {.fd = 0, .name = "x"};
    CHECK_ERR(corio_handover_listen("@", &ok, 1, NULL), -EINVAL);
    CHECK_ERR(corio_handover_listen(NULL, &ok, 1, NULL), -EINVAL);
    CHECK_ERR(corio_handover_ready(NULL), -EINVAL);
    corio_handover_abort(NULL);
    return NULL;
}

TEST(no_predecessor_and_bad_arguments) { test_run(none_main, NULL); }

/* A successor that hangs up before "ready" (it died), one that gives up
 * (abort), one with too little room: the offer goes on each time, and the
 * next successor gets the sockets. */
static void *dies_main(void *arg)
{
    (void)arg;
    set_path("dies");
    offer_args o;
    offer_init(&o);
    corio_task *t = corio_spawn(offer_main, &o);
    CHECK(t);
    CHECK_OK(corio_yield());
    /* dies after reading the first bytes */
    corio_stream *s;
    CHECK_OK(corio_stream_connect_unix(path, &s));
    char line[64];
    CHECK(corio_stream_readline(s, line, sizeof line) > 0);
    CHECK(strncmp(line, "corio-handover 1 3\n", 19) == 0);
    corio_stream_close(s);
    /* takes, then aborts */
    corio_listen_fd got[4];
    corio_handover *h;
    CHECK_EQ(corio_handover_take(path, got, 4, &h), 3);
    corio_handover_abort(h);
    for (int i = 0; i < 3; i++)
        close(got[i].fd);
    /* too little room */
    CHECK_ERR(corio_handover_take(path, got, 2, &h), -E2BIG);
    CHECK(h == NULL);
    CHECK_EQ(o.r, 1);
    take_all(&o);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(o.r, 0);
    offer_done(&o);
    return NULL;
}

TEST(successor_dying_or_giving_up_changes_nothing) { test_run(dies_main, NULL); }

/* Cancelling the offer closes the socket; a socket file is removed. */
static void *cancel_main(void *arg)
{
    (void)arg;
    snprintf(path, sizeof path, "/tmp/corio-ho-%d-cancel.sock", (int)getpid());
    offer_args o;
    offer_init(&o);
    corio_task *t = corio_spawn(offer_main, &o);
    CHECK(t);
    CHECK_OK(corio_yield());
    CHECK_EQ(access(path, F_OK), 0);
    corio_task_cancel(t);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(o.r, -ECANCELED);
    CHECK(access(path, F_OK) < 0);
    offer_done(&o);
    return NULL;
}

TEST(cancelled_offer_removes_its_socket) { test_run(cancel_main, NULL); }
