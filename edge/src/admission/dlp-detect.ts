// DLP detectors over normalised text (dlp-text.ts). A "run" is digit groups joined by single separators;
// letters, other punctuation and line breaks end it. Candidates are whole groups: a window that starts or
// ends inside a group of touching digits is a different number (an order id, a timestamp), and testing
// those too made most long ids look like cards. Rules and the reasons for each: docs/dlp.md.
//
// payment_card: consecutive groups holding 13–19 digits, in groups of 3 to 6 (the last may be shorter),
//   starting with an issuer's prefix for that length, passing Luhn, with at most 3 other digits before
//   it and 4 after it in the run (a list number; an expiry date) unless those are a card too. Not at the
//   first digit of a number written after "+": that is a phone number (E.164). A lone "." between
//   digits is a decimal point unless the whole card is dotted.
// us_ssn: three consecutive groups of 3, 2 and 4 digits (123-45-6789 with any separators), or — near a
//   keyword such as "SSN" — any 9 digits in whole groups (123456789, 123 456 789); both within the SSA's
//   ranges (area not 000, 666 or 9xx; group not 00; serial not 0000), with the same limit on other digits.
import definitions from "../../../dlp-patterns.json";
import { hasInvisibleCharacters, normalizeText, SPACE_LIKE, type NormalizedText } from "./dlp-text";

export type DlpClassId = "us_ssn" | "payment_card";

interface DlpClass {
	id: DlpClassId;
	name: string;
}

/** Where a finding lies in the input strings: a UTF-16 range of the string at `segment`. */
interface Span {
	segment: number;
	start: number;
	end: number;
}

interface Finding {
	classId: DlpClassId;
	/** One span per input string the match touches (more than one when it is split across strings). */
	spans: Span[];
}

interface NumericRange {
	digits: number;
	low: number;
	high: number;
}

function parseRange(text: string): NumericRange {
	const match = /^([0-9]+)(?:-([0-9]+))?$/.exec(text);
	if (!match || (match[2] !== undefined && match[2].length !== match[1].length)) {
		throw new Error(`dlp-patterns.json: bad digit range ${JSON.stringify(text)}`);
	}
	const [, low, high = low] = match;
	return { digits: low.length, low: Number(low), high: Number(high) };
}

const inRange = (digits: string, range: NumericRange) => {
	const value = Number(digits.slice(0, range.digits));
	return value >= range.low && value <= range.high;
};

interface ExtraDigits {
	max_digits_before: number;
	max_digits_after: number;
}

interface SsnDefinition extends ExtraDigits {
	fields: { digits: number; ranges: string[] }[];
	context: { keywords: string[]; distance: number };
}

interface CardDefinition extends ExtraDigits {
	min_group_digits: number;
	max_group_digits: number;
	not_after: string;
	issuers: { prefixes: string[]; lengths: number[] }[];
}

function classDefinition<T>(id: DlpClassId): T {
	const found = definitions.classes.find((entry) => entry.id === id);
	if (!found) throw new Error(`dlp-patterns.json: class ${id} is missing`);
	return found as unknown as T;
}

const ssnDefinition = classDefinition<SsnDefinition>("us_ssn");
const cardDefinition = classDefinition<CardDefinition>("payment_card");

export const DLP_CLASSES: DlpClass[] = definitions.classes.map((entry) => ({ id: entry.id as DlpClassId, name: entry.name }));

const SSN_FIELDS = ssnDefinition.fields.map((field) => ({ digits: field.digits, ranges: field.ranges.map(parseRange) }));
const SSN_GROUPS = SSN_FIELDS.map((field) => field.digits);
const SSN_DIGITS = SSN_GROUPS.reduce((sum, digits) => sum + digits, 0);
// Keywords in any case; between their words anything but letters and digits ("soc. sec.", "social-security").
const SSN_CONTEXT = new RegExp(
	`(?<![a-z])(?:${ssnDefinition.context.keywords.map((k) => k.replace(/[.*+?^${}()|[\]\\#]/g, "\\$&").replaceAll(" ", "[^a-z0-9]{1,3}")).join("|")})(?![a-z])`,
	"gi",
);
const SSN_CONTEXT_DISTANCE = ssnDefinition.context.distance;

const ISSUERS = cardDefinition.issuers.map((issuer) => ({ prefixes: issuer.prefixes.map(parseRange), lengths: new Set(issuer.lengths) }));
const CARD_MIN = Math.min(...ISSUERS.flatMap((issuer) => [...issuer.lengths]));
const CARD_MAX = Math.max(...ISSUERS.flatMap((issuer) => [...issuer.lengths]));
const MIN_GROUP = cardDefinition.min_group_digits;
const MAX_GROUP = cardDefinition.max_group_digits;
const NOT_AFTER = cardDefinition.not_after;

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

