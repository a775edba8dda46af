// Request metrics: one request_metrics row per admitted request (valid key, within its rate limit),
// written off the hot path. Requests that finish within FLUSH_WINDOW_MS of each other share one D1 batch
// (a transaction) that also bumps the monotonic counters /metrics exposes; every request's waitUntil
// joins that batch, so no row is dropped when an isolate goes idle. Requests that were not admitted are
// only counted in the isolate's memory: traffic without a valid key never causes a D1 write.
import { canonicalJson } from "../cache/cachekey";
import { PROMETHEUS_CONTENT_TYPE, renderExposition, type Family, type Sample } from "./prometheus";
import { usageStatement, type UsageRow } from "./usage";

export interface RequestRecord {
	tsMs: number;
	endpoint: string;
	method: string;
	status: number;
	cache: "HIT" | "MISS" | "PARTIAL" | "BYPASS" | "NONE";
	cacheTier: "memory" | "kv" | "d1" | null;
	durationMs: number;
	colo: string | null;
	keyId: string | null;
}

// Long enough to merge the rows of a busy isolate into few D1 batches, short enough to stay unnoticed.
export const FLUSH_WINDOW_MS = 100;
const STATEMENTS_PER_BATCH = 200;
const RETRY_DELAY_MS = 100;
export const METRICS_RETENTION_DAYS = 7;
/** key_usage rows are what GET /v1/usage and `keys.mjs usage` read: kept longer than the metrics log. */
export const USAGE_RETENTION_DAYS = 90;
/** The cron deletes old rows in chunks of this many, at most PRUNE_MAX_CHUNKS per run (the rest next run). */
const PRUNE_CHUNK_ROWS = 5_000;
const PRUNE_MAX_CHUNKS = 40;
const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Answers a cache tier could not hold (src/cache/tiers.ts), labelled by tier. */
export const SKIPPED_CACHE_WRITES = "steadytext_edge_cache_writes_skipped_total";
/** Answers served but not cached because the origin's probe digest differs (src/cache/origin-builds.ts). */
export const PROBE_DIGEST_MISMATCHES = "steadytext_edge_probe_digest_mismatch_total";
/** Requests that were not admitted: counted in isolate memory, never in D1. */
const UNADMITTED = "steadytext_edge_unadmitted_requests_total";

const FAMILIES: Family[] = [
	{
		name: "steadytext_edge_requests_total",
		type: "counter",
		help: "Requests answered by the edge Worker, by endpoint, status and cache result.",
	},
	{
		name: "steadytext_edge_request_duration_seconds",
		type: "histogram",
		help: "Time from request to response headers at the edge Worker.",
	},
	{
		name: SKIPPED_CACHE_WRITES,
		type: "counter",
		help: "Answers not written to a cache tier because they exceed its size limit (D1 row 2 MB, KV value 25 MiB), by tier.",
	},
	{
		name: PROBE_DIGEST_MISMATCHES,
		type: "counter",
		help: "Origin answers served but not cached because the origin reported a golden-probe digest other than the one its fingerprint's answers were first cached under, by route.",
	},
	{
		name: UNADMITTED,
		type: "counter",
		help: "Requests answered without admission (missing/refused credentials, rate limits, unknown routes, /health, /metrics), by endpoint and status; counted in the memory of the isolate named by `isolate` since it started.",
	},
];
const [REQUESTS, DURATION] = FAMILIES.map((family) => family.name);

/** endpoint + status (both bounded: route table paths or "unmatched", the Worker's own statuses) -> count. */
const unadmitted = new Map<string, { endpoint: string; status: string; count: number }>();
// Random values cannot be made at global scope in Workers, so the id is drawn on first use.
let isolateId: string | null = null;

