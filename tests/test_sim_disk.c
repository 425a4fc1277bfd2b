/*
 * The sim backend's disk (src/backend/sim_disk.c), through corio's public
 * file API: exact bytes and errors, directories and renames, what a host
 * crash keeps (fsynced data, always) and may lose (the rest), the disk
 * faults at probability 1, replay by seed, and that a sim run never
 * touches the real file system.  Every test runs its own sim loop, so
 * the backend the harness picks does not matter.
 */
#include "runner.h"

#include <corio/sim.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/sim.h"
#include "io/sys.h"

static const corio_sim_faults no_faults; /* all off: paused time, latency 0 */

static void *run_sim(uint64_t seed, const corio_sim_faults *f, corio_fn fn, void *arg, corio_sim_report *rep)
{
    corio_sim_config sc = {.seed = seed, .faults = f, .report = rep, .quiet = 1};
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc};
    void *res = NULL;
    int r = corio_run(&cfg, fn, arg, &res);
    CHECK_ERR(r, 0);
    return res;
}

/* Read path's whole content into buf (NUL-terminated); returns its length or -errno. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
    char *p;
    size_t n;
    int r = corio_file_read_all(path, cap - 1, &p, &n);
    if (r < 0)
        return r;
    memcpy(buf, p, n + 1);
    free(p);
    return (ssize_t)n;
}

/* ---- Bytes ---------------------------------------------------------- */

