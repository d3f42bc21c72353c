-- "The latest counting value of a district (or of one division) as of a date" is meant to
-- be one index probe: equal district and indicator, then the newest (as_of, seq) first.
-- With division_id in the index and "division_id IS NULL" in the query for district-level
-- reports, PostgreSQL could not use the index's order (IS NULL is not an equality to it):
-- it fetched every report of the district and indicator and sorted them (seen in the
-- ingest batch's plan: a bitmap scan and a sort per probe, growing with the history).
-- One index per level instead, each row in exactly one: district-level reports ordered
-- right after (district, indicator), division reports after (district, indicator,
-- division). Writes touch as many index entries as before.
CREATE INDEX submission_values_latest_district_idx
    ON submission_values (district_code, indicator_code, as_of DESC, seq DESC)
    WHERE counting AND division_id IS NULL;
CREATE INDEX submission_values_latest_division_idx
    ON submission_values (district_code, indicator_code, division_id, as_of DESC, seq DESC)
    WHERE counting AND division_id IS NOT NULL;
CREATE INDEX submission_values_accepted_district_idx
    ON submission_values (district_code, indicator_code, as_of DESC, seq DESC)
    WHERE status = 'accepted' AND NOT superseded AND division_id IS NULL;
CREATE INDEX submission_values_accepted_division_idx
    ON submission_values (district_code, indicator_code, division_id, as_of DESC, seq DESC)
    WHERE status = 'accepted' AND NOT superseded AND division_id IS NOT NULL;
DROP INDEX submission_values_latest_idx;
DROP INDEX submission_values_accepted_idx;

-- The same rule as 0005, with one query per level and basis, each written so that it
-- matches one of the indexes above whatever plan the function's statements get.
CREATE OR REPLACE FUNCTION refresh_latest_value(p_district text, p_division uuid, p_indicator text)
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
        IF p_division IS NULL AND b = 'latest' THEN
            SELECT sv.submission_id, sv.as_of, sv.seq, sv.numerator, sv.denominator,
                   sv.flags, sv.status INTO r
              FROM submission_values sv
             WHERE sv.district_code = p_district AND sv.indicator_code = p_indicator
               AND sv.division_id IS NULL AND sv.counting
             ORDER BY sv.as_of DESC, sv.seq DESC LIMIT 1;
        ELSIF p_division IS NULL THEN
            SELECT sv.submission_id, sv.as_of, sv.seq, sv.numerator, sv.denominator,
                   sv.flags, sv.status INTO r
              FROM submission_values sv
             WHERE sv.district_code = p_district AND sv.indicator_code = p_indicator
               AND sv.division_id IS NULL AND sv.status = 'accepted' AND NOT sv.superseded
             ORDER BY sv.as_of DESC, sv.seq DESC LIMIT 1;
        ELSIF b = 'latest' THEN
            SELECT sv.submission_id, sv.as_of, sv.seq, sv.numerator, sv.denominator,
                   sv.flags, sv.status INTO r
              FROM submission_values sv
             WHERE sv.district_code = p_district AND sv.indicator_code = p_indicator
               AND sv.division_id = p_division AND sv.counting
             ORDER BY sv.as_of DESC, sv.seq DESC LIMIT 1;
        ELSE
            SELECT sv.submission_id, sv.as_of, sv.seq, sv.numerator, sv.denominator,
                   sv.flags, sv.status INTO r
              FROM submission_values sv
             WHERE sv.district_code = p_district AND sv.indicator_code = p_indicator
               AND sv.division_id = p_division AND sv.status = 'accepted'
               AND NOT sv.superseded
             ORDER BY sv.as_of DESC, sv.seq DESC LIMIT 1;
        END IF;
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
