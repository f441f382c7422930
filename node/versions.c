/* SPDX-License-Identifier: MIT
 * versions.c: the one write path for artifact versions and the readers that
 * turn version rows into the artifact JSON of spec §3.
 *
 * cs_version_write_tx() runs on the writer thread inside the caller's
 * savepoint. It decides from the artifacts head row whether the write is
 * allowed, then writes, in order: the blob, the artifact_versions row (with
 * its version_id, federation.md §1), the artifacts head row, the change
 * event (and registers it for SSE), the search index row and the "write"
 * provenance row. Any failure returns an error so that the savepoint rolls
 * everything back. Version numbers count depth (parent's + 1); "version N"
 * of an artifact means the version numbered N on the head path, the
 * parent_id chain from the current head. Details and the exact canonical
 * record behind version_id: docs/internals/versions.md. */
#include "versions.h"

#include "fork.h"
#include "forks.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cs_json.h"
#include "cs_log.h"
#include "cs_uri.h"
#include "node.h"

#define TOMBSTONE_MARKER "tombstone"

/* ------------------------------------------------------------------ */
/* small helpers */

/* Sets o[k] = v (stolen); records a failure (NULL v or OOM) in *bad. */
static void
put(json_t *o, const char *k, json_t *v, bool *bad)
{
    if (v == NULL || json_object_set_new(o, k, v) != 0)
        *bad = true;
}

static json_t *
str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* Column i as a JSON string, or null when NULL or not valid UTF-8. */
static json_t *
col_json_str(cs_dbst *st, int i)
{
    const char *t;
    int n;

    if (cs_db_column_type(st, i) == CS_DB_NULL)
        return json_null();
    t = (const char *)cs_db_column_text(st, i);
    n = cs_db_column_bytes(st, i);
    if (t == NULL || !cs_utf8_valid(t, (size_t)n))
        return json_null();
    return json_stringn(t, (size_t)n);
}

/* Copies column i into buf (truncating; "" for NULL). */
static void
col_copy(cs_dbst *st, int i, char *buf, size_t cap)
{
    const char *t = (const char *)cs_db_column_text(st, i);
    size_t n;

    if (t == NULL) {
        buf[0] = '\0';
        return;
    }
    n = (size_t)cs_db_column_bytes(st, i);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, t, n);
    buf[n] = '\0';
}

/* Column i (a JSON array text or NULL) as an array; [] when NULL/invalid. */
static json_t *
col_json_array(cs_dbst *st, int i)
{
    const char *t = (const char *)cs_db_column_text(st, i);
    json_t *v = NULL;

    if (t != NULL &&
        cs_json_parse(t, (size_t)cs_db_column_bytes(st, i), &v, NULL) ==
            CS_OK &&
        json_is_array(v))
        return v;
    json_decref(v);
    return json_array();
}

static void
bind_text_or_null(cs_dbst *st, int i, const char *s)
{
    if (s != NULL)
        cs_db_bind_text(st, i, s, -1, CS_DB_STATIC);
    else
        cs_db_bind_null(st, i);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A new array holding the strings of `in` (NULL = []) sorted bytewise and
 * without duplicates. NULL on OOM or when a member is not a string. */
static json_t *
sorted_ids(const json_t *in)
{
    size_t n = in != NULL ? json_array_size(in) : 0;
    const char **v = NULL;
    json_t *out = json_array();
    size_t i;

    if (out == NULL)
        return NULL;
    if (n == 0)
        return out;
    v = calloc(n, sizeof(*v));
    if (v == NULL)
        goto fail;
    for (i = 0; i < n; i++) {
        v[i] = json_string_value(json_array_get(in, i));
        if (v[i] == NULL)
            goto fail;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue;
        if (json_array_append_new(out, json_string(v[i])) != 0)
            goto fail;
    }
    free(v);
    return out;
fail:
    free(v);
    json_decref(out);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* content rules */

bool
cs_content_type_is_json(const char *ct)
{
    size_t n = 0;

    if (ct == NULL)
        return false;
    while (ct[n] != '\0' && ct[n] != ';')
        n++;
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 &&
           memchr(ct, '/', n) != NULL;
}

cs_err
cs_content_type_check(const char *ct, cs_errbuf *eb)
{
    size_t n = strlen(ct), i;
    bool slash = false;

    if (n == 0 || n > CS_CONTENT_TYPE_MAX)
        return cs_errf(eb, CS_EINVAL,
                       "field 'content_type' must be 1..%d bytes",
                       CS_CONTENT_TYPE_MAX);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)ct[i];
        if (c < 0x20 || c > 0x7e)
            return cs_errf(eb, CS_EINVAL,
                           "field 'content_type' must be printable ASCII");
        if (c == '/')
            slash = true;
        if (c == ';')
            break;
    }
    if (!slash || ct[0] == '/')
        return cs_errf(eb, CS_EINVAL,
                       "field 'content_type' must be a media type "
                       "(type/subtype)");
    return CS_OK;
}

cs_err
cs_content_encode(const json_t *content, const char *content_type,
                  cs_content *out, cs_errbuf *eb)
{
    bool as_json;
    char *bytes = NULL;
    size_t len = 0;

    if (content == NULL || json_is_null(content))
        return cs_errf(eb, CS_EINVAL, "field 'content' is required");
    if (content_type != NULL)
        as_json = cs_content_type_is_json(content_type);
    else
        as_json = !json_is_string(content);
    if (!as_json && !json_is_string(content))
        return cs_errf(eb, CS_EINVAL,
                       "field 'content' must be a string when content_type "
                       "'%s' is not JSON", content_type);
    if (as_json) {
        bytes = cs_json_canonical(content, &len);
        if (bytes == NULL)
            return CS_ENOMEM;
    } else {
        len = json_string_length(content);
        bytes = malloc(len + 1);
        if (bytes == NULL)
            return CS_ENOMEM;
        memcpy(bytes, json_string_value(content), len);
        bytes[len] = '\0';
        if (memchr(bytes, '\0', len) != NULL) {
            free(bytes);
            return cs_errf(eb, CS_EINVAL,
                           "field 'content' must not contain NUL characters");
        }
    }
    out->bytes = bytes;
    out->len = len;
    out->json = as_json;
    cs_content_hash(bytes, len, out->hash);
    return CS_OK;
}

void
cs_content_free(cs_content *c)
{
    if (c == NULL)
        return;
    free(c->bytes);
    c->bytes = NULL;
    c->len = 0;
}

/* ------------------------------------------------------------------ */
/* version identity */

cs_err
cs_version_id(const char *uri, int64_t version, const char *parent_id,
              const json_t *merged_from, const char *content_hash,
              const char *author_id, const char *created_at,
              const char *origin_node, char *out)
{
    json_t *rec = json_object();
    json_t *mf = sorted_ids(merged_from);
    char *text = NULL;
    size_t len = 0;
    bool bad = rec == NULL || mf == NULL;
    cs_err rv = CS_OK;

    if (bad) {
        json_decref(mf);
        rv = CS_ENOMEM;
        goto out;
    }
    put(rec, "uri", json_string(uri), &bad);
    put(rec, "version", json_integer((json_int_t)version), &bad);
    put(rec, "parent_id", str_or_null(parent_id), &bad);
    put(rec, "merged_from", mf, &bad);
    put(rec, "content_hash",
        json_string(content_hash != NULL ? content_hash : TOMBSTONE_MARKER),
        &bad);
    put(rec, "author_id", json_string(author_id), &bad);
    put(rec, "created_at", json_string(created_at), &bad);
    put(rec, "origin_node", json_string(origin_node), &bad);
    if (bad || (text = cs_json_canonical(rec, &len)) == NULL) {
        rv = CS_ENOMEM;
        goto out;
    }
    out[0] = 'v';
    out[1] = ':';
    cs_sha256_hex(text, len, out + 2); /* NUL-terminates */
out:
    free(text);
    json_decref(rec);
    return rv;
}

