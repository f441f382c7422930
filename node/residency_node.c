/* SPDX-License-Identifier: MIT
 * residency_node.c: data residency on the node (see residency_node.h and
 * docs/residency.md).
 *
 * The on-demand fetch runs on the worker thread that serves the read (a
 * blocking libcurl request, 5 s at most); only the provenance rows and the
 * optional cache write go through the writer thread, in one transaction.
 * Bytes fetched for a payload this region may not hold never touch the
 * disk: they live in the worker's memory until the response is sent. */
#include "residency_node.h"

#include "cs_file.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "authz.h"
#include "cs_hash.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_uri.h"
#include "node.h"
#include "versions.h"

#define PEERS_FILE_MAX ((size_t)1024 * 1024)
#define PEERS_MAX 256
#define FETCH_TIMEOUT_MS 5000L
#define FETCH_CONNECT_TIMEOUT_MS 3000L
#define FETCH_MAX_BYTES ((size_t)256 * 1024 * 1024)

struct cs_peers {
    cs_peer *v;
    size_t n;
};

static bool g_curl_ready; /* curl_global_init done (main thread only) */

/* ------------------------------------------------------------------ */
/* peers file */

static bool
name_ok(const char *s)
{
    size_t n = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (; s[n] != '\0'; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_' ||
              s[n] == '.'))
            return false;
    return n <= 64;
}

/* A path, made absolute against base_dir when relative; malloc'd. */
static char *
resolve_path(const char *base_dir, const char *p)
{
    size_t n;
    char *out;
    if (p[0] == '/' || base_dir == NULL)
        return strdup(p);
    n = strlen(base_dir) + strlen(p) + 2;
    out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s/%s", base_dir, p);
    return out;
}

static void
peer_free(cs_peer *p)
{
    free(p->node_id);
    free(p->region);
    free(p->url);
    cs_free_secret(p->token);
    free(p->ca);
    free(p->cert);
    free(p->key);
}

void
cs_peers_free(cs_peers *p)
{
    size_t i;
    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++)
        peer_free(&p->v[i]);
    free(p->v);
    free(p);
}

static cs_err
read_token_file(const char *path, char **out, const char *where,
                cs_errbuf *eb)
{
    char buf[4097];
    FILE *f = fopen(path, "rb");
    size_t n;
    cs_err rv = CS_OK;
    if (f == NULL)
        return cs_errf(eb, CS_EINVAL, "%s: cannot open token_file %.200s: %s",
                       where, path, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n == 0 || strlen(buf) != n)
        rv = cs_errf(eb, CS_EINVAL, "%s: token_file %.200s is empty or "
                                    "binary", where, path);
    else if ((*out = strdup(buf)) == NULL)
        rv = CS_ENOMEM;
    explicit_bzero(buf, sizeof(buf));
    return rv;
}

