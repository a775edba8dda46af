// The request path for generation and embedding routes:
// admission (key check → rate limit → route scope), only then cache headers → body → DLP → validation →
// model scope → daily budget reservation → fingerprint → cache lookup; hit → replay; miss → single-flight origin call under a per-key lease → write-behind to KV and D1. A
// streamed miss is passed through as the origin sends it (with keepalives while it is silent) and stored
// once it completed well; a streamed hit replays its exact bytes. A non-streamed generation that may take
// longer than proxies wait is refused with a pointer to streaming (origin/speed.ts).
import { admit } from "./admission/admit";
import type { ApiKeyRecord } from "./admission/auth";
import { budgetOwner, reserveBudget, type BudgetHold } from "./admission/budget";
import { checkModelScope } from "./admission/scopes";
import { answerFacts, isCacheableAnswer, totalTokens, type AnswerFacts } from "./cache/answers";
import { lookup, store, type CachedAnswer } from "./cache/tiers";
import { cacheKey, type Kind } from "./cache/cachekey";
import { cacheControls, type CacheControls } from "./cache/controls";
import { failureEvents, sleep, withKeepalive } from "./origin/keepalive";
import { checkNonStreamTime, recordSpeed } from "./origin/speed";
import { onOriginUnavailable } from "./origin/scalesignal";
import {
	acquireLease,
	checkDemandFits,
	demandOf,
	releasingAtEnd,
	tokenEstimate,
	withLease,
	type Demand,
	type KeyLimits,
	type LeaseRequest,
} from "./origin/capacity";
import { coalescedAnswer } from "./origin/coalesce";
import { settings, type Settings } from "./config";
import { applyDlp } from "./admission/dlp";
import { HttpError } from "./errors";
import { currentFingerprint, isFingerprint, lastOriginStatus, rememberFingerprint } from "./cache/fingerprint";
import { mayCache, modelSha256Of } from "./cache/origin-builds";
import { RECEIPT_HEADER, receiptRequested, sha256HexOf, signingKey, signReceipt } from "./receipt";
import { readJsonObject } from "./admission/http";
import { callOrigin, fetchAnswer, OriginUnavailableError, type OriginAnswer, type OriginTarget } from "./origin/client";
import { deriveAnswer, EventSplitter, isUsageChunk, renderStream, type StreamFormat } from "./cache/replay";
import type { Body, Validator } from "./admission/validate";
import { requestMetadata, type UsageFacts } from "./observability/usage";

export interface InferenceRoute {
	kind: Kind;
	originPath: string;
	validate: Validator;
	/** How the route's stream is rendered from a stored answer; null when the route cannot stream. */
	streamFormat: StreamFormat | null;
}

/** PARTIAL: a rerank found some of its (query, document) pairs cached and scored the rest (src/rerank.ts). */
type CacheStatus = "HIT" | "MISS" | "PARTIAL" | "BYPASS" | "NONE";

/** What the request did, for the metrics row; filled in as the request progresses. */
export interface Observation {
	endpoint: string;
	cache: CacheStatus;
	cacheTier: CachedAnswer["tier"] | null;
	keyId: string | null;
	/** True once the request passed admission; only admitted requests get a D1 metrics row. */
	admitted: boolean;
	/** What the request used, for its key_usage row (no prompt or answer text). */
	usage: UsageFacts;
	/** Queues the key_usage row with these facts and the answer's status (index.ts). */
	recordUsage: (status: number) => void;
}

// Beyond the origin timeouts, how long a lease may outlive its request before it expires by itself.
export const LEASE_MARGIN_MS = 5_000;

interface Validated {
	params: Body;
	transport: Body;
	stream: boolean;
	redacted: string[];
	controls: CacheControls;
	/** The request body exactly as received (a receipt signs its sha256). */
	bodyBytes: Uint8Array;
}

interface Prepared extends Validated {
	fingerprint: string;
	key: string;
	cached: CachedAnswer | null;
}

