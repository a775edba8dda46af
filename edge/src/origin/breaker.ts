// A circuit breaker per origin URL and isolate: after FAILURE_THRESHOLD consecutive failures the origin
// is skipped for COOLDOWN_MS, then a single trial request decides whether it closes again.
// A failure is a lost connection, a timeout, or an answer that says "this origin cannot answer":
// a gateway/tunnel 5xx or a redirect (isOriginFailure). Any other answer proves the origin is up and
// counts as a success, however long it took: the runtime's own 429 (queue_full) and slow answers after
// a long queue wait are load, not an outage, and opening the breaker on them would turn one key's flood
// into an outage for every key. A runtime 500 is one request's answer, not unavailability (a request
// that always fails must not open the breaker for everyone).

/** Gateway errors and Cloudflare tunnel errors: the origin (or the way to it) is down. */
const UNAVAILABLE_STATUS = new Set([502, 503, 504, 520, 521, 522, 523, 524, 530]);

/** True when an origin's answer counts as a failure of that origin (and sends the request elsewhere). */
export function isOriginFailure(status: number): boolean {
	return UNAVAILABLE_STATUS.has(status) || (status >= 300 && status < 400);
}

export const FAILURE_THRESHOLD = 5;
export const COOLDOWN_MS = 30_000;

type State = "closed" | "open" | "half-open";

export class CircuitBreaker {
	private state: State = "closed";
	private failures = 0;
	private openedAt = 0;

	/** True when a request may go to the origin now; in half-open state only one trial is let through. */
	allows(nowMs: number): boolean {
		if (this.state === "closed") return true;
		if (this.state === "open" && nowMs - this.openedAt >= COOLDOWN_MS) {
			this.state = "half-open";
			return true;
		}
		return false;
	}

	onSuccess(): void {
		this.state = "closed";
		this.failures = 0;
	}

	onFailure(nowMs: number): void {
		this.failures += 1;
		if (this.state === "half-open" || this.failures >= FAILURE_THRESHOLD) {
			this.state = "open";
			this.openedAt = nowMs;
		}
	}

	/** Seconds until the breaker lets a trial through again (0 when it is closed). */
	retryAfterSeconds(nowMs: number): number {
		if (this.state === "closed") return 0;
		return Math.max(1, Math.ceil((COOLDOWN_MS - (nowMs - this.openedAt)) / 1000));
	}
}

const breakers = new Map<string, CircuitBreaker>();

export function breakerFor(originUrl: string): CircuitBreaker {
	let breaker = breakers.get(originUrl);
	if (!breaker) {
		breaker = new CircuitBreaker();
		breakers.set(originUrl, breaker);
	}
	return breaker;
}
