/* SPDX-License-Identifier: MIT
 * provenance.c: appends provenance rows (spec §3 "Provenance").
 *
 * One row per artifact read or write (and, with federation, per replicate
 * and remote fetch): who, which operation, which URI and version, and the
 * optional downstream URI the reader names. Rows are only ever inserted;
 * SQLite triggers refuse UPDATE and DELETE on the table. The function runs
 * inside a cs_write_fn, so a write's row commits with the write itself. */

#include "cs_json.h"
#include "node.h"

cs_err
cs_prov_append(cs_tx *tx, const char *actor_id, const char *operation,
               const char *uri, long long version_touched,
               const char *version_id, const char *downstream_uri,
               cs_errbuf *eb)
{
    return cs_prov_append_detail(tx, actor_id, operation, uri,
                                 version_touched, version_id, downstream_uri,
                                 NULL, eb);
}

cs_err
cs_prov_append_detail(cs_tx *tx, const char *actor_id, const char *operation,
                      const char *uri, long long version_touched,
                      const char *version_id, const char *downstream_uri,
                      const char *detail, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    char now[CS_TIME_LEN];
    cs_dbst *st;
    int rc;

    st = cs_stmt(db, "INSERT INTO provenance(actor_id, operation,"
                     " artifact_uri, version_touched, version_id,"
                     " downstream_uri, created_at, detail)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_time_format(cs_now_us(), now);
    cs_db_bind_text(st, 1, actor_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, operation, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, uri, -1, CS_DB_STATIC);
    if (version_touched > 0)
        cs_db_bind_int64(st, 4, (int64_t)version_touched);
    else
        cs_db_bind_null(st, 4);
    if (version_id != NULL)
        cs_db_bind_text(st, 5, version_id, -1, CS_DB_STATIC);
    else
        cs_db_bind_null(st, 5);
    if (downstream_uri != NULL)
        cs_db_bind_text(st, 6, downstream_uri, -1, CS_DB_STATIC);
    else
        cs_db_bind_null(st, 6);
    cs_db_bind_text(st, 7, now, -1, CS_DB_STATIC);
    if (detail != NULL)
        cs_db_bind_text(st, 8, detail, -1, CS_DB_STATIC);
    else
        cs_db_bind_null(st, 8);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);
    return CS_OK;
}
