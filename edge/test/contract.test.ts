// The Worker keeps the wire contract (contract/): the golden fixtures the real runtime recorded follow the
// schemas; the Worker replays a stored answer as exactly the runtime's stream and derives exactly the
// runtime's answer from a stream (both directions, with and without include_usage); a streamed cache hit
// is byte for byte the live stream that filled it; and every bad request of the shared corpus gets the
// runtime's error type and message.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import vocabulary from "../../contract/errors.json";
import { deriveAnswer, parsePieces, renderStream, type StreamFormat } from "../src/cache/replay";
import { BAD_REQUESTS, expectValid, expectValidStream, fill, GOLDENS, ROUTES, ssePayloads, violations } from "./contract";
import type { FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => {
	({ origin, key } = await freshOriginAndKey());
	// The goldens' requests are fixed: every test starts from an empty answer cache.
	await env.DB.prepare("DELETE FROM answer_cache").run();
	for (const prefix of ["gen:", "tok:", "rrk:"])
		for (const { name } of (await env.CACHE.list({ prefix })).keys) await env.CACHE.delete(name);
});
afterEach(() => vi.restoreAllMocks());

const FORMATS: Record<string, StreamFormat> = { "/v1/generate": "native", "/v1/completions": "completion", "/v1/chat/completions": "chat" };
const STREAMED = Object.entries(GOLDENS).filter(([, golden]) => golden.stream !== undefined);
const WITH_USAGE = STREAMED.filter(([, golden]) => golden.stream_with_usage !== undefined);

describe("golden fixtures (recorded from the real runtime by scripts/contract_fixtures.py)", () => {
	it("cover every route", () => {
		expect(new Set(Object.values(GOLDENS).map((golden) => golden.route))).toEqual(new Set(Object.keys(ROUTES)));
	});

	it.each(Object.entries(GOLDENS))("%s follows the schemas", (_, golden) => {
		expectValid(ROUTES[golden.route].request, golden.request);
		expectValid(ROUTES[golden.route].answer, JSON.parse(golden.answer));
		if (golden.stream) expectValidStream(golden.route, golden.stream);
		if (golden.stream_with_usage) expectValidStream(golden.route, golden.stream_with_usage);
	});

	it("the schemas refuse the old drifts", () => {
		const done = {
			done: true,
			text: "",
			finish_reason: "stop",
			usage: { prompt_tokens: 1, completion_tokens: 0 },
			fingerprint: "0".repeat(32),
		};
		expect(violations("generate-event.json", done)).not.toEqual([]); // no model: the old cached replay
		expect(violations("error.json", { error: { type: "invalid_request", message: "prompt is required", field: "prompt" } })).not.toEqual(
			[],
		);
	});
});

