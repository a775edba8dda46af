// Admission, the first stage of every keyed route: the key check (with the per-IP limit on failed
// checks), then the key's rate limit. Nothing else of the request is read before it has passed: no body,
// no DLP, no fingerprint, no cache, no origin.
import { authenticate, hashPresentedKey, type ApiKeyRecord } from "./auth";
import { checkCredentials } from "./authfailures";
import { enforceRateLimit } from "./ratelimit";

/** The admitted key's record; throws 401/403 (bad key), 429 (rate limit, too many failed checks). */
export async function admit(request: Request, env: Env): Promise<ApiKeyRecord> {
	const keyHash = await hashPresentedKey(request);
	const record = await checkCredentials(request, env, () => authenticate(env, keyHash));
	await enforceRateLimit(env.RATE_LIMITER, keyHash);
	return record;
}
