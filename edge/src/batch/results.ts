// A batch's output and error files: one JSONL line per input line, in file order, in OpenAI's shape
// `{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null, "error": {"code", "message"} | null}`.
// An answer's body is written as the exact bytes the request path answered, so a line's answer is
// byte-identical to the same request sent live. Files are written to R2 as multipart uploads, a part
// at a time, so a large batch never sits in memory whole.
import type { LineRow } from "./store";

// R2's smallest part (but the last) is 5 MiB.
const PART_BYTES = 8 * 1024 * 1024;
const encoder = new TextEncoder();

export class JsonlObjectWriter {
	private buffered: string[] = [];
	private bufferedBytes = 0;
	private upload: R2MultipartUpload | null = null;
	private parts: R2UploadedPart[] = [];
	bytes = 0;
	lines = 0;

	constructor(
		private readonly bucket: R2Bucket,
		private readonly key: string,
	) {}

	async add(line: string): Promise<void> {
		const text = line + "\n";
		const size = encoder.encode(text).byteLength;
		this.buffered.push(text);
		this.bufferedBytes += size;
		this.bytes += size;
		this.lines++;
		if (this.bufferedBytes >= PART_BYTES) await this.flushPart();
	}

	private async flushPart(): Promise<void> {
		this.upload ??= await this.bucket.createMultipartUpload(this.key, { httpMetadata: { contentType: "application/jsonl" } });
		this.parts.push(await this.upload.uploadPart(this.parts.length + 1, this.buffered.join("")));
		this.buffered = [];
		this.bufferedBytes = 0;
	}

	/** Writes what is left; false (and nothing in R2) when no line was added. */
	async finish(): Promise<boolean> {
		if (this.lines === 0) return false;
		if (this.upload === null) {
			await this.bucket.put(this.key, this.buffered.join(""), { httpMetadata: { contentType: "application/jsonl" } });
		} else {
			if (this.bufferedBytes > 0) await this.flushPart();
			await this.upload.complete(this.parts);
		}
		return true;
	}
}

/**
 * The answer's JSON as one line: whitespace between tokens removed, every token (string, number)
 * kept byte for byte, so numbers are never re-rendered. The runtime's answers are compact already and
 * pass unchanged. A body that is not JSON at all is written as a JSON string.
 */
export function oneLineJson(raw: string): string {
	try {
		JSON.parse(raw);
	} catch {
		return JSON.stringify(raw);
	}
	if (!/[\n\r]/.test(raw)) return raw;
	let out = "";
	let inString = false;
	for (let i = 0; i < raw.length; i++) {
		const char = raw[i];
		if (inString) {
			out += char;
			if (char === "\\") out += raw[++i];
			else if (char === '"') inString = false;
		} else if (char === '"') {
			inString = true;
			out += char;
		} else if (char !== " " && char !== "\n" && char !== "\r" && char !== "\t") {
			out += char;
		}
	}
	return out;
}

function requestId(batchId: string, lineIndex: number): string {
	return `batch_req_${batchId.replace(/^batch_/, "")}_${lineIndex}`;
}

/** A line's result, or for a line that never ran the error the batch's end gave it. */
export function resultLine(batchId: string, line: LineRow, unfinished: { code: string; message: string }): string {
	const id = requestId(batchId, line.line_index);
	const head = `{"id":${JSON.stringify(id)},"custom_id":${JSON.stringify(line.custom_id)},`;
	if (line.response_status !== null && line.response_body !== null) {
		const response = `{"status_code":${line.response_status},"request_id":${JSON.stringify(id)},"body":${oneLineJson(line.response_body)}}`;
		return `${head}"response":${response},"error":null}`;
	}
	const error =
		line.status === "pending" ? unfinished : { code: line.error_code ?? "line_failed", message: line.error_message ?? "the line failed" };
	return `${head}"response":null,"error":${JSON.stringify(error)}}`;
}
