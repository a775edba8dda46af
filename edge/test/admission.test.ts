// Admission comes first: a request that will be refused (no key, unknown or revoked key, rate limit,
// too many failed checks from its IP) has its body left unread and causes no DLP, fingerprint fetch,
// cache read, origin call or D1 write. Junk keys are refused from memory after one lookup, and failed
// checks are limited per client IP.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { sha256Hex } from "../src/cache/cachekey";
import { AUTH_FAILURE_PERIOD_SECONDS } from "../src/admission/authfailures";
import { RATE_LIMIT_PERIOD_SECONDS, secondsUntilNextWindow } from "../src/admission/ratelimit";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { buildRequest, call, createKey, randomClientIp, spyOnStorage, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
beforeEach(() => {
	origin = installFakeOrigin();
});
afterEach(() => vi.restoreAllMocks());

/** The local limiters count in fixed clock-aligned windows: a burst must not straddle a rollover. */
async function awayFromWindowEdge() {
	const left = secondsUntilNextWindow(Date.now(), AUTH_FAILURE_PERIOD_SECONDS);
	if (left < 5) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 200));
}

const junkKey = () => `sk_junk_${crypto.randomUUID()}`;
const tightAuth = { AUTH_FAILURE_LIMITER: env.TIGHT_AUTH_FAILURE_LIMITER };

async function errorType(response: Response): Promise<string> {
	return (await response.json<{ error: { type: string } }>()).error.type;
}

/** A prompt whose answer sits in D1 only (its KV copy deleted), so a lookup of it would bump the row. */
async function answerCachedInD1Only(key: string): Promise<{ body: unknown; cacheKey: string }> {
	const body = { prompt: uniquePrompt("cached in d1") };
	const miss = await call("/v1/generate", { body, key });
	const cacheKey = miss.headers.get("x-cache-key")!;
	await env.CACHE.delete(cacheKey);
	return { body, cacheKey };
}

const d1Row = (cacheKey: string) => env.DB.prepare("SELECT * FROM answer_cache WHERE cache_key = ?").bind(cacheKey).first();

describe("nothing before the key is valid", () => {
	it.each([
		["no key", async () => ({})],
		["an unknown key", async () => ({ key: junkKey() })],
		["a revoked key", async () => ({ key: await createKey({ revoked: true }) })],
	])("a request with %s is refused with its body unread", async (_, credentials) => {
		const request = buildRequest("/v1/generate", { body: { prompt: uniquePrompt("unread") }, ...(await credentials()) });
		const response = await call("/v1/generate", {}, request);
		expect([401, 403]).toContain(response.status);
		expect(request.bodyUsed).toBe(false);
		expect(origin.calls).toHaveLength(0);
	});

	it("a request over its key's rate limit is refused with its body unread and no cache read", async () => {
		await awayFromWindowEdge();
		const key = await createKey();
		const body = { prompt: uniquePrompt("limited") };
		const tight = { RATE_LIMITER: env.TIGHT_RATE_LIMITER };
		for (let i = 0; i < 3; i++) expect((await call("/v1/generate", { body, key, env: tight })).status).toBe(200);
		const spy = spyOnStorage();
		const request = buildRequest("/v1/generate", { body, key });
		const limited = await call("/v1/generate", { env: { ...tight, ...spy.env } }, request);
		expect(limited.status).toBe(429);
		expect(await errorType(limited)).toBe("rate_limited");
		expect(request.bodyUsed).toBe(false);
		expect(spy.kv.filter((op) => !op.includes("apikey:"))).toEqual([]);
		expect(spy.d1).toEqual([]);
	});

	it("a refused request reads no cache tier, however the prompt is cached, and writes nothing", async () => {
		const key = await createKey();
		const body = { prompt: uniquePrompt("timing oracle") };
		expect((await call("/v1/generate", { body, key })).status).toBe(200); // now in KV and D1
		const junk = junkKey();
		const spy = spyOnStorage();
		const refused = await call("/v1/generate", { body, key: junk, env: spy.env });
		expect(refused.status).toBe(401);
		expect(refused.headers.get("x-cache")).toBeNull();
		// The only reads are the key's own lookup: KV, then D1 while a new key's KV copy may lag.
		expect(spy.kv).toEqual([`get apikey:${await sha256Hex(junk)}`]);
		expect(spy.d1).toHaveLength(1);
		expect(spy.d1[0]).toMatch(/FROM api_keys/);
	});

	it("a refused request does not touch a D1-tier entry (no access count, no new expiry)", async () => {
		const key = await createKey();
		const { body, cacheKey } = await answerCachedInD1Only(key);
		const before = await d1Row(cacheKey);
		expect(before).not.toBeNull();
		for (const refused of [junkKey(), await createKey({ revoked: true })]) {
			expect((await call("/v1/generate", { body, key: refused })).status).toBeGreaterThanOrEqual(401);
		}
		expect(await d1Row(cacheKey)).toEqual(before);
		// The same request with a valid key is a D1 hit that does change the row: the check above can fail.
		const hit = await call("/v1/generate", { body, key });
		expect(hit.headers.get("x-cache-tier")).toBe("d1");
		expect(await d1Row(cacheKey)).not.toEqual(before);
	});

	it("a refused request does not ask the origin for the model fingerprint", async () => {
		// An origin URL no test used: this isolate has no fingerprint memoised for it.
		const fresh = { ORIGIN_URL: `http://origin-${crypto.randomUUID()}.test`, ORIGIN_FALLBACK_URL: "" };
		const body = { prompt: uniquePrompt("fingerprint") };
		expect((await call("/v1/generate", { body, key: junkKey(), env: fresh })).status).toBe(401);
		expect(origin.calls).toHaveLength(0);
		expect((await call("/v1/generate", { body, key: await createKey(), env: fresh })).status).toBe(200);
		expect(origin.callsTo("/v1/status")).toHaveLength(1);
	});

	it("a refused request is not checked by DLP", async () => {
		const response = await call("/v1/generate", { body: { prompt: "my SSN is 123-45-6789" }, key: junkKey() });
		expect(response.status).toBe(401);
		expect(await errorType(response)).toBe("unauthorized");
	});

	it("GET /v1/models is admitted the same way before the origin is called", async () => {
		expect((await call("/v1/models", { key: junkKey() })).status).toBe(401);
		expect(origin.calls).toHaveLength(0);
	});
});

