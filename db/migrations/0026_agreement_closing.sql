-- An active agreement can be closed (DESIGN: draft -> signed_by_second -> active, then
-- superseded by an amendment or closed): it stops applying from its ended_at, and who
-- closed it and why are kept beside it.
ALTER TABLE agreements
    ADD COLUMN closed_by uuid REFERENCES users (id),
    ADD COLUMN close_reason text,
    ADD CONSTRAINT agreements_closed_check
        CHECK ((status = 'closed') = (closed_by IS NOT NULL AND close_reason IS NOT NULL
                                      AND ended_at IS NOT NULL));
