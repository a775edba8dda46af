// Two projects: the Worker tests run inside workerd (vitest-pool-workers) with local D1/KV/DO and the
// rate-limit simulator, the origin faked at the network boundary (globalThis.fetch, test/fake-origin.ts,
// or, for workerd's own fetch behaviour such as redirects, the outbound network in
// test/node/redirecting-origin.mjs); the Node tests drive the key CLI against wrangler's local stores and
// a fake Cloudflare API.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { unstable_readConfig } from "wrangler";
import { defineConfig } from "vitest/config";
import { redirectingOutbound } from "./test/node/redirecting-origin.mjs";

// The D1 migrations, from the folder wrangler.jsonc names (test/setup.ts applies them as the chanfana template does).
const edgeDir = path.dirname(fileURLToPath(import.meta.url));
const wrangler = unstable_readConfig({ config: path.join(edgeDir, "wrangler.jsonc") });
const database = wrangler.d1_databases.find((db) => db.binding === "DB");
const migrations = await readD1Migrations(path.resolve(edgeDir, database!.migrations_dir!));

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
								D1_MIGRATIONS: migrations,
								// The limiters as declared, for the test that the Worker's copies of their periods match.
								DECLARED_RATELIMITS: JSON.stringify(wrangler.ratelimits),
								// The queues as declared, for the test that the Worker's queue handler serves each one.
								DECLARED_QUEUES: JSON.stringify(wrangler.queues),
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
							// Tight limiters for the 429 tests; the Worker's own limiters keep wrangler.jsonc's limits.
							ratelimits: {
								TIGHT_RATE_LIMITER: { simple: { limit: 3, period: 60 } },
								TIGHT_AUTH_FAILURE_LIMITER: { simple: { limit: 3, period: 60 } },
							},
							// A second, unmigrated database for the upgrade test (test/migrations.test.ts).
							d1Databases: { UPGRADE_DB: "upgrade-test-db" },
							// Real fetches (tests that do not fake globalThis.fetch) reach this, with workerd's own redirect handling.
							outboundService: redirectingOutbound,
						},
					}),
				],
				// workerd runs the files two at a time on a 2-core CI machine; vitest's 5 s default was once too
				// short there for a test of eight origin round trips (13 s). A limit, not a timed assertion.
				test: { name: "worker", include: ["test/*.test.ts"], setupFiles: ["./test/setup.ts"], testTimeout: 30_000 },
			},
			{
				test: { name: "node", include: ["test/node/*.test.mjs"], environment: "node", testTimeout: 120_000, hookTimeout: 120_000 },
			},
		],
	},
});
