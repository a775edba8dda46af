-- Migration 0009: a rotation hands over the day's budget (docs/edge.md "API keys"). budget_key_id names
-- the key whose KeyLimiter Durable Object holds this key's daily budgets: `keys rotate` sets it on the new
-- key to the first key of the rotation chain, so the old key (in its overlap) and its replacement draw on
-- one budget instead of each getting a fresh day's worth. NULL (every key made before this migration, and
-- every key not made by rotate) means the key's own id.
ALTER TABLE api_keys ADD COLUMN budget_key_id TEXT;
