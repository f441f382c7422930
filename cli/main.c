/* SPDX-License-Identifier: MIT
 * main.c: ctxsync, the ContextSync client command line.
 *
 * Exit status: 0 success, 1 server/transport/local error, 2 usage error. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_http.h"
#include "cli_table.h"
#include "cs_err.h"

#ifndef CS_VERSION
#define CS_VERSION "0.0.0"
#endif

#define EXIT_USAGE 2
#define DEFAULT_URL "http://127.0.0.1:4111"
#define CLI_MAX_INPUT ((size_t)64 * 1024 * 1024)
#define SHORT_ID_LEN 14

enum cmd {
    CMD_NONE = 0,
    CMD_GET,
    CMD_PUT,
    CMD_HISTORY,
    CMD_DIFF,
    CMD_ACTORS,
    CMD_GRANT,
    CMD_STATUS,
    CMD_FORKS,
    CMD_RESIDENCY,
};

enum optid {
    O_URL = 0,
    O_TOKEN,
    O_AUTH_ACTOR,
    O_JSON,
    O_HELP,
    O_SHOW_VERSION,
    O_VERSION,
    O_VERSION_ID,
    O_CONTENT,
    O_FILE,
    O_SUMMARY,
    O_BASE,
    O_NAME,
    O_CONTENT_TYPE,
    O_FORMAT,
    O_TYPE,
    O_CLASS,
    O_REGION,
    O_GRANT_ACTOR,
    O_KEEP,
    O_STATUS,
    O_PATTERN,
    O_LIMIT,
    O_CA,
    O_CERT,
    O_KEY,
    O_INSECURE,
    O_COUNT
};

#define C(x) (1u << (x))
#define OPT(x) (1ul << (x)) /* a set of options, see check_sub_opts() */

_Static_assert(O_COUNT <= 32, "option sets are unsigned long bit masks");

struct optdef {
    const char *name;
    int has_arg;
    unsigned cmds; /* commands that own the option; 0 = global */
    enum optid id;
};

/* Command options come first: after a command, its own option wins over a
 * global option of the same name (get --version N, grant --actor ID). */
static const struct optdef optdefs[] = {
    {"version", 1, C(CMD_GET), O_VERSION},
    {"version-id", 1, C(CMD_GET), O_VERSION_ID},
    {"content", 1, C(CMD_PUT) | C(CMD_FORKS), O_CONTENT},
    {"file", 1, C(CMD_PUT), O_FILE},
    {"summary", 1, C(CMD_PUT) | C(CMD_FORKS), O_SUMMARY},
    {"base", 1, C(CMD_PUT), O_BASE},
    {"name", 1, C(CMD_PUT) | C(CMD_ACTORS), O_NAME},
    {"content-type", 1, C(CMD_PUT) | C(CMD_FORKS), O_CONTENT_TYPE},
    {"format", 1, C(CMD_DIFF), O_FORMAT},
    {"type", 1, C(CMD_ACTORS), O_TYPE},
    {"class", 1, C(CMD_ACTORS) | C(CMD_GRANT), O_CLASS},
    {"region", 1, C(CMD_ACTORS), O_REGION},
    {"actor", 1, C(CMD_GRANT), O_GRANT_ACTOR},
    /* forks resolve --content-file F reads like put --file F */
    {"content-file", 1, C(CMD_FORKS), O_FILE},
    {"keep", 1, C(CMD_FORKS), O_KEEP},
    {"status", 1, C(CMD_FORKS), O_STATUS},
    {"pattern", 1, C(CMD_FORKS), O_PATTERN},
    {"limit", 1, C(CMD_FORKS), O_LIMIT},
    {"url", 1, 0, O_URL},
    {"token", 1, 0, O_TOKEN},
    {"actor", 1, 0, O_AUTH_ACTOR},
    {"json", 0, 0, O_JSON},
    {"ca", 1, 0, O_CA},
    {"cert", 1, 0, O_CERT},
    {"key", 1, 0, O_KEY},
    {"insecure", 0, 0, O_INSECURE},
    {"help", 0, 0, O_HELP},
    {"version", 0, 0, O_SHOW_VERSION},
};

struct cmddef {
    const char *name;
    enum cmd cmd;
};

static const struct cmddef cmddefs[] = {
    {"get", CMD_GET},         {"put", CMD_PUT},       {"history", CMD_HISTORY},
    {"diff", CMD_DIFF},       {"actors", CMD_ACTORS}, {"grant", CMD_GRANT},
    {"status", CMD_STATUS},   {"forks", CMD_FORKS},
    {"residency", CMD_RESIDENCY},
};

struct opts {
    const char *val[O_COUNT];
    int set[O_COUNT];
    const char **pos; /* positional arguments, pos[0] is the command */
    size_t npos;
    enum cmd cmd;
};

typedef struct ctx {
    cli_http http;
    int json;
    const struct opts *o;
} ctx;

