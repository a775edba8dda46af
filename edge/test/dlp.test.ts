// DLP: sensitive data is blocked (naming the class, never echoing the match) or redacted before the
// prompt reaches the origin, the cache or the logs — in the forms people paste (docs/dlp.md). The whole
// labelled corpus runs in dlp-corpus.test.ts; here: the rules one by one and the request path.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import definitions from "../../dlp-patterns.json";
import { applyDlp, passesLuhn } from "../src/admission/dlp";
import { HttpError } from "../src/errors";
import type { FakeOrigin } from "./fake-origin";
import { call, freshOriginAndKey, uniquePrompt } from "./helpers";

const SSN = "123-45-6789";
const VISA = "4111 1111 1111 1111"; // passes Luhn
const NOT_A_CARD = "4111 1111 1111 1112"; // fails Luhn
const FULLWIDTH_VISA = "４１１１ １１１１ １１１１ １１１１";

let origin: FakeOrigin;
let key: string;
beforeEach(async () => ({ origin, key } = await freshOriginAndKey()));
afterEach(() => vi.restoreAllMocks());

/** The classes found in a value (redact mode), or the 422's message (block mode). */
const classesIn = (value: unknown) => applyDlp(value, "redact").redacted;
function blockError(value: unknown): HttpError {
	try {
		applyDlp(value, "block");
	} catch (error) {
		if (error instanceof HttpError) return error;
		throw error;
	}
	throw new Error("not blocked");
}
const onlyDigits = (text: string) => text.replace(/[^0-9]/g, "");

describe("dlp-patterns.json", () => {
	it("defines the two classes", () => {
		expect(definitions.classes.map((c) => c.id)).toEqual(["us_ssn", "payment_card"]);
	});
});

describe("normalisation", () => {
	it.each([
		["NBSP", "4111\u00a01111\u00a01111\u00a01111"],
		["thin and narrow no-break spaces", "4111\u20091111\u202f1111\u20091111"],
		["ideographic space and full-width digits", "４１１１\u3000１１１１\u3000１１１１\u3000１１１１"],
		["dots", "4111.1111.1111.1111"],
		["underscores", "4111_1111_1111_1111"],
		["en dashes and minus signs", "4111\u20131111\u22121111\u20131111"],
		["a run of separators", "4111 - 1111 -- 1111 _ 1111"],
		["zero-width spaces between every digit", [..."4111111111111111"].join("\u200b")],
		["soft hyphens and word joiners", "4111\u00ad1111\u20601111\ufeff1111"],
		// An invisible character is nothing inside a group but may be the only separator between two.
		["a zero-width space as one separator among spaces", "4111\u200b1111 1111 1111"],
		["a control character as one separator among dashes", "4111-1111\u00001111-1111"],
		["a combining mark on a separator-less group boundary", "4111 1111\u03321111 1111"],
		["combining underlines", [..."4111111111111111"].map((d) => `${d}\u0332`).join("")],
		["keycap emoji digits", [..."4111111111111111"].map((d) => `${d}\ufe0f\u20e3`).join("")],
		["Arabic-Indic digits", "٤١١١ ١١١١ ١١١١ ١١١١"],
		["Persian digits", "۴۱۱۱ ۱۱۱۱ ۱۱۱۱ ۱۱۱۱"],
		["Devanagari digits", "४१११ ११११ ११११ ११११"],
		["mathematical bold digits", "𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏"],
		["letters touching it", "pan4111111111111111exp"],
	])("finds a card written with %s", (_, card) => {
		expect(classesIn({ prompt: `pay with ${card} please` })).toEqual(["payment_card"]);
	});

	it("redacts a card whose groups an invisible character separates, all of it", () => {
		const { value } = applyDlp({ prompt: "pay with 4111\u200b1111 1111 1111 please" }, "redact");
		expect(value).toEqual({ prompt: "pay with [REDACTED:payment_card] please" });
	});

	it("ends a number at a line break, a tab, a slash, a comma or a colon", () => {
		for (const joint of ["\n", "\t", "/", ",", ":"]) {
			expect(classesIn({ prompt: `4111 1111${joint}1111 1111` }), JSON.stringify(joint)).toEqual([]);
		}
	});
});

