// ExpiringMap (src/ttlmap.ts), the one capped, expiring in-isolate map: refused keys and blocked IPs drop
// the entry written longest ago, the memory answer tier the one read longest ago (its end-to-end pins are
// in cache.test.ts and cache-controls.test.ts).
import { describe, expect, it } from "vitest";
import { ExpiringMap } from "../src/ttlmap";

describe("ExpiringMap", () => {
	it("expires entries and holds at most its capacity", () => {
		const map = new ExpiringMap<string>(2);
		map.set("a", "1", 1000, 0);
		expect(map.get("a", 999)).toBe("1");
		expect(map.get("a", 1000)).toBeUndefined();
		map.set("a", "1", 1000, 0);
		map.set("b", "2", 1000, 0);
		map.set("c", "3", 1000, 0);
		expect(map.size).toBe(2);
		expect([map.get("a", 1), map.get("b", 1), map.get("c", 1)]).toEqual([undefined, "2", "3"]);
	});

	it("gives each entry its own life", () => {
		const map = new ExpiringMap<string>(8);
		map.set("short", "s", 100, 0);
		map.set("long", "l", 1000, 0);
		expect([map.get("short", 100), map.get("long", 100)]).toEqual([undefined, "l"]);
		// Writing again starts a new life.
		map.set("long", "l", 1000, 900);
		expect(map.get("long", 1500)).toBe("l");
	});

	it("by default drops the entry written longest ago, however recently it was read", () => {
		const map = new ExpiringMap<string>(2);
		map.set("a", "1", 1000, 0);
		map.set("b", "2", 1000, 0);
		expect(map.get("a", 1)).toBe("1");
		map.set("c", "3", 1000, 0);
		expect([map.get("a", 1), map.get("b", 1), map.get("c", 1)]).toEqual([undefined, "2", "3"]);
	});

	it("in read order drops the entry read longest ago (an LRU)", () => {
		const map = new ExpiringMap<string>(2, "read");
		map.set("a", "1", 1000, 0);
		map.set("b", "2", 1000, 0);
		expect(map.get("a", 1)).toBe("1");
		map.set("c", "3", 1000, 0);
		expect([map.get("a", 1), map.get("b", 1), map.get("c", 1)]).toEqual(["1", undefined, "3"]);
	});

	it("a rewritten entry counts as the newest in either order", () => {
		for (const order of ["written", "read"] as const) {
			const map = new ExpiringMap<string>(2, order);
			map.set("a", "1", 1000, 0);
			map.set("b", "2", 1000, 0);
			map.set("a", "1 again", 1000, 0);
			map.set("c", "3", 1000, 0);
			expect([map.get("a", 1), map.get("b", 1), map.get("c", 1)]).toEqual(["1 again", undefined, "3"]);
		}
	});

	it("follows a capacity changed between calls from the next write on", () => {
		const map = new ExpiringMap<string>(3, "read");
		for (const key of ["a", "b", "c"]) map.set(key, key, 1000, 0);
		map.capacity = 2;
		expect(map.size).toBe(3);
		map.set("d", "d", 1000, 0);
		expect(map.size).toBe(2);
		expect([map.get("a", 1), map.get("b", 1), map.get("c", 1), map.get("d", 1)]).toEqual([undefined, undefined, "c", "d"]);
	});
});
