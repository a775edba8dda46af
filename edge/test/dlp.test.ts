// DLP: sensitive data is blocked (naming the class, never echoing the match) or redacted before the
// prompt reaches the origin, the cache or the logs.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import patterns from "../../dlp-patterns.json";
import { applyDlp, passesLuhn } from "../src/dlp";
import type { FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

const SSN = "123-45-6789";
const VISA = "4111 1111 1111 1111"; // passes Luhn
const NOT_A_CARD = "4111 1111 1111 1112"; // fails Luhn

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

describe("dlp-patterns.json", () => {
	it("has the two required classes, Luhn-checked cards", () => {
		expect(patterns.patterns.map((p) => [p.id, p.validation])).toEqual([
			["us_ssn", null],
			["payment_card", "luhn"],
		]);
	});

	it("stays in the subset JavaScript and Rust regex both accept: no look-around, no back-references", () => {
		for (const { regex } of patterns.patterns) {
			expect(regex).not.toMatch(/\(\?<?[=!]/);
			expect(regex).not.toMatch(/\\[1-9]|\\k</);
			expect(() => new RegExp(regex, "u")).not.toThrow();
		}
	});
});

describe("detection", () => {
	it("checks card numbers with Luhn", () => {
		expect(passesLuhn(VISA)).toBe(true);
		expect(passesLuhn("5500-0000-0000-0004")).toBe(true);
		expect(passesLuhn(NOT_A_CARD)).toBe(false);
	});

	it("finds SSNs and valid cards anywhere in a nested value and leaves other numbers alone", () => {
		const input = { prompt: `ssn ${SSN}`, messages: [{ content: `card ${VISA}` }], other: `${NOT_A_CARD} 000-12-3456 phone 555-0100` };
		const { value, redacted } = applyDlp(input, "redact");
		expect(value).toEqual({
			prompt: "ssn [REDACTED:us_ssn]",
			messages: [{ content: "card [REDACTED:payment_card]" }],
			other: `${NOT_A_CARD} 000-12-3456 phone 555-0100`,
		});
		expect(redacted).toEqual(["us_ssn", "payment_card"]);
	});
});

describe("policy block", () => {
	it.each([
		["/v1/generate", { prompt: `my ssn is ${SSN}` }, "prompt", "us_ssn"],
		["/v1/chat/completions", { messages: [{ role: "user", content: `pay with ${VISA}` }] }, "messages[0].content", "payment_card"],
		["/v1/embed", { input: ["fine", `card ${VISA.replaceAll(" ", "-")}`] }, "input[1]", "payment_card"],
	])("%s: 422 naming the class and field, without echoing the match or calling the origin", async (path, body, field, id) => {
		const response = await call(path, { body, key });
		expect(response.status).toBe(422);
		const text = await response.text();
		const { error } = JSON.parse(text);
		expect(error.type).toBe("dlp_violation");
		expect(error.field).toBe(field);
		expect(error.message).toContain(id);
		expect(text).not.toContain(SSN);
		expect(text.replace(/[^0-9]/g, "")).not.toContain("4111111111111111");
		expect(origin.calls.filter((c) => c.path !== "/v1/status")).toHaveLength(0);
	});

	it("lets a number that fails Luhn through", async () => {
		expect((await call("/v1/generate", { body: { prompt: `order ${NOT_A_CARD} ${uniquePrompt("")}` }, key })).status).toBe(200);
	});

	it("never stores a blocked prompt", async () => {
		await call("/v1/generate", { body: { prompt: `ssn ${SSN}` }, key });
		const rows = await env.DB.prepare("SELECT * FROM answer_cache").all();
		expect(JSON.stringify(rows.results)).not.toContain(SSN);
	});
});

describe("policy redact", () => {
	it("forwards, caches and answers with the match replaced", async () => {
		const prompt = `${uniquePrompt("redact")} ssn ${SSN}`;
		const response = await call("/v1/generate", { body: { prompt }, key, env: { DLP_POLICY: "redact" } });
		expect(response.status).toBe(200);
		expect(response.headers.get("x-dlp-redacted")).toBe("us_ssn");
		const forwarded = origin.callsTo("/v1/generate")[0].body!;
		expect(forwarded.prompt).toBe(prompt.replace(SSN, "[REDACTED:us_ssn]"));
		expect(await response.text()).not.toContain(SSN);
		const rows = await env.DB.prepare("SELECT * FROM answer_cache").all();
		expect(rows.results.length).toBeGreaterThan(0);
		expect(JSON.stringify(rows.results)).not.toContain(SSN);
	});
});
