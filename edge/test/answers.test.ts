// What the Worker does with origin answers it must not trust: a redirect is never followed (the
// credentials would travel to wherever it points), and only a 200 whose content type and JSON shape
// match its route is cached; anything else is answered 502 and never stored.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FAILURE_THRESHOLD } from "../src/origin/breaker";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, uniquePrompt } from "./helpers";

const FINGERPRINT = "0123456789abcdef0123456789abcdef";
type Collected = { method: string; path: string; headers: Record<string, string> };

let key: string;
beforeEach(async () => {
	key = await createKey();
});
afterEach(() => vi.restoreAllMocks());

// These tests use workerd's real fetch: the outbound network is test/node/redirecting-origin.mjs.
describe("redirects from the origin", () => {
	const collected = async () => (await fetch("http://recorder.test/calls")).json<Collected[]>();
	const redirecting = { ORIGIN_URL: "http://redirecting-origin.test", ORIGIN_FALLBACK_URL: "", MODEL_FINGERPRINT: FINGERPRINT };
	beforeEach(async () => {
		await fetch("http://recorder.test/calls", { method: "DELETE" });
	});

	it("the test network really follows a redirect by default, credentials and all", async () => {
		await fetch("http://redirecting-origin.test/v1/generate", {
			method: "POST",
			headers: { "CF-Access-Client-Secret": "would leak" },
			body: "{}",
		});
		expect((await collected()).map((call) => call.headers["cf-access-client-secret"])).toEqual(["would leak"]);
	});

	it.each([
		["POST /v1/generate", "/v1/generate", { prompt: "redirected" }],
		["GET /v1/models", "/v1/models", undefined],
	])("%s: a 3xx is an origin failure, never followed, so the credentials never reach the other host", async (_label, path, body) => {
		const id = crypto.randomUUID().slice(0, 8);
		// A host of its own, so the breaker this test trips is not shared with the other cases.
		const origin = { ...redirecting, ORIGIN_URL: `http://redirecting-origin.test/${id}` };
		const response = await call(path, { body, key, env: origin });
		expect(response.status).toBe(503);
		expect((await response.json<{ error: { type: string } }>()).error.type).toBe("origin_unavailable");
		expect(await collected()).toEqual([]);
	});

	it(`opens the breaker after ${FAILURE_THRESHOLD} redirects like any other origin failure`, async () => {
		const id = crypto.randomUUID().slice(0, 8);
		const origin = { ...redirecting, ORIGIN_URL: `http://redirecting-origin.test/${id}` };
		const spy = vi.spyOn(globalThis, "fetch");
		for (let i = 0; i < FAILURE_THRESHOLD; i++) await call("/v1/generate", { body: { prompt: uniquePrompt("trip") }, key, env: origin });
		const calls = spy.mock.calls.length;
		expect((await call("/v1/generate", { body: { prompt: uniquePrompt("open") }, key, env: origin })).status).toBe(503);
		expect(spy.mock.calls.length).toBe(calls);
	});
});

describe("only answers with their route's shape are cached", () => {
	let origin: FakeOrigin;
	beforeEach(() => {
		origin = installFakeOrigin();
	});

	const json = (payload: unknown, contentType = "application/json") =>
		new Response(JSON.stringify(payload), { headers: { "content-type": contentType, "x-model-fingerprint": FINGERPRINT } });
	const html = () => new Response("<html><body>Sign in to continue</body></html>", { headers: { "content-type": "text/html" } });
	const BAD_ANSWERS: [string, () => Response][] = [
		["an HTML page", html],
		["a JSON error sent with 200", () => json({ error: { type: "oops", message: "sorry" } })],
		["JSON of another route's shape", () => json({ embeddings: [[0.1, 0.2]], dim: 2 })],
		["the right shape as text/plain", () => json({ text: "hi", finish_reason: "stop" }, "text/plain")],
		["no content type", () => new Response(new TextEncoder().encode(JSON.stringify({ text: "hi" })))],
		["truncated JSON", () => new Response('{"text": "hi", "finish', { headers: { "content-type": "application/json" } })],
	];

	it.each(BAD_ANSWERS)("a 200 with %s is answered 502 and never stored", async (_label, answer) => {
		origin.set("origin-primary.test", { respond: answer });
		const body = { prompt: uniquePrompt("bad answer") };
		const response = await call("/v1/generate", { body, key });
		expect(response.status).toBe(502);
		expect((await response.json<{ error: { type: string } }>()).error.type).toBe("bad_origin_answer");
		origin.set("origin-primary.test", {});
		const again = await call("/v1/generate", { body, key });
		expect(again.status).toBe(200);
		expect(again.headers.get("x-cache")).toBe("MISS");
		expect(origin.callsTo("/v1/generate")).toHaveLength(2);
	});

	// A well-formed answer of each route (the fake origin's own), then one field that breaks its shape.
	it.each([
		["/v1/generate", (text: string) => ({ prompt: text }), (a: any) => ({ ...a, text: 5 })],
		["/v1/embed", (text: string) => ({ input: text }), (a: any) => ({ ...a, embeddings: "none" })],
		["/v1/completions", (text: string) => ({ model: "gemma3-270m", prompt: text }), (a: any) => ({ ...a, object: "chat.completion" })],
		[
			"/v1/chat/completions",
			(text: string) => ({ model: "gemma3-270m", messages: [{ role: "user", content: text }] }),
			(a: any) => ({ ...a, choices: [] }),
		],
		[
			"/v1/embeddings",
			(text: string) => ({ model: "gemma3-270m", input: text }),
			(a: any) => ({ ...a, data: [{ object: "embedding", index: 0, embedding: {} }] }),
		],
	])("%s: the route's own shape is cached, a broken one is not", async (path, bodyOf, breakShape) => {
		const good = await call(path, { body: bodyOf(uniquePrompt("good")), key });
		expect(good.status).toBe(200);
		const goodAnswer = await good.json();
		expect(await env.CACHE.get(good.headers.get("x-cache-key")!)).not.toBeNull();

		origin.set("origin-primary.test", { respond: () => json(breakShape(goodAnswer)) });
		const uncached = bodyOf(uniquePrompt("broken"));
		const bad = await call(path, { body: uncached, key });
		expect(bad.status).toBe(502);
		origin.set("origin-primary.test", {});
		expect((await call(path, { body: uncached, key })).headers.get("x-cache")).toBe("MISS");
	});

	it("/v1/embeddings with encoding_format base64 (a string per vector) is an answer of its shape, served and cached", async () => {
		const body = { model: "gemma3-270m", input: uniquePrompt("base64 vectors"), encoding_format: "base64" };
		const first = await call("/v1/embeddings", { body, key });
		expect(first.status).toBe(200);
		const answer = await first.json<{ data: { embedding: string }[] }>();
		expect(typeof answer.data[0].embedding).toBe("string");
		const again = await call("/v1/embeddings", { body, key });
		expect(again.headers.get("x-cache")).toBe("HIT");
		expect(await again.json()).toEqual(answer);
		expect(origin.callsTo("/v1/embeddings")).toHaveLength(1);
	});

	it("passes a non-200 answer through without storing it", async () => {
		origin.set("origin-primary.test", { fail: 429 });
		const body = { prompt: uniquePrompt("busy") };
		const busy = await call("/v1/generate", { body, key });
		expect(busy.status).toBe(429);
		expect(busy.headers.get("retry-after")).toBe("3");
		expect((await busy.json<{ error: { type: string } }>()).error.type).toBe("queue_full");
		origin.set("origin-primary.test", {});
		expect((await call("/v1/generate", { body, key })).headers.get("x-cache")).toBe("MISS");
	});
});
