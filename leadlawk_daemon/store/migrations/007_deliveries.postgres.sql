-- Deliveries (issue 22, docs/deliveries.md): one row per (finished job, destination), made in the
-- transaction that takes the job's new leads into its schedule's ledger, so a crash between a job's
-- end and its digest loses nothing (the sweep makes what is missing) and a lead is delivered to a
-- schedule once, whatever order that schedule's runs finish in.
CREATE TABLE deliveries (
    id              text PRIMARY KEY,
    destination     text NOT NULL,
    job_id          text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    schedule_id     text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    leads           jsonb NOT NULL DEFAULT '[]'::jsonb,
    summary         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_job ON deliveries (job_id);
CREATE INDEX deliveries_created ON deliveries (created_at);
-- The sweep's question: finished jobs that name destinations (few among all jobs).
CREATE INDEX jobs_notify_finished ON jobs (finished_at) WHERE (spec -> 'notify') IS NOT NULL;

-- The per-schedule ledger: a lead (place) is delivered to a schedule once, ever.
CREATE TABLE delivered_leads (
    schedule_id  text NOT NULL,
    place_id     text NOT NULL,
    delivery_id  text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    delivered_at timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, place_id)
);

-- A delivery a destination refused (a 4xx other than 429) is dead-lettered as kind 'delivery'.
ALTER TABLE dead_letters DROP CONSTRAINT IF EXISTS dead_letters_kind_check;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_kind_check
    CHECK (kind IN ('message', 'job', 'lead', 'delivery'));
