/*
 * corio-serve — a static-file HTTP server on corio's HTTP module, the fast
 * answer to `python -m http.server`: `corio-serve [--port N] [--bind ADDR]
 * [DIR]` serves DIR (default: the current directory) on ADDR:N (default
 * 127.0.0.1:8000) until SIGINT or SIGTERM.  Started by systemd (or any
 * launcher that sets LISTEN_PID and LISTEN_FDS), it serves the sockets it
 * was handed instead of binding (socket activation).
 *
 * HTTPS: `--tls-cert FILE --tls-key FILE` (pairs, repeatable: the first is
 * the default certificate, the others are picked by the name the client
 * asks for, SNI) make --port serve HTTPS, or, with `--tls-port N`, add an
 * HTTPS server on port N beside the plain one on --port.  Both servers run
 * the same handler on one loop.  SIGHUP reloads every certificate and key
 * from their files (corio_tls_reload_certs: new handshakes get the new
 * ones, open connections carry on); a reload that fails is logged and the
 * old ones stay.
 *
 * Behind a load balancer: `--health PATH` answers a health route (200
 * "ok", 503 "draining"), and SIGTERM drains: unhealthy at once, serving on
 * for `--drain-delay MS` so the balancer's checks notice, then the usual
 * graceful stop (see lb_drain).  SIGINT stops without the delay.
 *
 * What it does per request (GET and HEAD only, others get 405):
 *  - the path is percent-decoded; an encoded '/' or '\' (%2f, %5c), a NUL,
 *    a broken escape or a ".." segment is a 400 before anything touches
 *    the file system;
 *  - the file is opened relative to DIR's descriptor with openat2(2) and
 *    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so the kernel itself refuses
 *    any resolution that leaves DIR (symlinks out of it, absolute links):
 *    those answer 404, as if the file did not exist.  On a kernel without
 *    openat2 the same check is done with realpath(3) and a prefix test;
 *  - a directory is answered with its index.html if it has one, else an
 *    HTML listing (names sorted bytewise, HTML-escaped, links
 *    percent-encoded, '/' after directories); a directory asked for
 *    without the trailing '/' is redirected (301) to it, so relative links
 *    work (the Location is the cleaned path: one leading '/', re-encoded);
 *    a file asked for with a trailing '/' is a 404;
 *  - a regular file gets Content-Type from its extension, Last-Modified,
 *    an ETag "size-mtime" (hex, mtime in ns), Accept-Ranges; If-None-Match
 *    (and, without it, If-Modified-Since) give 304; a single Range gives
 *    206 with Content-Range, an unsatisfiable one 416 whose Content-Range
 *    gives only the size; several ranges, or a failed If-Range, get the whole file;
 *  - the body is sent with sendfile(2) (corio_http_response_send_file): zero
 *    copy on both backends (over HTTPS it is read and encrypted in 256 KiB
 *    pieces);
 *  - one access log line per request goes to stderr in the common log
 *    format (--quiet turns it off), through a bounded buffer that a task
 *    writes out, so a stalled stderr never stalls the server (lines that
 *    do not fit are dropped and counted: see "Access log" below).
 *
 * Opening files and reading directories are done inline, as nginx does by
 * default: they are page-cache metadata operations, and a thread hop per
 * request would cost more than it saves on a local disk.
 */
#define _GNU_SOURCE /* strptime, timegm, O_PATH */
#include "corio.h"
#include "corio/http.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 8000
#define DEFAULT_BIND "127.0.0.1"

static const char usage_text[] =
    "NAME\n"
    "    corio-serve - serve a directory over HTTP\n"
    "\n"
    "SYNOPSIS\n"
    "    corio-serve [--port N] [--bind ADDR] [--quiet] [--keepalive-timeout S]\n"
    "                [--tls-cert FILE --tls-key FILE]... [--tls-port N]\n"
    "                [--workers N] [--pin-cpus] [--health PATH] [--drain-delay MS]\n"
    "                [--handover PATH] [DIR]\n"
    "\n"
    "DESCRIPTION\n"
    "    Serves the files under DIR (default: the current directory) over\n"
    "    HTTP/1.1 until SIGINT (Ctrl-C) or SIGTERM, then lets requests in\n"
    "    flight finish and exits with status 0.  Directories are answered\n"
    "    with their index.html, or else with a listing.  Files get a\n"
    "    Content-Type from their extension, Last-Modified and ETag (with\n"
    "    304 answers to If-Modified-Since and If-None-Match) and single\n"
    "    byte Range requests (206, or 416 when unsatisfiable); their bytes\n"
    "    go out with sendfile(2).  Only GET and HEAD are served.\n"
    "\n"
    "    Nothing outside DIR is ever served: '..' segments and encoded\n"
    "    slashes are refused (400) and symbolic links that lead out of DIR\n"
    "    answer 404.  Links inside DIR are followed.\n"
    "\n"
    "    One line per request is logged to standard error:\n"
    "        ADDR - - [DATE] \"METHOD TARGET HTTP/1.x\" STATUS BYTES\n"
    "    The log never holds up the server: when the reader of standard\n"
    "    error stalls and the 256 KiB log buffer is full, lines are dropped\n"
    "    and counted, and \"corio-serve: N log lines dropped\" follows the\n"
    "    kept lines once the reader is back.\n"
    "\n"
    "OPTIONS\n"
    "    -p, --port N     listen on port N (default 8000; 0 picks a free port)\n"
    "    -b, --bind ADDR  listen on address ADDR (default 127.0.0.1); '' for\n"
    "                     every interface, IPv4 and IPv6; 0.0.0.0 for every\n"
    "                     IPv4 one only, :: for every IPv6 one only; a name\n"
    "                     such as localhost: each address it resolves to\n"
    "    -q, --quiet      no access log\n"
    "    --keepalive-timeout S\n"
    "                     close a connection idle between requests for S\n"
    "                     seconds (default 15)\n"
    "    --tls-cert FILE  serve HTTPS with the PEM certificate chain in FILE\n"
    "                     (the server's certificate first, then the\n"
    "                     intermediates); needs --tls-key\n"
    "    --tls-key FILE   the certificate's PEM private key (unencrypted)\n"
    "                     Give several --tls-cert/--tls-key pairs (in\n"
    "                     order) to serve several names: the first pair is\n"
    "                     the default, the others are chosen by the name the\n"
    "                     client asks for (SNI)\n"
    "    --tls-port N     serve HTTPS on port N and plain HTTP on --port,\n"
    "                     side by side; without it, a certificate makes\n"
    "                     --port serve HTTPS only\n"
    "    --workers N      serve with N loops on N threads, one per core\n"
    "                     (default: the number of CPUs this process may\n"
    "                     use); each binds its own socket on the port with\n"
    "                     SO_REUSEPORT and the kernel spreads connections\n"
    "                     over them; 1 runs everything on one thread\n"
    "    --pin-cpus       pin worker i to the i-th CPU this process may use\n"
    "    --health PATH    answer PATH (any method) with 200 \"ok\" while\n"
    "                     serving and 503 \"draining\" once SIGTERM came, for a\n"
    "                     load balancer's health checks; PATH is matched as\n"
    "                     sent, before any '?', and wins over a file of that name\n"
    "    --drain-delay MS after SIGTERM, keep serving MS milliseconds before\n"
    "                     closing the listener (default 1000 with --health,\n"
    "                     else 0); see BEHIND A LOAD BALANCER\n"
    "    --handover PATH  reload without downtime through the Unix socket\n"
    "                     PATH (\"@name\": abstract): take the listening\n"
    "                     sockets of the corio-serve running with the same\n"
    "                     PATH, or bind as usual if there is none, and hand\n"
    "                     them to the next one (below)\n"
    "    -h, --help       print this text and exit\n"
    "\n"
    "BEHIND A LOAD BALANCER\n"
    "    SIGTERM drains: the health route answers 503 at once, every\n"
    "    response says \"Connection: close\", and the server keeps serving\n"
    "    for the drain delay, long enough for the balancer's checks to\n"
    "    mark it down (make it at least the check interval times the\n"
    "    failures the balancer waits for, e.g. HAProxy's inter x fall).\n"
    "    A second SIGTERM, or SIGINT, ends the delay early.  Then it stops\n"
    "    accepting, closes idle connections, lets requests in flight\n"
    "    finish for up to 5 seconds and exits with status 0.  SIGINT\n"
    "    stops the same way without the drain delay.  See docs/deploy.md\n"
    "    for HAProxy, nginx and systemd.\n"
    "\n"
    "HTTPS\n"
    "    With a certificate, connections speak TLS 1.2 or 1.3 (OpenSSL),\n"
    "    with session tickets.  A plain HTTP request sent to the HTTPS port\n"
    "    is answered 400 and closed.  Files are read and encrypted in\n"
    "    user space (sendfile can not encrypt).\n"
    "\n"
    "    SIGHUP reloads every certificate and key from its file: new\n"
    "    connections get the new ones, connections already open go on\n"
    "    undisturbed.  A reload that fails (a missing file, a key that\n"
    "    does not match) is logged and the old certificates stay.\n"
    "\n"
    "SOCKET ACTIVATION\n"
    "    Started with listening sockets passed by systemd (a .socket unit,\n"
    "    systemd-socket-activate) or any launcher that sets LISTEN_PID to\n"
    "    its pid and LISTEN_FDS to their count (fds 3, 4, ...), it serves\n"
    "    those sockets (TCP or Unix stream) instead of binding, and --port,\n"
    "    --tls-port and --bind are ignored (with a certificate the sockets\n"
    "    serve HTTPS).  The variables are removed from its\n"
    "    environment.  A passed fd that is not a listening stream socket\n"
    "    is an error (exit status 1).\n"
    "\n"
    "RELOADING WITHOUT DOWNTIME\n"
    "    Start the new version with the same --handover PATH while the old\n"
    "    one runs: it takes the old one's listening sockets themselves\n"
    "    (passed over PATH), so connections waiting to be accepted are\n"
    "    neither refused nor reset, serves them (--port, --tls-port and\n"
    "    --bind are then ignored; its certificates must cover HTTPS if the\n"
    "    old one served it), and tells the old one, which stops accepting,\n"
    "    lets requests in flight and connections just accepted finish (up\n"
    "    to 5 s), and exits with status 0.  The new one then waits on PATH\n"
    "    for its own successor.  A new one that fails before serving (a bad\n"
    "    option, a certificate it can not load) exits 1 and the old one\n"
    "    keeps serving.  Idle keep-alive connections are closed as at\n"
    "    SIGTERM (clients resend a request that crossed the close).\n"
    "    PATH is made 0600; only a process of the same user\n"
    "    (or root) may take the sockets.  With socket activation the passed\n"
    "    sockets are served and nothing is taken, but they are handed on.\n"
    "\n"
    "ENVIRONMENT\n"
    "    CORIO_BACKEND    io_uring or epoll (default: io_uring when it works)\n"
    "    LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES\n"
    "                     socket activation (above)\n"
    "\n"
    "EXIT STATUS\n"
    "    0 after SIGINT or SIGTERM, 1 when DIR can not be opened, the\n"
    "    address can not be bound, a passed socket can not be served or a\n"
    "    certificate or key can not be loaded, 2 for a usage error.\n"
    "\n"
    "EXAMPLES\n"
    "    corio-serve --port 8080 ~/public\n"
    "    corio-serve --port 8081 --health /healthz --drain-delay 2000 ~/public\n"
    "    corio-serve --port 8080 --handover /run/www.sock ~/public   (again to reload)\n"
    "    corio-serve --port 8080 --tls-port 8443 --tls-cert fullchain.pem \\\n"
    "                --tls-key privkey.pem ~/public\n";

