/* SPDX-License-Identifier: MIT
 * main.c: ctxsync-bridge, the federation replication daemon.
 *
 *   ctxsync-bridge run --config FILE [--status HOST:PORT] [--log-format F]
 *                      [--ready-file FILE]
 *   ctxsync-bridge status --status HOST:PORT [--json]
 *   ctxsync-bridge reset-link NAME --config FILE [--source-node ID]
 *                      [--token-file FILE]
 *   ctxsync-bridge ctl COMMAND NAME (--control URL | --config FILE)
 *
 * Exit status: 0 success, 1 runtime/config error, 2 usage error. */
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <jansson.h>
#include <nng/nng.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "cs_err.h"
#include "cs_log.h"
#include "http_client.h"
#include "link.h"
#include "status.h"

#ifndef CS_VERSION
#define CS_VERSION "0.0.0"
#endif

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: ctxsync-bridge COMMAND [flags]\n"
    "\n"
    "commands:\n"
    "  run --config FILE [--status HOST:PORT] [--log-format text|json]\n"
    "      [--ready-file FILE]\n"
    "        run every link of the config until SIGINT/SIGTERM\n"
    "  status --status HOST:PORT [--json]\n"
    "        show the links of a running bridge (GET /status)\n"
    "  reset-link NAME --config FILE [--source-node ID] [--token-file FILE]\n"
    "        make the link replicate again from seq 0: delete the target's\n"
    "        checkpoint for the link's source (through the running daemon's\n"
    "        control socket when one answers, else directly)\n"
    "  ctl pause|resume|retry-now|reset-link NAME (--control URL | --config FILE)\n"
    "        send a command to a running bridge's control socket\n"
    "\n"
    "flags:\n"
    "  --help      this text\n"
    "  --version   print the version\n"
    "\n"
    "See docs/bridge.md.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ctxsync-bridge: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage_text);
    return EXIT_USAGE;
}

struct opts {
    const char *cmd;
    const char *pos[3];
    int npos;
    const char *config, *status, *log_format, *ready_file, *control;
    const char *source_node, *token_file;
    bool json;
};

/* Parses argv; returns -1 on success, else an exit status. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
    int i;
    memset(o, 0, sizeof(*o));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("ctxsync-bridge %s\n", CS_VERSION);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--status") == 0)
            slot = &o->status;
        else if (strcmp(a, "--log-format") == 0)
            slot = &o->log_format;
        else if (strcmp(a, "--ready-file") == 0)
            slot = &o->ready_file;
        else if (strcmp(a, "--control") == 0)
            slot = &o->control;
        else if (strcmp(a, "--source-node") == 0)
            slot = &o->source_node;
        else if (strcmp(a, "--token-file") == 0)
            slot = &o->token_file;
        if (slot != NULL) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            *slot = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1] != '\0')
            return usage_error("unknown flag %s", a);
        if (o->cmd == NULL) {
            o->cmd = a;
        } else {
            if (o->npos >= 3)
                return usage_error("unexpected argument %s", a);
            o->pos[o->npos++] = a;
        }
    }
    if (o->cmd == NULL)
        return usage_error("%s", "missing command");
    return -1;
}

/* ---- run ------------------------------------------------------------------ */

