// Reading a JSON request body safely: content type, size cap (also for bodies without Content-Length),
// nesting depth, syntax.
import { HttpError } from "../errors";

/**
 * Deepest nesting of arrays/objects accepted. Valid requests nest 3 levels (chat messages); every later
 * stage (validation, DLP, cache key) walks values recursively, so depth is refused before parsing.
 */
export const MAX_JSON_DEPTH = 32;

/** `received`, when given, gets the body's bytes exactly as they came (a receipt signs their sha256). */
export async function readJsonObject(
	request: Request,
	maxBytes: number,
	received: (bytes: Uint8Array) => void = () => undefined,
): Promise<Record<string, unknown>> {
	const mediaType = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
	if (mediaType !== "application/json") {
		throw new HttpError(415, "unsupported_media_type", "must be application/json", "content-type");
	}
	const declared = Number(request.headers.get("content-length") ?? "0");
	if (declared > maxBytes) throw tooLarge(maxBytes);
	const bytes = await readCapped(request, maxBytes);
	received(bytes);
	const text = decodeUtf8(bytes);
	if (text.trim() === "") throw new HttpError(400, "invalid_json", "is empty", "body");
	checkNestingDepth(text, MAX_JSON_DEPTH);
	let body: unknown;
	try {
		body = JSON.parse(text);
	} catch {
		// No parser detail: the runtime's parser words it differently, and both layers answer alike.
		throw new HttpError(400, "invalid_json", "is not valid JSON", "body");
	}
	if (body === null || typeof body !== "object" || Array.isArray(body)) {
		throw new HttpError(400, "invalid_json", "must be a JSON object", "body");
	}
	return body as Record<string, unknown>;
}

/**
 * One pass over the text that counts open brackets outside strings, so depth is refused before any
 * structure is built: the cost is linear and nothing recurses, however deep the input. Malformed JSON
 * is left for JSON.parse to report.
 */
export function checkNestingDepth(text: string, maxDepth: number): void {
	let depth = 0;
	let inString = false;
	for (let i = 0; i < text.length; i++) {
		const char = text.charCodeAt(i);
		if (inString) {
			if (char === 0x5c /* backslash: skip the escaped char */) i++;
			else if (char === 0x22 /* " */) inString = false;
		} else if (char === 0x22) {
			inString = true;
		} else if (char === 0x5b /* [ */ || char === 0x7b /* { */) {
			if (++depth > maxDepth) {
				// The runtime's words for the same refusal (runtime/http/body.py).
				throw new HttpError(400, "invalid_json", `nests arrays/objects deeper than the limit of ${maxDepth} levels`, "body");
			}
		} else if (char === 0x5d /* ] */ || char === 0x7d /* } */) {
			depth--;
		}
	}
}

/** The 413 of a body over MAX_BODY_BYTES (also a batch line's, which is a request body). */
export function tooLarge(maxBytes: number): HttpError {
	return new HttpError(413, "request_too_large", `exceeds ${maxBytes} bytes`, "body");
}

/** The body's bytes, refused with a 413 as soon as they pass `maxBytes` (also without Content-Length). */
export async function readCapped(request: Request, maxBytes: number): Promise<Uint8Array> {
	if (!request.body) return new Uint8Array(0);
	const reader = request.body.getReader();
	const chunks: Uint8Array[] = [];
	let size = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		size += value.byteLength;
		if (size > maxBytes) {
			await reader.cancel();
			throw tooLarge(maxBytes);
		}
		chunks.push(value);
	}
	const bytes = new Uint8Array(size);
	let offset = 0;
	for (const chunk of chunks) {
		bytes.set(chunk, offset);
		offset += chunk.byteLength;
	}
	return bytes;
}

function decodeUtf8(bytes: Uint8Array): string {
	try {
		return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
	} catch {
		throw new HttpError(400, "invalid_json", "is not valid UTF-8", "body");
	}
}
