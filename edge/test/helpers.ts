// Shared test helpers: calling the Worker with an execution context we can wait on, and API keys.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../src/index";
import type { ApiKeyRecord } from "../src/admission/auth";
import { sha256Hex } from "../src/cache/cachekey";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";

export const BASE = "https://edge.test";

export interface CallOptions {
	method?: string;
	body?: unknown;
	/** A raw body, sent as is (malformed JSON, bytes, streams). */
	rawBody?: BodyInit;
	headers?: Record<string, string>;
	key?: string | null;
	env?: Partial<Env>;
	/** Wait for the request's waitUntil work (cache write-behind, metrics) before returning. */
	settle?: boolean;
}

/** A client IP of its own per call unless a test sets CF-Connecting-IP: failed checks are limited per IP. */
export function randomClientIp(): string {
	const [a, b] = crypto.getRandomValues(new Uint8Array(2));
	return `198.18.${a}.${b}`;
}

export function buildRequest(path: string, options: CallOptions = {}): Request<unknown, IncomingRequestCfProperties> {
	const headers = new Headers(options.headers);
	if (options.key) headers.set("authorization", `Bearer ${options.key}`);
	if (!headers.has("cf-connecting-ip")) headers.set("cf-connecting-ip", randomClientIp());
	let body: BodyInit | undefined = options.rawBody;
	if (options.body !== undefined) {
		body = JSON.stringify(options.body);
		if (!headers.has("content-type")) headers.set("content-type", "application/json");
	}
	const method = options.method ?? (body === undefined ? "GET" : "POST");
	return new Request<unknown, IncomingRequestCfProperties>(BASE + path, { method, headers, body });
}

/** Sends a request through the Worker; pass a prebuilt `request` to inspect it afterwards. */
export async function call(path: string, options: CallOptions = {}, request = buildRequest(path, options)): Promise<Response> {
	const ctx = createExecutionContext();
	const response = await worker.fetch(request, { ...env, ...options.env } as Env, ctx);
	if (options.settle !== false) await waitOnExecutionContext(ctx);
	return response;
}

let keyCounter = 0;

/** The fields of a key record added by migration 0006 (scopes, expiry, rotation, budgets). */
export type KeyPolicy = Omit<ApiKeyRecord, "id" | "name" | "key_hash" | "created_at" | "revoked">;

/**
 * Creates an API key the way `scripts/keys.mjs create` does: hash in KV and D1, never the key itself.
 * `policy` adds the fields of migration 0006; without it the records have the shape written before it.
 */
export async function createKey(
	options: { revoked?: boolean; kvOnly?: boolean; d1Only?: boolean; policy?: KeyPolicy } = {},
): Promise<string> {
	keyCounter += 1;
	const key = `sk_test_${keyCounter}_${crypto.randomUUID().replaceAll("-", "")}`;
	const keyHash = await sha256Hex(key);
	const record = {
		id: `key_${keyCounter}_${keyHash.slice(0, 8)}`,
		name: `test ${keyCounter}`,
		key_hash: keyHash,
		created_at: 1700000000,
		revoked: !!options.revoked,
		...options.policy,
	};
	if (!options.d1Only) await env.CACHE.put(`apikey:${keyHash}`, JSON.stringify(record));
	if (!options.kvOnly) {
		await env.DB.prepare("INSERT INTO api_keys (id, name, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)")
			.bind(record.id, record.name, keyHash, record.created_at, options.revoked ? 1700000001 : null)
			.run();
		for (const [column, value] of Object.entries(options.policy ?? {})) {
			await env.DB.prepare(`UPDATE api_keys SET ${column} = ? WHERE id = ?`)
				.bind(Array.isArray(value) ? JSON.stringify(value) : value, record.id)
				.run();
		}
	}
	return key;
}

/** The public id of a key made by createKey (what the Worker names the tenant by). */
export async function keyIdOf(key: string): Promise<string> {
	const record = await env.CACHE.get<{ id: string }>(`apikey:${await sha256Hex(key)}`, "json");
	if (!record) throw new Error("not a key made by createKey");
	return record.id;
}

/** A prompt no other test uses, so cache state never leaks between tests. Its random part has no digits:
 * hex digit groups can line up into a Luhn-valid card number, which DLP would rightly refuse. */
export function uniquePrompt(label: string): string {
	return `${label} ${crypto.randomUUID().replace(/[0-9]/g, (digit) => "ghijklmnop"[Number(digit)])}`;
}

/** The usual per-test fixture: a fresh fake origin behind fetch and a fresh API key. */
export async function freshOriginAndKey(): Promise<{ origin: FakeOrigin; key: string }> {
	return { origin: installFakeOrigin(), key: await createKey() };
}

export interface StorageSpy {
	/** Bindings to pass as `env`: the real KV and D1, with every call recorded. */
	env: Pick<Env, "CACHE" | "DB">;
	/** "method name" for each KV call, e.g. "get apikey:…", "getWithMetadata gen:v1:…". */
	kv: string[];
	/** The SQL of each D1 statement prepared, batched or executed. */
	d1: string[];
}

/** Wraps KV and D1 so a test can see every read and write a request made (or did not make). */
export function spyOnStorage(): StorageSpy {
	const spy: StorageSpy = { env: { CACHE: env.CACHE, DB: env.DB }, kv: [], d1: [] };
	const wrap = <T extends object>(target: T, record: (method: string, args: unknown[]) => void): T =>
		new Proxy(target, {
			get: (object, prop) => {
				const value = Reflect.get(object, prop);
				if (typeof value !== "function") return value;
				return (...args: unknown[]) => {
					record(String(prop), args);
					return value.apply(object, args);
				};
			},
		});
	spy.env.CACHE = wrap(env.CACHE, (method, args) => spy.kv.push(`${method} ${String(args[0])}`));
	spy.env.DB = wrap(env.DB, (method, args) => {
		if (method === "prepare" || method === "exec") spy.d1.push(String(args[0]));
		if (method === "batch") spy.d1.push("batch");
	});
	return spy;
}