static cs_err
parse_peer(const json_t *o, size_t i, const char *base_dir, cs_peer *p,
           cs_errbuf *eb)
{
    static const char *const keys[] = {"node_id", "region", "url", "token",
                                       "token_file", "ca", "cert", "key",
                                       NULL};
    char where[64];
    const char *key, *s;
    json_t *v;
    const char *tok, *tokf;

    snprintf(where, sizeof(where), "peers[%zu]", i);
    if (!json_is_object(o))
        return cs_errf(eb, CS_EINVAL, "%s: must be an object", where);
    json_object_foreach((json_t *)o, key, v) {
        size_t k;
        bool found = false;
        for (k = 0; keys[k] != NULL; k++)
            if (strcmp(keys[k], key) == 0)
                found = true;
        if (!found)
            return cs_errf(eb, CS_EINVAL, "%s: unknown key \"%.64s\"", where,
                           key);
        if (!json_is_string(v) ||
            strlen(json_string_value(v)) != json_string_length(v) ||
            json_string_length(v) == 0)
            return cs_errf(eb, CS_EINVAL, "%s.%s: must be a non-empty string",
                           where, key);
    }
    s = json_string_value(json_object_get(o, "node_id"));
    if (!name_ok(s))
        return cs_errf(eb, CS_EINVAL, "%s.node_id: required, "
                                      "[A-Za-z0-9._-]{1,64}", where);
    snprintf(where, sizeof(where), "peer \"%s\"", s);
    if ((p->node_id = strdup(s)) == NULL)
        return CS_ENOMEM;
    s = json_string_value(json_object_get(o, "region"));
    if (!name_ok(s))
        return cs_errf(eb, CS_EINVAL, "%s: region is required "
                                      "([A-Za-z0-9._-]{1,64})", where);
    if ((p->region = strdup(s)) == NULL)
        return CS_ENOMEM;
    s = json_string_value(json_object_get(o, "url"));
    if (s == NULL || (strncmp(s, "http://", 7) != 0 &&
                      strncmp(s, "https://", 8) != 0) ||
        strlen(s) > 2048 || strpbrk(s, " ?#\"\\") != NULL)
        return cs_errf(eb, CS_EINVAL, "%s: url must be http(s)://HOST[:PORT]",
                       where);
    if ((p->url = strdup(s)) == NULL)
        return CS_ENOMEM;
    while (strlen(p->url) > 8 && p->url[strlen(p->url) - 1] == '/')
        p->url[strlen(p->url) - 1] = '\0';
    tok = json_string_value(json_object_get(o, "token"));
    tokf = json_string_value(json_object_get(o, "token_file"));
    if ((tok == NULL) == (tokf == NULL))
        return cs_errf(eb, CS_EINVAL, "%s: give exactly one of token or "
                                      "token_file", where);
    if (tok != NULL) {
        if ((p->token = strdup(tok)) == NULL)
            return CS_ENOMEM;
    } else {
        char *path = resolve_path(base_dir, tokf);
        cs_err rv;
        if (path == NULL)
            return CS_ENOMEM;
        rv = read_token_file(path, &p->token, where, eb);
        free(path);
        if (rv != CS_OK)
            return rv;
    }
    if (strpbrk(p->token, " \r\n\t") != NULL)
        return cs_errf(eb, CS_EINVAL, "%s: the token contains blanks", where);
    if ((s = json_string_value(json_object_get(o, "ca"))) != NULL &&
        (p->ca = resolve_path(base_dir, s)) == NULL)
        return CS_ENOMEM;
    if ((s = json_string_value(json_object_get(o, "cert"))) != NULL &&
        (p->cert = resolve_path(base_dir, s)) == NULL)
        return CS_ENOMEM;
    if ((s = json_string_value(json_object_get(o, "key"))) != NULL &&
        (p->key = resolve_path(base_dir, s)) == NULL)
        return CS_ENOMEM;
    if ((p->cert == NULL) != (p->key == NULL))
        return cs_errf(eb, CS_EINVAL, "%s: cert and key go together", where);
    return CS_OK;
}

cs_err
cs_peers_parse(const char *buf, size_t len, const char *base_dir,
               cs_peers **out, cs_errbuf *eb)
{
    cs_peers *p = NULL;
    json_t *root = NULL, *arr, *v;
    json_error_t jerr;
    const char *key;
    size_t i, k;
    cs_err rv = CS_OK;

    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* position only: the text near the error may be a token */
        rv = cs_errf(eb, CS_EINVAL, "malformed JSON at line %d column %d",
                     jerr.line, jerr.column);
        goto out;
    }
    arr = json_object_get(root, "peers");
    if (!json_is_object(root) || !json_is_array(arr)) {
        rv = cs_errf(eb, CS_EINVAL, "must be {\"peers\": [...]}");
        goto out;
    }
    json_object_foreach(root, key, v) {
        if (strcmp(key, "peers") != 0) {
            rv = cs_errf(eb, CS_EINVAL, "unknown key \"%.64s\"", key);
            goto out;
        }
    }
    if (json_array_size(arr) > PEERS_MAX) {
        rv = cs_errf(eb, CS_EINVAL, "more than %d peers", PEERS_MAX);
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->v = calloc(json_array_size(arr) + 1,
                                    sizeof(*p->v))) == NULL) {
        rv = CS_ENOMEM;
        goto out;
    }
    json_array_foreach(arr, i, v) {
        p->n = i + 1; /* a partial entry is freed too */
        rv = parse_peer(v, i, base_dir, &p->v[i], eb);
        if (rv != CS_OK)
            goto out;
        for (k = 0; k < i; k++)
            if (strcmp(p->v[k].node_id, p->v[i].node_id) == 0) {
                rv = cs_errf(eb, CS_EINVAL, "peer \"%s\" is listed twice",
                             p->v[i].node_id);
                goto out;
            }
    }
    *out = p;
    p = NULL;
out:
    if (rv == CS_ENOMEM)
        cs_errbuf_set(eb, "out of memory");
    cs_peers_free(p);
    json_decref(root);
    return rv;
}

