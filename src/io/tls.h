/*
 * The TLS engine for the rest of io/ and for http/: one TLS connection
 * (an OpenSSL SSL) over whatever byte transport its owner has.  A stream
 * (src/io/stream.c) and an HTTP connection (src/http/) each keep their own
 * socket I/O (io_uring or epoll, multishot input, write queues) and hand
 * the engine two calls that move ciphertext; the engine never sees an fd,
 * so OpenSSL can never block the loop.
 *
 * Every call below runs in the owner's task, on the loop's thread.  Calls
 * that say "suspends" do so only through the transport's recv/send.  A
 * cancel or a passed deadline while one of them waits returns -ECANCELED /
 * -CORIO_EDEADLINE and leaves the connection usable: no plaintext or
 * ciphertext is lost, the next call goes on where this one stopped (a
 * handshake, though, is over for good after any error).
 *
 * The configuration side (corio_tls: SSL_CTX, certificates, SNI, ALPN,
 * tickets, reload) is in src/io/tls_config.c; this header is the
 * per-connection side.
 */
#ifndef CORIO_IO_TLS_H
#define CORIO_IO_TLS_H

#include "../core/internal.h"

typedef struct corio__tls corio__tls;

/* How the engine moves ciphertext; owner is passed back as given. */
typedef struct corio__tls_transport {
    /* Receive up to n bytes of ciphertext into buf (the engine's own
     * buffer, up to 32 KiB).  Suspends until at least one byte is there.
     * Called outside OpenSSL, so an interrupt loses nothing.  Returns the
     * count (> 0), 0 at EOF, or -errno (-ECONNRESET, -ECANCELED,
     * -CORIO_EDEADLINE, ...). */
    ssize_t (*recv)(void *owner, void *buf, size_t n);
    /* Send n bytes of ciphertext, in order after everything sent before:
     * sent now or queued (the owner's queue, flushed in the background),
     * never dropped.  Called from inside OpenSSL (the BIO's write): it
     * may suspend for flow control only if no other task uses the engine
     * meanwhile, and any error (an interrupt too) is kept as the
     * connection's write error.  A stream's send never suspends.  Returns
     * 0 or -errno. */
    int (*send)(void *owner, const void *buf, size_t n);
} corio__tls_transport;

/* A connection on config cfg (taking a reference on it): the client side
 * when cfg is a client config, then server_name (may be NULL only with
 * insecure_no_verify) is sent as SNI and verified; the server side
 * otherwise (server_name NULL).  Does not suspend.  Returns 0 and *out,
 * -EINVAL, -ENOMEM, -CORIO_ETLS. */
int corio__tls_new(corio_tls *cfg, const char *server_name, const corio__tls_transport *io, void *owner,
                   corio__tls **out);

/* Run the handshake to its end, within cfg's handshake_timeout_ms.
 * Suspends.  Returns 0, -CORIO_ETLSVERIFY, -CORIO_ETLS, -ETIMEDOUT,
 * -CORIO_ETLSTRUNC (EOF mid-handshake), a transport error, -ECANCELED,
 * -CORIO_EDEADLINE.  After an error the connection is unusable. */
int corio__tls_handshake(corio__tls *t);

/* Read up to n bytes of plaintext.  Suspends while no record is complete.
 * Returns the count (> 0), 0 after the peer's close_notify,
 * -CORIO_ETLSTRUNC at EOF without one, -CORIO_ETLS, or a transport error. */
ssize_t corio__tls_read(corio__tls *t, void *buf, size_t n);

/* Plaintext decrypted and not read yet (a read of it does not suspend). */
size_t corio__tls_pending(const corio__tls *t);

/* Does the engine hold input a read would use before it asks the
 * transport: plaintext (corio__tls_pending) or ciphertext received and not
 * yet decrypted (a whole record or part of one)?  An owner that lets a
 * connection wait without a reader (an HTTP connection parking between
 * requests) must read first while this is true, or a pipelined request
 * already received would wait for bytes that never come.  Does not
 * suspend. */
bool corio__tls_has_input(const corio__tls *t);

/* Encrypt n bytes and hand the records to the transport's send.  May
 * suspend (the transport's flow control).  Returns 0 or -errno. */
int corio__tls_write(corio__tls *t, const void *buf, size_t n);

/* Send close_notify (once; later calls return 0).  Does not wait for the
 * peer's.  Returns 0 or a transport error. */
int corio__tls_shutdown(corio__tls *t);

/* The connection is about to sit idle (a parked keep-alive connection):
 * give back OpenSSL's read and write buffers.  Does not suspend. */
void corio__tls_idle(corio__tls *t);

/* Text of the last failure on t ("" if none).  Never NULL. */
const char *corio__tls_error(const corio__tls *t);

/* ALPN result, TLS version text, resumed?, SNI name (server side), kTLS?
 * As the corio_stream_tls_* calls of the same names. */
const char *corio__tls_alpn(const corio__tls *t);
const char *corio__tls_version(const corio__tls *t);
bool corio__tls_resumed(const corio__tls *t);
const char *corio__tls_server_name(const corio__tls *t);
bool corio__tls_offloaded(const corio__tls *t);

/* For owners that keep a config beyond any one connection (the HTTP
 * server): is cfg a server config, and take a reference on it (dropped
 * with corio_tls_free).  Only in a corio built with TLS (CORIO_HAVE_TLS);
 * implemented in tls_config.c. */
bool corio__tls_is_server(const corio_tls *cfg);
void corio__tls_ref(corio_tls *cfg);

/* Free the connection (no close_notify: call corio__tls_shutdown first
 * for that) and drop its reference on the config.  NULL: no-op. */
void corio__tls_free(corio__tls *t);

#endif
