-- Migration 0001: the D1 schema as it was before numbered migrations (schema.sql at that time, unchanged
-- below this header). Every statement is `IF NOT EXISTS`, so a database created from that schema.sql
-- (which has no d1_migrations table) is adopted: this migration changes nothing there and is recorded.
-- Times are unix seconds unless the column name says `_ms`.

-- Generation answers, keyed by sha256(canonical request + model fingerprint). `body` is the origin's
-- response body verbatim, so a cached answer is byte-identical to a fresh one.
CREATE TABLE IF NOT EXISTS generation_cache (
    cache_key    TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    parameters   TEXT NOT NULL,          -- canonical JSON of the DLP-checked request parameters
    fingerprint  TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    accessed_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_generation_cache_expires ON generation_cache (expires_at);

-- Embedding answers: same shape as generation_cache.
CREATE TABLE IF NOT EXISTS embedding_cache (
    cache_key    TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    parameters   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    accessed_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_embedding_cache_expires ON embedding_cache (expires_at);

-- One row per request the Worker answered, written in micro-batches off the hot path.
CREATE TABLE IF NOT EXISTS request_metrics (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms       INTEGER NOT NULL,
    endpoint    TEXT NOT NULL,
    method      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    cache       TEXT NOT NULL,           -- HIT | MISS | BYPASS | NONE
    cache_tier  TEXT,                    -- memory | kv | d1 on a HIT
    duration_ms INTEGER NOT NULL,
    colo        TEXT,
    key_id      TEXT
);
CREATE INDEX IF NOT EXISTS idx_request_metrics_ts ON request_metrics (ts_ms);

-- Monotonic Prometheus counters, bumped in the same batch as the request_metrics rows so /metrics
-- reads a handful of rows instead of aggregating the log on every scrape.
CREATE TABLE IF NOT EXISTS metric_counters (
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,                -- canonical JSON object of label name -> value
    value  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels)
);

-- API keys: only the SHA-256 of a key is stored. KV holds the same record under apikey:<hash> for
-- fast lookups; this table is the durable list (`keys.mjs list`) and the fallback when KV lags.
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