/** Everything that reads the request; runs only once the request is admitted. */
async function validated(request: Request, config: Settings, route: InferenceRoute, namespaceOwner: string): Promise<Validated> {
	// Headers first: a malformed cache header is refused before the body is read.
	const controls = cacheControls(request, namespaceOwner, config.requestTtl);
	// DLP sees the raw body, keys included, before validation: a 400 naming an unknown field must never
	// echo a card number used as the field's name.
	let bodyBytes: Uint8Array = new Uint8Array(0);
	const raw = await readJsonObject(request, config.maxBodyBytes, (bytes) => (bodyBytes = bytes));
	const { value: body, redacted } = applyDlp(raw, config.dlpPolicy);
	const { params, transport, stream } = route.validate(body, config);
	return { params, transport, stream, redacted, controls, bodyBytes };
}

/** The cache key and lookup; runs only once the request is within its key's scopes and budgets. */
async function prepare(env: Env, ctx: ExecutionContext, config: Settings, route: InferenceRoute, request: Validated): Promise<Prepared> {
	const fingerprint = await currentFingerprint(env, config, ctx);
	const key = await cacheKey(route.kind, route.originPath, request.params, fingerprint, request.controls.namespace);
	const cached = request.controls.mode === "use" ? await lookup(env, ctx, key, config.cache) : null;
	return { ...request, fingerprint, key, cached };
}

/** The body the origin receives: the validated (and DLP-checked) fields, nothing else of the request. */
function originBody(prepared: Prepared): string {
	return JSON.stringify({ ...prepared.params, ...prepared.transport });
}

/** What a cache hit costs the token budget: its prompt side, or nothing with BUDGET_HIT_TOKENS=none. */
function hitTokens(config: Settings, facts: AnswerFacts): number | null {
	return config.budgetHitTokens === "none" ? 0 : facts.promptTokens;
}

/** Notes an answer's token counts and model in the request's usage facts; a hit's tokens all came from the cache. */
function noteUsage(obs: Observation, facts: AnswerFacts, fromCache: boolean): void {
	const usage = obs.usage;
	usage.model = facts.model ?? usage.model;
	usage.promptTokens = facts.promptTokens ?? 0;
	usage.completionTokens = facts.completionTokens;
	usage.cachedTokens = fromCache ? (totalTokens(facts) ?? 0) : 0;
}

function answerHeaders(contentType: string, cache: CacheStatus, prepared: Prepared, fingerprint: string | null): Headers {
	// AI Gateway's header knows HIT and MISS only: a bypass is a MISS there.
	const headers = new Headers({ "x-cache": cache, "cf-aig-cache-status": cache === "HIT" ? "HIT" : "MISS", "x-cache-key": prepared.key });
	if (cache !== "HIT") headers.set(TOKENS_SAVED_HEADER, "0");
	if (contentType) headers.set("content-type", contentType);
	if (fingerprint) headers.set("x-model-fingerprint", fingerprint);
	if (prepared.redacted.length > 0) headers.set("x-dlp-redacted", prepared.redacted.join(","));
	return headers;
}

const STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8";
export const TOKENS_SAVED_HEADER = "x-steadytext-tokens-saved";

function wantsUsage(prepared: Prepared): boolean {
	const options = prepared.transport.stream_options as { include_usage?: unknown } | undefined;
	return options?.include_usage === true;
}

/**
 * A cache hit's answer: the stored bytes, or for a streaming request the live stream's exact bytes
 * rendered from them. Null when a streaming request finds an answer stored without its piece boundaries
 * (before they were kept): it is served live, and that answer replaces the stored one.
 */
function replayHit(route: InferenceRoute, prepared: Prepared, cached: CachedAnswer & { facts: AnswerFacts }): Response | null {
	const headers = answerHeaders(cached.contentType, "HIT", prepared, cached.fingerprint);
	headers.set("x-cache-tier", cached.tier);
	const saved = totalTokens(cached.facts);
	if (saved !== null) headers.set(TOKENS_SAVED_HEADER, String(saved));
	if (!prepared.stream || !route.streamFormat) return new Response(cached.body, { headers });
	if (cached.pieces === null) return null;
	const events = renderStream(route.streamFormat, cached.body, cached.pieces, wantsUsage(prepared));
	if (events === null) return null;
	headers.set("content-type", STREAM_CONTENT_TYPE);
	headers.set("cache-control", "no-cache");
	return new Response(events, { headers });
}

