/* SPDX-License-Identifier: MIT
 * tls.c: loading and checking the node's TLS material; the per-connection
 * client-certificate requirement (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cs_log.h"

#define TLS_FILE_MAX ((size_t)1 << 20) /* PEM files above 1 MiB are refused */

struct cs_tls {
    char *cert, *key, *ca;
    size_t cert_len, key_len, ca_len;
    char desc[640];
};

/* Reads a whole regular file into a NUL-terminated buffer. */
static cs_err
read_pem(const char *flag, const char *path, char **out, size_t *outlen,
         bool secret, cs_errbuf *eb)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    cs_err rv = CS_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        rv = cs_errf(eb, CS_EIO, "%s %s: cannot open: %s", flag, path,
                     strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rv = cs_errf(eb, CS_EINVAL, "%s %s: not a regular file", flag, path);
        goto out;
    }
    if ((size_t)st.st_size > TLS_FILE_MAX || st.st_size == 0) {
        rv = cs_errf(eb, CS_EINVAL, "%s %s: %s", flag, path,
                     st.st_size == 0 ? "empty file" : "larger than 1 MiB");
        goto out;
    }
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        cs_log(CS_LOG_WARN, "TLS-KEY-MODE",
               "%s %s is accessible by group or others (mode %03o); "
               "chmod 600 it",
               flag, path, (unsigned)(st.st_mode & 0777));
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rv = CS_ENOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (len == 0 || strstr(buf, "-----BEGIN ") == NULL) {
        rv = cs_errf(eb, CS_EINVAL, "%s %s: not a PEM file", flag, path);
        goto out;
    }
    *out = buf;
    *outlen = len;
    buf = NULL;
out:
    if (buf != NULL) {
        explicit_bzero(buf, (size_t)st.st_size + 1);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rv;
}

static void
fmt_time(time_t t, char *buf, size_t n)
{
    struct tm tm;
    if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL)
        snprintf(buf, n, "?");
    else
        strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Checks the leaf certificate's validity period; fills t->desc. */
static cs_err
check_leaf(cs_tls *t, const char *cert_path, cs_errbuf *eb)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d = {(unsigned char *)t->cert, (unsigned)t->cert_len};
    gnutls_datum_t dn = {NULL, 0}, issuer = {NULL, 0};
    char nb[32], na[32];
    time_t now = time(NULL), from, until;
    cs_err rv = CS_OK;
    int rc;

    if ((rc = gnutls_x509_crt_init(&crt)) < 0 ||
        (rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM)) < 0) {
        rv = cs_errf(eb, CS_EINVAL, "--tls-cert %s: %s", cert_path,
                     gnutls_strerror(rc));
        goto out;
    }
    from = gnutls_x509_crt_get_activation_time(crt);
    until = gnutls_x509_crt_get_expiration_time(crt);
    fmt_time(from, nb, sizeof(nb));
    fmt_time(until, na, sizeof(na));
    if (until != (time_t)-1 && until < now) {
        rv = cs_errf(eb, CS_EINVAL, "--tls-cert %s: certificate expired at %s",
                     cert_path, na);
        goto out;
    }
    if (from != (time_t)-1 && from > now) {
        rv = cs_errf(eb, CS_EINVAL,
                     "--tls-cert %s: certificate not valid before %s",
                     cert_path, nb);
        goto out;
    }
    gnutls_x509_crt_get_dn3(crt, &dn, 0);
    gnutls_x509_crt_get_issuer_dn3(crt, &issuer, 0);
    snprintf(t->desc, sizeof(t->desc),
             "subject=\"%.200s\" issuer=\"%.200s\" not_after=%s "
             "mutual_tls=%s",
             dn.data ? (const char *)dn.data : "?",
             issuer.data ? (const char *)issuer.data : "?", na,
             t->ca ? "on" : "off");
out:
    gnutls_free(dn.data);
    gnutls_free(issuer.data);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    return rv;
}

