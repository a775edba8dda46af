// Long requests behind proxies: a streamed miss sends SSE comment keepalives while the origin is silent
// (before its first byte and between slow pieces), which never reach the stored answer or a replay; and a
// non-streamed generation estimated to take longer than NON_STREAM_MAX_SECONDS (max_tokens over the
// origin's measured tokens/s) is refused with a pointer to streaming. The origin's silence is a gate the
// test opens, so "a keepalive came before the first token" never depends on timing.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KEEPALIVE } from "../src/origin/keepalive";
import { renderStream } from "../src/cache/replay";
import { settings } from "../src/config";
import { checkNonStreamTime, recordSpeed } from "../src/origin/speed";
import { FINGERPRINT, makeGate, type FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey, keyIdOf, uniquePrompt } from "./helpers";

const PRIMARY = "origin-primary.test";
const FALLBACK = "origin-fallback.test";
// A short interval: the tests' origins are silent for longer than it.
const FAST_KEEPALIVE = { SSE_KEEPALIVE_MS: "30", MODEL_FINGERPRINT: FINGERPRINT };

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

type ErrorBody = { error: { type: string; message: string; field?: string } };
const decoder = new TextDecoder();

async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
	let text = "";
	for (;;) {
		const { done, value } = await reader.read();
		if (done) return text;
		text += decoder.decode(value, { stream: true });
	}
}

async function firstChunk(response: Response): Promise<{ first: string; reader: ReadableStreamDefaultReader<Uint8Array> }> {
	const reader = response.body!.getReader();
	const { value } = await reader.read();
	return { first: decoder.decode(value), reader };
}

async function heldRequests(): Promise<number> {
	const limiter = env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(await keyIdOf(key)));
	return (await limiter.held()).requests;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A native stream as the runtime sends it, one event every `gapMs`. */
function slowStream(text: string, gapMs: number): { response: Response; live: string } {
	const answer = {
		text,
		finish_reason: "length",
		usage: { prompt_tokens: 3, completion_tokens: 3 },
		model: "gemma3-270m",
		fingerprint: FINGERPRINT,
	};
	const live = renderStream("native", JSON.stringify(answer), [2, 2, Array.from(text).length - 4], false)!;
	const events = live.split(/(?<=\n\n)/);
	let next = 0;
	const body = new ReadableStream<Uint8Array>({
		async pull(controller) {
			if (next === events.length) return controller.close();
			await sleep(gapMs);
			controller.enqueue(new TextEncoder().encode(events[next++]));
		},
	});
	return {
		response: new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8", "x-model-fingerprint": FINGERPRINT } }),
		live,
	};
}