/* ------------------------------------------------------------------ */
/* reads */

/* The artifact JSON of version_id of uri. When mem_content is not NULL it
 * is the version's stored bytes (the writer passes what it just stored);
 * otherwise they are read from the blob store when with_content. */
static cs_err
version_json(cs_store *s, cs_db *db, const char *uri,
             const char *version_id, const char *mem_content, size_t mem_len,
             bool with_content, json_t **out, cs_errbuf *eb)
{
    cs_dbst *st;
    json_t *o = NULL, *origin = NULL, *content = NULL;
    char hash[CS_CONTENT_HASH_LEN + 1];
    char ctype[CS_CONTENT_TYPE_MAX + 1];
    char pstate[16];
    bool deleted, bad = false, have_fork;
    char *blob = NULL;
    size_t blen = 0;
    cs_err rv = CS_OK;
    int rc;

    st = cs_stmt(db,
                 "SELECT a.org, a.domain, a.name, a.created_at, a.deleted_at,"
                 " a.fork_id, a.content_type, v.version, v.version_id,"
                 " v.parent_id, v.merged_from, v.content_hash, v.size,"
                 " v.content_type, v.deleted, v.author_id, v.approved_by,"
                 " v.summary, v.created_at, v.origin_node, v.origin_region,"
                 " v.origin_seq, v.payload_state"
                 " FROM artifact_versions v JOIN artifacts a ON a.uri = v.uri"
                 " WHERE v.uri = ?1 AND v.version_id = ?2");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, version_id, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc != CS_DB_ROW) {
        rv = rc == CS_DB_DONE
                 ? cs_errf(eb, CS_ENOTFOUND, "version %s of %s not found",
                           version_id, uri)
                 : cs_db_err(db, rc, eb);
        cs_db_reset(st);
        return rv;
    }
    deleted = cs_db_column_int(st, 14) != 0;
    col_copy(st, 11, hash, sizeof(hash));
    if (cs_db_column_type(st, 13) != CS_DB_NULL)
        col_copy(st, 13, ctype, sizeof(ctype));
    else
        col_copy(st, 6, ctype, sizeof(ctype));
    col_copy(st, 22, pstate, sizeof(pstate));
    have_fork = cs_db_column_type(st, 5) != CS_DB_NULL;

    o = json_object();
    origin = json_object();
    if (o == NULL || origin == NULL) {
        json_decref(origin);
        cs_db_reset(st);
        rv = CS_ENOMEM;
        goto out;
    }
    put(o, "uri", json_string(uri), &bad);
    put(o, "org", col_json_str(st, 0), &bad);
    put(o, "domain", col_json_str(st, 1), &bad);
    put(o, "name", col_json_str(st, 2), &bad);
    put(o, "content_type",
        deleted && cs_db_column_type(st, 13) == CS_DB_NULL
            ? json_null()
            : json_string(ctype),
        &bad);
    put(o, "version", json_integer(cs_db_column_int64(st, 7)), &bad);
    put(o, "content", json_null(), &bad); /* filled below, keeps the order */
    put(o, "content_hash", col_json_str(st, 11), &bad);
    put(o, "size", json_integer(cs_db_column_int64(st, 12)), &bad);
    put(o, "author_id", col_json_str(st, 15), &bad);
    put(o, "summary", col_json_str(st, 17), &bad);
    put(o, "created_at", col_json_str(st, 3), &bad);
    put(o, "updated_at", col_json_str(st, 18), &bad);
    put(o, "deleted_at", col_json_str(st, 4), &bad);
    put(o, "version_id", col_json_str(st, 8), &bad);
    put(o, "parent_id", col_json_str(st, 9), &bad);
    put(o, "merged_from", col_json_array(st, 10), &bad);
    put(o, "approved_by", col_json_str(st, 16), &bad);
    put(origin, "node_id", col_json_str(st, 19), &bad);
    put(origin, "region", col_json_str(st, 20), &bad);
    put(origin, "seq", json_integer(cs_db_column_int64(st, 21)), &bad);
    put(o, "origin", origin, &bad);
    put(o, "payload_state", json_string(pstate), &bad);
    put(o, "forked", json_boolean(have_fork), &bad);
    put(o, "fork_id", col_json_str(st, 5), &bad);
    put(o, "deleted", json_boolean(deleted), &bad);
    cs_db_reset(st);
    if (bad) {
        rv = CS_ENOMEM;
        goto out;
    }

    if (!with_content || deleted || hash[0] == '\0')
        goto out;
    if (mem_content != NULL) {
        blob = malloc(mem_len + 1);
        if (blob == NULL) {
            rv = CS_ENOMEM;
            goto out;
        }
        memcpy(blob, mem_content, mem_len);
        blob[mem_len] = '\0';
        blen = mem_len;
    } else if (strcmp(pstate, "inline") == 0) {
        rv = cs_blob_get(s, db, hash, &blob, &blen, eb);
        if (rv != CS_OK)
            goto out;
    } else {
        goto out; /* payload not stored here: content stays null */
    }
    if (cs_content_type_is_json(ctype)) {
        if (cs_json_parse(blob, blen, &content, NULL) != CS_OK) {
            cs_log(CS_LOG_WARN, "VERSION-BADJSON",
                   "stored content of %s is not JSON; returned as text",
                   version_id);
            content = NULL;
        }
    }
    if (content == NULL && cs_utf8_valid(blob, blen))
        content = json_stringn(blob, blen);
    if (content == NULL) {
        rv = cs_errf(eb, CS_EIO, "stored content of %s is not text",
                     version_id);
        goto out;
    }
    if (json_object_set_new(o, "content", content) != 0)
        rv = CS_ENOMEM;
out:
    free(blob);
    if (rv != CS_OK) {
        json_decref(o);
        return rv;
    }
    *out = o;
    return CS_OK;
}

typedef struct head_info {
    char version_id[CS_VERSION_ID_LEN + 1];
    int64_t version;
    bool deleted;
} head_info;

/* The head of uri. CS_ENOTFOUND when the URI is unknown. */
static cs_err
load_head(cs_db *db, const char *uri, head_info *h, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(db,
                               "SELECT head_version_id, head_version,"
                               " deleted_at IS NOT NULL FROM artifacts"
                               " WHERE uri = ?1");
    cs_err rv = CS_OK;
    int rc;

    memset(h, 0, sizeof(*h));
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW) {
        col_copy(st, 0, h->version_id, sizeof(h->version_id));
        h->version = cs_db_column_int64(st, 1);
        h->deleted = cs_db_column_int(st, 2) != 0;
    } else if (rc == CS_DB_DONE) {
        rv = cs_errf(eb, CS_ENOTFOUND, "artifact %s not found", uri);
    } else {
        rv = cs_db_err(db, rc, eb);
    }
    cs_db_reset(st);
    return rv;
}

/* version_id of version n on the head path. Fast path: when exactly one
 * version of the URI has number n (n <= head), it is on the head path, since
 * the head path holds one version of every number up to the head's. Else
 * walk parent_id from the head. */