static void *rw_main(void *arg)
{
    (void)arg;
    CHECK_STR(corio_backend_name(), "sim");
    int fd = corio_file_open("/hello.txt", O_WRONLY | O_CREAT | O_EXCL, 0666);
    CHECK_OK(fd);
    CHECK_EQ(corio_file_write(fd, "hello ", 6), 6);
    CHECK_EQ(corio_file_write(fd, "world", 5), 5);
    CHECK_EQ(corio_file_pwrite(fd, "W", 1, 6), 1);
    struct stat st;
    CHECK_OK(corio_file_fstat(fd, &st));
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(st.st_mode & 07777, 0644); /* 0666 less the umask 022 */
    CHECK_EQ(st.st_size, 11);
    CHECK_OK(corio_file_fsync(fd));
    CHECK_OK(corio_file_close(fd));

    char buf[64] = {0};
    fd = corio_file_open("hello.txt", O_RDONLY, 0); /* relative: to "/" */
    CHECK_OK(fd);
    CHECK_EQ(corio_file_read(fd, buf, 5), 5);
    CHECK_MEM(buf, "hello", 5);
    CHECK_EQ(corio_file_read(fd, buf, sizeof buf), 6);
    CHECK_MEM(buf, " World", 6);
    CHECK_EQ(corio_file_read(fd, buf, sizeof buf), 0); /* end of file */
    CHECK_EQ(corio_file_pread(fd, buf, 3, 8), 3);
    CHECK_MEM(buf, "rld", 3);
    CHECK_EQ(corio_file_pread(fd, buf, 3, 100), 0);
    CHECK_OK(corio_file_close(fd));

    /* vectored, and a hole filled with zeros */
    fd = corio_file_open("/v", O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK_OK(fd);
    struct iovec wv[2] = {{(void *)"abc", 3}, {(void *)"defg", 4}};
    CHECK_EQ(corio_file_writev(fd, wv, 2), 7);
    CHECK_EQ(corio_file_pwrite(fd, "Z", 1, 10), 1);
    char a[4], b[8];
    struct iovec rv[2] = {{a, 4}, {b, 8}};
    CHECK_EQ(corio_file_preadv(fd, rv, 2, 0), 11);
    CHECK_MEM(a, "abcd", 4);
    CHECK_MEM(b, "efg\0\0\0Z", 7);
    CHECK_OK(corio_file_close(fd));

    /* the whole-file helpers */
    CHECK_OK(corio_file_write_all("/w", "first", 5, 0644));
    CHECK_OK(corio_file_append("/w", "+more", 5));
    CHECK_EQ(slurp("/w", buf, sizeof buf), 10);
    CHECK_STR(buf, "first+more");
    CHECK_OK(corio_file_write_all("/w", "x", 1, 0644)); /* truncates */
    CHECK_EQ(slurp("/w", buf, sizeof buf), 1);
    CHECK_OK(corio_file_stat("/w", &st));
    CHECK_EQ(st.st_size, 1);

    /* O_APPEND writes at the end whatever the position */
    fd = corio_file_open("/w", O_WRONLY | O_APPEND, 0);
    CHECK_OK(fd);
    CHECK_EQ(corio_file_write(fd, "yz", 2), 2);
    CHECK_OK(corio_file_close(fd));
    CHECK_EQ(slurp("/w", buf, sizeof buf), 3);
    CHECK_STR(buf, "xyz");
    return NULL;
}

TEST(read_write_exact_bytes) { run_sim(1, &no_faults, rw_main, NULL, NULL); }

/* ---- Errors ---------------------------------------------------------- */

static void *errors_main(void *arg)
{
    (void)arg;
    char buf[8];
    struct stat st;
    CHECK_ERR(corio_file_open("/missing", O_RDONLY, 0), -ENOENT);
    CHECK_ERR(corio_file_open("/no/such/dir", O_WRONLY | O_CREAT, 0644), -ENOENT);
    CHECK_ERR(corio_file_stat("/missing", &st), -ENOENT);
    CHECK_ERR(corio_file_unlink("/missing"), -ENOENT);
    CHECK_OK(corio_file_write_all("/f", "data", 4, 0644));
    CHECK_ERR(corio_file_open("/f", O_WRONLY | O_CREAT | O_EXCL, 0644), -EEXIST);
    CHECK_ERR(corio_file_open("/f", O_RDONLY | O_DIRECTORY, 0), -ENOTDIR);
    CHECK_ERR(corio_file_open("/f/x", O_RDONLY, 0), -ENOTDIR);
    CHECK_ERR(corio_file_open("/f/", O_RDONLY, 0), -ENOTDIR);
    CHECK_OK(corio_file_mkdir("/d", 0755));
    CHECK_ERR(corio_file_mkdir("/d", 0755), -EEXIST);
    CHECK_ERR(corio_file_mkdir("/f", 0755), -EEXIST);
    CHECK_ERR(corio_file_open("/d", O_WRONLY, 0), -EISDIR);
    CHECK_ERR(corio_file_open("/d", O_RDWR, 0), -EISDIR);
    CHECK_ERR(corio_file_open("/d", O_RDONLY | O_CREAT, 0644), -EISDIR);
    CHECK_ERR(corio_file_open("/new/", O_WRONLY | O_CREAT, 0644), -EISDIR);
    CHECK_ERR(corio_file_unlink("/d"), -EISDIR);
    CHECK_ERR(corio_file_rmdir("/f"), -ENOTDIR);
    CHECK_ERR(corio_file_rmdir("/"), -EBUSY);
    CHECK_OK(corio_file_write_all("/d/inner", "", 0, 0644));
    CHECK_ERR(corio_file_rmdir("/d"), -ENOTEMPTY);
    int dfd = corio_file_open("/d", O_RDONLY | O_DIRECTORY, 0);
    CHECK_OK(dfd);
    CHECK_ERR(corio_file_read(dfd, buf, sizeof buf), -EISDIR);
    CHECK_OK(corio_file_fstat(dfd, &st));
    CHECK(S_ISDIR(st.st_mode));
    CHECK_OK(corio_file_close(dfd));

    /* access modes: Linux says EBADF for the wrong direction */
    int fd = corio_file_open("/f", O_RDONLY, 0);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_write(fd, "x", 1), -EBADF);
    CHECK_ERR(corio_file_pwrite(fd, "x", 1, 0), -EBADF);
    CHECK_OK(corio_file_close(fd));
    fd = corio_file_open("/f", O_WRONLY, 0);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_read(fd, buf, 1), -EBADF);
    CHECK_OK(corio_file_close(fd));
    CHECK_ERR(corio_file_close(fd), -EBADF); /* closed already */
    CHECK_ERR(corio_file_read(fd, buf, 1), -EBADF);

    /* a read-only file refuses writers */
    CHECK_OK(corio_file_write_all("/ro", "r", 1, 0444));
    CHECK_ERR(corio_file_open("/ro", O_WRONLY, 0), -EACCES);
    CHECK_ERR(corio_file_open("/f", O_ACCMODE, 0), -EINVAL);
    return NULL;
}

