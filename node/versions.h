/* SPDX-License-Identifier: MIT
 * versions.h: the version write path and the artifact readers.
 *
 * Every version of every artifact goes through cs_version_write_tx(), inside
 * a cs_write_fn on the writer thread: it checks the head, stores the blob,
 * computes the version identity (version_id, federation.md §1), inserts the
 * version row, moves the artifacts head row, appends the change event (and
 * registers it for SSE), maintains the search index and appends the "write"
 * provenance row, all in the caller's savepoint. Local writes use the
 * defaults for the identity fields; the federation ingest passes them
 * explicitly. The readers build the artifact JSON of spec §3 from any
 * connection. The canonical record behind version_id, the content rules and
 * the head-path rule are written down in docs/internals/versions.md. */
#ifndef CS_VERSIONS_H
#define CS_VERSIONS_H

#include <jansson.h>
#include "db.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_err.h"
#include "cs_hash.h"
#include "http.h"
#include "store.h"

/* Longest accepted content_type, name and summary (bytes). */
#define CS_CONTENT_TYPE_MAX 255
#define CS_NAME_MAX 1024
#define CS_SUMMARY_MAX 65536

#define CS_CT_TEXT_DEFAULT "text/plain; charset=utf-8"
#define CS_CT_JSON_DEFAULT "application/json"

/* ---- content rules (spec §3) ---- */

/* A request's `content` turned into the bytes that are stored. */
typedef struct cs_content {
    char *bytes;      /* malloc'd, NUL-terminated */
    size_t len;
    char hash[CS_CONTENT_HASH_LEN + 1]; /* "sha256:<hex>" of bytes */
    bool json;        /* bytes are canonical JSON (not a string's text) */
} cs_content;

/* True for "application/json" and any "<type>/<subtype>+json" (parameters
 * after ';' ignored, case-insensitive). */
bool cs_content_type_is_json(const char *content_type);

/* Checks a client-supplied content_type: 1..255 bytes of printable ASCII
 * with a '/' in the first token. CS_EINVAL with a message otherwise. */
cs_err cs_content_type_check(const char *content_type, cs_errbuf *eb);

/* Encodes `content` (any JSON value except null) for storage. Without
 * content_type: a string is stored as its UTF-8 text, anything else as
 * canonical JSON. With a JSON content_type: canonical JSON of any value
 * (a string becomes a JSON string literal). With any other content_type the
 * content must be a string (CS_EINVAL naming the field otherwise). Computes
 * the hash too, so call it on a worker thread, not inside a write. */
cs_err cs_content_encode(const json_t *content, const char *content_type,
                         cs_content *out, cs_errbuf *eb);
void cs_content_free(cs_content *c);

/* ---- writes ---- */

typedef enum { CS_VW_CREATE, CS_VW_UPDATE, CS_VW_DELETE } cs_vw_kind;

/* Zero-initialise, then set base_version = -1 unless a base is given.
 * Fields marked "identity" default to this node's values when 0/NULL; the
 * federation ingest sets them explicitly. */
typedef struct cs_version_write {
    cs_vw_kind kind;
    const char *uri;            /* validated by the caller */
    const char *content;        /* stored bytes; NULL/0 for delete */
    size_t len;
    const char *content_hash;   /* "sha256:<hex>" of content, computed by the
                                   caller off the writer thread */
    bool content_json;          /* content is canonical JSON of a non-string
                                   value (cs_content.json): drives the
                                   content_type default below */
    const char *content_type;   /* NULL: default for the content (create);
                                   previous one when of the same family
                                   (JSON / not JSON), else the default
                                   (update) */
    const char *name;           /* create only; NULL: last segment of the id */
    const char *summary;        /* may be NULL */
    const cs_actor *author;     /* author of the version */
    const char *approved_by;    /* NULL unless written by approving a
                                   suggestion */
    int64_t base_version;       /* -1: none; else must equal the head's
                                   version (0 never does) */
    const char *prov_actor_id;  /* actor of the "write" provenance row;
                                   NULL: the author */
    /* identity (defaults: now, [], this node, the new local seq) */
    int64_t created_us;         /* 0: now */
    const json_t *merged_from;  /* array of version_id strings, or NULL */
    const char *origin_node;    /* NULL: cs_store_node_id() */
    const char *origin_region;  /* NULL: cs_store_region() */
    int64_t origin_seq;         /* 0: the new local seq */
} cs_version_write;

typedef enum {
    CS_VW_OK = 0,
    CS_VW_EXISTS,           /* 409 conflict (also when soft-deleted) */
    CS_VW_NOT_FOUND,        /* 404 */
    CS_VW_DELETED,          /* 404 + deleted: true */
    CS_VW_VERSION_CONFLICT, /* 409 version_conflict */
} cs_vw_status;

/* Inside a cs_write_fn: writes one version (see the file comment). Returns
 * CS_OK with *status = CS_VW_OK and *out = the artifact JSON as GET
 * /artifacts returns it (new reference; out may be NULL). For a refused
 * write, *status says why, eb holds a message, and the return value is
 * CS_ECONFLICT (EXISTS, VERSION_CONFLICT) or CS_ENOTFOUND (NOT_FOUND,
 * DELETED) so that the caller's savepoint rolls back. Other errors: the
 * database's. */
cs_err cs_version_write_tx(cs_tx *tx, const cs_version_write *w,
                           cs_vw_status *status, json_t **out, cs_errbuf *eb);

/* ---- federation: applying a version record as it is ---- */

/* A version record received from another node (federation event). All
 * strings borrowed. */
