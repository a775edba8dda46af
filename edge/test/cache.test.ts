// Cache tiers: KV hit, D1 hit + promotion, TTL, hard maximum age and eviction, answers too large for a
// tier, bypass, byte-identical replay, streams, fingerprint changes, and failing cache writes that never
// fail the request.
import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../src/index";
import { D1_MAX_ROW_BYTES, evictExpired, KV_MAX_VALUE_BYTES, PROMOTE_AFTER_HITS } from "../src/cache/tiers";
import { cacheKey, canonicalJson } from "../src/cache/cachekey";
import { FINGERPRINT, type FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

const generations = () => origin.callsTo("/v1/generate").length;

describe("cache key", () => {
	it("is canonical: object key order does not matter, values do", async () => {
		expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
		const a = await cacheKey("generate", "/v1/generate", { prompt: "x", seed: 1 }, FINGERPRINT);
		const b = await cacheKey("generate", "/v1/generate", { seed: 1, prompt: "x" }, FINGERPRINT);
		expect(a).toBe(b);
		expect(a).toMatch(/^gen:v1:[0-9a-f]{64}$/);
		expect(await cacheKey("generate", "/v1/generate", { prompt: "x", seed: 2 }, FINGERPRINT)).not.toBe(a);
		expect(await cacheKey("generate", "/v1/generate", { prompt: "x", seed: 1 }, "ffff0000ffff0000")).not.toBe(a);
		expect(await cacheKey("generate", "/v1/completions", { prompt: "x", seed: 1 }, FINGERPRINT)).not.toBe(a);
	});

	it("covers every output-affecting parameter", async () => {
		const prompt = uniquePrompt("params");
		const variants = [{ prompt }, { prompt, max_tokens: 9 }, { prompt, seed: 3 }, { prompt, stop: ["\n"] }, { prompt, stop: "\n" }];
		for (const body of variants) expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
		for (const body of variants) expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("HIT");
		expect(generations()).toBe(variants.length);
	});

	it("never shares a key between requests that differ in one sampling field", async () => {
		const base = { model: "m", prompt: uniquePrompt("sampling"), max_tokens: 16, seed: 1, temperature: 0.7 };
		const differences: Record<string, unknown>[] = [
			{},
			{ seed: 2 },
			{ temperature: 0.8 },
			{ top_p: 0.9 },
			{ top_k: 40 },
			{ min_p: 0.1 },
			{ repeat_penalty: 1.1 },
			{ presence_penalty: 0.5 },
			{ frequency_penalty: 0.5 },
			{ n: 2 },
			{ logprobs: 0 },
			{ logprobs: 2 },
		];
		const keys = new Set<string>();
		for (const difference of differences) {
			const response = await call("/v1/completions", { body: { ...base, ...difference }, key });
			expect(response.headers.get("x-cache")).toBe("MISS");
			keys.add(response.headers.get("x-cache-key")!);
		}
		expect(keys.size).toBe(differences.length);
		const chat = { model: "m", messages: [{ role: "user", content: uniquePrompt("sampling chat") }], max_tokens: 16 };
		const chatKeys = new Set<string>();
		for (const difference of [{}, { logprobs: true }, { logprobs: true, top_logprobs: 2 }, { n: 3 }]) {
			chatKeys.add((await call("/v1/chat/completions", { body: { ...chat, ...difference }, key })).headers.get("x-cache-key")!);
		}
		expect(chatKeys.size).toBe(4);
	});

	it("is shared by a route and its alias, and by requests that differ only in key order", async () => {
		const prompt = uniquePrompt("alias");
		await call("/v1/generate", { body: { prompt, seed: 5 }, key });
		const alias = await call("/generate", {
			rawBody: `{"seed":5,"prompt":${JSON.stringify(prompt)}}`,
			headers: { "content-type": "application/json" },
			key,
		});
		expect(alias.headers.get("x-cache")).toBe("HIT");
		expect(generations()).toBe(1);
	});
});

describe("tiers", () => {
	it("replays a hit byte for byte, from KV, with X-Cache and the model fingerprint", async () => {
		const body = { prompt: uniquePrompt("bytes") };
		const fresh = await call("/v1/generate", { body, key });
		const freshBytes = new Uint8Array(await fresh.arrayBuffer());
		const hit = await call("/v1/generate", { body, key });
		expect(hit.headers.get("x-cache")).toBe("HIT");
		expect(hit.headers.get("x-cache-tier")).toBe("kv");
		expect(hit.headers.get("x-model-fingerprint")).toBe(FINGERPRINT);
		expect(hit.headers.get("content-type")).toBe(fresh.headers.get("content-type"));
		expect(new Uint8Array(await hit.arrayBuffer())).toEqual(freshBytes);
		expect(generations()).toBe(1);
	});

	it("falls back to D1, counts accesses and promotes a frequently read row back into KV", async () => {
		const body = { prompt: uniquePrompt("d1") };
		const fresh = await (await call("/v1/generate", { body, key })).text();
		const cacheKeyHeader = (await call("/v1/generate", { body, key })).headers.get("x-cache-key")!;
		await env.CACHE.delete(cacheKeyHeader);
		for (let hit = 1; hit <= PROMOTE_AFTER_HITS; hit++) {
			const response = await call("/v1/generate", { body, key });
			expect(response.headers.get("x-cache-tier")).toBe("d1");
			expect(await response.text()).toBe(fresh);
			const row = await env.DB.prepare("SELECT access_count FROM answer_cache WHERE cache_key = ?")
				.bind(cacheKeyHeader)
				.first<{ access_count: number }>();
			expect(row?.access_count).toBe(hit);
			// A generation answer's KV value is its piece lengths on a first line, then the body as sent.
			const promoted = await env.CACHE.get(cacheKeyHeader);
			expect(promoted && promoted.slice(promoted.indexOf("\n") + 1)).toBe(hit >= PROMOTE_AFTER_HITS ? fresh : null);
		}
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache-tier")).toBe("kv");
		expect(generations()).toBe(1);
	});

	it("serves repeated hits from the isolate's memory tier, even after the KV entry is gone", async () => {
		const memory = { MEMORY_CACHE_ENTRIES: "8" };
		const body = { prompt: uniquePrompt("memory") };
		const fresh = await call("/v1/generate", { body, key, env: memory });
		const freshText = await fresh.text();
		await env.CACHE.delete(fresh.headers.get("x-cache-key")!);
		const hit = await call("/v1/generate", { body, key, env: memory });
		expect(hit.headers.get("x-cache-tier")).toBe("memory");
		expect(await hit.text()).toBe(freshText);
		// With the tier off, the same isolate falls through to D1.
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache-tier")).toBe("d1");
		expect(generations()).toBe(1);
	});

	it("bounds the memory tier to its capacity, evicting the least recently used", async () => {
		const memory = { MEMORY_CACHE_ENTRIES: "2" };
		const bodies = ["one", "two", "three", "four"].map((n) => ({ prompt: uniquePrompt(`lru ${n}`) }));
		const tier = async (body: object) => (await call("/v1/generate", { body, key, env: memory })).headers.get("x-cache-tier");
		for (const body of bodies.slice(0, 3)) expect(await tier(body)).toBeNull(); // fresh, remembered
		expect(await tier(bodies[0])).toBe("kv");
		expect(await tier(bodies[2])).toBe("memory");
		// The memory holds the first (written last) and the third (read last). A new answer drops the
		// first: it was written after the third but read before it. An eviction by write order would
		// drop the third instead.
		expect(await tier(bodies[3])).toBeNull();
		expect(await tier(bodies[2])).toBe("memory");
		expect(await tier(bodies[0])).toBe("kv");
	});

	it("writes both tiers with the configured TTL, and no prompt text to D1", async () => {
		const prompt = uniquePrompt("rows");
		const response = await call("/v1/embed", { body: { input: prompt }, key });
		const cacheKeyHeader = response.headers.get("x-cache-key")!;
		expect(cacheKeyHeader).toMatch(/^emb:v1:/);
		const row = await env.DB.prepare("SELECT * FROM answer_cache WHERE cache_key = ?").bind(cacheKeyHeader).first<Record<string, any>>();
		expect(Object.keys(row!).sort()).toEqual([
			"access_count",
			"accessed_at",
			"body",
			"cache_key",
			"content_type",
			"created_at",
			"expires_at",
			"fingerprint",
			"fixed_ttl_seconds",
			"pieces",
			"route",
		]);
		expect(row).toMatchObject({ route: "/v1/embed", fingerprint: FINGERPRINT, access_count: 0, pieces: null, fixed_ttl_seconds: null });
		expect(JSON.stringify(row)).not.toContain(prompt.split(" ")[1]);
		expect(row!.expires_at - row!.created_at).toBe(Number(env.CACHE_TTL_SECONDS));
		const listed = await env.CACHE.list({ prefix: cacheKeyHeader });
		expect(listed.keys[0].expiration! - row!.created_at).toBeGreaterThanOrEqual(Number(env.CACHE_TTL_SECONDS) - 2);
	});

	it("never serves an expired D1 row, and the cron evicts it", async () => {
		const body = { prompt: uniquePrompt("expired") };
		const keep = { prompt: uniquePrompt("fresh") };
		const cacheKeyHeader = (await call("/v1/generate", { body, key })).headers.get("x-cache-key")!;
		await call("/v1/generate", { body: keep, key });
		await env.CACHE.delete(cacheKeyHeader);
		await env.DB.prepare("UPDATE answer_cache SET expires_at = 1 WHERE cache_key = ?").bind(cacheKeyHeader).run();
		expect((await call("/v1/generate", { body, key, headers: { "cache-control": "no-store" } })).headers.get("x-cache")).toBe("BYPASS");
		await env.DB.prepare("UPDATE answer_cache SET expires_at = 1 WHERE cache_key = ?").bind(cacheKeyHeader).run();
		await worker.scheduled(createScheduledController({ cron: "*/15 * * * *" }), env);
		const keys = (await env.DB.prepare("SELECT cache_key FROM answer_cache").all<{ cache_key: string }>()).results.map((r) => r.cache_key);
		expect(keys).toContain(await cacheKey("generate", "/v1/generate", keep, FINGERPRINT));
		expect(keys).not.toContain(cacheKeyHeader);
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
	});
});

describe("bypass", () => {
	it("Cache-Control: no-cache skips the read but stores the fresh answer", async () => {
		const body = { prompt: uniquePrompt("no-cache") };
		await call("/v1/generate", { body, key });
		const bypass = await call("/v1/generate", { body, key, headers: { "cache-control": "no-cache" } });
		expect(bypass.headers.get("x-cache")).toBe("BYPASS");
		expect(generations()).toBe(2);
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("HIT");
	});

	it("Cache-Control: no-store neither reads nor writes", async () => {
		const body = { prompt: uniquePrompt("no-store") };
		const response = await call("/v1/generate", { body, key, headers: { "cache-control": "no-store" } });
		expect(response.headers.get("x-cache")).toBe("BYPASS");
		expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).toBeNull();
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
	});
});

