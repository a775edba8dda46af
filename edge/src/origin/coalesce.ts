// Single-flight for cache misses: identical concurrent misses in this isolate share one promise of
// plain data (never a Response, which cannot cross requests), and the leader goes through the
// Coalescer Durable Object for the key, which merges the flights of every other isolate. A joiner takes
// the flight's answer only when it is a 200; after any other answer it makes its own origin call, so
// one tenant's refused or throttled request never becomes another tenant's answer. The origin work of
// the leader, and of a joiner making its own call, runs under the caller's guard (its key's lease,
// capacity.ts); a joiner of a flight holds nothing.
import type { FlightResult } from "./coalescer-object";
import { fetchAnswer, OriginUnavailableError, type OriginAnswer, type OriginTarget } from "./client";

// Waiters never hang on a stuck leader for longer than the origin timeout plus this margin.
const FLIGHT_MARGIN_MS = 5_000;

const inflight = new Map<string, Promise<OriginAnswer>>();

interface Flight {
	answer: Promise<OriginAnswer>;
	/** False when this request joined a flight another request started (its answer is then not stored). */
	leader: boolean;
}

async function viaDurableObject(env: Env, key: string, target: OriginTarget, path: string, body: string): Promise<OriginAnswer> {
	let result: FlightResult;
	try {
		const stub = env.COALESCER.get(env.COALESCER.idFromName(key));
		result = await stub.answer(target, path, body);
	} catch (error) {
		// The coordinator is an optimisation: if it fails, ask the origin directly.
		console.error("coalesce: Durable Object call failed, calling the origin directly:", (error as Error).message);
		return fetchAnswer(env, target, path, body);
	}
	if (result.outcome === "answered") return result.answer;
	if (result.outcome === "unavailable") throw new OriginUnavailableError(result.retryAfterSeconds);
	// "not_shared" (or, during a deploy, a result shaped by an older version of the object).
	return fetchAnswer(env, target, path, body);
}

/**
 * Unavailability (every origin down or timed out) is shared as is: it carries nothing of the leader's
 * request. Any other failure of the flight is the leader's own (its key's limit refused it): not shared.
 */
async function join(flight: Promise<OriginAnswer>, ownCall: () => Promise<OriginAnswer>): Promise<OriginAnswer> {
	let answer: OriginAnswer;
	try {
		answer = await flight;
	} catch (error) {
		if (error instanceof OriginUnavailableError) throw error;
		return ownCall();
	}
	return answer.status === 200 ? answer : ownCall();
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
	let timer: ReturnType<typeof setTimeout> | null = null;
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new OriginUnavailableError(Math.ceil(FLIGHT_MARGIN_MS / 1000))), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Wraps a request's own origin work (its key's lease: see capacity.ts). */
type OriginGuard = (work: () => Promise<OriginAnswer>) => Promise<OriginAnswer>;

export function coalescedAnswer(
	env: Env,
	ctx: ExecutionContext,
	key: string,
	target: OriginTarget,
	path: string,
	body: string,
	guard: OriginGuard,
): Flight {
	const existing = inflight.get(key);
	if (existing) return { answer: join(existing, () => guard(() => fetchAnswer(env, target, path, body))), leader: false };
	const work = guard(() => viaDurableObject(env, key, target, path, body));
	const answer = withTimeout(work, target.timeoutMs * target.urls.length + FLIGHT_MARGIN_MS).finally(() => inflight.delete(key));
	inflight.set(key, answer);
	// The leader's context must outlive its own response while others still wait on the flight.
	ctx.waitUntil(answer.catch(() => undefined));
	return { answer, leader: true };
}