static const char usage_text[] =
    "usage: ctxsync [global flags] COMMAND [args] [flags]\n"
    "\n"
    "Commands:\n"
    "  get URI [--version N | --version-id ID]\n"
    "  put URI (--content JSON | --file F) [--summary S] [--base N]\n"
    "          [--name NAME] [--content-type T]\n"
    "  history URI\n"
    "  diff URI FROM TO [--format lines|unified|json-patch]\n"
    "  actors [list]\n"
    "  actors show ID\n"
    "  actors create [ID] --type human|agent [--class C] [--region R]"
    " [--name NAME]\n"
    "  actors token ID\n"
    "  grant (--actor ID | --class C) PATTERN OP...\n"
    "  status\n"
    "  forks [list] [--status open|resolved|all] [--pattern P] [--limit N]\n"
    "  forks show ID\n"
    "  forks resolve ID (--keep VERSION_ID | --content-file F |"
    " --content JSON)\n"
    "          [--summary S] [--content-type T]\n"
    "  residency check URI\n"
    "\n"
    "Global flags (before or after the command):\n"
    "  --url URL      node URL (env CTXSYNC_URL, default " DEFAULT_URL ")\n"
    "  --token TOKEN  bearer token (env CTXSYNC_TOKEN)\n"
    "  --actor ID     send X-Actor-Id: ID instead of a token (header-auth"
    " nodes);\n"
    "                 after 'grant', --actor names the grantee instead\n"
    "  --json         print the server's JSON response\n"
    "  --ca FILE      CA bundle that signed the node's certificate (env\n"
    "                 CTXSYNC_CA; default: the system store)\n"
    "  --cert FILE    client certificate for mutual TLS (env CTXSYNC_CERT)\n"
    "  --key FILE     its private key (env CTXSYNC_KEY; default: --cert)\n"
    "  --insecure     do not verify the node's certificate (warns on every\n"
    "                 run; for tests only)\n"
    "  -h, --help     show this help\n"
    "  --version      print the version (after 'get', --version N selects a"
    " version)\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n";

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("ctxsync: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

static const struct optdef *
find_opt(const char *name, size_t namelen, enum cmd cmd)
{
    size_t n = sizeof(optdefs) / sizeof(optdefs[0]);
    /* A command's own option first, then the global one. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct optdef *d = &optdefs[i];
            int scope_ok = pass == 0 ? (cmd != CMD_NONE && (d->cmds & C(cmd)))
                                     : d->cmds == 0;
            if (scope_ok && strlen(d->name) == namelen &&
                strncmp(d->name, name, namelen) == 0)
                return d;
        }
    }
    return NULL;
}

static enum cmd
find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof(cmddefs) / sizeof(cmddefs[0]); i++) {
        if (strcmp(cmddefs[i].name, name) == 0)
            return cmddefs[i].cmd;
    }
    return CMD_NONE;
}

/* Parses argv into *o. Returns 0, or EXIT_USAGE after printing usage. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
    int only_pos = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct optdef *d;
        const char *name, *eq;
        size_t namelen;

        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->npos == 0) {
                o->cmd = find_cmd(a);
                if (o->cmd == CMD_NONE)
                    return usage_error("unknown command '%s'", a);
            }
            o->pos[o->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0) {
            o->set[O_HELP] = 1;
            continue;
        }
        if (a[1] != '-')
            return usage_error("unknown flag '%s'", a);
        name = a + 2;
        eq = strchr(name, '=');
        namelen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        d = find_opt(name, namelen, o->cmd);
        if (d == NULL)
            return usage_error("unknown flag '%s'", a);
        if (d->has_arg) {
            if (eq != NULL) {
                o->val[d->id] = eq + 1;
            } else {
                if (i + 1 >= argc)
                    return usage_error("flag '%s' needs a value", a);
                o->val[d->id] = argv[++i];
            }
        } else if (eq != NULL) {
            return usage_error("flag '%s' takes no value", a);
        }
        o->set[d->id] = 1;
    }
    return 0;
}

/* ---- small helpers ---------------------------------------------------- */

/* Parses a non-negative decimal integer. Returns 0 on success. */
static int
parse_nonneg(const char *s, long long *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Strict UTF-8 check: no overlongs, no surrogates, max U+10FFFF. */
static int
utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned long cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* Reads a whole file ("-" = stdin), at most CLI_MAX_INPUT bytes.
 * *out is malloc'ed, NUL-terminated, owned by the caller. */
static int
read_file(const char *path, char **out, size_t *outlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 1;

    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
        goto out;
    }
    for (;;) {
        size_t n;
        if (cap - len < 4096 + 1) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb;
            if (ncap > CLI_MAX_INPUT + 4096 + 1)
                ncap = CLI_MAX_INPUT + 4096 + 1;
            if (ncap <= cap) {
                fprintf(stderr, "error: %s is larger than %zu bytes\n", path,
                        CLI_MAX_INPUT);
                goto out;
            }
            nb = realloc(buf, ncap);
            if (nb == NULL) {
                fprintf(stderr, "error: out of memory reading %s\n", path);
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > CLI_MAX_INPUT) {
            fprintf(stderr, "error: %s is larger than %zu bytes\n", path,
                    CLI_MAX_INPUT);
            goto out;
        }
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "error: cannot read %s: %s\n", path,
                        strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (buf == NULL) {
        buf = malloc(1);
        if (buf == NULL) {
            fprintf(stderr, "error: out of memory reading %s\n", path);
            goto out;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = 0;
out:
    if (f != NULL && f != stdin)
        fclose(f);
    free(buf);
    return rc;
}

static int
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Formats a scalar JSON value for human output into buf. */
static const char *
scalar_str(const json_t *v, char *buf, size_t bufsz)
{
    if (v == NULL || json_is_null(v))
        return "-";
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, bufsz, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, bufsz, "%g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "yes" : "no";
    return "(value)";
}

/* Like scalar_str, but compound values are rendered as compact JSON into
 * a malloc'ed string that the caller frees via *owned. */
static const char *
value_str(const json_t *v, char *buf, size_t bufsz, char **owned)
{
    *owned = NULL;
    if (json_is_object(v) || json_is_array(v)) {
        *owned = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        return *owned != NULL ? *owned : "(value)";
    }
    return scalar_str(v, buf, bufsz);
}

static void
print_kv(const char *key, const json_t *v)
{
    char buf[64];
    char *owned = NULL;
    const char *s = value_str(v, buf, sizeof(buf), &owned);
    printf("%-13s %s\n", key, s);
    free(owned);
}

static int
print_json(const json_t *j)
{
    if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0) {
        fputs("error: cannot write JSON output\n", stderr);
        return 1;
    }
    fputc('\n', stdout);
    return 0;
}

static const char *
obj_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- HTTP plumbing ---------------------------------------------------- */

/* Sends one request; returns 0 when a response arrived (any status), else
 * prints the transport error and returns 1. */
static int
send_req(const ctx *c, const char *method, const char *path,
         const char *const *query, const json_t *body, cli_resp *resp)
{
    char *payload = NULL;
    cs_errbuf eb = {{0}};
    cs_err err;
    int rc = 1;

    if (body != NULL) {
        payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (payload == NULL) {
            fputs("error: cannot encode the request as JSON\n", stderr);
            goto out;
        }
    }
    err = cli_http_request(&c->http, method, path, query, payload,
                           payload != NULL ? strlen(payload) : 0, resp, &eb);
    if (err != CS_OK) {
        fprintf(stderr, "error: %s\n",
                eb.msg[0] != '\0' ? eb.msg : cs_strerror(err));
        goto out;
    }
    rc = 0;
out:
    free(payload);
    return rc;
}

static json_t *
parse_resp(const cli_resp *r)
{
    return json_loadb(r->body, r->len, JSON_ALLOW_NUL, NULL);
}

/* Prints "error: <message> (<code>, HTTP <status>)" and returns 1. */
static int
print_server_error(const cli_resp *r)
{
    json_t *j = parse_resp(r);
    const char *code = obj_str(j, "error");
    const char *msg = obj_str(j, "message");

    if (code != NULL) {
        fprintf(stderr, "error: %s (%s, HTTP %ld)\n",
                msg != NULL ? msg : code, code, r->status);
    } else {
        /* Not a ContextSync error body: show a bounded excerpt. */
        int n = r->len > 200 ? 200 : (int)r->len;
        while (n > 0 && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
            n--;
        if (n > 0)
            fprintf(stderr, "error: HTTP %ld: %.*s\n", r->status, n, r->body);
        else
            fprintf(stderr, "error: HTTP %ld\n", r->status);
    }
    json_decref(j);
    return 1;
}

/* Sends a request that must succeed (2xx) with a JSON body (or none, when
 * out is NULL). On failure prints the error and returns 1. */
static int
call_json(const ctx *c, const char *method, const char *path,
          const char *const *query, const json_t *body, json_t **out)
{
    cli_resp resp = {0};
    json_t *j = NULL;
    json_error_t jerr;
    int rc = 1;

    if (send_req(c, method, path, query, body, &resp) != 0)
        goto out;
    if (resp.status < 200 || resp.status > 299) {
        print_server_error(&resp);
        goto out;
    }
    if (out != NULL) {
        j = json_loadb(resp.body, resp.len, JSON_ALLOW_NUL, &jerr);
        if (j == NULL) {
            fprintf(stderr, "error: node sent invalid JSON (HTTP %ld): %s\n",
                    resp.status, jerr.text);
            goto out;
        }
        *out = j;
        j = NULL;
    }
    rc = 0;
out:
    json_decref(j);
    cli_resp_free(&resp);
    return rc;
}

/* Builds "/prefix/<escaped id>/suffix". *out is malloc'ed. */
static int
path_with_id(const char *prefix, const char *id, const char *suffix,
             char **out)
{
    char *esc = NULL;
    char *p = NULL;
    cs_errbuf eb = {{0}};
    size_t n;
    int rc = 1;

    if (cli_http_escape(id, &esc, &eb) != CS_OK) {
        fprintf(stderr, "error: %s\n", eb.msg);
        goto out;
    }
    n = strlen(prefix) + strlen(esc) + strlen(suffix) + 1;
    p = malloc(n);
    if (p == NULL) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    snprintf(p, n, "%s%s%s", prefix, esc, suffix);
    *out = p;
    p = NULL;
    rc = 0;
out:
    free(esc);
    free(p);
    return rc;
}

/* ---- get -------------------------------------------------------------- */

static int
cmd_get(const ctx *c)
{
    const struct opts *o = c->o;
    json_t *art = NULL;
    const json_t *content;
    long long v;
    int rc = 1;

    if (o->npos != 2)
        return usage_error("get takes exactly one URI");
    if (o->set[O_VERSION] && parse_nonneg(o->val[O_VERSION], &v) != 0)
        return usage_error("--version needs a version number, not '%s'",
                           o->val[O_VERSION]);
    if (o->set[O_VERSION] && o->set[O_VERSION_ID])
        return usage_error("give --version or --version-id, not both");
    {
        const char *q[] = {"uri", o->pos[1],
                           "version", o->val[O_VERSION],
                           "version_id", o->val[O_VERSION_ID],
                           NULL};
        if (call_json(c, "GET", "/artifacts", q, NULL, &art) != 0)
            goto out;
    }
    if (c->json) {
        rc = print_json(art);
        goto out;
    }
    print_kv("uri:", json_object_get(art, "uri"));
    print_kv("version:", json_object_get(art, "version"));
    print_kv("version_id:", json_object_get(art, "version_id"));
    print_kv("author:", json_object_get(art, "author_id"));
    print_kv("updated:", json_object_get(art, "updated_at") != NULL
                             ? json_object_get(art, "updated_at")
                             : json_object_get(art, "created_at"));
    print_kv("content_type:", json_object_get(art, "content_type"));
    if (json_is_string(json_object_get(art, "fork_id")))
        printf("%-13s yes (fork %s)\n", "forked:", obj_str(art, "fork_id"));
    else
        print_kv("forked:", json_is_true(json_object_get(art, "forked"))
                                ? json_true() : json_false());
    if (json_is_string(json_object_get(art, "summary")))
        print_kv("summary:", json_object_get(art, "summary"));
    fputc('\n', stdout);

    content = json_object_get(art, "content");
    if (content == NULL) {
        const char *ps = obj_str(art, "payload_state");
        printf("(no content%s%s)\n", ps != NULL ? "; payload_state " : "",
               ps != NULL ? ps : "");
    } else if (json_is_string(content)) {
        size_t n = json_string_length(content);
        const char *s = json_string_value(content);
        fwrite(s, 1, n, stdout);
        if (n > 0 && s[n - 1] != '\n')
            fputc('\n', stdout);
    } else if (print_json(content) != 0) {
        goto out;
    }
    rc = 0;
out:
    json_decref(art);
    return rc;
}

/* ---- put -------------------------------------------------------------- */

/* Builds the content value from --content or --file. */
static int
make_content(const struct opts *o, json_t **out)
{
    char *buf = NULL;
    size_t len = 0;
    json_t *j = NULL;
    json_error_t jerr;
    int rc = 1;

    if (o->set[O_CONTENT]) {
        const char *s = o->val[O_CONTENT];
        j = json_loads(s, JSON_DECODE_ANY, &jerr);
        if (j == NULL) {
            /* Not JSON: a plain string. */
            if (!utf8_valid((const unsigned char *)s, strlen(s))) {
                fputs("error: --content is not valid UTF-8\n", stderr);
                goto out;
            }
            j = json_string(s);
        }
    } else {
        const char *path = o->val[O_FILE];
        if (read_file(path, &buf, &len) != 0)
            goto out;
        if (ends_with(path, ".json")) {
            j = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
            if (j == NULL)
                fprintf(stderr,
                        "note: %s is not valid JSON (line %d: %s); "
                        "sending it as text\n",
                        path, jerr.line, jerr.text);
        }
        if (j == NULL) {
            if (!utf8_valid((const unsigned char *)buf, len)) {
                fprintf(stderr,
                        "error: %s is not valid UTF-8 text; ContextSync "
                        "stores text content as UTF-8\n",
                        path);
                goto out;
            }
            j = json_stringn(buf, len);
        }
    }
    if (j == NULL) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    *out = j;
    j = NULL;
    rc = 0;
out:
    json_decref(j);
    free(buf);
    return rc;
}

static int
set_str(json_t *obj, const char *key, const char *val)
{
    if (val == NULL)
        return 0;
    return json_object_set_new(obj, key, json_string(val)) == 0 ? 0 : -1;
}

static int
cmd_put(const ctx *c)
{
    const struct opts *o = c->o;
    const char *uri;
    json_t *content = NULL;
    json_t *body = NULL;
    json_t *res = NULL;
    cli_resp resp = {0};
    long long base = 0;
    int use_put = 0;
    int rc = 1;
    char nbuf[64];

    if (o->npos != 2)
        return usage_error("put takes exactly one URI");
    if (o->set[O_CONTENT] == o->set[O_FILE])
        return usage_error("put needs exactly one of --content or --file");
    if (o->set[O_BASE] && parse_nonneg(o->val[O_BASE], &base) != 0)
        return usage_error("--base needs a version number, not '%s'",
                           o->val[O_BASE]);
    uri = o->pos[1];
    if (make_content(o, &content) != 0)
        goto out;

    if (!o->set[O_BASE]) {
        /* Create first; an existing URI answers 409 conflict. */
        body = json_object();
        if (body == NULL || set_str(body, "uri", uri) != 0 ||
            json_object_set(body, "content", content) != 0 ||
            set_str(body, "name", o->val[O_NAME]) != 0 ||
            set_str(body, "content_type", o->val[O_CONTENT_TYPE]) != 0 ||
            set_str(body, "summary", o->val[O_SUMMARY]) != 0) {
            fputs("error: out of memory\n", stderr);
            goto out;
        }
        if (send_req(c, "POST", "/artifacts", NULL, body, &resp) != 0)
            goto out;
        if (resp.status == 409) {
            json_t *e = parse_resp(&resp);
            const char *code = obj_str(e, "error");
            use_put = code != NULL && strcmp(code, "conflict") == 0;
            json_decref(e);
        }
        if (!use_put && (resp.status < 200 || resp.status > 299)) {
            print_server_error(&resp);
            goto out;
        }
    } else {
        use_put = 1;
    }

    if (use_put) {
        const char *q[] = {"uri", uri, NULL};
        if (o->set[O_NAME] || o->set[O_CONTENT_TYPE])
            fputs("note: --name and --content-type only apply when the "
                  "artifact is created; ignored for an update\n",
                  stderr);
        json_decref(body);
        body = json_object();
        if (body == NULL || json_object_set(body, "content", content) != 0 ||
            set_str(body, "summary", o->val[O_SUMMARY]) != 0 ||
            (o->set[O_BASE] &&
             json_object_set_new(body, "base_version",
                                 json_integer((json_int_t)base)) != 0)) {
            fputs("error: out of memory\n", stderr);
            goto out;
        }
        if (call_json(c, "PUT", "/artifacts", q, body, &res) != 0)
            goto out;
    } else {
        json_error_t jerr;
        res = json_loadb(resp.body, resp.len, JSON_ALLOW_NUL, &jerr);
        if (res == NULL) {
            fprintf(stderr, "error: node sent invalid JSON (HTTP %ld): %s\n",
                    resp.status, jerr.text);
            goto out;
        }
    }

    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    printf("%s version %s (version_id %s)\n",
           obj_str(res, "uri") != NULL ? obj_str(res, "uri") : uri,
           scalar_str(json_object_get(res, "version"), nbuf, sizeof(nbuf)),
           obj_str(res, "version_id") != NULL ? obj_str(res, "version_id")
                                              : "-");
    rc = 0;
out:
    cli_resp_free(&resp);
    json_decref(res);
    json_decref(body);
    json_decref(content);
    return rc;
}

/* ---- history ---------------------------------------------------------- */

static int
cmd_history(const ctx *c)
{
    const struct opts *o = c->o;
    json_t *res = NULL;
    const json_t *versions, *v;
    cli_table *t = NULL;
    static const char *const hdr[] = {"VERSION", "VERSION_ID", "AUTHOR",
                                      "CREATED", "SUMMARY",    "DELETED"};
    size_t i;
    int rc = 1;

    if (o->npos != 2)
        return usage_error("history takes exactly one URI");
    {
        const char *q[] = {"uri", o->pos[1], NULL};
        if (call_json(c, "GET", "/artifacts/history", q, NULL, &res) != 0)
            goto out;
    }
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    versions = json_object_get(res, "versions");
    if (!json_is_array(versions)) {
        fputs("error: node sent a history without 'versions'\n", stderr);
        goto out;
    }
    if (cli_table_new(6, hdr, &t) != CS_OK) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    json_array_foreach(versions, i, v) {
        char vbuf[32], shortid[SHORT_ID_LEN + 1];
        const char *vid = obj_str(v, "version_id");
        const char *cells[6];
        snprintf(shortid, sizeof(shortid), "%s", vid != NULL ? vid : "-");
        cells[0] = scalar_str(json_object_get(v, "version"), vbuf,
                              sizeof(vbuf));
        cells[1] = shortid;
        cells[2] = obj_str(v, "author_id");
        cells[3] = obj_str(v, "created_at");
        cells[4] = obj_str(v, "summary");
        cells[5] = json_is_true(json_object_get(v, "deleted")) ? "yes" : "";
        if (cli_table_add_row(t, cells) != CS_OK) {
            fputs("error: out of memory\n", stderr);
            goto out;
        }
    }
    cli_table_print(t, stdout);
    rc = 0;
out:
    cli_table_free(t);
    json_decref(res);
    return rc;
}

/* ---- diff ------------------------------------------------------------- */

static int
print_diff_lines(const json_t *res)
{
    const json_t *ops = json_object_get(res, "ops");
    const json_t *stats = json_object_get(res, "stats");
    const json_t *op;
    char b1[32], b2[32], b3[32];
    size_t i;

    if (!json_is_array(ops)) {
        fputs("error: node sent a diff without 'ops'\n", stderr);
        return 1;
    }
    json_array_foreach(ops, i, op) {
        const char *kind = obj_str(op, "op");
        const json_t *line = json_object_get(op, "line");
        fputs(kind != NULL ? kind : "?", stdout);
        if (json_is_string(line))
            fwrite(json_string_value(line), 1, json_string_length(line),
                   stdout);
        fputc('\n', stdout);
    }
    printf("-- %s added, %s removed, %s unchanged\n",
           scalar_str(json_object_get(stats, "added"), b1, sizeof(b1)),
           scalar_str(json_object_get(stats, "removed"), b2, sizeof(b2)),
           scalar_str(json_object_get(stats, "unchanged"), b3, sizeof(b3)));
    return 0;
}

static int
cmd_diff(const ctx *c)
{
    const struct opts *o = c->o;
    const char *format = o->set[O_FORMAT] ? o->val[O_FORMAT] : "lines";
    cli_resp resp = {0};
    json_t *res = NULL;
    json_error_t jerr;
    long long from, to;
    int rc = 1;

    if (o->npos != 4)
        return usage_error("diff takes URI FROM TO");
    if (parse_nonneg(o->pos[2], &from) != 0)
        return usage_error("FROM must be a version number, not '%s'",
                           o->pos[2]);
    if (parse_nonneg(o->pos[3], &to) != 0)
        return usage_error("TO must be a version number, not '%s'",
                           o->pos[3]);
    if (strcmp(format, "lines") != 0 && strcmp(format, "unified") != 0 &&
        strcmp(format, "json-patch") != 0)
        return usage_error("--format must be lines, unified or json-patch, "
                           "not '%s'",
                           format);
    {
        const char *q[] = {"uri", o->pos[1], "from", o->pos[2],
                           "to", o->pos[3], "format", format, NULL};
        if (send_req(c, "GET", "/artifacts/diff", q, NULL, &resp) != 0)
            goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        print_server_error(&resp);
        goto out;
    }
    if (strcmp(format, "unified") == 0) {
        /* text/plain: printed as is (also with --json, unless it is JSON) */
        res = c->json ? parse_resp(&resp) : NULL;
        if (res != NULL) {
            rc = print_json(res);
            goto out;
        }
        fwrite(resp.body, 1, resp.len, stdout);
        rc = 0;
        goto out;
    }
    res = json_loadb(resp.body, resp.len, JSON_ALLOW_NUL, &jerr);
    if (res == NULL) {
        fprintf(stderr, "error: node sent invalid JSON (HTTP %ld): %s\n",
                resp.status, jerr.text);
        goto out;
    }
    if (c->json)
        rc = print_json(res);
    else if (strcmp(format, "json-patch") == 0)
        rc = json_object_get(res, "patch") != NULL
                 ? print_json(json_object_get(res, "patch"))
                 : print_json(res);
    else
        rc = print_diff_lines(res);
out:
    json_decref(res);
    cli_resp_free(&resp);
    return rc;
}

/* ---- actors ----------------------------------------------------------- */

static void
print_actor(const json_t *a)
{
    print_kv("actor_id:", json_object_get(a, "actor_id"));
    print_kv("actor_type:", json_object_get(a, "actor_type"));
    print_kv("name:", json_object_get(a, "name"));
    print_kv("agent_class:", json_object_get(a, "agent_class"));
    if (json_object_get(a, "region") != NULL)
        print_kv("region:", json_object_get(a, "region"));
    print_kv("created_at:", json_object_get(a, "created_at"));
}

static int
actors_list(const ctx *c)
{
    json_t *res = NULL;
    const json_t *list, *a;
    cli_table *t = NULL;
    static const char *const hdr[] = {"ACTOR_ID", "TYPE", "CLASS", "NAME",
                                      "CREATED"};
    size_t i;
    int rc = 1;

    if (call_json(c, "GET", "/actors", NULL, NULL, &res) != 0)
        goto out;
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    list = json_object_get(res, "actors");
    if (!json_is_array(list)) {
        fputs("error: node sent no 'actors' list\n", stderr);
        goto out;
    }
    if (cli_table_new(5, hdr, &t) != CS_OK) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    json_array_foreach(list, i, a) {
        const char *cells[5];
        cells[0] = obj_str(a, "actor_id");
        cells[1] = obj_str(a, "actor_type");
        cells[2] = obj_str(a, "agent_class") != NULL
                       ? obj_str(a, "agent_class") : "-";
        cells[3] = obj_str(a, "name");
        cells[4] = obj_str(a, "created_at");
        if (cli_table_add_row(t, cells) != CS_OK) {
            fputs("error: out of memory\n", stderr);
            goto out;
        }
    }
    cli_table_print(t, stdout);
    rc = 0;
out:
    cli_table_free(t);
    json_decref(res);
    return rc;
}

static int
actors_create(const ctx *c)
{
    const struct opts *o = c->o;
    const char *id = o->npos >= 3 ? o->pos[2] : NULL;
    const char *type = o->val[O_TYPE];
    const char *name = o->set[O_NAME] ? o->val[O_NAME] : id;
    json_t *body = NULL, *res = NULL;
    int rc = 1;

    if (o->npos > 3)
        return usage_error("actors create takes at most one ID");
    if (type == NULL ||
        (strcmp(type, "human") != 0 && strcmp(type, "agent") != 0))
        return usage_error("actors create needs --type human or --type "
                           "agent");
    if (name == NULL)
        return usage_error("actors create needs an ID or --name");
    body = json_object();
    if (body == NULL || set_str(body, "actor_id", id) != 0 ||
        set_str(body, "actor_type", type) != 0 ||
        set_str(body, "name", name) != 0 ||
        set_str(body, "agent_class", o->val[O_CLASS]) != 0 ||
        set_str(body, "region", o->val[O_REGION]) != 0) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    if (call_json(c, "POST", "/actors", NULL, body, &res) != 0)
        goto out;
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    print_actor(res);
    rc = 0;
out:
    json_decref(res);
    json_decref(body);
    return rc;
}

static int
actors_one(const ctx *c, int token)
{
    const struct opts *o = c->o;
    char *path = NULL;
    json_t *res = NULL;
    int rc = 1;

    if (o->npos != 3)
        return usage_error("actors %s takes exactly one actor ID",
                           token ? "token" : "show");
    if (path_with_id("/actors/", o->pos[2], token ? "/tokens" : "", &path) !=
        0)
        goto out;
    if (call_json(c, token ? "POST" : "GET", path, NULL, NULL, &res) != 0)
        goto out;
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    if (token) {
        const char *tok = obj_str(res, "token");
        char ibuf[64];
        if (tok == NULL) {
            fputs("error: node sent no token\n", stderr);
            goto out;
        }
        /* The token alone on stdout, for TOKEN=$(ctxsync actors token ID). */
        printf("%s\n", tok);
        fprintf(stderr, "token_id %s for %s (shown once; store it now)\n",
                scalar_str(json_object_get(res, "token_id"), ibuf,
                           sizeof(ibuf)),
                o->pos[2]);
    } else {
        print_actor(res);
    }
    rc = 0;
out:
    json_decref(res);
    free(path);
    return rc;
}

static int
cmd_actors(const ctx *c)
{
    const struct opts *o = c->o;
    const char *sub = o->npos >= 2 ? o->pos[1] : "list";

    if (strcmp(sub, "list") == 0) {
        if (o->npos > 2)
            return usage_error("actors list takes no arguments");
        return actors_list(c);
    }
    if (strcmp(sub, "create") == 0)
        return actors_create(c);
    if (strcmp(sub, "show") == 0)
        return actors_one(c, 0);
    if (strcmp(sub, "token") == 0)
        return actors_one(c, 1);
    return usage_error("unknown actors subcommand '%s'", sub);
}

/* ---- grant ------------------------------------------------------------ */

static int
valid_op(const char *s, size_t n)
{
    static const char *const ops[] = {"read",    "write", "suggest",
                                      "approve", "admin", "replicate"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strlen(ops[i]) == n && strncmp(ops[i], s, n) == 0)
            return 1;
    }
    return 0;
}

/* "read,write" from a JSON array of strings; malloc'ed, or NULL. */
static char *
join_ops(const json_t *arr)
{
    const json_t *v;
    size_t i, n = 1;
    char *s;

    json_array_foreach(arr, i, v) {
        if (json_is_string(v))
            n += json_string_length(v) + 1;
    }
    s = malloc(n);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            continue;
        if (s[0] != '\0')
            strncat(s, ",", n - strlen(s) - 1);
        strncat(s, json_string_value(v), n - strlen(s) - 1);
    }
    return s;
}

static int
cmd_grant(const ctx *c)
{
    const struct opts *o = c->o;
    json_t *body = NULL, *ops = NULL, *res = NULL;
    char *joined = NULL;
    char ibuf[64];
    size_t nops = 0;
    int rc = 1;

    if (o->set[O_GRANT_ACTOR] == o->set[O_CLASS])
        return usage_error("grant needs exactly one of --actor ID or "
                           "--class C");
    if (o->npos < 3)
        return usage_error("grant needs PATTERN and at least one "
                           "operation");
    /* Validate before allocating, so usage errors need no cleanup. */
    for (size_t i = 2; i < o->npos; i++) {
        if (strspn(o->pos[i], ",") != strlen(o->pos[i]))
            nops++;
        const char *s = o->pos[i];
        while (*s != '\0') {
            size_t n = strcspn(s, ",");
            if (n > 0 && !valid_op(s, n))
                return usage_error("unknown operation in '%s' (read, write, "
                                   "suggest, approve, admin, replicate)",
                                   o->pos[i]);
            s += n;
            if (*s == ',')
                s++;
        }
    }
    if (nops == 0)
        return usage_error("grant needs at least one operation");
    ops = json_array();
    if (ops == NULL)
        goto oom;
    for (size_t i = 2; i < o->npos; i++) {
        const char *s = o->pos[i];
        while (*s != '\0') {
            size_t n = strcspn(s, ",");
            if (n > 0 && json_array_append_new(ops, json_stringn(s, n)) != 0)
                goto oom;
            s += n;
            if (*s == ',')
                s++;
        }
    }
    body = json_object();
    if (body == NULL ||
        set_str(body, "actor_id", o->val[O_GRANT_ACTOR]) != 0 ||
        set_str(body, "agent_class",
                o->set[O_CLASS] ? o->val[O_CLASS] : NULL) != 0 ||
        set_str(body, "artifact_pattern", o->pos[1]) != 0 ||
        json_object_set(body, "operations", ops) != 0)
        goto oom;
    if (call_json(c, "POST", "/permissions", NULL, body, &res) != 0)
        goto out;
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    joined = join_ops(json_is_array(json_object_get(res, "operations"))
                          ? json_object_get(res, "operations") : ops);
    if (joined == NULL)
        goto oom;
    printf("grant %s: %s %s may %s on %s\n",
           scalar_str(json_object_get(res, "id"), ibuf, sizeof(ibuf)),
           o->set[O_CLASS] ? "class" : "actor",
           o->set[O_CLASS] ? o->val[O_CLASS] : o->val[O_GRANT_ACTOR],
           joined, o->pos[1]);
    rc = 0;
    goto out;
oom:
    fputs("error: out of memory\n", stderr);
out:
    free(joined);
    json_decref(res);
    json_decref(body);
    json_decref(ops);
    return rc;
}

/* ---- status ----------------------------------------------------------- */

static int
cmd_status(const ctx *c)
{
    json_t *health = NULL, *changes = NULL;
    json_t *head = NULL;
    int have_creds = c->http.token != NULL || c->http.actor != NULL;
    char hbuf[64];
    int rc = 1;

    if (c->o->npos != 1)
        return usage_error("status takes no arguments");
    if (call_json(c, "GET", "/health", NULL, NULL, &health) != 0)
        goto out;
    if (have_creds) {
        const char *q[] = {"limit", "1", NULL};
        if (call_json(c, "GET", "/changes", q, NULL, &changes) != 0)
            goto out;
        head = json_object_get(changes, "head");
    }
    if (c->json) {
        json_t *out = json_deep_copy(health);
        if (out == NULL ||
            (head != NULL && json_object_set(out, "head", head) != 0)) {
            json_decref(out);
            fputs("error: out of memory\n", stderr);
            goto out;
        }
        rc = print_json(out);
        json_decref(out);
        goto out;
    }
    printf("%-13s %s\n", "url:", c->http.base_url);
    print_kv("status:", json_object_get(health, "status"));
    print_kv("node_id:", json_object_get(health, "node_id"));
    print_kv("region:", json_object_get(health, "region"));
    print_kv("version:", json_object_get(health, "version"));
    if (have_creds)
        printf("%-13s %s\n", "feed head:",
               scalar_str(head, hbuf, sizeof(hbuf)));
    else
        printf("%-13s %s\n", "feed head:",
               "unknown (needs --token or CTXSYNC_TOKEN)");
    rc = 0;
out:
    json_decref(changes);
    json_decref(health);
    return rc;
}

/* ---- forks ------------------------------------------------------------ */

#define FORKS_MAX_PAGES 10
#define FULL_ID_LEN 66 /* "f:" or "v:" + 64 hex digits */

/* Rejects a command option given to a subcommand it does not apply to:
 * `allowed` is a set of OPT(O_...) bits. Returns 0 or EXIT_USAGE. */
static int
check_sub_opts(const struct opts *o, const char *sub, unsigned long allowed)
{
    for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++) {
        const struct optdef *d = &optdefs[i];
        if ((d->cmds & C(o->cmd)) && o->set[d->id] &&
            (allowed & OPT(d->id)) == 0)
            return usage_error("--%s does not apply to '%s %s'", d->name,
                               o->pos[0], sub);
    }
    return 0;
}

/* GET /forks, following next_cursor for at most max_pages pages. *out is
 * the first page's object whose "forks" holds the records of every page,
 * with the last page's next_cursor and counts (the shape of one page). */
static int
fetch_forks(const ctx *c, const char *status, const char *pattern,
            const char *limit, int max_pages, json_t **out)
{
    json_t *all = NULL, *page = NULL;
    char *cursor = NULL;
    int rc = 1;

    for (int n = 0; n < max_pages; n++) {
        const char *q[] = {"status", status, "pattern", pattern, "limit",
                           limit,    "cursor", cursor,  NULL};
        const json_t *next;
        if (call_json(c, "GET", "/forks", q, NULL, &page) != 0)
            goto out;
        if (!json_is_array(json_object_get(page, "forks"))) {
            fputs("error: node sent no 'forks' list\n", stderr);
            goto out;
        }
        if (all == NULL) {
            all = page;
            page = NULL;
        } else {
            json_t *pnext = json_object_get(page, "next_cursor");
            if (json_array_extend(json_object_get(all, "forks"),
                                  json_object_get(page, "forks")) != 0 ||
                json_object_set(all, "next_cursor",
                                pnext != NULL ? pnext : json_null()) != 0 ||
                (json_object_get(page, "counts") != NULL &&
                 json_object_set(all, "counts",
                                 json_object_get(page, "counts")) != 0)) {
                fputs("error: out of memory\n", stderr);
                goto out;
            }
            json_decref(page);
            page = NULL;
        }
        free(cursor);
        cursor = NULL;
        next = json_object_get(all, "next_cursor");
        if (!json_is_string(next) || json_string_length(next) == 0)
            break;
        cursor = strdup(json_string_value(next));
        if (cursor == NULL) {
            fputs("error: out of memory\n", stderr);
            goto out;
        }
    }
    *out = all;
    all = NULL;
    rc = 0;
out:
    free(cursor);
    json_decref(page);
    json_decref(all);
    return rc;
}

/* Whether a fetched listing stopped before the end. */
static int
forks_truncated(const json_t *list)
{
    const json_t *next = json_object_get(list, "next_cursor");
    return json_is_string(next) && json_string_length(next) > 0;
}

/* Expands a fork id prefix (as `forks list` shows it) to the full id by
 * listing every fork the caller may review. A full-length id, or a prefix
 * that matches none, is kept as given so that the node answers for it.
 * *out is malloc'ed. */
static int
expand_fork_id(const ctx *c, const char *id, char **out)
{
    json_t *res = NULL;
    const json_t *f;
    const char *match = NULL;
    size_t i, n = strlen(id), nmatch = 0;
    char *dup;
    int rc = 1;

    if (n < FULL_ID_LEN) {
        if (fetch_forks(c, "all", NULL, NULL, FORKS_MAX_PAGES, &res) != 0)
            goto out;
        json_array_foreach(json_object_get(res, "forks"), i, f) {
            const char *fid = obj_str(f, "fork_id");
            if (fid != NULL && strncmp(fid, id, n) == 0 &&
                (match == NULL || strcmp(fid, match) != 0)) {
                match = fid;
                nmatch++;
            }
        }
        if (nmatch > 1) {
            fprintf(stderr,
                    "error: fork id '%s' is ambiguous: %zu forks start "
                    "with it\n",
                    id, nmatch);
            goto out;
        }
    }
    dup = strdup(match != NULL ? match : id);
    if (dup == NULL) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    *out = dup;
    rc = 0;
out:
    json_decref(res);
    return rc;
}

/* Expands a version id prefix (as `forks show` shows it) to the full id of
 * one of the fork's branches; kept as given when it matches none. */
static int
expand_keep(const ctx *c, const char *fork_id, const char *keep, char **out)
{
    char *path = NULL;
    json_t *fork = NULL;
    const json_t *b;
    const char *match = NULL;
    size_t i, n = strlen(keep), nmatch = 0;
    char *dup;
    int rc = 1;

    if (n < FULL_ID_LEN) {
        if (path_with_id("/forks/", fork_id, "", &path) != 0 ||
            call_json(c, "GET", path, NULL, NULL, &fork) != 0)
            goto out;
        json_array_foreach(json_object_get(fork, "branches"), i, b) {
            const char *vid = obj_str(b, "version_id");
            if (vid != NULL && strncmp(vid, keep, n) == 0) {
                match = vid;
                nmatch++;
            }
        }
        if (nmatch > 1) {
            fprintf(stderr,
                    "error: version id '%s' is ambiguous: %zu branches "
                    "start with it\n",
                    keep, nmatch);
            goto out;
        }
    }
    dup = strdup(match != NULL ? match : keep);
    if (dup == NULL) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    *out = dup;
    rc = 0;
out:
    json_decref(fork);
    free(path);
    return rc;
}

/* Whether item is one of the comma-separated entries of list. */
static int
csv_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    while (*list != '\0') {
        size_t m = strcspn(list, ",");
        if (m == n && strncmp(list, item, n) == 0)
            return 1;
        list += m;
        if (*list == ',')
            list++;
    }
    return 0;
}

/* "eu,us": the distinct origin regions of the branches, in branch order.
 * malloc'ed, or NULL when out of memory. */
static char *
branch_regions(const json_t *branches)
{
    const json_t *b;
    size_t i, n = 1;
    char *s;

    json_array_foreach(branches, i, b) {
        const char *r = obj_str(json_object_get(b, "origin"), "region");
        if (r != NULL)
            n += strlen(r) + 1;
    }
    s = malloc(n);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    json_array_foreach(branches, i, b) {
        const char *r = obj_str(json_object_get(b, "origin"), "region");
        if (r == NULL || r[0] == '\0' || strchr(r, ',') != NULL ||
            csv_has(s, r))
            continue;
        if (s[0] != '\0')
            strncat(s, ",", n - strlen(s) - 1);
        strncat(s, r, n - strlen(s) - 1);
    }
    return s;
}

static int
forks_list(const ctx *c)
{
    const struct opts *o = c->o;
    const char *status = o->val[O_STATUS];
    json_t *res = NULL;
    const json_t *f, *counts;
    cli_table *t = NULL;
    static const char *const hdr[] = {"FORK_ID", "URI",      "BRANCHES",
                                      "REGIONS", "DETECTED", "STATUS"};
    char *regions = NULL;
    char b1[32], b2[32];
    long long limit;
    size_t i;
    int rc;

    if (o->npos > 2)
        return usage_error("forks list takes no arguments");
    rc = check_sub_opts(o, "list", OPT(O_STATUS) | OPT(O_PATTERN) |
                                       OPT(O_LIMIT));
    if (rc != 0)
        return rc;
    if (status != NULL && strcmp(status, "open") != 0 &&
        strcmp(status, "resolved") != 0 && strcmp(status, "all") != 0)
        return usage_error("--status must be open, resolved or all, not "
                           "'%s'",
                           status);
    if (o->set[O_LIMIT] &&
        (parse_nonneg(o->val[O_LIMIT], &limit) != 0 || limit == 0))
        return usage_error("--limit needs a positive number, not '%s'",
                           o->val[O_LIMIT]);
    rc = 1;
    /* --limit asks for one page of N; otherwise follow the cursor. */
    if (fetch_forks(c, status, o->val[O_PATTERN], o->val[O_LIMIT],
                    o->set[O_LIMIT] ? 1 : FORKS_MAX_PAGES, &res) != 0)
        goto out;
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    if (cli_table_new(6, hdr, &t) != CS_OK)
        goto oom;
    json_array_foreach(json_object_get(res, "forks"), i, f) {
        const json_t *branches = json_object_get(f, "branches");
        const char *cells[6];
        char shortid[SHORT_ID_LEN + 1], nbuf[32];
        snprintf(shortid, sizeof(shortid), "%s",
                 obj_str(f, "fork_id") != NULL ? obj_str(f, "fork_id")
                                               : "-");
        regions = branch_regions(branches);
        if (regions == NULL)
            goto oom;
        snprintf(nbuf, sizeof(nbuf), "%zu", json_array_size(branches));
        cells[0] = shortid;
        cells[1] = obj_str(f, "uri");
        cells[2] = nbuf;
        cells[3] = regions[0] != '\0' ? regions : "-";
        cells[4] = obj_str(f, "detected_at");
        cells[5] = obj_str(f, "status");
        if (cli_table_add_row(t, cells) != CS_OK)
            goto oom;
        free(regions);
        regions = NULL;
    }
    cli_table_print(t, stdout);
    counts = json_object_get(res, "counts");
    printf("open: %s, resolved: %s\n",
           scalar_str(json_object_get(counts, "open"), b1, sizeof(b1)),
           scalar_str(json_object_get(counts, "resolved"), b2, sizeof(b2)));
    if (forks_truncated(res))
        fprintf(stderr,
                o->set[O_LIMIT]
                    ? "note: more forks match; raise --limit or narrow "
                      "with --pattern\n"
                    : "note: showing the first %zu forks; narrow with "
                      "--pattern or --status\n",
                cli_table_rows(t));
    rc = 0;
    goto out;
oom:
    fputs("error: out of memory\n", stderr);
out:
    free(regions);
    cli_table_free(t);
    json_decref(res);
    return rc;
}

/* "v:495ebba7e6d2": the first SHORT_ID_LEN characters of an id. */
static const char *
short_id(const char *id, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s", id != NULL ? id : "-");
    return buf;
}

static int
print_fork(const json_t *f)
{
    const char *head = obj_str(f, "provisional_head");
    const char *by = obj_str(f, "detected_by");
    const char *status = obj_str(f, "status");
    int resolved = status != NULL && strcmp(status, "resolved") == 0;
    const json_t *b, *d;
    cli_table *t = NULL;
    static const char *const hdr[] = {"VERSION_ID", "AUTHOR",  "REGION",
                                      "CREATED",    "SUMMARY", "DELETED",
                                      "HEAD"};
    size_t i;
    int rc = 1;

    print_kv("fork_id:", json_object_get(f, "fork_id"));
    print_kv("uri:", json_object_get(f, "uri"));
    print_kv("status:", json_object_get(f, "status"));
    print_kv("parent_id:", json_object_get(f, "parent_id"));
    /* Once resolved, the node's head is the merge version. */
    print_kv(resolved ? "head:" : "provisional:",
             json_object_get(f, "provisional_head"));
    printf("%-13s %s%s%s%s\n", "detected:",
           obj_str(f, "detected_at") != NULL ? obj_str(f, "detected_at")
                                             : "-",
           by != NULL ? " (" : "", by != NULL ? by : "",
           by != NULL ? ")" : "");
    print_kv("resolved_by:", json_object_get(f, "resolved_by"));
    print_kv("resolved_at:", json_object_get(f, "resolved_at"));
    if (json_is_string(json_object_get(f, "resolution_version_id")))
        print_kv("resolution:", json_object_get(f, "resolution_version_id"));
    if (json_object_get(f, "policy") != NULL)
        print_kv("policy:", json_object_get(f, "policy"));
    fputc('\n', stdout);

    if (cli_table_new(7, hdr, &t) != CS_OK)
        goto oom;
    json_array_foreach(json_object_get(f, "branches"), i, b) {
        const char *vid = obj_str(b, "version_id");
        const char *cells[7];
        char shortid[SHORT_ID_LEN + 1];
        /* The record's head names the branch; a branch's own flag means
         * "the head descends from it", which after a merge holds for all. */
        int is_head = head != NULL
                          ? vid != NULL && strcmp(head, vid) == 0
                          : json_is_true(json_object_get(b, "provisional_head"));
        cells[0] = short_id(vid, shortid, sizeof(shortid));
        cells[1] = obj_str(b, "author_id");
        cells[2] = obj_str(json_object_get(b, "origin"), "region");
        cells[3] = obj_str(b, "created_at");
        cells[4] = obj_str(b, "summary");
        cells[5] = json_is_true(json_object_get(b, "deleted")) ? "yes" : "";
        cells[6] = is_head ? "yes" : "";
        if (cells[2] == NULL)
            cells[2] = "-";
        if (cli_table_add_row(t, cells) != CS_OK)
            goto oom;
    }
    cli_table_print(t, stdout);

    /* One diff from the provisional head to each other branch. */
    json_array_foreach(json_object_get(f, "diffs"), i, d) {
        const char *from = obj_str(d, "from"), *to = obj_str(d, "to");
        const json_t *lines = json_object_get(d, "lines");
        char s1[SHORT_ID_LEN + 1], s2[SHORT_ID_LEN + 1];
        printf("\n--- %s%s\n+++ %s%s\n", short_id(from, s1, sizeof(s1)),
               from != NULL && head != NULL && strcmp(from, head) == 0
                   ? " (provisional head)" : "",
               short_id(to, s2, sizeof(s2)),
               to != NULL && head != NULL && strcmp(to, head) == 0
                   ? " (provisional head)" : "");
        if (!json_is_object(lines))
            puts("(no line diff)");
        else if (print_diff_lines(lines) != 0)
            goto out;
    }
    rc = 0;
    goto out;
oom:
    fputs("error: out of memory\n", stderr);
out:
    cli_table_free(t);
    return rc;
}

static int
forks_show(const ctx *c)
{
    const struct opts *o = c->o;
    char *id = NULL, *path = NULL;
    json_t *res = NULL;
    int rc;

    if (o->npos != 3 || o->pos[2][0] == '\0')
        return usage_error("forks show takes exactly one fork ID");
    rc = check_sub_opts(o, "show", 0);
    if (rc != 0)
        return rc;
    rc = 1;
    if (expand_fork_id(c, o->pos[2], &id) != 0 ||
        path_with_id("/forks/", id, "", &path) != 0 ||
        call_json(c, "GET", path, NULL, NULL, &res) != 0)
        goto out;
    rc = c->json ? print_json(res) : print_fork(res);
out:
    json_decref(res);
    free(path);
    free(id);
    return rc;
}

static int
forks_resolve(const ctx *c)
{
    const struct opts *o = c->o;
    char *id = NULL, *keep = NULL, *path = NULL;
    json_t *content = NULL, *body = NULL, *res = NULL;
    const json_t *fork, *version;
    char nbuf[64];
    int rc;

    if (o->npos != 3 || o->pos[2][0] == '\0')
        return usage_error("forks resolve takes exactly one fork ID");
    rc = check_sub_opts(o, "resolve",
                        OPT(O_KEEP) | OPT(O_FILE) | OPT(O_CONTENT) |
                            OPT(O_SUMMARY) | OPT(O_CONTENT_TYPE));
    if (rc != 0)
        return rc;
    if (o->set[O_KEEP] + o->set[O_FILE] + o->set[O_CONTENT] != 1)
        return usage_error("forks resolve needs exactly one of --keep, "
                           "--content-file or --content");
    if (o->set[O_KEEP] && o->val[O_KEEP][0] == '\0')
        return usage_error("--keep needs a version id");
    if (o->set[O_KEEP] && o->set[O_CONTENT_TYPE])
        return usage_error("--content-type only applies with "
                           "--content-file or --content");
    rc = 1;
    /* Local input first: nothing is sent when the file is unusable. */
    if (!o->set[O_KEEP] && make_content(o, &content) != 0)
        goto out;
    if (expand_fork_id(c, o->pos[2], &id) != 0)
        goto out;
    if (o->set[O_KEEP] && expand_keep(c, id, o->val[O_KEEP], &keep) != 0)
        goto out;
    body = json_object();
    if (body == NULL || set_str(body, "keep", keep) != 0 ||
        (content != NULL && json_object_set(body, "content", content) != 0) ||
        set_str(body, "summary", o->val[O_SUMMARY]) != 0 ||
        set_str(body, "content_type", o->val[O_CONTENT_TYPE]) != 0) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    if (path_with_id("/forks/", id, "/resolve", &path) != 0 ||
        call_json(c, "POST", path, NULL, body, &res) != 0)
        goto out;
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    fork = json_object_get(res, "fork");
    version = json_object_get(res, "version");
    printf("resolved %s by writing version %s (version_id %s)\n",
           obj_str(fork, "fork_id") != NULL ? obj_str(fork, "fork_id") : id,
           scalar_str(json_object_get(version, "version"), nbuf,
                      sizeof(nbuf)),
           obj_str(version, "version_id") != NULL
               ? obj_str(version, "version_id") : "-");
    rc = 0;
out:
    json_decref(res);
    json_decref(body);
    json_decref(content);
    free(path);
    free(keep);
    free(id);
    return rc;
}

static int
cmd_forks(const ctx *c)
{
    const struct opts *o = c->o;
    const char *sub = o->npos >= 2 ? o->pos[1] : "list";

    if (strcmp(sub, "list") == 0)
        return forks_list(c);
    if (strcmp(sub, "show") == 0)
        return forks_show(c);
    if (strcmp(sub, "resolve") == 0)
        return forks_resolve(c);
    return usage_error("unknown forks subcommand '%s'", sub);
}

/* ---- residency -------------------------------------------------------- */

/* Whether a 404 says the node has no such route at all (as opposed to an
 * unknown object behind a known route). */
static int
is_missing_route(const cli_resp *r)
{
    json_t *j;
    const char *code, *msg;
    int yes;

    if (r->status != 404)
        return 0;
    j = parse_resp(r);
    code = obj_str(j, "error");
    msg = obj_str(j, "message");
    yes = code != NULL && strcmp(code, "not_found") == 0 && msg != NULL &&
          strncmp(msg, "no such endpoint", 16) == 0;
    json_decref(j);
    return yes;
}

/* Like print_kv, but an array of strings prints as "a,b" ("none" when
 * empty). */
static int
print_kv_list(const char *key, const json_t *v)
{
    const json_t *e;
    size_t i;
    char *joined;

    if (!json_is_array(v)) {
        print_kv(key, v);
        return 0;
    }
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            print_kv(key, v);
            return 0;
        }
    }
    joined = join_ops(v);
    if (joined == NULL) {
        fputs("error: out of memory\n", stderr);
        return 1;
    }
    printf("%-13s %s\n", key, joined[0] != '\0' ? joined : "none");
    free(joined);
    return 0;
}

