-- Site technology (docs/site-enrichment.md, "Site technology"): every technology the Wappalyzer
-- fingerprints recognise on the site's home page (CMS, builder, shop, analytics, booking), as
-- their slugs (["wordpress", "woocommerce", "google-analytics"]). 'cms' stays the one that made
-- the site. Exported as site_tech; sites read before this migration have none ([]).
ALTER TABLE sites ADD COLUMN tech TEXT NOT NULL DEFAULT '[]';
