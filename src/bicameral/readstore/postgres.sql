-- The PostgreSQL read store's own tables (bicameral.readstore.postgres), one step per version
-- (see eventstore/postgres.sql); each collection's table is made by `declare`.

-- version 1: projection checkpoints and leases
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name text PRIMARY KEY, position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name text COLLATE "C" PRIMARY KEY, owner text NOT NULL, until timestamptz NOT NULL
);

-- version 2: parked events (sequences per consumer and stream, their events, skip records)
CREATE TABLE parked_sequences (
    id text PRIMARY KEY, service text NOT NULL, consumer text NOT NULL, key text NOT NULL,
    error text NOT NULL, message text NOT NULL, traceback text NOT NULL,
    attempts integer NOT NULL, first_failed timestamptz NOT NULL,
    last_failed timestamptz NOT NULL, UNIQUE (consumer, key)
);
CREATE TABLE parked_events (
    sequence text NOT NULL, position bigint NOT NULL, event_id text NOT NULL,
    body text NOT NULL, PRIMARY KEY (sequence, position)
);
CREATE TABLE parked_skips (n bigserial PRIMARY KEY, body text NOT NULL);

-- version 3: a notice on every checkpoint move (channel bicameral_commits, payload its name),
-- sent when the commit's transaction commits; live query subscriptions listen for it
CREATE OR REPLACE FUNCTION bicameral_commit_notice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bicameral_commits', NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER bicameral_commit_notice AFTER INSERT OR UPDATE OF position
    ON projection_checkpoints FOR EACH ROW EXECUTE FUNCTION bicameral_commit_notice();
