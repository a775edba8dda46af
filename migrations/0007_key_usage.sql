-- Migration 0007: usage per API key without prompts (docs/edge.md "Usage"): one row per admitted request,
-- written off the hot path with the request_metrics rows and pruned by the cron after 90 days. No prompt or
-- answer text is ever stored: token counts, the route and model, the status class and the caller's
-- x-steadytext-metadata (at most 5 flat keys, DLP-checked).
CREATE TABLE IF NOT EXISTS key_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms             INTEGER NOT NULL,
    day               TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    route             TEXT NOT NULL,
    model             TEXT,
    status_class      TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    error             INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT
);
CREATE INDEX IF NOT EXISTS idx_key_usage_key_day ON key_usage (key_id, day);
CREATE INDEX IF NOT EXISTS idx_key_usage_ts ON key_usage (ts_ms);