describe("SSE keepalives on a streamed miss", () => {
	it("sends a keepalive before the first token while the origin is silent, and replays the live stream without it", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const body = { prompt: uniquePrompt("silent origin"), stream: true };
		const response = await call("/v1/generate", { body, key, env: FAST_KEEPALIVE, settle: false });
		expect(response.status).toBe(200);
		expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
		expect(response.headers.get("x-cache")).toBe("MISS");
		expect(response.headers.get("cf-aig-cache-status")).toBe("MISS");

		const { first, reader } = await firstChunk(response);
		expect(first).toBe(KEEPALIVE);
		expect(origin.pending).toBe(1); // the origin had not answered yet
		open();
		const received = first + (await readAll(reader));
		const live = received.replaceAll(KEEPALIVE, "");
		expect(live).toMatch(/^data: \{"token":/);
		expect(live).toContain('"done":true');

		await vi.waitFor(async () => expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).not.toBeNull());
		const replay = await call("/v1/generate", { body, key, env: FAST_KEEPALIVE });
		expect(replay.headers.get("x-cache")).toBe("HIT");
		const replayed = await replay.text();
		expect(replayed).toBe(live);
		expect(replayed).not.toContain(": keepalive");
		expect(origin.callsTo("/v1/generate")).toHaveLength(1);
		await vi.waitFor(async () => expect(await heldRequests()).toBe(0));
	});

	it("fills the silence between slow pieces, only between whole events, and stores the stream without them", async () => {
		const { response: slow, live } = slowStream("slow pieces é", 120);
		origin.set(PRIMARY, { respond: () => slow });
		const body = { prompt: uniquePrompt("slow pieces"), stream: true };
		const response = await call("/v1/generate", { body, key, env: FAST_KEEPALIVE, settle: false });
		const received = await response.text();
		expect(received).toContain(KEEPALIVE);
		// Every chunk between blank lines is a whole event or a whole keepalive.
		for (const part of received.split(/(?<=\n\n)/))
			expect(part === KEEPALIVE || (part.startsWith("data: ") && part.endsWith("\n\n"))).toBe(true);
		expect(received.replaceAll(KEEPALIVE, "")).toBe(live);

		await vi.waitFor(async () => expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).not.toBeNull());
		expect(await (await call("/v1/generate", { body, key })).text()).toBe(live);
	});

	it("gives the lease back and stores nothing when the client leaves before the origin answered", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const response = await call("/v1/generate", {
			body: { prompt: uniquePrompt("client leaves"), stream: true },
			key,
			env: FAST_KEEPALIVE,
			settle: false,
		});
		const { first, reader } = await firstChunk(response);
		expect(first).toBe(KEEPALIVE);
		await reader.cancel();
		await vi.waitFor(async () => expect(await heldRequests()).toBe(0));
		open();
		await vi.waitFor(() => expect(origin.pending).toBe(0));
		expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).toBeNull();
	});

	it.each([
		["before", true],
		["after", false],
	])("gives the lease back and stores nothing when the origin's stream breaks off %s the stream was committed", async (_, gated) => {
		const { gate, open } = makeGate();
		const first = renderStream(
			"native",
			JSON.stringify({
				text: "broken off",
				finish_reason: "length",
				usage: { prompt_tokens: 3, completion_tokens: 2 },
				model: "m",
				fingerprint: FINGERPRINT,
			}),
			[6, 4],
			false,
		)!.split(/(?<=\n\n)/)[0];
		const broken = () => {
			let sent = false;
			const body = new ReadableStream<Uint8Array>({
				pull(controller) {
					if (sent) return controller.error(new Error("the origin's connection reset"));
					sent = true;
					controller.enqueue(new TextEncoder().encode(first));
				},
			});
			return new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8", "x-model-fingerprint": FINGERPRINT } });
		};
		origin.set(PRIMARY, gated ? { gate, respond: broken } : { respond: broken });
		const response = await call("/v1/generate", {
			body: { prompt: uniquePrompt("broken off"), stream: true },
			key,
			env: FAST_KEEPALIVE,
			settle: false,
		});
		expect(response.status).toBe(200);
		open();
		const reader = response.body!.getReader();
		const received = await readAll(reader).catch(() => "cut");
		expect(received).not.toContain('"done":true');
		await vi.waitFor(async () => expect(await heldRequests()).toBe(0));
		const cacheKey = response.headers.get("x-cache-key")!;
		expect(await env.CACHE.get(cacheKey)).toBeNull();
		expect(await env.DB.prepare("SELECT cache_key FROM answer_cache WHERE cache_key = ?").bind(cacheKey).first()).toBeNull();
	});

	it.each([
		["before", true],
		["after", false],
	])(
		"ends a stream whose origin falls silent for ORIGIN_TIMEOUT_MS (%s it was committed) with an error event, not keepalives for ever",
		async (_, gated) => {
			const { gate, open } = makeGate();
			const first = renderStream(
				"native",
				JSON.stringify({
					text: "fell silent",
					finish_reason: "length",
					usage: { prompt_tokens: 3, completion_tokens: 2 },
					model: "m",
					fingerprint: FINGERPRINT,
				}),
				[4, 7],
				false,
			)!.split(/(?<=\n\n)/)[0];
			// One event, then nothing: a stuck runtime or a half-open connection.
			const silent = () => {
				let sent = false;
				const body = new ReadableStream<Uint8Array>({
					pull(controller) {
						if (sent) return new Promise<void>(() => undefined);
						sent = true;
						controller.enqueue(new TextEncoder().encode(first));
					},
				});
				return new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8", "x-model-fingerprint": FINGERPRINT } });
			};
			origin.set(PRIMARY, gated ? { gate, respond: silent } : { respond: silent });
			const silentEnv = { ...FAST_KEEPALIVE, ORIGIN_TIMEOUT_MS: "400" };
			const response = await call("/v1/generate", {
				body: { prompt: uniquePrompt("falls silent"), stream: true },
				key,
				env: silentEnv,
				settle: false,
			});
			expect(response.status).toBe(200);
			open();
			const received = await readAll(response.body!.getReader());
			expect(received).toContain(KEEPALIVE);
			const events = received.replaceAll(KEEPALIVE, "");
			expect(events.startsWith(first)).toBe(true);
			expect(JSON.parse(events.slice(first.length).replace(/^data: /, ""))).toEqual({
				error: { type: "origin_unavailable", message: "the origin sent nothing for 0.4 s (ORIGIN_TIMEOUT_MS); the stream ends here" },
			});
			await vi.waitFor(async () => expect(await heldRequests()).toBe(0));
			await vi.waitFor(() => expect(origin.pending).toBe(0));
			expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).toBeNull();
		},
		10_000,
	);

	it("refuses an interval at or above Cloudflare's 100 s proxy timeout, naming the var (its keepalives would come too late)", async () => {
		const response = await call("/v1/generate", {
			body: { prompt: uniquePrompt("bad interval") },
			key,
			env: { SSE_KEEPALIVE_MS: "100000" },
		});
		expect(response.status).toBe(500);
		expect((await response.json<ErrorBody>()).error.message).toContain("SSE_KEEPALIVE_MS must be below 100000");
	});

	it("sends none when the origin is quick, so its status goes out unchanged", async () => {
		origin.set(PRIMARY, { respond: () => Response.json({ error: { type: "queue_full", message: "the queue is full" } }, { status: 429 }) });
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("quick refusal"), stream: true }, key });
		expect(response.status).toBe(429);
		expect((await response.json<ErrorBody>()).error.type).toBe("queue_full");
	});

	it("reports a refusal that comes after the stream began as an error event, and stores nothing", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, {
			gate,
			respond: () => Response.json({ error: { type: "queue_full", message: "the queue is full" } }, { status: 429 }),
		});
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("late refusal"), stream: true }, key, env: FAST_KEEPALIVE });
		const { first, reader } = await firstChunk(response);
		expect(response.status).toBe(200);
		expect(first).toBe(KEEPALIVE);
		open();
		const rest = (await readAll(reader)).replaceAll(KEEPALIVE, "");
		expect(rest).toBe('data: {"error":{"type":"queue_full","message":"the queue is full"}}\n\n');
		expect(await env.CACHE.get(response.headers.get("x-cache-key")!)).toBeNull();
		await vi.waitFor(async () => expect(await heldRequests()).toBe(0));
	});

	it("reports every origin failing after the stream began as an origin_unavailable event", async () => {
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate, fail: "down" }).set(FALLBACK, { fail: "down" });
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("late outage"), stream: true }, key, env: FAST_KEEPALIVE });
		const { first, reader } = await firstChunk(response);
		expect(first).toBe(KEEPALIVE);
		open();
		const events = (await readAll(reader)).replaceAll(KEEPALIVE, "");
		expect(JSON.parse(events.replace(/^data: /, ""))).toMatchObject({ error: { type: "origin_unavailable" } });
	});
});

