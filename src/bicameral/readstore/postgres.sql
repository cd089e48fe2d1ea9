-- The PostgreSQL read store's own tables (bicameral.readstore.postgres), one step per version
-- (see eventstore/postgres.sql); each collection's table is made by `declare`.

-- version 1: projection checkpoints and leases
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name text PRIMARY KEY, position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name text COLLATE "C" PRIMARY KEY, owner text NOT NULL, until timestamptz NOT NULL
);
