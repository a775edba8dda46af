// A fake inference runtime behind globalThis.fetch (the Worker's network boundary). It answers in the
// shapes of docs/interfaces.md, records every call, and can be made slow, failing or unreachable per
// origin host. Bodies are pretty-printed on purpose: a byte-identical replay cannot come from re-encoding.
import { vi } from "vitest";

export const FINGERPRINT = "0123456789abcdef0123456789abcdef";

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
	/** Numbers per embedding vector: raise it for answers of realistic (or excessive) size. */
	embeddingDim = 4;

	set(host: string, behaviour: HostBehaviour): this {
		this.hosts.set(host, behaviour);
		return this;
	}

	callsTo(path: string, host?: string): OriginCall[] {
		return this.calls.filter((call) => call.path === path && (host === undefined || call.host === host));
	}

	generatedText(body: Json): string {
		const prompt = body.prompt ?? body.messages?.map((m: Json) => m.content).join("|");
		return `gen(${prompt}|${body.max_tokens ?? 16}|${body.seed ?? 42}|${JSON.stringify(body.stop ?? null)}) é`;
	}

	private json(payload: unknown, status = 200, extraHeaders: Record<string, string> = {}): Response {
		return new Response(JSON.stringify(payload, null, 1), {
			status,
			headers: { "content-type": "application/json", "x-model-fingerprint": this.fingerprint, ...extraHeaders },
		});
	}

	private stream(events: unknown[], done = false): Response {
		const text = events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join("") + (done ? "data: [DONE]\n\n" : "");
		return new Response(text, { headers: { "content-type": "text/event-stream", "x-model-fingerprint": this.fingerprint } });
	}

	private answer(path: string, method: string, body: Json | null): Response {
		const fingerprint = this.fingerprint;
		const usage = { prompt_tokens: 3, completion_tokens: 5 };
		if (path === "/v1/status" && method === "GET") {
			return this.json({ fingerprint, model: { name: "gemma3-270m", sha256: "a5fd", n_ctx: 2048, embedding_dim: 4 } });
		}
		if (path === "/v1/models" && method === "GET") return this.json({ object: "list", data: [{ id: "gemma3-270m", object: "model" }] });
		if (method !== "POST" || body === null) return this.json({ error: { type: "not_found", message: "no route" } }, 404);
		if (body.prompt === "origin says no") return this.json({ error: { type: "invalid_request", message: "prompt too long", field: "prompt" } }, 400);
		// Refusals for something outside the cache key: the requests of two tenants can share a key and differ here.
		if (body.user === "refuse me") return this.json({ error: { type: "invalid_request", message: "user 'refuse me' is not allowed", field: "user" } }, 400);
		if (body.user === "queue full") {
			const full = this.json({ error: { type: "queue_full", message: "the queue is full" } }, 429);
			full.headers.set("retry-after", "1");
			return full;
		}
		const text = this.generatedText(body);
		const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input ?? ""];
		const vectors = inputs.map((input) => {
			const pattern = [input.length / 100, 0.5, -0.25, 0.125];
			return Array.from({ length: this.embeddingDim }, (_, i) => pattern[i % 4]);
		});
		switch (path) {
			case "/v1/generate":
				if (body.stream) return this.stream([{ token: text.slice(0, 4) }, { token: text.slice(4) }, { done: true, text, finish_reason: "length", usage, fingerprint }]);
				return this.json({ text, finish_reason: "length", usage, model: "gemma3-270m", fingerprint });
			case "/v1/embed":
				return this.json({ embeddings: vectors, dim: this.embeddingDim, model: "gemma3-270m", fingerprint });
			case "/v1/completions": {
				const base = { id: "cmpl-1", object: "text_completion", created: 1700000000, model: "gemma3-270m", system_fingerprint: fingerprint };
				if (body.stream) return this.stream([{ ...base, choices: [{ index: 0, text, finish_reason: "length" }] }], true);
				return this.json({ ...base, choices: [{ index: 0, text, finish_reason: "length", logprobs: null }], usage });
			}
			case "/v1/chat/completions": {
				const base = { id: "chatcmpl-1", created: 1700000000, model: "gemma3-270m", system_fingerprint: fingerprint };
				const message = { role: "assistant", content: text };
				return this.json({ ...base, object: "chat.completion", choices: [{ index: 0, message, finish_reason: "length" }], usage });
			}
			case "/v1/embeddings": {
				// Like the runtime: base64 of the little-endian float32 vector when the client asks for it.
				const encode = (vector: number[]) => (body.encoding_format === "base64" ? btoa(String.fromCharCode(...new Uint8Array(new Float32Array(vector).buffer))) : vector);
				return this.json({ object: "list", data: vectors.map((vector, index) => ({ object: "embedding", index, embedding: encode(vector) })), model: "gemma3-270m" });
			}
			default:
				return this.json({ error: { type: "not_found", message: "no route" } }, 404);
		}
	}

	async handle(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
		const request = new Request(input, init);
		const url = new URL(request.url);
		const text = request.method === "POST" ? await request.text() : "";
		this.calls.push({ host: url.host, path: url.pathname, method: request.method, headers: request.headers, body: text ? JSON.parse(text) : null });
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
		if (behaviour.fail === 429) return this.json({ error: { type: "queue_full", message: "the queue is full; retry in 3s" } }, 429, { "retry-after": "3" });
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
