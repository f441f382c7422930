/* SPDX-License-Identifier: MIT
 * http_client.c: libcurl-based HTTP client for the bridge (http_client.h). */
#include "http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_log.h"

#define CONNECT_TIMEOUT_MS 10000L
/* A peer that accepts but never answers must surface as backing_off
 * quickly; an ingest of a full batch takes well under this. */
#define DEFAULT_TIMEOUT_MS 30000L
#define LOW_SPEED_TIME_S 60L
#define ERR_BODY_MAX 4096

struct br_http {
    CURL *easy;
    CURLM *multi;               /* lazily, for streams */
    struct curl_slist *auth;    /* "Authorization: Bearer ..." (secret) */
    char *url;
    char errbuf[CURL_ERROR_SIZE];
    /* response */
    char *body;
    size_t len, cap;
    bool overflow;
    /* streaming */
    bool streaming;
    bool stream_ok;             /* 2xx text/event-stream */
    bool stream_checked;
    br_http_data_fn on_data;
    void *data_ud;
    cs_err data_err;
    br_http_abort_fn abort_fn;
    void *abort_ud;
    long timeout_ms;
    bool https, has_cert;       /* for the reason of a refused handshake */
};

cs_err
br_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? CS_OK : CS_EIO;
}

void
br_http_global_cleanup(void)
{
    curl_global_cleanup();
}

static bool
append_body(br_http *h, const char *p, size_t n, size_t max)
{
    if (n > max || h->len > max - n) {
        h->overflow = true;
        return false;
    }
    if (h->len + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 16384;
        char *nb;
        while (cap < h->len + n + 1)
            cap *= 2;
        nb = realloc(h->body, cap);
        if (nb == NULL)
            return false;
        h->body = nb;
        h->cap = cap;
    }
    memcpy(h->body + h->len, p, n);
    h->len += n;
    h->body[h->len] = '\0';
    return true;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    br_http *h = ud;
    size_t n = size * nmemb;

    if (h->abort_fn != NULL && h->abort_fn(h->abort_ud))
        return CURL_WRITEFUNC_ERROR;
    if (h->streaming) {
        if (!h->stream_checked) {
            long st = 0;
            char *ct = NULL;
            curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &st);
            curl_easy_getinfo(h->easy, CURLINFO_CONTENT_TYPE, &ct);
            h->stream_ok = st >= 200 && st < 300 && ct != NULL &&
                           strncasecmp(ct, "text/event-stream", 17) == 0;
            h->stream_checked = true;
        }
        if (h->stream_ok) {
            h->data_err = h->on_data(h->data_ud, ptr, n);
            return h->data_err == CS_OK ? n : CURL_WRITEFUNC_ERROR;
        }
        /* an error answer: keep its beginning for the reason */
        if (h->len < ERR_BODY_MAX)
            append_body(h, ptr, n < ERR_BODY_MAX - h->len ? n : ERR_BODY_MAX - h->len,
                        ERR_BODY_MAX);
        return n;
    }
    if (!append_body(h, ptr, n, BR_HTTP_MAX_RESPONSE))
        return CURL_WRITEFUNC_ERROR;
    return n;
}

static int
xferinfo_cb(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult,
            curl_off_t uln)
{
    br_http *h = ud;
    (void)dlt;
    (void)dln;
    (void)ult;
    (void)uln;
    return h->abort_fn != NULL && h->abort_fn(h->abort_ud) ? 1 : 0;
}

