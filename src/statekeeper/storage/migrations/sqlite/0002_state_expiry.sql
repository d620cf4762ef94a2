-- The purger finds expired rows without scanning the table.
CREATE INDEX sk_state_expiry ON sk_state (expires_at) WHERE expires_at IS NOT NULL;