static cs_err
head_path_id(cs_db *db, const char *uri, const head_info *h, int64_t n,
             char out[CS_VERSION_ID_LEN + 1], cs_errbuf *eb)
{
    cs_dbst *st;
    int rc, rows = 0;
    cs_err rv = CS_OK;

    if (n < 1 || n > h->version)
        return cs_errf(eb, CS_ENOTFOUND, "version %lld of %s not found",
                       (long long)n, uri);
    if (n == h->version) {
        memcpy(out, h->version_id, sizeof(h->version_id));
        return CS_OK;
    }
    st = cs_stmt(db, "SELECT version_id FROM artifact_versions"
                     " WHERE uri = ?1 AND version = ?2 LIMIT 2");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 2, n);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        if (rows++ == 0)
            col_copy(st, 0, out, CS_VERSION_ID_LEN + 1);
    }
    cs_db_reset(st);
    if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);
    if (rows == 1)
        return CS_OK;

    st = cs_stmt(db,
                 "WITH RECURSIVE path(vid, ver, pid) AS ("
                 " SELECT version_id, version, parent_id FROM artifact_versions"
                 "  WHERE uri = ?1 AND version_id = ?2"
                 " UNION"
                 " SELECT v.version_id, v.version, v.parent_id"
                 "  FROM artifact_versions v JOIN path p"
                 "  ON v.uri = ?1 AND v.version_id = p.pid"
                 "  WHERE p.ver > ?3)"
                 " SELECT vid FROM path WHERE ver = ?3 LIMIT 1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, h->version_id, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 3, n);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW)
        col_copy(st, 0, out, CS_VERSION_ID_LEN + 1);
    else if (rc == CS_DB_DONE)
        rv = cs_errf(eb, CS_ENOTFOUND, "version %lld of %s not found",
                     (long long)n, uri);
    else
        rv = cs_db_err(db, rc, eb);
    cs_db_reset(st);
    return rv;
}

/* Resolves (version, version_id) to a version_id of uri (see header). */
static cs_err
resolve(cs_db *db, const char *uri, int64_t version, const char *version_id,
        char out[CS_VERSION_ID_LEN + 1], cs_errbuf *eb)
{
    head_info h;
    cs_err rv = load_head(db, uri, &h, eb);

    if (rv != CS_OK)
        return rv;
    if (version_id != NULL) {
        if (strlen(version_id) > CS_VERSION_ID_LEN)
            return cs_errf(eb, CS_ENOTFOUND, "version %s of %s not found",
                           version_id, uri);
        memcpy(out, version_id, strlen(version_id) + 1);
        return CS_OK;
    }
    if (version < 1) {
        memcpy(out, h.version_id, sizeof(h.version_id));
        return CS_OK;
    }
    return head_path_id(db, uri, &h, version, out, eb);
}

cs_err
cs_artifact_read(cs_store *s, cs_db *db, const char *uri, int64_t version,
                 const char *version_id, bool with_content, json_t **out,
                 cs_errbuf *eb)
{
    char vid[CS_VERSION_ID_LEN + 1];
    cs_err rv = resolve(db, uri, version, version_id, vid, eb);

    if (rv != CS_OK)
        return rv;
    return version_json(s, db, uri, vid, NULL, 0, with_content, out, eb);
}

cs_err
cs_version_find(cs_db *db, const char *uri, int64_t version,
                const char *version_id, cs_version_ref *out, cs_errbuf *eb)
{
    char vid[CS_VERSION_ID_LEN + 1];
    cs_dbst *st;
    cs_err rv = resolve(db, uri, version, version_id, vid, eb);
    int rc;

    if (rv != CS_OK)
        return rv;
    st = cs_stmt(db, "SELECT version_id, version, deleted, content_hash,"
                     " content_type, payload_state FROM artifact_versions"
                     " WHERE uri = ?1 AND version_id = ?2");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, vid, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW) {
        col_copy(st, 0, out->version_id, sizeof(out->version_id));
        out->version = cs_db_column_int64(st, 1);
        out->deleted = cs_db_column_int(st, 2) != 0;
        col_copy(st, 3, out->content_hash, sizeof(out->content_hash));
        col_copy(st, 4, out->content_type, sizeof(out->content_type));
        col_copy(st, 5, out->payload_state, sizeof(out->payload_state));
    } else if (rc == CS_DB_DONE) {
        rv = cs_errf(eb, CS_ENOTFOUND, "version %s of %s not found", vid, uri);
    } else {
        rv = cs_db_err(db, rc, eb);
    }
    cs_db_reset(st);
    return rv;
}

cs_err
cs_version_content(cs_store *s, cs_db *db, const cs_version_ref *v,
                   char **out, size_t *len, cs_errbuf *eb)
{
    char *buf;

    if (v->deleted || v->content_hash[0] == '\0') {
        buf = calloc(1, 1);
        if (buf == NULL)
            return CS_ENOMEM;
        *out = buf;
        *len = 0;
        return CS_OK;
    }
    if (strcmp(v->payload_state, "inline") != 0)
        return cs_errf(eb, CS_ENOTFOUND,
                       "the payload of %s is not stored on this node",
                       v->version_id);
    return cs_blob_get(s, db, v->content_hash, out, len, eb);
}

cs_err
cs_artifact_history(cs_db *db, const char *uri, json_t **out, cs_errbuf *eb)
{
    head_info h;
    cs_dbst *st;
    json_t *o = NULL, *arr = NULL;
    bool bad = false;
    cs_err rv = load_head(db, uri, &h, eb);
    int rc;

    if (rv != CS_OK)
        return rv;
    st = cs_stmt(db,
                 "WITH RECURSIVE path(vid) AS ("
                 " SELECT ?2"
                 " UNION"
                 " SELECT v.parent_id FROM artifact_versions v JOIN path p"
                 "  ON v.uri = ?1 AND v.version_id = p.vid"
                 "  WHERE v.parent_id IS NOT NULL)"
                 " SELECT version, version_id, parent_id, merged_from,"
                 " author_id, approved_by, summary, content_hash, size,"
                 " created_at, deleted, origin_node, origin_region,"
                 " origin_seq, payload_state,"
                 " version_id IN (SELECT vid FROM path)"
                 " FROM artifact_versions WHERE uri = ?1"
                 " ORDER BY version DESC, created_at DESC, version_id DESC");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    o = json_object();
    arr = json_array();
    if (o == NULL || arr == NULL) {
        json_decref(arr);
        rv = CS_ENOMEM;
        goto out;
    }
    put(o, "uri", json_string(uri), &bad);
    put(o, "versions", arr, &bad);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, h.version_id, -1, CS_DB_STATIC);
    while (!bad && (rc = cs_db_step(st)) == CS_DB_ROW) {
        json_t *e = json_object(), *origin = json_object();
        if (e == NULL || origin == NULL) {
            json_decref(e);
            json_decref(origin);
            bad = true;
            break;
        }
        put(e, "version", json_integer(cs_db_column_int64(st, 0)), &bad);
        put(e, "version_id", col_json_str(st, 1), &bad);
        put(e, "parent_id", col_json_str(st, 2), &bad);
        put(e, "merged_from", col_json_array(st, 3), &bad);
        put(e, "author_id", col_json_str(st, 4), &bad);
        put(e, "approved_by", col_json_str(st, 5), &bad);
        put(e, "summary", col_json_str(st, 6), &bad);
        put(e, "content_hash", col_json_str(st, 7), &bad);
        put(e, "size", json_integer(cs_db_column_int64(st, 8)), &bad);
        put(e, "created_at", col_json_str(st, 9), &bad);
        put(e, "deleted", json_boolean(cs_db_column_int(st, 10) != 0),
            &bad);
        put(origin, "node_id", col_json_str(st, 11), &bad);
        put(origin, "region", col_json_str(st, 12), &bad);
        put(origin, "seq", json_integer(cs_db_column_int64(st, 13)), &bad);
        put(e, "origin", origin, &bad);
        put(e, "payload_state", col_json_str(st, 14), &bad);
        put(e, "on_head_path", json_boolean(cs_db_column_int(st, 15) != 0),
            &bad);
        if (json_array_append_new(arr, e) != 0)
            bad = true;
    }
    if (bad)
        rv = CS_ENOMEM;
    else if (rc != CS_DB_DONE)
        rv = cs_db_err(db, rc, eb);
    cs_db_reset(st);
