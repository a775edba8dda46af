// Origin failover, timeouts, origin down (hits still served, misses 503 + Retry-After) and the
// circuit breaker. Each test uses its own origin hosts, so breaker and fingerprint state never leak.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { COOLDOWN_MS, CircuitBreaker, FAILURE_THRESHOLD } from "../src/origin/breaker";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
let key: string;
let primary: string;
let fallback: string;
let origins: Partial<Env>;
beforeEach(async () => {
	origin = installFakeOrigin();
	key = await createKey();
	const id = crypto.randomUUID().slice(0, 8);
	primary = `primary-${id}.test`;
	fallback = `fallback-${id}.test`;
	origins = { ORIGIN_URL: `http://${primary}`, ORIGIN_FALLBACK_URL: `http://${fallback}` };
});
afterEach(() => vi.restoreAllMocks());

const generate = (prompt: string, extra: Partial<Env> = {}) =>
	call("/v1/generate", { body: { prompt }, key, env: { ...origins, ...extra } });

describe("failover", () => {
	it("uses the fallback origin when the primary is unreachable", async () => {
		origin.set(primary, { fail: "down" });
		const response = await generate(uniquePrompt("down"));
		expect(response.status).toBe(200);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(1);
	});

	it.each([502, 503, 530])("fails over when the primary answers %i", async (status) => {
		origin.set(primary, { fail: status });
		expect((await generate(uniquePrompt("5xx"))).status).toBe(200);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(1);
	});

	it("fails over when the primary times out, and tries each origin once", async () => {
		origin.set(primary, { delayMs: 1000 });
		const response = await generate(uniquePrompt("slow"), { ORIGIN_TIMEOUT_MS: "200" });
		expect(response.status).toBe(200);
		expect(origin.callsTo("/v1/generate", primary)).toHaveLength(1);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(1);
	});

	it("resends once on the same origin when a connection is lost before any answer", async () => {
		expect((await generate(uniquePrompt("warm"))).status).toBe(200); // learns the fingerprint first
		origin.set(primary, { dropConnections: 1 });
		const response = await generate(uniquePrompt("stale"));
		expect(response.status).toBe(200);
		expect(origin.callsTo("/v1/generate", primary)).toHaveLength(3);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(0);
	});

	it("does not fail over on the runtime's own 4xx", async () => {
		const response = await generate("origin says no");
		expect(response.status).toBe(400);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(0);
	});
});

