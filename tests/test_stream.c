/*
 * Streams (src/io/stream.c) over Unix socket pairs (a few tests also over
 * TCP, for io_uring's multishot recv): the read calls and
 * their edge cases (EOF in the middle, separators split across packets,
 * the buffer limit), writes with backpressure, half-close, errors, and
 * cancellation of every kind of wait.  Both ends are corio streams driven
 * by tasks, so nothing ever blocks the loop.
 */
#include "runner.h"
#include "internal.h"
#include "io/stream.h"

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* Set by the _tcp twins of the tests about io_uring's multishot recv:
 * Unix streams receive with recvmsg to keep passed fds (test_unix.c), so
 * only a TCP pair reaches the multishot there. */
static bool tcp_pairs;

/* A connected pair over TCP loopback. */
static void make_tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    socklen_t sl = sizeof sa;
    CHECK(l >= 0);
    CHECK(bind(l, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(l, 1) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(sv[0] >= 0);
    CHECK(connect(sv[0], (struct sockaddr *)&sa, sizeof sa) == 0);
    sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(sv[1] >= 0);
    close(l);
}

static void make_pair(corio_stream **a, corio_stream **b)
{
    int sv[2];
    if (tcp_pairs)
        make_tcp_pair(sv);
    else
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    *a = corio_stream_from_fd(sv[0]);
    *b = corio_stream_from_fd(sv[1]);
    CHECK(*a && *b);
}

/* A script for the peer: send pieces with pauses in between (so they arrive
 * as separate packets), then optionally half-close. */
typedef struct script {
    corio_stream *s;
    const char *const *pieces;
    int n;
    bool eof;
} script;

static void *play(void *arg)
{
    script *sc = arg;
    for (int i = 0; i < sc->n; i++) {
        CHECK_OK(corio_stream_write(sc->s, sc->pieces[i], strlen(sc->pieces[i])));
        CHECK_OK(corio_stream_drain(sc->s));
        CHECK_OK(corio_sleep_ms(5));
    }
    if (sc->eof)
        CHECK_OK(corio_stream_write_eof(sc->s));
    return NULL;
}

/* ---- reads ------------------------------------------------------------- */

static void *readexactly_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    static const char *const p[] = {"0123", "456", "789"};
    script sc = {b, p, 3, true};
    corio_task *t = corio_spawn(play, &sc);
    CHECK(t);
    char buf[32];
    size_t got = 99;
    CHECK_EQ(corio_stream_readexactly(a, buf, 4, &got), 4);
    CHECK_MEM(buf, "0123", 4);
    memset(buf, 0, sizeof buf);
    CHECK_ERR(corio_stream_readexactly(a, buf, 20, &got), -CORIO_EINCOMPLETE);
    CHECK_EQ(got, 6);
    CHECK_MEM(buf, "456789", 6);
    CHECK(corio_stream_at_eof(a));
    CHECK_EQ(corio_stream_read(a, buf, sizeof buf), 0);
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readexactly_short_at_eof) { test_run(readexactly_main, NULL); }

/* Big readexactly (direct into the caller's buffer) across many packets. */
typedef struct bulk {
    corio_stream *s;
    size_t n;
} bulk;

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 9)); }

static void *bulk_writer(void *arg)
{
    bulk *bk = arg;
    unsigned char chunk[3000];
    for (size_t off = 0; off < bk->n;) {
        size_t k = bk->n - off < sizeof chunk ? bk->n - off : sizeof chunk;
        for (size_t i = 0; i < k; i++)
            chunk[i] = pattern(off + i);
        CHECK_OK(corio_stream_write(bk->s, chunk, k));
        CHECK_OK(corio_stream_drain(bk->s));
        off += k;
        if ((off / k) % 16 == 0)
            CHECK_OK(corio_yield());
    }
    CHECK_OK(corio_stream_write_eof(bk->s));
    return NULL;
}

static void *readexactly_big_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    bulk bk = {b, 1u << 20};
    corio_task *t = corio_spawn(bulk_writer, &bk);
    CHECK(t);
    unsigned char *buf = malloc(bk.n);
    unsigned char small[5];
    CHECK_EQ(corio_stream_readexactly(a, small, 5, NULL), 5); /* leaves a partial buffer behind */
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ(small[i], pattern(i));
    CHECK_EQ(corio_stream_readexactly(a, buf, bk.n - 5, NULL), bk.n - 5);
    for (size_t i = 0; i < bk.n - 5; i++)
        if (buf[i] != pattern(i + 5))
            test_fail(__FILE__, __LINE__, "byte %zu differs", i + 5);
    CHECK_EQ(corio_stream_read(a, small, 1), 0);
    CHECK_OK(corio_task_join(t, NULL));
    free(buf);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readexactly_large_across_packets) { test_run(readexactly_big_main, NULL); }

