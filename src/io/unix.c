/*
 * Unix domain stream sockets (asyncio.start_unix_server and
 * open_unix_connection): a listening socket bound at a path or
 * "@abstract" name (the address rules, the stale-file replacement and the
 * removal on close are src/io/unixaddr.c's, shared with datagrams), with
 * its mode set before listen, and connecting.  The server itself is
 * the TCP one (src/io/tcp.c, through server.h), and the streams are the
 * ordinary ones marked as Unix streams, which receive with recvmsg so that
 * passed fds are kept only when asked to (the server's receive_fds,
 * corio_stream_set_receive_fds; src/io/stream.c, src/io/fdpass.c).
 */
#include "server.h"
#include "sys.h"
#include "stream.h"
#include "listen.h"
#include "unixaddr.h"

#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int unix_socket(void) { return socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int corio_server_start_unix(const char *path, corio_conn_fn handler, void *arg,
                            const corio_server_config *cfg, corio_server **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    corio_loop *l;
    int r = corio__server_begin(handler, &cfg, out, &l);
    if (r)
        return r;
    struct sockaddr_un sa;
    socklen_t len;
    r = corio__unix_addr(path, true, &sa, &len);
    if (r < 0)
        return r;

    int fd = unix_socket();
    if (fd < 0)
        return -errno;
    r = corio__unix_bind(fd, SOCK_STREAM, path, &sa, len);
    if (r < 0) {
        close(fd);
        return r;
    }
    corio__unix_file *f;
    r = corio__unix_file_note(path, &f);
    if (r < 0) {
        (void)unlink(path); /* ours: just bound */
        close(fd);
        return r;
    }
    /* before listen: until then a connect is refused, so nobody gets in
     * under the umask's bits */
    if (f && cfg->mode && chmod(path, (mode_t)(cfg->mode & 07777)) < 0) {
        r = -errno;
        goto fail;
    }
    if (listen(fd, cfg->backlog > 0 ? cfg->backlog : 4096) < 0) {
        r = -errno;
        goto fail;
    }
    corio_server *srv;
    r = corio__server_adopt(l, &fd, 1, handler, arg, cfg, &srv);
    if (r < 0)
        goto fail;
    if (f)
        corio__server_on_close(srv, corio__unix_file_remove, f);
    *out = srv;
    return 0;
fail:
    close(fd);
    corio__unix_file_remove(f);
    return r;
}

int corio_stream_connect_unix(const char *path, corio_stream **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct sockaddr_un sa;
    socklen_t len;
    int r = corio__unix_addr(path, false, &sa, &len);
    if (r < 0)
        return r;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    r = corio__check();
    if (r)
        return r;
    int fd = unix_socket();
    if (fd < 0)
        return -errno;
    /* A Unix connect completes at once or fails at once; EAGAIN is a full
     * backlog, which a blocking connect would sleep through. */
    uint64_t pause_ms = 1;
    while (connect(fd, (struct sockaddr *)&sa, len) < 0) {
        r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (r == -EINTR)
            continue;
        if (r == -EAGAIN)
            r = corio_sleep_ms(pause_ms);
        if (r < 0) {
            corio__close_fd(l, fd);
            return r;
        }
        if (pause_ms < 10)
            pause_ms *= 2;
    }
    corio_stream *s = corio__stream_new(fd);
    if (!s) {
        corio__close_fd(l, fd);
        return -ENOMEM;
    }
    corio__stream_set_unix(s);
    *out = s;
    return 0;
}
