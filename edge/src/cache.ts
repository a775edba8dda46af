// Cache tiers for origin answers: the isolate's memory (memorycache.ts), KV (hot, read in one get) and D1
// (persistent, counts accesses and promotes frequently read rows back into KV). Bodies are stored verbatim with their content type, so a
// replayed answer is byte-identical to the fresh one. Writes are write-behind through ctx.waitUntil and
// a failing write is logged, never surfaced to the client.
import type { Kind } from "./cachekey";
import { recall, remember } from "./memorycache";

export interface CachedAnswer {
	body: string;
	contentType: string;
	fingerprint: string;
	tier: "memory" | "kv" | "d1";
}

export interface CachePolicy {
	ttlSeconds: number;
	/** Capacity of the isolate's memory tier (0 turns it off). */
	memoryEntries: number;
}

export interface CacheEntry {
	kind: Kind;
	key: string;
	route: string;
	/** Canonical JSON of the parameters (already DLP-checked). */
	parameters: string;
	fingerprint: string;
	body: string;
	contentType: string;
}

interface KvMetadata {
	contentType: string;
	fingerprint: string;
}

/** A D1 row read this many times is copied back into KV. */
export const PROMOTE_AFTER_HITS = 2;

const TABLE: Record<Kind, string> = { generate: "generation_cache", embed: "embedding_cache" };

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function logFailure(what: string): (error: Error) => void {
	return (error) => console.error(`cache: ${what} failed:`, error.message);
}

// Async wrappers turn a binding's synchronous throw into a rejection that the write-behind catches.
async function putKv(env: Env, key: string, body: string, meta: KvMetadata, ttlSeconds: number): Promise<void> {
	await env.CACHE.put(key, body, { expirationTtl: ttlSeconds, metadata: meta });
}

async function runD1(env: Env, sql: string, ...values: unknown[]): Promise<void> {
	await env.DB.prepare(sql).bind(...values).run();
}

async function lookupKv(env: Env, key: string): Promise<CachedAnswer | null> {
	try {
		const { value, metadata } = await env.CACHE.getWithMetadata<KvMetadata>(key, "text");
		if (value === null || !metadata) return null;
		return { body: value, contentType: metadata.contentType, fingerprint: metadata.fingerprint, tier: "kv" };
	} catch (error) {
		logFailure("KV read")(error as Error);
		return null;
	}
}

async function lookupD1(env: Env, ctx: ExecutionContext, kind: Kind, key: string, ttlSeconds: number): Promise<CachedAnswer | null> {
	const table = TABLE[kind];
	let row: { body: string; content_type: string; fingerprint: string; access_count: number } | null;
	try {
		row = await env.DB.prepare(`SELECT body, content_type, fingerprint, access_count FROM ${table} WHERE cache_key = ? AND expires_at > ? LIMIT 1`)
			.bind(key, nowSeconds())
			.first();
	} catch (error) {
		logFailure("D1 read")(error as Error);
		return null;
	}
	if (!row) return null;
	const answer: CachedAnswer = { body: row.body, contentType: row.content_type, fingerprint: row.fingerprint, tier: "d1" };
	const now = nowSeconds();
	const touch = runD1(env, `UPDATE ${table} SET access_count = access_count + 1, accessed_at = ?, expires_at = ? WHERE cache_key = ?`, now, now + ttlSeconds, key).catch(
		logFailure("D1 access update"),
	);
	const promote =
		row.access_count + 1 >= PROMOTE_AFTER_HITS
			? putKv(env, key, row.body, { contentType: row.content_type, fingerprint: row.fingerprint }, ttlSeconds).catch(
					logFailure("KV promotion"),
				)
			: Promise.resolve();
	ctx.waitUntil(Promise.all([touch, promote]));
	return answer;
}

export async function lookup(env: Env, ctx: ExecutionContext, kind: Kind, key: string, policy: CachePolicy): Promise<CachedAnswer | null> {
	const inMemory = recall(key, policy.memoryEntries);
	if (inMemory) return { ...inMemory, tier: "memory" };
	const found = (await lookupKv(env, key)) ?? (await lookupD1(env, ctx, kind, key, policy.ttlSeconds));
	if (found) remember(key, { body: found.body, contentType: found.contentType, fingerprint: found.fingerprint }, policy.memoryEntries);
	return found;
}

/** Write-behind to both tiers. The D1 upsert keeps access_count and created_at of an existing row. */
export function store(env: Env, ctx: ExecutionContext, entry: CacheEntry, policy: CachePolicy): void {
	const { ttlSeconds } = policy;
	const now = nowSeconds();
	remember(entry.key, { body: entry.body, contentType: entry.contentType, fingerprint: entry.fingerprint }, policy.memoryEntries);
	const kv = putKv(env, entry.key, entry.body, { contentType: entry.contentType, fingerprint: entry.fingerprint }, ttlSeconds).catch(
		logFailure("KV write"),
	);
	const d1 = runD1(
		env,
		`INSERT INTO ${TABLE[entry.kind]} (cache_key, route, parameters, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
		 ON CONFLICT (cache_key) DO UPDATE SET body = excluded.body, content_type = excluded.content_type,
		   fingerprint = excluded.fingerprint, accessed_at = excluded.accessed_at, expires_at = excluded.expires_at`,
		entry.key,
		entry.route,
		entry.parameters,
		entry.fingerprint,
		entry.body,
		entry.contentType,
		now,
		now,
		now + ttlSeconds,
	).catch(logFailure("D1 write"));
	ctx.waitUntil(Promise.all([kv, d1]));
}

/** Deletes expired rows from both cache tables (KV entries expire by themselves). */
export async function evictExpired(db: D1Database, nowS = nowSeconds()): Promise<Record<Kind, number>> {
	const [generate, embed] = await db.batch(
		(Object.values(TABLE) as string[]).map((table) => db.prepare(`DELETE FROM ${table} WHERE expires_at <= ?`).bind(nowS)),
	);
	return { generate: generate.meta.changes, embed: embed.meta.changes };
}
