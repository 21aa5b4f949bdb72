-- A project's limits, counted for all its keys together, as JSON in the shape of a key's
-- `limits`; `{}` is none.
ALTER TABLE projects ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