cs_err
cs_tls_load(const char *cert, const char *key, const char *client_ca,
            cs_tls **out, cs_errbuf *eb)
{
    cs_tls *t = NULL;
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_datum_t dc, dk, da;
    cs_err rv = CS_OK;
    int rc;

    if (cert == NULL || key == NULL) {
        rv = cs_errf(eb, CS_EINVAL, "TLS needs both --tls-cert and "
                                    "--tls-key");
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        rv = CS_ENOMEM;
        goto out;
    }
    if ((rv = read_pem("--tls-cert", cert, &t->cert, &t->cert_len, false,
                       eb)) != CS_OK ||
        (rv = read_pem("--tls-key", key, &t->key, &t->key_len, true, eb)) !=
            CS_OK)
        goto out;
    if (client_ca != NULL &&
        (rv = read_pem("--tls-client-ca", client_ca, &t->ca, &t->ca_len,
                       false, eb)) != CS_OK)
        goto out;
    if ((rc = gnutls_certificate_allocate_credentials(&cred)) < 0) {
        rv = cs_errf(eb, CS_ENOMEM, "gnutls: %s", gnutls_strerror(rc));
        goto out;
    }
    dc.data = (unsigned char *)t->cert;
    dc.size = (unsigned)t->cert_len;
    dk.data = (unsigned char *)t->key;
    dk.size = (unsigned)t->key_len;
    rc = gnutls_certificate_set_x509_key_mem(cred, &dc, &dk,
                                             GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        rv = cs_errf(eb, CS_EINVAL, "--tls-cert %s / --tls-key %s: %s", cert,
                     key, gnutls_strerror(rc));
        goto out;
    }
    if (t->ca != NULL) {
        da.data = (unsigned char *)t->ca;
        da.size = (unsigned)t->ca_len;
        rc = gnutls_certificate_set_x509_trust_mem(cred, &da,
                                                   GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            rv = cs_errf(eb, CS_EINVAL, "--tls-client-ca %s: %s", client_ca,
                         rc < 0 ? gnutls_strerror(rc)
                                : "no CA certificate found");
            goto out;
        }
    }
    if ((rv = check_leaf(t, cert, eb)) != CS_OK)
        goto out;
    *out = t;
    t = NULL;
out:
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    cs_tls_free(t);
    return rv;
}

void
cs_tls_free(cs_tls *t)
{
    if (t == NULL)
        return;
    if (t->key != NULL) {
        explicit_bzero(t->key, t->key_len);
        free(t->key);
    }
    free(t->cert);
    free(t->ca);
    free(t);
}

const char *
cs_tls_cert_pem(const cs_tls *t)
{
    return t->cert;
}

const char *
cs_tls_key_pem(const cs_tls *t)
{
    return t->key;
}

const char *
cs_tls_ca_pem(const cs_tls *t)
{
    return t->ca;
}

const char *
cs_tls_priorities(void)
{
    return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
}

const char *
cs_tls_describe(const cs_tls *t)
{
    return t->desc;
}

bool
cs_tls_session_setup(void *session)
{
    gnutls_session_t s = session;
    if (s == NULL)
        return false;
    /* MHD asked for GNUTLS_CERT_REQUEST (optional); make it mandatory and
     * let GnuTLS verify the chain against the trust list (the client CA)
     * inside the handshake, so a failure aborts the handshake. */
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(s, NULL, 0);
    return true;
}

bool
cs_tls_peer_verified(void *session, char *why, size_t whylen, char *subject,
                     size_t subjlen)
{
    gnutls_session_t s = session;
    unsigned status = 0, n = 0;
    const gnutls_datum_t *peers;
    int rc;

    if (subject != NULL && subjlen > 0)
        subject[0] = '\0';
    if (s == NULL) {
        snprintf(why, whylen, "not a TLS connection");
        return false;
    }
    rc = gnutls_certificate_verify_peers2(s, &status);
    if (rc < 0) {
        snprintf(why, whylen, "%s", gnutls_strerror(rc));
        return false;
    }
    if (status != 0) {
        gnutls_datum_t txt = {NULL, 0};
        if (gnutls_certificate_verification_status_print(
                status, GNUTLS_CRT_X509, &txt, 0) == 0 &&
            txt.data != NULL)
            snprintf(why, whylen, "%s", (const char *)txt.data);
        else
            snprintf(why, whylen, "certificate not trusted (status 0x%x)",
                     status);
        gnutls_free(txt.data);
        return false;
    }
    peers = gnutls_certificate_get_peers(s, &n);
    if (subject != NULL && subjlen > 0 && peers != NULL && n > 0) {
        gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t dn = {NULL, 0};
        if (gnutls_x509_crt_init(&crt) == 0) {
            if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) ==
                    0 &&
                gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0)
                snprintf(subject, subjlen, "%s", (const char *)dn.data);
            gnutls_free(dn.data);
            gnutls_x509_crt_deinit(crt);
        }
    }
    return true;
}

int
cs_tls_handshake_refused(void *session, char *why, size_t whylen)
{
    gnutls_session_t s = session;
    unsigned status;
    gnutls_datum_t txt = {NULL, 0};
    if (s == NULL)
        return 0;
    /* GnuTLS keeps the result of the in-handshake verification:
     * (unsigned)-1 when none ran (no certificate came, or the handshake
     * never got that far). */
    status = gnutls_session_get_verify_cert_status(s);
    if (status == 0)
        return 0;
    if (status == (unsigned)-1) {
        snprintf(why, whylen, "the TLS handshake did not complete (no "
                              "client certificate, plain HTTP, or the "
                              "client gave up)");
        return -1;
    }
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                     &txt, 0) == 0 &&
        txt.data != NULL)
        snprintf(why, whylen, "client certificate not trusted: %s",
                 (const char *)txt.data);
    else
        snprintf(why, whylen, "client certificate not trusted (status 0x%x)",
                 status);
    gnutls_free(txt.data);
    for (size_t n = strlen(why); n > 0 && why[n - 1] == ' '; n--)
        why[n - 1] = '\0';
    return 1;
}
