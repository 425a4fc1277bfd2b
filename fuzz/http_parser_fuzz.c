/*
 * libFuzzer target for the HTTP request parser and the chunked decoder
 * (src/http/parser.c).  Its job is to check the property the server relies
 * on: the verdict depends only on the bytes, never on how reads split them.
 * The first input byte picks a split point (scaled over the rest); the rest
 * is parsed whole, then as a prefix followed by the whole, and both results
 * must be identical, field for field.  If the head is complete and chunked,
 * the body after it is decoded in one call chain and in two, and again the
 * data, the bytes used and the verdict must agree.  The rest of the input is
 * also fed straight to the chunked decoder, so that the fuzzer reaches its
 * grammar without first building a valid head.
 *
 * The same entry point is replayed over fuzz/corpus/http_parser by
 * fuzz/replay_main.c in ctest, so this file must build with gcc as well.
 */
#include "corio/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(c)                                                                                        \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #c);                       \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define NHDR 16

/* Small limits so that the fuzzer reaches 414/431/413 with short inputs. */
static const corio_http_limits lim = {
    .max_head = 1024, .max_target = 256, .max_headers = 12, .max_body = 4096};

static void same_str(corio_http_str a, corio_http_str b, const char *buf, size_t len)
{
    FUZZ_CHECK(a.len == b.len && a.ptr == b.ptr);
    /* Results point into the buffer (an empty string may sit at its end). */
    FUZZ_CHECK(a.ptr >= buf && a.ptr + a.len <= buf + len);
}

/* Decode body[0..n) as one chain of calls, or split at cut; the data go to
 * out (at most cap bytes kept).  Returns the verdict: bytes used, or < 0. */
static long decode(const char *body, size_t n, size_t cut, char *out, size_t cap, size_t *outlen)
{
    corio_http_chunked c;
    corio_http_chunked_init(&c, 100000);
    size_t used = 0;
    *outlen = 0;
    size_t bounds[2] = {cut, n};
    for (int part = 0; part < 2; part++) {
        while (used < bounds[part] && !corio_http_chunked_done(&c)) {
            const char *d;
            size_t dl;
            ssize_t r = corio_http_chunked_decode(&c, body + used, bounds[part] - used, &d, &dl);
            if (r < 0) {
                /* The verdict sticks. */
                FUZZ_CHECK(corio_http_chunked_decode(&c, body, n, &d, &dl) == r);
                return r;
            }
            FUZZ_CHECK((size_t)r <= bounds[part] - used);
            if (dl) {
                FUZZ_CHECK(d >= body + used && d + dl <= body + used + (size_t)r);
                if (*outlen + dl <= cap)
                    memcpy(out + *outlen, d, dl);
                *outlen += dl;
            }
            if (r == 0)
                break;
            used += (size_t)r;
        }
    }
    return corio_http_chunked_done(&c) ? (long)used : 0;
}

static void check_chunked(const char *body, size_t n, size_t cut)
{
    static char a[8192], b[8192];
    size_t al, bl;
    long ra = decode(body, n, n, a, sizeof a, &al);
    long rb = decode(body, n, cut, b, sizeof b, &bl);
    FUZZ_CHECK(ra == rb);
    FUZZ_CHECK(al == bl);
    if (al <= sizeof a)
        FUZZ_CHECK(memcmp(a, b, al) == 0);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    size_t cut = len * data[0] / 255;
    /* An exact-size copy, so that ASan sees any read past the end. */
    char *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf);
    memcpy(buf, data + 1, len);

    corio_http_header h1[NHDR], h2[NHDR];
    corio_http_request r1, r2;
    corio_http_request_init(&r1, h1, NHDR);
    ssize_t v1 = corio_http_request_parse(&r1, buf, len, &lim);
    FUZZ_CHECK(v1 >= -505 && v1 <= (ssize_t)len);

    corio_http_request_init(&r2, h2, NHDR);
    ssize_t v2 = corio_http_request_parse(&r2, buf, cut, &lim);
    if (v2 == 0)
        v2 = corio_http_request_parse(&r2, buf, len, &lim);
    FUZZ_CHECK(v1 == v2);

    if (v1 > 0) {
        same_str(r1.method, r2.method, buf, len);
        same_str(r1.target, r2.target, buf, len);
        same_str(r1.path, r2.path, buf, len);
        same_str(r1.query, r2.query, buf, len);
        same_str(r1.host, r2.host, buf, len);
        FUZZ_CHECK(r1.version_minor == r2.version_minor);
        FUZZ_CHECK(r1.nheaders == r2.nheaders && r1.nheaders <= NHDR);
        for (unsigned i = 0; i < r1.nheaders; i++) {
            same_str(r1.headers[i].name, r2.headers[i].name, buf, len);
            same_str(r1.headers[i].value, r2.headers[i].value, buf, len);
            FUZZ_CHECK(r1.headers[i].name.len > 0);
        }
        FUZZ_CHECK(r1.content_length == r2.content_length && r1.has_content_length == r2.has_content_length);
        FUZZ_CHECK(r1.chunked == r2.chunked && r1.keep_alive == r2.keep_alive &&
                   r1.expect_continue == r2.expect_continue);
        FUZZ_CHECK(!(r1.chunked && r1.has_content_length));
        FUZZ_CHECK(r1.content_length <= lim.max_body);
        if (r1.chunked)
            check_chunked(buf + v1, len - (size_t)v1, cut > (size_t)v1 ? cut - (size_t)v1 : 0);
    }
    check_chunked(buf, len, cut);
    free(buf);
    return 0;
}
