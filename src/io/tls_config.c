/*
 * TLS configurations (corio_tls): an OpenSSL SSL_CTX with corio's choices
 * made once, shared by every connection that uses it, on any thread.
 *
 * Verification is on by default (a client checks the chain against the
 * system store or ca_file/ca_dir, and the name per connection in tls.c);
 * only insecure_no_verify turns it off.  A server keeps its certificates
 * as an immutable, reference-counted set: each new connection takes the
 * current set, the SNI callback picks from that set, and
 * corio_tls_reload_certs builds a whole new set before swapping the
 * pointer under a mutex, so a handshake running on another thread never
 * sees half a reload and a failed reload changes nothing.  A client keeps
 * the last session per server name (tickets), under the same mutex, and
 * offers it on the next connection to that name.
 *
 * Also here: the run-time check for the kernel's TLS offload, and the
 * error text from OpenSSL's error queue shared with the engine.
 */
#include "tls_ctx.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HS_TIMEOUT_DEFAULT_MS 10000u
#define MAX_SESSIONS 64 /* client sessions kept per config (one per server name) */

typedef struct cert_entry {
    X509 *leaf;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
} cert_entry;

struct corio__tls_certs {
    atomic_uint refs;
    size_t n;
    cert_entry e[];
};

typedef struct session_entry {
    char *name;
    SSL_SESSION *sess;
} session_entry;

struct corio_tls {
    atomic_uint refs;
    SSL_CTX *ctx;
    bool server;
    bool insecure;
    bool no_tickets;
    uint64_t hs_timeout_ms;
    unsigned char *alpn; /* wire format (length-prefixed names) */
    size_t alpn_len;
    pthread_mutex_t lock;    /* certs (server), sessions (client) */
    corio__tls_certs *certs; /* server: the current set */
    session_entry sessions[MAX_SESSIONS];
    size_t nsessions, next_evict;
};

bool corio_tls_available(void) { return true; }

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* An alert's name; OpenSSL 3.0's table stops before TLS 1.3's. */
static const char *alert_text(int a)
{
    switch (a) {
    case SSL_AD_MISSING_EXTENSION:
        return "missing extension";
    case SSL_AD_CERTIFICATE_REQUIRED:
        return "certificate required";
    case SSL_AD_NO_APPLICATION_PROTOCOL:
        return "no application protocol";
    default:
        return SSL_alert_desc_string_long(a);
    }
}

void corio__tls_errtext(char *buf, size_t cap, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    if (!e) {
        snprintf(buf, cap, "%s", fallback);
        return;
    }
    int reason = ERR_GET_REASON(e);
    const char *lib = ERR_GET_LIB(e) == ERR_LIB_SSL ? NULL : ERR_lib_error_string(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET &&
        reason < SSL_AD_REASON_OFFSET + 256)
        snprintf(buf, cap, "peer sent alert: %s", alert_text(reason - SSL_AD_REASON_OFFSET));
    else {
        const char *rs = ERR_reason_error_string(e);
        if (lib && rs)
            snprintf(buf, cap, "%s (%s)", rs, lib);
        else
            snprintf(buf, cap, "%s", rs ? rs : fallback);
    }
    ERR_clear_error();
}

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

/* Open path for reading, with errno as the error (OpenSSL's file calls
 * would fold ENOENT and EACCES into one parse error). */
static int open_pem(const char *path, FILE **f)
{
    *f = fopen(path, "re");
    return *f ? 0 : -errno;
}

static void entry_clear(cert_entry *e)
{
    X509_free(e->leaf);
    sk_X509_pop_free(e->chain, X509_free);
    EVP_PKEY_free(e->key);
    memset(e, 0, sizeof *e);
}

/* Load one chain and key.  Returns 0, -ENOENT/-EACCES, -CORIO_ETLS, -ENOMEM. */
static int entry_load(cert_entry *e, const corio_tls_cert *c)
{
    memset(e, 0, sizeof *e);
    if (!c->cert_file || !c->key_file)
        return -EINVAL;
    FILE *f;
    int r = open_pem(c->cert_file, &f);
    if (r)
        return r;
    ERR_clear_error();
    e->leaf = PEM_read_X509(f, NULL, NULL, NULL);
    e->chain = sk_X509_new_null();
    if (e->leaf && e->chain) {
        X509 *x;
        while ((x = PEM_read_X509(f, NULL, NULL, NULL)))
            if (!sk_X509_push(e->chain, x)) {
                X509_free(x);
                r = -ENOMEM;
                break;
            }
        ERR_clear_error(); /* the end of the file reads as "no start line" */
    }
    fclose(f);
    if (!e->chain && !r)
        r = -ENOMEM;
    if (!e->leaf && !r)
        r = -CORIO_ETLS;
    if (!r)
        r = open_pem(c->key_file, &f);
    if (!r) {
        e->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!e->key || X509_check_private_key(e->leaf, e->key) != 1)
            r = -CORIO_ETLS;
    }
    ERR_clear_error();
    if (r)
        entry_clear(e);
    return r;
}

