// Bad input always gets a JSON 4xx naming the problem, never a 500, and never reaches the origin or the cache.
import { env } from "cloudflare:workers";
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
		["a JSON array", '["x"]', "invalid_request"],
		["JSON null", "null", "invalid_request"],
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
		const response = await call("/v1/generate", { rawBody: '{"prompt":"charset ok"}', headers: { "content-type": "application/json; charset=utf-8" }, key });
		expect(response.status).toBe(200);
	});

	it("rejects an oversize body with 413, whether or not it declares its length", async () => {
		const huge = JSON.stringify({ prompt: "x".repeat(Number(env.MAX_BODY_BYTES)) });
		await expectError(await call("/v1/generate", { rawBody: huge, headers: JSON_TYPE, key }), 413, "payload_too_large");
		const stream = new Blob([huge]).stream();
		const chunked = await call("/v1/generate", { rawBody: stream, headers: JSON_TYPE, key });
		await expectError(chunked, 413, "payload_too_large");
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
		[{ prompt: "x", temperature: 0.7 }, "temperature"],
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

	it("lets nothing through to the origin or the cache", async () => {
		const count = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM answer_cache").first<{ n: number }>())?.n;
		const before = await count();
		await call("/v1/generate", { body: { prompt: "" }, key });
		await call("/v1/generate", { rawBody: "{", headers: JSON_TYPE, key });
		expect(origin.calls.filter((c) => c.path !== "/v1/status")).toHaveLength(0);
		expect(await count()).toBe(before);
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
