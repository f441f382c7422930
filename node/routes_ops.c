/* SPDX-License-Identifier: MIT
 * routes_ops.c: /health (no auth) and /metrics (Prometheus text, no auth:
 * it exposes counts only, never URIs, actors or tokens). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_json.h"
#include "node.h"
#include "forks.h"
#include "ingest.h"
#include "sse.h"

static void
h_health(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    cs_res_json(r, 200,
                json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:I}", "status", "ok",
                          "node_id", cs_store_node_id(n->store), "region",
                          cs_store_region(n->store), "version", CS_VERSION,
                          "epoch", cs_store_epoch(n->store), "head_seq",
                          (json_int_t)cs_store_head_seq(n->store), "store",
                          cs_store_backend(n->store), "pid",
                          (json_int_t)getpid()));
}

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void
h_metrics(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    cs_store_stats ss;

    cs_store_get_stats(n->store, &ss);
    cs_http_metrics(n->http, &buf, &len, &cap);
    sse_hub_metrics(n->hub, &buf, &len, &cap);
    cs_buf_appendf(
        &buf, &len, &cap,
        "# HELP ctxsync_feed_head_seq Highest committed change-feed seq.\n"
        "# TYPE ctxsync_feed_head_seq gauge\nctxsync_feed_head_seq %lld\n"
        "# HELP ctxsync_store_commits_total Group commits.\n"
        "# TYPE ctxsync_store_commits_total counter\n"
        "ctxsync_store_commits_total %llu\n"
        "# TYPE ctxsync_store_writes_total counter\n"
        "ctxsync_store_writes_total %llu\n"
        "# TYPE ctxsync_store_write_errors_total counter\n"
        "ctxsync_store_write_errors_total %llu\n"
        "# HELP ctxsync_store_group_max Largest number of writes in one "
        "commit.\n# TYPE ctxsync_store_group_max gauge\n"
        "ctxsync_store_group_max %llu\n"
        "# HELP ctxsync_store_checkpoints_total WAL checkpoints, by the "
        "checkpointer thread or by the writer (WAL past 64 MiB).\n"
        "# TYPE ctxsync_store_checkpoints_total counter\n"
        "ctxsync_store_checkpoints_total{by=\"checkpointer\"} %llu\n"
        "ctxsync_store_checkpoints_total{by=\"writer\"} %llu\n"
        "# HELP ctxsync_store_wal_frames WAL frames after the last commit.\n"
        "# TYPE ctxsync_store_wal_frames gauge\nctxsync_store_wal_frames %llu\n"
        "# HELP ctxsync_sqlite_heap_bytes Heap held by SQLite (page caches "
        "of every connection, statements), bounded softly by --cache-mb.\n"
        "# TYPE ctxsync_sqlite_heap_bytes gauge\nctxsync_sqlite_heap_bytes %lld\n"
        "# TYPE ctxsync_process_resident_memory_bytes gauge\n"
        "ctxsync_process_resident_memory_bytes %ld\n"
        "# TYPE ctxsync_uptime_seconds gauge\nctxsync_uptime_seconds %.3f\n"
        "# HELP ctxsync_store_info The store backend of this process.\n"
        "# TYPE ctxsync_store_info gauge\nctxsync_store_info{backend=\"%s\"} 1\n"
        "# HELP ctxsync_store_notifies_total PostgreSQL notifications "
        "received (events and grants committed by any process).\n"
        "# TYPE ctxsync_store_notifies_total counter\n"
        "ctxsync_store_notifies_total %llu\n",
        (long long)cs_store_head_seq(n->store),
        (unsigned long long)ss.commits, (unsigned long long)ss.writes,
        (unsigned long long)ss.write_errors,
        (unsigned long long)ss.group_max,
        (unsigned long long)ss.checkpoints,
        (unsigned long long)ss.writer_checkpoints,
        (unsigned long long)ss.wal_frames, (long long)ss.heap_bytes,
        rss_kib() * 1024,
        (double)(cs_now_us() - n->started_us) / 1e6,
        cs_store_backend(n->store), (unsigned long long)ss.notifies);
    cs_forks_metrics(cs_req_db(r), &buf, &len, &cap);
    cs_ingest_metrics(&buf, &len, &cap);
    {
        cs_dbst *st = cs_stmt(cs_req_db(r),
                                   "SELECT (SELECT COUNT(*) FROM fed_pending),"
                                   " (SELECT COUNT(*) FROM fed_deadletters)");
        if (st != NULL && cs_db_step(st) == CS_DB_ROW)
            cs_buf_appendf(&buf, &len, &cap,
                           "# TYPE ctxsync_federation_pending gauge\n"
                           "ctxsync_federation_pending %lld\n"
                           "# TYPE ctxsync_federation_deadletters gauge\n"
                           "ctxsync_federation_deadletters %lld\n",
                           (long long)cs_db_column_int64(st, 0),
                           (long long)cs_db_column_int64(st, 1));
        if (st != NULL)
            cs_db_reset(st);
    }
    if (buf == NULL) {
        cs_res_error(r, 500, "internal", "out of memory");
        return;
    }
    cs_res_text(r, 200, "text/plain; version=0.0.4", buf, len);
}

const cs_route cs_routes_ops[] = {
    {"GET", "/health", h_health, CS_ROUTE_NOAUTH},
    {"GET", "/metrics", h_metrics, CS_ROUTE_NOAUTH},
    {NULL, NULL, NULL, 0},
};
