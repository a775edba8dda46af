// Per-key capacity: leases from the KeyLimiter Durable Object bound a key's concurrent origin work and
// its cost in flight; cache hits and joiners of another request's origin call take none; every way a
// request can end gives its lease back, and a lease nobody gives back expires. Origin calls are held
// open with a gate, so "in flight" is a fact the test controls, never a matter of timing.
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { demandOf, type Demand } from "../src/origin/capacity";
import { coalescedAnswer } from "../src/origin/coalesce";
import { installFakeOrigin, makeGate, type FakeOrigin } from "./fake-origin";
import { call, createKey, keyIdOf, uniquePrompt, type CallOptions } from "./helpers";

const PRIMARY = "origin-primary.test";
const LONG_TTL_MS = 60_000;
const LIMITS: Demand = { requests: 8, tokens: 16384, embedInputs: 256 };

let origin: FakeOrigin;
beforeEach(() => {
	origin = installFakeOrigin();
});
afterEach(() => vi.restoreAllMocks());

type ErrorBody = { error: { type: string; message: string; field?: string } };

function limiterOf(keyId: string) {
	return env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(keyId));
}

async function held(key: string): Promise<Demand> {
	return limiterOf(await keyIdOf(key)).held();
}

/** Resolves once every macrotask queued so far (and the microtasks they start) has run. */
const drained = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * env.DB wrapped to count finished cache lookups: the D1 read is the last I/O a miss does before it
 * starts or joins a flight, so once N lookups are done and the queue is drained, N requests are there.
 */
function countingLookups(): { DB: D1Database; done: () => number } {
	let done = 0;
	const wrapStatement = (statement: D1PreparedStatement): D1PreparedStatement =>
		new Proxy(statement, {
			get(target, prop) {
				if (prop === "bind") return (...values: unknown[]) => wrapStatement(target.bind(...values));
				if (prop === "first")
					return async (...args: []) => {
						try {
							return await target.first(...args);
						} finally {
							done += 1;
						}
					};
				const value = Reflect.get(target, prop);
				return typeof value === "function" ? value.bind(target) : value;
			},
		});
	const DB = new Proxy(env.DB, {
		get(target, prop) {
			if (prop === "prepare") return (sql: string) => (/^SELECT body/.test(sql) ? wrapStatement(target.prepare(sql)) : target.prepare(sql));
			const value = Reflect.get(target, prop);
			return typeof value === "function" ? value.bind(target) : value;
		},
	});
	return { DB, done: () => done };
}

/** KEY_LIMITER wrapped to record acquire calls and, per key id, hold them until a gate opens. */
function watchedLimiter(gates: Record<string, Promise<void>> = {}) {
	const acquires: string[] = [];
	const names = new Map<string, string>();
	const namespace = {
		idFromName(name: string) {
			const id = env.KEY_LIMITER.idFromName(name);
			names.set(id.toString(), name);
			return id;
		},
		get(id: DurableObjectId) {
			const stub = env.KEY_LIMITER.get(id);
			const name = names.get(id.toString()) ?? "";
			return {
				async acquire(...args: Parameters<typeof stub.acquire>) {
					acquires.push(name);
					await gates[name];
					return stub.acquire(...args);
				},
				release: (leaseId: string) => stub.release(leaseId),
			};
		},
	};
	return { KEY_LIMITER: namespace as unknown as Env["KEY_LIMITER"], acquires };
}

function start(path: string, options: CallOptions, settled: Response[]): Promise<Response> {
	return call(path, options).then((response) => {
		settled.push(response);
		return response;
	});
}

async function expectLimited(response: Response, type: string, variable: string): Promise<void> {
	expect(response.status).toBe(429);
	expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
	const body = await response.json<ErrorBody>();
	expect(body.error.type).toBe(type);
	expect(body.error.message).toContain(variable);
}

