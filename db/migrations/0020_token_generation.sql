-- Tokens issued before an account was deactivated or had its password set end for good
-- (found by review): deactivation only refused a token while the account stayed
-- inactive, so suspend, reset the password, reactivate (the answer to a stolen account)
-- brought the thief's token back until it expired. Each such change moves the user's
-- token generation; a token carries the generation its login read together with the
-- password it checked (api/identity.py), and one of an earlier generation is refused
-- (api/auth/middleware.py). A count, not a time: a login with the new password in the
-- same second works, and one with the old password racing the change does not.
ALTER TABLE users ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
