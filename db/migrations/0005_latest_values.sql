-- The latest counting value per (district, division, indicator), for each basis, kept
-- up to date by a trigger in the same transaction as every insert, review and
-- supersession. Rankings read 1,542 rows for the whole country with one index scan,
-- whatever the length of history; only a request for a date before a row's as_of
-- falls back to probing submission_values.

CREATE TABLE latest_values (
    basis          text NOT NULL CHECK (basis IN ('latest', 'accepted')),
    district_code  text NOT NULL REFERENCES areas (code),
    division_key   uuid NOT NULL,  -- the division, or the nil UUID for the district itself
    indicator_code text NOT NULL REFERENCES indicators (code),
    submission_id  uuid NOT NULL,
    as_of          date NOT NULL,
    seq            bigint NOT NULL,
    numerator      bigint NOT NULL,
    denominator    bigint NOT NULL,
    flags          text[] NOT NULL,
    status         text NOT NULL,
    PRIMARY KEY (basis, division_key, district_code, indicator_code)
);

CREATE FUNCTION refresh_latest_value(p_district text, p_division uuid, p_indicator text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    key uuid := coalesce(p_division, '00000000-0000-0000-0000-000000000000');
    b text;
    r record;
BEGIN
    -- Writers of one district queue here, and each statement below then reads what the
    -- previous writer committed, so a review racing a new report cannot leave a stale row.
    PERFORM pg_advisory_xact_lock(hashtext('kinerja.latest:' || p_district));
    FOREACH b IN ARRAY ARRAY['latest', 'accepted'] LOOP
        SELECT sv.submission_id, sv.as_of, sv.seq, sv.numerator, sv.denominator, sv.flags,
               sv.status
          INTO r
          FROM submission_values sv
         WHERE sv.district_code = p_district AND sv.indicator_code = p_indicator
           AND sv.division_id IS NOT DISTINCT FROM p_division
           AND CASE WHEN b = 'latest' THEN sv.counting
                    ELSE sv.status = 'accepted' AND NOT sv.superseded END
         ORDER BY sv.as_of DESC, sv.seq DESC
         LIMIT 1;
        IF FOUND THEN
            INSERT INTO latest_values AS l VALUES (b, p_district, key, p_indicator,
                r.submission_id, r.as_of, r.seq, r.numerator, r.denominator, r.flags, r.status)
            ON CONFLICT (basis, division_key, district_code, indicator_code) DO UPDATE SET
                submission_id = EXCLUDED.submission_id, as_of = EXCLUDED.as_of,
                seq = EXCLUDED.seq, numerator = EXCLUDED.numerator,
                denominator = EXCLUDED.denominator, flags = EXCLUDED.flags,
                status = EXCLUDED.status;
        ELSE
            DELETE FROM latest_values
             WHERE basis = b AND division_key = key AND district_code = p_district
               AND indicator_code = p_indicator;
        END IF;
    END LOOP;
END $$;

-- A new report is almost always the newest: one conditional upsert keeps the "latest"
-- row (reports are "received", so the "accepted" row cannot change on insert). Reviews
-- and supersessions, which can move the latest back to an older report, recompute both.
CREATE FUNCTION submission_values_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'returned' OR NEW.superseded THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('kinerja.latest:' || NEW.district_code));
    INSERT INTO latest_values AS l VALUES ('latest', NEW.district_code,
        coalesce(NEW.division_id, '00000000-0000-0000-0000-000000000000'), NEW.indicator_code,
        NEW.submission_id, NEW.as_of, NEW.seq, NEW.numerator, NEW.denominator, NEW.flags,
        NEW.status)
    ON CONFLICT (basis, division_key, district_code, indicator_code) DO UPDATE SET
        submission_id = EXCLUDED.submission_id, as_of = EXCLUDED.as_of, seq = EXCLUDED.seq,
        numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator,
        flags = EXCLUDED.flags, status = EXCLUDED.status
    WHERE (l.as_of, l.seq) <= (EXCLUDED.as_of, EXCLUDED.seq);
    RETURN NULL;
END $$;

CREATE FUNCTION submission_values_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_latest_value(NEW.district_code, NEW.division_id, NEW.indicator_code);
    RETURN NULL;
END $$;

CREATE TRIGGER submission_values_latest_insert
    AFTER INSERT ON submission_values
    FOR EACH ROW EXECUTE FUNCTION submission_values_inserted();

CREATE TRIGGER submission_values_latest
    AFTER UPDATE OF status, superseded, flags ON submission_values
    FOR EACH ROW EXECUTE FUNCTION submission_values_changed();

-- Rows already stored (none on a fresh database).
SELECT refresh_latest_value(district_code, division_id, indicator_code)
  FROM (SELECT DISTINCT district_code, division_id, indicator_code FROM submission_values) k;
