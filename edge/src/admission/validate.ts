// Request validation per route. Each route has an allow-list of fields, each with its own check; any
// other field is refused with a 400. The validated request is rebuilt from the allowed fields alone
// (never the body as sent): the output-affecting parameters (what the cache key covers) apart from the
// transport-only fields (stream, stream_options, user). Nothing else ever reaches the origin.
import { HttpError } from "../errors";

export type Body = Record<string, unknown>;

interface ValidatedRequest {
	/** Everything that can change the answer; hashed into the cache key and forwarded. */
	params: Body;
	/** Fields that change only the transport (streaming, attribution); forwarded, never hashed. */
	transport: Body;
	stream: boolean;
}

interface Limits {
	maxTokensLimit: number;
	maxEmbedInputs: number;
}

export type Validator = (body: Body, limits: Limits) => ValidatedRequest;

/** Throws a 400 naming the field, or returns the value to forward (rebuilt where it is an object). */
type Check = (value: unknown, field: string, limits: Limits) => unknown;

interface RouteFields {
	required: string[];
	params: Record<string, Check>;
	transport: Record<string, Check>;
}

const MAX_SEED = 2 ** 32 - 1;
/** OpenAI's `user` is an end-user id for abuse tracking: an id, not a place for text. */
export const MAX_USER_CHARS = 256;
const MAX_MODEL_CHARS = 256;
const MAX_NAME_CHARS = 256;
// A field name is echoed in an error only when it cannot carry a number (a card or SSN used as a key).
const SHOWABLE_NAME = /^[A-Za-z_]{1,64}$/;

function invalid(field: string, message: string): HttpError {
	return new HttpError(400, "invalid_request", message, field);
}

function isPlainObject(value: unknown): value is Body {
	return value !== null && typeof value === "object" && !Array.isArray(value);
}

function rejectUnknown(object: Body, allowed: readonly string[], prefix: string): void {
	for (const name of Object.keys(object)) {
		if (allowed.includes(name)) continue;
		const allowedList = `allowed: ${allowed.join(", ")}`;
		if (SHOWABLE_NAME.test(name)) throw invalid(`${prefix}${name}`, `is not a known field (${allowedList})`);
		const parent = prefix.replace(/\.$/, "");
		throw invalid(parent || "body", `has a field that is not allowed (its name is not shown; ${allowedList})`);
	}
}

const nonEmptyString: Check = (value, field) => {
	if (typeof value !== "string") throw invalid(field, "must be a string");
	if (value.trim() === "") throw invalid(field, "must not be empty");
	return value;
};

const shortString =
	(maxChars: number): Check =>
	(value, field) => {
		if (typeof value !== "string") throw invalid(field, "must be a string");
		if (value.length > maxChars) throw invalid(field, `must be at most ${maxChars} characters`);
		return value;
	};

const integerIn =
	(min: number, max: (limits: Limits) => number): Check =>
	(value, field, limits) => {
		if (typeof value !== "number" || !Number.isInteger(value)) throw invalid(field, "must be an integer");
		// The runtime's words: one bound per message (runtime/http/body.py).
		if (value < min) throw invalid(field, `must be at least ${min}`);
		if (value > max(limits)) throw invalid(field, `must be at most ${max(limits)}`);
		return value;
	};

const maxTokens = integerIn(1, (limits) => limits.maxTokensLimit);
const seed = integerIn(0, () => MAX_SEED);
const positiveInteger = integerIn(1, () => Number.MAX_SAFE_INTEGER);

const finiteNumber: Check = (value, field) => {
	if (typeof value !== "number" || !Number.isFinite(value)) throw invalid(field, "must be a number");
	return value;
};

const boolean: Check = (value, field) => {
	if (typeof value !== "boolean") throw invalid(field, "must be a boolean");
	return value;
};

const oneOf =
	(...choices: string[]): Check =>
	(value, field) => {
		if (typeof value !== "string" || !choices.includes(value)) throw invalid(field, `must be one of ${choices.join(", ")}`);
		return value;
	};

const stopStrings: Check = (value, field) => {
	if (typeof value === "string") return value;
	if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
		throw invalid(field, "must be a string or an array of strings");
	}
	return value;
};

const textInput: Check = (value, field, limits) => {
	if (!Array.isArray(value)) return nonEmptyString(value, field, limits);
	if (value.length === 0) throw invalid(field, "must not be an empty array");
	if (value.length > limits.maxEmbedInputs)
		throw invalid(field, `has ${value.length} items; the limit is ${limits.maxEmbedInputs} (MAX_EMBED_INPUTS)`);
	return value.map((item, index) => nonEmptyString(item, `${field}[${index}]`, limits));
};

/** Exactly `{include_usage?: boolean}`: the only stream option the runtime knows. */
const streamOptions: Check = (value, field, limits) => {
	if (!isPlainObject(value)) throw invalid(field, "must be an object");
	rejectUnknown(value, ["include_usage"], `${field}.`);
	if (value.include_usage === undefined) return {};
	return { include_usage: boolean(value.include_usage, `${field}.include_usage`, limits) };
};

