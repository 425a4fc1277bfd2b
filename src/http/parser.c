/*
 * The HTTP/1.1 request parser (include/corio/http.h): request head and
 * chunked body, strict per RFC 9112, without allocation and without copying.
 *
 * The head parser works in two phases so that its verdict depends only on
 * the bytes and never on how they were split across reads.  Phase one looks
 * for the blank line ending the head, within the first max_head bytes only,
 * remembering in the request struct how far it got so that feeding a head
 * one byte at a time stays linear.  Phase two runs once, on the complete
 * head, and validates everything; the first rule broken in byte order
 * decides the status.  A head that does not end within max_head bytes is
 * judged by its first max_head bytes alone (request line rules, then 431),
 * which again is the same whatever the split.
 *
 * The chunked decoder streams instead: a body is not kept in one buffer, so
 * it is a byte-level state machine whose state survives between calls.
 */
#include "corio/http.h"

#include <errno.h>
#include <string.h>

/* tchar (RFC 9110 section 5.6.2): the characters of a token. */
static const unsigned char tchar[256] = {
    ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1,
    ['%'] = 1,         ['&'] = 1,         ['\''] = 1,        ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1,         ['^'] = 1,         ['_'] = 1,         ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static inline bool is_tchar(unsigned char c) { return tchar[c]; }
static inline bool is_ows(unsigned char c) { return c == ' ' || c == '\t'; }
/* field-vchar / SP / HTAB / obs-text: what a field value (and a quoted
 * string's content, minus '"' and '\\') may hold.  CR, LF, NUL, other
 * controls and DEL are out. */
static inline bool is_field_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static bool ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)lit[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}

static corio_http_str mkstr(const char *p, size_t n) { return (corio_http_str){p, n}; }

typedef struct limits {
    size_t max_head, max_target;
    unsigned max_headers;
    uint64_t max_body;
} limits;

static limits get_limits(const corio_http_limits *l, unsigned cap)
{
    limits r = {CORIO_HTTP_DEFAULT_MAX_HEAD, CORIO_HTTP_DEFAULT_MAX_TARGET, CORIO_HTTP_DEFAULT_MAX_HEADERS,
                CORIO_HTTP_DEFAULT_MAX_BODY};
    if (l) {
        if (l->max_head)
            r.max_head = l->max_head;
        if (l->max_target)
            r.max_target = l->max_target;
        if (l->max_headers)
            r.max_headers = l->max_headers;
        if (l->max_body)
            r.max_body = l->max_body;
    }
    if (r.max_headers > cap)
        r.max_headers = cap;
    return r;
}

void corio_http_request_init(corio_http_request *req, corio_http_header *headers, unsigned cap)
{
    if (!req)
        return;
    memset(req, 0, sizeof *req);
    req->headers = headers;
    req->cap_headers_ = headers ? cap : 0;
}

/* Split the request-target into path and query per its form (RFC 9112
 * section 3.2).  Returns 0 or -400. */
static int split_target(corio_http_request *req)
{
    const char *t = req->target.ptr;
    size_t n = req->target.len;
    if (memchr(t, '#', n)) /* a fragment is never part of a request-target */
        return -400;
    const char *q = memchr(t, '?', n);
    size_t upto = q ? (size_t)(q - t) : n;
    req->query = q ? mkstr(q + 1, n - upto - 1) : mkstr(t + n, 0);
    if (t[0] == '/') { /* origin-form */
        req->path = mkstr(t, upto);
        return 0;
    }
    bool connect = req->method.len == 7 && memcmp(req->method.ptr, "CONNECT", 7) == 0;
    if (n == 1 && t[0] == '*') { /* asterisk-form: only for a server-wide OPTIONS */
        if (!(req->method.len == 7 && memcmp(req->method.ptr, "OPTIONS", 7) == 0))
            return -400;
        req->path = req->target;
        return 0;
    }
    if (connect) { /* authority-form: host:port, no path, no query */
        if (q || memchr(t, '/', n))
            return -400;
        req->path = req->target;
        return 0;
    }
    /* absolute-form: scheme "://" authority path-abempty ["?" query] */
    size_t i = 0;
    if (!((t[0] | 32) >= 'a' && (t[0] | 32) <= 'z'))
        return -400;
    while (i < upto && (((t[i] | 32) >= 'a' && (t[i] | 32) <= 'z') || (t[i] >= '0' && t[i] <= '9') ||
                        t[i] == '+' || t[i] == '-' || t[i] == '.'))
        i++;
    if (upto - i < 3 || memcmp(t + i, "://", 3) != 0 || upto - i == 3)
        return -400;
    i += 3;
    const char *slash = memchr(t + i, '/', upto - i);
    req->path = slash ? mkstr(slash, upto - (size_t)(slash - t)) : mkstr(t + upto, 0);
    return 0;
}

