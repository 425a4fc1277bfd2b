/*
 * TLS in a corio built without OpenSSL 3 (CMake found no libssl): every
 * TLS call says so with -EOPNOTSUPP (or false / NULL / ""), and the hooks
 * stream.c calls for TLS streams are never reached, as no stream can
 * become one.  Replaces tls.c, tls_config.c and tls_stream.c.
 */
#include "tls.h"
#include "tls_stream.h"

bool corio_tls_available(void) { return false; }
bool corio_tls_kernel_offload_available(void) { return false; }

int corio_tls_client_new(const corio_tls_options *opt, corio_tls **out)
{
    (void)opt;
    if (out)
        *out = NULL;
    return out ? -EOPNOTSUPP : -EINVAL;
}

int corio_tls_server_new(const corio_tls_options *opt, corio_tls **out)
{
    return corio_tls_client_new(opt, out);
}

int corio_tls_reload_certs(corio_tls *tls, const corio_tls_cert *certs, size_t n_certs)
{
    (void)certs;
    (void)n_certs;
    return tls ? -EOPNOTSUPP : -EINVAL;
}

void corio_tls_free(corio_tls *tls) { (void)tls; }

int corio_stream_start_tls(corio_stream *s, corio_tls *tls, const char *server_name)
{
    (void)server_name;
    return s && tls ? -EOPNOTSUPP : -EINVAL;
}

int corio_stream_connect_tls(const char *host, uint16_t port, corio_tls *tls, corio_stream **out)
{
    (void)port;
    if (!out)
        return -EINVAL;
    *out = NULL;
    return host && tls ? -EOPNOTSUPP : -EINVAL;
}

const char *corio_stream_tls_error(const corio_stream *s)
{
    (void)s;
    return "";
}
const char *corio_stream_tls_alpn(const corio_stream *s)
{
    (void)s;
    return NULL;
}
const char *corio_stream_tls_version(const corio_stream *s)
{
    (void)s;
    return NULL;
}
bool corio_stream_tls_resumed(const corio_stream *s)
{
    (void)s;
    return false;
}
const char *corio_stream_tls_server_name(const corio_stream *s)
{
    (void)s;
    return NULL;
}
bool corio_stream_tls_offloaded(const corio_stream *s)
{
    (void)s;
    return false;
}

int corio__tls_server_hold(corio_tls *tls) { return tls ? -EOPNOTSUPP : 0; }

/* Never called: no stream is TLS in this build. */
ssize_t corio__tls_stream_read(corio__tls_stream *x, void *buf, size_t n)
{
    (void)x;
    (void)buf;
    (void)n;
    return -EOPNOTSUPP;
}
int corio__tls_stream_write(corio__tls_stream *x, const void *buf, size_t n)
{
    (void)x;
    (void)buf;
    (void)n;
    return -EOPNOTSUPP;
}
int corio__tls_stream_shutdown(corio__tls_stream *x)
{
    (void)x;
    return 0;
}
void corio__tls_stream_stop(corio__tls_stream *x) { (void)x; }
bool corio__tls_stream_busy(const corio__tls_stream *x)
{
    (void)x;
    return false;
}
void corio__tls_stream_free(corio__tls_stream *x) { (void)x; }

/* The engine (src/io/tls.h), for http/: no config can exist, so only
 * corio__tls_new is ever called, and it fails. */
int corio__tls_new(corio_tls *cfg, const char *server_name, const corio__tls_transport *io, void *owner,
                   corio__tls **out)
{
    (void)cfg;
    (void)server_name;
    (void)io;
    (void)owner;
    if (out)
        *out = NULL;
    return -EOPNOTSUPP;
}
int corio__tls_handshake(corio__tls *t)
{
    (void)t;
    return -EOPNOTSUPP;
}
ssize_t corio__tls_read(corio__tls *t, void *buf, size_t n)
{
    (void)t;
    (void)buf;
    (void)n;
    return -EOPNOTSUPP;
}
size_t corio__tls_pending(const corio__tls *t)
{
    (void)t;
    return 0;
}
int corio__tls_write(corio__tls *t, const void *buf, size_t n)
{
    (void)t;
    (void)buf;
    (void)n;
    return -EOPNOTSUPP;
}
int corio__tls_shutdown(corio__tls *t)
{
    (void)t;
    return 0;
}
bool corio__tls_has_input(const corio__tls *t)
{
    (void)t;
    return false;
}
void corio__tls_idle(corio__tls *t) { (void)t; }
const char *corio__tls_error(const corio__tls *t)
{
    (void)t;
    return "";
}
const char *corio__tls_alpn(const corio__tls *t)
{
    (void)t;
    return NULL;
}
const char *corio__tls_version(const corio__tls *t)
{
    (void)t;
    return NULL;
}
bool corio__tls_resumed(const corio__tls *t)
{
    (void)t;
    return false;
}
const char *corio__tls_server_name(const corio__tls *t)
{
    (void)t;
    return NULL;
}
bool corio__tls_offloaded(const corio__tls *t)
{
    (void)t;
    return false;
}
void corio__tls_free(corio__tls *t) { (void)t; }
