// OpenAI's Files API, for batches: `POST /v1/files` (multipart, purpose=batch) stores the JSONL in R2,
// `GET /v1/files/{id}` and `GET /v1/files/{id}/content` read it back. A file belongs to the key that
// uploaded it (or whose batch wrote it); every other key gets 404.
import { admit } from "../admission/admit";
import { readCapped } from "../admission/http";
import { batchLimits } from "../config";
import { HttpError } from "../errors";
import type { Observation } from "../inference";
import { checkBatchFile } from "./jsonl";
import { fileObject } from "./objects";
import { findFile, insertFile, newId, nowSeconds, type FileRow } from "./store";

// Room for the multipart framing and the purpose field around the file itself.
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
const MAX_FILENAME_CHARS = 256;

export function fileR2Key(fileId: string): string {
	return `files/${fileId}.jsonl`;
}

async function admitted(request: Request, env: Env, obs: Observation): Promise<string> {
	const keyId = (await admit(request, env)).id;
	obs.keyId = keyId;
	obs.admitted = true;
	return keyId;
}

/**
 * The path's `{id}` segment: /v1/files/{id}[/content], /v1/batches/{id}[/cancel]. A segment that is not
 * valid percent-encoding names no file or batch: it is looked up as it came, and is simply not found.
 */
export function pathId(request: Request): string {
	const segment = new URL(request.url).pathname.split("/")[3] ?? "";
	try {
		return decodeURIComponent(segment);
	} catch {
		return segment;
	}
}

async function readForm(request: Request, maxBytes: number): Promise<FormData> {
	const contentType = request.headers.get("content-type") ?? "";
	if (!/^multipart\/form-data\s*;/i.test(contentType)) {
		throw new HttpError(415, "unsupported_media_type", "must be multipart/form-data (fields `purpose` and `file`)", "content-type");
	}
	const cap = maxBytes + MULTIPART_OVERHEAD_BYTES;
	if (Number(request.headers.get("content-length") ?? "0") > cap) {
		throw new HttpError(413, "request_too_large", `exceeds ${maxBytes} bytes (MAX_BATCH_FILE_BYTES)`, "file");
	}
	const bytes = await readCapped(request, cap);
	try {
		return await new Response(bytes, { headers: { "content-type": contentType } }).formData();
	} catch {
		throw new HttpError(400, "invalid_request", "is not a valid multipart/form-data body", "body");
	}
}

export async function uploadFile(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const keyId = await admitted(request, env, obs);
	const limits = batchLimits(env);
	const form = await readForm(request, limits.maxFileBytes);
	const purpose = form.get("purpose");
	if (purpose !== "batch") throw new HttpError(400, "invalid_request", 'must be "batch" (the only purpose served here)', "purpose");
	const file = form.get("file");
	if (file === null || typeof file === "string") throw new HttpError(400, "invalid_request", "is required: the JSONL file", "file");
	const bytes = new Uint8Array(await file.arrayBuffer());
	checkBatchFile(bytes, limits, "file");
	const row: FileRow = {
		id: newId("file-"),
		key_id: keyId,
		purpose: "batch",
		filename: (file.name || "batch.jsonl").slice(0, MAX_FILENAME_CHARS),
		bytes: bytes.byteLength,
		r2_key: "",
		created_at: nowSeconds(),
	};
	row.r2_key = fileR2Key(row.id);
	// The object first: a file row always points at an object that exists.
	await env.BATCH_FILES.put(row.r2_key, bytes, { httpMetadata: { contentType: "application/jsonl" } });
	await insertFile(env.DB, row);
	return Response.json(fileObject(row));
}

async function ownFile(request: Request, env: Env, obs: Observation): Promise<FileRow> {
	const keyId = await admitted(request, env, obs);
	const fileId = pathId(request);
	const file = await findFile(env.DB, keyId, fileId);
	if (!file) throw new HttpError(404, "not_found", `no file ${JSON.stringify(fileId)} for this API key`);
	return file;
}

export async function retrieveFile(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	return Response.json(fileObject(await ownFile(request, env, obs)));
}

export async function fileContent(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const file = await ownFile(request, env, obs);
	const object = await env.BATCH_FILES.get(file.r2_key);
	if (!object) throw new HttpError(404, "not_found", `the content of file ${JSON.stringify(file.id)} is gone`);
	return new Response(object.body, { headers: { "content-type": "application/jsonl", "content-length": String(object.size) } });
}
