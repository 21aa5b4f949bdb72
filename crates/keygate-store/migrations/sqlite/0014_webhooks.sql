-- Alerts as webhooks: endpoints, a durable outbox of events, and one delivery per event and
-- endpoint with its attempts. Instants are milliseconds since the epoch.

-- An endpoint's signing secret is sealed by the KEK (kek_id names it, so a KEK rotation
-- finds and re-wraps it); event_types is a JSON array of names, [] for every event.
CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    project_id    TEXT REFERENCES projects (id),
    url           TEXT NOT NULL,
    description   TEXT NOT NULL,
    event_types   TEXT NOT NULL,
    kek_id        TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    disabled_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    deleted_at    INTEGER
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id);

-- org_id is NULL for the store's own events (a KEK rotation), which every organisation hears.
-- payload is the body sent, written once so that every attempt sends the same bytes.
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT,
    project_id  TEXT,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A delivery is claimed by one node at a time (locked_until) and tried at next_at until
-- delivered or dead (its attempts used up, or its endpoint deleted).
CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    delivered_at INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);

-- Where a job that reads a log in order has got to (the audit log's events announced so far).
CREATE TABLE cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