/**
 * A streaming miss: the origin's events go to the client as they arrive, byte for byte, and are read on
 * the way; when the stream completed with a well-formed ending, its answer and piece boundaries are
 * stored. OpenAI streams are asked for the usage chunk (the stored answer needs it), which the client
 * gets only when it asked for it too: what it sees is what the runtime sends for its own request.
 * The origin's status is awaited for one keepalive interval: an answer by then (a stream, the runtime's
 * 429 or 4xx) goes out with its own status. Past it the client gets a 200 stream at once, keepalives
 * until the origin answers, and then the events, or one error event if the origin refused or failed.
 * Keepalives also fill any silence of the interval between pieces; they are never stored.
 */
async function streamMiss(
	env: Env,
	ctx: ExecutionContext,
	config: Settings,
	target: OriginTarget,
	route: InferenceRoute,
	prepared: Prepared,
	lease: LeaseRequest,
	hold: BudgetHold,
	obs: Observation,
): Promise<Response> {
	const format = route.streamFormat!;
	const clientWantsUsage = wantsUsage(prepared);
	const transport = format === "native" ? prepared.transport : { ...prepared.transport, stream_options: { include_usage: true } };
	const body = originBody({ ...prepared, transport });
	// The lease is held until the stream ends, fails or the client goes away. The budget hold is settled
	// then too, to the stream's usage when it ended well, else to its estimate (its use is unknown); and a
	// streamed 200's usage row is recorded then, marked as an error unless the stream ended well.
	const originLease = await acquireLease(env, ctx, lease);
	let endedWell = false;
	let ended = false;
	const held = {
		release() {
			originLease.release();
			hold.settle(null);
			if (ended || !obs.usage.deferred) return;
			ended = true;
			obs.usage.failed = !endedWell;
			obs.recordUsage(200);
		},
	};
	const call = callOrigin(env, target, route.originPath, { method: "POST", body }, async (response) => response);
	const wait = sleep(config.keepaliveMs);
	let upstream: Response | null;
	try {
		upstream = await Promise.race([call, wait.done]);
	} catch (error) {
		held.release();
		throw error;
	} finally {
		wait.cancel();
	}
	obs.cache = prepared.controls.mode === "use" ? "MISS" : "BYPASS";

	const isStream = (response: Response) =>
		response.status === 200 && !!response.body && (response.headers.get("content-type") ?? "").startsWith("text/event-stream");

	/** The client's copy of the origin's stream; the answer is stored from what passes through. */
	const relayed = (response: Response, fingerprint: string | null): ReadableStream<Uint8Array> => {
		const splitter = new EventSplitter();
		const payloads: string[] = [];
		const encoder = new TextEncoder();
		// Runs at the client's pace (the origin is read as the client reads); the store at the end goes
		// through ctx.waitUntil, which the request still holds while its body streams.
		const relay = new TransformStream<Uint8Array, Uint8Array>({
			transform(chunk, controller) {
				for (const { data, raw } of splitter.push(chunk)) {
					payloads.push(data);
					if (format !== "native" && !clientWantsUsage && isUsageChunk(data)) continue;
					controller.enqueue(encoder.encode(raw));
				}
			},
			async flush() {
				try {
					const derived = splitter.clean ? deriveAnswer(format, payloads) : null;
					if (!derived) return;
					const facts = answerFacts(derived.body);
					hold.settle(totalTokens(facts));
					noteUsage(obs, facts, false);
					endedWell = true;
					const answer = {
						status: 200,
						body: derived.body,
						contentType: "application/json",
						fingerprint,
						retryAfter: null,
						pieces: derived.pieces,
					};
					if (prepared.controls.mode !== "no-store" && isCacheableAnswer(route.originPath, answer))
						await storeAnswer(env, ctx, config, route, prepared, answer);
				} catch (error) {
					console.error("stream: storing the answer failed:", (error as Error).message);
				}
			},
		});
		// A client that goes away cancels the pipe (and the origin's stream): flush never runs, nothing is stored.
		response.body!.pipeTo(relay.writable).catch(() => undefined);
		return relay.readable;
	};

	if (upstream !== null) {
		const fingerprint = upstream.headers.get("x-model-fingerprint");
		const headers = answerHeaders(upstream.headers.get("content-type") ?? "text/event-stream", obs.cache, prepared, fingerprint);
		if (!isStream(upstream)) {
			hold.settle(0);
			return new Response(releasingAtEnd(upstream.body, held), { status: upstream.status, headers });
		}
		obs.usage.deferred = true;
		const events = withKeepalive(Promise.resolve(relayed(upstream, fingerprint)), config.keepaliveMs, config.originTimeoutMs);
		// The lease is given back when the client has the last byte or goes away, as for any answer.
		return new Response(releasingAtEnd(events, held), { status: upstream.status, headers });
	}

	// Committed to a 200 stream before the origin answered: its fingerprint is not known yet, so the
	// answer carries none (the stored answer is filed under the fingerprint the origin then sends).
	obs.usage.deferred = true;
	const source = call.then(
		(response) => {
			if (isStream(response)) return relayed(response, response.headers.get("x-model-fingerprint"));
			hold.settle(0);
			return failureEvents(response);
		},
		(error) => {
			hold.settle(0);
			return failureEvents(
				error instanceof OriginUnavailableError
					? onOriginUnavailable(error, env, ctx)
					: new HttpError(500, "internal_error", "internal error"),
			);
		},
	);
	const headers = answerHeaders(STREAM_CONTENT_TYPE, obs.cache, prepared, null);
	headers.set("cache-control", "no-cache");
	return new Response(releasingAtEnd(withKeepalive(source, config.keepaliveMs, config.originTimeoutMs), held), { headers });
}

