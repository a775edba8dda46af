// Per-request rows in D1 request_metrics (batched, none lost) and the Prometheus endpoint.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../src/index";
import { FLUSH_WINDOW_MS } from "../src/metrics";
import { escapeLabelValue, renderExposition } from "../src/prometheus";
import { installFakeOrigin } from "./fake-origin";
import { BASE, call, createKey, uniquePrompt } from "./helpers";

let key: string;
beforeEach(async () => {
	installFakeOrigin();
	key = await createKey();
	await env.DB.exec("DELETE FROM request_metrics; DELETE FROM metric_counters;");
});
afterEach(() => vi.restoreAllMocks());

const rows = async () =>
	(await env.DB.prepare("SELECT endpoint, method, status, cache, cache_tier, duration_ms, key_id FROM request_metrics ORDER BY id").all<Record<string, any>>())
		.results;

describe("request_metrics rows", () => {
	it("records every request with endpoint, status, cache result and key id", async () => {
		const body = { prompt: uniquePrompt("m") };
		await call("/v1/generate", { body, key });
		await call("/v1/generate", { body, key });
		await call("/v1/generate", { body: { prompt: "" }, key });
		await call("/v1/generate", { body });
		await call("/nope");
		await call("/health");
		const recorded = await rows();
		expect(recorded.map((r) => [r.endpoint, r.status, r.cache, r.cache_tier])).toEqual([
			["/v1/generate", 200, "MISS", null],
			["/v1/generate", 200, "HIT", "kv"],
			["/v1/generate", 400, "NONE", null],
			["/v1/generate", 401, "NONE", null],
			["unmatched", 404, "NONE", null],
			["/health", 200, "NONE", null],
		]);
		expect(recorded[0].key_id).toMatch(/^key_/);
		expect(recorded[3].key_id).toBeNull();
		expect(recorded.every((r) => r.method === "GET" || r.method === "POST")).toBe(true);
	});

	it("loses no row when many concurrent requests share micro-batches", async () => {
		const total = 60;
		const ctx = createExecutionContext();
		const requests = Array.from({ length: total }, (_, i) =>
			worker.fetch(new Request(`${BASE}/health?i=${i}`), env, ctx).then(async (response) => {
				await response.text();
				// Spread the finishes over several flush windows.
				await new Promise((resolve) => setTimeout(resolve, (i % 4) * FLUSH_WINDOW_MS * 0.6));
			}),
		);
		await Promise.all(requests);
		await waitOnExecutionContext(ctx);
		expect(await rows()).toHaveLength(total);
		const counter = await env.DB.prepare("SELECT value FROM metric_counters WHERE name = 'steadytext_edge_requests_total'").first<{ value: number }>();
		expect(counter?.value).toBe(total);
	});
});

describe("GET /metrics", () => {
	it("requires the metrics token or an API key", async () => {
		expect((await call("/metrics")).status).toBe(401);
		expect((await call("/metrics", { key: "wrong" })).status).toBe(401);
		expect((await call("/metrics", { key: "test-metrics-token" })).status).toBe(200);
		expect((await call("/metrics", { key })).status).toBe(200);
	});

	it("exposes monotonic counters and a duration histogram in the Prometheus text format", async () => {
		await call("/v1/generate", { body: { prompt: uniquePrompt("p") }, key });
		await call("/health");
		const response = await call("/metrics", { key: "test-metrics-token" });
		expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
		const text = await response.text();
		expect(text).toContain("# HELP steadytext_edge_requests_total ");
		expect(text).toContain("# TYPE steadytext_edge_requests_total counter");
		expect(text).toContain("# TYPE steadytext_edge_request_duration_seconds histogram");
		expect(text).toContain('steadytext_edge_requests_total{cache="MISS",endpoint="/v1/generate",status="200"} 1');
		expect(text).toContain('steadytext_edge_request_duration_seconds_count{endpoint="/health"} 1');
		const buckets = text.split("\n").filter((line) => line.startsWith('steadytext_edge_request_duration_seconds_bucket{endpoint="/health"'));
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
