-- Hostile web: two more site statuses, both facts about the lead, never outages:
-- 'unreadable' (a page that passed its CPU budget in the extraction worker: "too slow") and
-- 'blocked_by_policy' (the site, or a redirect on its way, is an address the egress policy
-- refuses). 'capped' records contacts past the per-page cap (kind -> how many were found).
ALTER TABLE sites DROP CONSTRAINT IF EXISTS sites_status_check;
ALTER TABLE sites ADD CONSTRAINT sites_status_check
    CHECK (status IN ('ok', 'dead', 'parked', 'blocked', 'unreadable', 'blocked_by_policy'));
ALTER TABLE sites ADD COLUMN capped jsonb NOT NULL DEFAULT '{}';
