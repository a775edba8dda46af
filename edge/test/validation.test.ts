// Bad input always gets a JSON 4xx naming the problem, never a 500, and never reaches the origin or the cache.
import { env } from "cloudflare:workers";
import { checkNestingDepth, MAX_JSON_DEPTH } from "../src/admission/http";
import { MAX_USER_CHARS } from "../src/admission/validate";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

const JSON_TYPE = { "content-type": "application/json" };

async function expectError(response: Response, status: number, type: string, field?: string) {
	expect(response.status).toBe(status);
	expect(response.headers.get("content-type")).toContain("application/json");
	const { error } = await response.json<{ error: { type: string; message: string; field?: string } }>();
	expect(error.type).toBe(type);
	expect(error.message.length).toBeGreaterThan(0);
	if (field !== undefined) {
		expect(error.field).toBe(field);
		expect(error.message).toContain(field);
	}
}

describe("request bodies", () => {
	it.each([
		["malformed JSON", '{"prompt": "x"', "invalid_json"],
		["an empty body", "", "invalid_json"],
		["a JSON array", '["x"]', "invalid_json"],
		["JSON null", "null", "invalid_json"],
	])("rejects %s with 400", async (_, rawBody, type) => {
		await expectError(await call("/v1/generate", { rawBody, headers: JSON_TYPE, key }), 400, type);
	});

	it("rejects a body that is not UTF-8", async () => {
		const response = await call("/v1/generate", { rawBody: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]), headers: JSON_TYPE, key });
		await expectError(response, 400, "invalid_json");
	});

	it.each([
		["no content type", {}],
		["text/plain", { "content-type": "text/plain" }],
		["form data", { "content-type": "application/x-www-form-urlencoded" }],
	])("rejects %s with 415", async (_, headers) => {
		await expectError(await call("/v1/generate", { rawBody: '{"prompt":"x"}', headers, key }), 415, "unsupported_media_type");
	});

	it("accepts application/json with a charset", async () => {
		const response = await call("/v1/generate", {
			rawBody: '{"prompt":"charset ok"}',
			headers: { "content-type": "application/json; charset=utf-8" },
			key,
		});
		expect(response.status).toBe(200);
	});

	it("rejects an oversize body with 413, whether or not it declares its length", async () => {
		const huge = JSON.stringify({ prompt: "x".repeat(Number(env.MAX_BODY_BYTES)) });
		await expectError(await call("/v1/generate", { rawBody: huge, headers: JSON_TYPE, key }), 413, "request_too_large");
		const stream = new Blob([huge]).stream();
		const chunked = await call("/v1/generate", { rawBody: stream, headers: JSON_TYPE, key });
		await expectError(chunked, 413, "request_too_large");
	});
});

