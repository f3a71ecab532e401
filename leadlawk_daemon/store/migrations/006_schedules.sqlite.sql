-- Recurring schedules (issue 22), SQLite dialect: the same tables and keys as
-- 006_schedules.postgres.sql (timestamps as fixed-width UTC text, JSON as text, booleans 0/1).
CREATE TABLE schedules (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    spec             TEXT NOT NULL,
    cron             TEXT NOT NULL,
    tz               TEXT NOT NULL,
    catch_up         TEXT NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'none')),
    overlap          TEXT NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue')),
    deliver          TEXT NOT NULL DEFAULT '[]',
    deliver_empty    INTEGER NOT NULL DEFAULT 1,
    paused           INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    next_due_at      TEXT NOT NULL,
    claimed_by       TEXT,
    claim_expires_at TEXT
);
CREATE INDEX schedules_due ON schedules (next_due_at) WHERE NOT paused;

CREATE TABLE schedule_fires (
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    due_at      TEXT NOT NULL,
    job_id      TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('fired', 'skipped_overlap', 'missed', 'queued')),
    fired_at    TEXT NOT NULL,
    detail      TEXT,
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX schedule_fires_job ON schedule_fires (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX schedule_fires_waiting ON schedule_fires (due_at) WHERE outcome = 'queued';
