// Cross-isolate single-flight: one Durable Object per cache key. Concurrent RPC calls interleave while
// the object awaits the origin, so they all join the one in-flight call. Only a 200 is shared: any other
// answer was made for the request that started the flight (its transport fields, its place in the
// runtime's queue), so a joiner is told to make its own call. A 200 is kept for RECENT_MS to cover the
// gap until the KV write-behind is visible to late arrivals.
import { DurableObject } from "cloudflare:workers";
import { isCacheableAnswer } from "../cache/answers";
import { fetchAnswer, OriginUnavailableError, type OriginAnswer, type OriginTarget } from "./client";

const RECENT_MS = 5_000;

export type FlightResult =
	| { outcome: "answered"; answer: OriginAnswer }
	/** Every origin was down or timed out: nothing of the leader's request is in this, so it is shared. */
	| { outcome: "unavailable"; retryAfterSeconds: number }
	/** The flight this call joined ended in a non-200: the caller makes its own origin call. */
	| { outcome: "not_shared" };

export class Coalescer extends DurableObject<Env> {
	private inflight: Promise<FlightResult> | null = null;
	private recent: { answer: OriginAnswer; atMs: number } | null = null;

	async answer(target: OriginTarget, path: string, body: string): Promise<FlightResult> {
		if (this.recent && Date.now() - this.recent.atMs < RECENT_MS) return { outcome: "answered", answer: this.recent.answer };
		if (this.inflight) {
			const result = await this.inflight;
			return result.outcome === "answered" && result.answer.status !== 200 ? { outcome: "not_shared" } : result;
		}
		this.inflight = this.callOrigin(target, path, body).finally(() => {
			this.inflight = null;
		});
		return this.inflight;
	}

	private async callOrigin(target: OriginTarget, path: string, body: string): Promise<FlightResult> {
		try {
			const answer = await fetchAnswer(this.env, target, path, body);
			// Kept for late arrivals only if it may be cached at all (src/cache/answers.ts).
			if (isCacheableAnswer(path, answer)) this.recent = { answer, atMs: Date.now() };
			return { outcome: "answered", answer };
		} catch (error) {
			// RPC carries plain data better than error classes: report "unavailable" as a value.
			if (error instanceof OriginUnavailableError) return { outcome: "unavailable", retryAfterSeconds: error.retryAfterSeconds };
			throw error;
		}
	}
}
