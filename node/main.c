/* SPDX-License-Identifier: MIT
 * main.c: ctxsync-node: `init` creates a data directory and the admin,
 * `serve` runs the node until SIGINT/SIGTERM, then drains and exits 0. */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nng/nng.h>

#include "auth.h"
#include "forks.h"
#include "cs_json.h"
#include "cs_log.h"
#include "cs_sqlpg.h"
#include "node.h"
#include "residency_node.h"
#include "sse.h"
#include "store.h"

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: ctxsync-node init STORE --node-id ID --region R "
            "--admin NAME\n"
            "       ctxsync-node serve STORE [--listen HOST:PORT]\n"
            "           [--auth token|header] [--allow-insecure-header-auth]\n"
            "           [--max-body BYTES] [--keepalive SECONDS] "
            "[--sse-max-lag N]\n"
            "           [--workers N] [--sync full|normal] "
            "[--blob-inline-max BYTES]\n"
            "           [--cache-mb N] (SQLite page caches, all connections; "
            "default 32)\n"
            "           [--log-format text|json] [--ready-file FILE]\n"
            "           [--residency FILE] [--peers FILE] "
            "[--fork-policy PATTERN=POLICY]...\n"
            "           [--tls-cert F --tls-key F [--tls-client-ca F]] "
            "(SIGHUP reloads them)\n"
            "           [--max-connections N] [--max-connections-per-ip N] "
            "[--request-timeout S]\n"
            "           [--conn-memory-limit BYTES] [--sse-max-per-actor N]\n"
            "       ctxsync-node new-epoch STORE (--peers FILE | "
            "--seq-floor N | --standalone)\n"
            "           (after restoring a backup; see "
            "docs/operations-node.md section 5)\n"
            "       ctxsync-node --help | --version\n"
            "\n"
            "STORE is --data DIR (SQLite, the default; same as --store "
            "sqlite:DIR) or\n"
            "--store postgres://USER@HOST:PORT/DB (an existing database; "
            "several serve\n"
            "processes may share it: docs/scale-out.md).\n"
            "\n"
            "init creates DIR with the database, the node identity and an "
            "admin actor\n"
            "(admin on **) and prints {node_id, region, epoch, actor_id, "
            "token} once.\n"
            "serve listens on 127.0.0.1:4111 by default; port 0 picks a free "
            "port\n"
            "(written to --ready-file when listening).\n");
}

/* --store sqlite:DIR | postgres://... : what the store functions take (a
 * directory, or the URL as is). */
static const char *
store_location(const char *arg)
{
    return strncmp(arg, "sqlite:", 7) == 0 ? arg + 7 : arg;
}

static bool
parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0)
        return false;
    *out = (size_t)v;
    return true;
}

static bool
valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* ---- init ---- */

typedef struct init_ctx {
    const char *admin;
    char token_id[40], token[44], grant_id[40];
} init_ctx;

static cs_err
init_admin(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    init_ctx *c = arg;
    cs_err rv = cs_actor_create_tx(tx, c->admin, "human", c->admin, NULL,
                                   NULL, eb);
    if (rv == CS_OK)
        rv = cs_grant_create_tx(tx, c->admin, NULL, "**", CS_OP_ADMIN,
                                c->admin, c->grant_id, eb);
    if (rv == CS_OK)
        rv = cs_token_issue(tx, c->admin, c->token_id, c->token, eb);
    return rv;
}

