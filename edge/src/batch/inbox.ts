// The R2 inbox (the seed's event pipeline): R2 sends an event notification to steadytext-batch-inbox
// for each JSONL created under `inbox/` of the batch bucket, and this consumer runs it as a batch.
// Where a file lands says whose it is: `inbox/<api key id>/<name>.jsonl` runs as that key (its limits,
// its cache, its ownership of the results); the batch's endpoint is the first line's `url`. The results
// go to `outbox/<api key id>/<name>.jsonl` and `<name>.errors.jsonl`, and are also the batch's
// output_file_id and error_file_id. Writing to the bucket needs the account's R2 credentials, so the
// path is trusted as the API key would be. A refused file gets an errors file in outbox/ saying why.
import { authenticate, type ApiKeyRecord } from "../admission/auth";
import { checkRouteScope } from "../admission/scopes";
import { batchLimits } from "../config";
import { HttpError } from "../errors";
import { sha256Hex } from "../cache/cachekey";
import { checkBatchFile, endpointOfLines } from "./jsonl";
import { startBatch } from "./start";
import { insertFile, keyById, nowSeconds } from "./store";

/** The part of an R2 event notification this consumer reads. */
export interface R2EventMessage {
	action: string;
	bucket: string;
	object: { key: string; size?: number; eTag?: string };
}

const INBOX_PATH = /^inbox\/([A-Za-z0-9_-]{1,128})\/([^/]{1,200})\.jsonl$/;
const CREATED = ["PutObject", "CopyObject", "CompleteMultipartUpload"];

async function refuse(env: Env, keyId: string, name: string, reason: string): Promise<void> {
	console.error(`inbox: ${keyId}/${name}.jsonl refused: ${reason}`);
	const line = JSON.stringify({ id: null, custom_id: null, response: null, error: { code: "invalid_file", message: reason } });
	await env.BATCH_FILES.put(`outbox/${keyId}/${name}.errors.jsonl`, line + "\n", { httpMetadata: { contentType: "application/jsonl" } });
}

async function startFromInbox(env: Env, event: R2EventMessage): Promise<void> {
	const path = INBOX_PATH.exec(event.object.key);
	if (!CREATED.includes(event.action) || !path) return;
	const [, keyId, name] = path;
	const key = await keyById(env.DB, keyId);
	if (!key) return refuse(env, keyId, name, `no API key with id ${keyId}`);
	let record: ApiKeyRecord;
	try {
		// The same check as a live request's key: revoked, expired and rotated-out keys run nothing.
		record = await authenticate(env, key.key_hash);
	} catch (error) {
		if (error instanceof HttpError) return refuse(env, keyId, name, `the API key ${keyId} may not be used: ${error.message}`);
		throw error;
	}
	const object = await env.BATCH_FILES.get(event.object.key);
	if (!object) return; // deleted since: nothing to run
	const bytes = new Uint8Array(await object.arrayBuffer());
	let text: string;
	try {
		text = checkBatchFile(bytes, batchLimits(env), "file");
	} catch (error) {
		if (error instanceof HttpError) return refuse(env, keyId, name, error.message);
		throw error;
	}
	const endpoint = endpointOfLines(text);
	if (endpoint === null)
		return refuse(env, keyId, name, "no line names a url this Worker serves (/v1/completions, /v1/chat/completions, /v1/embeddings)");
	// As POST /v1/batches: a key whose route scope leaves the endpoint out starts no batch.
	try {
		checkRouteScope(record, endpoint);
	} catch (error) {
		if (error instanceof HttpError) return refuse(env, keyId, name, error.message);
		throw error;
	}
	// One batch per version of the object: a redelivered event finds its batch and starts nothing.
	const version = await sha256Hex(`${event.object.key}\n${object.etag}`);
	const fileId = `file-${version.slice(0, 32)}`;
	await insertFile(env.DB, {
		id: fileId,
		key_id: keyId,
		purpose: "batch",
		filename: `${name}.jsonl`,
		bytes: bytes.byteLength,
		r2_key: event.object.key,
		created_at: nowSeconds(),
	});
	await startBatch(env, {
		id: `batch_${version.slice(32, 64)}`,
		keyId,
		endpoint,
		inputFileId: fileId,
		metadata: { source: event.object.key },
		outboxPrefix: `outbox/${keyId}/${name}`,
	});
}

export async function consumeInbox(batch: MessageBatch<R2EventMessage>, env: Env): Promise<void> {
	for (const message of batch.messages) {
		try {
			await startFromInbox(env, message.body);
			message.ack();
		} catch (error) {
			// The key's batch limit, or a passing failure: the event is tried again later.
			const delaySeconds = error instanceof HttpError && error.type === "batch_limit_reached" ? 60 : 10;
			console.error(`inbox: ${message.body.object?.key}: ${(error as Error).message}; retrying in ${delaySeconds} s`);
			message.retry({ delaySeconds });
		}
	}
}
