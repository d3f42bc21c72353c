-- The years a province drew regions for, even none: a PUT of no regions for a year left
-- no row behind, so the previous year's regions carried over into it (migration 0015)
-- while the year's own listing said every district was unassigned (found by review).
-- Written by the regions' replacement (db/regions.py) and by any insert into regions.
CREATE TABLE region_drawings (
    province_code text NOT NULL REFERENCES areas (code),
    year          integer NOT NULL,
    PRIMARY KEY (province_code, year)
);

INSERT INTO region_drawings (province_code, year)
SELECT DISTINCT province_code, year FROM regions;

CREATE FUNCTION region_drawn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO region_drawings (province_code, year)
    SELECT DISTINCT province_code, year FROM drawn
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER regions_drawn AFTER INSERT ON regions
    REFERENCING NEW TABLE AS drawn
    FOR EACH STATEMENT EXECUTE FUNCTION region_drawn();

CREATE OR REPLACE VIEW region_spans AS
WITH drawn AS (
    SELECT province_code, year AS from_year,
           lead(year) OVER (PARTITION BY province_code ORDER BY year) AS until_year
      FROM region_drawings
)
SELECT m.district_code, r.coordinator_id, r.province_code, d.from_year, d.until_year
  FROM drawn d
  JOIN regions r ON r.province_code = d.province_code AND r.year = d.from_year
  JOIN region_members m ON m.region_id = r.id;
