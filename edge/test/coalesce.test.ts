// Single-flight: identical concurrent misses make exactly one origin call, in one isolate (shared
// promise) and across isolates (the Coalescer Durable Object keyed by cache key).
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, uniquePrompt } from "./helpers";

const CONCURRENT = 8;
let origin: FakeOrigin;
let key: string;
beforeEach(async () => {
	origin = installFakeOrigin().set("origin-primary.test", { delayMs: 150 });
	key = await createKey();
});
afterEach(() => vi.restoreAllMocks());

describe("coalescing", () => {
	it(`${CONCURRENT} concurrent identical misses make one origin call and get identical answers`, async () => {
		const body = { prompt: uniquePrompt("burst") };
		const responses = await Promise.all(Array.from({ length: CONCURRENT }, () => call("/v1/generate", { body, key })));
		const texts = await Promise.all(responses.map((response) => response.text()));
		expect(responses.map((r) => r.status)).toEqual(Array(CONCURRENT).fill(200));
		expect(new Set(texts).size).toBe(1);
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
	});

	it("stores the shared answer once, not once per waiter", async () => {
		const puts: string[] = [];
		const CACHE = new Proxy(env.CACHE, {
			get: (target, prop) => {
				if (prop === "put") return (name: string, ...rest: unknown[]) => (puts.push(name), target.put(name, ...(rest as [string])));
				const value = Reflect.get(target, prop);
				return typeof value === "function" ? value.bind(target) : value;
			},
		});
		const body = { prompt: uniquePrompt("one write") };
		const responses = await Promise.all(Array.from({ length: CONCURRENT }, () => call("/v1/generate", { body, key, env: { CACHE } })));
		expect(puts.filter((name) => name.startsWith("gen:"))).toHaveLength(1);
		const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM answer_cache WHERE cache_key = ?").bind(responses[0].headers.get("x-cache-key")).first<{ n: number }>();
		expect(rows?.n).toBe(1);
	});

	it("keeps different requests apart", async () => {
		const bodies = [{ prompt: uniquePrompt("a") }, { prompt: uniquePrompt("b") }, { prompt: uniquePrompt("a"), seed: 1 }];
		const responses = await Promise.all(bodies.flatMap((body) => [call("/v1/generate", { body, key }), call("/v1/generate", { body, key })]));
		expect(responses.every((r) => r.status === 200)).toBe(true);
		expect(origin.callsTo("/v1/generate")).toHaveLength(bodies.length);
	});

	it("merges calls from separate isolates in the Durable Object", async () => {
		// Each stub call stands in for a different isolate's leader: they meet only in the object.
		const cacheKey = `gen:v1:${crypto.randomUUID()}`;
		const target = { urls: ["http://origin-primary.test"], timeoutMs: 2000 };
		const body = JSON.stringify({ prompt: uniquePrompt("isolates") });
		const results = await Promise.all(
			Array.from({ length: 5 }, () => env.COALESCER.get(env.COALESCER.idFromName(cacheKey)).answer(target, "/v1/generate", body)),
		);
		expect(results.every((result) => result.ok && result.answer.status === 200)).toBe(true);
		expect(new Set(results.map((result) => (result.ok ? result.answer.body : "")))).toHaveProperty("size", 1);
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
	});

	it("reports an unreachable origin from the Durable Object as a plain value", async () => {
		origin.set("origin-primary.test", { fail: "down" }).set("origin-fallback.test", { fail: "down" });
		const cacheKey = `gen:v1:${crypto.randomUUID()}`;
		const target = { urls: ["http://origin-primary.test", "http://origin-fallback.test"], timeoutMs: 2000 };
		const result = await env.COALESCER.get(env.COALESCER.idFromName(cacheKey)).answer(target, "/v1/generate", "{}");
		expect(result.ok).toBe(false);
	});
});
