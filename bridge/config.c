/* SPDX-License-Identifier: MIT
 * config.c: parse and validate the bridge configuration (see config.h). */
#include "config.h"

#include "cs_file.h"
#include "cs_hash.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_log.h"
#include "cs_uri.h"

#define CONFIG_MAX_BYTES ((size_t)1024 * 1024)
#define TOKEN_MAX 4096
#define PATTERNS_MAX 256

struct br_config {
    char *status;
    char *control;
    char *state_dir;
    br_link_config *links;
    size_t nlinks;
    cs_residency *residency; /* residency: NULL when not configured */
};

/* ---- small helpers ------------------------------------------------------ */

/* Fails with CS_EINVAL naming the first key of obj that is not in allowed. */
static cs_err
check_keys(const json_t *obj, const char *const *allowed, const char *where,
           cs_errbuf *eb)
{
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)obj, key, val) {
        size_t i;
        int ok = 0;
        (void)val;
        for (i = 0; allowed[i] != NULL; i++) {
            if (strcmp(allowed[i], key) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok)
            return cs_errf(eb, CS_EINVAL, "%s: unknown key \"%.64s\"", where, key);
    }
    return CS_OK;
}

/* Optional string member; *out is a copy or NULL when absent. */
static cs_err
opt_string(const json_t *obj, const char *key, const char *where, char **out,
           cs_errbuf *eb)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL)
        return CS_OK;
    if (!json_is_string(v))
        return cs_errf(eb, CS_EINVAL, "%s.%s: must be a string", where, key);
    if (json_string_length(v) == 0)
        return cs_errf(eb, CS_EINVAL, "%s.%s: must not be empty", where, key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cs_errf(eb, CS_EINVAL, "%s.%s: contains a NUL byte", where, key);
    *out = strdup(json_string_value(v));
    if (*out == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    return CS_OK;
}

/* Optional integer member within [lo, hi]; *out keeps its default. */
static cs_err
opt_int(const json_t *obj, const char *key, const char *where, int64_t lo,
        int64_t hi, int64_t *out, cs_errbuf *eb)
{
    json_t *v = json_object_get(obj, key);
    json_int_t n;
    if (v == NULL)
        return CS_OK;
    if (!json_is_integer(v))
        return cs_errf(eb, CS_EINVAL, "%s.%s: must be an integer", where, key);
    n = json_integer_value(v);
    if (n < lo || n > hi)
        return cs_errf(eb, CS_EINVAL, "%s.%s: must be between %lld and %lld",
                       where, key, (long long)lo, (long long)hi);
    *out = n;
    return CS_OK;
}

static int
url_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' &&
           c != '\\' && c != '^' && c != '`' && c != '{' && c != '|' &&
           c != '}' && c != '?' && c != '#';
}

static cs_err
check_url(char *url, const char *where, cs_errbuf *eb)
{
    size_t n = strlen(url), i;
    const char *rest;

    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        return cs_errf(eb, CS_EINVAL, "%s.url: must start with http:// or https://",
                       where);
    if (*rest == '\0' || *rest == '/')
        return cs_errf(eb, CS_EINVAL, "%s.url: missing host", where);
    for (i = 0; i < n; i++) {
        if (!url_char_ok((unsigned char)url[i]))
            return cs_errf(eb, CS_EINVAL,
                           "%s.url: invalid character at byte %zu (no spaces, "
                           "query or fragment)", where, i);
    }
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return CS_OK;
}

/* A token travels in an HTTP header: printable ASCII, no spaces. */
static cs_err
check_token(const char *tok, const char *where, cs_errbuf *eb)
{
    size_t i, n = strlen(tok);
    if (n == 0)
        return cs_errf(eb, CS_EINVAL, "%s: token is empty", where);
    if (n > TOKEN_MAX)
        return cs_errf(eb, CS_EINVAL, "%s: token longer than %d bytes", where,
                       TOKEN_MAX);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (c <= 0x20 || c >= 0x7f)
            return cs_errf(eb, CS_EINVAL,
                           "%s: token contains a space or non-printable "
                           "character at byte %zu", where, i);
    }
    return CS_OK;
}

