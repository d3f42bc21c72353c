-- Which region a district belongs to for a year: the one it has in the latest year, up to
-- that one, for which its province drew regions (regions carry over to later years until
-- the province draws new ones; a district left out of those has none). A region
-- coordinator's scope for data of a year is the districts whose region for that year
-- they coordinate, in their own province (api/authz.py). Before, every check took each
-- district's latest region whatever the year asked about, so drawing next year's
-- regions moved this year's districts, reports and agreements to next year's
-- coordinator; and the agreement list matched any region of any year (found by review).
CREATE VIEW region_spans AS
WITH drawn AS (
    SELECT province_code, year AS from_year,
           lead(year) OVER (PARTITION BY province_code ORDER BY year) AS until_year
      FROM (SELECT DISTINCT province_code, year FROM regions) d
)
SELECT m.district_code, r.coordinator_id, r.province_code, d.from_year, d.until_year
  FROM drawn d
  JOIN regions r ON r.province_code = d.province_code AND r.year = d.from_year
  JOIN region_members m ON m.region_id = r.id;
