// Cache keys: sha256 over canonical JSON of the route, every output-affecting parameter and the model
// fingerprint, and a request's cache namespace (its API key id and name, cf-aig-cache-key) when it names
// one. Hashing keeps keys far below KV's 512-byte limit and keeps prompts out of key listings.
import type { CacheNamespace } from "./controls";

export type Kind = "generate" | "embed" | "tokens" | "rerank";

// Bump when the key material or the stored format changes, so old entries are never misread.
const KEY_VERSION = 1;
// A rerank key is one (query, document) pair's score (src/rerank.ts), not a whole answer.
const KIND_PREFIX: Record<Kind, string> = { generate: "gen", embed: "emb", tokens: "tok", rerank: "rrk" };

/** JSON with object keys sorted at every level, so equal requests serialise identically. */
export function canonicalJson(value: unknown): string {
	if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
	if (value !== null && typeof value === "object") {
		const entries = Object.entries(value)
			.filter(([, item]) => item !== undefined)
			.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
		return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
	}
	return JSON.stringify(value);
}

export async function sha256Hex(text: string): Promise<string> {
	const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
	return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Without a namespace the material (and so every key stored before namespaces existed) is unchanged. */
export async function cacheKey(
	kind: Kind,
	originPath: string,
	params: unknown,
	fingerprint: string,
	namespace: CacheNamespace | null = null,
): Promise<string> {
	const material = canonicalJson({ v: KEY_VERSION, route: originPath, params, fingerprint, namespace: namespace ?? undefined });
	return `${KIND_PREFIX[kind]}:v${KEY_VERSION}:${await sha256Hex(material)}`;
}
