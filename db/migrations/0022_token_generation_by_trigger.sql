-- A user's token generation moves in the database itself, whoever changes the row: an
-- operator deactivating someone with SQL (UPDATE users SET active = false) ended their
-- tokens only while the row stayed inactive, and reactivating it with SQL revived
-- every token issued before. Same rule as the API kept (db/users.py): deactivating, or
-- setting a password (a new hash, even of the same password), ends every earlier token.
CREATE FUNCTION users_token_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (OLD.active AND NOT NEW.active) OR NEW.password_hash IS DISTINCT FROM OLD.password_hash THEN
        NEW.token_generation := OLD.token_generation + 1;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER users_token_generation BEFORE UPDATE OF active, password_hash ON users
    FOR EACH ROW EXECUTE FUNCTION users_token_generation();
