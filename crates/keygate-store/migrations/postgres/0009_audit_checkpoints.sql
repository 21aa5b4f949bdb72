-- Signed checkpoints of the audit chain: the hash at a sequence number, signed with the audit
-- signing key (Ed25519; its seed sealed under the master key in settings). Kept here and
-- exported, so a copy outside the database can prove the chain was not rewritten after it.
-- signed_at is in milliseconds since the epoch; key_id names the public key that verifies the
-- signature (base64, 64 bytes).
CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);
