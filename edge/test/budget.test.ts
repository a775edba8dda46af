// Daily budgets per key, in requests and tokens, held by the key's KeyLimiter Durable Object: checked
// before the cache, atomic under bursts, settled to the real usage (a hit costs its prompt tokens, or none).
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, keyIdOf, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
beforeEach(() => {
	origin = installFakeOrigin();
});
afterEach(() => vi.restoreAllMocks());

type ErrorBody = { error: { type: string; message: string } };
// The fake origin reports 3 prompt + 5 completion tokens for every generation.
const FAKE_PROMPT_TOKENS = 3;
const FAKE_COMPLETION_TOKENS = 5;

const usedToday = async (key: string) => env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(await keyIdOf(key))).usedToday();
const nextUtcMidnight = () => new Date(Math.floor(Date.now() / 86_400_000 + 1) * 86_400_000).toISOString();

describe("request budget", () => {
	it("admits exactly 10 of 50 concurrent cache hits against a budget of 10", async () => {
		const body = { prompt: uniquePrompt("burst"), max_tokens: 8 };
		expect((await call("/v1/generate", { body, key: await createKey() })).headers.get("x-cache")).toBe("MISS");
		const key = await createKey({ policy: { daily_requests: 10 } });
		const answers = await Promise.all(Array.from({ length: 50 }, () => call("/v1/generate", { body, key })));
		const statuses = answers.map((answer) => answer.status);
		expect(statuses.filter((status) => status === 200)).toHaveLength(10);
		expect(statuses.filter((status) => status === 429)).toHaveLength(40);
		expect(answers.filter((answer) => answer.headers.get("x-cache") === "HIT")).toHaveLength(10);
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
		expect((await usedToday(key)).requests).toBe(10);
	});

	it("admits exactly 10 of 50 concurrent misses, and only those reach the origin", async () => {
		const key = await createKey({ policy: { daily_requests: 10 } });
		const answers = await Promise.all(
			Array.from({ length: 50 }, () =>
				call("/v1/generate", { body: { prompt: uniquePrompt("burst miss"), max_tokens: 8 }, key, env: { MAX_CONCURRENT_PER_KEY: "64" } }),
			),
		);
		expect(answers.filter((answer) => answer.status === 200)).toHaveLength(10);
		expect(answers.filter((answer) => answer.status === 429)).toHaveLength(40);
		expect(origin.callsTo("/v1/generate")).toHaveLength(10);
	});

	it("answers 429 budget_exhausted naming the budget and its reset, with Retry-After until midnight UTC", async () => {
		const key = await createKey({ policy: { daily_requests: 1 } });
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("one") }, key })).status).toBe(200);
		const refused = await call("/v1/generate", { body: { prompt: uniquePrompt("two") }, key });
		expect(refused.status).toBe(429);
		const { error } = await refused.json<ErrorBody>();
		expect(error.type).toBe("budget_exhausted");
		expect(error.message).toContain("daily requests budget (1 of 1 requests per UTC day)");
		expect(error.message).toContain(`resets at ${nextUtcMidnight()}`);
		const retryAfter = Number(refused.headers.get("retry-after"));
		expect(retryAfter).toBeGreaterThanOrEqual(1);
		expect(retryAfter).toBeLessThanOrEqual(86_400);
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
	});

	it("counts a request refused by validation not at all", async () => {
		const key = await createKey({ policy: { daily_requests: 1 } });
		expect((await call("/v1/generate", { body: { prompt: "" }, key })).status).toBe(400);
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("valid") }, key })).status).toBe(200);
	});

	it("keeps keys apart and leaves keys without budgets unlimited", async () => {
		const spent = await createKey({ policy: { daily_requests: 1 } });
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("a") }, key: spent })).status).toBe(200);
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("b") }, key: spent })).status).toBe(429);
		expect(
			(await call("/v1/generate", { body: { prompt: uniquePrompt("c") }, key: await createKey({ policy: { daily_requests: 1 } }) })).status,
		).toBe(200);
		const unlimited = await createKey();
		for (let i = 0; i < 3; i++)
			expect((await call("/v1/generate", { body: { prompt: uniquePrompt("d") }, key: unlimited })).status).toBe(200);
	});

	it("charges a rotated key's replacement on its predecessor's budget, whether its record comes from KV or D1", async () => {
		const old = await createKey({ policy: { daily_requests: 2 } });
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("before rotation") }, key: old })).status).toBe(200);
		const policy = { daily_requests: 2, budget_key_id: await keyIdOf(old) };
		const fromKv = await createKey({ policy, kvOnly: true });
		const fromD1 = await createKey({ policy, d1Only: true });
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("after rotation") }, key: fromD1 })).status).toBe(200);
		for (const key of [fromKv, fromD1, old]) {
			const spent = await call("/v1/generate", { body: { prompt: uniquePrompt("over") }, key });
			expect(spent.status).toBe(429);
			expect((await spent.json<ErrorBody>()).error.type).toBe("budget_exhausted");
		}
	});
});

