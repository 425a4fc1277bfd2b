/*
 * The TLS engine (src/io/tls.h): one OpenSSL SSL over its owner's
 * transport, never over an fd.
 *
 * OpenSSL sees a custom BIO whose calls never suspend.  Its write side
 * hands each record straight to the transport's send (for a stream: a
 * send(2) from OpenSSL's own buffer, or the stream's write queue), so no
 * copy is added there.  Its read side serves ciphertext the engine already
 * holds (ibuf) and otherwise says "retry"; the engine then waits for more
 * through the transport's recv *outside* OpenSSL and calls OpenSSL again.
 * Waiting outside costs one copy of the ciphertext (ibuf into OpenSSL's
 * record buffer) but buys two things a suspension inside a BIO callback
 * could not give: another task may write on the connection while one is
 * parked in a read (OpenSSL's calls on one SSL never interleave), and a
 * cancel or deadline during the wait leaves OpenSSL in its ordinary
 * "want read" state, so nothing is lost and the next call goes on.
 * Plaintext is decrypted straight into the caller's memory.
 *
 * OpenSSL's error queue is per thread and shared by every task on the
 * loop; as no OpenSSL call suspends, each is bracketed by a clear before
 * and a read-and-clear after.
 */
#include "tls.h"
#include "tls_ctx.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Ciphertext received and not yet taken by OpenSSL: room for a full
 * record and then some, so a bulk transfer moves 32 KiB per receive.  It
 * starts at IBUF_SMALL (a ClientHello, a request, a handshake flight fit)
 * and grows to IBUF_CAP once a receive fills it: a server with thousands
 * of handshakes in flight holds 4 KiB for each, not 32. */
#define IBUF_CAP (32u * 1024u)
#define IBUF_SMALL (4u * 1024u)

struct corio__tls {
    SSL *ssl;
    corio_tls *cfg;
    corio__tls_certs *certs; /* server: the set this connection picks from */
    const corio__tls_transport *io;
    void *owner;
    char *name; /* client: the server name (session key, host check) */
    char *ibuf; /* ciphertext: ibuf[istart, iend) of icap */
    size_t istart, iend, icap;
    bool ifilled;  /* the last receive filled ibuf: grow it when it is empty */
    int werr;      /* sticky: the transport's send failed */
    int rerr;      /* with rdone: the read side's last word, 0 (close_notify) or an error */
    bool rdone;    /* the read side is over */
    int hs_err;    /* the handshake failed with this */
    bool eof;      /* the transport's recv gave 0 */
    bool hs_done;  /* handshake complete */
    bool shut;     /* close_notify sent */
    char *alpn;    /* the protocol ALPN agreed on, or NULL */
    char err[200]; /* why the last call failed */
};

/* ------------------------------------------------------------------ */
/* The BIO                                                             */
/* ------------------------------------------------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *out, int len)
{
    corio__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = t->iend - t->istart;
    if (avail == 0) {
        if (t->eof)
            return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    size_t k = (size_t)len < avail ? (size_t)len : avail;
    memcpy(out, t->ibuf + t->istart, k);
    t->istart += k;
    return (int)k;
}

static int bio_write(BIO *b, const char *in, int len)
{
    corio__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->werr)
        return -1;
    int r = t->io->send(t->owner, in, (size_t)len);
    if (r < 0) {
        t->werr = r;
        return -1;
    }
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the transport sends (or queues) every record at once */
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
        return 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_setup(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "corio transport");
    if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

static bool is_ip(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

corio__tls_certs *corio__tls_conn_certs(const SSL *ssl)
{
    corio__tls *t = SSL_get_app_data(ssl);
    return t ? t->certs : NULL;
}

const char *corio__tls_conn_name(const SSL *ssl)
{
    corio__tls *t = SSL_get_app_data(ssl);
    return t ? t->name : NULL;
}

int corio__tls_new(corio_tls *cfg, const char *server_name, const corio__tls_transport *io, void *owner,
                   corio__tls **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!cfg || !io || !io->recv || !io->send)
        return -EINVAL;
    bool server = corio__tls_is_server(cfg);
    if (server ? server_name != NULL : !server_name && !corio__tls_insecure(cfg))
        return -EINVAL;
    if (server_name && (!*server_name || strlen(server_name) > 253))
        return -EINVAL;
    pthread_once(&bio_once, bio_setup);
    if (!bio_method)
        return -ENOMEM;
    corio__tls *t = corio__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->cfg = cfg;
    t->io = io;
    t->owner = owner;
    int r = -ENOMEM;
    if (server_name && !(t->name = strdup(server_name)))
        goto fail;
    ERR_clear_error();
    t->ssl = SSL_new(corio__tls_ctx(cfg));
    BIO *bio = t->ssl ? BIO_new(bio_method) : NULL;
    if (!bio)
        goto fail;
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: the SSL owns it */
    SSL_set_app_data(t->ssl, t);
    if (server) {
        t->certs = corio__tls_certs_get(cfg);
        if (!t->certs || !corio__tls_certs_use(t->certs, t->ssl, NULL))
            goto fail;
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (t->name) {
            bool ip = is_ip(t->name);
            /* SNI carries host names only (RFC 6066) */
            if (!ip && SSL_set_tlsext_host_name(t->ssl, t->name) != 1)
                goto fail;
            if (!corio__tls_insecure(cfg)) {
                X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
                X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (ip ? X509_VERIFY_PARAM_set1_ip_asc(p, t->name) != 1 : SSL_set1_host(t->ssl, t->name) != 1)
                    goto fail;
            }
            SSL_SESSION *sess = corio__tls_session_get(cfg, t->name);
            if (sess) {
                (void)SSL_set_session(t->ssl, sess); /* a stale one just means a full handshake */
                SSL_SESSION_free(sess);
            }
        }
    }
    ERR_clear_error();
    corio__tls_ref(cfg);
    *out = t;
    return 0;
fail:
    ERR_clear_error();
    t->cfg = NULL; /* no reference taken yet */
    corio__tls_free(t);
    return r;
}

