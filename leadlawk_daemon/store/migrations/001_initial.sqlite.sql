-- The logical schema of INTERFACES.md ("Database"), SQLite dialect.
-- Timestamps are ISO-8601 UTC text of fixed width (so text order is time order), JSON is text,
-- booleans are 0/1. The PostgreSQL twin (001_initial.postgres.sql) holds the same tables and keys.

CREATE TABLE leads (
    place_id      TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    category      TEXT,
    address       TEXT,
    phone         TEXT,
    phone_e164    TEXT,
    website       TEXT,
    rating        REAL,
    review_count  INTEGER,
    latitude      REAL,
    longitude     REAL,
    maps_url      TEXT,
    cid           TEXT,
    plus_code     TEXT,
    hours         TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);

CREATE TABLE pagespeed_results (
    place_id       TEXT NOT NULL REFERENCES leads (place_id) ON DELETE CASCADE,
    strategy       TEXT NOT NULL CHECK (strategy IN ('mobile', 'desktop')),
    performance    REAL CHECK (performance BETWEEN 0 AND 100),
    accessibility  REAL CHECK (accessibility BETWEEN 0 AND 100),
    best_practices REAL CHECK (best_practices BETWEEN 0 AND 100),
    seo            REAL CHECK (seo BETWEEN 0 AND 100),
    fcp_ms         REAL,
    lcp_ms         REAL,
    tbt_ms         REAL,
    speed_index_ms REAL,
    tti_ms         REAL,
    cls            REAL,
    final_url      TEXT,
    error          TEXT,
    field_data     TEXT,
    tested_at      TEXT NOT NULL,
    PRIMARY KEY (place_id, strategy)
);

-- rowid gives insertion order, the tie-break of "oldest queued job first".
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    parent_id        TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    spec             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'partial')),
    found            INTEGER NOT NULL DEFAULT 0,
    qualified        INTEGER NOT NULL DEFAULT 0,
    enriched         INTEGER NOT NULL DEFAULT 0,
    written          INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    progress         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_leasable ON jobs (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_status_created ON jobs (status, created_at);

CREATE TABLE job_leads (
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    place_id  TEXT NOT NULL REFERENCES leads (place_id) ON DELETE CASCADE,
    rank      INTEGER,
    qualified INTEGER CHECK (qualified IN (0, 1)),
    reasons   TEXT,
    PRIMARY KEY (job_id, place_id)
);
CREATE INDEX job_leads_place ON job_leads (place_id);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('message', 'job', 'lead')),
    payload     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    replayed_at TEXT
);
CREATE INDEX dead_letters_pending ON dead_letters (created_at) WHERE replayed_at IS NULL;
