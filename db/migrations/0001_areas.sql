-- Administrative areas (Kemendagri codes): the country, 38 provinces, 514 districts.
CREATE TABLE areas (
    code          text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('country', 'province', 'district')),
    name          text NOT NULL,
    short_name    text NOT NULL,
    district_type text CHECK (district_type IN ('kabupaten', 'kota')),
    parent_code   text REFERENCES areas (code),
    population    bigint CHECK (population >= 0),
    male          bigint CHECK (male >= 0),
    female        bigint CHECK (female >= 0),
    area_km2      numeric(12, 3),
    CHECK ((kind = 'country') = (parent_code IS NULL)),
    CHECK ((kind = 'district') = (district_type IS NOT NULL))
);

CREATE INDEX areas_parent_idx ON areas (parent_code, code);
CREATE INDEX areas_kind_idx ON areas (kind, code);
