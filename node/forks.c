/* SPDX-License-Identifier: MIT
 * forks.c: fork records and the review API (docs/forks.md).
 *
 * A fork's branches are never stored twice: they are the versions whose
 * parent_id IS the fork's parent_id. The record adds only what the graph
 * cannot say: when it was detected, and how and by whom it was resolved.
 * Resolution is detected from the graph too (a version whose ancestry
 * covers every branch), so a merge written on any node closes the fork on
 * every node that applies it, with the same record. */
#include "forks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cs_diff.h"
#include "cs_json.h"
#include "cs_jsonpatch.h"
#include "cs_log.h"
#include "fork.h"
#include "node.h"
#include "versions.h"

#define FORKS_PAGE_DEFAULT 50
#define FORKS_PAGE_MAX 500

/* ---- automatic policies ---- */

static cs_err
step(cs_db *db, cs_dbst *st, cs_errbuf *eb)
{
    int rc = cs_db_step(st);
    cs_db_reset(st);
    return (rc == CS_DB_DONE || rc == CS_DB_ROW) ? CS_OK
                                                   : cs_db_err(db, rc, eb);
}


typedef struct policy {
    char pattern[CS_URI_MAX + 1];
    cs_fork_policy_kind kind;
    char regions[256];
    char name[300]; /* as written: "lww", "region-priority:eu,us" */
} policy;

static policy g_policies[16];
static unsigned g_npolicies;

cs_err
cs_forks_set_policies(const char *const *specs, unsigned n, cs_errbuf *eb)
{
    g_npolicies = 0;
    for (unsigned i = 0; i < n && i < 16; i++) {
        const char *eq = strrchr(specs[i], '=');
        policy *p = &g_policies[g_npolicies];
        size_t pl;
        if (eq == NULL || eq == specs[i])
            return cs_errf(eb, CS_EINVAL,
                           "--fork-policy '%s': expected PATTERN=POLICY",
                           specs[i]);
        pl = (size_t)(eq - specs[i]);
        if (pl > CS_URI_MAX)
            return cs_errf(eb, CS_EINVAL, "--fork-policy: pattern too long");
        memcpy(p->pattern, specs[i], pl);
        p->pattern[pl] = '\0';
        if (cs_pattern_validate(p->pattern, eb) != CS_OK)
            return CS_EINVAL;
        snprintf(p->name, sizeof(p->name), "%s", eq + 1);
        if (strcmp(eq + 1, "manual") == 0) {
            p->kind = CS_FORK_MANUAL;
        } else if (strcmp(eq + 1, "lww") == 0) {
            p->kind = CS_FORK_LWW;
        } else if (strncmp(eq + 1, "region-priority:", 16) == 0 &&
                   eq[17] != '\0' && strlen(eq + 17) < sizeof(p->regions)) {
            p->kind = CS_FORK_REGION_PRIORITY;
            snprintf(p->regions, sizeof(p->regions), "%s", eq + 17);
        } else {
            return cs_errf(eb, CS_EINVAL,
                           "--fork-policy '%s': POLICY must be manual, lww "
                           "or region-priority:R1,R2,...",
                           specs[i]);
        }
        g_npolicies++;
    }
    return CS_OK;
}

static const policy *
policy_for(const char *uri)
{
    for (unsigned i = 0; i < g_npolicies; i++)
        if (cs_pattern_match(g_policies[i].pattern, uri))
            return &g_policies[i];
    return NULL;
}

static cs_err resolve_in_tx(cs_tx *tx, const char *fork_id, const char *keep,
                            const cs_content *content,
                            const char *content_type, const char *summary,
                            const cs_actor *actor, char *uri_out,
                            char *version_id_out, bool *bad_keep,
                            cs_errbuf *eb);

/* A policy-governed fork: choose the branch to keep; the node where that
 * branch was written writes the merge (exactly one writer, every node
 * choosing the same branch); other nodes record the fork and close it when
 * that merge arrives. */