out:
    if (rv != CS_OK) {
        json_decref(o);
        return rv;
    }
    *out = o;
    return CS_OK;
}

/* ------------------------------------------------------------------ */
/* the write path */

/* Row id of a URI's search_fts row: 63 bits of SHA-256(uri), so that the
 * row is found without scanning (uri is UNINDEXED in the FTS table). */
static int64_t
search_rowid(const char *uri)
{
    char hex[CS_SHA256_HEX_LEN + 1];
    uint64_t v = 0;

    cs_sha256_hex(uri, strlen(uri), hex);
    for (int i = 0; i < 16; i++) {
        int c = (unsigned char)hex[i];
        v = (v << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    v &= (uint64_t)INT64_MAX;
    return v == 0 ? 1 : (int64_t)v;
}

static cs_err
step_done(cs_db *db, cs_dbst *st, cs_errbuf *eb)
{
    int rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc != CS_DB_DONE && rc != CS_DB_ROW)
        return cs_db_err(db, rc, eb);
    return CS_OK;
}

/* Replaces the search row of uri: drops the old one (had_row: the URI had a
 * live head, so a row must exist), inserts the new one unless body is NULL
 * (a tombstone). On a row id collision with another URI (≈ n²/2⁶⁴) the row
 * gets an automatic id and deletes fall back to a scan. */
static cs_err
search_update(cs_db *db, const char *uri, const char *org,
              const char *domain, const char *name, const char *summary,
              const char *body, size_t body_len, bool had_row, cs_errbuf *eb)
{
    int64_t rid = search_rowid(uri);
    cs_dbst *st;
    bool taken = false;
    cs_err rv;
    int rc;

    st = cs_stmt(db, "DELETE FROM search_fts WHERE rowid = ?1 AND uri = ?2");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_int64(st, 1, rid);
    cs_db_bind_text(st, 2, uri, -1, CS_DB_STATIC);
    if ((rv = step_done(db, st, eb)) != CS_OK)
        return rv;
    if (had_row && cs_db_changes(db) == 0) {
        st = cs_stmt(db, "DELETE FROM search_fts WHERE uri = ?1");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
        if ((rv = step_done(db, st, eb)) != CS_OK)
            return rv;
    }
    if (body == NULL)
        return CS_OK;

    st = cs_stmt(db, "SELECT 1 FROM search_fts WHERE rowid = ?1");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_int64(st, 1, rid);
    rc = cs_db_step(st);
    cs_db_reset(st);
    if (rc == CS_DB_ROW)
        taken = true;
    else if (rc != CS_DB_DONE)
        return cs_db_err(db, rc, eb);

    st = cs_stmt(db, "INSERT INTO search_fts(rowid, uri, org, domain, name,"
                     " summary, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    if (taken)
        cs_db_bind_null(st, 1);
    else
        cs_db_bind_int64(st, 1, rid);
    cs_db_bind_text(st, 2, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, org, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, domain, -1, CS_DB_STATIC);
    bind_text_or_null(st, 5, name);
    bind_text_or_null(st, 6, summary);
    cs_db_bind_text(st, 7, body, (int)body_len, CS_DB_STATIC);
    return step_done(db, st, eb);
}

/* What the write path knows about the current head row. */
typedef struct cur_head {
    bool found, deleted;
    char version_id[CS_VERSION_ID_LEN + 1];
    int64_t version;
    char *name;          /* malloc'd or NULL */
    char *content_type;  /* malloc'd */
} cur_head;

static void
cur_head_free(cur_head *h)
{
    free(h->name);
    free(h->content_type);
}

static cs_err
load_cur_head(cs_db *db, const char *uri, cur_head *h, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(db,
                               "SELECT head_version_id, head_version,"
                               " deleted_at IS NOT NULL, name, content_type"
                               " FROM artifacts WHERE uri = ?1");
    cs_err rv = CS_OK;
    int rc;

    memset(h, 0, sizeof(*h));
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW) {
        const char *nm = (const char *)cs_db_column_text(st, 3);
        const char *ct = (const char *)cs_db_column_text(st, 4);
        h->found = true;
        col_copy(st, 0, h->version_id, sizeof(h->version_id));
        h->version = cs_db_column_int64(st, 1);
        h->deleted = cs_db_column_int(st, 2) != 0;
        h->name = nm != NULL ? strdup(nm) : NULL;
        h->content_type = strdup(ct != NULL ? ct : "");
        if ((nm != NULL && h->name == NULL) || h->content_type == NULL)
            rv = CS_ENOMEM;
    } else if (rc != CS_DB_DONE) {
        rv = cs_db_err(db, rc, eb);
    }
    cs_db_reset(st);
    return rv;
}

/* Checks the write against the head; CS_OK with *status = CS_VW_OK when it
 * may proceed. */
static cs_err
check_head(const cs_version_write *w, const cur_head *h, cs_vw_status *status,
           cs_errbuf *eb)
{
    if (w->kind == CS_VW_CREATE) {
        if (h->found) {
            *status = CS_VW_EXISTS;
            return cs_errf(eb, CS_ECONFLICT, "artifact %s already exists%s",
                           w->uri, h->deleted ? " (deleted)" : "");
        }
        return CS_OK;
    }
    if (!h->found) {
        *status = CS_VW_NOT_FOUND;
        return cs_errf(eb, CS_ENOTFOUND, "artifact %s not found", w->uri);
    }
    if (h->deleted) {
        *status = CS_VW_DELETED;
        return cs_errf(eb, CS_ENOTFOUND, "artifact %s is deleted", w->uri);
    }
    if (w->base_version >= 0 && w->base_version != h->version) {
        *status = CS_VW_VERSION_CONFLICT;
        return cs_errf(eb, CS_ECONFLICT,
                       "base_version %lld is not the head version %lld",
                       (long long)w->base_version, (long long)h->version);
    }
    return CS_OK;
}

static cs_err
next_seq(cs_db *db, int64_t *seq, cs_errbuf *eb)
{
    cs_dbst *st =
        cs_stmt_pg(db, CS_SQL_LAST_SEQ " + 1", CS_PG_SQL_LAST_SEQ " + 1");
    int rc;

    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    rc = cs_db_step(st);
    if (rc == CS_DB_ROW)
        *seq = cs_db_column_int64(st, 0);
    cs_db_reset(st);
    return rc == CS_DB_ROW ? CS_OK : cs_db_err(db, rc, eb);
}

/* Everything the version row, the event and the head row share. */
typedef struct new_version {
    const cs_version_write *w;
    const cs_uri_parts *parts;
    const char *name;
    const char *content_type;   /* NULL for a tombstone */
    const char *parent_id;      /* NULL for version 1 */
    int64_t prev_version;       /* 0 when none */
    int64_t version;
    char version_id[CS_VERSION_ID_LEN + 1];
    json_t *merged_from;        /* sorted array (owned by the caller) */
    char *merged_text;          /* its canonical text, or NULL when [] */
    char created_at[CS_TIME_LEN];
    int64_t created_us;
    const char *origin_node, *origin_region;
    int64_t origin_seq, seq;
    char event_id[256];
    const char *payload_state;  /* NULL: "inline" */
    const char *home_region;    /* NULL: none */
} new_version;

/* Normalises merged_from (sorted, unique ids) into v and its canonical
 * text (NULL when empty), as the version row and version_id need it. */
static cs_err
set_merged(new_version *v, const json_t *merged_from, cs_errbuf *eb)
{
    v->merged_from = sorted_ids(merged_from);
    if (v->merged_from == NULL)
        return cs_errf(eb, CS_EINVAL, "merged_from must be an array of ids");
    if (json_array_size(v->merged_from) > 0 &&
        (v->merged_text = cs_json_canonical(v->merged_from, NULL)) == NULL)
        return CS_ENOMEM;
    return CS_OK;
}

static cs_err
insert_version(cs_db *db, const new_version *v, cs_errbuf *eb)
{
    const cs_version_write *w = v->w;
    bool del = w->kind == CS_VW_DELETE;
    cs_dbst *st = cs_stmt(
        db, "INSERT INTO artifact_versions(uri, version_id, version,"
            " parent_id, merged_from, content_hash, size, content_type,"
            " deleted, author_id, approved_by, summary, created_at,"
            " origin_node, origin_region, origin_seq, payload_state,"
            " local_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
            " ?11, ?12, ?13, ?14, ?15, ?16, ?18, ?17)");

    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, w->uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, v->version_id, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 3, v->version);
    bind_text_or_null(st, 4, v->parent_id);
    bind_text_or_null(st, 5, v->merged_text);
    bind_text_or_null(st, 6, del ? NULL : w->content_hash);
    cs_db_bind_int64(st, 7, del ? 0 : (int64_t)w->len);
    bind_text_or_null(st, 8, v->content_type);
    cs_db_bind_int(st, 9, del ? 1 : 0);
    cs_db_bind_text(st, 10, w->author->actor_id, -1, CS_DB_STATIC);
    bind_text_or_null(st, 11, w->approved_by);
    bind_text_or_null(st, 12, w->summary);
    cs_db_bind_text(st, 13, v->created_at, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 14, v->origin_node, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 15, v->origin_region, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 16, v->origin_seq);
    cs_db_bind_int64(st, 17, v->seq);
    cs_db_bind_text(st, 18, v->payload_state ? v->payload_state : "inline",
                      -1, CS_DB_STATIC);
    return step_done(db, st, eb);
}

