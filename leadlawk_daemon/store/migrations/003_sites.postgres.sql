-- Site enrichment: one row per website origin (a chain's branches share it: the key is the host
-- without www.), and which site each lead links to. No foreign key to leads: a site may be read
-- before its lead's row is flushed, and it outlives any one lead.
CREATE TABLE sites (
    site            text PRIMARY KEY,
    url             text NOT NULL,
    status          text NOT NULL CHECK (status IN ('ok', 'dead', 'parked', 'blocked')),
    reason          text,
    final_url       text,
    redirects       jsonb NOT NULL DEFAULT '[]',
    http_status     integer,
    https           boolean,
    cert_valid      boolean,
    http_to_https   boolean,
    mobile_viewport boolean,
    cms             text,
    generator       text,
    copyright_year  integer,
    last_modified   date,
    page_bytes      integer,
    truncated       boolean NOT NULL DEFAULT false,
    server          text,
    parked          text,
    emails          jsonb NOT NULL DEFAULT '[]',
    rejected_emails jsonb NOT NULL DEFAULT '{}',
    phones          jsonb NOT NULL DEFAULT '[]',
    socials         jsonb NOT NULL DEFAULT '{}',
    contact_form    boolean,
    checked_at      timestamptz NOT NULL
);

CREATE TABLE lead_sites (
    place_id text PRIMARY KEY,
    site     text NOT NULL
);
CREATE INDEX lead_sites_site ON lead_sites (site);