static int
cmd_residency(const ctx *c)
{
    const struct opts *o = c->o;
    cli_resp resp = {0};
    json_t *res = NULL;
    json_error_t jerr;
    const json_t *rule;
    int rc = 1;

    if (o->npos < 2)
        return usage_error("residency needs a subcommand: check URI");
    if (strcmp(o->pos[1], "check") != 0)
        return usage_error("unknown residency subcommand '%s'", o->pos[1]);
    if (o->npos != 3)
        return usage_error("residency check takes exactly one URI");
    {
        const char *q[] = {"uri", o->pos[2], NULL};
        if (send_req(c, "GET", "/residency/check", q, NULL, &resp) != 0)
            goto out;
    }
    if (is_missing_route(&resp)) {
        fputs("error: this node has no residency support yet\n", stderr);
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        print_server_error(&resp);
        goto out;
    }
    res = json_loadb(resp.body, resp.len, JSON_ALLOW_NUL, &jerr);
    if (res == NULL) {
        fprintf(stderr, "error: node sent invalid JSON (HTTP %ld): %s\n",
                resp.status, jerr.text);
        goto out;
    }
    if (c->json) {
        rc = print_json(res);
        goto out;
    }
    rule = json_object_get(res, "rule");
    print_kv("uri:", json_object_get(res, "uri"));
    if (rule == NULL || json_is_null(rule))
        printf("%-13s %s\n", "rule:", "none (no residency rule matches)");
    else
        print_kv("rule:", rule);
    print_kv("home_region:", json_object_get(res, "home_region"));
    if (print_kv_list("index:", json_object_get(res, "index")) != 0 ||
        print_kv_list("payload:", json_object_get(res, "payload")) != 0 ||
        print_kv_list("on_demand:", json_object_get(res, "on_demand")) != 0 ||
        print_kv_list("cache:", json_object_get(res, "cache")) != 0)
        goto out;
    if (json_object_get(res, "explanation") != NULL)
        print_kv("explanation:", json_object_get(res, "explanation"));
    rc = 0;
out:
    json_decref(res);
    cli_resp_free(&resp);
    return rc;
}