describe("every origin down", () => {
	it("still serves cached answers, and misses get 503 with Retry-After", async () => {
		const cachedPrompt = uniquePrompt("cached");
		const fresh = await (await generate(cachedPrompt)).text();
		// Origins this isolate has never reached: no memoised fingerprint, so it must come from KV.
		const otherIsolate = { ORIGIN_URL: `http://down-${primary}`, ORIGIN_FALLBACK_URL: `http://down-${fallback}` };
		origin.set(`down-${primary}`, { fail: "down" }).set(`down-${fallback}`, { fail: "down" });

		const hit = await call("/v1/generate", { body: { prompt: cachedPrompt }, key, env: otherIsolate });
		expect(hit.status).toBe(200);
		expect(hit.headers.get("x-cache")).toBe("HIT");
		expect(await hit.text()).toBe(fresh);

		const miss = await call("/v1/generate", { body: { prompt: uniquePrompt("miss") }, key, env: otherIsolate });
		expect(miss.status).toBe(503);
		expect(Number(miss.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		expect((await miss.json<{ error: { type: string } }>()).error.type).toBe("origin_unavailable");
		expect(origin.callsTo("/v1/status", `down-${primary}`).length).toBeGreaterThan(0);
	});

	it("answers 503 when no fingerprint is known anywhere and the origin is down", async () => {
		origin.set(primary, { fail: "down" }).set(fallback, { fail: "down" });
		await env.CACHE.delete("meta:model-fingerprint");
		const response = await generate(uniquePrompt("nothing"));
		expect(response.status).toBe(503);
		expect(response.headers.get("retry-after")).toMatch(/^[0-9]+$/);
	});
});

describe("circuit breaker", () => {
	it(`stops calling an origin after ${FAILURE_THRESHOLD} consecutive failures`, async () => {
		origin.set(primary, { fail: "down" });
		for (let i = 0; i < FAILURE_THRESHOLD; i++) expect((await generate(uniquePrompt("trip"))).status).toBe(200);
		const primaryCalls = origin.calls.filter((c) => c.host === primary).length;
		for (let i = 0; i < 3; i++) expect((await generate(uniquePrompt("open"))).status).toBe(200);
		expect(origin.calls.filter((c) => c.host === primary)).toHaveLength(primaryCalls);
	});

	it("with every breaker open, misses fail fast with the time left as Retry-After", async () => {
		origin.set(primary, { fail: "down" }).set(fallback, { fail: "down" });
		for (let i = 0; i < FAILURE_THRESHOLD; i++) await generate(uniquePrompt("trip"));
		const calls = origin.calls.length;
		const response = await generate(uniquePrompt("fast"));
		expect(response.status).toBe(503);
		expect(origin.calls).toHaveLength(calls);
		const retryAfter = Number(response.headers.get("retry-after"));
		expect(retryAfter).toBeGreaterThan(1);
		expect(retryAfter).toBeLessThanOrEqual(COOLDOWN_MS / 1000);
	});

	it(`stops calling an origin after ${FAILURE_THRESHOLD} consecutive timeouts`, async () => {
		origin.set(primary, { delayMs: 1000 });
		const quick = { ORIGIN_TIMEOUT_MS: "100" };
		for (let i = 0; i < FAILURE_THRESHOLD; i++) expect((await generate(uniquePrompt("slow"), quick)).status).toBe(200);
		const primaryCalls = origin.calls.filter((c) => c.host === primary).length;
		expect((await generate(uniquePrompt("skipped"), quick)).status).toBe(200);
		expect(origin.calls.filter((c) => c.host === primary)).toHaveLength(primaryCalls);
	});

	it("does not count the runtime's own 429 (queue_full) as a failure, however many", async () => {
		expect((await generate(uniquePrompt("warm"))).status).toBe(200); // learns the fingerprint first
		origin.set(primary, { fail: 429 });
		for (let i = 0; i < 2 * FAILURE_THRESHOLD; i++) {
			const busy = await generate(uniquePrompt("queue full"));
			expect(busy.status).toBe(429);
			expect(busy.headers.get("retry-after")).toBe("3");
		}
		origin.set(primary, {});
		expect((await generate(uniquePrompt("after the flood"))).status).toBe(200);
		expect(origin.callsTo("/v1/generate", primary)).toHaveLength(2 * FAILURE_THRESHOLD + 2);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(0);
	});

	it("does not count slow answers after a long queue wait as failures", async () => {
		expect((await generate(uniquePrompt("warm"))).status).toBe(200);
		// Well past the threshold, each slow but inside the timeout (2000 ms in the test config).
		origin.set(primary, { delayMs: 400 });
		const roomy = { MAX_CONCURRENT_PER_KEY: String(2 * FAILURE_THRESHOLD) };
		const slow = await Promise.all(Array.from({ length: 2 * FAILURE_THRESHOLD }, () => generate(uniquePrompt("queued"), roomy)));
		expect(slow.map((r) => r.status)).toEqual(Array(2 * FAILURE_THRESHOLD).fill(200));
		origin.set(primary, {});
		expect((await generate(uniquePrompt("still closed"))).status).toBe(200);
		expect(origin.callsTo("/v1/generate", fallback)).toHaveLength(0);
	});

	it("lets one trial through after the cooldown and closes on success or reopens on failure", () => {
		const breaker = new CircuitBreaker();
		for (let i = 0; i < FAILURE_THRESHOLD - 1; i++) breaker.onFailure(0);
		expect(breaker.allows(0)).toBe(true);
		breaker.onFailure(1000);
		expect(breaker.allows(1000)).toBe(false);
		expect(breaker.retryAfterSeconds(1000)).toBe(COOLDOWN_MS / 1000);
		expect(breaker.allows(1000 + COOLDOWN_MS)).toBe(true);
		expect(breaker.allows(1000 + COOLDOWN_MS)).toBe(false);
		breaker.onFailure(2000 + COOLDOWN_MS);
		expect(breaker.allows(3000 + COOLDOWN_MS)).toBe(false);
		expect(breaker.allows(2000 + 2 * COOLDOWN_MS)).toBe(true);
		breaker.onSuccess();
		expect(breaker.allows(2000 + 2 * COOLDOWN_MS)).toBe(true);
		expect(breaker.retryAfterSeconds(0)).toBe(0);
	});
});
