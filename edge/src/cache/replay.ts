// Streams and their stored form. A generation answer is stored as the runtime's non-streamed answer
// (its exact bytes) plus the stream's piece boundaries; from these two the Worker replays the exact bytes
// of the live stream (renderStream), and from a live stream it derives the exact non-streamed answer
// (deriveAnswer). Both follow how the runtime renders (runtime/http/routes_native.py, routes_openai.py); the
// golden fixtures in contract/fixtures, made by the real runtime, pin both directions
// (edge/test/contract.test.ts), so a drift on either side fails a test.

export type StreamFormat = "native" | "completion" | "chat";

/** The origin header with a non-streamed answer's piece lengths, in code points (contract/routes.json). */
export const PIECES_HEADER = "x-steadytext-pieces";

/**
 * A stream's piece boundaries as the runtime sends them (runtime/http/pieces.py): per choice, the pieces'
 * lengths in code points, or, for an answer with logprobs, also how many logprob entries each piece's
 * chunk carries (the rest go with the finish chunk); for n > 1 choices, one of those per choice. Stored as
 * it is (JSON) beside the answer.
 */
type ChoicePieces = number[] | { lengths: number[]; tokens: number[] };
export type Pieces = ChoicePieces | { choices: ChoicePieces[] };
export const DONE = "[DONE]";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const isObject = (value: unknown): value is Json => value !== null && typeof value === "object" && !Array.isArray(value);
const event = (data: unknown): string => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;

/** The pieces of `text` at these code-point lengths, or null when they do not add up to the text. */
function splitPieces(text: string, lengths: number[]): string[] | null {
	const codePoints = Array.from(text);
	const pieces: string[] = [];
	let at = 0;
	for (const length of lengths) {
		if (!Number.isInteger(length) || length < 1 || at + length > codePoints.length) return null;
		pieces.push(codePoints.slice(at, at + length).join(""));
		at += length;
	}
	return at === codePoints.length ? pieces : null;
}

const isCountList = (value: unknown, min: number): value is number[] =>
	Array.isArray(value) && value.every((n) => Number.isInteger(n) && n >= min);

function choicePieces(pieces: unknown): ChoicePieces | null {
	if (isCountList(pieces, 1)) return pieces;
	if (!isObject(pieces) || Object.keys(pieces).length !== 2) return null;
	const { lengths, tokens } = pieces;
	return isCountList(lengths, 1) && isCountList(tokens, 0) && lengths.length === tokens.length ? { lengths, tokens } : null;
}

/** A pieces header value as sent by the runtime, or null when absent or malformed. */
export function parsePieces(header: string | null): Pieces | null {
	if (!header) return null;
	try {
		const pieces: unknown = JSON.parse(header);
		if (!isObject(pieces) || !("choices" in pieces)) return choicePieces(pieces);
		if (Object.keys(pieces).length !== 1 || !Array.isArray(pieces.choices) || pieces.choices.length < 2) return null;
		const choices = pieces.choices.map(choicePieces);
		return choices.every((choice) => choice !== null) ? { choices: choices as ChoicePieces[] } : null;
	} catch {
		return null;
	}
}

const piecesOfChoices = (pieces: Pieces): ChoicePieces[] =>
	isObject(pieces) && "choices" in pieces ? pieces.choices : [pieces as ChoicePieces];

/** Logprob entries in OpenAI's two shapes, cut and joined as the runtime does per chunk. */
interface LogprobShape {
	count(logprobs: Json): number | null;
	slice(logprobs: Json, start: number, end: number): Json;
	join(parts: Json[]): Json | null;
}

const COMPLETION_LISTS = ["tokens", "token_logprobs", "top_logprobs", "text_offset"] as const;

const LOGPROB_SHAPES: Record<"completion" | "chat", LogprobShape> = {
	completion: {
		count(logprobs) {
			const lengths = COMPLETION_LISTS.map((name) => (Array.isArray(logprobs[name]) ? logprobs[name].length : -1));
			return lengths.every((length) => length === lengths[0] && length >= 0) ? lengths[0] : null;
		},
		slice: (logprobs, start, end) => Object.fromEntries(COMPLETION_LISTS.map((name) => [name, logprobs[name].slice(start, end)])),
		join(parts) {
			if (!parts.every((part) => LOGPROB_SHAPES.completion.count(part) !== null)) return null;
			return Object.fromEntries(COMPLETION_LISTS.map((name) => [name, parts.flatMap((part) => part[name])]));
		},
	},
	chat: {
		count: (logprobs) => (Array.isArray(logprobs.content) ? logprobs.content.length : null),
		slice: (logprobs, start, end) => ({ content: logprobs.content.slice(start, end) }),
		join: (parts) => (parts.every((part) => Array.isArray(part.content)) ? { content: parts.flatMap((part) => part.content) } : null),
	},
};

