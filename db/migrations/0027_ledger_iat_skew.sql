-- The loosest iat skew (KINERJA_SUBMISSION_IAT_MAX_SKEW_S) this database has taken reports
-- under, raised by every server start that runs with a looser one (db/ledger.py). Ledger
-- verify judges a stored entry's iat by it: a signature dated well after its receipt was
-- put there later, but tightening the setting must not make entries taken in under the
-- looser one read as broken.
CREATE TABLE ledger_bounds (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    iat_skew_s integer NOT NULL CHECK (iat_skew_s >= 0)
);
