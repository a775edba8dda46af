// The origin's generation speed, learnt in this isolate from completed non-streamed answers
// (each choice's share of usage.completion_tokens over the origin call's time), and the refusal of a non-streamed generation that would outlast the
// proxies in front of it: Cloudflare answers 524 when an origin sends nothing for 100 s (and the Worker's
// own ORIGIN_TIMEOUT_MS, which should be longer than NON_STREAM_MAX_SECONDS, ends the call). A streamed
// answer sends keepalives instead (keepalive.ts). Streams teach nothing: the origin's stream is read at
// the client's pace, so a client that reads slowly would make the origin look slow to every tenant.
import type { Settings } from "../config";
import { HttpError } from "../errors";
import { choicesOf, maxTokensOf } from "./capacity";
import { answerFacts } from "../cache/answers";
import type { Body } from "../admission/validate";

// Before any measurement: about half the speed of the CPU-only runtime on 2 cores (37–48 tok/s greedy),
// so the default MAX_TOKENS_LIMIT (512 → 26 s) is never refused on a guess, while a deployment with much
// larger limits is refused until an answer shows the origin is fast.
const DEFAULT_TOKENS_PER_SECOND = 20;
// Short answers are mostly fixed cost (the round trip, the prompt): they would make the origin look slow.
const MIN_SAMPLE_TOKENS = 16;
// Weight of the newest answer in the moving average: follows a change of origin within a few answers.
const NEWEST_WEIGHT = 0.3;

const rates = new Map<string, number>();

const originOf = (config: Settings): string => config.originUrls.join(" ");

/**
 * Learns from a completed generation answer (its JSON body) that took `originMs` at the origin. The runtime
 * decodes a request's n choices side by side, in their own slots, so the speed that decides how long an
 * answer takes is one choice's: usage.completion_tokens (every choice's tokens) over n.
 */
export function recordSpeed(config: Settings, params: Body, body: string, originMs: number | undefined): void {
	const tokens = answerFacts(body).completionTokens / choicesOf(params);
	if (tokens < MIN_SAMPLE_TOKENS || !originMs || originMs <= 0) return;
	const sample = tokens / (originMs / 1000);
	const previous = rates.get(originOf(config));
	rates.set(originOf(config), previous === undefined ? sample : NEWEST_WEIGHT * sample + (1 - NEWEST_WEIGHT) * previous);
}

/** One choice's tokens/s at the origin as this isolate last measured it, or the default before any answer. */
function tokensPerSecond(config: Settings): number {
	return rates.get(originOf(config)) ?? DEFAULT_TOKENS_PER_SECOND;
}

/**
 * Without max_tokens a request gets the runtime's default (its status says which; MAX_TOKENS_LIMIT when no
 * status told it), so a client that never sends one is not refused for tokens it can never be given.
 *
 * Refuses (400 `stream_required`) a non-streamed generation whose answer may take too long to wait for:
 * max_tokens at one choice's measured rate (n choices are decoded side by side, RUNTIME_MAX_CHOICES being at
 * most the runtime's decode slots). Any n can stream (the choices one after another), so the way out is
 * always `stream`.
 */
export function checkNonStreamTime(params: Body, config: Settings, runtimeDefaultMaxTokens: number | null): void {
	const limitSeconds = config.nonStreamMaxSeconds;
	const maxTokens = maxTokensOf(params, runtimeDefaultMaxTokens ?? config.maxTokensLimit);
	const rate = tokensPerSecond(config);
	const estimateSeconds = maxTokens / rate;
	if (estimateSeconds <= limitSeconds) return;
	const alternative = `send "stream": true (keepalives hold the connection open) or a smaller max_tokens`;
	throw new HttpError(
		400,
		"stream_required",
		`up to ${maxTokens} tokens per choice at the origin's measured ${rate.toFixed(1)} tokens/s may take ${Math.ceil(estimateSeconds)} s, ` +
			`longer than a non-streamed answer may take (NON_STREAM_MAX_SECONDS: ${limitSeconds} s); ${alternative}`,
		"stream",
	);
}
