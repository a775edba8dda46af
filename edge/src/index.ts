// steadytext-edge Worker: the entry points. See docs/edge.md for the API and configuration.
import { evictExpired } from "./cache";
import { cachePolicy } from "./config";
import { toErrorResponse } from "./errors";
import type { Observation } from "./inference";
import { pruneRequestMetrics, recordRequest } from "./metrics";
import { route } from "./router";

export { Coalescer } from "./coalescer";

export default {
	async fetch(request, env, ctx): Promise<Response> {
		const startedMs = Date.now();
		const obs: Observation = { endpoint: "unmatched", cache: "NONE", cacheTier: null, keyId: null };
		let response: Response;
		try {
			response = await route(request, env, ctx, obs);
		} catch (error) {
			response = toErrorResponse(error);
		}
		recordRequest(env.DB, ctx, {
			tsMs: startedMs,
			endpoint: obs.endpoint,
			method: request.method,
			status: response.status,
			cache: obs.cache,
			cacheTier: obs.cacheTier,
			durationMs: Date.now() - startedMs,
			colo: typeof request.cf?.colo === "string" ? request.cf.colo : null,
			keyId: obs.keyId,
		});
		return response;
	},

	async scheduled(_controller, env): Promise<void> {
		// A bad cache var fails the eviction (and the run), never the metrics pruning beside it.
		const eviction = Promise.resolve().then(() => evictExpired(env.DB, cachePolicy(env).maxAgeSeconds));
		const [evicted, pruned] = await Promise.all([eviction, pruneRequestMetrics(env.DB)]);
		console.log(`scheduled: evicted ${evicted} cached answers, pruned ${pruned} metric rows`);
	},
} satisfies ExportedHandler<Env>;
