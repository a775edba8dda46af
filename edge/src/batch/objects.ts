// OpenAI's `file` and `batch` objects, as the official clients parse them, from the D1 rows.
import type { BatchRow, FileRow, LineCounts } from "./store";

export function fileObject(file: FileRow) {
	return {
		id: file.id,
		object: "file",
		bytes: file.bytes,
		created_at: file.created_at,
		filename: file.filename,
		purpose: file.purpose,
		status: "processed",
		status_details: null,
		expires_at: null,
	};
}

/** `counts`: the live counts of a running batch; an ended batch carries its final counts itself. */
export function batchObject(batch: BatchRow, counts: LineCounts | null) {
	return {
		id: batch.id,
		object: "batch",
		endpoint: batch.endpoint,
		errors: batch.errors === null ? null : { object: "list", data: JSON.parse(batch.errors) },
		input_file_id: batch.input_file_id,
		completion_window: batch.completion_window,
		status: batch.status,
		output_file_id: batch.output_file_id,
		error_file_id: batch.error_file_id,
		created_at: batch.created_at,
		in_progress_at: batch.in_progress_at,
		expires_at: batch.expires_at,
		finalizing_at: batch.finalizing_at,
		completed_at: batch.completed_at,
		failed_at: batch.failed_at,
		expired_at: batch.expired_at,
		cancelling_at: batch.cancelling_at,
		cancelled_at: batch.cancelled_at,
		request_counts: counts ?? { total: batch.total, completed: batch.completed, failed: batch.failed },
		metadata: batch.metadata === null ? null : JSON.parse(batch.metadata),
	};
}
