// API keys: clients send `Authorization: Bearer <key>` or `X-API-Key: <key>`. Only SHA-256 hashes are
// stored: KV `apikey:<hash>` for fast lookups, D1 api_keys as the durable list and the fallback while
// a new key's KV write is still propagating. Revoked keys keep their record, so they answer 403.
// Refusals (unknown or revoked key) are remembered in the isolate for REFUSED_KEY_TTL_MS, so a junk key
// sent again and again costs no KV or D1 read; a key created meanwhile works after at most that long.
// Valid keys are never remembered: a revocation counts from the next request.
import { sha256Hex } from "../cache/cachekey";
import { HttpError } from "../errors";
import { ExpiringMap } from "./ttlmap";

const REFUSED_KEY_TTL_MS = 10_000;
const REFUSED_KEYS_CAPACITY = 10_000;

type Refusal = "unknown" | "revoked";
const refusedKeys = new ExpiringMap<Refusal>(REFUSED_KEYS_CAPACITY);

export interface ApiKeyRecord {
	id: string;
	name: string;
	key_hash: string;
	created_at: number;
	revoked: boolean;
}

const API_KEY_PREFIX = "apikey:";

export function presentedKey(request: Request): string | null {
	const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
	if (bearer) return bearer[1];
	const header = request.headers.get("x-api-key")?.trim();
	return header ? header : null;
}

export async function hashPresentedKey(request: Request): Promise<string> {
	const key = presentedKey(request);
	if (key === null) {
		throw new HttpError(401, "unauthorized", "missing API key: send Authorization: Bearer <key> or X-API-Key", undefined, {
			"WWW-Authenticate": 'Bearer realm="steadytext"',
		});
	}
	return sha256Hex(key);
}

/** Constant-time equality of two strings: both are hashed to 32 bytes first, so lengths never leak. */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
	const encoder = new TextEncoder();
	const [left, right] = await Promise.all([
		crypto.subtle.digest("SHA-256", encoder.encode(a)),
		crypto.subtle.digest("SHA-256", encoder.encode(b)),
	]);
	return crypto.subtle.timingSafeEqual(left, right);
}

async function findRecord(env: Env, keyHash: string): Promise<ApiKeyRecord | null> {
	try {
		const cached = await env.CACHE.get<ApiKeyRecord>(API_KEY_PREFIX + keyHash, "json");
		if (cached) return cached;
	} catch (error) {
		console.error("auth: KV lookup failed:", (error as Error).message);
	}
	try {
		const row = await env.DB.prepare("SELECT id, name, key_hash, created_at, revoked_at FROM api_keys WHERE key_hash = ? LIMIT 1")
			.bind(keyHash)
			.first<{ id: string; name: string; key_hash: string; created_at: number; revoked_at: number | null }>();
		if (!row) return null;
		return { id: row.id, name: row.name, key_hash: row.key_hash, created_at: row.created_at, revoked: row.revoked_at !== null };
	} catch (error) {
		console.error("auth: D1 lookup failed:", (error as Error).message);
		return null;
	}
}

function refusal(kind: Refusal): HttpError {
	return kind === "revoked"
		? new HttpError(403, "forbidden", "API key has been revoked")
		: new HttpError(401, "unauthorized", "invalid API key");
}

/** Resolves the key's record; throws 401 for unknown keys and 403 for revoked ones. */
export async function authenticate(env: Env, keyHash: string): Promise<ApiKeyRecord> {
	const remembered = refusedKeys.get(keyHash);
	if (remembered) throw refusal(remembered);
	const record = await findRecord(env, keyHash);
	let refused: Refusal | null = null;
	if (!record || !(await secretsEqual(record.key_hash, keyHash))) refused = "unknown";
	else if (record.revoked) refused = "revoked";
	if (refused === null) return record!;
	refusedKeys.set(keyHash, refused, REFUSED_KEY_TTL_MS);
	throw refusal(refused);
}