describe("replay and derivation follow how the runtime renders", () => {
	it.each(STREAMED)("%s: the stored answer and pieces render the live stream's bytes", (_, golden) => {
		expect(renderStream(FORMATS[golden.route], golden.answer, golden.pieces!, false)).toBe(golden.stream);
	});

	it.each(WITH_USAGE)("%s: with include_usage, the usage chunk too", (_, golden) => {
		expect(renderStream(FORMATS[golden.route], golden.answer, golden.pieces!, true)).toBe(golden.stream_with_usage);
	});

	it.each(STREAMED)("%s: a complete live stream gives the runtime's plain answer and the pieces", (_, golden) => {
		const stream = golden.stream_with_usage ?? golden.stream!;
		expect(deriveAnswer(FORMATS[golden.route], ssePayloads(stream))).toEqual({ body: golden.answer, pieces: golden.pieces });
	});

	it("splits pieces by code points (astral characters are one)", () => {
		const answer = JSON.stringify({
			text: "a😀b",
			finish_reason: "stop",
			usage: { prompt_tokens: 1, completion_tokens: 3 },
			model: "m",
			fingerprint: "0".repeat(32),
		});
		const stream = renderStream("native", answer, [1, 1, 1], false)!;
		expect(
			ssePayloads(stream)
				.slice(0, 3)
				.map((p) => JSON.parse(p).token),
		).toEqual(["a", "😀", "b"]);
		expect(deriveAnswer("native", ssePayloads(stream))).toEqual({ body: answer, pieces: [1, 1, 1] });
		expect(renderStream("native", answer, [1, 1], false)).toBeNull(); // pieces that do not add up
	});

	it.each([
		["a cut stream (no done event)", 'data: {"token":"a"}\n\n'],
		[
			"an error event",
			'data: {"token":"a"}\n\ndata: {"error":{"type":"internal_error","message":"generation failed; see the runtime log"}}\n\n',
		],
		[
			"a done event whose text is not the pieces",
			'data: {"token":"a"}\n\ndata: {"done":true,"text":"ab","finish_reason":"stop","usage":{"prompt_tokens":1,"completion_tokens":1},"model":"m","fingerprint":"' +
				"0".repeat(32) +
				'"}\n\n',
		],
	])("derives nothing from %s", (_, stream) => {
		expect(deriveAnswer("native", ssePayloads(stream))).toBeNull();
	});

	it("replays logprobs only when the stored pieces and the answer agree on them", () => {
		const golden = GOLDENS["completion-logprobs"];
		const pieces = golden.pieces as { lengths: number[]; tokens: number[] };
		expect(renderStream("completion", golden.answer, pieces, false)).toBe(golden.stream);
		expect(renderStream("completion", golden.answer, pieces.lengths, false)).toBeNull(); // entries per piece unknown
		const tooMany = { lengths: pieces.lengths, tokens: pieces.tokens.map((n) => n + 1) };
		expect(renderStream("completion", golden.answer, tooMany, false)).toBeNull();
		expect(
			renderStream("completion", GOLDENS.completion.answer, { lengths: GOLDENS.completion.pieces as number[], tokens: [] }, false),
		).toBeNull();
		// n choices: one set of pieces per choice, or nothing is replayed.
		const choices = GOLDENS["chat-choices"];
		const perChoice = (choices.pieces as { choices: number[][] }).choices;
		expect(perChoice).toHaveLength(2);
		expect(renderStream("chat", choices.answer, perChoice[0], false)).toBeNull();
		expect(renderStream("chat", choices.answer, { choices: [perChoice[1], perChoice[0]] }, false)).toBeNull();
	});

	it("reads both forms of the pieces header and nothing else", () => {
		expect(parsePieces("[1,2]")).toEqual([1, 2]);
		expect(parsePieces('{"lengths":[1,2],"tokens":[0,3]}')).toEqual({ lengths: [1, 2], tokens: [0, 3] });
		for (const bad of [
			"[0]",
			'{"lengths":[1],"tokens":[1,1]}',
			'{"lengths":[1],"tokens":[-1]}',
			'{"lengths":[1]}',
			'{"lengths":[1],"tokens":[1],"x":1}',
			"{",
		])
			expect(parsePieces(bad)).toBeNull();
	});

	it("derives nothing from an OpenAI stream without its usage chunk or [DONE]", () => {
		const golden = GOLDENS.completion;
		expect(deriveAnswer("completion", ssePayloads(golden.stream!))).toBeNull(); // no usage chunk
		expect(deriveAnswer("completion", ssePayloads(golden.stream_with_usage!).slice(0, -1))).toBeNull(); // no [DONE]
	});
});

