// Usage per key without prompts: a key_usage row per admitted request (tokens, cache, errors, metadata,
// never prompt or answer text), GET /v1/usage for the calling key, x-steadytext-metadata validation.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { pruneUsage, USAGE_RETENTION_DAYS } from "../src/observability/metrics";
import { expectValid } from "./contract";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import { call, createKey, keyIdOf, uniquePrompt } from "./helpers";

let origin: FakeOrigin;
beforeEach(() => {
	origin = installFakeOrigin();
});
afterEach(() => vi.restoreAllMocks());

type ErrorBody = { error: { type: string; message: string; field?: string } };
type Sums = { requests: number; prompt_tokens: number; completion_tokens: number; cached_tokens: number; errors: number };
type UsageAnswer = {
	key_id: string;
	from: string;
	to: string;
	totals: Sums;
	by_day_and_route: (Sums & { day: string; route: string })[];
	by_metadata: (Sums & { metadata: Record<string, unknown> | null })[];
};
// The fake origin reports 3 prompt + 5 completion tokens for every generation.
const today = () => new Date().toISOString().slice(0, 10);
const usageRows = async (key: string) =>
	(
		await env.DB.prepare("SELECT * FROM key_usage WHERE key_id = ? ORDER BY id")
			.bind(await keyIdOf(key))
			.all<Record<string, unknown>>()
	).results;
const usage = async (key: string, query = "") => {
	const response = await call(`/v1/usage${query}`, { key });
	expect(response.status).toBe(200);
	const body = await response.json<UsageAnswer>();
	expectValid("usage-answer.json", body);
	return body;
};

describe("usage rows", () => {
	it("records each request's tokens, cache share, status and metadata, and no prompt or answer text", async () => {
		const key = await createKey();
		const prompt = uniquePrompt("usage private words");
		const metadata = { "x-steadytext-metadata": '{"team":"search","run":7,"ci":true}' };
		expect((await call("/v1/generate", { body: { prompt }, key, headers: metadata })).headers.get("x-cache")).toBe("MISS");
		expect((await call("/generate", { body: { prompt }, key })).headers.get("x-cache")).toBe("HIT");
		expect((await call("/v1/generate", { body: { prompt: "" }, key })).status).toBe(400);
		const streamed = await call("/v1/completions", { body: { model: "gemma3-270m", prompt: uniquePrompt("stream"), stream: true }, key });
		await streamed.text();

		await vi.waitFor(async () => expect(await usageRows(key)).toHaveLength(4));
		const rows = await usageRows(key);
		const pick = ({ route, model, status_class, prompt_tokens, completion_tokens, cached_tokens, error, metadata, day }: any) => ({
			route,
			model,
			status_class,
			prompt_tokens,
			completion_tokens,
			cached_tokens,
			error,
			metadata,
			day,
		});
		expect(rows.map(pick)).toEqual([
			{
				...pick(rows[0]),
				route: "/v1/generate",
				model: "gemma3-270m",
				status_class: "2xx",
				prompt_tokens: 3,
				completion_tokens: 5,
				cached_tokens: 0,
				error: 0,
				metadata: '{"ci":true,"run":7,"team":"search"}',
				day: today(),
			},
			{
				...pick(rows[1]),
				route: "/v1/generate",
				status_class: "2xx",
				prompt_tokens: 3,
				completion_tokens: 5,
				cached_tokens: 8,
				error: 0,
				metadata: null,
			},
			{ ...pick(rows[2]), route: "/v1/generate", status_class: "4xx", prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, error: 1 },
			{
				...pick(rows[3]),
				route: "/v1/completions",
				model: "gemma3-270m",
				status_class: "2xx",
				prompt_tokens: 3,
				completion_tokens: 5,
				error: 0,
			},
		]);
		expect(JSON.stringify(rows)).not.toContain("private words");
		expect(JSON.stringify(rows)).not.toContain(origin.generatedText({ prompt }));
	});

	it("marks a stream that breaks off as an error", async () => {
		const key = await createKey();
		origin.nextStream = 'data: {"text": "partial", "done": false}\n\n';
		const streamed = await call("/v1/generate", { body: { prompt: uniquePrompt("broken"), stream: true }, key });
		expect(streamed.status).toBe(200);
		await streamed.text();
		await vi.waitFor(async () => expect(await usageRows(key)).toHaveLength(1));
		expect((await usageRows(key))[0]).toMatchObject({ status_class: "2xx", error: 1 });
	});

	it(`are pruned by the cron after ${USAGE_RETENTION_DAYS} days`, async () => {
		const now = Date.now();
		const old = now - (USAGE_RETENTION_DAYS + 1) * 86_400_000;
		const insert = (tsMs: number) =>
			env.DB.prepare(
				"INSERT INTO key_usage (ts_ms, day, key_id, route, status_class) VALUES (?, '2000-01-01', 'key_prune', '/v1/generate', '2xx')",
			).bind(tsMs);
		await env.DB.batch([insert(old), insert(old + 1), insert(now)]);
		expect(await pruneUsage(env.DB, now)).toBeGreaterThanOrEqual(2);
		const left = await env.DB.prepare("SELECT ts_ms FROM key_usage WHERE key_id = 'key_prune'").all<{ ts_ms: number }>();
		expect(left.results.map((row) => row.ts_ms)).toEqual([now]);
	});
});

