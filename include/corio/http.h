/*
 * corio/http.h — the HTTP/1.1 module: a pure request parser, and a server
 * built on it (the "Server" section at the end).
 *
 * The parser allocates nothing, knows nothing about the loop and never
 * copies: every string it returns points into the caller's buffer, so that
 * buffer must stay unchanged (and unmoved) while the results are used.  It is
 * strict per RFC 9112: anything ambiguous enough to enable request smuggling
 * or cache poisoning is rejected, with the HTTP status a server should answer
 * before closing the connection.
 *
 * Two parts:
 *  - corio_http_request_parse(): the request head (request line + header
 *    section).  It is handed the whole buffered bytes of the request each
 *    time more arrive and says "need more" / "done, the head is N bytes" /
 *    "error, answer with status S".  It keeps a small resumable state in the
 *    request struct so that the total work stays linear however the bytes
 *    are split, and its answer depends only on the bytes, never on how they
 *    were split.
 *  - corio_http_chunked_decode(): a streaming decoder for a chunked request
 *    body (sizes, extensions, trailers) that hands out the data in place.
 *
 * Errors are returned as the negated HTTP status (-400, -413, -414, -431,
 * -501, -505), not as -errno: what the caller does with them is answer that
 * status once and close the connection.
 *
 * NULL arguments follow corio.h's rule for the whole module, parser and
 * server alike: -EINVAL from functions returning a status (never a valid
 * negated HTTP status), NULL with errno EINVAL from functions returning a
 * pointer, false / 0 from queries, nothing from void functions.
 *
 * Decisions where RFC 9112 leaves a choice:
 *  - Lines end with CRLF only; a bare LF or a bare CR anywhere is a 400.
 *  - Methods are any token (case-sensitive); none is refused with 501.
 *  - HTTP/1.0 and 1.1 are served; 1.2..1.9 are parsed as 1.1 (RFC 9110
 *    section 2.5); any other major (0.9 written as "HTTP/0.9", 2.0) is 505;
 *    a version not of the form HTTP/d.d, or none (HTTP/0.9), is 400.
 *  - Content-Length: repeated fields or list members with the same value are
 *    merged (RFC 9110 section 8.6); different values, an empty member,
 *    anything but digits, or a value that does not fit in 64 bits is 400; a
 *    value above max_body is 413.
 *  - Transfer-Encoding (all fields together, empty list members ignored):
 *    with Content-Length, or in HTTP/1.0: 400; "chunked" missing, not last,
 *    or given twice (or with parameters): 400; other codings before a final
 *    "chunked" (e.g. "gzip, chunked"): 501, as we decode none of them.
 *  - Host: required once in 1.1, at most once in 1.0 (400); its value must
 *    not hold whitespace, ',', '/', '?', '#', '@' or '\'.  An absolute-form
 *    target is accepted; Host is still checked (the server should prefer the
 *    target's authority, RFC 9112 section 3.2.2).
 *  - The request-target is visible ASCII only, no '#' (400); "*" only with
 *    OPTIONS, authority-form only with CONNECT.
 *  - A head that does not end within max_head bytes is judged on its first
 *    max_head bytes: a broken request line gives its own status, a request
 *    line that never ends inside the target 414, otherwise 431.
 */
#ifndef CORIO_HTTP_H
#define CORIO_HTTP_H

#include "corio.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A byte string inside the caller's buffer (not NUL-terminated). */
typedef struct corio_http_str {
    const char *ptr;
    size_t len;
} corio_http_str;

typedef struct corio_http_header {
    corio_http_str name;  /* a token, as sent (case preserved) */
    corio_http_str value; /* leading and trailing whitespace removed */
} corio_http_header;

/* Limits; a zero field means "the default" given next to it. */
typedef struct corio_http_limits {
    size_t max_head;      /* request line + headers + blank line, bytes: 8192 -> 431 */
    size_t max_target;    /* request-target, bytes: 4096 -> 414 */
    unsigned max_headers; /* header fields: 100 (and never more than the caller's array) -> 431 */
    uint64_t max_body;    /* Content-Length: 1 MiB -> 413 (the chunked decoder has its own bound) */
} corio_http_limits;

#define CORIO_HTTP_DEFAULT_MAX_HEAD 8192
#define CORIO_HTTP_DEFAULT_MAX_TARGET 4096
#define CORIO_HTTP_DEFAULT_MAX_HEADERS 100
#define CORIO_HTTP_DEFAULT_MAX_BODY (1024 * 1024)

