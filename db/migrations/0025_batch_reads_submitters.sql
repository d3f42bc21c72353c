-- A batch re-reads its submitters' accounts (api/ingest.py): a report admitted before
-- its author was deactivated, demoted or moved, that then waited for its batch or its
-- district's ledger head, was stored after that change committed, with a received_at
-- after it. The accounts are read with everything else the batch is checked against,
-- in the same statement (no lock: a change committed after the snapshot comes after
-- this batch's received_at, as a key revoked after its share lock does).
DROP FUNCTION begin_ingest_batch(text[], text[], text[], uuid[], json, uuid[], text[],
                                 double precision);

CREATE FUNCTION begin_ingest_batch(
    lock_names text[], districts text[], key_ids text[], jtis uuid[], probes json,
    pair_users uuid[], pair_keys text[], ttl_s double precision, submitters uuid[])
RETURNS TABLE (head_districts text[], head_seqs bigint[], head_hashes text[],
               now timestamptz, seen uuid[], previous jsonb,
               kids text[], owners uuid[], revoked timestamptz[],
               users uuid[], keys text[], shas text[], statuses int[], responses bytea[],
               created timestamptz[],
               submitter_ids uuid[], submitter_active boolean[], submitter_generations int[],
               submitter_roles text[], submitter_areas text[], submitter_divisions uuid[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    locked_districts text[];
    locked_seqs bigint[];
    locked_hashes text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(s.n, 0))
       FROM (SELECT DISTINCT n FROM unnest(lock_names) AS n ORDER BY n) s;
    SELECT array_agg(h.district_code), array_agg(h.seq), array_agg(h.hash)
      INTO locked_districts, locked_seqs, locked_hashes
      FROM (SELECT DISTINCT d FROM unnest(districts) AS d ORDER BY d) u
     CROSS JOIN LATERAL (SELECT l.district_code, l.seq, l.hash FROM ledger_heads l
                          WHERE l.district_code = u.d FOR UPDATE) h;
    PERFORM pg_advisory_xact_lock(hashtext('kinerja.latest:' || s.d))
       FROM (SELECT DISTINCT d FROM unnest(districts) AS d ORDER BY d) s;
    PERFORM 1
       FROM (SELECT DISTINCT kid FROM unnest(key_ids) AS u(kid) ORDER BY kid) u
      CROSS JOIN LATERAL (SELECT 1 FROM signing_keys k WHERE k.kid = u.kid FOR SHARE) x;
    -- What the batch checks against: the clock; which jtis are stored; per probe, the
    -- latest counting value (district-level and division reports are separate branches,
    -- so each uses its partial index on equality); the keys as they stand; the live
    -- Idempotency-Key records (see db.idempotency.find); the submitters' accounts as they
    -- stand (read in the snapshot the clock follows: a deactivation committed after it
    -- comes after every entry this batch receives).
    RETURN QUERY
    SELECT locked_districts, locked_seqs, locked_hashes,
           clock_timestamp(),
           (SELECT coalesce(array_agg(s.jti), '{}') FROM unnest(jtis) AS j(jti)
             CROSS JOIN LATERAL (SELECT s.jti FROM submissions s WHERE s.jti = j.jti
                                  LIMIT 1) s),
           (SELECT coalesce(jsonb_agg(jsonb_build_array(q.i - 1, p.numerator,
                                                        p.denominator, p.as_of, p.seq)),
                            '[]')
              FROM ROWS FROM (json_to_recordset(probes) AS (district_code text,
                   division_id uuid, indicator_code text, as_of date)) WITH ORDINALITY
                   AS q(district_code, division_id, indicator_code, as_of, i)
             CROSS JOIN LATERAL (
                 (SELECT v.numerator, v.denominator, v.as_of, v.seq
                    FROM submission_values v
                   WHERE q.division_id IS NULL AND v.district_code = q.district_code
                     AND v.indicator_code = q.indicator_code AND v.division_id IS NULL
                     AND v.as_of <= q.as_of AND v.counting
                   ORDER BY v.as_of DESC, v.seq DESC LIMIT 1)
                 UNION ALL
                 (SELECT v.numerator, v.denominator, v.as_of, v.seq
                    FROM submission_values v
                   WHERE q.division_id IS NOT NULL AND v.district_code = q.district_code
                     AND v.indicator_code = q.indicator_code
                     AND v.division_id = q.division_id
                     AND v.as_of <= q.as_of AND v.counting
                   ORDER BY v.as_of DESC, v.seq DESC LIMIT 1)
             ) p),
           k.kids, k.owners, k.revoked,
           r.users, r.keys, r.shas, r.statuses, r.responses, r.created,
           a.ids, a.active, a.generations, a.roles, a.areas, a.divisions
      FROM (SELECT array_agg(s.kid) AS kids, array_agg(s.owner_id) AS owners,
                   array_agg(s.revoked_at) AS revoked
              FROM unnest(key_ids) AS u(kid)
             CROSS JOIN LATERAL (SELECT kid, owner_id, revoked_at FROM signing_keys
                                  WHERE kid = u.kid LIMIT 1) s) k,
           (SELECT array_agg(i.user_id) AS users, array_agg(i.key) AS keys,
                   array_agg(i.request_sha256) AS shas,
                   array_agg(i.status_code) AS statuses,
                   array_agg(i.response) AS responses, array_agg(i.created_at) AS created
              FROM unnest(pair_users, pair_keys) AS p(user_id, key)
             CROSS JOIN LATERAL (SELECT i.user_id, i.key, i.request_sha256, i.status_code,
                                        i.response, i.created_at
                                   FROM idempotency_keys i
                                  WHERE i.user_id = p.user_id AND i.key = p.key
                                    AND i.created_at > now() - make_interval(secs => ttl_s)
                                  LIMIT 1) i) r,
           (SELECT array_agg(u.id) AS ids, array_agg(u.active) AS active,
                   array_agg(u.token_generation) AS generations, array_agg(u.role) AS roles,
                   array_agg(u.area_code) AS areas, array_agg(u.division_id) AS divisions
              FROM unnest(submitters) AS s(id)
             CROSS JOIN LATERAL (SELECT id, active, token_generation, role, area_code,
                                        division_id
                                   FROM users WHERE id = s.id LIMIT 1) u) a;
END $$;
