// The request path for generation and embedding routes:
// admission (key check → rate limit), only then body → DLP → validation → fingerprint → cache lookup;
// hit → replay; miss → single-flight origin call under a per-key lease → write-behind to KV and D1. A
// streamed miss is passed through as the origin sends it (with keepalives while it is silent) and stored
// once it completed well; a streamed hit replays its exact bytes. A non-streamed generation that may take
// longer than proxies wait is refused with a pointer to streaming (origin/speed.ts).
import { admit } from "./admission/admit";
import { isCacheableAnswer } from "./cache/answers";
import { lookup, store, type CachedAnswer } from "./cache/tiers";
import { cacheKey, type Kind } from "./cache/cachekey";
import { cacheControls, type CacheControls } from "./cache/controls";
import { failureEvents, sleep, withKeepalive } from "./origin/keepalive";
import { checkNonStreamTime, recordSpeed } from "./origin/speed";
import { onOriginUnavailable } from "./origin/scalesignal";
import { acquireLease, checkDemandFits, demandOf, releasingAtEnd, withLease, type LeaseRequest } from "./origin/capacity";
import { coalescedAnswer } from "./origin/coalesce";
import { settings, type Settings } from "./config";
import { applyDlp } from "./admission/dlp";
import { HttpError } from "./errors";
import { currentFingerprint, isFingerprint, rememberFingerprint } from "./cache/fingerprint";
import { mayCache } from "./cache/origin-builds";
import { readJsonObject } from "./admission/http";
import { callOrigin, fetchAnswer, OriginUnavailableError, type OriginAnswer, type OriginTarget } from "./origin/client";
import { deriveAnswer, EventSplitter, isUsageChunk, renderStream, type StreamFormat } from "./cache/replay";
import type { Body, Validator } from "./admission/validate";

export interface InferenceRoute {
	kind: Kind;
	originPath: string;
	validate: Validator;
	/** How the route's stream is rendered from a stored answer; null when the route cannot stream. */
	streamFormat: StreamFormat | null;
}

type CacheStatus = "HIT" | "MISS" | "BYPASS" | "NONE";

/** What the request did, for the metrics row; filled in as the request progresses. */
export interface Observation {
	endpoint: string;
	cache: CacheStatus;
	cacheTier: CachedAnswer["tier"] | null;
	keyId: string | null;
	/** True once the request passed admission; only admitted requests get a D1 metrics row. */
	admitted: boolean;
}

// Beyond the origin timeouts, how long a lease may outlive its request before it expires by itself.
const LEASE_MARGIN_MS = 5_000;

interface Prepared {
	params: Body;
	transport: Body;
	stream: boolean;
	redacted: string[];
	controls: CacheControls;
	fingerprint: string;
	key: string;
	cached: CachedAnswer | null;
}

/** Everything that reads the request or the cache; runs only once the request is admitted. */
async function prepare(
	request: Request,
	env: Env,
	ctx: ExecutionContext,
	config: Settings,
	route: InferenceRoute,
	keyId: string,
): Promise<Prepared> {
	// Headers first: a malformed cache header is refused before the body is read.
	const controls = cacheControls(request, keyId, config.requestTtl);
	// DLP sees the raw body, keys included, before validation: a 400 naming an unknown field must never
	// echo a card number used as the field's name.
	const { value: body, redacted } = applyDlp(await readJsonObject(request, config.maxBodyBytes), config.dlpPolicy);
	const { params, transport, stream } = route.validate(body, config);
	const fingerprint = await currentFingerprint(env, config, ctx);
	const key = await cacheKey(route.kind, route.originPath, params, fingerprint, controls.namespace);
	const cached = controls.mode === "use" ? await lookup(env, ctx, key, config.cache) : null;
	return { params, transport, stream, redacted, controls, fingerprint, key, cached };
}

/** The body the origin receives: the validated (and DLP-checked) fields, nothing else of the request. */
function originBody(prepared: Prepared): string {
	return JSON.stringify({ ...prepared.params, ...prepared.transport });
}

