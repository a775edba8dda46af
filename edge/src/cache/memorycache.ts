// The isolate's own hot tier in front of KV: a small LRU of recent answers. Entries can never be stale
// in content (the key includes the model fingerprint); they expire after MEMORY_TTL_MS so a D1/KV TTL
// eviction is honoured within that time, and never outlive a fixed-life answer's end (cf-aig-cache-ttl).

import type { Pieces } from "./replay";
const MEMORY_TTL_MS = 60_000;
// Bounds memory use to entries x this size, well inside an isolate's 128 MB.
const MAX_ENTRY_BYTES = 64 * 1024;

interface MemoryEntry {
	body: string;
	contentType: string;
	fingerprint: string;
	pieces: Pieces | null;
	/** A fixed-life answer's end of life, unix seconds (tiers.ts); null: none. */
	expiresAt: number | null;
}

const entries = new Map<string, { entry: MemoryEntry; expiresAtMs: number }>();

export function recall(key: string, capacity: number): MemoryEntry | null {
	if (capacity === 0) return null;
	const found = entries.get(key);
	if (!found) return null;
	entries.delete(key);
	if (found.expiresAtMs <= Date.now()) return null;
	entries.set(key, found); // most recently used goes last
	return found.entry;
}

export function remember(key: string, entry: MemoryEntry, capacity: number): void {
	if (capacity === 0 || entry.body.length > MAX_ENTRY_BYTES) return;
	entries.delete(key);
	const expiresAtMs = Math.min(Date.now() + MEMORY_TTL_MS, entry.expiresAt === null ? Infinity : entry.expiresAt * 1000);
	entries.set(key, { entry, expiresAtMs });
	while (entries.size > capacity) entries.delete(entries.keys().next().value!);
}
