-- Migration 0005: answers stored by a request that set its own TTL (the `cf-aig-cache-ttl` header,
-- edge/src/cache/controls.ts) live exactly that long from created_at: hits never move their expires_at.
-- NULL for every other row (and every row stored before this migration): the sliding CACHE_TTL_SECONDS.
ALTER TABLE answer_cache ADD COLUMN fixed_ttl_seconds INTEGER;
