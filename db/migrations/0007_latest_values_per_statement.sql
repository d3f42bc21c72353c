-- New report values reach latest_values once per statement instead of once per row: a
-- report writes all its values in one statement, and one set-based upsert costs less
-- than a PL/pgSQL call, a lock and an upsert for each value. Same rules as the row
-- trigger it replaces (0005): returned or superseded values are not counting, writers of
-- one district queue on its advisory lock, and a row is only replaced by a later one.

CREATE FUNCTION submission_values_inserted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('kinerja.latest:' || k.district_code))
       FROM (SELECT DISTINCT district_code FROM inserted ORDER BY district_code) k;
    INSERT INTO latest_values AS l
    SELECT DISTINCT ON (n.district_code, n.division_key, n.indicator_code)
           'latest', n.district_code, n.division_key, n.indicator_code, n.submission_id,
           n.as_of, n.seq, n.numerator, n.denominator, n.flags, n.status
      FROM (SELECT i.*, coalesce(i.division_id, '00000000-0000-0000-0000-000000000000')
                   AS division_key
              FROM inserted i
             WHERE i.status <> 'returned' AND NOT i.superseded) n
     ORDER BY n.district_code, n.division_key, n.indicator_code, n.as_of DESC, n.seq DESC
    ON CONFLICT (basis, division_key, district_code, indicator_code) DO UPDATE SET
        submission_id = EXCLUDED.submission_id, as_of = EXCLUDED.as_of, seq = EXCLUDED.seq,
        numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator,
        flags = EXCLUDED.flags, status = EXCLUDED.status
    WHERE (l.as_of, l.seq) <= (EXCLUDED.as_of, EXCLUDED.seq);
    RETURN NULL;
END $$;

DROP TRIGGER submission_values_latest_insert ON submission_values;
DROP FUNCTION submission_values_inserted();

CREATE TRIGGER submission_values_latest_insert
    AFTER INSERT ON submission_values
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION submission_values_inserted_rows();
