#!/usr/bin/env node
// Edge Worker benchmark: prints one JSON document.
//   - bundle: minified size of the Worker build (`npm run build -- --minify`) (target < 100 KB)
//   - hit vs baseline: latency and throughput of a cache hit through the full Worker (auth, rate limit,
//     DLP, key, KV read, metrics) against a baseline Worker that does one KV get (target hit <= 1.5x),
//     both in the same local workerd (Miniflare) run
//   - miss overhead: a miss through the Worker against the same fake origin called directly
// Usage: node bench/edge.mjs [--requests N] [--concurrency C] [--origin-delay-ms D]
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { Miniflare } from "miniflare";
import { unstable_readConfig, unstable_splitSqlQuery } from "wrangler";
import { OFFLINE_ENV } from "../scripts/offline-env.mjs";

const EDGE_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const BUNDLE_TARGET_BYTES = 100 * 1024;
const HIT_RATIO_TARGET = 1.5;
const FINGERPRINT = "0123456789abcdef0123456789abcdef";
const API_KEY = "sk_bench_key";

const { values: args } = parseArgs({
	options: {
		requests: { type: "string", default: "2000" },
		concurrency: { type: "string", default: "16" },
		"origin-delay-ms": { type: "string", default: "20" },
	},
});
const REQUESTS = Number(args.requests);
const CONCURRENCY = Number(args.concurrency);
const ORIGIN_DELAY_MS = Number(args["origin-delay-ms"]);

function buildBundle(outdir) {
	// package.json's `build` script is the one home of the build; the bench adds --minify for the size figure.
	execFileSync("npm", ["run", "--silent", "build", "--", "--minify"], {
		cwd: EDGE_DIR,
		env: { ...OFFLINE_ENV, WORKER_BUNDLE_DIR: outdir },
		stdio: ["ignore", "ignore", "inherit"],
	});
	const code = readFileSync(path.join(outdir, "index.js"));
	return { path: path.join(outdir, "index.js"), minifiedBytes: code.length, gzipBytes: gzipSync(code).length };
}