static void *readline_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    static const char *const p[] = {"hel", "lo\nwor", "ld\n\nta", "il"};
    script sc = {b, p, 4, true};
    corio_task *t = corio_spawn(play, &sc);
    CHECK(t);
    char line[64];
    CHECK_EQ(corio_stream_readline(a, line, sizeof line), 6);
    CHECK_STR(line, "hello\n");
    CHECK_EQ(corio_stream_readline(a, line, sizeof line), 6);
    CHECK_STR(line, "world\n");
    CHECK_EQ(corio_stream_readline(a, line, sizeof line), 1);
    CHECK_STR(line, "\n");
    CHECK_EQ(corio_stream_readline(a, line, sizeof line), 4); /* unterminated tail at EOF */
    CHECK_STR(line, "tail");
    CHECK_EQ(corio_stream_readline(a, line, sizeof line), 0);
    CHECK(corio_stream_at_eof(a));
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readline_split_across_packets) { test_run(readline_main, NULL); }

static void *readline_small_buf_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    CHECK_OK(corio_stream_write(b, "a long line\n", 12));
    char line[8];
    CHECK_ERR(corio_stream_readline(a, line, sizeof line), -CORIO_ELIMIT);
    char big[16];
    CHECK_EQ(corio_stream_readline(a, big, sizeof big), 12); /* it stayed buffered */
    CHECK_STR(big, "a long line\n");
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readline_enobufs_keeps_line) { test_run(readline_small_buf_main, NULL); }

static void *readuntil_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    /* the 4-byte separator arrives in three packets */
    static const char *const p[] = {"GET / HTTP/1.1\r\nA: b\r", "\n\r", "\nbody"};
    script sc = {b, p, 3, true};
    corio_task *t = corio_spawn(play, &sc);
    CHECK(t);
    const char *head = NULL;
    ssize_t len = corio_stream_readuntil(a, "\r\n\r\n", 4, &head);
    CHECK_EQ(len, (ssize_t)strlen("GET / HTTP/1.1\r\nA: b\r\n\r\n"));
    CHECK(head);
    CHECK_MEM(head, "GET / HTTP/1.1\r\nA: b\r\n\r\n", (size_t)len);
    CHECK_ERR(corio_stream_readuntil(a, "\r\n\r\n", 4, &head), -CORIO_EINCOMPLETE);
    CHECK(head == NULL);
    char rest[16];
    CHECK_EQ(corio_stream_read(a, rest, sizeof rest), 4); /* the partial data is still there */
    CHECK_MEM(rest, "body", 4);
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readuntil_separator_split_across_packets) { test_run(readuntil_main, NULL); }

static void *readuntil_limit_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    corio_stream_set_limit(a, 100);
    char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    CHECK_OK(corio_stream_write(b, data, sizeof data));
    const char *p;
    CHECK_ERR(corio_stream_readuntil(a, "\n", 1, &p), -CORIO_ELIMIT);
    CHECK(p == NULL);
    char line[400];
    CHECK_ERR(corio_stream_readline(a, line, sizeof line), -CORIO_ELIMIT);
    /* nothing was lost: every byte can still be read in order */
    char back[300];
    CHECK_EQ(corio_stream_readexactly(a, back, sizeof back, NULL), sizeof back);
    CHECK_MEM(back, data, sizeof data);

    /* the default limit (64 KiB) holds against a peer that never sends the
     * separator: memory does not grow past it */
    corio_stream_set_limit(a, 64 * 1024);
    char *junk = malloc(256 * 1024);
    memset(junk, 'x', 256 * 1024);
    CHECK_OK(corio_stream_write(b, junk, 256 * 1024));
    CHECK_ERR(corio_stream_readuntil(a, "\r\n\r\n", 4, &p), -CORIO_ELIMIT);
    free(junk);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readuntil_over_limit_is_elimit_and_keeps_data) { test_run(readuntil_limit_main, NULL); }

