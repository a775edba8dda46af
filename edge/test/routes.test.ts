// Every route answers in its documented shape, through the fake origin.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FINGERPRINT, type FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

describe("routes", () => {
	it("GET /health answers without auth and without touching the origin", async () => {
		const response = await call("/health");
		expect(response.status).toBe(200);
		expect(await response.json()).toEqual({ status: "ok" });
		expect(origin.calls).toHaveLength(0);
	});

	it.each(["/v1/generate", "/generate"])("POST %s generates through the runtime's native route", async (path) => {
		const prompt = uniquePrompt("native");
		const response = await call(path, { body: { prompt, max_tokens: 8, seed: 7 }, key });
		expect(response.status).toBe(200);
		expect(response.headers.get("x-model-fingerprint")).toBe(FINGERPRINT);
		const answer = await response.json<{ text: string; fingerprint: string }>();
		expect(answer.text).toBe(origin.generatedText({ prompt, max_tokens: 8, seed: 7 }));
		expect(origin.callsTo("/v1/generate")[0].body).toEqual({ prompt, max_tokens: 8, seed: 7 });
	});

	it.each(["/v1/embed", "/embed"])("POST %s embeds one or many inputs", async (path) => {
		const response = await call(path, { body: { input: [uniquePrompt("a"), uniquePrompt("b")] }, key });
		expect(response.status).toBe(200);
		const answer = await response.json<{ embeddings: number[][]; dim: number }>();
		expect(answer.embeddings).toHaveLength(2);
		expect(origin.callsTo("/v1/embed")).toHaveLength(1);
	});

	it("POST /v1/completions forwards exactly the validated OpenAI fields", async () => {
		const prompt = uniquePrompt("openai");
		const body = {
			model: "gemma3-270m",
			prompt,
			max_tokens: 4,
			temperature: 0,
			top_p: 1,
			n: 1,
			seed: 3,
			stop: ["\n"],
			user: "u-1",
			stream_options: { include_usage: true },
		};
		const response = await call("/v1/completions", { body, key });
		expect(response.status).toBe(200);
		expect((await response.json<{ object: string }>()).object).toBe("text_completion");
		expect(origin.callsTo("/v1/completions")[0].body).toEqual(body);
	});

	it("drops fields sent as null (the OpenAI clients' way of saying 'default') before the origin", async () => {
		const prompt = uniquePrompt("nulls");
		const response = await call("/v1/completions", { body: { model: "gemma3-270m", prompt, stop: null, user: null, seed: null }, key });
		expect(response.status).toBe(200);
		expect(origin.callsTo("/v1/completions")[0].body).toEqual({ model: "gemma3-270m", prompt });
	});

	it("POST /v1/chat/completions", async () => {
		const messages = [{ role: "user", content: uniquePrompt("chat") }];
		const response = await call("/v1/chat/completions", { body: { model: "gemma3-270m", messages, max_tokens: 4 }, key });
		expect(response.status).toBe(200);
		const answer = await response.json<{ choices: { message: { content: string } }[] }>();
		expect(answer.choices[0].message.content).toBe(origin.generatedText({ messages, max_tokens: 4 }));
		const named = [{ role: "system", content: "be brief", name: "setup" }, ...messages];
		await call("/v1/chat/completions", {
			body: { model: "gemma3-270m", messages: named, max_completion_tokens: 4, stream: false, user: "u" },
			key,
		});
		expect(origin.callsTo("/v1/chat/completions")[1].body).toEqual({
			model: "gemma3-270m",
			messages: named,
			max_completion_tokens: 4,
			stream: false,
			user: "u",
		});
	});

	it("POST /v1/embeddings", async () => {
		const response = await call("/v1/embeddings", { body: { input: uniquePrompt("emb"), model: "gemma3-270m" }, key });
		expect(response.status).toBe(200);
		expect((await response.json<{ data: unknown[] }>()).data).toHaveLength(1);
	});

	it("GET /v1/models passes the runtime's list through", async () => {
		const response = await call("/v1/models", { key });
		expect(response.status).toBe(200);
		expect(await response.json()).toEqual({ object: "list", data: [{ id: "gemma3-270m", object: "model" }] });
	});

	it("sends the Access service token and the runtime bearer to the origin, never the client's key", async () => {
		await call("/v1/generate", { body: { prompt: uniquePrompt("headers") }, key });
		for (const sent of origin.calls) {
			expect(sent.headers.get("cf-access-client-id")).toBe("test-access-id.access");
			expect(sent.headers.get("cf-access-client-secret")).toBe("test-access-secret");
			expect(sent.headers.get("authorization")).toBe("Bearer test-origin-token");
			expect([...sent.headers.values()].join(" ")).not.toContain(key);
		}
	});

	it("passes the runtime's own 4xx through and does not cache it", async () => {
		const first = await call("/v1/generate", { body: { prompt: "origin says no" }, key });
		expect(first.status).toBe(400);
		expect(await first.json()).toEqual({ error: { type: "invalid_request", message: "prompt: is too long", field: "prompt" } });
		const second = await call("/v1/generate", { body: { prompt: "origin says no" }, key });
		expect(second.status).toBe(400);
		expect(origin.callsTo("/v1/generate")).toHaveLength(2);
	});

	it("answers an unknown path with a JSON 404", async () => {
		const response = await call("/v2/nothing", { key });
		expect(response.status).toBe(404);
		expect((await response.json<{ error: { type: string } }>()).error.type).toBe("not_found");
	});

	it("answers a wrong method with a JSON 405 and Allow", async () => {
		const response = await call("/v1/generate", { method: "GET", key });
		expect(response.status).toBe(405);
		expect(response.headers.get("allow")).toBe("POST");
		expect((await response.json<{ error: { type: string } }>()).error.type).toBe("method_not_allowed");
		expect((await call("/health", { method: "DELETE" })).status).toBe(405);
	});
});