cs_err
cs_peers_load(const char *path, cs_peers **out, cs_errbuf *eb)
{
    char *buf = NULL, *dir = NULL;
    size_t n = 0;
    cs_err rv;

    rv = cs_file_read(path, PEERS_FILE_MAX, &buf, &n, eb);
    if (rv != CS_OK)
        goto out;
    dir = cs_path_dir(path);
    if (dir == NULL) {
        rv = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    rv = cs_peers_parse(buf, n, dir, out, eb);
out:
    cs_file_free(buf, n); /* holds tokens */
    free(dir);
    return rv;
}

size_t
cs_peers_count(const cs_peers *p)
{
    return p != NULL ? p->n : 0;
}

const cs_peer *
cs_peers_get(const cs_peers *p, size_t i)
{
    return p != NULL && i < p->n ? &p->v[i] : NULL;
}

/* ------------------------------------------------------------------ */
/* start and stop */

/* CS_RESIDENCY_DISABLE: a comma list; the node knows feed and ingest, and
 * ignores bridge (the bridge's own switch). */
static cs_err
read_disable_env(cs_node *n)
{
    const char *env = getenv("CS_RESIDENCY_DISABLE");
    const char *p = env;
    if (env == NULL || *env == '\0')
        return CS_OK;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == 4 && strncmp(p, "feed", 4) == 0) {
            n->res_no_feed = true;
        } else if (len == 6 && strncmp(p, "ingest", 6) == 0) {
            n->res_no_ingest = true;
        } else if (!(len == 6 && strncmp(p, "bridge", 6) == 0)) {
            fprintf(stderr, "ctxsync-node: CS_RESIDENCY_DISABLE must be a "
                            "comma list of feed, ingest (test only)\n");
            return CS_EINVAL;
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    return CS_OK;
}

cs_err
cs_res_node_start(cs_node *n)
{
    cs_res_diag diag;
    cs_errbuf eb = {{0}};
    size_t i;

    if (read_disable_env(n) != CS_OK)
        return CS_EINVAL;
    if (n->cfg.residency_file != NULL) {
        if (cs_residency_load(n->cfg.residency_file, &n->residency, &diag,
                              &eb) != CS_OK) {
            fprintf(stderr, "ctxsync-node: --residency: the policy is "
                            "invalid:\n");
            for (i = 0; i < diag.n; i++)
                fprintf(stderr, "  %s: %s\n",
                        diag.items[i].error ? "error" : "warning",
                        diag.items[i].msg);
            if (diag.nerrors + diag.nwarnings > diag.n)
                fprintf(stderr, "  (%zu more not shown)\n",
                        diag.nerrors + diag.nwarnings - diag.n);
            if (diag.n == 0)
                fprintf(stderr, "  %s\n", eb.msg);
            return CS_EINVAL;
        }
        for (i = 0; i < diag.n; i++)
            cs_log(CS_LOG_WARN, "RESIDENCY-POLICY", "%s", diag.items[i].msg);
        cs_log(CS_LOG_NOTICE, "RESIDENCY-POLICY", "file=%s rules=%zu",
               n->cfg.residency_file, cs_residency_count(n->residency));
    }
    if (n->cfg.peers_file != NULL) {
        if (cs_peers_load(n->cfg.peers_file, &n->peers, &eb) != CS_OK) {
            fprintf(stderr, "ctxsync-node: --peers %s: %s\n",
                    n->cfg.peers_file, eb.msg);
            cs_residency_free(n->residency);
            n->residency = NULL;
            return CS_EINVAL;
        }
        cs_log(CS_LOG_NOTICE, "RESIDENCY-PEERS", "file=%s peers=%zu",
               n->cfg.peers_file, cs_peers_count(n->peers));
    }
    if (n->res_no_feed)
        cs_log(CS_LOG_WARN, "RESIDENCY-DISABLED",
               "TEST ONLY: CS_RESIDENCY_DISABLE=feed: this node's federation "
               "feed does NOT withhold home-only payloads");
    if (n->res_no_ingest)
        cs_log(CS_LOG_WARN, "RESIDENCY-DISABLED",
               "TEST ONLY: CS_RESIDENCY_DISABLE=ingest: this node's ingest "
               "does NOT reject payloads that break the residency policy");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ctxsync-node: cannot initialise libcurl\n");
        cs_res_node_stop(n);
        return CS_EINVAL;
    }
    g_curl_ready = true;
    return CS_OK;
}

