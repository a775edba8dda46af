// Per-request cache controls compatible with Cloudflare AI Gateway's headers (src/cache/controls.ts):
// cf-aig-cache-status and the tokens a hit saved on every answer, cf-aig-skip-cache as no-cache,
// cf-aig-cache-ttl as a fixed life within the configured bounds, cf-aig-cache-key as a namespace of the
// calling key's own, and a 400 naming the header for every malformed value.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { recall, remember } from "../src/cache/memorycache";
import type { FakeOrigin } from "./fake-origin";
import { call, createKey, freshOriginAndKey, keyIdOf, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

type ErrorBody = { error: { type: string; message: string; field?: string } };

const generations = () => origin.callsTo("/v1/generate").length;
const nowS = () => Math.floor(Date.now() / 1000);
const maxAge = () => Number(env.CACHE_MAX_AGE_SECONDS);

async function d1Row(cacheKey: string) {
	return env.DB.prepare("SELECT created_at, expires_at, fixed_ttl_seconds FROM answer_cache WHERE cache_key = ?")
		.bind(cacheKey)
		.first<{ created_at: number; expires_at: number; fixed_ttl_seconds: number | null }>();
}

describe("cf-aig-cache-status and the tokens a hit saved", () => {
	it("says MISS and 0 on a miss, HIT and the stored usage on a hit, next to X-Cache", async () => {
		const body = { prompt: uniquePrompt("status") };
		const miss = await call("/v1/generate", { body, key });
		expect(miss.headers.get("x-cache")).toBe("MISS");
		expect(miss.headers.get("cf-aig-cache-status")).toBe("MISS");
		expect(miss.headers.get("x-steadytext-tokens-saved")).toBe("0");
		const usage = (await miss.json<{ usage: { prompt_tokens: number; completion_tokens: number } }>()).usage;

		const hit = await call("/v1/generate", { body, key });
		expect(hit.headers.get("x-cache")).toBe("HIT");
		expect(hit.headers.get("cf-aig-cache-status")).toBe("HIT");
		expect(hit.headers.get("x-steadytext-tokens-saved")).toBe(String(usage.prompt_tokens + usage.completion_tokens));
		// A streamed hit saved the same work.
		const streamed = await call("/v1/generate", { body: { ...body, stream: true }, key });
		expect(streamed.headers.get("cf-aig-cache-status")).toBe("HIT");
		expect(streamed.headers.get("x-steadytext-tokens-saved")).toBe(String(usage.prompt_tokens + usage.completion_tokens));
	});

	it("counts an embedding hit's prompt tokens, and says MISS for a bypass (AI Gateway knows no BYPASS)", async () => {
		const body = { model: "gemma3-270m", input: uniquePrompt("embedding") };
		await call("/v1/embeddings", { body, key });
		const hit = await call("/v1/embeddings", { body, key });
		expect(hit.headers.get("cf-aig-cache-status")).toBe("HIT");
		expect(hit.headers.get("x-steadytext-tokens-saved")).toBe("3"); // the fake origin's usage.prompt_tokens
		const bypass = await call("/v1/embeddings", { body, key, headers: { "cache-control": "no-store" } });
		expect(bypass.headers.get("x-cache")).toBe("BYPASS");
		expect(bypass.headers.get("cf-aig-cache-status")).toBe("MISS");
		expect(bypass.headers.get("x-steadytext-tokens-saved")).toBe("0");
	});
});

describe("cf-aig-skip-cache", () => {
	it("true behaves exactly like Cache-Control: no-cache: skips the read, stores the fresh answer", async () => {
		const body = { prompt: uniquePrompt("skip") };
		await call("/v1/generate", { body, key });
		const skipped = await call("/v1/generate", { body, key, headers: { "cf-aig-skip-cache": "true" } });
		expect(skipped.headers.get("x-cache")).toBe("BYPASS");
		expect(generations()).toBe(2);
		const fresh = await call("/v1/generate", {
			body: { prompt: uniquePrompt("skip-stores") },
			key,
			headers: { "cf-aig-skip-cache": "TRUE" },
		});
		expect(fresh.headers.get("x-cache")).toBe("BYPASS");
		expect(await env.CACHE.get(fresh.headers.get("x-cache-key")!)).not.toBeNull();
	});

	it("false changes nothing", async () => {
		const body = { prompt: uniquePrompt("skip-false") };
		await call("/v1/generate", { body, key });
		expect((await call("/v1/generate", { body, key, headers: { "cf-aig-skip-cache": "false" } })).headers.get("x-cache")).toBe("HIT");
	});

	it.each(["yes", "1", ""])("refuses %j with a 400 naming the header, before the origin", async (value) => {
		const response = await call("/v1/generate", {
			body: { prompt: uniquePrompt("skip-bad") },
			key,
			headers: { "cf-aig-skip-cache": value },
		});
		expect(response.status).toBe(400);
		const { error } = await response.json<ErrorBody>();
		expect(error).toMatchObject({ type: "invalid_request", field: "cf-aig-skip-cache" });
		expect(error.message).toBe("cf-aig-skip-cache: must be true or false");
		expect(generations()).toBe(0);
	});
});

describe("cf-aig-cache-ttl", () => {
	it("gives the stored answer a fixed life in KV and D1 that hits never extend", async () => {
		const body = { prompt: uniquePrompt("ttl") };
		const before = nowS();
		const stored = await call("/v1/generate", { body, key, headers: { "cf-aig-cache-ttl": "120" } });
		const cacheKey = stored.headers.get("x-cache-key")!;
		const row = (await d1Row(cacheKey))!;
		expect(row.fixed_ttl_seconds).toBe(120);
		expect(row.expires_at - row.created_at).toBe(120);
		const [kv] = (await env.CACHE.list({ prefix: cacheKey })).keys;
		expect(kv.expiration!).toBeGreaterThanOrEqual(before + 120 - 1);
		expect(kv.expiration!).toBeLessThanOrEqual(nowS() + 120 + 1);

		// Hits from D1 (KV copy gone) move neither the expiry nor, on promotion, past it.
		await env.CACHE.delete(cacheKey);
		for (let hit = 0; hit < 3; hit++) expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("HIT");
		expect((await d1Row(cacheKey))!.expires_at).toBe(row.expires_at);
		const [promoted] = (await env.CACHE.list({ prefix: cacheKey })).keys;
		expect(promoted.expiration!).toBeLessThanOrEqual(row.expires_at + 1);
		expect(generations()).toBe(1);
	});

	it("is never served past its life, whatever a tier still holds", async () => {
		const body = { prompt: uniquePrompt("ttl-over") };
		const cacheKey = (await call("/v1/generate", { body, key, headers: { "cf-aig-cache-ttl": "60" } })).headers.get("x-cache-key")!;
		// As the entries look once the minute is over and before KV and the cron have dropped them.
		const { value, metadata } = await env.CACHE.getWithMetadata<Record<string, unknown>>(cacheKey, "text");
		expect(metadata).toMatchObject({ expiresAt: expect.any(Number) });
		await env.CACHE.put(cacheKey, value!, { metadata: { ...metadata, expiresAt: nowS() - 1 } });
		await env.DB.prepare("UPDATE answer_cache SET created_at = created_at - 61, expires_at = expires_at - 61 WHERE cache_key = ?")
			.bind(cacheKey)
			.run();
		// (A MISS: the origin's answer may still come from the Coalescer's few seconds of memory.)
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
	});

	it("is never served past a lowered CACHE_MAX_AGE_SECONDS, from KV either (day 400 of a long TTL)", async () => {
		const body = { prompt: uniquePrompt("ttl-max-age") };
		const cacheKey = (await call("/v1/generate", { body, key, headers: { "cf-aig-cache-ttl": "7200" } })).headers.get("x-cache-key")!;
		// Two hours later, as KV and D1 hold it (KV's copy is good for its whole TTL), the maximum age is one hour.
		const { value, metadata } = await env.CACHE.getWithMetadata<Record<string, unknown>>(cacheKey, "text");
		expect(metadata).toMatchObject({ storedAt: expect.any(Number) });
		await env.CACHE.put(cacheKey, value!, { metadata: { ...metadata, storedAt: (metadata!.storedAt as number) - 7200 } });
		await env.DB.prepare("UPDATE answer_cache SET created_at = created_at - 7200 WHERE cache_key = ?").bind(cacheKey).run();
		const lowered = { CACHE_MAX_AGE_SECONDS: "3600", CACHE_TTL_SECONDS: "3600" };
		expect((await call("/v1/generate", { body, key, env: lowered })).headers.get("x-cache")).toBe("MISS");
	});

	it("never lets the isolate's memory tier outlive a fixed life", () => {
		const entry = { body: "{}", contentType: "application/json", fingerprint: "f", pieces: null };
		remember("fixed-over", { ...entry, expiresAt: nowS() - 1 }, 8);
		remember("fixed-running", { ...entry, expiresAt: nowS() + 60 }, 8);
		remember("sliding", { ...entry, expiresAt: null }, 8);
		expect(recall("fixed-over", 8)).toBeNull();
		expect(recall("fixed-running", 8)).not.toBeNull();
		expect(recall("sliding", 8)).not.toBeNull();
	});

	it("leaves the sliding TTL to answers stored without it", async () => {
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("ttl-none") }, key });
		const row = (await d1Row(response.headers.get("x-cache-key")!))!;
		expect(row.fixed_ttl_seconds).toBeNull();
		expect(row.expires_at - row.created_at).toBe(Number(env.CACHE_TTL_SECONDS));
	});

	it("accepts both bounds", async () => {
		for (const ttl of [env.CACHE_TTL_MIN_SECONDS, env.CACHE_MAX_AGE_SECONDS]) {
			const response = await call("/v1/generate", {
				body: { prompt: uniquePrompt("ttl-bound") },
				key,
				headers: { "cf-aig-cache-ttl": ttl },
			});
			expect(response.status).toBe(200);
			expect((await d1Row(response.headers.get("x-cache-key")!))!.fixed_ttl_seconds).toBe(Number(ttl));
		}
	});

	it.each(["59", String(604800 + 1), "abc", "1.5", "-60", "60s", "", "99999999999999999999"])(
		"refuses %j with a 400 naming the header and its bounds, before the origin",
		async (value) => {
			const response = await call("/v1/generate", {
				body: { prompt: uniquePrompt("ttl-bad") },
				key,
				headers: { "cf-aig-cache-ttl": value },
			});
			expect(response.status).toBe(400);
			const { error } = await response.json<ErrorBody>();
			expect(error).toMatchObject({ type: "invalid_request", field: "cf-aig-cache-ttl" });
			expect(error.message).toBe(
				`cf-aig-cache-ttl: must be an integer number of seconds from 60 (CACHE_TTL_MIN_SECONDS) to ${maxAge()} (CACHE_MAX_AGE_SECONDS)`,
			);
			expect(generations()).toBe(0);
		},
	);

	it("follows CACHE_TTL_MIN_SECONDS, which may be neither below KV's 60 s nor above the maximum age", async () => {
		const body = { prompt: uniquePrompt("ttl-min") };
		const raised = await call("/v1/generate", { body, key, headers: { "cf-aig-cache-ttl": "120" }, env: { CACHE_TTL_MIN_SECONDS: "300" } });
		expect((await raised.json<ErrorBody>()).error.message).toContain("from 300 (CACHE_TTL_MIN_SECONDS)");
		for (const bad of ["59", String(maxAge() + 1)]) {
			const response = await call("/v1/generate", { body, key, env: { CACHE_TTL_MIN_SECONDS: bad } });
			expect(response.status).toBe(500);
			expect((await response.json<ErrorBody>()).error).toMatchObject({ type: "configuration_error" });
		}
	});
});

