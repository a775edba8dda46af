// Cross-isolate single-flight: one Durable Object per cache key. Concurrent RPC calls interleave while
// the object awaits the origin, so they all join the one in-flight call. A finished answer is kept for
// RECENT_MS to cover the gap until the KV write-behind is visible to late arrivals.
import { DurableObject } from "cloudflare:workers";
import { fetchAnswer, OriginUnavailableError, type OriginAnswer, type OriginTarget } from "./origin";

const RECENT_MS = 5_000;

export type FlightResult = { ok: true; answer: OriginAnswer } | { ok: false; retryAfterSeconds: number };

export class Coalescer extends DurableObject<Env> {
	private inflight: Promise<FlightResult> | null = null;
	private recent: { result: FlightResult; atMs: number } | null = null;

	async answer(target: OriginTarget, path: string, body: string): Promise<FlightResult> {
		if (this.recent && Date.now() - this.recent.atMs < RECENT_MS) return this.recent.result;
		if (!this.inflight) {
			this.inflight = this.callOrigin(target, path, body).finally(() => {
				this.inflight = null;
			});
		}
		return this.inflight;
	}

	private async callOrigin(target: OriginTarget, path: string, body: string): Promise<FlightResult> {
		try {
			const answer = await fetchAnswer(this.env, target, path, body);
			if (answer.status === 200) this.recent = { result: { ok: true, answer }, atMs: Date.now() };
			return { ok: true, answer };
		} catch (error) {
			// RPC carries plain data better than error classes: report "unavailable" as a value.
			if (error instanceof OriginUnavailableError) return { ok: false, retryAfterSeconds: error.retryAfterSeconds };
			throw error;
		}
	}
}