void
cs_res_node_stop(cs_node *n)
{
    cs_residency_free(n->residency);
    n->residency = NULL;
    cs_peers_free(n->peers);
    n->peers = NULL;
    if (g_curl_ready) {
        curl_global_cleanup();
        g_curl_ready = false;
    }
}

/* ------------------------------------------------------------------ */
/* feed, ingest and the home node's payload endpoint */

void
cs_res_fed_view(const cs_node *n, const cs_actor *caller, cs_fed_view *out)
{
    out->policy = n->residency;
    out->peer_region = caller != NULL ? caller->region : "";
    out->enforce = !n->res_no_feed;
}

bool
cs_res_ingest_refuses(const cs_node *n, const char *uri, char *reason,
                      size_t rlen)
{
    const cs_res_rule *rule;
    if (n->res_no_ingest || n->residency == NULL)
        return false;
    rule = cs_residency_match(n->residency, uri, NULL);
    if (cs_res_payload_allowed(rule, cs_store_region(n->store)))
        return false;
    snprintf(reason, rlen, "residency: payload of %s is home-only in %s",
             uri, rule->home_region);
    return true;
}

static json_t *
home_extra(const char *home_region)
{
    return json_pack("{s:s?}", "home_region", home_region);
}

bool
cs_res_payload_gate(cs_req *r, const char *uri)
{
    cs_node *n = cs_req_node(r);
    const cs_actor *caller = cs_req_actor(r);
    const char *obo = cs_req_query(r, "on_behalf_of");
    const cs_res_rule *rule = cs_residency_match(n->residency, uri, NULL);
    const char *home = rule != NULL ? rule->home_region
                                    : cs_store_region(n->store);
    cs_actor who;

    if (obo == NULL || *obo == '\0') {
        /* bulk replication: the feed's withholding applies */
        if (!n->res_no_feed && !cs_res_payload_allowed(rule, caller->region)) {
            cs_res_error_x(r, 451, "residency_restricted", home_extra(home),
                           "the payload of %s is home-only in %s; region "
                           "'%s' gets it only on demand (on_behalf_of=)",
                           uri, home, caller->region);
            return false;
        }
        return true;
    }
    if (!cs_actor_id_valid(obo)) {
        cs_res_error(r, 400, "bad_request", "on_behalf_of must be an actor "
                                            "id");
        return false;
    }
    if (cs_actor_load(cs_req_db(r), obo, &who) != CS_OK) {
        cs_res_error_x(r, 403, "forbidden", home_extra(home),
                       "actor '%s' is unknown on the home node %s", obo,
                       cs_store_node_id(n->store));
        return false;
    }
    if (!cs_authz_check(n->authz, cs_req_db(r), &who, uri, CS_OP_READ,
                        NULL)) {
        cs_res_error_x(r, 403, "forbidden", home_extra(home),
                       "actor '%s' may not read %s on the home node %s", obo,
                       uri, cs_store_node_id(n->store));
        return false;
    }
    if (rule != NULL && !rule->on_demand &&
        !cs_res_payload_allowed(rule, caller->region)) {
        cs_res_error_x(r, 451, "residency_restricted", home_extra(home),
                       "the residency policy denies on-demand reads of %s "
                       "outside %s", uri, home);
        return false;
    }
    return true;
}

typedef struct served_arg {
    const char *obo, *uri, *version_id, *detail;
    int64_t version;
} served_arg;

static cs_err
served_fn(cs_tx *tx, void *p, cs_errbuf *eb)
{
    served_arg *a = p;
    return cs_prov_append_detail(tx, a->obo, "remote_fetch", a->uri,
                                 a->version, a->version_id, NULL, a->detail,
                                 eb);
}

bool
cs_res_payload_served(cs_req *r, const char *uri, int64_t version,
                      const char *version_id)
{
    const char *obo = cs_req_query(r, "on_behalf_of");
    const cs_actor *caller = cs_req_actor(r);
    cs_errbuf eb = {{0}};
    served_arg a;
    json_t *d;
    char *txt;
    cs_err rv;

    {
        /* The home node's own cache verdict for the caller's region: the
         * reading node keeps the bytes only if both policies allow it (a
         * reader without the policy file still never caches them). */
        const cs_res_rule *rule = cs_residency_match(cs_req_node(r)->residency,
                                                     uri, NULL);
        cs_res_header(r, "X-Residency-Cache",
                      cs_res_may_cache(rule, caller->region) ? "allow"
                                                             : "deny");
    }
    if (obo == NULL || *obo == '\0')
        return true;
    d = json_pack("{s:s,s:s,s:s?}", "direction", "served", "peer_actor",
                  caller->actor_id, "peer_region",
                  caller->region[0] ? caller->region : NULL);
    txt = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (txt == NULL) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        return false;
    }
    a = (served_arg){obo, uri, version_id, txt, version};
    rv = cs_store_write(cs_req_node(r)->store, served_fn, &a, &eb);
    free(txt);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        return false;
    }
    cs_log(CS_LOG_INFO, "RESIDENCY-SERVED",
           "uri=%s version_id=%s on_behalf_of=%s peer=%s region=%s", uri,
           version_id, obo, caller->actor_id, caller->region);
    return true;
}