/**
 * A JSON Schema for structured output: an object, forwarded whole so the cache key covers all of it
 * (canonicalJson sorts its keys, which is safe: the runtime writes properties in `required`'s order,
 * never in the order of an object's keys). Which keywords are enforced is the runtime's to decide
 * (docs/runtime.md, "Structured output"); DLP has already scanned every value in it.
 */
const jsonSchema: Check = (value, field) => {
	if (!isPlainObject(value)) throw invalid(field, "must be an object");
	return value;
};

const RESPONSE_FORMAT_TYPES = ["text", "json_object", "json_schema"];
// OpenAI's limit on a response format's name.
const FORMAT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** `{name, schema, strict?, description?}`, OpenAI's `response_format.json_schema`. */
const formatJsonSchema: Check = (value, field, limits) => {
	if (!isPlainObject(value)) throw invalid(field, "must be an object");
	rejectUnknown(value, ["name", "schema", "strict", "description"], `${field}.`);
	if (value.name === undefined || value.name === null) throw invalid(`${field}.name`, "is required");
	if (typeof value.name !== "string") throw invalid(`${field}.name`, "must be a string");
	if (!FORMAT_NAME.test(value.name)) throw invalid(`${field}.name`, `must match ${FORMAT_NAME.source}`);
	if (value.schema === undefined || value.schema === null) throw invalid(`${field}.schema`, "is required");
	const rebuilt: Body = { name: value.name, schema: jsonSchema(value.schema, `${field}.schema`, limits) };
	if (value.strict !== undefined && value.strict !== null) rebuilt.strict = boolean(value.strict, `${field}.strict`, limits);
	if (value.description !== undefined && value.description !== null) {
		if (typeof value.description !== "string") throw invalid(`${field}.description`, "must be a string");
		rebuilt.description = value.description;
	}
	return rebuilt;
};

/** OpenAI's `response_format`: `{type: "text" | "json_object"}` or `{type: "json_schema", json_schema}`. */
const responseFormat: Check = (value, field, limits) => {
	if (!isPlainObject(value)) throw invalid(field, "must be an object");
	rejectUnknown(value, ["type", "json_schema"], `${field}.`);
	if (value.type === undefined || value.type === null) throw invalid(`${field}.type`, "is required");
	if (typeof value.type !== "string" || !RESPONSE_FORMAT_TYPES.includes(value.type)) {
		// The runtime's words (pydantic's list of literals), so both layers answer alike.
		throw invalid(`${field}.type`, "must be one of 'text', 'json_object' or 'json_schema'");
	}
	const schemaGiven = value.json_schema !== undefined && value.json_schema !== null;
	if (value.type !== "json_schema") {
		if (schemaGiven) throw invalid(`${field}.json_schema`, "is only allowed with type json_schema");
		return { type: value.type };
	}
	if (!schemaGiven) throw invalid(`${field}.json_schema`, "is required when type is json_schema");
	return { type: value.type, json_schema: formatJsonSchema(value.json_schema, `${field}.json_schema`, limits) };
};

const CHAT_MESSAGE_FIELDS = ["role", "content", "name"];

const chatMessages: Check = (value, field, limits) => {
	if (!Array.isArray(value) || value.length === 0) throw invalid(field, "must be a non-empty array");
	return value.map((message, index) => {
		const at = `${field}[${index}]`;
		if (!isPlainObject(message)) throw invalid(at, "must be an object with role and content");
		rejectUnknown(message, CHAT_MESSAGE_FIELDS, `${at}.`);
		const rebuilt: Body = { role: nonEmptyString(message.role, `${at}.role`, limits) };
		if (typeof message.content !== "string") throw invalid(`${at}.content`, "must be a string");
		rebuilt.content = message.content;
		if (message.name !== undefined && message.name !== null) rebuilt.name = shortString(MAX_NAME_CHARS)(message.name, `${at}.name`, limits);
		return rebuilt;
	});
};

/**
 * Checks a body against a route's fields and rebuilds it from them. A field sent as null counts as not
 * sent (OpenAI clients send nulls for defaults) and is dropped, so it neither reaches the origin nor
 * splits the cache key.
 */
function validator(fields: RouteFields): Validator {
	const allowed = [...Object.keys(fields.params), ...Object.keys(fields.transport)];
	return (body, limits) => {
		rejectUnknown(body, allowed, "");
		for (const name of fields.required) if (body[name] === undefined || body[name] === null) throw invalid(name, "is required");
		const pick = (checks: Record<string, Check>): Body => {
			const picked: Body = {};
			for (const [name, check] of Object.entries(checks)) {
				const value = body[name];
				if (value === undefined || value === null) continue;
				picked[name] = check(value, name, limits);
			}
			return picked;
		};
		const params = pick(fields.params);
		const transport = pick(fields.transport);
		return { params, transport, stream: transport.stream === true };
	};
}

