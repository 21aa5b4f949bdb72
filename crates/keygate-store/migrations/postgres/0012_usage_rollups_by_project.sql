-- A project's report reads its own sums only: the primary key puts the bucket before the
-- project, so a month of one project would range over every project's rows of that month.
CREATE INDEX usage_rollups_by_project ON usage_rollups (grain, org_id, project_id, bucket);