/* The request line buf[s..lf) (lf: index of its LF).  Returns 0 or -status. */
static int parse_request_line(corio_http_request *req, const char *buf, size_t s, size_t lf, const limits *L)
{
    if (lf == s || buf[lf - 1] != '\r')
        return -400; /* a bare LF ends the line: not accepted */
    size_t le = lf - 1, i = s;
    while (i < le && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == s || i == le || buf[i] != ' ')
        return -400;
    req->method = mkstr(buf + s, i - s);
    size_t t0 = ++i;
    while (i < le && buf[i] != ' ')
        i++;
    if (i == le)
        return -400; /* no version: HTTP/0.9 is not served */
    if (i == t0)
        return -400;
    if (i - t0 > L->max_target)
        return -414;
    for (size_t k = t0; k < i; k++)
        if ((unsigned char)buf[k] <= 0x20 || (unsigned char)buf[k] >= 0x7f)
            return -400;
    req->target = mkstr(buf + t0, i - t0);
    i++;
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive, nothing after. */
    if (le - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 || buf[i + 6] != '.' || buf[i + 5] < '0' ||
        buf[i + 5] > '9' || buf[i + 7] < '0' || buf[i + 7] > '9')
        return -400;
    if (buf[i + 5] != '1')
        return -505;
    /* RFC 9110 section 2.5: a 1.x with a higher minor is answered as the
     * highest 1.x we implement. */
    req->version_minor = buf[i + 7] == '0' ? 0 : 1;
    return split_target(req);
}

/* The head did not end within max_head bytes: judge buf[s..e) alone. */
static int too_large(corio_http_request *req, const char *buf, size_t s, size_t e, const limits *L)
{
    const char *lf = memchr(buf + s, '\n', e - s);
    if (lf) {
        int r = parse_request_line(req, buf, s, (size_t)(lf - buf), L);
        return r < 0 ? r : -431;
    }
    /* The request line itself is too long: blame the target if that is
     * where it went on. */
    const char *sp = memchr(buf + s, ' ', e - s);
    if (sp && !memchr(sp + 1, ' ', (size_t)(buf + e - (sp + 1))))
        return -414;
    return -400;
}

typedef struct head_state {
    unsigned hosts, te_fields;
    bool cl_seen, close, ka, te_chunked, te_not_last, te_unknown;
} head_state;

/* Content-Length: 1*DIGIT, or a list of identical such values (RFC 9110
 * section 8.6 lets a recipient merge those).  Returns 0 or -400. */
static int content_length(corio_http_request *req, head_state *h, const char *v, size_t n)
{
    size_t i = 0;
    for (;;) {
        while (i < n && is_ows((unsigned char)v[i]))
            i++;
        size_t d = i;
        uint64_t x = 0;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            unsigned digit = (unsigned)(v[i] - '0');
            if (x > (UINT64_MAX - digit) / 10)
                return -400; /* not representable: malformed */
            x = x * 10 + digit;
            i++;
        }
        if (i == d)
            return -400;
        if (h->cl_seen && x != req->content_length)
            return -400;
        h->cl_seen = true;
        req->content_length = x;
        while (i < n && is_ows((unsigned char)v[i]))
            i++;
        if (i == n)
            return 0;
        if (v[i] != ',')
            return -400;
        i++;
    }
}

/* Call fn on each non-empty element of a comma-separated list value. */
static void each_element(const char *v, size_t n, void (*fn)(head_state *, const char *, size_t),
                         head_state *h)
{
    size_t i = 0;
    while (i <= n) {
        const char *c = memchr(v + i, ',', n - i);
        size_t e = c ? (size_t)(c - v) : n, a = i, b = e;
        while (a < b && is_ows((unsigned char)v[a]))
            a++;
        while (b > a && is_ows((unsigned char)v[b - 1]))
            b--;
        if (b > a)
            fn(h, v + a, b - a);
        i = e + 1;
    }
}