/** Stores a successful answer under the key of the fingerprint that produced it. */
async function storeAnswer(
	env: Env,
	ctx: ExecutionContext,
	config: Settings,
	route: InferenceRoute,
	prepared: Prepared,
	answer: OriginAnswer,
) {
	let { key, fingerprint } = prepared;
	if (isFingerprint(answer.fingerprint) && answer.fingerprint !== fingerprint) {
		// The origin now serves another model: learn it, and never file this answer under the stale key.
		fingerprint = answer.fingerprint;
		rememberFingerprint(env, config, ctx, fingerprint);
		key = await cacheKey(route.kind, route.originPath, prepared.params, fingerprint, prepared.controls.namespace);
	}
	if (!(await mayCache(env, ctx, config, fingerprint, route.originPath))) return;
	const pieces = route.streamFormat ? answer.pieces : null;
	const fixedTtlSeconds = prepared.controls.ttlSeconds;
	store(
		env,
		ctx,
		{ key, route: route.originPath, fingerprint, body: answer.body, contentType: answer.contentType, pieces, fixedTtlSeconds },
		config.cache,
	);
}

/** Adds a signed receipt to a 200 answer's headers (null: none was asked for). */
type Receipts = ((prepared: Prepared, answer: { body: string; fingerprint: string | null }, headers: Headers) => Promise<void>) | null;

/**
 * Signs a 200 answer's receipt into `headers`: over the route the client called, its request bytes, the
 * answer's fingerprint and model sha256, and the body bytes it is sent. Refused (503) rather than sent
 * unsigned when the model sha256 of that fingerprint is unknown.
 */
