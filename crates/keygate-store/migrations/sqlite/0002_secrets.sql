-- Upstream secrets: named per project, each value a version sealed by envelope encryption.

CREATE TABLE secrets (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    project_id      TEXT NOT NULL REFERENCES projects (id),
    name            TEXT NOT NULL,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER,
    -- Rotation policy: the current version is due this long after it became current.
    rotate_every_ms INTEGER,
    -- The current version for which "rotation due" was announced, so it is announced once.
    due_announced   INTEGER
);
-- A deleted secret's name may be used again.
CREATE UNIQUE INDEX secrets_by_name ON secrets (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE secret_versions (
    secret_id      TEXT NOT NULL REFERENCES secrets (id),
    version        INTEGER NOT NULL,
    stage          TEXT NOT NULL CHECK (stage IN ('pending', 'current', 'previous', 'retired')),
    kek_id         TEXT NOT NULL,
    wrapped_dek    TEXT NOT NULL,
    sealed         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    -- When the version became current (a pending version is promoted after it was created).
    promoted_at    INTEGER,
    previous_until INTEGER,
    PRIMARY KEY (secret_id, version)
);
-- The work left in a KEK rotation is found by KEK.
CREATE INDEX secret_versions_by_kek ON secret_versions (kek_id);