describe("streaming", () => {
	it("passes a streaming miss through untouched, stores it, and replays its exact bytes", async () => {
		const body = { prompt: uniquePrompt("stream-miss"), stream: true };
		const response = await call("/v1/generate", { body, key });
		expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
		expect(response.headers.get("x-cache")).toBe("MISS");
		const live = await response.text();
		expect(live.trim().split("\n\n").length).toBeGreaterThan(3); // one event per piece, then done
		// Stored (write-behind) as the stream's last byte goes out.
		await vi.waitFor(async () => expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).not.toBeNull());
		const replay = await call("/v1/generate", { body, key });
		expect(replay.headers.get("x-cache")).toBe("HIT");
		expect(await replay.text()).toBe(live);
		expect(generations()).toBe(1);
	});

	it("replays a cached answer as the runtime's server-sent events", async () => {
		const prompt = uniquePrompt("stream-hit");
		const fresh = await (await call("/v1/generate", { body: { prompt }, key })).json<Record<string, any>>();
		const response = await call("/v1/generate", { body: { prompt, stream: true }, key });
		expect(response.headers.get("x-cache")).toBe("HIT");
		expect(response.headers.get("content-type")).toContain("text/event-stream");
		const events = (await response.text())
			.trim()
			.split("\n\n")
			.map((line) => JSON.parse(line.replace(/^data: /, "")));
		expect(
			events
				.filter((e) => "token" in e)
				.map((e) => e.token)
				.join(""),
		).toBe(fresh.text);
		expect(events.at(-1)).toEqual({
			done: true,
			text: fresh.text,
			finish_reason: fresh.finish_reason,
			usage: fresh.usage,
			model: fresh.model,
			fingerprint: fresh.fingerprint,
		});
		expect(generations()).toBe(1);
	});

	it.each(["/v1/completions", "/v1/chat/completions"])("replays %s hits as OpenAI chunks ending in [DONE]", async (path) => {
		const body =
			path === "/v1/completions"
				? { model: "gemma3-270m", prompt: uniquePrompt("oa") }
				: { model: "gemma3-270m", messages: [{ role: "user", content: uniquePrompt("oa") }] };
		const fresh = await (await call(path, { body, key })).json<Record<string, any>>();
		const text = await (await call(path, { body: { ...body, stream: true }, key })).text();
		const chunks = text
			.trim()
			.split("\n\n")
			.map((line) => line.replace(/^data: /, ""));
		expect(chunks.at(-1)).toBe("[DONE]");
		const parsed = chunks.slice(0, -1).map((chunk) => JSON.parse(chunk));
		const content = parsed.map((c) => c.choices[0].text ?? c.choices[0].delta?.content ?? "").join("");
		expect(content).toBe(fresh.choices[0].text ?? fresh.choices[0].message.content);
		expect(parsed.at(-1).choices[0].finish_reason).toBe(fresh.choices[0].finish_reason);
		expect(parsed[0].object).toBe(path === "/v1/completions" ? "text_completion" : "chat.completion.chunk");
	});
});

