-- Tokens end by generation, not by time. 0020's tokens_after was found wanting by review:
-- a login with the new password in the second of a change got a token refused at once,
-- and one with the old password racing the change got one dated after it that survived.
-- Each deactivation or password change moves the user's token generation; a token
-- carries the generation its login read together with the password it checked
-- (api/identity.py), and one of another generation is refused (api/auth/middleware.py).
ALTER TABLE users DROP COLUMN tokens_after,
    ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