describe("payment cards", () => {
	it("checks Luhn", () => {
		expect(passesLuhn(VISA)).toBe(true);
		expect(passesLuhn("5500-0000-0000-0004")).toBe(true);
		expect(passesLuhn(NOT_A_CARD)).toBe(false);
		expect(classesIn({ prompt: `order ${NOT_A_CARD}` })).toEqual([]);
	});

	it.each([
		["an expiry date after it", `${VISA} 12/25`],
		["a CVV after it", `${VISA} 123`],
		["an MMYY group after it", `${VISA} 1226`],
		["a list number before it", `1. ${VISA}`],
		["a reference before and an expiry after", `#12 ${VISA} 12/25`],
		["the expiry touching it", "4111111111111111-12/25"],
		["another card in the same number", `4111111111111111 5500000000000004`],
		["CSV columns around it", "7,4111111111111111,12/27"],
	])("finds a card with %s", (_, text) => {
		expect(classesIn({ prompt: text })).toEqual(["payment_card"]);
	});

	it("redacts exactly the card, leaving the digits around it", () => {
		expect(applyDlp({ prompt: `#12 ${VISA} 12/25` }, "redact").value).toEqual({ prompt: "#12 [REDACTED:payment_card] 12/25" });
		const twoCards = applyDlp({ prompt: "4111111111111111 5500000000000004" }, "redact").value;
		expect(twoCards).toEqual({ prompt: "[REDACTED:payment_card] [REDACTED:payment_card]" });
	});

	it.each([
		["a phone number written after +", "tel. +378282246310005", "378282246310005"],
		["a float's fraction", "0.4111111111111111", "4111111111111111"],
		["a window inside a longer group of touching digits", "94111111111111111", "4111111111111111"],
		["more than 3 digits before it in the same number", "9205 4111 1111 1111 1111", "4111111111111111"],
		["more than 4 digits after it in the same number", `${VISA} 12345`, "4111111111111111"],
		["groups of 7 or more digits", "4111111 111111111", "4111111111111111"],
		["an issuer prefix that does not exist", "7111 1111 1111 1114", "7111111111111114"],
		["a length its issuer does not issue", "4111 1111 1111 116", "411111111111116"],
	])("does not call %s a card", (_, text, digits) => {
		expect(passesLuhn(digits)).toBe(true); // so it is the rule, not Luhn, that lets it pass
		expect(classesIn({ prompt: text })).toEqual([]);
	});
});

describe("social security numbers", () => {
	it.each([
		["dashes", SSN],
		["spaces", "123 45 6789"],
		["dots", "123.45.6789"],
		["NBSP", "123\u00a045\u00a06789"],
		["full-width digits", "１２３－４５－６７８９"],
		["letters touching it", "SSN123-45-6789x"],
		["a date after it", `${SSN} 01/02/1980`],
	])("finds one written with %s, without a keyword", (_, text) => {
		expect(classesIn({ prompt: `file ${text} now` })).toEqual(["us_ssn"]);
	});

	it.each([
		["no separator after the keyword", "SSN 123456789"],
		["no separator touching the keyword", "ssn:123456789"],
		["the keyword after it", "123456789 is my social security number"],
		["3-3-3 grouping", "social security no. 123 456 789"],
		["a full-width keyword", "ＳＳＮ １２３４５６７８９"],
		["an abbreviated keyword in capitals", "Soc. Sec. #: 123456789"],
	])("finds one with %s", (_, text) => {
		expect(classesIn({ prompt: text })).toEqual(["us_ssn"]);
	});

	it.each([
		["9 digits without a keyword", "order 123456789 shipped"],
		["area 000", "SSN 000-12-3456"],
		["area 666", "SSN 666-12-3456"],
		["area 9xx", "SSN 912-34-5678"],
		["group 00", "SSN 123-00-4567"],
		["serial 0000", "SSN 123-45-0000"],
		["a keyword too far away", `SSN ${"x".repeat(60)} 123456789`],
		["a phone number", "call 212-555-0100"],
	])("passes %s", (_, text) => {
		expect(classesIn({ prompt: text })).toEqual([]);
	});
});

