// Signed receipts (opt-in per request with `X-Steadytext-Receipt: request`): an Ed25519 signature by the
// RECEIPT_SIGNING_KEY secret over what an answer is — the route, the sha256 of the request body exactly as
// received, the model fingerprint, the model file's sha256 and the sha256 of the response body exactly as
// sent. Anyone holding the public key (the `receiptPublicKey` stack output) and the saved request and
// response bytes can check it later: `python -m runtime.receipt verify` (docs/edge.md, "Receipts").
// Receipts carry no time and no key id: Ed25519 is deterministic, so the same request answered by the
// same build gets the same receipt, live or from the cache.
import { canonicalJson } from "./cache/cachekey";
import { secret } from "./config";
import { HttpError } from "./errors";

export const RECEIPT_HEADER = "X-Steadytext-Receipt";
const RECEIPT_VERSION = "steadytext-receipt/1";
const REQUEST_VALUE = "request";

interface ReceiptFields {
	route: string;
	requestSha256: string;
	fingerprint: string;
	modelSha256: string;
	responseSha256: string;
}

/** Whether the request asks for a receipt; any other value than `request` is refused, never ignored. */
export function receiptRequested(request: Request): boolean {
	const value = request.headers.get(RECEIPT_HEADER);
	if (value === null) return false;
	if (value.trim().toLowerCase() === REQUEST_VALUE) return true;
	throw new HttpError(
		400,
		"invalid_request",
		`must be "${REQUEST_VALUE}" (or absent), got ${JSON.stringify(value.slice(0, 40))}`,
		RECEIPT_HEADER,
	);
}

const imported = new Map<string, Promise<CryptoKey>>();

function pemBody(pem: string): Uint8Array {
	// Whitespace and literal "\n" escapes are ignored, so a key pasted on one line (a .dev.vars value) works.
	const match = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(pem);
	if (!match) throw new Error("no PKCS#8 PEM block");
	const base64 = match[1].replace(/\\n|\s/g, "");
	return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

async function importSigningKey(pem: string): Promise<CryptoKey> {
	try {
		const key = await crypto.subtle.importKey("pkcs8", pemBody(pem), { name: "Ed25519" }, false, ["sign"]);
		// workerd imports another algorithm's PKCS#8 as Ed25519 and fails only when it signs: try it once here.
		await crypto.subtle.sign({ name: "Ed25519" }, key, new Uint8Array(0));
		return key;
	} catch (error) {
		throw new HttpError(
			500,
			"configuration_error",
			`RECEIPT_SIGNING_KEY is not an Ed25519 private key in PKCS#8 PEM (${(error as Error).message}); receipts cannot be signed`,
		);
	}
}

/** The signing key, checked before any work is done for a request that wants a receipt. */
export async function signingKey(env: Env): Promise<CryptoKey> {
	const pem = secret(env, "RECEIPT_SIGNING_KEY");
	if (pem === null) {
		throw new HttpError(
			500,
			"configuration_error",
			`RECEIPT_SIGNING_KEY is not set: this deployment cannot sign receipts (${RECEIPT_HEADER}: ${REQUEST_VALUE}); send the request without it`,
		);
	}
	let key = imported.get(pem);
	if (!key) {
		key = importSigningKey(pem);
		imported.set(pem, key);
		key.catch(() => imported.delete(pem));
	}
	return key;
}

export async function sha256HexOf(bytes: Uint8Array): Promise<string> {
	const digest = await crypto.subtle.digest("SHA-256", bytes);
	return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function base64(bytes: ArrayBuffer): string {
	return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** The signed message: the canonical JSON (sorted keys, no spaces) of every field but the signature. */
function signedFields(fields: ReceiptFields): Record<string, string> {
	return {
		version: RECEIPT_VERSION,
		route: fields.route,
		request_sha256: fields.requestSha256,
		fingerprint: fields.fingerprint,
		model_sha256: fields.modelSha256,
		response_sha256: fields.responseSha256,
	};
}

/** The receipt header's value: the signed fields and `signature` (base64 of the 64-byte Ed25519 signature). */
export async function signReceipt(key: CryptoKey, fields: ReceiptFields): Promise<string> {
	const signed = signedFields(fields);
	const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, new TextEncoder().encode(canonicalJson(signed)));
	return canonicalJson({ ...signed, signature: base64(signature) });
}