/* ------------------------------------------------------------------ */
/* the on-demand fetch (reading node) */

bool
cs_res_is_remote(const json_t *a)
{
    const char *ps = json_string_value(json_object_get(a, "payload_state"));
    return ps != NULL && strcmp(ps, "inline") != 0 &&
           !json_is_true(json_object_get(a, "deleted")) &&
           json_is_string(json_object_get(a, "content_hash")) &&
           json_is_null(json_object_get(a, "content"));
}

typedef enum {
    F_OK = 0,
    F_FORBIDDEN,   /* the home node refused the actor */
    F_RESTRICTED,  /* the home node's policy refused */
    F_NOTFOUND,    /* that node does not hold the payload */
    F_UNAVAILABLE, /* unreachable, 5xx, bad answer */
} fetch_res;

typedef struct fetch_buf {
    char *data;
    size_t len, cap, max;
} fetch_buf;

static size_t
fetch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    fetch_buf *b = ud;
    size_t n = size * nmemb;
    if (n > b->max - b->len)
        return 0; /* larger than announced: abort */
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        char *nd;
        while (nc < b->len + n + 1)
            nc *= 2;
        nd = realloc(b->data, nc);
        if (nd == NULL)
            return 0;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* A libcurl handle for GET {peer url}{path} (path already escaped) with
 * the peer's token and TLS settings, writing into b, errors into errbuf
 * (CURL_ERROR_SIZE). *hdrs is the caller's to free. NULL: out of memory. */
static CURL *
peer_handle(const cs_peer *p, const char *path, long timeout_ms, fetch_buf *b,
            char *errbuf, struct curl_slist **hdrs)
{
    CURL *c = curl_easy_init();
    size_t ul = strlen(p->url) + strlen(path) + 1;
    size_t al = strlen(p->token) + 32;
    char *url = malloc(ul), *auth = malloc(al);

    *hdrs = NULL;
    if (c == NULL || url == NULL || auth == NULL)
        goto fail;
    snprintf(url, ul, "%s%s", p->url, path);
    snprintf(auth, al, "Authorization: Bearer %s", p->token);
    *hdrs = curl_slist_append(NULL, auth); /* copies */
    if (*hdrs == NULL)
        goto fail;
    curl_easy_setopt(c, CURLOPT_URL, url); /* copies */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, FETCH_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ctxsync-node/" CS_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (p->ca != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, p->ca);
    if (p->cert != NULL) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, p->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, p->key);
    }
    goto out;
fail:
    if (c != NULL)
        curl_easy_cleanup(c);
    c = NULL;
out:
    free(url);
    cs_free_secret(auth);
    return c;
}

/* The "message" of a JSON error body, or a fallback. */
static void
peer_status_msg(const cs_peer *p, long status, const fetch_buf *b, char *msg,
                size_t msz)
{
    json_t *j = b->data != NULL ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(msg, msz, "%s answered %ld: %.200s", p->node_id, status,
             m != NULL ? m : "no message");
    json_decref(j);
}

/* GET {peer}/federation/payload?version_id=&on_behalf_of=. On F_OK *out
 * holds the bytes (verified against content_hash); otherwise msg says
 * why. */
