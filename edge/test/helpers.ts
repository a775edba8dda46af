// Shared test helpers: calling the Worker with an execution context we can wait on, and API keys.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../src/index";
import { sha256Hex } from "../src/cachekey";
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

export async function call(path: string, options: CallOptions = {}): Promise<Response> {
	const headers = new Headers(options.headers);
	if (options.key) headers.set("authorization", `Bearer ${options.key}`);
	let body: BodyInit | undefined = options.rawBody;
	if (options.body !== undefined) {
		body = JSON.stringify(options.body);
		if (!headers.has("content-type")) headers.set("content-type", "application/json");
	}
	const method = options.method ?? (body === undefined ? "GET" : "POST");
	const ctx = createExecutionContext();
	const response = await worker.fetch(new Request(BASE + path, { method, headers, body }), { ...env, ...options.env } as Env, ctx);
	if (options.settle !== false) await waitOnExecutionContext(ctx);
	return response;
}

let keyCounter = 0;

/** Creates an API key the way `scripts/keys.mjs create` does: hash in KV and D1, never the key itself. */
export async function createKey(options: { revoked?: boolean; kvOnly?: boolean; d1Only?: boolean } = {}): Promise<string> {
	keyCounter += 1;
	const key = `sk_test_${keyCounter}_${crypto.randomUUID().replaceAll("-", "")}`;
	const keyHash = await sha256Hex(key);
	const record = { id: `key_${keyCounter}_${keyHash.slice(0, 8)}`, name: `test ${keyCounter}`, key_hash: keyHash, created_at: 1700000000, revoked: !!options.revoked };
	if (!options.d1Only) await env.CACHE.put(`apikey:${keyHash}`, JSON.stringify(record));
	if (!options.kvOnly) {
		await env.DB.prepare("INSERT INTO api_keys (id, name, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)")
			.bind(record.id, record.name, keyHash, record.created_at, options.revoked ? 1700000001 : null)
			.run();
	}
	return key;
}

/** A prompt no other test uses, so cache state never leaks between tests. */
export function uniquePrompt(label: string): string {
	return `${label} ${crypto.randomUUID()}`;
}

/** The usual per-test fixture: a fresh fake origin behind fetch and a fresh API key. */
export async function freshOriginAndKey(): Promise<{ origin: FakeOrigin; key: string }> {
	return { origin: installFakeOrigin(), key: await createKey() };
}
