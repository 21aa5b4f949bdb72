-- The keys that sign keygate's access tokens (Ed25519, PKCS#8), each sealed by the KEK.
-- kid is the RFC 7638 thumbprint of the public key; a key signs from signs_from until the
-- next one starts, and is deleted once no token it signed can still be live.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    kek_id     TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    signs_from BIGINT NOT NULL
);