describe("concurrent origin work per key", () => {
	it("answers 429 concurrency_limited beyond MAX_CONCURRENT_PER_KEY while another key is served", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const [flooder, other] = [await createKey(), await createKey()];
		const limits = { MAX_CONCURRENT_PER_KEY: "2" };
		const noStore = { "cache-control": "no-store" };
		const settled: Response[] = [];
		const flood = Array.from({ length: 5 }, (_, i) =>
			start("/v1/generate", { body: { prompt: uniquePrompt(`flood ${i}`) }, key: flooder, headers: noStore, env: limits }, settled),
		);
		// Three of five are refused while the first two are still at the origin.
		await vi.waitFor(() => expect(settled).toHaveLength(3));
		for (const response of settled) await expectLimited(response, "concurrency_limited", "MAX_CONCURRENT_PER_KEY");
		expect(origin.pending).toBe(2);
		expect((await held(flooder)).requests).toBe(2);

		const served = start("/v1/generate", { body: { prompt: uniquePrompt("other key") }, key: other, headers: noStore, env: limits }, []);
		await vi.waitFor(() => expect(origin.pending).toBe(3));
		open();
		expect((await served).status).toBe(200);
		expect((await Promise.all(flood)).filter((r) => r.status === 200)).toHaveLength(2);
		expect(await held(flooder)).toEqual({ requests: 0, tokens: 0, embedInputs: 0 });
	});

	it("takes no lease for a cache hit", async () => {
		const key = await createKey();
		const prompt = uniquePrompt("hit while full");
		expect((await call("/v1/generate", { body: { prompt }, key })).status).toBe(200);
		// A lease some other request holds fills the key's only slot.
		const limits = { ...LIMITS, requests: 1 };
		expect(await limiterOf(await keyIdOf(key)).acquire("other", { requests: 1, tokens: 0, embedInputs: 0 }, limits, LONG_TTL_MS)).toEqual({
			granted: true,
		});

		const hit = await call("/v1/generate", { body: { prompt }, key, env: { MAX_CONCURRENT_PER_KEY: "1" } });
		expect(hit.status).toBe(200);
		expect(hit.headers.get("x-cache")).toBe("HIT");
		const miss = await call("/v1/generate", {
			body: { prompt: uniquePrompt("miss while full") },
			key,
			env: { MAX_CONCURRENT_PER_KEY: "1" },
		});
		await expectLimited(miss, "concurrency_limited", "MAX_CONCURRENT_PER_KEY");
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
	});

	it("holds one lease for identical requests that share one origin call", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const key = await createKey();
		const { DB, done } = countingLookups();
		const { KEY_LIMITER, acquires } = watchedLimiter();
		const body = { prompt: uniquePrompt("shared") };
		const responses = Array.from({ length: 5 }, () =>
			call("/v1/generate", { body, key, env: { DB, KEY_LIMITER, MAX_CONCURRENT_PER_KEY: "1" } }),
		);
		await vi.waitFor(() => expect(done()).toBe(5));
		await drained();
		open();
		expect((await Promise.all(responses)).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
		expect(acquires).toHaveLength(1);
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
	});

	it("a joiner whose leader was refused (another key at its limit) makes its own call, not a 429", async () => {
		const [full, roomy] = [await createKey(), await createKey()];
		const [fullId, roomyId] = [await keyIdOf(full), await keyIdOf(roomy)];
		const limits = { ...LIMITS, requests: 1 };
		await limiterOf(fullId).acquire("held elsewhere", { requests: 1, tokens: 0, embedInputs: 0 }, limits, LONG_TTL_MS);
		const { gate, open } = makeGate();
		const { KEY_LIMITER, acquires } = watchedLimiter({ [fullId]: gate });
		const { DB, done } = countingLookups();
		const options = { body: { prompt: uniquePrompt("refused leader") }, env: { DB, KEY_LIMITER, MAX_CONCURRENT_PER_KEY: "1" } };

		const leader = call("/v1/generate", { ...options, key: full });
		await vi.waitFor(() => expect(acquires).toEqual([fullId]));
		const joiner = call("/v1/generate", { ...options, key: roomy });
		await vi.waitFor(() => expect(done()).toBe(2));
		await drained();
		open();

		await expectLimited(await leader, "concurrency_limited", "MAX_CONCURRENT_PER_KEY");
		const answer = await joiner;
		expect(answer.status).toBe(200);
		expect(acquires).toEqual([fullId, roomyId]);
		expect(origin.callsTo("/v1/generate").map((c) => c.headers.get("x-steadytext-tenant"))).toEqual([roomyId]);
	});

	it("runs the guard of a flight once, for the leader only", async () => {
		const ctx = createExecutionContext();
		let guarded = 0;
		const guard = (work: () => Promise<any>) => ((guarded += 1), work());
		const target = { urls: [`http://${PRIMARY}`], timeoutMs: 2000 };
		const key = `gen:v1:${crypto.randomUUID()}`;
		const body = JSON.stringify({ prompt: uniquePrompt("guarded") });
		const flights = Array.from({ length: 4 }, () => coalescedAnswer(env, ctx, key, target, "/v1/generate", body, guard));
		expect(flights.map((flight) => flight.leader)).toEqual([true, false, false, false]);
		expect(new Set((await Promise.all(flights.map((f) => f.answer))).map((a) => a.body)).size).toBe(1);
		expect(guarded).toBe(1);
	});

	it("fails open when the KeyLimiter cannot be reached", async () => {
		const key = await createKey();
		const broken = {
			idFromName: () => {
				throw new Error("limiter down");
			},
		} as unknown as Env["KEY_LIMITER"];
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("open") }, key, env: { KEY_LIMITER: broken } })).status).toBe(200);
	});
});

