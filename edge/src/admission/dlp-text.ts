// DLP normalisation: the text a detector reads, with a map back to the original strings.
//
// What people paste hides digits from a plain regex in many ways: full-width or Arabic-Indic digits,
// NBSP and thin spaces, dots or underscores between groups, zero-width characters, a letter touching
// the number. So every code point is classified once (rules in dlp-patterns.json "text"):
//   - line and tab breaks end a number (lines and columns separate records: phone lists, CSV rows);
//   - format characters (Cf), combining marks (M) and other controls are dropped: they are invisible;
//   - the rest is NFKC-normalised; every Unicode decimal digit (Nd) becomes its ASCII digit;
//   - separators (Zs spaces incl. NBSP, Pd dashes, Pc underscores, minus signs, dots) become a space,
//     and a dot a "."; ASCII characters stay themselves, anything else becomes BREAK.
// So the normalised text is ASCII: digits; SPACE_LIKE separators (" ", "-", "_": detectors read a run of
// them as one); "." (a separator only alone: it may be a decimal point, and ". " ends a sentence);
// letters (detectors match keywords in any case); and characters that end a number.
// Each output character remembers which input string and which UTF-16 range it came from.
import definitions from "../../../dlp-patterns.json";

const BREAK = "\u0001"; // what a non-ASCII character that is no digit or separator becomes

const breaks = new Set(Array.from(definitions.text.breaks));
const ignored = new RegExp(`^[${definitions.text.ignored_categories.map((c) => `\\p{${c}}`).join("")}]$`, "u");
const separator = new RegExp(
	`^[${definitions.text.separator_categories.map((c) => `\\p{${c}}`).join("")}${escapeClass(definitions.text.separator_characters)}]$`,
	"u",
);
const decimalDigit = /^\p{Nd}$/u;
// A character the normalisation drops (not a break): the detectors also read it as a separator (below).
const invisible = new RegExp(
	`(?![${escapeClass(definitions.text.breaks)}])[${definitions.text.ignored_categories.map((c) => `\\p{${c}}`).join("")}]`,
	"u",
);

/** Whether a string holds a character the normalisation drops: one that may hide a group boundary. */
export function hasInvisibleCharacters(value: string): boolean {
	return !PLAIN_ASCII.test(value) && invisible.test(value);
}

function escapeClass(characters: string): string {
	return characters.replace(/[\\\]\[^-]/g, (c) => `\\${c}`);
}

/** The ASCII separators other than the dot, as the text keeps them. */
export const SPACE_LIKE = Array.from({ length: 0x5f }, (_, i) => String.fromCharCode(0x20 + i))
	.filter((char) => char !== "." && separator.test(char))
	.join("");

/** The ASCII digit of a Unicode decimal digit: Nd digits come in contiguous runs of whole 0–9 sets. */
function digitValue(codePoint: number): string {
	let zero = codePoint;
	while (zero > 0 && decimalDigit.test(String.fromCodePoint(zero - 1))) zero--;
	return String((codePoint - zero) % 10);
}

/** What one code point becomes: "" (dropped), ASCII (itself, or a digit or separator), or BREAK. */
function classifyUncached(char: string): string {
	const ascii = char.length === 1 && char.charCodeAt(0) < 0x80;
	if (breaks.has(char)) return ascii ? char : BREAK;
	if (ignored.test(char)) return "";
	let out = "";
	for (const part of char.normalize("NFKC")) {
		if (part.length === 1 && part.charCodeAt(0) < 0x80) out += part;
		else if (decimalDigit.test(part)) out += digitValue(part.codePointAt(0)!);
		else if (separator.test(part)) out += " ";
		else if (!ignored.test(part)) out += BREAK;
	}
	return out;
}

const ASCII = Array.from({ length: 128 }, (_, code) => classifyUncached(String.fromCharCode(code)));
// Non-ASCII classifications are cached per isolate; the cap keeps a hostile request from growing it.
const cache = new Map<string, string>();
const CACHE_LIMIT = 4096;

/** classifyUncached for a non-ASCII code point. */
function classify(char: string): string {
	let result = cache.get(char);
	if (result === undefined) {
		result = classifyUncached(char);
		if (cache.size >= CACHE_LIMIT) cache.clear();
		cache.set(char, result);
	}
	return result;
}

// Printable ASCII and line breaks, the common case, normalise to themselves: such a string is used as is.
const PLAIN_ASCII = /^[\x20-\x7e\t\n\v\f\r]*$/;
for (let code = 0; code < 128; code++) {
	const char = String.fromCharCode(code);
	if (PLAIN_ASCII.test(char) && ASCII[code] !== char) throw new Error(`dlp-text: ASCII ${code} is not itself`);
}

/** Where one input string lies in the normalised text; `start`/`end` map its output characters back
 * (null: one output character per input character, at the same offset). */
interface Piece {
	segment: number;
	offset: number;
	length: number;
	start: number[] | null;
	end: number[] | null;
}

export class NormalizedText {
	/** ASCII only: see the top of this file. */
	readonly text: string;
	private readonly pieces: Piece[];

	constructor(text: string, pieces: Piece[]) {
		this.text = text;
		this.pieces = pieces;
	}

	/** The input string and UTF-16 range an output character came from; null for a joint between strings. */
	origin(position: number): { segment: number; start: number; end: number } | null {
		for (const piece of this.pieces) {
			const at = position - piece.offset;
			if (at < 0 || at >= piece.length) continue;
			if (piece.start === null) return { segment: piece.segment, start: at, end: at + 1 };
			return { segment: piece.segment, start: piece.start[at], end: piece.end![at] };
		}
		return null;
	}
}

function normalizePiece(value: string, segment: number, offset: number, invisibleAs: string): [string, Piece] {
	if (PLAIN_ASCII.test(value)) return [value, { segment, offset, length: value.length, start: null, end: null }];
	const chars: string[] = [];
	const start: number[] = [];
	const end: number[] = [];
	for (let i = 0; i < value.length;) {
		const code = value.charCodeAt(i);
		const next = value.charCodeAt(i + 1);
		const width = code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 2 : 1;
		const out = (code < 0x80 ? ASCII[code] : classify(value.slice(i, i + width))) || invisibleAs;
		for (const char of out) {
			chars.push(char);
			start.push(i);
			end.push(i + width);
		}
		i += width;
	}
	const text = chars.join("");
	return [text, { segment, offset, length: text.length, start, end }];
}

/**
 * Normalises strings that are read together (chat messages, prompt + stop) as one text, with `joint`
 * (" ": a separator, or "": nothing) between them, so a number split across them stays one number.
 * `invisibleAs`: what a dropped (invisible) character becomes: "" (nothing: `4<ZWSP>111` is one group),
 * or " " (a separator: `4111<ZWSP>1111 1111 1111` is four groups, not a group of 8 that no card has).
 */
export function normalizeText(segments: readonly string[], joint = " ", invisibleAs = ""): NormalizedText {
	const parts: string[] = [];
	const pieces: Piece[] = [];
	let offset = 0;
	segments.forEach((value, segment) => {
		if (segment > 0) {
			parts.push(joint);
			offset += joint.length;
		}
		const [text, piece] = normalizePiece(value, segment, offset, invisibleAs);
		parts.push(text);
		pieces.push(piece);
		offset += text.length;
	});
	return new NormalizedText(parts.join(""), pieces);
}
