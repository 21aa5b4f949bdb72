-- Leases: a named job (pruning old usage records, say) that one node at a time runs. A node
-- takes a lease that is free or expired, or renews its own; until is in milliseconds since
-- the epoch.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