static cs_err
apply_policy(cs_tx *tx, const policy *p, const char *fork_id,
             const char *uri, const char *parent_id, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_store *s = cs_tx_store(tx);
    cs_dbst *st;
    cs_fork_tip tips[32];
    char ids[32][CS_VERSION_ID_LEN + 1], ats[32][CS_TIME_LEN + 8];
    char regs[32][65], nodes[32][129];
    int n = 0, k;
    cs_actor actor;
    char uri_out[CS_URI_MAX + 1], vid[CS_VERSION_ID_LEN + 1];
    bool bad = false;

    st = cs_stmt(db, "UPDATE forks SET policy = ?2 WHERE fork_id = ?1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, fork_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, p->name, -1, CS_DB_STATIC);
    if (step(db, st, eb) != CS_OK)
        return CS_EDB;
    if (p->kind == CS_FORK_MANUAL)
        return CS_OK;
    /* the branches that are still tips */
    st = cs_stmt(db, "SELECT v.version_id, v.version, v.deleted, v.created_at,"
                     " v.origin_region, v.origin_node FROM artifact_versions v"
                     " WHERE v.uri = ?1 AND v.parent_id IS ?2 AND"
                     " v.has_child = 0 ORDER BY v.version_id");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    if (parent_id != NULL)
        cs_db_bind_text(st, 2, parent_id, -1, CS_DB_STATIC);
    while (n < 32 && cs_db_step(st) == CS_DB_ROW) {
        snprintf(ids[n], sizeof(ids[n]), "%s", cs_db_column_text(st, 0));
        snprintf(ats[n], sizeof(ats[n]), "%s", cs_db_column_text(st, 3));
        snprintf(regs[n], sizeof(regs[n]), "%s", cs_db_column_text(st, 4));
        snprintf(nodes[n], sizeof(nodes[n]), "%s", cs_db_column_text(st, 5));
        tips[n].version_id = ids[n];
        tips[n].version = cs_db_column_int64(st, 1);
        tips[n].deleted = cs_db_column_int(st, 2) != 0;
        tips[n].created_at = ats[n];
        tips[n].origin_region = regs[n];
        n++;
    }
    cs_db_reset(st);
    if (n < 2)
        return CS_OK;
    k = cs_fork_policy_choose(p->kind, p->regions, tips, n);
    if (k < 0 || strcmp(nodes[k], cs_store_node_id(s)) != 0)
        return CS_OK; /* manual, or another node writes the merge */
    memset(&actor, 0, sizeof(actor));
    snprintf(actor.actor_id, sizeof(actor.actor_id), "policy:%s",
             p->kind == CS_FORK_LWW ? "lww" : "region-priority");
    snprintf(actor.actor_type, sizeof(actor.actor_type), "agent");
    snprintf(actor.agent_class, sizeof(actor.agent_class), "fork-policy");
    cs_log(CS_LOG_NOTICE, "FORK-POLICY", "fork=%s uri=%s policy=%s keep=%s",
           fork_id, uri, p->name, ids[k]);
    return resolve_in_tx(tx, fork_id, ids[k], NULL, NULL,
                         "automatic resolution by fork policy", &actor,
                         uri_out, vid, &bad, eb);
}

/* ---- bookkeeping inside writes ---- */

cs_err
cs_forks_after_apply(cs_tx *tx, const char *uri, const cs_uri_parts *parts,
                     const char *version_id, const char *parent_id,
                     bool has_siblings, const char *author_id,
                     const char *detected_by, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st;
    char now[CS_TIME_LEN];
    char fid[CS_FORK_ID_LEN + 1];
    bool any_open = false;
    cs_err rv;

    cs_time_format(cs_now_us(), now);
    if (has_siblings) {
        cs_fork_id(uri, parent_id, fid);
        /* New fork, or a new branch of a resolved one: (re)open it. */
        st = cs_stmt(db, "INSERT INTO forks(fork_id, uri, parent_id, org,"
                         " domain, status, detected_at, detected_by)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7)"
                         " ON CONFLICT(fork_id) DO UPDATE SET status = 'open',"
                         " resolved_by = NULL, resolution_version_id = NULL,"
                         " resolved_at = NULL WHERE forks.status = 'resolved'");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, fid, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, uri, -1, CS_DB_STATIC);
        if (parent_id != NULL)
            cs_db_bind_text(st, 3, parent_id, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 4, parts->org, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 5, parts->domain, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 6, now, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 7, detected_by, -1, CS_DB_STATIC);
        if ((rv = step(db, st, eb)) != CS_OK)
            return rv;
        if (cs_db_changes(db) > 0)
            cs_log(CS_LOG_NOTICE, "FORK-OPEN",
                   "fork=%s uri=%s parent=%s branch=%s detected_by=%s", fid,
                   uri, parent_id ? parent_id : "(none)", version_id,
                   detected_by);
        {
            const policy *p = policy_for(uri);
            if (p != NULL &&
                (rv = apply_policy(tx, p, fid, uri, parent_id, eb)) != CS_OK)
                return rv;
        }
    }
    st = cs_stmt(db, "SELECT 1 FROM forks WHERE uri = ?1 LIMIT 1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    any_open = cs_db_step(st) == CS_DB_ROW;
    cs_db_reset(st);
    if (!any_open)
        return CS_OK;
    /* A fork is resolved by the versions whose ancestry covers every one of
     * its branches. The record must not depend on arrival order (two
     * concurrent merges reach nodes in different orders), so the
     * resolution is the least covering version by (version, created_at,
     * version_id): this version becomes it when the fork is open, or when
     * it ranks below the current resolution. resolved_at is the
     * resolution's own created_at, so every node holds the same record. */
    st = cs_stmt_pg(
        db,
        "WITH RECURSIVE anc(vid) AS (SELECT ?1"
        " UNION SELECT v.parent_id FROM artifact_versions v JOIN anc"
        "  ON v.version_id = anc.vid WHERE v.parent_id IS NOT NULL"
        " UNION SELECT j.value FROM artifact_versions v JOIN anc"
        "  ON v.version_id = anc.vid, json_each(v.merged_from) j"
        "  WHERE v.merged_from IS NOT NULL),"
        " me(version, created_at) AS (SELECT version, created_at FROM"
        "  artifact_versions WHERE version_id = ?1)"
        " UPDATE forks SET status = 'resolved', resolved_by = ?3,"
        " resolution_version_id = ?1,"
        " resolved_at = (SELECT created_at FROM me)"
        " WHERE uri = ?2 AND (status = 'open' OR EXISTS ("
        "  SELECT 1 FROM artifact_versions r, me WHERE"
        "  r.version_id = forks.resolution_version_id AND"
        "  (me.version < r.version OR (me.version = r.version AND"
        "   (me.created_at < r.created_at OR (me.created_at = r.created_at"
        "    AND ?1 < r.version_id))))))"
        " AND NOT EXISTS ("
        "  SELECT 1 FROM artifact_versions b WHERE b.uri = forks.uri AND"
        "  b.parent_id IS forks.parent_id AND"
        "  b.version_id NOT IN (SELECT vid FROM anc))",
        /* PostgreSQL: one recursive reference (LATERAL over the parent
         * and the merged_from ids), jsonb for json_each */
        "WITH RECURSIVE anc(vid) AS (SELECT $1::text"
        " UNION SELECT p.vid FROM artifact_versions v JOIN anc"
        "  ON v.version_id = anc.vid CROSS JOIN LATERAL ("
        "  SELECT v.parent_id AS vid WHERE v.parent_id IS NOT NULL"
        "  UNION ALL SELECT jsonb_array_elements_text(v.merged_from::jsonb)"
        "  WHERE v.merged_from IS NOT NULL) p),"
        " me(version, created_at) AS (SELECT version, created_at FROM"
        "  artifact_versions WHERE version_id = $1)"
        " UPDATE forks SET status = 'resolved', resolved_by = $3,"
        " resolution_version_id = $1,"
        " resolved_at = (SELECT created_at FROM me)"
        " WHERE uri = $2 AND (status = 'open' OR EXISTS ("
        "  SELECT 1 FROM artifact_versions r, me WHERE"
        "  r.version_id = forks.resolution_version_id AND"
        "  (me.version < r.version OR (me.version = r.version AND"
        "   (me.created_at < r.created_at OR (me.created_at = r.created_at"
        "    AND $1 < r.version_id))))))"
        " AND NOT EXISTS ("
        "  SELECT 1 FROM artifact_versions b WHERE b.uri = forks.uri AND"
        "  b.parent_id IS NOT DISTINCT FROM forks.parent_id AND"
        "  b.version_id NOT IN (SELECT vid FROM anc))");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, version_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, author_id, -1, CS_DB_STATIC);
    if ((rv = step(db, st, eb)) != CS_OK)
        return rv;
    if (cs_db_changes(db) > 0)
        cs_log(CS_LOG_NOTICE, "FORK-RESOLVED", "uri=%s resolution=%s by=%s",
               uri, version_id, author_id);
    return CS_OK;
}

