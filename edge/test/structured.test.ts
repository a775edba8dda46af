// Structured output at the edge: response_format and json_schema are shape-checked, forwarded whole (so
// the cache key covers every part of the schema), DLP-scanned like any value, and refused by name when
// malformed, before anything reaches the origin or the cache.
import { beforeEach, describe, expect, it } from "vitest";
import type { FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));

const SCHEMA = {
	type: "object",
	properties: { name: { type: "string", maxLength: 20 }, ok: { type: "boolean" } },
	required: ["name", "ok"],
	additionalProperties: false,
};
const inferenceCalls = () => origin.calls.filter((c) => c.path !== "/v1/status");
const chatBody = (label: string, response_format: unknown) => ({
	model: "gemma3-270m",
	messages: [{ role: "user", content: uniquePrompt(label) }],
	response_format,
});

async function expectRefused(path: string, body: unknown, field: string, message?: string) {
	const response = await call(path, { body, key });
	expect(response.status).toBe(400);
	const { error } = await response.json<{ error: { type: string; message: string; field: string } }>();
	expect(error.type).toBe("invalid_request");
	expect(error.field).toBe(field);
	if (message) expect(error.message).toBe(`${field}: ${message}`);
	expect(inferenceCalls()).toHaveLength(0);
}

describe("structured output fields", () => {
	const format = (json_schema: unknown) => ({ type: "json_schema", json_schema });
	it.each([
		["/v1/generate", { prompt: "x", json_schema: "object" }, "json_schema", "must be an object"],
		["/v1/generate", { prompt: "x", json_schema: [SCHEMA] }, "json_schema", "must be an object"],
		["/v1/generate", { prompt: "x", response_format: { type: "json_object" } }, "response_format", undefined],
		["/v1/chat/completions", chatBody("a", "json"), "response_format", "must be an object"],
		[
			"/v1/chat/completions",
			chatBody("b", { type: "xml" }),
			"response_format.type",
			"must be one of 'text', 'json_object' or 'json_schema'",
		],
		["/v1/chat/completions", chatBody("c", {}), "response_format.type", "is required"],
		["/v1/chat/completions", chatBody("d", { type: "json_schema" }), "response_format.json_schema", "is required when type is json_schema"],
		[
			"/v1/chat/completions",
			chatBody("e", { type: "json_object", json_schema: { name: "a", schema: SCHEMA } }),
			"response_format.json_schema",
			"is only allowed with type json_schema",
		],
		["/v1/chat/completions", chatBody("f", { type: "text", extra: 1 }), "response_format.extra", undefined],
		["/v1/chat/completions", chatBody("g", format({ schema: SCHEMA })), "response_format.json_schema.name", "is required"],
		[
			"/v1/chat/completions",
			chatBody("h", format({ name: "has space", schema: SCHEMA })),
			"response_format.json_schema.name",
			"must match ^[A-Za-z0-9_-]{1,64}$",
		],
		["/v1/chat/completions", chatBody("i", format({ name: "a" })), "response_format.json_schema.schema", "is required"],
		["/v1/chat/completions", chatBody("j", format({ name: "a", schema: true })), "response_format.json_schema.schema", "must be an object"],
		[
			"/v1/chat/completions",
			chatBody("k", format({ name: "a", schema: SCHEMA, strict: "yes" })),
			"response_format.json_schema.strict",
			"must be a boolean",
		],
		["/v1/chat/completions", chatBody("l", format({ name: "a", schema: SCHEMA, refs: {} })), "response_format.json_schema.refs", undefined],
		[
			"/v1/completions",
			{ model: "m", prompt: "x", response_format: format({ name: "a", schema: SCHEMA, description: 5 }) },
			"response_format.json_schema.description",
			"must be a string",
		],
	])("%s %j → 400 naming the field", async (path, body, field, message) => {
		await expectRefused(path, body, field, message);
	});

	it("forwards the whole schema, dropping nulls the client sent for defaults", async () => {
		const json_schema = { name: "person", schema: SCHEMA, strict: null, description: null };
		const response = await call("/v1/chat/completions", { body: chatBody("forward", { type: "json_schema", json_schema }), key });
		expect(response.status).toBe(200);
		expect(inferenceCalls().at(-1)!.body!.response_format).toEqual({
			type: "json_schema",
			json_schema: { name: "person", schema: SCHEMA },
		});

		const prompt = uniquePrompt("native schema");
		expect((await call("/v1/generate", { body: { prompt, json_schema: SCHEMA }, key })).status).toBe(200);
		expect(inferenceCalls().at(-1)!.body).toEqual({ prompt, json_schema: SCHEMA });
	});

	it("keys the cache on every part of the schema, but not on the order of an object's keys", async () => {
		const prompt = uniquePrompt("schema key");
		const ask = async (json_schema: unknown) => {
			const response = await call("/v1/generate", { body: { prompt, json_schema }, key });
			expect(response.status).toBe(200);
			return { key: response.headers.get("x-cache-key"), cache: response.headers.get("x-cache") };
		};
		const first = await ask(SCHEMA);
		const tighter = await ask({ ...SCHEMA, properties: { ...SCHEMA.properties, name: { type: "string", maxLength: 19 } } });
		expect(tighter.key).not.toBe(first.key);
		expect(tighter.cache).toBe("MISS");
		const plain = await call("/v1/generate", { body: { prompt }, key });
		expect(plain.headers.get("x-cache-key")).not.toBe(first.key);
		// The runtime writes properties in `required`'s order (docs/runtime.md), so key order cannot change
		// the answer and canonical JSON may sort it away.
		const reordered = await ask({
			additionalProperties: false,
			required: SCHEMA.required,
			properties: { ok: SCHEMA.properties.ok, name: SCHEMA.properties.name },
			type: "object",
		});
		expect(reordered.key).toBe(first.key);
		expect(reordered.cache).toBe("HIT");
		const requiredSwapped = await ask({ ...SCHEMA, required: ["ok", "name"] });
		expect(requiredSwapped.key).not.toBe(first.key);
	});

	it("scans the schema with DLP like every other value", async () => {
		const schema = { ...SCHEMA, description: "card 4111111111111111" };
		const response = await call("/v1/generate", { body: { prompt: uniquePrompt("dlp schema"), json_schema: schema }, key });
		expect(response.status).toBe(422);
		expect(await response.text()).not.toContain("4111111111111111");
		expect(inferenceCalls()).toHaveLength(0);
	});
});
