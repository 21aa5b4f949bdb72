-- What the anomaly detectors found: the figures that showed it (never a secret), what the
-- policy said to do and what was done, and whether someone looked at it.
CREATE TABLE anomalies (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    project_id      TEXT,
    key_id          TEXT,
    detector        TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    detected_at     BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    note            TEXT
);
CREATE INDEX anomalies_by_org ON anomalies (org_id, id);