static fetch_res
fetch_payload(const cs_peer *p, const char *version_id, const char *obo,
              const char *content_hash, size_t size, fetch_buf *out,
              bool *home_no_cache, char *msg, size_t msz)
{
    CURL *c = NULL;
    struct curl_slist *hdrs = NULL;
    char *ev = NULL, *eo = NULL, *path = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    char got[CS_CONTENT_HASH_LEN + 1];
    /* the payload, or an error body of up to 64 KiB */
    fetch_buf b = {NULL, 0, 0, size + 65536};
    fetch_res res = F_UNAVAILABLE;
    long status = 0;
    size_t pl;
    CURLcode cc;

    if (size > FETCH_MAX_BYTES)
        b.max = FETCH_MAX_BYTES;
    ev = curl_easy_escape(NULL, version_id, 0);
    eo = curl_easy_escape(NULL, obo, 0);
    if (ev == NULL || eo == NULL)
        goto oom;
    pl = strlen(ev) + strlen(eo) + 64;
    if ((path = malloc(pl)) == NULL)
        goto oom;
    snprintf(path, pl, "/federation/payload?version_id=%s&on_behalf_of=%s", ev, eo);
    c = peer_handle(p, path, FETCH_TIMEOUT_MS, &b, errbuf, &hdrs);
    if (c == NULL)
        goto oom;
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(msg, msz, "%s unreachable: %s", p->node_id,
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        peer_status_msg(p, status, &b, msg, msz);
        res = status == 403   ? F_FORBIDDEN
              : status == 451 ? F_RESTRICTED
              : status == 404 ? F_NOTFOUND
                              : F_UNAVAILABLE;
        goto out;
    }
    cs_content_hash(b.data != NULL ? b.data : "", b.len, got);
    if (strcmp(got, content_hash) != 0) {
        snprintf(msg, msz, "%s sent bytes that hash to %s, not %s",
                 p->node_id, got, content_hash);
        goto out;
    }
    if (b.data == NULL && (b.data = calloc(1, 1)) == NULL)
        goto oom;
    {
        struct curl_header *h = NULL;
        *home_no_cache =
            curl_easy_header(c, "X-Residency-Cache", 0, CURLH_HEADER, -1,
                             &h) == CURLHE_OK &&
            h != NULL && strcmp(h->value, "allow") != 0;
    }
    *out = b;
    b.data = NULL;
    res = F_OK;
    goto out;
oom:
    snprintf(msg, msz, "out of memory");
out:
    free(b.data);
    free(path);
    curl_free(ev);
    curl_free(eo);
    curl_slist_free_all(hdrs);
    if (c != NULL)
        curl_easy_cleanup(c);
    return res;
}

cs_err
cs_peer_get_json(const cs_peer *p, const char *path, json_t **out, char *msg,
                 size_t msz)
{
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    fetch_buf b = {NULL, 0, 0, 1 << 20};
    CURL *c = peer_handle(p, path, 10000L, &b, errbuf, &hdrs);
    cs_err rv = CS_EIO;
    long status = 0;
    CURLcode cc;

    *out = NULL;
    if (c == NULL) {
        snprintf(msg, msz, "out of memory");
        rv = CS_ENOMEM;
        goto out;
    }
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(msg, msz, "%s (%s) unreachable: %s", p->node_id, p->url,
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        peer_status_msg(p, status, &b, msg, msz);
        rv = status == 401 || status == 403 ? CS_EFORBIDDEN : CS_EIO;
        goto out;
    }
    *out = b.data != NULL ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        snprintf(msg, msz, "%s answered 200 without a JSON object", p->node_id);
        rv = CS_EPROTO;
        goto out;
    }
    rv = CS_OK;
out:
    free(b.data);
    curl_slist_free_all(hdrs);
    if (c != NULL)
        curl_easy_cleanup(c);
    return rv;
}

typedef struct fetched_arg {
    const char *actor_id, *uri, *version_id, *downstream, *detail;
    int64_t version;
    const char *hash;
    const char *bytes;
    size_t len;
    bool cache;
} fetched_arg;

/* The reading node's rows (remote_fetch and read) and, when allowed, the
 * cached blob with payload_state moved to inline: one transaction. */
static cs_err
fetched_fn(cs_tx *tx, void *p, cs_errbuf *eb)
{
    fetched_arg *a = p;
    cs_db *db = cs_tx_db(tx);
    cs_err rv;

    if (a->cache) {
        cs_dbst *st;
        int rc;
        rv = cs_blob_put(tx, a->hash, a->bytes, a->len, eb);
        if (rv != CS_OK)
            return rv;
        st = cs_stmt(db, "UPDATE artifact_versions SET payload_state ="
                         " 'inline' WHERE version_id = ?1 AND"
                         " payload_state <> 'inline'");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, a->version_id, -1, CS_DB_STATIC);
        rc = cs_db_step(st);
        cs_db_reset(st);
        if (rc != CS_DB_DONE)
            return cs_db_err(db, rc, eb);
    }
    rv = cs_prov_append_detail(tx, a->actor_id, "remote_fetch", a->uri,
                               a->version, a->version_id, NULL, a->detail,
                               eb);
    if (rv == CS_OK)
        rv = cs_prov_append(tx, a->actor_id, "read", a->uri, a->version,
                            a->version_id, a->downstream, eb);
    return rv;
}

