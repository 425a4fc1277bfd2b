/*
 * The glue between streams (src/io/stream.c) and the TLS engine
 * (src/io/tls.c), in src/io/tls_stream.c: a TLS stream keeps its
 * plaintext in the stream's own read buffer and write path, and its
 * ciphertext in a second socket input (multishot where the backend has
 * it) and in the stream's write queue.  Without OpenSSL, src/io/tls_none.c
 * has the same calls (never reached: no stream is ever TLS there).
 * Loop thread only.
 */
#ifndef CORIO_IO_TLS_STREAM_H
#define CORIO_IO_TLS_STREAM_H

#include "../core/internal.h"

typedef struct corio__tls_stream corio__tls_stream;

/* Plaintext into buf (up to n).  Suspends.  Returns bytes (> 0), 0 after
 * the peer's close_notify, -errno (a TLS error, the transport's), or
 * -EBADF when the stream was closed meanwhile (the caller finalizes). */
ssize_t corio__tls_stream_read(corio__tls_stream *x, void *buf, size_t n);

/* Encrypt and send (or queue) n bytes.  Does not suspend.  0 or -errno. */
int corio__tls_stream_write(corio__tls_stream *x, const void *buf, size_t n);

/* Queue close_notify (once).  Does not suspend.  0 or -errno. */
int corio__tls_stream_shutdown(corio__tls_stream *x);

/* The stream is closing: wake a task waiting for ciphertext (it gets
 * -EBADF), cancel the receive in flight, stop the background input. */
void corio__tls_stream_stop(corio__tls_stream *x);

/* True while an operation on the ciphertext input is still in the kernel
 * (the stream must not be freed yet). */
bool corio__tls_stream_busy(const corio__tls_stream *x);

/* Free the glue and the engine (no operation may be in flight). */
void corio__tls_stream_free(corio__tls_stream *x);

/* A server config for corio_server_config.tls: 0 and a reference taken,
 * -EINVAL (a client config), -EOPNOTSUPP (no TLS in this build). */
int corio__tls_server_hold(corio_tls *tls);

/* Hooks stream.c gives the glue. */
int corio__stream_raw_write(corio_stream *s, const void *buf, size_t n);
bool corio__stream_closing(const corio_stream *s);
void corio__stream_maybe_finalize(corio_stream *s);
corio__tls_stream *corio__stream_tls(const corio_stream *s);
/* Make s a TLS stream (x takes its ciphertext input from here on): waits
 * for the write queue to empty and for the stream's own background
 * receive to stop, and hands the bytes already read (the peer's first
 * ciphertext) to `take`.  Suspends.  Returns 0, -EINVAL (already TLS, or
 * a reader busy), -ENOTSOCK (not a socket), or a wait's error. */
int corio__stream_attach_tls(corio_stream *s, corio__tls_stream *x,
                             int (*take)(corio__tls_stream *x, const char *p, size_t n));
/* The handshake runs as the stream's reader (close wakes it). */
void corio__stream_set_rbusy(corio_stream *s, bool busy);

#endif
