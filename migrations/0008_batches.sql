-- Migration 0008: the Batch API (docs/edge.md, Batch API). Files and batches belong to the API key that
-- created them (key_id); the JSONL itself lives in R2 (BATCH_FILES) under r2_key.
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
