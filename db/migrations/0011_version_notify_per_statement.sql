-- One notification per statement instead of one per data-version row. An ingest batch
-- moves the version of every district it wrote to (about ten a batch): each row cost a
-- PL/pgSQL trigger call in PostgreSQL and, in every listening worker, a notification to
-- receive and parse. Now a statement sends its rows as "<area> <version>;<area>
-- <version>;...", at most 200 to a notification (NOTIFY payloads stop at 8000 bytes).
-- Delivery stays at commit and in commit order; versions only grow, so a listener keeps
-- the larger of what it has and what arrives.

DROP TRIGGER data_versions_notify ON data_versions;
DROP FUNCTION notify_data_version();

CREATE FUNCTION notify_data_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_versions', string_agg(area_code || ' ' || version, ';'))
    FROM (SELECT area_code, version, (row_number() OVER () - 1) / 200 AS part
          FROM changed) AS c
    GROUP BY part;
    RETURN NULL;
END $$;

-- A trigger with a transition table fires for one kind of event, hence two.
CREATE TRIGGER data_versions_notify_insert AFTER INSERT ON data_versions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions();
CREATE TRIGGER data_versions_notify_update AFTER UPDATE ON data_versions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions();
