// steadytext-edge Worker: the entry points. See docs/edge.md for the API and configuration.
import { evictExpired } from "./cache/tiers";
import { cachePolicy } from "./config";
import { toErrorResponse } from "./errors";
import type { Observation } from "./inference";
import { countUnadmitted, pruneRequestMetrics, pruneUsage, recordRequest, recordUsage, type RequestRecord } from "./observability/metrics";
import { newUsageFacts } from "./observability/usage";
import { scopedRoute } from "./admission/scopes";
import { OriginUnavailableError } from "./origin/client";
import { route } from "./router";
import { onOriginUnavailable } from "./origin/scalesignal";
import { consumeQueue } from "./batch/queues";
import { reviveStalled } from "./batch/watchdog";

export { Coalescer } from "./origin/coalescer-object";
export { KeyLimiter } from "./origin/keylimiter";
export { BatchWorkflow } from "./batch/workflow";

export default {
	async fetch(request, env, ctx): Promise<Response> {
		const startedMs = Date.now();
		const obs: Observation = {
			endpoint: "unmatched",
			cache: "NONE",
			cacheTier: null,
			keyId: null,
			admitted: false,
			usage: newUsageFacts(),
			recordUsage: (status) => {
				if (obs.keyId === null) return;
				// Aliases fold into their contract route, so a key's usage reads the same whichever it used.
				const route = scopedRoute(obs.endpoint) ?? obs.endpoint;
				recordUsage(env.DB, ctx, { tsMs: startedMs, keyId: obs.keyId, route, status, facts: obs.usage });
			},
		};
		let response: Response;
		try {
			response = await route(request, env, ctx, obs);
		} catch (error) {
			response = toErrorResponse(error instanceof OriginUnavailableError ? onOriginUnavailable(error, env, ctx) : error);
		}
		const record: RequestRecord = {
			tsMs: startedMs,
			endpoint: obs.endpoint,
			method: request.method,
			status: response.status,
			cache: obs.cache,
			cacheTier: obs.cacheTier,
			durationMs: Date.now() - startedMs,
			colo: typeof request.cf?.colo === "string" ? request.cf.colo : null,
			keyId: obs.keyId,
		};
		// Only admitted requests cost a D1 write: refused, unmatched and open (/health, /metrics) traffic
		// is counted in memory, so nobody without a valid key can make the Worker write anything.
		if (obs.admitted) {
			recordRequest(env.DB, ctx, record);
			// A streamed answer's usage is known when its stream ends (inference.ts records it then).
			if (!obs.usage.deferred && obs.usage.counted) obs.recordUsage(response.status);
		} else countUnadmitted(record);
		return response;
	},

	queue: consumeQueue,

	async scheduled(_controller, env): Promise<void> {
		// A bad cache var fails the eviction (and the run), never the metrics pruning beside it.
		const eviction = Promise.resolve().then(() => evictExpired(env.DB, cachePolicy(env).maxAgeSeconds));
		const [evicted, pruned, prunedUsage, revived] = await Promise.all([
			eviction,
			pruneRequestMetrics(env.DB),
			pruneUsage(env.DB),
			reviveStalled(env),
		]);
		console.log(
			`scheduled: evicted ${evicted} cached answers, pruned ${pruned} metric rows and ${prunedUsage} usage rows, restarted ${revived} stalled batches`,
		);
	},
} satisfies ExportedHandler<Env>;
