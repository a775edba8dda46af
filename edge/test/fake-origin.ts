// A fake inference runtime behind globalThis.fetch (the Worker's network boundary). It answers in the
// shapes of the wire contract (contract/): every body it receives must follow the route's request schema
// (else it answers the runtime's 400) and every answer and stream event it sends is checked against the
// answer and event schemas, so the fake cannot drift from the runtime unnoticed. A request equal to a
// golden fixture's gets the real runtime's recorded bytes. It records every call, and can be made slow,
// failing or unreachable per origin host. Non-streamed bodies are pretty-printed on purpose: a
// byte-identical replay cannot come from re-encoding.
import { vi } from "vitest";
import { renderStream, type StreamFormat } from "../src/cache/replay";
import { expectValid, expectValidStream, GOLDENS, ROUTES, violations, type Golden } from "./contract";

export const FINGERPRINT = "0123456789abcdef0123456789abcdef";
/** The model file's sha256 and the golden-probe digest that GET /v1/status reports. */
export const MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
export const PROBE_DIGEST = "1ef87fca440b65ba8141d85adbb36a77b23ba7015ef6606006346588ca206d2f";

export interface OriginCall {
	host: string;
	path: string;
	method: string;
	headers: Headers;
	body: Record<string, any> | null;
}

export interface HostBehaviour {
	/** "down": connection refused; 429: the runtime's queue_full answer; another number: that status. */
	fail?: "down" | number;
	delayMs?: number;
	/** How many of the next calls lose their connection before any answer (a stale keep-alive). */
	dropConnections?: number;
	/** Inference calls wait for this gate before answering (a test opens it when it is ready). */
	gate?: Promise<void>;
	/** Answers inference calls with this instead of the usual answer (a bad or odd origin). */
	respond?: (path: string) => Response;
}

/** A gate for HostBehaviour.gate and a function that opens it. */
export function makeGate(): { gate: Promise<void>; open: () => void } {
	let open!: () => void;
	const gate = new Promise<void>((resolve) => (open = resolve));
	return { gate, open };
}

type Json = Record<string, any>;

function delay(ms: number, signal: AbortSignal | null): Promise<void> {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(resolve, ms);
		signal?.addEventListener("abort", () => {
			clearTimeout(timer);
			reject(new DOMException("The operation was aborted", "AbortError"));
		});
	});
}

function awaitGate(gate: Promise<void>, signal: AbortSignal | null): Promise<void> {
	return new Promise((resolve, reject) => {
		gate.then(resolve);
		signal?.addEventListener("abort", () => reject(new DOMException("The operation was aborted", "AbortError")));
	});
}

export class FakeOrigin {
	readonly calls: OriginCall[] = [];
	/** Inference calls that have arrived and not answered yet. */
	pending = 0;
	readonly hosts = new Map<string, HostBehaviour>();
	fingerprint = FINGERPRINT;
	/** The golden-probe digest on GET /v1/status; null = a runtime with RUNTIME_PROBES=off. */
	probeDigest: string | null = PROBE_DIGEST;
	/** The runtime's default max_tokens on GET /v1/status; null: a status without `defaults`. */
	defaultMaxTokens: number | null = 16;
	/** Numbers per embedding vector: raise it for answers of realistic (or excessive) size. */
	embeddingDim = 4;
	/** When set, the next streamed answer's exact text (to send a stream that breaks off or fails). */
	nextStream: string | null = null;

	set(host: string, behaviour: HostBehaviour): this {
		this.hosts.set(host, behaviour);
		return this;
	}

	callsTo(path: string, host?: string): OriginCall[] {
		return this.calls.filter((call) => call.path === path && (host === undefined || call.host === host));
	}

	generatedText(body: Json): string {
		const prompt = body.prompt ?? body.messages?.map((m: Json) => m.content).join("|");
		return `gen(${prompt}|${body.max_tokens ?? this.defaultMaxTokens}|${body.seed ?? 42}|${JSON.stringify(body.stop ?? null)}) é`;
	}