describe("refused keys are remembered briefly", () => {
	it("a junk key sent again is refused from memory, without a KV or D1 read", async () => {
		const junk = junkKey();
		const first = spyOnStorage();
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: junk, env: first.env })).status).toBe(401);
		expect(first.kv).toHaveLength(1);
		const again = spyOnStorage();
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: junk, env: again.env })).status).toBe(401);
		expect(again.kv).toEqual([]);
		expect(again.d1).toEqual([]);
	});

	it("a revoked key stays refused with 403 from memory", async () => {
		const revoked = await createKey({ revoked: true });
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: revoked })).status).toBe(403);
		const spy = spyOnStorage();
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: revoked, env: spy.env })).status).toBe(403);
		expect(spy.kv).toEqual([]);
	});

	it("a valid key is looked up on every request, so a revocation counts from the next one", async () => {
		const key = await createKey();
		const body = { prompt: uniquePrompt("revoke") };
		expect((await call("/v1/generate", { body, key })).status).toBe(200);
		const record = await env.CACHE.get<Record<string, unknown>>(`apikey:${await sha256Hex(key)}`, "json");
		await env.CACHE.put(`apikey:${await sha256Hex(key)}`, JSON.stringify({ ...record, revoked: true }));
		expect((await call("/v1/generate", { body, key })).status).toBe(403);
	});
});

describe("failed checks per client IP", () => {
	it("answers 429 once an IP exceeds its failed checks, then refuses it without any lookup", async () => {
		await awayFromWindowEdge();
		const ip = randomClientIp();
		const from = (headers: Record<string, string> = {}) => ({ "cf-connecting-ip": ip, ...headers });
		for (let i = 0; i < 3; i++) {
			expect((await call("/v1/generate", { body: { prompt: "x" }, key: junkKey(), headers: from(), env: tightAuth })).status).toBe(401);
		}
		const over = await call("/v1/generate", { body: { prompt: "x" }, key: junkKey(), headers: from(), env: tightAuth });
		expect(over.status).toBe(429);
		const retryAfter = Number(over.headers.get("retry-after"));
		expect(retryAfter).toBeGreaterThanOrEqual(1);
		expect(retryAfter).toBeLessThanOrEqual(AUTH_FAILURE_PERIOD_SECONDS);
		expect(await errorType(over)).toBe("too_many_auth_failures");

		// Blocked for the rest of the window: no key is looked up, not even a valid one.
		const spy = spyOnStorage();
		const key = await createKey();
		const blocked = await call("/v1/generate", { body: { prompt: "x" }, key, headers: from(), env: { ...tightAuth, ...spy.env } });
		expect(blocked.status).toBe(429);
		expect(spy.kv).toEqual([]);
		expect(spy.d1).toEqual([]);
		// Other clients are not affected.
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("other ip") }, key, env: tightAuth })).status).toBe(200);
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: junkKey(), env: tightAuth })).status).toBe(401);
	});

	it("counts wrong keys, revoked keys and wrong metrics tokens, but not a missing key", async () => {
		await awayFromWindowEdge();
		const ip = randomClientIp();
		const headers = { "cf-connecting-ip": ip };
		for (let i = 0; i < 5; i++) expect((await call("/v1/generate", { body: { prompt: "x" }, headers, env: tightAuth })).status).toBe(401);
		// The limit (3) is still whole: these three are counted, and the next failure is one too many.
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: junkKey(), headers, env: tightAuth })).status).toBe(401);
		expect(
			(await call("/v1/generate", { body: { prompt: "x" }, key: await createKey({ revoked: true }), headers, env: tightAuth })).status,
		).toBe(403);
		expect((await call("/metrics", { key: "not-the-metrics-token", headers, env: tightAuth })).status).toBe(401);
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: junkKey(), headers, env: tightAuth })).status).toBe(429);
		expect((await call("/metrics", { key: "test-metrics-token", headers, env: tightAuth })).status).toBe(429);
	});

	it("computes Retry-After from the periods wrangler.jsonc declares (a binding does not expose its period)", () => {
		const declared = JSON.parse(env.DECLARED_RATELIMITS) as { name: string; simple: { period: number } }[];
		const period = (name: string) => declared.find((limiter) => limiter.name === name)?.simple.period;
		expect(period("RATE_LIMITER")).toBe(RATE_LIMIT_PERIOD_SECONDS);
		expect(period("AUTH_FAILURE_LIMITER")).toBe(AUTH_FAILURE_PERIOD_SECONDS);
	});

	it("lets checks through when the limiter binding itself fails", async () => {
		const broken = { limit: () => Promise.reject(new Error("limiter down")) } as unknown as RateLimit;
		const headers = { "cf-connecting-ip": randomClientIp() };
		for (let i = 0; i < 5; i++) {
			expect(
				(await call("/v1/generate", { body: { prompt: "x" }, key: junkKey(), headers, env: { AUTH_FAILURE_LIMITER: broken } })).status,
			).toBe(401);
		}
	});
});
