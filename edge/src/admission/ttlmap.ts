// A small in-isolate map whose entries expire and whose size is capped: memory for verdicts that may be
// briefly stale (refused keys, blocked client IPs), never for anything a request must see fresh. When
// full, the entry written longest ago goes first, so a flood of new keys cannot grow it.

export class ExpiringMap<V> {
	private readonly entries = new Map<string, { value: V; expiresAtMs: number }>();

	constructor(private readonly capacity: number) {}

	get(key: string, nowMs = Date.now()): V | undefined {
		const found = this.entries.get(key);
		if (!found) return undefined;
		if (found.expiresAtMs <= nowMs) {
			this.entries.delete(key);
			return undefined;
		}
		return found.value;
	}

	set(key: string, value: V, ttlMs: number, nowMs = Date.now()): void {
		this.entries.delete(key);
		this.entries.set(key, { value, expiresAtMs: nowMs + ttlMs });
		while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
	}

	get size(): number {
		return this.entries.size;
	}
}
