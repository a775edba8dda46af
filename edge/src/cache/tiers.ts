// Cache tiers for origin answers: the isolate's memory (memorycache.ts), KV (hot, read in one get) and D1
// (persistent, counts accesses and promotes frequently read rows back into KV). Bodies are stored verbatim with their content type, so a
// replayed answer is byte-identical to the fresh one; generation answers keep their stream's piece
// boundaries beside them, so a streamed hit replays the live stream's exact events (replay.ts). Writes are write-behind through ctx.waitUntil and
// a failing write is logged, never surfaced to the client.
//
// Privacy at rest: D1 holds the answer and its key (a SHA-256), never the prompt. Every answer has a hard
// maximum age from when it was stored: a hit refreshes the TTL and may promote the row into KV, but never
// past created_at + maxAgeSeconds, so a popular prompt's answer does not live for ever. An answer stored by
// a request with its own TTL (cf-aig-cache-ttl, controls.ts) has a fixed life instead: it expires that
// long after it was stored in every tier, and hits never move its expiry.
import { recall, remember } from "./memorycache";
import { bumpCounter, SKIPPED_CACHE_WRITES } from "../observability/metrics";
import { parsePieces, type Pieces } from "./replay";

export interface CachedAnswer {
	body: string;
	contentType: string;
	fingerprint: string;
	/** A generation answer's piece boundaries (edge/src/cache/replay.ts); null for embeddings and older rows. */
	pieces: Pieces | null;
	/** The fixed end of life (unix seconds) of an answer stored with its own TTL; null: the sliding TTL. */
	expiresAt: number | null;
	tier: "memory" | "kv" | "d1";
}

export interface CachePolicy {
	/** Life of an answer after its last use (KV TTL; D1 expiry after a hit). */
	ttlSeconds: number;
	/** Hard limit on an answer's life from when it was stored (never below ttlSeconds). */
	maxAgeSeconds: number;
	/** Capacity of the isolate's memory tier (0 turns it off). */
	memoryEntries: number;
}

interface CacheEntry {
	key: string;
	route: string;
	fingerprint: string;
	body: string;
	contentType: string;
	pieces: Pieces | null;
	/** The request's own TTL (cf-aig-cache-ttl): a fixed life from now; null: the policy's sliding TTL. */
	fixedTtlSeconds: number | null;
}

interface KvMetadata {
	contentType: string;
	fingerprint: string;
	/** The value starts with the pieces (JSON, one line: replay.ts `Pieces`) and a newline, then the body. */
	withPieces?: true;
	/** A fixed-life answer's end of life (unix seconds): never served after it, whatever KV still holds. */
	expiresAt?: number;
	/** When the answer was stored (its D1 created_at): never served past today's maximum age from it, which
	 * may be lower than when KV was given the entry's TTL. Absent on entries written before it was kept. */
	storedAt?: number;
}

/** A D1 row read this many times is copied back into KV. */
export const PROMOTE_AFTER_HITS = 2;
// KV rejects an expirationTtl below 60 s; an answer with less life left is not promoted.
const KV_MIN_TTL_SECONDS = 60;
// D1's limit on a row (and on one string). An answer over it skips the D1 tier instead of failing the write;
// the margin covers the row's integers and record header.
export const D1_MAX_ROW_BYTES = 2_000_000;
const D1_ROW_MARGIN_BYTES = 1024;
// KV's limit on one value.
export const KV_MAX_VALUE_BYTES = 25 * 1024 * 1024;

/** Expired rows deleted per statement, and statements per cron run: each DELETE stays short (D1 runs
 * one write at a time), and a large backlog drains over several runs instead of one long one. */
const EVICTION_CHUNK_ROWS = 500;
const EVICTION_MAX_CHUNKS = 20;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const encoder = new TextEncoder();

function logFailure(what: string): (error: Error) => void {
	return (error) => console.error(`cache: ${what} failed:`, error.message);
}

/** Whether `texts` fit in `limit` bytes of UTF-8; encodes only when the UTF-16 length leaves doubt. */
function fitsIn(limit: number, ...texts: string[]): boolean {
	const units = texts.reduce((sum, text) => sum + text.length, 0);
	if (units * 3 <= limit) return true; // a UTF-16 code unit is at most 3 bytes of UTF-8
	if (units > limit) return false; // and at least 1
	return texts.reduce((sum, text) => sum + encoder.encode(text).byteLength, 0) <= limit;
}