describe("fields", () => {
	it.each([
		[{}, "prompt"],
		[{ prompt: "" }, "prompt"],
		[{ prompt: "   " }, "prompt"],
		[{ prompt: 42 }, "prompt"],
		[{ prompt: ["a"] }, "prompt"],
		[{ prompt: "x", max_tokens: 0 }, "max_tokens"],
		[{ prompt: "x", max_tokens: 513 }, "max_tokens"],
		[{ prompt: "x", max_tokens: 1.5 }, "max_tokens"],
		[{ prompt: "x", max_tokens: "10" }, "max_tokens"],
		[{ prompt: "x", seed: -1 }, "seed"],
		[{ prompt: "x", seed: 2 ** 32 }, "seed"],
		[{ prompt: "x", stop: 5 }, "stop"],
		[{ prompt: "x", stop: ["a", 1] }, "stop"],
		[{ prompt: "x", stream: "yes" }, "stream"],
		[{ prompt: "x", temperature: "0.7" }, "temperature"],
		[{ prompt: "x", top_k: 2.5 }, "top_k"],
		[{ prompt: "x", min_p: true }, "min_p"],
		[{ prompt: "x", repeat_penalty: [1] }, "repeat_penalty"],
		[{ prompt: "x", n: 2 }, "n"], // choices are an OpenAI field
		[{ prompt: "x", logprobs: 1 }, "logprobs"],
	])("/v1/generate %j → 400 naming %s", async (body, field) => {
		await expectError(await call("/v1/generate", { body, key }), 400, "invalid_request", field);
	});

	it.each([
		["/v1/embed", {}, "input"],
		["/v1/embed", { input: [] }, "input"],
		["/v1/embed", { input: ["ok", ""] }, "input[1]"],
		["/v1/embed", { input: 3 }, "input"],
		["/v1/embeddings", { input: "x", stream: true }, "stream"],
		["/v1/completions", { prompt: "x", max_tokens: 100000 }, "max_tokens"],
		["/v1/chat/completions", { messages: [] }, "messages"],
		["/v1/chat/completions", { messages: "hi" }, "messages"],
		["/v1/chat/completions", { messages: [{ content: "hi" }] }, "messages[0].role"],
		["/v1/chat/completions", { messages: [{ role: "user", content: 1 }] }, "messages[0].content"],
		["/v1/chat/completions", { messages: [{ role: "user", content: "x" }], max_completion_tokens: 0 }, "max_completion_tokens"],
	])("%s %j → 400 naming %s", async (path, body, field) => {
		await expectError(await call(path, { body, key }), 400, "invalid_request", field);
	});

	const chat = { messages: [{ role: "user", content: "x" }] };
	it.each([
		// Each route's allow-list: fields the runtime does not take are refused at the edge, by name.
		["/v1/completions", { prompt: "x", logit_bias: { "50256": -100 } }, "logit_bias"],
		["/v1/completions", { prompt: "x", echo: true }, "echo"],
		["/v1/chat/completions", { ...chat, tools: [] }, "tools"],
		["/v1/chat/completions", { messages: [{ role: "user", content: "x", tool_calls: [] }] }, "messages[0].tool_calls"],
		["/v1/embeddings", { input: "x", dimensions: 8 }, "dimensions"],
		["/v1/embed", { input: "x", model: "m" }, "model"],
		// Transport fields, forwarded but outside the cache key, have exact shapes.
		["/v1/completions", { prompt: "x", stream: "true" }, "stream"],
		["/v1/chat/completions", { ...chat, stream: 1 }, "stream"],
		["/v1/completions", { prompt: "x", stream_options: { steal_this_text: true } }, "stream_options.steal_this_text"],
		["/v1/completions", { prompt: "x", stream_options: "yes" }, "stream_options"],
		["/v1/completions", { prompt: "x", stream_options: [] }, "stream_options"],
		["/v1/chat/completions", { ...chat, stream_options: { include_usage: "yes" } }, "stream_options.include_usage"],
		["/v1/completions", { prompt: "x", user: 42 }, "user"],
		["/v1/completions", { prompt: "x", user: "u".repeat(MAX_USER_CHARS + 1) }, "user"],
		["/v1/embeddings", { input: "x", user: {} }, "user"],
		["/v1/completions", { prompt: "x", model: ["m"] }, "model"],
		["/v1/completions", { prompt: "x", temperature: "0" }, "temperature"],
		["/v1/completions", { prompt: "x", n: 1.5 }, "n"],
		["/v1/completions", { prompt: "x", n: 0 }, "n"],
		["/v1/completions", { prompt: "x", top_p: "1" }, "top_p"],
		["/v1/completions", { prompt: "x", presence_penalty: {} }, "presence_penalty"],
		["/v1/completions", { prompt: "x", frequency_penalty: "0" }, "frequency_penalty"],
		["/v1/completions", { prompt: "x", logprobs: true }, "logprobs"],
		["/v1/completions", { prompt: "x", top_logprobs: 2 }, "top_logprobs"],
		["/v1/chat/completions", { ...chat, logprobs: 1 }, "logprobs"],
		["/v1/chat/completions", { ...chat, top_logprobs: "2" }, "top_logprobs"],
		["/v1/embeddings", { input: "x", encoding_format: "int8" }, "encoding_format"],
		["/v1/chat/completions", { messages: [{ role: "user", content: "x", name: 7 }] }, "messages[0].name"],
	])("%s %j → 400 naming %s", async (path, body, field) => {
		await expectError(await call(path, { body, key }), 400, "invalid_request", field);
		expect(origin.calls.filter((c) => c.path !== "/v1/status")).toHaveLength(0);
	});

	it("forwards every sampling field the runtime takes, as sent (ranges are the runtime's to check)", async () => {
		const sampling = {
			max_tokens: 16,
			seed: 9,
			temperature: 0.7,
			top_p: 0.9,
			top_k: 40,
			min_p: 0.05,
			repeat_penalty: 1.1,
			presence_penalty: -0.5,
			frequency_penalty: 0.5,
		};
		const requests = [
			["/v1/generate", { prompt: "sampled native", ...sampling }],
			["/v1/completions", { model: "gemma3-270m", prompt: "sampled completion", ...sampling, n: 2, logprobs: 3 }],
			[
				"/v1/chat/completions",
				{ model: "gemma3-270m", messages: [{ role: "user", content: "sampled chat" }], ...sampling, n: 2, logprobs: true, top_logprobs: 5 },
			],
		] as const;
		for (const [path, body] of requests) {
			const answered = await call(path, { body, key });
			expect(answered.status, await answered.clone().text()).toBe(200);
			expect(origin.callsTo(path).at(-1)?.body).toEqual(body);
		}
		// An out-of-range value still reaches the runtime, whose 400 names it (the one home of the ranges).
		await call("/v1/completions", { body: { model: "gemma3-270m", prompt: "too hot", temperature: 3 }, key });
		expect(origin.callsTo("/v1/completions").at(-1)?.body).toMatchObject({ temperature: 3 });
	});

	it("accepts a user id of exactly the maximum length", async () => {
		const response = await call("/v1/completions", {
			body: { model: "gemma3-270m", prompt: "user at the cap", user: "u".repeat(MAX_USER_CHARS) },
			key,
		});
		expect(response.status).toBe(200);
	});

	it("refuses an unknown field whose name is not a plain name without echoing it", async () => {
		for (const [path, body] of [
			["/v1/completions", { prompt: "x", "4111111111111111": 1 }],
			["/v1/chat/completions", { messages: [{ role: "user", content: "x", "123-45-6789": "y" }] }],
		] as const) {
			// DLP reads the body before validation: "block" refuses the sensitive name as such (422), "redact"
			// replaces it and the allow-list refuses the redacted name (400). Neither echoes it.
			const blocked = await call(path, { body, key });
			expect(blocked.status).toBe(422);
			expect(await blocked.text()).not.toMatch(/4111|6789/);
			const redacted = await call(path, { body, key, env: { DLP_POLICY: "redact" } });
			expect(redacted.status).toBe(400);
			const text = await redacted.text();
			expect(text).not.toMatch(/4111|6789/);
			expect(text).toContain("not allowed");
		}
	});

	it("lets nothing through to the origin or the cache", async () => {
		const count = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM answer_cache").first<{ n: number }>())?.n;
		const before = await count();
		await call("/v1/generate", { body: { prompt: "" }, key });
		await call("/v1/generate", { rawBody: "{", headers: JSON_TYPE, key });
		expect(origin.calls.filter((c) => c.path !== "/v1/status")).toHaveLength(0);
		expect(await count()).toBe(before);
	});
});

