/*
 * What the TLS engine (src/io/tls.c) needs from a TLS configuration
 * (src/io/tls_config.c): the SSL_CTX, the choices made per connection
 * (server name, certificate set, cached session) and the handshake
 * limit.  Internal to those two files.
 */
#ifndef CORIO_IO_TLS_CTX_H
#define CORIO_IO_TLS_CTX_H

#include "../core/internal.h"

#include <openssl/ssl.h>

/* One set of server certificates, as corio_tls_reload_certs installs it:
 * immutable once built, reference-counted so that a handshake in progress
 * keeps the set it started with while a reload swaps in another. */
typedef struct corio__tls_certs corio__tls_certs;

/* The config behind a corio_tls (for the engine). */
SSL_CTX *corio__tls_ctx(const corio_tls *cfg);
bool corio__tls_is_server(const corio_tls *cfg);
bool corio__tls_insecure(const corio_tls *cfg);
/* The handshake limit in ms (CORIO_NO_TIMEOUT for none). */
uint64_t corio__tls_hs_timeout(const corio_tls *cfg);
void corio__tls_ref(corio_tls *cfg);

/* Server: the current certificate set (a new reference) and its release. */
corio__tls_certs *corio__tls_certs_get(corio_tls *cfg);
void corio__tls_certs_put(corio__tls_certs *set);
/* Put the set's certificate for name (SNI; NULL: the default) on ssl.
 * Returns true on success. */
bool corio__tls_certs_use(const corio__tls_certs *set, SSL *ssl, const char *name);

/* Client: the session kept for server name (a new reference, or NULL). */
SSL_SESSION *corio__tls_session_get(corio_tls *cfg, const char *name);

/* The engine behind an SSL (its app data), for the callbacks in
 * tls_config.c: its certificate set (server) and server name (client). */
corio__tls_certs *corio__tls_conn_certs(const SSL *ssl);
const char *corio__tls_conn_name(const SSL *ssl);

/* Copy the reason for the first error on OpenSSL's queue (or what
 * fallback says) into buf, and clear the queue. */
void corio__tls_errtext(char *buf, size_t cap, const char *fallback);

#endif
