// Per-key capacity: a request that needs the origin (a cache miss) first takes a lease from the
// KeyLimiter Durable Object of its API key and gives it back when its origin work ends (answer, error,
// timeout, end or cancel of a stream). Cache hits and requests joining another request's origin call
// take no lease. A limiter outage fails open, like the rate limiter: it must not take the API down.
import type { Kind } from "../cache/cachekey";
import { HttpError, type ErrorType } from "../errors";
import type { LeaseDecision } from "./keylimiter";
import type { Body } from "../admission/validate";

/** What one request holds while its origin work runs. Each budget has a per-key limit. */
export type Demand = { requests: number; tokens: number; embedInputs: number };
export type KeyLimits = Demand;
export type Budget = keyof Demand;

const BUDGETS: Record<Budget, { variable: string; type: ErrorType; what: string }> = {
	requests: { variable: "MAX_CONCURRENT_PER_KEY", type: "concurrency_limited", what: "requests at the origin" },
	tokens: {
		variable: "MAX_TOKENS_IN_FLIGHT_PER_KEY",
		type: "tokens_in_flight_limited",
		what: "estimated tokens (prompt + n × max_tokens) at the origin",
	},
	embedInputs: {
		variable: "MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY",
		type: "embed_inputs_in_flight_limited",
		what: "embedding inputs at the origin",
	},
};

// Prompt tokens are estimated as UTF-8 bytes: an upper bound, since every token of the model's
// tokenizer covers at least one byte (byte-fallback tokens exactly one), and a smaller ratio can be
// beaten by prompts the tokenizer splits finely (digits are one token each). Fixed overheads cover BOS
// and the chat template's turn markers.
const PROMPT_OVERHEAD_TOKENS = 2;
const CHAT_TOKENS_PER_MESSAGE = 6;
const encoder = new TextEncoder();

function textBytes(value: unknown): number {
	return encoder.encode(typeof value === "string" ? value : JSON.stringify(value ?? "")).byteLength;
}

function promptTokens(params: Body): number {
	if (Array.isArray(params.messages)) {
		const perMessage = params.messages.map(
			(message: Body) => textBytes(message.role) + textBytes(message.content) + CHAT_TOKENS_PER_MESSAGE,
		);
		return PROMPT_OVERHEAD_TOKENS + perMessage.reduce((sum, tokens) => sum + tokens, 0);
	}
	return PROMPT_OVERHEAD_TOKENS + textBytes(params.prompt);
}

/**
 * The request's demand on its key's budgets. Generation: prompt estimate + n × max_tokens (max_tokens
 * absent: the largest accepted, as the runtime's own default is not known here; each of the n choices
 * may use all of it). Embedding: the number of inputs.
 */
export function demandOf(kind: Kind, params: Body, maxTokensLimit: number): Demand {
	// Tokenizing runs beside the model, not on it: it holds a request slot and nothing else.
	if (kind === "tokens") return { requests: 1, tokens: 0, embedInputs: 0 };
	if (kind === "rerank") return rerankDemand(params);
	if (kind === "embed") return { requests: 1, tokens: 0, embedInputs: Array.isArray(params.input) ? params.input.length : 1 };
	return { requests: 1, tokens: promptTokens(params) + choicesOf(params) * maxTokensOf(params, maxTokensLimit), embedInputs: 0 };
}

/** How many choices a generation asks for (OpenAI's `n`; 1 without it). */
export function choicesOf(params: Body): number {
	return typeof params.n === "number" ? params.n : 1;
}

/** The most tokens one choice of a generation may produce: its max_tokens, or (absent) the largest accepted. */
export function maxTokensOf(params: Body, maxTokensLimit: number): number {
	const maxTokens = params.max_completion_tokens ?? params.max_tokens;
	return typeof maxTokens === "number" ? maxTokens : maxTokensLimit;
}

/**
 * An upper bound of the tokens a request may use, for the daily token budget: generation as its demand
 * (prompt estimate + n × max_tokens); rerank, its documents' prompts; embedding, each input's estimate (the
 * prompt side only).
 */
export function tokenEstimate(kind: Kind, params: Body, maxTokensLimit: number): number {
	if (kind === "generate" || kind === "rerank") return demandOf(kind, params, maxTokensLimit).tokens;
	if (kind === "tokens") return 0; // tokenizing runs no model
	const inputs: unknown[] = Array.isArray(params.input) ? params.input : [params.input];
	return inputs.reduce<number>((sum, input) => sum + PROMPT_OVERHEAD_TOKENS + textBytes(input), 0);
}

