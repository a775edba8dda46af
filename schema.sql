-- steadytext-edge D1 schema as it stands after every migration: the one place to read it. It is not
-- applied anywhere: the numbered files in migrations/ are (by the deploy, `make dev` and the tests; see
-- docs/interfaces.md), and tests/infra/test_d1_migrations.py proves that applying them all to SQLite gives
-- exactly this schema (d1_migrations, where the runners record what they applied, is left out). A change
-- to the schema is a new migration plus the same change here.
-- Times are unix seconds unless the column name says `_ms`.

-- Origin answers of every kind, keyed by sha256(canonical request + model fingerprint) with a kind prefix
-- (gen:v1: | emb:v1:, edge/src/cache/cachekey.ts). `body` is the origin's response body verbatim, so a cached
-- answer is byte-identical to a fresh one. No prompt text is stored. A row expires at
-- min(last access + CACHE_TTL_SECONDS, created_at + CACHE_MAX_AGE_SECONDS), or, stored by a request with
-- its own TTL (cf-aig-cache-ttl), at created_at + fixed_ttl_seconds, which hits never move.
CREATE TABLE IF NOT EXISTS answer_cache (
    cache_key    TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    accessed_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0,
    pieces       TEXT,                    -- generation answers: JSON array of piece lengths (code points)
    fixed_ttl_seconds INTEGER             -- the storing request's cf-aig-cache-ttl; NULL: sliding TTL
);
CREATE INDEX IF NOT EXISTS idx_answer_cache_expires ON answer_cache (expires_at);
CREATE INDEX IF NOT EXISTS idx_answer_cache_created ON answer_cache (created_at);

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
    revoked_at INTEGER,
    -- NULL in any column below means "no restriction" (keys made before migration 0006 have NULL in all).
    scope_routes   TEXT,                 -- JSON array of allowed routes (contract/routes.json names)
    scope_models   TEXT,                 -- JSON array of allowed `model` values
    expires_at     INTEGER,              -- refused from this time on
    rotated_at     INTEGER,              -- set by `keys rotate` on the old key
    valid_until    INTEGER,              -- a rotated key works until this time (the overlap), then is refused
    replaced_by    TEXT,                 -- the id of the key that replaced it
    daily_requests INTEGER,              -- budget per UTC day (KeyLimiter Durable Object)
    daily_tokens   INTEGER,              -- budget per UTC day, prompt + completion tokens
    budget_key_id  TEXT                  -- the key whose daily budgets this one draws on (set by `keys rotate`)
);

-- Per model fingerprint, learnt from the origins' GET /v1/status: the model file's sha256 (for receipts)
-- and the golden-probe digest answers were first cached under; an origin reporting another digest for the
-- same fingerprint is served but not cached (edge/src/cache/origin-builds.ts).
CREATE TABLE IF NOT EXISTS origin_builds (
    fingerprint   TEXT PRIMARY KEY,
    model_sha256  TEXT,
    probe_digest  TEXT,
    first_seen_ms INTEGER NOT NULL
);

-- Usage per API key, one row per admitted request (GET /v1/usage, `keys.mjs usage`); no prompt or answer
-- text. Pruned by the cron after USAGE_RETENTION_DAYS (edge/src/observability/metrics.ts).
CREATE TABLE IF NOT EXISTS key_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms             INTEGER NOT NULL,
    day               TEXT NOT NULL,            -- UTC day, YYYY-MM-DD
    key_id            TEXT NOT NULL,
    route             TEXT NOT NULL,            -- the contract route (aliases folded), else the path
    model             TEXT,                     -- the answer's model, else the request's `model`
    status_class      TEXT NOT NULL,            -- 2xx | 3xx | 4xx | 5xx
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0, -- of those, served from the cache
    error             INTEGER NOT NULL DEFAULT 0, -- 1 for a 4xx/5xx or a stream that ended in an error
    metadata          TEXT                      -- canonical JSON of x-steadytext-metadata, or NULL
);
CREATE INDEX IF NOT EXISTS idx_key_usage_key_day ON key_usage (key_id, day);
CREATE INDEX IF NOT EXISTS idx_key_usage_ts ON key_usage (ts_ms);
-- The Batch API (docs/edge.md, Batch API). Files and batches belong to the API key that created them
-- (key_id); the JSONL itself lives in R2 (BATCH_FILES) under r2_key.
CREATE TABLE IF NOT EXISTS batch_files (
    id         TEXT PRIMARY KEY,         -- file-<hex>
    key_id     TEXT NOT NULL,
    purpose    TEXT NOT NULL,            -- batch (uploaded) | batch_output (written by a batch)
    filename   TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    r2_key     TEXT NOT NULL,
    created_at INTEGER NOT NULL          -- unix seconds
);
CREATE INDEX IF NOT EXISTS idx_batch_files_key ON batch_files (key_id, created_at);

-- One row per batch, OpenAI's batch object. Counts are final once the batch has ended; while it runs
-- they are read from batch_lines.
CREATE TABLE IF NOT EXISTS batches (
    id                TEXT PRIMARY KEY,  -- batch_<hex>
    key_id            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL,     -- validating | in_progress | finalizing | completed | failed | expired | cancelling | cancelled
    output_file_id    TEXT,
    error_file_id     TEXT,
    errors            TEXT,              -- JSON list of {code, message, line?} when the whole file is refused
    metadata          TEXT,              -- the client's metadata object, JSON
    outbox_prefix     TEXT,              -- R2 inbox batches: where the results are also written
    total             INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    in_progress_at    INTEGER,
    finalizing_at     INTEGER,
    completed_at      INTEGER,
    failed_at         INTEGER,
    expired_at        INTEGER,
    cancelling_at     INTEGER,
    cancelled_at      INTEGER,
    heartbeat_at      INTEGER NOT NULL   -- the Workflow's last sign of life: a stale one gets it restarted
);
CREATE INDEX IF NOT EXISTS idx_batches_key ON batches (key_id, created_at);

-- One row per line of a running batch; deleted once the batch's output and error files are written.
-- A line is done at most once: the result is written only while the row is still pending, so a
-- redelivered queue message finds it done and does nothing. Rejected lines (malformed, wrong url,
-- duplicate custom_id) are stored already failed, outside the unique custom_id index.
CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id        TEXT NOT NULL,
    line_index      INTEGER NOT NULL,    -- 0-based line number in the input file
    custom_id       TEXT,
    body            TEXT,                -- the request body (pending lines only)
    status          TEXT NOT NULL,       -- pending | done | failed
    response_status INTEGER,
    response_body   TEXT,                -- the answer's exact bytes
    error_code      TEXT,
    error_message   TEXT,
    PRIMARY KEY (batch_id, line_index)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_batch_lines_custom_id ON batch_lines (batch_id, custom_id) WHERE error_code IS NULL OR error_code != 'duplicate_custom_id';