describe("cost in flight per key", () => {
	it("estimates generation cost as prompt UTF-8 bytes + overhead + max_tokens, and embeddings by inputs", () => {
		expect(demandOf("generate", { prompt: "abc", max_tokens: 10 }, 512)).toEqual({ requests: 1, tokens: 2 + 3 + 10, embedInputs: 0 });
		expect(demandOf("generate", { prompt: "é1234" }, 512).tokens).toBe(2 + 6 + 512); // absent max_tokens: the largest accepted
		expect(demandOf("generate", { prompt: "x", max_completion_tokens: 7, max_tokens: 99 }, 512).tokens).toBe(2 + 1 + 7);
		const chat = {
			messages: [
				{ role: "user", content: "hi" },
				{ role: "assistant", content: "日本" },
			],
			max_tokens: 4,
		};
		expect(demandOf("generate", chat, 512).tokens).toBe(2 + (4 + 2 + 6) + (9 + 6 + 6) + 4);
		expect(demandOf("embed", { input: ["a", "b", "c"] }, 512)).toEqual({ requests: 1, tokens: 0, embedInputs: 3 });
		expect(demandOf("embed", { input: "a" }, 512).embedInputs).toBe(1);
	});

	it("counts n choices as n × max_tokens (each may use all of it)", () => {
		expect(demandOf("generate", { prompt: "abc", max_tokens: 10, n: 3 }, 512).tokens).toBe(2 + 3 + 3 * 10);
		expect(demandOf("generate", { prompt: "abc", n: 2 }, 512).tokens).toBe(2 + 3 + 2 * 512);
		const chat = { messages: [{ role: "user", content: "hi" }], max_completion_tokens: 7, n: 4 };
		expect(demandOf("generate", chat, 512).tokens).toBe(2 + (4 + 2 + 6) + 4 * 7);
	});

	it("refuses n choices whose n × max_tokens alone passes the key's budget, which one choice would not", async () => {
		const key = await createKey();
		const budget = { MAX_TOKENS_IN_FLIGHT_PER_KEY: "100" };
		const body = { model: "gemma3-270m", prompt: uniquePrompt("choices").slice(0, 8), max_tokens: 40 };
		expect((await call("/v1/completions", { body, key, env: budget })).status).toBe(200);
		const refused = await call("/v1/completions", { body: { ...body, n: 3 }, key, env: budget });
		expect(refused.status).toBe(400);
		expect((await refused.json<ErrorBody>()).error.message).toContain("n × max_tokens");
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
	});

	it("answers 429 tokens_in_flight_limited when prompt + max_tokens in flight would pass MAX_TOKENS_IN_FLIGHT_PER_KEY", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const key = await createKey();
		const budget = { MAX_TOKENS_IN_FLIGHT_PER_KEY: "100" };
		const big = (label: string) => ({ prompt: `${label} `.padEnd(40, "x"), max_tokens: 40 }); // 82 tokens
		const first = call("/v1/generate", { body: big("first"), key, env: budget });
		await vi.waitFor(() => expect(origin.pending).toBe(1));

		await expectLimited(
			await call("/v1/generate", { body: big("second"), key, env: budget }),
			"tokens_in_flight_limited",
			"MAX_TOKENS_IN_FLIGHT_PER_KEY",
		);
		const small = call("/v1/generate", { body: { prompt: uniquePrompt("s").slice(0, 4), max_tokens: 5 }, key, env: budget }); // 11 tokens: fits
		await vi.waitFor(() => expect(origin.pending).toBe(2));
		expect((await held(key)).tokens).toBe(82 + 11);
		open();
		expect([(await first).status, (await small).status]).toEqual([200, 200]);
	});

	it("answers 429 embed_inputs_in_flight_limited by the inputs in flight, apart from the token budget", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const key = await createKey();
		const budget = { MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY: "10" };
		const inputs = (n: number) => Array.from({ length: n }, (_, i) => uniquePrompt(`input ${i}`));
		const first = call("/v1/embed", { body: { input: inputs(8) }, key, env: budget });
		await vi.waitFor(() => expect(origin.pending).toBe(1));

		await expectLimited(
			await call("/v1/embed", { body: { input: inputs(3) }, key, env: budget }),
			"embed_inputs_in_flight_limited",
			"MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY",
		);
		const generation = call("/v1/generate", { body: { prompt: uniquePrompt("other budget") }, key, env: budget });
		await vi.waitFor(() => expect(origin.pending).toBe(2));
		open();
		expect([(await first).status, (await generation).status]).toEqual([200, 200]);
	});

	it("refuses with 400 a request larger than the whole budget, before the cache or the origin", async () => {
		const key = await createKey();
		const budget = { MAX_TOKENS_IN_FLIGHT_PER_KEY: "50" };
		const generate = await call("/v1/generate", { body: { prompt: uniquePrompt("too big"), max_tokens: 40 }, key, env: budget });
		expect(generate.status).toBe(400);
		const error = (await generate.json<ErrorBody>()).error;
		expect(error).toMatchObject({ type: "invalid_request", field: "prompt" });
		expect(error.message).toContain("MAX_TOKENS_IN_FLIGHT_PER_KEY");
		const chat = await call("/v1/chat/completions", {
			body: { messages: [{ role: "user", content: uniquePrompt("too big") }], max_tokens: 40 },
			key,
			env: budget,
		});
		expect((await chat.json<ErrorBody>()).error.field).toBe("messages");
		expect(origin.callsTo("/v1/generate")).toHaveLength(0);
		expect(origin.callsTo("/v1/chat/completions")).toHaveLength(0);
	});
});

