// The model fingerprint that goes into every cache key. Pinned by MODEL_FINGERPRINT, or learnt from the
// origin's GET /v1/status: memoised per isolate for MEMO_MS and persisted in KV, so cache hits keep
// working (with the last known fingerprint) while every origin is down.
import type { Settings } from "../config";
import { OriginUnavailableError, callOrigin } from "../origin/client";

const MEMO_MS = 30_000;
const STATUS_TIMEOUT_MS = 3_000;
const FINGERPRINT_KV_KEY = "meta:model-fingerprint";
const FINGERPRINT_PATTERN = /^[0-9a-f]{8,128}$/;

const memo = new Map<string, { value: string; atMs: number }>();

function memoKey(config: Settings): string {
	return config.originUrls.join(" ");
}

export function isFingerprint(value: unknown): value is string {
	return typeof value === "string" && FINGERPRINT_PATTERN.test(value);
}

async function fromOrigin(env: Env, config: Settings): Promise<string> {
	const timeoutMs = Math.min(STATUS_TIMEOUT_MS, config.originTimeoutMs);
	return callOrigin(env, { urls: config.originUrls, timeoutMs }, "/v1/status", { method: "GET" }, async (response) => {
		const status = response.ok ? await response.json<{ fingerprint?: unknown }>() : null;
		if (!isFingerprint(status?.fingerprint)) throw new Error(`GET /v1/status gave no fingerprint (HTTP ${response.status})`);
		return status.fingerprint;
	});
}

/** Remembers a fingerprint for this isolate and, when it changed, for every isolate via KV. */
export function rememberFingerprint(env: Env, config: Settings, ctx: ExecutionContext, value: string): void {
	const previous = memo.get(memoKey(config))?.value;
	memo.set(memoKey(config), { value, atMs: Date.now() });
	if (previous !== value) {
		const persist = async () => env.CACHE.put(FINGERPRINT_KV_KEY, value);
		ctx.waitUntil(persist().catch((error: Error) => console.error("fingerprint: KV write failed:", error.message)));
	}
}

async function persistedFingerprint(env: Env): Promise<string | null> {
	try {
		const value = await env.CACHE.get(FINGERPRINT_KV_KEY);
		return isFingerprint(value) ? value : null;
	} catch (error) {
		console.error("fingerprint: KV read failed:", (error as Error).message);
		return null;
	}
}

export async function currentFingerprint(env: Env, config: Settings, ctx: ExecutionContext): Promise<string> {
	if (config.pinnedFingerprint) return config.pinnedFingerprint;
	const known = memo.get(memoKey(config));
	if (known && Date.now() - known.atMs < MEMO_MS) return known.value;
	try {
		const value = await fromOrigin(env, config);
		rememberFingerprint(env, config, ctx, value);
		return value;
	} catch (error) {
		const fallback = (await persistedFingerprint(env)) ?? known?.value;
		if (!fallback) throw error instanceof OriginUnavailableError ? error : new OriginUnavailableError(5);
		// Keep serving hits with the last known fingerprint without asking the dead origin on every request.
		memo.set(memoKey(config), { value: fallback, atMs: Date.now() });
		return fallback;
	}
}
