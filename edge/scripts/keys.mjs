#!/usr/bin/env node
// API-key admin for the steadytext-edge Worker. Only a key's SHA-256 is stored: in D1 api_keys (the
// durable list) and in KV as apikey:<hash> (the Worker's fast lookup). See docs/edge.md.
//
//   node scripts/keys.mjs create --name NAME [POLICY]       (--local [--persist-to DIR] | --remote)
//   node scripts/keys.mjs rotate --id KEY_ID --overlap 24h  (--local [--persist-to DIR] | --remote)
//   node scripts/keys.mjs revoke --id KEY_ID                (--local [--persist-to DIR] | --remote)
//   node scripts/keys.mjs list [--json]                     (--local [--persist-to DIR] | --remote)
//   node scripts/keys.mjs usage --id KEY_ID [--days N] [--json]  (--local [--persist-to DIR] | --remote)
//
// POLICY (each optional; absent = no restriction): --routes R1,R2 (contract/routes.json names)
// --models M1,M2 (`model` values) --expires 30d|ISO-TIME --daily-requests N --daily-tokens N.
// create and rotate print the new key alone on the last stdout line (everything else goes to stderr).
// rotate makes a new key with the old one's name and policy; the old key keeps working for the overlap,
// then is refused with a message naming the rotation. usage prints a key's requests, tokens, tokens served
// from the cache and errors by UTC day and route for the last N days (default 7, today included), as GET
// /v1/usage answers the key itself.
// --local uses wrangler's local stores, laid out as `wrangler dev|d1|kv --local --persist-to DIR` does
// (DIR/v3/...; default .wrangler/state), after the D1 migrations have been applied there. --remote uses the Cloudflare API with CLOUDFLARE_ACCOUNT_ID,
// CLOUDFLARE_API_TOKEN and the database / namespace ids from --database-id / --namespace-id (or
// STEADYTEXT_D1_DATABASE_ID / STEADYTEXT_KV_NAMESPACE_ID).
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const EDGE_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const API_BASE = process.env.CLOUDFLARE_API_BASE_URL ?? "https://api.cloudflare.com/client/v4";
const KEY_PREFIX = "apikey:";
// The routes a scope may name: the contract's (the Worker checks scopes against the same file).
const SCOPABLE_ROUTES = Object.keys(JSON.parse(readFileSync(path.join(EDGE_DIR, "..", "contract", "routes.json"), "utf8")).routes);
// What the Worker accepts as a `model` value (src/admission/validate.ts MAX_MODEL_CHARS), without separators.
const MODEL_NAME = /^[^\s,]{1,256}$/;
const DURATION_UNITS = { s: 1, m: 60, h: 3600, d: 86400 };
// The columns of migration 0006 (all nullable: NULL = no restriction), in the KV record under the same names.
const POLICY_COLUMNS = [
	"scope_routes",
	"scope_models",
	"expires_at",
	"rotated_at",
	"valid_until",
	"replaced_by",
	"daily_requests",
	"daily_tokens",
	// Migration 0009: set by rotate, so a replacement draws on its predecessor's daily budgets.
	"budget_key_id",
];
const JSON_COLUMNS = new Set(["scope_routes", "scope_models"]);

class UsageError extends Error {}

const sha256Hex = (text) => createHash("sha256").update(text).digest("hex");
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The record the Worker reads from KV (src/admission/auth.ts ApiKeyRecord), from a D1 row. */
function kvRecord(row, revoked) {
	const record = { id: row.id, name: row.name, key_hash: row.key_hash, created_at: row.created_at, revoked };
	for (const column of POLICY_COLUMNS) {
		const value = row[column] ?? null;
		if (value !== null) record[column] = JSON_COLUMNS.has(column) && typeof value === "string" ? JSON.parse(value) : value;
	}
	return JSON.stringify(record);
}

/** Seconds in "90s", "15m", "24h", "30d". */
function durationSeconds(text, flag) {
	const match = /^([0-9]+)([smhd])$/.exec(text ?? "");
	if (!match) throw new UsageError(`${flag} must be a duration like 90s, 15m, 24h or 30d, got ${JSON.stringify(text)}`);
	return Number(match[1]) * DURATION_UNITS[match[2]];
}

function listOption(text, flag, check, allowed) {
	const values = text.split(",").map((value) => value.trim());
	for (const value of values) {
		if (!check(value)) throw new UsageError(`unknown ${flag} scope ${JSON.stringify(value)}; allowed: ${allowed}`);
	}
	return [...new Set(values)];
}