#define MAX_CERTS 16

typedef struct serve_opts {
    const char *bind;
    uint16_t port;
    int tls_port;          /* --tls-port, -1 if not given */
    uint32_t keepalive_ms; /* --keepalive-timeout (0: the server's default, 15 s) */
    unsigned ncert_files, nkey_files;
    corio_tls_cert certs[MAX_CERTS]; /* --tls-cert / --tls-key pairs, in order */
    bool quiet;
    int rootfd;           /* O_PATH descriptor of DIR: every lookup starts here */
    int nfds;             /* sockets passed by socket activation (LISTEN_FDS), 0 if none */
    const char *handover; /* --handover PATH, NULL if not given */
    int fds[16];
    char root[PATH_MAX]; /* DIR's real path (for the realpath fallback) */
    unsigned workers;    /* --workers (0: the CPUs this process may use) */
    bool pin_cpus;       /* --pin-cpus */
} serve_opts;

static serve_opts opts;

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

/* A growable byte buffer; on allocation failure it stops growing and
 * remembers it (checked once, at the end). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_html(sbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            sb_puts(b, "&amp;");
            break;
        case '<':
            sb_puts(b, "&lt;");
            break;
        case '>':
            sb_puts(b, "&gt;");
            break;
        case '"':
            sb_puts(b, "&quot;");
            break;
        case '\'':
            sb_puts(b, "&#39;");
            break;
        default:
            sb_add(b, s + i, 1);
        }
    }
}

/* Percent-encode everything but RFC 3986 unreserved characters, so any
 * file name (spaces, '?', '#', '%', non-ASCII) makes a working link. */
static void sb_urlenc(sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~') {
            sb_add(b, s, 1);
        } else {
            char e[4] = {'%', "0123456789ABCDEF"[ch >> 4], "0123456789ABCDEF"[ch & 15], 0};
            sb_add(b, e, 3);
        }
    }
}

/* A relative path from clean_path as an absolute URL path: a single
 * leading '/', each segment percent-encoded, the '/' between them kept. */