describe("model fingerprint", () => {
	it("files an answer from a new model under the new fingerprint's key, not the stale one", async () => {
		const body = { prompt: uniquePrompt("upgrade") };
		await call("/v1/generate", { body: { prompt: uniquePrompt("warm") }, key });
		const staleKey = await cacheKey("generate", "/v1/generate", body, FINGERPRINT);
		origin.fingerprint = "fedcba9876543210fedcba9876543210";
		const response = await call("/v1/generate", { body, key });
		expect(response.headers.get("x-model-fingerprint")).toBe(origin.fingerprint);
		expect(await env.CACHE.get(staleKey)).toBeNull();
		const freshKey = await cacheKey("generate", "/v1/generate", body, origin.fingerprint);
		expect(await env.CACHE.get(freshKey)).not.toBeNull();
		const again = await call("/v1/generate", { body, key });
		expect(again.headers.get("x-cache")).toBe("HIT");
		expect(again.headers.get("x-cache-key")).toBe(freshKey);
	});

	it("uses MODEL_FINGERPRINT when it is pinned, without asking the origin", async () => {
		const pinned = "abcdef0123456789abcdef0123456789";
		const body = { prompt: uniquePrompt("pinned") };
		const response = await call("/v1/generate", { body, key, env: { MODEL_FINGERPRINT: pinned, ORIGIN_URL: "http://pinned-origin.test" } });
		expect(response.headers.get("x-cache-key")).toBe(await cacheKey("generate", "/v1/generate", body, pinned));
		expect(origin.callsTo("/v1/status", "pinned-origin.test")).toHaveLength(0);
	});
});

