/* SPDX-License-Identifier: MIT
 * federation.c: federation events out of the local feed. */
#include "federation.h"

#include <stdlib.h>
#include <string.h>

#include "cs_base64.h"
#include "cs_json.h"
#include "cs_uri.h"
#include "versions.h"

cs_err
cs_fed_event(cs_store *s, cs_db *db, int64_t seq, const char *body,
             bool full, const cs_fed_view *view, size_t *payload_bytes,
             json_t **out, cs_errbuf *eb)
{
    json_t *ev = NULL;
    cs_dbst *st;
    cs_err rv;
    const char *uri, *vid;

    if (payload_bytes != NULL)
        *payload_bytes = 0;
    rv = cs_json_parse(body, strlen(body), &ev, eb);
    if (rv != CS_OK)
        return rv;
    json_object_set_new(ev, "seq", json_integer(seq));
    uri = json_string_value(json_object_get(ev, "artifact_uri"));
    vid = json_string_value(json_object_get(ev, "version_id"));
    if (uri == NULL || vid == NULL) {
        json_decref(ev);
        return cs_errf(eb, CS_EPROTO, "stored event %lld is incomplete",
                       (long long)seq);
    }
    st = cs_stmt(db, "SELECT a.name, v.payload_state FROM artifact_versions v"
                     " JOIN artifacts a ON a.uri = v.uri"
                     " WHERE v.version_id = ?1");
    if (st == NULL) {
        json_decref(ev);
        return cs_db_err(db, CS_DB_ERROR, eb);
    }
    cs_db_bind_text(st, 1, vid, -1, CS_DB_STATIC);
    if (cs_db_step(st) == CS_DB_ROW) {
        const char *name = (const char *)cs_db_column_text(st, 0);
        const char *ps = (const char *)cs_db_column_text(st, 1);
        json_object_set_new(ev, "name", name ? json_string(name) : json_null());
        if (ps != NULL)
            json_object_set_new(ev, "payload_state", json_string(ps));
    }
    cs_db_reset(st);
    /* residency: home_region per the matching rule; withhold a home-only
     * payload from a caller of another region */
    if (view != NULL && view->policy != NULL) {
        const cs_res_rule *rule = cs_residency_match(view->policy, uri, NULL);
        const char *ps = json_string_value(json_object_get(ev,
                                                           "payload_state"));
        json_object_set_new(ev, "home_region",
                            rule ? json_string(rule->home_region)
                                 : json_null());
        if (view->enforce && !cs_res_payload_allowed(rule, view->peer_region) &&
            !json_is_true(json_object_get(ev, "deleted")) && ps != NULL &&
            strcmp(ps, "inline") == 0)
            json_object_set_new(ev, "payload_state", json_string("withheld"));
    }
    if (full && !json_is_true(json_object_get(ev, "deleted")) &&
        strcmp(json_string_value(json_object_get(ev, "payload_state"))
                   ? json_string_value(json_object_get(ev, "payload_state"))
                   : "",
               "inline") == 0) {
        const char *hash = json_string_value(json_object_get(ev, "content_hash"));
        char *data = NULL;
        size_t len = 0;
        if (hash != NULL && cs_blob_get(s, db, hash, &data, &len, NULL) == CS_OK) {
            json_t *p;
            if (cs_utf8_valid(data, len) && memchr(data, '\0', len) == NULL) {
                p = json_pack("{s:s,s:s%}", "encoding", "utf8", "data", data,
                              len);
            } else {
                char *enc = cs_base64_encode(data, len, false);
                p = enc ? json_pack("{s:s,s:s}", "encoding", "base64", "data",
                                    enc)
                        : NULL;
                free(enc);
            }
            free(data);
            if (p == NULL) {
                json_decref(ev);
                return CS_ENOMEM;
            }
            json_object_set_new(ev, "payload", p);
            if (payload_bytes != NULL)
                *payload_bytes = len;
        }
    }
    *out = ev;
    return CS_OK;
}

bool
cs_fed_patterns_match(const char *list, const char *uri)
{
    char pat[1100];
    const char *p = list;
    if (list == NULL || *list == '\0')
        return true;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n < sizeof(pat)) {
            memcpy(pat, p, n);
            pat[n] = '\0';
            if (cs_pattern_match(pat, uri))
                return true;
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

cs_err
cs_fed_patterns_validate(const char *list, cs_errbuf *eb)
{
    char pat[1100];
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= sizeof(pat))
            return cs_errf(eb, CS_EINVAL, "empty or oversize pattern in list");
        memcpy(pat, p, n);
        pat[n] = '\0';
        if (cs_pattern_validate(pat, eb) != CS_OK)
            return CS_EINVAL;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return CS_OK;
}