static void certs_free(corio__tls_certs *set)
{
    for (size_t i = 0; i < set->n; i++)
        entry_clear(&set->e[i]);
    corio__free(set);
}

/* A whole new set, or an error with nothing kept. */
static int certs_build(const corio_tls_cert *certs, size_t n, corio__tls_certs **out)
{
    if (n > 1024)
        return -EINVAL;
    corio__tls_certs *set = corio__calloc(1, sizeof *set + n * sizeof(cert_entry));
    if (!set)
        return -ENOMEM;
    atomic_init(&set->refs, 1);
    for (size_t i = 0; i < n; i++) {
        int r = entry_load(&set->e[i], &certs[i]);
        if (r) {
            certs_free(set);
            return r;
        }
        set->n = i + 1;
    }
    *out = set;
    return 0;
}

void corio__tls_certs_put(corio__tls_certs *set)
{
    if (set && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1)
        certs_free(set);
}

corio__tls_certs *corio__tls_certs_get(corio_tls *cfg)
{
    pthread_mutex_lock(&cfg->lock);
    corio__tls_certs *set = cfg->certs;
    if (set)
        atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&cfg->lock);
    return set;
}

bool corio__tls_certs_use(const corio__tls_certs *set, SSL *ssl, const char *name)
{
    const cert_entry *pick = &set->e[0];
    if (name) {
        /* SAN DNS names with RFC 6125 wildcards, as a client would check */
        for (size_t i = 0; i < set->n; i++)
            if (X509_check_host(set->e[i].leaf, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1) {
                pick = &set->e[i];
                break;
            }
    }
    return SSL_use_cert_and_key(ssl, pick->leaf, pick->key, pick->chain, 1) == 1;
}

/* SNI: the client's name picks the certificate (the default is already on
 * the connection). */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    corio__tls_certs *set = corio__tls_conn_certs(ssl);
    if (!name || !set || set->n < 2)
        return SSL_TLSEXT_ERR_OK;
    if (!corio__tls_certs_use(set, ssl, name)) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ------------------------------------------------------------------ */
/* ALPN, sessions                                                      */
/* ------------------------------------------------------------------ */

/* Server: the first of our protocols the client offers; none: go on
 * without ALPN. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                          unsigned inlen, void *arg)
{
    (void)ssl;
    corio_tls *cfg = arg;
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, cfg->alpn, (unsigned)cfg->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

/* Client: a new session (ticket) from the server: keep it as the one to
 * offer next time to the same name. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    corio_tls *cfg = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *name = corio__tls_conn_name(ssl);
    if (!cfg || !name || !SSL_SESSION_is_resumable(sess))
        return 0;
    pthread_mutex_lock(&cfg->lock);
    session_entry *slot = NULL;
    for (size_t i = 0; i < cfg->nsessions; i++)
        if (strcmp(cfg->sessions[i].name, name) == 0) {
            slot = &cfg->sessions[i];
            break;
        }
    if (!slot) {
        char *copy = strdup(name);
        if (!copy) {
            pthread_mutex_unlock(&cfg->lock);
            return 0;
        }
        if (cfg->nsessions < MAX_SESSIONS) {
            slot = &cfg->sessions[cfg->nsessions++];
        } else { /* full: replace in turn */
            slot = &cfg->sessions[cfg->next_evict];
            cfg->next_evict = (cfg->next_evict + 1) % MAX_SESSIONS;
            free(slot->name);
            SSL_SESSION_free(slot->sess);
        }
        slot->name = copy;
        slot->sess = NULL;
    }
    SSL_SESSION_free(slot->sess);
    slot->sess = sess; /* returning 1: the reference is ours */
    pthread_mutex_unlock(&cfg->lock);
    return 1;
}