/* ---- main ------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    struct opts o;
    ctx c;
    char *url = NULL;
    const char *env;
    cs_errbuf eb = {{0}};
    int curl_ready = 0;
    int rc = 1;

    memset(&o, 0, sizeof(o));
    memset(&c, 0, sizeof(c));
    o.pos = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*o.pos));
    if (o.pos == NULL) {
        fputs("error: out of memory\n", stderr);
        goto out;
    }
    rc = parse_args(argc, argv, &o);
    if (rc != 0)
        goto out;
    if (o.set[O_HELP]) {
        fputs(usage_text, stdout);
        rc = 0;
        goto out;
    }
    if (o.set[O_SHOW_VERSION]) {
        printf("ctxsync %s\n", CS_VERSION);
        rc = 0;
        goto out;
    }
    if (o.cmd == CMD_NONE) {
        rc = usage_error("missing command");
        goto out;
    }

    /* Where and who. */
    if (o.set[O_URL])
        env = o.val[O_URL];
    else if ((env = getenv("CTXSYNC_URL")) == NULL || env[0] == '\0')
        env = DEFAULT_URL;
    url = strdup(env);
    if (url == NULL) {
        fputs("error: out of memory\n", stderr);
        rc = 1;
        goto out;
    }
    for (size_t n = strlen(url); n > 0 && url[n - 1] == '/'; n--)
        url[n - 1] = '\0';
    if (url[0] == '\0') {
        rc = usage_error("--url must not be empty");
        goto out;
    }
    if (o.set[O_TOKEN] && o.set[O_AUTH_ACTOR]) {
        rc = usage_error("give --token or --actor, not both");
        goto out;
    }
    c.http.base_url = url;
    if (o.set[O_AUTH_ACTOR]) {
        c.http.actor = o.val[O_AUTH_ACTOR];
    } else if (o.set[O_TOKEN]) {
        c.http.token = o.val[O_TOKEN];
    } else {
        env = getenv("CTXSYNC_TOKEN");
        if (env != NULL && env[0] != '\0')
            c.http.token = env;
    }
    /* TLS: verification is always on unless --insecure is given. */
    c.http.ca = o.set[O_CA] ? o.val[O_CA] : getenv("CTXSYNC_CA");
    c.http.cert = o.set[O_CERT] ? o.val[O_CERT] : getenv("CTXSYNC_CERT");
    c.http.key = o.set[O_KEY] ? o.val[O_KEY] : getenv("CTXSYNC_KEY");
    if (c.http.ca != NULL && c.http.ca[0] == '\0')
        c.http.ca = NULL;
    if (c.http.cert != NULL && c.http.cert[0] == '\0')
        c.http.cert = NULL;
    if (c.http.key != NULL && c.http.key[0] == '\0')
        c.http.key = NULL;
    if (c.http.key != NULL && c.http.cert == NULL) {
        rc = usage_error("--key needs --cert");
        goto out;
    }
    c.http.insecure = o.set[O_INSECURE];
    if (c.http.insecure)
        fputs("warning: --insecure: the node's TLS certificate is NOT "
              "verified; anyone on the path can read and change this "
              "exchange\n",
              stderr);
    c.http.connect_timeout_ms = 10000;
    c.http.timeout_ms = 120000;
    c.json = o.set[O_JSON];
    c.o = &o;

    if (cli_http_global_init(&eb) != CS_OK) {
        fprintf(stderr, "error: %s\n", eb.msg);
        rc = 1;
        goto out;
    }
    curl_ready = 1;

    switch (o.cmd) {
    case CMD_GET: rc = cmd_get(&c); break;
    case CMD_PUT: rc = cmd_put(&c); break;
    case CMD_HISTORY: rc = cmd_history(&c); break;
    case CMD_DIFF: rc = cmd_diff(&c); break;
    case CMD_ACTORS: rc = cmd_actors(&c); break;
    case CMD_GRANT: rc = cmd_grant(&c); break;
    case CMD_STATUS: rc = cmd_status(&c); break;
    case CMD_FORKS: rc = cmd_forks(&c); break;
    case CMD_RESIDENCY: rc = cmd_residency(&c); break;
    case CMD_NONE: rc = EXIT_USAGE; break;
    }
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "error: cannot write output: %s\n", strerror(errno));
        rc = 1;
    }
out:
    if (curl_ready)
        cli_http_global_cleanup();
    free(url);
    free(o.pos);
    return rc;
}
