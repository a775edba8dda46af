// The consumer of BATCH_LINES: one message per line of a running batch. Each line goes through the live
// request path after admission (edge/src/inference.ts: DLP, validation, per-key limits, cache lookup,
// coalescing, origin), as its owner's key, at batch priority. Its outcome is written once: a redelivered
// message finds the line done and does nothing. What is only "not now" (the key's rate or its share of
// origin capacity used up) is sent again later without spending a retry; what failed (origin down, an
// internal error) is retried with backoff, and after max_retries goes to the dead-letter queue, whose
// consumer files the line as failed.
import { authenticate, type ApiKeyRecord } from "../admission/auth";
import { withinLimit, secondsUntilNextWindow } from "../admission/ratelimit";
import { checkRouteScope } from "../admission/scopes";
import { settings } from "../config";
import { errorBody, HttpError, toErrorResponse, type ErrorType } from "../errors";
import { serveAdmitted, type Observation } from "../inference";
import { recordUsage } from "../observability/metrics";
import { newUsageFacts } from "../observability/usage";
import { OPENAI_ROUTES, isOpenAiPath } from "../openai-routes";
import { batchById, keyById, pendingLine, recordLine, type BatchRow, type KeyRow, type LineOutcome } from "./store";

export interface LineMessage {
	batchId: string;
	lineIndex: number;
}

// Refusals that mean "this key is busy", not "this line is wrong": the line waits and runs later.
const BUSY: ErrorType[] = ["rate_limited", "concurrency_limited", "tokens_in_flight_limited", "embed_inputs_in_flight_limited"];
const MAX_BACKOFF_SECONDS = 300;
const BASE_BACKOFF_SECONDS = 5;

/** Retry delay of the n-th failed attempt (1-based): 5, 10, 20 … seconds, at most 5 minutes. */
export function backoffSeconds(attempts: number): number {
	return Math.min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** Math.max(0, attempts - 1));
}

type Verdict = { kind: "recorded" } | { kind: "later"; delaySeconds: number } | { kind: "retry" };

/** A refusal as the line's outcome: the error answer a live request would get. */
export function refused(error: HttpError): Extract<LineOutcome, { responseStatus: number }> {
	return {
		status: "failed",
		responseStatus: error.status,
		responseBody: JSON.stringify(errorBody(error)),
	};
}

/**
 * Runs the line's request as its key, checked as a live request's key is (revoked, expired, rotated out,
 * out of its route scope: the line fails with that 403); a 4xx answer is the line's outcome, busy and 5xx
 * are not.
 */
async function runLine(env: Env, ctx: ExecutionContext, batch: BatchRow, key: KeyRow, body: string): Promise<Verdict | LineOutcome> {
	let record: ApiKeyRecord;
	try {
		record = await authenticate(env, key.key_hash);
		checkRouteScope(record, batch.endpoint);
	} catch (error) {
		if (error instanceof HttpError) return refused(error);
		throw error;
	}
	if (!(await withinLimit(env.BATCH_RATE_LIMITER, key.key_hash)) || !(await withinLimit(env.RATE_LIMITER, key.key_hash))) {
		return { kind: "later", delaySeconds: secondsUntilNextWindow(Date.now()) };
	}
	const route = OPENAI_ROUTES[batch.endpoint as keyof typeof OPENAI_ROUTES];
	const request = new Request(`https://batch.internal${batch.endpoint}`, {
		method: "POST",
		headers: { "content-type": "application/json" },
		body,
	});
	const startedMs = Date.now();
	const obs: Observation = {
		endpoint: batch.endpoint,
		cache: "NONE",
		cacheTier: null,
		keyId: key.id,
		admitted: true,
		usage: newUsageFacts(),
		// A line is the key's usage like a live request (GET /v1/usage), under its endpoint.
		recordUsage: (status) => recordUsage(env.DB, ctx, { tsMs: startedMs, keyId: key.id, route: batch.endpoint, status, facts: obs.usage }),
	};
	let response: Response;
	try {
		response = await serveAdmitted(request, env, ctx, route, obs, record, "batch");
	} catch (error) {
		if (error instanceof HttpError && BUSY.includes(error.type)) {
			return { kind: "later", delaySeconds: Number(error.headers["Retry-After"] ?? BASE_BACKOFF_SECONDS) };
		}
		if (!(error instanceof HttpError) || error.status >= 500) return { kind: "retry" };
		response = toErrorResponse(error);
	}
	const text = await response.text();
	if (obs.usage.counted) obs.recordUsage(response.status);
	if (response.status === 200) return { status: "done", responseStatus: 200, responseBody: text };
	if (response.status === 429 || response.status >= 500) return { kind: "retry" };
	return { status: "failed", responseStatus: response.status, responseBody: text };
}

async function handle(message: Message<LineMessage>, env: Env, ctx: ExecutionContext, keys: Map<string, Promise<KeyRow | null>>) {
	const { batchId, lineIndex } = message.body;
	const [line, batch] = await Promise.all([pendingLine(env.DB, batchId, lineIndex), batchById(env.DB, batchId)]);
	// Done already (a redelivery), or the batch was cancelled, expired or has ended: nothing to do.
	if (!line || !batch || batch.status !== "in_progress" || !isOpenAiPath(batch.endpoint) || line.body === null) {
		message.ack();
		return;
	}
	if (!keys.has(batch.key_id)) keys.set(batch.key_id, keyById(env.DB, batch.key_id));
	const key = await keys.get(batch.key_id)!;
	const verdict: Verdict | LineOutcome =
		key === null
			? refused(new HttpError(403, "forbidden", "the batch's API key no longer exists"))
			: await runLine(env, ctx, batch, key, line.body);
	if ("kind" in verdict) {
		if (verdict.kind === "later") {
			// A new message rather than a retry: waiting for capacity must never use up the line's retries.
			await env.BATCH_LINES.send(message.body, { delaySeconds: verdict.delaySeconds });
			message.ack();
		} else {
			message.retry({ delaySeconds: backoffSeconds(message.attempts) });
		}
		return;
	}
	await recordLine(env.DB, batchId, lineIndex, verdict);
	message.ack();
}

export async function consumeLines(batch: MessageBatch<LineMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
	// One key lookup per key per delivery, however many of its lines the delivery holds.
	const keys = new Map<string, Promise<KeyRow | null>>();
	// As many lines at once as a key's batch share of MAX_CONCURRENT_PER_KEY lets run: more would only be
	// refused a lease and sent round again.
	const config = settings(env);
	const width = Math.max(1, Math.floor((config.keyLimits.requests * config.batchSharePercent) / 100));
	const waiting = [...batch.messages];
	const worker = async () => {
		for (let message = waiting.shift(); message; message = waiting.shift()) {
			const current = message;
			await handle(current, env, ctx, keys).catch((error: Error) => {
				console.error(`batch line ${current.body.batchId}#${current.body.lineIndex}: ${error.message}; retrying`);
				current.retry({ delaySeconds: backoffSeconds(current.attempts) });
			});
		}
	};
	await Promise.all(Array.from({ length: Math.min(width, waiting.length) }, worker));
}

/** Lines that kept failing: filed as failed, so their batch can end. */
export async function consumeDeadLetters(batch: MessageBatch<LineMessage>, env: Env): Promise<void> {
	for (const message of batch.messages) {
		const { batchId, lineIndex } = message.body;
		await recordLine(env.DB, batchId, lineIndex, {
			status: "failed",
			errorCode: "line_failed",
			errorMessage: "the line failed on every attempt (origin unavailable or an internal error)",
		});
		message.ack();
	}
}
