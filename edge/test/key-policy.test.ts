// Richer API keys: route and model scopes, expiry, rotation with an overlap window, and records written
// before those fields existed.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { scopedRoute } from "../src/admission/scopes";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { ROUTES } from "./contract";
import { call, createKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
beforeEach(() => {
	origin = installFakeOrigin();
});
afterEach(() => vi.restoreAllMocks());

type ErrorBody = { error: { type: string; message: string; field?: string } };
const nowSeconds = () => Math.floor(Date.now() / 1000);
const generate = (key: string, path = "/v1/generate") => call(path, { body: { prompt: uniquePrompt("policy") }, key });
const completion = (key: string, model?: string) =>
	call("/v1/completions", { body: { ...(model === undefined ? {} : { model }), prompt: uniquePrompt("policy") }, key });

describe("route scopes", () => {
	it("refuses a route outside the scope with 403 naming it, before the body or the origin is touched", async () => {
		const key = await createKey({ policy: { scope_routes: ["/v1/embed"] } });
		for (const path of ["/v1/generate", "/generate"]) {
			const refused = await call(path, { rawBody: "not even json", headers: { "content-type": "application/json" }, key });
			expect(refused.status).toBe(403);
			const { error } = await refused.json<ErrorBody>();
			expect(error.type).toBe("forbidden");
			expect(error.message).toContain("/v1/generate");
			expect(error.message).toContain('"/v1/embed"');
		}
		expect(origin.calls).toHaveLength(0);
		expect((await call("/v1/embed", { body: { input: uniquePrompt("scope") }, key })).status).toBe(200);
		expect((await call("/embed", { body: { input: uniquePrompt("scope") }, key })).status).toBe(200);
	});

	it("has no path or method variant that reaches a route outside the scope", async () => {
		// The router matches the exact path and method, and the scope reads the same path: every spelling of
		// /v1/generate a proxy might accept is either that route (and refused) or no route at all.
		const key = await createKey({ policy: { scope_routes: ["/v1/embed"] } });
		const body = { prompt: uniquePrompt("variant") };
		for (const path of [
			"/v1/generate/",
			"/V1/generate",
			"/v1/GENERATE",
			"/v1/%67enerate",
			"/v1%2Fgenerate",
			"/v1//generate",
			"/GENERATE",
		]) {
			expect([path, (await call(path, { body, key })).status]).toEqual([path, 404]);
		}
		for (const path of ["/v1/./generate", "/v1/embed/../generate"]) {
			expect([path, (await call(path, { body, key })).status]).toEqual([path, 403]);
		}
		for (const method of ["HEAD", "OPTIONS", "GET", "PUT"]) {
			expect([method, (await call("/v1/generate", { key, method })).status]).toEqual([method, 405]);
		}
		expect(origin.calls).toHaveLength(0);
	});

	it("refuses even a request whose answer is cached", async () => {
		const body = { prompt: uniquePrompt("cached for another key") };
		expect((await call("/v1/generate", { body, key: await createKey() })).headers.get("x-cache")).toBe("MISS");
		const scoped = await createKey({ policy: { scope_routes: ["/v1/chat/completions"] } });
		const refused = await call("/v1/generate", { body, key: scoped });
		expect(refused.status).toBe(403);
		expect(refused.headers.get("x-cache")).toBeNull();
	});

	it("can name every contract route, and leaves the model list open", async () => {
		for (const route of Object.keys(ROUTES)) expect(scopedRoute(route)).toBe(route);
		expect(scopedRoute("/generate")).toBe("/v1/generate");
		expect(scopedRoute("/v1/models")).toBeNull();
		const key = await createKey({ policy: { scope_routes: ["/v1/embed"] } });
		expect((await call("/v1/models", { key })).status).toBe(200);
	});
});

describe("model scopes", () => {
	it("allows the named model and refuses another with 403 naming it", async () => {
		const key = await createKey({ policy: { scope_models: ["gemma3-270m"] } });
		expect((await completion(key, "gemma3-270m")).status).toBe(200);
		const refused = await completion(key, "someone-elses-model");
		expect(refused.status).toBe(403);
		const { error } = await refused.json<ErrorBody>();
		expect([error.type, error.field]).toEqual(["forbidden", "model"]);
		expect(error.message).toContain('"someone-elses-model"');
		expect(error.message).toContain('"gemma3-270m"');
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
	});

	it("refuses a request that names no model, as the native routes do not", async () => {
		const key = await createKey({ policy: { scope_models: ["gemma3-270m"] } });
		for (const refused of [await completion(key), await generate(key)]) {
			expect(refused.status).toBe(403);
			expect((await refused.json<ErrorBody>()).error.message).toContain("name one in `model`");
		}
		expect(origin.calls.filter((c) => c.method === "POST")).toHaveLength(0);
	});
});

describe("expiry", () => {
	it("refuses an expired key naming when it expired, from KV and from D1", async () => {
		const expiresAt = nowSeconds() - 60;
		for (const where of [{}, { d1Only: true }]) {
			const refused = await generate(await createKey({ ...where, policy: { expires_at: expiresAt } }));
			expect(refused.status).toBe(403);
			const { error } = await refused.json<ErrorBody>();
			expect(error.type).toBe("forbidden");
			expect(error.message).toBe(`API key expired at ${new Date(expiresAt * 1000).toISOString()}`);
		}
		expect(origin.calls).toHaveLength(0);
	});

	it("accepts a key before its expiry", async () => {
		expect((await generate(await createKey({ policy: { expires_at: nowSeconds() + 3600 } }))).status).toBe(200);
	});
});

describe("rotation", () => {
	it("keeps the old key working during the overlap", async () => {
		const key = await createKey({ policy: { rotated_at: nowSeconds() - 10, valid_until: nowSeconds() + 3600, replaced_by: "key_new" } });
		expect((await generate(key)).status).toBe(200);
	});

	it("refuses the old key after the overlap, saying it was rotated, when, and by which key", async () => {
		const rotatedAt = nowSeconds() - 7200;
		const validUntil = nowSeconds() - 1;
		for (const where of [{}, { d1Only: true }]) {
			const key = await createKey({ ...where, policy: { rotated_at: rotatedAt, valid_until: validUntil, replaced_by: "key_successor" } });
			const refused = await generate(key);
			expect(refused.status).toBe(403);
			const { error } = await refused.json<ErrorBody>();
			expect(error.message).toContain(`rotated at ${new Date(rotatedAt * 1000).toISOString()}`);
			expect(error.message).toContain("key_successor");
			expect(error.message).toContain(`ended at ${new Date(validUntil * 1000).toISOString()}`);
		}
	});
});

describe("records written before scopes, expiry, rotation and budgets", () => {
	it("work as before, from KV (fields absent) and from D1 (columns NULL)", async () => {
		// createKey without a policy writes exactly the old KV shape: id, name, key_hash, created_at, revoked.
		for (const where of [{ kvOnly: true }, { d1Only: true }]) {
			const key = await createKey(where);
			expect((await generate(key)).status).toBe(200);
			expect((await completion(key, "gemma3-270m")).status).toBe(200);
			expect((await call("/v1/embed", { body: { input: uniquePrompt("old") }, key })).status).toBe(200);
		}
	});
});