// Each document is scored in a prompt of its own: the query, the document and the relevance question's
// words (runtime/engine/relevance.py, under 64 tokens with the chat format's markers).
const RELEVANCE_PROMPT_TOKENS = 64;

/** A rerank's prompt tokens, estimated as above: one prompt per document, nothing generated. */
function rerankDemand(params: Body): Demand {
	const documents = Array.isArray(params.documents) ? params.documents : [];
	const perDocument = PROMPT_OVERHEAD_TOKENS + RELEVANCE_PROMPT_TOKENS + textBytes(params.query);
	const tokens = documents.reduce((sum: number, document: unknown) => sum + perDocument + textBytes(document), 0);
	return { requests: 1, tokens, embedInputs: 0 };
}

function estimatedField(params: Body): string {
	if (Array.isArray(params.documents)) return "documents";
	return Array.isArray(params.messages) ? "messages" : "prompt";
}

/** A request no lease could ever cover is refused outright (a 429 would only invite retries). */
export function checkDemandFits(params: Body, demand: Demand, limits: KeyLimits): void {
	if (demand.tokens > limits.tokens) {
		throw new HttpError(
			400,
			"invalid_request",
			`is estimated at ${demand.tokens} tokens (prompt bytes + n × max_tokens), more than this key may have in flight (${limits.tokens}, MAX_TOKENS_IN_FLIGHT_PER_KEY)`,
			estimatedField(params),
		);
	}
	if (demand.embedInputs > limits.embedInputs) {
		throw new HttpError(
			400,
			"invalid_request",
			`has ${demand.embedInputs} inputs, more than this key may have in flight (${limits.embedInputs}, MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY)`,
			"input",
		);
	}
}

interface Lease {
	/** Idempotent; the release itself runs under the request's waitUntil. */
	release(): void;
}

const NO_LEASE: Lease = { release() {} };

/** 429 naming the full budget; it concerns the key that asked, never a request that shares its flight. */
class KeyLimitError extends HttpError {
	constructor(decision: Extract<LeaseDecision, { granted: false }>, limits: KeyLimits) {
		const budget = BUDGETS[decision.budget];
		super(
			429,
			budget.type,
			`this API key has reached its limit of ${limits[decision.budget]} ${budget.what} (${budget.variable}); retry in ${decision.retryAfterSeconds} s`,
			undefined,
			{ "Retry-After": String(decision.retryAfterSeconds) },
		);
	}
}

export interface LeaseRequest {
	tenant: string;
	demand: Demand;
	limits: KeyLimits;
	/** How long the lease lives if it is never released (the longest the origin work may take). */
	ttlMs: number;
}

/** Takes a lease or throws the 429 naming the budget that is full. */
export async function acquireLease(env: Env, ctx: ExecutionContext, request: LeaseRequest): Promise<Lease> {
	const leaseId = crypto.randomUUID();
	let stub: DurableObjectStub<import("./keylimiter").KeyLimiter>;
	let decision: LeaseDecision;
	try {
		stub = env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(request.tenant));
		decision = await stub.acquire(leaseId, request.demand, request.limits, request.ttlMs);
	} catch (error) {
		console.error("capacity: KeyLimiter call failed, allowing the request:", (error as Error).message);
		return NO_LEASE;
	}
	if (!decision.granted) throw new KeyLimitError(decision, request.limits);
	let released = false;
	return {
		release() {
			if (released) return;
			released = true;
			// Under waitUntil: a stream's lease is given back as its response ends.
			ctx.waitUntil(
				stub
					.release(leaseId)
					.catch((error: Error) => console.error("capacity: lease release failed (it expires by itself):", error.message)),
			);
		},
	};
}

/** Runs `work` under a lease that is given back however the work ends. */
export async function withLease<T>(env: Env, ctx: ExecutionContext, request: LeaseRequest, work: () => Promise<T>): Promise<T> {
	const lease = await acquireLease(env, ctx, request);
	try {
		return await work();
	} finally {
		lease.release();
	}
}

/** A stream body that gives the lease back when it ends, fails or is cancelled by the client. */
export function releasingAtEnd(body: ReadableStream<Uint8Array> | null, lease: Lease): ReadableStream<Uint8Array> | null {
	if (!body) {
		lease.release();
		return null;
	}
	const reader = body.getReader();
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			let chunk: ReadableStreamReadResult<Uint8Array>;
			try {
				chunk = await reader.read();
			} catch (error) {
				lease.release();
				controller.error(error);
				return;
			}
			if (chunk.done) {
				lease.release();
				controller.close();
			} else {
				controller.enqueue(chunk.value);
			}
		},
		cancel(reason) {
			lease.release();
			return reader.cancel(reason);
		},
	});
}
