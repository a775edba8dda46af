// Per-request rows in D1 request_metrics for admitted requests (batched, none lost), in-memory counts for
// the rest, chunked pruning, and the Prometheus endpoint (METRICS_TOKEN only).
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../src/index";
import { FLUSH_WINDOW_MS, METRICS_RETENTION_DAYS, pruneRequestMetrics } from "../src/observability/metrics";
import { escapeLabelValue, renderExposition } from "../src/observability/prometheus";
import { secondsUntilNextWindow } from "../src/admission/ratelimit";
import { installFakeOrigin } from "./fake-origin";
import { BASE, call, createKey, spyOnStorage, uniquePrompt } from "./helpers";

let key: string;
beforeEach(async () => {
	installFakeOrigin();
	key = await createKey();
	await env.DB.exec("DELETE FROM request_metrics; DELETE FROM metric_counters;");
});
afterEach(() => vi.restoreAllMocks());

const rows = async () =>
	(
		await env.DB.prepare("SELECT endpoint, method, status, cache, cache_tier, duration_ms, key_id FROM request_metrics ORDER BY id").all<
			Record<string, any>
		>()
	).results;

/** This isolate's in-memory count of unadmitted requests for an endpoint and status, as /metrics shows it. */
async function unadmittedCount(endpoint: string, status: number): Promise<number> {
	const text = await (await call("/metrics", { key: "test-metrics-token" })).text();
	const pattern = new RegExp(
		`^steadytext_edge_unadmitted_requests_total\\{endpoint="${endpoint}",isolate="[0-9a-f]{8}",status="${status}"\\} (\\d+)$`,
		"m",
	);
	return Number(pattern.exec(text)?.[1] ?? 0);
}

describe("request_metrics rows", () => {
	it("records every admitted request with endpoint, status, cache result and key id", async () => {
		const body = { prompt: uniquePrompt("m") };
		await call("/v1/generate", { body, key });
		await call("/v1/generate", { body, key });
		await call("/v1/generate", { body: { prompt: "" }, key });
		await call("/v1/models", { key });
		const recorded = await rows();
		expect(recorded.map((r) => [r.endpoint, r.status, r.cache, r.cache_tier])).toEqual([
			["/v1/generate", 200, "MISS", null],
			["/v1/generate", 200, "HIT", "kv"],
			["/v1/generate", 400, "NONE", null],
			["/v1/models", 200, "NONE", null],
		]);
		expect(recorded.every((r) => r.key_id?.startsWith("key_"))).toBe(true);
		expect(recorded.every((r) => r.method === "GET" || r.method === "POST")).toBe(true);
	});

	it("writes nothing to D1 for requests that were not admitted, and counts them in memory", async () => {
		const left = secondsUntilNextWindow(Date.now());
		if (left < 5) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 200));
		const tight = { RATE_LIMITER: env.TIGHT_RATE_LIMITER };
		const limitedKey = await createKey();
		for (let i = 0; i < 3; i++)
			expect((await call("/v1/generate", { body: { prompt: uniquePrompt("n") }, key: limitedKey, env: tight })).status).toBe(200);
		const before = {
			unauthorized: await unadmittedCount("/v1/generate", 401),
			unmatched: await unadmittedCount("unmatched", 404),
			health: await unadmittedCount("/health", 200),
			limited: await unadmittedCount("/v1/generate", 429),
		};
		const spy = spyOnStorage();
		expect((await call("/v1/generate", { body: { prompt: "x" }, env: spy.env })).status).toBe(401);
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: "sk_unknown", env: spy.env })).status).toBe(401);
		expect((await call("/nope", { env: spy.env })).status).toBe(404);
		expect((await call("/health", { env: spy.env })).status).toBe(200);
		expect((await call("/v1/generate", { body: { prompt: "x" }, key: limitedKey, env: { ...tight, ...spy.env } })).status).toBe(429);
		expect(spy.d1.filter((sql) => !/FROM api_keys/.test(sql))).toEqual([]);
		expect(await rows()).toHaveLength(3); // the rate-limited key's admitted requests only
		expect(await unadmittedCount("/v1/generate", 401)).toBe(before.unauthorized + 2);
		expect(await unadmittedCount("unmatched", 404)).toBe(before.unmatched + 1);
		expect(await unadmittedCount("/health", 200)).toBe(before.health + 1);
		expect(await unadmittedCount("/v1/generate", 429)).toBe(before.limited + 1);
	});

	it("loses no row when many concurrent requests share micro-batches", async () => {
		const total = 60;
		const ctx = createExecutionContext();
		const requests = Array.from({ length: total }, (_, i) =>
			worker
				.fetch(new Request(`${BASE}/v1/models?i=${i}`, { headers: { authorization: `Bearer ${key}` } }), env, ctx)
				.then(async (response) => {
					expect(response.status).toBe(200);
					await response.text();
					// Spread the finishes over several flush windows.
					await new Promise((resolve) => setTimeout(resolve, (i % 4) * FLUSH_WINDOW_MS * 0.6));
				}),
		);
		await Promise.all(requests);
		await waitOnExecutionContext(ctx);
		expect(await rows()).toHaveLength(total);
		const counter = await env.DB.prepare("SELECT value FROM metric_counters WHERE name = 'steadytext_edge_requests_total'").first<{
			value: number;
		}>();
		expect(counter?.value).toBe(total);
	});
});

