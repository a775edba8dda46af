// Two projects: the Worker tests run inside workerd (vitest-pool-workers) with local D1/KV/R2/DO and the
// rate-limit simulator, the origin faked at the network boundary (globalThis.fetch, test/fake-origin.ts);
// the Node tests drive the key CLI against wrangler's local stores and a fake Cloudflare API.
import { readFileSync } from "node:fs";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { unstable_splitSqlQuery } from "wrangler";
import { defineConfig } from "vitest/config";

const schemaPath = new URL("../schema.sql", import.meta.url);

export default defineConfig({
	test: {
		maxWorkers: 2,
		projects: [
			{
				plugins: [
					cloudflareTest({
						wrangler: { configPath: "./wrangler.jsonc" },
						miniflare: {
							bindings: {
								SCHEMA_QUERIES: unstable_splitSqlQuery(readFileSync(schemaPath, "utf8")),
								ORIGIN_URL: "http://origin-primary.test",
								ORIGIN_FALLBACK_URL: "http://origin-fallback.test",
								ORIGIN_TIMEOUT_MS: "2000",
								// Off, so tests see the KV and D1 tiers; the memory tier's own test turns it on.
								MEMORY_CACHE_ENTRIES: "0",
								CF_ACCESS_CLIENT_ID: "test-access-id.access",
								CF_ACCESS_CLIENT_SECRET: "test-access-secret",
								ORIGIN_TOKEN: "test-origin-token",
								METRICS_TOKEN: "test-metrics-token",
							},
							// A tight limiter for the 429 test; the Worker's own RATE_LIMITER keeps wrangler.jsonc's limit.
							ratelimits: { TIGHT_RATE_LIMITER: { simple: { limit: 3, period: 60 } } },
						},
					}),
				],
				test: { name: "worker", include: ["test/*.test.ts"], setupFiles: ["./test/setup.ts"] },
			},
			{
				test: { name: "node", include: ["test/node/*.test.mjs"], environment: "node", testTimeout: 120_000, hookTimeout: 120_000 },
			},
		],
	},
});
