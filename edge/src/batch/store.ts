// D1 rows of the Batch API (migrations/0008_batches.sql): files, batches and the lines of running
// batches. Every read of a file or batch for a client names the key that owns it, so another key's id
// is simply not found.

export type BatchStatus = "validating" | "in_progress" | "finalizing" | "completed" | "failed" | "expired" | "cancelling" | "cancelled";

/** Statuses of a batch that still counts against MAX_CONCURRENT_BATCHES_PER_KEY (and has a Workflow running). */
export const ACTIVE_STATUSES: BatchStatus[] = ["validating", "in_progress", "finalizing", "cancelling"];

export interface FileRow {
	id: string;
	key_id: string;
	purpose: "batch" | "batch_output";
	filename: string;
	bytes: number;
	r2_key: string;
	created_at: number;
}

export interface BatchRow {
	id: string;
	key_id: string;
	endpoint: string;
	input_file_id: string;
	completion_window: string;
	status: BatchStatus;
	output_file_id: string | null;
	error_file_id: string | null;
	errors: string | null;
	metadata: string | null;
	outbox_prefix: string | null;
	total: number;
	completed: number;
	failed: number;
	created_at: number;
	expires_at: number;
	in_progress_at: number | null;
	finalizing_at: number | null;
	completed_at: number | null;
	failed_at: number | null;
	expired_at: number | null;
	cancelling_at: number | null;
	cancelled_at: number | null;
	heartbeat_at: number;
}

export interface LineCounts {
	total: number;
	completed: number;
	failed: number;
}

export function nowSeconds(): number {
	return Math.floor(Date.now() / 1000);
}

/**
 * `<prefix><32 hex>`, OpenAI-style: 12 hex digits of the creation time in ms, then 20 random ones, so
 * ids sort in creation order (batches created in the same second list newest first).
 */
export function newId(prefix: string): string {
	return prefix + Date.now().toString(16).padStart(12, "0") + crypto.randomUUID().replaceAll("-", "").slice(0, 20);
}

