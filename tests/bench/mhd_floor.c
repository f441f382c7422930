/* SPDX-License-Identifier: MIT
 * mhd_floor.c: the HTTP floor. A trivial libmicrohttpd server with the
 * node's daemon flags (node/http.c: MHD_USE_EPOLL_INTERNAL_THREAD |
 * MHD_USE_TURBO, thread pool of 2, connection limit 4096) answering every
 * request with a small static JSON object from the I/O thread (no worker
 * queue, no suspend/resume, no SQLite). Measured with loadgen --mode path.
 *
 *   mhd_floor --ready-file F    (listens on 127.0.0.1:0, writes HOST:PORT
 *                                to F, runs until SIGINT/SIGTERM) */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static struct MHD_Response *g_resp;

static const char body[] = "{\"status\":\"ok\",\"node_id\":\"floor\"}";

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
           const char *method, const char *version, const char *upload,
           size_t *upload_size, void **req_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*req_cls == NULL) { /* first call: headers only */
        *req_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* discard bodies */
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_OK, g_resp);
}

int
main(int argc, char **argv)
{
    struct MHD_Daemon *d = NULL;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    const char *ready = NULL;
    struct sigaction act;
    int fd = -1, one = 1, rc = 1;
    char tmp[4200];
    FILE *f;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc)
            ready = argv[++i];
        else {
            fprintf(stderr, "usage: mhd_floor --ready-file FILE\n");
            return 2;
        }
    }
    if (ready == NULL) {
        fprintf(stderr, "usage: mhd_floor --ready-file FILE\n");
        return 2;
    }
    memset(&act, 0, sizeof(act));
    act.sa_handler = on_signal;
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("mhd_floor: listen");
        goto out;
    }
    g_resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                             MHD_RESPMEM_PERSISTENT);
    if (g_resp == NULL ||
        MHD_add_response_header(g_resp, "Content-Type", "application/json") !=
            MHD_YES)
        goto out;
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                             MHD_USE_TURBO,
                         0, NULL, NULL, on_request, NULL,
                         MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)(160 * 1024), MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mhd_floor: MHD_start_daemon failed\n");
        goto out;
    }
    fd = -1; /* owned by the daemon now */
    snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "127.0.0.1:%u\n", ntohs(sa.sin_port)) < 0 ||
        fclose(f) != 0 || rename(tmp, ready) != 0) {
        fprintf(stderr, "mhd_floor: cannot write %s\n", ready);
        goto out;
    }
    while (!g_stop)
        usleep(100 * 1000);
    rc = 0;
out:
    if (d != NULL)
        MHD_stop_daemon(d);
    if (g_resp != NULL)
        MHD_destroy_response(g_resp);
    if (fd >= 0)
        close(fd);
    return rc;
}