/* One request head.  Set up with corio_http_request_init(); the public
 * fields are valid only after corio_http_request_parse() returned > 0. */
typedef struct corio_http_request {
    corio_http_str method;      /* a token; any token is accepted (case-sensitive, e.g. "GET") */
    corio_http_str target;      /* the request-target exactly as sent */
    corio_http_str path;        /* origin-form: target up to '?'; absolute-form: the path part
                                   ("" when the URI has none, meaning "/"); "*" or the authority
                                   for asterisk- and authority-form */
    corio_http_str query;       /* after the first '?' (without it); empty when there is none */
    corio_http_str host;        /* the Host field value (empty if 1.0 sent none) */
    int version_minor;          /* 0 or 1 (HTTP/1.2..1.9 are served as 1.1) */
    corio_http_header *headers; /* the caller's array, headers[0..nheaders) */
    unsigned nheaders;
    uint64_t content_length; /* 0 when there is no body */
    bool has_content_length;
    bool chunked;         /* body is Transfer-Encoding: chunked (then content_length is 0) */
    bool keep_alive;      /* 1.1 unless "Connection: close"; 1.0 only with "keep-alive" */
    bool expect_continue; /* "Expect: 100-continue" on a 1.1 request */

    /* private: the resumable scan state */
    unsigned cap_headers_;
    size_t scan_pos_, line_start_, head_start_;
} corio_http_request;

/* Prepare req for a new request, with headers[0..cap) as header storage.
 * The caller owns the array; it must outlive the results.  Call it again
 * before parsing the next (e.g. pipelined) request. */
CORIO_API void corio_http_request_init(corio_http_request *req, corio_http_header *headers, unsigned cap);

/* Parse the head of the request that starts at buf[0], as far as it has arrived.
 * buf[0..len) are all bytes received for it so far (the same bytes as in
 * earlier calls, plus more; the buffer may have moved between calls, the
 * state is offsets).  lim may be NULL (defaults) and must be the same in
 * every call for one request.  Empty lines (CRLF) before the request line
 * are skipped, as RFC 9112 section 2.2 allows, and count as head bytes.
 * Returns:
 *   > 0   the head is complete and valid: it is that many bytes (the body,
 *         or the next pipelined request, starts right after); req is filled.
 *   0     need more bytes (only while fewer than max_head have been given).
 *   < 0   the request is invalid: the negated status to answer, then close
 *         (-400, -413, -414, -431, -501, -505).  The result is final: more
 *         bytes would not change it.
 * Never allocates, never blocks, never reads beyond buf[len). */
CORIO_API ssize_t corio_http_request_parse(corio_http_request *req, const char *buf, size_t len,
                                           const corio_http_limits *lim);

/* The value of the first header named name, or NULL when there is none.
 * Names compare ASCII case-insensitively.  *len (if len is not NULL)
 * gets the value's length.
 * The pointer is into the parsed buffer, not NUL-terminated.  Not found
 * leaves errno alone (misuse sets EINVAL). */
CORIO_API const char *corio_http_request_header(const corio_http_request *req, const char *name, size_t *len);

/* The reason phrase for a status code, e.g. "Bad Request" for 400.
 * "Unknown" for codes it does not know.  Static string. */
CORIO_API const char *corio_http_reason(int status);

/* ---- chunked body decoding ---- */

/* The decoder's state; opaque apart from corio_http_chunked_done(). */
typedef struct corio_http_chunked {
    int state_;
    unsigned line_;  /* bytes of the current size line / trailer section */
    uint64_t size_;  /* the chunk size being read, then what is left of it */
    uint64_t total_; /* data bytes so far */
    uint64_t max_body_;
} corio_http_chunked;

/* Start decoding a chunked body of at most max_body data bytes.
 * 0 means the default CORIO_HTTP_DEFAULT_MAX_BODY; UINT64_MAX, unbounded. */
CORIO_API void corio_http_chunked_init(corio_http_chunked *c, uint64_t max_body);

