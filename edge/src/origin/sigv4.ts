// AWS Signature Version 4 for one kind of request: a POST of a form body to an AWS Query API endpoint at
// its root path (the scale-from-zero signal's CloudWatch PutMetricData). Web Crypto only, no SDK.
// Tested against botocore's SigV4Auth on the same request (edge/test/fixtures/sigv4-put-metric-data.json).

export interface AwsCredentials {
	accessKeyId: string;
	secretAccessKey: string;
}

interface SignedPost {
	url: string;
	headers: Record<string, string>;
	body: string;
}

const FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8";
const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
	return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text: string): Promise<string> {
	return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key: ArrayBuffer | Uint8Array, text: string): Promise<ArrayBuffer> {
	const cryptoKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
	return crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(text));
}

/** `20150830T123600Z`: the X-Amz-Date format (ISO 8601 basic, UTC, whole seconds). */
export function amzDate(date: Date): string {
	return date
		.toISOString()
		.replace(/[-:]/g, "")
		.replace(/\.\d{3}/, "");
}

/** Signs `POST https://<host>/` with a form `body` for `service` in `region`, as of `date`. */
export async function signFormPost(
	host: string,
	body: string,
	region: string,
	service: string,
	credentials: AwsCredentials,
	date: Date,
): Promise<SignedPost> {
	const timestamp = amzDate(date);
	const day = timestamp.slice(0, 8);
	// Canonical headers: lower-case names, sorted, each `name:value\n`; the same set is signed and sent.
	const headers: Record<string, string> = {
		"content-type": FORM_CONTENT_TYPE,
		host,
		"x-amz-date": timestamp,
	};
	const names = Object.keys(headers).sort();
	const signedHeaders = names.join(";");
	const canonicalRequest = ["POST", "/", "", names.map((n) => `${n}:${headers[n]}\n`).join(""), signedHeaders, await sha256Hex(body)].join(
		"\n",
	);
	const scope = `${day}/${region}/${service}/aws4_request`;
	const stringToSign = ["AWS4-HMAC-SHA256", timestamp, scope, await sha256Hex(canonicalRequest)].join("\n");
	let key = await hmac(encoder.encode(`AWS4${credentials.secretAccessKey}`), day);
	for (const part of [region, service, "aws4_request"]) key = await hmac(key, part);
	const signature = hex(await hmac(key, stringToSign));
	return {
		url: `https://${host}/`,
		headers: {
			...headers,
			authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
		},
		body,
	};
}
