-- A key's limits (request rates, a cap on requests in flight) as JSON; `{}` is none.
ALTER TABLE api_keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
