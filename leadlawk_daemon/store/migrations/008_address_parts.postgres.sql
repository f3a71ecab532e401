-- Issue 24: a lead's address in the parts a CRM imports (docs/addresses.md). Each part comes from
-- Google's structured data where the page carried it (address_source 'google'), else from a parse
-- of the formatted address by the country's format ('parsed'). country_code is ISO 3166-1 alpha-2.
-- kind: 'address' for a result Google shows for a street address or locality, not a business.
ALTER TABLE leads ADD COLUMN street text;
ALTER TABLE leads ADD COLUMN locality text;
ALTER TABLE leads ADD COLUMN region text;
ALTER TABLE leads ADD COLUMN postal_code text;
ALTER TABLE leads ADD COLUMN country_code text CHECK (country_code ~ '^[A-Z]{2}$');
ALTER TABLE leads ADD COLUMN address_source text CHECK (address_source IN ('google', 'parsed'));
ALTER TABLE leads ADD COLUMN kind text NOT NULL DEFAULT 'business' CHECK (kind IN ('business', 'address'));