static cs_err
write_head(cs_db *db, const new_version *v, cs_errbuf *eb)
{
    const cs_version_write *w = v->w;
    cs_dbst *st;

    switch (w->kind) {
    case CS_VW_CREATE:
        st = cs_stmt(db, "INSERT INTO artifacts(uri, org, domain, name,"
                         " content_type, created_at, updated_at,"
                         " head_version_id, head_version, deleted_at, fork_id)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, NULL,"
                         " NULL)");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, w->uri, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, v->parts->org, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 3, v->parts->domain, -1, CS_DB_STATIC);
        bind_text_or_null(st, 4, v->name);
        cs_db_bind_text(st, 5, v->content_type, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 6, v->created_at, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 7, v->version_id, -1, CS_DB_STATIC);
        cs_db_bind_int64(st, 8, v->version);
        break;
    case CS_VW_UPDATE:
        st = cs_stmt(db, "UPDATE artifacts SET content_type = ?2,"
                         " updated_at = ?3, head_version_id = ?4,"
                         " head_version = ?5 WHERE uri = ?1");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, w->uri, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, v->content_type, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 3, v->created_at, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 4, v->version_id, -1, CS_DB_STATIC);
        cs_db_bind_int64(st, 5, v->version);
        break;
    default:
        st = cs_stmt(db, "UPDATE artifacts SET updated_at = ?2,"
                         " deleted_at = ?2, head_version_id = ?3,"
                         " head_version = ?4 WHERE uri = ?1");
        if (st == NULL)
            return cs_db_err(db, CS_DB_ERROR, eb);
        cs_db_bind_text(st, 1, w->uri, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, v->created_at, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 3, v->version_id, -1, CS_DB_STATIC);
        cs_db_bind_int64(st, 4, v->version);
        break;
    }
    return step_done(db, st, eb);
}

/* The change event without "seq" (spec §3 plus the federation fields). */
static char *
event_body(const new_version *v)
{
    const cs_version_write *w = v->w;
    bool del = w->kind == CS_VW_DELETE, bad = false;
    const char *type = v->prev_version == 0  ? "artifact.created"
                       : del                 ? "artifact.deleted"
                                             : "artifact.updated";
    json_t *o = json_object(), *origin = json_object();
    char *text = NULL;

    if (o == NULL || origin == NULL) {
        json_decref(origin);
        goto out;
    }
    put(o, "event_id", json_string(v->event_id), &bad);
    put(o, "event_type", json_string(type), &bad);
    put(o, "artifact_uri", json_string(w->uri), &bad);
    put(o, "org", json_string(v->parts->org), &bad);
    put(o, "domain", json_string(v->parts->domain), &bad);
    put(o, "version", json_integer(v->version), &bad);
    put(o, "previous_version",
        v->prev_version > 0 ? json_integer(v->prev_version) : json_null(),
        &bad);
    put(o, "version_id", json_string(v->version_id), &bad);
    put(o, "parent_id", str_or_null(v->parent_id), &bad);
    put(o, "merged_from", json_incref(v->merged_from), &bad);
    put(o, "author_id", json_string(w->author->actor_id), &bad);
    put(o, "actor_type", json_string(w->author->actor_type), &bad);
    put(o, "agent_class",
        w->author->agent_class[0] != '\0' ? json_string(w->author->agent_class)
                                          : json_null(),
        &bad);
    put(o, "approved_by", str_or_null(w->approved_by), &bad);
    put(o, "summary", str_or_null(w->summary), &bad);
    put(o, "content_type", str_or_null(v->content_type), &bad);
    put(o, "content_hash", str_or_null(del ? NULL : w->content_hash), &bad);
    put(o, "size", json_integer(del ? 0 : (json_int_t)w->len), &bad);
    put(o, "created_at", json_string(v->created_at), &bad);
    put(origin, "node_id", json_string(v->origin_node), &bad);
    put(origin, "region", json_string(v->origin_region), &bad);
    put(origin, "seq", json_integer(v->origin_seq), &bad);
    put(o, "origin", origin, &bad);
    put(o, "deleted", json_boolean(del), &bad);
    put(o, "home_region", str_or_null(v->home_region), &bad);
    put(o, "payload_state",
        json_string(v->payload_state ? v->payload_state : "inline"), &bad);
    if (!bad)
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(o);
    return text;
}