static void te_element(head_state *h, const char *e, size_t n)
{
    if (h->te_chunked)
        h->te_not_last = true; /* chunked must be the final coding, applied once */
    if (ieq(e, n, "chunked"))
        h->te_chunked = true;
    else
        h->te_unknown = true; /* also "chunked;x=y": chunked takes no parameters */
}

static void conn_element(head_state *h, const char *e, size_t n)
{
    if (ieq(e, n, "close"))
        h->close = true;
    else if (ieq(e, n, "keep-alive"))
        h->ka = true;
}

static bool host_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c >= 0x7f || c == ',' || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\')
            return false;
    }
    return true;
}

/* Validate the complete head buf[s..end) (end: just after the blank line). */
static int parse_head(corio_http_request *req, const char *buf, size_t s, size_t end, const limits *L)
{
    const char *lf = memchr(buf + s, '\n', end - s);
    size_t i = (size_t)(lf - buf);
    int r = parse_request_line(req, buf, s, i, L);
    if (r < 0)
        return r;
    head_state h = {0};
    i++;
    for (;;) {
        size_t ls = i, nl = (size_t)((const char *)memchr(buf + ls, '\n', end - ls) - buf);
        if (nl == ls)
            return -400; /* bare LF as the blank line */
        if (buf[nl - 1] != '\r')
            return -400;
        size_t le = nl - 1;
        i = nl + 1;
        if (le == ls)
            break; /* the blank line: phase one made sure it is the last */
        if (is_ows((unsigned char)buf[ls]))
            return -400; /* obs-fold, or whitespace after the request line */
        size_t k = ls;
        while (k < le && is_tchar((unsigned char)buf[k]))
            k++;
        if (k == ls || k == le || buf[k] != ':')
            return -400; /* empty name, bad name char, whitespace before ':', no ':' */
        size_t v = k + 1, ve = le;
        for (size_t j = v; j < le; j++)
            if (!is_field_char((unsigned char)buf[j]))
                return -400; /* bare CR, NUL, other controls */
        while (v < ve && is_ows((unsigned char)buf[v]))
            v++;
        while (ve > v && is_ows((unsigned char)buf[ve - 1]))
            ve--;
        if (req->nheaders >= L->max_headers)
            return -431;
        corio_http_header *hd = &req->headers[req->nheaders++];
        hd->name = mkstr(buf + ls, k - ls);
        hd->value = mkstr(buf + v, ve - v);
        const char *name = buf + ls, *val = buf + v;
        size_t nlen = k - ls, vlen = ve - v;
        if (ieq(name, nlen, "host")) {
            if (h.hosts++ == 0)
                req->host = hd->value;
            if (!host_ok(val, vlen))
                return -400;
        } else if (ieq(name, nlen, "content-length")) {
            if ((r = content_length(req, &h, val, vlen)) < 0)
                return r;
        } else if (ieq(name, nlen, "transfer-encoding")) {
            h.te_fields++;
            each_element(val, vlen, te_element, &h);
        } else if (ieq(name, nlen, "connection")) {
            each_element(val, vlen, conn_element, &h);
        } else if (ieq(name, nlen, "expect")) {
            if (ieq(val, vlen, "100-continue"))
                req->expect_continue = true;
        }
    }
    if (h.hosts > 1 || (h.hosts == 0 && req->version_minor == 1))
        return -400;
    if (h.te_fields) {
        if (req->version_minor == 0 || h.cl_seen)
            return -400; /* smuggling vectors: RFC 9112 section 6.1 and 6.3 */
        if (!h.te_chunked || h.te_not_last)
            return -400;
        if (h.te_unknown)
            return -501; /* codings we do not implement before the chunked */
        req->chunked = true;
    }
    if (req->content_length > L->max_body)
        return -413;
    req->has_content_length = h.cl_seen;
    req->keep_alive = req->version_minor == 1 ? !h.close : (h.ka && !h.close);
    if (req->version_minor == 0)
        req->expect_continue = false; /* RFC 9110 section 10.1.1: ignored for 1.0 */
    if (!req->host.ptr)
        req->host = mkstr(buf + end, 0);
    return 0;
}