static void sb_urlpath(sbuf *b, const char *rel)
{
    sb_puts(b, "/");
    if (!strcmp(rel, "."))
        return;
    char seg[NAME_MAX + 1];
    while (*rel) {
        size_t n = strcspn(rel, "/");
        if (n < sizeof seg) {
            memcpy(seg, rel, n);
            seg[n] = 0;
            sb_urlenc(b, seg);
        } else {
            b->oom = true; /* no such name on Linux: the open would have failed */
        }
        rel += n;
        if (*rel == '/') {
            sb_puts(b, "/");
            rel++;
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void http_time(time_t t, char *buf, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* IMF-fixdate only (what every current client sends); -1 when it is not. */
static time_t parse_http_time(const char *s, size_t n)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    return timegm(&tm);
}

static const struct {
    const char *ext, *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"xml", "application/xml"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
};

static const char *mime_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
            if (!strcasecmp(dot + 1, mime_types[i].ext))
                return mime_types[i].type;
    return "application/octet-stream";
}

/* ------------------------------------------------------------------ */
/* Answers (each records status and body size for the access log)      */
/* ------------------------------------------------------------------ */

typedef struct answer {
    corio_http_request *req;
    corio_http_response *resp;
    int status;
    uint64_t bytes;
} answer;

static void reply(answer *a, int status, const char *ctype, const void *body, size_t len)
{
    a->status = status;
    a->bytes = a->req->method.len == 4 && !memcmp(a->req->method.ptr, "HEAD", 4) ? 0 : len;
    if (status == 304)
        a->bytes = 0;
    corio_http_response_send(a->resp, status, ctype, body, len);
}

static void reply_error(answer *a, int status)
{
    char body[256];
    const char *reason = corio_http_reason(status);
    int n = snprintf(body, sizeof body,
                     "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
                     "<body><h1>%d %s</h1></body></html>\n",
                     status, reason, status, reason);
    reply(a, status, "text/html; charset=utf-8", body, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* Path handling                                                        */
/* ------------------------------------------------------------------ */

/* Turn the request path into a relative path under DIR ("." for DIR
 * itself) in out (size >= len + 2); *trailing_slash says whether it ends
 * in '/' or a "." segment (it names a directory, or nothing at all).
 * Returns 0, or the status to answer:
 * 400 for a broken escape, an encoded '/' or '\', a NUL, a ".." segment,
 * or a path that does not start with '/'. */
static int clean_path(const char *p, size_t len, char *out, bool *trailing_slash)
{
    if (len == 0) { /* absolute-form without a path means "/" */
        p = "/";
        len = 1;
    }
    if (p[0] != '/')
        return 400;
    size_t o = 0, seg = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch;
        if (i == len) {
            ch = '/';
        } else if (p[i] == '%') {
            int hi = i + 2 < len ? hexval(p[i + 1]) : -1, lo = i + 2 < len ? hexval(p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            ch = (char)(hi << 4 | lo);
            i += 2;
            if (ch == '/' || ch == '\\' || ch == 0)
                return 400;
            out[o++] = ch;
            continue;
        } else {
            ch = p[i];
        }
        if (ch != '/') {
            out[o++] = ch;
            continue;
        }
        /* end of the segment out[seg..o) */
        size_t sl = o - seg;
        bool dropped = sl == 0 || (sl == 1 && out[seg] == '.');
        if (i == len)
            *trailing_slash = dropped; /* "/x/" or "/x/.": only a directory fits */
        if (dropped) {
            o = seg; /* empty or "." segment: drop it */
        } else if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            return 400;
        } else {
            out[o++] = '/';
            seg = o;
        }
    }
    if (o == 0) {
        out[o++] = '.';
    } else {
        o--; /* the last '/' */
    }
    out[o] = 0;
    return 0;
}

/* Open rel (from clean_path) beneath DIR, never resolving outside it.
 * Returns an fd or -errno (-EXDEV / -ELOOP for a way out). */
static int open_beneath(const char *rel)
{
    static bool no_openat2;
    if (!no_openat2) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        long fd = syscall(SYS_openat2, opts.rootfd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != ENOSYS)
            return -errno;
        no_openat2 = true;
    }
    /* No openat2: resolve the whole path and check it is still under the
     * root (racy against a concurrent rename, which openat2 is not). */
    char full[PATH_MAX * 2], real[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", opts.root, rel) >= sizeof full)
        return -ENAMETOOLONG;
    if (!realpath(full, real))
        return -errno;
    size_t rl = strlen(opts.root);
    if (strcmp(opts.root, "/") != 0 &&
        (strncmp(real, opts.root, rl) != 0 || (real[rl] != 0 && real[rl] != '/')))
        return -EXDEV;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    return fd < 0 ? -errno : fd;
}

static int errno_status(int err)
{
    switch (err) {
    case -EACCES:
    case -EPERM:
        return 403;
    case -ENOENT:
    case -ENOTDIR:
    case -EXDEV:
    case -ELOOP:
    case -ENAMETOOLONG:
        return 404;
    default:
        return 500;
    }
}

/* ------------------------------------------------------------------ */
/* Directory listing                                                    */
/* ------------------------------------------------------------------ */

typedef struct entry {
    char *name;
    bool dir;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static void send_listing(answer *a, int dfd, const char *shown_path)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int err = -errno;
        if (fd >= 0)
            close(fd);
        reply_error(a, errno_status(err));
        return;
    }
    entry *ents = NULL;
    size_t n = 0, cap = 0;
    bool oom = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        bool isdir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
            struct stat st;
            isdir = fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            entry *p = realloc(ents, nc * sizeof *p);
            if (!p) {
                oom = true;
                break;
            }
            ents = p;
            cap = nc;
        }
        if (!(ents[n].name = strdup(de->d_name))) {
            oom = true;
            break;
        }
        ents[n++].dir = isdir;
    }
    closedir(d);
    qsort(ents, n, sizeof *ents, entry_cmp);

    sbuf b = {0};
    sb_puts(&b, "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Directory listing for ");
    sb_html(&b, shown_path, strlen(shown_path));
    sb_puts(&b, "</title>\n</head>\n<body>\n<h1>Directory listing for ");
    sb_html(&b, shown_path, strlen(shown_path));
    sb_puts(&b, "</h1>\n<hr>\n<ul>\n");
    for (size_t i = 0; i < n; i++) {
        sb_puts(&b, "<li><a href=\"");
        sb_urlenc(&b, ents[i].name);
        if (ents[i].dir)
            sb_puts(&b, "/");
        sb_puts(&b, "\">");
        sb_html(&b, ents[i].name, strlen(ents[i].name));
        if (ents[i].dir)
            sb_puts(&b, "/");
        sb_puts(&b, "</a></li>\n");
        free(ents[i].name);
    }
    free(ents);
    sb_puts(&b, "</ul>\n<hr>\n</body>\n</html>\n");
    if (oom || b.oom)
        reply_error(a, 500);
    else
        reply(a, 200, "text/html; charset=utf-8", b.p, b.len);
    free(b.p);
}

/* ------------------------------------------------------------------ */
/* Files                                                                */
/* ------------------------------------------------------------------ */

/* Does the If-None-Match list hold etag (weak comparison, RFC 9110
 * section 13.1.2)? */
static bool etag_listed(const char *list, size_t n, const char *etag)
{
    size_t el = strlen(etag);
    size_t i = 0;
    while (i < n) {
        while (i < n && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        if (i < n && list[i] == '*')
            return true;
        if (i + 2 <= n && list[i] == 'W' && list[i + 1] == '/')
            i += 2;
        size_t s = i;
        while (i < n && list[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t'))
            e--;
        if (e - s == el && !memcmp(list + s, etag, el))
            return true;
    }
    return false;
}

/* Parse a single "bytes=" range against size.  Returns 1 with [*from,
 * *to] (inclusive), 0 when the header is to be ignored (bad syntax,
 * several ranges: the whole file is sent), -1 when unsatisfiable. */
static int parse_range(const char *v, size_t n, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (n < 6 || strncasecmp(v, "bytes=", 6) != 0)
        return 0;
    v += 6;
    n -= 6;
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (memchr(v, ',', n))
        return 0;
    size_t i = 0;
    uint64_t a = 0, b = 0;
    bool has_a = false, has_b = false;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
        if (a > (UINT64_MAX - 9) / 10)
            return 0;
        a = a * 10 + (uint64_t)(v[i] - '0');
        has_a = true;
    }
    if (i >= n || v[i] != '-')
        return 0;
    for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
        if (b > (UINT64_MAX - 9) / 10)
            return 0;
        b = b * 10 + (uint64_t)(v[i] - '0');
        has_b = true;
    }
    if (i != n || (!has_a && !has_b))
        return 0;
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (has_b && b < a)
        return 0;
    if (a >= size)
        return -1;
    *from = a;
    *to = !has_b || b >= size ? size - 1 : b;
    return 1;
}

static void send_file(answer *a, int fd, const struct stat *st, const char *name)
{
    corio_http_request *req = a->req;
    corio_http_response *resp = a->resp;
    uint64_t size = (uint64_t)st->st_size;
    uint64_t mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000ull + (uint64_t)st->st_mtim.tv_nsec;
    char etag[64], lastmod[40];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)size, (unsigned long long)mtime_ns);
    http_time(st->st_mtim.tv_sec, lastmod, sizeof lastmod);
    corio_http_response_add_header(resp, "Last-Modified", lastmod);
    corio_http_response_add_header(resp, "ETag", etag);
    corio_http_response_add_header(resp, "Accept-Ranges", "bytes");

    size_t vl;
    const char *inm = corio_http_request_header(req, "If-None-Match", &vl);
    if (inm) {
        if (etag_listed(inm, vl, etag)) {
            reply(a, 304, NULL, NULL, 0);
            return;
        }
    } else {
        const char *ims = corio_http_request_header(req, "If-Modified-Since", &vl);
        time_t t = ims ? parse_http_time(ims, vl) : -1;
        if (t != -1 && st->st_mtim.tv_sec <= t) {
            reply(a, 304, NULL, NULL, 0);
            return;
        }
    }

    const char *ctype = mime_type(name);
    uint64_t from = 0, to = size ? size - 1 : 0;
    int rr = 0;
    const char *range = corio_http_request_header(req, "Range", &vl);
    if (range) {
        size_t il;
        const char *ifr = corio_http_request_header(req, "If-Range", &il);
        /* If-Range: the range only holds for the representation it names */
        bool fresh = !ifr || (il == strlen(etag) && !memcmp(ifr, etag, il)) ||
                     (il == strlen(lastmod) && !memcmp(ifr, lastmod, il));
        if (fresh)
            rr = parse_range(range, vl, size, &from, &to);
    }
    if (rr < 0) {
        char cr[48];
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
        corio_http_response_add_header(resp, "Content-Range", cr);
        reply_error(a, 416);
        return;
    }
    int status = 200;
    uint64_t len = size;
    if (rr > 0) {
        char cr[80];
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)from, (unsigned long long)to,
                 (unsigned long long)size);
        corio_http_response_add_header(resp, "Content-Range", cr);
        status = 206;
        len = to - from + 1;
    }
    a->status = status;
    bool head = req->method.len == 4 && !memcmp(req->method.ptr, "HEAD", 4);
    a->bytes = head ? 0 : len;
    corio_http_response_send_file(resp, status, ctype, fd, (int64_t)from, len);
}

