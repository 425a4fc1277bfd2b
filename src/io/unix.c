/*
 * Unix domain stream sockets (asyncio.start_unix_server and
 * open_unix_connection): turning a path or "@abstract" name into a
 * sockaddr_un, binding a listening socket at it (replacing a stale socket
 * file, never a live one or a file that is not a socket), removing the
 * file again when the server closes, and connecting.  The server itself is
 * the TCP one (src/io/tcp.c, through server.h), and the streams are the
 * ordinary ones marked as Unix streams, which receive with recvmsg so that
 * passed fds are kept (src/io/stream.c, src/io/fdpass.c).
 */
#include "server.h"
#include "stream.h"
#include "listen.h"

#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* path -> *sa and its length.  '@' starts an abstract name; "@" alone is
 * the autobind address when `autobind` (a server), else -EINVAL. */
static int make_addr(const char *path, bool autobind, struct sockaddr_un *sa, socklen_t *len)
{
    if (!path || !*path)
        return -EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (path[0] == '@') {
        if (n == 1) {
            if (!autobind)
                return -EINVAL;
            *len = (socklen_t)sizeof(sa_family_t); /* the kernel picks a unique abstract name */
            return 0;
        }
        if (n > sizeof sa->sun_path) /* '@' becomes the leading NUL: n bytes in all */
            return -ENAMETOOLONG;
        memcpy(sa->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= sizeof sa->sun_path) /* room for the NUL */
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static int unix_socket(void) { return socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

/* Is a server listening at sa?  A connect that is refused means the file
 * is left over from a dead one.  1 = live (or can't tell), 0 = stale. */
static int someone_listens(const struct sockaddr_un *sa, socklen_t len)
{
    int fd = unix_socket();
    if (fd < 0)
        return 1;
    int r = connect(fd, (const struct sockaddr *)sa, len);
    int e = errno;
    close(fd);
    /* EAGAIN: a full backlog, so alive; anything but a refusal counts as
     * alive too: removing a file is the one mistake to avoid */
    return r == 0 || e != ECONNREFUSED;
}

/* What the server removes when it closes: its file, if still the same one. */
typedef struct unix_file {
    dev_t dev;
    ino_t ino;
    char path[];
} unix_file;

static void remove_file(void *arg)
{
    unix_file *f = arg;
    struct stat st;
    /* another server may have replaced the file since: leave that one */
    if (lstat(f->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == f->dev && st.st_ino == f->ino)
        (void)unlink(f->path);
    corio__free(f);
}

/* bind, replacing a stale socket file once. */
static int bind_at(int fd, const char *path, const struct sockaddr_un *sa, socklen_t len)
{
    for (int tries = 0;; tries++) {
        if (bind(fd, (const struct sockaddr *)sa, len) == 0)
            return 0;
        int e = errno;
        if (e != EADDRINUSE || path[0] == '@' || tries > 0)
            return -e;
        struct stat st;
        if (lstat(path, &st) < 0) {
            if (errno == ENOENT)
                continue; /* gone meanwhile: try again */
            return -EADDRINUSE;
        }
        if (!S_ISSOCK(st.st_mode) || someone_listens(sa, len))
            return -EADDRINUSE;
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    }
}

int corio_server_start_unix(const char *path, corio_conn_fn handler, void *arg,
                            const corio_server_config *cfg, corio_server **out)
{
    static const corio_server_config defaults;
    if (out)
        *out = NULL;
    if (!handler || !out || (cfg && cfg->stack_size > CORIO__STACK_SIZE_MAX))
        return -EINVAL;
    struct sockaddr_un sa;
    socklen_t len;
    int r = make_addr(path, true, &sa, &len);
    if (r < 0)
        return r;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    if (!cfg)
        cfg = &defaults;
    r = corio__check();
    if (r)
        return r;

    bool file = path[0] != '@';
    unix_file *f = NULL;
    if (file) {
        size_t n = strlen(path);
        f = corio__malloc(sizeof *f + n + 1);
        if (!f)
            return -ENOMEM;
        memcpy(f->path, path, n + 1);
    }
    int fd = unix_socket();
    if (fd < 0) {
        r = -errno;
        corio__free(f);
        return r;
    }
    r = bind_at(fd, path, &sa, len);
    if (r < 0) {
        close(fd);
        corio__free(f);
        return r;
    }
    struct stat st;
    if (file && fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        f->dev = st.st_dev;
        f->ino = st.st_ino;
    } else if (file) {
        r = -errno;
        goto fail;
    }
    /* before listen: until then a connect is refused, so nobody gets in
     * under the umask's bits */
    if (file && cfg->mode && chmod(path, (mode_t)(cfg->mode & 07777)) < 0) {
        r = -errno;
        goto fail;
    }
    if (listen(fd, cfg->backlog > 0 ? cfg->backlog : 4096) < 0) {
        r = -errno;
        goto fail;
    }
    corio_server *srv;
    r = corio__server_adopt(l, &fd, 1, handler, arg, cfg, CORIO__SERVER_UNIX, &srv);
    if (r < 0)
        goto fail;
    if (f)
        corio__server_on_close(srv, remove_file, f);
    *out = srv;
    return 0;
fail:
    close(fd);
    if (f)
        remove_file(f);
    return r;
}

int corio_stream_connect_unix(const char *path, corio_stream **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct sockaddr_un sa;
    socklen_t len;
    int r = make_addr(path, false, &sa, &len);
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
