-- Two costs every append paid for nothing (found with perf during ingest).
--
-- A value row's district and division are copies of its submission's, written from the
-- same entry in the same statement (db/submissions.py, db/appends.py); the submission
-- row's own foreign keys already hold them to real areas and divisions. Checking the
-- copies again cost two more foreign-key probes per value.
ALTER TABLE submission_values
    DROP CONSTRAINT submission_values_district_code_fkey,
    DROP CONSTRAINT submission_values_division_id_fkey;

-- A stored Idempotency-Key answer is a whole 201 body (the payload and the JWS in it),
-- a little over the 2 kB at which PostgreSQL starts compressing a row: pglz was about
-- 5% of the server's CPU during ingest, for rows read back only on a retry and purged
-- after a day. Rows up to a page stay inline and uncompressed.
ALTER TABLE idempotency_keys SET (toast_tuple_target = 8160);