type Stored = Omit<CachedAnswer, "tier">;

/** The KV value: the body alone, or the piece lengths on a first line before it (no copy re-escaped). */
function kvValue(answer: Stored, storedAt: number): { value: string; metadata: KvMetadata } {
	const metadata: KvMetadata = { contentType: answer.contentType, fingerprint: answer.fingerprint, storedAt };
	if (answer.expiresAt !== null) metadata.expiresAt = answer.expiresAt;
	if (answer.pieces === null) return { value: answer.body, metadata };
	return { value: `${JSON.stringify(answer.pieces)}\n${answer.body}`, metadata: { ...metadata, withPieces: true } };
}

function fromKvValue(value: string, metadata: KvMetadata): Stored {
	const stored = { contentType: metadata.contentType, fingerprint: metadata.fingerprint, expiresAt: metadata.expiresAt ?? null };
	if (!metadata.withPieces) return { ...stored, body: value, pieces: null };
	const newline = value.indexOf("\n");
	return { ...stored, body: value.slice(newline + 1), pieces: parsePieces(value.slice(0, newline)) };
}

// Async wrappers turn a binding's synchronous throw into a rejection that the write-behind catches.
async function putKv(env: Env, key: string, answer: Stored, ttlSeconds: number, storedAt: number): Promise<void> {
	const { value, metadata } = kvValue(answer, storedAt);
	await env.CACHE.put(key, value, { expirationTtl: ttlSeconds, metadata });
}

async function runD1(env: Env, sql: string, ...values: unknown[]): Promise<void> {
	await env.DB.prepare(sql)
		.bind(...values)
		.run();
}

async function lookupKv(env: Env, key: string, policy: CachePolicy): Promise<CachedAnswer | null> {
	try {
		const { value, metadata } = await env.CACHE.getWithMetadata<KvMetadata>(key, "text");
		if (value === null || !metadata) return null;
		const now = nowSeconds();
		if (metadata.expiresAt !== undefined && metadata.expiresAt <= now) return null;
		// The same bound as D1's created_at: a maximum age lowered since the entry was written applies.
		if (metadata.storedAt !== undefined && metadata.storedAt <= now - policy.maxAgeSeconds) return null;
		return { ...fromKvValue(value, metadata), tier: "kv" };
	} catch (error) {
		logFailure("KV read")(error as Error);
		return null;
	}
}

interface AnswerRow {
	body: string;
	content_type: string;
	fingerprint: string;
	access_count: number;
	created_at: number;
	expires_at: number;
	pieces: string | null;
	fixed_ttl_seconds: number | null;
}

async function lookupD1(env: Env, ctx: ExecutionContext, key: string, policy: CachePolicy): Promise<CachedAnswer | null> {
	const now = nowSeconds();
	let row: AnswerRow | null;
	try {
		// The created_at bound also retires rows stored under a longer maximum age than today's.
		row = await env.DB.prepare(
			"SELECT body, content_type, fingerprint, access_count, created_at, expires_at, pieces, fixed_ttl_seconds FROM answer_cache WHERE cache_key = ? AND expires_at > ? AND created_at > ? LIMIT 1",
		)
			.bind(key, now, now - policy.maxAgeSeconds)
			.first();
	} catch (error) {
		logFailure("D1 read")(error as Error);
		return null;
	}
	if (!row) return null;
	const fixed = row.fixed_ttl_seconds !== null;
	const stored: Stored = {
		body: row.body,
		contentType: row.content_type,
		fingerprint: row.fingerprint,
		pieces: parsePieces(row.pieces),
		expiresAt: fixed ? row.expires_at : null,
	};
	// A fixed-life row keeps its expiry; any other is extended by the TTL, never past its maximum age.
	const touch = runD1(
		env,
		`UPDATE answer_cache SET access_count = access_count + 1, accessed_at = ?,
		 expires_at = CASE WHEN fixed_ttl_seconds IS NULL THEN MIN(?, created_at + ?) ELSE expires_at END WHERE cache_key = ?`,
		now,
		now + policy.ttlSeconds,
		policy.maxAgeSeconds,
		key,
	).catch(logFailure("D1 access update"));
	const kvTtl = Math.min(fixed ? row.expires_at - now : policy.ttlSeconds, row.created_at + policy.maxAgeSeconds - now);
	const promote =
		row.access_count + 1 >= PROMOTE_AFTER_HITS && kvTtl >= KV_MIN_TTL_SECONDS
			? putKv(env, key, stored, kvTtl, row.created_at).catch(logFailure("KV promotion"))
			: Promise.resolve();
	ctx.waitUntil(Promise.all([touch, promote]));
	return { ...stored, tier: "d1" };
}