/* ------------------------------------------------------------------ */
/* The handler                                                          */
/* ------------------------------------------------------------------ */

static void serve(answer *a)
{
    corio_http_request *req = a->req;
    bool get = req->method.len == 3 && !memcmp(req->method.ptr, "GET", 3);
    bool head = req->method.len == 4 && !memcmp(req->method.ptr, "HEAD", 4);
    if (!get && !head) {
        corio_http_response_add_header(a->resp, "Allow", "GET, HEAD");
        reply_error(a, 405);
        return;
    }
    size_t plen = req->path.len;
    char *rel = malloc(plen + 3);
    if (!rel) {
        reply_error(a, 500);
        return;
    }
    bool slash = false;
    int st_code = clean_path(req->path.ptr, plen, rel, &slash);
    if (st_code) {
        free(rel);
        reply_error(a, st_code);
        return;
    }
    int fd = open_beneath(rel);
    if (fd < 0) {
        free(rel);
        reply_error(a, errno_status(fd));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        reply_error(a, 500);
    } else if (S_ISDIR(st.st_mode)) {
        if (!slash) {
            /* Relative links in the page need the trailing '/'.  The
             * Location is rebuilt from the cleaned path: the request's own
             * could start with "//", which a browser reads as another
             * host ("//evil.com/"). */
            sbuf loc = {0};
            sb_urlpath(&loc, rel);
            sb_puts(&loc, "/");
            if (req->query.len) {
                sb_puts(&loc, "?");
                sb_add(&loc, req->query.ptr, req->query.len);
            }
            if (loc.oom || corio_http_response_add_header(a->resp, "Location", loc.p) < 0)
                reply_error(a, 500);
            else
                reply_error(a, 301);
            free(loc.p);
        } else {
            int ifd = -1;
            char *ipath = malloc(strlen(rel) + sizeof "/index.html");
            if (ipath) {
                strcpy(ipath, rel);
                strcat(ipath, "/index.html");
                ifd = open_beneath(ipath);
                free(ipath);
            }
            struct stat ist;
            if (ifd >= 0 && fstat(ifd, &ist) == 0 && S_ISREG(ist.st_mode)) {
                send_file(a, ifd, &ist, "index.html");
            } else {
                /* the decoded path, as the page's title */
                sbuf shown = {0};
                sb_puts(&shown, "/");
                if (strcmp(rel, ".") != 0) {
                    sb_puts(&shown, rel);
                    sb_puts(&shown, "/");
                }
                if (shown.oom)
                    reply_error(a, 500);
                else
                    send_listing(a, fd, shown.p);
                free(shown.p);
            }
            if (ifd >= 0)
                close(ifd);
        }
    } else if (slash) {
        reply_error(a, 404); /* "/file.txt/": only a directory has a '/' after it */
    } else if (S_ISREG(st.st_mode)) {
        send_file(a, fd, &st, rel);
    } else {
        reply_error(a, 403); /* FIFOs, devices, sockets */
    }
    close(fd);
    free(rel);
}

/* ------------------------------------------------------------------ */
/* Access log                                                           */
/* ------------------------------------------------------------------ */

/* The log must never hold up the server: stderr may be a pipe or FIFO
 * whose reader stalls, or a stopped terminal, and a write(2) there would
 * block the loop thread and every connection with it.  So handlers only
 * append lines to a bounded buffer, and one task (log_writer) writes them
 * out with corio_file_write on a duplicate of fd 2: that call waits for
 * room without blocking the loop, and makes each attempt non-blocking on
 * its own, so the O_NONBLOCK flag of stderr's description (shared with
 * the shell and whoever else writes to it) is left alone.  While the
 * buffer is full, lines are dropped and counted; once the writer has got
 * out everything queued before them (the reader is back) it logs
 * "corio-serve: N log lines dropped". */

#define LOG_BUFFER (256 * 1024) /* lines waiting for the writer, per shard, at most */
#define LOG_NOTE_MAX 80         /* room for the "lines dropped" note */

/* With workers, handlers on every worker's thread queue lines.  One queue
 * under one lock would be the only lock every request of every worker
 * takes, so the queue is sharded: each thread that logs is given a shard
 * of its own on its first line (while there are more shards than threads,
 * which there are: two per worker, for the HTTP and HTTPS servers' loops),
 * and its lock is otherwise taken only by the writer, once per batch.
 * A shard that was empty wakes the writer: directly on the writer's loop,
 * through that loop's reference from any other (once per batch, not per
 * line).  Lines of one worker stay in order; those of different workers
 * interleave a batch at a time, as nginx's per-worker buffers do. */
typedef struct log_shard {
    pthread_mutex_t mu;
    char *queued; /* lines the writer has not taken yet */
    size_t queued_len;
    char *batch;                /* the lines the writer is writing now */
    bool dropping;              /* a line did not fit: drop all until the writer takes the queue */
    unsigned long long dropped; /* lines dropped since the writer last took the queue */
    char pad_[64];              /* two threads' shards never share a cache line */
} log_shard;

static struct {
    log_shard *shards;
    unsigned nshards;
    atomic_uint next_shard; /* the next shard a thread is given */
    _Atomic int fd;         /* duplicate of fd 2; -1 when the log is off or broken */
    bool closing;           /* log_close: write what is queued, then end */
    corio_event wake;       /* set when lines are queued (or at close) */
    corio_task *writer;
    corio_loop_ref *log_loop; /* the writer's loop, for the other workers' wake-ups */
} logq = {.fd = -1};

static __thread log_shard *log_my_shard;

static void log_wake(void *arg)
{
    (void)arg;
    corio_event_set(&logq.wake);
}

/* Queue n bytes of text (whole lines) for the log, or drop and count them. */
static void log_queue(const char *text, size_t n)
{
    /* acquire: pairs with log_open's store, after which the shards are set */
    if (atomic_load_explicit(&logq.fd, memory_order_acquire) < 0)
        return;
    log_shard *sh = log_my_shard;
    if (!sh) {
        unsigned i = atomic_fetch_add_explicit(&logq.next_shard, 1, memory_order_relaxed);
        sh = log_my_shard = &logq.shards[i % logq.nshards];
    }
    pthread_mutex_lock(&sh->mu);
    if (sh->dropping || n > LOG_BUFFER - sh->queued_len) {
        sh->dropping = true;
        sh->dropped++;
        pthread_mutex_unlock(&sh->mu);
        return;
    }
    bool was_empty = sh->queued_len == 0;
    memcpy(sh->queued + sh->queued_len, text, n);
    sh->queued_len += n;
    pthread_mutex_unlock(&sh->mu);
    if (corio_worker_index() <= 0) /* the writer's loop: worker 0, or no workers */
        corio_event_set(&logq.wake);
    else if (was_empty)
        (void)corio_loop_ref_call_soon(logq.log_loop, log_wake, NULL);
}

/* Take shard sh's queue into its batch buffer.  Returns the bytes to write
 * (with the "lines dropped" note, if lines were dropped), 0 if none. */
static size_t log_take(log_shard *sh)
{
    pthread_mutex_lock(&sh->mu);
    char *b = sh->queued;
    size_t n = sh->queued_len;
    if (n || sh->dropped) {
        /* handlers fill the other buffer meanwhile */
        sh->queued = sh->batch;
        sh->queued_len = 0;
        sh->batch = b;
        if (sh->dropped) {
            /* every line dropped came after the ones taken here */
            n += (size_t)snprintf(b + n, LOG_NOTE_MAX, "corio-serve: %llu log lines dropped\n", sh->dropped);
            sh->dropped = 0;
        }
        sh->dropping = false;
    }
    pthread_mutex_unlock(&sh->mu);
    return n;
}