	private json(payload: unknown, status = 200, extraHeaders: Record<string, string> = {}): Response {
		return new Response(JSON.stringify(payload, null, 1), {
			status,
			headers: { "content-type": "application/json", "x-model-fingerprint": this.fingerprint, ...extraHeaders },
		});
	}

	/** A generation answer, plain (with the runtime's piece-lengths header) or as the runtime streams it. */
	private generation(path: string, answer: Json, body: Json): Response {
		expectValid(ROUTES[path].answer, answer);
		const text: string = answer.text ?? answer.choices[0].text ?? answer.choices[0].message.content;
		const codePoints = Array.from(text);
		// Pieces as a tokenizer makes them: uneven, never empty (4 code points, then 6 at a time).
		const pieces =
			codePoints.length <= 4
				? [codePoints.length]
				: [4, ...Array.from({ length: Math.ceil((codePoints.length - 4) / 6) }, (_, i) => Math.min(6, codePoints.length - 4 - 6 * i))];
		if (!body.stream) {
			return new Response(JSON.stringify(answer, null, 1), {
				headers: {
					"content-type": "application/json",
					"x-model-fingerprint": this.fingerprint,
					"x-steadytext-pieces": JSON.stringify(pieces),
				},
			});
		}
		const format: StreamFormat = path === "/v1/generate" ? "native" : path === "/v1/completions" ? "completion" : "chat";
		const stream = renderStream(
			format,
			JSON.stringify(answer),
			pieces.filter((n) => n > 0),
			body.stream_options?.include_usage === true,
		)!;
		expectValidStream(path, stream);
		return new Response(stream, {
			headers: { "content-type": "text/event-stream; charset=utf-8", "x-model-fingerprint": this.fingerprint },
		});
	}

	/** The real runtime's recorded answer for a request equal to a golden fixture's. */
	private golden(path: string, body: Json): Response | null {
		const { stream, stream_options, ...request } = body;
		const fixture = Object.values(GOLDENS).find(
			(golden: Golden) => golden.route === path && JSON.stringify(golden.request) === JSON.stringify(request),
		);
		if (!fixture) return null;
		const headers = { "x-model-fingerprint": fixture.fingerprint };
		if (!stream)
			return new Response(fixture.answer, {
				headers: { ...headers, "content-type": "application/json", "x-steadytext-pieces": JSON.stringify(fixture.pieces ?? []) },
			});
		const events = stream_options?.include_usage ? fixture.stream_with_usage : fixture.stream;
		return new Response(events, { headers: { ...headers, "content-type": "text/event-stream; charset=utf-8" } });
	}

	/**
	 * A rerank answer as the runtime gives it: one result per document, best first, and the
	 * document-tokens header. A document of a golden rerank with the same query gets the real runtime's
	 * score and tokens; any other gets a score made from its text (ties for anagrams).
	 */
	private rerank(body: Json): Response {
		const golden = Object.values(GOLDENS).find(
			(fixture) => fixture.route === "/v1/rerank" && fixture.request.query === body.query && fixture.request.model === body.model,
		);
		const recorded = golden ? (JSON.parse(golden.answer).results as Json[]) : [];
		const pair = (document: string): { score: number; tokens: number } => {
			const at = golden ? (golden.request.documents as string[]).indexOf(document) : -1;
			if (at >= 0) return { score: recorded.find((result) => result.index === at)!.relevance_score, tokens: golden!.document_tokens![at] };
			const codes = Array.from(document).reduce((sum, char) => sum + char.codePointAt(0)!, 0);
			return { score: (codes % 997) / 997, tokens: 40 + Array.from(document).length };
		};
		const pairs = (body.documents as string[]).map(pair);
		const order = pairs.map((_, index) => index).sort((a, b) => pairs[b].score - pairs[a].score || a - b);
		const results = order.slice(0, body.top_n ?? order.length).map((index) => ({
			index,
			relevance_score: pairs[index].score,
			...(body.return_documents ? { document: { text: body.documents[index] } } : {}),
		}));
		const tokens = pairs.reduce((sum, { tokens }) => sum + tokens, 0);
		const model = golden ? JSON.parse(golden.answer).model : "gemma3-270m";
		const answer = { model, fingerprint: this.fingerprint, results, usage: { prompt_tokens: tokens, total_tokens: tokens } };
		expectValid(ROUTES["/v1/rerank"].answer, answer);
		return this.json(answer, 200, { "x-steadytext-document-tokens": JSON.stringify(pairs.map(({ tokens }) => tokens)) });
	}

