// DLP: every string in the request parameters is checked against the patterns in dlp-patterns.json
// (bundled at build time; infra builds the Zero Trust DLP profile from the same file) before the
// request is forwarded, cached or logged. Errors name the pattern class, never the matched text.
import definitions from "../../dlp-patterns.json";
import type { DlpPolicy } from "./config";
import { HttpError } from "./errors";

interface DlpPattern {
	id: string;
	name: string;
	regex: RegExp;
	validate: (match: string) => boolean;
}

const VALIDATORS: Record<string, (match: string) => boolean> = { luhn: passesLuhn };

const PATTERNS: DlpPattern[] = definitions.patterns.map((pattern) => {
	const validate = pattern.validation === null ? () => true : VALIDATORS[pattern.validation];
	if (!validate) throw new Error(`dlp-patterns.json: unknown validation ${pattern.validation} in ${pattern.id}`);
	return { id: pattern.id, name: pattern.name, regex: new RegExp(pattern.regex, "g"), validate };
});

export function passesLuhn(candidate: string): boolean {
	const digits = candidate.replace(/[^0-9]/g, "");
	let sum = 0;
	for (let i = 0; i < digits.length; i++) {
		let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
		if (i % 2 === 1) {
			digit *= 2;
			if (digit > 9) digit -= 9;
		}
		sum += digit;
	}
	return digits.length > 0 && sum % 10 === 0;
}

function redactText(text: string, found: Set<string>): string {
	let result = text;
	for (const pattern of PATTERNS) {
		result = result.replace(pattern.regex, (match) => {
			if (!pattern.validate(match)) return match;
			found.add(pattern.id);
			return `[REDACTED:${pattern.id}]`;
		});
	}
	return result;
}

interface DlpOutcome<T> {
	value: T;
	/** Ids of the pattern classes that were redacted (policy "redact"), in pattern order. */
	redacted: string[];
}

/**
 * Walks a JSON value. With policy "block" the first sensitive string throws a 422 naming its field and
 * pattern class; with "redact" each match is replaced by [REDACTED:<id>].
 */
export function applyDlp<T>(value: T, policy: DlpPolicy): DlpOutcome<T> {
	const found = new Set<string>();
	const walk = (node: unknown, path: string): unknown => {
		if (typeof node === "string") {
			const local = new Set<string>();
			const redacted = redactText(node, local);
			if (local.size > 0 && policy === "block") {
				const pattern = PATTERNS.find((candidate) => local.has(candidate.id))!;
				throw new HttpError(
					422,
					"dlp_violation",
					`${path} contains a ${pattern.name} (${pattern.id}); the request was blocked by the DLP policy`,
					path,
				);
			}
			local.forEach((id) => found.add(id));
			return redacted;
		}
		if (Array.isArray(node)) return node.map((item, index) => walk(item, `${path}[${index}]`));
		if (node !== null && typeof node === "object") {
			return Object.fromEntries(Object.entries(node).map(([key, item]) => [key, walk(item, path ? `${path}.${key}` : key)]));
		}
		return node;
	};
	const result = walk(value, "") as T;
	return { value: result, redacted: PATTERNS.filter((pattern) => found.has(pattern.id)).map((pattern) => pattern.id) };
}
