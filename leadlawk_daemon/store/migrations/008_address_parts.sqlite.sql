-- Issue 24: a lead's address in the parts a CRM imports (docs/addresses.md). Each part comes from
-- Google's structured data where the page carried it (address_source 'google'), else from a parse
-- of the formatted address by the country's format ('parsed'). country_code is ISO 3166-1 alpha-2.
-- kind: 'address' for a result Google shows for a street address or locality, not a business.
ALTER TABLE leads ADD COLUMN street TEXT;
ALTER TABLE leads ADD COLUMN locality TEXT;
ALTER TABLE leads ADD COLUMN region TEXT;
ALTER TABLE leads ADD COLUMN postal_code TEXT;
ALTER TABLE leads ADD COLUMN country_code TEXT CHECK (country_code IS NULL OR length(country_code) = 2);
ALTER TABLE leads ADD COLUMN address_source TEXT CHECK (address_source IN ('google', 'parsed'));
ALTER TABLE leads ADD COLUMN kind TEXT NOT NULL DEFAULT 'business' CHECK (kind IN ('business', 'address'));