describe("GET /v1/usage", () => {
	it("answers the calling key's usage by day and route, by metadata, and in total", async () => {
		const key = await createKey();
		const prompt = uniquePrompt("report");
		const teamA = { "x-steadytext-metadata": '{"team":"a"}' };
		await call("/v1/generate", { body: { prompt }, key, headers: teamA });
		await call("/v1/generate", { body: { prompt }, key, headers: teamA });
		await call("/v1/embed", { body: { input: uniquePrompt("report") }, key });
		await call("/v1/generate", { body: { prompt: "" }, key });
		// Another key's traffic is never in this key's answer.
		await call("/v1/generate", { body: { prompt: uniquePrompt("other") }, key: await createKey() });

		const answer = await usage(key);
		expect(answer.key_id).toBe(await keyIdOf(key));
		expect(answer.to).toBe(today());
		expect(answer.totals).toEqual({ requests: 4, prompt_tokens: 6, completion_tokens: 10, cached_tokens: 8, errors: 1 });
		expect(answer.by_day_and_route).toEqual([
			{ day: today(), route: "/v1/embed", requests: 1, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, errors: 0 },
			{ day: today(), route: "/v1/generate", requests: 3, prompt_tokens: 6, completion_tokens: 10, cached_tokens: 8, errors: 1 },
		]);
		expect(answer.by_metadata).toEqual([
			// Most requests first; a tie in the order of the metadata's JSON, no metadata first.
			{ metadata: null, requests: 2, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, errors: 1 },
			{ metadata: { team: "a" }, requests: 2, prompt_tokens: 6, completion_tokens: 10, cached_tokens: 8, errors: 0 },
		]);
		expect((await usage(key, "?from=2001-01-01&to=2001-01-31")).totals.requests).toBe(0);
		// Reading one's usage is not usage: the answers above left no rows.
		expect((await usage(key)).totals.requests).toBe(4);
	});

	it("is open to a key whose route scope leaves it out, and needs a key", async () => {
		expect((await call("/v1/usage", { key: await createKey({ policy: { scope_routes: ["/v1/embed"] } }) })).status).toBe(200);
		expect((await call("/v1/usage")).status).toBe(401);
	});

	it.each([
		["?from=yesterday", "from", "from: must be a UTC day as YYYY-MM-DD"],
		["?to=2026-02-30", "to", 'to: must be a UTC day as YYYY-MM-DD, got "2026-02-30"'],
		["?from=2026-03-02&to=2026-03-01", "from", "from: must not be after to (2026-03-01), got 2026-03-02"],
		["?from=2025-01-01&to=2026-01-01", "from", "from: the range 2025-01-01..2026-01-01 is 366 days; at most 93 per request"],
		["?days=7", "days", "days: is not a parameter of /v1/usage (from, to)"],
	])("refuses %s with a 400 naming the parameter", async (query, field, message) => {
		const refused = await call(`/v1/usage${query}`, { key: await createKey() });
		expect(refused.status).toBe(400);
		const { error } = await refused.json<ErrorBody>();
		expect([error.type, error.field]).toEqual(["invalid_request", field]);
		expect(error.message).toContain(message);
	});
});

describe("x-steadytext-metadata", () => {
	it.each([
		["not JSON", "team=a", "must be a JSON object of at most 5 keys"],
		["an array", '["a"]', "must be a JSON object of at most 5 keys"],
		["six keys", '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}', "has 6 keys; at most 5 are allowed"],
		[
			"a nested object",
			'{"team":{"name":"a"}}',
			'the value of "team" must be a string of at most 128 characters, a number or a boolean (metadata is flat)',
		],
		["a null value", '{"team":null}', "(metadata is flat)"],
		["a long value", JSON.stringify({ note: "x".repeat(129) }), 'the value of "note" must be a string of at most 128 characters'],
		[
			"too large",
			JSON.stringify({ a: "x".repeat(128), b: "x".repeat(128), c: "x".repeat(128), d: "x".repeat(128) }),
			"is longer than 512 bytes",
		],
		["a bad key", '{"team name":"a"}', 'key "team name" must be 1-64 letters'],
	])("refuses %s with a 400 naming the header, before the body or the origin", async (_, value, message) => {
		const key = await createKey();
		const refused = await call("/v1/generate", {
			rawBody: "not json",
			headers: { "content-type": "application/json", "x-steadytext-metadata": value },
			key,
		});
		expect(refused.status).toBe(400);
		const { error } = await refused.json<ErrorBody>();
		expect([error.type, error.field]).toEqual(["invalid_request", "x-steadytext-metadata"]);
		expect(error.message).toContain(message);
		expect(origin.calls).toHaveLength(0);
	});

	it("passes the DLP policy like a body: a card number in it is refused, never stored", async () => {
		const key = await createKey();
		const refused = await call("/v1/generate", {
			body: { prompt: uniquePrompt("dlp") },
			headers: { "x-steadytext-metadata": '{"card":"4111 1111 1111 1111"}' },
			key,
		});
		expect(refused.status).toBe(422);
		expect(JSON.stringify(await usageRows(key))).not.toContain("4111");
	});
});
