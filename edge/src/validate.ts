// Request validation per route. Each validator returns the output-affecting parameters (what the cache
// key covers and the origin receives) apart from the transport-only fields (stream, user, ...).
import { HttpError } from "./errors";

export type Body = Record<string, unknown>;

export interface ValidatedRequest {
	/** Everything that can change the answer; hashed into the cache key and forwarded verbatim. */
	params: Body;
	/** Fields that change only the transport (streaming, attribution); forwarded, never hashed. */
	transport: Body;
	stream: boolean;
}

export interface Limits {
	maxTokensLimit: number;
}

export type Validator = (body: Body, limits: Limits) => ValidatedRequest;

const TRANSPORT_FIELDS = ["stream", "stream_options", "user"];
const MAX_SEED = 2 ** 32 - 1;

function invalid(field: string, message: string): HttpError {
	return new HttpError(400, "invalid_request", `${field} ${message}`, field);
}

function nonEmptyString(value: unknown, field: string): string {
	if (typeof value !== "string") throw invalid(field, "must be a string");
	if (value.trim() === "") throw invalid(field, "must not be empty");
	return value;
}

function checkInt(body: Body, field: string, min: number, max: number): void {
	const value = body[field];
	if (value === undefined) return;
	if (typeof value !== "number" || !Number.isInteger(value)) throw invalid(field, "must be an integer");
	if (value < min || value > max) throw invalid(field, `must be between ${min} and ${max}`);
}

function checkStop(body: Body): void {
	const stop = body.stop;
	if (stop === undefined || typeof stop === "string") return;
	if (!Array.isArray(stop) || !stop.every((item) => typeof item === "string")) {
		throw invalid("stop", "must be a string or an array of strings");
	}
}

function checkStream(body: Body): boolean {
	const stream = body.stream ?? false;
	if (typeof stream !== "boolean") throw invalid("stream", "must be a boolean");
	return stream;
}

function checkTextInput(body: Body): void {
	const input = body.input;
	if (input === undefined) throw invalid("input", "is required");
	if (Array.isArray(input)) {
		if (input.length === 0) throw invalid("input", "must not be an empty array");
		input.forEach((item, index) => nonEmptyString(item, `input[${index}]`));
	} else {
		nonEmptyString(input, "input");
	}
}

function rejectUnknown(body: Body, allowed: readonly string[]): void {
	for (const field of Object.keys(body)) {
		if (!allowed.includes(field)) throw invalid(field, "is not a known field");
	}
}

function split(body: Body, stream: boolean): ValidatedRequest {
	const params: Body = {};
	const transport: Body = {};
	for (const [field, value] of Object.entries(body)) {
		(TRANSPORT_FIELDS.includes(field) ? transport : params)[field] = value;
	}
	return { params, transport, stream };
}

function checkGenerationParams(body: Body, limits: Limits, maxTokensField = "max_tokens"): boolean {
	checkInt(body, maxTokensField, 1, limits.maxTokensLimit);
	checkInt(body, "seed", 0, MAX_SEED);
	checkStop(body);
	return checkStream(body);
}

/** POST /v1/generate: the runtime's native generation request (docs/interfaces.md). */
export const validateGenerate: Validator = (body, limits) => {
	rejectUnknown(body, ["prompt", "max_tokens", "stop", "seed", "stream"]);
	nonEmptyString(body.prompt, "prompt");
	return split(body, checkGenerationParams(body, limits));
};

/** POST /v1/embed: the runtime's native embedding request. */
export const validateEmbed: Validator = (body) => {
	rejectUnknown(body, ["input"]);
	checkTextInput(body);
	return split(body, false);
};

/** POST /v1/completions (OpenAI): unknown OpenAI fields pass through to the runtime and into the key. */
export const validateCompletion: Validator = (body, limits) => {
	nonEmptyString(body.prompt, "prompt");
	return split(body, checkGenerationParams(body, limits));
};

/** POST /v1/chat/completions (OpenAI). */
export const validateChat: Validator = (body, limits) => {
	const messages = body.messages;
	if (!Array.isArray(messages) || messages.length === 0) throw invalid("messages", "must be a non-empty array");
	messages.forEach((message, index) => {
		const field = `messages[${index}]`;
		if (message === null || typeof message !== "object" || Array.isArray(message)) {
			throw invalid(field, "must be an object with role and content");
		}
		nonEmptyString((message as Body).role, `${field}.role`);
		if (typeof (message as Body).content !== "string") throw invalid(`${field}.content`, "must be a string");
	});
	checkInt(body, "max_completion_tokens", 1, limits.maxTokensLimit);
	return split(body, checkGenerationParams(body, limits));
};

/** POST /v1/embeddings (OpenAI). */
export const validateEmbeddings: Validator = (body) => {
	checkTextInput(body);
	if (body.stream !== undefined) throw invalid("stream", "is not supported for embeddings");
	return split(body, false);
};
