/*
 * corio/http.h — the HTTP/1.1 module.  For now: the pure request parser.
 *
 * The parser allocates nothing, knows nothing about the loop and never
 * copies: every string it returns points into the caller's buffer, so that
 * buffer must stay unchanged (and unmoved) while the results are used.  It is
 * strict per RFC 9112: anything ambiguous enough to enable request smuggling
 * or cache poisoning is rejected, with the HTTP status a server should answer
 * before closing the connection.
 *
 * Two parts:
 *  - corio_http_parse_request(): the request head (request line + header
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
 * fields are valid only after corio_http_parse_request() returned > 0. */
typedef struct corio_http_request {
    corio_http_str method;  /* a token; any token is accepted (case-sensitive, e.g. "GET") */
    corio_http_str target;  /* the request-target exactly as sent */
    corio_http_str path;    /* origin-form: target up to '?'; absolute-form: the path part
                               ("" when the URI has none, meaning "/"); "*" or the authority
                               for asterisk- and authority-form */
    corio_http_str query;   /* after the first '?' (without it); empty when there is none */
    corio_http_str host;    /* the Host field value (empty if 1.0 sent none) */
    int version_minor;      /* 0 or 1 (HTTP/1.2..1.9 are served as 1.1) */
    corio_http_header *headers; /* the caller's array, headers[0..nheaders) */
    unsigned nheaders;
    uint64_t content_length; /* 0 when there is no body */
    bool has_content_length;
    bool chunked;            /* body is Transfer-Encoding: chunked (then content_length is 0) */
    bool keep_alive;         /* 1.1 unless "Connection: close"; 1.0 only with "keep-alive" */
    bool expect_continue;    /* "Expect: 100-continue" on a 1.1 request */

    /* private: the resumable scan state */
    unsigned cap_headers_;
    size_t scan_pos_, line_start_, head_start_;
} corio_http_request;

/* Prepare req for a new request, with headers[0..cap) as storage for the
 * header fields (the caller owns the array; it must outlive the results).
 * Call it again before parsing the next (e.g. pipelined) request. */
CORIO_API void corio_http_request_init(corio_http_request *req, corio_http_header *headers, unsigned cap);

/* Parse the head of the request that starts at buf[0]; buf[0..len) are all
 * bytes received for it so far (the same bytes as in earlier calls, plus
 * more; the buffer may have moved between calls, the state is offsets).
 * lim may be NULL (defaults) and must be the same in every call for one
 * request.  Empty lines (CRLF) before the request
 * line are skipped, as RFC 9112 section 2.2 allows, and count as head bytes.
 * Returns:
 *   > 0   the head is complete and valid: it is that many bytes (the body,
 *         or the next pipelined request, starts right after); req is filled.
 *   0     need more bytes (only while fewer than max_head have been given).
 *   < 0   the request is invalid: the negated status to answer, then close
 *         (-400, -413, -414, -431, -501, -505).  The result is final: more
 *         bytes would not change it.
 * Never allocates, never blocks, never reads beyond buf[len). */
CORIO_API ssize_t corio_http_parse_request(corio_http_request *req, const char *buf, size_t len,
                                           const corio_http_limits *lim);

/* The value of the first header named name (ASCII case-insensitive), or NULL
 * when there is none.  *len (if len is not NULL) gets the value's length.
 * The pointer is into the parsed buffer, not NUL-terminated. */
CORIO_API const char *corio_http_header_get(const corio_http_request *req, const char *name, size_t *len);

/* The reason phrase for a status code ("Bad Request"); "Unknown" for codes it
 * does not know.  Static string. */
CORIO_API const char *corio_http_reason(int status);

/* ---- chunked body decoding ---- */

/* The decoder's state; opaque apart from corio_http_chunked_done(). */
typedef struct corio_http_chunked {
    int state_;
    unsigned line_;       /* bytes of the current size line / trailer section */
    uint64_t size_;       /* the chunk size being read, then what is left of it */
    uint64_t total_;      /* data bytes so far */
    uint64_t max_body_;
} corio_http_chunked;

/* Start decoding a chunked body of at most max_body data bytes (0: the
 * default CORIO_HTTP_DEFAULT_MAX_BODY; UINT64_MAX: unbounded). */
CORIO_API void corio_http_chunked_init(corio_http_chunked *c, uint64_t max_body);

/* Decode the body bytes buf[0..len) that follow those given before (unlike
 * the head parser this one streams: pass only the new bytes).  It stops
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
CORIO_API ssize_t corio_http_chunked_decode(corio_http_chunked *c, const char *buf, size_t len, const char **data,
                                            size_t *data_len);

/* True once the last chunk, the trailers and the final CRLF were decoded. */
CORIO_API bool corio_http_chunked_done(const corio_http_chunked *c);

#ifdef __cplusplus
}
#endif

#endif