/* ---- records ---- */

static void
set_str(json_t *o, const char *k, cs_dbst *st, int i)
{
    const unsigned char *t = cs_db_column_text(st, i);
    json_object_set_new(o, k, t ? json_string((const char *)t) : json_null());
}

/* Is anc an ancestor-or-self of vid? */
static bool
is_ancestor(cs_db *db, const char *anc, const char *vid)
{
    cs_dbst *st = cs_stmt_pg(
        db, "WITH RECURSIVE a(vid) AS (SELECT ?1"
            " UNION SELECT v.parent_id FROM artifact_versions v JOIN a"
            "  ON v.version_id = a.vid WHERE v.parent_id IS NOT NULL"
            " UNION SELECT j.value FROM artifact_versions v JOIN a"
            "  ON v.version_id = a.vid, json_each(v.merged_from) j"
            "  WHERE v.merged_from IS NOT NULL)"
            " SELECT 1 FROM a WHERE vid = ?2",
            "WITH RECURSIVE a(vid) AS (SELECT $1::text"
            " UNION SELECT p.vid FROM artifact_versions v JOIN a"
            "  ON v.version_id = a.vid CROSS JOIN LATERAL ("
            "  SELECT v.parent_id AS vid WHERE v.parent_id IS NOT NULL"
            "  UNION ALL SELECT jsonb_array_elements_text(v.merged_from::jsonb)"
            "  WHERE v.merged_from IS NOT NULL) p)"
            " SELECT 1 FROM a WHERE vid = $2");
    bool yes;
    if (st == NULL)
        return false;
    cs_db_bind_text(st, 1, vid, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, anc, -1, CS_DB_STATIC);
    yes = cs_db_step(st) == CS_DB_ROW;
    cs_db_reset(st);
    return yes;
}

