-- A lead that fails a stage is that lead's failure, recorded on its job_leads row; the job goes on.
-- status: ok, or failed with the stage and reason in error. A job handed back during a long outage
-- waits in the queue until not_before, so that other jobs get its slot meanwhile.
ALTER TABLE job_leads ADD COLUMN status text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'failed'));
ALTER TABLE job_leads ADD COLUMN error text;
ALTER TABLE jobs ADD COLUMN not_before timestamptz;