static void *readuntil_at_limit_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    corio_stream_set_limit(a, 10);
    CHECK_OK(corio_stream_write(b, "123456789\nXY", 12)); /* 10 bytes with the separator: fits exactly */
    const char *p;
    CHECK_EQ(corio_stream_readuntil(a, "\n", 1, &p), 10);
    CHECK_MEM(p, "123456789\n", 10);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readuntil_exactly_at_limit) { test_run(readuntil_at_limit_main, NULL); }

/* ---- writes, backpressure, half-close, errors ---------------------------- */

static void *backpressure_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    int sz = 4096;
    setsockopt(corio_stream_fd(a), SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    corio_stream_set_write_limits(a, 32 * 1024, 8 * 1024);
    char chunk[8192];
    memset(chunk, 'z', sizeof chunk);
    size_t written = 0;
    int r = 0;
    corio_deadline d = corio_deadline_push(200);
    uint64_t t0 = test_ms();
    while (r == 0) {
        r = corio_stream_write(a, chunk, sizeof chunk);
        if (r == 0) {
            written += sizeof chunk;
            CHECK(corio_stream_write_buffer_size(a) <= 32 * 1024 + sizeof chunk);
            r = corio_stream_drain(a);
        }
    }
    corio_deadline_pop(d);
    CHECK_ERR(r, -CORIO_EDEADLINE);
    CHECK(test_ms() - t0 >= 150);
    CHECK(corio_stream_write_buffer_size(a) > 8 * 1024); /* drain really was blocked */
    CHECK(corio_stream_write_buffer_size(a) <= 32 * 1024 + sizeof chunk);

    /* once the peer reads, drain completes and every byte arrives */
    size_t total = 0;
    char buf[65536];
    while (total < written) {
        ssize_t n = corio_stream_read(b, buf, sizeof buf);
        CHECK(n > 0);
        for (ssize_t i = 0; i < n; i++)
            CHECK(buf[i] == 'z');
        total += (size_t)n;
    }
    CHECK_EQ(total, written);
    CHECK_EQ(corio_stream_write_buffer_size(a), 0);
    CHECK_OK(corio_stream_drain(a));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(backpressure_drain_blocks_and_deadline) { test_run(backpressure_main, NULL); }

typedef struct drainer {
    corio_stream *s;
    int result;
    bool done;
} drainer;

static void *drain_task(void *arg)
{
    drainer *d = arg;
    char chunk[8192];
    memset(chunk, 'q', sizeof chunk);
    int r = 0;
    while (r == 0) {
        r = corio_stream_write(d->s, chunk, sizeof chunk);
        if (r == 0)
            r = corio_stream_drain(d->s);
    }
    d->result = r;
    d->done = true;
    return NULL;
}

static void *cancel_drain_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    drainer d = {a, 0, false};
    corio_task *t = corio_spawn(drain_task, &d);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(50));
    CHECK(!d.done);
    CHECK(corio_stream_write_buffer_size(a) > 0);
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(d.result, -ECANCELED);
    corio_stream_close(a); /* with a flusher still holding a send: must not leak or crash */
    corio_stream_close(b);
    CHECK_OK(corio_sleep_ms(10));
    return NULL;
}

TEST(cancel_during_drain) { test_run(cancel_drain_main, NULL); }

static void *half_close_peer(void *arg)
{
    corio_stream *b = arg;
    char buf[64];
    size_t total = 0;
    ssize_t n;
    while ((n = corio_stream_read(b, buf, sizeof buf)) > 0)
        total += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(total, 5);
    CHECK(corio_stream_at_eof(b));
    CHECK_OK(corio_stream_write(b, "reply", 5)); /* the other direction still works */
    CHECK_OK(corio_stream_write_eof(b));
    return NULL;
}

static void *half_close_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    corio_task *t = corio_spawn(half_close_peer, b);
    CHECK(t);
    CHECK_OK(corio_stream_write(a, "hello", 5));
    CHECK_OK(corio_stream_write_eof(a));
    CHECK_ERR(corio_stream_write(a, "x", 1), -EPIPE);
    char buf[16];
    CHECK_EQ(corio_stream_readexactly(a, buf, 5, NULL), 5);
    CHECK_MEM(buf, "reply", 5);
    CHECK_EQ(corio_stream_read(a, buf, sizeof buf), 0);
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(write_eof_half_close) { test_run(half_close_main, NULL); }