function envelope(answer: Json, object: string): Json {
	return { id: answer.id, object, created: answer.created, model: answer.model, system_fingerprint: answer.system_fingerprint };
}

/**
 * The live stream's bytes for a stored answer and its pieces; null when they do not fit together (the
 * request is then served live instead of from the cache). Several choices stream one after another.
 */
export function renderStream(format: StreamFormat, body: string, stored: Pieces, includeUsage: boolean): string | null {
	let answer: Json;
	try {
		answer = JSON.parse(body) as Json;
		if (format === "native") {
			const pieces = Array.isArray(stored) ? splitPieces(answer.text, stored) : null;
			return pieces && pieces.map((token) => event({ token })).join("") + event({ done: true, ...answer });
		}
		const perChoice = piecesOfChoices(stored);
		if (!Array.isArray(answer.choices) || answer.choices.length !== perChoice.length) return null;
		const object = format === "chat" ? "chat.completion.chunk" : "text_completion";
		let out = "";
		for (const [index, pieces] of perChoice.entries()) {
			const events = renderChoice(format, answer, object, index, pieces);
			if (events === null) return null;
			out += events;
		}
		if (includeUsage) out += event({ ...envelope(answer, object), choices: [], usage: answer.usage });
		return out + event(DONE);
	} catch {
		return null;
	}
}

/** One choice's chunks: (chat: the opening chunk), one per piece, the finish chunk. */
function renderChoice(format: "completion" | "chat", answer: Json, object: string, index: number, stored: ChoicePieces): string | null {
	const lengths = Array.isArray(stored) ? stored : stored.lengths;
	const tokens = Array.isArray(stored) ? null : stored.tokens;
	const choice = answer.choices[index];
	const pieces = splitPieces(format === "chat" ? choice.message.content : choice.text, lengths);
	if (pieces === null || choice.index !== index) return null;
	// Each chunk's logprobs: null without logprobs; else the entries of its tokens (the finish chunk: the rest).
	const shape = LOGPROB_SHAPES[format];
	const total = isObject(choice.logprobs) ? shape.count(choice.logprobs) : null;
	if ((tokens === null) !== (choice.logprobs === null) || (tokens !== null && total === null)) return null;
	if (tokens !== null && tokens.reduce((sum, count) => sum + count, 0) > total!) return null;
	let taken = 0;
	const logprobsOf = (count: number | null): Json | null => {
		if (tokens === null) return null;
		const end = count === null ? total! : taken + count;
		const part = shape.slice(choice.logprobs, taken, end);
		taken = end;
		return part;
	};
	const chunk = (fields: Json, logprobs: Json | null, finishReason: string | null): string =>
		event({ ...envelope(answer, object), choices: [{ index, ...fields, logprobs, finish_reason: finishReason }] });
	const piece = (text: string): Json => (format === "chat" ? { delta: { content: text } } : { text });
	let out = format === "chat" ? chunk({ delta: { role: "assistant", content: "" } }, null, null) : "";
	pieces.forEach((text, at) => (out += chunk(piece(text), logprobsOf(tokens && tokens[at]), null)));
	return out + chunk(format === "chat" ? { delta: {} } : { text: "" }, logprobsOf(null), choice.finish_reason);
}

/** Reads server-sent events from a byte stream, one complete `data: …` payload at a time. */
export class EventSplitter {
	private buffer = "";
	private readonly decoder = new TextDecoder();

	/** The complete events in `chunk` (with what earlier chunks left), each as its payload and raw text. */
	push(chunk: Uint8Array): { data: string; raw: string }[] {
		this.buffer += this.decoder.decode(chunk, { stream: true });
		const events: { data: string; raw: string }[] = [];
		let end: number;
		while ((end = this.buffer.indexOf("\n\n")) !== -1) {
			const raw = this.buffer.slice(0, end + 2);
			this.buffer = this.buffer.slice(end + 2);
			events.push({ data: raw.startsWith("data: ") ? raw.slice(6, -2) : "", raw });
		}
		return events;
	}

	/** True when nothing but complete events arrived. */
	get clean(): boolean {
		return this.buffer === "";
	}
}

const isUsage = (value: unknown): boolean =>
	isObject(value) && Number.isInteger(value.prompt_tokens) && Number.isInteger(value.completion_tokens);
const FINISH_REASONS = new Set(["stop", "length"]);

/** The usage chunk of an OpenAI stream (sent only when stream_options.include_usage is set). */
export function isUsageChunk(payload: string): boolean {
	if (!payload.startsWith("{")) return false;
	try {
		const chunk = JSON.parse(payload) as Json;
		return Array.isArray(chunk.choices) && chunk.choices.length === 0 && isUsage(chunk.usage);
	} catch {
		return false;
	}
}

/**
 * The non-streamed answer (the runtime's exact bytes) and the piece lengths of a complete, well-formed
 * live stream; null for anything else (an error event, a cut stream, an unexpected shape), which is then
 * not stored. OpenAI streams must carry the usage chunk: the Worker asks the origin for it.
 */
