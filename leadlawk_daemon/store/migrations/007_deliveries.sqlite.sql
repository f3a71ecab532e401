-- Deliveries (issue 22, docs/deliveries.md): one row per (finished job, destination), made in the
-- transaction that takes the job's new leads into its schedule's ledger, so a crash between a job's
-- end and its digest loses nothing (the sweep makes what is missing) and a lead is delivered to a
-- schedule once, whatever order that schedule's runs finish in.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    destination     TEXT NOT NULL,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    schedule_id     TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    leads           TEXT NOT NULL DEFAULT '[]',
    summary         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_job ON deliveries (job_id);
CREATE INDEX deliveries_created ON deliveries (created_at);
-- The sweep's question: finished jobs that name destinations (few among all jobs).
CREATE INDEX jobs_notify_finished ON jobs (finished_at) WHERE json_extract(spec, '$.notify') IS NOT NULL;

-- The per-schedule ledger: a lead (place) is delivered to a schedule once, ever.
CREATE TABLE delivered_leads (
    schedule_id  TEXT NOT NULL,
    place_id     TEXT NOT NULL,
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (schedule_id, place_id)
);

-- A delivery a destination refused (a 4xx other than 429) is dead-lettered as kind 'delivery'.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with the same rows.
CREATE TABLE dead_letters_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('message', 'job', 'lead', 'delivery')),
    payload     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    replayed_at TEXT
);
INSERT INTO dead_letters_new (id, kind, payload, reason, attempts, created_at, replayed_at)
SELECT id, kind, payload, reason, attempts, created_at, replayed_at FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_new RENAME TO dead_letters;
CREATE INDEX dead_letters_pending ON dead_letters (created_at) WHERE replayed_at IS NULL;
