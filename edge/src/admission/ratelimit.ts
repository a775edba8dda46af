// Rate limiting with the native rate-limit bindings (atomic per location; never KV counters): per API
// key (RATE_LIMITER) and, for failed key checks, per client IP (AUTH_FAILURE_LIMITER, authfailures.ts).
import { HttpError } from "../errors";

// Mirror the `period` of ratelimits in wrangler.jsonc: a binding does not expose its period.
export const RATE_LIMIT_PERIOD_SECONDS = 60;

/** Seconds until the current fixed window ends (windows are aligned to the clock). */
export function secondsUntilNextWindow(nowMs: number, periodSeconds = RATE_LIMIT_PERIOD_SECONDS): number {
	const elapsed = Math.floor(nowMs / 1000) % periodSeconds;
	return periodSeconds - elapsed;
}

/** Counts one event against `key`; false once the window's limit is used up. */
export async function withinLimit(limiter: RateLimit, key: string): Promise<boolean> {
	try {
		return (await limiter.limit({ key })).success;
	} catch (error) {
		// A limiter outage must not take the API down with it: fail open, loudly.
		console.error("ratelimit: binding failed, allowing request:", (error as Error).message);
		return true;
	}
}

export async function enforceRateLimit(limiter: RateLimit, keyHash: string): Promise<void> {
	if (!(await withinLimit(limiter, keyHash))) {
		const retryAfter = secondsUntilNextWindow(Date.now());
		throw new HttpError(429, "rate_limited", `rate limit exceeded for this API key; retry in ${retryAfter} s`, undefined, {
			"Retry-After": String(retryAfter),
		});
	}
}