static void *log_writer(void *arg)
{
    (void)arg;
    int fd = atomic_load(&logq.fd);
    for (;;) {
        bool wrote = false;
        for (unsigned i = 0; i < logq.nshards; i++) {
            log_shard *sh = &logq.shards[i];
            size_t n = log_take(sh);
            wrote |= n > 0;
            for (size_t done = 0; done < n;) {
                ssize_t w = corio_file_write(fd, sh->batch + done, n - done);
                if (w < 0) {
                    if (w != -ECANCELED) {
                        /* stderr is gone (EPIPE, EBADF, a full disk): stop logging */
                        atomic_store(&logq.fd, -1);
                        close(fd);
                    }
                    return NULL;
                }
                done += (size_t)w;
            }
        }
        if (wrote)
            continue;
        if (logq.closing)
            break;
        /* No shard can have been filled since the pass above without a
         * wake that comes after this clear: the writer's own loop did not
         * run meanwhile, and the other threads' wake-ups run on it. */
        corio_event_clear(&logq.wake);
        if (corio_event_wait(&logq.wake) < 0)
            break;
    }
    return NULL;
}

static void log_free_shards(void)
{
    for (unsigned i = 0; i < logq.nshards; i++) {
        free(logq.shards[i].queued);
        free(logq.shards[i].batch);
        pthread_mutex_destroy(&logq.shards[i].mu);
    }
    free(logq.shards);
    logq.shards = NULL;
    logq.nshards = 0;
}

/* Start the log writer (also with --quiet: the exit note goes through it).
 * Returns false when out of memory or fds (the server then runs without a
 * log). */
static bool log_open(void)
{
    /* two servers (HTTP and HTTPS) of opts.workers loops each, and the
     * main task's notes: a shard per thread that logs */
    unsigned n = 2 * (opts.workers ? opts.workers : 1);
    logq.shards = calloc(n, sizeof *logq.shards);
    bool ok = logq.shards != NULL;
    for (unsigned i = 0; ok && i < n; i++) {
        log_shard *sh = &logq.shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        logq.nshards = i + 1;
        /* large enough to go to mmap: pages are committed only once used */
        sh->queued = malloc(LOG_BUFFER + LOG_NOTE_MAX);
        sh->batch = malloc(LOG_BUFFER + LOG_NOTE_MAX);
        ok = sh->queued && sh->batch;
    }
    int fd = ok ? fcntl(2, F_DUPFD_CLOEXEC, 3) : -1;
    corio_event_init(&logq.wake);
    logq.log_loop = corio_loop_ref_get();
    atomic_store(&logq.fd, fd);
    logq.writer = fd >= 0 && logq.log_loop ? corio_spawn_named("access log", 0, log_writer, NULL) : NULL;
    if (!logq.writer) {
        atomic_store(&logq.fd, -1);
        if (fd >= 0)
            close(fd);
        corio_loop_ref_release(logq.log_loop);
        logq.log_loop = NULL;
        log_free_shards();
        return false;
    }
    return true;
}

/* Write out what is queued, waiting up to timeout_ms for a stalled
 * reader, then stop the writer.  Every worker has stopped by now. */
static void log_close(uint64_t timeout_ms)
{
    if (!logq.writer)
        return;
    logq.closing = true;
    corio_event_set(&logq.wake);
    corio_deadline d = corio_deadline_push(timeout_ms);
    int r = corio_task_join(logq.writer, NULL);
    corio_deadline_pop(d);
    if (r < 0) {
        corio_task_cancel(logq.writer);
        corio_task_join(logq.writer, NULL);
    }
    logq.writer = NULL;
    int fd = atomic_exchange(&logq.fd, -1);
    if (fd >= 0)
        close(fd);
    log_free_shards();
    corio_loop_ref_release(logq.log_loop);
    logq.log_loop = NULL;
}

static void access_log(answer *a)
{
    corio_http_request *req = a->req;
    char peer[64], date[40], line[8192];
    corio_http_request_peer(req, peer, sizeof peer);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    /* the target is visible ASCII; '"' and '\' are escaped so every line
     * splits the same way */
    char target[4096];
    size_t t = 0;
    for (size_t i = 0; i < req->target.len && t + 5 < sizeof target; i++) {
        char ch = req->target.ptr[i];
        if (ch == '"' || ch == '\\')
            t += (size_t)snprintf(target + t, sizeof target - t, "\\x%02x", (unsigned char)ch);
        else
            target[t++] = ch;
    }
    target[t] = 0;
    int n = snprintf(line, sizeof line, "%s - - [%s] \"%.*s %s HTTP/1.%d\" %d %llu\n", peer, date,
                     (int)(req->method.len > 32 ? 32 : req->method.len), req->method.ptr, target,
                     req->version_minor, a->status, (unsigned long long)a->bytes);
    if (n > 0)
        log_queue(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ------------------------------------------------------------------ */
/* Behind a load balancer: the health route and the SIGTERM drain       */
/* ------------------------------------------------------------------ */

/* --health PATH answers 200 "ok" while the server serves and 503
 * "draining" once SIGTERM started a drain; --drain-delay is how long the
 * server keeps serving after that, so the balancer's health checks see
 * the 503 and send new requests elsewhere before the listener closes.
 * The flag is atomic: with --workers every worker's handler reads it. */
#define DEFAULT_DRAIN_DELAY_MS 1000u /* with --health: a few 100 ms check intervals */

static struct {
    const char *path; /* --health PATH, NULL without */
    size_t path_len;
    int64_t drain_delay_ms; /* --drain-delay MS, -1 if not given */
    _Atomic bool draining;
} lb;

/* The drain delay in effect: --drain-delay, else DEFAULT_DRAIN_DELAY_MS
 * with a health route, else 0 (SIGTERM stops at once, as before). */
static uint64_t drain_delay_ms(void)
{
    if (lb.drain_delay_ms >= 0)
        return (uint64_t)lb.drain_delay_ms;
    return lb.path ? DEFAULT_DRAIN_DELAY_MS : 0;
}

/* Answer the health route, if req is for it (any method: balancers use
 * GET, HEAD or OPTIONS).  Returns true when it answered.  It wins over a
 * file of the same name. */
static bool health_answer(answer *a)
{
    corio_http_request *req = a->req;
    if (!lb.path || req->path.len != lb.path_len || memcmp(req->path.ptr, lb.path, lb.path_len) != 0)
        return false;
    corio_http_response_add_header(a->resp, "Cache-Control", "no-store");
    if (atomic_load_explicit(&lb.draining, memory_order_relaxed)) {
        reply(a, 503, "text/plain; charset=utf-8", "draining\n", 9);
    } else {
        reply(a, 200, "text/plain; charset=utf-8", "ok\n", 3);
    }
    return true;
}

/* Start a drain (called once SIGTERM arrived): from now on the health
 * route answers 503 and every response says "Connection: close" (a
 * balancer's pooled connections leave at their next answer instead of
 * being closed under it), and the server keeps serving for the drain
 * delay so the balancer notices.  A second SIGTERM, or SIGINT, ends the
 * delay early.  Returns 0 after the whole delay, the signal that cut it
 * short, or -errno from corio_signal_wait (the caller closes either way).
 * Suspends.  The caller then closes its servers with their grace.  Any
 * worker may call it: the flag is shared, and on a loop that can not
 * watch the signals (another loop of the process has them) it simply
 * waits out the delay. */
static int lb_drain(void)
{
    atomic_store_explicit(&lb.draining, true, memory_order_relaxed);
    uint64_t delay = drain_delay_ms();
    if (delay == 0 && !lb.path)
        return 0; /* a plain server: SIGTERM stops it at once, as it always did */
    char note[128];
    int n = snprintf(note, sizeof note, "corio-serve: SIGTERM: draining for %llu ms%s\n",
                     (unsigned long long)delay, lb.path ? " (health route answers 503)" : "");
    if (n > 0)
        log_queue(note, (size_t)n);
    if (delay == 0)
        return 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int r = corio_signal_wait(&set, delay);
    if (r < 0 && r != -ECANCELED && r != -CORIO_EDEADLINE)
        r = corio_sleep_ms(delay); /* the signals are another loop's (-EBUSY): just wait */
    return r;
}

/* The options of this section (an enum of their own, clear of the
 * others'). */
enum { OPT_HEALTH = 320, OPT_DRAIN_DELAY };

/* Take --health or --drain-delay.  Returns false after saying why. */
static bool lb_option(int ch, const char *arg)
{
    if (ch == OPT_HEALTH) {
        if (arg[0] != '/' || strpbrk(arg, "?# ")) {
            fprintf(stderr, "corio-serve: bad health route '%s' (a path such as /healthz)\n", arg);
            return false;
        }
        lb.path = arg;
        lb.path_len = strlen(arg);
        return true;
    }
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || *end || end == arg || v < 0 || v > 3600000) {
        fprintf(stderr, "corio-serve: bad drain delay '%s' (milliseconds, 0 to 3600000)\n", arg);
        return false;
    }
    lb.drain_delay_ms = v;
    return true;
}

static void handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    answer a = {req, resp, 0, 0};
    if (atomic_load_explicit(&lb.draining, memory_order_relaxed))
        corio_http_response_add_header(resp, "Connection", "close");
    if (!health_answer(&a))
        serve(&a);
    if (!opts.quiet)
        access_log(&a);
}

