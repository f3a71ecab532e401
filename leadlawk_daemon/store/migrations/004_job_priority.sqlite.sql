-- A job's priority (the spec's optional "priority", 0-9, default 5): leasing takes the highest
-- first, then the oldest. Its own column, not the spec's JSON, so the lease query has an index.
-- No stored spec carries a priority before this version (the field was rejected), so 5 is right
-- for every existing row.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 9);
DROP INDEX jobs_leasable;
CREATE INDEX jobs_leasable ON jobs (priority DESC, created_at) WHERE status IN ('queued', 'running');
