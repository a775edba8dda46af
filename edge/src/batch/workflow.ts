// One Workflow instance per batch (instance id = batch id): it reads and checks the input file, files
// its lines in D1 (bad lines as failed at once), enqueues the rest in chunks to BATCH_LINES, waits until
// every line is done (or the batch is cancelled or expires), then writes the output and error files and
// ends the batch. Each step is idempotent, so the engine may retry any of them.
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import { sha256Hex } from "../cache/cachekey";
import { batchLimits, settings } from "../config";
import { HttpError } from "../errors";
import type { OpenAiPath } from "../openai-routes";
import { checkBatchFile, parseBatchLines } from "./jsonl";
import { refused, type LineMessage } from "./lines-consumer";
import { JsonlObjectWriter, resultLine } from "./results";
import type { BatchParams } from "./start";
import { fileR2Key } from "./files-api";
import {
	batchById,
	deleteLines,
	findFile,
	heartbeat,
	insertFile,
	insertLines,
	lineCounts,
	linesInOrder,
	nowSeconds,
	pendingLineIndexes,
	transition,
	type BatchRow,
	type BatchStatus,
	type LineRow,
} from "./store";

// Lines per enqueue step, sent in sendBatch calls of at most 100 messages (the Queues limit).
const ENQUEUE_CHUNK = 500;
const SEND_BATCH_MAX = 100;
// Progress checks back off from 1 s to this, so a long batch costs few steps.
const MAX_POLL_DELAY_MS = 10_000;

function pollDelayMs(poll: number): number {
	return Math.min(MAX_POLL_DELAY_MS, 1000 * 2 ** poll);
}

/** Files the lines of a validating batch and starts it; the indexes of the lines to run. */
async function loadLines(env: Env, batchId: string): Promise<number[]> {
	const batch = await batchById(env.DB, batchId);
	if (!batch) return [];
	await heartbeat(env.DB, batchId);
	// A retried step (or a restarted Workflow) finds the lines filed already.
	if (batch.status === "in_progress") return pendingLineIndexes(env.DB, batchId);
	if (batch.status !== "validating") return [];
	const fail = (code: string, message: string) =>
		transition(env.DB, batchId, ["validating"], "failed", { errors: JSON.stringify([{ code, message }]) }).then(() => []);
	const file = await findFile(env.DB, batch.key_id, batch.input_file_id);
	const object = file && (await env.BATCH_FILES.get(file.r2_key));
	if (!object) return fail("missing_file", `the input file ${batch.input_file_id} is gone`);
	let text: string;
	try {
		text = checkBatchFile(new Uint8Array(await object.arrayBuffer()), batchLimits(env), "input_file_id");
	} catch (error) {
		if (error instanceof HttpError) return fail("invalid_file", error.message);
		throw error;
	}
	const parsed = parseBatchLines(text, batch.endpoint as OpenAiPath, settings(env).maxBodyBytes);
	await insertLines(
		env.DB,
		parsed.map((line): LineRow => ({
			batch_id: batchId,
			line_index: line.index,
			custom_id: line.customId,
			body: line.body,
			status: line.error || line.refusal ? "failed" : "pending",
			response_status: line.refusal?.status ?? null,
			response_body: line.refusal ? refused(line.refusal).responseBody : null,
			error_code: line.error?.code ?? null,
			error_message: line.error?.message ?? null,
		})),
	);
	if (!(await transition(env.DB, batchId, ["validating"], "in_progress", { total: parsed.length }))) return [];
	return parsed.filter((line) => line.body !== null).map((line) => line.index);
}

async function enqueue(env: Env, batchId: string, lineIndexes: number[]): Promise<void> {
	const batch = await batchById(env.DB, batchId);
	if (batch?.status !== "in_progress") return;
	await heartbeat(env.DB, batchId);
	for (let start = 0; start < lineIndexes.length; start += SEND_BATCH_MAX) {
		const messages = lineIndexes
			.slice(start, start + SEND_BATCH_MAX)
			.map((lineIndex) => ({ body: { batchId, lineIndex } satisfies LineMessage }));
		await env.BATCH_LINES.sendBatch(messages);
	}
}

