-- Migration 0006: richer API keys (docs/edge.md "API keys"). Every column is nullable and NULL means "no
-- restriction", so keys created before this migration (and their KV records, which lack the fields) keep
-- working unchanged.
-- scope_routes / scope_models: JSON arrays of the routes (contract/routes.json names) and models the key may
-- use. expires_at: when the key stops working. rotated_at / valid_until / replaced_by: set on the old key by
-- `keys rotate`; it works until valid_until, then is refused naming the rotation. daily_requests /
-- daily_tokens: the key's budgets per UTC day, enforced by its KeyLimiter Durable Object.
ALTER TABLE api_keys ADD COLUMN scope_routes TEXT;
ALTER TABLE api_keys ADD COLUMN scope_models TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN rotated_at INTEGER;
ALTER TABLE api_keys ADD COLUMN valid_until INTEGER;
ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;
ALTER TABLE api_keys ADD COLUMN daily_requests INTEGER;
ALTER TABLE api_keys ADD COLUMN daily_tokens INTEGER;
