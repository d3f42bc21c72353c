-- Each API worker keeps the per-area data versions and the callers it authenticates in
-- memory. These notifications, sent at commit and delivered in commit order, keep those
-- copies current on every replica; a truncation or deletion tells them to reload.

CREATE FUNCTION notify_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_versions', NEW.area_code || ' ' || NEW.version);
    RETURN NULL;
END $$;

CREATE FUNCTION notify_data_versions_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_versions', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER data_versions_notify AFTER INSERT OR UPDATE ON data_versions
    FOR EACH ROW EXECUTE FUNCTION notify_data_version();
CREATE TRIGGER data_versions_reset AFTER DELETE OR TRUNCATE ON data_versions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions_reset();

CREATE FUNCTION notify_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_users', OLD.id::text);
    RETURN NULL;
END $$;

CREATE FUNCTION notify_users_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_users', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER users_notify AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_user_change();
CREATE TRIGGER users_reset AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_users_reset();
