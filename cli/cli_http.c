/* SPDX-License-Identifier: MIT
 * cli_http.c: one-call libcurl wrapper for the ctxsync client. */
#include "cli_http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

/* A growable, bounded response buffer. */
typedef struct resp_buf {
    char *data;
    size_t len;
    size_t cap;
    int too_big;
} resp_buf;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    resp_buf *b = userdata;
    size_t n = size * nmemb;

    if (n == 0)
        return 0;
    if (n > CLI_HTTP_MAX_BODY || b->len > CLI_HTTP_MAX_BODY - n) {
        b->too_big = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        char *nd;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        nd = realloc(b->data, ncap);
        if (nd == NULL)
            return 0;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

cs_err
cli_http_global_init(cs_errbuf *eb)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cs_errf(eb, CS_EHTTP, "cannot initialise libcurl");
    return CS_OK;
}

void
cli_http_global_cleanup(void)
{
    curl_global_cleanup();
}

void
cli_resp_free(cli_resp *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->content_type);
    r->body = NULL;
    r->content_type = NULL;
    r->len = 0;
    r->status = 0;
}

static cs_err
escape_with(CURL *curl, const char *s, char **out, cs_errbuf *eb)
{
    char *esc = NULL;
    char *copy = NULL;
    size_t n = strlen(s);
    cs_err err = CS_OK;

    if (n > INT32_MAX) {
        err = cs_errf(eb, CS_ETOOBIG, "value too long to encode");
        goto out;
    }
    esc = curl_easy_escape(curl, s, (int)n);
    if (esc == NULL) {
        err = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    copy = strdup(esc);
    if (copy == NULL) {
        err = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    *out = copy;
out:
    curl_free(esc);
    return err;
}

cs_err
cli_http_escape(const char *s, char **out, cs_errbuf *eb)
{
    CURL *curl = curl_easy_init();
    cs_err err;

    if (curl == NULL)
        return cs_errf(eb, CS_ENOMEM, "cannot create a curl handle");
    err = escape_with(curl, s, out, eb);
    curl_easy_cleanup(curl);
    return err;
}

/* Appends s to a growable string; returns 0 on success. */
static int
str_append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 256;
        char *nb;
        while (ncap < *len + n + 1)
            ncap *= 2;
        nb = realloc(*buf, ncap);
        if (nb == NULL)
            return -1;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    return 0;
}

/* Builds base_url + path + "?" + escaped query. *out is malloc'ed. */
static cs_err
build_url(CURL *curl, const cli_http *h, const char *path,
          const char *const *query, char **out, cs_errbuf *eb)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char *k = NULL, *v = NULL;
    int first = 1;
    cs_err err = CS_OK;

    if (str_append(&buf, &len, &cap, h->base_url) != 0 ||
        str_append(&buf, &len, &cap, path) != 0) {
        err = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; query != NULL && query[i] != NULL; i += 2) {
        if (query[i + 1] == NULL)
            continue;
        err = escape_with(curl, query[i], &k, eb);
        if (err != CS_OK)
            goto out;
        err = escape_with(curl, query[i + 1], &v, eb);
        if (err != CS_OK)
            goto out;
        if (str_append(&buf, &len, &cap, first ? "?" : "&") != 0 ||
            str_append(&buf, &len, &cap, k) != 0 ||
            str_append(&buf, &len, &cap, "=") != 0 ||
            str_append(&buf, &len, &cap, v) != 0) {
            err = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
        first = 0;
        free(k);
        free(v);
        k = NULL;
        v = NULL;
    }
    *out = buf;
    buf = NULL;
out:
    free(k);
    free(v);
    free(buf);
    return err;
}

/* A header value must not smuggle extra header lines. */
static int
header_value_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\r' || *s == '\n')
            return 0;
    }
    return 1;
}