/* Writes "control=URL" and "status=HOST:PORT" (the bound port) lines. */
static int
write_ready(const char *path, const char *status_addr, int port, const char *control)
{
    char tmp[4200];
    const char *colon = status_addr != NULL ? strrchr(status_addr, ':') : NULL;
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "control=%s\n", control);
    if (colon != NULL)
        fprintf(f, "status=%.*s:%d\n", (int)(colon - status_addr), status_addr, port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static int
cmd_run(const struct opts *o)
{
    br_config *cfg = NULL;
    br_link **links = NULL;
    br_status *st = NULL;
    br_control *ctl = NULL;
    cs_errbuf eb;
    sigset_t set;
    size_t i, n = 0;
    char ctl_url[600];
    const char *status_addr;
    int ret = 1, sig = 0;

    eb.msg[0] = '\0';
    if (o->config == NULL)
        return usage_error("%s", "run needs --config FILE");
    if (o->npos > 0)
        return usage_error("unexpected argument %s", o->pos[0]);
    if (o->status != NULL && br_hostport_validate(o->status, &eb) != CS_OK)
        return usage_error("--status: %s", eb.msg);

    /* one malloc arena per thread keeps each lane's peak: two arenas
     * (MALLOC_ARENA_MAX in the environment wins) */
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, 2);
    /* signals go to sigwait() below, never to a worker thread */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (br_config_load(o->config, &cfg, &eb) != CS_OK) {
        cs_log(CS_LOG_ERROR, "BRIDGE-CONFIG", "%s", eb.msg);
        goto out;
    }
    if (br_http_global_init() != CS_OK) {
        cs_log(CS_LOG_ERROR, "BRIDGE-START", "curl_global_init failed");
        goto out;
    }
    n = br_config_nlinks(cfg);
    links = calloc(n, sizeof(*links));
    if (links == NULL)
        goto out;
    for (i = 0; i < n; i++) {
        if (br_link_new(br_config_link(cfg, i), &links[i], &eb) != CS_OK) {
            cs_log(CS_LOG_ERROR, "BRIDGE-START", "link %s: %s",
                   br_config_link(cfg, i)->name, eb.msg);
            goto out;
        }
    }
    status_addr = o->status != NULL ? o->status : br_config_status(cfg);
    if (status_addr != NULL) {
        if (br_status_start(status_addr, links, n, &st, &eb) != CS_OK) {
            cs_log(CS_LOG_ERROR, "BRIDGE-START", "status: %s", eb.msg);
            goto out;
        }
    }
    if (br_config_control(cfg) != NULL)
        snprintf(ctl_url, sizeof(ctl_url), "%s", br_config_control(cfg));
    else
        br_control_default_url(br_config_state_dir(cfg), ctl_url, sizeof(ctl_url));
    if (br_control_start(ctl_url, links, n, &ctl, &eb) != CS_OK) {
        cs_log(CS_LOG_ERROR, "BRIDGE-START", "%s", eb.msg);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (br_link_start(links[i], &eb) != CS_OK) {
            cs_log(CS_LOG_ERROR, "BRIDGE-START", "%s", eb.msg);
            goto out;
        }
    }
    cs_log(CS_LOG_NOTICE, "BRIDGE-START", "version=%s links=%zu status=%s port=%d control=%s",
           CS_VERSION, n, st != NULL ? status_addr : "off",
           st != NULL ? br_status_port(st) : 0, ctl_url);
    if (o->ready_file != NULL &&
        write_ready(o->ready_file, st != NULL ? status_addr : NULL,
                    st != NULL ? br_status_port(st) : 0, ctl_url) != 0)
        cs_log(CS_LOG_WARN, "BRIDGE-START", "cannot write ready file %s: %s",
               o->ready_file, strerror(errno));
    /* Wait for SIGINT/SIGTERM; every 10 s give freed heap pages back to
     * the OS (catch-up pages leave holes the allocator keeps). */
    for (;;) {
        struct timespec ts = {10, 0};
        sig = sigtimedwait(&set, NULL, &ts);
        if (sig > 0)
            break;
        malloc_trim(0);
    }
    cs_log(CS_LOG_NOTICE, "BRIDGE-STOP", "signal=%d stopping links", sig);
    ret = 0;
out:
    for (i = 0; links != NULL && i < n; i++)
        if (links[i] != NULL)
            br_link_request_stop(links[i]);
    for (i = 0; links != NULL && i < n; i++)
        if (links[i] != NULL)
            br_link_join(links[i]);
    br_control_stop(ctl);
    br_status_stop(st);
    for (i = 0; links != NULL && i < n; i++)
        br_link_free(links[i]);
    free(links);
    br_config_free(cfg);
    if (ret == 0)
        cs_log(CS_LOG_NOTICE, "BRIDGE-STOP", "stopped");
    br_http_global_cleanup();
    nng_fini(); /* joins nng's worker threads: a clean valgrind report */
    return ret;
}

/* ---- status ---------------------------------------------------------------- */

typedef struct mbuf {
    char *p;
    size_t len;
} mbuf;

