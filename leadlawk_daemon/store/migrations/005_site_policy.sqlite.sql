-- Hostile web: two more site statuses, both facts about the lead, never outages:
-- 'unreadable' (a page that passed its CPU budget in the extraction worker: "too slow") and
-- 'blocked_by_policy' (the site, or a redirect on its way, is an address the egress policy
-- refuses). 'capped' records contacts past the per-page cap (kind -> how many were found).
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with the same rows.
CREATE TABLE sites_new (
    site            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('ok', 'dead', 'parked', 'blocked', 'unreadable', 'blocked_by_policy')),
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
    checked_at      TEXT NOT NULL,
    capped          TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO sites_new (site, url, status, reason, final_url, redirects, http_status, https, cert_valid,
    http_to_https, mobile_viewport, cms, generator, copyright_year, last_modified, page_bytes, truncated,
    server, parked, emails, rejected_emails, phones, socials, contact_form, checked_at)
SELECT site, url, status, reason, final_url, redirects, http_status, https, cert_valid,
    http_to_https, mobile_viewport, cms, generator, copyright_year, last_modified, page_bytes, truncated,
    server, parked, emails, rejected_emails, phones, socials, contact_form, checked_at
FROM sites;
DROP TABLE sites;
ALTER TABLE sites_new RENAME TO sites;
