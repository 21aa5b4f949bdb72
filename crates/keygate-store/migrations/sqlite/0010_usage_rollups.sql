-- Usage summed per hour and per UTC day, by organisation, project ('' for keys without one),
-- key, model and status: written with each batch of usage records, so reports read a few rows
-- per period instead of every request. bucket is the period's start in milliseconds
-- since the epoch; cost_micros sums the priced requests, unpriced counts the others.
CREATE TABLE usage_rollups (
    grain             TEXT NOT NULL,
    org_id            TEXT NOT NULL,
    bucket            BIGINT NOT NULL,
    project_id        TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    model             TEXT NOT NULL,
    status            BIGINT NOT NULL,
    requests          BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    cost_micros       BIGINT NOT NULL,
    unpriced          BIGINT NOT NULL,
    PRIMARY KEY (grain, org_id, bucket, project_id, key_id, model, status)
);

-- The records already kept, summed.
INSERT INTO usage_rollups
SELECT g.grain, org_id, (at / g.ms) * g.ms, COALESCE(project_id, ''), key_id, model, status,
       COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens),
       COALESCE(SUM(cost_micros), 0), SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END)
FROM usage_records
CROSS JOIN (SELECT 'hour' AS grain, 3600000 AS ms UNION ALL SELECT 'day', 86400000) AS g
GROUP BY g.grain, g.ms, org_id, (at / g.ms) * g.ms, COALESCE(project_id, ''), key_id, model, status;