export async function insertFile(db: D1Database, file: FileRow): Promise<void> {
	await db
		.prepare("INSERT OR REPLACE INTO batch_files (id, key_id, purpose, filename, bytes, r2_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
		.bind(file.id, file.key_id, file.purpose, file.filename, file.bytes, file.r2_key, file.created_at)
		.run();
}

export function findFile(db: D1Database, keyId: string, fileId: string): Promise<FileRow | null> {
	return db.prepare("SELECT * FROM batch_files WHERE id = ? AND key_id = ?").bind(fileId, keyId).first<FileRow>();
}

export async function insertBatch(db: D1Database, batch: BatchRow): Promise<boolean> {
	const columns = Object.keys(batch) as (keyof BatchRow)[];
	const result = await db
		.prepare(`INSERT OR IGNORE INTO batches (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`)
		.bind(...columns.map((column) => batch[column]))
		.run();
	return result.meta.changes === 1;
}

export function findBatch(db: D1Database, keyId: string, batchId: string): Promise<BatchRow | null> {
	return db.prepare("SELECT * FROM batches WHERE id = ? AND key_id = ?").bind(batchId, keyId).first<BatchRow>();
}

/** The batch whatever its owner: for the pipeline, which acts for the owner named in the row. */
export function batchById(db: D1Database, batchId: string): Promise<BatchRow | null> {
	return db.prepare("SELECT * FROM batches WHERE id = ?").bind(batchId).first<BatchRow>();
}

/** Newest first, `limit` of them, those created before `after` when it is given (OpenAI's cursor). */
export async function listBatches(db: D1Database, keyId: string, limit: number, after: string | null): Promise<BatchRow[]> {
	const { results } = after
		? await db
				.prepare(
					`SELECT b.* FROM batches b JOIN batches cursor ON cursor.id = ?1 AND cursor.key_id = ?2
					 WHERE b.key_id = ?2 AND (b.created_at < cursor.created_at OR (b.created_at = cursor.created_at AND b.id < cursor.id))
					 ORDER BY b.created_at DESC, b.id DESC LIMIT ?3`,
				)
				.bind(after, keyId, limit)
				.all<BatchRow>()
		: await db
				.prepare("SELECT * FROM batches WHERE key_id = ? ORDER BY created_at DESC, id DESC LIMIT ?")
				.bind(keyId, limit)
				.all<BatchRow>();
	return results;
}

/** Records that the batch's Workflow is alive and working. */
export async function heartbeat(db: D1Database, batchId: string): Promise<void> {
	await db.prepare("UPDATE batches SET heartbeat_at = ? WHERE id = ?").bind(nowSeconds(), batchId).run();
}

/** Active batches whose Workflow has shown no sign of life since `before`; each claimed (heartbeat set to now) at most once. */
export async function claimStalled(db: D1Database, before: number, batchId: string | null = null): Promise<string[]> {
	const { results } = await db
		.prepare(
			`UPDATE batches SET heartbeat_at = ? WHERE heartbeat_at < ? AND status IN (${ACTIVE_STATUSES.map(() => "?").join(", ")})
			 AND (? IS NULL OR id = ?) RETURNING id`,
		)
		.bind(nowSeconds(), before, ...ACTIVE_STATUSES, batchId, batchId)
		.all<{ id: string }>();
	return results.map((row) => row.id);
}

export async function activeBatchCount(db: D1Database, keyId: string): Promise<number> {
	const row = await db
		.prepare(`SELECT COUNT(*) AS n FROM batches WHERE key_id = ? AND status IN (${ACTIVE_STATUSES.map(() => "?").join(", ")})`)
		.bind(keyId, ...ACTIVE_STATUSES)
		.first<{ n: number }>();
	return row?.n ?? 0;
}

/** Moves the batch to `to` (stamping `<to>_at`) only from one of `from`; false when it was elsewhere. */
export async function transition(
	db: D1Database,
	batchId: string,
	from: BatchStatus[],
	to: BatchStatus,
	extra: Partial<Pick<BatchRow, "output_file_id" | "error_file_id" | "errors" | "total" | "completed" | "failed">> = {},
): Promise<boolean> {
	const sets = [`status = ?`, `${to}_at = ?`, ...Object.keys(extra).map((column) => `${column} = ?`)];
	const result = await db
		.prepare(`UPDATE batches SET ${sets.join(", ")} WHERE id = ? AND status IN (${from.map(() => "?").join(", ")})`)
		.bind(to, nowSeconds(), ...Object.values(extra), batchId, ...from)
		.run();
	return result.meta.changes === 1;
}

/** Counts of a running batch from its lines: completed = answered 200, failed = everything else done. */
export async function lineCounts(db: D1Database, batchId: string): Promise<LineCounts & { pending: number }> {
	const row = await db
		.prepare(
			`SELECT COUNT(*) AS total, COALESCE(SUM(status = 'done'), 0) AS completed, COALESCE(SUM(status = 'failed'), 0) AS failed,
			 COALESCE(SUM(status = 'pending'), 0) AS pending FROM batch_lines WHERE batch_id = ?`,
		)
		.bind(batchId)
		.first<LineCounts & { pending: number }>();
	return row ?? { total: 0, completed: 0, failed: 0, pending: 0 };
}

export interface LineRow {
	batch_id: string;
	line_index: number;
	custom_id: string | null;
	body: string | null;
	status: "pending" | "done" | "failed";
	response_status: number | null;
	response_body: string | null;
	error_code: string | null;
	error_message: string | null;
}

/** What a line ended with: an answer (any status) or an error that never reached the request path. */
export type LineOutcome =
	| { status: "done" | "failed"; responseStatus: number; responseBody: string }
	| { status: "failed"; errorCode: string; errorMessage: string };

// D1 runs at most 100 bound statements per batch call comfortably; lines are inserted in such chunks.
const INSERT_CHUNK = 100;

/** Inserts the lines; a line already there (a retried step) is left as it is. */
export async function insertLines(db: D1Database, lines: LineRow[]): Promise<void> {
	const insert = db.prepare(
		`INSERT OR IGNORE INTO batch_lines (batch_id, line_index, custom_id, body, status, response_status, response_body, error_code, error_message)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	);
	for (let start = 0; start < lines.length; start += INSERT_CHUNK) {
		await db.batch(
			lines
				.slice(start, start + INSERT_CHUNK)
				.map((line) =>
					insert.bind(
						line.batch_id,
						line.line_index,
						line.custom_id,
						line.body,
						line.status,
						line.response_status,
						line.response_body,
						line.error_code,
						line.error_message,
					),
				),
		);
	}
}

export function pendingLine(db: D1Database, batchId: string, lineIndex: number): Promise<LineRow | null> {
	return db
		.prepare("SELECT * FROM batch_lines WHERE batch_id = ? AND line_index = ? AND status = 'pending'")
		.bind(batchId, lineIndex)
		.first<LineRow>();
}

export async function pendingLineIndexes(db: D1Database, batchId: string): Promise<number[]> {
	const { results } = await db
		.prepare("SELECT line_index FROM batch_lines WHERE batch_id = ? AND status = 'pending' ORDER BY line_index")
		.bind(batchId)
		.all<{ line_index: number }>();
	return results.map((row) => row.line_index);
}

/**
 * Records a line's outcome if the line is still pending: the one write that makes a line done, so a
 * line is answered at most once whatever the queue redelivers. True when this call recorded it.
 */
export async function recordLine(db: D1Database, batchId: string, lineIndex: number, outcome: LineOutcome): Promise<boolean> {
	const answered = "responseStatus" in outcome;
	const result = await db
		.prepare(
			`UPDATE batch_lines SET status = ?, body = NULL, response_status = ?, response_body = ?, error_code = ?, error_message = ?
			 WHERE batch_id = ? AND line_index = ? AND status = 'pending'`,
		)
		.bind(
			outcome.status,
			answered ? outcome.responseStatus : null,
			answered ? outcome.responseBody : null,
			answered ? null : outcome.errorCode,
			answered ? null : outcome.errorMessage,
			batchId,
			lineIndex,
		)
		.run();
	return result.meta.changes === 1;
}

/** The batch's lines in file order, a page at a time (keyset pagination on line_index). */
export async function* linesInOrder(db: D1Database, batchId: string, pageSize = 200): AsyncGenerator<LineRow> {
	let after = -1;
	for (;;) {
		const { results } = await db
			.prepare("SELECT * FROM batch_lines WHERE batch_id = ? AND line_index > ? ORDER BY line_index LIMIT ?")
			.bind(batchId, after, pageSize)
			.all<LineRow>();
		yield* results;
		if (results.length < pageSize) return;
		after = results[results.length - 1].line_index;
	}
}

export async function deleteLines(db: D1Database, batchId: string): Promise<void> {
	await db.prepare("DELETE FROM batch_lines WHERE batch_id = ?").bind(batchId).run();
}

export interface KeyRow {
	id: string;
	key_hash: string;
	revoked_at: number | null;
}

/** The API key a batch runs as, by id (the pipeline has no presented key, only the owner's id). */
export function keyById(db: D1Database, keyId: string): Promise<KeyRow | null> {
	return db.prepare("SELECT id, key_hash, revoked_at FROM api_keys WHERE id = ?").bind(keyId).first<KeyRow>();
}
