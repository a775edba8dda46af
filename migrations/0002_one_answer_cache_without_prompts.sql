-- Migration 0002: one cache table for every kind of answer, and no prompt text at rest.
--
-- generation_cache and embedding_cache had the same columns. The cache key's prefix (gen:v1: or emb:v1:,
-- edge/src/cachekey.ts) already says which kind a row holds, so the merged table needs no kind column.
-- `parameters` held every cached prompt in plain text and nothing read it: it is not copied (the cache
-- key is already a SHA-256 over the same parameters). Existing rows keep created_at, so the hard maximum
-- age (CACHE_MAX_AGE_SECONDS) counts from when each answer was first stored.
CREATE TABLE answer_cache (
    cache_key    TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    body         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    accessed_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0
);

INSERT INTO answer_cache (cache_key, route, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count)
    SELECT cache_key, route, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count
    FROM generation_cache;
INSERT INTO answer_cache (cache_key, route, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count)
    SELECT cache_key, route, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count
    FROM embedding_cache;

-- Dropping a table drops its index too.
DROP TABLE generation_cache;
DROP TABLE embedding_cache;

-- The cron evicts by either bound: idle expiry, and creation for the hard maximum age.
CREATE INDEX idx_answer_cache_expires ON answer_cache (expires_at);
CREATE INDEX idx_answer_cache_created ON answer_cache (created_at);
