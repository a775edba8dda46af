// A circuit breaker per origin URL and isolate: after FAILURE_THRESHOLD consecutive failures the origin
// is skipped for COOLDOWN_MS, then a single trial request decides whether it closes again.

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