SSL_SESSION *corio__tls_session_get(corio_tls *cfg, const char *name)
{
    if (cfg->no_tickets || !name)
        return NULL;
    SSL_SESSION *s = NULL;
    pthread_mutex_lock(&cfg->lock);
    for (size_t i = 0; i < cfg->nsessions; i++)
        if (strcmp(cfg->sessions[i].name, name) == 0) {
            s = cfg->sessions[i].sess;
            if (s && !SSL_SESSION_up_ref(s))
                s = NULL;
            break;
        }
    pthread_mutex_unlock(&cfg->lock);
    return s;
}

/* ------------------------------------------------------------------ */
/* Configurations                                                      */
/* ------------------------------------------------------------------ */

static int check_version(int v) { return v == 0 || v == TLS1_2_VERSION || v == TLS1_3_VERSION ? 0 : -EINVAL; }

static int check_options(const corio_tls_options *o, bool server)
{
    if ((o->n_certs && !o->certs) || (o->n_alpn && !o->alpn))
        return -EINVAL;
    if (server ? o->n_certs == 0 || o->insecure_no_verify : o->n_certs > 1 || o->verify_client)
        return -EINVAL;
    if (o->verify_client && !o->ca_file && !o->ca_dir)
        return -EINVAL;
    if (check_version(o->min_version) || check_version(o->max_version))
        return -EINVAL;
    int lo = o->min_version ? o->min_version : TLS1_2_VERSION,
        hi = o->max_version ? o->max_version : TLS1_3_VERSION;
    if (lo > hi || o->n_alpn > 64)
        return -EINVAL;
    for (size_t i = 0; i < o->n_alpn; i++) {
        size_t l = o->alpn[i] ? strlen(o->alpn[i]) : 0;
        if (l == 0 || l > 255)
            return -EINVAL;
    }
    return 0;
}

static void cfg_free(corio_tls *cfg)
{
    SSL_CTX_free(cfg->ctx);
    corio__tls_certs_put(cfg->certs);
    for (size_t i = 0; i < cfg->nsessions; i++) {
        free(cfg->sessions[i].name);
        SSL_SESSION_free(cfg->sessions[i].sess);
    }
    corio__free(cfg->alpn);
    pthread_mutex_destroy(&cfg->lock);
    corio__free(cfg);
}

/* Trust anchors from files, with errno for a missing or unreadable one. */
static int load_trust(SSL_CTX *ctx, const char *file, const char *dir)
{
    if (file && access(file, R_OK) < 0)
        return -errno;
    if (dir && access(dir, R_OK | X_OK) < 0)
        return -errno;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, file, dir) != 1) {
        ERR_clear_error();
        return -CORIO_ETLS;
    }
    return 0;
}

