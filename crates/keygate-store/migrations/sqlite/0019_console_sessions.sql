-- The web console's sessions, kept on the server so that they can be ended (signing out, a
-- revoked token) on every node at once. id is the SHA-256 of the cookie's value, never the
-- value; csrf is the token every write of the session carries.
CREATE TABLE console_sessions (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    token_id     TEXT,
    role         TEXT NOT NULL,
    project_id   TEXT,
    name         TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX console_sessions_subject ON console_sessions (subject);
