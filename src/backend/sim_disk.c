/*
 * The sim backend's disks: each host's files in memory (contract in
 * sim.h).  Not simulated yet: every file call fails with EOPNOTSUPP, so a
 * run never touches the real file system.
 */
#include "sim.h"

#include <errno.h>

static int unsupported(void)
{
    errno = EOPNOTSUPP;
    return -1;
}

int corio__simsys_open(const char *path, int flags, mode_t mode)
{
    (void)path, (void)flags, (void)mode;
    return unsupported();
}
off_t corio__simsys_lseek(int fd, off_t off, int whence)
{
    (void)fd, (void)off, (void)whence;
    return unsupported();
}
ssize_t corio__simsys_pread(int fd, void *buf, size_t n, off_t off)
{
    (void)fd, (void)buf, (void)n, (void)off;
    return unsupported();
}
ssize_t corio__simsys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    (void)fd, (void)buf, (void)n, (void)off;
    return unsupported();
}
int corio__simsys_fsync(int fd)
{
    (void)fd;
    return unsupported();
}
int corio__simsys_unlink(const char *path)
{
    (void)path;
    return unsupported();
}
ssize_t corio__simsys_sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
    (void)out_fd, (void)in_fd, (void)off, (void)n;
    return unsupported();
}

int corio__sim_disk_submit_path(corio__sim *w, corio__op *op)
{
    (void)w;
    op->res = -EOPNOTSUPP;
    return 1;
}
void corio__sim_disk_crash(corio__sim *w, corio__sim_host *h) { (void)w, (void)h; }
void corio__sim_disk_destroy(corio__sim *w) { (void)w; }
