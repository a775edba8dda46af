// Per-key rate limiting with the native rate-limit binding (atomic per location; never KV counters).
import { HttpError } from "./errors";

// Mirrors ratelimits[0].simple.period in wrangler.jsonc: the binding does not expose its period.
export const RATE_LIMIT_PERIOD_SECONDS = 60;

/** Seconds until the current fixed window ends (windows are aligned to the clock). */
export function secondsUntilNextWindow(nowMs: number, periodSeconds = RATE_LIMIT_PERIOD_SECONDS): number {
	const elapsed = Math.floor(nowMs / 1000) % periodSeconds;
	return periodSeconds - elapsed;
}

export async function enforceRateLimit(limiter: RateLimit, keyHash: string): Promise<void> {
	let success: boolean;
	try {
		({ success } = await limiter.limit({ key: keyHash }));
	} catch (error) {
		// A limiter outage must not take the API down with it: fail open, loudly.
		console.error("ratelimit: binding failed, allowing request:", (error as Error).message);
		return;
	}
	if (!success) {
		const retryAfter = secondsUntilNextWindow(Date.now());
		throw new HttpError(429, "rate_limited", `rate limit exceeded for this API key; retry in ${retryAfter} s`, undefined, {
			"Retry-After": String(retryAfter),
		});
	}
}
