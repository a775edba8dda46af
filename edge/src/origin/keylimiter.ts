// One Durable Object per API key id holds that key's leases on origin work. An object is a single
// instance worldwide and runs one call at a time, so the limits hold across every isolate and location.
// Leases live in the object's SQLite storage (they survive an eviction or a deploy) and carry an expiry:
// an isolate that dies before releasing its lease frees the capacity when the lease expires.
import { DurableObject } from "cloudflare:workers";
import type { Budget, Demand, KeyLimits } from "./capacity";

export type LeaseDecision = { granted: true } | { granted: false; budget: Budget; retryAfterSeconds: number };

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