describe("failing cache writes", () => {
	/** Reads go to the real bindings; every write throws (synchronously or as a rejected promise). */
	function writesFail(mode: "throw" | "reject"): Partial<Env> {
		const fail = () => {
			if (mode === "throw") throw new Error("storage write failed");
			return Promise.reject(new Error("storage write failed"));
		};
		const bound = (target: object, prop: string | symbol) => {
			const value = Reflect.get(target, prop);
			return typeof value === "function" ? value.bind(target) : value;
		};
		const kv = new Proxy(env.CACHE, { get: (target, prop) => (prop === "put" || prop === "delete" ? fail : bound(target, prop)) });
		const db = new Proxy(env.DB, {
			get: (target, prop) => {
				if (prop === "batch") return fail;
				if (prop !== "prepare") return bound(target, prop);
				return (sql: string) => (/^\s*(INSERT|UPDATE|DELETE)/i.test(sql) ? { bind: () => ({ run: fail }) } : target.prepare(sql));
			},
		});
		return { CACHE: kv, DB: db };
	}

	it.each(["throw", "reject"] as const)("answers 200 with the fresh answer when every cache and metrics write fails (%s)", async (mode) => {
		const body = { prompt: uniquePrompt("broken") };
		const response = await call("/v1/generate", { body, key, env: writesFail(mode) });
		expect(response.status).toBe(200);
		expect(response.headers.get("x-cache")).toBe("MISS");
		expect((await response.json<{ text: string }>()).text).toBe(origin.generatedText(body));
		expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).toBeNull();
		expect(
			await env.DB.prepare("SELECT 1 FROM answer_cache WHERE cache_key = ?").bind(response.headers.get("x-cache-key")).first(),
		).toBeNull();
	});
});

