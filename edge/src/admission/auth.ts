// API keys: clients send `Authorization: Bearer <key>` or `X-API-Key: <key>`. Only SHA-256 hashes are
// stored: KV `apikey:<hash>` for fast lookups, D1 api_keys as the durable list and the fallback while
// a new key's KV write is still propagating. Revoked, expired and rotated-out keys keep their record, so
// they answer 403 naming why (and when). Refusals are remembered in the isolate for REFUSED_KEY_TTL_MS, so
// a junk key sent again and again costs no KV or D1 read; a key created meanwhile works after at most that
// long. Valid keys are never remembered: a revocation counts from the next request.
import { sha256Hex } from "../cache/cachekey";
import { HttpError } from "../errors";
import { ExpiringMap } from "../ttlmap";

const REFUSED_KEY_TTL_MS = 10_000;
const REFUSED_KEYS_CAPACITY = 10_000;

const refusedKeys = new ExpiringMap<HttpError>(REFUSED_KEYS_CAPACITY);

/**
 * The key's record, as `scripts/keys.mjs` writes it to KV. The optional fields came with migration 0006:
 * records written before it lack them, and absent or null means "no restriction".
 */
export interface ApiKeyRecord {
	id: string;
	name: string;
	key_hash: string;
	created_at: number;
	revoked: boolean;
	/** Routes (contract/routes.json names) and `model` values the key may use. */
	scope_routes?: string[] | null;
	scope_models?: string[] | null;
	/** Unix seconds from which the key is refused. */
	expires_at?: number | null;
	/** Set by `keys rotate` on the replaced key: it works until valid_until, then is refused. */
	rotated_at?: number | null;
	valid_until?: number | null;
	replaced_by?: string | null;
	/** Budgets per UTC day, enforced by the key's KeyLimiter Durable Object (budget.ts). */
	daily_requests?: number | null;
	daily_tokens?: number | null;
	/** Set by `keys rotate` on the new key: the key whose budgets it draws on (the first of the chain). */
	budget_key_id?: string | null;
}

const OPTIONAL_COLUMNS = [
	"expires_at",
	"rotated_at",
	"valid_until",
	"replaced_by",
	"daily_requests",
	"daily_tokens",
	"budget_key_id",
] as const satisfies (keyof ApiKeyRecord)[];
type KeyRow = Pick<ApiKeyRecord, "id" | "name" | "key_hash" | "created_at" | (typeof OPTIONAL_COLUMNS)[number]> & {
	revoked_at: number | null;
	scope_routes: string | null;
	scope_models: string | null;
};

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
		const row = await env.DB.prepare(
			`SELECT id, name, key_hash, created_at, revoked_at, scope_routes, scope_models, ${OPTIONAL_COLUMNS.join(", ")} FROM api_keys WHERE key_hash = ? LIMIT 1`,
		)
			.bind(keyHash)
			.first<KeyRow>();
		if (!row) return null;
		const { revoked_at, scope_routes, scope_models, ...rest } = row;
		return {
			...rest,
			revoked: revoked_at !== null,
			scope_routes: scope_routes === null ? null : (JSON.parse(scope_routes) as string[]),
			scope_models: scope_models === null ? null : (JSON.parse(scope_models) as string[]),
		};
	} catch (error) {
		console.error("auth: D1 lookup failed:", (error as Error).message);
		return null;
	}
}

const isoTime = (seconds: number) => new Date(seconds * 1000).toISOString();

/** Why a known key may not be used at `nowSeconds`, or null when it may. Every such refusal is final. */
function refusalOf(record: ApiKeyRecord, nowSeconds: number): HttpError | null {
	if (record.revoked) return new HttpError(403, "forbidden", "API key has been revoked");
	if (typeof record.valid_until === "number" && nowSeconds >= record.valid_until) {
		const rotated = typeof record.rotated_at === "number" ? ` at ${isoTime(record.rotated_at)}` : "";
		const successor = record.replaced_by ? ` by key ${record.replaced_by}` : "";
		return new HttpError(
			403,
			"forbidden",
			`API key was rotated${rotated}${successor}; its overlap ended at ${isoTime(record.valid_until)}: use the new key`,
		);
	}
	if (typeof record.expires_at === "number" && nowSeconds >= record.expires_at) {
		return new HttpError(403, "forbidden", `API key expired at ${isoTime(record.expires_at)}`);
	}
	return null;
}

/** Resolves the key's record; throws 401 for unknown keys and 403 for revoked, expired or rotated-out ones. */
export async function authenticate(env: Env, keyHash: string): Promise<ApiKeyRecord> {
	const remembered = refusedKeys.get(keyHash);
	if (remembered) throw remembered;
	const record = await findRecord(env, keyHash);
	const refused =
		!record || !(await secretsEqual(record.key_hash, keyHash))
			? new HttpError(401, "unauthorized", "invalid API key")
			: refusalOf(record, Math.floor(Date.now() / 1000));
	if (refused === null) return record!;
	refusedKeys.set(keyHash, refused, REFUSED_KEY_TTL_MS);
	throw refused;
}