ssize_t corio_http_request_parse(corio_http_request *req, const char *buf, size_t len,
                                 const corio_http_limits *lim)
{
    if (!req || (!buf && len))
        return -EINVAL;
    limits L = get_limits(lim, req->cap_headers_);
    size_t limit = len < L.max_head ? len : L.max_head;
    size_t pos = req->scan_pos_, ls = req->line_start_, hs = req->head_start_, end = 0;
    while (pos < limit) {
        const char *p = memchr(buf + pos, '\n', limit - pos);
        if (!p) {
            pos = limit;
            break;
        }
        size_t i = (size_t)(p - buf), n = i - ls;
        pos = i + 1;
        if (n == 0 || (n == 1 && buf[ls] == '\r')) {
            if (ls == hs && n == 1) { /* an empty line before the request line */
                hs = ls = pos;
                continue;
            }
            end = pos;
            break;
        }
        ls = pos;
    }
    req->scan_pos_ = pos;
    req->line_start_ = ls;
    req->head_start_ = hs;
    if (!end) {
        if (len < L.max_head)
            return 0;
        int r = too_large(req, buf, hs, L.max_head, &L);
        req->nheaders = 0;
        return r;
    }
    req->nheaders = 0;
    req->content_length = 0;
    req->expect_continue = false;
    int r = parse_head(req, buf, hs, end, &L);
    return r < 0 ? r : (ssize_t)end;
}

const char *corio_http_request_header(const corio_http_request *req, const char *name, size_t *len)
{
    if (len)
        *len = 0;
    if (!req || !name) {
        errno = EINVAL;
        return NULL;
    }
    for (unsigned i = 0; i < req->nheaders; i++) {
        const corio_http_header *h = &req->headers[i];
        if (ieq(h->name.ptr, h->name.len, name)) {
            if (len)
                *len = h->value.len;
            return h->value.ptr;
        }
    }
    return NULL;
}

const char *corio_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- chunked ------------------------------------------------------------ */

enum {
    C_SIZE0,     /* expecting the first hex digit of a size */
    C_SIZE,      /* in the hex digits */
    C_EXT_PRE,   /* BWS before ';' or the CR */
    C_EXT_NAME0, /* BWS, then the extension name */
    C_EXT_NAME,
    C_EXT_POST, /* BWS after the name: '=', ';' or CR */
    C_EXT_VAL0, /* BWS, then a token or a quoted string */
    C_EXT_TOKEN,
    C_EXT_QUOTED,
    C_EXT_QESC,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER0, /* start of a trailer line, or the final CR */
    C_T_NAME,
    C_T_VALUE,
    C_T_LF,
    C_FINAL_LF,
    C_DONE,
    C_ERROR,
};

#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX 8192

void corio_http_chunked_init(corio_http_chunked *c, uint64_t max_body)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->state_ = C_SIZE0;
    c->max_body_ = max_body ? max_body : CORIO_HTTP_DEFAULT_MAX_BODY;
}

bool corio_http_chunked_done(const corio_http_chunked *c) { return c && c->state_ == C_DONE; }

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 32;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The state after ch where a chunk-size line's current item (the size, an
 * extension name or value) may end: ';' starts another extension, CR ends
 * the line, OWS goes to on_ows; anything else is C_ERROR. */
static int chunk_item_end(unsigned char ch, int on_ows)
{
    if (ch == ';')
        return C_EXT_NAME0;
    if (ch == '\r')
        return C_SIZE_LF;
    if (is_ows(ch))
        return on_ows;
    return C_ERROR;
}

static ssize_t chunk_fail(corio_http_chunked *c, int status)
{
    c->state_ = C_ERROR;
    c->size_ = (uint64_t)status; /* so that later calls repeat the verdict */
    return -status;
}

