-- Announcements made once: a key's coming expiry, its rotation falling due. marker tells
-- one occurrence from the next (the expiry or due instant), so a changed expiry is
-- announced again.
CREATE TABLE announcements (
    kind         TEXT NOT NULL,
    target       TEXT NOT NULL,
    marker       INTEGER NOT NULL,
    announced_at INTEGER NOT NULL,
    PRIMARY KEY (kind, target, marker)
);
