// Keepalives for a streamed miss: proxies between the client and the edge close a connection that sends
// nothing for a while (Cloudflare's own proxy after 100 s), and a long queue wait or prompt, or a slow
// piece, can be that long. Whenever the client has had no byte for the interval, it gets an SSE comment
// line, which SSE clients ignore by definition. Comments are only ever added between whole events (the
// source is the relay's output, which carries complete events only), never enter the stored answer, and a
// replayed hit has none: it is the live stream's bytes without its keepalives. A stream answered 200
// before the origin did reports a later refusal or failure as one error event (failureEvents).

import { HttpError } from "../errors";

/** The comment sent; `:` starts an SSE comment line. */
export const KEEPALIVE = ": keepalive\n\n";

const encoder = new TextEncoder();
const encodedKeepalive = encoder.encode(KEEPALIVE);
const TICK = Symbol("tick");

/**
 * The bytes of `source` (a stream, or a promise of one that may take longer than the interval to come),
 * with a keepalive whenever nothing was sent for `intervalMs`. Read at the client's pace: one read of the
 * source at a time, and a cancel by the client cancels the source. A source that arrived and then sends
 * nothing for `maxSilenceMs` (a stuck origin, a half-open connection: its body outlives the origin call's
 * timeout) is cancelled and the stream ends with an error event; keepalives would otherwise hold the
 * client, the request and its lease for ever. (Until the source arrives, the origin call's own timeout rules.)
 */
export function withKeepalive(
	source: Promise<ReadableStream<Uint8Array>>,
	intervalMs: number,
	maxSilenceMs: number,
): ReadableStream<Uint8Array> {
	let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
	let pending: Promise<ReadableStreamDefaultReader<Uint8Array> | ReadableStreamReadResult<Uint8Array>> | null = null;
	// When the pending read of the source began: the origin's silence is counted while it is waited for,
	// never while the client is not reading.
	let askedMs = 0;
	let readingSource = false;
	// A source that never arrives (it failed) is cancelled when it does not matter any more.
	const opened = source.then((stream) => (reader = stream.getReader()));

	async function next(): Promise<ReadableStreamReadResult<Uint8Array> | typeof TICK> {
		if (pending === null) {
			askedMs = Date.now();
			readingSource = reader !== null;
			pending = reader ? reader.read() : opened;
		}
		let timer: ReturnType<typeof setTimeout> | null = null;
		const tick = new Promise<typeof TICK>((resolve) => (timer = setTimeout(() => resolve(TICK), intervalMs)));
		try {
			const result = await Promise.race([pending, tick]);
			if (result === TICK) return TICK;
			pending = null;
			// The source just arrived: read from it (a later call's race restarts the interval).
			return "done" in result ? result : next();
		} finally {
			clearTimeout(timer);
		}
	}

	let cancelled = false;
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			const result = await next();
			if (cancelled) return;
			if (result === TICK && readingSource && Date.now() - askedMs >= maxSilenceMs) {
				const seconds = maxSilenceMs / 1000;
				controller.enqueue(
					encoder.encode(
						errorEvent("origin_unavailable", `the origin sent nothing for ${seconds} s (ORIGIN_TIMEOUT_MS); the stream ends here`),
					),
				);
				controller.close();
				cancelled = true;
				reader!.cancel(new Error("the origin fell silent")).catch(() => undefined);
			} else if (result === TICK) controller.enqueue(encodedKeepalive);
			else if (result.done) controller.close();
			else controller.enqueue(result.value);
		},
		async cancel(reason) {
			cancelled = true;
			if (reader) return reader.cancel(reason);
			// The client left before the origin answered: its stream is cancelled when it comes.
			opened.then((late) => late.cancel(reason)).catch(() => undefined);
		},
	});
}

/** An error event, the way the runtime reports a failure after its stream began (runtime/http/sse.py). */
function errorEvent(type: string, message: string): string {
	return `data: ${JSON.stringify({ error: { type, message } })}\n\n`;
}

/** What a stream that was already answered 200 sends when the origin then refuses or fails. */
export async function failureEvents(upstream: Response | HttpError): Promise<ReadableStream<Uint8Array>> {
	let event: string;
	if (upstream instanceof HttpError) {
		event = errorEvent(upstream.type, upstream.message);
	} else {
		const text = await upstream.text();
		let envelope: { error?: { type?: unknown; message?: unknown } } | null = null;
		try {
			envelope = JSON.parse(text);
		} catch {
			// not the runtime's error shape: reported as a bad answer below
		}
		const { type, message } = envelope?.error ?? {};
		event =
			typeof type === "string" && typeof message === "string"
				? errorEvent(type, message)
				: errorEvent("bad_origin_answer", `the origin answered HTTP ${upstream.status} instead of a stream`);
	}
	return new Response(event).body!;
}

/** A timer to race against: resolves to null after `ms`, unless cancelled. */
export function sleep(ms: number): { done: Promise<null>; cancel: () => void } {
	let timer: ReturnType<typeof setTimeout> | null = null;
	const done = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
	return { done, cancel: () => clearTimeout(timer) };
}