describe("through the Worker: a streamed hit is the live stream's bytes", () => {
	beforeEach(() => {
		origin.fingerprint = STREAMED[0][1].fingerprint; // the goldens' model, as GET /v1/status reports it
	});

	let lastKey = "";
	const send = async (path: string, body: object) => {
		const response = await call(path, { body, key });
		lastKey = response.headers.get("x-cache-key")!;
		return { cache: response.headers.get("x-cache"), text: await response.text() };
	};
	// A streamed miss is stored as its last byte goes out (write-behind): wait for both tiers' writes.
	const stored = () =>
		vi.waitFor(async () => {
			expect(await env.CACHE.get(lastKey)).not.toBeNull();
			expect(await env.DB.prepare("SELECT 1 FROM answer_cache WHERE cache_key = ?").bind(lastKey).first()).not.toBeNull();
		});

	it.each(Object.entries(GOLDENS))("%s: a plain miss and its hit are the runtime's bytes", async (_, golden) => {
		expect(await send(golden.route, golden.request)).toEqual({ cache: "MISS", text: golden.answer });
		expect(await send(golden.route, golden.request)).toEqual({ cache: "HIT", text: golden.answer });
	});

	it.each(STREAMED)("%s: streamed miss → streamed, plain and include_usage hits", async (_, golden) => {
		const live = await send(golden.route, { ...golden.request, stream: true });
		expect(live).toEqual({ cache: "MISS", text: golden.stream });
		await stored();
		expect(await send(golden.route, { ...golden.request, stream: true })).toEqual({ cache: "HIT", text: golden.stream });
		expect(await send(golden.route, golden.request)).toEqual({ cache: "HIT", text: golden.answer });
		if (golden.stream_with_usage) {
			const withUsage = { ...golden.request, stream: true, stream_options: { include_usage: true } };
			expect(await send(golden.route, withUsage)).toEqual({ cache: "HIT", text: golden.stream_with_usage });
		}
		expect(origin.callsTo(golden.route)).toHaveLength(1);
		if (golden.route !== "/v1/generate") expect(origin.callsTo(golden.route)[0].body?.stream_options).toEqual({ include_usage: true });
	});

	it.each(STREAMED)("%s: plain miss → streamed hits", async (_, golden) => {
		expect(await send(golden.route, golden.request)).toEqual({ cache: "MISS", text: golden.answer });
		expect(await send(golden.route, { ...golden.request, stream: true })).toEqual({ cache: "HIT", text: golden.stream });
		if (golden.stream_with_usage) {
			const withUsage = { ...golden.request, stream: true, stream_options: { include_usage: true } };
			expect(await send(golden.route, withUsage)).toEqual({ cache: "HIT", text: golden.stream_with_usage });
		}
	});

	it.each(WITH_USAGE)("%s: a live include_usage stream is passed through with its usage chunk", async (_, golden) => {
		const withUsage = { ...golden.request, stream: true, stream_options: { include_usage: true } };
		expect(await send(golden.route, withUsage)).toEqual({ cache: "MISS", text: golden.stream_with_usage });
		await stored();
		expect(await send(golden.route, { ...golden.request, stream: true })).toEqual({ cache: "HIT", text: golden.stream });
	});

	it.each([
		["breaks off", 'data: {"token":"Hel"}\n\ndata: {"token":"lo"}\n\n'],
		[
			"ends with an error event",
			'data: {"token":"Hel"}\n\ndata: {"error":{"type":"internal_error","message":"generation failed; see the runtime log"}}\n\n',
		],
	])("a stream that %s is passed on as sent and not stored", async (_, broken) => {
		const golden = GOLDENS.generate;
		origin.nextStream = broken;
		expect(await send(golden.route, { ...golden.request, stream: true })).toEqual({ cache: "MISS", text: broken });
		expect(await send(golden.route, { ...golden.request, stream: true })).toEqual({ cache: "MISS", text: golden.stream });
		expect(origin.callsTo(golden.route)).toHaveLength(2);
	});

	it("Cache-Control: no-store streams are not stored", async () => {
		const golden = GOLDENS.generate;
		const response = await call(golden.route, { body: { ...golden.request, stream: true }, key, headers: { "cache-control": "no-store" } });
		expect(await response.text()).toBe(golden.stream);
		expect((await send(golden.route, golden.request)).cache).toBe("MISS");
	});
});

describe("one error vocabulary", () => {
	it("every error type the Worker answers is in contract/errors.json with its status", () => {
		for (const entry of Object.values(vocabulary.types)) expect(entry.status).toBeGreaterThanOrEqual(400);
	});

	it.each(BAD_REQUESTS.map((c) => [c.name, c] as const))("%s: the runtime's error, word for word", async (_, badRequest) => {
		const limits = {
			max_body_bytes: Number(env.MAX_BODY_BYTES),
			max_tokens_limit: Number(env.MAX_TOKENS_LIMIT),
			max_tokens_limit_plus_one: Number(env.MAX_TOKENS_LIMIT) + 1,
		};
		let rawBody: BodyInit | undefined;
		if (badRequest.oversize) rawBody = JSON.stringify({ prompt: "x".repeat(limits.max_body_bytes) });
		else if (badRequest.body_base64) rawBody = Uint8Array.from(atob(badRequest.body_base64), (c) => c.charCodeAt(0));
		else if (badRequest.body !== undefined) rawBody = fill(badRequest.body, limits);
		const headers: Record<string, string> = { ...badRequest.headers };
		if (badRequest.content_type) headers["content-type"] = badRequest.content_type;
		const response = await call(badRequest.route, { method: badRequest.method, rawBody, headers, key });
		expect(response.status).toBe(badRequest.status);
		const expected = { ...badRequest.error, message: fill(badRequest.error.message, limits) };
		const answer = await response.json();
		expect(answer).toEqual({ error: expected });
		expectValid("error.json", answer);
		expect(vocabulary.types[badRequest.error.type as keyof typeof vocabulary.types].status).toBe(badRequest.status);
	});
});
