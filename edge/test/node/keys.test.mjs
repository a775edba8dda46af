// The API-key CLI (scripts/keys.mjs): local mode against wrangler's --persist-to stores, checked through
// a real `wrangler dev` Worker on the same stores; remote mode against a fake Cloudflare API.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runNode, runWrangler, startWranglerDev } from "./wrangler-local.mjs";

const KEYS = "scripts/keys.mjs";
const KEY_PATTERN = /^sk_[A-Za-z0-9_-]{43}$/;
const lastLine = (text) => text.trim().split("\n").at(-1);

describe("keys.mjs --local", () => {
	let persistTo;
	beforeAll(async () => {
		persistTo = mkdtempSync(path.join(tmpdir(), "keys-cli-"));
		const applied = await runWrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo]);
		expect(applied.code, applied.stderr).toBe(0);
	});
	afterAll(() => rmSync(persistTo, { recursive: true, force: true }));

	const local = (...args) => runNode([KEYS, ...args, "--local", "--persist-to", persistTo]);

	it("creates, lists and revokes keys that the Worker honours", async () => {
		const created = await local("create", "--name", "ci's key");
		expect(created.code, created.stderr).toBe(0);
		const key = lastLine(created.stdout);
		expect(key).toMatch(KEY_PATTERN);
		expect(created.stdout.trim()).toBe(key);

		const listed = await local("list", "--json");
		const [row] = JSON.parse(listed.stdout);
		expect(row).toMatchObject({ name: "ci's key", revoked_at: null });
		expect(listed.stdout).not.toContain(key);

		// wrangler's own view of the same store holds the hash, never the key.
		const kv = await runWrangler([
			"kv",
			"key",
			"get",
			`apikey:${createHash("sha256").update(key).digest("hex")}`,
			"--binding",
			"CACHE",
			"--local",
			"--persist-to",
			persistTo,
		]);
		expect(JSON.parse(lastLine(kv.stdout))).toMatchObject({ id: row.id, revoked: false });

		const worker = await startWranglerDev(persistTo, { ORIGIN_URL: "http://127.0.0.1:9", ORIGIN_TIMEOUT_MS: "500" });
		try {
			const ask = (apiKey) =>
				fetch(`${worker.url}/v1/generate`, {
					method: "POST",
					headers: { "content-type": "application/json", "x-api-key": apiKey },
					body: '{"prompt":"hi"}',
				});
			expect((await ask("sk_unknown")).status).toBe(401);
			// Past the key check; the origin is closed, so the answer is 503.
			expect((await ask(key)).status).toBe(503);

			const revoked = await local("revoke", "--id", row.id);
			expect(revoked.code, revoked.stderr).toBe(0);
			expect((await ask(key)).status).toBe(403);
		} finally {
			await worker.stop();
		}
		const after = JSON.parse((await local("list", "--json")).stdout);
		expect(after[0].revoked_at).toBeGreaterThan(0);
	});

	it("creates scoped, expiring, budgeted keys and rotates them with an overlap the Worker honours", async () => {
		const created = await local(
			"create",
			"--name",
			"scoped",
			"--routes",
			"/v1/embed,/v1/embeddings",
			"--models",
			"gemma3-270m",
			"--expires",
			"30d",
			"--daily-requests",
			"100",
			"--daily-tokens",
			"5000",
		);
		expect(created.code, created.stderr).toBe(0);
		const oldKey = lastLine(created.stdout);
		const rows = JSON.parse((await local("list", "--json")).stdout);
		const old = rows.find((row) => row.name === "scoped");
		expect(old).toMatchObject({
			scope_routes: '["/v1/embed","/v1/embeddings"]',
			scope_models: '["gemma3-270m"]',
			daily_requests: 100,
			daily_tokens: 5000,
		});
		expect(old.expires_at).toBeGreaterThan(Date.now() / 1000 + 29 * 86400);

		const rotated = await local("rotate", "--id", old.id, "--overlap", "1h");
		expect(rotated.code, rotated.stderr).toBe(0);
		const newKey = lastLine(rotated.stdout);
		expect(newKey).toMatch(KEY_PATTERN);
		expect(rotated.stderr).toMatch(/works until \d{4}-/);
		const after = JSON.parse((await local("list", "--json")).stdout);
		const successor = after.find((row) => row.name === "scoped" && row.id !== old.id);
		// The replacement inherits the scopes, expiry and budgets.
		expect(successor).toMatchObject({
			scope_routes: old.scope_routes,
			scope_models: old.scope_models,
			expires_at: old.expires_at,
			daily_requests: 100,
		});
		const oldAfter = after.find((row) => row.id === old.id);
		expect(oldAfter).toMatchObject({ replaced_by: successor.id });
		expect(oldAfter.valid_until - oldAfter.rotated_at).toBe(3600);
		expect((await local("list")).stdout).toContain(`rotated to ${successor.id}`);

		// A key rotated with no overlap is refused at once, naming the rotation.
		const gone = lastLine((await local("create", "--name", "rotated out")).stdout);
		const goneId = JSON.parse((await local("list", "--json")).stdout).find((row) => row.name === "rotated out").id;
		expect((await local("rotate", "--id", goneId, "--overlap", "0s")).code).toBe(0);

		const worker = await startWranglerDev(persistTo, { ORIGIN_URL: "http://127.0.0.1:9", ORIGIN_TIMEOUT_MS: "500" });
		try {
			const ask = (apiKey, route, body) =>
				fetch(`${worker.url}${route}`, {
					method: "POST",
					headers: { "content-type": "application/json", "x-api-key": apiKey },
					body: JSON.stringify(body),
				});
			const embedding = { model: "gemma3-270m", input: "hello" };
			// Past the key, scope and budget checks; the origin is closed, so the answer is 503.
			expect((await ask(oldKey, "/v1/embeddings", embedding)).status).toBe(503);
			expect((await ask(newKey, "/v1/embeddings", embedding)).status).toBe(503);
			const outOfScope = await ask(newKey, "/v1/generate", { prompt: "hi" });
			expect(outOfScope.status).toBe(403);
			expect((await outOfScope.json()).error.message).toContain("/v1/generate");
			const refused = await ask(gone, "/v1/embed", { input: "hi" });
			expect(refused.status).toBe(403);
			expect((await refused.json()).error.message).toMatch(/^API key was rotated at .* by key key_/);

			// A rotation hands over the day's budget, never a fresh one: what the old key used counts for
			// its replacement (and the old key, in its overlap, draws on the same budget).
			const budgeted = lastLine((await local("create", "--name", "one a day", "--daily-requests", "1")).stdout);
			const budgetedId = JSON.parse((await local("list", "--json")).stdout).find((row) => row.name === "one a day").id;
			expect((await ask(budgeted, "/v1/embed", { input: "hi" })).status).toBe(503);
			const renewed = lastLine((await local("rotate", "--id", budgetedId, "--overlap", "1h")).stdout);
			for (const apiKey of [renewed, budgeted]) {
				const spent = await ask(apiKey, "/v1/embed", { input: "hi" });
				expect(spent.status).toBe(429);
				expect((await spent.json()).error.type).toBe("budget_exhausted");
			}
			// Rotated again, the chain keeps drawing on its first key's budget.
			const second = JSON.parse((await local("list", "--json")).stdout).find((row) => row.name === "one a day" && row.id !== budgetedId);
			expect(second.budget_key_id).toBe(budgetedId);
			const third = lastLine((await local("rotate", "--id", second.id, "--overlap", "1h")).stdout);
			const spent = await ask(third, "/v1/embed", { input: "hi" });
			expect(spent.status).toBe(429);
			const chain = JSON.parse((await local("list", "--json")).stdout).filter((row) => row.name === "one a day");
			// (list orders by created_at then id: keys made within one second come in any order)
			expect(chain.find((row) => row.id === budgetedId).budget_key_id).toBeNull();
			expect(chain.filter((row) => row.id !== budgetedId).map((row) => row.budget_key_id)).toEqual([budgetedId, budgetedId]);
		} finally {
			await worker.stop();
		}
	});

	it("refuses an unknown scope, naming it and the allowed values", async () => {
		const route = await local("create", "--name", "x", "--routes", "/v1/generate,/v1/everything");
		expect(route.code).toBe(2);
		expect(route.stderr).toContain('unknown --routes scope "/v1/everything"; allowed: /v1/generate, /v1/embed,');
		const model = await local("create", "--name", "x", "--models", "two words");
		expect(model.code).toBe(2);
		expect(model.stderr).toContain('unknown --models scope "two words"');
		for (const args of [
			["create", "--name", "x", "--expires", "2001-01-01T00:00:00Z"],
			["create", "--name", "x", "--daily-requests", "ten"],
			["rotate", "--id", "key_x", "--overlap", "a day"],
			["revoke", "--id", "key_x", "--daily-tokens", "5"],
		]) {
			const result = await local(...args);
			expect([result.code, result.stdout]).toEqual([2, ""]);
			expect(result.stderr).toMatch(/^keys\.mjs: /);
		}
		expect(JSON.parse((await local("list", "--json")).stdout).filter((row) => row.name === "x")).toEqual([]);
	});

	it("refuses to rotate an expired key: its replacement would inherit the expiry and be dead on arrival", async () => {
		await local("create", "--name", "lapsed", "--expires", "1h");
		const { id } = JSON.parse((await local("list", "--json")).stdout).find((row) => row.name === "lapsed");
		const expired = await runWrangler([
			"d1",
			"execute",
			"DB",
			"--local",
			"--persist-to",
			persistTo,
			"--command",
			`UPDATE api_keys SET expires_at = 1000 WHERE id = '${id}'`,
		]);
		expect(expired.code, expired.stderr).toBe(0);
		const rotated = await local("rotate", "--id", id, "--overlap", "1h");
		expect([rotated.code, rotated.stdout]).toEqual([2, ""]);
		expect(rotated.stderr).toContain(`${id} expired at 1970-01-01T00:16:40.000Z`);
		expect(JSON.parse((await local("list", "--json")).stdout).filter((row) => row.name === "lapsed")).toHaveLength(1);
	});

	it("prints a key's usage by day and route, only that key's and only within --days", async () => {
		await local("create", "--name", "metered");
		const { id } = JSON.parse((await local("list", "--json")).stdout).find((row) => row.name === "metered");
		const today = new Date().toISOString().slice(0, 10);
		const insert = (day, keyId, route, prompt, completion, cached, error) =>
			`INSERT INTO key_usage (ts_ms, day, key_id, route, status_class, prompt_tokens, completion_tokens, cached_tokens, error) VALUES (0, '${day}', '${keyId}', '${route}', '2xx', ${prompt}, ${completion}, ${cached}, ${error});`;
		const seeded = await runWrangler([
			"d1",
			"execute",
			"DB",
			"--local",
			"--persist-to",
			persistTo,
			"--command",
			[
				insert(today, id, "/v1/generate", 3, 5, 0, 0),
				insert(today, id, "/v1/generate", 3, 5, 8, 0),
				insert(today, id, "/v1/embed", 4, 0, 0, 1),
				insert(today, "key_someone_else", "/v1/generate", 100, 100, 0, 0),
				insert("2001-01-01", id, "/v1/generate", 100, 100, 0, 0),
			].join(" "),
		]);
		expect(seeded.code, seeded.stderr).toBe(0);

		const json = await local("usage", "--id", id, "--days", "3", "--json");
		expect(json.code, json.stderr).toBe(0);
		expect(JSON.parse(json.stdout).by_day_and_route).toEqual([
			{ day: today, route: "/v1/embed", requests: 1, prompt_tokens: 4, completion_tokens: 0, cached_tokens: 0, errors: 1 },
			{ day: today, route: "/v1/generate", requests: 2, prompt_tokens: 6, completion_tokens: 10, cached_tokens: 8, errors: 0 },
		]);
		const text = await local("usage", "--id", id);
		expect(text.stdout.trim().split("\n")).toEqual([
			"day\troute\trequests\tprompt_tokens\tcompletion_tokens\tcached_tokens\terrors",
			`${today}\t/v1/embed\t1\t4\t0\t0\t1`,
			`${today}\t/v1/generate\t2\t6\t10\t8\t0`,
		]);
		for (const args of [["usage"], ["usage", "--id", id, "--days", "0"], ["usage", "--id", id, "--days", "94"], ["list", "--days", "3"]]) {
			const result = await local(...args);
			expect([result.code, result.stdout]).toEqual([2, ""]);
		}
	});

	it("explains bad usage with exit code 2", async () => {
		for (const args of [["create"], ["revoke", "--id", "key_missing"], ["frobnicate"]]) {
			const result = await local(...args);
			expect(result.code).toBe(2);
			expect(result.stderr).toMatch(/^keys\.mjs: /);
			expect(result.stdout).toBe("");
		}
		expect((await runNode([KEYS, "list"])).stderr).toContain("exactly one of --local or --remote");
	});

	it("tells the operator to apply the D1 migrations to an empty store", async () => {
		const empty = mkdtempSync(path.join(tmpdir(), "keys-empty-"));
		try {
			const result = await runNode([KEYS, "list", "--local", "--persist-to", empty]);
			expect(result.code).toBe(2);
			expect(result.stderr).toContain("npx wrangler d1 migrations apply DB --local");
		} finally {
			rmSync(empty, { recursive: true, force: true });
		}
	});
});

