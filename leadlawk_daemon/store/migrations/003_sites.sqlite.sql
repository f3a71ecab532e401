-- Site enrichment: one row per website origin (a chain's branches share it: the key is the host
-- without www.), and which site each lead links to. No foreign key to leads: a site may be read
-- before its lead's row is flushed, and it outlives any one lead.
CREATE TABLE sites (
    site            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('ok', 'dead', 'parked', 'blocked')),
    reason          TEXT,
    final_url       TEXT,
    redirects       TEXT NOT NULL DEFAULT '[]',
    http_status     INTEGER,
    https           INTEGER,
    cert_valid      INTEGER,
    http_to_https   INTEGER,
    mobile_viewport INTEGER,
    cms             TEXT,
    generator       TEXT,
    copyright_year  INTEGER,
    last_modified   TEXT,
    page_bytes      INTEGER,
    truncated       INTEGER NOT NULL DEFAULT 0,
    server          TEXT,
    parked          TEXT,
    emails          TEXT NOT NULL DEFAULT '[]',
    rejected_emails TEXT NOT NULL DEFAULT '{}',
    phones          TEXT NOT NULL DEFAULT '[]',
    socials         TEXT NOT NULL DEFAULT '{}',
    contact_form    INTEGER,
    checked_at      TEXT NOT NULL
);

CREATE TABLE lead_sites (
    place_id TEXT PRIMARY KEY,
    site     TEXT NOT NULL
);
CREATE INDEX lead_sites_site ON lead_sites (site);
