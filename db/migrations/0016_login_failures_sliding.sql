-- Failed logins are counted over the last window, not in fixed windows: a fixed window
-- restarted at the first failure after it ended, so four failures just before its end
-- and four just after made eight within seconds and no lock, where five within the
-- window lock an account (found by review). Each key keeps the times of its failures
-- still inside the window (at most the limit: the one that reaches it locks the key and
-- empties the list).
ALTER TABLE login_throttle
    DROP COLUMN failures,
    DROP COLUMN window_start,
    ADD COLUMN recent timestamptz[] NOT NULL DEFAULT '{}';