static int
cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"store", required_argument, NULL, 'S'},
        {"node-id", required_argument, NULL, 'n'},
        {"region", required_argument, NULL, 'r'},
        {"admin", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *node_id = NULL, *region = NULL, *admin = NULL;
    cs_errbuf eb = {{0}};
    cs_store *s = NULL;
    cs_store_opts so = {0};
    init_ctx ic;
    json_t *out;
    char *txt;
    int c;

    memset(&ic, 0, sizeof(ic));
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'S': data = store_location(optarg); break;
        case 'n': node_id = optarg; break;
        case 'r': region = optarg; break;
        case 'a': admin = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (data == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (node_id == NULL)
        node_id = "node-1";
    if (region == NULL)
        region = "default";
    if (admin == NULL)
        admin = "admin";
    if (!valid_name(node_id) || !valid_name(region)) {
        fprintf(stderr, "ctxsync-node: --node-id and --region must match "
                        "[A-Za-z0-9._-]{1,64}\n");
        return 2;
    }
    if (!cs_actor_id_valid(admin)) {
        fprintf(stderr, "ctxsync-node: --admin must match "
                        "[A-Za-z0-9._@-]{1,128}\n");
        return 2;
    }
    if (cs_store_init(data, node_id, region, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-node: init: %s\n", eb.msg);
        return 1;
    }
    so.data_dir = data;
    so.sync_full = true;
    if (cs_store_open(&so, &s, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-node: init: %s\n", eb.msg);
        return 1;
    }
    ic.admin = admin;
    if (cs_store_write(s, init_admin, &ic, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-node: init: cannot create the admin: %s\n",
                eb.msg);
        cs_store_close(s);
        return 1;
    }
    out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "node_id", node_id, "region",
                    region, "epoch", cs_store_epoch(s), "actor_id", admin,
                    "token", ic.token);
    txt = json_dumps(out, JSON_COMPACT);
    printf("%s\n", txt);
    fflush(stdout);
    free(txt);
    json_decref(out);
    cs_store_close(s);
    return 0;
}

/* ---- new-epoch ---- */

/* The highest seq of node_id's own events any peer holds (asks each peer
 * of the peers file); -1 with a message on stderr when a peer cannot say. */
static int64_t
peers_max_seq(const char *peers_file, const char *node_id)
{
    cs_peers *ps = NULL;
    cs_errbuf eb = {{0}};
    int64_t max = 0;
    char *seg = NULL, path[512], msg[512];
    size_t i;

    if (cs_peers_load(peers_file, &ps, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-node: new-epoch: %s\n", eb.msg);
        return -1;
    }
    if (cs_peers_count(ps) == 0) {
        fprintf(stderr, "ctxsync-node: new-epoch: %s lists no peers\n", peers_file);
        max = -1;
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        (seg = curl_easy_escape(NULL, node_id, 0)) == NULL) {
        fprintf(stderr, "ctxsync-node: new-epoch: cannot initialise libcurl\n");
        max = -1;
        goto out;
    }
    snprintf(path, sizeof(path), "/federation/origins/%s", seg);
    for (i = 0; i < cs_peers_count(ps); i++) {
        const cs_peer *p = cs_peers_get(ps, i);
        json_t *j = NULL;
        json_t *m;
        if (cs_peer_get_json(p, path, &j, msg, sizeof(msg)) != CS_OK) {
            fprintf(stderr,
                    "ctxsync-node: new-epoch: cannot ask peer %s: %s\n"
                    "  (every peer must answer, or a new write could reuse an "
                    "event id it holds; if the peer is gone for good, give "
                    "--seq-floor N with N above any seq it can hold)\n",
                    p->node_id, msg);
            max = -1;
            goto out;
        }
        m = json_object_get(j, "max_seq");
        if (!json_is_integer(m) || json_integer_value(m) < 0) {
            fprintf(stderr, "ctxsync-node: new-epoch: peer %s sent no max_seq\n",
                    p->node_id);
            json_decref(j);
            max = -1;
            goto out;
        }
        fprintf(stderr, "ctxsync-node: new-epoch: peer %s holds %s's events up "
                        "to seq %lld\n",
                p->node_id, node_id, (long long)json_integer_value(m));
        if (json_integer_value(m) > max)
            max = json_integer_value(m);
        json_decref(j);
    }
out:
    curl_free(seg);
    curl_global_cleanup();
    cs_peers_free(ps);
    return max;
}

static int
cmd_new_epoch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"store", required_argument, NULL, 'S'},
        {"peers", required_argument, NULL, 'p'},
        {"seq-floor", required_argument, NULL, 'f'},
        {"standalone", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *peers = NULL;
    long long floor_arg = 0;
    bool standalone = false;
    int64_t floor = 0;
    cs_epoch_change ch;
    cs_errbuf eb = {{0}};
    char node_id[128], lost[48] = "null", *end = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'S': data = store_location(optarg); break;
        case 'p': peers = optarg; break;
        case 'f':
            errno = 0;
            floor_arg = strtoll(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || floor_arg < 1) {
                fprintf(stderr, "ctxsync-node: new-epoch: --seq-floor must be "
                                "an integer >= 1\n");
                return 2;
            }
            break;
        case 's': standalone = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (data == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (peers == NULL && floor_arg == 0 && !standalone) {
        fprintf(stderr,
                "ctxsync-node: new-epoch: say where this node's seqs may "
                "resume: the writes made after the backup are lost here, but "
                "peers may hold them, and a new write must not reuse their "
                "event ids.\n"
                "  --peers FILE     ask every peer of FILE (the node's peers "
                "file) for the highest seq it holds from this node\n"
                "  --seq-floor N    resume at seq N (above anything peers hold)\n"
                "  --standalone     this node never replicated to another node\n");
        return 2;
    }
    floor = (int64_t)floor_arg;
    if (peers != NULL) {
        int64_t m;
        if (cs_store_peek_node_id(data, node_id, sizeof(node_id), &eb) != CS_OK) {
            fprintf(stderr, "ctxsync-node: new-epoch: %s\n", eb.msg);
            return 1;
        }
        if ((m = peers_max_seq(peers, node_id)) < 0)
            return 1;
        if (m + 1 > floor)
            floor = m + 1;
    }
    if (cs_store_new_epoch(data, floor, &ch, &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-node: new-epoch: %s\n", eb.msg);
        return 1;
    }
    if (ch.lost_to > 0)
        snprintf(lost, sizeof(lost), "[%lld,%lld]", (long long)ch.lost_from,
                 (long long)ch.lost_to);
    printf("{\"old_epoch\":\"%s\",\"epoch\":\"%s\",\"restored_seq\":%lld,"
           "\"next_seq\":%lld,\"lost_seqs\":%s}\n",
           ch.old_epoch, ch.new_epoch, (long long)ch.restored_seq,
           (long long)ch.next_seq, lost);
    return 0;
}

/* ---- serve ---- */

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reload;

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void
on_hup(int sig)
{
    (void)sig;
    g_reload = 1;
}

/* Abuse-limit flags: an unsigned in [lo, hi]. */
static bool
parse_limit(const char *flag, const char *s, unsigned long lo,
            unsigned long hi, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < lo ||
        v > hi) {
        fprintf(stderr, "ctxsync-node: %s must be %lu..%lu\n", flag, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

static bool
is_loopback(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 ||
           strncmp(listen, "localhost:", 10) == 0;
}

static int
cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"store", required_argument, NULL, 'S'},
        {"listen", required_argument, NULL, 'l'},
        {"auth", required_argument, NULL, 'a'},
        {"allow-insecure-header-auth", no_argument, NULL, 'I'},
        {"max-body", required_argument, NULL, 'b'},
        {"keepalive", required_argument, NULL, 'k'},
        {"sse-max-lag", required_argument, NULL, 'm'},
        {"workers", required_argument, NULL, 'w'},
        {"sync", required_argument, NULL, 's'},
        {"blob-inline-max", required_argument, NULL, 'B'},
        {"log-format", required_argument, NULL, 'f'},
        {"ready-file", required_argument, NULL, 'R'},
        {"residency", required_argument, NULL, 'x'},
        {"peers", required_argument, NULL, 'p'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-client-ca", required_argument, NULL, 'A'},
        {"fork-policy", required_argument, NULL, 'F'},
        {"max-connections", required_argument, NULL, 1001},
        {"max-connections-per-ip", required_argument, NULL, 1002},
        {"request-timeout", required_argument, NULL, 1003},
        {"conn-memory-limit", required_argument, NULL, 1004},
        {"sse-max-per-actor", required_argument, NULL, 1005},
        {"cache-mb", required_argument, NULL, 1006},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cs_node n;
    cs_http_opts ho;
    cs_store_opts so;
    cs_errbuf eb = {{0}};
    const char *ready = NULL;
    bool insecure_header = false;
    size_t tmp, cache_mb = 32;
    unsigned long ticks = 0;
    unsigned long lim;
    int c, rc = 1;
    struct sigaction sa;

    memset(&n, 0, sizeof(n));
    memset(&ho, 0, sizeof(ho));
    memset(&so, 0, sizeof(so));
    /* glibc gives each thread that mallocs its own arena and keeps what
     * it freed: 16 workers parsing multi-MiB ingest batches left the node
     * at 253 MiB RSS after a 50k-event ingest (SQLite's heap: 19 MiB);
     * two arenas: 81 MiB. MALLOC_ARENA_MAX in the environment wins. */
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, 2);
    n.cfg.listen = "127.0.0.1:4111";
    n.cfg.max_body = 8u << 20;
    n.cfg.keepalive_s = 15;
    n.cfg.sse_max_lag = 10000;
    n.cfg.blob_inline_max = 64 * 1024;
    /* Writers block their worker until the group commit: more workers make
     * larger groups (measured: PUT 613 -> 973 req/s from 4 to 32). */
    ho.workers = 16;
    ho.max_conns = 4096;
    ho.request_timeout_s = 60;
    ho.conn_memory_limit = 160 * 1024;
    ho.sse_max_per_actor = 64;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': n.cfg.data_dir = optarg; break;
        case 'S': n.cfg.data_dir = store_location(optarg); break;
        case 'l': n.cfg.listen = optarg; break;
        case 'a':
            if (strcmp(optarg, "header") == 0)
                n.cfg.header_auth = true;
            else if (strcmp(optarg, "token") != 0) {
                fprintf(stderr, "ctxsync-node: --auth must be token or "
                                "header\n");
                return 2;
            }
            break;
        case 'I': insecure_header = true; break;
        case 'b':
            if (!parse_size(optarg, &n.cfg.max_body)) {
                fprintf(stderr, "ctxsync-node: --max-body must be a positive "
                                "byte count\n");
                return 2;
            }
            break;
        case 'k':
            if (!parse_size(optarg, &tmp) || tmp > 3600) {
                fprintf(stderr, "ctxsync-node: --keepalive must be 1..3600 "
                                "seconds\n");
                return 2;
            }
            n.cfg.keepalive_s = (unsigned)tmp;
            break;
        case 'm':
            if (!parse_size(optarg, &tmp) || tmp > 10000000) {
                fprintf(stderr, "ctxsync-node: --sse-max-lag must be "
                                "1..10000000\n");
                return 2;
            }
            n.cfg.sse_max_lag = (unsigned)tmp;
            break;
        case 'w':
            if (!parse_size(optarg, &tmp) || tmp > 256) {
                fprintf(stderr, "ctxsync-node: --workers must be 1..256\n");
                return 2;
            }
            ho.workers = (unsigned)tmp;
            break;
        case 's':
            if (strcmp(optarg, "full") == 0)
                n.cfg.sync_full = true;
            else if (strcmp(optarg, "normal") != 0) {
                fprintf(stderr, "ctxsync-node: --sync must be full or "
                                "normal\n");
                return 2;
            }
            break;
        case 1006:
            if (!parse_size(optarg, &tmp) || tmp < 2 || tmp > 65536) {
                fprintf(stderr, "ctxsync-node: --cache-mb must be 2..65536 "
                                "(MiB)\n");
                return 2;
            }
            cache_mb = tmp;
            break;
        case 'B':
            if (!parse_size(optarg, &n.cfg.blob_inline_max)) {
                fprintf(stderr, "ctxsync-node: --blob-inline-max must be a "
                                "positive byte count\n");
                return 2;
            }
            break;
        case 'f': {
            cs_log_format lf;
            if (cs_log_parse_format(optarg, &lf) != 0) {
                fprintf(stderr, "ctxsync-node: --log-format must be text or "
                                "json\n");
                return 2;
            }
            cs_log_set_format(lf);
            break;
        }
        case 'R': ready = optarg; break;
        case 'x': n.cfg.residency_file = optarg; break;
        case 'p': n.cfg.peers_file = optarg; break;
        case 'C': n.cfg.tls_cert = optarg; break;
        case 'K': n.cfg.tls_key = optarg; break;
        case 'A': n.cfg.tls_client_ca = optarg; break;
        case 'F':
            if (n.cfg.n_fork_policies >= 16) {
                fprintf(stderr, "ctxsync-node: at most 16 --fork-policy\n");
                return 2;
            }
            n.cfg.fork_policies[n.cfg.n_fork_policies++] = optarg;
            break;
        case 1001:
            if (!parse_limit("--max-connections", optarg, 1, 1000000, &lim))
                return 2;
            ho.max_conns = (unsigned)lim;
            break;
        case 1002:
            if (!parse_limit("--max-connections-per-ip", optarg, 0, 1000000,
                             &lim))
                return 2;
            ho.max_conns_per_ip = (unsigned)lim;
            break;
        case 1003:
            if (!parse_limit("--request-timeout", optarg, 1, 86400, &lim))
                return 2;
            ho.request_timeout_s = (unsigned)lim;
            break;
        case 1004:
            if (!parse_limit("--conn-memory-limit", optarg, 16384,
                             64ul << 20, &lim))
                return 2;
            ho.conn_memory_limit = (size_t)lim;
            break;
        case 1005:
            if (!parse_limit("--sse-max-per-actor", optarg, 0, 1000000, &lim))
                return 2;
            ho.sse_max_per_actor = (unsigned)lim;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (n.cfg.data_dir == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    /* TLS: a certificate without its key (or a client CA without both)
     * must not fall back to clear text. */
    if ((n.cfg.tls_cert != NULL) != (n.cfg.tls_key != NULL) ||
        (n.cfg.tls_client_ca != NULL && n.cfg.tls_cert == NULL)) {
        fprintf(stderr, "ctxsync-node: --tls-cert and --tls-key go together, "
                        "and --tls-client-ca needs both\n");
        return 2;
    }
    /* residency: --residency and --peers are loaded and validated below,
     * once the other flags are known to be good */
    if (cs_forks_set_policies(n.cfg.fork_policies, n.cfg.n_fork_policies,
                              &eb) != CS_OK) {
        fprintf(stderr, "ctxsync-node: %s\n", eb.msg);
        return 2;
    }
    if (n.cfg.header_auth && !is_loopback(n.cfg.listen) && !insecure_header) {
        fprintf(stderr,
                "ctxsync-node: refusing --auth header on non-loopback address "
                "%s: anyone who can reach it can act as any actor. Use token "
                "auth, or pass --allow-insecure-header-auth on a trusted "
                "network.\n",
                n.cfg.listen);
        return 2;
    }
    /* residency: a bad policy or peers file is a clear error, exit 2 */
    if (cs_res_node_start(&n) != CS_OK)
        return 2;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    n.started_us = cs_now_us();
    so.data_dir = n.cfg.data_dir;
    so.sync_full = n.cfg.sync_full;
    so.blob_inline_max = n.cfg.blob_inline_max;
    so.cache_bytes = (int64_t)cache_mb * 1024 * 1024;
    if (cs_store_open(&so, &n.store, &eb) != CS_OK) {
        cs_log(CS_LOG_ERROR, "NODE-START", "%s", eb.msg);
        return 1;
    }
    if (cs_authz_new(n.store, &n.authz) != CS_OK ||
        sse_hub_start(&n, &n.hub, &eb) != CS_OK) {
        cs_log(CS_LOG_ERROR, "NODE-START", "%s", eb.msg);
        goto out;
    }
    ho.listen = n.cfg.listen;
    ho.max_body = n.cfg.max_body;
    ho.io_threads = 2;
    ho.tls_cert = n.cfg.tls_cert;
    ho.tls_key = n.cfg.tls_key;
    ho.tls_client_ca = n.cfg.tls_client_ca;
    if (cs_http_start(&n, &ho, &n.http, &eb) != CS_OK) {
        cs_log(CS_LOG_ERROR, "NODE-START", "%s", eb.msg);
        goto out;
    }
    {
        char where[1024];
        cs_sqlpg_redact_url(n.cfg.data_dir, where, sizeof(where));
        cs_log(CS_LOG_NOTICE, "NODE-START",
               "node_id=%s region=%s epoch=%s listen=%s auth=%s store=%s data=%s",
               cs_store_node_id(n.store), cs_store_region(n.store),
               cs_store_epoch(n.store), cs_http_bound(n.http),
               n.cfg.header_auth ? "header" : "token",
               cs_store_backend(n.store), where);
    }
    if (n.cfg.header_auth)
        cs_log(CS_LOG_WARN, "NODE-HEADER-AUTH",
               "X-Actor-Id header authentication is on: callers are not "
               "verified");
    if (ready != NULL) {
        char tmpf[4096];
        FILE *f;
        snprintf(tmpf, sizeof(tmpf), "%s.tmp", ready);
        f = fopen(tmpf, "w");
        if (f == NULL || fprintf(f, "%s\n", cs_http_bound(n.http)) < 0 ||
            fclose(f) != 0 || rename(tmpf, ready) != 0) {
            cs_log(CS_LOG_ERROR, "NODE-START", "cannot write --ready-file %s",
                   ready);
            goto out;
        }
    }
    while (!g_stop) {
        usleep(100 * 1000); /* no pause(): a signal could slip in first */
        /* Return freed heap pages to the OS every 10 s (large request
         * bodies and SSE queues leave holes the allocator keeps). */
        if (++ticks % 100 == 0)
            malloc_trim(0);
        if (g_reload) {
            cs_errbuf reb = {{0}};
            g_reload = 0;
            (void)cs_http_reload(n.http, &reb); /* logs either way */
        }
    }
    cs_log(CS_LOG_NOTICE, "NODE-STOP", "signal received: draining");
    rc = 0;
out:
    cs_http_stop(n.http);
    sse_hub_stop(n.hub);
    cs_authz_free(n.authz);
    cs_store_close(n.store);
    cs_res_node_stop(&n); /* residency: */
    nng_fini(); /* joins nng's worker threads: a clean valgrind report */
    if (rc == 0)
        cs_log(CS_LOG_NOTICE, "NODE-STOP", "stopped cleanly");
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ctxsync-node %s\n", CS_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "new-epoch") == 0)
        return cmd_new_epoch(argc - 1, argv + 1);
    fprintf(stderr, "ctxsync-node: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