describe("keys.mjs --remote", () => {
	let server;
	let apiBase;
	const requests = [];
	const rows = [];
	beforeAll(async () => {
		server = createServer(async (request, response) => {
			let body = "";
			for await (const chunk of request) body += chunk;
			requests.push({ method: request.method, url: request.url, auth: request.headers.authorization, body });
			let result = [{ results: [] }];
			if (request.url.endsWith("/query")) {
				const { sql, params } = JSON.parse(body);
				if (sql.startsWith("INSERT"))
					rows.push({ id: params[0], name: params[1], key_hash: params[2], created_at: params[3], revoked_at: null });
				if (sql.startsWith("SELECT")) result = [{ results: rows }];
			}
			if (request.headers.authorization !== "Bearer test-token") {
				response
					.writeHead(403, { "content-type": "application/json" })
					.end(JSON.stringify({ success: false, errors: [{ message: "Authentication error" }] }));
				return;
			}
			response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ success: true, result }));
		});
		await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
		apiBase = `http://127.0.0.1:${server.address().port}/client/v4`;
	});
	afterAll(() => new Promise((resolve) => server.close(resolve)));

	const remoteEnv = (token = "test-token") => ({
		CLOUDFLARE_API_BASE_URL: apiBase,
		CLOUDFLARE_ACCOUNT_ID: "acct123",
		CLOUDFLARE_API_TOKEN: token,
		STEADYTEXT_D1_DATABASE_ID: "db-uuid",
		STEADYTEXT_KV_NAMESPACE_ID: "ns123",
	});

	it("writes the hash to D1 (bound parameters) and KV through the Cloudflare API", async () => {
		const created = await runNode([KEYS, "create", "--name", "remote key", "--remote"], remoteEnv());
		expect(created.code, created.stderr).toBe(0);
		const key = lastLine(created.stdout);
		const hash = createHash("sha256").update(key).digest("hex");
		const [insert, put] = requests;
		expect(insert).toMatchObject({
			method: "POST",
			url: "/client/v4/accounts/acct123/d1/database/db-uuid/query",
			auth: "Bearer test-token",
		});
		expect(JSON.parse(insert.body).params).toEqual([expect.stringMatching(/^key_/), "remote key", hash, expect.any(Number)]);
		expect(put).toMatchObject({ method: "PUT", url: `/client/v4/accounts/acct123/storage/kv/namespaces/ns123/values/apikey%3A${hash}` });
		expect(JSON.parse(put.body)).toMatchObject({ name: "remote key", key_hash: hash, revoked: false });
		expect(requests.map((r) => r.body).join("")).not.toContain(key);
	});

	it("reads a key's usage through the D1 query API with bound parameters", async () => {
		const created = await runNode([KEYS, "create", "--name", "metered remote", "--remote"], remoteEnv());
		expect(created.code, created.stderr).toBe(0);
		const before = requests.length;
		const printed = await runNode([KEYS, "usage", "--id", rows[0].id, "--days", "2", "--remote"], remoteEnv());
		expect(printed.code, printed.stderr).toBe(0);
		const query = requests
			.slice(before)
			.map((r) => JSON.parse(r.body))
			.find((body) => body.sql.includes("key_usage"));
		expect(query.params).toEqual([rows[0].id, expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/), new Date().toISOString().slice(0, 10)]);
	});

	it("reports API errors and missing settings without a stack trace", async () => {
		const denied = await runNode([KEYS, "list", "--remote"], remoteEnv("wrong"));
		expect(denied.code).toBe(1);
		expect(denied.stderr.trim()).toBe("keys.mjs: Cloudflare API POST /d1/database/db-uuid/query failed: Authentication error");
		const missing = await runNode([KEYS, "list", "--remote"], { CLOUDFLARE_ACCOUNT_ID: "", CLOUDFLARE_API_TOKEN: "" });
		expect(missing.code).toBe(2);
		expect(missing.stderr).toContain("CLOUDFLARE_API_TOKEN");
	});
});