void corio__tls_free(corio__tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    corio__tls_certs_put(t->certs);
    corio__free(t->ibuf);
    corio__free(t->alpn);
    free(t->name);
    if (t->cfg)
        corio_tls_free(t->cfg);
    corio__free(t);
}

/* ------------------------------------------------------------------ */
/* Waiting for ciphertext, errors                                      */
/* ------------------------------------------------------------------ */

/* OpenSSL wants more input: receive it into ibuf (it took all it had).
 * Suspends.  Returns 0 (more is there, or EOF is recorded for OpenSSL
 * to see) or the transport's error. */
static int want_more(corio__tls *t)
{
    if (t->eof)
        return 0;
    if (t->istart == t->iend) {
        t->istart = t->iend = 0;
        if (t->ibuf && t->ifilled && t->icap < IBUF_CAP) {
            corio__free(t->ibuf); /* empty: nothing to keep */
            t->ibuf = NULL;
        }
    }
    if (!t->ibuf) {
        size_t cap = t->ifilled ? IBUF_CAP : IBUF_SMALL;
        t->ibuf = corio__malloc(cap);
        if (!t->ibuf)
            return -ENOMEM;
        t->icap = cap;
    }
    if (t->iend == t->icap)
        return 0; /* OpenSSL has not taken all yet: let it */
    ssize_t r = t->io->recv(t->owner, t->ibuf + t->iend, t->icap - t->iend);
    if (r > 0) {
        t->iend += (size_t)r;
        t->ifilled = t->iend == t->icap;
    } else if (r == 0)
        t->eof = true;
    else
        return (int)r;
    return 0;
}

/* Why an OpenSSL call on t failed (ret its return value): 1 = it wants
 * more input (want_more and retry), else a negative error, with t->err set.
 * 0 = the peer's close_notify.  Clears the error queue. */
static int failure(corio__tls *t, int ret)
{
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        ERR_clear_error();
        return 1;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    default:
        break;
    }
    if (t->werr) {
        ERR_clear_error();
        snprintf(t->err, sizeof t->err, "%s", corio_strerror(t->werr));
        return t->werr;
    }
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK && e == SSL_ERROR_SSL &&
        ERR_GET_REASON(ERR_peek_error()) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        ERR_clear_error();
        snprintf(t->err, sizeof t->err, "%s",
                 v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH
                     ? "hostname mismatch"
                     : X509_verify_cert_error_string(v));
        return -CORIO_ETLSVERIFY;
    }
    unsigned long q = ERR_peek_error();
    if (t->eof && (e == SSL_ERROR_SYSCALL || (ERR_GET_LIB(q) == ERR_LIB_SSL &&
                                              ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING))) {
        ERR_clear_error();
        snprintf(t->err, sizeof t->err, "connection closed without TLS close_notify");
        return -CORIO_ETLSTRUNC;
    }
    corio__tls_errtext(t->err, sizeof t->err, "TLS protocol error");
    return -CORIO_ETLS;
}

static inline bool interrupted(int r) { return r == -ECANCELED || r == -CORIO_EDEADLINE; }

/* ------------------------------------------------------------------ */
/* Handshake                                                           */
/* ------------------------------------------------------------------ */

static int handshake_steps(corio__tls *t)
{
    for (;;) {
        ERR_clear_error();
        int ret = SSL_do_handshake(t->ssl);
        if (ret == 1)
            return 0;
        int f = failure(t, ret);
        if (f == 0) { /* close_notify during the handshake */
            snprintf(t->err, sizeof t->err, "peer closed the connection during the handshake");
            return -CORIO_ETLSTRUNC;
        }
        if (f < 0)
            return f;
        int r = want_more(t);
        if (r < 0) {
            if (!interrupted(r))
                snprintf(t->err, sizeof t->err, "%s", corio_strerror(r));
            return r;
        }
    }
}

