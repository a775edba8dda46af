// Signed receipts: `X-Steadytext-Receipt: request` gets an Ed25519 signature (RECEIPT_SIGNING_KEY) over the
// route, the request bytes' sha256, the fingerprint, the model sha256 and the response bytes' sha256, on
// live answers and cache hits alike; bad header values, streams and a missing or broken key are refused
// before any origin work. Keys are generated per test run with WebCrypto, as the stack's key pair is.
import { afterEach, beforeAll, expect, it, vi } from "vitest";
import { canonicalJson } from "../src/cache/cachekey";
import { FINGERPRINT, MODEL_SHA256 } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

afterEach(() => vi.restoreAllMocks());

let privatePem = "";
let publicKey: CryptoKey;
/** A valid PKCS#8 key of another algorithm (ECDSA P-256): not one that signs receipts. */
let ecdsaPem = "";

function pem(label: string, der: ArrayBuffer): string {
	const base64 = btoa(String.fromCharCode(...new Uint8Array(der)));
	return `-----BEGIN ${label}-----\n${base64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

beforeAll(async () => {
	const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
	privatePem = pem("PRIVATE KEY", (await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer);
	publicKey = pair.publicKey;
	const ecdsa = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
	ecdsaPem = pem("PRIVATE KEY", (await crypto.subtle.exportKey("pkcs8", ecdsa.privateKey)) as ArrayBuffer);
});

async function sha256(bytes: string | ArrayBuffer): Promise<string> {
	const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
	return [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

interface Receipt {
	version: string;
	route: string;
	request_sha256: string;
	fingerprint: string;
	model_sha256: string;
	response_sha256: string;
	signature: string;
}

async function signatureHolds(receipt: Receipt): Promise<boolean> {
	const { signature, ...signed } = receipt;
	const bytes = Uint8Array.from(atob(signature), (char) => char.charCodeAt(0));
	return crypto.subtle.verify({ name: "Ed25519" }, publicKey, bytes, new TextEncoder().encode(canonicalJson(signed)));
}

const withReceipt = { "x-steadytext-receipt": "request", "content-type": "application/json" };

it("signs a live answer and its cache hit with the same receipt, over the exact request and response bytes", async () => {
	const { key } = await freshOriginAndKey();
	// Spacing and key order of the client's own bytes: the receipt covers them as sent, not a re-encoding.
	const raw = `{ "max_tokens": 4,\n  "prompt": ${JSON.stringify(uniquePrompt("signed"))} }`;
	const options = { key, rawBody: raw, headers: withReceipt, env: { RECEIPT_SIGNING_KEY: privatePem } };
	const live = await call("/generate", options);
	expect(live.status).toBe(200);
	expect(live.headers.get("x-cache")).toBe("MISS");
	const liveBody = await live.arrayBuffer();
	const receipt = JSON.parse(live.headers.get("x-steadytext-receipt")!) as Receipt;
	expect(receipt).toMatchObject({
		version: "steadytext-receipt/1",
		route: "/generate",
		request_sha256: await sha256(raw),
		fingerprint: FINGERPRINT,
		model_sha256: MODEL_SHA256,
		response_sha256: await sha256(liveBody),
	});
	expect(await signatureHolds(receipt)).toBe(true);

	const hit = await call("/generate", options);
	expect(hit.headers.get("x-cache")).toBe("HIT");
	expect(await sha256(await hit.arrayBuffer())).toBe(receipt.response_sha256);
	expect(hit.headers.get("x-steadytext-receipt")).toBe(live.headers.get("x-steadytext-receipt"));

	// Any signed field changed: the signature no longer holds.
	for (const field of ["route", "request_sha256", "fingerprint", "model_sha256", "response_sha256"] as const) {
		expect(await signatureHolds({ ...receipt, [field]: field === "route" ? "/v1/embed" : "0".repeat(64) })).toBe(false);
	}
});

it("signs OpenAI and embedding answers too, and gives no receipt without the header or to an error", async () => {
	const { key } = await freshOriginAndKey();
	const signingEnv = { RECEIPT_SIGNING_KEY: privatePem };
	const embeddings = await call("/v1/embeddings", {
		key,
		body: { model: "gemma3-270m", input: uniquePrompt("signed embedding") },
		headers: { "x-steadytext-receipt": "request" },
		env: signingEnv,
	});
	expect(embeddings.status).toBe(200);
	const receipt = JSON.parse(embeddings.headers.get("x-steadytext-receipt")!) as Receipt;
	expect(receipt.route).toBe("/v1/embeddings");
	expect(receipt.response_sha256).toBe(await sha256(await embeddings.arrayBuffer()));
	expect(await signatureHolds(receipt)).toBe(true);

	const unasked = await call("/v1/generate", { key, body: { prompt: uniquePrompt("unsigned") }, env: signingEnv });
	expect(unasked.status).toBe(200);
	expect(unasked.headers.has("x-steadytext-receipt")).toBe(false);

	const refused = await call("/v1/generate", {
		key,
		body: { prompt: "origin says no" },
		headers: { "x-steadytext-receipt": "request" },
		env: signingEnv,
	});
	expect(refused.status).toBe(400);
	expect(refused.headers.has("x-steadytext-receipt")).toBe(false);
});

it("keeps signing cache hits while every origin is down, with the model sha256 it recorded", async () => {
	const { origin, key } = await freshOriginAndKey();
	const body = { prompt: uniquePrompt("signed while down"), max_tokens: 4 };
	const options = { key, body, headers: { "x-steadytext-receipt": "request" }, env: { RECEIPT_SIGNING_KEY: privatePem } };
	const live = await call("/v1/generate", options);
	expect(live.headers.get("x-cache")).toBe("MISS");
	origin.set("origin-down.test", { fail: "down" });
	const hit = await call("/v1/generate", {
		...options,
		env: { ...options.env, ORIGIN_URL: "http://origin-down.test", ORIGIN_FALLBACK_URL: "" },
	});
	expect(hit.status).toBe(200);
	expect(hit.headers.get("x-cache")).toBe("HIT");
	expect(hit.headers.get("x-steadytext-receipt")).toBe(live.headers.get("x-steadytext-receipt"));
});

it("refuses an unknown header value and a streamed request with a 400 naming the header, before any origin work", async () => {
	const { origin, key } = await freshOriginAndKey();
	for (const value of ["yes", "true", "request, please", ""]) {
		const response = await call("/v1/generate", {
			key,
			body: { prompt: uniquePrompt("bad receipt header") },
			headers: { "x-steadytext-receipt": value },
			env: { RECEIPT_SIGNING_KEY: privatePem },
		});
		expect(response.status).toBe(400);
		const { error } = await response.json<{ error: { type: string; field: string; message: string } }>();
		expect(error).toMatchObject({ type: "invalid_request", field: "X-Steadytext-Receipt" });
		expect(error.message).toContain('must be "request"');
	}
	const streamed = await call("/v1/chat/completions", {
		key,
		body: { model: "gemma3-270m", messages: [{ role: "user", content: uniquePrompt("stream") }], stream: true },
		headers: { "x-steadytext-receipt": "request" },
		env: { RECEIPT_SIGNING_KEY: privatePem },
	});
	expect(streamed.status).toBe(400);
	expect((await streamed.json<{ error: { field: string; message: string } }>()).error.message).toContain("streamed");
	expect(origin.callsTo("/v1/generate")).toHaveLength(0);
	expect(origin.callsTo("/v1/chat/completions")).toHaveLength(0);
});

it("refuses a receipt for a request DLP redacted (the model would answer other bytes than the signed ones), before any origin work", async () => {
	const { origin, key } = await freshOriginAndKey();
	// Under DLP_POLICY=redact the origin answers the redacted prompt; a receipt over the bytes as sent
	// would vouch that the model answered them, which it never read. Its plain twin stays signable.
	const prompt = `${uniquePrompt("redacted and signed")} card 4111 1111 1111 1111`;
	const env = { RECEIPT_SIGNING_KEY: privatePem, DLP_POLICY: "redact" };
	const refused = await call("/v1/generate", { key, body: { prompt, max_tokens: 4 }, headers: withReceipt, env });
	expect(refused.status).toBe(400);
	const { error } = await refused.json<{ error: { type: string; field: string; message: string } }>();
	expect(error).toMatchObject({ type: "invalid_request", field: "X-Steadytext-Receipt" });
	expect(error.message).toContain("payment_card");
	expect(error.message).not.toContain("4111");
	expect(refused.headers.has("x-steadytext-receipt")).toBe(false);
	expect(origin.callsTo("/v1/generate")).toHaveLength(0);

	const unsigned = await call("/v1/generate", { key, body: { prompt, max_tokens: 4 }, env });
	expect(unsigned.status).toBe(200);
	expect(unsigned.headers.get("x-dlp-redacted")).toBe("payment_card");
	const plain = await call("/v1/generate", {
		key,
		body: { prompt: uniquePrompt("plain and signed"), max_tokens: 4 },
		headers: withReceipt,
		env,
	});
	expect(plain.status).toBe(200);
	expect(plain.headers.has("x-steadytext-receipt")).toBe(true);
});

it("answers 500 configuration_error naming RECEIPT_SIGNING_KEY when it is missing or not a key, never an unsigned answer", async () => {
	const { origin, key } = await freshOriginAndKey();
	const broken = ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ecdsaPem];
	for (const value of broken) {
		const response = await call("/v1/generate", {
			key,
			body: { prompt: uniquePrompt("no signing key") },
			headers: { "x-steadytext-receipt": "request" },
			env: { RECEIPT_SIGNING_KEY: value },
		});
		expect(response.status).toBe(500);
		expect(response.headers.has("x-steadytext-receipt")).toBe(false);
		const { error } = await response.json<{ error: { type: string; message: string } }>();
		expect(error.type).toBe("configuration_error");
		expect(error.message).toContain("RECEIPT_SIGNING_KEY");
	}
	expect(origin.callsTo("/v1/generate")).toHaveLength(0);
	// Requests without the header are not affected by a missing key.
	expect((await call("/v1/generate", { key, body: { prompt: uniquePrompt("no receipt asked") } })).status).toBe(200);
});

it("accepts the key with literal \\n escapes on one line, as a .dev.vars value may hold it", async () => {
	const { key } = await freshOriginAndKey();
	const response = await call("/v1/generate", {
		key,
		body: { prompt: uniquePrompt("one-line key") },
		headers: { "x-steadytext-receipt": "Request" },
		env: { RECEIPT_SIGNING_KEY: privatePem.replaceAll("\n", "\\n") },
	});
	expect(response.status).toBe(200);
	expect(await signatureHolds(JSON.parse(response.headers.get("x-steadytext-receipt")!))).toBe(true);
});