/* The peers to ask, best first: the origin node when it is in the home
 * region, then every other peer of the home region. */
static size_t
candidates(const cs_peers *ps, const char *origin, const char *home,
           const cs_peer **out, size_t max)
{
    size_t i, n = 0;
    for (i = 0; i < cs_peers_count(ps) && n < max; i++) {
        const cs_peer *p = cs_peers_get(ps, i);
        if (strcmp(p->node_id, origin) == 0 && strcmp(p->region, home) == 0)
            out[n++] = p;
    }
    for (i = 0; i < cs_peers_count(ps) && n < max; i++) {
        const cs_peer *p = cs_peers_get(ps, i);
        if (strcmp(p->region, home) == 0 && strcmp(p->node_id, origin) != 0)
            out[n++] = p;
    }
    return n;
}

/* The content JSON of fetched bytes, as GET /artifacts returns it. */
static json_t *
content_json(const char *ctype, const char *bytes, size_t len)
{
    json_t *c = NULL;
    if (ctype != NULL && cs_content_type_is_json(ctype) &&
        cs_json_parse(bytes, len, &c, NULL) == CS_OK)
        return c;
    if (cs_utf8_valid(bytes, len))
        return json_stringn(bytes, len);
    return NULL;
}

void
cs_res_read_remote(cs_req *r, const char *uri, json_t *a,
                   const char *downstream)
{
    cs_node *n = cs_req_node(r);
    const cs_actor *me = cs_req_actor(r);
    const json_t *origin = json_object_get(a, "origin");
    const char *onode = json_string_value(json_object_get(origin, "node_id"));
    const char *oregion = json_string_value(json_object_get(origin, "region"));
    const char *vid = json_string_value(json_object_get(a, "version_id"));
    const char *hash = json_string_value(json_object_get(a, "content_hash"));
    const char *ctype = json_string_value(json_object_get(a, "content_type"));
    int64_t version = json_integer_value(json_object_get(a, "version"));
    json_int_t size = json_integer_value(json_object_get(a, "size"));
    const char *myregion = cs_store_region(n->store);
    const cs_res_rule *rule = cs_residency_match(n->residency, uri, NULL);
    const char *home = rule != NULL ? rule->home_region
                                    : (oregion != NULL ? oregion : "");
    const cs_peer *cand[PEERS_MAX];
    const cs_peer *from = NULL;
    fetch_buf got = {NULL, 0, 0, 0};
    fetch_res worst = F_NOTFOUND;
    bool home_no_cache = false;
    char msg[400] = "", last[400] = "";
    cs_errbuf eb = {{0}};
    json_t *content = NULL, *d = NULL;
    char *detail = NULL;
    fetched_arg fa;
    size_t nc, i;
    cs_err rv;

    if (onode == NULL || vid == NULL || hash == NULL || size < 0) {
        cs_res_error(r, 500, "internal", "incomplete version record");
        goto out;
    }
    /* on_demand: deny, outside the home region */
    if (rule != NULL && !rule->on_demand &&
        !cs_res_payload_allowed(rule, myregion)) {
        cs_res_error_x(r, 451, "residency_restricted", home_extra(home),
                       "the payload of %s stays in %s: the residency policy "
                       "denies on-demand reads (rule %s)", uri, home,
                       rule->pattern);
        goto out;
    }
    nc = candidates(n->peers, onode, home, cand, PEERS_MAX);
    if (nc == 0) {
        cs_res_error_x(r, 503, "unavailable", home_extra(home),
                       "the payload of %s is stored in %s and this node has "
                       "no peer there (--peers)", uri, home);
        goto out;
    }
    for (i = 0; i < nc; i++) {
        fetch_res fr = fetch_payload(cand[i], vid, me->actor_id, hash,
                                     (size_t)size, &got, &home_no_cache, msg,
                                     sizeof(msg));
        if (fr == F_OK) {
            from = cand[i];
            break;
        }
        cs_log(CS_LOG_WARN, "RESIDENCY-FETCH", "uri=%s version_id=%s: %s",
               uri, vid, msg);
        snprintf(last, sizeof(last), "%s", msg);
        /* a refusal by the home node is final: it judged the actor */
        if (fr == F_FORBIDDEN || fr == F_RESTRICTED) {
            worst = fr;
            break;
        }
        if (fr == F_UNAVAILABLE)
            worst = F_UNAVAILABLE;
    }
    if (from == NULL) {
        if (worst == F_FORBIDDEN)
            cs_res_error_x(r, 403, "forbidden", home_extra(home),
                           "the home node refused the read: %s", last);
        else if (worst == F_RESTRICTED)
            cs_res_error_x(r, 451, "residency_restricted", home_extra(home),
                           "the home node refused the read: %s", last);
        else
            cs_res_error_x(r, 503, "unavailable", home_extra(home),
                           "the payload of %s could not be fetched from %s: "
                           "%s", uri, home, last);
        goto out;
    }
    content = content_json(ctype, got.data, got.len);
    if (content == NULL) {
        cs_res_error(r, 500, "internal", "the payload of %s is not text", vid);
        goto out;
    }
    memset(&fa, 0, sizeof(fa));
    fa.cache = cs_res_may_cache(rule, myregion) && !home_no_cache;
    d = json_pack("{s:s,s:s,s:s,s:s,s:b}", "direction", "fetched",
                  "from_node", from->node_id, "from_region", from->region,
                  "home_region", home, "cached", fa.cache);
    detail = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    if (detail == NULL) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        goto out;
    }
    fa.actor_id = me->actor_id;
    fa.uri = uri;
    fa.version_id = vid;
    fa.downstream = downstream;
    fa.detail = detail;
    fa.version = version;
    fa.hash = hash;
    fa.bytes = got.data;
    fa.len = got.len;
    rv = cs_store_write(n->store, fetched_fn, &fa, &eb);
    if (rv != CS_OK) {
        cs_res_store_error(r, rv, &eb);
        goto out;
    }
    cs_log(CS_LOG_INFO, "RESIDENCY-FETCH",
           "uri=%s version_id=%s actor=%s from=%s cached=%s", uri, vid,
           me->actor_id, from->node_id, fa.cache ? "yes" : "no");
    json_object_set_new(a, "content", content);
    content = NULL;
    if (fa.cache)
        json_object_set_new(a, "payload_state", json_string("inline"));
    json_object_set_new(a, "fetched_from",
                        json_pack("{s:s,s:s}", "node_id", from->node_id,
                                  "region", from->region));
    cs_res_json(r, 200, a);
    a = NULL;