function isIssuedCardNumber(digits: string): boolean {
	return ISSUERS.some((issuer) => issuer.lengths.has(digits.length) && issuer.prefixes.some((range) => inRange(digits, range)));
}

function isValidSsn(digits: string): boolean {
	let offset = 0;
	return SSN_FIELDS.every((field) => {
		const part = digits.slice(offset, (offset += field.digits));
		return field.ranges.some((range) => inRange(part, range));
	});
}

/** A digit group inside a run: its digits, the positions of its first and last digit in the text, and
 * the separator after it (" ", "." for a lone dot, "" for the last group). */
interface Group {
	digits: string;
	first: number;
	last: number;
	separator: string;
}

interface Run {
	groups: Group[];
	/** Digits before each group (prefix sums; the last entry is the run's total). */
	before: number[];
	afterPlus: boolean;
}

/** A candidate: groups [from, to] of a run. */
interface Window {
	classId: DlpClassId;
	from: number;
	to: number;
}

// A run: digit groups joined by separators, where a run of SPACE_LIKE ones (" ", "-", "_") counts as one
// and a dot only alone ("4111.1111", "0.25"); ". " ends a sentence, not a group.
const SPACES = `[${SPACE_LIKE.replace(/[\\\]\[^-]/g, "\\$&")}]+`;
const RUN = new RegExp(`[0-9]+(?:(?:${SPACES}|\\.)[0-9]+)*`, "g");
const GROUP = new RegExp(`([0-9]+)(${SPACES}|\\.)?`, "g");
const FEWEST_DIGITS = Math.min(SSN_DIGITS, CARD_MIN);

function digitCount(run: string): number {
	let count = 0;
	for (let i = 0; i < run.length; i++) if (run.charCodeAt(i) <= 0x39 && run.charCodeAt(i) >= 0x30) count++;
	return count;
}

function runsOf(text: string): Run[] {
	const runs: Run[] = [];
	RUN.lastIndex = 0;
	// exec loops, not matchAll: matchAll copies the regex on every call, and this runs once per number.
	for (let match = RUN.exec(text); match !== null; match = RUN.exec(text)) {
		const run = match[0];
		if (run.length < FEWEST_DIGITS || digitCount(run) < FEWEST_DIGITS) continue; // most numbers in prose
		const groups: Group[] = [];
		const before = [0];
		GROUP.lastIndex = 0;
		for (let part = GROUP.exec(run); part !== null; part = GROUP.exec(run)) {
			const digits = part[1];
			const first = match.index + part.index;
			const separator = part[2] === undefined ? "" : part[2] === "." ? "." : " ";
			groups.push({ digits, first, last: first + digits.length - 1, separator });
			before.push(before[before.length - 1] + digits.length);
		}
		let preceding = match.index - 1;
		while (preceding >= 0 && SPACE_LIKE.includes(text[preceding])) preceding--;
		runs.push({ groups, before, afterPlus: text[preceding] === NOT_AFTER });
	}
	return runs;
}

/**
 * Keeps the windows with few other digits in their run: a list number or short reference before the
 * number ("#12", "1."), an expiry or CVV after it ("12/25", "1226", "123"); not a card-like stretch
 * inside a tracking number. Digits that are a candidate of the same class right beside the window do
 * not count, so two cards in one run are both found.
 */
function withFewExtraDigits(run: Run, windows: Window[], limits: ExtraDigits): Window[] {
	const total = run.before[run.groups.length];
	return windows.filter((window) => {
		const before = windows.some((other) => other.to === window.from - 1) ? 0 : run.before[window.from];
		const after = windows.some((other) => other.from === window.to + 1) ? 0 : total - run.before[window.to + 1];
		return before <= limits.max_digits_before && after <= limits.max_digits_after;
	});
}

/**
 * A lone "." between digits is a decimal point unless the number is dotted throughout (4111.1111.1111.1111,
 * 3782.822463.10005): a card window neither starts nor ends at one (0.5488135039273248 is a float's
 * fraction) nor holds one among other separators.
 */
function respectsDecimalPoints(groups: Group[], from: number, to: number): boolean {
	if (from > 0 && groups[from - 1].separator === ".") return false;
	if (groups[to].separator === "." && to < groups.length - 1) return false;
	const inside = groups.slice(from, to).map((group) => group.separator);
	return !inside.includes(".") || (inside.length >= 2 && inside.every((separator) => separator === "."));
}