static int cfg_new(const corio_tls_options *opt, bool server, corio_tls **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    static const corio_tls_options defaults;
    if (!opt) {
        if (server)
            return -EINVAL;
        opt = &defaults;
    }
    int r = check_options(opt, server);
    if (r)
        return r;
    corio_tls *cfg = corio__calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    atomic_init(&cfg->refs, 1);
    if (pthread_mutex_init(&cfg->lock, NULL) != 0) {
        corio__free(cfg);
        return -ENOMEM;
    }
    cfg->server = server;
    cfg->insecure = opt->insecure_no_verify;
    cfg->no_tickets = opt->no_session_tickets;
    cfg->hs_timeout_ms = opt->handshake_timeout_ms ? opt->handshake_timeout_ms : HS_TIMEOUT_DEFAULT_MS;
    ERR_clear_error();
    cfg->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!cfg->ctx) {
        ERR_clear_error();
        cfg_free(cfg);
        return -ENOMEM;
    }
    SSL_CTX *ctx = cfg->ctx;
    SSL_CTX_set_app_data(ctx, cfg);
    SSL_CTX_set_min_proto_version(ctx, opt->min_version ? opt->min_version : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, opt->max_version ? opt->max_version : TLS1_3_VERSION);
    /* No renegotiation: a read never has to write and a write never has to
     * read, so one task may read while another writes. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections give OpenSSL's buffers back; reads take whole
     * buffers of records from our ciphertext buffer at once. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    if (opt->n_alpn) {
        size_t len = 0;
        for (size_t i = 0; i < opt->n_alpn; i++)
            len += 1 + strlen(opt->alpn[i]);
        cfg->alpn = corio__malloc(len);
        if (!cfg->alpn) {
            cfg_free(cfg);
            return -ENOMEM;
        }
        for (size_t i = 0; i < opt->n_alpn; i++) {
            size_t l = strlen(opt->alpn[i]);
            cfg->alpn[cfg->alpn_len++] = (unsigned char)l;
            memcpy(cfg->alpn + cfg->alpn_len, opt->alpn[i], l);
            cfg->alpn_len += l;
        }
    }
    if (server) {
        r = certs_build(opt->certs, opt->n_certs, &cfg->certs);
        if (r) {
            cfg_free(cfg);
            return r;
        }
        SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
        if (cfg->alpn)
            SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, cfg);
        /* Tickets are stateless: no server-side session cache to share
         * (and lock) between threads. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        static const unsigned char sid_ctx[] = "corio";
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
        if (cfg->no_tickets) {
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(ctx, 0);
        }
        if (opt->verify_client) {
            r = load_trust(ctx, opt->ca_file, opt->ca_dir);
            if (r) {
                cfg_free(cfg);
                return r;
            }
            if (opt->ca_file) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(opt->ca_file);
                if (names)
                    SSL_CTX_set_client_CA_list(ctx, names);
                ERR_clear_error();
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
    } else {
        if (opt->n_certs) {
            cert_entry e;
            r = entry_load(&e, &opt->certs[0]);
            if (r == 0 && SSL_CTX_use_cert_and_key(ctx, e.leaf, e.key, e.chain, 1) != 1)
                r = -CORIO_ETLS;
            if (r == 0)
                entry_clear(&e);
            if (r) {
                ERR_clear_error();
                cfg_free(cfg);
                return r;
            }
        }
        if (cfg->alpn && SSL_CTX_set_alpn_protos(ctx, cfg->alpn, (unsigned)cfg->alpn_len) != 0) {
            cfg_free(cfg);
            return -ENOMEM;
        }
        if (!cfg->insecure) {
            if (opt->ca_file || opt->ca_dir)
                r = load_trust(ctx, opt->ca_file, opt->ca_dir);
            else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
                r = -CORIO_ETLS;
            if (r) {
                ERR_clear_error();
                cfg_free(cfg);
                return r;
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        }
        if (cfg->no_tickets) {
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        } else {
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
            SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
        }
    }
    ERR_clear_error();
    *out = cfg;
    return 0;
}

int corio_tls_client_new(const corio_tls_options *opt, corio_tls **out) { return cfg_new(opt, false, out); }

int corio_tls_server_new(const corio_tls_options *opt, corio_tls **out) { return cfg_new(opt, true, out); }

int corio_tls_reload_certs(corio_tls *tls, const corio_tls_cert *certs, size_t n_certs)
{
    if (!tls || !tls->server || !certs || n_certs == 0)
        return -EINVAL;
    corio__tls_certs *set;
    int r = certs_build(certs, n_certs, &set);
    if (r)
        return r;
    pthread_mutex_lock(&tls->lock);
    corio__tls_certs *old = tls->certs;
    tls->certs = set;
    pthread_mutex_unlock(&tls->lock);
    corio__tls_certs_put(old); /* handshakes still using it hold their own reference */
    return 0;
}

void corio__tls_ref(corio_tls *cfg) { atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed); }

void corio_tls_free(corio_tls *tls)
{
    if (tls && atomic_fetch_sub_explicit(&tls->refs, 1, memory_order_acq_rel) == 1)
        cfg_free(tls);
}

SSL_CTX *corio__tls_ctx(const corio_tls *cfg) { return cfg->ctx; }
bool corio__tls_is_server(const corio_tls *cfg) { return cfg->server; }
bool corio__tls_insecure(const corio_tls *cfg) { return cfg->insecure; }
uint64_t corio__tls_hs_timeout(const corio_tls *cfg) { return cfg->hs_timeout_ms; }

/* ------------------------------------------------------------------ */
/* Kernel TLS offload: detection only                                  */
/* ------------------------------------------------------------------ */

static bool offload_ok;
static pthread_once_t offload_once = PTHREAD_ONCE_INIT;

/* Can a connected TCP socket take the "tls" ULP?  Only an established
 * socket can, so make a loopback pair (blocking: it completes at once). */
static void offload_probe(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int c = -1, s = -1;
    if (bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (struct sockaddr *)&a, &al) == 0) {
        c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0)
            s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    }
    if (s >= 0 && setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0)
        offload_ok = true;
    if (s >= 0)
        close(s);
    if (c >= 0)
        close(c);
    close(l);
}

bool corio_tls_kernel_offload_available(void)
{
    pthread_once(&offload_once, offload_probe);
    return offload_ok;
}