cs_err
br_http_new(const br_endpoint *ep, const char *link, const char *label,
            br_http **out, cs_errbuf *eb)
{
    br_http *h = calloc(1, sizeof(*h));
    char *hdr = NULL;
    size_t hlen;
    cs_err rc = CS_OK;

    if (h == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    h->timeout_ms = DEFAULT_TIMEOUT_MS;
    h->easy = curl_easy_init();
    h->url = malloc(strlen(ep->url) + 1);
    hlen = strlen("Authorization: Bearer ") + strlen(ep->token) + 1;
    hdr = malloc(hlen);
    if (h->easy == NULL || h->url == NULL || hdr == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(h->url, ep->url, strlen(ep->url) + 1);
    h->https = strncmp(ep->url, "https://", 8) == 0;
    h->has_cert = ep->cert != NULL;
    snprintf(hdr, hlen, "Authorization: Bearer %s", ep->token);
    h->auth = curl_slist_append(NULL, hdr);
    if (h->auth == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->easy, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
    curl_easy_setopt(h->easy, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(h->easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h->easy, CURLOPT_USERAGENT, "ctxsync-bridge/" CS_VERSION);
    curl_easy_setopt(h->easy, CURLOPT_ACCEPT_ENCODING, "");
    if (ep->ca != NULL)
        curl_easy_setopt(h->easy, CURLOPT_CAINFO, ep->ca);
    if (ep->cert != NULL) {
        curl_easy_setopt(h->easy, CURLOPT_SSLCERT, ep->cert);
        curl_easy_setopt(h->easy, CURLOPT_SSLKEY, ep->key);
    }
    if (ep->insecure) {
        curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h->easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (ep->insecure && strchr(label, '-') == NULL) {
        cs_log(CS_LOG_WARN, "BRIDGE-INSECURE",
               "link=%s end=%s url=%s TLS certificate verification is OFF "
               "(insecure: true)", link, label, ep->url);
    }
    *out = h;
    h = NULL;
out:
    if (hdr != NULL) {
        explicit_bzero(hdr, strlen(hdr));
        free(hdr);
    }
    br_http_free(h);
    return rc;
}

void
br_http_free(br_http *h)
{
    if (h == NULL)
        return;
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    if (h->easy != NULL)
        curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->auth);
    free(h->url);
    free(h->body);
    free(h);
}

void
br_http_set_abort(br_http *h, br_http_abort_fn fn, void *ud)
{
    h->abort_fn = fn;
    h->abort_ud = ud;
}

void
br_http_set_timeout_ms(br_http *h, long ms)
{
    h->timeout_ms = ms;
}

const char *
br_http_body(const br_http *h, size_t *len)
{
    if (len != NULL)
        *len = h->len;
    return h->body != NULL ? h->body : "";
}

const char *
br_http_url(const br_http *h)
{
    return h->url;
}

char *
br_http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i, o = 0;
    char *out = malloc(3 * n + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

br_fail_class
br_http_classify_status(long status)
{
    if (status >= 500 || status == 408 || status == 429)
        return BR_FAIL_TRANSIENT;
    return BR_FAIL_TERMINAL;
}

/* Copies printable ASCII of s[0..n) into out (NUL-terminated). */
static void
sanitize(const char *s, size_t n, char *out, size_t outsz)
{
    size_t i, o = 0;
    for (i = 0; i < n && o + 1 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
    }
    out[o] = '\0';
}

static void
status_error(br_http *h, long status, br_http_err *err)
{
    json_t *j = NULL;
    const char *msg = NULL, *code = NULL;
    char text[160];

    err->cls = br_http_classify_status(status);
    err->status = status;
    err->code[0] = '\0';
    if (h->len > 0)
        j = json_loadb(h->body, h->len, 0, NULL);
    if (json_is_object(j)) {
        code = json_string_value(json_object_get(j, "error"));
        msg = json_string_value(json_object_get(j, "message"));
    }
    if (code != NULL)
        sanitize(code, strlen(code), err->code, sizeof(err->code));
    /* The target was restored or re-initialised under the session: a new
     * session re-reads its info and checkpoint. */
    if (status == 409 && strcmp(err->code, "target_epoch_changed") == 0)
        err->cls = BR_FAIL_TRANSIENT;
    if (msg != NULL)
        sanitize(msg, strlen(msg), text, sizeof(text));
    else if (code != NULL)
        sanitize(code, strlen(code), text, sizeof(text));
    else if (h->len > 0 && j == NULL)
        sanitize(h->body, h->len, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "no message");
    snprintf(err->reason, sizeof(err->reason), "http %ld: %s", status, text);
    json_decref(j);
}

static void
curl_error(br_http *h, CURLcode cc, br_http_err *err)
{
    long oserr = 0;
    const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);

    err->status = 0;
    err->code[0] = '\0';
    err->cls = BR_FAIL_TRANSIENT;
    curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &oserr);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        if (oserr != 0)
            snprintf(err->reason, sizeof(err->reason), "connect: %s",
                     strerror((int)oserr));
        else
            snprintf(err->reason, sizeof(err->reason), "connect: %.200s", detail);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(err->reason, sizeof(err->reason), "resolve: %.200s", detail);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(err->reason, sizeof(err->reason), "timeout: %.200s", detail);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(err->reason, sizeof(err->reason),
                 "tls: certificate verify failed (%.200s)", detail);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        if (strstr(detail, "certificate verify failed") != NULL)
            snprintf(err->reason, sizeof(err->reason),
                     "tls: certificate verify failed (%.200s)", detail);
        else
            snprintf(err->reason, sizeof(err->reason), "tls: handshake failed (%.200s)",
                     detail);
        break;
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
        snprintf(err->reason, sizeof(err->reason), "tls: %.200s", detail);
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        err->cls = BR_FAIL_ABORTED;
        snprintf(err->reason, sizeof(err->reason), "aborted");
        break;
    case CURLE_WRITE_ERROR:
        if (h->overflow) {
            err->cls = BR_FAIL_TERMINAL;
            snprintf(err->reason, sizeof(err->reason),
                     "protocol: response larger than %zu bytes",
                     BR_HTTP_MAX_RESPONSE);
        } else if (h->abort_fn != NULL && h->abort_fn(h->abort_ud)) {
            err->cls = BR_FAIL_ABORTED;
            snprintf(err->reason, sizeof(err->reason), "aborted");
        } else {
            snprintf(err->reason, sizeof(err->reason), "connection: %.200s", detail);
        }
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        /* A node with mutual TLS ends the handshake of a client without an
         * accepted certificate by closing the connection: say so. */
        if (h->https)
            snprintf(err->reason, sizeof(err->reason),
                     "connection: %.120s (%s)", detail,
                     h->has_cert ? "the node may not accept this end's "
                                   "client certificate (cert/key, its CA)"
                                 : "the node may require a client "
                                   "certificate: set cert and key");
        else
            snprintf(err->reason, sizeof(err->reason), "connection: %.200s",
                     detail);
        break;
    default:
        snprintf(err->reason, sizeof(err->reason), "connection: %.200s", detail);
        break;
    }
}

static struct curl_slist *
build_headers(br_http *h, const char *content_type, const char *accept,
              const char *last_id)
{
    struct curl_slist *l = NULL, *n;
    char buf[1200];
    const struct curl_slist *a;

    for (a = h->auth; a != NULL; a = a->next) {
        n = curl_slist_append(l, a->data);
        if (n == NULL)
            goto fail;
        l = n;
    }
    snprintf(buf, sizeof(buf), "Accept: %s", accept);
    if ((n = curl_slist_append(l, buf)) == NULL)
        goto fail;
    l = n;
    if ((n = curl_slist_append(l, "Expect:")) == NULL)
        goto fail;
    l = n;
    if (content_type != NULL) {
        snprintf(buf, sizeof(buf), "Content-Type: %s", content_type);
        if ((n = curl_slist_append(l, buf)) == NULL)
            goto fail;
        l = n;
    }
    if (last_id != NULL && last_id[0] != '\0') {
        snprintf(buf, sizeof(buf), "Last-Event-ID: %.1024s", last_id);
        if ((n = curl_slist_append(l, buf)) == NULL)
            goto fail;
        l = n;
    }
    return l;
fail:
    curl_slist_free_all(l);
    return NULL;
}

static char *
full_url(const br_http *h, const char *path)
{
    size_t n = strlen(h->url) + strlen(path) + 1;
    char *u = malloc(n);
    if (u != NULL)
        snprintf(u, n, "%s%s", h->url, path);
    return u;
}

cs_err
br_http_request(br_http *h, const char *method, const char *path,
                const char *body, size_t blen, long *status, br_http_err *err)
{
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    CURLcode cc;
    cs_err rc = CS_OK;

    memset(err, 0, sizeof(*err));
    *status = 0;
    h->len = 0;
    h->overflow = false;
    h->streaming = false;
    h->errbuf[0] = '\0';
    if (h->body != NULL)
        h->body[0] = '\0';
    url = full_url(h, path);
    hdrs = build_headers(h, body != NULL ? "application/json" : NULL,
                         "application/json", NULL);
    if (url == NULL || hdrs == NULL) {
        err->cls = BR_FAIL_TRANSIENT;
        snprintf(err->reason, sizeof(err->reason), "out of memory");
        rc = CS_ENOMEM;
        goto out;
    }
    curl_easy_setopt(h->easy, CURLOPT_URL, url);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(h->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h->easy, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME_S);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, NULL);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(body != NULL ? blen : 0));
    } else {
        curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(h->easy);
    /* POSTFIELDS points into the caller's buffer: forget it */
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    if (cc != CURLE_OK) {
        curl_error(h, cc, err);
        rc = err->cls == BR_FAIL_ABORTED ? CS_ESHUTDOWN : CS_EHTTP;
        goto out;
    }
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, status);
    err->status = *status;
