-- One notification per statement instead of one per area (0006): a batch of reports
-- moves the versions of tens of districts in one statement, and every listening worker
-- handled each area as a message of its own (one plpgsql call per row here, and a
-- dispatch per row in each worker). The payload lists "<area> <version>" pairs joined by
-- commas, at most 200 to a notification (well under NOTIFY's 8000 bytes). Transition
-- tables need one trigger per event; an upsert fires both.
CREATE FUNCTION notify_data_versions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_versions', string_agg(c.area_code || ' ' || c.version, ','))
       FROM (SELECT area_code, version, (row_number() OVER () - 1) / 200 AS chunk
               FROM changed) c
      GROUP BY c.chunk;
    RETURN NULL;
END $$;

DROP TRIGGER data_versions_notify ON data_versions;
DROP FUNCTION notify_data_version();

CREATE TRIGGER data_versions_notify_insert AFTER INSERT ON data_versions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions_changed();
CREATE TRIGGER data_versions_notify_update AFTER UPDATE ON data_versions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions_changed();