ssize_t corio_http_chunked_decode(corio_http_chunked *c, const char *buf, size_t len, const char **data,
                                  size_t *data_len)
{
    if (!c || (!buf && len) || !data || !data_len)
        return -EINVAL;
    *data = NULL;
    *data_len = 0;
    if (c->state_ == C_ERROR)
        return -(ssize_t)c->size_;
    size_t i = 0;
    while (i < len && c->state_ != C_DONE) {
        unsigned char ch = (unsigned char)buf[i];
        int st = c->state_;
        if (st == C_DATA) {
            size_t n = len - i;
            if (n > c->size_)
                n = (size_t)c->size_;
            *data = buf + i;
            *data_len = n;
            c->size_ -= n;
            if (c->size_ == 0)
                c->state_ = C_DATA_CR;
            return (ssize_t)(i + n);
        }
        i++;
        if (st <= C_SIZE_LF && ++c->line_ > CHUNK_LINE_MAX)
            return chunk_fail(c, 400);
        if (st >= C_TRAILER0 && ++c->line_ > TRAILER_MAX)
            return chunk_fail(c, 431);
        switch (st) {
        case C_SIZE0:
        case C_SIZE: {
            int d = hexval(ch);
            if (d >= 0) {
                if (c->size_ > (UINT64_MAX >> 4))
                    return chunk_fail(c, 400); /* overflow */
                c->size_ = (c->size_ << 4) | (uint64_t)d;
                c->state_ = C_SIZE;
                break;
            }
            if (st == C_SIZE0 || (c->state_ = chunk_item_end(ch, C_EXT_PRE)) == C_ERROR)
                return chunk_fail(c, 400);
            break;
        }
        case C_EXT_PRE:
            if ((c->state_ = chunk_item_end(ch, C_EXT_PRE)) == C_ERROR)
                return chunk_fail(c, 400);
            break;
        case C_EXT_NAME0:
            if (is_tchar(ch))
                c->state_ = C_EXT_NAME;
            else if (!is_ows(ch))
                return chunk_fail(c, 400);
            break;
        case C_EXT_NAME:
        case C_EXT_POST:
            if (st == C_EXT_NAME && is_tchar(ch))
                break;
            if (ch == '=')
                c->state_ = C_EXT_VAL0;
            else if ((c->state_ = chunk_item_end(ch, C_EXT_POST)) == C_ERROR)
                return chunk_fail(c, 400);
            break;
        case C_EXT_VAL0:
            if (ch == '"')
                c->state_ = C_EXT_QUOTED;
            else if (is_tchar(ch))
                c->state_ = C_EXT_TOKEN;
            else if (!is_ows(ch))
                return chunk_fail(c, 400);
            break;
        case C_EXT_TOKEN:
            if (!is_tchar(ch) && (c->state_ = chunk_item_end(ch, C_EXT_PRE)) == C_ERROR)
                return chunk_fail(c, 400);
            break;
        case C_EXT_QUOTED:
            if (ch == '"')
                c->state_ = C_EXT_PRE;
            else if (ch == '\\')
                c->state_ = C_EXT_QESC;
            else if (!is_field_char(ch))
                return chunk_fail(c, 400);
            break;
        case C_EXT_QESC:
            if (!is_field_char(ch))
                return chunk_fail(c, 400);
            c->state_ = C_EXT_QUOTED;
            break;
        case C_SIZE_LF:
            if (ch != '\n')
                return chunk_fail(c, 400);
            c->line_ = 0;
            if (c->size_ == 0) {
                c->state_ = C_TRAILER0;
                break;
            }
            if (c->size_ > c->max_body_ - c->total_)
                return chunk_fail(c, 413);
            c->total_ += c->size_;
            c->state_ = C_DATA;
            break;
        case C_DATA_CR:
            if (ch != '\r')
                return chunk_fail(c, 400); /* the data is longer than its size */
            c->state_ = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                return chunk_fail(c, 400);
            c->state_ = C_SIZE0;
            c->line_ = 0;
            break;
        case C_TRAILER0:
            if (ch == '\r')
                c->state_ = C_FINAL_LF;
            else if (is_tchar(ch))
                c->state_ = C_T_NAME;
            else
                return chunk_fail(c, 400); /* obs-fold, empty name, bare LF */
            break;
        case C_T_NAME:
            if (ch == ':')
                c->state_ = C_T_VALUE;
            else if (!is_tchar(ch))
                return chunk_fail(c, 400);
            break;
        case C_T_VALUE:
            if (ch == '\r')
                c->state_ = C_T_LF;
            else if (!is_field_char(ch))
                return chunk_fail(c, 400);
            break;
        case C_T_LF:
            if (ch != '\n')
                return chunk_fail(c, 400);
            c->state_ = C_TRAILER0;
            break;
        case C_FINAL_LF:
            if (ch != '\n')
                return chunk_fail(c, 400);
            c->state_ = C_DONE;
            break;
        }
    }
    return (ssize_t)i;
}
