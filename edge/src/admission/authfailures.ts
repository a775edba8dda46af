// Failed credential checks per client IP (CF-Connecting-IP). The native AUTH_FAILURE_LIMITER binding
// counts them per location; once it refuses an IP, this isolate answers that IP 429 until the window
// ends, before any key lookup, so a stream of junk keys cannot keep KV and D1 busy.
import { HttpError } from "../errors";
import { secondsUntilNextWindow, withinLimit } from "./ratelimit";
import { ExpiringMap } from "../ttlmap";

// Mirrors ratelimits AUTH_FAILURE_LIMITER.simple.period in wrangler.jsonc.
export const AUTH_FAILURE_PERIOD_SECONDS = 60;
// Enough for every IP of a sizeable attack on one isolate; each entry is a few dozen bytes.
const BLOCKED_IPS_CAPACITY = 10_000;

const blockedUntilWindowEnd = new ExpiringMap<true>(BLOCKED_IPS_CAPACITY);

/** Cloudflare sets CF-Connecting-IP on every request; without it (local tools) all share one bucket. */
function clientIp(request: Request): string {
	return request.headers.get("cf-connecting-ip")?.trim() || "unknown";
}

function tooManyFailures(nowMs: number): HttpError {
	const retryAfter = secondsUntilNextWindow(nowMs, AUTH_FAILURE_PERIOD_SECONDS);
	return new HttpError(
		429,
		"too_many_auth_failures",
		`too many failed credential checks from this client; retry in ${retryAfter} s`,
		undefined,
		{
			"Retry-After": String(retryAfter),
		},
	);
}

/**
 * Runs a credential check for a client: refused at once while the client is blocked; a 401/403 from
 * the check counts against the client's IP, and the failure that exceeds the limit answers 429 instead.
 */
export async function checkCredentials<T>(request: Request, env: Env, check: () => Promise<T>): Promise<T> {
	const ip = clientIp(request);
	if (blockedUntilWindowEnd.get(ip)) throw tooManyFailures(Date.now());
	try {
		return await check();
	} catch (error) {
		if (
			error instanceof HttpError &&
			(error.status === 401 || error.status === 403) &&
			!(await withinLimit(env.AUTH_FAILURE_LIMITER, ip))
		) {
			const nowMs = Date.now();
			blockedUntilWindowEnd.set(ip, true, secondsUntilNextWindow(nowMs, AUTH_FAILURE_PERIOD_SECONDS) * 1000, nowMs);
			throw tooManyFailures(nowMs);
		}
		throw error;
	}
}