describe("leases are given back however the origin work ends", () => {
	const empty = { requests: 0, tokens: 0, embedInputs: 0 };

	it.each([
		["an answer", {}, "ok"],
		["the runtime's 4xx", {}, "origin says no"],
		["the runtime's 429", { fail: 429 }, "ok"],
		["every origin down", { fail: "down" as const }, "ok"],
	])("after %s", async (_label, behaviour, prompt) => {
		origin.set(PRIMARY, behaviour).set("origin-fallback.test", behaviour);
		const key = await createKey();
		await call("/v1/generate", { body: { prompt: prompt === "ok" ? uniquePrompt("ends") : prompt }, key });
		expect(await held(key)).toEqual(empty);
	});

	it("after a timeout", async () => {
		const id = crypto.randomUUID().slice(0, 8);
		origin.set(`slow-${id}.test`, { delayMs: 1000 });
		const key = await createKey();
		const response = await call("/v1/generate", {
			body: { prompt: uniquePrompt("timeout") },
			key,
			env: { ORIGIN_URL: `http://slow-${id}.test`, ORIGIN_FALLBACK_URL: "", ORIGIN_TIMEOUT_MS: "100" },
		});
		expect(response.status).toBe(503);
		expect(await held(key)).toEqual(empty);
	});

	it("when a stream ends, and not before", async () => {
		const key = await createKey();
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("stream"), stream: true }, key });
		expect((await held(key)).requests).toBe(1);
		expect(await response.text()).toContain('"done":true');
		await vi.waitFor(async () => expect(await held(key)).toEqual(empty));
	});

	it("when the client cancels a stream", async () => {
		const key = await createKey();
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("cancel"), stream: true }, key });
		expect((await held(key)).requests).toBe(1);
		await response.body!.cancel();
		await vi.waitFor(async () => expect(await held(key)).toEqual(empty));
	});

	it("a lease that is never given back (its isolate died) blocks only until it expires", async () => {
		const key = await createKey();
		const limiter = limiterOf(await keyIdOf(key));
		const one = { requests: 1, tokens: 0, embedInputs: 0 };
		const limits = { MAX_CONCURRENT_PER_KEY: "1" };
		await limiter.acquire("leaked", one, { ...LIMITS, requests: 1 }, LONG_TTL_MS);
		await expectLimited(
			await call("/v1/generate", { body: { prompt: uniquePrompt("blocked") }, key, env: limits }),
			"concurrency_limited",
			"MAX_CONCURRENT_PER_KEY",
		);
		await limiter.release("leaked");

		await limiter.acquire("leaked, short-lived", one, { ...LIMITS, requests: 1 }, 1);
		await new Promise((resolve) => setTimeout(resolve, 20)); // past its 1 ms expiry
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("expired") }, key, env: limits })).status).toBe(200);
	});
});

