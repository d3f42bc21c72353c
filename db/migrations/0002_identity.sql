-- People and service accounts, their scope, the server's token keys, login throttling,
-- and the public keys people register to sign agreements and submissions.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Divisions (bidang) of a district office; a division head is scoped to one.
CREATE TABLE divisions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    district_code text NOT NULL REFERENCES areas (code),
    code          text NOT NULL CHECK (code ~ '^[a-z0-9_]{1,32}$'),
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (district_code, code)
);

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL,
    full_name     text NOT NULL,
    role          text NOT NULL CHECK (role IN (
                      'admin', 'ministry_monitor', 'province_head', 'province_monitor',
                      'region_coordinator', 'district_head', 'division_head', 'integration')),
    area_code     text NOT NULL REFERENCES areas (code),
    division_id   uuid REFERENCES divisions (id),
    -- Extra areas granted to a service account (its scope is area_code plus these).
    extra_areas   text[] NOT NULL DEFAULT '{}',
    password_hash text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'division_head') = (division_id IS NOT NULL)),
    CHECK (role = 'integration' OR extra_areas = '{}')
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_area_idx ON users (area_code);

-- The server's own Ed25519 keys for access tokens; the newest signs, all verify.
CREATE TABLE server_keys (
    kid         text PRIMARY KEY,
    private_pem text NOT NULL,
    public_jwk  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Failed-login counters shared by every replica: one row per account and per address.
CREATE TABLE login_throttle (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);

-- Public keys people sign with (JWK), identified by their RFC 7638 thumbprint.
CREATE TABLE signing_keys (
    kid        text PRIMARY KEY,
    owner_id   uuid NOT NULL REFERENCES users (id),
    kty        text NOT NULL CHECK (kty IN ('OKP', 'EC')),
    alg        text NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
    jwk        jsonb NOT NULL,
    label      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX signing_keys_owner_idx ON signing_keys (owner_id);

-- Regions (wilayah): named groups of one province's districts for one year, each with a
-- coordinator; a region coordinator's scope is the districts of the regions they lead.
CREATE TABLE regions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    province_code  text NOT NULL REFERENCES areas (code),
    year           integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    name           text NOT NULL,
    coordinator_id uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (province_code, year, name)
);
CREATE INDEX regions_coordinator_idx ON regions (coordinator_id);

CREATE TABLE region_members (
    region_id     uuid NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    district_code text NOT NULL REFERENCES areas (code),
    year          integer NOT NULL,
    PRIMARY KEY (region_id, district_code),
    UNIQUE (district_code, year)
);
