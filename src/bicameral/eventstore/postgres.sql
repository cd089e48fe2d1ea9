-- The PostgreSQL event store's schema (bicameral.eventstore.postgres), one step per version:
-- each `-- version N` line starts the statements that bring a database from N-1 to N, run
-- once, in order, in one transaction (bicameral.drivers.postgres.migrate). Never edit a step
-- that has shipped: add the next one.

-- version 1: the log, its head, idempotency keys, command-side checkpoints, bicameral_append
CREATE TABLE IF NOT EXISTS events (
    position bigint PRIMARY KEY,
    id text NOT NULL UNIQUE,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    type text NOT NULL,
    time timestamptz NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE TABLE IF NOT EXISTS log_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), position bigint NOT NULL
);
INSERT INTO log_head (one, position) VALUES (true, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key text PRIMARY KEY, request_hash text NOT NULL, position bigint NOT NULL,
    versions jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS command_checkpoints (
    name text PRIMARY KEY, position bigint NOT NULL
);
CREATE OR REPLACE FUNCTION bicameral_append(
    s_names text[], k_names text[],
    j_sizes int[], j_kidx int[], j_hash text[], j_time timestamptz[],
    a_job int[], a_sidx int[], a_expected bigint[], a_count int[],
    e_ids text[], e_types text[], e_data text[], e_meta text[], e_app int[], e_off int[],
    OUT status text[], OUT j_pos bigint[], OUT j_rhash text[], OUT j_vers text[],
    OUT c_app int[], OUT c_actual bigint[], OUT a_pos bigint[], OUT a_ver bigint[]
) LANGUAGE plpgsql
-- Generic plans: planning each statement for each call costs more than running it.
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    n int := coalesce(array_length(j_sizes, 1), 0);
    head bigint;
    first_head bigint;
    ver bigint[];
    k_pos bigint[];
    k_hash text[];
    k_vers jsonb[];
    k_new boolean[];
    a int := 1;
    i int; k int; s int; kx int;
    ok boolean;
    vers jsonb;
BEGIN
    -- The lock orders whole transactions; every later statement sees the commits before it.
    SELECT position INTO head FROM log_head FOR UPDATE;
    first_head := head;
    -- One index lookup per name (a join may be planned as a scan of the whole table).
    ver := ARRAY(SELECT coalesce((SELECT max(e.stream_version) FROM events e
                                   WHERE e.stream_id = u.name), 0)
                   FROM unnest(s_names) WITH ORDINALITY AS u(name, ord) ORDER BY u.ord);
    IF k_names <> '{}' THEN
        SELECT array_agg(r.position ORDER BY u.ord), array_agg(r.request_hash ORDER BY u.ord),
               array_agg(r.versions ORDER BY u.ord)
          INTO k_pos, k_hash, k_vers
          FROM unnest(k_names) WITH ORDINALITY AS u(name, ord)
          LEFT JOIN LATERAL (SELECT * FROM idempotency_keys i WHERE i.key = u.name) r ON true;
    END IF;
    k_new := array_fill(false, ARRAY[coalesce(array_length(k_names, 1), 0)]);
    status := array_fill(NULL::text, ARRAY[n]);
    j_pos := array_fill(NULL::bigint, ARRAY[n]);
    j_rhash := array_fill(NULL::text, ARRAY[n]);
    j_vers := array_fill(NULL::text, ARRAY[n]);
    c_app := array_fill(NULL::int, ARRAY[n]);
    c_actual := array_fill(NULL::bigint, ARRAY[n]);
    a_pos := array_fill(NULL::bigint, ARRAY[coalesce(array_length(a_sidx, 1), 0)]);
    a_ver := a_pos;
    FOR i IN 1 .. n LOOP
        kx := j_kidx[i];
        IF kx IS NOT NULL AND k_pos[kx] IS NOT NULL THEN
            status[i] := 'r';
            j_pos[i] := k_pos[kx];
            j_rhash[i] := k_hash[kx];
            j_vers[i] := k_vers[kx]::text;
        ELSE
            ok := true;
            FOR k IN a .. a + j_sizes[i] - 1 LOOP
                IF a_expected[k] IS NOT NULL AND a_expected[k] <> ver[a_sidx[k]] THEN
                    status[i] := 'c';
                    c_app[i] := k;
                    c_actual[i] := ver[a_sidx[k]];
                    ok := false;
                    EXIT;
                END IF;
            END LOOP;
            IF ok THEN
                vers := '{}';
                FOR k IN a .. a + j_sizes[i] - 1 LOOP
                    s := a_sidx[k];
                    a_pos[k] := head + 1;
                    a_ver[k] := ver[s] + 1;
                    head := head + a_count[k];
                    ver[s] := ver[s] + a_count[k];
                    IF kx IS NOT NULL THEN
                        vers := vers || jsonb_build_object(s_names[s], ver[s]);
                    END IF;
                END LOOP;
                status[i] := 'w';
                j_pos[i] := head;
                IF kx IS NOT NULL THEN
                    k_pos[kx] := head;
                    k_hash[kx] := j_hash[i];
                    k_vers[kx] := vers;
                    k_new[kx] := true;
                END IF;
            END IF;
        END IF;
        a := a + j_sizes[i];
    END LOOP;
    IF head > first_head OR true = ANY(k_new) THEN
        -- One statement writes it all (each statement costs an executor start-up).
        WITH ev AS (
            INSERT INTO events
                (position, id, stream_id, stream_version, type, time, data, metadata)
            SELECT a_pos[u.app] + u.off, u.id, s_names[a_sidx[u.app]], a_ver[u.app] + u.off,
                   u.type, j_time[a_job[u.app]], u.data::jsonb, u.meta::jsonb
              FROM unnest(e_ids, e_types, e_data, e_meta, e_app, e_off)
                   AS u(id, type, data, meta, app, off)
             WHERE a_pos[u.app] IS NOT NULL
        ), ik AS (
            INSERT INTO idempotency_keys (key, request_hash, position, versions)
            SELECT k_names[g], k_hash[g], k_pos[g], k_vers[g]
              FROM generate_subscripts(k_names, 1) AS g WHERE k_new[g]
        )
        UPDATE log_head SET position = head;
    END IF;
END
$fn$;

-- version 2: aggregate snapshots, one per stream (the latest), keyed by the aggregate's schema
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id text PRIMARY KEY, schema text NOT NULL, version bigint NOT NULL,
    state jsonb NOT NULL
);