out:
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

cs_err
br_http_json_raw(br_http *h, const char *method, const char *path,
                 const char *body, size_t blen, const long *pass, json_t **out,
                 br_http_err *err)
{
    long status = 0;
    json_t *j;
    json_error_t jerr;
    cs_err rc;
    size_t i;

    rc = br_http_request(h, method, path, body, blen, &status, err);
    if (rc != CS_OK)
        return rc;
    for (i = 0; pass != NULL && pass[i] != 0; i++) {
        if (pass[i] == status) {
            status_error(h, status, err);
            return CS_ENOTFOUND;
        }
    }
    if (status < 200 || status >= 300) {
        status_error(h, status, err);
        return CS_EHTTP;
    }
    if (status == 204 || h->len == 0) {
        *out = json_object();
        return *out != NULL ? CS_OK : CS_ENOMEM;
    }
    j = json_loadb(h->body, h->len, 0, &jerr);
    if (j == NULL) {
        err->cls = BR_FAIL_TERMINAL;
        snprintf(err->reason, sizeof(err->reason),
                 "protocol: %s %s answered %ld with invalid JSON (%s)", method,
                 path, status, jerr.text);
        return CS_EPROTO;
    }
    *out = j;
    return CS_OK;
}

cs_err
br_http_json(br_http *h, const char *method, const char *path,
             const json_t *body, const long *pass, json_t **out,
             br_http_err *err)
{
    char *enc = NULL;
    cs_err rc;

    if (body != NULL) {
        enc = json_dumps(body, JSON_COMPACT);
        if (enc == NULL) {
            memset(err, 0, sizeof(*err));
            err->cls = BR_FAIL_TRANSIENT;
            snprintf(err->reason, sizeof(err->reason), "out of memory");
            return CS_ENOMEM;
        }
    }
    rc = br_http_json_raw(h, method, path, enc, enc != NULL ? strlen(enc) : 0,
                          pass, out, err);
    free(enc);
    return rc;
}