describe("where it looks", () => {
	it("joins chat messages in order, and redacts each part of a split number", () => {
		const body = {
			messages: [
				{ role: "user", content: "card 4111 1111" },
				{ role: "assistant", content: "ok" },
				{ role: "user", content: "1111 1111" },
			],
		};
		expect(blockError({ messages: [body.messages[0], body.messages[2]] }).message).toContain(
			"messages[0].content and messages[1].content together contain a Payment card number",
		);
		// "ok" is between them: letters end the number, so it is not one.
		expect(classesIn(body)).toEqual([]);
		const split = { messages: [body.messages[0], body.messages[2]] };
		expect(applyDlp(split, "redact").value).toEqual({
			messages: [
				{ role: "user", content: "card [REDACTED:payment_card]" },
				{ role: "user", content: "[REDACTED:payment_card]" },
			],
		});
	});

	it("joins a split inside a group, and the text parts of a message", () => {
		const inside = {
			messages: [
				{ role: "user", content: "4111 1111 1111 11" },
				{ role: "user", content: "11" },
			],
		};
		expect(classesIn(inside)).toEqual(["payment_card"]);
		const parts = {
			messages: [
				{
					role: "user",
					content: [
						{ type: "text", text: "4111 1111" },
						{ type: "text", text: "1111 1111" },
					],
				},
			],
		};
		expect(classesIn(parts)).toEqual(["payment_card"]);
	});

	it("joins the prompt and its stop sequences", () => {
		expect(blockError({ prompt: "ssn 123-45", stop: ["6789"] }).message).toContain(
			"prompt and stop[0] together contain a US Social Security number",
		);
		expect(applyDlp({ prompt: "card 4111 1111", stop: "1111 1111" }, "redact").value).toEqual({
			prompt: "card [REDACTED:payment_card]",
			stop: "[REDACTED:payment_card]",
		});
	});

	it.each([
		["stop sent before the prompt", { stop: ["1111 1111"], prompt: "card 4111 1111" }],
		["a chat request's stop", { messages: [{ role: "user", content: "card 4111 1111" }], stop: ["1111 1111"] }],
		["a chat request's stop sent first", { stop: "1111 1111", messages: [{ role: "user", content: "card 4111 1111" }] }],
	])("joins the stops after the model's input whatever the field order: %s", (_, body) => {
		expect(blockError(body).message).toMatch(/together contain a Payment card number/);
		expect(JSON.stringify(applyDlp(body, "redact").value)).not.toMatch(/1111/);
	});

	it("does not join strings the model reads apart (embedding inputs)", () => {
		expect(classesIn({ input: ["4111 1111", "1111 1111"] })).toEqual([]);
	});

	it("scans object keys and numbers, and redacts them in place", () => {
		// As the Worker gets it from JSON.parse: "__proto__" is an own key, not the prototype.
		const parsed = JSON.parse(
			`{"prompt": "hi", "metadata": {"${VISA}": "x", "note": "y"}, "ref": 4111111111111111, "__proto__": "${SSN}"}`,
		);
		const { value, redacted } = applyDlp(parsed, "redact");
		expect(redacted).toEqual(["us_ssn", "payment_card"]);
		expect(Object.keys(value.metadata)).toEqual(["[REDACTED:payment_card]", "note"]);
		expect(value.ref).toBe("[REDACTED:payment_card]");
		expect(Object.getOwnPropertyDescriptor(value, "__proto__")?.value).toBe("[REDACTED:us_ssn]");
		expect(parsed.metadata[VISA]).toBe("x"); // the input is not modified
	});

	it("never names a sensitive key in a 422", () => {
		const error = blockError({ prompt: "hi", metadata: { "ssn 123456789": { deeper: "x" } } });
		expect(error.status).toBe(422);
		expect(error.field).toBe("metadata.<key>");
		expect(onlyDigits(error.message)).toBe("");
	});

	it("walks deep nesting without recursion", () => {
		let nested: unknown = `card ${VISA}`;
		for (let depth = 0; depth < 20_000; depth++) nested = [nested];
		expect(blockError({ prompt: "hi", extra: nested }).status).toBe(422);
		expect(applyDlp({ prompt: "hi", extra: JSON.parse(JSON.stringify([[["fine"]]])) }, "block").redacted).toEqual([]);
	});

	it("leaves a clean request untouched (same object)", () => {
		const body = { prompt: "Order 112-4456789-1234567 ships 2024-03-14, call +1 415 555 0100", max_tokens: 8 };
		expect(applyDlp(body, "block").value).toBe(body);
		expect(applyDlp(body, "redact").value).toBe(body);
	});
});