function wholeNumber(text, flag) {
	if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text)))
		throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(text)}`);
	return Number(text);
}

/** The policy columns set by --routes, --models, --expires, --daily-requests, --daily-tokens. */
function policyOf(options) {
	const policy = {};
	if (options.routes !== undefined)
		policy.scope_routes = JSON.stringify(
			listOption(options.routes, "--routes", (r) => SCOPABLE_ROUTES.includes(r), SCOPABLE_ROUTES.join(", ")),
		);
	if (options.models !== undefined)
		policy.scope_models = JSON.stringify(
			listOption(
				options.models,
				"--models",
				(m) => MODEL_NAME.test(m),
				"model names as GET /v1/models lists them (1-256 characters, no spaces or commas)",
			),
		);
	if (options.expires !== undefined) {
		const at = /^[0-9]+[smhd]$/.test(options.expires)
			? nowSeconds() + durationSeconds(options.expires, "--expires")
			: Date.parse(options.expires) / 1000;
		if (!Number.isFinite(at))
			throw new UsageError(`--expires must be a duration (30d) or an ISO time, got ${JSON.stringify(options.expires)}`);
		if (at <= nowSeconds()) throw new UsageError(`--expires ${options.expires} is not in the future`);
		policy.expires_at = Math.floor(at);
	}
	if (options["daily-requests"] !== undefined) policy.daily_requests = wholeNumber(options["daily-requests"], "--daily-requests");
	if (options["daily-tokens"] !== undefined) policy.daily_tokens = wholeNumber(options["daily-tokens"], "--daily-tokens");
	return policy;
}

/** Parses wrangler.jsonc: strings are matched first, so "//" inside a URL survives comment removal. */
function parseJsonc(text) {
	const json = text.replace(/("(?:\\.|[^"\\])*")|\/\/[^\n]*|\/\*[\s\S]*?\*\/|,(?=\s*[}\]])/g, (_, string) => string ?? "");
	return JSON.parse(json);
}

function wranglerBindingIds(configPath) {
	const config = parseJsonc(readFileSync(configPath, "utf8"));
	const d1 = config.d1_databases?.find((db) => db.binding === "DB");
	const kv = config.kv_namespaces?.find((ns) => ns.binding === "CACHE");
	if (!d1?.database_id || !kv?.id) throw new UsageError(`${configPath} must declare the DB (D1) and CACHE (KV) bindings`);
	return { databaseId: d1.database_id, namespaceId: kv.id };
}

/** Wrangler's local D1 and KV, opened with Miniflare so statements take bound parameters. */
async function localStore(options) {
	const { Miniflare } = await import("miniflare");
	const { databaseId, namespaceId } = wranglerBindingIds(options.config);
	const root = path.join(path.resolve(options["persist-to"] ?? path.join(EDGE_DIR, ".wrangler", "state")), "v3");
	const mf = new Miniflare({
		modules: true,
		script: "export default {}",
		cf: false,
		d1Databases: { DB: databaseId },
		kvNamespaces: { CACHE: namespaceId },
		d1Persist: path.join(root, "d1"),
		kvPersist: path.join(root, "kv"),
	});
	const db = await mf.getD1Database("DB");
	const kv = await mf.getKVNamespace("CACHE");
	return {
		query: async (sql, params) => {
			try {
				return (
					await db
						.prepare(sql)
						.bind(...params)
						.all()
				).results;
			} catch (error) {
				if (!/no such table/.test(error.message)) throw error;
				throw new UsageError(
					`${error.message}: apply the D1 migrations first: npx wrangler d1 migrations apply DB --local --persist-to DIR`,
				);
			}
		},
		kvPut: (key, value) => kv.put(key, value),
		close: () => mf.dispose(),
	};
}

/** The Cloudflare REST API: D1 query with bound params, KV value write. */
function remoteStore(options) {
	const accountId = process.env.CLOUDFLARE_ACCOUNT_ID;
	const token = process.env.CLOUDFLARE_API_TOKEN;
	const databaseId = options["database-id"] ?? process.env.STEADYTEXT_D1_DATABASE_ID;
	const namespaceId = options["namespace-id"] ?? process.env.STEADYTEXT_KV_NAMESPACE_ID;
	const missing = [
		["CLOUDFLARE_ACCOUNT_ID", accountId],
		["CLOUDFLARE_API_TOKEN", token],
		["--database-id or STEADYTEXT_D1_DATABASE_ID", databaseId],
		["--namespace-id or STEADYTEXT_KV_NAMESPACE_ID", namespaceId],
	].filter(([, value]) => !value);
	if (missing.length > 0) throw new UsageError(`--remote needs ${missing.map(([name]) => name).join(", ")}`);
	const api = async (method, url, body, contentType) => {
		const response = await fetch(`${API_BASE}/accounts/${accountId}${url}`, {
			method,
			headers: { authorization: `Bearer ${token}`, "content-type": contentType },
			body,
		});
		const payload = await response.json().catch(() => null);
		if (!response.ok || payload?.success === false) {
			const detail = payload?.errors?.map((error) => error.message).join("; ") || `HTTP ${response.status}`;
			throw new Error(`Cloudflare API ${method} ${url.split("?")[0]} failed: ${detail}`);
		}
		return payload;
	};
	return {
		query: async (sql, params) => {
			const payload = await api("POST", `/d1/database/${databaseId}/query`, JSON.stringify({ sql, params }), "application/json");
			return payload.result?.[0]?.results ?? [];
		},
		kvPut: (key, value) => api("PUT", `/storage/kv/namespaces/${namespaceId}/values/${encodeURIComponent(key)}`, value, "text/plain"),
		close: async () => {},
	};
}

/** Writes a new key with `policy` (column -> value) and returns [key, row]. */
async function insertKey(store, name, policy) {
	const key = `sk_${randomBytes(32).toString("base64url")}`;
	const row = { id: `key_${randomBytes(8).toString("hex")}`, name, key_hash: sha256Hex(key), created_at: nowSeconds(), ...policy };
	const columns = Object.keys(policy);
	// D1 first: if the KV write fails, the Worker still finds the key through its D1 fallback.
	await store.query(
		`INSERT INTO api_keys (id, name, key_hash, created_at, revoked_at${columns.map((c) => `, ${c}`).join("")}) VALUES (?, ?, ?, ?, NULL${", ?".repeat(columns.length)})`,
		[row.id, row.name, row.key_hash, row.created_at, ...columns.map((c) => policy[c])],
	);
	await store.kvPut(KEY_PREFIX + row.key_hash, kvRecord(row, false));
	return [key, row];
}

async function create(store, options) {
	const name = options.name?.trim();
	if (!name) throw new UsageError("create needs --name NAME");
	const [key, row] = await insertKey(store, name, policyOf(options));
	console.error(`created ${row.id} (${name}); the key is shown once, store it now:`);
	console.log(key);
}

async function findKey(store, id, command) {
	if (!id) throw new UsageError(`${command} needs --id KEY_ID (see \`list\`)`);
	const [row] = await store.query(
		`SELECT id, name, key_hash, created_at, revoked_at, ${POLICY_COLUMNS.join(", ")} FROM api_keys WHERE id = ?`,
		[id],
	);
	if (!row) throw new UsageError(`no API key with id ${id}`);
	return row;
}