export async function lookup(env: Env, ctx: ExecutionContext, key: string, policy: CachePolicy): Promise<CachedAnswer | null> {
	const inMemory = recall(key, policy.memoryEntries);
	if (inMemory) return { ...inMemory, tier: "memory" };
	const found = (await lookupKv(env, key, policy)) ?? (await lookupD1(env, ctx, key, policy));
	if (found) {
		const { tier: _, ...stored } = found; // eslint-disable-line @typescript-eslint/no-unused-vars
		remember(key, stored, policy.memoryEntries);
	}
	return found;
}

/** Counted, not logged as a failure: an answer too large for a tier is expected, and served all the same. */
function skipTier(env: Env, tier: "kv" | "d1"): Promise<void> {
	return bumpCounter(env.DB, SKIPPED_CACHE_WRITES, { tier }).catch(logFailure(`counting a skipped ${tier} write`));
}

/** Write-behind to every tier the answer fits in. A store is a new answer: its row starts a new life. */
export function store(env: Env, ctx: ExecutionContext, entry: CacheEntry, policy: CachePolicy): void {
	const ttlSeconds = entry.fixedTtlSeconds ?? policy.ttlSeconds;
	const now = nowSeconds();
	const stored: Stored = {
		body: entry.body,
		contentType: entry.contentType,
		fingerprint: entry.fingerprint,
		pieces: entry.pieces,
		expiresAt: entry.fixedTtlSeconds === null ? null : now + entry.fixedTtlSeconds,
	};
	const pieces = entry.pieces === null ? null : JSON.stringify(entry.pieces);
	remember(entry.key, stored, policy.memoryEntries);
	const kv = fitsIn(KV_MAX_VALUE_BYTES, entry.body, pieces ?? "")
		? putKv(env, entry.key, stored, ttlSeconds, now).catch(logFailure("KV write"))
		: skipTier(env, "kv");
	const d1 = fitsIn(
		D1_MAX_ROW_BYTES - D1_ROW_MARGIN_BYTES,
		entry.key,
		entry.route,
		entry.fingerprint,
		entry.body,
		entry.contentType,
		pieces ?? "",
	)
		? runD1(
				env,
				`INSERT OR REPLACE INTO answer_cache (cache_key, route, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count, pieces, fixed_ttl_seconds)
				 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
				entry.key,
				entry.route,
				entry.fingerprint,
				entry.body,
				entry.contentType,
				now,
				now,
				now + ttlSeconds,
				pieces,
				entry.fixedTtlSeconds,
			).catch(logFailure("D1 write"))
		: skipTier(env, "d1");
	ctx.waitUntil(Promise.all([kv, d1]));
}

/** Deletes D1 rows past their expiry or their maximum age (KV entries expire by themselves), in chunks of
 * `chunkRows`, at most `maxChunks` per call; returns how many rows went. */
export async function evictExpired(
	db: D1Database,
	maxAgeSeconds: number,
	nowS = nowSeconds(),
	{ chunkRows = EVICTION_CHUNK_ROWS, maxChunks = EVICTION_MAX_CHUNKS } = {},
): Promise<number> {
	const chunk = db.prepare(
		"DELETE FROM answer_cache WHERE rowid IN (SELECT rowid FROM answer_cache WHERE expires_at <= ? OR created_at <= ? LIMIT ?)",
	);
	let deleted = 0;
	for (let run = 0; run < maxChunks; run++) {
		const { meta } = await chunk.bind(nowS, nowS - maxAgeSeconds, chunkRows).run();
		deleted += meta.changes;
		if (meta.changes < chunkRows) break;
	}
	return deleted;
}
