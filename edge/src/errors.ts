// Every error the Worker answers has the runtime's shape: {"error": {"type", "message", "field"?}}. The
// types and their statuses are contract/errors.json, shared with the runtime (tests/contract.py checks that
// every status written here is the one listed there). An error about one part of the request names it in
// `field`, and its message reads `<field>: <what is wrong>`.
import vocabulary from "../../contract/errors.json";

export type ErrorType = keyof typeof vocabulary.types;

export class HttpError extends Error {
	constructor(
		readonly status: number,
		readonly type: ErrorType,
		message: string,
		readonly field?: string,
		readonly headers: Record<string, string> = {},
	) {
		super(field === undefined ? message : `${field}: ${message}`);
	}
}

/** The JSON body of the error's answer (also a batch line's recorded answer). */
export function errorBody(error: HttpError): { error: { type: string; message: string; field?: string } } {
	const body: { type: string; message: string; field?: string } = { type: error.type, message: error.message };
	if (error.field !== undefined) body.field = error.field;
	return { error: body };
}

function errorResponse(error: HttpError): Response {
	return Response.json(errorBody(error), { status: error.status, headers: error.headers });
}

/** Unexpected failures become a generic 500: no stack trace or internal detail reaches the client. */
export function toErrorResponse(error: unknown): Response {
	if (error instanceof HttpError) return errorResponse(error);
	console.error("unhandled error:", error instanceof Error ? `${error.name}: ${error.message}` : String(error));
	return errorResponse(new HttpError(500, "internal_error", "internal error"));
}