static void *epipe_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    corio_stream_close(b);
    int r = 0;
    for (int i = 0; i < 4 && r == 0; i++)
        r = corio_stream_write(a, "data", 4); /* no SIGPIPE: the process survives */
    CHECK(r == -EPIPE || r == -ECONNRESET);
    CHECK_ERR(corio_stream_write(a, "more", 4), r); /* remembered */
    CHECK_ERR(corio_stream_drain(a), r);
    corio_stream_close(a);
    return NULL;
}

TEST(write_to_closed_peer_is_epipe_no_sigpipe) { test_run(epipe_main, NULL); }

/* Data written without a drain still leaves (background flush), also when
 * it did not fit in the socket at once. */
static void *bg_reader(void *arg)
{
    corio_stream *b = arg;
    static char buf[1 << 20];
    size_t got = 0;
    CHECK_OK(corio_sleep_ms(30)); /* let the writer fill the socket first */
    ssize_t n;
    while ((n = corio_stream_read(b, buf + got, sizeof buf - got)) > 0)
        got += (size_t)n;
    CHECK_EQ(got, sizeof buf);
    for (size_t i = 0; i < got; i++)
        if ((unsigned char)buf[i] != pattern(i))
            test_fail(__FILE__, __LINE__, "byte %zu differs", i);
    return NULL;
}

static void *background_flush_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    corio_task *t = corio_spawn(bg_reader, b);
    CHECK(t);
    static unsigned char data[1 << 20];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pattern(i);
    CHECK_OK(corio_stream_write(a, data, sizeof data));
    CHECK(corio_stream_write_buffer_size(a) > 0);
    CHECK_OK(corio_stream_aclose(a)); /* flushes everything, then EOF */
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(b);
    return NULL;
}

TEST(background_flush_and_aclose) { test_run(background_flush_main, NULL); }

/* ---- cancellation of reads ------------------------------------------------ */

typedef struct reader_state {
    corio_stream *s;
    ssize_t result;
} reader_state;

static void *blocked_reader(void *arg)
{
    reader_state *rs = arg;
    char buf[16];
    rs->result = corio_stream_read(rs->s, buf, sizeof buf);
    return NULL;
}

static void *blocked_exact_reader(void *arg)
{
    reader_state *rs = arg;
    char buf[8192];
    rs->result = corio_stream_readexactly(rs->s, buf, sizeof buf, NULL);
    return NULL;
}

static void *cancel_read_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    reader_state rs = {a, 1};
    corio_task *t = corio_spawn(blocked_reader, &rs);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(20));
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(rs.result, -ECANCELED);

    /* a cancelled readexactly loses nothing it already took */
    rs.result = 1;
    t = corio_spawn(blocked_exact_reader, &rs);
    CHECK(t);
    CHECK_OK(corio_stream_write(b, "partial", 7));
    CHECK_OK(corio_sleep_ms(20));
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(rs.result, -ECANCELED);

    /* the stream is still usable by another task */
    CHECK_OK(corio_stream_write(b, "!", 1));
    char buf[16];
    CHECK_EQ(corio_stream_readexactly(a, buf, 8, NULL), 8);
    CHECK_MEM(buf, "partial!", 8);

    /* a deadline on a read */
    corio_deadline d = corio_deadline_push(30);
    CHECK_ERR(corio_stream_read(a, buf, sizeof buf), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(cancel_during_read) { test_run(cancel_read_main, NULL); }

static void *close_while_reading_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    reader_state rs = {a, 1};
    corio_task *t = corio_spawn(blocked_reader, &rs);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(20));
    corio_stream_close(a); /* the reader is woken; the memory goes when it is out */
    CHECK_OK(corio_task_join(t, NULL));
    CHECK(rs.result < 0);
    corio_stream_close(b);
    return NULL;
}

TEST(close_while_another_task_reads) { test_run(close_while_reading_main, NULL); }

static void *busy_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    reader_state rs = {a, 1};
    corio_task *t = corio_spawn(blocked_reader, &rs);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(10));
    CHECK_EQ(rs.result, 1); /* still parked (else the read below would wait forever) */
    char buf[4];
    CHECK_ERR(corio_stream_read(a, buf, sizeof buf), -EBUSY);
    CHECK_OK(corio_stream_write(b, "ok", 2));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(rs.result, 2);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(second_reader_is_ebusy) { test_run(busy_main, NULL); }