cs_err
br_http_stream(br_http *h, const char *path, const char *last_event_id,
               br_http_data_fn on_data, br_http_tick_fn tick, void *ud,
               long tick_ms, br_http_err *err)
{
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    bool added = false;
    cs_err rc = CS_OK;
    int running = 1;

    memset(err, 0, sizeof(*err));
    h->len = 0;
    h->overflow = false;
    h->errbuf[0] = '\0';
    h->streaming = true;
    h->stream_ok = false;
    h->stream_checked = false;
    h->on_data = on_data;
    h->data_ud = ud;
    h->data_err = CS_OK;
    if (h->multi == NULL)
        h->multi = curl_multi_init();
    url = full_url(h, path);
    hdrs = build_headers(h, NULL, "text/event-stream", last_event_id);
    if (h->multi == NULL || url == NULL || hdrs == NULL) {
        err->cls = BR_FAIL_TRANSIENT;
        snprintf(err->reason, sizeof(err->reason), "out of memory");
        rc = CS_ENOMEM;
        goto out;
    }
    curl_easy_setopt(h->easy, CURLOPT_URL, url);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, 0L);
    curl_easy_setopt(h->easy, CURLOPT_LOW_SPEED_LIMIT, 0L);
    curl_easy_setopt(h->easy, CURLOPT_LOW_SPEED_TIME, 0L);
    curl_easy_setopt(h->easy, CURLOPT_ACCEPT_ENCODING, NULL);
    if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK) {
        err->cls = BR_FAIL_TRANSIENT;
        snprintf(err->reason, sizeof(err->reason), "curl_multi_add_handle failed");
        rc = CS_EHTTP;
        goto out;
    }
    added = true;
    while (running) {
        CURLMcode mc = curl_multi_perform(h->multi, &running);
        CURLMsg *msg;
        int left;
        if (mc != CURLM_OK) {
            err->cls = BR_FAIL_TRANSIENT;
            snprintf(err->reason, sizeof(err->reason), "curl multi: %s",
                     curl_multi_strerror(mc));
            rc = CS_EHTTP;
            goto out;
        }
        while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            if (msg->data.result != CURLE_OK) {
                if (h->data_err != CS_OK) {
                    rc = h->data_err;
                    goto out;
                }
                curl_error(h, msg->data.result, err);
                rc = err->cls == BR_FAIL_ABORTED ? CS_ESHUTDOWN : CS_EHTTP;
                goto out;
            }
        }
        if (!running)
            break;
        if (tick != NULL && (rc = tick(ud)) != CS_OK)
            goto out;
        if (h->abort_fn != NULL && h->abort_fn(h->abort_ud)) {
            err->cls = BR_FAIL_ABORTED;
            snprintf(err->reason, sizeof(err->reason), "aborted");
            rc = CS_ESHUTDOWN;
            goto out;
        }
        mc = curl_multi_poll(h->multi, NULL, 0, (int)tick_ms, NULL);
        if (mc != CURLM_OK) {
            err->cls = BR_FAIL_TRANSIENT;
            snprintf(err->reason, sizeof(err->reason), "curl multi: %s",
                     curl_multi_strerror(mc));
            rc = CS_EHTTP;
            goto out;
        }
    }
    /* the transfer completed without a transport error */
    {
        long st = 0;
        char *ct = NULL;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &st);
        curl_easy_getinfo(h->easy, CURLINFO_CONTENT_TYPE, &ct);
        err->status = st;
        if (st < 200 || st >= 300) {
            status_error(h, st, err);
            rc = CS_EHTTP;
        } else if (!h->stream_ok && !(ct != NULL &&
                                       strncasecmp(ct, "text/event-stream", 17) == 0)) {
            err->cls = BR_FAIL_TERMINAL;
            snprintf(err->reason, sizeof(err->reason),
                     "protocol: stream answered %ld with Content-Type %.60s", st,
                     ct != NULL ? ct : "(none)");
            rc = CS_EPROTO;
        } else {
            err->cls = BR_FAIL_TRANSIENT;
            snprintf(err->reason, sizeof(err->reason), "stream: closed by the server");
            rc = CS_OK;
        }
    }
out:
    if (added)
        curl_multi_remove_handle(h->multi, h->easy);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h->easy, CURLOPT_ACCEPT_ENCODING, "");
    h->streaming = false;
    h->on_data = NULL;
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}
