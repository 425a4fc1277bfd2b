/*
 * Async files (src/io/file.c): every corio_file_* call's success and error
 * paths, short reads at end of file, a full disk simulated with
 * RLIMIT_FSIZE (nothing half-written reported as success), cancellation and
 * deadlines during a read that really blocks (a FIFO) with the buffer left
 * intact, the thread pool's synchronous mode that the epoll executor relies
 * on (queued work dropped, running work waited for), the whole-file helpers
 * and their size cap, and 1,000 concurrent tasks writing and reading back
 * distinct files.  ctest runs every test on both backends.
 */
#include "runner.h"
#include "internal.h"
#include "core/threadpool.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static char dir[64];

static void tmpdir_make(void)
{
    strcpy(dir, "/tmp/corio_file_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    remove(p);
    return 0;
}

static void tmpdir_remove(void) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static const char *P(const char *name)
{
    static char bufs[4][256];
    static int i;
    char *b = bufs[i++ & 3];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

/* Run fn as a loop's main task in a forked child set up by prep (may be
 * NULL) and return the child's exit status (77 = skipped). */
static int run_in_child(void (*prep)(void), corio_fn fn)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (prep)
            prep();
        test_run(fn, NULL);
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* ---- basic calls ---------------------------------------------------------- */

static void *roundtrip_main(void *arg)
{
    tmpdir_make();
    int fd = corio_file_open(P("a"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK_OK(fd);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_ERR(corio_file_write(fd, "hello", 5), 5);
    CHECK_ERR(corio_file_write(fd, " world", 6), 6);
    CHECK_OK(corio_file_fsync(fd));
    CHECK_OK(corio_file_fdatasync(fd));
    struct stat st;
    CHECK_OK(corio_file_fstat(fd, &st));
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(st.st_size, 11);
    CHECK_EQ(st.st_mode & 0777, 0644 & ~umask(022));
    umask(022);
    CHECK_OK(corio_file_close(fd));
    CHECK_ERR(fcntl(fd, F_GETFD), -1); /* really closed */

    fd = corio_file_open(P("a"), O_RDONLY, 0);
    CHECK_OK(fd);
    char buf[100];
    memset(buf, 0, sizeof buf);
    CHECK_ERR(corio_file_read(fd, buf, 4), 4);
    CHECK_MEM(buf, "hell", 4);
    CHECK_ERR(corio_file_read(fd, buf, sizeof buf), 7); /* short: end of file */
    CHECK_MEM(buf, "o world", 7);
    CHECK_ERR(corio_file_read(fd, buf, sizeof buf), 0);
    CHECK_ERR(corio_file_pread(fd, buf, 5, 6), 5);
    CHECK_MEM(buf, "world", 5);
    CHECK_ERR(corio_file_pread(fd, buf, sizeof buf, 8), 3);
    CHECK_ERR(corio_file_pread(fd, buf, sizeof buf, 11), 0);
    CHECK_ERR(corio_file_pread(fd, buf, sizeof buf, 1000), 0);
    CHECK_ERR(corio_file_pread(fd, buf, 1, -1), -EINVAL);
    CHECK_ERR(corio_file_write(fd, "x", 1), -EBADF); /* opened read-only */
    CHECK_OK(corio_file_close(fd));

    CHECK_OK(corio_file_stat(P("a"), &st));
    CHECK_EQ(st.st_size, 11);
    tmpdir_remove();
    return arg;
}

TEST(open_write_read_stat_close) { test_run(roundtrip_main, NULL); }

static void *vector_main(void *arg)
{
    tmpdir_make();
    int fd = corio_file_open(P("v"), O_CREAT | O_RDWR, 0600);
    CHECK_OK(fd);
    struct iovec w[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
    CHECK_ERR(corio_file_writev(fd, w, 3), 8);
    /* pwrite leaves the position (8) alone */
    CHECK_ERR(corio_file_pwrite(fd, "XY", 2, 1), 2);
    CHECK_ERR(corio_file_write(fd, "ij", 2), 2);
    struct iovec pw[2] = {{"1", 1}, {"2", 1}};
    CHECK_ERR(corio_file_pwritev(fd, pw, 2, 3), 2);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 10);
    char a[4], b[20];
    struct iovec r[2] = {{a, sizeof a}, {b, sizeof b}};
    CHECK_ERR(corio_file_preadv(fd, r, 2, 0), 10);
    CHECK_MEM(a, "aXY1", 4);
    CHECK_MEM(b, "2fghij", 6);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_ERR(corio_file_readv(fd, r, 2), 10);
    CHECK_MEM(a, "aXY1", 4);
    CHECK_MEM(b, "2fghij", 6);
    CHECK_ERR(corio_file_readv(fd, r, 2), 0);
    CHECK_ERR(corio_file_readv(fd, r, -1), -EINVAL);
    CHECK_ERR(corio_file_preadv(fd, r, 2, -5), -EINVAL);
    CHECK_OK(corio_file_close(fd));
    tmpdir_remove();
    return arg;
}

TEST(vectored_and_positional_io) { test_run(vector_main, NULL); }

static void *dirs_main(void *arg)
{
    tmpdir_make();
    struct stat st;
    CHECK_OK(corio_file_mkdir(P("sub"), 0755));
    CHECK_OK(corio_file_stat(P("sub"), &st));
    CHECK(S_ISDIR(st.st_mode));
    CHECK_ERR(corio_file_mkdir(P("sub"), 0755), -EEXIST);
    CHECK_ERR(corio_file_mkdir(P("none/sub"), 0755), -ENOENT);
    CHECK_OK(corio_file_write_all(P("f"), "data", 4, 0644));
    CHECK_OK(corio_file_rename(P("f"), P("sub/g")));
    CHECK_ERR(corio_file_stat(P("f"), &st), -ENOENT);
    CHECK_OK(corio_file_stat(P("sub/g"), &st));
    CHECK_EQ(st.st_size, 4);
    CHECK_ERR(corio_file_rename(P("f"), P("h")), -ENOENT);
    /* rename replaces an existing target */
    CHECK_OK(corio_file_write_all(P("h"), "old", 3, 0644));
    CHECK_OK(corio_file_rename(P("sub/g"), P("h")));
    char *s;
    size_t n;
    CHECK_OK(corio_file_read_all(P("h"), 100, &s, &n));
    CHECK_EQ(n, 4);
    CHECK_STR(s, "data");
    free(s);
    CHECK_ERR(corio_file_rmdir(P("h")), -ENOTDIR);
    CHECK_OK(corio_file_write_all(P("sub/x"), "", 0, 0644));
    CHECK_ERR(corio_file_rmdir(P("sub")), -ENOTEMPTY);
    CHECK_ERR(corio_file_unlink(P("sub")), -EISDIR);
    CHECK_OK(corio_file_unlink(P("sub/x")));
    CHECK_ERR(corio_file_unlink(P("sub/x")), -ENOENT);
    CHECK_OK(corio_file_rmdir(P("sub")));
    CHECK_ERR(corio_file_stat(P("sub"), &st), -ENOENT);
    CHECK_OK(corio_file_unlink(P("h")));
    tmpdir_remove();
    return arg;
}

TEST(mkdir_rename_unlink_rmdir) { test_run(dirs_main, NULL); }

static void *errors_main(void *arg)
{
    tmpdir_make();
    struct stat st;
    char buf[16] = {0}; /* written to a closed fd below: valgrind checks the bytes */
    CHECK_ERR(corio_file_open(P("missing"), O_RDONLY, 0), -ENOENT);
    CHECK_ERR(corio_file_open(P("missing/x"), O_CREAT | O_WRONLY, 0644), -ENOENT);
    CHECK_ERR(corio_file_open(dir, O_WRONLY, 0), -EISDIR);
    CHECK_ERR(corio_file_open(dir, O_RDWR, 0), -EISDIR);
    CHECK_OK(corio_file_write_all(P("e"), "x", 1, 0644));
    CHECK_ERR(corio_file_open(P("e"), O_CREAT | O_EXCL | O_WRONLY, 0644), -EEXIST);
    CHECK_ERR(corio_file_open(P("e/x"), O_RDONLY, 0), -ENOTDIR);
    CHECK_ERR(corio_file_stat(P("missing"), &st), -ENOENT);
    CHECK_ERR(corio_file_unlink(P("missing")), -ENOENT);
    CHECK_ERR(corio_file_read_all(P("missing"), 10, &(char *){0}, NULL), -ENOENT);

    int dfd = corio_file_open(dir, O_RDONLY | O_DIRECTORY, 0);
    CHECK_OK(dfd);
    CHECK_ERR(corio_file_read(dfd, buf, sizeof buf), -EISDIR);
    CHECK_ERR(corio_file_pread(dfd, buf, sizeof buf, 0), -EISDIR);
    CHECK_OK(corio_file_fstat(dfd, &st));
    CHECK(S_ISDIR(st.st_mode));
    CHECK_OK(corio_file_close(dfd));

    /* a closed fd number */
    int bad = dfd;
    CHECK_ERR(corio_file_read(bad, buf, sizeof buf), -EBADF);
    CHECK_ERR(corio_file_write(bad, buf, 1), -EBADF);
    CHECK_ERR(corio_file_fstat(bad, &st), -EBADF);
    CHECK_ERR(corio_file_fstat(-1, &st), -EBADF);
    CHECK_ERR(corio_file_fsync(bad), -EBADF);
    CHECK_ERR(corio_file_close(bad), -EBADF);
    CHECK_ERR(corio_file_close(-1), -EBADF);

    /* fsync and pread on a pipe */
    int pfd[2];
    CHECK_OK(pipe2(pfd, O_CLOEXEC));
    CHECK_ERR(corio_file_fsync(pfd[1]), -EINVAL);
    CHECK_ERR(corio_file_pread(pfd[0], buf, 1, 0), -ESPIPE);
    CHECK_OK(corio_file_close(pfd[0]));
    CHECK_OK(corio_file_close(pfd[1]));
    tmpdir_remove();
    return arg;
}

TEST(error_paths) { test_run(errors_main, NULL); }

/* EACCES needs an unprivileged user: tests run as root, so a child drops
 * to "nobody" first (or uses its own identity when not root). */
static void drop_privileges(void)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam("nobody");
    uid_t uid = pw ? pw->pw_uid : 65534;
    gid_t gid = pw ? pw->pw_gid : 65534;
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        _exit(77);
}

static void *eacces_main(void *arg)
{
    char *out;
    CHECK_ERR(corio_file_open(P("locked"), O_RDONLY, 0), -EACCES);
    CHECK_ERR(corio_file_open(P("locked"), O_WRONLY, 0), -EACCES);
    CHECK_ERR(corio_file_read_all(P("locked"), 100, &out, NULL), -EACCES);
    CHECK(out == NULL);
    CHECK_ERR(corio_file_write_all(P("locked"), "x", 1, 0644), -EACCES);
    CHECK_ERR(corio_file_open(P("ro/new"), O_CREAT | O_WRONLY, 0644), -EACCES);
    CHECK_ERR(corio_file_mkdir(P("ro/d"), 0755), -EACCES);
    CHECK_ERR(corio_file_unlink(P("ro/f")), -EACCES);
    CHECK_ERR(corio_file_rename(P("ro/f"), P("ro/g")), -EACCES);
    return arg;
}

TEST(permission_denied)
{
    tmpdir_make();
    CHECK_OK(chmod(dir, 0755));
    int fd = open(P("locked"), O_CREAT | O_WRONLY, 0);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(chmod(P("locked"), 0));
    CHECK_OK(mkdir(P("ro"), 0755));
    fd = open(P("ro/f"), O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    int st = run_in_child(drop_privileges, eacces_main);
    tmpdir_remove();
    if (st == 77)
        SKIP("cannot drop root privileges to get EACCES");
    CHECK_EQ(st, 0);
}

/* ---- whole-file helpers ------------------------------------------------ */

static void *whole_main(void *arg)
{
    tmpdir_make();
    char *s;
    size_t n;
    CHECK_OK(corio_file_write_all(P("w"), "Hello, world!", 13, 0600));
    CHECK_OK(corio_file_read_all(P("w"), 13, &s, &n)); /* cap == size is fine */
    CHECK_EQ(n, 13);
    CHECK_STR(s, "Hello, world!");
    free(s);
    s = (char *)1;
    CHECK_ERR(corio_file_read_all(P("w"), 12, &s, &n), -EFBIG);
    CHECK(s == NULL);
    CHECK_ERR(corio_file_read_all(dir, 100, &s, &n), -EISDIR);
    CHECK(s == NULL);

    CHECK_OK(corio_file_append(P("w"), " more", 5));
    CHECK_OK(corio_file_append(P("new"), "ab", 2)); /* created */
    CHECK_OK(corio_file_append(P("new"), "cd", 2));
    CHECK_OK(corio_file_read_all(P("w"), 1 << 20, &s, &n));
    CHECK_STR(s, "Hello, world! more");
    free(s);
    CHECK_OK(corio_file_read_all(P("new"), 1 << 20, &s, &n));
    CHECK_STR(s, "abcd");
    free(s);
    /* write_all truncates */
    CHECK_OK(corio_file_write_all(P("w"), "x", 1, 0600));
    CHECK_OK(corio_file_read_all(P("w"), 1 << 20, &s, &n));
    CHECK_EQ(n, 1);
    free(s);
    /* empty file */
    CHECK_OK(corio_file_write_all(P("empty"), NULL, 0, 0600));
    CHECK_OK(corio_file_read_all(P("empty"), 0, &s, &n));
    CHECK_EQ(n, 0);
    CHECK(s && s[0] == 0);
    free(s);

    /* a large file, exact bytes, several reads */
    size_t big = (3u << 20) + 7;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 131 + (i >> 13));
    CHECK_OK(corio_file_write_all(P("big"), data, big, 0600));
    CHECK_OK(corio_file_read_all(P("big"), big, &s, &n));
    CHECK_EQ(n, big);
    CHECK_MEM(s, data, big);
    free(s);
    CHECK_ERR(corio_file_read_all(P("big"), big - 1, &s, &n), -EFBIG);
    free(data);

    /* files that report no size: read until end, cap still enforced */
    CHECK_OK(corio_file_read_all("/proc/self/status", 1 << 20, &s, &n));
    CHECK(n > 0 && strstr(s, "Name:") != NULL);
    free(s);
    CHECK_ERR(corio_file_read_all("/proc/self/maps", 16, &s, &n), -EFBIG);
    CHECK(s == NULL);
    tmpdir_remove();
    return arg;
}

TEST(read_all_write_all_append) { test_run(whole_main, NULL); }

/* ---- full disk ------------------------------------------------------------ */

#define FSIZE_LIMIT (64 * 1024)

static void limit_file_size(void)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {FSIZE_LIMIT, FSIZE_LIMIT};
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        _exit(77);
}

static void *fsize_main(void *arg)
{
    size_t n = 100 * 1024;
    char *data = malloc(n);
    memset(data, 'z', n);
    /* More than the limit: the first write stops short, the next reports
     * the error, and the helper must pass it on. */
    CHECK_ERR(corio_file_write_all(P("full"), data, n, 0600), -EFBIG);
    struct stat st;
    CHECK_OK(corio_file_stat(P("full"), &st));
    CHECK_EQ(st.st_size, FSIZE_LIMIT);
    CHECK_OK(corio_file_write_all(P("fits"), data, FSIZE_LIMIT, 0600));
    CHECK_ERR(corio_file_append(P("fits"), "!", 1), -EFBIG);

    /* At the file position: the short write must move the position past
     * what it wrote, so the next write fails instead of overwriting it. */
    int fd = corio_file_open(P("pos"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_write(fd, data, 1000), 1000);
    CHECK_ERR(corio_file_write(fd, data, n), FSIZE_LIMIT - 1000);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), FSIZE_LIMIT);
    CHECK_ERR(corio_file_write(fd, data, 10), -EFBIG);
    struct iovec wv[2] = {{data, 10}, {data, 10}};
    CHECK_ERR(corio_file_writev(fd, wv, 2), -EFBIG);
    CHECK_OK(corio_file_close(fd));

    fd = corio_file_open(P("raw"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_pwrite(fd, data, 4096, FSIZE_LIMIT - 1000), 1000);
    CHECK_ERR(corio_file_pwrite(fd, data, 10, FSIZE_LIMIT), -EFBIG);
    struct iovec iov[2] = {{data, 10}, {data, 10}};
    CHECK_ERR(corio_file_pwritev(fd, iov, 2, FSIZE_LIMIT + 5), -EFBIG);
    CHECK_OK(corio_file_close(fd));
    free(data);
    return arg;
}

TEST(full_disk_reports_efbig)
{
    tmpdir_make();
    int st = run_in_child(limit_file_size, fsize_main);
    tmpdir_remove();
    if (st == 77)
        SKIP("setrlimit(RLIMIT_FSIZE) failed");
    CHECK_EQ(st, 0);
}

/* ---- cancellation and deadlines --------------------------------------- */

typedef struct fifo_reader {
    int fd;
    ssize_t res;
    char buf[64];
    bool intact;
} fifo_reader;

static void *fifo_read_task(void *arg)
{
    fifo_reader *r = arg;
    memset(r->buf, 0x5a, sizeof r->buf);
    r->res = corio_file_read(r->fd, r->buf, sizeof r->buf);
    r->intact = true;
    for (size_t i = 0; i < sizeof r->buf; i++)
        r->intact &= r->buf[i] == 0x5a;
    return NULL;
}

static void *fifo_main(void *arg)
{
    tmpdir_make();
    CHECK_OK(mkfifo(P("fifo"), 0600));
    /* O_RDWR: the open does not wait for a writer, and reads block (rather
     * than seeing end of file) while the FIFO is empty. */
    int fd = corio_file_open(P("fifo"), O_RDWR, 0);
    CHECK_OK(fd);

    fifo_reader r = {.fd = fd};
    corio_task *t = corio_spawn(fifo_read_task, &r);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(50));
    CHECK(!corio_task_done(t)); /* really blocked */
    uint64_t t0 = test_ms();
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK(test_ms() - t0 < 2000);
    CHECK_ERR(r.res, -ECANCELED);
    CHECK(r.intact);

    /* deadline */
    t0 = test_ms();
    char buf[16];
    corio_deadline d = corio_deadline_push(60);
    ssize_t n = corio_file_read(fd, buf, sizeof buf);
    corio_deadline_pop(d);
    CHECK_ERR(n, -CORIO_EDEADLINE);
    uint64_t el = test_ms() - t0;
    CHECK(el >= 50 && el < 2000);

    /* the interrupted reads consumed nothing: data written now is all
     * there for the next read */
    CHECK_EQ(write(fd, "xyz", 3), 3);
    CHECK_ERR(corio_file_read(fd, buf, sizeof buf), 3);
    CHECK_MEM(buf, "xyz", 3);

    /* a pending read completes when data arrives */
    r = (fifo_reader){.fd = fd};
    t = corio_spawn(fifo_read_task, &r);
    CHECK_OK(corio_sleep_ms(20));
    CHECK_ERR(corio_file_write(fd, "hello", 5), 5);
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(r.res, 5);
    CHECK_MEM(r.buf, "hello", 5);

    /* a write that blocks on a full FIFO is interrupted as well */
    int flags = fcntl(fd, F_GETFL);
    CHECK_OK(fcntl(fd, F_SETFL, flags | O_NONBLOCK));
    char fill[4096];
    memset(fill, 1, sizeof fill);
    while (write(fd, fill, sizeof fill) > 0) {
    }
    CHECK_OK(fcntl(fd, F_SETFL, flags));
    d = corio_deadline_push(50);
    n = corio_file_write(fd, fill, sizeof fill);
    corio_deadline_pop(d);
    CHECK_ERR(n, -CORIO_EDEADLINE);

    CHECK_OK(corio_file_close(fd));
    tmpdir_remove();
    return arg;
}

TEST(cancel_and_deadline_during_fifo_read) { test_run(fifo_main, NULL); }

/* Cancelled before it starts: no effect, and close still closes. */
static void *precancel_main(void *arg)
{
    tmpdir_make();
    int fd = corio_file_open(P("c"), O_CREAT | O_RDWR, 0600);
    CHECK_OK(fd);
    CHECK_OK(corio_task_cancel(corio_current()));
    CHECK_ERR(corio_file_open(P("never"), O_CREAT | O_WRONLY, 0600), -ECANCELED);
    CHECK_ERR(access(P("never"), F_OK), -1);
    char buf[4];
    CHECK_ERR(corio_file_read(fd, buf, 4), -ECANCELED);
    CHECK_ERR(corio_file_write_all(P("never"), "x", 1, 0600), -ECANCELED);
    CHECK_ERR(access(P("never"), F_OK), -1);
    CHECK_OK(corio_file_close(fd)); /* closes despite the cancel */
    CHECK_ERR(fcntl(fd, F_GETFD), -1);
    tmpdir_remove();
    return arg;
}

TEST(cancelled_task_still_closes) { test_run(precancel_main, NULL); }

TEST(outside_a_task)
{
    char buf[4];
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_ERR(corio_file_read(fd, buf, 4), -EPERM);
    CHECK_ERR(corio_file_open("/dev/null", O_RDONLY, 0), -EPERM);
    CHECK_OK(corio_file_close(fd)); /* still closes */
    CHECK_ERR(fcntl(fd, F_GETFD), -1);
}

/* ---- the thread pool's synchronous mode --------------------------------- */

typedef struct slow_job {
    unsigned sleep_ms;
    atomic_int started, finished;
    char out[32];
} slow_job;

static void slow_work(void *arg)
{
    slow_job *j = arg;
    atomic_store(&j->started, 1);
    usleep(j->sleep_ms * 1000u);
    strcpy(j->out, "written by the worker");
    atomic_store(&j->finished, 1);
}

typedef struct sync_call {
    slow_job job;
    int res;
    uint64_t returned_ms;
    bool finished_at_return; /* the worker was done when the call returned */
    bool cancelled_after;
    int next_wait;
} sync_call;

static void *sync_task(void *arg)
{
    sync_call *c = arg;
    c->res = corio__pool_run_sync(CORIO__POOL_FAST, slow_work, &c->job);
    c->returned_ms = test_ms();
    c->finished_at_return = atomic_load(&c->job.finished);
    c->cancelled_after = corio_cancelled();
    c->next_wait = corio_sleep_ms(1);
    return NULL;
}

static void *pool_sync_main(void *arg)
{
    /* Running item: the interrupt waits for it and returns its result. */
    sync_call c = {.job.sleep_ms = 200};
    corio_task *t = corio_spawn(sync_task, &c);
    while (!atomic_load(&c.job.started))
        CHECK_OK(corio_sleep_ms(1));
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(c.res, 0);
    CHECK(c.finished_at_return); /* it did wait for the worker */
    CHECK_STR(c.job.out, "written by the worker");
    CHECK(c.cancelled_after); /* sticky */
    CHECK_ERR(c.next_wait, -ECANCELED);

    /* Queued item: occupy every worker, then interrupt a queued one. */
    unsigned workers = 4; /* the default pool size */
    sync_call busy[4];
    corio_task *bt[4];
    for (unsigned i = 0; i < workers; i++) {
        busy[i] = (sync_call){.job.sleep_ms = 1000};
        bt[i] = corio_spawn(sync_task, &busy[i]);
    }
    for (unsigned i = 0; i < workers; i++) /* every worker is busy now */
        while (!atomic_load(&busy[i].job.started))
            CHECK_OK(corio_sleep_ms(1));
    sync_call q = {.job.sleep_ms = 0};
    t = corio_spawn(sync_task, &q);
    CHECK_OK(corio_sleep_ms(30));
    CHECK(!atomic_load(&q.job.started));
    uint64_t t0 = test_ms();
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(q.res, -ECANCELED);
    CHECK(q.returned_ms - t0 < 500); /* did not wait for a worker (1 s) */
    CHECK(!atomic_load(&q.job.started));

    /* Deadline on a queued item. */
    corio_deadline d = corio_deadline_push(30);
    slow_job j2 = {.sleep_ms = 0};
    CHECK_ERR(corio__pool_run_sync(CORIO__POOL_FAST, slow_work, &j2), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(!atomic_load(&j2.started));

    CHECK_OK(corio_gather(bt, workers, NULL));
    for (unsigned i = 0; i < workers; i++)
        CHECK_EQ(busy[i].res, 0);
    CHECK_EQ(corio__loop()->external_pending, 0);
    return arg;
}

TEST(pool_sync_mode_drops_queued_waits_for_running)
{
    unsetenv("CORIO_THREADPOOL_SIZE");
    test_run(pool_sync_main, NULL);
}

/* ---- 1,000 concurrent file tasks ------------------------------------- */

#define NFILES 1000

static size_t file_len(int i) { return 1 + (size_t)(i * 37) % 9000; }
static char file_byte(int i, size_t k) { return (char)(i * 7 + k * 13 + (k >> 8)); }

static void *file_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    char name[32];
    snprintf(name, sizeof name, "f%04d", i);
    const char *path = P(name);
    char pathcopy[256];
    strcpy(pathcopy, path); /* P() rotates its buffers between tasks */
    size_t n = file_len(i);
    char *data = malloc(n);
    for (size_t k = 0; k < n; k++)
        data[k] = file_byte(i, k);
    CHECK_OK(corio_file_write_all(pathcopy, data, n, 0600));
    char *back;
    size_t blen;
    CHECK_OK(corio_file_read_all(pathcopy, n, &back, &blen));
    CHECK_EQ(blen, n);
    CHECK_MEM(back, data, n);
    free(back);
    /* and piecewise, through an open fd */
    int fd = corio_file_open(pathcopy, O_RDONLY, 0);
    CHECK_OK(fd);
    char part[512];
    size_t off = n / 3;
    ssize_t got = corio_file_pread(fd, part, sizeof part, (int64_t)off);
    CHECK_EQ(got, (ssize_t)(n - off < sizeof part ? n - off : sizeof part));
    CHECK_MEM(part, data + off, (size_t)got);
    struct stat st;
    CHECK_OK(corio_file_fstat(fd, &st));
    CHECK_EQ(st.st_size, (off_t)n);
    CHECK_OK(corio_file_close(fd));
    CHECK_OK(corio_file_unlink(pathcopy));
    free(data);
    return (void *)(intptr_t)(i + 1);
}

static void *many_main(void *arg)
{
    tmpdir_make();
    static corio_task *t[NFILES];
    static void *res[NFILES];
    for (int i = 0; i < NFILES; i++) {
        t[i] = corio_spawn(file_task, (void *)(intptr_t)i);
        CHECK(t[i]);
    }
    CHECK_OK(corio_gather(t, NFILES, res));
    for (int i = 0; i < NFILES; i++)
        CHECK_EQ((intptr_t)res[i], i + 1);
    CHECK_OK(rmdir(dir)); /* every file was unlinked */
    return arg;
}

TEST(thousand_concurrent_file_tasks) { test_run(many_main, NULL); }

/* ---- a read that the page cache can only partly serve ------------------ */

/* On epoll the first attempt runs on the loop thread with RWF_NOWAIT and
 * stops where the cached data ends; the rest must come from a worker so
 * that a short read still means end of file. */
static void *partial_cache_main(void *arg)
{
    tmpdir_make();
    size_t n = 1u << 20;
    char *data = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 2654435761u >> 13);
    /* Small writes: one large write may build large folios that fadvise
     * can only drop whole. */
    int wfd = open(P("pc"), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(wfd >= 0);
    for (size_t off = 0; off < n; off += 4096)
        CHECK_EQ(pwrite(wfd, data + off, 4096, (off_t)off), 4096);
    close(wfd);
    int fd = corio_file_open(P("pc"), O_RDONLY, 0);
    CHECK_OK(fd);
    CHECK_OK(corio_file_fsync(fd)); /* clean pages can be dropped */
    bool evicted = false;
    for (int round = 0; round < 2; round++) {
        /* Pages just written may sit in per-CPU batches that fadvise cannot
         * drop at once: retry until a non-blocking probe misses. */
        char probe;
        struct iovec pv = {&probe, 1};
        for (int i = 0; i < 50; i++) {
            if (i == 0)
                sync();
            CHECK_OK(posix_fadvise(fd, (off_t)n / 2, 0, POSIX_FADV_DONTNEED));
            if (preadv2(fd, &pv, 1, (off_t)n / 2, RWF_NOWAIT) < 0 && errno == EAGAIN) {
                evicted = true;
                break;
            }
            usleep(10000);
        }
        memset(back, 0, n);
        if (round == 0) {
            CHECK_ERR(corio_file_pread(fd, back, n, 0), (ssize_t)n);
        } else {
            CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
            CHECK_ERR(corio_file_read(fd, back, n), (ssize_t)n);
            CHECK_EQ(lseek(fd, 0, SEEK_CUR), (off_t)n);
        }
        CHECK_MEM(back, data, n);
    }
    CHECK_OK(corio_file_close(fd));
    free(data);
    free(back);
    tmpdir_remove();
    return (void *)(intptr_t)evicted;
}

TEST(partly_cached_read_is_not_short)
{
    if (!test_run(partial_cache_main, NULL))
        SKIP("could not evict part of the file from the page cache (the reads were checked anyway)");
}