describe("nesting depth", () => {
	const nested = (depth: number, open = "[", close = "]", inner = "1") => open.repeat(depth) + inner + close.repeat(depth);
	const objects = (depth: number) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
	const DEEP_BODY_BYTES = { MAX_BODY_BYTES: "1000000" };

	it.each([
		["arrays in a field", `{"prompt": "x", "stop": ${nested(MAX_JSON_DEPTH)}}`],
		["objects in a field", `{"prompt": "x", "stop": ${objects(MAX_JSON_DEPTH)}}`],
		["100k-deep arrays", `{"prompt": "x", "stop": ${nested(100_000)}}`],
		["100k-deep objects", `{"prompt": "x", "stop": ${objects(100_000)}}`],
		["100k-deep arrays at the top", nested(100_000)],
		["100k unclosed brackets", "[".repeat(100_000)],
	])("refuses %s past the limit with a 400 naming it", async (_, rawBody) => {
		const response = await call("/v1/generate", { rawBody, headers: JSON_TYPE, key, env: DEEP_BODY_BYTES });
		expect(response.status).toBe(400);
		const { error } = await response.json<{ error: { type: string; message: string } }>();
		expect(error.type).toBe("invalid_json");
		expect(error.message).toContain(String(MAX_JSON_DEPTH));
	});

	it("refuses deep nesting in unknown OpenAI fields too, before anything reaches the origin", async () => {
		const rawBody = `{"model": "m", "prompt": "x", "extra": ${nested(30_000)}}`;
		const response = await call("/v1/completions", { rawBody, headers: JSON_TYPE, key });
		await expectError(response, 400, "invalid_json");
		expect(origin.calls).toHaveLength(0);
	});

	it("accepts nesting up to the limit (the field check then decides)", async () => {
		// The body object is level 1, so the field's value may nest MAX_JSON_DEPTH - 1 levels.
		const response = await call("/v1/generate", {
			rawBody: `{"prompt": "x", "stop": ${nested(MAX_JSON_DEPTH - 1)}}`,
			headers: JSON_TYPE,
			key,
		});
		await expectError(response, 400, "invalid_request", "stop");
	});

	it("does not count brackets inside strings, escaped quotes included", async () => {
		const prompt = `${"[".repeat(100)} \" ${"{".repeat(100)} \\`;
		const response = await call("/v1/generate", { body: { prompt }, key });
		expect(response.status).toBe(200);
		expect(() => checkNestingDepth(JSON.stringify({ a: '\\"[[[[' }), 1)).not.toThrow();
		expect(() => checkNestingDepth(String.raw`{"a": "\\", "b": [[1]]}`, 2)).toThrow(/limit of 2/);
	});
});

describe("configuration", () => {
	it.each([
		[{ DLP_POLICY: "warn" }, "DLP_POLICY"],
		[{ ORIGIN_URL: "" }, "ORIGIN_URL"],
		[{ ORIGIN_URL: "ftp://x" }, "ORIGIN_URL"],
		[{ ORIGIN_FALLBACK_URL: "not a url" }, "ORIGIN_FALLBACK_URL"],
		[{ CACHE_TTL_SECONDS: "30" }, "CACHE_TTL_SECONDS"],
		[{ MAX_TOKENS_LIMIT: "many" }, "MAX_TOKENS_LIMIT"],
	])("a bad var %j answers a configuration error that names it", async (vars, name) => {
		const response = await call("/v1/generate", { body: { prompt: "x" }, key, env: vars as Partial<Env> });
		expect(response.status).toBe(500);
		const { error } = await response.json<{ error: { type: string; message: string } }>();
		expect(error.type).toBe("configuration_error");
		expect(error.message).toContain(name);
	});
});
