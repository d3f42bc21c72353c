-- The first party's official may be acting too (PLT/PLH): a province head replaced by a
-- PLT is a change of official (mutasi) like any other, and the signed document says
-- so. Until now only the second party could be named acting; existing rows are not.
ALTER TABLE agreements ADD COLUMN first_acting text CHECK (first_acting IN ('plt', 'plh'));
