/* SPDX-License-Identifier: MIT
 * tls.h: the node's TLS material (server certificate chain, private key and
 * optional client CA for mutual TLS), loaded from PEM files, validated with
 * GnuTLS and kept in memory for libmicrohttpd (MHD_OPTION_HTTPS_MEM_*).
 *
 * Mutual TLS is enforced at the handshake: cs_tls_session_setup() is called
 * for every new connection (MHD's connection-start notification, which runs
 * after MHD created the GnuTLS session and before the first handshake byte
 * is read); it switches the session from "request a client certificate"
 * (MHD's default with a trust list) to "require one" and makes GnuTLS verify
 * it against the client CA during the handshake. A peer without a
 * certificate, with one from another CA, or with an expired or not yet
 * valid one fails the handshake: no HTTP byte is read from it.
 * cs_tls_peer_verified() re-checks an established session (defence in depth
 * in the request handler). */
#ifndef CS_TLS_H
#define CS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "cs_err.h"

typedef struct cs_tls cs_tls;

/* Reads and validates cert (PEM chain, leaf first), key (unencrypted PEM)
 * and, when client_ca is not NULL, the CA bundle for client certificates.
 * Fails with a message naming the file and the problem (unreadable, not
 * PEM, key does not match the certificate, certificate expired or not yet
 * valid, CA bundle without a certificate). Warns when the key file is
 * readable by group or others. */
cs_err cs_tls_load(const char *cert, const char *key, const char *client_ca,
                   cs_tls **out, cs_errbuf *eb);
/* Wipes the key from memory and frees. NULL is accepted. */
void cs_tls_free(cs_tls *t);

/* NUL-terminated PEM text for MHD (valid until cs_tls_free). */
const char *cs_tls_cert_pem(const cs_tls *t);
const char *cs_tls_key_pem(const cs_tls *t);
/* The client CA bundle, or NULL when mutual TLS is off. */
const char *cs_tls_ca_pem(const cs_tls *t);
/* GnuTLS priority string: TLS 1.2 and 1.3 only. */
const char *cs_tls_priorities(void);
/* "subject=... issuer=... not_after=...Z" of the server certificate, for the
 * start and reload log lines. */
const char *cs_tls_describe(const cs_tls *t);

/* Per-connection setup (session is a gnutls_session_t); mutual TLS only.
 * Returns false when GnuTLS refused the settings (the caller then refuses
 * the connection). */
bool cs_tls_session_setup(void *session);
/* True when the established session's peer presented a certificate that
 * verifies against the client CA; otherwise false with the reason in why.
 * subject (may be NULL) receives the peer certificate's DN. */
bool cs_tls_peer_verified(void *session, char *why, size_t whylen,
                          char *subject, size_t subjlen);

/* For a mutual-TLS connection that closed before any request: 1 when
 * GnuTLS refused the client's certificate at the handshake (other CA,
 * expired, not yet valid...), -1 when the handshake did not complete for
 * a reason GnuTLS does not record (no client certificate, plain HTTP, the
 * client gave up), 0 otherwise; why receives the reason. */
int cs_tls_handshake_refused(void *session, char *why, size_t whylen);

#endif
