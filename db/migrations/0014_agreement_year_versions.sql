-- What the per-worker target caches (api/reports.py) are keyed by: a tag per year, drawn
-- anew by every agreement written for that year (random, so no two databases served by
-- one process share one).
--
-- They were keyed by the year's count of agreements and latest updated_at. updated_at is
-- when the writing transaction began, not when it committed: an activation that began
-- first and committed after another agreement write of the year changed neither the
-- count nor the latest time, so a worker that had read in between kept the district on
-- its province's targets until some other agreement of that year changed (found by
-- review). The year's row is locked by its first writer until that commits, so writers
-- of one year change it in commit order, and a reader that sees a tag has seen every
-- write before the one that drew it. Agreement writes are few; they queue per year here.
CREATE TABLE agreement_year_versions (
    year int PRIMARY KEY,
    tag  uuid NOT NULL
);

INSERT INTO agreement_year_versions (year, tag)
SELECT year, gen_random_uuid() FROM (SELECT DISTINCT year FROM agreements) y;

CREATE FUNCTION agreement_year_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agreement_year_versions (year, tag)
    SELECT y, gen_random_uuid() FROM (SELECT DISTINCT y FROM unnest(ARRAY[
        CASE WHEN TG_OP <> 'INSERT' THEN OLD.year END,
        CASE WHEN TG_OP <> 'DELETE' THEN NEW.year END]) AS y
     WHERE y IS NOT NULL) s
     ORDER BY y
    ON CONFLICT (year) DO UPDATE SET tag = EXCLUDED.tag;
    RETURN NULL;
END $$;

CREATE TRIGGER agreements_year_moved AFTER INSERT OR UPDATE OR DELETE ON agreements
    FOR EACH ROW EXECUTE FUNCTION agreement_year_moved();
