// /v1/rerank through the Worker: each (query, document) pair is cached on its own, so a list that overlaps
// an earlier one sends only its new documents to the origin; the Worker orders, cuts (top_n) and renders
// the answer itself, in the same bytes whatever was cached; validation, leases and coalescing as on every
// route. The per-pair answer bytes against the real runtime are pinned by contract.test.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { pythonFloat } from "../src/cache/rerank-answer";
import type { FakeOrigin } from "./fake-origin";
import { call, createKey, freshOriginAndKey, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => {
	({ origin, key } = await freshOriginAndKey());
});
afterEach(() => vi.restoreAllMocks());

type Result = { index: number; relevance_score: number; document?: { text: string } };

async function rerank(body: object, headers: Record<string, string> = {}) {
	const response = await call("/v1/rerank", { body, key, headers });
	const text = await response.text();
	return { status: response.status, cache: response.headers.get("x-cache"), text, answer: JSON.parse(text) };
}

const sentDocuments = () => origin.callsTo("/v1/rerank").map((c) => c.body!.documents as string[]);
const scoreOf = (results: Result[], index: number) => results.find((r) => r.index === index)!.relevance_score;

describe("per-pair caching", () => {
	it("an overlapping list sends only its new documents, and shared documents keep their scores", async () => {
		const query = uniquePrompt("query");
		const [a, b, c, d] = ["alpha", "bravo text", "charlie words", "delta"].map((w) => uniquePrompt(w));
		const first = await rerank({ query, documents: [a, b, c] });
		expect(first).toMatchObject({ status: 200, cache: "MISS" });
		const second = await rerank({ query, documents: [b, c, d] });
		expect(second).toMatchObject({ status: 200, cache: "PARTIAL" });
		expect(sentDocuments()).toEqual([[a, b, c], [d]]);
		expect(scoreOf(second.answer.results, 0)).toBe(scoreOf(first.answer.results, 1));
		expect(scoreOf(second.answer.results, 1)).toBe(scoreOf(first.answer.results, 2));
		const third = await call("/v1/rerank", { body: { query, documents: [d, a] }, key });
		expect(third.headers.get("x-cache")).toBe("HIT");
		expect(["memory", "kv", "d1"]).toContain(third.headers.get("x-cache-tier"));
		expect(third.headers.get("x-steadytext-tokens-saved")).toBe(String(80 + Array.from(d + a).length));
		expect(origin.callsTo("/v1/rerank")).toHaveLength(2);
	});

	it("a list answers the same bytes whether its pairs were cached, partly cached or scored now", async () => {
		const query = uniquePrompt("query");
		const documents = ["one", "two two", "three three three"].map((w) => uniquePrompt(w));
		const body = { query, documents, return_documents: true };
		const fresh = await rerank(body, { "cache-control": "no-store" });
		expect(fresh.cache).toBe("BYPASS");
		await rerank({ query, documents: [documents[1]] });
		const partial = await rerank(body);
		const hit = await rerank(body);
		expect([partial.cache, hit.cache]).toEqual(["PARTIAL", "HIT"]);
		expect(partial.text).toBe(fresh.text);
		expect(hit.text).toBe(fresh.text);
	});

	it("a pair is cached per query: another query scores the same documents again", async () => {
		const documents = [uniquePrompt("doc")];
		await rerank({ query: uniquePrompt("first"), documents });
		expect((await rerank({ query: uniquePrompt("second"), documents })).cache).toBe("MISS");
		expect(origin.callsTo("/v1/rerank")).toHaveLength(2);
	});

	it("a repeated document is sent once and listed (and counted) as often as given", async () => {
		const query = uniquePrompt("query");
		const [a, b] = [uniquePrompt("aa"), uniquePrompt("bb")];
		const { answer } = await rerank({ query, documents: [a, b, a] });
		expect(sentDocuments()).toEqual([[a, b]]);
		expect(answer.results.map((r: Result) => r.index).sort()).toEqual([0, 1, 2]);
		expect(scoreOf(answer.results, 0)).toBe(scoreOf(answer.results, 2));
		const tokens = (text: string) => 40 + Array.from(text).length; // the fake origin's count
		expect(answer.usage).toEqual({ prompt_tokens: 2 * tokens(a) + tokens(b), total_tokens: 2 * tokens(a) + tokens(b) });
	});

	it("orders, cuts and adds documents itself: the origin never sees top_n or return_documents", async () => {
		const query = uniquePrompt("query");
		const documents = ["b", "ab", "ba", "zz", "abc"].map((w) => `${w} ${query}`); // "ab…" and "ba…" tie
		const full = (await rerank({ query, documents })).answer.results as Result[];
		const keys = full.map((r) => [-r.relevance_score, r.index]);
		expect(keys).toEqual([...keys].sort((x, y) => x[0] - y[0] || x[1] - y[1]));
		expect(scoreOf(full, 1)).toBe(scoreOf(full, 2));
		expect(full.findIndex((r) => r.index === 1) + 1).toBe(full.findIndex((r) => r.index === 2));
		const top = (await rerank({ query, documents, top_n: 2, return_documents: true })).answer.results as Result[];
		expect(top).toEqual(full.slice(0, 2).map((r) => ({ ...r, document: { text: documents[r.index] } })));
		expect(origin.callsTo("/v1/rerank").map((c) => Object.keys(c.body!).sort())).toEqual([["documents", "query"]]);
	});

	it("Cache-Control: no-cache scores every document and stores them; no-store stores nothing", async () => {
		const query = uniquePrompt("query");
		const documents = [uniquePrompt("x"), uniquePrompt("y")];
		await rerank({ query, documents: [documents[0]] }, { "cache-control": "no-store" });
		expect((await rerank({ query, documents })).cache).toBe("MISS");
		expect((await rerank({ query, documents }, { "cache-control": "no-cache" })).cache).toBe("BYPASS");
		expect(sentDocuments()).toEqual([[documents[0]], documents, documents]);
	});

	it("identical concurrent misses make one origin call", async () => {
		origin.set("origin-primary.test", { delayMs: 150 });
		const body = { query: uniquePrompt("query"), documents: [uniquePrompt("p"), uniquePrompt("q")] };
		const answers = await Promise.all(Array.from({ length: 4 }, () => rerank(body)));
		expect(new Set(answers.map((a) => a.text)).size).toBe(1);
		expect(origin.callsTo("/v1/rerank")).toHaveLength(1);
	});

	it("a broken origin answer is a 502 and no pair is stored", async () => {
		const body = { query: uniquePrompt("query"), documents: [uniquePrompt("p")] };
		origin.set("origin-primary.test", {
			respond: () => Response.json({ model: "m", fingerprint: "0".repeat(32), results: [], usage: {} }),
		});
		expect((await rerank(body)).status).toBe(502);
		origin.hosts.clear();
		expect((await rerank(body)).cache).toBe("MISS");
	});

	it("the origin's refusal is passed on as it came", async () => {
		const response = await rerank({ query: uniquePrompt("query"), documents: [uniquePrompt("p")], model: "another-model" });
		expect(response.status).toBe(200); // the fake serves any model name: the real one is checked end to end
		origin.set("origin-primary.test", { fail: 400 });
		const refused = await call("/v1/rerank", { body: { query: uniquePrompt("query"), documents: ["x"] }, key });
		expect(refused.status).toBe(400);
		expect(await refused.text()).toBe("origin failure");
	});
});

