// POST /v1/rerank, cached per (query, document) pair. The request path of every route (admission, cache
// controls, body → DLP → validation → model scope → daily budget → fingerprint), then: each distinct document's pair is looked up; only the
// documents without a cached score go to the origin (one coalesced call under a per-key lease); each new
// pair is stored; and the Worker renders the list's answer itself (order, top_n, return_documents,
// usage) in the runtime's bytes. X-Cache: HIT (every pair cached), PARTIAL (some), MISS (none), BYPASS
// (no-cache/no-store). The cache controls (src/cache/controls.ts) apply to every pair: a namespace keys
// them, a cf-aig-cache-ttl gives each new pair its life.
import { admit } from "./admission/admit";
import { budgetOwner, reserveBudget, type BudgetHold } from "./admission/budget";
import { applyDlp } from "./admission/dlp";
import { readJsonObject } from "./admission/http";
import { checkModelScope } from "./admission/scopes";
import { validateRerank, type Body } from "./admission/validate";
import { requestMetadata } from "./observability/usage";
import { currentFingerprint, isFingerprint, rememberFingerprint } from "./cache/fingerprint";
import { cacheControls, type CacheControls } from "./cache/controls";
import { mayCache } from "./cache/origin-builds";
import { renderRerankAnswer } from "./cache/rerank-answer";
import { flightKey, pairBody, pairKey, pairsFromAnswer, parsePair, type PairRequest, type PairScore } from "./cache/rerank-pairs";
import { lookup, store, type CachedAnswer } from "./cache/tiers";
import { settings, type Settings } from "./config";
import { LEASE_MARGIN_MS, TOKENS_SAVED_HEADER, type Observation } from "./inference";
import { HttpError } from "./errors";
import { checkDemandFits, demandOf, tokenEstimate, withLease } from "./origin/capacity";
import { coalescedAnswer } from "./origin/coalesce";
import { fetchAnswer, type OriginAnswer, type OriginTarget } from "./origin/client";
import { RECEIPT_HEADER, receiptRequested } from "./receipt";

const ROUTE = "/v1/rerank";
// The slowest tier a pair came from names a list's tier (a HIT is as fast as its slowest lookup).
const TIER_ORDER: CachedAnswer["tier"][] = ["memory", "kv", "d1"];

interface Scored {
	/** Each distinct document's pair. */
	pairs: Map<string, PairScore>;
	cached: number;
	slowestTier: CachedAnswer["tier"] | null;
	/** The fingerprint the pairs were scored under (the origin's, when it answered). */
	fingerprint: string;
}

interface Context {
	env: Env;
	ctx: ExecutionContext;
	config: Settings;
	tenant: string;
	controls: CacheControls;
}

async function cachedPairs(c: Context, request: PairRequest, documents: string[], fingerprint: string): Promise<Scored> {
	const scored: Scored = { pairs: new Map(), cached: 0, slowestTier: null, fingerprint };
	if (c.controls.mode !== "use") return scored;
	const namespace = c.controls.namespace;
	const found = await Promise.all(
		documents.map(async (document) => lookup(c.env, c.ctx, await pairKey(request, document, fingerprint, namespace), c.config.cache)),
	);
	found.forEach((hit, index) => {
		const pair = hit && parsePair(hit.body);
		if (!hit || !pair) return;
		scored.pairs.set(documents[index], pair);
		scored.cached += 1;
		if (scored.slowestTier === null || TIER_ORDER.indexOf(hit.tier) > TIER_ORDER.indexOf(scored.slowestTier)) scored.slowestTier = hit.tier;
	});
	return scored;
}

/** One origin call for the documents without a score; an answer that is not a 200 is returned as is. */
async function scoreMissing(c: Context, request: PairRequest, missing: string[], scored: Scored): Promise<OriginAnswer | null> {
	const target: OriginTarget = { urls: c.config.originUrls, timeoutMs: c.config.originTimeoutMs, tenant: c.tenant };
	const params = { ...request, documents: missing };
	const body = JSON.stringify(params);
	// The lease covers the documents this call scores, not the cached ones.
	const lease = {
		tenant: c.tenant,
		demand: demandOf("rerank", params, c.config.maxTokensLimit),
		limits: c.config.keyLimits,
		ttlMs: target.timeoutMs * target.urls.length + LEASE_MARGIN_MS,
	};
	const underLease = (work: () => Promise<OriginAnswer>) => withLease(c.env, c.ctx, lease, work);
	const flight =
		c.controls.mode === "use"
			? coalescedAnswer(
					c.env,
					c.ctx,
					await flightKey(request, missing, scored.fingerprint, c.controls.namespace),
					target,
					ROUTE,
					body,
					underLease,
				)
			: { answer: underLease(() => fetchAnswer(c.env, target, ROUTE, body)), leader: true };
	const answer = await flight.answer;
	if (answer.status !== 200) return answer;
	const pairs = pairsFromAnswer(answer, missing.length);
	if (isFingerprint(answer.fingerprint) && answer.fingerprint !== scored.fingerprint) {
		// The origin now serves another model: learn it, and file the new scores under it.
		scored.fingerprint = answer.fingerprint;
		rememberFingerprint(c.env, c.config, c.ctx, answer.fingerprint);
	}
	for (const [index, document] of missing.entries()) scored.pairs.set(document, pairs[index]);
	// Only the request that made the origin call stores: one write per pair, not one per waiter.
	if (c.controls.mode === "no-store" || !flight.leader || !(await mayCache(c.env, c.ctx, c.config, scored.fingerprint, ROUTE))) return null;
	for (const [index, document] of missing.entries()) {
		const entry = {
			key: await pairKey(request, document, scored.fingerprint, c.controls.namespace),
			route: ROUTE,
			fingerprint: scored.fingerprint,
			body: pairBody(pairs[index]),
			contentType: "application/json",
			pieces: null,
			fixedTtlSeconds: c.controls.ttlSeconds,
		};
		store(c.env, c.ctx, entry, c.config.cache);
	}
	return null;
}

