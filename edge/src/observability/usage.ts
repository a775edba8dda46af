// Usage per API key without prompts: one key_usage row per admitted request (route, model, status class,
// prompt / completion tokens, tokens served from the cache, an error flag and the caller's metadata),
// written with the request_metrics rows (metrics.ts), and read back by GET /v1/usage for the calling key
// and by `keys.mjs usage` for any key. No prompt or answer text is ever part of a row.
import { applyDlp } from "../admission/dlp";
import { canonicalJson } from "../cache/cachekey";
import type { DlpPolicy } from "../config";
import { HttpError } from "../errors";

const METADATA_HEADER = "x-steadytext-metadata";
const MAX_METADATA_BYTES = 512;
const MAX_METADATA_KEYS = 5;
const METADATA_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_METADATA_STRING_CHARS = 128;
// The longest day range one /v1/usage answer covers, and the most metadata groups it lists.
const MAX_USAGE_RANGE_DAYS = 93;
const MAX_METADATA_GROUPS = 100;
const DAY_MS = 86_400_000;

/** What a request did, for its usage row; filled in as the request progresses. */
export interface UsageFacts {
	model: string | null;
	promptTokens: number;
	completionTokens: number;
	/** Of those, the tokens served from the cache (a hit's whole answer). */
	cachedTokens: number;
	/** Set when an answer that began as 200 failed later (a stream that ended in an error). */
	failed: boolean;
	/** Canonical JSON of the x-steadytext-metadata header, or null. */
	metadata: string | null;
	/** Set while a streamed answer is still flowing: its row is recorded when the stream ends. */
	deferred: boolean;
	/** Cleared for GET /v1/usage: reading one's usage is not usage (polling it would change the answer). */
	counted: boolean;
}

export interface UsageRow {
	tsMs: number;
	keyId: string;
	route: string;
	status: number;
	facts: UsageFacts;
}

export function newUsageFacts(): UsageFacts {
	return {
		model: null,
		promptTokens: 0,
		completionTokens: 0,
		cachedTokens: 0,
		failed: false,
		metadata: null,
		deferred: false,
		counted: true,
	};
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function metadataError(message: string): HttpError {
	return new HttpError(400, "invalid_request", message, METADATA_HEADER);
}

/**
 * The x-steadytext-metadata header as canonical JSON (null when absent): a JSON object of at most 5 flat
 * keys with short string, number or boolean values. It is stored, so it passes the DLP policy like a body.
 */
export function requestMetadata(request: Request, policy: DlpPolicy): string | null {
	const raw = request.headers.get(METADATA_HEADER);
	if (raw === null) return null;
	if (new TextEncoder().encode(raw).byteLength > MAX_METADATA_BYTES) throw metadataError(`is longer than ${MAX_METADATA_BYTES} bytes`);
	let parsed: unknown;
	try {
		parsed = JSON.parse(raw);
	} catch {
		parsed = undefined;
	}
	if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
		throw metadataError(`must be a JSON object of at most ${MAX_METADATA_KEYS} keys`);
	}
	const entries = Object.entries(parsed);
	if (entries.length > MAX_METADATA_KEYS) throw metadataError(`has ${entries.length} keys; at most ${MAX_METADATA_KEYS} are allowed`);
	for (const [key, value] of entries) {
		if (!METADATA_KEY.test(key)) throw metadataError(`key ${JSON.stringify(key)} must be 1-64 letters, digits or _ . : -`);
		const flat =
			(typeof value === "string" && value.length <= MAX_METADATA_STRING_CHARS) ||
			(typeof value === "number" && Number.isFinite(value)) ||
			typeof value === "boolean";
		if (!flat) {
			throw metadataError(
				`the value of ${JSON.stringify(key)} must be a string of at most ${MAX_METADATA_STRING_CHARS} characters, a number or a boolean (metadata is flat)`,
			);
		}
	}
	const { value } = applyDlp({ [METADATA_HEADER]: parsed }, policy);
	return canonicalJson(value[METADATA_HEADER]);
}

const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"];

