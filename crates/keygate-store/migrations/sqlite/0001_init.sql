-- keygate schema, SQLite flavour. Ids are TEXT, instants are integer milliseconds since the
-- epoch, JSON is TEXT: the PostgreSQL schema holds the same values the same way.

CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('api', 'admin')),
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    project_id      TEXT REFERENCES projects (id),
    name            TEXT NOT NULL,
    env             TEXT NOT NULL CHECK (env IN ('live', 'test')),
    role            TEXT,
    scopes          TEXT NOT NULL,
    expires_at      INTEGER,
    ip_allow        TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER,
    revoked_reason  TEXT,
    deleted_at      INTEGER,
    rotate_every_ms INTEGER,
    rotated_at      INTEGER,
    generation      INTEGER NOT NULL,
    hint            TEXT NOT NULL
);
CREATE INDEX api_keys_by_org ON api_keys (org_id, kind, id);
CREATE INDEX api_keys_by_project ON api_keys (project_id, kind, id);

-- Every secret a key ever had, as HMAC digests: a deleted or rotated-out key keeps its rows.
CREATE TABLE key_secrets (
    digest      BLOB PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    generation  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    grace_until INTEGER
);
CREATE INDEX key_secrets_by_key ON key_secrets (key_id);

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    org_id     TEXT,
    project_id TEXT,
    target     TEXT,
    details    TEXT NOT NULL,
    client_ip  TEXT,
    request_id TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_events_by_org ON audit_events (org_id, seq);

-- The newest audit entry, updated in the same transaction as each append.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE idempotency (
    scope       TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
