/* SPDX-License-Identifier: MIT
 * store.h: the node's store (SQLite, or PostgreSQL): schema and migrations, per-thread read
 * connections, and a single writer thread that group-commits writes.
 *
 * Writes: a caller packages its work as a cs_write_fn and calls
 * cs_store_write(). The writer thread runs many such functions inside one
 * BEGIN IMMEDIATE ... COMMIT (group commit), each inside its own SAVEPOINT so
 * that one failing write never affects another. cs_store_write() returns only
 * after the COMMIT is durable (or failed), so a 2xx answer is only sent for
 * committed data. Change events registered with cs_tx_publish() are
 * published (nng inproc, topic-less) strictly after the commit, in seq order:
 * the single writer makes feed order == commit order.
 *
 * Reads: each worker thread owns a read connection (cs_store_reader()); WAL
 * lets readers run concurrently with the writer.
 *
 * PostgreSQL (a postgres:// URL instead of a directory; docs/scale-out.md):
 * several processes share one database. Each process keeps this design;
 * its writer takes a transaction-scoped advisory lock after BEGIN, so one
 * writer of all processes commits at a time and seq order stays commit
 * order. A listener thread (LISTEN ctxsync_events) publishes every
 * process's committed events to this process's hub from the table, in seq
 * order; ctxsync_grants notifications reload the permission cache. */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "cs_err.h"
#include "db.h"

#define CS_EVENTS_URL "inproc://cs-events"

typedef struct cs_store cs_store;
typedef struct cs_tx cs_tx;

typedef struct cs_store_opts {
    const char *data_dir;     /* borrowed: the SQLite directory, or a
                               * postgres:// URL (cs_db_is_pg_url) */
    bool sync_full;           /* PRAGMA synchronous=FULL and fsync blobs */
    size_t blob_inline_max;   /* blobs above this go to files (64 KiB) */
    int64_t cache_bytes;      /* soft limit on SQLite's heap, all
                               * connections (0: none) */
} cs_store_opts;

/* Creates DIR, the database, the schema and the node identity rows. With a
 * postgres:// URL: the schema and identity rows in that existing database
 * (CS_ECONFLICT when it already holds a node).
 * Refuses (CS_ECONFLICT) when DIR already holds a database. */
cs_err cs_store_init(const char *data_dir, const char *node_id,
                     const char *region, cs_errbuf *eb);

/* The highest change-feed seq this database ever gave out: sqlite_sequence
 * keeps it past deleted rows, and new-epoch moves it to a seq floor (so the
 * next local seq is this + 1). One text for the writer and new-epoch. */
#define CS_SQL_LAST_SEQ                                                    \
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence"                 \
    " WHERE name = 'change_events'), 0),"                                  \
    " (SELECT COALESCE(MAX(seq), 0) FROM change_events))"
/* PostgreSQL's: seq_floor is kept by a trigger on change_events. */
#define CS_PG_SQL_LAST_SEQ "SELECT (SELECT seq FROM seq_floor)"

/* What new-epoch did (see cs_store_new_epoch). */
typedef struct cs_epoch_change {
    char old_epoch[33], new_epoch[33];
    int64_t restored_seq; /* highest seq the restored database gave out */
    int64_t next_seq;     /* the next seq the node gives out */
    int64_t lost_from, lost_to; /* seqs lost by the restore, or 0, 0 */
} cs_epoch_change;

/* Gives an existing (stopped) data dir a new random epoch, as after a
 * restore from backup: peers' bridges then see source_epoch_changed
 * instead of silently skipping events whose seqs are reused.
 * seq_floor > 0 moves the next seq the node gives out to seq_floor, past
 * every event id peers hold from this node (so no event_id "node:seq" is
 * ever reused), and records [restored seq + 1, seq_floor - 1] in meta
 * 'lost_seqs': /federation/info publishes it so that bridges send those
 * events of this origin back instead of skipping them. */
cs_err cs_store_new_epoch(const char *data_dir, int64_t seq_floor,
                          cs_epoch_change *out, cs_errbuf *eb);

/* Reads the node_id of a stopped data dir (takes the directory lock for
 * the duration). */
cs_err cs_store_peek_node_id(const char *data_dir, char *node_id, size_t sz,
                             cs_errbuf *eb);