/* The fork record of fork_id (NULL when unknown). */
static json_t *
fork_record(cs_db *db, const char *fork_id)
{
    cs_dbst *st = cs_stmt(
        db, "SELECT f.fork_id, f.uri, f.parent_id, f.status, f.detected_at,"
            " f.detected_by, f.policy, f.resolved_by,"
            " f.resolution_version_id, f.resolved_at, a.head_version_id"
            " FROM forks f JOIN artifacts a ON a.uri = f.uri"
            " WHERE f.fork_id = ?1");
    json_t *o = NULL, *branches;
    char uri[CS_URI_MAX + 1], parent[CS_VERSION_ID_LEN + 1] = "";
    char head[CS_VERSION_ID_LEN + 1] = "";
    bool has_parent;

    if (st == NULL)
        return NULL;
    cs_db_bind_text(st, 1, fork_id, -1, CS_DB_STATIC);
    if (cs_db_step(st) != CS_DB_ROW) {
        cs_db_reset(st);
        return NULL;
    }
    o = json_object();
    set_str(o, "fork_id", st, 0);
    set_str(o, "uri", st, 1);
    set_str(o, "parent_id", st, 2);
    set_str(o, "status", st, 3);
    set_str(o, "detected_at", st, 4);
    set_str(o, "detected_by", st, 5);
    set_str(o, "policy", st, 6);
    set_str(o, "resolved_by", st, 7);
    set_str(o, "resolution_version_id", st, 8);
    set_str(o, "resolved_at", st, 9);
    snprintf(uri, sizeof(uri), "%s", cs_db_column_text(st, 1));
    has_parent = cs_db_column_type(st, 2) != CS_DB_NULL;
    if (has_parent)
        snprintf(parent, sizeof(parent), "%s", cs_db_column_text(st, 2));
    snprintf(head, sizeof(head), "%s", cs_db_column_text(st, 10));
    cs_db_reset(st);

    branches = json_array();
    st = cs_stmt(db, "SELECT version_id, version, author_id, origin_node,"
                     " origin_region, origin_seq, created_at, summary,"
                     " content_hash, size, deleted, content_type,"
                     " payload_state FROM artifact_versions"
                     " WHERE uri = ?1 AND parent_id IS ?2"
                     " ORDER BY created_at, version_id");
    if (st != NULL) {
        cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
        if (has_parent)
            cs_db_bind_text(st, 2, parent, -1, CS_DB_STATIC);
        while (cs_db_step(st) == CS_DB_ROW) {
            json_t *b = json_object();
            set_str(b, "version_id", st, 0);
            json_object_set_new(b, "version",
                                json_integer(cs_db_column_int64(st, 1)));
            set_str(b, "author_id", st, 2);
            json_object_set_new(
                b, "origin",
                json_pack("{s:s?,s:s?,s:I}", "node_id",
                          (const char *)cs_db_column_text(st, 3), "region",
                          (const char *)cs_db_column_text(st, 4), "seq",
                          (json_int_t)cs_db_column_int64(st, 5)));
            set_str(b, "created_at", st, 6);
            set_str(b, "summary", st, 7);
            set_str(b, "content_hash", st, 8);
            json_object_set_new(b, "size",
                                json_integer(cs_db_column_int64(st, 9)));
            json_object_set_new(b, "deleted",
                                json_boolean(cs_db_column_int(st, 10)));
            set_str(b, "content_type", st, 11);
            set_str(b, "payload_state", st, 12);
            json_array_append_new(branches, b);
        }
        cs_db_reset(st);
    }
    /* Open: the branch the current (provisional) head descends from.
     * Resolved: the branch that was kept, i.e. the one the resolution's
     * parent line descends from (every branch is in the merge's ancestry). */
    {
        char ref[CS_VERSION_ID_LEN + 1];
        const char *res = json_string_value(
            json_object_get(o, "resolution_version_id"));
        size_t i;
        json_t *b;
        snprintf(ref, sizeof(ref), "%s", head);
        if (res != NULL) {
            cs_dbst *ps = cs_stmt(db, "SELECT parent_id FROM"
                                           " artifact_versions WHERE"
                                           " version_id = ?1");
            if (ps != NULL) {
                cs_db_bind_text(ps, 1, res, -1, CS_DB_STATIC);
                if (cs_db_step(ps) == CS_DB_ROW &&
                    cs_db_column_type(ps, 0) != CS_DB_NULL)
                    snprintf(ref, sizeof(ref), "%s",
                             cs_db_column_text(ps, 0));
                cs_db_reset(ps);
            }
        }
        json_array_foreach(branches, i, b)
        {
            const char *vid = json_string_value(json_object_get(b, "version_id"));
            json_object_set_new(b, "provisional_head",
                                json_boolean(is_ancestor(db, vid, ref)));
        }
    }
    json_object_set_new(o, "branches", branches);
    json_object_set_new(o, "provisional_head", json_string(head));
    return o;
}

static bool
may_review(cs_req *r, const char *uri)
{
    cs_node *n = cs_req_node(r);
    return cs_authz_check(n->authz, cs_req_db(r), cs_req_actor(r), uri,
                          CS_OP_APPROVE, NULL);
}

/* ---- GET /forks ---- */