async function rotate(store, options) {
	const overlap = durationSeconds(options.overlap, "--overlap");
	const old = await findKey(store, options.id, "rotate");
	if (old.revoked_at != null) throw new UsageError(`${old.id} is revoked; create a new key instead`);
	if (old.replaced_by) throw new UsageError(`${old.id} was already rotated (replaced by ${old.replaced_by})`);
	// The replacement inherits the expiry: rotating an expired key would print a key refused from the start.
	if (old.expires_at != null && old.expires_at <= nowSeconds())
		throw new UsageError(
			`${old.id} expired at ${new Date(old.expires_at * 1000).toISOString()}; its replacement would inherit that expiry: create a new key instead`,
		);
	// The new key inherits the old one's name, scopes, expiry and budgets (not its rotation fields), and
	// draws on the same day's budget: a rotation must not hand out a fresh one.
	const inherited = Object.fromEntries(
		["scope_routes", "scope_models", "expires_at", "daily_requests", "daily_tokens"].filter((c) => old[c] != null).map((c) => [c, old[c]]),
	);
	inherited.budget_key_id = old.budget_key_id ?? old.id;
	const [key, row] = await insertKey(store, old.name, inherited);
	const rotatedAt = nowSeconds();
	const rotated = { ...old, rotated_at: rotatedAt, valid_until: rotatedAt + overlap, replaced_by: row.id };
	// KV first, as for revoke: the Worker reads KV before D1.
	await store.kvPut(KEY_PREFIX + old.key_hash, kvRecord(rotated, false));
	await store.query("UPDATE api_keys SET rotated_at = ?, valid_until = ?, replaced_by = ? WHERE id = ?", [
		rotated.rotated_at,
		rotated.valid_until,
		row.id,
		old.id,
	]);
	console.error(
		`rotated ${old.id} (${old.name}): it works until ${new Date(rotated.valid_until * 1000).toISOString()}; its replacement ${row.id} is shown once, store it now:`,
	);
	console.log(key);
}

async function revoke(store, options) {
	const row = await findKey(store, options.id, "revoke");
	// KV first: the Worker reads KV before D1, so once this write lands the key answers 403 even if the
	// D1 update below fails (revoke is idempotent; run it again).
	await store.kvPut(KEY_PREFIX + row.key_hash, kvRecord(row, true));
	await store.query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", [nowSeconds(), row.id]);
	console.error(`revoked ${row.id} (${row.name})`);
}