static cs_err
insert_event(cs_tx *tx, const new_version *v, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    char *body = event_body(v);
    cs_dbst *st;
    cs_err rv;

    if (body == NULL)
        return CS_ENOMEM;
    st = cs_stmt(db, "INSERT INTO change_events(seq, event_id, artifact_uri,"
                     " org, domain, version_id, author_id, created_us, body)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_int64(st, 1, v->seq);
    cs_db_bind_text(st, 2, v->event_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, v->w->uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 4, v->parts->org, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 5, v->parts->domain, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 6, v->version_id, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 7, v->w->author->actor_id, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 8, v->created_us);
    cs_db_bind_text(st, 9, body, -1, CS_DB_STATIC);
    rv = step_done(db, st, eb);
    if (rv == CS_OK)
        rv = cs_tx_publish(tx, v->seq, v->w->uri, body);
out:
    free(body);
    return rv;
}

static cs_err recompute_head(cs_db *db, const char *uri,
                             const cs_uri_parts *parts, const char *name,
                             char *head_id, size_t *ntips, cs_errbuf *eb);

/* A local write on a forked artifact: the written version is a new tip,
 * so re-choose the provisional head among all tips, and let the fork
 * queue see it (a local version never has siblings: its parent is the
 * head, a tip). */
static cs_err
local_write_forks(cs_tx *tx, const char *uri, const cs_uri_parts *parts,
                  const new_version *v, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_dbst *st = cs_stmt(db, "SELECT fork_id IS NOT NULL FROM artifacts"
                                   " WHERE uri = ?1");
    bool forked = false;
    char head_id[CS_VERSION_ID_LEN + 1];
    size_t ntips = 0;
    cs_err rv;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    if (cs_db_step(st) == CS_DB_ROW)
        forked = cs_db_column_int(st, 0) != 0;
    cs_db_reset(st);
    if (!forked)
        return CS_OK;
    rv = recompute_head(db, uri, parts, v->name, head_id, &ntips, eb);
    if (rv != CS_OK)
        return rv;
    return cs_forks_after_apply(tx, uri, parts, v->version_id, v->parent_id,
                                false, v->w->author->actor_id, "local", eb);
}

cs_err
cs_version_write_tx(cs_tx *tx, const cs_version_write *w,
                    cs_vw_status *status, json_t **out, cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_store *s = cs_tx_store(tx);
    cs_uri_parts *parts = NULL;
    cur_head head;
    new_version v;
    bool del = w->kind == CS_VW_DELETE;
    const char *prov;
    int n;
    cs_err rv;

    memset(&v, 0, sizeof(v));
    memset(&head, 0, sizeof(head));
    *status = CS_VW_OK;
    if (w->uri == NULL || w->author == NULL ||
        (!del && (w->content_hash == NULL ||
                  (w->content == NULL && w->len > 0))))
        return cs_errf(eb, CS_EINVAL, "incomplete version write");
    parts = malloc(sizeof(*parts));
    if (parts == NULL)
        return CS_ENOMEM;
    if ((rv = cs_uri_parse(w->uri, parts, eb)) != CS_OK)
        goto out;
    if ((rv = load_cur_head(db, w->uri, &head, eb)) != CS_OK)
        goto out;
    if ((rv = check_head(w, &head, status, eb)) != CS_OK)
        goto out;

    v.w = w;
    v.parts = parts;
    if (w->kind == CS_VW_CREATE) {
        const char *slash = strrchr(parts->id, '/');
        v.name = w->name != NULL ? w->name
                                 : (slash != NULL ? slash + 1 : parts->id);
        v.version = 1;
    } else {
        v.name = head.name;
        v.parent_id = head.version_id;
        v.prev_version = head.version;
        v.version = head.version + 1;
    }
    if (del)
        v.content_type = NULL;
    else if (w->content_type != NULL)
        v.content_type = w->content_type;
    else if (w->kind == CS_VW_UPDATE &&
             cs_content_type_is_json(head.content_type) == w->content_json)
        v.content_type = head.content_type;
    else
        v.content_type = w->content_json ? CS_CT_JSON_DEFAULT
                                         : CS_CT_TEXT_DEFAULT;

    v.created_us = w->created_us != 0 ? w->created_us : cs_now_us();
    cs_time_format(v.created_us, v.created_at);
    if ((rv = set_merged(&v, w->merged_from, eb)) != CS_OK)
        goto out;
    v.origin_node = w->origin_node != NULL ? w->origin_node
                                           : cs_store_node_id(s);
    v.origin_region = w->origin_region != NULL ? w->origin_region
                                               : cs_store_region(s);
    if ((rv = cs_version_id(w->uri, v.version, v.parent_id, v.merged_from,
                            del ? NULL : w->content_hash, w->author->actor_id,
                            v.created_at, v.origin_node, v.version_id)) !=
        CS_OK)
        goto out;
    if ((rv = next_seq(db, &v.seq, eb)) != CS_OK)
        goto out;
    v.origin_seq = w->origin_seq > 0 ? w->origin_seq : v.seq;
    n = snprintf(v.event_id, sizeof(v.event_id), "%s:%lld", v.origin_node,
                 (long long)v.origin_seq);
    if (n < 0 || (size_t)n >= sizeof(v.event_id)) {
        rv = cs_errf(eb, CS_EINVAL, "origin node id too long");
        goto out;
    }

    if (!del &&
        (rv = cs_blob_put(tx, w->content_hash, w->content, w->len, eb)) !=
            CS_OK)
        goto out;
    if ((rv = insert_version(db, &v, eb)) != CS_OK)
        goto out;
    if ((rv = write_head(db, &v, eb)) != CS_OK)
        goto out;
    if (head.found && (rv = local_write_forks(tx, w->uri, parts, &v, eb)) !=
                          CS_OK)
        goto out;
    if ((rv = insert_event(tx, &v, eb)) != CS_OK)
        goto out;
    if ((rv = search_update(db, w->uri, parts->org, parts->domain, v.name,
                            w->summary, del ? NULL : (w->content ? w->content
                                                                 : ""),
                            del ? 0 : w->len,
                            head.found && !head.deleted, eb)) != CS_OK)
        goto out;
    prov = w->prov_actor_id != NULL ? w->prov_actor_id : w->author->actor_id;
    if ((rv = cs_prov_append(tx, prov, "write", w->uri, v.version,
                             v.version_id, NULL, eb)) != CS_OK)
        goto out;
    if (out != NULL)
        rv = version_json(s, db, w->uri, v.version_id,
                          del ? NULL : (w->content ? w->content : ""),
                          del ? 0 : w->len, true, out, eb);
out:
    json_decref(v.merged_from);
    free(v.merged_text);
    cur_head_free(&head);
    free(parts);
    return rv;
}

/* ------------------------------------------------------------------ */
/* federation apply */

/* Recomputes the head row of uri from the tips of its version graph.
 * *head_id gets the chosen tip. */
static cs_err
recompute_head(cs_db *db, const char *uri, const cs_uri_parts *parts,
               const char *name, char *head_id, size_t *ntips, cs_errbuf *eb)
{
    cs_dbst *st = cs_stmt(
        db, "SELECT v.version_id, v.version, v.deleted, v.created_at,"
            " v.content_type, v.parent_id FROM artifact_versions v"
            " WHERE v.uri = ?1 AND v.has_child = 0");
    /* Copies of the best tip so far (the row buffers do not survive). */
    char best_id[CS_VERSION_ID_LEN + 1] = "", best_at[CS_TIME_LEN + 8] = "";
    char best_parent[CS_VERSION_ID_LEN + 1] = "";
    char *best_ct = NULL;
    cs_fork_tip best = {0}, cur;
    bool have = false;
    cs_err rv = CS_OK;
    char fork_id[CS_FORK_ID_LEN + 1] = "";
    int rc;

    *ntips = 0;
    if (st == NULL)
        return cs_db_err(db, CS_DB_ERROR, eb);
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    while ((rc = cs_db_step(st)) == CS_DB_ROW) {
        cur.version_id = (const char *)cs_db_column_text(st, 0);
        cur.version = cs_db_column_int64(st, 1);
        cur.deleted = cs_db_column_int(st, 2) != 0;
        cur.created_at = (const char *)cs_db_column_text(st, 3);
        cur.origin_region = NULL;
        (*ntips)++;
        if (!have || cs_fork_tip_better(&cur, &best)) {
            const unsigned char *ct = cs_db_column_text(st, 4);
            snprintf(best_id, sizeof(best_id), "%s", cur.version_id);
            snprintf(best_at, sizeof(best_at), "%s", cur.created_at);
            col_copy(st, 5, best_parent, sizeof(best_parent));
            free(best_ct);
            best_ct = ct ? strdup((const char *)ct) : NULL;
            best = cur;
            best.version_id = best_id;
            best.created_at = best_at;
            have = true;
        }
    }
    cs_db_reset(st);
    if (rc != CS_DB_DONE) {
        rv = cs_db_err(db, rc, eb);
        goto out;
    }
    if (!have) {
        rv = cs_errf(eb, CS_EINVAL, "no tip for %s", uri);
        goto out;
    }
    /* Several tips: the artifact is forked, named by the parent the
     * provisional head diverged from. */
    if (*ntips > 1)
        cs_fork_id(uri, best_parent[0] ? best_parent : NULL, fork_id);
    st = cs_stmt(db,
                 "INSERT INTO artifacts(uri, org, domain, name, content_type,"
                 " created_at, updated_at, head_version_id, head_version,"
                 " deleted_at, fork_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6,"
                 " ?7, ?8, ?9, ?10) ON CONFLICT(uri) DO UPDATE SET"
                 " content_type = COALESCE(excluded.content_type,"
                 "  artifacts.content_type),"
                 " updated_at = excluded.updated_at,"
                 " head_version_id = excluded.head_version_id,"
                 " head_version = excluded.head_version,"
                 " deleted_at = excluded.deleted_at, fork_id = excluded.fork_id");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, uri, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 2, parts->org, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 3, parts->domain, -1, CS_DB_STATIC);
    bind_text_or_null(st, 4, name);
    cs_db_bind_text(st, 5, best_ct ? best_ct : CS_CT_TEXT_DEFAULT, -1,
                      CS_DB_STATIC);
    cs_db_bind_text(st, 6, best_at, -1, CS_DB_STATIC);
    cs_db_bind_text(st, 7, best_id, -1, CS_DB_STATIC);
    cs_db_bind_int64(st, 8, best.version);
    bind_text_or_null(st, 9, best.deleted ? best_at : NULL);
    bind_text_or_null(st, 10, fork_id[0] ? fork_id : NULL);
    if ((rv = step_done(db, st, eb)) != CS_OK)
        goto out;
    snprintf(head_id, CS_VERSION_ID_LEN + 1, "%s", best_id);
out:
    free(best_ct);
    return rv;
}