static void
h_list(cs_req *r)
{
    cs_db *db = cs_req_db(r);
    const char *status = cs_req_query(r, "status");
    const char *pattern = cs_req_query(r, "pattern");
    const char *cursor = cs_req_query(r, "cursor");
    cs_errbuf eb = {{0}};
    int64_t limit, after = 0, last = 0, n_open = 0, n_resolved = 0;
    json_t *arr;
    cs_dbst *st;
    bool more = false;

    if (status == NULL || *status == '\0')
        status = "open";
    if (strcmp(status, "open") != 0 && strcmp(status, "resolved") != 0 &&
        strcmp(status, "all") != 0) {
        cs_res_error(r, 400, "bad_request",
                     "status must be open, resolved or all");
        return;
    }
    if (pattern != NULL && *pattern != '\0' &&
        cs_pattern_validate(pattern, &eb) != CS_OK) {
        cs_res_error(r, 400, "bad_request", "invalid pattern: %s", eb.msg);
        return;
    }
    if (!cs_req_query_int(r, "limit", FORKS_PAGE_DEFAULT, 1, FORKS_PAGE_MAX,
                          &limit))
        return;
    if (cursor != NULL && *cursor != '\0') {
        char *end = NULL;
        after = strtoll(cursor, &end, 10);
        if (end == cursor || *end != '\0' || after < 0) {
            cs_res_error(r, 400, "bad_request", "malformed cursor");
            return;
        }
    }
    st = cs_stmt(db, "SELECT id, fork_id, uri, status FROM forks"
                     " ORDER BY id");
    if (st == NULL) {
        cs_res_error(r, 500, "internal", "database error");
        return;
    }
    arr = json_array();
    /* One pass: counts over what the caller may see, and the page. Fork
     * queues are small (each entry waits for a human). */
    while (cs_db_step(st) == CS_DB_ROW) {
        int64_t id = cs_db_column_int64(st, 0);
        const char *fid = (const char *)cs_db_column_text(st, 1);
        const char *uri = (const char *)cs_db_column_text(st, 2);
        const char *fst = (const char *)cs_db_column_text(st, 3);
        if (pattern != NULL && *pattern != '\0' &&
            !cs_pattern_match(pattern, uri))
            continue;
        if (!may_review(r, uri))
            continue;
        if (strcmp(fst, "open") == 0)
            n_open++;
        else
            n_resolved++;
        if (id <= after || (strcmp(status, "all") != 0 &&
                            strcmp(status, fst) != 0))
            continue;
        if ((int64_t)json_array_size(arr) >= limit) {
            more = true;
            continue;
        }
        {
            char fork_id[CS_FORK_ID_LEN + 1];
            json_t *rec;
            snprintf(fork_id, sizeof(fork_id), "%s", fid);
            /* fork_record uses other statements; this one stays valid */
            rec = fork_record(db, fork_id);
            if (rec != NULL)
                json_array_append_new(arr, rec);
            last = id;
        }
    }
    cs_db_reset(st);
    {
        char next[32];
        snprintf(next, sizeof(next), "%lld", (long long)last);
        cs_res_json(r, 200,
                    json_pack("{s:o,s:o,s:{s:I,s:I}}", "forks", arr,
                              "next_cursor",
                              more ? json_string(next) : json_null(), "counts",
                              "open", (json_int_t)n_open, "resolved",
                              (json_int_t)n_resolved));
    }
}

/* ---- GET /forks/{id} ---- */

/* Stored bytes of a version (NULL when not stored here). */
static char *
version_bytes(cs_req *r, const char *uri, const char *vid, size_t *len)
{
    cs_version_ref ref;
    char *out = NULL;
    if (cs_version_find(cs_req_db(r), uri, -1, vid, &ref, NULL) != CS_OK)
        return NULL;
    if (cs_version_content(cs_req_node(r)->store, cs_req_db(r), &ref, &out,
                           len, NULL) != CS_OK)
        return NULL;
    return out;
}

static json_t *
diff_json(const char *a, size_t alen, const char *b, size_t blen)
{
    cs_diff *d = NULL;
    json_t *ops, *o;
    size_t added = 0, removed = 0, unchanged = 0;
    if (cs_diff_lines(a, alen, b, blen, &d) != CS_OK)
        return json_null();
    ops = json_array();
    for (size_t i = 0; i < cs_diff_count(d); i++) {
        const cs_diff_op *op = cs_diff_get(d, i);
        char opc[2] = {op->op, '\0'};
        json_t *x = json_pack("{s:s,s:s%}", "op", opc, "line", op->line,
                              op->len);
        if (x == NULL) /* invalid UTF-8 line: show it escaped */
            x = json_pack("{s:s,s:s}", "op", opc, "line", "(binary line)");
        if (op->no_newline)
            json_object_set_new(x, "no_newline", json_true());
        json_array_append_new(ops, x);
    }
    cs_diff_stats(d, &added, &removed, &unchanged);
    cs_diff_free(d);
    o = json_pack("{s:o,s:{s:I,s:I,s:I}}", "ops", ops, "stats", "added",
                  (json_int_t)added, "removed", (json_int_t)removed,
                  "unchanged", (json_int_t)unchanged);
    return o;
}