describe("hard maximum age", () => {
	const maxAge = () => Number(env.CACHE_MAX_AGE_SECONDS);
	const ttl = () => Number(env.CACHE_TTL_SECONDS);
	const nowS = () => Math.floor(Date.now() / 1000);
	const row = (cacheKeyHeader: string) =>
		env.DB.prepare("SELECT created_at, expires_at FROM answer_cache WHERE cache_key = ?")
			.bind(cacheKeyHeader)
			.first<{ created_at: number; expires_at: number }>();

	/** An answer stored in D1 only (its KV copy gone), so the next request reads the D1 tier. */
	async function inD1Only(label: string) {
		const body = { prompt: uniquePrompt(label) };
		const cacheKeyHeader = (await call("/v1/generate", { body, key })).headers.get("x-cache-key")!;
		await env.CACHE.delete(cacheKeyHeader);
		return { body, cacheKeyHeader };
	}

	it("lets a hit extend the expiry by the TTL, but never past created_at + CACHE_MAX_AGE_SECONDS", async () => {
		const young = await inD1Only("young");
		const before = nowS();
		expect((await call("/v1/generate", { body: young.body, key })).headers.get("x-cache-tier")).toBe("d1");
		expect((await row(young.cacheKeyHeader))!.expires_at).toBeGreaterThanOrEqual(before + ttl());

		const old = await inD1Only("old");
		const createdAt = nowS() - maxAge() + 100; // 100 s of its maximum age left, far less than a TTL
		await env.DB.prepare("UPDATE answer_cache SET created_at = ? WHERE cache_key = ?").bind(createdAt, old.cacheKeyHeader).run();
		for (let hit = 1; hit <= PROMOTE_AFTER_HITS; hit++) {
			expect((await call("/v1/generate", { body: old.body, key })).headers.get("x-cache-tier")).toBe("d1");
			expect((await row(old.cacheKeyHeader))!.expires_at).toBe(createdAt + maxAge());
		}
		// Promoted into KV for its remaining life only.
		const [promoted] = (await env.CACHE.list({ prefix: old.cacheKeyHeader })).keys;
		expect(promoted.expiration).toBeLessThanOrEqual(createdAt + maxAge() + 1);
	});

	it("never serves an answer past its maximum age, whatever its expiry says, and the cron evicts it", async () => {
		// As a row stored while CACHE_MAX_AGE_SECONDS was larger looks.
		const { body, cacheKeyHeader } = await inD1Only("too-old");
		const makeOld = () =>
			env.DB.prepare("UPDATE answer_cache SET created_at = ?, expires_at = ? WHERE cache_key = ?")
				.bind(nowS() - maxAge() - 1, nowS() + 3600, cacheKeyHeader)
				.run();
		await makeOld();
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
		await env.CACHE.delete(cacheKeyHeader);
		await makeOld();
		await worker.scheduled(createScheduledController({ cron: "*/15 * * * *" }), env);
		expect(await row(cacheKeyHeader)).toBeNull();
	});

	it("refuses a maximum age below the TTL, naming both vars", async () => {
		const response = await call("/v1/generate", {
			body: { prompt: "x" },
			key,
			env: { CACHE_MAX_AGE_SECONDS: "3600", CACHE_TTL_SECONDS: "7200" },
		});
		expect(response.status).toBe(500);
		const { error } = await response.json<{ error: { type: string; message: string } }>();
		expect(error.type).toBe("configuration_error");
		expect(error.message).toBe("CACHE_MAX_AGE_SECONDS (3600) must be >= CACHE_TTL_SECONDS (7200)");
	});
});

describe("eviction", () => {
	it("deletes expired and too-old rows in bounded chunks, leaving a backlog to the next run", async () => {
		const now = Math.floor(Date.now() / 1000);
		const maxAge = Number(env.CACHE_MAX_AGE_SECONDS);
		await evictExpired(env.DB, maxAge, now); // whatever earlier tests left expired
		const insert = env.DB.prepare(
			"INSERT INTO answer_cache (cache_key, route, fingerprint, body, content_type, created_at, accessed_at, expires_at) VALUES (?, '/v1/generate', ?, '{}', 'application/json', ?, ?, ?)",
		);
		const prefix = `gen:v1:evict-${crypto.randomUUID()}`;
		await env.DB.batch([
			...[0, 1, 2, 3].map((i) => insert.bind(`${prefix}-expired-${i}`, FINGERPRINT, now - 10, now - 10, now - 1)),
			...[0, 1, 2].map((i) => insert.bind(`${prefix}-too-old-${i}`, FINGERPRINT, now - maxAge, now, now + 600)),
			insert.bind(`${prefix}-fresh`, FINGERPRINT, now, now, now + 600),
		]);
		const limits = { chunkRows: 3, maxChunks: 2 };
		expect(await evictExpired(env.DB, maxAge, now, limits)).toBe(6);
		expect(await evictExpired(env.DB, maxAge, now, limits)).toBe(1);
		expect(await evictExpired(env.DB, maxAge, now, limits)).toBe(0);
		const left = await env.DB.prepare("SELECT cache_key FROM answer_cache WHERE cache_key LIKE ?")
			.bind(`${prefix}%`)
			.all<{ cache_key: string }>();
		expect(left.results.map((r) => r.cache_key)).toEqual([`${prefix}-fresh`]);
	});
});