describe("admission and validation", () => {
	it("needs a key before anything is read", async () => {
		const response = await call("/v1/rerank", { body: { query: "q", documents: [] } });
		expect(response.status).toBe(401);
		expect(origin.calls).toHaveLength(0);
	});

	it.each([
		[{ query: "q", documents: [] }, "documents: must not be an empty array"],
		[{ query: "q", documents: Array(65).fill("a") }, "documents: must have at most 64 items"],
		[{ query: "q", documents: ["a", 3] }, "documents[1]: must be a string"],
		[{ query: " ", documents: ["a"] }, "query: must not be empty"],
		[{ query: "q", documents: ["a"], top_n: 1.5 }, "top_n: must be an integer"],
		[{ query: "q", documents: ["a"], return_documents: "yes" }, "return_documents: must be a boolean"],
		[
			{ query: "q", documents: ["a"], rank_fields: ["text"] },
			"rank_fields: is not a known field (allowed: model, query, documents, top_n, return_documents)",
		],
	])("%# → 400", async (body, message) => {
		const response = await call("/v1/rerank", { body, key });
		expect(response.status).toBe(400);
		expect(((await response.json()) as { error: { message: string } }).error.message).toBe(message);
		expect(origin.calls.filter((c) => c.method === "POST")).toHaveLength(0);
	});

	it("a model-scoped key must name its model, and gets no pair of another model", async () => {
		const key = await createKey({ policy: { scope_models: ["gemma3-270m"] } });
		const body = { query: uniquePrompt("query"), documents: [uniquePrompt("p")] };
		expect((await call("/v1/rerank", { body, key })).status).toBe(403);
		expect((await call("/v1/rerank", { body: { ...body, model: "another" }, key })).status).toBe(403);
		expect((await call("/v1/rerank", { body: { ...body, model: "gemma3-270m" }, key })).status).toBe(200);
		expect(origin.callsTo("/v1/rerank")).toHaveLength(1);
	});

	it("a receipt is refused: a rerank's answer is assembled from pairs", async () => {
		const response = await call("/v1/rerank", {
			body: { query: "q", documents: ["a"] },
			key,
			headers: { "x-steadytext-receipt": "request" },
		});
		expect(response.status).toBe(400);
		expect(((await response.json()) as { error: { field: string } }).error.field).toBe("X-Steadytext-Receipt");
		expect(origin.calls.filter((c) => c.method === "POST")).toHaveLength(0);
	});

	it("a list no lease could cover is refused naming documents", async () => {
		const documents = Array.from({ length: 64 }, () => "word ".repeat(100));
		const response = await call("/v1/rerank", { body: { query: "q", documents }, key, env: { MAX_TOKENS_IN_FLIGHT_PER_KEY: "16384" } });
		expect(response.status).toBe(400);
		expect(((await response.json()) as { error: { field: string } }).error.field).toBe("documents");
	});
});