static void
h_get(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    cs_db *db = cs_req_db(r);
    json_t *rec = fork_record(db, cs_req_param(r, 0));
    json_t *branches, *b, *diffs;
    const char *uri, *base_vid = NULL;
    char *base = NULL;
    size_t base_len = 0, i;
    json_t *base_json = NULL;

    if (rec == NULL) {
        cs_res_error(r, 404, "not_found", "no fork '%s'", cs_req_param(r, 0));
        return;
    }
    uri = json_string_value(json_object_get(rec, "uri"));
    if (!may_review(r, uri)) {
        cs_res_error(r, 403, "forbidden",
                     "reviewing forks needs approve or admin on %s", uri);
        json_decref(rec); /* uri borrows from rec */
        return;
    }
    branches = json_object_get(rec, "branches");
    /* contents (as GET /artifacts returns them) */
    json_array_foreach(branches, i, b)
    {
        const char *vid = json_string_value(json_object_get(b, "version_id"));
        json_t *art = NULL;
        if (cs_artifact_read(n->store, db, uri, -1, vid, true, &art, NULL) ==
            CS_OK) {
            json_object_set(b, "content", json_object_get(art, "content"));
            json_decref(art);
        } else {
            json_object_set_new(b, "content", json_null());
        }
        if (base_vid == NULL &&
            json_is_true(json_object_get(b, "provisional_head")))
            base_vid = vid;
    }
    if (base_vid == NULL && json_array_size(branches) > 0)
        base_vid = json_string_value(
            json_object_get(json_array_get(branches, 0), "version_id"));
    diffs = json_array();
    if (base_vid != NULL)
        base = version_bytes(r, uri, base_vid, &base_len);
    if (base != NULL)
        cs_json_parse(base, base_len, &base_json, NULL);
    json_array_foreach(branches, i, b)
    {
        const char *vid = json_string_value(json_object_get(b, "version_id"));
        char *other;
        size_t olen = 0;
        json_t *d, *other_json = NULL, *patch = NULL;
        const char *ct_b;
        if (base_vid == NULL || strcmp(vid, base_vid) == 0)
            continue;
        other = version_bytes(r, uri, vid, &olen);
        d = json_pack("{s:s,s:s}", "from", base_vid, "to", vid);
        if (base != NULL && other != NULL) {
            json_object_set_new(d, "lines", diff_json(base, base_len, other, olen));
            ct_b = json_string_value(json_object_get(b, "content_type"));
            if (base_json != NULL && ct_b != NULL &&
                cs_content_type_is_json(ct_b) &&
                cs_json_parse(other, olen, &other_json, NULL) == CS_OK &&
                cs_jsonpatch_diff(base_json, other_json, &patch) == CS_OK)
                json_object_set_new(d, "json_patch", patch);
            else
                json_object_set_new(d, "json_patch", json_null());
        } else {
            json_object_set_new(d, "lines", json_null());
            json_object_set_new(d, "json_patch", json_null());
        }
        json_decref(other_json);
        free(other);
        json_array_append_new(diffs, d);
    }
    json_decref(base_json);
    free(base);
    json_object_set_new(rec, "diffs", diffs);
    cs_res_json(r, 200, rec);
}

/* ---- POST /forks/{id}/resolve ---- */

typedef struct resolve_ctx {
    const char *fork_id;
    const char *keep;           /* or NULL */
    const cs_content *content;  /* or NULL */
    const char *content_type;   /* with content */
    const char *summary;
    const cs_actor *actor;
    char version_id[CS_VERSION_ID_LEN + 1];
    bool bad_keep;
    char uri[CS_URI_MAX + 1];
} resolve_ctx;

static cs_err
resolve_fn(cs_tx *tx, void *arg, cs_errbuf *eb)
{
    resolve_ctx *c = arg;
    return resolve_in_tx(tx, c->fork_id, c->keep, c->content, c->content_type,
                         c->summary, c->actor, c->uri, c->version_id,
                         &c->bad_keep, eb);
}

/* Writes the merge version that resolves fork_id (inside a write): parent
 * = keep (or the provisional head with content), merged_from = every other
 * tip. uri_out (CS_URI_MAX + 1) and version_id_out are filled. */