	private answer(path: string, method: string, body: Json | null): Response {
		const fingerprint = this.fingerprint;
		const usage = { prompt_tokens: 3, completion_tokens: 5 };
		if (path === "/v1/status" && method === "GET") {
			const probes = {
				policy: "check",
				status: "passed",
				digest: this.probeDigest,
				count: 5,
				golden_key: `${MODEL_SHA256}/cpu/a51d2f38f508`,
			};
			// The defaults as the runtime reports them; max_tokens is what generatedText assumes without one.
			const defaults = { seed: 42, max_tokens: this.defaultMaxTokens, max_tokens_cap: 512, max_choices: 4 };
			return this.json({
				fingerprint,
				model: { name: "gemma3-270m", sha256: MODEL_SHA256, n_ctx: 2048, embedding_dim: 4 },
				defaults,
				probes,
			});
		}
		if (path === "/v1/models" && method === "GET") return this.json({ object: "list", data: [{ id: "gemma3-270m", object: "model" }] });
		if (method !== "POST" || body === null)
			return this.json({ error: { type: "not_found", message: `no route for ${method} ${path}` } }, 404);
		const schema = ROUTES[path]?.request;
		const broken = schema ? violations(schema, body) : [];
		if (broken.length > 0) return this.json({ error: { type: "invalid_request", message: `body: ${broken[0]}`, field: "body" } }, 400);
		if (body.prompt === "origin says no")
			return this.json({ error: { type: "invalid_request", message: "prompt: is too long", field: "prompt" } }, 400);
		// Refusals for something outside the cache key: the requests of two tenants can share a key and differ here.
		if (body.user === "refuse me")
			return this.json({ error: { type: "invalid_request", message: "user: 'refuse me' is not allowed", field: "user" } }, 400);
		if (body.user === "queue full") {
			const full = this.json({ error: { type: "queue_full", message: "the queue is full" } }, 429);
			full.headers.set("retry-after", "1");
			return full;
		}
		if (body.stream && this.nextStream !== null) {
			const text = this.nextStream;
			this.nextStream = null;
			return new Response(text, {
				headers: { "content-type": "text/event-stream; charset=utf-8", "x-model-fingerprint": this.fingerprint },
			});
		}
		const golden = this.golden(path, body);
		if (golden) return golden;
		if (path === "/v1/rerank") return this.rerank(body);
		const text = this.generatedText(body);
		const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input ?? ""];
		const vectors = inputs.map((input) => {
			const pattern = [input.length / 100, 0.5, -0.25, 0.125];
			return Array.from({ length: this.embeddingDim }, (_, i) => pattern[i % 4]);
		});
		const openAiUsage = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
		// Deterministic, as the runtime's: the same request gets the same id.
		const id = (prefix: string) =>
			`${prefix}-${Array.from(text, (c) => c.charCodeAt(0).toString(16))
				.join("")
				.padEnd(24, "0")
				.slice(-24)}`;
		const answer = (embedded: Json): Response => {
			// Checking millions of numbers one by one would outlast a test: the size tests' vectors are skipped.
			if (this.embeddingDim <= 4096) expectValid(ROUTES[path].answer, embedded);
			return this.json(embedded);
		};
		switch (path) {
			case "/v1/generate":
				return this.generation(path, { text, finish_reason: "length", usage, model: "gemma3-270m", fingerprint }, body);
			case "/v1/embed":
				return answer({ embeddings: vectors, dim: this.embeddingDim, model: "gemma3-270m", fingerprint });
			case "/v1/completions": {
				const base = { id: id("cmpl"), object: "text_completion", created: 0, model: "gemma3-270m", system_fingerprint: fingerprint };
				return this.generation(
					path,
					{ ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: "length" }], usage: openAiUsage },
					body,
				);
			}
			case "/v1/chat/completions": {
				const base = { id: id("chatcmpl"), object: "chat.completion", created: 0, model: "gemma3-270m", system_fingerprint: fingerprint };
				const message = { role: "assistant", content: text };
				return this.generation(
					path,
					{ ...base, choices: [{ index: 0, message, logprobs: null, finish_reason: "length" }], usage: openAiUsage },
					body,
				);
			}
			case "/v1/embeddings": {
				// Like the runtime: base64 of the little-endian float32 vector when the client asks for it.
				const encode = (vector: number[]) =>
					body.encoding_format === "base64" ? btoa(String.fromCharCode(...new Uint8Array(new Float32Array(vector).buffer))) : vector;
				return answer({
					object: "list",
					data: vectors.map((vector, index) => ({ object: "embedding", index, embedding: encode(vector) })),
					model: "gemma3-270m",
					system_fingerprint: fingerprint,
					usage: { prompt_tokens: 3, total_tokens: 3 },
				});
			}
			case "/v1/tokenize": {
				// One token per code point (the prompt, or the messages' contents), after a BOS.
				const text: string = body.prompt ?? body.messages.map((m: Json) => m.content).join("");
				const pieces = ["<bos>", ...Array.from(text)];
				const tokens = pieces.map((piece, index) => (index === 0 ? 2 : piece.codePointAt(0)!));
				const tokenized = { tokens, count: tokens.length, ...(body.with_pieces ? { pieces } : {}), model: "gemma3-270m", fingerprint };
				expectValid(ROUTES[path].answer, tokenized);
				return this.json(tokenized);
			}
			case "/v1/detokenize": {
				const unknown = body.tokens.findIndex((token: number) => token > 0x10ffff);
				if (unknown >= 0) {
					const field = `tokens[${unknown}]`;
					return this.json({ error: { type: "invalid_request", message: `${field}: is not a token id of this model`, field } }, 400);
				}
				const detokenized = {
					text: body.tokens.map((token: number) => String.fromCodePoint(token)).join(""),
					model: "gemma3-270m",
					fingerprint,
				};
				expectValid(ROUTES[path].answer, detokenized);
				return this.json(detokenized);
			}
			default:
				return this.json({ error: { type: "not_found", message: `no route for ${method} ${path}` } }, 404);
		}
	}

	async handle(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
		const request = new Request(input, init);
		const url = new URL(request.url);
		const text = request.method === "POST" ? await request.text() : "";
		this.calls.push({
			host: url.host,
			path: url.pathname,
			method: request.method,
			headers: request.headers,
			body: text ? JSON.parse(text) : null,
		});
		const behaviour = this.hosts.get(url.host) ?? {};
		const inference = request.method === "POST";
		if (inference) this.pending += 1;
		try {
			if (behaviour.delayMs) await delay(behaviour.delayMs, init?.signal ?? null);
			if (behaviour.gate && inference) await awaitGate(behaviour.gate, init?.signal ?? null);
		} finally {
			if (inference) this.pending -= 1;
		}
		if (behaviour.fail === "down") throw new TypeError("Network connection lost.");
		if (behaviour.dropConnections) {
			behaviour.dropConnections -= 1;
			throw new TypeError("Network connection lost.");
		}
		if (behaviour.fail === 429)
			return this.json({ error: { type: "queue_full", message: "the queue is full; retry in 3s" } }, 429, { "retry-after": "3" });
		if (typeof behaviour.fail === "number") return new Response("origin failure", { status: behaviour.fail });
		if (behaviour.respond && inference) return behaviour.respond(url.pathname);
		return this.answer(url.pathname, request.method, text ? JSON.parse(text) : null);
	}
}

/** Replaces globalThis.fetch for the current test file; restore with vi.restoreAllMocks(). */
export function installFakeOrigin(): FakeOrigin {
	const origin = new FakeOrigin();
	vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => origin.handle(input, init));
	return origin;
}
