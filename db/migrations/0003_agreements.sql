-- Indicator catalogue, performance agreements (perjanjian kinerja), their targets and
-- signatures. Versions of one agreement share a lineage; a signed version never changes.

CREATE TABLE indicators (
    code          text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name_id       text NOT NULL,
    name_en       text NOT NULL,
    unit          text NOT NULL DEFAULT 'percent',
    polarity      text NOT NULL CHECK (polarity IN ('higher', 'lower')),
    cap           numeric(6, 2) NOT NULL DEFAULT 120 CHECK (cap > 0),
    numerator_definition   text NOT NULL,
    denominator_definition text NOT NULL,
    age_band      text,
    core          boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

INSERT INTO indicators (code, name_id, name_en, polarity, numerator_definition,
                        denominator_definition, age_band, core) VALUES
    ('ktp_el', 'Perekaman KTP-el', 'KTP-el recording', 'higher',
     'residents who have recorded KTP-el', 'residents obliged to hold a KTP (wajib KTP)',
     '17 and over, or married', true),
    ('kia', 'Kepemilikan Kartu Identitas Anak', 'Child ID card (KIA) ownership', 'higher',
     'children under 17 holding a KIA', 'children under 17', '0-16', true),
    ('akta_lahir', 'Kepemilikan Akta Kelahiran', 'Birth certificate ownership', 'higher',
     'residents 0-18 holding a birth certificate', 'residents aged 0-18', '0-18', true);

CREATE TABLE agreements (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lineage_id         uuid NOT NULL,
    version            integer NOT NULL CHECK (version >= 1),
    year               integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    level              text NOT NULL CHECK (level IN (
                           'national_province', 'province_district', 'district_division')),
    first_area         text NOT NULL REFERENCES areas (code),
    first_official     text NOT NULL,
    first_title        text,
    second_area        text NOT NULL REFERENCES areas (code),
    second_division_id uuid REFERENCES divisions (id),
    second_official    text NOT NULL,
    second_title       text,
    second_acting      text CHECK (second_acting IN ('plt', 'plh')),
    status             text NOT NULL DEFAULT 'draft' CHECK (status IN (
                           'draft', 'signed_by_second', 'active', 'superseded', 'closed')),
    amendment_of       uuid REFERENCES agreements (id),
    amendment_reason   text CHECK (amendment_reason IN (
                           'mutasi_pejabat', 'perubahan_strategi', 'perubahan_prioritas')),
    amendment_note     text,
    document_sha256    text NOT NULL,
    created_by         uuid NOT NULL REFERENCES users (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    activated_at       timestamptz,
    ended_at           timestamptz,
    UNIQUE (lineage_id, version),
    CHECK ((level = 'district_division') = (second_division_id IS NOT NULL)),
    CHECK ((amendment_of IS NULL) = (amendment_reason IS NULL))
);
CREATE INDEX agreements_year_idx ON agreements (year, level, status);
CREATE INDEX agreements_second_idx ON agreements (second_area, year);
CREATE INDEX agreements_lineage_idx ON agreements (lineage_id, version);
-- At most one active agreement per year and second-party office.
CREATE UNIQUE INDEX agreements_one_active ON agreements (
    year, second_area, coalesce(second_division_id, '00000000-0000-0000-0000-000000000000')
) WHERE status = 'active';
-- At most one version in progress per lineage (a draft or half-signed amendment).
CREATE UNIQUE INDEX agreements_one_open_version ON agreements (lineage_id)
    WHERE status IN ('draft', 'signed_by_second');

CREATE TABLE agreement_targets (
    agreement_id   uuid NOT NULL REFERENCES agreements (id) ON DELETE CASCADE,
    indicator_code text NOT NULL REFERENCES indicators (code),
    annual         numeric(7, 2) NOT NULL CHECK (annual >= 0),
    q1             numeric(7, 2),
    q2             numeric(7, 2),
    q3             numeric(7, 2),
    q4             numeric(7, 2),
    weight         numeric(9, 6) CHECK (weight > 0),
    PRIMARY KEY (agreement_id, indicator_code)
);
CREATE INDEX agreement_targets_indicator_idx ON agreement_targets (indicator_code);

CREATE TABLE agreement_signatures (
    agreement_id    uuid NOT NULL REFERENCES agreements (id),
    party           text NOT NULL CHECK (party IN ('first', 'second')),
    signer_id       uuid NOT NULL REFERENCES users (id),
    kid             text NOT NULL REFERENCES signing_keys (kid),
    jws             text NOT NULL,
    document_sha256 text NOT NULL,
    signed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agreement_id, party)
);

-- A scope's data version: bumped in the same transaction as any agreement, submission or
-- review change inside it, so caches and ETags agree across replicas.
CREATE TABLE data_versions (
    area_code text PRIMARY KEY REFERENCES areas (code),
    version   bigint NOT NULL DEFAULT 0,
    changed_at timestamptz NOT NULL DEFAULT now()
);