/* Decode the next body bytes buf[0..len), up to the first run of chunk data.
 * Unlike the head parser this one streams: pass only the bytes that follow
 * those given before.  It stops
 * after the first run of chunk data it meets: *data and *data_len (both
 * required) then point at that data inside buf, else they are NULL/0.
 * A return of len with no data and not done means "need more bytes".
 * Returns the number of bytes of buf used (framing and data; call again with
 * the rest), or a negated status: -400 for a malformed or overflowing size
 * (more than 64 bits; any 64-bit value parses, then meets max_body), a bad
 * extension (RFC 9112 grammar: token, "=" token or quoted
 * string), missing CRLF after the data (data longer than its size),
 * bad trailer field; -413 when the data exceed max_body; -431 when the
 * trailer section exceeds 8 KiB.  Size lines are limited to 4 KiB (-400).
 * Trailer fields are checked and dropped.  Once the body is complete
 * (corio_http_chunked_done()), nothing more is used: bytes after it belong
 * to the next request.  After an error, the decoder stays failed. */
CORIO_API ssize_t corio_http_chunked_decode(corio_http_chunked *c, const char *buf, size_t len,
                                            const char **data, size_t *data_len);

/* True once the last chunk, the trailers and the final CRLF were decoded. */
CORIO_API bool corio_http_chunked_done(const corio_http_chunked *c);

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/*
 * An HTTP/1.1 server on corio's loop.  Every busy connection runs in its
 * own task (an idle keep-alive connection holds no task and no buffer
 * until its next request arrives); that task reads requests, parses every request already buffered and
 * runs the handler for each in turn, in order, on its own stack (so the
 * handler may suspend: read the body, sleep, talk to other servers).  The
 * responses of one batch of pipelined requests are collected and written
 * together once the batch is done (or whenever the connection would wait
 * for more bytes), so a client pipelining 16 requests gets them in one
 * write.
 *
 * After a request the server can not parse it answers once with the
 * parser's status (400, 413, 414, 431, 501, 505; "Connection: close") and
 * closes: nothing after a bad request is read as a request.  A body the
 * handler left unread is read and dropped up to max_drain bytes, beyond
 * that the connection is closed after the response.
 *
 * Timeouts:
 *  - head_timeout_ms: a deadline for the whole request head, counted from
 *    its first byte (a client trickling one byte at a time is closed at
 *    the deadline, with a 408 answer);
 *  - body_timeout_ms: each wait for body bytes (progress, not the whole);
 *  - write_timeout_ms: each wait for the client to take response bytes;
 *  - keepalive_timeout_ms: how long a connection may sit idle between
 *    requests.
 * When max_connections connections are open the server stops accepting
 * until one closes (the kernel's backlog holds the rest).
 */

typedef struct corio_http_server corio_http_server;

/* A response being built by a handler; owned by the server. */
typedef struct corio_http_response corio_http_response;

/* The request handler: runs in the connection's task, may suspend.  req
 * (and every string in it) and resp are valid until it returns.  If it
 * returns without answering, the server answers 500.  If it started a
 * chunked response and did not end it, the connection is closed (the
 * client sees a truncated body rather than a complete-looking one). */
typedef void (*corio_http_handler)(corio_http_request *req, corio_http_response *resp, void *arg);

