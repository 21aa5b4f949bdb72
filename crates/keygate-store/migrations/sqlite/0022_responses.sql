-- Responses API answers kept for `previous_response_id`, per project: the response object as
-- the client got it, the conversation that led to it (input items), and the alias it was asked
-- of (a key reads it only with that alias's scope), until expires_at.
CREATE TABLE responses (
    project_id   TEXT NOT NULL,
    id           TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    model        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    response     TEXT NOT NULL,
    conversation TEXT NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX responses_by_age ON responses (project_id, created_at);
CREATE INDEX responses_by_expiry ON responses (expires_at);
