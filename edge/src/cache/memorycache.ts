// The isolate's own hot tier in front of KV: a small LRU of recent answers. Entries can never be stale
// in content (the key includes the model fingerprint); they expire after MEMORY_TTL_MS so a D1/KV TTL
// eviction is honoured within that time, and never outlive a fixed-life answer's end (cf-aig-cache-ttl).

import { ExpiringMap } from "../ttlmap";
import type { CachedAnswer } from "./tiers";
const MEMORY_TTL_MS = 60_000;
// Bounds memory use to entries x this size, well inside an isolate's 128 MB.
const MAX_ENTRY_BYTES = 64 * 1024;

/** An answer as every tier stores it; `expiresAt` is a fixed-life answer's end (unix seconds), or null. */
type MemoryEntry = Omit<CachedAnswer, "tier">;

// The capacity comes from config (MEMORY_CACHE_ENTRIES) with each call; 0 turns the tier off.
const answers = new ExpiringMap<MemoryEntry>(0, "read");

export function recall(key: string, capacity: number): MemoryEntry | null {
	if (capacity === 0) return null;
	return answers.get(key) ?? null;
}

export function remember(key: string, entry: MemoryEntry, capacity: number): void {
	if (capacity === 0 || entry.body.length > MAX_ENTRY_BYTES) return;
	const nowMs = Date.now();
	const ttlMs = entry.expiresAt === null ? MEMORY_TTL_MS : Math.min(MEMORY_TTL_MS, entry.expiresAt * 1000 - nowMs);
	answers.capacity = capacity;
	answers.set(key, entry, ttlMs, nowMs);
}