TEST(errors_as_linux) { run_sim(2, &no_faults, errors_main, NULL, NULL); }

/* ---- Directories and renames ---------------------------------------- */

static void *dirs_main(void *arg)
{
    (void)arg;
    char buf[64];
    struct stat st;
    CHECK_OK(corio_file_mkdir("/a", 0755));
    CHECK_OK(corio_file_mkdir("b", 0700)); /* relative */
    CHECK_OK(corio_file_mkdir("/a/sub", 0755));
    CHECK_OK(corio_file_stat("/b", &st));
    CHECK(S_ISDIR(st.st_mode));
    CHECK_EQ(st.st_mode & 07777, 0700);
    CHECK_OK(corio_file_write_all("/a/x", "xx", 2, 0644));
    CHECK_OK(corio_file_write_all("/b/y", "yyy", 3, 0644));

    /* across directories, replacing a file */
    CHECK_OK(corio_file_rename("/a/x", "/b/y"));
    CHECK_ERR(corio_file_stat("/a/x", &st), -ENOENT);
    CHECK_EQ(slurp("/b/y", buf, sizeof buf), 2);
    CHECK_STR(buf, "xx");
    /* within one, and with . and .. and doubled slashes */
    CHECK_OK(corio_file_rename("/b/y", "/b//./z"));
    CHECK_EQ(slurp("/a/../b/z", buf, sizeof buf), 2);
    CHECK_ERR(corio_file_stat("/b/y", &st), -ENOENT);
    /* directories */
    CHECK_ERR(corio_file_rename("/a", "/a/sub/in"), -EINVAL);
    CHECK_ERR(corio_file_rename("/b/z", "/a/sub"), -EISDIR);
    CHECK_ERR(corio_file_rename("/a/sub", "/b/z"), -ENOTDIR);
    CHECK_ERR(corio_file_rename("/missing", "/b/q"), -ENOENT);
    CHECK_OK(corio_file_rename("/a/sub", "/b/sub"));
    CHECK_OK(corio_file_write_all("/b/sub/deep", "d", 1, 0644));
    CHECK_OK(corio_file_rename("/b", "/c"));
    CHECK_EQ(slurp("/c/sub/deep", buf, sizeof buf), 1);
    CHECK_ERR(corio_file_rename("/a", "/c"), -ENOTEMPTY);
    /* an open file keeps its data after unlink, until closed */
    int fd = corio_file_open("/c/z", O_RDONLY, 0);
    CHECK_OK(fd);
    CHECK_OK(corio_file_unlink("/c/z"));
    CHECK_ERR(corio_file_stat("/c/z", &st), -ENOENT);
    CHECK_EQ(corio_file_read(fd, buf, sizeof buf), 2);
    CHECK_OK(corio_file_fstat(fd, &st));
    CHECK_EQ(st.st_nlink, 0);
    CHECK_OK(corio_file_close(fd));
    CHECK_OK(corio_file_unlink("/c/sub/deep"));
    CHECK_OK(corio_file_rmdir("/c/sub"));
    CHECK_OK(corio_file_rmdir("/c"));
    CHECK_OK(corio_file_rmdir("/a"));
    CHECK_ERR(corio_file_stat("/a", &st), -ENOENT);
    return NULL;
}

TEST(directories_and_renames) { run_sim(3, &no_faults, dirs_main, NULL, NULL); }

/* ---- The real file system is untouched ------------------------------ */

static char real_path[64];

