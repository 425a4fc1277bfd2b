/*
 * The HTTP/1.1 request parser and chunked decoder (src/http/parser.c).
 * Every rule is a row of a table, checked twice: with the whole input at
 * once and fed one byte at a time (growing prefixes for the head parser,
 * one-byte slices for the streaming chunked decoder); both must give the
 * same verdict and the same fields.  Pure code: no loop is run, so the
 * per-backend copies of these tests are identical.
 */
#include "runner.h"
#include "corio/http.h"

#define IN(s) .in = s, .len = sizeof(s) - 1
#define NEED_MORE (-1) /* expected: the parser wants more bytes */
#define NHDR 16

typedef struct head_case {
    const char *name;
    const char *in;
    size_t len;
    int status; /* 0: valid, NEED_MORE, or the HTTP status of the rejection */
    const corio_http_limits *lim;
    const char *method, *target, *path, *query, *host;
    int minor;      /* checked when status == 0 */
    int nheaders;   /* -1: not checked */
    long long clen; /* -1: no Content-Length */
    bool chunked, ka, expect;
    size_t consumed; /* 0: the whole input */
} head_case;

static const corio_http_limits small = {.max_head = 64, .max_target = 16, .max_headers = 3, .max_body = 100};

/* OK() sets the defaults of a valid row, which the row then overrides. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
#define OK(...) .status = 0, .nheaders = -1, .clen = -1, .minor = 1, .ka = true, __VA_ARGS__
#define GET11(extra) "GET / HTTP/1.1\r\nHost: a\r\n" extra "\r\n"
#define POST11(extra) "POST / HTTP/1.1\r\nHost: a\r\n" extra "\r\n"

static const head_case head_cases[] = {
    /* ---- valid requests ---- */
    {"simple", IN("GET /index.html?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"),
     OK(.method = "GET", .target = "/index.html?x=1&y", .path = "/index.html", .query = "x=1&y",
        .host = "example.com", .nheaders = 2)},
    {"no_query", IN("GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n"), OK(.path = "/a/b", .query = "")},
    {"http10_no_host", IN("GET / HTTP/1.0\r\n\r\n"), OK(.minor = 0, .ka = false, .host = "", .nheaders = 0)},
    {"http10_keep_alive", IN("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), OK(.minor = 0, .ka = true)},
    {"http10_expect_ignored", IN("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"),
     OK(.minor = 0, .ka = false, .expect = false)},
    {"http11_close", IN(GET11("Connection: keep-alive, close\r\n")), OK(.ka = false)},
    {"http12_is_11", IN("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), OK(.minor = 1)},
    {"http19_is_11", IN("GET / HTTP/1.9\r\nHost: a\r\n\r\n"), OK(.minor = 1)},
    {"any_token_method", IN("M-SEARCH! / HTTP/1.1\r\nHost: a\r\n\r\n"), OK(.method = "M-SEARCH!")},
    {"content_length", IN(POST11("Content-Length: 11\r\n")), OK(.clen = 11)},
    {"content_length_zero", IN(POST11("Content-Length: 0\r\n")), OK(.clen = 0)},
    {"content_length_equal_list", IN(POST11("Content-Length: 42 , 42\r\n")), OK(.clen = 42)},
    {"content_length_equal_fields", IN(POST11("Content-Length: 7\r\nContent-Length: 007\r\n")),
     OK(.clen = 7)},
    {"chunked", IN(POST11("Transfer-Encoding: chunked\r\n")), OK(.chunked = true)},
    {"chunked_case_and_empty_elements", IN(POST11("Transfer-Encoding: , CHUNKED ,\r\n")),
     OK(.chunked = true)},
    {"expect_continue", IN(POST11("Expect: 100-Continue\r\nContent-Length: 1\r\n")),
     OK(.expect = true, .clen = 1)},
    {"ows_trimmed", IN(GET11("X-A: \t v  v \t\r\n")), OK(.nheaders = 2)},
    {"empty_value", IN(GET11("X-Empty:\r\n")), OK(.nheaders = 2)},
    {"obs_text_value", IN(GET11("X-Latin: caf\xe9\r\n")), OK(.nheaders = 2)},
    {"empty_host_11", IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), OK(.host = "")},
    {"leading_crlf_skipped", IN("\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"), OK(.path = "/x")},
    {"absolute_form", IN("GET http://example.com:80/p/q?r=1 HTTP/1.1\r\nHost: example.com:80\r\n\r\n"),
     OK(.path = "/p/q", .query = "r=1")},
    {"absolute_form_no_path", IN("GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     OK(.path = "", .query = "")},
    {"asterisk_options", IN("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), OK(.path = "*")},
    {"authority_connect", IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
     OK(.path = "example.com:443")},
    {"limits_exact_fit", IN("GET /0123456789abcde HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
     .lim = &small, OK(.nheaders = 3)},
    /* ---- need more ---- */
    {"partial_head", IN("GET / HTTP/1.1\r\nHost: a\r\n"), .status = NEED_MORE},
    {"partial_blank_line", IN("GET / HTTP/1.1\r\nHost: a\r\n\r"), .status = NEED_MORE},
    {"only_crlfs", IN("\r\n\r\n"), .status = NEED_MORE},
    /* ---- 400 ---- */
    {"missing_host_11", IN("GET / HTTP/1.1\r\nX: y\r\n\r\n"), .status = 400},
    {"duplicate_host", IN(GET11("Host: b\r\n")), .status = 400},
    {"duplicate_host_10", IN("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), .status = 400},
    {"host_with_space", IN("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), .status = 400},
    {"host_list", IN("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), .status = 400},
    {"space_before_colon", IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), .status = 400},
    {"tab_before_colon", IN("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), .status = 400},
    {"obs_fold", IN(GET11("X: a\r\n b\r\n")), .status = 400},
    {"whitespace_after_request_line", IN("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), .status = 400},
    {"bare_cr_in_value", IN(GET11("X: a\rb\r\n")), .status = 400},
    {"bare_cr_in_request_line", IN("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"bare_cr_end_of_line", IN("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), .status = 400},
    {"bare_lf_lines", IN("GET / HTTP/1.1\nHost: a\n\n"), .status = 400},
    {"bare_lf_header", IN("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), .status = 400},
    {"bare_lf_blank_line", IN("GET / HTTP/1.1\r\nHost: a\r\n\n"), .status = 400},
    {"nul_in_value", IN(GET11("X: a\0b\r\n")), .status = 400},
    {"nul_in_name", IN(GET11("X\0: b\r\n")), .status = 400},
    {"nul_in_target", IN("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"del_in_value", IN(GET11("X: a\x7f\r\n")), .status = 400},
    {"empty_name", IN(GET11(": v\r\n")), .status = 400},
    {"invalid_name_char", IN(GET11("X@Y: v\r\n")), .status = 400},
    {"invalid_name_paren", IN(GET11("X(Y): v\r\n")), .status = 400},
    {"no_colon", IN(GET11("Hello\r\n")), .status = 400},
    {"content_length_alpha", IN(POST11("Content-Length: abc\r\n")), .status = 400},
    {"content_length_negative", IN(POST11("Content-Length: -1\r\n")), .status = 400},
    {"content_length_plus", IN(POST11("Content-Length: +5\r\n")), .status = 400},
    {"content_length_two_numbers", IN(POST11("Content-Length: 1 2\r\n")), .status = 400},
    {"content_length_empty", IN(POST11("Content-Length:\r\n")), .status = 400},
    {"content_length_empty_element", IN(POST11("Content-Length: 5,\r\n")), .status = 400},
    {"content_length_conflict_list", IN(POST11("Content-Length: 5, 6\r\n")), .status = 400},
    {"content_length_conflict_fields", IN(POST11("Content-Length: 5\r\nContent-Length: 6\r\n")),
     .status = 400},
    {"content_length_overflow", IN(POST11("Content-Length: 99999999999999999999999\r\n")), .status = 400},
    {"te_with_cl", IN(POST11("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")), .status = 400},
    {"cl_with_te", IN(POST11("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n")), .status = 400},
    {"te_in_http10", IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), .status = 400},
    {"te_not_chunked", IN(POST11("Transfer-Encoding: gzip\r\n")), .status = 400},
    {"te_chunked_not_last", IN(POST11("Transfer-Encoding: chunked, gzip\r\n")), .status = 400},
    {"te_chunked_twice", IN(POST11("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
     .status = 400},
    {"te_chunked_with_params", IN(POST11("Transfer-Encoding: chunked;q=1\r\n")), .status = 400},
    {"te_empty", IN(POST11("Transfer-Encoding:\r\n")), .status = 400},
    {"bad_method_char", IN("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"empty_method", IN(" / HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"double_space", IN("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"trailing_space", IN("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), .status = 400},
    {"lowercase_version", IN("GET / http/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"long_minor", IN("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), .status = 400},
    {"http09", IN("GET /\r\n\r\n"), .status = 400},
    {"fragment_in_target", IN("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"relative_target", IN("GET index.html HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"asterisk_not_options", IN("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"connect_with_path", IN("CONNECT a.com:443/x HTTP/1.1\r\nHost: a\r\n\r\n"), .status = 400},
    {"garbage_too_long", IN("ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ"),
     .lim = &small, .status = 400},
    /* ---- 414, 431, 413, 501, 505 ---- */
    {"target_too_long", IN("GET /0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n"), .lim = &small,
     .status = 414},
    {"target_too_long_unfinished", IN("GET /0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"),
     .lim = &small, .status = 414},
    {"too_many_headers", IN("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), .lim = &small,
     .status = 431},
    {"head_too_long", IN("GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789012345678901234567890123\r\n\r\n"),
     .lim = &small, .status = 431},
    {"head_too_long_bad_line_first",
     IN("GET / HTTP/9.9\r\nHost: a\r\nX-Long: 01234567890123456789012345678901234\r\n"), .lim = &small,
     .status = 505},
    {"body_too_large", IN(POST11("Content-Length: 101\r\n")), .lim = &small, .status = 413},
    {"body_at_limit", IN(POST11("Content-Length: 100\r\n")), .lim = &small, OK(.clen = 100)},
    {"te_unknown_coding", IN(POST11("Transfer-Encoding: gzip, chunked\r\n")), .status = 501},
    {"te_unknown_coding_two_fields", IN(POST11("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")),
     .status = 501},
    {"http2", IN("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), .status = 505},
    {"http0", IN("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), .status = 505},
};

static void check_str(const char *what, const char *name, corio_http_str s, const char *want)
{
    if (!want)
        return;
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0)
        test_fail(__FILE__, __LINE__, "%s: %s is \"%.*s\", expected \"%s\"", name, what, (int)s.len, s.ptr,
                  want);
}

static void same_fields(const head_case *c, const corio_http_request *a, const corio_http_request *b)
{
    CHECK(a->method.ptr == b->method.ptr && a->method.len == b->method.len);
    CHECK(a->target.ptr == b->target.ptr && a->target.len == b->target.len);
    CHECK(a->path.ptr == b->path.ptr && a->path.len == b->path.len);
    CHECK(a->query.ptr == b->query.ptr && a->query.len == b->query.len);
    CHECK(a->host.ptr == b->host.ptr && a->host.len == b->host.len);
    CHECK_EQ(a->version_minor, b->version_minor);
    CHECK_EQ(a->nheaders, b->nheaders);
    for (unsigned i = 0; i < a->nheaders; i++) {
        CHECK(a->headers[i].name.ptr == b->headers[i].name.ptr &&
              a->headers[i].name.len == b->headers[i].name.len);
        CHECK(a->headers[i].value.ptr == b->headers[i].value.ptr &&
              a->headers[i].value.len == b->headers[i].value.len);
    }
    CHECK_EQ(a->content_length, b->content_length);
    CHECK_EQ(a->has_content_length, b->has_content_length);
    CHECK_EQ(a->chunked, b->chunked);
    CHECK_EQ(a->keep_alive, b->keep_alive);
    CHECK_EQ(a->expect_continue, b->expect_continue);
    (void)c;
}

static void run_head_case(const head_case *c)
{
    /* An exact-size heap copy: ASan then catches any read past the end. */
    char *buf = malloc(c->len + 1);
    CHECK(buf);
    memcpy(buf, c->in, c->len);
    corio_http_header h1[NHDR], h2[NHDR];
    corio_http_request whole, bytewise;

    corio_http_request_init(&whole, h1, NHDR);
    ssize_t r1 = corio_http_request_parse(&whole, buf, c->len, c->lim);

    corio_http_request_init(&bytewise, h2, NHDR);
    ssize_t r2 = 0;
    size_t n;
    for (n = 1; n <= c->len; n++)
        if ((r2 = corio_http_request_parse(&bytewise, buf, n, c->lim)) != 0)
            break;

    long long want = c->status == NEED_MORE ? 0
                     : c->status            ? -c->status
                                            : (long long)(c->consumed ? c->consumed : c->len);
    if (r1 != want || r2 != want)
        test_fail(__FILE__, __LINE__, "case %s: whole gave %lld, byte at a time %lld, expected %lld", c->name,
                  (long long)r1, (long long)r2, want);
    if (c->status == 0) {
        CHECK_EQ(n, (size_t)r1); /* byte at a time, it completes exactly at the end of the head */
        same_fields(c, &whole, &bytewise);
        check_str("method", c->name, whole.method, c->method);
        check_str("target", c->name, whole.target, c->target);
        check_str("path", c->name, whole.path, c->path);
        check_str("query", c->name, whole.query, c->query);
        check_str("host", c->name, whole.host, c->host);
        if (whole.version_minor != c->minor)
            test_fail(__FILE__, __LINE__, "case %s: minor %d", c->name, whole.version_minor);
        if (c->nheaders >= 0)
            CHECK_EQ(whole.nheaders, c->nheaders);
        if (c->clen >= 0) {
            CHECK(whole.has_content_length);
            CHECK_EQ(whole.content_length, c->clen);
        } else {
            CHECK(!whole.has_content_length);
            CHECK_EQ(whole.content_length, 0);
        }
        if (whole.chunked != c->chunked || whole.keep_alive != c->ka || whole.expect_continue != c->expect)
            test_fail(__FILE__, __LINE__, "case %s: chunked %d keep_alive %d expect %d", c->name,
                      whole.chunked, whole.keep_alive, whole.expect_continue);
        /* Everything points into the buffer. */
        CHECK(whole.method.ptr >= buf && whole.method.ptr + whole.method.len <= buf + c->len);
        CHECK(whole.path.ptr >= buf && whole.path.ptr + whole.path.len <= buf + c->len);
        CHECK(whole.query.ptr >= buf && whole.query.ptr + whole.query.len <= buf + c->len);
    }
    free(buf);
}

TEST(head_table_whole_and_byte_at_a_time)
{
    for (size_t i = 0; i < sizeof head_cases / sizeof head_cases[0]; i++)
        run_head_case(&head_cases[i]);
}

TEST(header_lookup_is_case_insensitive)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Thing:  one \r\nx-thing: two\r\nEmpty:\r\n\r\n";
    corio_http_header h[NHDR];
    corio_http_request req;
    corio_http_request_init(&req, h, NHDR);
    CHECK_EQ(corio_http_request_parse(&req, in, sizeof in - 1, NULL), sizeof in - 1);
    size_t len = 99;
    const char *v = corio_http_request_header(&req, "x-THING", &len);
    CHECK(v && len == 3 && memcmp(v, "one", 3) == 0);
    v = corio_http_request_header(&req, "empty", &len);
    CHECK(v && len == 0);
    CHECK(corio_http_request_header(&req, "X-Thin", &len) == NULL);
    CHECK_EQ(len, 0);
    CHECK(corio_http_request_header(&req, "host", NULL) == in + 22);
    CHECK_STR(corio_http_reason(431), "Request Header Fields Too Large");
}

TEST(header_array_capacity_caps_max_headers)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n";
    corio_http_header h[1];
    corio_http_request req;
    corio_http_request_init(&req, h, 1);
    CHECK_EQ(corio_http_request_parse(&req, in, sizeof in - 1, NULL), -431);
}

TEST(pipelined_requests_consume_exactly_their_bytes)
{
    static const char in[] = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                             "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                             "GET /c HTTP/1.1\r\nHost: h\r\n\r\nGET";
    size_t len = sizeof in - 1, first = strlen("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
    corio_http_header h[NHDR];
    corio_http_request req;

    corio_http_request_init(&req, h, NHDR);
    CHECK_EQ(corio_http_request_parse(&req, in, len, NULL), first);
    check_str("path", "first", req.path, "/a");
    CHECK_EQ(req.content_length, 5);
    CHECK(req.keep_alive);
    /* Byte at a time over the same pipelined buffer: it stops at the same place. */
    corio_http_request_init(&req, h, NHDR);
    size_t n;
    for (n = 1; n <= len; n++)
        if (corio_http_request_parse(&req, in, n, NULL) != 0)
            break;
    CHECK_EQ(n, first);

    size_t off = first + 5;
    corio_http_request_init(&req, h, NHDR);
    ssize_t r = corio_http_request_parse(&req, in + off, len - off, NULL);
    CHECK_EQ(r, strlen("GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    check_str("path", "second", req.path, "/b");
    CHECK(!req.keep_alive);
    CHECK_EQ(req.nheaders, 2);

    off += (size_t)r;
    corio_http_request_init(&req, h, NHDR);
    r = corio_http_request_parse(&req, in + off, len - off, NULL);
    CHECK_EQ(r, strlen("GET /c HTTP/1.1\r\nHost: h\r\n\r\n"));
    check_str("path", "third", req.path, "/c");

    off += (size_t)r;
    corio_http_request_init(&req, h, NHDR);
    CHECK_EQ(corio_http_request_parse(&req, in + off, len - off, NULL), 0); /* "GET": need more */
}

/* ---- chunked ------------------------------------------------------------ */

typedef struct chunk_case {
    const char *name;
    const char *in;
    size_t len;
    int status;       /* 0: complete, NEED_MORE, or the rejection status */
    const char *data; /* the decoded data (checked when status is 0 or NEED_MORE) */
    size_t consumed;  /* for status 0: bytes used (0: all of in) */
    uint64_t max_body;
} chunk_case;

static const chunk_case chunk_cases[] = {
    {"one_chunk", IN("5\r\nhello\r\n0\r\n\r\n"), 0, "hello"},
    {"two_chunks_hex", IN("A\r\n0123456789\r\nC\r\n hello world\r\n0\r\n\r\n"), 0, "0123456789 hello world"},
    {"leading_zeros", IN("005\r\nhello\r\n0000\r\n\r\n"), 0, "hello"},
    {"empty_body", IN("0\r\n\r\n"), 0, ""},
    {"stops_after_body", IN("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 0, "abc", 13},
    {"extensions", IN("5;a=b;c;d=\"q \\\" x\"\r\nhello\r\n0;last=yes\r\n\r\n"), 0, "hello"},
    {"extensions_bws", IN("5 ; a = b ;c\t\r\nhello\r\n0\r\n\r\n"), 0, "hello"},
    {"trailers", IN("2\r\nhi\r\n0\r\nX-Checksum: abc\r\nY:\r\n\r\n"), 0, "hi"},
    {"max_body_exact", IN("5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"), 0, "helloabc", 0, 8},
    {"incomplete_data", IN("5\r\nhel"), NEED_MORE, "hel"},
    {"incomplete_trailer", IN("0\r\nX: 1\r\n"), NEED_MORE, ""},
    {"incomplete_size", IN("ff"), NEED_MORE, ""},
    {"bad_hex", IN("g\r\nhello\r\n0\r\n\r\n"), 400},
    {"bad_hex_after_digit", IN("5x\r\nhello\r\n0\r\n\r\n"), 400},
    {"empty_size", IN("\r\nhello\r\n0\r\n\r\n"), 400},
    {"negative_size", IN("-5\r\nhello\r\n"), 400},
    {"size_overflow", IN("10000000000000000\r\n"), 400},
    {"size_huge_is_413", IN("ffffffffffffffff\r\n"), 413},
    {"bare_lf_after_size", IN("5\nhello\r\n0\r\n\r\n"), 400},
    {"bare_cr_after_size", IN("5\rhello\r\n0\r\n\r\n"), 400},
    {"data_longer_than_size", IN("5\r\nhelloX\r\n0\r\n\r\n"), 400},
    {"data_then_bare_lf", IN("5\r\nhello\n0\r\n\r\n"), 400},
    {"bad_ext_empty_name", IN("5;=x\r\nhello\r\n0\r\n\r\n"), 400},
    {"bad_ext_unterminated_quote", IN("5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400},
    {"bad_ext_value", IN("5;a=@\r\nhello\r\n0\r\n\r\n"), 400},
    {"trailer_obs_fold", IN("0\r\nX: a\r\n b\r\n\r\n"), 400},
    {"trailer_space_before_colon", IN("0\r\nX : a\r\n\r\n"), 400},
    {"trailer_nul", IN("0\r\nX: a\0\r\n\r\n"), 400},
    {"trailer_no_colon", IN("0\r\nX\r\n\r\n"), 400},
    {"final_bare_lf", IN("0\r\n\n"), 400},
    {"too_large_one_chunk", IN("9\r\n123456789\r\n0\r\n\r\n"), 413, NULL, 0, 8},
    {"too_large_total", IN("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), 413, NULL, 0, 8},
};

/* Decode in slices of at most step bytes (0: everything at once). */
static long long decode_chunked(const chunk_case *c, const char *buf, size_t step, char *out, size_t *outlen)
{
    corio_http_chunked d;
    corio_http_chunked_init(&d, c->max_body);
    size_t used = 0;
    *outlen = 0;
    while (used < c->len && !corio_http_chunked_done(&d)) {
        size_t n = c->len - used;
        if (step && n > step)
            n = step;
        const char *data;
        size_t dlen;
        ssize_t r = corio_http_chunked_decode(&d, buf + used, n, &data, &dlen);
        if (r < 0) {
            /* The verdict sticks. */
            CHECK_EQ(corio_http_chunked_decode(&d, buf, c->len, &data, &dlen), r);
            return r;
        }
        CHECK(r > 0 && (size_t)r <= n);
        if (dlen) {
            CHECK(data >= buf + used && data + dlen <= buf + used + (size_t)r);
            memcpy(out + *outlen, data, dlen);
            *outlen += dlen;
        }
        used += (size_t)r;
    }
    if (!corio_http_chunked_done(&d))
        return 0;
    /* Nothing more is taken once the body is complete. */
    const char *data;
    size_t dlen;
    CHECK_EQ(corio_http_chunked_decode(&d, "x", 1, &data, &dlen), 0);
    return (long long)used;
}

TEST(chunked_table_whole_and_byte_at_a_time)
{
    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const chunk_case *c = &chunk_cases[i];
        char *buf = malloc(c->len + 1), out1[256], out2[256];
        CHECK(buf);
        memcpy(buf, c->in, c->len);
        size_t l1, l2;
        long long r1 = decode_chunked(c, buf, 0, out1, &l1);
        long long r2 = decode_chunked(c, buf, 1, out2, &l2);
        long long want = c->status == NEED_MORE ? 0
                         : c->status            ? -c->status
                                                : (long long)(c->consumed ? c->consumed : c->len);
        if (r1 != want || r2 != want)
            test_fail(__FILE__, __LINE__, "case %s: whole gave %lld, byte at a time %lld, expected %lld",
                      c->name, r1, r2, want);
        CHECK_EQ(l1, l2);
        CHECK(memcmp(out1, out2, l1) == 0);
        if (c->data && (l1 != strlen(c->data) || memcmp(out1, c->data, l1) != 0))
            test_fail(__FILE__, __LINE__, "case %s: data \"%.*s\", expected \"%s\"", c->name, (int)l1, out1,
                      c->data);
        free(buf);
    }
}

TEST(chunked_size_line_is_bounded)
{
    static char in[6000];
    size_t n = 0;
    in[n++] = '1';
    while (n < 5000) {
        in[n++] = ';';
        in[n++] = 'a';
    }
    corio_http_chunked d;
    corio_http_chunked_init(&d, 0);
    const char *data;
    size_t dlen;
    CHECK_EQ(corio_http_chunked_decode(&d, in, n, &data, &dlen), -400);

    /* A trailer section that never ends is bounded too. */
    static char tr[10000];
    memcpy(tr, "0\r\n", 3);
    n = 3;
    while (n + 8 < sizeof tr) {
        memcpy(tr + n, "X: 12\r\n", 7);
        n += 7;
    }
    corio_http_chunked_init(&d, 0);
    CHECK_EQ(corio_http_chunked_decode(&d, tr, n, &data, &dlen), -431);
}