async function addReceipt(
	env: Env,
	config: Settings,
	signing: CryptoKey,
	path: string,
	prepared: Prepared,
	answer: { body: string; fingerprint: string | null },
	headers: Headers,
): Promise<void> {
	const fingerprint = answer.fingerprint ?? prepared.fingerprint;
	const modelSha256 = await modelSha256Of(env, config, fingerprint);
	if (modelSha256 === null) {
		throw new HttpError(
			503,
			"receipt_unavailable",
			`the model sha256 of fingerprint ${fingerprint} is unknown (no origin status names it), so this answer cannot be signed; retry later or send the request without ${RECEIPT_HEADER}`,
			undefined,
			{ "Retry-After": "5" },
		);
	}
	const receipt = await signReceipt(signing, {
		route: path,
		requestSha256: await sha256HexOf(prepared.bodyBytes),
		fingerprint,
		modelSha256,
		responseSha256: await sha256HexOf(new TextEncoder().encode(answer.body)),
	});
	headers.set(RECEIPT_HEADER, receipt);
}

export async function handleInference(
	request: Request,
	env: Env,
	ctx: ExecutionContext,
	route: InferenceRoute,
	obs: Observation,
): Promise<Response> {
	const record = await admit(request, env);
	obs.keyId = record.id;
	obs.admitted = true;
	return serveAdmitted(request, env, ctx, route, obs, record, "live");
}

/**
 * Who waits when a key's origin budgets run short: a live request may use every budget in full; a batch
 * line (edge/src/batch/) takes a lease only within BATCH_SHARE_PERCENT of each, so live requests always
 * find the rest free.
 */
type Priority = "live" | "batch";

function leaseLimits(config: Settings, demand: Demand, priority: Priority): KeyLimits {
	if (priority === "live") return config.keyLimits;
	const share = (budget: keyof KeyLimits) =>
		// A line no share could ever hold still runs, when the key holds nothing else of that budget.
		Math.max(Math.floor((config.keyLimits[budget] * config.batchSharePercent) / 100), demand[budget]);
	return { requests: share("requests"), tokens: share("tokens"), embedInputs: share("embedInputs") };
}

/** The request path after admission: what a live request and a batch line (its key checked) share. */
export async function serveAdmitted(
	request: Request,
	env: Env,
	ctx: ExecutionContext,
	route: InferenceRoute,
	obs: Observation,
	record: ApiKeyRecord,
	priority: Priority,
): Promise<Response> {
	const tenant = record.id;
	const config = settings(env);
	// A header, read before the body: metadata that cannot be kept is refused before any work.
	obs.usage.metadata = requestMetadata(request, config.dlpPolicy);
	// Checked before any work: a receipt that cannot be signed is an error, never an unsigned answer.
	const signing = receiptRequested(request) ? await signingKey(env) : null;
	// A namespace is the rotation chain's, so a rotated key keeps its cache.
	const checked = await validated(request, config, route, budgetOwner(record));
	if (typeof checked.params.model === "string") obs.usage.model = checked.params.model;
	if (signing && checked.stream && route.streamFormat) {
		throw new HttpError(
			400,
			"invalid_request",
			"receipts sign a whole answer and are not available for streamed ones: send the request without `stream` (or without the header)",
			RECEIPT_HEADER,
		);
	}
	if (signing && checked.redacted.length > 0) {
		// The origin answers the redacted body: a receipt over the bytes as sent would vouch for an answer
		// to text the model never read.
		throw new HttpError(
			400,
			"invalid_request",
			`receipts sign the answer to the request bytes as sent, and DLP_POLICY=redact replaced parts of these (${checked.redacted.join(", ")}) before the model read them: send the request without them (or without the header)`,
			RECEIPT_HEADER,
		);
	}
	const path = new URL(request.url).pathname;
	const receipts: Receipts = signing && ((prepared, answer, headers) => addReceipt(env, config, signing, path, prepared, answer, headers));
	// Everything up to the budget reservation comes before the cache is consulted, so that the answer
	// never depends on what happens to be cached, and a hit is never a way around a scope or a budget.
	checkModelScope(record, checked.params);
	const demand = demandOf(route.kind, checked.params, config.maxTokensLimit);
	checkDemandFits(checked.params, demand, config.keyLimits);
	const target: OriginTarget = { urls: config.originUrls, timeoutMs: config.originTimeoutMs, tenant };
	// A lease or hold outlives the longest the origin work may take (every origin tried once), then expires.
	const ttlMs = target.timeoutMs * target.urls.length + LEASE_MARGIN_MS;
	const estimate = tokenEstimate(route.kind, checked.params, config.maxTokensLimit);
	const hold = await reserveBudget(env, ctx, record, estimate, budgetField(checked.params), ttlMs);
	try {
		return await serve(
			env,
			ctx,
			config,
			route,
			target,
			{ tenant, demand, limits: leaseLimits(config, demand, priority), ttlMs },
			checked,
			hold,
			obs,
			receipts,
		);
	} catch (error) {
		hold.settle(0);
		throw error;
	}
}