describe("cf-aig-cache-key", () => {
	const named = (name: string) => ({ "cf-aig-cache-key": name });

	it("two keys using the same name never share an entry", async () => {
		const other = await createKey();
		const body = { prompt: uniquePrompt("namespace") };
		const mine = await call("/v1/generate", { body, key, headers: named("shared-name") });
		const theirs = await call("/v1/generate", { body, key: other, headers: named("shared-name") });
		expect(mine.headers.get("x-cache")).toBe("MISS");
		expect(theirs.headers.get("x-cache")).toBe("MISS");
		expect(theirs.headers.get("x-cache-key")).not.toBe(mine.headers.get("x-cache-key"));
		expect(generations()).toBe(2);
		// Each finds its own entry again.
		expect((await call("/v1/generate", { body, key, headers: named("shared-name") })).headers.get("x-cache-key")).toBe(
			mine.headers.get("x-cache-key"),
		);
		expect((await call("/v1/generate", { body, key: other, headers: named("shared-name") })).headers.get("x-cache")).toBe("HIT");
		expect(generations()).toBe(2);
	});

	it("follows a key through rotation: the replacement finds its predecessor's namespace", async () => {
		const body = { prompt: uniquePrompt("namespace-rotated") };
		const old = await createKey();
		const stored = await call("/v1/generate", { body, key: old, headers: named("rotating") });
		const replacement = await createKey({ policy: { budget_key_id: await keyIdOf(old) } });
		const found = await call("/v1/generate", { body, key: replacement, headers: named("rotating") });
		expect(found.headers.get("x-cache")).toBe("HIT");
		expect(found.headers.get("x-cache-key")).toBe(stored.headers.get("x-cache-key"));
		expect(generations()).toBe(1);
	});

	it("keeps a namespace apart from the shared cache and from the key's other namespaces", async () => {
		const body = { prompt: uniquePrompt("namespace-apart") };
		await call("/v1/generate", { body, key });
		expect((await call("/v1/generate", { body, key, headers: named("team-a") })).headers.get("x-cache")).toBe("MISS");
		expect((await call("/v1/generate", { body, key, headers: named("team-b") })).headers.get("x-cache")).toBe("MISS");
		expect((await call("/v1/generate", { body, key, headers: named("team-a") })).headers.get("x-cache")).toBe("HIT");
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("HIT");
		expect(generations()).toBe(3);
	});

	it("never answers one prompt with another's answer, whatever the name (unlike AI Gateway's key override)", async () => {
		const first = await call("/v1/generate", { body: { prompt: uniquePrompt("one") }, key, headers: named("same") });
		const second = await call("/v1/generate", { body: { prompt: uniquePrompt("two") }, key, headers: named("same") });
		expect(second.headers.get("x-cache")).toBe("MISS");
		expect(await second.text()).not.toBe(await first.text());
	});

	it.each([
		["too long", "n".repeat(129)],
		["a space", "team a"],
		["a slash", "team/a"],
		["non-ASCII", "équipe"],
		["empty", ""],
	])("refuses a name with %s with a 400 naming the header, never echoing it", async (_label, name) => {
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("namespace-bad") }, key, headers: named(name) });
		expect(response.status).toBe(400);
		const { error } = await response.json<ErrorBody>();
		expect(error).toMatchObject({ type: "invalid_request", field: "cf-aig-cache-key" });
		expect(error.message).toMatch(
			/^cf-aig-cache-key: must be 1 to 128 characters of letters, digits and \. _ : ~ - \(got \d+ characters\)$/,
		);
		if (name.length > 0) expect(error.message).not.toContain(name);
		expect(generations()).toBe(0);
	});

	it("accepts the longest name and every allowed character", async () => {
		for (const name of ["n".repeat(128), "Team_a.b:c~d-e"]) {
			expect((await call("/v1/generate", { body: { prompt: uniquePrompt("namespace-ok") }, key, headers: named(name) })).status).toBe(200);
		}
	});
});
