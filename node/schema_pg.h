/* SPDX-License-Identifier: MIT
 * schema_pg.h: the PostgreSQL schema, as migrations indexed by the
 * schema_version table (the SQLite schema's counterpart, schema.h).
 * Migration i (1-based) moves a database from version i-1 to i. Never edit
 * a released migration; append a new one.
 *
 * Migration 1 is the SQLite schema at its version 5, with:
 *   INTEGER -> BIGINT, BLOB -> BYTEA, AUTOINCREMENT -> identity columns;
 *   search_fts (FTS5) -> a table with a generated tsvector and a GIN index;
 *   sqlite_sequence -> seq_floor (one row: the highest seq ever given out,
 *   kept by a trigger, moved by new-epoch and by a returning own event);
 *   triggers in PL/pgSQL.
 * Text compares bytewise, as in SQLite (the provisional head, fork order
 * and paging keys must sort the same on every node): the database's
 * collation must be C or C.UTF-8, which open checks. */
#ifndef CS_SCHEMA_PG_H
#define CS_SCHEMA_PG_H

static const char *const cs_pg_migrations[] = {
    /* 1 */
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

    /* every payload inline (no file blobs: processes share no disk) */
    "CREATE TABLE blobs(hash TEXT PRIMARY KEY, size BIGINT NOT NULL,"
    " data BYTEA);"

    "CREATE TABLE artifacts(uri TEXT PRIMARY KEY, org TEXT NOT NULL,"
    " domain TEXT NOT NULL, name TEXT, content_type TEXT NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " head_version_id TEXT NOT NULL, head_version BIGINT NOT NULL,"
    " deleted_at TEXT, fork_id TEXT);"
    "CREATE INDEX artifacts_org_domain ON artifacts(org, domain, uri);"

    "CREATE TABLE artifact_versions(uri TEXT NOT NULL,"
    " version_id TEXT NOT NULL, version BIGINT NOT NULL, parent_id TEXT,"
    " merged_from TEXT, content_hash TEXT,"
    " size BIGINT NOT NULL DEFAULT 0, content_type TEXT,"
    " deleted BIGINT NOT NULL DEFAULT 0, author_id TEXT NOT NULL,"
    " approved_by TEXT, summary TEXT, created_at TEXT NOT NULL,"
    " origin_node TEXT NOT NULL, origin_region TEXT NOT NULL,"
    " origin_seq BIGINT NOT NULL,"
    " payload_state TEXT NOT NULL DEFAULT 'inline',"
    " local_seq BIGINT, has_child BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY(uri, version_id));"
    "CREATE UNIQUE INDEX versions_id ON artifact_versions(version_id);"
    "CREATE INDEX versions_uri_num ON artifact_versions(uri, version);"
    "CREATE INDEX versions_parent ON artifact_versions(uri, parent_id);"
    "CREATE INDEX versions_author ON artifact_versions(author_id);"
    "CREATE INDEX versions_origin ON artifact_versions(origin_node,"
    " origin_seq);"
    "CREATE INDEX versions_tips ON artifact_versions(uri) WHERE has_child = 0;"
    "CREATE FUNCTION cs_mark_parents() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  UPDATE artifact_versions SET has_child = 1"
    "   WHERE version_id = NEW.parent_id AND has_child = 0;"
    "  IF NEW.merged_from IS NOT NULL THEN"
    "   UPDATE artifact_versions SET has_child = 1 WHERE has_child = 0 AND"
    "    version_id IN (SELECT jsonb_array_elements_text(NEW.merged_from::jsonb));"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER versions_mark_parents AFTER INSERT ON artifact_versions"
    " FOR EACH ROW EXECUTE FUNCTION cs_mark_parents();"

    "CREATE TABLE change_events(seq BIGINT PRIMARY KEY,"
    " event_id TEXT NOT NULL UNIQUE, artifact_uri TEXT NOT NULL,"
    " org TEXT NOT NULL, domain TEXT NOT NULL, version_id TEXT NOT NULL,"
    " author_id TEXT NOT NULL, created_us BIGINT NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE INDEX events_domain ON change_events(org, domain, seq);"
    "CREATE INDEX events_domain_only ON change_events(domain, seq);"
    "CREATE INDEX events_time ON change_events(created_us);"
    "CREATE INDEX events_uri ON change_events(artifact_uri, seq);"
    "CREATE INDEX events_author ON change_events(author_id, seq);"

    /* sqlite_sequence's role: the highest seq ever given out */
    "CREATE TABLE seq_floor(one INT PRIMARY KEY CHECK(one = 1),"
    " seq BIGINT NOT NULL);"
    "INSERT INTO seq_floor VALUES (1, 0);"
    "CREATE FUNCTION cs_seq_floor() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  UPDATE seq_floor SET seq = NEW.seq WHERE seq < NEW.seq;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER events_seq_floor AFTER INSERT ON change_events"
    " FOR EACH ROW EXECUTE FUNCTION cs_seq_floor();"

    "CREATE TABLE provenance("
    " prov_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " actor_id TEXT NOT NULL, operation TEXT NOT NULL,"
    " artifact_uri TEXT NOT NULL, version_touched BIGINT,"
    " version_id TEXT, downstream_uri TEXT, detail TEXT,"
    " created_at TEXT NOT NULL);"
    "CREATE INDEX prov_uri ON provenance(artifact_uri, prov_id);"
    "CREATE INDEX prov_actor ON provenance(actor_id, prov_id);"
    "CREATE INDEX prov_time ON provenance(created_at);"
    "CREATE FUNCTION cs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION 'provenance is append-only'; END $$;"
    "CREATE TRIGGER prov_no_update BEFORE UPDATE OR DELETE ON provenance"
    " FOR EACH ROW EXECUTE FUNCTION cs_append_only();"

    "CREATE TABLE subscriptions(id TEXT PRIMARY KEY,"
    " actor_id TEXT NOT NULL REFERENCES actors(actor_id),"
    " pattern TEXT NOT NULL, cursor BIGINT NOT NULL,"
    " created_at TEXT NOT NULL);"
    "CREATE INDEX subscriptions_actor ON subscriptions(actor_id);"

    "CREATE TABLE suggestions(id TEXT PRIMARY KEY, uri TEXT NOT NULL,"
    " content TEXT NOT NULL,"
    " summary TEXT, base_version BIGINT, status TEXT NOT NULL"
    " CHECK(status IN ('pending','approved','rejected')),"
    " author_id TEXT NOT NULL, created_at TEXT NOT NULL,"
    " decided_by TEXT, decided_at TEXT, version_id TEXT);"
    "CREATE INDEX suggestions_uri ON suggestions(uri, status);"

    /* search_fts: one row per live URI, as the FTS5 table of SQLite */
    "CREATE TABLE search_fts(rowid BIGINT, uri TEXT NOT NULL, org TEXT NOT NULL,"
    " domain TEXT NOT NULL, name TEXT, summary TEXT, body TEXT NOT NULL,"
    " tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple',"
    "  coalesce(name, '') || ' ' || coalesce(summary, '') || ' ' ||"
    "  left(body, 1000000))) STORED);"
    "CREATE INDEX search_fts_rowid ON search_fts(rowid);"
    "CREATE INDEX search_fts_uri ON search_fts(uri);"
    "CREATE INDEX search_fts_tsv ON search_fts USING gin(tsv);"

    "CREATE TABLE fed_checkpoints(source TEXT PRIMARY KEY,"
    " epoch TEXT NOT NULL, seq BIGINT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE TABLE fed_pending(version_id TEXT PRIMARY KEY,"
    " uri TEXT NOT NULL, missing TEXT NOT NULL, source TEXT NOT NULL,"
    " event TEXT NOT NULL, received_at TEXT NOT NULL);"
    "CREATE INDEX fed_pending_missing ON fed_pending(missing);"
    "CREATE TABLE fed_deadletters("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " event_id TEXT, version_id TEXT, uri TEXT, source TEXT NOT NULL,"
    " reason TEXT NOT NULL, event TEXT, received_at TEXT NOT NULL);"

    "CREATE TABLE forks(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " fork_id TEXT NOT NULL UNIQUE, uri TEXT NOT NULL, parent_id TEXT,"
    " org TEXT NOT NULL, domain TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('open','resolved')),"
    " detected_at TEXT NOT NULL, detected_by TEXT NOT NULL,"
    " policy TEXT NOT NULL DEFAULT 'manual',"
    " resolved_by TEXT, resolution_version_id TEXT, resolved_at TEXT);"
    "CREATE INDEX forks_status ON forks(status, id);"
    "CREATE INDEX forks_uri ON forks(uri, status);",

    /* 2: the trigger's UPDATE ... WHERE version_id = NEW.parent_id AND
     * has_child = 0 got a cached generic plan scanning the versions_tips
     * index (every artifact's tip) instead of the one row: 0.5-0.9 ms per
     * write under the write lock (bench_scaleout), 0.07 ms with a plan
     * per call. */
    "ALTER FUNCTION cs_mark_parents() SET plan_cache_mode = force_custom_plan;",
};

#define CS_PG_MIGRATION_COUNT \
    ((int)(sizeof(cs_pg_migrations) / sizeof(cs_pg_migrations[0])))

#endif