static bool
blob_present(cs_db *db, const char *hash)
{
    cs_dbst *st = cs_stmt(db, "SELECT 1 FROM blobs WHERE hash = ?1");
    bool found;
    if (st == NULL)
        return false;
    cs_db_bind_text(st, 1, hash, -1, CS_DB_STATIC);
    found = cs_db_step(st) == CS_DB_ROW;
    cs_db_reset(st);
    return found;
}

cs_err
cs_version_apply_tx(cs_tx *tx, const cs_version_record *rec, bool *forked,
                    cs_errbuf *eb)
{
    cs_db *db = cs_tx_db(tx);
    cs_uri_parts *parts = NULL;
    cs_version_write w;
    cs_actor author;
    new_version v;
    char old_head[CS_VERSION_ID_LEN + 1] = "";
    char new_head[CS_VERSION_ID_LEN + 1] = "";
    char *old_name = NULL;
    const char *name;
    size_t ntips = 0;
    int64_t created_us = 0;
    cs_dbst *st;
    cs_err rv;
    int n;

    *forked = false;
    memset(&v, 0, sizeof(v));
    memset(&w, 0, sizeof(w));
    memset(&author, 0, sizeof(author));
    parts = malloc(sizeof(*parts));
    if (parts == NULL)
        return CS_ENOMEM;
    if (cs_uri_parse(rec->uri, parts, eb) != CS_OK) {
        rv = CS_EINVAL;
        goto out;
    }
    if (cs_time_parse(rec->created_at, &created_us) != CS_OK) {
        rv = cs_errf(eb, CS_EINVAL, "invalid created_at");
        goto out;
    }
    /* The graph must agree: version = parent's + 1 (1 without parent). */
    if (rec->parent_id == NULL) {
        if (rec->version != 1) {
            rv = cs_errf(eb, CS_EINVAL,
                         "version %lld without a parent (must be 1)",
                         (long long)rec->version);
            goto out;
        }
    } else {
        int64_t pv = -1;
        st = cs_stmt(db, "SELECT version FROM artifact_versions WHERE"
                         " uri = ?1 AND version_id = ?2");
        if (st == NULL) {
            rv = cs_db_err(db, CS_DB_ERROR, eb);
            goto out;
        }
        cs_db_bind_text(st, 1, rec->uri, -1, CS_DB_STATIC);
        cs_db_bind_text(st, 2, rec->parent_id, -1, CS_DB_STATIC);
        if (cs_db_step(st) == CS_DB_ROW)
            pv = cs_db_column_int64(st, 0);
        cs_db_reset(st);
        if (pv < 0) {
            rv = cs_errf(eb, CS_EINVAL, "parent %s is not a version of %s",
                         rec->parent_id, rec->uri);
            goto out;
        }
        if (rec->version != pv + 1) {
            rv = cs_errf(eb, CS_EINVAL,
                         "version %lld is not its parent's (%lld) + 1",
                         (long long)rec->version, (long long)pv);
            goto out;
        }
        v.prev_version = pv;
    }
    /* Siblings: another version with the same parent makes a fork. */
    st = cs_stmt(db, "SELECT 1 FROM artifact_versions WHERE uri = ?1 AND"
                     " parent_id IS ?2 LIMIT 1");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, rec->uri, -1, CS_DB_STATIC);
    bind_text_or_null(st, 2, rec->parent_id);
    *forked = cs_db_step(st) == CS_DB_ROW;
    cs_db_reset(st);

    /* Current head and name (the artifact row may not exist yet). */
    st = cs_stmt(db, "SELECT head_version_id, name FROM artifacts WHERE"
                     " uri = ?1");
    if (st == NULL) {
        rv = cs_db_err(db, CS_DB_ERROR, eb);
        goto out;
    }
    cs_db_bind_text(st, 1, rec->uri, -1, CS_DB_STATIC);
    if (cs_db_step(st) == CS_DB_ROW) {
        const unsigned char *nm = cs_db_column_text(st, 1);
        col_copy(st, 0, old_head, sizeof(old_head));
        old_name = nm ? strdup((const char *)nm) : NULL;
    }
    cs_db_reset(st);
    if (old_name != NULL) {
        name = old_name;
    } else if (rec->name != NULL) {
        name = rec->name;
    } else {
        const char *slash = strrchr(parts->id, '/');
        name = slash != NULL ? slash + 1 : parts->id;
    }

    /* The synthetic write the shared row/event code understands. */
    snprintf(author.actor_id, sizeof(author.actor_id), "%s", rec->author_id);
    snprintf(author.actor_type, sizeof(author.actor_type), "%s",
             rec->actor_type ? rec->actor_type : "human");
    snprintf(author.agent_class, sizeof(author.agent_class), "%s",
             rec->agent_class ? rec->agent_class : "");
    w.kind = rec->deleted ? CS_VW_DELETE
                          : (rec->parent_id == NULL ? CS_VW_CREATE
                                                    : CS_VW_UPDATE);
    w.uri = rec->uri;
    w.content = rec->payload;
    w.len = (size_t)rec->size;
    w.content_hash = rec->deleted ? NULL : rec->content_hash;
    w.content_type = rec->content_type;
    w.summary = rec->summary;
    w.author = &author;
    w.approved_by = rec->approved_by;
    w.base_version = -1;

    v.w = &w;
    v.parts = parts;
    v.name = name;
    v.content_type = rec->deleted ? NULL : rec->content_type;
    v.parent_id = rec->parent_id;
    v.version = rec->version;
    snprintf(v.version_id, sizeof(v.version_id), "%s", rec->version_id);
    if ((rv = set_merged(&v, rec->merged_from, eb)) != CS_OK)
        goto out;
    v.created_us = cs_now_us(); /* local commit time: orders since=time */
    snprintf(v.created_at, sizeof(v.created_at), "%s", rec->created_at);
    v.origin_node = rec->origin_node;
    v.origin_region = rec->origin_region;
    v.home_region = rec->home_region;
    if ((rv = next_seq(db, &v.seq, eb)) != CS_OK)
        goto out;
    v.origin_seq = rec->origin_seq > 0 ? rec->origin_seq : v.seq;
    n = snprintf(v.event_id, sizeof(v.event_id), "%s:%lld", v.origin_node,
                 (long long)v.origin_seq);
    if (n < 0 || (size_t)n >= sizeof(v.event_id)) {
        rv = cs_errf(eb, CS_EINVAL, "origin node id too long");
        goto out;
    }

    /* Payload: store it (verified by the caller) or record it as remote,
     * unless the same bytes are already stored here. */
    if (rec->deleted) {
        v.payload_state = "inline";
    } else if (rec->payload != NULL) {
        if ((rv = cs_blob_put(tx, rec->content_hash, rec->payload,
                              rec->payload_len, eb)) != CS_OK)
            goto out;
        v.payload_state = "inline";
    } else {
        v.payload_state = blob_present(db, rec->content_hash) ? "inline"
                                                              : "remote";
    }
    if ((rv = insert_version(db, &v, eb)) != CS_OK)
        goto out;
    if ((rv = recompute_head(db, rec->uri, parts, name, new_head, &ntips,
                             eb)) != CS_OK)
        goto out;
    if ((rv = insert_event(tx, &v, eb)) != CS_OK)
        goto out;
    if (strcmp(old_head, new_head) == 0) {
        /* head unchanged: nothing to re-index */
    } else if (strcmp(new_head, v.version_id) == 0) {
        bool had_row = old_head[0] != '\0';
        const char *body = NULL;
        size_t blen = 0;
        if (!rec->deleted) {
            bool inline_here = strcmp(v.payload_state, "inline") == 0 &&
                               rec->payload != NULL;
            body = inline_here ? rec->payload : "";
            blen = inline_here ? rec->payload_len : 0;
        }
        if ((rv = search_update(db, rec->uri, parts->org, parts->domain, name,
                                rec->summary, body, blen, had_row, eb)) !=
            CS_OK)
            goto out;
    }
    if ((rv = cs_forks_after_apply(tx, rec->uri, parts, rec->version_id,
                                   rec->parent_id, *forked, rec->author_id,
                                   rec->local ? "local" : "ingest", eb)) !=
        CS_OK)
        goto out;
    if ((rv = cs_prov_append(tx, rec->prov_actor_id ? rec->prov_actor_id
                                                    : rec->author_id,
                             rec->local ? "write" : "replicate", rec->uri,
                             rec->version, rec->version_id, NULL, eb)) !=
        CS_OK)
        goto out;