static size_t
mbuf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    mbuf *b = ud;
    size_t n = size * nmemb;
    char *np;
    if (b->len + n > (size_t)16 * 1024 * 1024)
        return 0;
    np = realloc(b->p, b->len + n + 1);
    if (np == NULL)
        return 0;
    b->p = np;
    memcpy(b->p + b->len, ptr, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static void
print_num(char *out, size_t sz, json_t *v)
{
    if (json_is_integer(v))
        snprintf(out, sz, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, sz, "%.1f", json_real_value(v));
    else
        snprintf(out, sz, "-");
}

static int
cmd_status(const struct opts *o)
{
    CURL *c = NULL;
    mbuf b = {NULL, 0};
    char url[600], errbuf[CURL_ERROR_SIZE];
    json_t *root = NULL, *links, *lk;
    long code = 0;
    size_t i;
    int ret = 1;
    CURLcode cc;

    if (o->status == NULL)
        return usage_error("%s", "status needs --status HOST:PORT");
    if (o->npos > 0)
        return usage_error("unexpected argument %s", o->pos[0]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    if (c == NULL)
        goto out;
    snprintf(url, sizeof(url), "http://%s/status", o->status);
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mbuf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        fprintf(stderr, "ctxsync-bridge: GET %s: %s\n", url,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || b.p == NULL) {
        fprintf(stderr, "ctxsync-bridge: GET %s answered %ld\n", url, code);
        goto out;
    }
    if (o->json) {
        printf("%s\n", b.p);
        ret = 0;
        goto out;
    }
    root = json_loads(b.p, 0, NULL);
    links = json_object_get(root, "links");
    if (!json_is_array(links)) {
        fprintf(stderr, "ctxsync-bridge: %s did not answer a status document\n", url);
        goto out;
    }
    printf("%-16s %-12s %-28s %11s %11s %10s %8s %9s %9s %7s %6s %6s %8s %10s\n",
           "LINK", "STATE", "REASON", "APPLIED_SEQ", "HEAD", "LAG_EVENTS", "LAG_S",
           "APPLIED", "DUP", "DEFER", "FORK", "REJ", "WITHHELD", "RECONNECTS");
    json_array_foreach(links, i, lk) {
        json_t *cn = json_object_get(lk, "counters");
        const char *reason = json_string_value(json_object_get(lk, "reason"));
        char f[11][32];
        print_num(f[0], sizeof(f[0]), json_object_get(lk, "applied_seq"));
        print_num(f[1], sizeof(f[1]),
                  json_object_get(json_object_get(lk, "source"), "head_seq"));
        print_num(f[2], sizeof(f[2]), json_object_get(lk, "lag_events"));
        print_num(f[3], sizeof(f[3]), json_object_get(lk, "lag_seconds"));
        print_num(f[4], sizeof(f[4]), json_object_get(cn, "applied"));
        print_num(f[5], sizeof(f[5]), json_object_get(cn, "duplicate"));
        print_num(f[6], sizeof(f[6]), json_object_get(cn, "deferred"));
        print_num(f[7], sizeof(f[7]), json_object_get(cn, "fork"));
        print_num(f[8], sizeof(f[8]), json_object_get(cn, "rejected"));
        print_num(f[9], sizeof(f[9]), json_object_get(lk, "reconnects"));
        print_num(f[10], sizeof(f[10]), json_object_get(cn, "withheld_payloads"));
        printf("%-16s %-12s %-28.28s %11s %11s %10s %8s %9s %9s %7s %6s %6s %8s %10s\n",
               json_string_value(json_object_get(lk, "name")),
               json_string_value(json_object_get(lk, "state")),
               reason != NULL ? reason : "-", f[0], f[1], f[2], f[3], f[4], f[5], f[6],
               f[7], f[8], f[10], f[9]);
    }
    json_array_foreach(links, i, lk) {
        const char *le = json_string_value(json_object_get(lk, "last_error"));
        if (le != NULL)
            printf("%s: last error: %s\n", json_string_value(json_object_get(lk, "name")),
                   le);
    }
    ret = 0;
out:
    json_decref(root);
    free(b.p);
    if (c != NULL)
        curl_easy_cleanup(c);
    curl_global_cleanup();
    return ret;
}

/* ---- reset-link and ctl -------------------------------------------------- */

static int
control_url_from(const struct opts *o, char *out, size_t outsz, br_config **cfgp)
{
    cs_errbuf eb;
    eb.msg[0] = '\0';
    if (o->control != NULL) {
        snprintf(out, outsz, "%s", o->control);
        return 0;
    }
    if (o->config == NULL)
        return -1;
    if (*cfgp == NULL && br_config_load(o->config, cfgp, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-bridge: %s\n", eb.msg);
        return -2;
    }
    if (br_config_control(*cfgp) != NULL)
        snprintf(out, outsz, "%s", br_config_control(*cfgp));
    else if (br_config_state_dir(*cfgp) != NULL)
        br_control_default_url(br_config_state_dir(*cfgp), out, outsz);
    else
        return -1; /* the default name holds the daemon's pid: unknown */
    return 0;
}

static int
cmd_ctl(const struct opts *o)
{
    br_config *cfg = NULL;
    char url[600], req[256];
    char *reply = NULL;
    cs_errbuf eb;
    int ret = 1, r;

    eb.msg[0] = '\0';
    if (o->npos < 1 || (o->npos < 2 && strcmp(o->pos[0], "status") != 0))
        return usage_error("%s", "ctl needs COMMAND NAME");
    r = control_url_from(o, url, sizeof(url), &cfg);
    if (r == -1) {
        br_config_free(cfg);
        return usage_error("%s", "ctl needs --control URL (or a config with control "
                                 "or state_dir)");
    }
    if (r < 0)
        goto out;
    snprintf(req, sizeof(req), "%s%s%.128s", o->pos[0], o->npos > 1 ? " " : "",
             o->npos > 1 ? o->pos[1] : "");
    if (br_control_request(url, req, 5000, &reply, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-bridge: %s\n", eb.msg);
        goto out;
    }
    printf("%s\n", reply);
    ret = strstr(reply, "\"ok\":false") != NULL ? 1 : 0;
out:
    free(reply);
    br_config_free(cfg);
    return ret;
}

static char *
read_secret_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char buf[4097];
    size_t n;
    char *s;
    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    s = n > 0 ? strdup(buf) : NULL;
    explicit_bzero(buf, sizeof(buf));
    return s;
}

static int
cmd_reset(const struct opts *o)
{
    br_config *cfg = NULL;
    const br_link_config *lc;
    char url[600], req[256], msg[512];
    char *reply = NULL, *token = NULL;
    cs_errbuf eb;
    int ret = 1;

    eb.msg[0] = '\0';
    if (o->npos != 1)
        return usage_error("%s", "reset-link needs exactly one link NAME");
    if (o->config == NULL)
        return usage_error("%s", "reset-link needs --config FILE");
    if (br_config_load(o->config, &cfg, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-bridge: %s\n", eb.msg);
        goto out;
    }
    lc = br_config_find_link(cfg, o->pos[0]);
    if (lc == NULL) {
        fprintf(stderr, "ctxsync-bridge: no link named \"%s\" in %s\n", o->pos[0],
                o->config);
        goto out;
    }
    /* a running daemon resets its own link (and restarts it from 0) */
    if (o->token_file == NULL && o->source_node == NULL &&
        control_url_from(o, url, sizeof(url), &cfg) == 0) {
        snprintf(req, sizeof(req), "reset-link %s", lc->name);
        if (br_control_request(url, req, 3000, &reply, NULL) == CS_OK) {
            printf("%s\n", reply);
            ret = strstr(reply, "\"ok\":false") != NULL ? 1 : 0;
            goto out;
        }
    }
    if (o->token_file != NULL) {
        token = read_secret_file(o->token_file);
        if (token == NULL) {
            fprintf(stderr, "ctxsync-bridge: cannot read a token from %s\n", o->token_file);
            goto out;
        }
    }
    if (br_http_global_init() != CS_OK)
        goto out;
    msg[0] = '\0';
    if (br_reset_checkpoint(lc, o->source_node, token, msg, sizeof(msg), &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-bridge: reset-link %s: %s\n", lc->name, eb.msg);
        br_http_global_cleanup();
        goto out;
    }
    br_http_global_cleanup();
    printf("%s\n", msg);
    ret = 0;
out:
    if (token != NULL) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    free(reply);
    br_config_free(cfg);
    return ret;
}

int
main(int argc, char **argv)
{
    struct opts o;
    int r = parse_args(argc, argv, &o);

    if (r >= 0)
        return r;
    if (o.cmd == NULL)
        return usage_error("missing command");
    if (o.log_format != NULL) {
        cs_log_format f;
        if (cs_log_parse_format(o.log_format, &f) != 0)
            return usage_error("unknown --log-format %s (text or json)", o.log_format);
        cs_log_set_format(f);
    }
    if (strcmp(o.cmd, "run") == 0)
        return cmd_run(&o);
    if (strcmp(o.cmd, "status") == 0)
        return cmd_status(&o);
    if (strcmp(o.cmd, "reset-link") == 0)
        return cmd_reset(&o);
    if (strcmp(o.cmd, "ctl") == 0)
        return cmd_ctl(&o);
    return usage_error("unknown command %s", o.cmd);
}
