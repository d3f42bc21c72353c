-- Signed progress submissions (laporan capaian): the JWS kept byte for byte in a
-- per-district hash chain, the values scorecards read, reviews, and idempotency records.

-- The head of each district's chain. Appends lock this row (SELECT ... FOR UPDATE), so
-- concurrent submissions for one district queue and never fork the chain, while other
-- districts' appends do not wait. It also records the last seq and hash, so an entry
-- deleted from the end of a chain is noticed by verification.
CREATE TABLE ledger_heads (
    district_code text PRIMARY KEY REFERENCES areas (code),
    seq           bigint NOT NULL CHECK (seq >= 0),
    hash          text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per accepted-for-storage JWS. hash = sha256(prev_hash as 64 hex ASCII bytes ||
-- jws as ASCII bytes), hex; the first entry's prev_hash is 64 zeros.
CREATE TABLE submissions (
    id               uuid PRIMARY KEY,
    district_code    text NOT NULL REFERENCES areas (code),
    division_id      uuid REFERENCES divisions (id),
    seq              bigint NOT NULL CHECK (seq >= 1),
    prev_hash        text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash             text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    jws              text NOT NULL,
    payload          jsonb NOT NULL,
    jti              uuid NOT NULL UNIQUE,
    iat              timestamptz NOT NULL,
    as_of            date NOT NULL,
    submitter_id     uuid NOT NULL REFERENCES users (id),
    kid              text NOT NULL REFERENCES signing_keys (kid),
    received_at      timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'received'
                         CHECK (status IN ('received', 'accepted', 'returned')),
    flags            text[] NOT NULL DEFAULT '{}',
    note             text,
    supersedes_id    uuid REFERENCES submissions (id),
    supersede_reason text,
    superseded_by    uuid REFERENCES submissions (id),
    UNIQUE (district_code, seq),
    CHECK ((supersedes_id IS NULL) = (supersede_reason IS NULL))
);
-- A submission is corrected at most once (the correction itself may be corrected).
CREATE UNIQUE INDEX submissions_supersedes_key ON submissions (supersedes_id)
    WHERE supersedes_id IS NOT NULL;
-- Listing: newest first, across the caller's scope or one district.
CREATE INDEX submissions_received_idx ON submissions (received_at DESC, id DESC);
CREATE INDEX submissions_district_received_idx
    ON submissions (district_code, received_at DESC, id DESC);
CREATE INDEX submissions_flags_idx ON submissions USING gin (flags);

-- The numbers of each submission, one row per indicator, denormalised so that "the
-- latest counting value per (district, division, indicator) as of a date" is one index
-- probe. District-level reports have division_id NULL. status and superseded mirror the
-- submission and change in the same transaction as it (review, supersession); counting
-- follows from them and cannot disagree.
--   basis "latest":   WHERE counting
--   basis "accepted": WHERE status = 'accepted' AND NOT superseded
CREATE TABLE submission_values (
    submission_id  uuid NOT NULL REFERENCES submissions (id),
    indicator_code text NOT NULL REFERENCES indicators (code),
    district_code  text NOT NULL REFERENCES areas (code),
    division_id    uuid REFERENCES divisions (id),
    as_of          date NOT NULL,
    seq            bigint NOT NULL,
    numerator      bigint NOT NULL CHECK (numerator >= 0),
    denominator    bigint NOT NULL CHECK (denominator > 0),
    stated_pct     numeric,
    channels       jsonb,
    flags          text[] NOT NULL DEFAULT '{}',
    status         text NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'accepted', 'returned')),
    superseded     boolean NOT NULL DEFAULT false,
    counting       boolean GENERATED ALWAYS AS (status <> 'returned' AND NOT superseded) STORED,
    PRIMARY KEY (submission_id, indicator_code)
);
CREATE INDEX submission_values_latest_idx
    ON submission_values (district_code, indicator_code, division_id, as_of DESC, seq DESC)
    WHERE counting;
CREATE INDEX submission_values_accepted_idx
    ON submission_values (district_code, indicator_code, division_id, as_of DESC, seq DESC)
    WHERE status = 'accepted' AND NOT superseded;

-- Every review is kept: who, in which role, when, why.
CREATE TABLE submission_reviews (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    submission_id uuid NOT NULL REFERENCES submissions (id),
    reviewer_id   uuid NOT NULL REFERENCES users (id),
    reviewer_role text NOT NULL,
    decision      text NOT NULL CHECK (decision IN ('accept', 'return')),
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (decision = 'accept' OR reason IS NOT NULL)
);
CREATE INDEX submission_reviews_submission_idx ON submission_reviews (submission_id, created_at);

-- Idempotency-Key records, per user: the fingerprint of the request body and the
-- response first given, replayed for a retry. Rows older than the configured time to
-- live are ignored and purged opportunistically.
CREATE TABLE idempotency_keys (
    user_id        uuid NOT NULL REFERENCES users (id),
    key            text NOT NULL,
    request_sha256 text NOT NULL,
    status_code    integer NOT NULL,
    response       bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