/* A peer sends far more than anyone reads for a while: the stream must not
 * buffer without bound, and nothing may be lost or reordered.  The bound
 * (corio_stream_set_limit) is max(limit, 64 KiB) + 16 KiB: on io_uring a
 * multishot recv keeps receiving while nobody reads, up to that (the
 * kernel fills many 16 KiB buffers per system call, so only a byte limit
 * on the recv itself holds it); elsewhere nothing is received unasked. */
static size_t unread_bound(size_t limit) { return (limit > 65536 ? limit : 65536) + 16384; }

static void *flow_writer(void *arg)
{
    corio_stream *b = arg;
    static unsigned char data[4 << 20];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pattern(i);
    for (size_t off = 0; off < sizeof data; off += 65536) {
        CHECK_OK(corio_stream_write(b, data + off, 65536));
        CHECK_OK(corio_stream_drain(b)); /* keeps the writer's own queue small */
    }
    CHECK_OK(corio_stream_aclose(b));
    return NULL;
}

static void *flow_control_main(void *arg)
{
    size_t limit = (size_t)(uintptr_t)arg; /* 0: the default */
    corio_stream *a, *b;
    make_pair(&a, &b);
    if (limit)
        corio_stream_set_limit(a, limit);
    size_t bound = unread_bound(limit ? limit : 65536);
    char first[10];
    CHECK_OK(corio_stream_write(b, "0123456789", 10));
    CHECK_EQ(corio_stream_readexactly(a, first, 10, NULL), 10); /* arms the reader side */
    struct mallinfo2 m0 = mallinfo2();
    corio_task *t = corio_spawn(flow_writer, b);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(100)); /* nobody reads meanwhile */
    struct mallinfo2 m1 = mallinfo2();
    CHECK(corio__stream_unread(a) <= bound);
    /* the read buffer (less than twice the bound: it doubles) and the
     * writer's queue; mmapped blocks count too: large buffers live there */
    CHECK(m1.uordblks + m1.hblkhd < m0.uordblks + m0.hblkhd + 2 * bound + 256 * 1024);
    static unsigned char buf[4 << 20];
    size_t got = 0, most = 0;
    ssize_t n;
    unsigned char extra[16];
    while ((n = got < sizeof buf
                    ? corio_stream_read(a, buf + got, sizeof buf - got > 1000 ? 1000 : sizeof buf - got)
                    : corio_stream_read(a, extra, sizeof extra)) > 0) {
        got += (size_t)n;
        if (corio__stream_unread(a) > most)
            most = corio__stream_unread(a);
    }
    CHECK(most <= bound); /* through every pause and resume too */
    CHECK_EQ(n, 0);
    CHECK_EQ(got, sizeof buf);
    for (size_t i = 0; i < got; i++)
        if (buf[i] != pattern(i))
            test_fail(__FILE__, __LINE__, "byte %zu differs", i);
    CHECK_OK(corio_task_join(t, NULL));
    corio_stream_close(a);
    return NULL;
}

TEST(unread_input_is_bounded_and_intact) { test_run(flow_control_main, NULL); }

TEST(unread_tcp_input_is_bounded_and_intact)
{
    tcp_pairs = true;
    test_run(flow_control_main, NULL);
}

TEST(unread_tcp_input_is_bounded_by_a_raised_limit)
{
    tcp_pairs = true;
    test_run(flow_control_main, (void *)(uintptr_t)200000);
}

/* Closing with data still queued does not drop it: the stream keeps
 * flushing in the background (like an asyncio transport), then closes. */
static void *linger_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    static unsigned char data[1 << 20];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pattern(i);
    CHECK_OK(corio_stream_write(a, data, sizeof data));
    CHECK(corio_stream_write_buffer_size(a) > 0);
    corio_stream_close(a);        /* never suspends */
    CHECK_OK(corio_sleep_ms(20)); /* the reader starts late */
    static unsigned char buf[1 << 20];
    size_t got = 0;
    ssize_t n;
    unsigned char extra[16];
    while ((n = got < sizeof buf ? corio_stream_read(b, buf + got, sizeof buf - got)
                                 : corio_stream_read(b, extra, sizeof extra)) > 0)
        got += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(got, sizeof data);
    CHECK_MEM(buf, data, sizeof data);
    corio_stream_close(b);
    return NULL;
}

