/*
 * Unix socket echo server: every connection gets back exactly what it sends.
 *
 *   unix_echo PATH          (a socket file, or @NAME in the abstract namespace)
 *
 * Prints "listening on PATH" once it accepts connections, so scripts can
 * wait for that line.  A socket file left behind by a server that died is
 * replaced; a server still running there is not disturbed (the program
 * exits with "Address already in use").  The file is removed again when
 * the server closes.  With -v, every connection is logged with the
 * peer's credentials, which the kernel vouches for (SO_PEERCRED): the way
 * a local daemon learns who is talking to it without passwords.
 */
#include <corio.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_SIZE (256 * 1024)

static void echo(corio_stream *s, void *arg)
{
    bool verbose = arg != NULL;
    if (verbose) {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        if (corio_stream_peercred(s, &pid, &uid, &gid) == 0)
            fprintf(stderr, "connection from pid %d (uid %u, gid %u)\n", (int)pid, (unsigned)uid,
                    (unsigned)gid);
    }
    char *buf = malloc(READ_SIZE);
    if (!buf)
        return;
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, READ_SIZE);
        if (n <= 0)
            break; /* EOF, reset, or the server is closing */
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            break;
    }
    free(buf);
}

struct opts {
    const char *path;
    bool verbose;
};

static void *main_task(void *arg)
{
    const struct opts *o = arg;
    corio_server *srv;
    int r = corio_server_start_unix(o->path, echo, o->verbose ? (void *)1 : NULL, NULL, &srv);
    if (r < 0) {
        fprintf(stderr, "unix_echo: cannot listen on %s: %s\n", o->path, corio_strerror(r));
        return (void *)1;
    }
    printf("listening on %s\n", o->path);
    fflush(stdout);
    corio_server_serve_forever(srv);
    corio_server_close(srv, 1000);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int i = 1;
    if (i < argc && strcmp(argv[i], "-v") == 0) {
        o.verbose = true;
        i++;
    }
    if (argc - i != 1) {
        fprintf(stderr, "usage: unix_echo [-v] PATH\n");
        return 2;
    }
    o.path = argv[i];
    void *res = NULL;
    int r = corio_run(NULL, main_task, &o, &res);
    if (r < 0) {
        fprintf(stderr, "unix_echo: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
