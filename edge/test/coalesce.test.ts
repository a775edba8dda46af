// Single-flight: identical concurrent misses make exactly one origin call, in one isolate (shared
// promise) and across isolates (the Coalescer Durable Object keyed by cache key); only a 200 is shared.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, uniquePrompt } from "./helpers";

const CONCURRENT = 8;
let origin: FakeOrigin;
let key: string;
let otherKey: string;
beforeEach(async () => {
	origin = installFakeOrigin().set("origin-primary.test", { delayMs: 150 });
	key = await createKey();
	otherKey = await createKey();
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
		const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM answer_cache WHERE cache_key = ?")
			.bind(responses[0].headers.get("x-cache-key"))
			.first<{ n: number }>();
		expect(rows?.n).toBe(1);
	});

	it("keeps different requests apart", async () => {
		const bodies = [{ prompt: uniquePrompt("a") }, { prompt: uniquePrompt("b") }, { prompt: uniquePrompt("a"), seed: 1 }];
		const responses = await Promise.all(
			bodies.flatMap((body) => [call("/v1/generate", { body, key }), call("/v1/generate", { body, key })]),
		);
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
		expect(results.every((result) => result.outcome === "answered" && result.answer.status === 200)).toBe(true);
		expect(new Set(results.map((result) => (result.outcome === "answered" ? result.answer.body : "")))).toHaveProperty("size", 1);
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
	});

	it("reports an unreachable origin from the Durable Object as a plain value", async () => {
		origin.set("origin-primary.test", { fail: "down" }).set("origin-fallback.test", { fail: "down" });
		const cacheKey = `gen:v1:${crypto.randomUUID()}`;
		const target = { urls: ["http://origin-primary.test", "http://origin-fallback.test"], timeoutMs: 2000 };
		const result = await env.COALESCER.get(env.COALESCER.idFromName(cacheKey)).answer(target, "/v1/generate", "{}");
		expect(result.outcome).toBe("unavailable");
	});
});

describe("only a 200 is shared", () => {
	const completion = (prompt: string, user: string) => ({ model: "gemma3-270m", prompt, max_tokens: 4, user });

	it.each([
		["400", "refuse me"],
		["429", "queue full"],
	])("a joiner of a flight that ended in a %s makes its own origin call and gets its own answer", async (status, refusedUser) => {
		const prompt = uniquePrompt("tenants");
		const leader = call("/v1/completions", { body: completion(prompt, refusedUser), key });
		await new Promise((resolve) => setTimeout(resolve, 20)); // the leader's flight is in the air
		const joiners = Array.from({ length: 3 }, (_, i) =>
			call("/v1/completions", { body: completion(prompt, `tenant-b-${i}`), key: otherKey }),
		);
		const [refused, ...answered] = await Promise.all([leader, ...joiners]);
		expect(refused.status).toBe(Number(status));
		const texts = await Promise.all(answered.map((response) => response.text()));
		expect(answered.map((response) => response.status)).toEqual([200, 200, 200]);
		for (const text of texts) expect(text).not.toContain(refusedUser);
		// One call for the failed flight, then one per joiner: none of them received the leader's answer.
		expect(origin.callsTo("/v1/completions")).toHaveLength(4);
		// The joiners' own calls each wait for their key's lease first, so they may reach the origin in any order.
		const [first, ...own] = origin.callsTo("/v1/completions").map((sent) => sent.body?.user);
		expect(first).toBe(refusedUser);
		expect(own.sort()).toEqual(["tenant-b-0", "tenant-b-1", "tenant-b-2"]);
	});

	it("the Durable Object tells a joiner of a failed flight to make its own call, and shares only a 200", async () => {
		const cacheKey = `gen:v1:${crypto.randomUUID()}`;
		const target = { urls: ["http://origin-primary.test"], timeoutMs: 2000 };
		const prompt = uniquePrompt("isolates");
		const stub = () => env.COALESCER.get(env.COALESCER.idFromName(cacheKey));
		const [first, second] = await Promise.all([
			stub().answer(target, "/v1/completions", JSON.stringify(completion(prompt, "refuse me"))),
			stub().answer(target, "/v1/completions", JSON.stringify(completion(prompt, "tenant-b"))),
		]);
		expect(first.outcome === "answered" && first.answer.status).toBe(400);
		expect(second.outcome).toBe("not_shared");
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
		// A 200 flight is shared with its joiners (and kept for late arrivals).
		const otherKeyName = `gen:v1:${crypto.randomUUID()}`;
		const shared = await Promise.all(
			["a", "b"].map((user) =>
				env.COALESCER.get(env.COALESCER.idFromName(otherKeyName)).answer(
					target,
					"/v1/completions",
					JSON.stringify(completion(prompt, user)),
				),
			),
		);
		expect(shared.map((result) => result.outcome === "answered" && result.answer.status)).toEqual([200, 200]);
		expect(origin.callsTo("/v1/completions")).toHaveLength(2);
	});
});