int corio__tls_handshake(corio__tls *t)
{
    if (!t)
        return -EINVAL;
    if (t->hs_done)
        return 0;
    if (t->hs_err)
        return t->hs_err;
    int r = corio__check();
    if (r)
        return t->hs_err = r;
    t->err[0] = 0;
    uint64_t limit = corio__tls_hs_timeout(t->cfg);
    corio_task *self = corio__current_task();
    bool limited = self && limit != CORIO_NO_TIMEOUT;
    uint64_t enclosing = self ? self->deadline : CORIO__NO_DEADLINE;
    corio_deadline d = {CORIO__NO_DEADLINE};
    if (limited)
        d = corio_deadline_push(limit);
    bool ours = self && self->deadline != enclosing; /* only our own limit is a time-out */
    r = handshake_steps(t);
    if (limited)
        corio_deadline_pop(d);
    if (r == -CORIO_EDEADLINE && ours) {
        r = -ETIMEDOUT;
        snprintf(t->err, sizeof t->err, "handshake timed out");
    }
    if (r) {
        t->hs_err = r;
        return r;
    }
    t->hs_done = true;
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (p && len && (t->alpn = corio__malloc(len + 1))) { /* OpenSSL's copy is not NUL-terminated */
        memcpy(t->alpn, p, len);
        t->alpn[len] = 0;
    }
    if (t->certs) { /* the certificate is chosen: the set may go */
        corio__tls_certs_put(t->certs);
        t->certs = NULL;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

ssize_t corio__tls_read(corio__tls *t, void *buf, size_t n)
{
    if (!t || (!buf && n))
        return -EINVAL;
    if (!t->hs_done) {
        int r = corio__tls_handshake(t);
        if (r)
            return r;
    }
    if (t->rdone)
        return t->rerr;
    if (n == 0)
        return 0;
    for (;;) {
        size_t got = 0;
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, buf, n, &got) == 1)
            return (ssize_t)got;
        int f = failure(t, 0);
        if (f <= 0) {
            t->rdone = true; /* close_notify or a fatal error: the read side is over */
            t->rerr = f;
            return f;
        }
        int r = want_more(t);
        if (r < 0) /* an interrupt leaves everything as it was; the owner records its own errors */
            return r;
    }
}

size_t corio__tls_pending(const corio__tls *t) { return t && t->ssl ? (size_t)SSL_pending(t->ssl) : 0; }

bool corio__tls_has_input(const corio__tls *t)
{
    /* SSL_has_pending: a record OpenSSL took in (read-ahead) and has not
     * processed; ibuf: ciphertext OpenSSL has not asked for yet */
    return t && t->ssl && (SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl) || t->iend > t->istart);
}

int corio__tls_write(corio__tls *t, const void *buf, size_t n)
{
    if (!t || (!buf && n))
        return -EINVAL;
    if (t->werr)
        return t->werr;
    if (t->shut)
        return -EPIPE;
    if (!t->hs_done) {
        int r = corio__tls_handshake(t);
        if (r)
            return r;
    }
    if (n == 0)
        return 0;
    for (;;) {
        size_t done = 0;
        ERR_clear_error();
        /* no partial writes: every record is handed to the transport before this returns */
        if (SSL_write_ex(t->ssl, buf, n, &done) == 1)
            return 0;
        int f = failure(t, 0);
        if (f < 0)
            return f;
        if (f == 0)
            return -EPIPE;
        int r = want_more(t); /* only before the handshake is over */
        if (r < 0)
            return r;
    }
}

int corio__tls_shutdown(corio__tls *t)
{
    if (!t)
        return -EINVAL;
    if (t->shut || !t->hs_done || (t->rdone && t->rerr < 0 && t->rerr != -CORIO_ETLSTRUNC))
        return t->werr;
    t->shut = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* 0: ours sent, the peer's not seen: we do not wait for it */
    ERR_clear_error();
    return t->werr;
}

void corio__tls_idle(corio__tls *t)
{
    if (!t)
        return;
    if (t->ssl)
        (void)SSL_free_buffers(t->ssl); /* refuses while records are buffered: they stay */
    if (t->ibuf && t->istart == t->iend) {
        corio__free(t->ibuf);
        t->ibuf = NULL;
        t->istart = t->iend = t->icap = 0;
        t->ifilled = false; /* a connection that wakes up starts small again */
    }
}

/* ------------------------------------------------------------------ */
/* Queries                                                             */
/* ------------------------------------------------------------------ */

const char *corio__tls_error(const corio__tls *t) { return t ? t->err : ""; }

const char *corio__tls_alpn(const corio__tls *t)
{
    if (!t || !t->hs_done)
        return NULL;
    return t->alpn;
}

const char *corio__tls_version(const corio__tls *t)
{
    return t && t->hs_done ? SSL_get_version(t->ssl) : NULL;
}

bool corio__tls_resumed(const corio__tls *t) { return t && t->hs_done && SSL_session_reused(t->ssl) == 1; }

const char *corio__tls_server_name(const corio__tls *t)
{
    if (!t || !t->ssl)
        return NULL;
    return SSL_is_server(t->ssl) ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : t->name;
}

bool corio__tls_offloaded(const corio__tls *t)
{
    (void)t;
    return false; /* records are always made in user space: see corio_tls_kernel_offload_available */
}
