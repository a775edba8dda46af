// OpenAI's Batches API: create, retrieve, list, cancel. A batch belongs to the key that created it;
// every other key gets 404. The work itself is the Workflow's (workflow.ts) and the queue consumer's.
import { admit } from "../admission/admit";
import type { ApiKeyRecord } from "../admission/auth";
import { readJsonObject } from "../admission/http";
import { checkRouteScope } from "../admission/scopes";
import { settings } from "../config";
import { HttpError } from "../errors";
import type { Observation } from "../inference";
import { isOpenAiPath, OPENAI_ROUTES } from "../openai-routes";
import { pathId } from "./files-api";
import { batchObject } from "./objects";
import { COMPLETION_WINDOW, startBatch } from "./start";
import { ACTIVE_STATUSES, findBatch, findFile, lineCounts, listBatches, newId, transition, type BatchRow } from "./store";
import { isStalled, reviveStalled } from "./watchdog";

const CREATE_FIELDS = ["input_file_id", "endpoint", "completion_window", "metadata"];
// OpenAI's limits on metadata.
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY_CHARS = 64;
const MAX_METADATA_VALUE_CHARS = 512;
const DEFAULT_LIST_LIMIT = 20;
const MAX_LIST_LIMIT = 100;

function invalid(field: string, message: string): HttpError {
	return new HttpError(400, "invalid_request", message, field);
}

async function admitted(request: Request, env: Env, obs: Observation): Promise<ApiKeyRecord> {
	const record = await admit(request, env);
	obs.keyId = record.id;
	obs.admitted = true;
	return record;
}

function checkMetadata(value: unknown): Record<string, string> | null {
	if (value === undefined || value === null) return null;
	if (typeof value !== "object" || Array.isArray(value)) throw invalid("metadata", "must be an object of strings");
	const entries = Object.entries(value);
	if (entries.length > MAX_METADATA_KEYS) throw invalid("metadata", `has more than ${MAX_METADATA_KEYS} keys`);
	for (const [key, item] of entries) {
		if (key.length > MAX_METADATA_KEY_CHARS || typeof item !== "string" || item.length > MAX_METADATA_VALUE_CHARS) {
			throw invalid(
				"metadata",
				`keys must be at most ${MAX_METADATA_KEY_CHARS} characters and values strings of at most ${MAX_METADATA_VALUE_CHARS}`,
			);
		}
	}
	return Object.fromEntries(entries) as Record<string, string>;
}

/** A running batch's counts come from its lines; an ended one carries its own. */
async function objectOf(env: Env, batch: BatchRow) {
	const running = batch.status === "in_progress" || batch.status === "cancelling" || batch.status === "finalizing";
	const counts = running ? await lineCounts(env.DB, batch.id) : null;
	return batchObject(batch, counts && { total: counts.total, completed: counts.completed, failed: counts.failed });
}

async function present(env: Env, batch: BatchRow): Promise<Response> {
	return Response.json(await objectOf(env, batch));
}

export async function createBatch(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const key = await admitted(request, env, obs);
	const keyId = key.id;
	const body = await readJsonObject(request, settings(env).maxBodyBytes);
	const unknown = Object.keys(body).find((name) => !CREATE_FIELDS.includes(name));
	if (unknown !== undefined) throw invalid("body", `has a field that is not allowed (allowed: ${CREATE_FIELDS.join(", ")})`);
	const { input_file_id: inputFileId, endpoint, completion_window: window } = body;
	if (!isOpenAiPath(endpoint)) throw invalid("endpoint", `must be one of ${Object.keys(OPENAI_ROUTES).join(", ")}`);
	// The batch's lines are requests to its endpoint: a key whose route scope leaves it out is refused now,
	// as its live request would be, not after its file was filed line by line.
	checkRouteScope(key, endpoint, "endpoint");
	if (window !== COMPLETION_WINDOW) throw invalid("completion_window", `must be "${COMPLETION_WINDOW}"`);
	const metadata = checkMetadata(body.metadata);
	if (typeof inputFileId !== "string" || inputFileId === "") throw invalid("input_file_id", "must be the id of an uploaded file");
	const file = await findFile(env.DB, keyId, inputFileId);
	if (!file) throw new HttpError(404, "not_found", `no file ${JSON.stringify(inputFileId)} for this API key`, "input_file_id");
	if (file.purpose !== "batch") throw invalid("input_file_id", 'must be a file uploaded with purpose "batch"');
	const batch = await startBatch(env, { id: newId("batch_"), keyId, endpoint, inputFileId, metadata, outboxPrefix: null });
	return present(env, batch!);
}

async function ownBatch(request: Request, env: Env, obs: Observation): Promise<BatchRow> {
	const keyId = (await admitted(request, env, obs)).id;
	const batchId = pathId(request);
	const batch = await findBatch(env.DB, keyId, batchId);
	if (!batch) throw new HttpError(404, "not_found", `no batch ${JSON.stringify(batchId)} for this API key`);
	return batch;
}

export async function retrieveBatch(request: Request, env: Env, ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const batch = await ownBatch(request, env, obs);
	// A client polling a batch whose Workflow went silent gets it restarted without waiting for the cron.
	if (ACTIVE_STATUSES.includes(batch.status) && isStalled(batch)) ctx.waitUntil(reviveStalled(env, batch.id));
	return present(env, batch);
}

/** Stops a batch: lines not yet run are dropped, the Workflow writes what was done and ends it `cancelled`. */
export async function cancelBatch(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const batch = await ownBatch(request, env, obs);
	if (batch.status !== "cancelling" && batch.status !== "cancelled") {
		if (!(await transition(env.DB, batch.id, ["validating", "in_progress"], "cancelling"))) {
			const now = (await findBatch(env.DB, batch.key_id, batch.id))!;
			if (now.status !== "cancelling" && now.status !== "cancelled") {
				throw new HttpError(400, "invalid_request", `the batch is ${now.status}; only a validating or in_progress batch can be cancelled`);
			}
		}
	}
	return present(env, (await findBatch(env.DB, batch.key_id, batch.id))!);
}

export async function listBatchesRoute(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const keyId = (await admitted(request, env, obs)).id;
	const query = new URL(request.url).searchParams;
	const rawLimit = query.get("limit");
	const limit = rawLimit === null ? DEFAULT_LIST_LIMIT : Number(rawLimit);
	if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
		throw invalid("limit", `must be an integer from 1 to ${MAX_LIST_LIMIT}`);
	// One more than asked, to know whether there is a next page.
	const rows = await listBatches(env.DB, keyId, limit + 1, query.get("after"));
	const page = rows.slice(0, limit);
	const data = await Promise.all(page.map((batch) => objectOf(env, batch)));
	return Response.json({
		object: "list",
		data,
		first_id: page[0]?.id ?? null,
		last_id: page[page.length - 1]?.id ?? null,
		has_more: rows.length > limit,
	});
}
