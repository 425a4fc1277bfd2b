/*
 * cat: concatenate files (or standard input, for no argument or "-") to
 * standard output, with corio's async files.
 *
 *   cat [FILE...]
 *
 * One task does the copying; every read and write suspends it, so the same
 * code would let other tasks run alongside.  Each file is closed on every
 * path out (the role of `async with`); an unreadable file is reported and
 * skipped, and the exit status says whether all went well, as cat(1) does.
 */
#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (128 * 1024)

static int argc_g;
static char **argv_g;

/* Copy everything from fd to standard output.  Returns 0 or -errno. */
static int copy_out(int fd, char *buf)
{
    for (;;) {
        ssize_t n = corio_file_read(fd, buf, BLOCK);
        if (n <= 0)
            return (int)n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = corio_file_write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0)
                return (int)w;
            off += w;
        }
    }
}

static void *cat_main(void *arg)
{
    (void)arg;
    static char buf[BLOCK];
    intptr_t status = 0;
    int nfiles = argc_g > 1 ? argc_g - 1 : 1;
    for (int i = 0; i < nfiles; i++) {
        const char *path = argc_g > 1 ? argv_g[i + 1] : "-";
        bool is_stdin = !strcmp(path, "-");
        int fd = is_stdin ? STDIN_FILENO : corio_file_open(path, O_RDONLY, 0);
        if (fd < 0) {
            fprintf(stderr, "cat: %s: %s\n", path, corio_strerror(fd));
            status = 1;
            continue;
        }
        int r = copy_out(fd, buf);
        if (!is_stdin)
            corio_file_close(fd); /* every path closes the file */
        if (r == -EPIPE)
            return (void *)1; /* the reader went away: stop quietly, like cat */
        if (r < 0) {
            fprintf(stderr, "cat: %s: %s\n", path, corio_strerror(r));
            status = 1;
        }
    }
    return (void *)status;
}

int main(int argc, char **argv)
{
    argc_g = argc;
    argv_g = argv;
    /* A closed pipe downstream (cat big | head) must end the copy with
     * -EPIPE, not kill the process: sockets never raise SIGPIPE in corio,
     * but pipes are plain files and the disposition is the program's. */
    signal(SIGPIPE, SIG_IGN);
    void *res = NULL;
    int r = corio_run(NULL, cat_main, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "cat: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