/** True once nothing is left to wait for: every line done, or the batch cancelled or past its window. */
async function settled(env: Env, batchId: string): Promise<boolean> {
	const batch = await batchById(env.DB, batchId);
	if (batch?.status !== "in_progress") return true;
	if (nowSeconds() >= batch.expires_at) return true;
	await heartbeat(env.DB, batchId);
	return (await lineCounts(env.DB, batchId)).pending === 0;
}

async function outputFileId(batchId: string, which: "output" | "errors"): Promise<string> {
	return "file-" + (await sha256Hex(`${batchId}:${which}`)).slice(0, 32);
}

/** Where a result file lives: files/ for API batches, next to the inbox file's name in outbox/ for inbox ones. */
function resultKey(batch: BatchRow, which: "output" | "errors", fileId: string): string {
	if (batch.outbox_prefix === null) return fileR2Key(fileId);
	return which === "output" ? `${batch.outbox_prefix}.jsonl` : `${batch.outbox_prefix}.errors.jsonl`;
}

/** Writes the result files and ends the batch; on a retry after it ended, does nothing. */
async function finalize(env: Env, batchId: string): Promise<BatchStatus | null> {
	let batch = await batchById(env.DB, batchId);
	if (!batch) return null;
	if (batch.status === "in_progress" && (await transition(env.DB, batchId, ["in_progress"], "finalizing"))) {
		batch = (await batchById(env.DB, batchId))!;
	}
	if (batch.status !== "finalizing" && batch.status !== "cancelling") return batch.status;
	const cancelled = batch.status === "cancelling";
	const expired = !cancelled && nowSeconds() >= batch.expires_at;
	const unfinished = cancelled
		? { code: "batch_cancelled", message: "the batch was cancelled before this line ran" }
		: { code: "batch_expired", message: "the batch's completion window ended before this line ran" };

	const ids = { output: await outputFileId(batchId, "output"), errors: await outputFileId(batchId, "errors") };
	const writers = {
		output: new JsonlObjectWriter(env.BATCH_FILES, resultKey(batch, "output", ids.output)),
		errors: new JsonlObjectWriter(env.BATCH_FILES, resultKey(batch, "errors", ids.errors)),
	};
	for await (const line of linesInOrder(env.DB, batchId)) {
		await (line.status === "done" ? writers.output : writers.errors).add(resultLine(batchId, line, unfinished));
	}
	const written: { output: string | null; errors: string | null } = { output: null, errors: null };
	for (const which of ["output", "errors"] as const) {
		if (!(await writers[which].finish())) continue;
		const key = resultKey(batch, which, ids[which]);
		await insertFile(env.DB, {
			id: ids[which],
			key_id: batch.key_id,
			purpose: "batch_output",
			filename: key.split("/").pop()!,
			bytes: writers[which].bytes,
			r2_key: key,
			created_at: nowSeconds(),
		});
		written[which] = ids[which];
	}
	const to: BatchStatus = cancelled ? "cancelled" : expired ? "expired" : "completed";
	const total = writers.output.lines + writers.errors.lines;
	await transition(env.DB, batchId, ["finalizing", "cancelling"], to, {
		output_file_id: written.output,
		error_file_id: written.errors,
		total,
		completed: writers.output.lines,
		failed: writers.errors.lines,
	});
	// The lines (and the request bodies they held) are not kept once the files exist.
	await deleteLines(env.DB, batchId);
	return to;
}

export class BatchWorkflow extends WorkflowEntrypoint<Env, BatchParams> {
	override async run(event: WorkflowEvent<BatchParams>, step: WorkflowStep): Promise<BatchStatus | null> {
		const { batchId } = event.payload;
		const pending = await step.do("file the lines", () => loadLines(this.env, batchId));
		for (let start = 0, chunk = 0; start < pending.length; start += ENQUEUE_CHUNK, chunk++) {
			await step.do(`enqueue chunk ${chunk}`, () => enqueue(this.env, batchId, pending.slice(start, start + ENQUEUE_CHUNK)));
		}
		for (let poll = 0; !(await step.do(`check progress ${poll}`, () => settled(this.env, batchId))); poll++) {
			await step.sleep(`wait ${poll}`, pollDelayMs(poll));
		}
		return step.do("write the results", () => finalize(this.env, batchId));
	}
}