static void *real_main(void *arg)
{
    (void)arg;
    struct stat st;
    /* the host's disk starts empty: nothing of the real machine shows */
    CHECK_ERR(corio_file_stat("/etc", &st), -ENOENT);
    CHECK_ERR(corio_file_open("/proc/self/status", O_RDONLY, 0), -ENOENT);
    CHECK_ERR(corio_file_open(real_path, O_WRONLY | O_CREAT, 0644), -ENOENT); /* no /tmp in the sim */
    CHECK_OK(corio_file_mkdir("/tmp", 01777));
    CHECK_OK(corio_file_write_all(real_path, "sim", 3, 0644));
    CHECK_OK(corio_file_stat(real_path, &st));
    CHECK_EQ(st.st_size, 3);
    int fd = corio_file_open(real_path, O_RDONLY, 0);
    CHECK(fd >= CORIO__SIM_FD_BASE); /* a virtual fd, never a kernel one */
    CHECK_OK(corio_file_close(fd));
    return NULL;
}

TEST(real_file_system_untouched)
{
    snprintf(real_path, sizeof real_path, "/tmp/corio_sim_disk_%d", (int)getpid());
    unlink(real_path);
    int fds = test_fd_count();
    run_sim(4, &no_faults, real_main, NULL, NULL);
    CHECK(access(real_path, F_OK) < 0 && errno == ENOENT);
    CHECK_EQ(test_fd_count(), fds);
}

/* ---- Streams over simulated files ------------------------------------ */