/** The tokens a hit saved: the stored answer's usage (prompt and completion; an embedding's prompt). */
function tokensSaved(body: string): number | null {
	try {
		const usage = (JSON.parse(body) as { usage?: Record<string, unknown> }).usage;
		const count = (value: unknown) => (typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0);
		return usage ? count(usage.prompt_tokens) + count(usage.completion_tokens) : null;
	} catch {
		return null;
	}
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
const TOKENS_SAVED_HEADER = "x-steadytext-tokens-saved";

function wantsUsage(prepared: Prepared): boolean {
	const options = prepared.transport.stream_options as { include_usage?: unknown } | undefined;
	return options?.include_usage === true;
}

/**
 * A cache hit's answer: the stored bytes, or for a streaming request the live stream's exact bytes
 * rendered from them. Null when a streaming request finds an answer stored without its piece boundaries
 * (before they were kept): it is served live, and that answer replaces the stored one.
 */
function replayHit(route: InferenceRoute, prepared: Prepared, cached: CachedAnswer): Response | null {
	const headers = answerHeaders(cached.contentType, "HIT", prepared, cached.fingerprint);
	headers.set("x-cache-tier", cached.tier);
	const saved = tokensSaved(cached.body);
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
	obs: Observation,
): Promise<Response> {
	const format = route.streamFormat!;
	const clientWantsUsage = wantsUsage(prepared);
	const transport = format === "native" ? prepared.transport : { ...prepared.transport, stream_options: { include_usage: true } };
	const body = originBody({ ...prepared, transport });
	// The lease is held until the stream ends, fails or the client goes away.
	const held = await acquireLease(env, ctx, lease);
	const startedMs = Date.now();
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
					recordSpeed(config, derived.body, Date.now() - startedMs);
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
		if (!isStream(upstream)) return new Response(releasingAtEnd(upstream.body, held), { status: upstream.status, headers });
		const events = withKeepalive(Promise.resolve(relayed(upstream, fingerprint)), config.keepaliveMs);
		// The lease is given back when the client has the last byte or goes away, as for any answer.
		return new Response(releasingAtEnd(events, held), { status: upstream.status, headers });
	}

	// Committed to a 200 stream before the origin answered: its fingerprint is not known yet, so the
	// answer carries none (the stored answer is filed under the fingerprint the origin then sends).
	const source = call.then(
		(response) => (isStream(response) ? relayed(response, response.headers.get("x-model-fingerprint")) : failureEvents(response)),
		(error) =>
			failureEvents(
				error instanceof OriginUnavailableError
					? onOriginUnavailable(error, env, ctx)
					: new HttpError(500, "internal_error", "internal error"),
			),
	);
	const headers = answerHeaders(STREAM_CONTENT_TYPE, obs.cache, prepared, null);
	headers.set("cache-control", "no-cache");
	return new Response(releasingAtEnd(withKeepalive(source, config.keepaliveMs), held), { headers });
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

export async function handleInference(
	request: Request,
	env: Env,
	ctx: ExecutionContext,
	route: InferenceRoute,
	obs: Observation,
): Promise<Response> {
	const tenant = (await admit(request, env)).id;
	obs.keyId = tenant;
	obs.admitted = true;
	const config = settings(env);
	const prepared = await prepare(request, env, ctx, config, route, tenant);
	const demand = demandOf(route.kind, prepared.params, config.maxTokensLimit);
	// Before the cache is consulted, so that the answer never depends on what happens to be cached.
	checkDemandFits(prepared.params, demand, config.keyLimits);
	const hit = prepared.cached ? replayHit(route, prepared, prepared.cached) : null;
	if (hit) {
		obs.cache = "HIT";
		obs.cacheTier = prepared.cached!.tier;
		return hit;
	}
	const target: OriginTarget = { urls: config.originUrls, timeoutMs: config.originTimeoutMs, tenant };
	// The lease outlives the longest the origin work may take (every origin tried once), then expires.
	const lease: LeaseRequest = { tenant, demand, limits: config.keyLimits, ttlMs: target.timeoutMs * target.urls.length + LEASE_MARGIN_MS };
	if (prepared.stream && route.streamFormat) return streamMiss(env, ctx, config, target, route, prepared, lease, obs);
	// A hit is served whatever its size: it needs no origin time.
	if (route.kind === "generate") checkNonStreamTime(prepared.params, config);

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
	if (answer.status === 200 && flight.leader && route.kind === "generate") recordSpeed(config, answer.body, answer.originMs);
	if (answer.status === 200 && prepared.controls.mode !== "no-store" && flight.leader)
		await storeAnswer(env, ctx, config, route, prepared, answer);
	const headers = answerHeaders(answer.contentType, obs.cache, prepared, answer.fingerprint);
	if (answer.retryAfter) headers.set("retry-after", answer.retryAfter);
	return new Response(answer.body, { status: answer.status, headers });
}
