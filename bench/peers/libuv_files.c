/*
 * The libuv peer for the file benchmarks: a plain libuv C program doing
 * what bench/file_bench.c does, with uv_fs_* requests on libuv's thread
 * pool (its only way to do file I/O).
 *
 *   libuv_files read  DIR N CONC   read N files DIR/f%06d (4 KiB each) with
 *                                  CONC chains of open/read/close in flight
 *   libuv_files write DIR N CONC   write N such files (no fsync)
 *
 * Prints `files: N` and checks every byte read (each file is filled with
 * its index's low byte).  Timing is done by the harness.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define FILE_SIZE 4096

typedef struct chain {
    uv_fs_t req;
    int index;
    uv_file fd;
    char buf[FILE_SIZE];
    uv_buf_t iov;
} chain;

static const char *dir;
static int total, next_index, done_files, writing;

static void start_next(chain *c);

static void path_of(int i, char *out, size_t cap) { snprintf(out, cap, "%s/f%06d", dir, i); }

static void on_close(uv_fs_t *req)
{
    chain *c = req->data;
    uv_fs_req_cleanup(req);
    done_files++;
    start_next(c);
}

static void on_io(uv_fs_t *req)
{
    chain *c = req->data;
    if (req->result != FILE_SIZE) {
        fprintf(stderr, "libuv_files: short %s on file %d: %ld\n", writing ? "write" : "read", c->index,
                (long)req->result);
        exit(1);
    }
    if (!writing) {
        /* memcmp, as bench/file_bench.c checks. */
        char want[FILE_SIZE];
        memset(want, (unsigned char)c->index, sizeof want);
        if (memcmp(c->buf, want, sizeof want) != 0) {
            fprintf(stderr, "libuv_files: wrong byte in file %d\n", c->index);
            exit(1);
        }
    }
    uv_fs_req_cleanup(req);
    uv_fs_close(uv_default_loop(), &c->req, c->fd, on_close);
}

static void on_open(uv_fs_t *req)
{
    chain *c = req->data;
    if (req->result < 0) {
        fprintf(stderr, "libuv_files: open file %d: %s\n", c->index, uv_strerror((int)req->result));
        exit(1);
    }
    c->fd = (uv_file)req->result;
    uv_fs_req_cleanup(req);
    c->iov = uv_buf_init(c->buf, FILE_SIZE);
    if (writing) {
        memset(c->buf, (unsigned char)c->index, FILE_SIZE);
        uv_fs_write(uv_default_loop(), &c->req, c->fd, &c->iov, 1, 0, on_io);
    } else {
        uv_fs_read(uv_default_loop(), &c->req, c->fd, &c->iov, 1, 0, on_io);
    }
}

static void start_next(chain *c)
{
    if (next_index >= total)
        return;
    c->index = next_index++;
    c->req.data = c;
    char path[4096];
    path_of(c->index, path, sizeof path);
    int flags = writing ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
    uv_fs_open(uv_default_loop(), &c->req, path, flags, 0644, on_open);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: libuv_files read|write DIR N CONC\n");
        return 2;
    }
    writing = !strcmp(argv[1], "write");
    dir = argv[2];
    total = atoi(argv[3]);
    int conc = atoi(argv[4]);
    chain *chains = calloc((size_t)conc, sizeof *chains);
    for (int i = 0; i < conc; i++)
        start_next(&chains[i]);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    printf("files: %d\n", done_files);
    free(chains);
    return done_files == total ? 0 : 1;
}
