-- Latency in the sums: latency_ms adds up the latency of the requests counted in timed, so a
-- report gives the average over whole days and months. Sums of records already pruned stay
-- untimed (timed = 0): their latency is unknown, never counted as zero.
ALTER TABLE usage_rollups ADD COLUMN latency_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN timed BIGINT NOT NULL DEFAULT 0;
UPDATE usage_rollups SET
    latency_ms = COALESCE((
        SELECT SUM(r.latency_ms) FROM usage_records r
        WHERE r.org_id = usage_rollups.org_id
          AND r.at >= usage_rollups.bucket
          AND r.at < usage_rollups.bucket
              + CASE WHEN usage_rollups.grain = 'hour' THEN 3600000 ELSE 86400000 END
          AND COALESCE(r.project_id, '') = usage_rollups.project_id
          AND r.key_id = usage_rollups.key_id
          AND r.model = usage_rollups.model
          AND r.status = usage_rollups.status), 0),
    timed = (
        SELECT COUNT(*) FROM usage_records r
        WHERE r.org_id = usage_rollups.org_id
          AND r.at >= usage_rollups.bucket
          AND r.at < usage_rollups.bucket
              + CASE WHEN usage_rollups.grain = 'hour' THEN 3600000 ELSE 86400000 END
          AND COALESCE(r.project_id, '') = usage_rollups.project_id
          AND r.key_id = usage_rollups.key_id
          AND r.model = usage_rollups.model
          AND r.status = usage_rollups.status);
