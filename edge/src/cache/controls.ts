// Per-request cache controls, read from the request's headers once it is admitted: HTTP's Cache-Control
// (no-cache, no-store) and Cloudflare AI Gateway's headers, so its clients can switch without changes:
// - `cf-aig-skip-cache: true` is `Cache-Control: no-cache` (skip the read, store the fresh answer);
// - `cf-aig-cache-ttl: <seconds>` gives the answer this request stores a fixed life (AI Gateway's meaning:
//   kept that long from when it is stored, hits never extend it), within CACHE_TTL_MIN_SECONDS (KV's 60 s
//   minimum at least) and CACHE_MAX_AGE_SECONDS;
// - `cf-aig-cache-key: <name>` names a cache namespace. Unlike AI Gateway, where the name replaces the
//   whole key (any body sent with it gets the same answer), here it is added to the key material with the
//   calling key's id: a deterministic cache must never answer one prompt with another's answer, and two
//   tenants using one name must never share entries.
// A malformed value is a 400 naming the header; a value is never echoed (it could carry anything).
import { HttpError } from "../errors";

type CacheMode = "use" | "no-cache" | "no-store";

/** A private part of the cache: one API key's entries under one name (a rotated key's: its chain's, budget.ts). */
export interface CacheNamespace {
	keyId: string;
	name: string;
}

export interface CacheControls {
	mode: CacheMode;
	/** The fixed life (seconds) of the answer this request stores; null: the sliding CACHE_TTL_SECONDS. */
	ttlSeconds: number | null;
	namespace: CacheNamespace | null;
}

const SKIP_HEADER = "cf-aig-skip-cache";
const TTL_HEADER = "cf-aig-cache-ttl";
const NAMESPACE_HEADER = "cf-aig-cache-key";
const MAX_NAMESPACE_CHARS = 128;
const NAMESPACE_PATTERN = new RegExp(`^[A-Za-z0-9._:~-]{1,${MAX_NAMESPACE_CHARS}}$`);

interface TtlBounds {
	minSeconds: number;
	maxSeconds: number;
}

function invalid(header: string, message: string): HttpError {
	return new HttpError(400, "invalid_request", message, header);
}

function skipsCache(request: Request): boolean {
	const raw = request.headers.get(SKIP_HEADER);
	if (raw === null) return false;
	const value = raw.trim().toLowerCase();
	if (value !== "true" && value !== "false") throw invalid(SKIP_HEADER, "must be true or false");
	return value === "true";
}

function requestTtl(request: Request, bounds: TtlBounds): number | null {
	const raw = request.headers.get(TTL_HEADER);
	if (raw === null) return null;
	const value = raw.trim();
	const seconds = Number(value);
	const allowed = `an integer number of seconds from ${bounds.minSeconds} (CACHE_TTL_MIN_SECONDS) to ${bounds.maxSeconds} (CACHE_MAX_AGE_SECONDS)`;
	if (!/^[0-9]{1,12}$/.test(value) || seconds < bounds.minSeconds || seconds > bounds.maxSeconds) {
		throw invalid(TTL_HEADER, `must be ${allowed}`);
	}
	return seconds;
}

function namespaceName(request: Request): string | null {
	const raw = request.headers.get(NAMESPACE_HEADER);
	if (raw === null) return null;
	if (!NAMESPACE_PATTERN.test(raw)) {
		throw invalid(
			NAMESPACE_HEADER,
			`must be 1 to ${MAX_NAMESPACE_CHARS} characters of letters, digits and . _ : ~ - (got ${raw.length} characters)`,
		);
	}
	return raw;
}

/** The request's cache controls; throws a 400 naming the header for a malformed one. */
export function cacheControls(request: Request, keyId: string, bounds: TtlBounds): CacheControls {
	const directives = (request.headers.get("cache-control") ?? "").toLowerCase();
	const skip = skipsCache(request);
	const ttlSeconds = requestTtl(request, bounds);
	const name = namespaceName(request);
	let mode: CacheMode = "use";
	if (/\bno-store\b/.test(directives)) mode = "no-store";
	else if (skip || /\bno-cache\b/.test(directives)) mode = "no-cache";
	return { mode, ttlSeconds, namespace: name === null ? null : { keyId, name } };
}
