-- Migration 0004: what the Worker learnt about each model fingerprint from the origins' GET /v1/status:
-- the model file's sha256 (signed into receipts, also for cache hits while every origin is down) and the
-- golden-probe digest it first cached answers under (edge/src/cache/origin-builds.ts). An origin that later
-- reports another digest for the same fingerprint is served but not cached.
CREATE TABLE IF NOT EXISTS origin_builds (
    fingerprint   TEXT PRIMARY KEY,
    model_sha256  TEXT,
    probe_digest  TEXT,
    first_seen_ms INTEGER NOT NULL
);
