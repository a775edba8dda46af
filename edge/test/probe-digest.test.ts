// The edge's guard against a forked cache: the probe digest an origin reports on GET /v1/status is pinned
// per fingerprint (D1 origin_builds) by the first answers cached; an origin reporting another digest for
// the same fingerprint is served but not cached, counted and logged. Each phase uses an origin URL of its
// own, so the isolate's 30 s status memo never hides a change.
import { env } from "cloudflare:workers";
import { afterEach, expect, it, vi } from "vitest";
import { PROBE_DIGEST } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

afterEach(() => vi.restoreAllMocks());

const OTHER_DIGEST = "f".repeat(64);

function randomFingerprint(): string {
	return [...crypto.getRandomValues(new Uint8Array(16))].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function originUrl(): string {
	return `https://origin-${crypto.randomUUID().slice(0, 8)}.test`;
}

async function mismatches(route: string): Promise<number> {
	const row = await env.DB.prepare("SELECT value FROM metric_counters WHERE name = ? AND labels = ?")
		.bind("steadytext_edge_probe_digest_mismatch_total", JSON.stringify({ route }))
		.first<{ value: number }>();
	return row?.value ?? 0;
}

it("serves but never caches answers from an origin whose probe digest differs from the pinned one", async () => {
	const { origin, key } = await freshOriginAndKey();
	origin.fingerprint = randomFingerprint();
	const first = { ORIGIN_URL: originUrl() };
	const pinnedBody = { prompt: uniquePrompt("pinned build"), max_tokens: 4 };
	expect((await call("/v1/generate", { key, body: pinnedBody, env: first })).headers.get("x-cache")).toBe("MISS");
	expect((await call("/v1/generate", { key, body: pinnedBody, env: first })).headers.get("x-cache")).toBe("HIT");
	const pinned = await env.DB.prepare("SELECT probe_digest, model_sha256 FROM origin_builds WHERE fingerprint = ?")
		.bind(origin.fingerprint)
		.first();
	expect(pinned).toMatchObject({ probe_digest: PROBE_DIGEST });

	// Same fingerprint, other answers: e.g. a new GPU driver the fingerprint cannot see.
	origin.probeDigest = OTHER_DIGEST;
	const forked = { ORIGIN_URL: originUrl() };
	const errors = vi.spyOn(console, "error");
	const before = await mismatches("/v1/generate");
	const body = { prompt: uniquePrompt("forked build"), max_tokens: 4 };
	for (let attempt = 0; attempt < 2; attempt++) {
		const response = await call("/v1/generate", { key, body, env: forked });
		expect(response.status).toBe(200);
		expect(response.headers.get("x-cache")).toBe("MISS");
		expect((await response.json<{ text: string }>()).text).toContain("forked build");
	}
	const streamed = await call("/v1/generate", { key, body: { ...body, stream: true }, env: forked });
	expect(streamed.headers.get("x-cache")).toBe("MISS");
	await streamed.text();
	expect(await mismatches("/v1/generate")).toBe(before + 3);
	expect(errors.mock.calls.map((args) => args.join(" ")).join("\n")).toContain(
		`the origin reports ${OTHER_DIGEST} for fingerprint ${origin.fingerprint}, but answers were cached under ${PROBE_DIGEST}`,
	);
	const stored = await env.DB.prepare("SELECT COUNT(*) AS n FROM answer_cache WHERE fingerprint = ?")
		.bind(origin.fingerprint)
		.first<{ n: number }>();
	expect(stored!.n).toBe(1); // the pinned build's answer only
	// The answers cached before the fork are still served.
	expect((await call("/v1/generate", { key, body: pinnedBody, env: forked })).headers.get("x-cache")).toBe("HIT");

	// The origin reproduces the pinned answers again: caching resumes.
	origin.probeDigest = PROBE_DIGEST;
	const healed = { ORIGIN_URL: originUrl() };
	expect((await call("/v1/generate", { key, body, env: healed })).headers.get("x-cache")).toBe("MISS");
	expect((await call("/v1/generate", { key, body, env: healed })).headers.get("x-cache")).toBe("HIT");
});

it("keeps the first digest pinned: a later digest never replaces it", async () => {
	const { origin, key } = await freshOriginAndKey();
	origin.fingerprint = randomFingerprint();
	origin.probeDigest = OTHER_DIGEST;
	await call("/v1/embed", { key, body: { input: uniquePrompt("first") }, env: { ORIGIN_URL: originUrl() } });
	origin.probeDigest = PROBE_DIGEST;
	const second = await call("/v1/embed", { key, body: { input: uniquePrompt("second") }, env: { ORIGIN_URL: originUrl() } });
	expect(second.status).toBe(200);
	const row = await env.DB.prepare("SELECT probe_digest FROM origin_builds WHERE fingerprint = ?").bind(origin.fingerprint).first();
	expect(row).toEqual({ probe_digest: OTHER_DIGEST });
	expect(await mismatches("/v1/embed")).toBeGreaterThanOrEqual(1);
});

it("caches as before when the origin reports no digest (RUNTIME_PROBES=off)", async () => {
	const { origin, key } = await freshOriginAndKey();
	origin.fingerprint = randomFingerprint();
	origin.probeDigest = null;
	const target = { ORIGIN_URL: originUrl() };
	const body = { prompt: uniquePrompt("no probes"), max_tokens: 4 };
	expect((await call("/v1/generate", { key, body, env: target })).headers.get("x-cache")).toBe("MISS");
	expect((await call("/v1/generate", { key, body, env: target })).headers.get("x-cache")).toBe("HIT");
});
