// Daily budgets per API key (`keys.mjs create --daily-requests/--daily-tokens`), per UTC day, enforced by
// the key's KeyLimiter Durable Object, which runs one call at a time: a burst cannot overshoot them. A
// request reserves one request and its worst-case tokens (an upper-bound estimate) after validation and
// before the cache lookup, so a cache hit is never a way around a budget; the hold is then settled to what
// the request really used: a miss its answer's prompt + completion tokens, a hit its prompt tokens (or
// none, BUDGET_HIT_TOKENS=none), a failure none. Keys without budgets never call the object.
import { HttpError } from "../errors";
import type { ApiKeyRecord } from "./auth";
import type { BudgetDecision } from "../origin/keylimiter";

export type DailyBudget = "requests" | "tokens";
export type DailyLimits = Record<DailyBudget, number | null>;

export interface BudgetHold {
	/** Settles the hold to `tokens` (null: keep the estimate). Only the first call counts. */
	settle(tokens: number | null): void;
}

const NO_HOLD: BudgetHold = { settle() {} };

const budgetValue = (value: unknown): number | null => (Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : null);

function dailyLimits(record: ApiKeyRecord): DailyLimits | null {
	const limits = { requests: budgetValue(record.daily_requests), tokens: budgetValue(record.daily_tokens) };
	return limits.requests === null && limits.tokens === null ? null : limits;
}

/**
 * The key whose KeyLimiter holds the budgets: a rotated key's replacement shares its predecessor's. It also
 * owns the cache namespaces (cf-aig-cache-key) of the whole rotation chain.
 */
export function budgetOwner(record: ApiKeyRecord): string {
	return typeof record.budget_key_id === "string" && record.budget_key_id !== "" ? record.budget_key_id : record.id;
}

function exhausted(decision: Extract<BudgetDecision, { granted: false }>): HttpError {
	const retryAfter = Math.max(1, Math.ceil((decision.resetsAtMs - Date.now()) / 1000));
	const what = decision.budget === "requests" ? "requests" : "tokens (prompt + completion)";
	return new HttpError(
		429,
		"budget_exhausted",
		`this API key has used its daily ${decision.budget} budget (${decision.used} of ${decision.limit} ${what} per UTC day); it resets at ${new Date(decision.resetsAtMs).toISOString()}`,
		undefined,
		{ "Retry-After": String(retryAfter) },
	);
}

/**
 * Reserves the request against the key's daily budgets; throws 429 `budget_exhausted` naming the budget
 * and its reset, 400 when the estimate alone is over the token budget, 503 when the budget cannot be
 * checked (a budget is a promise to whoever pays for the key: it fails closed).
 */
export async function reserveBudget(
	env: Env,
	ctx: ExecutionContext,
	record: ApiKeyRecord,
	estimate: number,
	field: string,
	ttlMs: number,
): Promise<BudgetHold> {
	const limits = dailyLimits(record);
	if (limits === null) return NO_HOLD;
	if (limits.tokens !== null && estimate > limits.tokens) {
		throw new HttpError(
			400,
			"invalid_request",
			`is estimated at ${estimate} tokens (prompt bytes + max_tokens), more than this key's daily token budget (${limits.tokens})`,
			field,
		);
	}
	const holdId = crypto.randomUUID();
	const stub = env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(budgetOwner(record)));
	let decision: BudgetDecision;
	try {
		decision = await stub.reserveBudget(holdId, estimate, limits, ttlMs);
	} catch (error) {
		console.error("budget: KeyLimiter call failed, refusing the request:", (error as Error).message);
		throw new HttpError(503, "budget_unavailable", "this API key's daily budget cannot be checked right now; retry shortly", undefined, {
			"Retry-After": "1",
		});
	}
	if (!decision.granted) throw exhausted(decision);
	let settled = false;
	return {
		settle(tokens) {
			if (settled) return;
			settled = true;
			ctx.waitUntil(
				stub
					.settleBudget(holdId, tokens)
					.catch((error: Error) =>
						console.error("budget: settling failed (the estimate is charged when the hold expires):", error.message),
					),
			);
		},
	};
}
