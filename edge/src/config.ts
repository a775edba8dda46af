// Worker settings from plain vars, validated once per env object; a bad value names its var.
import type { CachePolicy } from "./cache/tiers";
import type { KeyLimits } from "./origin/capacity";
import { HttpError } from "./errors";

export type DlpPolicy = "block" | "redact";

export interface Settings {
	/** Primary origin first, then the failover origin (if configured). */
	originUrls: string[];
	dlpPolicy: DlpPolicy;
	cache: CachePolicy;
	maxTokensLimit: number;
	maxBodyBytes: number;
	originTimeoutMs: number;
	/** Largest number of inputs one embedding request may carry. */
	maxEmbedInputs: number;
	/** Per-key limits on origin work in flight (enforced by the KeyLimiter Durable Object). */
	keyLimits: KeyLimits;
	/** What a cache hit costs a key's daily token budget: its prompt tokens, or nothing. */
	budgetHitTokens: "prompt" | "none";
	/** Set when MODEL_FINGERPRINT pins the fingerprint instead of learning it from the origin. */
	pinnedFingerprint: string | null;
	/** Bounds of a request's own cache TTL (cf-aig-cache-ttl): CACHE_TTL_MIN_SECONDS…CACHE_MAX_AGE_SECONDS. */
	requestTtl: { minSeconds: number; maxSeconds: number };
	/** A streamed miss sends an SSE comment after this long without a byte (SSE_KEEPALIVE_MS). */
	keepaliveMs: number;
	/** Longest a non-streamed generation may be estimated to take (NON_STREAM_MAX_SECONDS). */
	nonStreamMaxSeconds: number;
	/** The share (percent) of each per-key budget that batch lines may hold (BATCH_SHARE_PERCENT). */
	batchSharePercent: number;
}

/** The Batch API's per-key limits. */
export interface BatchLimits {
	maxFileBytes: number;
	maxLines: number;
	maxConcurrentBatches: number;
}

// Cloudflare's proxy answers 524 when an origin sends nothing for 100 s; a non-streamed answer must come sooner.
const PROXY_IDLE_TIMEOUT_SECONDS = 100;

// KV rejects expirationTtl below 60 s, and the cache TTL is also the KV TTL.
const MIN_CACHE_TTL_SECONDS = 60;

const parsed = new WeakMap<Env, Settings>();

export function settings(env: Env): Settings {
	let result = parsed.get(env);
	if (!result) {
		result = parseSettings(env);
		parsed.set(env, result);
	}
	return result;
}

function configError(message: string): HttpError {
	return new HttpError(500, "configuration_error", message);
}

export function integerVar(env: Env, name: keyof Env, min = 1): number {
	const raw = String(env[name] ?? "").trim();
	const value = Number(raw);
	if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(value) || value < min) {
		throw configError(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
	}
	return value;
}

function originUrl(env: Env, name: "ORIGIN_URL" | "ORIGIN_FALLBACK_URL"): string | null {
	const raw = (env[name] ?? "").trim();
	if (raw === "") return null;
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		throw configError(`${name} is not a valid URL`);
	}
	if (url.protocol !== "http:" && url.protocol !== "https:") throw configError(`${name} must be an http(s) URL`);
	return url.toString().replace(/\/+$/, "");
}

/** The cache's settings alone, so the cron's eviction does not depend on the request path's vars. */
export function cachePolicy(env: Env): CachePolicy {
	const ttlSeconds = integerVar(env, "CACHE_TTL_SECONDS", MIN_CACHE_TTL_SECONDS);
	const maxAgeSeconds = integerVar(env, "CACHE_MAX_AGE_SECONDS", MIN_CACHE_TTL_SECONDS);
	if (maxAgeSeconds < ttlSeconds) {
		throw configError(`CACHE_MAX_AGE_SECONDS (${maxAgeSeconds}) must be >= CACHE_TTL_SECONDS (${ttlSeconds})`);
	}
	return { ttlSeconds, maxAgeSeconds, memoryEntries: integerVar(env, "MEMORY_CACHE_ENTRIES", 0) };
}

