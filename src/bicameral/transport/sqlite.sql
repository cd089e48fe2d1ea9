-- The SQLite transport's schema (bicameral.transport.sqlite), run at every start.
CREATE TABLE IF NOT EXISTS messages (
    source TEXT NOT NULL, position INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL, PRIMARY KEY (source, position)
);
CREATE TABLE IF NOT EXISTS consumers (
    name TEXT NOT NULL, source TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (name, source)
);
