/*
 * copy: copy a tree of files with N concurrent tasks.
 *
 *   copy [-j N] [-v] SRC DST
 *
 * The directory walk (nftw, which blocks) runs on a worker thread through
 * corio_to_thread, so the loop never blocks; then the directories are
 * created in walk order and N tasks copy the regular files (and recreate
 * symbolic links), each file with async reads and writes in 256 KiB
 * blocks.  Every file is closed on every path out; an error is reported
 * with the path and the copy goes on with the rest; the exit status says
 * whether everything was copied.  DST must not exist yet (or be an empty
 * directory).
 */
#define _GNU_SOURCE 1
#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK (256 * 1024)

typedef struct entry {
    char *rel;   /* path relative to SRC ("" for SRC itself) */
    mode_t mode; /* type and permission bits */
} entry;

static struct {
    const char *src, *dst;
    entry *v;
    size_t n, cap;
    int walk_error;
    size_t next_file; /* next entry a copier takes */
    int jobs;
    bool verbose;
    int failures;
    unsigned long long files, bytes;
} g;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_NS || type == FTW_DNR) {
        fprintf(stderr, "copy: cannot read %s\n", path);
        g.walk_error = 1;
        return 0;
    }
    if (g.n == g.cap) {
        size_t cap = g.cap ? g.cap * 2 : 256;
        entry *v = realloc(g.v, cap * sizeof *v);
        if (!v)
            return -1;
        g.v = v;
        g.cap = cap;
    }
    const char *rel = path + strlen(g.src);
    while (*rel == '/')
        rel++;
    g.v[g.n].rel = strdup(rel);
    g.v[g.n].mode = st->st_mode;
    if (!g.v[g.n].rel)
        return -1;
    g.n++;
    return 0;
}

/* Runs on a worker thread: plain blocking code, no corio calls. */
static void *walk(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)(nftw(g.src, collect, 64, FTW_PHYS) == 0 ? 0 : -ENOMEM);
}

static void join_path(char *out, size_t cap, const char *root, const char *rel)
{
    snprintf(out, cap, "%s%s%s", root, *rel ? "/" : "", rel);
}

/* Copy one regular file.  Returns 0 or -errno; both fds are closed on every
 * path. */
static int copy_file(const entry *e, char *buf)
{
    char from[4096], to[4096];
    join_path(from, sizeof from, g.src, e->rel);
    join_path(to, sizeof to, g.dst, e->rel);
    int in = corio_file_open(from, O_RDONLY, 0);
    if (in < 0)
        return in;
    int out = corio_file_open(to, O_WRONLY | O_CREAT | O_TRUNC, e->mode & 07777);
    if (out < 0) {
        corio_file_close(in);
        return out;
    }
    int r = 0;
    int64_t off = 0;
    for (;;) {
        ssize_t n = corio_file_pread(in, buf, BLOCK, off);
        if (n <= 0) {
            r = (int)n;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = corio_file_pwrite(out, buf + done, (size_t)(n - done), off + done);
            if (w < 0) {
                r = (int)w;
                goto out;
            }
            done += w;
        }
        off += n;
    }
out:
    corio_file_close(in);
    int c = corio_file_close(out);
    if (r == 0 && c < 0)
        r = c; /* a failed close can mean lost data */
    if (r == 0) {
        g.files++;
        g.bytes += (unsigned long long)off;
        if (g.verbose)
            printf("%s -> %s\n", from, to);
    }
    return r;
}

static int copy_link(const entry *e)
{
    char from[4096], to[4096], target[4096];
    join_path(from, sizeof from, g.src, e->rel);
    join_path(to, sizeof to, g.dst, e->rel);
    ssize_t n = readlink(from, target, sizeof target - 1); /* a small, local call */
    if (n < 0)
        return -errno;
    target[n] = 0;
    return symlink(target, to) < 0 ? -errno : 0;
}

static void *copier(void *arg)
{
    (void)arg;
    char *buf = malloc(BLOCK);
    if (!buf)
        return (void *)(intptr_t)-ENOMEM;
    while (g.next_file < g.n) {
        const entry *e = &g.v[g.next_file++];
        int r = 0;
        if (S_ISREG(e->mode))
            r = copy_file(e, buf);
        else if (S_ISLNK(e->mode))
            r = copy_link(e);
        else
            continue; /* directories are done; devices, sockets, FIFOs are skipped */
        if (r < 0) {
            fprintf(stderr, "copy: %s/%s: %s\n", g.src, e->rel, corio_strerror(r));
            g.failures++;
        }
        if (r == -ECANCELED || r == -CORIO_EDEADLINE)
            break;
    }
    free(buf);
    return NULL;
}

static void *copy_main(void *arg)
{
    (void)arg;
    void *res;
    int r = corio_to_thread(walk, NULL, &res);
    if (r < 0 || (intptr_t)res < 0) {
        fprintf(stderr, "copy: walking %s: %s\n", g.src, corio_strerror(r < 0 ? r : (int)(intptr_t)res));
        return (void *)1;
    }
    if (g.n == 0 || !S_ISDIR(g.v[0].mode)) {
        fprintf(stderr, "copy: %s is not a directory\n", g.src);
        return (void *)1;
    }
    /* Directories first, parents before children (nftw's pre-order). */
    for (size_t i = 0; i < g.n; i++) {
        if (!S_ISDIR(g.v[i].mode))
            continue;
        char to[4096];
        join_path(to, sizeof to, g.dst, g.v[i].rel);
        r = corio_file_mkdir(to, (g.v[i].mode & 07777) | 0700);
        if (r < 0 && !(r == -EEXIST && i == 0)) {
            fprintf(stderr, "copy: mkdir %s: %s\n", to, corio_strerror(r));
            return (void *)1;
        }
    }
    corio_task **t = calloc((size_t)g.jobs, sizeof *t);
    int started = 0;
    for (int i = 0; t && i < g.jobs; i++) {
        t[i] = corio_spawn(copier, NULL);
        if (!t[i])
            break;
        started++;
    }
    if (!started) {
        fprintf(stderr, "copy: cannot start tasks\n");
        free(t);
        return (void *)1;
    }
    corio_gather(t, (size_t)started, NULL);
    free(t);
    if (g.verbose)
        fprintf(stderr, "copy: %llu files, %llu bytes\n", g.files, g.bytes);
    return (void *)(intptr_t)(g.failures || g.walk_error);
}

int main(int argc, char **argv)
{
    g.jobs = 16;
    int opt;
    while ((opt = getopt(argc, argv, "j:v")) != -1) {
        if (opt == 'j')
            g.jobs = atoi(optarg);
        else if (opt == 'v')
            g.verbose = true;
        else
            goto usage;
    }
    if (argc - optind != 2 || g.jobs < 1)
        goto usage;
    g.src = argv[optind];
    g.dst = argv[optind + 1];
    void *res = NULL;
    int r = corio_run(NULL, copy_main, NULL, &res);
    for (size_t i = 0; i < g.n; i++)
        free(g.v[i].rel);
    free(g.v);
    if (r < 0) {
        fprintf(stderr, "copy: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
usage:
    fprintf(stderr, "usage: copy [-j N] [-v] SRC DST\n");
    return 2;
}