function parseSettings(env: Env): Settings {
	const primary = originUrl(env, "ORIGIN_URL");
	if (primary === null) throw configError("ORIGIN_URL is required");
	const fallback = originUrl(env, "ORIGIN_FALLBACK_URL");
	const dlpPolicy = (env.DLP_POLICY ?? "").trim();
	if (dlpPolicy !== "block" && dlpPolicy !== "redact") {
		throw configError(`DLP_POLICY must be "block" or "redact", got ${JSON.stringify(dlpPolicy)}`);
	}
	const pinned = (env.MODEL_FINGERPRINT ?? "").trim();
	const budgetHitTokens = (env.BUDGET_HIT_TOKENS ?? "").trim();
	if (budgetHitTokens !== "prompt" && budgetHitTokens !== "none") {
		throw configError(`BUDGET_HIT_TOKENS must be "prompt" or "none", got ${JSON.stringify(budgetHitTokens)}`);
	}
	const cache = cachePolicy(env);
	const requestTtlMin = integerVar(env, "CACHE_TTL_MIN_SECONDS", MIN_CACHE_TTL_SECONDS);
	if (requestTtlMin > cache.maxAgeSeconds) {
		throw configError(`CACHE_TTL_MIN_SECONDS (${requestTtlMin}) must be <= CACHE_MAX_AGE_SECONDS (${cache.maxAgeSeconds})`);
	}
	const nonStreamMaxSeconds = integerVar(env, "NON_STREAM_MAX_SECONDS");
	if (nonStreamMaxSeconds >= PROXY_IDLE_TIMEOUT_SECONDS) {
		throw configError(
			`NON_STREAM_MAX_SECONDS must be below ${PROXY_IDLE_TIMEOUT_SECONDS} (Cloudflare's proxy timeout), got ${nonStreamMaxSeconds}`,
		);
	}
	const keepaliveMs = integerVar(env, "SSE_KEEPALIVE_MS");
	if (keepaliveMs >= PROXY_IDLE_TIMEOUT_SECONDS * 1000) {
		throw configError(
			`SSE_KEEPALIVE_MS must be below ${PROXY_IDLE_TIMEOUT_SECONDS * 1000} (Cloudflare's proxy timeout), got ${keepaliveMs}`,
		);
	}
	return {
		originUrls: fallback ? [primary, fallback] : [primary],
		dlpPolicy,
		cache,
		maxTokensLimit: integerVar(env, "MAX_TOKENS_LIMIT"),
		maxBodyBytes: integerVar(env, "MAX_BODY_BYTES"),
		originTimeoutMs: integerVar(env, "ORIGIN_TIMEOUT_MS"),
		maxEmbedInputs: integerVar(env, "MAX_EMBED_INPUTS"),
		keyLimits: {
			requests: integerVar(env, "MAX_CONCURRENT_PER_KEY"),
			tokens: integerVar(env, "MAX_TOKENS_IN_FLIGHT_PER_KEY"),
			embedInputs: integerVar(env, "MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY"),
		},
		budgetHitTokens,
		pinnedFingerprint: pinned === "" ? null : pinned,
		requestTtl: { minSeconds: requestTtlMin, maxSeconds: cache.maxAgeSeconds },
		keepaliveMs,
		nonStreamMaxSeconds,
		batchSharePercent: percentVar(env, "BATCH_SHARE_PERCENT"),
	};
}

function percentVar(env: Env, name: keyof Env): number {
	const value = integerVar(env, name);
	if (value > 100) throw configError(`${name} must be a percentage between 1 and 100, got ${value}`);
	return value;
}

export function batchLimits(env: Env): BatchLimits {
	return {
		maxFileBytes: integerVar(env, "MAX_BATCH_FILE_BYTES"),
		maxLines: integerVar(env, "MAX_BATCH_LINES"),
		maxConcurrentBatches: integerVar(env, "MAX_CONCURRENT_BATCHES_PER_KEY"),
	};
}

/** Secrets are optional locally; an empty value means "not set". */
export function secret(
	env: Env,
	name: "CF_ACCESS_CLIENT_ID" | "CF_ACCESS_CLIENT_SECRET" | "ORIGIN_TOKEN" | "METRICS_TOKEN" | "RECEIPT_SIGNING_KEY",
): string | null {
	const value = env[name];
	return typeof value === "string" && value !== "" ? value : null;
}