describe("tokenize and detokenize", () => {
	it("are cached like any answer; with_pieces false is the same request as without it", async () => {
		const prompt = uniquePrompt("count me");
		const first = await call("/v1/tokenize", { body: { prompt }, key });
		const second = await call("/v1/tokenize", { body: { prompt, with_pieces: false }, key });
		expect([first.headers.get("x-cache"), second.headers.get("x-cache")]).toEqual(["MISS", "HIT"]);
		expect(await second.text()).toBe(await first.text());
		const withPieces = await call("/v1/tokenize", { body: { prompt, with_pieces: true }, key });
		expect(withPieces.headers.get("x-cache")).toBe("MISS");
		expect(origin.callsTo("/v1/tokenize").map((c) => c.body)).toEqual([{ prompt }, { prompt, with_pieces: true }]);
		const tokens = ((await withPieces.json()) as { tokens: number[] }).tokens;
		const text = await call("/v1/detokenize", { body: { tokens }, key });
		expect(((await text.json()) as { text: string }).text).toBe(`${String.fromCodePoint(2)}${prompt}`);
	});

	it.each([
		["/v1/tokenize", {}, "body: must have exactly one of prompt and messages"],
		["/v1/tokenize", { messages: [{ role: "user", content: "x" }], prompt: "y" }, "body: must have exactly one of prompt and messages"],
		["/v1/detokenize", { tokens: [2, -1] }, "tokens[1]: must be at least 0"],
		["/v1/detokenize", { tokens: "2 3" }, "tokens: must be an array of token ids"],
	])("%s %# → 400", async (path, body, message) => {
		const response = await call(path, { body, key });
		expect(response.status).toBe(400);
		expect(((await response.json()) as { error: { message: string } }).error.message).toBe(message);
	});

	it("a model-scoped key tokenizes when it names its model", async () => {
		const scoped = await createKey({ policy: { scope_models: ["gemma3-270m"] } });
		const body = { prompt: uniquePrompt("scoped") };
		expect((await call("/v1/tokenize", { body, key: scoped })).status).toBe(403);
		expect((await call("/v1/tokenize", { body: { ...body, model: "gemma3-270m" }, key: scoped })).status).toBe(200);
		expect((await call("/v1/detokenize", { body: { tokens: [2], model: "gemma3-270m" }, key: scoped })).status).toBe(200);
	});

	it("an unknown id is the runtime's 400, passed on and not cached", async () => {
		const body = { tokens: [2, 0x110000] };
		const response = await call("/v1/detokenize", { body, key });
		expect(response.status).toBe(400);
		expect(((await response.json()) as { error: { field: string } }).error.field).toBe("tokens[1]");
		await call("/v1/detokenize", { body, key });
		expect(origin.callsTo("/v1/detokenize")).toHaveLength(2);
	});
});

describe("pythonFloat: numbers as the runtime's JSON writes them", () => {
	it.each([
		[0, "0.0"],
		[1, "1.0"],
		[0.5, "0.5"],
		[5e-5, "5e-05"],
		[0.0001, "0.0001"],
		[9.99e-5, "9.99e-05"],
		[1.5e-7, "1.5e-07"],
		[1.2345e-5, "1.2345e-05"],
		[0.9809404814546526, "0.9809404814546526"],
		[0.1 + 0.2, "0.30000000000000004"],
		[2 / 3, "0.6666666666666666"],
		[123, "123.0"],
		[1e16, "1e+16"],
		[1e-300, "1e-300"],
		[-0.25, "-0.25"],
	])("%s → %s", (value, expected) => {
		expect(pythonFloat(value)).toBe(expected);
	});
});
