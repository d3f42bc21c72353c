-- The locks an ingest batch takes (db/appends.py), in one round trip and in the order
-- every writer takes them: Idempotency-Key locks, then ledger heads, then each
-- district's latest-values lock, then the signing keys (shared); each set sorted. A
-- function rather than one statement because the order in which a statement evaluates
-- its parts is not promised, and that order is what keeps two batches, or a batch and a
-- single append or a review, from deadlocking. Returns the heads it locked: a district
-- missing from them has no head yet (the caller rolls back and makes it first).
CREATE FUNCTION lock_ingest_batch(names text[], districts text[], kids text[])
RETURNS TABLE (district_code text, seq bigint, hash text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(s.n, 0))
       FROM (SELECT DISTINCT n FROM unnest(names) AS n ORDER BY n) s;
    RETURN QUERY
        SELECT h.district_code, h.seq, h.hash FROM ledger_heads h
         WHERE h.district_code = ANY(districts) ORDER BY h.district_code FOR UPDATE;
    PERFORM pg_advisory_xact_lock(hashtext('kinerja.latest:' || s.d))
       FROM (SELECT DISTINCT d FROM unnest(districts) AS d ORDER BY d) s;
    PERFORM 1 FROM signing_keys k WHERE k.kid = ANY(kids) ORDER BY k.kid FOR SHARE;
END $$;