/* Server settings; a zero field means the default given next to it. */
typedef struct corio_http_server_config {
    corio_http_limits limits;      /* head / target / header count / body size (see above) */
    unsigned max_connections;      /* open connections: 10000; accepting pauses at the cap */
    uint32_t head_timeout_ms;      /* whole request head, from its first byte: 10000 */
    uint32_t body_timeout_ms;      /* each wait for body bytes: 30000 */
    uint32_t write_timeout_ms;     /* each wait for the client to take our bytes: 30000 */
    uint32_t keepalive_timeout_ms; /* idle between requests: 15000 */
    size_t max_drain;              /* unread body bytes dropped to keep the connection: 65536 */
    int backlog;                   /* listen(2): 4096 */
    size_t stack_size;             /* task stacks: the loop's default; above SIZE_MAX / 128: -EINVAL */
    const char *server_header;     /* Server header value: "corio" ("" omits the header) */
    /* HTTPS: a server TLS configuration (corio_tls_server_new), or NULL
     * for plain HTTP.  Each connection's task runs the TLS handshake first,
     * within head_timeout_ms and the config's handshake_timeout_ms,
     * whichever ends first (a client stalling mid-handshake is closed at
     * that deadline); then requests are read and answered exactly as over
     * plain HTTP, every byte through TLS.  A client that sends plain HTTP
     * to this port gets a plain-text 400 ("The plain HTTP request was sent
     * to HTTPS port", as nginx answers) and is closed; any other byte
     * stream that is not TLS is closed at once.  Idle keep-alive TLS
     * connections give OpenSSL's buffers back while they wait.  The
     * server takes its own reference on tls (free yours when you like);
     * corio_tls_reload_certs on it changes the certificate of new
     * handshakes without dropping any connection.  Start fails with
     * -EINVAL for a client configuration, -EOPNOTSUPP in a corio built
     * without TLS. */
    corio_tls *tls;
    /* Worker loops, one per core: 0 or 1 = this loop alone.  N > 1:
     * corio_http_server_start also starts N - 1 loops on threads of their
     * own; every worker (this loop is worker 0) binds its own listening
     * sockets on the same address and port with SO_REUSEPORT, so the
     * kernel spreads connections over the workers, and serves them with
     * the same handler, arg and config, so handler and arg must be
     * thread-safe (the handler runs on whichever worker took the
     * connection; corio_worker_index() tells which).  Start is all or
     * nothing.  corio_http_server_connections counts every worker's
     * connections; corio_http_server_close closes every worker's server
     * with the same grace and joins the threads.  A worker whose loop fails
     * is reported on stderr ("corio: HTTP worker I of N failed: TEXT") and
     * the others keep serving.  With corio_http_server_start_fds, the fds
     * are dealt out round robin (up to 16 per worker, so a successor can
     * serve every socket corio_http_server_listen_fds gives), and workers
     * above n are not started;
     * corio_http_server_new with workers > 1 is -EINVAL.  Above 1024:
     * -EINVAL.  Under the sim backend (corio/sim.h), which runs on one
     * thread: -EOPNOTSUPP. */
    unsigned workers;
    bool pin_cpus; /* with workers > 1: pin worker i to the i-th CPU the process may use */
} corio_http_server_config;

/* Bind and listen on host:port and run handler(req, resp, arg) for every request.
 * Binds as corio_server_start does: host NULL or
 * "" is every interface, IPv4 and IPv6, through one dual-stack socket
 * (IPv4 only on a machine without IPv6); "0.0.0.0" is every IPv4
 * interface only and "::" every IPv6 one only; any other host is resolved
 * (without blocking the loop) and every address it gives is bound
 * ("localhost": 127.0.0.1 and ::1 where the resolver lists both; an
 * address the machine can not bind is skipped if another one works), all
 * on the same port; port 0 picks a free one, shared by all.  Each
 * listening socket has its own accept task; max_connections counts the
 * connections of all of them.  The config is copied (server_header must
 * stay valid).  Suspends (name resolution).  Returns 0 and *out, or
 * -errno (-EADDRINUSE, -EACCES, -ENOENT for an unknown host, -ENOMEM,
 * ...).  cfg may be NULL. */
CORIO_API int corio_http_server_start(const char *host, uint16_t port, corio_http_handler handler, void *arg,
                                      const corio_http_server_config *cfg, corio_http_server **out);

/* Serve already listening stream sockets: corio_http_server_start without the bind.
 * For socket activation (corio_listen_fds in corio.h) or sockets the
 * caller opened.  fds[0..n) are checked and prepared as
 * corio_server_start_fds does (same errors: -EBADF, -ENOTSOCK,
 * -EOPNOTSUPP, -EINVAL for a socket that is not listening or an fd listed
 * twice, -E2BIG above 16), and on success the server owns them (made
 * non-blocking and close-on-exec; corio_http_server_close closes them);
 * on any error none is changed and all stay the caller's.  cfg->backlog
 * does not apply (the sockets already listen).  corio_http_server_port
 * gives the first socket's port (0 for a Unix socket).  Must run in a
 * task; does not suspend.  Returns 0 and *out, or -errno; -EPERM outside
 * a task.  cfg may be NULL. */
CORIO_API int corio_http_server_start_fds(const int *fds, unsigned n, corio_http_handler handler, void *arg,
                                          const corio_http_server_config *cfg, corio_http_server **out);