describe("pruning", () => {
	const DAY_MS = 86_400_000;
	const insert = (tsMs: number) =>
		env.DB.prepare(
			"INSERT INTO request_metrics (ts_ms, endpoint, method, status, cache, duration_ms) VALUES (?, '/v1/generate', 'POST', 200, 'MISS', 1)",
		).bind(tsMs);

	it("deletes rows past the retention in LIMIT-ed chunks, at most a capped number per run", async () => {
		const now = Date.now();
		const old = now - (METRICS_RETENTION_DAYS + 1) * DAY_MS;
		await env.DB.batch([...Array.from({ length: 25 }, (_, i) => insert(old + i)), ...Array.from({ length: 3 }, () => insert(now))]);
		const spy = spyOnStorage();
		expect(await pruneRequestMetrics(spy.env.DB, now, 10, 2)).toBe(20);
		expect(spy.d1.every((sql) => /^DELETE .* LIMIT \?\)$/.test(sql))).toBe(true);
		expect(await rows()).toHaveLength(8);
		expect(await pruneRequestMetrics(env.DB, now, 10, 2)).toBe(5);
		expect(await pruneRequestMetrics(env.DB, now, 10, 2)).toBe(0);
		expect(await rows()).toHaveLength(3);
	});
});

describe("GET /metrics", () => {
	it("answers only to the metrics token, never to a tenant's API key", async () => {
		expect((await call("/metrics")).status).toBe(401);
		expect((await call("/metrics", { key: "wrong" })).status).toBe(401);
		const tenant = await call("/metrics", { key });
		expect(tenant.status).toBe(401);
		expect((await tenant.json<{ error: { message: string } }>()).error.message).toContain("METRICS_TOKEN");
		expect((await call("/metrics", { headers: { "x-api-key": key } })).status).toBe(401);
		expect((await call("/metrics", { key: "test-metrics-token" })).status).toBe(200);
		expect((await call("/metrics", { key: "test-metrics-token", env: { METRICS_TOKEN: "" } })).status).toBe(401);
	});

	it("exposes monotonic counters and a duration histogram in the Prometheus text format", async () => {
		await call("/v1/generate", { body: { prompt: uniquePrompt("p") }, key });
		await call("/v1/models", { key });
		const response = await call("/metrics", { key: "test-metrics-token" });
		expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
		const text = await response.text();
		expect(text).toContain("# HELP steadytext_edge_requests_total ");
		expect(text).toContain("# TYPE steadytext_edge_requests_total counter");
		expect(text).toContain("# TYPE steadytext_edge_request_duration_seconds histogram");
		expect(text).toContain('steadytext_edge_requests_total{cache="MISS",endpoint="/v1/generate",status="200"} 1');
		expect(text).toContain('steadytext_edge_request_duration_seconds_count{endpoint="/v1/models"} 1');
		expect(text).toContain("# TYPE steadytext_edge_unadmitted_requests_total counter");
		const buckets = text
			.split("\n")
			.filter((line) => line.startsWith('steadytext_edge_request_duration_seconds_bucket{endpoint="/v1/models"'));
		expect(buckets.at(-1)).toMatch(/le="\+Inf"\} 1$/);
		const les = buckets.map((line) => /le="([^"]+)"/.exec(line)![1]).map((le) => (le === "+Inf" ? Infinity : Number(le)));
		expect(les).toEqual([...les].sort((a, b) => a - b));
		for (const line of text.trim().split("\n")) {
			expect(line).toMatch(/^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{([a-z_]+="([^"\\\n]|\\[\\"n])*",?)*\})? [-+0-9.eEInfa]+)$/);
		}
	});
});

describe("exposition format", () => {
	it("escapes backslash, double quote and newline in label values", () => {
		expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
	});

	it("cannot be tricked into a second series by a label value", () => {
		const text = renderExposition(
			[{ name: "x_total", type: "counter", help: "h" }],
			[{ name: "x_total", labels: { endpoint: '/a"} 1\nfake_series{a="b' }, value: 2 }],
		);
		expect(text.split("\n").filter((line) => line.startsWith("fake_series"))).toHaveLength(0);
		expect(text).toBe('# HELP x_total h\n# TYPE x_total counter\nx_total{endpoint="/a\\"} 1\\nfake_series{a=\\"b"} 2\n');
	});
});
