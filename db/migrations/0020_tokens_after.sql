-- Tokens issued before an account was deactivated or had its password set end for good
-- (found by review): deactivation only refused a token while the account stayed
-- inactive, so suspend, reset the password, reactivate (the answer to a stolen account)
-- brought the thief's token back until it expired. Access tokens are checked against
-- this time (api/auth/middleware.py): one issued up to that second is refused.
ALTER TABLE users ADD COLUMN tokens_after timestamptz;