out:
    json_decref(v.merged_from);
    free(v.merged_text);
    free(old_name);
    free(parts);
    return rv;
}

void
cs_res_version_error(cs_req *r, cs_err rv, cs_vw_status status,
                     const cs_errbuf *eb)
{
    const char *m = eb != NULL && eb->msg[0] != '\0' ? eb->msg
                                                     : cs_strerror(rv);

    switch (status) {
    case CS_VW_EXISTS:
        cs_res_error(r, 409, "conflict", "%s", m);
        break;
    case CS_VW_NOT_FOUND:
        cs_res_error(r, 404, "not_found", "%s", m);
        break;
    case CS_VW_DELETED:
        cs_res_error_x(r, 404, "not_found", json_pack("{s:b}", "deleted", 1),
                       "%s", m);
        break;
    case CS_VW_VERSION_CONFLICT:
        cs_res_error(r, 409, "version_conflict", "%s", m);
        break;
    default:
        cs_res_store_error(r, rv, eb);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* route helpers */

bool
cs_req_uri(cs_req *r, const char **out)
{
    const char *v = cs_req_query(r, "uri");

    if (v != NULL && *v == '\0') {
        cs_res_error(r, 400, "invalid_uri", "invalid uri: empty");
        return false;
    }
    return cs_req_query_uri(r, "uri", out);
}

bool
cs_req_authorize(cs_req *r, const char *uri, unsigned op)
{
    cs_node *n = cs_req_node(r);
    const cs_actor *a = cs_req_actor(r);

    if (a != NULL &&
        cs_authz_check(n->authz, cs_req_db(r), a, uri, op, NULL))
        return true;
    cs_res_error(r, 403, "forbidden", "actor '%s' may not %s %s",
                 a != NULL ? a->actor_id : "", cs_op_name(op), uri);
    return false;
}

bool
cs_req_body_str(cs_req *r, const json_t *body, const char *key, bool required,
                size_t max, const char **out)
{
    cs_errbuf eb = {{0}};
    cs_err rv = cs_json_get_str(body, key, out, &eb);

    if (rv == CS_ENOTFOUND) {
        *out = NULL;
        if (!required)
            return true;
        cs_res_error(r, 400, "bad_request", "field '%s' is required", key);
        return false;
    }
    if (rv != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        return false;
    }
    if (strlen(*out) > max) {
        cs_res_error(r, 400, "bad_request",
                     "field '%s' is longer than %zu bytes", key, max);
        return false;
    }
    return true;
}

bool
cs_req_body_base(cs_req *r, const json_t *body, int64_t *out)
{
    cs_errbuf eb = {{0}};
    int64_t v = 0;
    cs_err rv = cs_json_get_int(body, "base_version", &v, &eb);

    if (rv == CS_ENOTFOUND) {
        *out = -1;
        return true;
    }
    if (rv != CS_OK) {
        cs_res_error(r, 400, "bad_request", "%s", eb.msg);
        return false;
    }
    *out = v < 1 ? 0 : v;
    return true;
}

typedef struct read_arg {
    const char *actor_id, *uri, *version_id, *downstream;
    int64_t version;
} read_arg;

static cs_err
read_fn(cs_tx *tx, void *p, cs_errbuf *eb)
{
    read_arg *a = p;
    return cs_prov_append(tx, a->actor_id, "read", a->uri, a->version,
                          a->version_id, a->downstream, eb);
}

bool
cs_req_record_read(cs_req *r, const char *uri, int64_t version,
                   const char *version_id, const char *downstream_uri)
{
    cs_errbuf eb = {{0}};
    read_arg a = {cs_req_actor(r)->actor_id, uri, version_id, downstream_uri,
                  version};
    cs_err rv = cs_store_write(cs_req_node(r)->store, read_fn, &a, &eb);

    if (rv == CS_OK)
        return true;
    cs_res_store_error(r, rv, &eb);
    return false;
}
