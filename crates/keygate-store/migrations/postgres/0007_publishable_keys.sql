-- A publishable key's allowed origins as a JSON array of text; NULL for every other key.
-- One nullable column rather than a flag beside a list: a publishable key without origins
-- cannot be written.
ALTER TABLE api_keys ADD COLUMN publishable_origins TEXT;