/** A fake runtime on loopback that answers after a fixed delay, like a model with constant latency. */
async function startOrigin() {
	const server = createServer(async (request, response) => {
		let body = "";
		for await (const chunk of request) body += chunk;
		await new Promise((resolve) => setTimeout(resolve, request.url === "/v1/status" ? 0 : ORIGIN_DELAY_MS));
		const payload =
			request.url === "/v1/status"
				? { fingerprint: FINGERPRINT }
				: {
						text: `answer to ${JSON.parse(body).prompt}`,
						finish_reason: "length",
						usage: { prompt_tokens: 4, completion_tokens: 16 },
						model: "bench",
						fingerprint: FINGERPRINT,
					};
		response.writeHead(200, { "content-type": "application/json", "x-model-fingerprint": FINGERPRINT }).end(JSON.stringify(payload));
	});
	await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
	return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

const BASELINE_SCRIPT = `export default {
	async fetch(request, env) {
		const value = await env.KV.get("baseline-key");
		return new Response(value, { headers: { "content-type": "application/json" } });
	},
};`;

function percentile(sorted, p) {
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (value) => Math.round(value * 1000) / 1000;

const ROUNDS = 3;

/**
 * Latency (sequential, the two senders alternating request by request) and closed-loop throughput at
 * CONCURRENCY (alternating rounds, median kept), so that load drift on a shared machine hits both alike.
 */
async function compare(senders) {
	const names = Object.keys(senders);
	const latencies = Object.fromEntries(names.map((name) => [name, []]));
	for (let i = 0; i < Math.min(REQUESTS, 500); i++) {
		for (const name of names) {
			const started = performance.now();
			await senders[name](i);
			latencies[name].push(performance.now() - started);
		}
	}
	const rates = Object.fromEntries(names.map((name) => [name, []]));
	const perRound = Math.ceil(REQUESTS / ROUNDS);
	for (let round = 0; round < ROUNDS; round++) {
		for (const name of names) {
			let next = 0;
			const started = performance.now();
			await Promise.all(
				Array.from({ length: CONCURRENCY }, async () => {
					while (next < perRound) await senders[name](next++);
				}),
			);
			rates[name].push(perRound / ((performance.now() - started) / 1000));
		}
	}
	return Object.fromEntries(
		names.map((name) => {
			const sorted = latencies[name].sort((a, b) => a - b);
			const rate = rates[name].sort((a, b) => a - b)[Math.floor(ROUNDS / 2)];
			return [name, { p50_ms: round(percentile(sorted, 50)), p95_ms: round(percentile(sorted, 95)), throughput_rps: round(rate) }];
		}),
	);
}

async function expectStatus(responsePromise, status, what) {
	const response = await responsePromise;
	const text = await response.text();
	if (response.status !== status) throw new Error(`${what}: expected ${status}, got ${response.status}: ${text}`);
	return response;
}

/** The D1 migrations in order, from the folder wrangler.jsonc names (numbered names sort in order). */
function migrationFiles() {
	const config = path.join(EDGE_DIR, "wrangler.jsonc");
	const folder = path.resolve(EDGE_DIR, unstable_readConfig({ config }).d1_databases.find((db) => db.binding === "DB").migrations_dir);
	return readdirSync(folder)
		.filter((name) => name.endsWith(".sql"))
		.sort()
		.map((name) => path.join(folder, name));
}

async function main() {
	const workDir = mkdtempSync(path.join(tmpdir(), "edge-bench-"));
	const origin = await startOrigin();
	let mf;
	try {
		const bundle = buildBundle(path.join(workDir, "dist"));
		mf = new Miniflare({
			cf: false,
			workers: [
				{
					name: "edge",
					modules: true,
					scriptPath: bundle.path,
					modulesRoot: path.dirname(bundle.path),
					compatibilityDate: "2026-04-01",
					routes: ["edge.bench/*"],
					d1Databases: ["DB"],
					kvNamespaces: ["CACHE"],
					durableObjects: {
						COALESCER: { className: "Coalescer", useSQLite: true },
						KEY_LIMITER: { className: "KeyLimiter", useSQLite: true },
					},
					// The deployed limit (600/min) would throttle the benchmark itself.
					ratelimits: {
						RATE_LIMITER: { simple: { limit: 100_000_000, period: 60 } },
						AUTH_FAILURE_LIMITER: { simple: { limit: 30, period: 60 } },
					},
					bindings: {
						ORIGIN_URL: origin.url,
						ORIGIN_FALLBACK_URL: "",
						DLP_POLICY: "block",
						CACHE_TTL_SECONDS: "86400",
						CACHE_MAX_AGE_SECONDS: "604800",
						MEMORY_CACHE_ENTRIES: "256",
						MAX_TOKENS_LIMIT: "512",
						MAX_BODY_BYTES: "65536",
						MAX_EMBED_INPUTS: "64",
						MAX_CONCURRENT_PER_KEY: "8",
						MAX_TOKENS_IN_FLIGHT_PER_KEY: "16384",
						MAX_EMBED_INPUTS_IN_FLIGHT_PER_KEY: "256",
						ORIGIN_TIMEOUT_MS: "10000",
						MODEL_FINGERPRINT: "",
					},
				},
				{
					name: "baseline",
					modules: true,
					script: BASELINE_SCRIPT,
					compatibilityDate: "2026-04-01",
					routes: ["baseline.bench/*"],
					kvNamespaces: ["KV"],
				},
			],
		});
		const db = await mf.getD1Database("DB", "edge");
		for (const file of migrationFiles()) await db.batch(unstable_splitSqlQuery(readFileSync(file, "utf8")).map((sql) => db.prepare(sql)));
		const keyHash = createHash("sha256").update(API_KEY).digest("hex");
		const kv = await mf.getKVNamespace("CACHE", "edge");
		await kv.put(`apikey:${keyHash}`, JSON.stringify({ id: "key_bench", name: "bench", key_hash: keyHash, created_at: 0, revoked: false }));

		const generate = (prompt) =>
			mf.dispatchFetch("http://edge.bench/v1/generate", {
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
				body: JSON.stringify({ prompt, max_tokens: 16 }),
			});
		const warm = await expectStatus(generate("the cached prompt"), 200, "warm-up miss");
		const cachedBody = await (await generate("the cached prompt")).text();
		const baselineKv = await mf.getKVNamespace("KV", "baseline");
		await baselineKv.put("baseline-key", cachedBody);
		await expectStatus(mf.dispatchFetch("http://baseline.bench/"), 200, "baseline");
		if ((await generate("the cached prompt")).headers.get("x-cache") !== "HIT") throw new Error("the warm-up did not produce a cache hit");

		const { hit, baseline } = await compare({
			hit: () => expectStatus(generate("the cached prompt"), 200, "hit"),
			baseline: () => expectStatus(mf.dispatchFetch("http://baseline.bench/"), 200, "baseline"),
		});

		const missLatencies = [];
		const directLatencies = [];
		for (let i = 0; i < 100; i++) {
			let started = performance.now();
			await expectStatus(generate(`miss ${i} ${warm.headers.get("x-cache-key")}`), 200, "miss");
			missLatencies.push(performance.now() - started);
			started = performance.now();
			await expectStatus(
				fetch(`${origin.url}/v1/generate`, { method: "POST", body: JSON.stringify({ prompt: `direct ${i}` }) }),
				200,
				"origin",
			);
			directLatencies.push(performance.now() - started);
		}
		missLatencies.sort((a, b) => a - b);
		directLatencies.sort((a, b) => a - b);

		const result = {
			bench: "edge",
			requests: REQUESTS,
			concurrency: CONCURRENCY,
			load_average_1m: round(loadavg()[0]),
			bundle: {
				minified_bytes: bundle.minifiedBytes,
				gzip_bytes: bundle.gzipBytes,
				target_bytes: BUNDLE_TARGET_BYTES,
				meets_target: bundle.minifiedBytes < BUNDLE_TARGET_BYTES,
			},
			cache_hit: hit,
			baseline_one_kv_get: baseline,
			hit_vs_baseline: {
				p50_latency_ratio: round(hit.p50_ms / baseline.p50_ms),
				throughput_ratio: round(baseline.throughput_rps / hit.throughput_rps),
				target: HIT_RATIO_TARGET,
				meets_target: hit.p50_ms / baseline.p50_ms <= HIT_RATIO_TARGET && baseline.throughput_rps / hit.throughput_rps <= HIT_RATIO_TARGET,
			},
			miss: {
				origin_delay_ms: ORIGIN_DELAY_MS,
				p50_ms: round(percentile(missLatencies, 50)),
				p95_ms: round(percentile(missLatencies, 95)),
				origin_direct_p50_ms: round(percentile(directLatencies, 50)),
				overhead_p50_ms: round(percentile(missLatencies, 50) - percentile(directLatencies, 50)),
			},
		};
		console.log(JSON.stringify(result, null, 2));
	} finally {
		await mf?.dispose();
		await origin.close();
		rmSync(workDir, { recursive: true, force: true });
	}
}

main().then(
	() => process.exit(0),
	(error) => {
		console.error(`bench/edge.mjs: ${error.stack ?? error}`);
		process.exit(1);
	},
);
