/* SPDX-License-Identifier: MIT
 * schema.h: the SQLite schema, as migrations indexed by PRAGMA user_version.
 * Migration i (1-based) moves a database from version i-1 to i. Never edit
 * a released migration; append a new one. */
#ifndef CS_SCHEMA_H
#define CS_SCHEMA_H

static const char *const cs_migrations[] = {
    /* 1: the node's base schema. Version records already carry the
     * federation identity (version_id, parent_id, merged_from, origin). */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"

    "CREATE TABLE actors(actor_id TEXT PRIMARY KEY,"
    " actor_type TEXT NOT NULL CHECK(actor_type IN ('human','agent')),"
    " name TEXT NOT NULL, agent_class TEXT, region TEXT,"
    " created_at TEXT NOT NULL);"

    "CREATE TABLE tokens(token_id TEXT PRIMARY KEY,"
    " actor_id TEXT NOT NULL REFERENCES actors(actor_id),"
    " token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);"
    "CREATE INDEX tokens_actor ON tokens(actor_id);"

    "CREATE TABLE permissions(id TEXT PRIMARY KEY,"
    " actor_id TEXT REFERENCES actors(actor_id), agent_class TEXT,"
    " artifact_pattern TEXT NOT NULL, operations TEXT NOT NULL,"
    " granted_by TEXT NOT NULL, created_at TEXT NOT NULL,"
    " CHECK((actor_id IS NULL) <> (agent_class IS NULL)));"
    "CREATE INDEX permissions_actor ON permissions(actor_id);"
    "CREATE INDEX permissions_class ON permissions(agent_class);"

    /* data is NULL when the blob lives in blobs/ab/cdef... */
    "CREATE TABLE blobs(hash TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " data BLOB);"

    /* One row per URI: the current head (provisional head when forked). */
    "CREATE TABLE artifacts(uri TEXT PRIMARY KEY, org TEXT NOT NULL,"
    " domain TEXT NOT NULL, name TEXT, content_type TEXT NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " head_version_id TEXT NOT NULL, head_version INTEGER NOT NULL,"
    " deleted_at TEXT, fork_id TEXT);"
    "CREATE INDEX artifacts_org_domain ON artifacts(org, domain, uri);"

    "CREATE TABLE artifact_versions(uri TEXT NOT NULL,"
    " version_id TEXT NOT NULL, version INTEGER NOT NULL, parent_id TEXT,"
    " merged_from TEXT," /* JSON array of version_ids, or NULL */
    " content_hash TEXT," /* NULL for a tombstone */
    " size INTEGER NOT NULL DEFAULT 0, content_type TEXT,"
    " deleted INTEGER NOT NULL DEFAULT 0, author_id TEXT NOT NULL,"
    " approved_by TEXT, summary TEXT, created_at TEXT NOT NULL,"
    " origin_node TEXT NOT NULL, origin_region TEXT NOT NULL,"
    " origin_seq INTEGER NOT NULL,"
    " payload_state TEXT NOT NULL DEFAULT 'inline',"
    " local_seq INTEGER,"
    " PRIMARY KEY(uri, version_id));"
    "CREATE UNIQUE INDEX versions_id ON artifact_versions(version_id);"
    "CREATE INDEX versions_uri_num ON artifact_versions(uri, version);"
    "CREATE INDEX versions_parent ON artifact_versions(uri, parent_id);"
    "CREATE INDEX versions_author ON artifact_versions(author_id);"

    /* The change feed. body is the event JSON object without "seq";
     * readers splice "seq" in front. */
    "CREATE TABLE change_events(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE, artifact_uri TEXT NOT NULL,"
    " org TEXT NOT NULL, domain TEXT NOT NULL, version_id TEXT NOT NULL,"
    " author_id TEXT NOT NULL, created_us INTEGER NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE INDEX events_domain ON change_events(org, domain, seq);"
    "CREATE INDEX events_domain_only ON change_events(domain, seq);"
    "CREATE INDEX events_time ON change_events(created_us);"
    "CREATE INDEX events_uri ON change_events(artifact_uri, seq);"
    "CREATE INDEX events_author ON change_events(author_id, seq);"

    "CREATE TABLE provenance(prov_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " actor_id TEXT NOT NULL, operation TEXT NOT NULL,"
    " artifact_uri TEXT NOT NULL, version_touched INTEGER,"
    " version_id TEXT, downstream_uri TEXT, detail TEXT,"
    " created_at TEXT NOT NULL);"
    "CREATE INDEX prov_uri ON provenance(artifact_uri, prov_id);"
    "CREATE INDEX prov_actor ON provenance(actor_id, prov_id);"
    "CREATE INDEX prov_time ON provenance(created_at);"
    "CREATE TRIGGER prov_no_update BEFORE UPDATE ON provenance"
    " BEGIN SELECT RAISE(ABORT, 'provenance is append-only'); END;"
    "CREATE TRIGGER prov_no_delete BEFORE DELETE ON provenance"
    " BEGIN SELECT RAISE(ABORT, 'provenance is append-only'); END;"

    "CREATE TABLE subscriptions(id TEXT PRIMARY KEY,"
    " actor_id TEXT NOT NULL REFERENCES actors(actor_id),"
    " pattern TEXT NOT NULL, cursor INTEGER NOT NULL,"
    " created_at TEXT NOT NULL);"
    "CREATE INDEX subscriptions_actor ON subscriptions(actor_id);"

    "CREATE TABLE suggestions(id TEXT PRIMARY KEY, uri TEXT NOT NULL,"
    " content TEXT NOT NULL," /* canonical JSON of the proposed content */
    " summary TEXT, base_version INTEGER, status TEXT NOT NULL"
    " CHECK(status IN ('pending','approved','rejected')),"
    " author_id TEXT NOT NULL, created_at TEXT NOT NULL,"
    " decided_by TEXT, decided_at TEXT, version_id TEXT);"
    "CREATE INDEX suggestions_uri ON suggestions(uri, status);"

    /* Full-text index over the latest version of each live artifact:
     * one row per URI (rowid unrelated), body = text content or canonical
     * JSON text; maintained by the version write path. */
    "CREATE VIRTUAL TABLE search_fts USING fts5(uri UNINDEXED, org UNINDEXED,"
    " domain UNINDEXED, name, summary, body, tokenize='unicode61');",

    /* 2: federation: checkpoints per source, pending (deferred) events,
     * dead letters. */
    "CREATE TABLE fed_checkpoints(source TEXT PRIMARY KEY,"
    " epoch TEXT NOT NULL, seq INTEGER NOT NULL, updated_at TEXT NOT NULL);"

    /* An event whose ancestry is incomplete; `missing` is one version_id
     * it waits for (re-evaluated when that one is applied). */
    "CREATE TABLE fed_pending(version_id TEXT PRIMARY KEY,"
    " uri TEXT NOT NULL, missing TEXT NOT NULL, source TEXT NOT NULL,"
    " event TEXT NOT NULL, received_at TEXT NOT NULL);"
    "CREATE INDEX fed_pending_missing ON fed_pending(missing);"

    "CREATE TABLE fed_deadletters(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT, version_id TEXT, uri TEXT, source TEXT NOT NULL,"
    " reason TEXT NOT NULL, event TEXT, received_at TEXT NOT NULL);",

    /* 3: the fork review queue (docs/forks.md). Branches are derived:
     * the versions of uri whose parent_id IS the fork's parent_id. */
    "CREATE TABLE forks(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " fork_id TEXT NOT NULL UNIQUE, uri TEXT NOT NULL, parent_id TEXT,"
    " org TEXT NOT NULL, domain TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('open','resolved')),"
    " detected_at TEXT NOT NULL, detected_by TEXT NOT NULL,"
    " policy TEXT NOT NULL DEFAULT 'manual',"
    " resolved_by TEXT, resolution_version_id TEXT, resolved_at TEXT);"
    "CREATE INDEX forks_status ON forks(status, id);"
    "CREATE INDEX forks_uri ON forks(uri, status);",

    /* 4: the highest seq each origin node gave out, held here
     * (/federation/origins, asked by a restored node's new-epoch). */
    "CREATE INDEX versions_origin ON artifact_versions(origin_node,"
    " origin_seq);",

    /* 5: tips without a scan. has_child = 1 once another version names
     * this one as parent_id or in merged_from (versions are append-only
     * and a child is never applied before its parent, so the flag only
     * goes 0 -> 1, set by the trigger). The tips of a URI are then read
     * from the partial index instead of an O(versions^2) NOT EXISTS
     * (catch-up of 100k events to 1000 URIs was super-linear). */
    "ALTER TABLE artifact_versions ADD COLUMN has_child INTEGER NOT NULL"
    " DEFAULT 0;"
    "UPDATE artifact_versions SET has_child = 1 WHERE version_id IN"
    " (SELECT parent_id FROM artifact_versions WHERE parent_id IS NOT NULL)"
    " OR version_id IN (SELECT j.value FROM artifact_versions v,"
    " json_each(v.merged_from) j WHERE v.merged_from IS NOT NULL);"
    "CREATE INDEX versions_tips ON artifact_versions(uri) WHERE has_child = 0;"
    "CREATE TRIGGER versions_mark_parents AFTER INSERT ON artifact_versions"
    " BEGIN"
    "  UPDATE artifact_versions SET has_child = 1"
    "   WHERE version_id = NEW.parent_id AND has_child = 0;"
    "  UPDATE artifact_versions SET has_child = 1"
    "   WHERE NEW.merged_from IS NOT NULL AND has_child = 0 AND version_id IN"
    "   (SELECT value FROM json_each(NEW.merged_from));"
    " END;",
};

#define CS_MIGRATION_COUNT \
    ((int)(sizeof(cs_migrations) / sizeof(cs_migrations[0])))

#endif
