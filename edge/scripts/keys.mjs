#!/usr/bin/env node
// API-key admin for the steadytext-edge Worker. Only a key's SHA-256 is stored: in D1 api_keys (the
// durable list) and in KV as apikey:<hash> (the Worker's fast lookup). See docs/edge.md.
//
//   node scripts/keys.mjs create --name NAME  (--local [--persist-to DIR] | --remote)
//   node scripts/keys.mjs revoke --id KEY_ID  (--local [--persist-to DIR] | --remote)
//   node scripts/keys.mjs list [--json]       (--local [--persist-to DIR] | --remote)
//
// create prints the new key alone on the last stdout line (everything else goes to stderr).
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

class UsageError extends Error {}

const sha256Hex = (text) => createHash("sha256").update(text).digest("hex");
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The record the Worker reads from KV (src/admission/auth.ts ApiKeyRecord). */
const kvRecord = (row, revoked) =>
	JSON.stringify({ id: row.id, name: row.name, key_hash: row.key_hash, created_at: row.created_at, revoked });

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

async function create(store, options) {
	const name = options.name?.trim();
	if (!name) throw new UsageError("create needs --name NAME");
	const key = `sk_${randomBytes(32).toString("base64url")}`;
	const row = { id: `key_${randomBytes(8).toString("hex")}`, name, key_hash: sha256Hex(key), created_at: nowSeconds() };
	// D1 first: if the KV write fails, the Worker still finds the key through its D1 fallback.
	await store.query("INSERT INTO api_keys (id, name, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)", [
		row.id,
		row.name,
		row.key_hash,
		row.created_at,
	]);
	await store.kvPut(KEY_PREFIX + row.key_hash, kvRecord(row, false));
	console.error(`created ${row.id} (${name}); the key is shown once, store it now:`);
	console.log(key);
}

async function revoke(store, options) {
	if (!options.id) throw new UsageError("revoke needs --id KEY_ID (see `list`)");
	const [row] = await store.query("SELECT id, name, key_hash, created_at, revoked_at FROM api_keys WHERE id = ?", [options.id]);
	if (!row) throw new UsageError(`no API key with id ${options.id}`);
	// KV first: the Worker reads KV before D1, so once this write lands the key answers 403 even if the
	// D1 update below fails (revoke is idempotent; run it again).
	await store.kvPut(KEY_PREFIX + row.key_hash, kvRecord(row, true));
	await store.query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", [nowSeconds(), row.id]);
	console.error(`revoked ${row.id} (${row.name})`);
}

async function list(store, options) {
	const rows = await store.query("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id", []);
	if (options.json) {
		console.log(JSON.stringify(rows));
		return;
	}
	for (const row of rows) {
		const state = row.revoked_at === null ? "active" : `revoked ${new Date(row.revoked_at * 1000).toISOString()}`;
		console.log(`${row.id}\t${row.name}\t${new Date(row.created_at * 1000).toISOString()}\t${state}`);
	}
}

const COMMANDS = { create, revoke, list };

async function main(argv) {
	const { values: options, positionals } = parseArgs({
		args: argv,
		allowPositionals: true,
		options: {
			name: { type: "string" },
			id: { type: "string" },
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
		throw new UsageError(`usage: keys.mjs create|revoke|list (got ${JSON.stringify(positionals.join(" "))})`);
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
