/*
 * libuv_udp_echo — the libuv peer for the UDP echo benchmark (bench/udp_bench.sh).
 *
 * The best configuration Debian's libuv (1.44) offers a careful user:
 * the handle is made with uv_udp_init_ex(UV_UDP_RECVMMSG), so libuv reads
 * with recvmmsg into one large buffer handed out by alloc_cb (reused for
 * every read: nothing is allocated in the steady state), and each datagram
 * goes back at once with uv_udp_try_send, one sendmsg and no request to
 * allocate.  (libuv has no batched send the caller can ask for: uv_udp_send
 * sends at once too whenever its queue is empty, and costs a request and a
 * callback per datagram.)  A reply the kernel cannot take right now
 * (EAGAIN) is dropped, as a UDP server may; the benchmark's window keeps
 * that from happening.
 *
 * Usage: libuv_udp_echo PORT   (binds 127.0.0.1, prints "ready" once bound)
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

/* libuv's recvmmsg path splits the buffer into 64 KiB slots, one datagram
 * each: 20 slots give it 20 datagrams per system call (its own limit). */
#define SLOTS 20
#define SLOT (64 * 1024)

static char big[SLOTS * SLOT];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)h;
    (void)suggested;
    *out = uv_buf_init(big, sizeof big);
}

static void recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    /* nread 0 with no address: the socket is drained (or the final
     * UV_UDP_MMSG_FREE call): nothing to echo. */
    if (nread < 0 || !addr || (flags & UV_UDP_MMSG_FREE))
        return;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    (void)uv_udp_try_send(u, &b, 1, addr);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 9999;
    uv_loop_t *loop = uv_default_loop();
    uv_udp_t u;
    struct sockaddr_in sa;
    int r = uv_udp_init_ex(loop, &u, AF_INET | UV_UDP_RECVMMSG);
    if (!r)
        r = uv_ip4_addr("127.0.0.1", port, &sa);
    if (!r)
        r = uv_udp_bind(&u, (const struct sockaddr *)&sa, 0);
    if (!r)
        r = uv_udp_recv_start(&u, alloc_cb, recv_cb);
    if (r) {
        fprintf(stderr, "libuv_udp_echo: %s\n", uv_strerror(r));
        return 1;
    }
    printf("ready (recvmmsg %s)\n", uv_udp_using_recvmmsg(&u) ? "on" : "off");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