describe("token budget", () => {
	it("settles a miss to its prompt + completion tokens and a hit to its prompt tokens", async () => {
		const key = await createKey({ policy: { daily_tokens: 1000 } });
		const body = { prompt: uniquePrompt("settle"), max_tokens: 8 };
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
		expect(await usedToday(key)).toEqual({ requests: 1, tokens: FAKE_PROMPT_TOKENS + FAKE_COMPLETION_TOKENS });
		for (let i = 0; i < 3; i++) expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("HIT");
		expect(await usedToday(key)).toEqual({ requests: 4, tokens: FAKE_PROMPT_TOKENS + FAKE_COMPLETION_TOKENS + 3 * FAKE_PROMPT_TOKENS });
	});

	it("counts a hit as a request but no tokens with BUDGET_HIT_TOKENS=none", async () => {
		const key = await createKey({ policy: { daily_tokens: 1000, daily_requests: 2 } });
		const body = { prompt: uniquePrompt("free hits"), max_tokens: 8 };
		const settings = { env: { BUDGET_HIT_TOKENS: "none" } };
		expect((await call("/v1/generate", { body, key, ...settings })).headers.get("x-cache")).toBe("MISS");
		expect((await call("/v1/generate", { body, key, ...settings })).headers.get("x-cache")).toBe("HIT");
		expect(await usedToday(key)).toEqual({ requests: 2, tokens: FAKE_PROMPT_TOKENS + FAKE_COMPLETION_TOKENS });
		const refused = await call("/v1/generate", { body, key, ...settings });
		expect([refused.status, (await refused.json<ErrorBody>()).error.type]).toEqual([429, "budget_exhausted"]);
	});

	it("reserves the worst case, so a request that could overshoot is refused before the cache", async () => {
		// Estimate: prompt bytes + 2 + max_tokens. After one miss (8 tokens) the next estimate no longer fits.
		const prompt = uniquePrompt("worst case");
		const estimate = new TextEncoder().encode(prompt).byteLength + 2 + 8;
		const key = await createKey({ policy: { daily_tokens: estimate + 4 } });
		expect((await call("/v1/generate", { body: { prompt, max_tokens: 8 }, key })).status).toBe(200);
		const refused = await call("/v1/generate", { body: { prompt, max_tokens: 8 }, key });
		expect(refused.status).toBe(429);
		expect(refused.headers.get("x-cache")).toBeNull();
		expect((await refused.json<ErrorBody>()).error.message).toContain(`daily tokens budget (8 of ${estimate + 4} tokens`);
	});

	it("refuses with 400 a request whose estimate alone is over the daily token budget", async () => {
		const key = await createKey({ policy: { daily_tokens: 10 } });
		const refused = await call("/v1/generate", { body: { prompt: uniquePrompt("too big"), max_tokens: 64 }, key });
		expect(refused.status).toBe(400);
		expect((await refused.json<ErrorBody>()).error.message).toContain("daily token budget (10)");
	});

	it("settles a streamed miss to the tokens its stream reported", async () => {
		const key = await createKey({ policy: { daily_tokens: 1000 } });
		const streamed = await call("/v1/generate", { body: { prompt: uniquePrompt("stream"), max_tokens: 8, stream: true }, key });
		expect(streamed.status).toBe(200);
		await streamed.text();
		await vi.waitFor(async () =>
			expect(await usedToday(key)).toEqual({ requests: 1, tokens: FAKE_PROMPT_TOKENS + FAKE_COMPLETION_TOKENS }),
		);
	});

	it("fails closed with 503 when the budget cannot be checked", async () => {
		const key = await createKey({ policy: { daily_requests: 100 } });
		const broken = { idFromName: () => ({}), get: () => ({ reserveBudget: () => Promise.reject(new Error("down")) }) };
		const refused = await call("/v1/generate", { body: { prompt: uniquePrompt("down") }, key, env: { KEY_LIMITER: broken as never } });
		expect(refused.status).toBe(503);
		expect((await refused.json<ErrorBody>()).error.type).toBe("budget_unavailable");
		expect(origin.calls.filter((c) => c.method === "POST")).toHaveLength(0);
	});
});