static cs_err
resolve_in_tx(cs_tx *tx, const char *fork_id, const char *keep,
              const cs_content *content, const char *content_type,
              const char *summary, const cs_actor *actor, char *uri_out,
              char *version_id_out, bool *bad_keep, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_store *s = cs_tx_store(tx);
    cs_dbst *st;
    json_t *merged = json_array();
    char head[CS_VERSION_ID_LEN + 1] = "", parent[CS_VERSION_ID_LEN + 1] = "";
    char hash[CS_CONTENT_HASH_LEN + 1] = "", ctype[CS_CONTENT_TYPE_MAX + 1] = "";
    char created_at[CS_TIME_LEN];
    int64_t pver = 0, size = 0;
    bool deleted = false, found_parent = false;
    cs_version_record rec;
    bool forked = false;
    cs_err rv = CS_OK;

    st = cs_stmt(db, "SELECT f.uri, f.status, a.head_version_id FROM forks f"
                     " JOIN artifacts a ON a.uri = f.uri WHERE f.fork_id = ?1");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, fork_id, -1, CS_DB_STATIC);
    if (cs_db_step(st) != CS_DB_ROW) {
        cs_db_reset(st);
        rv = cs_errf(eb, CS_ENOTFOUND, "no fork '%s'", fork_id);
        goto out;
    }
    snprintf(uri_out, CS_URI_MAX + 1, "%s", cs_db_column_text(st, 0));
    if (strcmp((const char *)cs_db_column_text(st, 1), "open") != 0) {
        cs_db_reset(st);
        rv = cs_errf(eb, CS_ECONFLICT, "fork %s is already resolved",
                     fork_id);
        goto out;
    }
    snprintf(head, sizeof(head), "%s", cs_db_column_text(st, 2));
    cs_db_reset(st);
    snprintf(parent, sizeof(parent), "%s", keep ? keep : head);

    /* Every tip of the artifact: the parent, and merged_from = the rest. */
    st = cs_stmt(db, "SELECT v.version_id, v.version, v.content_hash, v.size,"
                     " v.content_type, v.deleted FROM artifact_versions v"
                     " WHERE v.uri = ?1 AND v.has_child = 0"
                     " ORDER BY v.version_id");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, uri_out, -1, CS_DB_STATIC);
    while (cs_db_step(st) == CS_DB_ROW) {
        const char *vid = (const char *)cs_db_column_text(st, 0);
        if (strcmp(vid, parent) == 0) {
            found_parent = true;
            pver = cs_db_column_int64(st, 1);
            if (cs_db_column_type(st, 2) != CS_DB_NULL)
                snprintf(hash, sizeof(hash), "%s", cs_db_column_text(st, 2));
            size = cs_db_column_int64(st, 3);
            if (cs_db_column_type(st, 4) != CS_DB_NULL)
                snprintf(ctype, sizeof(ctype), "%s",
                         cs_db_column_text(st, 4));
            deleted = cs_db_column_int(st, 5) != 0;
        } else {
            json_array_append_new(merged, json_string(vid));
        }
    }
    cs_db_reset(st);
    if (!found_parent) {
        *bad_keep = true;
        rv = cs_errf(eb, CS_EINVAL,
                     "keep must be a tip of %s (a branch that has not been "
                     "extended); %s is not",
                     uri_out, parent);
        goto out;
    }
    if (json_array_size(merged) == 0) {
        rv = cs_errf(eb, CS_ECONFLICT, "%s has a single tip: nothing to merge",
                     uri_out);
        goto out;
    }
    memset(&rec, 0, sizeof(rec));
    if (content != NULL) {
        deleted = false;
        snprintf(hash, sizeof(hash), "%s", content->hash);
        size = (int64_t)content->len;
        snprintf(ctype, sizeof(ctype), "%s", content_type);
        rec.payload = content->bytes;
        rec.payload_len = content->len;
    }
    cs_time_format(cs_now_us(), created_at);
    rec.uri = uri_out;
    rec.version = pver + 1;
    rec.parent_id = parent;
    rec.merged_from = merged;
    rec.deleted = deleted;
    rec.content_hash = deleted ? NULL : hash;
    rec.size = deleted ? 0 : size;
    rec.content_type = deleted ? NULL : ctype;
    rec.author_id = actor->actor_id;
    rec.actor_type = actor->actor_type;
    rec.agent_class = actor->agent_class[0] ? actor->agent_class : NULL;
    rec.summary = summary ? summary : "fork resolved";
    rec.created_at = created_at;
    rec.origin_node = cs_store_node_id(s);
    rec.origin_region = cs_store_region(s);
    rec.origin_seq = 0;
    rec.prov_actor_id = actor->actor_id;
    rec.local = true;
    if ((rv = cs_version_id(rec.uri, rec.version, rec.parent_id, merged,
                            rec.content_hash, rec.author_id, created_at,
                            rec.origin_node, version_id_out)) != CS_OK)
        goto out;
    rec.version_id = version_id_out;
    rv = cs_version_apply_tx(tx, &rec, &forked, eb);
out:
    json_decref(merged);
    return rv;
}

