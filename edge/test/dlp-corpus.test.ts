// The Worker's DLP over the whole labelled corpus (tests/fixtures/dlp/corpus.json, made by
// scripts/dlp_corpus.py): every positive found with its class and nothing else, blocked without echoing
// it, and redacted so that no trace is left; no negative touched. No allow-list: 100% and 0.
import { describe, expect, it } from "vitest";
import corpusText from "../../tests/fixtures/dlp/corpus.json?raw";
import { applyDlp } from "../src/admission/dlp";
import { normalizeText } from "../src/admission/dlp-text";
import { HttpError } from "../src/errors";

interface Case {
	id: string;
	route: string;
	body: Record<string, unknown>;
}
interface Positive extends Case {
	class: string;
	form: string;
	secret: string;
}
const corpus: { positives: Positive[]; negatives: Case[] } = JSON.parse(corpusText);

/** Every key and string (numbers as text) in a value, Unicode digits read as ASCII, non-digits dropped. */
function digitStrings(value: unknown): string[] {
	const texts: string[] = [];
	const walk = (node: unknown) => {
		if (typeof node === "string" || typeof node === "number") texts.push(String(node));
		else if (Array.isArray(node)) node.forEach(walk);
		else if (node !== null && typeof node === "object") {
			for (const [key, item] of Object.entries(node)) {
				texts.push(key);
				walk(item);
			}
		}
	};
	walk(value);
	return texts.map((text) => normalizeText([text]).text.replace(/[^0-9]/g, ""));
}

describe("the labelled corpus", () => {
	it("is the size docs/dlp.md promises, with every class", () => {
		expect(corpus.positives.length).toBeGreaterThanOrEqual(300);
		expect(corpus.negatives.length).toBeGreaterThanOrEqual(2000);
		expect(new Set(corpus.positives.map((c) => c.class))).toEqual(new Set(["payment_card", "us_ssn"]));
	});

	it("finds every positive with its class, and only that class", () => {
		const wrong = corpus.positives
			.map((c) => ({ id: c.id, expected: [c.class], found: applyDlp(c.body, "redact").redacted }))
			.filter((r) => JSON.stringify(r.found) !== JSON.stringify(r.expected));
		expect(wrong).toEqual([]);
	});

	it("flags no negative, and hands each back untouched", () => {
		const flagged = corpus.negatives.filter((c) => {
			const { value, redacted } = applyDlp(c.body, "redact");
			return redacted.length > 0 || value !== c.body;
		});
		expect(flagged.map((c) => c.id)).toEqual([]);
	});

	it("blocks every positive with a 422 naming its class, never its digits", () => {
		const leaks = corpus.positives.filter((c) => {
			try {
				applyDlp(c.body, "block");
				return true;
			} catch (error) {
				if (!(error instanceof HttpError) || error.status !== 422 || !error.message.includes(`(${c.class})`)) return true;
				return digitStrings([error.message, error.field]).some((digits) => digits.includes(c.secret));
			}
		});
		expect(leaks.map((c) => c.id)).toEqual([]);
	});

	it("redacts every positive completely: each part replaced, nothing left to find", () => {
		const remaining = corpus.positives.filter((c) => {
			const { value } = applyDlp(c.body, "redact");
			const marker = JSON.stringify(value).includes(`[REDACTED:${c.class}]`);
			const again = applyDlp(value, "redact").redacted;
			const secretLeft = digitStrings(value).some((digits) => digits.includes(c.secret));
			return !marker || again.length > 0 || secretLeft;
		});
		expect(remaining.map((c) => c.id)).toEqual([]);
	});
});
