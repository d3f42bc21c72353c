-- Each worker remembers the unit of every indicator code it has seen
-- (db/submissions.known_indicators). An indicator no value or target uses yet can be
-- removed and added again with another unit, and only the worker that did it forgot
-- what it knew: the others kept flagging reports in the old unit. Any change to the
-- catalogue is now notified, and every worker's change feed forgets the units it knew.
CREATE FUNCTION notify_catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kinerja_catalogue', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER indicators_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON indicators
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalogue_changed();