static cs_err
read_token_file(const char *base_dir, const char *path, const char *where,
                char **out, cs_errbuf *eb)
{
    char full[4096];
    char buf[TOKEN_MAX + 2];
    FILE *f = NULL;
    size_t n;
    cs_err rc = CS_OK;
    int w;

    if (path[0] == '/' || base_dir == NULL)
        w = snprintf(full, sizeof(full), "%s", path);
    else
        w = snprintf(full, sizeof(full), "%s/%s", base_dir, path);
    if (w < 0 || (size_t)w >= sizeof(full)) {
        rc = cs_errf(eb, CS_EINVAL, "%s.token_file: path too long", where);
        goto out;
    }
    f = fopen(full, "rb");
    if (f == NULL) {
        rc = cs_errf(eb, CS_EIO, "%s.token_file: cannot open %.200s: %s", where,
                     full, strerror(errno));
        goto out;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (ferror(f)) {
        rc = cs_errf(eb, CS_EIO, "%s.token_file: cannot read %.200s", where, full);
        goto out;
    }
    if (n > TOKEN_MAX) {
        rc = cs_errf(eb, CS_EINVAL, "%s.token_file: longer than %d bytes", where,
                     TOKEN_MAX);
        goto out;
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (memchr(buf, '\0', n) != NULL) {
        rc = cs_errf(eb, CS_EINVAL, "%s.token_file: contains a NUL byte", where);
        goto out;
    }
    *out = strdup(buf);
    if (*out == NULL)
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
out:
    explicit_bzero(buf, sizeof(buf));
    if (f != NULL)
        fclose(f);
    return rc;
}

static void
endpoint_free(br_endpoint *ep)
{
    free(ep->url);
    cs_free_secret(ep->token);
    free(ep->ca);
    free(ep->cert);
    free(ep->key);
    memset(ep, 0, sizeof(*ep));
}

static cs_err
parse_endpoint(const json_t *obj, const char *where, const char *base_dir,
               br_endpoint *ep, cs_errbuf *eb)
{
    static const char *const keys[] = {"url", "token", "token_file", "token_env",
                                       "ca", "cert", "key", "insecure", NULL};
    char *token_file = NULL, *token_env = NULL;
    json_t *v;
    int ntok = 0;
    cs_err rc;

    if (obj == NULL) {
        rc = cs_errf(eb, CS_EINVAL, "%s: missing", where);
        goto out;
    }
    if (!json_is_object(obj)) {
        rc = cs_errf(eb, CS_EINVAL, "%s: must be an object", where);
        goto out;
    }
    if ((rc = check_keys(obj, keys, where, eb)) != CS_OK)
        goto out;
    if ((rc = opt_string(obj, "url", where, &ep->url, eb)) != CS_OK)
        goto out;
    if (ep->url == NULL) {
        rc = cs_errf(eb, CS_EINVAL, "%s.url: missing", where);
        goto out;
    }
    if ((rc = check_url(ep->url, where, eb)) != CS_OK)
        goto out;
    /* never echo the token's value in an error */
    v = json_object_get(obj, "token");
    if (v != NULL && !json_is_string(v)) {
        rc = cs_errf(eb, CS_EINVAL, "%s.token: must be a string", where);
        goto out;
    }
    if (v != NULL) {
        ntok++;
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            rc = cs_errf(eb, CS_EINVAL, "%s.token: contains a NUL byte", where);
            goto out;
        }
        ep->token = strdup(json_string_value(v));
        if (ep->token == NULL) {
            rc = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = opt_string(obj, "token_file", where, &token_file, eb)) != CS_OK)
        goto out;
    if ((rc = opt_string(obj, "token_env", where, &token_env, eb)) != CS_OK)
        goto out;
    ntok += token_file != NULL;
    ntok += token_env != NULL;
    if (ntok == 0) {
        rc = cs_errf(eb, CS_EINVAL,
                     "%s.token: missing (give one of token, token_file, token_env)",
                     where);
        goto out;
    }
    if (ntok > 1) {
        rc = cs_errf(eb, CS_EINVAL,
                     "%s: give only one of token, token_file, token_env", where);
        goto out;
    }
    if (token_file != NULL) {
        if ((rc = read_token_file(base_dir, token_file, where, &ep->token, eb)) !=
            CS_OK)
            goto out;
    } else if (token_env != NULL) {
        const char *e = getenv(token_env);
        if (e == NULL || e[0] == '\0') {
            rc = cs_errf(eb, CS_EINVAL,
                         "%s.token_env: environment variable %.64s is not set",
                         where, token_env);
            goto out;
        }
        ep->token = strdup(e);
        if (ep->token == NULL) {
            rc = cs_errf(eb, CS_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = check_token(ep->token, where, eb)) != CS_OK)
        goto out;
    if ((rc = opt_string(obj, "ca", where, &ep->ca, eb)) != CS_OK)
        goto out;
    if ((rc = opt_string(obj, "cert", where, &ep->cert, eb)) != CS_OK)
        goto out;
    if ((rc = opt_string(obj, "key", where, &ep->key, eb)) != CS_OK)
        goto out;
    if ((ep->cert == NULL) != (ep->key == NULL)) {
        rc = cs_errf(eb, CS_EINVAL, "%s: cert and key must be given together",
                     where);
        goto out;
    }
    v = json_object_get(obj, "insecure");
    if (v != NULL && !json_is_boolean(v)) {
        rc = cs_errf(eb, CS_EINVAL, "%s.insecure: must be true or false", where);
        goto out;
    }
    ep->insecure = v != NULL && json_is_true(v);
    rc = CS_OK;
out:
    free(token_file);
    free(token_env);
    return rc;
}

static int
name_ok(const char *s)
{
    size_t i, n = strlen(s);
    if (n == 0 || n > BR_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void
link_free(br_link_config *l)
{
    size_t i;
    free(l->name);
    endpoint_free(&l->source);
    endpoint_free(&l->target);
    for (i = 0; i < l->npatterns; i++)
        free(l->patterns[i]);
    free(l->patterns);
    free(l->patterns_csv);
    memset(l, 0, sizeof(*l));
}

static cs_err
parse_patterns(const json_t *arr, const char *where, br_link_config *l,
               cs_errbuf *eb)
{
    size_t i, n, total = 0, pos = 0;
    cs_err rc = CS_OK;

    if (arr == NULL) {
        n = 1;
    } else if (!json_is_array(arr)) {
        return cs_errf(eb, CS_EINVAL, "%s.patterns: must be an array of strings",
                       where);
    } else {
        n = json_array_size(arr);
        if (n == 0)
            return cs_errf(eb, CS_EINVAL, "%s.patterns: must not be empty", where);
        if (n > PATTERNS_MAX)
            return cs_errf(eb, CS_EINVAL, "%s.patterns: more than %d patterns",
                           where, PATTERNS_MAX);
    }
    l->patterns = calloc(n, sizeof(char *));
    if (l->patterns == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        const char *p = "**";
        cs_errbuf peb;
        if (arr != NULL) {
            json_t *v = json_array_get(arr, i);
            if (!json_is_string(v))
                return cs_errf(eb, CS_EINVAL, "%s.patterns[%zu]: must be a string",
                               where, i);
            p = json_string_value(v);
            if (strlen(p) != json_string_length(v))
                return cs_errf(eb, CS_EINVAL,
                               "%s.patterns[%zu]: contains a NUL byte", where, i);
        }
        peb.msg[0] = '\0';
        if (cs_pattern_validate(p, &peb) != CS_OK)
            return cs_errf(eb, CS_EINVAL, "%s.patterns[%zu]: bad pattern: %s",
                           where, i, peb.msg);
        if (strchr(p, ',') != NULL) /* cannot happen for a valid pattern */
            return cs_errf(eb, CS_EINVAL, "%s.patterns[%zu]: contains ','", where, i);
        l->patterns[i] = strdup(p);
        if (l->patterns[i] == NULL)
            return cs_errf(eb, CS_ENOMEM, "out of memory");
        l->npatterns = i + 1;
        total += strlen(p) + 1;
    }
    l->patterns_csv = malloc(total);
    if (l->patterns_csv == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    for (i = 0; i < l->npatterns; i++) {
        size_t k = strlen(l->patterns[i]);
        if (i > 0)
            l->patterns_csv[pos++] = ',';
        memcpy(l->patterns_csv + pos, l->patterns[i], k);
        pos += k;
    }
    l->patterns_csv[pos] = '\0';
    return rc;
}

static cs_err
parse_link(const json_t *obj, size_t idx, const char *base_dir,
           br_link_config *l, cs_errbuf *eb)
{
    static const char *const keys[] = {"name", "source", "target", "mode",
                                       "patterns", "batch", "in_flight",
                                       "keepalive_s", "backoff_max_s", NULL};
    static const char *const batch_keys[] = {"max_events", "max_bytes", NULL};
    char where[BR_NAME_MAX + 32], w2[BR_NAME_MAX + 48];
    json_t *v;
    int64_t n;
    cs_err rc;

    snprintf(where, sizeof(where), "links[%zu]", idx);
    l->mode = BR_MODE_FULL;
    l->max_events = BR_DEFAULT_MAX_EVENTS;
    l->max_bytes = BR_DEFAULT_MAX_BYTES;
    l->in_flight = BR_DEFAULT_IN_FLIGHT;
    l->keepalive_s = BR_DEFAULT_KEEPALIVE_S;
    l->backoff_max_s = BR_DEFAULT_BACKOFF_MAX_S;

    if (!json_is_object(obj)) {
        rc = cs_errf(eb, CS_EINVAL, "%s: must be an object", where);
        goto out;
    }
    v = json_object_get(obj, "name");
    if (v == NULL) {
        rc = cs_errf(eb, CS_EINVAL, "%s.name: missing", where);
        goto out;
    }
    if (!json_is_string(v) || !name_ok(json_string_value(v)) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        rc = cs_errf(eb, CS_EINVAL,
                     "%s.name: must be 1-%d characters of [A-Za-z0-9._-]", where,
                     BR_NAME_MAX);
        goto out;
    }
    l->name = strdup(json_string_value(v));
    if (l->name == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(where, sizeof(where), "link \"%s\"", l->name);
    if ((rc = check_keys(obj, keys, where, eb)) != CS_OK)
        goto out;

    snprintf(w2, sizeof(w2), "%s: source", where);
    if ((rc = parse_endpoint(json_object_get(obj, "source"), w2, base_dir,
                             &l->source, eb)) != CS_OK)
        goto out;
    snprintf(w2, sizeof(w2), "%s: target", where);
    if ((rc = parse_endpoint(json_object_get(obj, "target"), w2, base_dir,
                             &l->target, eb)) != CS_OK)
        goto out;
    if (strcmp(l->source.url, l->target.url) == 0) {
        rc = cs_errf(eb, CS_EINVAL, "%s: source.url and target.url are the same",
                     where);
        goto out;
    }

    v = json_object_get(obj, "mode");
    if (v != NULL) {
        const char *m = json_is_string(v) ? json_string_value(v) : NULL;
        if (m != NULL && strcmp(m, "full") == 0) {
            l->mode = BR_MODE_FULL;
        } else if (m != NULL && strcmp(m, "metadata") == 0) {
            l->mode = BR_MODE_METADATA;
        } else {
            rc = cs_errf(eb, CS_EINVAL,
                         "%s.mode: unknown mode (use \"metadata\" or \"full\")",
                         where);
            goto out;
        }
    }
    if ((rc = parse_patterns(json_object_get(obj, "patterns"), where, l, eb)) !=
        CS_OK)
        goto out;

    v = json_object_get(obj, "batch");
    if (v != NULL) {
        snprintf(w2, sizeof(w2), "%s.batch", where);
        if (!json_is_object(v)) {
            rc = cs_errf(eb, CS_EINVAL, "%s: must be an object", w2);
            goto out;
        }
        if ((rc = check_keys(v, batch_keys, w2, eb)) != CS_OK)
            goto out;
        if ((rc = opt_int(v, "max_events", w2, 1, BR_MAX_EVENTS_LIMIT,
                          &l->max_events, eb)) != CS_OK)
            goto out;
        if ((rc = opt_int(v, "max_bytes", w2, 1024, BR_MAX_BYTES_LIMIT / 2,
                          &l->max_bytes, eb)) != CS_OK)
            goto out;
    }
    n = l->in_flight;
    if ((rc = opt_int(obj, "in_flight", where, 1, BR_MAX_IN_FLIGHT, &n, eb)) != CS_OK)
        goto out;
    l->in_flight = (int)n;
    n = l->keepalive_s;
    if ((rc = opt_int(obj, "keepalive_s", where, 1, 3600, &n, eb)) != CS_OK)
        goto out;
    l->keepalive_s = (int)n;
    n = l->backoff_max_s;
    if ((rc = opt_int(obj, "backoff_max_s", where, 1, 3600, &n, eb)) != CS_OK)
        goto out;
    l->backoff_max_s = (int)n;
    rc = CS_OK;
out:
    return rc;
}

cs_err
br_hostport_validate(const char *s, cs_errbuf *eb)
{
    const char *colon = strrchr(s, ':');
    const char *p;
    long port = 0;
    size_t i;

    if (colon == NULL || colon == s)
        return cs_errf(eb, CS_EINVAL, "must be HOST:PORT");
    if (s[0] == '[' && colon[-1] != ']')
        return cs_errf(eb, CS_EINVAL, "must be HOST:PORT");
    for (i = 0; s + i < colon; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '/')
            return cs_errf(eb, CS_EINVAL, "invalid character in host");
    }
    p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return cs_errf(eb, CS_EINVAL, "port must be 0-65535");
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return cs_errf(eb, CS_EINVAL, "port must be 0-65535");
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
        return cs_errf(eb, CS_EINVAL, "port must be 0-65535");
    return CS_OK;
}

/* residency: "residency": "path" (relative to base_dir) loads the policy
 * into cfg; every problem is logged, the first one goes to eb. */
static cs_err
load_residency(const json_t *root, const char *base_dir, br_config *cfg,
               cs_errbuf *eb)
{
    cs_res_diag diag;
    cs_errbuf reb;
    char *rel = NULL, full[4096];
    size_t i;
    int w;
    cs_err rc;

    if ((rc = opt_string(root, "residency", "config", &rel, eb)) != CS_OK ||
        rel == NULL)
        return rc;
    if (rel[0] == '/' || base_dir == NULL)
        w = snprintf(full, sizeof(full), "%s", rel);
    else
        w = snprintf(full, sizeof(full), "%s/%s", base_dir, rel);
    free(rel);
    if (w < 0 || (size_t)w >= sizeof(full))
        return cs_errf(eb, CS_EINVAL, "config.residency: path too long");
    reb.msg[0] = '\0';
    rc = cs_residency_load(full, &cfg->residency, &diag, &reb);
    for (i = 0; i < diag.n; i++)
        cs_log(diag.items[i].error ? CS_LOG_ERROR : CS_LOG_WARN,
               "BRIDGE-RESIDENCY", "%s", diag.items[i].msg);
    if (rc != CS_OK)
        return cs_errf(eb, CS_EINVAL, "config.residency: %s", reb.msg);
    return CS_OK;
}

cs_err
br_config_parse(const char *buf, size_t len, const char *base_dir,
                br_config **out, cs_errbuf *eb)
{
    static const char *const keys[] = {"status", "control", "state_dir", "links",
                                       "residency", NULL};
    br_config *cfg = NULL;
    json_t *root = NULL, *links;
    json_error_t jerr;
    size_t i, j;
    cs_err rc;

    /* jansson's own message quotes the text near the error, which may be a
     * token: report the position only */
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = cs_errf(eb, CS_EINVAL,
                     "config: malformed JSON at line %d column %d (%s)", jerr.line,
                     jerr.column,
                     json_error_code(&jerr) == json_error_duplicate_key
                         ? "duplicate key"
                         : "syntax error or invalid UTF-8");
        goto out;
    }
    if (!json_is_object(root)) {
        rc = cs_errf(eb, CS_EINVAL, "config: must be a JSON object");
        goto out;
    }
    if ((rc = check_keys(root, keys, "config", eb)) != CS_OK)
        goto out;
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = opt_string(root, "status", "config", &cfg->status, eb)) != CS_OK)
        goto out;
    if (cfg->status != NULL) {
        cs_errbuf heb;
        heb.msg[0] = '\0';
        if (br_hostport_validate(cfg->status, &heb) != CS_OK) {
            rc = cs_errf(eb, CS_EINVAL, "config.status: %s", heb.msg);
            goto out;
        }
    }
    if ((rc = opt_string(root, "control", "config", &cfg->control, eb)) != CS_OK)
        goto out;
    if (cfg->control != NULL &&
        (strncmp(cfg->control, "ipc://", 6) != 0 || cfg->control[6] == '\0')) {
        rc = cs_errf(eb, CS_EINVAL, "config.control: must be ipc://PATH");
        goto out;
    }
    if ((rc = opt_string(root, "state_dir", "config", &cfg->state_dir, eb)) != CS_OK)
        goto out;
    if ((rc = load_residency(root, base_dir, cfg, eb)) != CS_OK)
        goto out;
    links = json_object_get(root, "links");
    if (links == NULL) {
        rc = cs_errf(eb, CS_EINVAL, "config.links: missing");
        goto out;
    }
    if (!json_is_array(links) || json_array_size(links) == 0) {
        rc = cs_errf(eb, CS_EINVAL, "config.links: must be a non-empty array");
        goto out;
    }
    if (json_array_size(links) > 1024) {
        rc = cs_errf(eb, CS_EINVAL, "config.links: more than 1024 links");
        goto out;
    }
    cfg->links = calloc(json_array_size(links), sizeof(br_link_config));
    if (cfg->links == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < json_array_size(links); i++) {
        cfg->nlinks = i + 1; /* so that a partial link is freed */
        if ((rc = parse_link(json_array_get(links, i), i, base_dir,
                             &cfg->links[i], eb)) != CS_OK)
            goto out;
        for (j = 0; j < i; j++) {
            const br_link_config *a = &cfg->links[j], *b = &cfg->links[i];
            if (strcmp(a->name, b->name) == 0) {
                rc = cs_errf(eb, CS_EINVAL, "link \"%s\": duplicate link name",
                             b->name);
                goto out;
            }
            if (strcmp(a->source.url, b->source.url) == 0 &&
                strcmp(a->target.url, b->target.url) == 0) {
                rc = cs_errf(eb, CS_EINVAL,
                             "link \"%s\": same source and target as link \"%s\" "
                             "(they would share one checkpoint)", b->name, a->name);
                goto out;
            }
        }
    }
    for (i = 0; i < cfg->nlinks; i++)
        cfg->links[i].residency = cfg->residency; /* residency: */
    *out = cfg;
    cfg = NULL;
    rc = CS_OK;
out:
    br_config_free(cfg);
    json_decref(root);
    return rc;
}

cs_err
br_config_load(const char *path, br_config **out, cs_errbuf *eb)
{
    char *buf = NULL, *dir = NULL;
    size_t n = 0;
    cs_err rc;

    rc = cs_file_read(path, CONFIG_MAX_BYTES, &buf, &n, eb);
    if (rc != CS_OK) {
        if (eb != NULL) {
            char tmp[sizeof(eb->msg)];
            snprintf(tmp, sizeof(tmp), "%s", eb->msg);
            cs_errbuf_set(eb, "config: %.240s", tmp);
        }
        goto out;
    }
    dir = cs_path_dir(path);
    if (dir == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    rc = br_config_parse(buf, n, dir, out, eb);
out:
    cs_file_free(buf, n); /* may hold tokens */
    free(dir);
    return rc;
}

void
br_config_free(br_config *cfg)
{
    size_t i;
    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->nlinks; i++)
        link_free(&cfg->links[i]);
    free(cfg->links);
    free(cfg->status);
    free(cfg->control);
    free(cfg->state_dir);
    cs_residency_free(cfg->residency);
    free(cfg);
}

const char *
br_config_status(const br_config *cfg)
{
    return cfg->status;
}

const char *
br_config_control(const br_config *cfg)
{
    return cfg->control;
}

const char *
br_config_state_dir(const br_config *cfg)
{
    return cfg->state_dir;
}

const cs_residency *
br_config_residency(const br_config *cfg)
{
    return cfg->residency;
}

size_t
br_config_nlinks(const br_config *cfg)
{
    return cfg->nlinks;
}

const br_link_config *
br_config_link(const br_config *cfg, size_t i)
{
    return i < cfg->nlinks ? &cfg->links[i] : NULL;
}

const br_link_config *
br_config_find_link(const br_config *cfg, const char *name)
{
    size_t i;
    for (i = 0; i < cfg->nlinks; i++) {
        if (strcmp(cfg->links[i].name, name) == 0)
            return &cfg->links[i];
    }
    return NULL;
}

const char *
br_mode_name(br_mode m)
{
    return m == BR_MODE_METADATA ? "metadata" : "full";
}
