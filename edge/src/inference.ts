// The request path for generation and embedding routes:
// admission (key check → rate limit), only then body → DLP → validation → fingerprint → cache lookup;
// hit → replay; miss → single-flight origin call under a per-key lease → write-behind to KV and D1. A
// streamed miss is passed through as the origin sends it and stored once it completed well; a streamed
// hit replays its exact bytes.
import { admit } from "./admission/admit";
import { isCacheableAnswer } from "./cache/answers";
import { lookup, store, type CachedAnswer } from "./cache/tiers";
import { cacheKey, type Kind } from "./cache/cachekey";
import { acquireLease, checkDemandFits, demandOf, releasingAtEnd, withLease, type LeaseRequest } from "./origin/capacity";
import { coalescedAnswer } from "./origin/coalesce";
import { settings, type Settings } from "./config";
import { applyDlp } from "./admission/dlp";
import { HttpError } from "./errors";
import { currentFingerprint, isFingerprint, rememberFingerprint } from "./cache/fingerprint";
import { mayCache } from "./cache/origin-builds";
import { readJsonObject } from "./admission/http";
import { callOrigin, fetchAnswer, type OriginAnswer, type OriginTarget } from "./origin/client";
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

type CacheMode = "use" | "no-cache" | "no-store";

// Beyond the origin timeouts, how long a lease may outlive its request before it expires by itself.
const LEASE_MARGIN_MS = 5_000;

interface Prepared {
	params: Body;
	transport: Body;
	stream: boolean;
	redacted: string[];
	mode: CacheMode;
	fingerprint: string;
	key: string;
	cached: CachedAnswer | null;
}

/** Cache-Control: no-cache skips the cache read (the fresh answer is still stored); no-store skips both. */
function cacheMode(request: Request): CacheMode {
	const directives = (request.headers.get("cache-control") ?? "").toLowerCase();
	if (/\bno-store\b/.test(directives)) return "no-store";
	if (/\bno-cache\b/.test(directives)) return "no-cache";
	return "use";
}

/** Everything that reads the request or the cache; runs only once the request is admitted. */
async function prepare(request: Request, env: Env, ctx: ExecutionContext, config: Settings, route: InferenceRoute): Promise<Prepared> {
	// DLP sees the raw body, keys included, before validation: a 400 naming an unknown field must never
	// echo a card number used as the field's name.
	const { value: body, redacted } = applyDlp(await readJsonObject(request, config.maxBodyBytes), config.dlpPolicy);
	const { params, transport, stream } = route.validate(body, config);
	const mode = cacheMode(request);
	const fingerprint = await currentFingerprint(env, config, ctx);
	const key = await cacheKey(route.kind, route.originPath, params, fingerprint);
	const cached = mode === "use" ? await lookup(env, ctx, key, config.cache) : null;
	return { params, transport, stream, redacted, mode, fingerprint, key, cached };
}

/** The body the origin receives: the validated (and DLP-checked) fields, nothing else of the request. */
function originBody(prepared: Prepared): string {
	return JSON.stringify({ ...prepared.params, ...prepared.transport });
}

function answerHeaders(contentType: string, cache: CacheStatus, prepared: Prepared, fingerprint: string | null): Headers {
	const headers = new Headers({ "x-cache": cache, "x-cache-key": prepared.key });
	if (contentType) headers.set("content-type", contentType);
	if (fingerprint) headers.set("x-model-fingerprint", fingerprint);
	if (prepared.redacted.length > 0) headers.set("x-dlp-redacted", prepared.redacted.join(","));
	return headers;
}

const STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8";

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
	let upstream: Response;
	try {
		upstream = await callOrigin(env, target, route.originPath, { method: "POST", body }, async (response) => response);
	} catch (error) {
		held.release();
		throw error;
	}
	obs.cache = prepared.mode === "use" ? "MISS" : "BYPASS";
	const fingerprint = upstream.headers.get("x-model-fingerprint");
	const headers = answerHeaders(upstream.headers.get("content-type") ?? "text/event-stream", obs.cache, prepared, fingerprint);
	const streamed = upstream.status === 200 && (upstream.headers.get("content-type") ?? "").startsWith("text/event-stream");
	if (!streamed || !upstream.body) return new Response(releasingAtEnd(upstream.body, held), { status: upstream.status, headers });

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
				const answer = derived && {
					status: 200,
					body: derived.body,
					contentType: "application/json",
					fingerprint,
					retryAfter: null,
					pieces: derived.pieces,
				};
				if (answer && prepared.mode !== "no-store" && isCacheableAnswer(route.originPath, answer))
					await storeAnswer(env, ctx, config, route, prepared, answer);
			} catch (error) {
				console.error("stream: storing the answer failed:", (error as Error).message);
			}
		},
	});
	// A client that goes away cancels the pipe (and the origin's stream): flush never runs, nothing is stored.
	upstream.body.pipeTo(relay.writable).catch(() => undefined);
	// The lease is given back when the client has the last byte or goes away, as for any answer.
	return new Response(releasingAtEnd(relay.readable, held), { status: upstream.status, headers });
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
		key = await cacheKey(route.kind, route.originPath, prepared.params, fingerprint);
	}
	if (!(await mayCache(env, ctx, config, fingerprint, route.originPath))) return;
	const pieces = route.streamFormat ? answer.pieces : null;
	store(env, ctx, { key, route: route.originPath, fingerprint, body: answer.body, contentType: answer.contentType, pieces }, config.cache);
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
	const prepared = await prepare(request, env, ctx, config, route);
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

	const body = originBody(prepared);
	// Only the request that does origin work holds a lease: a flight's leader, or a joiner making its own call.
	const underLease = (work: () => Promise<OriginAnswer>) => withLease(env, ctx, lease, work);
	const flight =
		prepared.mode === "use"
			? coalescedAnswer(env, ctx, prepared.key, target, route.originPath, body, underLease)
			: { answer: underLease(() => fetchAnswer(env, target, route.originPath, body)), leader: true };
	const answer = await flight.answer;
	obs.cache = prepared.mode === "use" ? "MISS" : "BYPASS";
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
	// Only the request that made the origin call stores the answer: one write per key, not one per waiter.
	if (answer.status === 200 && prepared.mode !== "no-store" && flight.leader) await storeAnswer(env, ctx, config, route, prepared, answer);
	const headers = answerHeaders(answer.contentType, obs.cache, prepared, answer.fingerprint);
	if (answer.retryAfter) headers.set("retry-after", answer.retryAfter);
	return new Response(answer.body, { status: answer.status, headers });
}
