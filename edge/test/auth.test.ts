// API keys (hashed, Bearer or X-API-Key, revocation) and the per-key rate limit.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { secretsEqual } from "../src/admission/auth";
import { secondsUntilNextWindow } from "../src/admission/ratelimit";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
beforeEach(() => {
	origin = installFakeOrigin();
});
afterEach(() => vi.restoreAllMocks());

const generate = (options: Parameters<typeof call>[1] = {}) => call("/v1/generate", { body: { prompt: uniquePrompt("auth") }, ...options });

describe("authentication", () => {
	it("rejects a request without a key with 401 and WWW-Authenticate", async () => {
		const response = await generate();
		expect(response.status).toBe(401);
		expect(response.headers.get("www-authenticate")).toContain("Bearer");
		expect((await response.json<{ error: { type: string } }>()).error.type).toBe("unauthorized");
		expect(origin.callsTo("/v1/generate")).toHaveLength(0);
	});

	it("rejects an unknown key with 401", async () => {
		expect((await generate({ key: "sk_not_a_real_key" })).status).toBe(401);
		expect((await generate({ headers: { "x-api-key": "sk_not_a_real_key" } })).status).toBe(401);
		expect((await generate({ headers: { authorization: "Basic dXNlcjpwYXNz" } })).status).toBe(401);
	});

	it("accepts a key as Authorization: Bearer and as X-API-Key", async () => {
		const key = await createKey();
		expect((await generate({ key })).status).toBe(200);
		expect((await generate({ headers: { "x-api-key": key } })).status).toBe(200);
		// Another scheme in Authorization (e.g. a proxy's Basic credentials) leaves X-API-Key usable.
		expect((await generate({ headers: { authorization: "Basic dXNlcjpwYXNz", "x-api-key": key } })).status).toBe(200);
	});

	it("stores only the key's hash", async () => {
		const key = await createKey();
		const listed = await env.CACHE.list({ prefix: "apikey:" });
		expect(listed.keys.map((entry) => entry.name).join(" ")).not.toContain(key);
		const rows = await env.DB.prepare("SELECT * FROM api_keys").all();
		expect(JSON.stringify(rows.results)).not.toContain(key);
	});

	it("answers 403 for a revoked key, from KV or from D1", async () => {
		expect((await generate({ key: await createKey({ revoked: true }) })).status).toBe(403);
		expect((await generate({ key: await createKey({ revoked: true, d1Only: true }) })).status).toBe(403);
	});

	it("falls back to D1 while a new key's KV record has not arrived yet", async () => {
		expect((await generate({ key: await createKey({ d1Only: true }) })).status).toBe(200);
	});

	it("checks the key before anything reaches the origin or the cache", async () => {
		const key = await createKey();
		const body = { prompt: uniquePrompt("cached") };
		expect((await call("/v1/generate", { body, key })).status).toBe(200);
		expect((await call("/v1/generate", { body, key: "sk_wrong" })).status).toBe(401);
		expect((await call("/v1/generate", { body, key: "sk_wrong" })).headers.get("x-cache")).toBeNull();
	});

	it("compares secrets in constant time without leaking length", async () => {
		expect(await secretsEqual("abc", "abc")).toBe(true);
		expect(await secretsEqual("abc", "abd")).toBe(false);
		expect(await secretsEqual("abc", "abcdef")).toBe(false);
	});
});

describe("rate limiting", () => {
	async function awayFromWindowEdge() {
		// The local limiter counts in fixed clock-aligned windows: do not straddle a rollover.
		const left = secondsUntilNextWindow(Date.now());
		if (left < 5) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 200));
	}

	it("answers 429 with Retry-After once a key exceeds its limit, per key", async () => {
		await awayFromWindowEdge();
		const tight = { RATE_LIMITER: env.TIGHT_RATE_LIMITER };
		const key = await createKey();
		for (let i = 0; i < 3; i++) expect((await generate({ key, env: tight })).status).toBe(200);
		const limited = await generate({ key, env: tight });
		expect(limited.status).toBe(429);
		const retryAfter = Number(limited.headers.get("retry-after"));
		expect(retryAfter).toBeGreaterThanOrEqual(1);
		expect(retryAfter).toBeLessThanOrEqual(60);
		expect((await limited.json<{ error: { type: string } }>()).error.type).toBe("rate_limited");
		expect((await generate({ key: await createKey(), env: tight })).status).toBe(200);
	});

	it("computes Retry-After as the time left in the window", () => {
		expect(secondsUntilNextWindow(120_000)).toBe(60);
		expect(secondsUntilNextWindow(179_500)).toBe(1);
		expect(secondsUntilNextWindow(150_000, 10)).toBe(10);
	});

	it("lets requests through when the limiter binding itself fails", async () => {
		const broken = { limit: () => Promise.reject(new Error("limiter down")) } as unknown as RateLimit;
		expect((await generate({ key: await createKey(), env: { RATE_LIMITER: broken } })).status).toBe(200);
	});
});
