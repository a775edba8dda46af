// Admission, the first stage of every keyed route: the key check (with the per-IP limit on failed
// checks), then the key's rate limit, then its route scope. Nothing else of the request is read before it
// has passed: no body, no DLP, no fingerprint, no cache, no origin. (The model scope and the daily budgets
// need the body: inference.ts checks them right after validation, still before the cache.)
import { authenticate, hashPresentedKey, type ApiKeyRecord } from "./auth";
import { checkCredentials } from "./authfailures";
import { enforceRateLimit } from "./ratelimit";
import { checkRouteScope } from "./scopes";

/** The admitted key's record; throws 401/403 (bad key, route out of scope), 429 (rate limit, too many failed checks). */
export async function admit(request: Request, env: Env): Promise<ApiKeyRecord> {
	const keyHash = await hashPresentedKey(request);
	const record = await checkCredentials(request, env, () => authenticate(env, keyHash));
	await enforceRateLimit(env.RATE_LIMITER, keyHash);
	// Outside checkCredentials: a valid key asking for a route it may not use is no failed credential check.
	checkRouteScope(record, new URL(request.url).pathname);
	return record;
}