describe("a non-streamed generation that may outlast the proxies", () => {
	const tight = { NON_STREAM_MAX_SECONDS: "5" };

	it("is refused with a 400 naming stream: true when max_tokens over the default speed exceeds the limit", async () => {
		// No answer measured yet here: 20 tokens/s is assumed, so 200 tokens may take 10 s.
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("long"), max_tokens: 200 }, key, env: tight });
		expect(response.status).toBe(400);
		const { error } = await response.json<ErrorBody>();
		expect(error.type).toBe("stream_required");
		expect(error.field).toBe("stream");
		expect(error.message).toContain('send "stream": true');
		expect(error.message).toContain("NON_STREAM_MAX_SECONDS: 5 s");
		expect(origin.callsTo("/v1/generate")).toHaveLength(0);
	});

	it("serves the same request streamed, a shorter one, and a cached answer however long it was", async () => {
		const prompt = uniquePrompt("long but streamed");
		expect((await call("/v1/generate", { body: { prompt, max_tokens: 200, stream: true }, key, env: tight })).status).toBe(200);
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("short"), max_tokens: 100 }, key, env: tight })).status).toBe(200);
		await vi.waitFor(async () =>
			expect((await call("/v1/generate", { body: { prompt, max_tokens: 200 }, key, env: tight })).headers.get("x-cache")).toBe("HIT"),
		);
	});

	it("learns the origin's speed from completed answers", async () => {
		const slowOrigin = {
			ORIGIN_URL: "http://slow-origin.test",
			ORIGIN_TIMEOUT_MS: "10000",
			NON_STREAM_MAX_SECONDS: "10",
			MODEL_FINGERPRINT: FINGERPRINT,
		};
		const answer = {
			text: "sixteen tokens long",
			finish_reason: "length",
			usage: { prompt_tokens: 3, completion_tokens: 16 },
			model: "gemma3-270m",
			fingerprint: FINGERPRINT,
		};
		// 16 tokens in at least a second: at most 16 tokens/s, slower than the 20 assumed before.
		origin.set("slow-origin.test", { delayMs: 1000, respond: () => Response.json(answer) });
		const longer = { prompt: uniquePrompt("before measuring"), max_tokens: 180 }; // 9 s at 20 tokens/s, over 10 s at 16
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("measured"), max_tokens: 16 }, key, env: slowOrigin })).status).toBe(
			200,
		);
		const refused = await call("/v1/generate", { body: longer, key, env: slowOrigin });
		expect(refused.status).toBe(400);
		expect((await refused.json<ErrorBody>()).error.message).toMatch(/at the origin's measured (1[0-6]|[0-9])\.\d tokens\/s/);
	});

	it("does not learn a speed from a stream read at the client's pace", async () => {
		const readerOrigin = { ORIGIN_URL: "http://slow-reader-origin.test", NON_STREAM_MAX_SECONDS: "5", MODEL_FINGERPRINT: FINGERPRINT };
		const text = "abcdefghijklmnopqrst";
		const answer = {
			text,
			finish_reason: "length",
			usage: { prompt_tokens: 3, completion_tokens: 20 },
			model: "gemma3-270m",
			fingerprint: FINGERPRINT,
		};
		const events = renderStream("native", JSON.stringify(answer), Array(20).fill(1), false)!.split(/(?<=\n\n)/);
		// An origin that sends each event as soon as it is asked for one: as fast as the client reads
		// (the first call; later ones get the plain answer).
		let calls = 0;
		origin.set("slow-reader-origin.test", {
			respond: () => {
				if (calls++ > 0) return Response.json(answer);
				let next = 0;
				const body = new ReadableStream<Uint8Array>({
					pull: (controller) =>
						next === events.length ? controller.close() : controller.enqueue(new TextEncoder().encode(events[next++])),
				});
				return new Response(body, { headers: { "content-type": "text/event-stream; charset=utf-8", "x-model-fingerprint": FINGERPRINT } });
			},
		});
		const streamed = await call("/v1/generate", {
			body: { prompt: uniquePrompt("slow reader"), stream: true },
			key,
			env: readerOrigin,
			settle: false,
		});
		const { reader } = await firstChunk(streamed);
		await sleep(1500); // a client that stops reading for a while: 20 tokens over 1.5 s would be 13 tokens/s
		await readAll(reader);
		await vi.waitFor(async () => expect(await env.CACHE.get(streamed.headers.get("x-cache-key")!)).not.toBeNull());
		// 90 tokens: 4.5 s at the assumed 20 tokens/s, which the client's pace must not turn into 7 s.
		const plain = await call("/v1/generate", {
			body: { prompt: uniquePrompt("after a slow reader"), max_tokens: 90 },
			key,
			env: readerOrigin,
		});
		expect(((await plain.json()) as ErrorBody).error?.message).toBeUndefined();
		expect(plain.status).toBe(200);
	});

	it("takes a request without max_tokens at the runtime's default (its status), or MAX_TOKENS_LIMIT when unknown", async () => {
		// 16 tokens (the fake runtime's default) at 20 tokens/s fit in 5 s; MAX_TOKENS_LIMIT's 512 do not.
		const body = () => ({ prompt: uniquePrompt("no max tokens") });
		expect((await call("/v1/generate", { body: body(), key, env: tight })).status).toBe(200);
		origin.defaultMaxTokens = null;
		const unknown = { ...tight, ORIGIN_URL: "http://defaults-unknown.test" }; // a status of its own, not yet memoised
		const refused = await call("/v1/generate", { body: body(), key, env: unknown });
		expect(refused.status).toBe(400);
		expect((await refused.json<ErrorBody>()).error.message).toContain("up to 512 tokens");
	});

	it("times n choices side by side, and tells them to stream (choices stream one after another) when they may take too long", async () => {
		// At the assumed 20 tokens/s a choice of 100 tokens fits in 5 s, and the runtime decodes a request's
		// choices in their own slots at once: two such choices also fit. A choice of 120 tokens does not.
		const chat = (n: number, maxTokens: number) => ({
			model: "gemma3-270m",
			messages: [{ role: "user", content: uniquePrompt("choices") }],
			max_tokens: maxTokens,
			n,
		});
		expect((await call("/v1/chat/completions", { body: chat(2, 100), key, env: tight })).status).toBe(200);
		const before = origin.callsTo("/v1/chat/completions").length;
		const refused = await call("/v1/chat/completions", { body: chat(2, 120), key, env: tight });
		const { error } = await refused.json<ErrorBody>();
		expect(error).toMatchObject({ type: "stream_required", field: "stream" });
		expect(refused.status).toBe(400);
		expect(error.message).toContain("up to 120 tokens per choice");
		expect(error.message).toContain('send "stream": true');
		expect(origin.callsTo("/v1/chat/completions")).toHaveLength(before);
		const streamed = await call("/v1/chat/completions", { body: { ...chat(2, 120), stream: true }, key, env: tight });
		expect(streamed.status).toBe(200);
	});

	it("learns one choice's speed from an answer of several", () => {
		// An answer of 4 choices reports 400 completion tokens over all of them after 1 s: each choice ran at
		// 100 tokens/s, side by side. Counted as 400 tokens/s, 450 tokens would seem to take a second.
		const config = settings({ ...env, ORIGIN_URL: "http://speed-per-choice.test", NON_STREAM_MAX_SECONDS: "4" });
		const answer = JSON.stringify({ choices: [{}, {}, {}, {}], usage: { prompt_tokens: 5, completion_tokens: 400 } });
		recordSpeed(config, { n: 4 }, answer, 1000);
		expect(() => checkNonStreamTime({ max_tokens: 350 }, config, null)).not.toThrow();
		expect(() => checkNonStreamTime({ max_tokens: 450 }, config, null)).toThrow(/100\.0 tokens\/s/);
	});

	it("refuses a limit at or above Cloudflare's 100 s proxy timeout, naming the var", async () => {
		const response = await call("/v1/generate", {
			body: { prompt: uniquePrompt("bad limit") },
			key,
			env: { NON_STREAM_MAX_SECONDS: "100" },
		});
		expect(response.status).toBe(500);
		expect((await response.json<ErrorBody>()).error.message).toContain("NON_STREAM_MAX_SECONDS");
	});
});