async function list(store, options) {
	const rows = await store.query(
		`SELECT id, name, created_at, revoked_at, ${POLICY_COLUMNS.join(", ")} FROM api_keys ORDER BY created_at, id`,
		[],
	);
	if (options.json) {
		console.log(JSON.stringify(rows));
		return;
	}
	const iso = (seconds) => new Date(seconds * 1000).toISOString();
	for (const row of rows) {
		let state = row.revoked_at == null ? "active" : `revoked ${iso(row.revoked_at)}`;
		if (row.revoked_at == null && row.replaced_by) state = `rotated to ${row.replaced_by}, valid until ${iso(row.valid_until)}`;
		const policy = [
			row.scope_routes && `routes ${JSON.parse(row.scope_routes).join(",")}`,
			row.scope_models && `models ${JSON.parse(row.scope_models).join(",")}`,
			row.expires_at != null && `expires ${iso(row.expires_at)}`,
			row.daily_requests != null && `${row.daily_requests} requests/day`,
			row.daily_tokens != null && `${row.daily_tokens} tokens/day`,
		].filter(Boolean);
		console.log(`${row.id}\t${row.name}\t${iso(row.created_at)}\t${state}${policy.length ? `\t${policy.join("; ")}` : ""}`);
	}
}

// As many days as one GET /v1/usage answer covers (src/observability/usage.ts MAX_USAGE_RANGE_DAYS).
const MAX_USAGE_DAYS = 93;

async function usage(store, options) {
	const row = await findKey(store, options.id, "usage");
	const days = options.days === undefined ? 7 : wholeNumber(options.days, "--days");
	if (days < 1 || days > MAX_USAGE_DAYS) throw new UsageError(`--days must be from 1 to ${MAX_USAGE_DAYS}, got ${days}`);
	const to = new Date().toISOString().slice(0, 10);
	const from = new Date(Date.now() - (days - 1) * 86_400_000).toISOString().slice(0, 10);
	const rows = await store.query(
		`SELECT day, route, COUNT(*) AS requests, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
			SUM(cached_tokens) AS cached_tokens, SUM(error) AS errors
		FROM key_usage WHERE key_id = ? AND day BETWEEN ? AND ? GROUP BY day, route ORDER BY day, route`,
		[row.id, from, to],
	);
	if (options.json) {
		console.log(JSON.stringify({ key_id: row.id, from, to, by_day_and_route: rows }));
		return;
	}
	console.error(`usage of ${row.id} (${row.name}), ${from} to ${to} (UTC days):`);
	console.log(["day", "route", "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "errors"].join("\t"));
	for (const r of rows)
		console.log([r.day, r.route, r.requests, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.errors].join("\t"));
}

const COMMANDS = { create, rotate, revoke, list, usage };

async function main(argv) {
	const { values: options, positionals } = parseArgs({
		args: argv,
		allowPositionals: true,
		options: {
			name: { type: "string" },
			id: { type: "string" },
			overlap: { type: "string" },
			days: { type: "string" },
			routes: { type: "string" },
			models: { type: "string" },
			expires: { type: "string" },
			"daily-requests": { type: "string" },
			"daily-tokens": { type: "string" },
			json: { type: "boolean" },
			local: { type: "boolean" },
			remote: { type: "boolean" },
			"persist-to": { type: "string" },
			config: { type: "string", default: path.join(EDGE_DIR, "wrangler.jsonc") },
			"database-id": { type: "string" },
			"namespace-id": { type: "string" },
		},
	});
	const command = COMMANDS[positionals[0]];
	if (!command || positionals.length !== 1)
		throw new UsageError(`usage: keys.mjs create|rotate|revoke|list|usage (got ${JSON.stringify(positionals.join(" "))})`);
	const policyFlags = ["routes", "models", "expires", "daily-requests", "daily-tokens"].filter((flag) => options[flag] !== undefined);
	if (policyFlags.length > 0 && positionals[0] !== "create")
		throw new UsageError(`--${policyFlags[0]} only applies to create (rotate copies the old key's policy)`);
	if (options.overlap !== undefined && positionals[0] !== "rotate") throw new UsageError("--overlap only applies to rotate");
	if (options.days !== undefined && positionals[0] !== "usage") throw new UsageError("--days only applies to usage");
	if (options.local === options.remote) throw new UsageError("pass exactly one of --local or --remote");
	if (options.remote && options["persist-to"]) throw new UsageError("--persist-to only applies to --local");
	const store = options.local ? await localStore(options) : remoteStore(options);
	try {
		await command(store, options);
	} finally {
		await store.close();
	}
}

main(process.argv.slice(2)).then(
	// Exit at once: idle keep-alive sockets would otherwise hold the process for a few seconds.
	() => process.exit(0),
	(error) => {
		console.error(`keys.mjs: ${error.message}`);
		process.exit(error instanceof UsageError || error.code?.startsWith?.("ERR_PARSE_ARGS") ? 2 : 1);
	},
);
