/* SPDX-License-Identifier: MIT
 * control.c: nng rep0 control socket of ctxsync-bridge (control.h). */
#include "control.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_log.h"
#include "status.h"

#define REQ_MAX 1024

struct br_control {
    nng_socket sock;
    bool open;
    pthread_t th;
    bool th_started;
    atomic_int stop;
    br_link *const *links;
    size_t nlinks;
    char url[512];
};

void
br_control_default_url(const char *state_dir, char *out, size_t outsz)
{
    if (state_dir != NULL && state_dir[0] != '\0')
        snprintf(out, outsz, "ipc://%s/ctxsync-bridge.ipc", state_dir);
    else
        snprintf(out, outsz, "ipc:///tmp/ctxsync-bridge-%ld.ipc", (long)getpid());
}

static char *
answer(const br_control *c, const char *req, size_t len)
{
    char line[REQ_MAX + 1], cmd[32], msg[256];
    const char *name = NULL;
    json_t *j = NULL;
    char *out;
    size_t i, n = len < REQ_MAX ? len : REQ_MAX;
    char *sp;

    memcpy(line, req, n);
    line[n] = '\0';
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\0'))
        line[--n] = '\0';
    sp = strchr(line, ' ');
    if (sp != NULL) {
        *sp = '\0';
        name = sp + 1;
        while (*name == ' ')
            name++;
    }
    snprintf(cmd, sizeof(cmd), "%.31s", line);
    if (strcmp(cmd, "status") == 0 && (name == NULL || *name == '\0')) {
        j = br_status_json(c->links, c->nlinks);
        goto done;
    }
    if (name == NULL || *name == '\0') {
        j = json_pack("{s:b,s:s}", "ok", 0, "error",
                      "usage: pause|resume|retry-now|reset-link NAME, or status");
        goto done;
    }
    for (i = 0; i < c->nlinks; i++) {
        if (strcmp(br_link_name(c->links[i]), name) == 0)
            break;
    }
    if (i == c->nlinks) {
        snprintf(msg, sizeof(msg), "no link named \"%.64s\"", name);
        j = json_pack("{s:b,s:s}", "ok", 0, "error", msg);
        goto done;
    }
    if (br_link_command(c->links[i], cmd, msg, sizeof(msg)) != CS_OK) {
        char e[128];
        snprintf(e, sizeof(e), "unknown command \"%.32s\" (pause, resume, retry-now, "
                 "reset-link, status)", cmd);
        j = json_pack("{s:b,s:s}", "ok", 0, "error", e);
        goto done;
    }
    j = json_pack("{s:b,s:s,s:s,s:s}", "ok", 1, "link", name, "command", cmd,
                  "message", msg);
done:
    out = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

static void *
control_main(void *arg)
{
    br_control *c = arg;

    while (!atomic_load(&c->stop)) {
        char *buf = NULL, *rep;
        size_t sz = 0;
        int rv = nng_recv(c->sock, &buf, &sz, NNG_FLAG_ALLOC);
        if (rv == NNG_ETIMEDOUT)
            continue;
        if (rv != 0) {
            if (rv == NNG_ECLOSED)
                break;
            continue;
        }
        rep = answer(c, buf, sz);
        nng_free(buf, sz);
        if (rep == NULL)
            rep = strdup("{\"ok\":false,\"error\":\"out of memory\"}");
        if (rep != NULL) {
            nng_send(c->sock, rep, strlen(rep), 0);
            free(rep);
        }
    }
    return NULL;
}

cs_err
br_control_start(const char *url, br_link *const *links, size_t nlinks,
                 br_control **out, cs_errbuf *eb)
{
    br_control *c = calloc(1, sizeof(*c));
    nng_listener lst;
    int rv;
    cs_err rc = CS_OK;

    if (c == NULL)
        return cs_errf(eb, CS_ENOMEM, "out of memory");
    c->links = links;
    c->nlinks = nlinks;
    snprintf(c->url, sizeof(c->url), "%s", url);
    if ((rv = nng_rep0_open(&c->sock)) != 0) {
        rc = cs_errf(eb, CS_EIO, "control: %s", nng_strerror(rv));
        goto out;
    }
    c->open = true;
    nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, 200);
    nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, 1000);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, REQ_MAX);
    if ((rv = nng_listener_create(&lst, c->sock, url)) != 0) {
        rc = cs_errf(eb, CS_EINVAL, "control %.200s: %s", url, nng_strerror(rv));
        goto out;
    }
    nng_listener_set_int(lst, NNG_OPT_IPC_PERMISSIONS, 0600);
    if ((rv = nng_listener_start(lst, 0)) != 0) {
        rc = cs_errf(eb, CS_EIO, "control %.200s: %s", url, nng_strerror(rv));
        goto out;
    }
    if (pthread_create(&c->th, NULL, control_main, c) != 0) {
        rc = cs_errf(eb, CS_EIO, "control: cannot start thread");
        goto out;
    }
    c->th_started = true;
    *out = c;
    c = NULL;
out:
    br_control_stop(c);
    return rc;
}

void
br_control_stop(br_control *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, 1);
    if (c->th_started)
        pthread_join(c->th, NULL);
    if (c->open)
        nng_close(c->sock);
    if (strncmp(c->url, "ipc://", 6) == 0)
        unlink(c->url + 6); /* nng leaves the socket file behind */
    free(c);
}

cs_err
br_control_request(const char *url, const char *request, int timeout_ms,
                   char **reply, cs_errbuf *eb)
{
    nng_socket s;
    bool open = false;
    char *buf = NULL;
    size_t sz = 0;
    int rv;
    cs_err rc = CS_OK;

    if ((rv = nng_req0_open(&s)) != 0) {
        rc = cs_errf(eb, CS_EIO, "control: %s", nng_strerror(rv));
        goto out;
    }
    open = true;
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
    if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
        rc = cs_errf(eb, rv == NNG_ECONNREFUSED || rv == NNG_ENOENT ? CS_ENOTFOUND : CS_EIO,
                     "control %.200s: %s", url, nng_strerror(rv));
        goto out;
    }
    if ((rv = nng_send(s, (void *)request, strlen(request), 0)) != 0) {
        rc = cs_errf(eb, CS_EIO, "control %.200s: send: %s", url, nng_strerror(rv));
        goto out;
    }
    if ((rv = nng_recv(s, &buf, &sz, NNG_FLAG_ALLOC)) != 0) {
        rc = cs_errf(eb, CS_EIO, "control %.200s: no answer: %s", url, nng_strerror(rv));
        goto out;
    }
    *reply = malloc(sz + 1);
    if (*reply == NULL) {
        rc = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(*reply, buf, sz);
    (*reply)[sz] = '\0';
out:
    if (buf != NULL)
        nng_free(buf, sz);
    if (open)
        nng_close(s);
    return rc;
}