let pending: RequestRecord[] = [];
let pendingUsage: UsageRow[] = [];
let windowFlush: Promise<void> | null = null;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Counter increments for a set of records: name + canonical labels -> delta. */
function counterDeltas(records: RequestRecord[]): Map<string, { name: string; labels: string; delta: number }> {
	const deltas = new Map<string, { name: string; labels: string; delta: number }>();
	const bump = (name: string, labels: Record<string, string>, delta: number) => {
		const labelsJson = canonicalJson(labels);
		const id = `${name} ${labelsJson}`;
		const entry = deltas.get(id) ?? { name, labels: labelsJson, delta: 0 };
		entry.delta += delta;
		deltas.set(id, entry);
	};
	for (const record of records) {
		const seconds = record.durationMs / 1000;
		bump(REQUESTS, { endpoint: record.endpoint, status: String(record.status), cache: record.cache }, 1);
		// Only the smallest bucket that fits is stored; the exposition sums them into cumulative buckets.
		const le = DURATION_BUCKETS_SECONDS.find((bound) => seconds <= bound);
		bump(`${DURATION}_bucket`, { endpoint: record.endpoint, le: le === undefined ? "+Inf" : String(le) }, 1);
		bump(`${DURATION}_sum`, { endpoint: record.endpoint }, seconds);
		bump(`${DURATION}_count`, { endpoint: record.endpoint }, 1);
	}
	return deltas;
}

const BUMP_COUNTER_SQL =
	"INSERT INTO metric_counters (name, labels, value) VALUES (?, ?, ?) ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value";

/** Adds to one counter on its own, for events outside the request batches (a skipped cache write). */
export async function bumpCounter(db: D1Database, name: string, labels: Record<string, string>, delta = 1): Promise<void> {
	await db.prepare(BUMP_COUNTER_SQL).bind(name, canonicalJson(labels), delta).run();
}

