/*
 * Unix socket addresses and the files behind them (contracts in
 * unixaddr.h).  Replacing a stale socket file is what a restarted server
 * expects (its predecessor died without removing it); the probe connect
 * is what tells stale from live, and anything but a refusal counts as
 * live, since removing another program's file is the one mistake to avoid.
 */
#include "unixaddr.h"

#include "../core/internal.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int corio__unix_addr(const char *path, bool autobind, struct sockaddr_un *sa, socklen_t *len)
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

/* Does anyone own the socket at sa?  1 = live (or can't tell), 0 = stale. */
static int someone_owns(int type, const struct sockaddr_un *sa, socklen_t len)
{
    int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    int r = connect(fd, (const struct sockaddr *)sa, len);
    int e = errno;
    close(fd);
    /* EAGAIN: a full backlog, so alive */
    return r == 0 || e != ECONNREFUSED;
}

int corio__unix_bind(int fd, int type, const char *path, const struct sockaddr_un *sa, socklen_t len)
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
        if (!S_ISSOCK(st.st_mode) || someone_owns(type, sa, len))
            return -EADDRINUSE;
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    }
}

struct corio__unix_file {
    dev_t dev;
    ino_t ino;
    char path[];
};

int corio__unix_file_note(const char *path, corio__unix_file **out)
{
    *out = NULL;
    if (path[0] == '@')
        return 0;
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    size_t n = strlen(path);
    corio__unix_file *f = corio__malloc(sizeof *f + n + 1);
    if (!f)
        return -ENOMEM;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    memcpy(f->path, path, n + 1);
    *out = f;
    return 0;
}

void corio__unix_file_remove(void *arg)
{
    corio__unix_file *f = arg;
    if (!f)
        return;
    struct stat st;
    /* another owner may have replaced the file since: leave that one */
    if (lstat(f->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == f->dev && st.st_ino == f->ino)
        (void)unlink(f->path);
    corio__free(f);
}
