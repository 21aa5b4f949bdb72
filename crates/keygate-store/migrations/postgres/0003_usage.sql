-- One row per proxied request: who, which model and deployment, how it went, tokens and
-- cost. Never the key itself or the payload.
CREATE TABLE usage_records (
    id                TEXT PRIMARY KEY,
    at                BIGINT NOT NULL,
    org_id            TEXT NOT NULL,
    project_id        TEXT,
    key_id            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    model             TEXT NOT NULL,
    deployment        TEXT,
    provider          TEXT,
    status            BIGINT NOT NULL,
    error_code        TEXT,
    streamed          BIGINT NOT NULL,
    attempts          BIGINT NOT NULL,
    latency_ms        BIGINT NOT NULL,
    ttft_ms           BIGINT,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    token_source      TEXT NOT NULL,
    cost_micros       BIGINT,
    client_ip         TEXT,
    user_agent        TEXT
);

CREATE INDEX usage_records_org_at ON usage_records (org_id, at);
CREATE INDEX usage_records_key_at ON usage_records (key_id, at);
