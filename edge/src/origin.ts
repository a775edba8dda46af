// Calls to the inference runtime behind Cloudflare Tunnel: Access service-token and bearer headers from
// secrets, a timeout per attempt, failover to the next origin. The runtime's routes are deterministic
// and side-effect free, so failing over is safe. A timed-out origin is not called again (that would only
// pile more work onto it); a connection lost before any answer is resent once (see fetchReconnectingOnce).
import { breakerFor } from "./breaker";
import { secret } from "./config";
import { HttpError } from "./errors";

/** Status codes that mean "this origin cannot answer now" (gateway errors, Cloudflare tunnel errors). */
const UNAVAILABLE_STATUS = new Set([502, 503, 504, 520, 521, 522, 523, 524, 530]);
const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** A complete origin answer as plain data, so it can be shared between requests and sent over RPC. */
export interface OriginAnswer {
	status: number;
	body: string;
	contentType: string;
	fingerprint: string | null;
	retryAfter: string | null;
}

export class OriginUnavailableError extends HttpError {
	constructor(readonly retryAfterSeconds: number) {
		super(503, "origin_unavailable", "the inference origin is unavailable; retry later", undefined, {
			"Retry-After": String(retryAfterSeconds),
		});
	}
}

export interface OriginTarget {
	urls: string[];
	timeoutMs: number;
}

function originHeaders(env: Env, hasBody: boolean): Headers {
	const headers = new Headers({ accept: "application/json, text/event-stream" });
	if (hasBody) headers.set("content-type", "application/json");
	const accessId = secret(env, "CF_ACCESS_CLIENT_ID");
	const accessSecret = secret(env, "CF_ACCESS_CLIENT_SECRET");
	if (accessId && accessSecret) {
		headers.set("CF-Access-Client-Id", accessId);
		headers.set("CF-Access-Client-Secret", accessSecret);
	}
	const token = secret(env, "ORIGIN_TOKEN");
	if (token) headers.set("Authorization", `Bearer ${token}`);
	return headers;
}

/**
 * An idle kept-alive connection can be closed by the origin just as it is reused, and the request then
 * fails before any answer. Sending it again on a fresh connection is safe here; an aborted (timed-out)
 * attempt is not resent.
 */
async function fetchReconnectingOnce(url: string, init: RequestInit): Promise<Response> {
	try {
		return await fetch(url, init);
	} catch (error) {
		if (init.signal?.aborted) throw error;
		return await fetch(url, init);
	}
}

/**
 * Sends one request with failover. `consume` runs inside the per-attempt timeout (read the whole body
 * for a JSON answer; return at once for a stream, whose body then outlives the timer).
 */
export async function callOrigin<T>(
	env: Env,
	target: OriginTarget,
	path: string,
	init: { method: "GET" | "POST"; body?: string },
	consume: (response: Response) => Promise<T>,
): Promise<T> {
	let retryAfter = Number.POSITIVE_INFINITY;
	for (const base of target.urls) {
		const breaker = breakerFor(base);
		if (!breaker.allows(Date.now())) {
			retryAfter = Math.min(retryAfter, breaker.retryAfterSeconds(Date.now()));
			continue;
		}
		const controller = new AbortController();
		const timer = setTimeout(() => controller.abort(), target.timeoutMs);
		try {
			const response = await fetchReconnectingOnce(base + path, {
				method: init.method,
				headers: originHeaders(env, init.body !== undefined),
				body: init.body,
				signal: controller.signal,
			});
			if (UNAVAILABLE_STATUS.has(response.status)) {
				await response.body?.cancel();
				throw new Error(`status ${response.status}`);
			}
			const result = await consume(response);
			breaker.onSuccess();
			return result;
		} catch (error) {
			breaker.onFailure(Date.now());
			console.error(`origin ${new URL(base).host} failed:`, (error as Error).message);
			retryAfter = Math.min(retryAfter, breaker.retryAfterSeconds(Date.now()) || DEFAULT_RETRY_AFTER_SECONDS);
		} finally {
			clearTimeout(timer);
		}
	}
	throw new OriginUnavailableError(Number.isFinite(retryAfter) ? retryAfter : DEFAULT_RETRY_AFTER_SECONDS);
}

export async function readAnswer(response: Response): Promise<OriginAnswer> {
	return {
		status: response.status,
		body: await response.text(),
		contentType: response.headers.get("content-type") ?? "application/json",
		fingerprint: response.headers.get("x-model-fingerprint"),
		retryAfter: response.headers.get("retry-after"),
	};
}

/** POST a JSON body and read the whole answer. */
export function fetchAnswer(env: Env, target: OriginTarget, path: string, body: string): Promise<OriginAnswer> {
	return callOrigin(env, target, path, { method: "POST", body }, readAnswer);
}