const anyInteger = integerIn(Number.MIN_SAFE_INTEGER, () => Number.MAX_SAFE_INTEGER);

// Types only: the runtime is the one place that decides which values the sampler accepts
// (runtime/http/schemas.py); every one of them changes the answer, so all are params (the cache key).
const SAMPLING: Record<string, Check> = {
	temperature: finiteNumber,
	top_p: finiteNumber,
	top_k: anyInteger,
	min_p: finiteNumber,
	repeat_penalty: finiteNumber,
	presence_penalty: finiteNumber,
	frequency_penalty: finiteNumber,
};
const GENERATION: Record<string, Check> = { max_tokens: maxTokens, stop: stopStrings, seed, ...SAMPLING };
// n choices (the runtime caps it: RUNTIME_MAX_CHOICES); logprobs are part of the answer, so params too.
const OPENAI_SAMPLING: Record<string, Check> = { n: positiveInteger };
const OPENAI_FORMAT: Record<string, Check> = { response_format: responseFormat };
const OPENAI_TRANSPORT: Record<string, Check> = { stream: boolean, stream_options: streamOptions, user: shortString(MAX_USER_CHARS) };
const model = shortString(MAX_MODEL_CHARS);

/** POST /v1/generate: the runtime's native generation request (docs/interfaces.md). */
export const validateGenerate = validator({
	required: ["prompt"],
	params: { prompt: nonEmptyString, ...GENERATION, json_schema: jsonSchema },
	transport: { stream: boolean },
});

/** POST /v1/embed: the runtime's native embedding request. */
export const validateEmbed = validator({ required: ["input"], params: { input: textInput }, transport: {} });

/** POST /v1/completions (OpenAI). */
export const validateCompletion = validator({
	required: ["prompt"],
	params: { model, prompt: nonEmptyString, ...GENERATION, ...OPENAI_SAMPLING, logprobs: anyInteger, ...OPENAI_FORMAT },
	transport: OPENAI_TRANSPORT,
});

/** POST /v1/chat/completions (OpenAI). */
export const validateChat = validator({
	required: ["messages"],
	params: {
		model,
		messages: chatMessages,
		max_completion_tokens: maxTokens,
		...GENERATION,
		...OPENAI_SAMPLING,
		logprobs: boolean,
		top_logprobs: anyInteger,
		...OPENAI_FORMAT,
	},
	transport: OPENAI_TRANSPORT,
});

/** POST /v1/embeddings (OpenAI). */
export const validateEmbeddings = validator({
	required: ["input"],
	params: { model, input: textInput, encoding_format: oneOf("float", "base64") },
	transport: { user: shortString(MAX_USER_CHARS) },
});

const tokenizeFields = validator({
	required: [],
	params: { model, prompt: nonEmptyString, messages: chatMessages, with_pieces: boolean },
	transport: {},
});

/** POST /v1/tokenize: exactly one of prompt and messages (the runtime's order: fields first, then this). */
export const validateTokenize: Validator = (body, limits) => {
	const validated = tokenizeFields(body, limits);
	const { params } = validated;
	if ((params.prompt === undefined) === (params.messages === undefined))
		throw invalid("body", "must have exactly one of prompt and messages");
	// `with_pieces: false` asks for what an absent field does: one cache key for both.
	if (params.with_pieces === false) delete params.with_pieces;
	return validated;
};

// The runtime's caps (runtime/http/schemas.py); both layers answer a request over them alike.
const MAX_DETOKENIZE_TOKENS = 65_536;
const MAX_RERANK_DOCUMENTS = 64;

const arrayOf =
	(what: string, maxItems: number, item: Check): Check =>
	(value, field, limits) => {
		if (!Array.isArray(value)) throw invalid(field, `must be an array of ${what}`);
		if (value.length === 0) throw invalid(field, "must not be an empty array");
		if (value.length > maxItems) throw invalid(field, `must have at most ${maxItems} items`);
		return value.map((entry, index) => item(entry, `${field}[${index}]`, limits));
	};

/** POST /v1/detokenize: token ids; whether an id is in the model's vocabulary only the runtime knows. */
export const validateDetokenize = validator({
	required: ["tokens"],
	params: {
		model,
		tokens: arrayOf(
			"token ids",
			MAX_DETOKENIZE_TOKENS,
			integerIn(0, () => Number.MAX_SAFE_INTEGER),
		),
	},
	transport: {},
});

/** POST /v1/rerank. The Worker caches per (query, document) pair (src/rerank.ts). */
export const validateRerank = validator({
	required: ["query", "documents"],
	params: {
		model,
		query: nonEmptyString,
		documents: arrayOf("strings", MAX_RERANK_DOCUMENTS, nonEmptyString),
		top_n: positiveInteger,
		return_documents: boolean,
	},
	transport: {},
});
