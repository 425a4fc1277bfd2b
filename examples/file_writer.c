/*
 * The seed's second program (event_loop_file_writer.py) on corio: one task
 * writes a file, another reads it back, main gathers both and prints what
 * was read.
 *
 * The seed leaves the order to chance: its two tasks start together, so the
 * reader may open the file before the writer has written it (and read an
 * empty or missing file).  Here the order is explicit: the writer sets an
 * event once the file is complete and closed, and the reader waits for that
 * event before opening it, so the program prints "Hello, world!" every time.
 *
 * `async with aiofiles.open(...)` guarantees the close on every path; in C
 * the same guarantee is one exit label that every path goes through.
 */
#include <corio.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shared {
    const char *filename;
    const char *data;
    corio_event written; /* set by the writer once the file is closed */
} shared;

/* write_to_file(filename, data) */
static void *write_to_file(void *arg)
{
    shared *sh = arg;
    intptr_t r = corio_file_write_all(sh->filename, sh->data, strlen(sh->data), 0644);
    /* whatever happened, let the reader go: it reports a missing file */
    corio_event_set(&sh->written);
    return (void *)r;
}

/* read_from_file(filename) -> the content (malloc'd), or NULL */
static void *read_from_file(void *arg)
{
    shared *sh = arg;
    if (corio_event_wait(&sh->written) < 0)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    int fd = corio_file_open(sh->filename, O_RDONLY, 0);
    if (fd < 0) {
        fprintf(stderr, "file_writer: open %s: %s\n", sh->filename, corio_strerror(fd));
        return NULL;
    }
    data = malloc(4096);
    if (!data)
        goto out;
    ssize_t n;
    while (len < 4095 && (n = corio_file_read(fd, data + len, 4095 - len)) > 0)
        len += (size_t)n;
    data[len] = 0;
out:
    corio_file_close(fd); /* the "async with": every path closes the file */
    return data;
}

static void *main_task(void *arg)
{
    (void)arg;
    shared sh = {.filename = "example.txt", .data = "Hello, world!"};
    corio_event_init(&sh.written);

    corio_task *tasks[2] = {corio_spawn(write_to_file, &sh), corio_spawn(read_from_file, &sh)};
    if (!tasks[0] || !tasks[1]) {
        fprintf(stderr, "file_writer: cannot start tasks\n");
        return (void *)1;
    }
    void *results[2] = {NULL, NULL};
    int r = corio_gather(tasks, 2, results);
    if (r < 0 || (intptr_t)results[0] < 0 || !results[1]) {
        fprintf(stderr, "file_writer: %s\n", corio_strerror(r < 0 ? r : (int)(intptr_t)results[0]));
        free(results[1]);
        return (void *)1;
    }
    printf("%s\n", (char *)results[1]);
    free(results[1]);
    return NULL;
}

int main(void)
{
    void *res = NULL;
    int r = corio_run(NULL, main_task, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "file_writer: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
