// What the Worker knows per model fingerprint (D1 origin_builds, migration 0004): the model file's sha256
// and the golden-probe digest (the runtime's start-up self-check, docs/runtime.md) it first cached answers
// under. Every answer of one fingerprint should come from the same build; when an origin reports another
// digest for a fingerprint already pinned, a driver, CUDA or AMI change made it decode other bytes under
// the same fingerprint: its answers are served but not cached, so the cache never forks silently.
import type { Settings } from "../config";
import { bumpCounter, PROBE_DIGEST_MISMATCHES } from "../observability/metrics";
import { originStatus, type OriginStatus } from "./fingerprint";

interface OriginBuild {
	modelSha256: string | null;
	probeDigest: string | null;
}

// A row only ever fills in (first digest wins), so an isolate may keep what it read.
const known = new Map<string, OriginBuild>();

async function readBuild(db: D1Database, fingerprint: string): Promise<OriginBuild | null> {
	const row = await db
		.prepare("SELECT model_sha256, probe_digest FROM origin_builds WHERE fingerprint = ?")
		.bind(fingerprint)
		.first<{ model_sha256: string | null; probe_digest: string | null }>();
	return row && { modelSha256: row.model_sha256, probeDigest: row.probe_digest };
}

/** Records what `status` says unless the fingerprint's row has it already (the first digest is kept). */
async function pinBuild(db: D1Database, status: OriginStatus): Promise<OriginBuild> {
	const cached = known.get(status.fingerprint);
	const nothingToFill = (have: string | null, seen: string | null) => have !== null || seen === null;
	if (cached && nothingToFill(cached.probeDigest, status.probeDigest) && nothingToFill(cached.modelSha256, status.modelSha256))
		return cached;
	await db.batch([
		db
			.prepare("INSERT OR IGNORE INTO origin_builds (fingerprint, model_sha256, probe_digest, first_seen_ms) VALUES (?, ?, ?, ?)")
			.bind(status.fingerprint, status.modelSha256, status.probeDigest, Date.now()),
		db
			.prepare(
				"UPDATE origin_builds SET model_sha256 = COALESCE(model_sha256, ?), probe_digest = COALESCE(probe_digest, ?) WHERE fingerprint = ?",
			)
			.bind(status.modelSha256, status.probeDigest, status.fingerprint),
	]);
	const pinned = (await readBuild(db, status.fingerprint))!;
	known.set(status.fingerprint, pinned);
	return pinned;
}

/**
 * Whether an answer filed under `fingerprint` may be cached: yes unless the origin's current status
 * reports, for this very fingerprint, a probe digest other than the one answers were first cached under.
 * Without a status or a digest (an origin with RUNTIME_PROBES=off) there is nothing to compare.
 */
export async function mayCache(env: Env, ctx: ExecutionContext, config: Settings, fingerprint: string, route: string): Promise<boolean> {
	// A pinned MODEL_FINGERPRINT means the operator vouches for the build: the origin is not asked.
	if (config.pinnedFingerprint) return true;
	const status = await originStatus(env, config);
	if (status === null || status.fingerprint !== fingerprint || status.probeDigest === null) return true;
	let pinned: OriginBuild;
	try {
		pinned = await pinBuild(env.DB, status);
	} catch (error) {
		console.error("origin builds: D1 failed; not caching:", (error as Error).message);
		return false;
	}
	if (pinned.probeDigest === status.probeDigest) return true;
	console.error(
		`probe digest: the origin reports ${status.probeDigest} for fingerprint ${fingerprint}, but answers were cached under ${pinned.probeDigest}; ${route} answer served, not cached`,
	);
	ctx.waitUntil(
		bumpCounter(env.DB, PROBE_DIGEST_MISMATCHES, { route }).catch((error: Error) =>
			console.error("metrics: probe digest counter failed:", error.message),
		),
	);
	return false;
}
/**
 * The model sha256 of a fingerprint (signed into receipts): from the origin's status, which is also
 * recorded so that hits keep their receipts while every origin is down; else from D1.
 */
export async function modelSha256Of(env: Env, config: Settings, fingerprint: string): Promise<string | null> {
	const status = await originStatus(env, config);
	if (status?.fingerprint === fingerprint && status.modelSha256 !== null) {
		await pinBuild(env.DB, status).catch((error: Error) => console.error("origin builds: D1 write failed:", error.message));
		return status.modelSha256;
	}
	return (known.get(fingerprint) ?? (await readBuild(env.DB, fingerprint)))?.modelSha256 ?? null;
}
