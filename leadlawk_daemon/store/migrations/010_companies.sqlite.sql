-- Issue 24: one company per chain (docs/chains.md). Each lead's company: leads that share a
-- registrable website domain, or one phone at different addresses, share a company_id;
-- company_size is the branches found. grouped_by says which keys joined them (NULL: a company of
-- one). No foreign key to leads: the grouping is rewritten whole, after the leads it reads.
CREATE TABLE lead_companies (
    place_id     TEXT PRIMARY KEY,
    company_id   TEXT NOT NULL,
    company_size INTEGER NOT NULL CHECK (company_size >= 1),
    grouped_by   TEXT CHECK (grouped_by IN ('domain', 'phone', 'domain+phone')),
    grouped_at   TEXT NOT NULL
);
CREATE INDEX lead_companies_company ON lead_companies (company_id);
-- An id no lead holds any more (its company was joined to another): which company took it over.
CREATE TABLE company_aliases (
    alias      TEXT PRIMARY KEY,
    company_id TEXT NOT NULL,
    merged_at  TEXT NOT NULL
);
