-- Model groups managed through the admin API (those in keygate.toml are not stored). The
-- config is the group's JSON as the API accepted it; the revision in `settings`
-- (`model_groups_revision`) changes with every write, so other nodes know to reload.
CREATE TABLE model_groups (
    alias      TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
