-- The SQLite event store's schema (bicameral.eventstore.sqlite), run at every start.
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    stream_id TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    type TEXT NOT NULL,
    time TEXT NOT NULL,
    data BLOB NOT NULL,
    metadata BLOB NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, position INTEGER NOT NULL,
    versions BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY, schema TEXT NOT NULL, version INTEGER NOT NULL,
    state BLOB NOT NULL
);