typedef struct cs_version_record {
    const char *uri, *name, *version_id, *parent_id;
    const json_t *merged_from;  /* array of version_ids or NULL */
    int64_t version;
    bool deleted;
    const char *content_hash;   /* NULL for a tombstone */
    int64_t size;
    const char *content_type;
    const char *author_id, *actor_type, *agent_class, *approved_by;
    const char *summary, *created_at;
    const char *origin_node, *origin_region;
    int64_t origin_seq;
    const char *home_region;
    const char *payload;        /* verified payload bytes, or NULL */
    size_t payload_len;
    const char *prov_actor_id;  /* actor of the provenance row */
    bool local;                 /* written here (a fork resolution): origin
                                   is this node, origin_seq 0 = the new
                                   local seq, provenance "write" */
} cs_version_record;

/* Inside a cs_write_fn: applies a record whose version_id was verified and
 * whose ancestry (parent_id, merged_from) is present. Keeps every version:
 * the record becomes a new row even when another version shares its
 * parent (*forked = true), and the artifact's head becomes the provisional
 * head among the tips (federation.md §4). The version gets a new local seq
 * and its change event keeps the record's event_id and origin.
 * payload_state is "inline" when the payload came along (or its blob is
 * already stored here), else "remote". CS_EINVAL (eb says why, nothing
 * written) when the record is inconsistent with the stored graph, e.g. its
 * version is not its parent's + 1. */
cs_err cs_version_apply_tx(cs_tx *tx, const cs_version_record *rec,
                           bool *forked, cs_errbuf *eb);

/* Answers a refused or failed version write: the statuses map to 409
 * conflict, 404 not_found, 404 not_found + {"deleted": true}, 409
 * version_conflict; anything else (status CS_VW_OK) goes through
 * cs_res_store_error(). */
void cs_res_version_error(cs_req *r, cs_err rv, cs_vw_status status,
                          const cs_errbuf *eb);

/* ---- helpers shared by the artifact and suggestion routes ---- */

/* Each answers the error itself and returns false when the request must
 * stop. */

/* ?uri= like cs_req_query_uri(), except that a present but empty value is
 * 400 invalid_uri (malformed), not bad_request (missing). */
bool cs_req_uri(cs_req *r, const char **out);
/* 403 forbidden unless the caller holds op on uri (decided from the URI
 * alone, before any lookup). */
bool cs_req_authorize(cs_req *r, const char *uri, unsigned op);
/* Body member `key` as a string: absent or null gives *out = NULL (400
 * bad_request "field 'key' is required" when required); wrong type or more
 * than max bytes: 400 bad_request naming the field. */
bool cs_req_body_str(cs_req *r, const json_t *body, const char *key,
                     bool required, size_t max, const char **out);
/* Body member base_version: -1 when absent or null; an integer < 1 becomes
 * 0 (never the head: 409 version_conflict later); any other type: 400. */
bool cs_req_body_base(cs_req *r, const json_t *body, int64_t *out);
/* Appends the "read" provenance row of a successful read (committed before
 * the caller answers); answers the store error itself on failure. */
bool cs_req_record_read(cs_req *r, const char *uri, int64_t version,
                        const char *version_id, const char *downstream_uri);

/* version_id of a record (federation.md §1): "v:" + hex(SHA-256(canonical
 * record)), see docs/internals/versions.md. content_hash NULL = tombstone;
 * merged_from NULL = []. out holds at least CS_VERSION_ID_LEN + 1 bytes. */
#define CS_VERSION_ID_LEN (2 + CS_SHA256_HEX_LEN)
cs_err cs_version_id(const char *uri, int64_t version, const char *parent_id,
                     const json_t *merged_from, const char *content_hash,
                     const char *author_id, const char *created_at,
                     const char *origin_node, char *out);

/* ---- reads (any connection) ---- */

/* The artifact JSON of one version: the head (version < 1 and version_id
 * NULL), version N on the head path, or exactly version_id. CS_ENOTFOUND
 * (eb says what) when the URI or the version is unknown. A tombstone is
 * returned too, with "deleted": true and content null: the caller decides
 * to answer 404. with_content false (or a payload not stored here) gives
 * content null. */
cs_err cs_artifact_read(cs_store *s, cs_db *db, const char *uri,
                        int64_t version, const char *version_id,
                        bool with_content, json_t **out, cs_errbuf *eb);

/* One version's identity and payload location. */
typedef struct cs_version_ref {
    char version_id[CS_VERSION_ID_LEN + 1];
    int64_t version;
    bool deleted;
    char content_hash[CS_CONTENT_HASH_LEN + 1]; /* "" for a tombstone */
    char content_type[CS_CONTENT_TYPE_MAX + 1]; /* "" for a tombstone */
    char payload_state[16];
} cs_version_ref;

/* Resolves a version like cs_artifact_read (version_id wins; version < 1
 * and no version_id: the head). CS_ENOTFOUND when unknown. */
cs_err cs_version_find(cs_db *db, const char *uri, int64_t version,
                       const char *version_id, cs_version_ref *out,
                       cs_errbuf *eb);

/* The stored bytes of a version (malloc'd, NUL-terminated; *len). A
 * tombstone has empty content. CS_ENOTFOUND when the payload is not stored
 * on this node (payload_state other than "inline"). */
cs_err cs_version_content(cs_store *s, cs_db *db, const cs_version_ref *v,
                          char **out, size_t *len, cs_errbuf *eb);

/* {uri, versions: [...]} newest first, every version of the URI with
 * on_head_path (spec §3 history). CS_ENOTFOUND when the URI is unknown. */
cs_err cs_artifact_history(cs_db *db, const char *uri, json_t **out,
                           cs_errbuf *eb);

#endif
