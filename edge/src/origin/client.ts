// Calls to the inference runtime behind Cloudflare Tunnel: Access service-token and bearer headers from
// secrets, a timeout per attempt, failover to the next origin. The runtime's routes are deterministic
// and side-effect free, so failing over is safe. A timed-out origin is not called again (that would only
// pile more work onto it); a connection lost before any answer is resent once (see fetchReconnectingOnce).
// Redirects are never followed: the credentials would go wherever the Location points (fetch keeps custom
// headers such as CF-Access-Client-Secret across hosts), so a 3xx is an origin failure.
import { breakerFor, isOriginFailure } from "./breaker";
import { secret } from "../config";
import { HttpError } from "../errors";
import { parsePieces, PIECES_HEADER, type Pieces } from "../cache/replay";
import { DOCUMENT_TOKENS_HEADER } from "../cache/rerank-pairs";

const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** A complete origin answer as plain data, so it can be shared between requests and sent over RPC. */
export interface OriginAnswer {
	status: number;
	body: string;
	contentType: string;
	fingerprint: string | null;
	retryAfter: string | null;
	/** A generation answer's piece lengths (the runtime's X-Steadytext-Pieces header), for stream replays. */
	pieces: Pieces | null;
	/** How long the origin call took (fetchAnswer), kept with the answer through coalescing: speed.ts learns from it. */
	originMs?: number;
	/** A rerank answer's X-Steadytext-Document-Tokens header, as sent (src/cache/rerank-pairs.ts). */
	documentTokens?: string | null;
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
	/** The API key id the work is for, sent as X-Steadytext-Tenant so the runtime can queue fairly. */
	tenant?: string;
}

const TENANT_HEADER = "X-Steadytext-Tenant";

function originHeaders(env: Env, hasBody: boolean, tenant: string | undefined): Headers {
	const headers = new Headers({ accept: "application/json, text/event-stream" });
	if (hasBody) headers.set("content-type", "application/json");
	if (tenant) headers.set(TENANT_HEADER, tenant);
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

/** Names where a redirect pointed (host only: the rest of a Location may carry tokens). */
function redirectNote(response: Response): string {
	const location = response.headers.get("location");
	if (!location) return "";
	try {
		return ` (redirect to ${new URL(location, "http://origin.invalid").host}, not followed)`;
	} catch {
		return " (redirect, not followed)";
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
				headers: originHeaders(env, init.body !== undefined, target.tenant),
				body: init.body,
				redirect: "manual",
				signal: controller.signal,
			});
			if (isOriginFailure(response.status)) {
				await response.body?.cancel();
				throw new Error(`status ${response.status}${redirectNote(response)}`);
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
		// No default: an answer without a content type is never taken for JSON (src/cache/answers.ts).
		contentType: response.headers.get("content-type") ?? "",
		fingerprint: response.headers.get("x-model-fingerprint"),
		retryAfter: response.headers.get("retry-after"),
		pieces: parsePieces(response.headers.get(PIECES_HEADER)),
		documentTokens: response.headers.get(DOCUMENT_TOKENS_HEADER),
	};
}

/** POST a JSON body and read the whole answer. */
export async function fetchAnswer(env: Env, target: OriginTarget, path: string, body: string): Promise<OriginAnswer> {
	const startedMs = Date.now();
	const answer = await callOrigin(env, target, path, { method: "POST", body }, readAnswer);
	return { ...answer, originMs: Date.now() - startedMs };
}
