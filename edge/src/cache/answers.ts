// What counts as a cacheable answer: a 200 with a JSON content type whose body has the top-level shape
// of its route (docs/interfaces.md). Anything else (an error page, a proxy's or login page's HTML, a
// JSON error sent with 200, a truncated body) would be replayed to every later client for the cache's
// lifetime, and a cached body must be JSON for the stream replay (replay.ts) to read it.
import type { OriginAnswer } from "../origin/client";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => value !== null && typeof value === "object" && !Array.isArray(value);
const everyItem = (value: unknown, check: (item: unknown) => boolean): boolean =>
	Array.isArray(value) && value.length > 0 && value.every(check);
const isVector = (value: unknown): boolean => Array.isArray(value) && value.length > 0 && typeof value[0] === "number";
// OpenAI's encoding_format "base64": the little-endian float32 vector as one base64 string.
const isBase64Vector = (value: unknown): boolean =>
	typeof value === "string" && /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value);

/** The top-level shape of each runtime route's answer (by origin path). */
const SHAPES: Record<string, (answer: Json) => boolean> = {
	"/v1/generate": (answer) => typeof answer.text === "string",
	"/v1/embed": (answer) => everyItem(answer.embeddings, isVector),
	"/v1/completions": (answer) =>
		answer.object === "text_completion" && everyItem(answer.choices, (choice) => isObject(choice) && typeof choice.text === "string"),
	"/v1/chat/completions": (answer) =>
		answer.object === "chat.completion" &&
		everyItem(answer.choices, (choice) => isObject(choice) && isObject(choice.message) && typeof choice.message.content === "string"),
	"/v1/embeddings": (answer) =>
		answer.object === "list" &&
		everyItem(answer.data, (item) => isObject(item) && (isVector(item.embedding) || isBase64Vector(item.embedding))),
	"/v1/tokenize": (answer) => Array.isArray(answer.tokens) && answer.count === answer.tokens.length,
	"/v1/detokenize": (answer) => typeof answer.text === "string",
	// A rerank answer is never stored whole: src/rerank.ts checks it and stores its pairs' scores.
};

function isJsonMediaType(contentType: string): boolean {
	return contentType.split(";")[0].trim().toLowerCase() === "application/json";
}

/** True only for a 200 JSON answer with the shape of `originPath`'s answers. */
export function isCacheableAnswer(originPath: string, answer: OriginAnswer): boolean {
	const shape = SHAPES[originPath];
	if (answer.status !== 200 || !shape || !isJsonMediaType(answer.contentType)) return false;
	let body: unknown;
	try {
		body = JSON.parse(answer.body);
	} catch {
		return false;
	}
	return isObject(body) && shape(body);
}

/** What an answer says about itself: its token counts (`usage`; null when it reports none, as the native
 * /v1/embed answer) and its model. Parsed once per answer: embedding answers can be large. */
export interface AnswerFacts {
	promptTokens: number | null;
	completionTokens: number;
	model: string | null;
}

const count = (value: unknown): number | null => (Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : null);

export function answerFacts(body: string): AnswerFacts {
	let answer: unknown;
	try {
		answer = JSON.parse(body);
	} catch {
		answer = null;
	}
	if (!isObject(answer)) return { promptTokens: null, completionTokens: 0, model: null };
	const usage = isObject(answer.usage) ? answer.usage : {};
	return {
		promptTokens: count(usage.prompt_tokens),
		completionTokens: count(usage.completion_tokens) ?? 0,
		model: typeof answer.model === "string" ? answer.model : null,
	};
}

/** Prompt + completion tokens (an embedding's: its prompt); null when the answer reports none. */
export function totalTokens(facts: AnswerFacts): number | null {
	return facts.promptTokens === null ? null : facts.promptTokens + facts.completionTokens;
}
