-- Recurring schedules (issue 22): a job spec fired at a cron expression's times in an IANA zone,
-- exactly once per due time across every daemon on this database.
-- next_due_at is the earliest due time not yet handled; a daemon claims a due schedule for a
-- moment (claimed_by, claim_expires_at, on the database's clock) and, in one transaction, moves
-- next_due_at on (compare-and-set on its old value), records each due time in schedule_fires and
-- inserts the job. The job's id is derived from the schedule and the due time, so the jobs key and
-- schedule_fires' (schedule_id, due_at) key both refuse a second fire of one due time.
CREATE TABLE schedules (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    spec             jsonb NOT NULL,
    cron             text NOT NULL,
    tz               text NOT NULL,
    catch_up         text NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'none')),
    overlap          text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue')),
    deliver          jsonb NOT NULL DEFAULT '[]'::jsonb,
    deliver_empty    boolean NOT NULL DEFAULT true,
    paused           boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    next_due_at      timestamptz NOT NULL,
    claimed_by       text,
    claim_expires_at timestamptz
);
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE NOT paused;

CREATE TABLE schedule_fires (
    schedule_id text NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    due_at      timestamptz NOT NULL,
    job_id      text,
    outcome     text NOT NULL CHECK (outcome IN ('fired', 'skipped_overlap', 'missed', 'queued')),
    fired_at    timestamptz NOT NULL,
    -- Why a due time did not fire as planned (a stored spec that no longer validates), else NULL.
    detail      text,
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX schedule_fires_job ON schedule_fires (job_id) WHERE job_id IS NOT NULL;
-- A 'queued' fire's job is created once the previous fire's job has finished.
CREATE INDEX schedule_fires_waiting ON schedule_fires (due_at) WHERE outcome = 'queued';
