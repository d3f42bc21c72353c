-- An active agreement can be closed (DESIGN: draft -> signed_by_second -> active, then
-- superseded by an amendment or closed): it stops applying from its ended_at, and who
-- closed it and why are kept beside it (none for one closed with SQL before this).
ALTER TABLE agreements
    ADD COLUMN closed_by uuid REFERENCES users (id),
    ADD COLUMN close_reason text,
    ADD CONSTRAINT agreements_closed_check
        CHECK ((closed_by IS NULL) = (close_reason IS NULL)
               AND (closed_by IS NULL OR (status = 'closed' AND ended_at IS NOT NULL)));
