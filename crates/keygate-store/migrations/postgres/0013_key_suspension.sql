-- A suspended key is refused until resumed: a reversible stop beside the final revocation.
ALTER TABLE api_keys ADD COLUMN suspended_at BIGINT;
ALTER TABLE api_keys ADD COLUMN suspended_reason TEXT;
