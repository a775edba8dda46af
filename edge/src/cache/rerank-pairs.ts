// Rerank answers are cached per (query, document) pair, not per list: a pair's score does not depend on
// the other documents (the runtime scores each document's prompt alone), so a list that overlaps an
// earlier one only sends its new documents to the origin. This module holds the pair records: their
// keys, their stored form, and reading them out of a runtime answer; rerank-answer.ts renders a list's
// answer from them.
import { HttpError } from "../errors";
import type { OriginAnswer } from "../origin/client";
import { cacheKey } from "./cachekey";
import type { CacheNamespace } from "./controls";

/** The runtime's header with each document's prompt tokens, in request order (contract/routes.json). */
export const DOCUMENT_TOKENS_HEADER = "x-steadytext-document-tokens";
const ROUTE = "/v1/rerank";

/** One pair's stored record: what every list containing the pair needs from it. */
export interface PairScore {
	relevance_score: number;
	prompt_tokens: number;
	model: string;
}

export interface PairRequest {
	query: string;
	model?: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);
const isCount = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value) && value >= 0;
const isScore = (value: unknown): value is number => typeof value === "number" && value >= 0 && value <= 1;

/** The key of one pair's score; `model` is in it as in every route's key (a wrong name is the runtime's 404). */
export function pairKey(request: PairRequest, document: string, fingerprint: string, namespace: CacheNamespace | null): Promise<string> {
	return cacheKey("rerank", ROUTE, { model: request.model, query: request.query, document }, fingerprint, namespace);
}

/** The key of one origin call for these documents: identical concurrent calls share one flight. */
export function flightKey(
	request: PairRequest,
	documents: string[],
	fingerprint: string,
	namespace: CacheNamespace | null,
): Promise<string> {
	return cacheKey("rerank", ROUTE, { model: request.model, query: request.query, documents }, fingerprint, namespace);
}

export function pairBody(pair: PairScore): string {
	return JSON.stringify(pair);
}

/** A stored pair record, or null when the stored body is not one (it is then scored again). */
export function parsePair(body: string): PairScore | null {
	let value: unknown;
	try {
		value = JSON.parse(body);
	} catch {
		return null;
	}
	if (!isObject(value) || !isScore(value.relevance_score) || !isCount(value.prompt_tokens) || typeof value.model !== "string") return null;
	return { relevance_score: value.relevance_score, prompt_tokens: value.prompt_tokens, model: value.model };
}

function badAnswer(what: string): HttpError {
	console.error(`origin: a 200 from ${ROUTE} ${what}; not cached`);
	return new HttpError(502, "bad_origin_answer", `the origin's answer does not have the shape of ${ROUTE} answers; it was not cached`);
}

/**
 * Each sent document's pair record, in the order the documents were sent, from the runtime's answer to
 * `{query, documents}` (no top_n: one result per document) and its document-tokens header. Anything
 * else is a 502, so a broken answer is never stored as scores.
 */
export function pairsFromAnswer(answer: OriginAnswer, sent: number): PairScore[] {
	if (answer.contentType.split(";")[0].trim().toLowerCase() !== "application/json") throw badAnswer("without a JSON content type");
	let body: unknown;
	let tokens: unknown;
	try {
		body = JSON.parse(answer.body);
		tokens = JSON.parse(answer.documentTokens ?? "null");
	} catch {
		throw badAnswer("that is not JSON");
	}
	if (!isObject(body) || typeof body.model !== "string" || !Array.isArray(body.results) || body.results.length !== sent)
		throw badAnswer("without one result per document");
	if (!Array.isArray(tokens) || tokens.length !== sent || !tokens.every(isCount)) throw badAnswer(`without ${DOCUMENT_TOKENS_HEADER}`);
	const pairs: (PairScore | undefined)[] = new Array(sent);
	for (const result of body.results) {
		const index = isObject(result) ? result.index : undefined;
		if (!isObject(result) || !isCount(index) || index >= sent || pairs[index] || !isScore(result.relevance_score))
			throw badAnswer("with a result that is not one of the documents' scores");
		pairs[index] = { relevance_score: result.relevance_score, prompt_tokens: tokens[index], model: body.model };
	}
	return pairs as PairScore[];
}