export async function handleRerank(request: Request, env: Env, ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const record = await admit(request, env);
	const tenant = record.id;
	obs.keyId = tenant;
	obs.admitted = true;
	if (receiptRequested(request)) {
		// A receipt signs one answer of the origin's; a rerank's answer is assembled from pairs scored at different times.
		throw new HttpError(
			400,
			"invalid_request",
			"receipts are not available for /v1/rerank: send the request without the header",
			RECEIPT_HEADER,
		);
	}
	const config = settings(env);
	// Headers first: malformed metadata or cache headers are refused before the body is read.
	obs.usage.metadata = requestMetadata(request, config.dlpPolicy);
	const controls = cacheControls(request, budgetOwner(record), config.requestTtl);
	const { value: body, redacted } = applyDlp(await readJsonObject(request, config.maxBodyBytes), config.dlpPolicy);
	const { params } = validateRerank(body, config);
	if (typeof params.model === "string") obs.usage.model = params.model;
	// Scopes and budgets before the cache is consulted: the answer never depends on what happens to be
	// cached, and a hit is never a way around a scope or a budget.
	checkModelScope(record, params);
	checkDemandFits(params, demandOf("rerank", params, config.maxTokensLimit), config.keyLimits);
	const ttlMs = config.originTimeoutMs * config.originUrls.length + LEASE_MARGIN_MS;
	const hold = await reserveBudget(env, ctx, record, tokenEstimate("rerank", params, config.maxTokensLimit), "documents", ttlMs);
	try {
		return await serve({ env, ctx, config, tenant, controls }, params, redacted, hold, obs);
	} catch (error) {
		hold.settle(0);
		throw error;
	}
}

async function serve(c: Context, params: Body, redacted: string[], hold: BudgetHold, obs: Observation): Promise<Response> {
	const { controls } = c;
	const documents = params.documents as string[];
	const pairRequest: PairRequest = {
		query: params.query as string,
		...(params.model === undefined ? {} : { model: params.model as string }),
	};
	const distinct = [...new Set(documents)];

	let fingerprint = await currentFingerprint(c.env, c.config, c.ctx);
	let scored = await cachedPairs(c, pairRequest, distinct, fingerprint);
	let missing = distinct.filter((document) => !scored.pairs.has(document));
	let failed = missing.length > 0 ? await scoreMissing(c, pairRequest, missing, scored) : null;
	if (!failed && scored.fingerprint !== fingerprint && scored.cached > 0) {
		// The cached pairs belong to the model the origin no longer serves: score the list again under the new one.
		fingerprint = scored.fingerprint;
		scored = await cachedPairs(c, pairRequest, distinct, fingerprint);
		missing = distinct.filter((document) => !scored.pairs.has(document));
		failed = missing.length > 0 ? await scoreMissing(c, pairRequest, missing, scored) : null;
	}
	const headers = new Headers({ "content-type": "application/json" });
	if (redacted.length > 0) headers.set("x-dlp-redacted", redacted.join(","));
	if (failed) {
		hold.settle(0);
		obs.cache = controls.mode === "use" ? "MISS" : "BYPASS";
		headers.set("content-type", failed.contentType);
		if (failed.retryAfter) headers.set("retry-after", failed.retryAfter);
		headers.set("x-cache", obs.cache);
		return new Response(failed.body, { status: failed.status, headers });
	}
	if (controls.mode !== "use") obs.cache = "BYPASS";
	else if (missing.length === 0) obs.cache = "HIT";
	else obs.cache = scored.cached === 0 ? "MISS" : "PARTIAL";
	if (obs.cache === "HIT") obs.cacheTier = scored.slowestTier;
	// The slowest tier any of the list's pairs came from.
	if (obs.cacheTier) headers.set("x-cache-tier", obs.cacheTier);
	// The budget pays for the prompts the origin scored now; cached pairs as a hit's prompt side.
	const tokensOf = (list: string[]) => list.reduce((sum, document) => sum + scored.pairs.get(document)!.prompt_tokens, 0);
	const cachedDocuments = distinct.filter((document) => !missing.includes(document));
	hold.settle(tokensOf(missing) + (c.config.budgetHitTokens === "none" ? 0 : tokensOf(cachedDocuments)));
	obs.usage.promptTokens = tokensOf(distinct);
	obs.usage.cachedTokens = tokensOf(cachedDocuments);
	headers.set("x-cache", obs.cache);
	// AI Gateway's header knows HIT and MISS only: a partial hit still went to the origin.
	headers.set("cf-aig-cache-status", obs.cache === "HIT" ? "HIT" : "MISS");
	// What the cached pairs' prompts would have cost the origin.
	headers.set(TOKENS_SAVED_HEADER, String(tokensOf(cachedDocuments)));
	headers.set("x-model-fingerprint", scored.fingerprint);
	const answer = renderRerankAnswer({
		documents,
		pairs: documents.map((document) => scored.pairs.get(document)!),
		fingerprint: scored.fingerprint,
		topN: params.top_n as number | undefined,
		returnDocuments: params.return_documents === true,
	});
	return new Response(answer, { headers });
}
