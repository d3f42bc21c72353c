-- Data versions never repeat, even across a reset (found by review).
--
-- A report's ETag, and the key it is cached under in every worker, are made from the
-- sums of its areas' data versions. A TRUNCATE or DELETE of data_versions (which the
-- change feed treats as a reset, 0006) let versions start again from 1, so a scope's
-- sum came back to a value it had had before, for other data: a worker served the old
-- body from its cache, and a poller's If-None-Match got 304 for data that had changed.
--
-- So a reset moves every area's version to one above the largest there was. Any set of
-- areas then sums to more than it ever did (n areas summed at most n times the old
-- largest), and from there versions only grow. The largest is read before the rows go
-- (BEFORE, per statement) and the versions set after (AFTER, per statement), in the
-- same transaction; the feed's reset notice then reloads them.
CREATE FUNCTION data_versions_note_floor() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('kinerja.version_floor',
                       (SELECT coalesce(max(version), 0) + 1 FROM data_versions)::text, true);
    RETURN NULL;
END $$;

CREATE FUNCTION data_versions_raise_to_floor() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    floor bigint := coalesce(current_setting('kinerja.version_floor', true), '1')::bigint;
BEGIN
    INSERT INTO data_versions AS v (area_code, version, changed_at)
    SELECT code, floor, now() FROM areas ORDER BY code
    ON CONFLICT (area_code) DO UPDATE SET version = greatest(v.version, EXCLUDED.version),
        changed_at = now();
    RETURN NULL;
END $$;

CREATE TRIGGER data_versions_floor_before BEFORE DELETE OR TRUNCATE ON data_versions
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_note_floor();
-- Named to run before data_versions_reset (AFTER triggers fire in name order), so the
-- reset notice follows the raised versions.
CREATE TRIGGER data_versions_floor_raise AFTER DELETE OR TRUNCATE ON data_versions
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_raise_to_floor();