export function deriveAnswer(format: StreamFormat, payloads: string[]): { body: string; pieces: Pieces } | null {
	let events: Json[];
	try {
		const last = payloads.at(-1);
		if (format !== "native" && last !== DONE) return null;
		events = (format === "native" ? payloads : payloads.slice(0, -1)).map((payload) => JSON.parse(payload) as Json);
	} catch {
		return null;
	}
	if (!events.every(isObject) || events.some((e) => "error" in e)) return null;
	return format === "native" ? deriveNative(events) : deriveOpenAi(format, events);
}

function deriveNative(events: Json[]): { body: string; pieces: number[] } | null {
	const done = events.at(-1);
	if (!done || done.done !== true || typeof done.text !== "string" || !FINISH_REASONS.has(done.finish_reason) || !isUsage(done.usage))
		return null;
	const tokens = events.slice(0, -1);
	if (!tokens.every((e) => Object.keys(e).length === 1 && typeof e.token === "string" && e.token !== "")) return null;
	if (tokens.map((e) => e.token).join("") !== done.text) return null;
	const { done: _, ...answer } = done; // eslint-disable-line @typescript-eslint/no-unused-vars
	return { body: JSON.stringify(answer), pieces: tokens.map((e) => Array.from(e.token as string).length) };
}

function deriveOpenAi(format: "completion" | "chat", events: Json[]): { body: string; pieces: Pieces } | null {
	const object = format === "chat" ? "chat.completion.chunk" : "text_completion";
	const usageChunk = events.at(-1);
	const finishChunk = events.at(-2);
	if (!usageChunk || !finishChunk || !isUsageChunk(JSON.stringify(usageChunk))) return null;
	const first = events[0];
	if (
		!events.every(
			(e) =>
				e.object === object &&
				e.id === first.id &&
				e.created === first.created &&
				e.model === first.model &&
				e.system_fingerprint === first.system_fingerprint,
		)
	)
		return null;
	// The choices' chunks come one choice after another (index 0, 1, …), each ending with its finish chunk.
	const runs: Json[][] = [];
	for (const chunk of events.slice(0, -1)) {
		const choice = choiceOf(chunk);
		if (!choice) return null;
		if (choice.index === runs.length - 1) runs.at(-1)!.push(choice);
		else if (choice.index === runs.length) runs.push([choice]);
		else return null;
	}
	const derived = runs.map((run, index) => deriveChoice(format, run, index));
	if (runs.length === 0 || derived.some((choice) => choice === null)) return null;
	const answer = {
		...envelope(first, format === "chat" ? "chat.completion" : "text_completion"),
		choices: derived.map((choice) => choice!.choice),
		usage: usageChunk.usage,
	};
	const pieces = derived.map((choice) => choice!.pieces);
	return { body: JSON.stringify(answer), pieces: pieces.length === 1 ? pieces[0] : { choices: pieces } };
}

const choiceOf = (e: Json): Json | null =>
	Array.isArray(e.choices) && e.choices.length === 1 && isObject(e.choices[0]) ? e.choices[0] : null;

/** One choice of the answer from its stream chunks' choices: (chat: opening), pieces, finish. */
function deriveChoice(format: "completion" | "chat", run: Json[], index: number): { choice: Json; pieces: ChoicePieces } | null {
	const finish = run.at(-1)!;
	if (!FINISH_REASONS.has(finish.finish_reason)) return null;
	if (format === "chat" && (run.length < 2 || run[0].delta?.role !== "assistant" || run[0].finish_reason !== null)) return null;
	const pieceChoices = run.slice(format === "chat" ? 1 : 0, -1);
	const texts: string[] = [];
	for (const choice of pieceChoices) {
		const text = format === "chat" ? choice.delta?.content : choice.text;
		if (choice.finish_reason !== null || typeof text !== "string" || text === "") return null;
		texts.push(text);
	}
	// Logprobs: in every piece chunk and the finish chunk, or in none of them.
	const parts = [...pieceChoices, finish].map((choice) => choice.logprobs);
	let logprobs: Json | null = null;
	let tokens: number[] | null = null;
	if (parts.some((part) => part !== null)) {
		if (!parts.every(isObject)) return null;
		const shape = LOGPROB_SHAPES[format];
		logprobs = shape.join(parts);
		if (logprobs === null) return null;
		tokens = parts.slice(0, -1).map((part) => shape.count(part)!);
	}
	const text = texts.join("");
	const choice =
		format === "chat"
			? { index, message: { role: "assistant", content: text }, logprobs, finish_reason: finish.finish_reason }
			: { index, text, logprobs, finish_reason: finish.finish_reason };
	const lengths = texts.map((t) => Array.from(t).length);
	return { choice, pieces: tokens === null ? lengths : { lengths, tokens } };
}