export function usageStatement(db: D1Database, row: UsageRow): D1PreparedStatement {
	const { facts } = row;
	return db
		.prepare(
			"INSERT INTO key_usage (ts_ms, day, key_id, route, model, status_class, prompt_tokens, completion_tokens, cached_tokens, error, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		)
		.bind(
			row.tsMs,
			utcDay(row.tsMs),
			row.keyId,
			row.route,
			facts.model,
			STATUS_CLASSES[Math.floor(row.status / 100) - 1] ?? "5xx",
			facts.promptTokens,
			facts.completionTokens,
			facts.cachedTokens,
			row.status >= 400 || facts.failed ? 1 : 0,
			facts.metadata,
		);
}

function dayParam(url: URL, name: "from" | "to", fallback: string): string {
	const value = url.searchParams.get(name);
	if (value === null) return fallback;
	if (
		!/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(value) ||
		Number.isNaN(Date.parse(`${value}T00:00:00Z`)) ||
		utcDay(Date.parse(`${value}T00:00:00Z`)) !== value
	) {
		throw new HttpError(400, "invalid_request", `must be a UTC day as YYYY-MM-DD, got ${JSON.stringify(value)}`, name);
	}
	return value;
}

/** The day range of a /v1/usage request: `from` and `to` (inclusive), by default the last 7 days. */
function dayRange(url: URL): { from: string; to: string } {
	const unknown = [...url.searchParams.keys()].find((name) => name !== "from" && name !== "to");
	if (unknown !== undefined) throw new HttpError(400, "invalid_request", "is not a parameter of /v1/usage (from, to)", unknown);
	const to = dayParam(url, "to", utcDay(Date.now()));
	const from = dayParam(url, "from", utcDay(Date.parse(`${to}T00:00:00Z`) - 6 * DAY_MS));
	const days = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS + 1;
	if (days < 1) throw new HttpError(400, "invalid_request", `must not be after to (${to}), got ${from}`, "from");
	if (days > MAX_USAGE_RANGE_DAYS) {
		throw new HttpError(
			400,
			"invalid_request",
			`the range ${from}..${to} is ${days} days; at most ${MAX_USAGE_RANGE_DAYS} per request`,
			"from",
		);
	}
	return { from, to };
}

type Sums = { requests: number; prompt_tokens: number; completion_tokens: number; cached_tokens: number; errors: number };
const SUMS_SQL =
	"COUNT(*) AS requests, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, SUM(cached_tokens) AS cached_tokens, SUM(error) AS errors";

/** GET /v1/usage: the calling key's usage by day and route, by metadata, and in total. */
export async function usageResponse(request: Request, db: D1Database, keyId: string): Promise<Response> {
	const { from, to } = dayRange(new URL(request.url));
	const range = "FROM key_usage WHERE key_id = ? AND day BETWEEN ? AND ?";
	const [byDayRoute, byMetadata] = await db.batch<Sums & { day: string; route: string; metadata: string | null }>([
		db.prepare(`SELECT day, route, ${SUMS_SQL} ${range} GROUP BY day, route ORDER BY day, route`).bind(keyId, from, to),
		db
			.prepare(`SELECT metadata, ${SUMS_SQL} ${range} GROUP BY metadata ORDER BY requests DESC, metadata LIMIT ?`)
			.bind(keyId, from, to, MAX_METADATA_GROUPS),
	]);
	const sums = (row: Sums): Sums => ({
		requests: row.requests,
		prompt_tokens: row.prompt_tokens,
		completion_tokens: row.completion_tokens,
		cached_tokens: row.cached_tokens,
		errors: row.errors,
	});
	const totals: Sums = { requests: 0, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, errors: 0 };
	for (const row of byDayRoute.results) for (const name of Object.keys(totals) as (keyof Sums)[]) totals[name] += row[name];
	return Response.json({
		object: "usage",
		key_id: keyId,
		from,
		to,
		totals,
		by_day_and_route: byDayRoute.results.map((row) => ({ day: row.day, route: row.route, ...sums(row) })),
		by_metadata: byMetadata.results.map((row) => ({ metadata: row.metadata === null ? null : JSON.parse(row.metadata), ...sums(row) })),
	});
}