/* ------------------------------------------------------------------ */
/* main                                                                 */
/* ------------------------------------------------------------------ */

/* What corio_http_server_start_fds's error says of a passed fd. */
static const char *passed_fd_error(int r)
{
    switch (r) {
    case -EBADF:
        return "an fd is not open";
    case -ENOTSOCK:
        return "an fd is not a socket";
    case -EOPNOTSUPP:
        return "a socket is not a stream socket";
    case -EINVAL:
        return "a socket is not listening";
    default:
        return strerror(-r);
    }
}

static void *close_server(void *arg)
{
    corio_http_server_close(arg, 5000);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Workers (--workers, --pin-cpus)                                      */
/* ------------------------------------------------------------------ */

/* Every server gets the same workers: one loop per core, worker 0 being
 * this loop (the one that watches SIGINT/SIGTERM and SIGHUP and writes the
 * log).  The handler only reads opts and the files, and the log takes lines
 * from every worker (log_queue), so it runs on any of them. */
static void workers_config(corio_http_server_config *cfg)
{
    cfg->workers = opts.workers;
    cfg->pin_cpus = opts.pin_cpus;
}

/* --workers N: 1 to 1024. */
static int parse_workers(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 1024) {
        fprintf(stderr, "corio-serve: bad worker count '%s' (1 to 1024)\n", s);
        return -1;
    }
    opts.workers = (unsigned)v;
    return 0;
}

/* The default: the CPUs this process may use. */
static void workers_default(void)
{
    if (opts.workers)
        return;
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    opts.workers = n > 0 ? (unsigned)n : 1;
}

/* The "Serving ..." line of a server bound by address (the test scripts
 * read the port from it). */
static void print_serving(const char *scheme, corio_http_server *srv)
{
    unsigned port = corio_http_server_port(srv);
    const char *SCHEME = scheme[4] ? "HTTPS" : "HTTP";
    if (!*opts.bind) {
        printf("Serving %s on every interface (IPv4 and IPv6) port %u (%s://localhost:%u/) ...\n", SCHEME,
               port, scheme, port);
    } else {
        bool v6 = strchr(opts.bind, ':') != NULL;
        printf("Serving %s on %s port %u (%s://%s%s%s:%u/) ...\n", SCHEME, opts.bind, port, scheme,
               v6 ? "[" : "", opts.bind, v6 ? "]" : "", port);
    }
}

/* Bind one server on opts.bind:port (tls NULL: plain HTTP).  Returns it,
 * or NULL after saying why. */
static corio_http_server *start_one(uint16_t port, corio_tls *tls)
{
    corio_http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.server_header = "corio-serve";
    cfg.keepalive_timeout_ms = opts.keepalive_ms;
    cfg.tls = tls;
    workers_config(&cfg);
    corio_http_server *srv;
    int r = corio_http_server_start(opts.bind, port, handler, NULL, &cfg, &srv);
    if (r < 0) {
        fprintf(stderr, "corio-serve: can not listen on %s port %u: %s\n", opts.bind, port, strerror(-r));
        return NULL;
    }
    print_serving(tls ? "https" : "http", srv);
    return srv;
}

/* The certificates of --tls-cert / --tls-key, or NULL after saying why. */
static corio_tls *tls_load(void)
{
    corio_tls_options o;
    memset(&o, 0, sizeof o);
    o.certs = opts.certs;
    o.n_certs = opts.ncert_files;
    corio_tls *tls;
    int r = corio_tls_server_new(&o, &tls);
    if (r == -EOPNOTSUPP) {
        fputs("corio-serve: HTTPS is not available: this corio was built without OpenSSL\n", stderr);
        return NULL;
    }
    if (r < 0) {
        fprintf(stderr, "corio-serve: can not load the TLS certificate%s (%s, key %s%s): %s\n",
                opts.ncert_files > 1 ? "s" : "", opts.certs[0].cert_file, opts.certs[0].key_file,
                opts.ncert_files > 1 ? ", ..." : "", corio_strerror(r));
        return NULL;
    }
    return tls;
}

/* SIGHUP: reload the certificates and keys from their files, for as long
 * as the servers run (cancelled at exit).  A failure keeps the old ones. */