static void *stream_main(void *arg)
{
    (void)arg;
    CHECK_OK(corio_file_write_all("/lines", "one\ntwo\nthree\n", 14, 0644));
    int fd = corio_file_open("/lines", O_RDONLY, 0);
    CHECK_OK(fd);
    corio_stream *s = corio_stream_from_fd(fd);
    CHECK(s);
    char line[32];
    CHECK_EQ(corio_stream_readline(s, line, sizeof line), 4);
    CHECK_MEM(line, "one\n", 4);
    CHECK_EQ(corio_stream_readline(s, line, sizeof line), 4);
    CHECK_MEM(line, "two\n", 4);
    CHECK_EQ(corio_stream_readline(s, line, sizeof line), 6);
    CHECK_MEM(line, "three\n", 6);
    CHECK_EQ(corio_stream_readline(s, line, sizeof line), 0);
    corio_stream_close(s);

    fd = corio_file_open("/out", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(fd);
    s = corio_stream_from_fd(fd);
    CHECK(s);
    CHECK_OK(corio_stream_write(s, "streamed ", 9));
    CHECK_OK(corio_stream_write(s, "bytes", 5));
    CHECK_OK(corio_stream_aclose(s));
    char buf[32];
    CHECK_EQ(slurp("/out", buf, sizeof buf), 14);
    CHECK_STR(buf, "streamed bytes");
    return NULL;
}

TEST(file_streams) { run_sim(5, &no_faults, stream_main, NULL, NULL); }

/* ---- sendfile --------------------------------------------------------- */

static void *sendfile_main(void *arg)
{
    (void)arg;
    char big[20000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_OK(corio_file_write_all("/src", big, sizeof big, 0644));
    int in = corio_file_open("/src", O_RDONLY, 0), out = corio_file_open("/dst", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(in);
    CHECK_OK(out);
    off_t off = 100;
    CHECK_EQ(corio__sys_sendfile(out, in, &off, 15000), 15000);
    CHECK_EQ(off, 15100);
    CHECK_EQ(corio__sys_sendfile(out, in, &off, 15000), 4900); /* to the end of the file */
    CHECK_EQ(corio__sys_sendfile(out, in, &off, 15000), 0);
    CHECK_OK(corio_file_close(in));
    CHECK_OK(corio_file_close(out));
    char *got;
    size_t n;
    CHECK_OK(corio_file_read_all("/dst", 1 << 20, &got, &n));
    CHECK_EQ(n, sizeof big - 100);
    CHECK_MEM(got, big + 100, n);
    free(got);
    return NULL;
}

TEST(sendfile_between_sim_files) { run_sim(6, &no_faults, sendfile_main, NULL, NULL); }

/* ---- Crashes ------------------------------------------------------- */

#define SYNCED "synced-part|"
#define PIECES 4 /* unsynced writes of 4 bytes each: "p0--p1--..." */

typedef struct crash_state {
    int ready;
    int outcome;  /* unsynced pieces that survived the crash */
    int stale_fd; /* the log's fd, left open by the crashed run */
    bool killed;  /* the crashed run's calls failed, shield or not */
} crash_state;

static void *writer_host(void *arg)
{
    crash_state *cs = arg;
    CHECK_OK(corio_file_mkdir("/db", 0755));
    int fd = corio_file_open("/db/log", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(fd);
    CHECK_EQ(corio_file_write(fd, SYNCED, strlen(SYNCED)), (ssize_t)strlen(SYNCED));
    CHECK_OK(corio_file_fsync(fd)); /* the data, and the name "log" in /db */
    int root = corio_file_open("/", O_RDONLY | O_DIRECTORY, 0);
    CHECK_OK(root);
    CHECK_OK(corio_file_fsync(root)); /* the name "db" in / */
    CHECK_OK(corio_file_close(root));
    for (int i = 0; i < PIECES; i++) {
        char piece[5];
        snprintf(piece, sizeof piece, "p%d--", i);
        CHECK_EQ(corio_file_write(fd, piece, 4), 4);
    }
    /* a file whose name was never made durable, and a rename never synced */
    CHECK_OK(corio_file_write_all("/db/unsynced-name", "u", 1, 0644));
    int k = corio_file_open("/db/kept", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(k);
    CHECK_EQ(corio_file_write(k, "K", 1), 1);
    CHECK_OK(corio_file_fdatasync(k));
    CHECK_OK(corio_file_close(k));
    CHECK_OK(corio_file_rename("/db/kept", "/db/renamed"));
    cs->ready = 1;
    cs->stale_fd = fd; /* held open across the crash */
    /* a shield holds back a cancel, not a power cut: the crash ends this
     * wait and fails every call after it */
    corio_shield sh = corio_shield_push(CORIO_NO_TIMEOUT);
    while (cs->ready == 1 && corio_sleep_ms(1) == 0)
        ;
    cs->killed = corio_sleep_ms(1) == -ECANCELED && corio_file_write(fd, "x", 1) == -ECANCELED &&
                 corio_file_fsync(fd) == -ECANCELED;
    corio_shield_pop(sh);
    return NULL;
}

static void *checker_host(void *arg)
{
    crash_state *cs = arg;
    char buf[128];
    ssize_t n = slurp("/db/log", buf, sizeof buf);
    CHECK(n >= (ssize_t)strlen(SYNCED));
    CHECK_MEM(buf, SYNCED, strlen(SYNCED)); /* what was fsynced, exactly */
    size_t extra = (size_t)n - strlen(SYNCED);
    CHECK_EQ(extra % 4, 0); /* whole writes, */
    CHECK(extra <= PIECES * 4);
    for (size_t i = 0; i < extra / 4; i++) { /* in order: a prefix of them */
        char piece[5];
        snprintf(piece, sizeof piece, "p%d--", (int)i);
        CHECK_MEM(buf + strlen(SYNCED) + 4 * i, piece, 4);
    }
    cs->outcome = (int)(extra / 4);
    struct stat st;
    CHECK_ERR(corio_file_stat("/db/unsynced-name", &st), -ENOENT);
    /* fdatasync made "kept" durable under its old name; the rename was lost */
    CHECK_ERR(corio_file_stat("/db/renamed", &st), -ENOENT);
    CHECK_EQ(slurp("/db/kept", buf, sizeof buf), 1);
    /* the restarted host writes as before */
    CHECK_OK(corio_file_append("/db/log", "again", 5));
    /* an fd from before the crash is dead: every call on it says EIO,
     * and closing it releases it */
    CHECK_ERR(corio_file_write(cs->stale_fd, "x", 1), -EIO);
    CHECK_ERR(corio_file_fsync(cs->stale_fd), -EIO);
    CHECK_ERR(corio_file_pread(cs->stale_fd, buf, sizeof buf, 0), -EIO);
    CHECK_OK(corio_file_close(cs->stale_fd));
    CHECK_ERR(corio_file_close(cs->stale_fd), -EBADF);
    return NULL;
}

static void *crash_main(void *arg)
{
    crash_state *cs = arg;
    corio_sim_host *h = corio_sim_host_new("db", "127.0.0.2");
    CHECK(h);
    corio_task *t = corio_sim_host_start(h, writer_host, cs);
    CHECK(t);
    while (!cs->ready)
        CHECK_OK(corio_sleep_ms(1));
    CHECK_OK(corio_sim_host_crash(h));
    cs->ready = 2;
    corio_task_join(t, NULL); /* cancelled: its result does not matter */
    CHECK(!corio_sim_host_running(h));
    CHECK(cs->killed);
    /* the main host's disk is its own */
    struct stat st;
    CHECK_ERR(corio_file_stat("/db", &st), -ENOENT);
    t = corio_sim_host_start(h, checker_host, cs);
    CHECK(t);
    CHECK_OK(corio_task_join(t, NULL));
    return NULL;
}

TEST(crash_keeps_fsynced_may_lose_the_rest)
{
    int lost = 0, kept = 0, partial = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        crash_state cs = {0};
        run_sim(seed, &no_faults, crash_main, &cs, NULL);
        if (cs.outcome == 0)
            lost++;
        else if (cs.outcome == PIECES)
            kept++;
        else
            partial++;
    }
    /* 40 seeds, 5 equally likely outcomes each: all three kinds show up */
    CHECK(lost > 0);
    CHECK(kept > 0);
    CHECK(partial > 0);
}

/* ---- Faults at probability 1 ---------------------------------------- */

static void *eio_main(void *arg)
{
    (void)arg;
    char buf[8];
    int fd = corio_file_open("/f", O_RDWR | O_CREAT, 0644);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_write(fd, "abc", 3), -EIO);
    CHECK_ERR(corio_file_read(fd, buf, 3), -EIO);
    CHECK_ERR(corio_file_fsync(fd), -EIO);
    CHECK_OK(corio_file_close(fd));
    CHECK_ERR(corio_file_write_all("/g", "abc", 3, 0644), -EIO);
    return NULL;
}

static void *enospc_main(void *arg)
{
    (void)arg;
    int fd = corio_file_open("/f", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_write(fd, "abc", 3), -ENOSPC);
    CHECK_OK(corio_file_fsync(fd)); /* nothing to write: no fault */
    CHECK_OK(corio_file_close(fd));
    return NULL;
}

static void *short_main(void *arg)
{
    (void)arg;
    char data[4096], *got;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    int fd = corio_file_open("/f", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(fd);
    ssize_t n = corio_file_write(fd, data, sizeof data);
    CHECK(n >= 1 && n < (ssize_t)sizeof data);
    CHECK_OK(corio_file_close(fd));
    /* the whole-file helper goes on after short writes */
    CHECK_OK(corio_file_write_all("/g", data, sizeof data, 0644));
    size_t len;
    CHECK_OK(corio_file_read_all("/g", 1 << 20, &got, &len));
    CHECK_EQ(len, sizeof data);
    CHECK_MEM(got, data, len);
    free(got);
    return NULL;
}

TEST(faults_eio_enospc_short)
{
    corio_sim_faults f = {.disk_eio = 1.0};
    corio_sim_report rep;
    run_sim(7, &f, eio_main, NULL, &rep);
    CHECK_EQ(rep.faults, 4); /* write, read, fsync, write_all's write */
    f = (corio_sim_faults){.disk_enospc = 1.0};
    run_sim(7, &f, enospc_main, NULL, &rep);
    CHECK_EQ(rep.faults, 1);
    f = (corio_sim_faults){.disk_short = 1.0};
    run_sim(7, &f, short_main, NULL, &rep);
    CHECK(rep.faults >= 2);
}

static void *capacity_main(void *arg)
{
    (void)arg;
    corio__sim *w = corio__sim_world();
    CHECK(w);
    CHECK_OK(corio__sim_disk_capacity(w, corio__sim_host_now(w), 100));
    char data[150] = {0};
    int fd = corio_file_open("/f", O_WRONLY | O_CREAT, 0644);
    CHECK_OK(fd);
    CHECK_EQ(corio_file_write(fd, data, sizeof data), 100); /* what fits */
    CHECK_ERR(corio_file_write(fd, data, 1), -ENOSPC);      /* then nothing */
    CHECK_EQ(corio_file_pwrite(fd, data, 50, 0), 50);       /* overwriting needs no room */
    CHECK_OK(corio_file_close(fd));
    CHECK_ERR(corio_file_write_all("/g", data, 1, 0644), -ENOSPC);
    CHECK_OK(corio_file_unlink("/f"));
    CHECK_OK(corio_file_write_all("/g", data, 100, 0644)); /* the room came back */
    return NULL;
}

TEST(capacity_gives_enospc) { run_sim(8, &no_faults, capacity_main, NULL, NULL); }

/* ---- Replay ---------------------------------------------------------- */

static void *churn_task(void *arg)
{
    int id = (int)(intptr_t)arg;
    char path[32], buf[64];
    snprintf(path, sizeof path, "/t%d", id);
    for (int i = 0; i < 20; i++) {
        int fd = corio_file_open(path, O_RDWR | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            continue;
        int n = snprintf(buf, sizeof buf, "%d:%d;", id, i);
        (void)corio_file_write(fd, buf, (size_t)n);
        if (corio_sim_chance(0.3))
            (void)corio_file_fsync(fd);
        (void)corio_file_pread(fd, buf, sizeof buf, 0);
        (void)corio_file_close(fd);
        if (i % 7 == 6)
            (void)corio_file_rename(path, "/shared");
    }
    return NULL;
}

static void *churn_host(void *arg)
{
    (void)arg;
    corio_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = corio_spawn(churn_task, (void *)(intptr_t)i);
    /* a crash cancels every task of the host: join them all the same */
    corio_shield sh = corio_shield_push(CORIO_NO_TIMEOUT);
    for (int i = 0; i < 4; i++)
        if (t[i])
            corio_task_join(t[i], NULL);
    corio_shield_pop(sh);
    return NULL;
}

static void *churn_main(void *arg)
{
    (void)arg;
    corio_sim_host *h = corio_sim_host_new("churn", "127.0.0.3");
    CHECK(h);
    for (int round = 0; round < 3; round++) {
        corio_task *t = corio_sim_host_start(h, churn_host, NULL);
        CHECK(t);
        (void)corio_sleep_ms(corio_sim_rand() % 3);
        CHECK_OK(corio_sim_host_crash(h));
        corio_task_join(t, NULL);
        CHECK(!corio_sim_host_running(h));
    }
    churn_host(NULL); /* and on the main host, to the end */
    return NULL;
}

TEST(same_seed_same_trace)
{
    /* swarm faults (the seed picks them) and fixed ones */
    corio_sim_faults f = {.disk_eio = 0.05, .disk_enospc = 0.05, .disk_short = 0.2, .latency_max_us = 100};
    const corio_sim_faults *mixes[] = {NULL, &f, &no_faults};
    for (size_t m = 0; m < 3; m++) {
        for (uint64_t seed = 11; seed <= 13; seed++) {
            corio_sim_report rep[3];
            for (int i = 0; i < 3; i++)
                run_sim(seed, mixes[m], churn_main, NULL, &rep[i]);
            CHECK(rep[0].events > 100);
            CHECK_EQ(rep[1].trace_hash, rep[0].trace_hash);
            CHECK_EQ(rep[2].trace_hash, rep[0].trace_hash);
            CHECK_EQ(rep[1].faults, rep[0].faults);
        }
    }
    corio_sim_report a, b;
    run_sim(21, &f, churn_main, NULL, &a);
    run_sim(22, &f, churn_main, NULL, &b);
    CHECK(a.trace_hash != b.trace_hash);
}
