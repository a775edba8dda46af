// A small in-isolate map whose entries expire and whose size is capped: memory for what may be briefly
// stale or lost (refused keys, blocked client IPs, the hot answer tier), never for anything a request must
// see fresh. When full, one entry goes first, so a flood of new keys cannot grow it: by default the one
// WRITTEN longest ago (a verdict's age is what matters), or in "read" order the one READ longest ago (an
// LRU, for answers: a popular one stays however old).

/** Which entry a full map drops first: the one written longest ago, or the one read longest ago. */
type EvictionOrder = "written" | "read";

export class ExpiringMap<V> {
	private readonly entries = new Map<string, { value: V; expiresAtMs: number }>();

	/**
	 * @param capacity The most entries it keeps; checked on each write, so a caller whose cap comes from
	 * config may change it between calls.
	 */
	constructor(
		public capacity: number,
		private readonly order: EvictionOrder = "written",
	) {}

	get(key: string, nowMs = Date.now()): V | undefined {
		const found = this.entries.get(key);
		if (!found) return undefined;
		if (found.expiresAtMs <= nowMs) {
			this.entries.delete(key);
			return undefined;
		}
		if (this.order === "read") {
			// A Map iterates in insertion order: moving a read entry last makes the first the least recently used.
			this.entries.delete(key);
			this.entries.set(key, found);
		}
		return found.value;
	}

	/** Keeps `value` for `ttlMs` from `nowMs`; each entry has its own life. */
	set(key: string, value: V, ttlMs: number, nowMs = Date.now()): void {
		this.entries.delete(key);
		this.entries.set(key, { value, expiresAtMs: nowMs + ttlMs });
		while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
	}

	get size(): number {
		return this.entries.size;
	}
}