static void *reload_task(void *arg)
{
    corio_tls *tls = arg;
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    /* One watch for the whole run, not a corio_signal_wait per SIGHUP:
     * between two waits SIGHUP would be back to its default action, and
     * a second one sent during a reload would end the server. */
    corio_signal_watch *w = corio_signal_watch_open(&hup);
    if (!w) {
        fprintf(stderr, "corio-serve: no certificate reload on SIGHUP: %s\n", corio_strerror(-errno));
        return NULL;
    }
    for (;;) {
        int sig = corio_signal_watch_wait(w, CORIO_NO_TIMEOUT);
        if (sig < 0)
            break;
        int r = corio_tls_reload_certs(tls, opts.certs, opts.ncert_files);
        char note[PATH_MAX * 2 + 160];
        int n;
        if (r == 0)
            n = snprintf(note, sizeof note, "corio-serve: SIGHUP: reloaded %u TLS certificate%s\n",
                         opts.ncert_files, opts.ncert_files > 1 ? "s" : "");
        else
            n = snprintf(note, sizeof note,
                         "corio-serve: SIGHUP: can not reload the TLS certificates (%s, key %s%s): %s; "
                         "keeping the old ones\n",
                         opts.certs[0].cert_file, opts.certs[0].key_file, opts.ncert_files > 1 ? ", ..." : "",
                         corio_strerror(r));
        if (n > 0)
            log_queue(note, (size_t)n < sizeof note ? (size_t)n : sizeof note - 1);
    }
    corio_signal_watch_close(w);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* --handover: reloading without downtime                               */
/* ------------------------------------------------------------------ */

#define HANDOVER_TAKE_MS 30000 /* a predecessor that does not answer in this long is not waited for */
/* Sockets one handover carries at most: the kernel's SCM_MAX_FD.  With
 * --workers every worker has its own socket per address, so a 64-core
 * server serving HTTP and HTTPS on two addresses hands over 256: this is
 * the bound, not 16. */
#define HANDOVER_MAX_FDS 253

/* A server on passed sockets (socket activation or a handover; tls NULL:
 * plain HTTP).  Returns it, or NULL after saying why (the fds stay the
 * caller's). */
static corio_http_server *start_passed(const int *fds, int n, corio_tls *tls, const char *how)
{
    corio_http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.server_header = "corio-serve";
    cfg.keepalive_timeout_ms = opts.keepalive_ms;
    cfg.tls = tls;
    workers_config(&cfg);
    corio_http_server *srv;
    int r = corio_http_server_start_fds(fds, (unsigned)n, handler, NULL, &cfg, &srv);
    if (r < 0) {
        fprintf(stderr, "corio-serve: can not serve the %d socket(s) passed (%s): %s\n", n,
                strcmp(how, "socket activation") == 0 ? "LISTEN_FDS" : how, passed_fd_error(r));
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char name[128] = "?";
        if (getsockname(fds[i], (struct sockaddr *)&ss, &sl) == 0)
            corio_addr_format((struct sockaddr *)&ss, name, sizeof name);
        printf("Serving %s on %s (fd %d, %s) ...\n", tls ? "HTTPS" : "HTTP", name, fds[i], how);
    }
    return srv;
}

/* Take the listening sockets of the corio-serve running with the same
 * --handover PATH and serve them ("http" and "https", by their labels).
 * Returns 1 (serving them: *srv and *tls_srv), 0 (nobody to take over
 * from: bind as usual) or -1 after saying why (the predecessor keeps
 * serving). */
/* handover_take with its arrays (HANDOVER_MAX_FDS entries each). */
static int handover_take_into(corio_tls *tls, corio_http_server **srv, corio_http_server **tls_srv,
                              corio_listen_fd *lfds, int *plain, int *secure)
{
    corio_handover *h;
    corio_deadline d = corio_deadline_push(HANDOVER_TAKE_MS);
    int n = corio_handover_take(opts.handover, lfds, HANDOVER_MAX_FDS, &h);
    corio_deadline_pop(d);
    if (n == -ENOENT || n == -ECONNREFUSED)
        return 0;
    if (n < 0) {
        fprintf(stderr, "corio-serve: --handover %s: can not take the sockets: %s\n", opts.handover,
                corio_strerror(n));
        return -1;
    }
    int np = 0, ns = 0;
    const char *bad = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(lfds[i].name, "http") == 0)
            plain[np++] = lfds[i].fd;
        else if (strcmp(lfds[i].name, "https") == 0)
            secure[ns++] = lfds[i].fd;
        else
            bad = lfds[i].name;
    }
    if (bad)
        fprintf(stderr, "corio-serve: --handover %s: a socket labelled '%s' (not corio-serve's?)\n",
                opts.handover, bad);
    else if (ns && !tls)
        fprintf(stderr,
                "corio-serve: --handover %s: the running server serves HTTPS: give --tls-cert and "
                "--tls-key\n",
                opts.handover);
    if (bad || (ns && !tls) || (np && !(*srv = start_passed(plain, np, NULL, "taken over"))) ||
        (ns && !(*tls_srv = start_passed(secure, ns, tls, "taken over")))) {
        corio_handover_abort(h); /* the predecessor keeps serving */
        if (*srv) {
            corio_http_server_close(*srv, 0); /* closes the fds it was given */
            *srv = NULL;
            np = 0;
        }
        for (int i = 0; i < np; i++)
            close(plain[i]);
        for (int i = 0; i < ns; i++)
            close(secure[i]);
        return -1;
    }
    d = corio_deadline_push(HANDOVER_TAKE_MS);
    int r = corio_handover_ready(h);
    corio_deadline_pop(d);
    if (r < 0) /* it may have died: the sockets are ours either way */
        fprintf(stderr, "corio-serve: --handover %s: the old server did not confirm: %s\n", opts.handover,
                corio_strerror(r));
    return 1;
}

static int handover_take(corio_tls *tls, corio_http_server **srv, corio_http_server **tls_srv)
{
    /* on the heap: HANDOVER_MAX_FDS entries of 260 bytes would take a
     * quarter of a task's stack */
    corio_listen_fd *lfds = calloc(HANDOVER_MAX_FDS, sizeof *lfds);
    int *plain = calloc(HANDOVER_MAX_FDS, sizeof *plain), *secure = calloc(HANDOVER_MAX_FDS, sizeof *secure);
    if (!lfds || !plain || !secure) {
        free(lfds);
        free(plain);
        free(secure);
        fprintf(stderr, "corio-serve: --handover %s: out of memory\n", opts.handover);
        return -1;
    }
    int ret = handover_take_into(tls, srv, tls_srv, lfds, plain, secure);
    free(lfds);
    free(plain);
    free(secure);
    return ret;
}

typedef struct stopper {
    corio_event stop;
    int sig;         /* the signal that stopped us, 0 for a handover */
    pid_t successor; /* after a handover */
    corio_http_server *srv, *tls_srv;
} stopper;

static void *signal_task(void *arg)
{
    stopper *st = arg;
    int r = corio_http_server_serve_until_signal(st->srv ? st->srv : st->tls_srv);
    if (r > 0) {
        st->sig = r;
        corio_event_set(&st->stop);
    } else if (r != -ECANCELED) {
        fprintf(stderr, "corio-serve: can not watch SIGINT and SIGTERM: %s\n", corio_strerror(r));
    }
    return NULL;
}

/* Offer our listening sockets on --handover PATH until a successor takes
 * them. */
static void *handover_task(void *arg)
{
    stopper *st = arg;
    corio_listen_fd *lfds = calloc(HANDOVER_MAX_FDS, sizeof *lfds);
    int *fds = calloc(HANDOVER_MAX_FDS, sizeof *fds);
    unsigned n = 0;
    int r = lfds && fds ? 0 : -ENOMEM;
    for (int k = 0; k < 2 && r == 0; k++) {
        corio_http_server *s = k ? st->tls_srv : st->srv;
        unsigned m = s ? corio_http_server_listen_fds(s, fds, HANDOVER_MAX_FDS) : 0;
        if (m > HANDOVER_MAX_FDS - n) {
            r = -E2BIG; /* a successor could not take them all: keep serving */
            break;
        }
        for (unsigned i = 0; i < m; i++) {
            lfds[n].fd = fds[i];
            snprintf(lfds[n++].name, sizeof lfds[0].name, "%s", k ? "https" : "http");
        }
    }
    if (r == 0)
        r = n ? corio_handover_listen(opts.handover, lfds, n, &st->successor) : -ENOENT;
    free(lfds);
    free(fds);
    if (r == 0) {
        st->sig = 0;
        corio_event_set(&st->stop);
    } else if (r != -ECANCELED) {
        fprintf(stderr, "corio-serve: --handover %s: can not offer the sockets: %s (serving on)\n",
                opts.handover, corio_strerror(r));
    }
    return NULL;
}

/* Serve until SIGINT or SIGTERM or, with --handover, until a successor
 * took the sockets.  Returns the signal, 0 after a handover, or -errno. */
static int serve_until_stop(corio_http_server *srv, corio_http_server *tls_srv)
{
    if (!opts.handover)
        return corio_http_server_serve_until_signal(srv ? srv : tls_srv);
    stopper st = {.srv = srv, .tls_srv = tls_srv, .sig = -1};
    corio_event_init(&st.stop);
    corio_task *sigt = corio_spawn_named("signals", 0, signal_task, &st);
    corio_task *hot = sigt ? corio_spawn_named("handover", 0, handover_task, &st) : NULL;
    if (!hot) {
        if (sigt) {
            corio_task_cancel(sigt);
            corio_task_join(sigt, NULL);
        }
        return corio_http_server_serve_until_signal(srv ? srv : tls_srv);
    }
    int r = corio_event_wait(&st.stop);
    corio_task_cancel(sigt);
    corio_task_cancel(hot);
    corio_task_join(sigt, NULL);
    corio_task_join(hot, NULL);
    if (r < 0)
        return r;
    if (st.sig == 0) {
        char note[128];
        int k = snprintf(note, sizeof note,
                         "corio-serve: handed the sockets over to pid %ld; finishing requests in flight\n",
                         (long)st.successor);
        log_queue(note, (size_t)k);
    }
    return st.sig;
}

/* Block (at start-up, before any thread exists, so every thread inherits
 * it) or unblock (once stopping) SIGINT and SIGTERM, and SIGHUP when the
 * certificates are to be reloaded on it.  Blocked, a signal sent while the
 * server is still starting (loading certificates, binding, taking a
 * predecessor's sockets) waits, pending, for the watch that serves it,
 * which unblocks it on the loop's thread: a SIGTERM from a service manager
 * that comes early stops the server gracefully instead of killing it
 * half-started, and an early SIGHUP reloads instead of ending it.
 * Without certificates SIGHUP keeps its default action (a hang-up of the
 * terminal ends the server). */
