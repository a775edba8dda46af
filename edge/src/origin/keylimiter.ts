// One Durable Object per API key id holds that key's leases on origin work and its daily budgets. An
// object is a single instance worldwide and runs one call at a time, so the limits hold across every
// isolate and location: a burst cannot overshoot them. Leases and budget holds live in the object's SQLite
// storage (they survive an eviction or a deploy) and carry an expiry: an isolate that dies before
// releasing a lease frees the capacity when it expires, and a budget hold never settled is charged its
// full estimate when it expires (never less than the request could have used).
import { DurableObject } from "cloudflare:workers";
import type { Budget, Demand, KeyLimits } from "./capacity";
import type { DailyBudget, DailyLimits } from "../admission/budget";

export type LeaseDecision = { granted: true } | { granted: false; budget: Budget; retryAfterSeconds: number };
export type BudgetDecision = { granted: true } | { granted: false; budget: DailyBudget; limit: number; used: number; resetsAtMs: number };

const DAY_MS = 86_400_000;
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

const BUDGET_ORDER: Budget[] = ["requests", "tokens", "embedInputs"];
// The starting guess for how long a lease is held, before any has been released.
const INITIAL_HOLD_MS = 1_000;

export class KeyLimiter extends DurableObject<Env> {
	// Smoothed time a lease is held, for an honest Retry-After (kept in memory: only a hint).
	private meanHoldMs = INITIAL_HOLD_MS;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		ctx.storage.sql.exec(
			`CREATE TABLE IF NOT EXISTS leases (
				id TEXT PRIMARY KEY, tokens INTEGER NOT NULL, embed_inputs INTEGER NOT NULL,
				started_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL)`,
		);
		// What each UTC day has used (settled), and the estimates still held by requests in progress.
		ctx.storage.sql.exec(
			`CREATE TABLE IF NOT EXISTS budget_days (day TEXT PRIMARY KEY, requests INTEGER NOT NULL, tokens INTEGER NOT NULL);
			CREATE TABLE IF NOT EXISTS budget_holds (
				id TEXT PRIMARY KEY, day TEXT NOT NULL, tokens INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL)`,
		);
	}

	/**
	 * Counts one request against today's request budget and holds `estimate` tokens of today's token
	 * budget, or refuses naming the budget that has no room. The hold is settled by settleBudget.
	 */
	reserveBudget(holdId: string, estimate: number, limits: DailyLimits, ttlMs: number): BudgetDecision {
		const sql = this.ctx.storage.sql;
		const now = Date.now();
		const today = utcDay(now);
		for (const hold of sql.exec<{ id: string; day: string; tokens: number }>(
			"DELETE FROM budget_holds WHERE expires_at_ms <= ? RETURNING id, day, tokens",
			now,
		))
			this.charge(hold.day, 0, hold.tokens);
		sql.exec("DELETE FROM budget_days WHERE day < ?", today);
		const used = this.usedOn(today);
		const resetsAtMs = Date.parse(`${today}T00:00:00Z`) + DAY_MS;
		if (limits.requests !== null && used.requests + 1 > limits.requests) {
			return { granted: false, budget: "requests", limit: limits.requests, used: used.requests, resetsAtMs };
		}
		if (limits.tokens !== null && used.tokens + estimate > limits.tokens) {
			return { granted: false, budget: "tokens", limit: limits.tokens, used: used.tokens, resetsAtMs };
		}
		this.charge(today, 1, 0);
		sql.exec("INSERT INTO budget_holds (id, day, tokens, expires_at_ms) VALUES (?, ?, ?, ?)", holdId, today, estimate, now + ttlMs);
		return { granted: true };
	}

	/** Replaces a hold's estimate with the tokens really used (null: the estimate); unknown holds do nothing. */
	settleBudget(holdId: string, tokens: number | null): void {
		const [hold] = this.ctx.storage.sql
			.exec<{ day: string; tokens: number }>("DELETE FROM budget_holds WHERE id = ? RETURNING day, tokens", holdId)
			.toArray();
		if (hold) this.charge(hold.day, 0, tokens ?? hold.tokens);
	}

	/** What the key has used today, settled and held (for tests and diagnostics). */
	usedToday(): { requests: number; tokens: number } {
		return this.usedOn(utcDay(Date.now()));
	}

	private usedOn(day: string): { requests: number; tokens: number } {
		return this.ctx.storage.sql
			.exec<{ requests: number; tokens: number }>(
				`SELECT COALESCE((SELECT requests FROM budget_days WHERE day = ?1), 0) AS requests,
					COALESCE((SELECT tokens FROM budget_days WHERE day = ?1), 0)
					+ COALESCE((SELECT SUM(tokens) FROM budget_holds WHERE day = ?1), 0) AS tokens`,
				day,
			)
			.one();
	}

	private charge(day: string, requests: number, tokens: number): void {
		this.ctx.storage.sql.exec(
			"INSERT INTO budget_days (day, requests, tokens) VALUES (?, ?, ?) ON CONFLICT (day) DO UPDATE SET requests = requests + excluded.requests, tokens = tokens + excluded.tokens",
			day,
			requests,
			tokens,
		);
	}

	/** Grants the lease when every budget has room for `demand` besides the unexpired leases held. */
	acquire(leaseId: string, demand: Demand, limits: KeyLimits, ttlMs: number): LeaseDecision {
		const sql = this.ctx.storage.sql;
		const now = Date.now();
		sql.exec("DELETE FROM leases WHERE expires_at_ms <= ?", now);
		const held = this.heldAt(now);
		const full = BUDGET_ORDER.find((budget) => held[budget] + demand[budget] > limits[budget]);
		if (full) {
			const retryAfterSeconds = Math.min(Math.max(1, Math.ceil(this.meanHoldMs / 1000)), Math.ceil(ttlMs / 1000));
			return { granted: false, budget: full, retryAfterSeconds };
		}
		sql.exec(
			"INSERT INTO leases (id, tokens, embed_inputs, started_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)",
			leaseId,
			demand.tokens,
			demand.embedInputs,
			now,
			now + ttlMs,
		);
		return { granted: true };
	}

	/** Gives a lease back; releasing an unknown or expired lease does nothing. */
	release(leaseId: string): void {
		const [row] = this.ctx.storage.sql
			.exec<{ started_at_ms: number }>("DELETE FROM leases WHERE id = ? RETURNING started_at_ms", leaseId)
			.toArray();
		if (row) this.meanHoldMs = 0.8 * this.meanHoldMs + 0.2 * (Date.now() - row.started_at_ms);
	}

	/** What the key holds now, in unexpired leases. */
	held(): Demand {
		return this.heldAt(Date.now());
	}

	private heldAt(nowMs: number): Demand {
		return this.ctx.storage.sql
			.exec<Demand>(
				"SELECT COUNT(*) AS requests, COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(embed_inputs), 0) AS embedInputs FROM leases WHERE expires_at_ms > ?",
				nowMs,
			)
			.one();
	}
}
