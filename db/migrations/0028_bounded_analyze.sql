-- ANALYZE of the tables every report grows reads a bounded sample, and skips the columns
-- no query filters, joins or sorts on. With the default target (100) ANALYZE samples
-- 30,000 rows and sorts each column's values, and autovacuum runs it again after every
-- 10% of growth. On 136,000 stored reports it took 454 ms for submissions, 128 for
-- submission_values and 229 for idempotency_keys; run during ingest at 2,000 reports/s on
-- 2 cores, the three took 1,145 ms and the p99 of the two seconds after went to 218 ms.
-- With target 10 (3,000 rows) and none for the signed bytes, the payload, the hashes and
-- the stored answers: 22, 18 and 18 ms idle; 97 ms during ingest, and a p99 of 25 ms
-- after (bench/analyze_cost.py, both in turns). The columns that keep a target are the
-- ones reads filter on, where 10 histogram buckets and 10 common values still tell a
-- district or a status from the rest.
ALTER TABLE submissions
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN district_code SET STATISTICS 10,
    ALTER COLUMN division_id SET STATISTICS 10,
    ALTER COLUMN seq SET STATISTICS 10,
    ALTER COLUMN jti SET STATISTICS 10,
    ALTER COLUMN iat SET STATISTICS 10,
    ALTER COLUMN as_of SET STATISTICS 10,
    ALTER COLUMN submitter_id SET STATISTICS 10,
    ALTER COLUMN kid SET STATISTICS 10,
    ALTER COLUMN received_at SET STATISTICS 10,
    ALTER COLUMN status SET STATISTICS 10,
    ALTER COLUMN flags SET STATISTICS 10,
    ALTER COLUMN supersedes_id SET STATISTICS 10,
    ALTER COLUMN superseded_by SET STATISTICS 10,
    ALTER COLUMN jws SET STATISTICS 0,
    ALTER COLUMN payload SET STATISTICS 0,
    ALTER COLUMN prev_hash SET STATISTICS 0,
    ALTER COLUMN hash SET STATISTICS 0,
    ALTER COLUMN note SET STATISTICS 0,
    ALTER COLUMN supersede_reason SET STATISTICS 0;

ALTER TABLE submission_values
    ALTER COLUMN submission_id SET STATISTICS 10,
    ALTER COLUMN indicator_code SET STATISTICS 10,
    ALTER COLUMN district_code SET STATISTICS 10,
    ALTER COLUMN division_id SET STATISTICS 10,
    ALTER COLUMN as_of SET STATISTICS 10,
    ALTER COLUMN seq SET STATISTICS 10,
    ALTER COLUMN numerator SET STATISTICS 10,
    ALTER COLUMN denominator SET STATISTICS 10,
    ALTER COLUMN stated_pct SET STATISTICS 10,
    ALTER COLUMN flags SET STATISTICS 10,
    ALTER COLUMN status SET STATISTICS 10,
    ALTER COLUMN superseded SET STATISTICS 10,
    ALTER COLUMN counting SET STATISTICS 10,
    ALTER COLUMN channels SET STATISTICS 0;

ALTER TABLE idempotency_keys
    ALTER COLUMN user_id SET STATISTICS 10,
    ALTER COLUMN key SET STATISTICS 10,
    ALTER COLUMN status_code SET STATISTICS 10,
    ALTER COLUMN created_at SET STATISTICS 10,
    ALTER COLUMN request_sha256 SET STATISTICS 0,
    ALTER COLUMN response SET STATISTICS 0;