static void stop_signals(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (how == SIG_BLOCK && opts.ncert_files)
        sigaddset(&set, SIGHUP);
    pthread_sigmask(how, &set, NULL);
}

static void *main_task(void *arg)
{
    (void)arg;
    corio_http_server *srv = NULL, *tls_srv = NULL;
    corio_tls *tls = NULL;
    void *fail = (void *)1;
    int r;
    if (opts.ncert_files && !(tls = tls_load()))
        return fail;
    int took = opts.handover && opts.nfds == 0 ? handover_take(tls, &srv, &tls_srv) : 0;
    if (took < 0)
        goto out;
    if (took) {
        /* serving the predecessor's sockets */
    } else if (opts.nfds > 0) {
        if (!(srv = start_passed(opts.fds, opts.nfds, tls, "socket activation")))
            goto out;
        if (tls) { /* labelled "https" for a successor */
            tls_srv = srv;
            srv = NULL;
        }
    } else {
        /* plain HTTP on --port unless a certificate without --tls-port
         * makes that port HTTPS */
        if ((!tls || opts.tls_port >= 0) && !(srv = start_one(opts.port, NULL)))
            goto out;
        if (tls && !(tls_srv = start_one(opts.tls_port >= 0 ? (uint16_t)opts.tls_port : opts.port, tls)))
            goto out;
    }
    fflush(stdout);
    if (!log_open())
        fputs("corio-serve: no log (out of memory or file descriptors)\n", stderr);
    corio_task *reloader = tls ? corio_spawn_named("tls reload", 0, reload_task, tls) : NULL;
    if (tls && !reloader)
        fputs("corio-serve: no certificate reload on SIGHUP (out of memory)\n", stderr);
    r = serve_until_stop(srv, tls_srv);
    if (r == SIGTERM)
        lb_drain();
    /* Stopping: from here a second SIGINT or SIGTERM ends the server at
     * once, by its default action, as before main blocked them. */
    stop_signals(SIG_UNBLOCK);
    if (r > 0) {
        /* through the log, after its lines, and never blocking the exit */
        char note[64];
        int n = snprintf(note, sizeof note, "\n%s received, exiting.\n",
                         r == SIGINT ? "Keyboard interrupt" : "Termination signal");
        log_queue(note, (size_t)n);
    }
    if (reloader) {
        corio_task_cancel(reloader);
        corio_task_join(reloader, NULL);
    }
    fail = NULL;
    if (srv && tls_srv) {
        /* both close at once: each gives requests in flight up to 5 s */
        corio_task *t = corio_spawn_named("close https", 0, close_server, tls_srv);
        if (t) {
            corio_http_server_close(srv, 5000);
            corio_task_join(t, NULL);
            srv = tls_srv = NULL;
        }
    }
    if (srv)
        corio_http_server_close(srv, 5000);
    if (tls_srv)
        corio_http_server_close(tls_srv, 5000);
    srv = tls_srv = NULL;
    log_close(2000);
out:
    if (srv)
        corio_http_server_close(srv, 5000);
    if (tls_srv)
        corio_http_server_close(tls_srv, 5000);
    corio_tls_free(tls);
    return fail;
}

enum {
    OPT_TLS_CERT = 256,
    OPT_TLS_KEY,
    OPT_TLS_PORT,
    OPT_KEEPALIVE,
    OPT_WORKERS,
    OPT_PIN_CPUS,
    OPT_HANDOVER
};

#define USAGE                                                                                                \
    "usage: corio-serve [--port N] [--bind ADDR] [--quiet] [--keepalive-timeout S]\n"                        \
    "                   [--tls-cert FILE --tls-key FILE]... [--tls-port N]\n"                                \
    "                   [--workers N] [--pin-cpus] [--health PATH] [--drain-delay MS]\n"                     \
    "                   [--handover PATH] [DIR]   (--help for more)\n"

/* A port number 0..65535, or -1. */
static int parse_port(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > 65535) {
        fprintf(stderr, "corio-serve: bad port '%s'\n", s);
        return -1;
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"quiet", no_argument, NULL, 'q'},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-port", required_argument, NULL, OPT_TLS_PORT},
        {"keepalive-timeout", required_argument, NULL, OPT_KEEPALIVE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"pin-cpus", no_argument, NULL, OPT_PIN_CPUS},
        {"health", required_argument, NULL, OPT_HEALTH},
        {"drain-delay", required_argument, NULL, OPT_DRAIN_DELAY},
        {"handover", required_argument, NULL, OPT_HANDOVER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Socket activation first, before this process opens any fd of its
     * own; the variables go, so nothing started from here sees them. */
    corio_listen_fd lfds[16];
    int nl = corio_listen_fds(lfds, 16, true);
    if (nl < 0 || nl > 16) {
        fprintf(stderr, "corio-serve: socket activation (LISTEN_FDS): %s\n",
                nl < 0 ? strerror(-nl) : "more than 16 sockets");
        return 1;
    }
    for (int i = 0; i < nl; i++)
        opts.fds[i] = lfds[i].fd;
    opts.nfds = nl;
    opts.bind = DEFAULT_BIND;
    opts.port = DEFAULT_PORT;
    opts.tls_port = -1;
    lb.drain_delay_ms = -1;
    int ch;
    while ((ch = getopt_long(argc, argv, "p:b:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p': {
            int v = parse_port(optarg);
            if (v < 0)
                return 2;
            opts.port = (uint16_t)v;
            break;
        }
        case OPT_KEEPALIVE: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 1 || v > 86400) {
                fprintf(stderr, "corio-serve: bad keep-alive time-out '%s' (seconds, 1 to 86400)\n", optarg);
                return 2;
            }
            opts.keepalive_ms = (uint32_t)v * 1000u;
            break;
        }
        case OPT_HEALTH:
        case OPT_DRAIN_DELAY:
            if (!lb_option(ch, optarg))
                return 2;
            break;
        case OPT_TLS_PORT:
            if ((opts.tls_port = parse_port(optarg)) < 0)
                return 2;
            break;
        case OPT_TLS_CERT:
        case OPT_TLS_KEY: {
            unsigned *n = ch == OPT_TLS_CERT ? &opts.ncert_files : &opts.nkey_files;
            if (*n == MAX_CERTS) {
                fprintf(stderr, "corio-serve: at most %d certificates\n", MAX_CERTS);
                return 2;
            }
            if (ch == OPT_TLS_CERT)
                opts.certs[(*n)++].cert_file = optarg;
            else
                opts.certs[(*n)++].key_file = optarg;
            break;
        }
        case OPT_WORKERS:
            if (parse_workers(optarg) < 0)
                return 2;
            break;
        case OPT_PIN_CPUS:
            opts.pin_cpus = true;
            break;
        case 'b':
            opts.bind = optarg;
            break;
        case OPT_HANDOVER:
            if (!*optarg || strcmp(optarg, "@") == 0) {
                fputs("corio-serve: --handover needs a socket path or an @name\n", stderr);
                return 2;
            }
            opts.handover = optarg;
            break;
        case 'q':
            opts.quiet = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (opts.ncert_files != opts.nkey_files) {
        fputs("corio-serve: every --tls-cert needs its --tls-key (give them in pairs)\n", stderr);
        return 2;
    }
    if (opts.tls_port >= 0 && !opts.ncert_files) {
        fputs("corio-serve: --tls-port needs --tls-cert and --tls-key\n", stderr);
        return 2;
    }
    workers_default();
    const char *dir = optind < argc ? argv[optind] : ".";
    if (!realpath(dir, opts.root)) {
        fprintf(stderr, "corio-serve: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    opts.rootfd = open(opts.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (opts.rootfd < 0) {
        fprintf(stderr, "corio-serve: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* Held from here until a watch takes them (see stop_signals). */
    stop_signals(SIG_BLOCK);
    void *res = NULL;
    int r = corio_run(NULL, main_task, NULL, &res);
    close(opts.rootfd);
    if (r < 0) {
        fprintf(stderr, "corio-serve: %s\n", strerror(-r));
        return 1;
    }
    return res ? 1 : 0;
}
