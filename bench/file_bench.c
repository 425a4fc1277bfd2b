/*
 * corio's side of the file benchmarks (bench/file_bench.sh): the same work
 * as bench/peers/libuv_files.c and bench/peers/aiofiles_bench.py, written
 * as plain corio tasks.
 *
 *   file_bench seqread FILE BLOCK   read FILE sequentially in BLOCK-byte reads
 *   file_bench read  DIR N CONC     read N files DIR/f%06d (4 KiB, each filled
 *                                   with its index's low byte; checked) with
 *                                   CONC tasks
 *   file_bench write DIR N CONC     write those files (no fsync)
 *
 * Timing is done by the harness (wall and CPU time of the whole process).
 */
#include <corio.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_SIZE 4096

static const char *mode, *target;
static long nfiles, conc, block;
static long next_index;
static int failed;

static void *seqread(void *arg)
{
    (void)arg;
    int fd = corio_file_open(target, O_RDONLY, 0);
    if (fd < 0) {
        fprintf(stderr, "file_bench: open %s: %s\n", target, corio_strerror(fd));
        return (void *)1;
    }
    char *buf = aligned_alloc(4096, (size_t)block);
    long long total = 0;
    ssize_t n;
    while ((n = corio_file_read(fd, buf, (size_t)block)) > 0)
        total += n;
    corio_file_close(fd);
    free(buf);
    if (n < 0) {
        fprintf(stderr, "file_bench: read: %s\n", corio_strerror((int)n));
        return (void *)1;
    }
    printf("bytes: %lld\n", total);
    return NULL;
}

static void *files_worker(void *arg)
{
    (void)arg;
    bool writing = !strcmp(mode, "write");
    char buf[FILE_SIZE], path[4096];
    while (next_index < nfiles && !failed) {
        long i = next_index++;
        snprintf(path, sizeof path, "%s/f%06ld", target, i);
        int fd = corio_file_open(path, writing ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
        if (fd < 0) {
            fprintf(stderr, "file_bench: open %s: %s\n", path, corio_strerror(fd));
            failed = 1;
            break;
        }
        ssize_t n;
        if (writing) {
            memset(buf, (unsigned char)i, sizeof buf);
            n = corio_file_pwrite(fd, buf, sizeof buf, 0);
        } else {
            n = corio_file_pread(fd, buf, sizeof buf, 0);
        }
        corio_file_close(fd);
        if (n != FILE_SIZE) {
            fprintf(stderr, "file_bench: %s %s: %zd\n", mode, path, n);
            failed = 1;
            break;
        }
        /* memcmp against the expected block: a byte loop cost ~1 µs per
         * file, a fifth of the whole read benchmark (the peers check the
         * same way). */
        if (!writing) {
            char want[FILE_SIZE];
            memset(want, (unsigned char)i, sizeof want);
            if (memcmp(buf, want, sizeof want) != 0) {
                fprintf(stderr, "file_bench: wrong byte in %s\n", path);
                failed = 1;
                break;
            }
        }
    }
    return NULL;
}

static void *files_main(void *arg)
{
    (void)arg;
    corio_task **t = calloc((size_t)conc, sizeof *t);
    for (long k = 0; k < conc; k++)
        t[k] = corio_spawn(files_worker, NULL);
    corio_gather(t, (size_t)conc, NULL);
    free(t);
    if (!failed)
        printf("files: %ld\n", nfiles);
    return failed ? (void *)1 : NULL;
}

int main(int argc, char **argv)
{
    void *res = (void *)1;
    if (argc == 4 && !strcmp(argv[1], "seqread")) {
        target = argv[2];
        block = atol(argv[3]);
        if (corio_run(NULL, seqread, NULL, &res) < 0)
            return 1;
    } else if (argc == 5 && (!strcmp(argv[1], "read") || !strcmp(argv[1], "write"))) {
        mode = argv[1];
        target = argv[2];
        nfiles = atol(argv[3]);
        conc = atol(argv[4]);
        if (corio_run(NULL, files_main, NULL, &res) < 0)
            return 1;
    } else {
        fprintf(stderr, "usage: file_bench seqread FILE BLOCK | read|write DIR N CONC\n");
        return 2;
    }
    return res ? 1 : 0;
}
