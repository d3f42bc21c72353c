-- One statement of the rule a region coordinator's scope follows (migration 0015), for
-- every check to call: the single-object check (db/scope.py), the submission list and
-- the agreement list had each written it out. A simple SQL function, so PostgreSQL
-- inlines it where it is used.
CREATE FUNCTION district_coordinated(
    p_district text, p_user uuid, p_province text, p_year integer
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM region_spans
         WHERE district_code = p_district AND coordinator_id = p_user
           AND province_code = p_province AND from_year <= p_year
           AND (until_year IS NULL OR p_year < until_year))
$$;
