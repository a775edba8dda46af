// Batch input files: JSONL, one request a line, `{"custom_id", "method": "POST", "url", "body"}` as
// OpenAI's Batch API defines them. A file is refused at upload only when it is not JSONL at all, too large
// or too long; a bad line becomes that line's entry in the error file. Messages never quote the line
// (it may hold what DLP exists to keep out of logs and answers).
import { checkNestingDepth, MAX_JSON_DEPTH, tooLarge } from "../admission/http";
import type { BatchLimits } from "../config";
import { HttpError } from "../errors";
import { isOpenAiPath, type OpenAiPath } from "../openai-routes";

interface LineError {
	code: "invalid_json_line" | "invalid_line" | "invalid_url" | "duplicate_custom_id";
	message: string;
}

/** One non-empty line of the file; `index` is its 0-based line number in the file. */
interface ParsedLine {
	index: number;
	customId: string | null;
	url: string | null;
	/** The request body as JSON text, for a line that will run. */
	body: string | null;
	error: LineError | null;
	/** What the live request path answers this line without running it: a body over MAX_BODY_BYTES (413). */
	refusal: HttpError | null;
}

const MAX_CUSTOM_ID_CHARS = 512;

/** The file's text: UTF-8 JSONL within the limits, with at least one line that is a JSON object. */
export function checkBatchFile(bytes: Uint8Array, limits: BatchLimits, field: string): string {
	if (bytes.byteLength > limits.maxFileBytes) {
		throw new HttpError(413, "request_too_large", `exceeds ${limits.maxFileBytes} bytes (MAX_BATCH_FILE_BYTES)`, field);
	}
	let text: string;
	try {
		text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
	} catch {
		throw new HttpError(400, "invalid_request", "is not JSONL: it is not UTF-8 text", field);
	}
	const lines = nonEmptyLines(text);
	if (lines.length === 0) throw new HttpError(400, "invalid_request", "is empty: a batch file needs at least one JSONL line", field);
	if (lines.length > limits.maxLines) {
		throw new HttpError(400, "invalid_request", `has ${lines.length} lines, more than ${limits.maxLines} (MAX_BATCH_LINES)`, field);
	}
	if (!lines.some(({ text }) => parseObject(text) !== null)) {
		throw new HttpError(400, "invalid_request", "is not JSONL: no line is a JSON object", field);
	}
	return text;
}

function nonEmptyLines(text: string): { index: number; text: string }[] {
	return text
		.split("\n")
		.map((line, index) => ({ index, text: line.replace(/\r$/, "") }))
		.filter((line) => line.text.trim() !== "");
}

function parseObject(text: string): Record<string, unknown> | null {
	try {
		checkNestingDepth(text, MAX_JSON_DEPTH);
		const value: unknown = JSON.parse(text);
		return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
	} catch {
		return null;
	}
}

function lineError(code: LineError["code"], index: number, what: string): LineError {
	return { code, message: `line ${index + 1}: ${what}` };
}

/**
 * Every non-empty line, checked against the batch's endpoint; the first line with a custom_id owns it.
 * `maxBodyBytes`: MAX_BODY_BYTES, which the line's body meets as the live request's.
 */
export function parseBatchLines(text: string, endpoint: OpenAiPath, maxBodyBytes: number): ParsedLine[] {
	const seen = new Set<string>();
	return nonEmptyLines(text).map(({ index, text: line }) => {
		const parsed: ParsedLine = { index, customId: null, url: null, body: null, error: null, refusal: null };
		const object = parseObject(line);
		if (object === null) return { ...parsed, error: lineError("invalid_json_line", index, "is not a JSON object") };
		const { custom_id: customId, method, url, body } = object;
		if (typeof customId !== "string" || customId === "" || customId.length > MAX_CUSTOM_ID_CHARS) {
			return { ...parsed, error: lineError("invalid_line", index, `custom_id must be a string of 1 to ${MAX_CUSTOM_ID_CHARS} characters`) };
		}
		parsed.customId = customId;
		parsed.url = typeof url === "string" ? url : null;
		if (seen.has(customId))
			return { ...parsed, error: lineError("duplicate_custom_id", index, "repeats the custom_id of an earlier line") };
		seen.add(customId);
		if (method !== "POST") return { ...parsed, error: lineError("invalid_line", index, 'method must be "POST"') };
		if (url !== endpoint) return { ...parsed, error: lineError("invalid_url", index, `url must be the batch's endpoint ${endpoint}`) };
		if (body === null || typeof body !== "object" || Array.isArray(body)) {
			return { ...parsed, error: lineError("invalid_line", index, "body must be a JSON object") };
		}
		// A batch answer is one JSON body per line: there is no client to stream to.
		if ((body as Record<string, unknown>).stream === true) {
			return { ...parsed, error: lineError("invalid_line", index, "body.stream must be false or absent in a batch") };
		}
		const json = JSON.stringify(body);
		// Refused as the live request would be, now: a body this size is never run, and a line over D1's
		// row limit (2 MB; MAX_BATCH_FILE_BYTES allows more) could not even be filed.
		if (new TextEncoder().encode(json).byteLength > maxBodyBytes) return { ...parsed, refusal: tooLarge(maxBodyBytes) };
		return { ...parsed, body: json };
	});
}

/** The endpoint of a file that names none besides its lines (the R2 inbox): the first line's url. */
export function endpointOfLines(text: string): OpenAiPath | null {
	for (const { text: line } of nonEmptyLines(text)) {
		const url = parseObject(line)?.url;
		if (isOpenAiPath(url)) return url;
	}
	return null;
}