/* Make a server with no listener, fed only through corio_http_server_serve_fd.
 * Its connections come from the caller: a socket accepted elsewhere, one
 * end of a socketpair, an inherited fd.  Same handler, arg and cfg as
 * corio_http_server_start; corio_http_server_port gives 0.  Must run in a
 * task.  Does not suspend.  Returns 0 and *out, -EINVAL, -ENOMEM, or
 * -EPERM outside a task.  Closed (and freed) by corio_http_server_close. */
CORIO_API int corio_http_server_new(corio_http_handler handler, void *arg,
                                    const corio_http_server_config *cfg, corio_http_server **out);

/* Serve one already-connected stream socket fd like an accepted connection.
 * It counts in corio_http_server_connections and
 * max_connections, gets every timeout, and is closed by
 * corio_http_server_close.  fd is made non-blocking.  Works on any server
 * (listening or not).  Must run in a task; does not suspend (the
 * connection's own task starts at the loop's next turn).  Returns 0: fd is
 * the server's from now on (it closes it); or an error, fd staying the
 * caller's: -EAGAIN at max_connections, -ESHUTDOWN once the server is
 * closing, -EBADF, -ENOMEM, -EPERM outside a task. */
CORIO_API int corio_http_server_serve_fd(corio_http_server *srv, int fd);

/* The bound port, the same for every listening socket (useful after port 0).
 * 0 for a server made by corio_http_server_new. */
CORIO_API uint16_t corio_http_server_port(const corio_http_server *srv);

/* The number of connections open right now. */
CORIO_API unsigned corio_http_server_connections(const corio_http_server *srv);

/* Copy the server's listening sockets (every worker's) into fds, for a successor process.
 * Returns how many it has (which may exceed cap; only cap are written), 0
 * for a server made by corio_http_server_new.  The fds stay the server's:
 * pass them on (SCM_RIGHTS duplicates them) before corio_http_server_close
 * closes its own copies.  Does not suspend. */
CORIO_API unsigned corio_http_server_listen_fds(const corio_http_server *srv, int *fds, unsigned cap);

/* Wait for SIGINT or SIGTERM while the loop keeps serving.
 * corio_signal_wait on the two: while it waits, corio's handler is their
 * disposition, and the previous dispositions are back before it returns
 * (unless another watch or handler of the loop still uses them).  Several
 * tasks of one loop may wait at once; each receives the signal.  Suspends.
 * Returns the signal number, -ECANCELED / -CORIO_EDEADLINE if the task was
 * interrupted, or -errno (-EBUSY if another loop is using SIGINT or
 * SIGTERM, -EPERM outside a task).  srv is not used (it may be NULL). */
CORIO_API int corio_http_server_serve_until_signal(corio_http_server *srv);

/* Stop accepting, let requests in flight finish for up to grace_ms, free srv.
 * Every listening socket is closed by the time it returns and idle
 * keep-alive connections are closed at once; requests in flight may finish
 * (their responses say "Connection: close") for up to grace_ms, and so may
 * fresh connections (accepted, no request yet, including one whose accept
 * completed as the close began): their first request is answered, since
 * their client would not retry it as it retries on a keep-alive connection
 * closed under it; then what is left is cancelled and awaited.  Frees srv.  May be called from one of
 * srv's handlers (a "shutdown" request), as corio_server_close may: that
 * handler's connection is then neither waited for nor cancelled; it
 * answers (with "Connection: close") once the handler returns, and srv is
 * freed when it is done, so srv must not be used after the call either
 * way.  Call it once per server.  Suspends.  Returns 0, or
 * -ECANCELED / -CORIO_EDEADLINE if the calling task was interrupted (the
 * connections are cancelled and awaited all the same). */
CORIO_API int corio_http_server_close(corio_http_server *srv, uint64_t grace_ms);

/* -- request body (only for a request given to a handler) -- */

/* Read up to n bytes of the body (Content-Length or chunked, decoded).
 * The first read of a request that sent "Expect: 100-continue" answers
 * "100 Continue" first.  Suspends while no body bytes are buffered.
 * Returns bytes (> 0), 0 at the end of the body (at once for a request
 * without one), or -errno: -EBADMSG for a malformed chunked body, -EFBIG
 * beyond the limit on the body size, -CORIO_EINCOMPLETE if the client
 * closed before the end, -CORIO_EDEADLINE (body_timeout_ms or the task's
 * deadline), -ECANCELED, -ECONNRESET.  After an error the connection is
 * closed once the handler returns (the server answers 400 / 413 itself if
 * the handler does not answer). */
