-- When a key last made a change (a POST, PUT, PATCH or DELETE through a proxy route, or a
-- write permission granted by the verify API): access reviews name write scopes never used.
ALTER TABLE api_keys ADD COLUMN last_write_at INTEGER;
