-- Email verdicts (docs/email-verdicts.md): each address of a site judged by its domain's DNS and
-- by what it is, in the order of 'emails' ([{email, status, role, free_mail, matches_website}]),
-- and the site's primary address (a deliverable domain, the website's own before others, a
-- person before a role inbox). Leads read both through lead_sites, as the export does.
ALTER TABLE sites ADD COLUMN email_verdicts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sites ADD COLUMN primary_email TEXT;