function statements(db: D1Database, records: RequestRecord[]): D1PreparedStatement[] {
	const insert = db.prepare(
		"INSERT INTO request_metrics (ts_ms, endpoint, method, status, cache, cache_tier, duration_ms, colo, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	);
	const bump = db.prepare(BUMP_COUNTER_SQL);
	return [
		...records.map((r) =>
			insert.bind(r.tsMs, r.endpoint, r.method, r.status, r.cache, r.cacheTier, Math.round(r.durationMs), r.colo, r.keyId),
		),
		...[...counterDeltas(records).values()].map((d) => bump.bind(d.name, d.labels, d.delta)),
	];
}

/** Writes `items` in D1 batches of their statements, each batch retried once. */
async function writeInBatches<T>(db: D1Database, items: T[], perBatch: number, toStatements: (chunk: T[]) => D1PreparedStatement[]) {
	for (let start = 0; start < items.length; start += perBatch) {
		const chunk = items.slice(start, start + perBatch);
		try {
			await db.batch(toStatements(chunk));
		} catch (first) {
			await sleep(RETRY_DELAY_MS);
			try {
				await db.batch(toStatements(chunk));
			} catch (second) {
				console.error(`metrics: dropped ${chunk.length} rows after a retry:`, (first as Error).message, "/", (second as Error).message);
			}
		}
	}
}

/** Ties this request's lifetime to the next window's batch, which writes everything queued by then. */
function joinWindow(db: D1Database, ctx: ExecutionContext): void {
	if (!windowFlush) {
		windowFlush = sleep(FLUSH_WINDOW_MS).then(async () => {
			const records = pending;
			const usage = pendingUsage;
			pending = [];
			pendingUsage = [];
			windowFlush = null;
			await writeInBatches(db, records, STATEMENTS_PER_BATCH / 2, (chunk) => statements(db, chunk));
			await writeInBatches(db, usage, STATEMENTS_PER_BATCH, (chunk) => chunk.map((row) => usageStatement(db, row)));
		});
	}
	ctx.waitUntil(windowFlush);
}

/** Queues the record and ties this request's lifetime to the batch that will write it. */
export function recordRequest(db: D1Database, ctx: ExecutionContext, record: RequestRecord): void {
	pending.push(record);
	joinWindow(db, ctx);
}

/** Queues a key_usage row (written with the request_metrics rows of the same window). */
export function recordUsage(db: D1Database, ctx: ExecutionContext, row: UsageRow): void {
	pendingUsage.push(row);
	joinWindow(db, ctx);
}

/** Counts a request that was not admitted, in this isolate's memory only. */
export function countUnadmitted(record: RequestRecord): void {
	const id = `${record.endpoint} ${record.status}`;
	const entry = unadmitted.get(id) ?? { endpoint: record.endpoint, status: String(record.status), count: 0 };
	entry.count += 1;
	unadmitted.set(id, entry);
}

/**
 * Deletes request_metrics rows older than the retention period (the counters are kept) in LIMIT-ed
 * chunks, so no single statement holds the database for long, and at most `maxChunks` per run.
 */
export function pruneRequestMetrics(db: D1Database, nowMs = Date.now(), chunkRows = PRUNE_CHUNK_ROWS, maxChunks = PRUNE_MAX_CHUNKS) {
	return pruneOldRows(db, "request_metrics", nowMs - METRICS_RETENTION_DAYS * 86_400_000, chunkRows, maxChunks);
}

/** The same for key_usage rows older than USAGE_RETENTION_DAYS. */
export function pruneUsage(db: D1Database, nowMs = Date.now(), chunkRows = PRUNE_CHUNK_ROWS, maxChunks = PRUNE_MAX_CHUNKS) {
	return pruneOldRows(db, "key_usage", nowMs - USAGE_RETENTION_DAYS * 86_400_000, chunkRows, maxChunks);
}

async function pruneOldRows(
	db: D1Database,
	table: "request_metrics" | "key_usage",
	cutoff: number,
	chunkRows: number,
	maxChunks: number,
): Promise<number> {
	const chunk = db.prepare(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} WHERE ts_ms < ? LIMIT ?)`);
	let deleted = 0;
	for (let run = 0; run < maxChunks; run++) {
		const { changes } = (await chunk.bind(cutoff, chunkRows).run()).meta;
		deleted += changes;
		if (changes < chunkRows) return deleted;
	}
	console.log(`metrics: pruned ${deleted} ${table} rows, the cap for one run; older rows remain for the next run`);
	return deleted;
}

/** Turns stored per-bucket counts into Prometheus' cumulative buckets, every bound present, in order. */
function cumulativeBuckets(rows: Sample[]): Sample[] {
	const perEndpoint = new Map<string, Map<string, number>>();
	for (const row of rows) {
		const counts = perEndpoint.get(row.labels.endpoint) ?? new Map<string, number>();
		counts.set(row.labels.le, row.value);
		perEndpoint.set(row.labels.endpoint, counts);
	}
	const samples: Sample[] = [];
	for (const [endpoint, counts] of [...perEndpoint].sort(([a], [b]) => a.localeCompare(b))) {
		let total = 0;
		for (const le of [...DURATION_BUCKETS_SECONDS.map(String), "+Inf"]) {
			total += counts.get(le) ?? 0;
			samples.push({ name: `${DURATION}_bucket`, labels: { endpoint, le }, value: total });
		}
	}
	return samples;
}

export async function metricsResponse(db: D1Database): Promise<Response> {
	const { results } = await db
		.prepare("SELECT name, labels, value FROM metric_counters")
		.all<{ name: string; labels: string; value: number }>();
	const rows = results
		.map((row) => ({ name: row.name, labels: JSON.parse(row.labels) as Record<string, string>, value: row.value }))
		.sort((a, b) => a.name.localeCompare(b.name) || canonicalJson(a.labels).localeCompare(canonicalJson(b.labels)));
	const isBucket = (sample: Sample) => sample.name === `${DURATION}_bucket`;
	isolateId ??= crypto.randomUUID().slice(0, 8);
	const inMemory = [...unadmitted.values()]
		.sort((a, b) => a.endpoint.localeCompare(b.endpoint) || a.status.localeCompare(b.status))
		.map(({ endpoint, status, count }) => ({ name: UNADMITTED, labels: { endpoint, isolate: isolateId!, status }, value: count }));
	const samples = [...rows.filter((sample) => !isBucket(sample)), ...cumulativeBuckets(rows.filter(isBucket)), ...inMemory];
	return new Response(renderExposition(FAMILIES, samples), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
}