describe("tenant header", () => {
	it("tells the origin the key id (never the key or its hash) on every kind of miss", async () => {
		const key = await createKey();
		const id = await keyIdOf(key);
		await call("/v1/generate", { body: { prompt: uniquePrompt("coalesced") }, key });
		await call("/v1/generate", { body: { prompt: uniquePrompt("bypass") }, key, headers: { "cache-control": "no-store" } });
		await (await call("/v1/generate", { body: { prompt: uniquePrompt("stream"), stream: true }, key })).text();
		await call("/v1/embeddings", { body: { input: uniquePrompt("embed") }, key });
		const tenants = origin.calls.filter((c) => c.method === "POST").map((c) => c.headers.get("x-steadytext-tenant"));
		expect(tenants).toEqual([id, id, id, id]);
	});
});

describe("embedding input cap", () => {
	it.each(["/v1/embed", "/v1/embeddings"])(
		"%s accepts MAX_EMBED_INPUTS inputs and refuses one more with 400 naming the cap",
		async (path) => {
			const key = await createKey();
			const inputs = Array.from({ length: 65 }, (_, i) => `${uniquePrompt("cap")} ${i}`);
			const over = await call(path, { body: { input: inputs }, key });
			expect(over.status).toBe(400);
			const error = (await over.json<ErrorBody>()).error;
			expect(error).toMatchObject({ type: "invalid_request", field: "input" });
			expect(error.message).toContain("64 (MAX_EMBED_INPUTS)");
			expect(origin.callsTo(path)).toHaveLength(0);
			const model = path === "/v1/embeddings" ? { model: "gemma3-270m" } : {}; // the OpenAI route needs one
			expect((await call(path, { body: { ...model, input: inputs.slice(0, 64) }, key })).status).toBe(200);
		},
	);
});