out:
    if (got.data != NULL) {
        explicit_bzero(got.data, got.len); /* leave no copy behind */
        free(got.data);
    }
    json_decref(content);
    json_decref(d);
    free(detail);
    json_decref(a);
}

/* ------------------------------------------------------------------ */
/* GET /residency/check?uri= */

static void
h_check(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    const char *uri;
    const cs_res_rule *rule;
    size_t idx = 0;
    char expl[1600];
    json_t *o;

    if (!cs_req_query_uri(r, "uri", &uri))
        return;
    rule = cs_residency_match(n->residency, uri, &idx);
    cs_residency_explain(n->residency, uri, expl, sizeof(expl));
    o = json_pack(
        "{s:s,s:o,s:o,s:o,s:s,s:s,s:b,s:s,s:s,s:b,s:b}", "uri", uri, "rule",
        rule != NULL
            ? json_pack("{s:s,s:s,s:s,s:s,s:b}", "pattern", rule->pattern,
                        "home_region", rule->home_region, "payload",
                        cs_res_payload_name(rule->payload), "on_demand",
                        rule->on_demand ? "allow" : "deny", "cache",
                        rule->cache)
            : json_null(),
        "index", rule != NULL ? json_integer((json_int_t)idx + 1) : json_null(),
        "home_region", rule != NULL ? json_string(rule->home_region)
                                    : json_null(),
        "payload", rule != NULL ? cs_res_payload_name(rule->payload)
                                : "replicate",
        "on_demand", rule == NULL || rule->on_demand ? "allow" : "deny",
        "cache", rule == NULL || rule->cache, "explanation", expl,
        "node_region", cs_store_region(n->store), "payload_allowed_here",
        cs_res_payload_allowed(rule, cs_store_region(n->store)),
        "policy_loaded", n->residency != NULL);
    if (o == NULL) {
        cs_res_store_error(r, CS_ENOMEM, NULL);
        return;
    }
    cs_res_json(r, 200, o);
}

const cs_route cs_routes_residency[] = {
    {"GET", "/residency/check", h_check, 0},
    {NULL, NULL, NULL, 0},
};