TEST(close_flushes_queued_data_in_background) { test_run(linger_main, NULL); }

/* ---- review: adversarial cases ------------------------------------------- */

/* A reader parked on the stream has been handed data (some in its own
 * memory, the rest buffered) but has not run yet; a second task's
 * readexactly wanting more than is buffered must get -EBUSY like any other
 * second reader, not take the buffered bytes and park in the first
 * reader's place (which lost the first reader's bytes and hung a task). */
typedef struct racer {
    corio_stream *s;
    char buf[256];
    ssize_t result;
    int busy_seen;
} racer;

static void *small_reader(void *arg)
{
    racer *r = arg;
    r->result = corio_stream_read(r->s, r->buf, 4);
    return NULL;
}

static void *eager_exact_reader(void *arg)
{
    racer *r = arg;
    for (;;) {
        r->result = corio_stream_readexactly(r->s, r->buf, 200, NULL);
        if (r->result != -EBUSY)
            break;
        r->busy_seen++;
        CHECK_OK(corio_yield());
    }
    return NULL;
}

static void *second_reader_with_data_buffered_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    unsigned char data[204];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pattern(i);
    racer ra = {.s = a}, rb = {.s = a};
    corio_task *ta = corio_spawn(small_reader, &ra);
    CHECK(ta);
    CHECK_OK(corio_sleep_ms(10)); /* ra is parked in its read */
    corio_task *tb = corio_spawn(eager_exact_reader, &rb);
    CHECK(tb);
    CHECK_OK(corio_yield()); /* rb is now spinning on -EBUSY, ahead of ra in the run queue */
    CHECK_OK(corio_stream_write(b, data, 100));
    corio_deadline d = corio_deadline_push(2000);
    CHECK_OK(corio_task_join(ta, NULL));
    CHECK_EQ(ra.result, 4);
    CHECK_MEM(ra.buf, data, 4);
    CHECK_OK(corio_stream_write(b, data + 100, 104));
    CHECK_OK(corio_task_join(tb, NULL));
    corio_deadline_pop(d);
    CHECK(rb.busy_seen > 0);
    CHECK_EQ(rb.result, 200);
    CHECK_MEM(rb.buf, data + 4, 200);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(second_reader_with_data_buffered_is_ebusy) { test_run(second_reader_with_data_buffered_main, NULL); }

/* readuntil's result points into the stream's buffer and must stay valid
 * until the next call on this stream, also while the task waits on
 * something else and more input keeps arriving in the background (io_uring
 * multishot receive): it must not be overwritten, moved or freed. */
static void *readuntil_result_stable_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    CHECK_OK(corio_stream_write(b, "first line\n", 11));
    const char *line;
    CHECK_EQ(corio_stream_readuntil(a, "\n", 1, &line), 11);
    /* the peer goes on sending (more than the buffer holds, so it would
     * have to grow), while this task only sleeps */
    static char junk[48 * 1024];
    memset(junk, 'x', sizeof junk);
    CHECK_OK(corio_stream_write(b, junk, 100));
    CHECK_OK(corio_sleep_ms(10));
    CHECK_MEM(line, "first line\n", 11);
    CHECK_OK(corio_stream_write(b, junk, sizeof junk));
    CHECK_OK(corio_sleep_ms(20));
    CHECK_MEM(line, "first line\n", 11);
    /* and nothing was lost or reordered */
    static char back[100 + sizeof junk];
    CHECK_EQ(corio_stream_readexactly(a, back, sizeof back, NULL), sizeof back);
    for (size_t i = 0; i < sizeof back; i++)
        CHECK(back[i] == 'x');
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(readuntil_result_survives_background_input) { test_run(readuntil_result_stable_main, NULL); }

TEST(readuntil_result_survives_background_input_tcp)
{
    tcp_pairs = true;
    test_run(readuntil_result_stable_main, NULL);
}

/* Closing a stream while one task is parked reading, another is parked in
 * drain and the background flusher has a send in the kernel: everyone is
 * woken with an error, nothing is touched after it is freed (ASan), and the
 * loop ends promptly (the flusher's linger is cut short when main ends). */
