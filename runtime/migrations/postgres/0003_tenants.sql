-- Merchants (tenants) and their API keys (issue #4). Every other table's `tenant` column
-- holds a `tenants.id`. Keys are stored as the SHA-256 of the secret (the secret is 32
-- random bytes, so a fast hash is enough: there is nothing to brute-force), never the
-- secret itself; `scopes` is a space-separated subset of `orders rules admin`.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    key_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