CORIO_API ssize_t corio_http_request_read(corio_http_request *req, void *buf, size_t n);

/* Read the whole (rest of the) body into memory owned by the request.
 * The memory is valid until the handler returns (NUL-terminated for
 * convenience, the terminator not counted).  Returns 0 with *ptr and *len, -EFBIG if the
 * body is longer than cap, or an error as corio_http_request_read.  Suspends. */
CORIO_API int corio_http_request_read_body(corio_http_request *req, size_t cap, const char **ptr,
                                           size_t *len);

/* -- response -- */

/* Add a header field to the response about to be sent.
 * Call it before corio_http_response_send / corio_http_response_begin.  name and value are
 * copied; they must not contain CR or LF (-EINVAL).  "Connection: close"
 * makes the server close after this response.  Content-Length,
 * Transfer-Encoding, Date and Server are the server's (-EINVAL).  Does not
 * suspend.  Returns 0, -EINVAL, -EALREADY once the head was sent, -ENOMEM. */
CORIO_API int corio_http_response_add_header(corio_http_response *resp, const char *name, const char *value);

/* Answer the request with status and the body body[0..len).
 * The head holds the status, a Content-Type (NULL: none), the added
 * headers, Content-Length: len, Date and Server; the body is sent except
 * for HEAD and for 1xx / 204 / 304.  The bytes join the batch's output (the data
 * is copied, or sent directly when it is large); they are flushed when the
 * batch is done.  Suspends only while earlier output is being flushed.
 * Returns 0, -EALREADY if this request was already answered, -EINVAL for a
 * status outside 200..999 (1xx interim answers are the server's), or a write
 * error (-EPIPE, -ECONNRESET, -CORIO_EDEADLINE, -ECANCELED). */
CORIO_API int corio_http_response_send(corio_http_response *resp, int status, const char *content_type,
                                       const void *body, size_t len);

/* Start a streamed response, whose body follows in chunks.
 * The head says "Transfer-Encoding: chunked" (HTTP/1.0 clients get a body
 * delimited by closing the connection instead).  Then call
 * corio_http_response_write any number of times and
 * corio_http_response_end once.  For HEAD only the head is sent.  Returns
 * as corio_http_response_send. */
CORIO_API int corio_http_response_begin(corio_http_response *resp, int status, const char *content_type);

/* Send one chunk of a streamed response.
 * len 0 is a no-op.  Data is copied into the output
 * buffer; once it holds more than 64 KiB the call suspends to flush it
 * (so a handler producing much data is paced by the client).  Returns 0,
 * -EINVAL before begin or after end, or a write error. */
CORIO_API int corio_http_response_write(corio_http_response *resp, const void *data, size_t len);

/* End a streamed response (the last chunk).
 * Returns 0 or as corio_http_response_write. */
CORIO_API int corio_http_response_end(corio_http_response *resp);

/* Answer with len bytes of the file fd from offset off as the body.
 * Otherwise like corio_http_response_send: the head (and any earlier pipelined answers)
 * is flushed first, then the bytes go from the page cache to the socket
 * with sendfile(2), without passing through user memory.  On an HTTPS
 * connection (the server's cfg.tls) the file is read in 256 KiB pieces
 * instead (corio_file_pread: never blocking the loop) and sent through TLS
 * in full 16 KiB records.  fd stays the
 * caller's (it is not closed) and must be a regular file opened for
 * reading.  If the file ends before off + len the connection is closed
 * after what was sent (the client sees a short body, never a wrong one).
 * Reading the file may block the loop on a cold disk, as with nginx's
 * default sendfile.  Suspends while the client does not take the bytes
 * (each wait bounded by write_timeout_ms).  Returns 0, -EALREADY,
 * -EINVAL (status as corio_http_response_send, off < 0), -ENOMEM (HTTPS:
 * no buffer; nothing was sent, the handler may still answer), a read
 * error of the file, or a write error. */
CORIO_API int corio_http_response_send_file(corio_http_response *resp, int status, const char *content_type,
                                            int fd, int64_t off, uint64_t len);

/* The client's address as text ("127.0.0.1", "::1"; "-" when unknown).
 * Written into buf[0..n), NUL-terminated (truncated to fit); "-" also when
 * req is NULL.  For access logs.  Does not suspend. */
CORIO_API void corio_http_request_peer(const corio_http_request *req, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