static void *close_with_everyone_waiting_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    reader_state rs = {a, 1};
    corio_task *tr = corio_spawn(blocked_reader, &rs);
    drainer d = {a, 0, false};
    corio_task *td = corio_spawn(drain_task, &d);
    CHECK(tr && td);
    CHECK_OK(corio_sleep_ms(30));
    CHECK(!d.done);
    CHECK(corio_stream_write_buffer_size(a) > 0);
    corio_stream_close(a);
    CHECK_OK(corio_task_join(tr, NULL));
    CHECK_OK(corio_task_join(td, NULL));
    CHECK(rs.result < 0);
    CHECK_ERR(d.result, -EPIPE);
    corio_stream_close(b);
    return NULL;
}

TEST(close_while_reading_draining_and_flushing)
{
    uint64_t t0 = test_ms();
    test_run(close_with_everyone_waiting_main, NULL);
    CHECK(test_ms() - t0 < 5000);
}

/* aclose on a stream whose peer never reads: a deadline interrupts the
 * flush, the stream is closed all the same, and main ending cuts the
 * background linger short. */
static void *aclose_deadline_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    static char data[1 << 20];
    memset(data, 'd', sizeof data);
    CHECK_OK(corio_stream_write(a, data, sizeof data));
    corio_deadline d = corio_deadline_push(30);
    CHECK_ERR(corio_stream_aclose(a), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    /* the peer is still open and unread: the closed stream lingers */
    CHECK_OK(corio_sleep_ms(10));
    corio_stream_close(b);
    return NULL;
}

TEST(aclose_deadline_then_loop_end)
{
    uint64_t t0 = test_ms();
    test_run(aclose_deadline_main, NULL);
    CHECK(test_ms() - t0 < 5000);
}

/* write_eof interrupted while flushing leaves the stream usable: a second
 * write_eof finishes once the peer reads. */
static void *write_eof_cancel_main(void *arg)
{
    corio_stream *a, *b;
    make_pair(&a, &b);
    static char data[1 << 20];
    memset(data, 'e', sizeof data);
    CHECK_OK(corio_stream_write(a, data, sizeof data));
    corio_deadline d = corio_deadline_push(20);
    CHECK_ERR(corio_stream_write_eof(a), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK_OK(corio_stream_write(a, "!", 1)); /* not shut down yet */
    static char buf[1 << 16];
    size_t got = 0;
    ssize_t n = 0;
    while (got < sizeof data + 1) {
        n = corio_stream_read(b, buf, sizeof buf);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(got, sizeof data + 1);
    CHECK_EQ(buf[n - 1], '!');
    CHECK_OK(corio_stream_write_eof(a));
    CHECK_EQ(corio_stream_read(b, buf, sizeof buf), 0);
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(write_eof_interrupted_then_retried) { test_run(write_eof_cancel_main, NULL); }

/* ---- ownership of the fd when wrapping fails ---------------------------- */

/* corio_stream_from_fd that fails leaves fd exactly as it was given: open,
 * still blocking, close-on-exec unchanged, and still the caller's (a socket
 * used to be made non-blocking before the allocation that failed). */
static void check_from_fd_failure_leaves_fd(int fd, int peer)
{
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    CHECK(fl >= 0 && fdfl >= 0);
    CHECK(!(fl & O_NONBLOCK));
    corio_fi_fail_next("calloc", 1); /* the stream's allocation */
    errno = 0;
    corio_stream *s = corio_stream_from_fd(fd);
    corio_fi_fail_next("calloc", 0);
    CHECK(s == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(fcntl(fd, F_GETFL), fl);
    CHECK_EQ(fcntl(fd, F_GETFD), fdfl);
    char c = 0;
    CHECK_EQ(write(peer, "x", 1), 1);
    CHECK_EQ(read(fd, &c, 1), 1); /* still open, still usable */
    CHECK_EQ(c, 'x');
}

static void *from_fd_failure_main(void *arg)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    check_from_fd_failure_leaves_fd(sv[0], sv[1]);
    /* and the fd can still be wrapped once memory is there */
    corio_stream *s = corio_stream_from_fd(sv[0]);
    CHECK(s);
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    corio_stream_close(s);
    close(sv[1]);

    int p[2];
    CHECK(pipe(p) == 0);
    check_from_fd_failure_leaves_fd(p[0], p[1]);
    close(p[0]);
    close(p[1]);

    errno = 0;
    CHECK(corio_stream_from_fd(-1) == NULL);
    CHECK_EQ(errno, EBADF);
    return arg;
}

TEST(from_fd_failure_leaves_the_fd_to_the_caller) { test_run(from_fd_failure_main, NULL); }