/* Opens an existing data dir, migrates the schema forward (refusing a newer
 * one with a clear message) and starts the writer thread. *out on success;
 * free with cs_store_close() (stops the writer after draining its queue). */
cs_err cs_store_open(const cs_store_opts *opts, cs_store **out, cs_errbuf *eb);
void cs_store_close(cs_store *s);

/* Node identity (set at init; strings owned by the store). */
const char *cs_store_node_id(const cs_store *s);
const char *cs_store_region(const cs_store *s);
const char *cs_store_epoch(const cs_store *s);
/* The seqs of this node's own events lost by restores, as JSON text
 * [[from, to], ...] ("[]" when none); see cs_store_new_epoch. */
const char *cs_store_lost_seqs(const cs_store *s);
const char *cs_store_data_dir(const cs_store *s);
/* "sqlite" or "postgres". */
const char *cs_store_backend(const cs_store *s);

/* A new read-only connection for the calling thread (close it with
 * cs_store_reader_close on that thread). Prepared statements: cs_stmt(). */
cs_err cs_store_reader(cs_store *s, cs_db **out);
/* Closes a reader on the thread that used it (drops its cached statements). */
void cs_store_reader_close(cs_db *db);
/* Resets every statement of db so that it holds no read transaction (call
 * between requests, or a reader would keep seeing an old snapshot). */
void cs_store_reader_idle(cs_db *db);


/* ---- writes ---- */

typedef cs_err (*cs_write_fn)(cs_tx *tx, void *arg, cs_errbuf *eb);

/* Runs fn inside the group transaction on the writer thread and waits for
 * the commit. Returns fn's error (its savepoint rolled back, eb filled by
 * fn), CS_EDB/CS_EFULL when the commit failed, CS_ESHUTDOWN when closing. */
cs_err cs_store_write(cs_store *s, cs_write_fn fn, void *arg, cs_errbuf *eb);

/* Fire-and-forget variant: fn runs in a later group; `done` (may be NULL)
 * is called on the writer thread after the commit with the result, and
 * must free arg. Used for subscription cursors. */
void cs_store_write_async(cs_store *s, cs_write_fn fn, void *arg,
                          void (*done)(void *arg, cs_err rv));

/* The writer's connection, valid only inside a cs_write_fn. */
cs_db *cs_tx_db(cs_tx *tx);
cs_store *cs_tx_store(cs_tx *tx);
/* Registers an event (already inserted in change_events with this seq) for
 * publication after commit. body is the event JSON without "seq" (copied). */
cs_err cs_tx_publish(cs_tx *tx, int64_t seq, const char *uri, const char *body);
/* Marks that permissions changed, so that the authz cache reloads after the
 * commit. */
void cs_tx_grants_changed(cs_tx *tx);

/* Generation number of the grants table, bumped after each commit that
 * changed permissions (see cs_tx_grants_changed). */
uint64_t cs_store_grants_gen(const cs_store *s);
/* Highest committed change-feed seq. */
int64_t cs_store_head_seq(const cs_store *s);

/* ---- blobs (content-addressed by "sha256:<hex>") ---- */

/* Stores bytes under hash (inline row or file blobs/ab/cdef..., written to a
 * temp file, fsynced under sync_full, then renamed) unless already present.
 * Must be called inside a cs_write_fn. */
cs_err cs_blob_put(cs_tx *tx, const char *hash, const void *data, size_t len,
                   cs_errbuf *eb);
/* Reads a blob with any connection; *out malloc'd (caller frees), *len. */
cs_err cs_blob_get(cs_store *s, cs_db *db, const char *hash, char **out,
                   size_t *len, cs_errbuf *eb);


/* Statistics for /metrics. */
typedef struct cs_store_stats {
    uint64_t commits, writes, write_errors;
    uint64_t group_max;
    uint64_t checkpoints;        /* by the checkpointer thread */
    uint64_t writer_checkpoints; /* by the writer (WAL past 64 MiB) */
    uint64_t wal_frames;         /* WAL frames after the last commit */
    int64_t heap_bytes;          /* SQLite's heap */
    uint64_t notifies;           /* PostgreSQL notifications received */
} cs_store_stats;
void cs_store_get_stats(const cs_store *s, cs_store_stats *out);

#endif
