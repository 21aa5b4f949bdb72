-- Answers from keygate's answer cache: a record of one says what the answer cost when it was
-- made (saved_micros); the sums count hits and add up what they saved.
ALTER TABLE usage_records ADD COLUMN saved_micros BIGINT;
ALTER TABLE usage_rollups ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_rollups ADD COLUMN saved_micros BIGINT NOT NULL DEFAULT 0;
