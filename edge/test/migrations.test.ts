// The upgrade path in workerd: a D1 created by the schema.sql of before numbered migrations (migration 0001
// is that file) holding answers in both old cache tables is migrated the way every runner migrates, keeps
// its answers, and the Worker serves them as hits without asking the origin.
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, expect, it, vi } from "vitest";
import { cacheKey, canonicalJson } from "../src/cache/cachekey";
import { FINGERPRINT } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

afterEach(() => vi.restoreAllMocks());

const INSERT_OLD_ROW = `INSERT INTO {table} (cache_key, route, parameters, fingerprint, body, content_type, created_at, accessed_at, expires_at, access_count)
	VALUES (?, ?, ?, ?, ?, 'application/json', ?, ?, ?, 3)`;

it("upgrades a database created by the old schema.sql, keeps its cached answers and serves them as hits", async () => {
	const db = env.UPGRADE_DB;
	const [initial] = env.D1_MIGRATIONS;
	expect(initial.name).toBe("0001_initial.sql");
	// What `wrangler d1 execute --file schema.sql` used to leave: the tables, and no d1_migrations.
	await db.batch(initial.queries.map((query) => db.prepare(query)));
	const now = Math.floor(Date.now() / 1000);
	const generate = { prompt: uniquePrompt("before the upgrade") };
	const embed = { input: uniquePrompt("before the upgrade") };
	const old = [
		{
			table: "generation_cache",
			route: "/v1/generate",
			params: generate,
			key: await cacheKey("generate", "/v1/generate", generate, FINGERPRINT),
		},
		{ table: "embedding_cache", route: "/v1/embed", params: embed, key: await cacheKey("embed", "/v1/embed", embed, FINGERPRINT) },
	].map((row, i) => ({ ...row, body: `{\n "stored": "before the upgrade", "row": ${i}\n}` }));
	await db.batch(
		old.map((row) =>
			db
				.prepare(INSERT_OLD_ROW.replace("{table}", row.table))
				.bind(row.key, row.route, canonicalJson(row.params), FINGERPRINT, row.body, now - 60, now - 60, now + 3600),
		),
	);

	await applyD1Migrations(db, env.D1_MIGRATIONS);

	const recorded = await db.prepare("SELECT name FROM d1_migrations ORDER BY id").all<{ name: string }>();
	expect(recorded.results.map((r) => r.name)).toEqual(env.D1_MIGRATIONS.map((m) => m.name));
	const { origin, key } = await freshOriginAndKey();
	for (const row of old) {
		const hit = await call(row.route, { body: row.params, key, env: { DB: db } });
		expect([hit.status, hit.headers.get("x-cache"), hit.headers.get("x-cache-tier")]).toEqual([200, "HIT", "d1"]);
		expect(hit.headers.get("x-cache-key")).toBe(row.key);
		expect(await hit.text()).toBe(row.body);
	}
	expect(origin.calls.filter((c) => c.path !== "/v1/status")).toHaveLength(0);
	// The prompts stayed behind in the dropped tables' column.
	const stored = await db.prepare("SELECT * FROM answer_cache").all();
	expect(stored.results).toHaveLength(2);
	expect(JSON.stringify(stored.results)).not.toContain(generate.prompt.split(" ").at(-1));
});
