-- An anomaly's throttle on a key (JSON: until, the cut request rates, the reason), lapsing on
-- its own; and each project's own anomaly actions (JSON: detector name → action).
ALTER TABLE api_keys ADD COLUMN throttle TEXT;
ALTER TABLE projects ADD COLUMN anomaly_actions TEXT;
