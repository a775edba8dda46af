// Starting a batch, from the API (`POST /v1/batches`) or from a file dropped in the R2 inbox: its row,
// under the key's limit on running batches, then the Workflow instance (id = the batch's id) that runs it.
import { batchLimits } from "../config";
import { HttpError } from "../errors";
import type { OpenAiPath } from "../openai-routes";
import { activeBatchCount, insertBatch, nowSeconds, transition, type BatchRow } from "./store";

// The only completion window OpenAI offers; a batch still running after it is expired.
export const COMPLETION_WINDOW = "24h";
const COMPLETION_WINDOW_SECONDS = 24 * 3600;

interface BatchRequest {
	id: string;
	keyId: string;
	endpoint: OpenAiPath;
	inputFileId: string;
	metadata: Record<string, string> | null;
	/** R2 inbox batches: the results are written under this prefix instead of files/. */
	outboxPrefix: string | null;
}

export interface BatchParams {
	batchId: string;
}

/** The new batch's row; null when a batch with this id exists already (a redelivered inbox event). */
export async function startBatch(env: Env, request: BatchRequest): Promise<BatchRow | null> {
	const { maxConcurrentBatches } = batchLimits(env);
	if ((await activeBatchCount(env.DB, request.keyId)) >= maxConcurrentBatches) {
		throw new HttpError(
			429,
			"batch_limit_reached",
			`this API key has ${maxConcurrentBatches} batches running (MAX_CONCURRENT_BATCHES_PER_KEY); retry when one has ended`,
			undefined,
			{ "Retry-After": "60" },
		);
	}
	const now = nowSeconds();
	const row: BatchRow = {
		id: request.id,
		key_id: request.keyId,
		endpoint: request.endpoint,
		input_file_id: request.inputFileId,
		completion_window: COMPLETION_WINDOW,
		status: "validating",
		output_file_id: null,
		error_file_id: null,
		errors: null,
		metadata: request.metadata === null ? null : JSON.stringify(request.metadata),
		outbox_prefix: request.outboxPrefix,
		total: 0,
		completed: 0,
		failed: 0,
		created_at: now,
		expires_at: now + COMPLETION_WINDOW_SECONDS,
		in_progress_at: null,
		finalizing_at: null,
		completed_at: null,
		failed_at: null,
		expired_at: null,
		cancelling_at: null,
		cancelled_at: null,
		heartbeat_at: now,
	};
	if (!(await insertBatch(env.DB, row))) return null;
	try {
		await env.BATCH_WORKFLOW.create({ id: row.id, params: { batchId: row.id } satisfies BatchParams });
	} catch (error) {
		console.error(`batch ${row.id}: starting its workflow failed:`, (error as Error).message);
		const errors = JSON.stringify([{ code: "workflow_start_failed", message: "the batch could not be started; create it again" }]);
		await transition(env.DB, row.id, ["validating"], "failed", { errors });
		throw new HttpError(500, "internal_error", "the batch could not be started; create it again");
	}
	return row;
}