/** The request field a budget refusal of the estimate names. */
function budgetField(params: Body): string {
	if (Array.isArray(params.messages)) return "messages";
	return params.input !== undefined ? "input" : "prompt";
}

/** A checked request within its scopes and budgets: from the cache, or from the origin. */
async function serve(
	env: Env,
	ctx: ExecutionContext,
	config: Settings,
	route: InferenceRoute,
	target: OriginTarget,
	lease: LeaseRequest,
	checked: Validated,
	hold: BudgetHold,
	obs: Observation,
	receipts: Receipts,
): Promise<Response> {
	const prepared = await prepare(env, ctx, config, route, checked);
	const cached = prepared.cached && { ...prepared.cached, facts: answerFacts(prepared.cached.body) };
	const hit = cached ? replayHit(route, prepared, cached) : null;
	if (hit) {
		obs.cache = "HIT";
		obs.cacheTier = cached!.tier;
		hold.settle(hitTokens(config, cached!.facts));
		noteUsage(obs, cached!.facts, true);
		if (receipts) await receipts(prepared, prepared.cached!, hit.headers);
		return hit;
	}
	if (prepared.stream && route.streamFormat) return streamMiss(env, ctx, config, target, route, prepared, lease, hold, obs);
	// A hit is served whatever its size: it needs no origin time.
	if (route.kind === "generate") checkNonStreamTime(prepared.params, config, lastOriginStatus(config)?.defaultMaxTokens ?? null);

	const body = originBody(prepared);
	// Only the request that does origin work holds a lease: a flight's leader, or a joiner making its own call.
	const underLease = (work: () => Promise<OriginAnswer>) => withLease(env, ctx, lease, work);
	const flight =
		prepared.controls.mode === "use"
			? coalescedAnswer(env, ctx, prepared.key, target, route.originPath, body, underLease)
			: { answer: underLease(() => fetchAnswer(env, target, route.originPath, body)), leader: true };
	const answer = await flight.answer;
	obs.cache = prepared.controls.mode === "use" ? "MISS" : "BYPASS";
	if (answer.status === 200 && !isCacheableAnswer(route.originPath, answer)) {
		console.error(
			`origin: a 200 from ${route.originPath} without its JSON shape (content type ${JSON.stringify(answer.contentType)}); not cached`,
		);
		throw new HttpError(
			502,
			"bad_origin_answer",
			`the origin's answer does not have the shape of ${route.originPath} answers; it was not cached`,
		);
	}
	// Only the request that made the origin call stores the answer (and learns the origin's speed from it):
	// one write per key, not one per waiter.
	if (answer.status === 200 && flight.leader && route.kind === "generate")
		recordSpeed(config, prepared.params, answer.body, answer.originMs);
	if (answer.status === 200 && prepared.controls.mode !== "no-store" && flight.leader)
		await storeAnswer(env, ctx, config, route, prepared, answer);
	const facts = answer.status === 200 ? answerFacts(answer.body) : null;
	hold.settle(facts ? totalTokens(facts) : 0);
	if (facts) noteUsage(obs, facts, false);
	const headers = answerHeaders(answer.contentType, obs.cache, prepared, answer.fingerprint);
	if (answer.retryAfter) headers.set("retry-after", answer.retryAfter);
	if (receipts && answer.status === 200) await receipts(prepared, answer, headers);
	return new Response(answer.body, { status: answer.status, headers });
}