describe("answers too large for a tier", () => {
	const skipped = async (tier: string) =>
		(
			await env.DB.prepare("SELECT value FROM metric_counters WHERE name = 'steadytext_edge_cache_writes_skipped_total' AND labels = ?")
				.bind(canonicalJson({ tier }))
				.first<{ value: number }>()
		)?.value ?? 0;
	const cacheErrors = (spy: { mock: { calls: unknown[][] } }) => spy.mock.calls.filter((args) => String(args[0]).startsWith("cache:"));

	it("skips D1 for an answer over its row limit, counts it, never logs a failed write, and serves it from KV", async () => {
		const errors = vi.spyOn(console, "error");
		const before = await skipped("d1");
		origin.embeddingDim = 250_000; // ~2.3 MB pretty-printed, like a large batch of real embeddings
		const body = { input: uniquePrompt("huge") };
		const fresh = await call("/v1/embed", { body, key });
		expect(fresh.headers.get("x-cache")).toBe("MISS");
		const text = await fresh.text();
		expect(new TextEncoder().encode(text).byteLength).toBeGreaterThan(D1_MAX_ROW_BYTES);
		const cacheKeyHeader = fresh.headers.get("x-cache-key")!;
		expect(await env.DB.prepare("SELECT 1 FROM answer_cache WHERE cache_key = ?").bind(cacheKeyHeader).first()).toBeNull();
		expect(await skipped("d1")).toBe(before + 1);
		expect(cacheErrors(errors)).toEqual([]);

		const hit = await call("/v1/embed", { body, key });
		expect([hit.headers.get("x-cache"), hit.headers.get("x-cache-tier")]).toEqual(["HIT", "kv"]);
		expect(await hit.text()).toBe(text);
		expect(origin.callsTo("/v1/embed")).toHaveLength(1);
		const exposition = await (await call("/metrics", { key: "test-metrics-token" })).text();
		expect(exposition).toContain(`steadytext_edge_cache_writes_skipped_total{tier="d1"} ${before + 1}`);
	});

	it("skips KV as well for an answer over KV's value limit, and answers it all the same", async () => {
		const errors = vi.spyOn(console, "error");
		const before = { kv: await skipped("kv"), d1: await skipped("d1") };
		origin.embeddingDim = 3_000_000; // ~28 MB pretty-printed
		const body = { input: uniquePrompt("enormous") };
		const fresh = await call("/v1/embed", { body, key });
		expect([fresh.status, fresh.headers.get("x-cache")]).toEqual([200, "MISS"]);
		expect((await fresh.arrayBuffer()).byteLength).toBeGreaterThan(KV_MAX_VALUE_BYTES);
		expect(await env.CACHE.get(fresh.headers.get("x-cache-key")!)).toBeNull();
		expect({ kv: await skipped("kv"), d1: await skipped("d1") }).toEqual({ kv: before.kv + 1, d1: before.d1 + 1 });
		expect(cacheErrors(errors)).toEqual([]);
	});

	it("still stores an answer just under the limit in D1", async () => {
		const errors = vi.spyOn(console, "error");
		origin.embeddingDim = 170_000; // ~1.6 MB
		const fresh = await call("/v1/embed", { body: { input: uniquePrompt("large") }, key });
		const text = await fresh.text();
		const row = await env.DB.prepare("SELECT body FROM answer_cache WHERE cache_key = ?")
			.bind(fresh.headers.get("x-cache-key"))
			.first<{ body: string }>();
		expect(row?.body).toBe(text);
		expect(cacheErrors(errors)).toEqual([]);
	});
});