cs_err
cli_http_request(const cli_http *h, const char *method, const char *path,
                 const char *const *query, const char *body,
                 size_t body_len, cli_resp *out, cs_errbuf *eb)
{
    CURL *curl = NULL;
    struct curl_slist *hdrs = NULL, *nh;
    char *url = NULL;
    char *auth = NULL;
    char *ctype = NULL;
    char cerr[CURL_ERROR_SIZE];
    resp_buf rb = {0};
    CURLcode rc;
    long status = 0;
    char *ct = NULL;
    cs_err err = CS_OK;

    cerr[0] = '\0';
    curl = curl_easy_init();
    if (curl == NULL) {
        err = cs_errf(eb, CS_ENOMEM, "cannot create a curl handle");
        goto out;
    }
    err = build_url(curl, h, path, query, &url, eb);
    if (err != CS_OK)
        goto out;

    if (h->token != NULL || h->actor != NULL) {
        const char *prefix = h->token != NULL ? "Authorization: Bearer "
                                              : "X-Actor-Id: ";
        const char *val = h->token != NULL ? h->token : h->actor;
        size_t n = strlen(prefix) + strlen(val) + 1;
        if (!header_value_ok(val)) {
            err = cs_errf(eb, CS_EINVAL,
                          "credentials must not contain line breaks");
            goto out;
        }
        auth = malloc(n);
        if (auth == NULL) {
            err = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(auth, n, "%s%s", prefix, val);
        nh = curl_slist_append(hdrs, auth);
        if (nh == NULL) {
            err = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
        hdrs = nh;
    }
    nh = curl_slist_append(hdrs, "Accept: application/json");
    if (nh == NULL) {
        err = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    hdrs = nh;
    if (body != NULL) {
        nh = curl_slist_append(hdrs, "Content-Type: application/json");
        if (nh != NULL) {
            hdrs = nh;
            nh = curl_slist_append(hdrs, "Expect:");
        }
        if (nh == NULL) {
            err = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
        hdrs = nh;
    }

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "ctxsync/" CS_VERSION);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &rb);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    /* TLS: libcurl verifies the peer and the host name by default; only
     * an explicit --insecure turns that off. */
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, h->insecure ? 0L : 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, h->insecure ? 0L : 2L);
    if (h->ca != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, h->ca);
    if (h->cert != NULL) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, h->cert);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, h->key ? h->key : h->cert);
    }
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)body_len);
    }
    if (strcmp(method, "GET") == 0 && body == NULL)
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") == 0 && body == NULL) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    } else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);

    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        const char *detail = cerr[0] != '\0' ? cerr : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            err = cs_errf(eb, CS_EIO, "cannot reach node at %s: %s",
                          h->base_url, detail);
            break;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ISSUER_ERROR:
            err = cs_errf(eb, CS_EHTTP,
                          "TLS with %s failed: %s (check --ca, --cert, "
                          "--key)",
                          h->base_url, detail);
            break;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
            err = cs_errf(eb, CS_EIO, "connection to %s failed: %s%s",
                          h->base_url, detail,
                          strncmp(h->base_url, "https:", 6) == 0
                              ? " (a node with mutual TLS closes the "
                                "connection of a client without an "
                                "accepted certificate: check --cert/--key)"
                              : "");
            break;
        case CURLE_OPERATION_TIMEDOUT:
            err = cs_errf(eb, CS_ETIMEDOUT, "request to %s timed out: %s",
                          h->base_url, detail);
            break;
        case CURLE_WRITE_ERROR:
            if (rb.too_big) {
                err = cs_errf(eb, CS_ETOOBIG,
                              "response from %s exceeds %zu bytes",
                              h->base_url, CLI_HTTP_MAX_BODY);
                break;
            }
            err = cs_errf(eb, CS_ENOMEM, "out of memory reading response");
            break;
        default:
            err = cs_errf(eb, CS_EHTTP, "request to %s failed: %s",
                          h->base_url, detail);
            break;
        }
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
        ct != NULL) {
        ctype = strdup(ct);
        if (ctype == NULL) {
            err = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (rb.data == NULL) {
        rb.data = calloc(1, 1);
        if (rb.data == NULL) {
            err = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
    }
    out->status = status;
    out->body = rb.data;
    out->len = rb.len;
    out->content_type = ctype;
    rb.data = NULL;
    ctype = NULL;
out:
    free(rb.data);
    free(ctype);
    free(auth);
    free(url);
    curl_slist_free_all(hdrs);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    return err;
}