describe("policy block", () => {
	it.each([
		["/v1/generate", { prompt: `my ssn is ${SSN}` }, "prompt", "us_ssn"],
		["/v1/chat/completions", { messages: [{ role: "user", content: `pay with ${VISA}` }] }, "messages[0].content", "payment_card"],
		["/v1/embed", { input: ["fine", `card ${VISA.replaceAll(" ", "-")}`] }, "input[1]", "payment_card"],
		["/v1/generate", { prompt: `card ${VISA.replaceAll(" ", "\u00a0")} 12/25` }, "prompt", "payment_card"],
		["/v1/completions", { prompt: `card ${FULLWIDTH_VISA}` }, "prompt", "payment_card"],
		[
			"/v1/chat/completions",
			{
				messages: [
					{ role: "user", content: "4111 1111" },
					{ role: "user", content: "1111 1111" },
				],
			},
			"messages[0].content",
			"payment_card",
		],
		["/v1/completions", { prompt: "hi", "4111111111111111": true }, "<key>", "payment_card"],
		["/v1/generate", { prompt: "hi", [VISA]: 1 }, "<key>", "payment_card"],
		["/v1/generate", { prompt: "SSN 123456789" }, "prompt", "us_ssn"],
	])("%s: 422 naming the class and field, without echoing the match or calling the origin", async (path, body, field, id) => {
		const response = await call(path, { body, key });
		expect(response.status).toBe(422);
		const text = await response.text();
		const { error } = JSON.parse(text);
		expect(error.type).toBe("dlp_violation");
		expect(error.field).toBe(field);
		expect(error.message).toContain(id);
		expect(text).not.toContain(SSN);
		expect(onlyDigits(text)).not.toContain("123456789");
		expect(onlyDigits(text)).not.toContain("4111111111111111");
		expect(origin.calls.filter((c) => c.path !== "/v1/status")).toHaveLength(0);
	});

	it("still names a harmless unknown field in the 400 (validation runs after DLP)", async () => {
		const response = await call("/v1/generate", { body: { prompt: "hi", colour: "red" }, key });
		expect(response.status).toBe(400);
		expect((await response.json<{ error: { field: string } }>()).error.field).toBe("colour");
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

	it.each([
		[
			"a card with NBSP and an expiry",
			"/v1/generate",
			{ prompt: `pay ${VISA.replaceAll(" ", "\u00a0")} 12/25` },
			(b: any) => b.prompt,
			"pay [REDACTED:payment_card] 12/25",
		],
		[
			"full-width digits",
			"/v1/completions",
			{ model: "gemma3-270m", prompt: `card ${FULLWIDTH_VISA}` },
			(b: any) => b.prompt,
			"card [REDACTED:payment_card]",
		],
		[
			"a card split across chat messages",
			"/v1/chat/completions",
			{
				model: "gemma3-270m",
				messages: [
					{ role: "user", content: "card 4111 1111" },
					{ role: "user", content: "1111 1111" },
				],
			},
			(b: any) => b.messages.map((m: any) => m.content).join("|"),
			"card [REDACTED:payment_card]|[REDACTED:payment_card]",
		],
		["an SSN without separators", "/v1/generate", { prompt: "SSN 123456789 ok" }, (b: any) => b.prompt, "SSN [REDACTED:us_ssn] ok"],
		[
			"an SSN split across prompt and stop",
			"/v1/generate",
			{ prompt: "ssn 123-45", stop: ["6789", "\n"] },
			(b: any) => `${b.prompt}|${b.stop.join("|")}`,
			"ssn [REDACTED:us_ssn]|[REDACTED:us_ssn]|\n",
		],
	])("%s: the origin receives the redacted body", async (_, path, body, pick, expected) => {
		const unique = { ...body, seed: Math.floor(Math.random() * 1e9) };
		const response = await call(path, { body: unique, key, env: { DLP_POLICY: "redact" } });
		expect(response.status).toBe(200);
		expect(response.headers.get("x-dlp-redacted")).toBeTruthy();
		const forwarded = origin.calls.find((c) => c.path !== "/v1/status")!.body!;
		expect(pick(forwarded)).toBe(expected);
	});

	it("redacts a card used as a key: the runtime's 400 about the unknown field cannot echo it", async () => {
		const response = await call("/v1/completions", {
			body: { prompt: uniquePrompt("key"), [VISA]: true },
			key,
			env: { DLP_POLICY: "redact" },
		});
		// Forwarded with the key redacted, or refused by an allow-list naming the redacted key: never echoed.
		const forwarded = origin.calls.filter((c) => c.path !== "/v1/status").map((c) => Object.keys(c.body!));
		expect(forwarded.flat().filter((k) => onlyDigits(k).length > 0)).toEqual([]);
		expect(onlyDigits(await response.text())).not.toContain("4111111111111111");
	});
});