function cardWindows(run: Run): Window[] {
	const { groups } = run;
	const windows: Window[] = [];
	for (let from = run.afterPlus ? 1 : 0; from < groups.length; from++) {
		let digits = "";
		for (let to = from; to < groups.length; to++) {
			// Cards are written whole or in groups of 3 to 6 (4-4-4-4, 4-6-5); only the last may be shorter.
			if (to > from && (groups[to - 1].digits.length < MIN_GROUP || groups[to - 1].digits.length > MAX_GROUP)) break;
			if (to > from && groups[to].digits.length > MAX_GROUP) break;
			digits += groups[to].digits;
			if (digits.length > CARD_MAX) break;
			if (digits.length < CARD_MIN || !isIssuedCardNumber(digits) || !passesLuhn(digits)) continue;
			if (respectsDecimalPoints(groups, from, to)) windows.push({ classId: "payment_card", from, to });
		}
	}
	return withFewExtraDigits(run, windows, cardDefinition);
}

function ssnWindows(run: Run, keywords: () => [number, number][]): Window[] {
	const { groups } = run;
	const windows: Window[] = [];
	for (let from = 0; from < groups.length; from++) {
		const formatted = SSN_GROUPS.every((digits, k) => groups[from + k]?.digits.length === digits);
		let digits = "";
		for (let to = from; to < groups.length && digits.length < SSN_DIGITS; to++) {
			digits += groups[to].digits;
			if (digits.length !== SSN_DIGITS || !isValidSsn(digits)) continue;
			const first = groups[from].first;
			const last = groups[to].last;
			const structured = formatted && to === from + SSN_GROUPS.length - 1;
			const nearKeyword = () =>
				keywords().some(
					([start, end]) =>
						(end <= first && first - end <= SSN_CONTEXT_DISTANCE) || (start > last && start - last - 1 <= SSN_CONTEXT_DISTANCE),
				);
			if (structured || nearKeyword()) windows.push({ classId: "us_ssn", from, to });
		}
	}
	return withFewExtraDigits(run, windows, ssnDefinition);
}

/** The spans of the input strings that text positions first..last came from, one per string. */
function spansOf(normalized: NormalizedText, first: number, last: number): Span[] {
	const spans: Span[] = [];
	for (let position = first; position <= last; position++) {
		const origin = normalized.origin(position);
		if (origin === null) continue;
		const current = spans[spans.length - 1];
		if (current && current.segment === origin.segment) current.end = origin.end;
		else spans.push({ ...origin });
	}
	return spans;
}

function detectJoined(segments: readonly string[], joint: string, classes: readonly DlpClassId[], invisibleAs = ""): Finding[] {
	const normalized = normalizeText(segments, joint, invisibleAs);
	const { text } = normalized;
	let keywordSpans: [number, number][] | null = null;
	const keywords = () =>
		(keywordSpans ??= [...text.matchAll(SSN_CONTEXT)].map((m) => [m.index, m.index + m[0].length] as [number, number]));
	const findings: Finding[] = [];
	for (const run of runsOf(text)) {
		const windows = [
			...(classes.includes("us_ssn") ? ssnWindows(run, keywords) : []),
			...(classes.includes("payment_card") ? cardWindows(run) : []),
		];
		for (const window of windows) {
			findings.push({ classId: window.classId, spans: spansOf(normalized, run.groups[window.from].first, run.groups[window.to].last) });
		}
	}
	return findings;
}

/**
 * Every card and SSN in strings read together (one string: a list of one). Strings are joined with a
 * separator between them (a split at a group boundary: "123-45" + "6789"), and for cards also with
 * nothing between them (a split inside a group: "4111 1111 1111 11" + "11"). Not for SSNs: gluing the
 * end of one string to the next made 3-2-4 shapes out of phone numbers. Strings with invisible characters
 * are read a second time with each of them as a separator.
 */
export function detect(segments: readonly string[]): Finding[] {
	if (!segments.some((value) => /[0-9]|[^\x00-\x7f]/.test(value))) return []; // no digit can hide here
	const findings = detectJoined(segments, " ", ["us_ssn", "payment_card"]);
	if (segments.length > 1) findings.push(...detectJoined(segments, "", ["payment_card"]));
	// An invisible character is nothing inside a group, but it may be the only thing between two groups:
	// read it both ways.
	if (segments.some(hasInvisibleCharacters)) findings.push(...detectJoined(segments, " ", ["us_ssn", "payment_card"], " "));
	const seen = new Set<string>();
	return findings.filter((finding) => {
		const key = `${finding.classId}:${finding.spans.map((s) => `${s.segment}.${s.start}.${s.end}`).join()}`;
		return !seen.has(key) && seen.add(key) !== undefined;
	});
}
