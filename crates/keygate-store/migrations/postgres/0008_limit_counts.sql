-- The quota and budget counts of nodes that limit without Redis, saved every few seconds so a
-- restart does not make them whole again. One row per limit (`key:<id>:quota:day`, ...): the
-- start of the window counted and what was used in it, both in the limiter's units
-- (window_start in microseconds since the epoch; uses, or micro-dollars). updated_at is in
-- milliseconds, as every other instant of the store.
CREATE TABLE limit_counts (
    name         TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX limit_counts_window_start ON limit_counts (window_start);