static void
h_resolve(cs_req *r)
{
    cs_node *n = cs_req_node(r);
    json_t *body = cs_req_body(r), *content, *rec, *version = NULL;
    const char *keep = NULL, *summary = NULL, *ctype = NULL;
    cs_content cc;
    resolve_ctx c;
    cs_errbuf eb = {{0}};
    json_t *pre;
    cs_err rv;

    memset(&cc, 0, sizeof(cc));
    memset(&c, 0, sizeof(c));
    pre = fork_record(cs_req_db(r), cs_req_param(r, 0));
    if (pre == NULL) {
        cs_res_error(r, 404, "not_found", "no fork '%s'", cs_req_param(r, 0));
        return;
    }
    if (!may_review(r, json_string_value(json_object_get(pre, "uri")))) {
        cs_res_error(r, 403, "forbidden",
                     "resolving forks needs approve or admin on %s",
                     json_string_value(json_object_get(pre, "uri")));
        json_decref(pre);
        return;
    }
    json_decref(pre);
    if (!json_is_object(body)) {
        cs_res_error(r, 400, "bad_request", "body must be a JSON object");
        return;
    }
    content = json_object_get(body, "content");
    if (!cs_req_body_str(r, body, "keep", false, CS_VERSION_ID_LEN, &keep) ||
        !cs_req_body_str(r, body, "summary", false, CS_SUMMARY_MAX, &summary) ||
        !cs_req_body_str(r, body, "content_type", false, CS_CONTENT_TYPE_MAX,
                         &ctype))
        return;
    if ((keep == NULL) == (content == NULL || json_is_null(content))) {
        cs_res_error(r, 400, "bad_request",
                     "give exactly one of 'keep' (a branch version_id) or "
                     "'content' (the merged content)");
        return;
    }
    if (content != NULL && !json_is_null(content)) {
        if (ctype != NULL && cs_content_type_check(ctype, &eb) != CS_OK) {
            cs_res_error(r, 400, "bad_request", "%s", eb.msg);
            return;
        }
        if (cs_content_encode(content, ctype, &cc, &eb) != CS_OK) {
            cs_res_error(r, 400, "bad_request", "%s", eb.msg);
            return;
        }
        c.content = &cc;
        c.content_type = ctype ? ctype
                               : (cc.json ? CS_CT_JSON_DEFAULT
                                          : CS_CT_TEXT_DEFAULT);
    }
    c.fork_id = cs_req_param(r, 0);
    c.keep = keep;
    c.summary = summary;
    c.actor = cs_req_actor(r);
    rv = cs_store_write(n->store, resolve_fn, &c, &eb);
    cs_content_free(&cc);
    if (rv != CS_OK) {
        if (c.bad_keep)
            cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        else
            cs_res_store_error(r, rv, &eb);
        return;
    }
    rec = fork_record(cs_req_db(r), cs_req_param(r, 0));
    cs_artifact_read(n->store, cs_req_db(r), c.uri, -1, c.version_id, true,
                     &version, NULL);
    cs_res_json(r, 200,
                json_pack("{s:o?,s:o?}", "fork", rec, "version", version));
}

void
cs_forks_metrics(cs_db *db, char **buf, size_t *len, size_t *cap)
{
    cs_dbst *st;
    cs_buf_appendf(buf, len, cap,
                   "# HELP ctxsync_forks_open Open forks waiting for review.\n"
                   "# TYPE ctxsync_forks_open gauge\n");
    st = cs_stmt(db, "SELECT org, domain, COUNT(*) FROM forks WHERE"
                     " status = 'open' GROUP BY org, domain");
    if (st != NULL) {
        while (cs_db_step(st) == CS_DB_ROW)
            cs_buf_appendf(buf, len, cap,
                           "ctxsync_forks_open{org=\"%s\",domain=\"%s\"} %lld\n",
                           cs_db_column_text(st, 0),
                           cs_db_column_text(st, 1),
                           (long long)cs_db_column_int64(st, 2));
        cs_db_reset(st);
    }
    cs_buf_appendf(buf, len, cap,
                   "# HELP ctxsync_forks_open_by_region Open forks with a "
                   "branch written in the region.\n"
                   "# TYPE ctxsync_forks_open_by_region gauge\n");
    st = cs_stmt(db, "SELECT v.origin_region, COUNT(DISTINCT f.fork_id) FROM"
                     " forks f JOIN artifact_versions v ON v.uri = f.uri AND"
                     " v.parent_id IS f.parent_id WHERE f.status = 'open'"
                     " GROUP BY v.origin_region");
    if (st != NULL) {
        while (cs_db_step(st) == CS_DB_ROW)
            cs_buf_appendf(buf, len, cap,
                           "ctxsync_forks_open_by_region{region=\"%s\"} %lld\n",
                           cs_db_column_text(st, 0),
                           (long long)cs_db_column_int64(st, 1));
        cs_db_reset(st);
    }
    st = cs_stmt(db, "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'resolved' THEN 1 ELSE 0 END), 0)"
                     " FROM forks");
    if (st != NULL) {
        if (cs_db_step(st) == CS_DB_ROW)
            cs_buf_appendf(buf, len, cap,
                           "# TYPE ctxsync_forks_detected_total counter\n"
                           "ctxsync_forks_detected_total %lld\n"
                           "# TYPE ctxsync_forks_resolved_total counter\n"
                           "ctxsync_forks_resolved_total %lld\n",
                           (long long)cs_db_column_int64(st, 0),
                           (long long)cs_db_column_int64(st, 1));
        cs_db_reset(st);
    }
}

const cs_route cs_routes_forks[] = {
    {"GET", "/forks", h_list, 0},
    {"GET", "/forks/{}", h_get, 0},
    {"POST", "/forks/{}/resolve", h_resolve, CS_ROUTE_BODY},
    {NULL, NULL, NULL, 0},
};
