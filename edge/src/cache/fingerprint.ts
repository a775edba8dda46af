// The model fingerprint that goes into every cache key. Pinned by MODEL_FINGERPRINT, or learnt from the
// origin's GET /v1/status: memoised per isolate for MEMO_MS and persisted in KV, so cache hits keep
// working (with the last known fingerprint) while every origin is down. The same status also tells the
// model file's sha256 and the golden-probe digest (originStatus; kept per fingerprint in origin-builds.ts).
import type { Settings } from "../config";
import { OriginUnavailableError, callOrigin } from "../origin/client";

const MEMO_MS = 30_000;
const STATUS_TIMEOUT_MS = 3_000;
const FINGERPRINT_KV_KEY = "meta:model-fingerprint";
const FINGERPRINT_PATTERN = /^[0-9a-f]{8,128}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** What GET /v1/status says about the origin's build; the digest is null where the runtime has none. */
export interface OriginStatus {
	fingerprint: string;
	modelSha256: string | null;
	probeDigest: string | null;
	/** The runtime's `max_tokens` for a request that gives none (status `defaults.max_tokens`). */
	defaultMaxTokens: number | null;
}

const memo = new Map<string, { value: string; atMs: number }>();
const statusMemo = new Map<string, { status: OriginStatus | null; atMs: number }>();

function memoKey(config: Settings): string {
	return config.originUrls.join(" ");
}

export function isFingerprint(value: unknown): value is string {
	return typeof value === "string" && FINGERPRINT_PATTERN.test(value);
}

function sha256OrNull(value: unknown): string | null {
	return typeof value === "string" && SHA256_PATTERN.test(value) ? value : null;
}

function positiveIntegerOrNull(value: unknown): number | null {
	return Number.isSafeInteger(value) && (value as number) > 0 ? (value as number) : null;
}

async function fromOrigin(env: Env, config: Settings): Promise<OriginStatus> {
	const timeoutMs = Math.min(STATUS_TIMEOUT_MS, config.originTimeoutMs);
	return callOrigin(env, { urls: config.originUrls, timeoutMs }, "/v1/status", { method: "GET" }, async (response) => {
		type Status = {
			fingerprint?: unknown;
			model?: { sha256?: unknown };
			probes?: { digest?: unknown } | null;
			defaults?: { max_tokens?: unknown };
		};
		const status = response.ok ? await response.json<Status>() : null;
		if (!isFingerprint(status?.fingerprint)) throw new Error(`GET /v1/status gave no fingerprint (HTTP ${response.status})`);
		statusMemo.set(memoKey(config), {
			status: {
				fingerprint: status.fingerprint,
				modelSha256: sha256OrNull(status.model?.sha256),
				probeDigest: sha256OrNull(status.probes?.digest),
				defaultMaxTokens: positiveIntegerOrNull(status.defaults?.max_tokens),
			},
			atMs: Date.now(),
		});
		return statusMemo.get(memoKey(config))!.status!;
	});
}

/** The status this isolate last read (for a default that changes only with a runtime's settings); never asks. */
export function lastOriginStatus(config: Settings): OriginStatus | null {
	return statusMemo.get(memoKey(config))?.status ?? null;
}

/**
 * The origin's status, memoised per isolate for MEMO_MS (also when MODEL_FINGERPRINT pins the fingerprint);
 * null when no origin answers it.
 */
export async function originStatus(env: Env, config: Settings): Promise<OriginStatus | null> {
	const known = statusMemo.get(memoKey(config));
	if (known && Date.now() - known.atMs < MEMO_MS) return known.status;
	try {
		return await fromOrigin(env, config);
	} catch (error) {
		console.error("fingerprint: GET /v1/status failed:", (error as Error).message);
		// Not asked again on every answer while it fails; the fingerprint's own fallback is unaffected.
		statusMemo.set(memoKey(config), { status: null, atMs: Date.now() });
		return null;
	}
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
		const value = (await fromOrigin(env, config)).fingerprint;
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
