// Runs the Worker's DLP (edge/src/admission/dlp.ts, bundled by bench/dlp.py with esbuild) under node over corpus
// files, next to two alternatives, and times it on 2 KB prompts.
//   node bench/dlp_worker.mjs BUNDLE CORPUS.json [CORPUS.json ...]
// Prints one JSON object: {"worker"|"previous"|"every_window": {file: {id: [class ids]}}, "cost": {...}}.
import { readFileSync } from "node:fs";

const [bundle, ...corpora] = process.argv.slice(2);
const { applyDlp, normalizeText, passesLuhn } = await import(bundle);

// The Worker's detector before docs/dlp.md: two regexes over each string, Luhn on the whole match.
const PREVIOUS = [
	["us_ssn", /\b(?:00[1-9]|0[1-9][0-9]|[1-578][0-9]{2}|6[0-57-9][0-9]|66[0-57-9])-(?:0[1-9]|[1-9][0-9])-(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})\b/g, null],
	["payment_card", /\b[0-9](?:[ -]?[0-9]){12,18}\b/g, "luhn"],
];

function strings(value) {
	const found = [];
	const walk = (node) => {
		if (typeof node === "string" || typeof node === "number") found.push(String(node));
		else if (Array.isArray(node)) node.forEach(walk);
		else if (node && typeof node === "object") {
			for (const [key, item] of Object.entries(node)) {
				found.push(key);
				walk(item);
			}
		}
	};
	walk(value);
	return found;
}

function previousDetector(value) {
	const found = new Set();
	for (const text of strings(value)) {
		for (const [id, regex, validation] of PREVIOUS) {
			for (const match of text.matchAll(regex)) if (validation === null || passesLuhn(match[0])) found.add(id);
		}
	}
	return [...found];
}

// The literal suggestion for cards alone: after the same normalisation, every 13-19-digit window of
// every run (any separators, any grouping) that passes Luhn; each string on its own. What the group,
// issuer, extra-digit and decimal-point rules of docs/dlp.md are measured against.
function everyWindowCards(value) {
	for (const text of strings(value)) {
		for (const run of normalizeText([text]).text.matchAll(/[0-9]+(?:(?:[ _-]+|\.)[0-9]+)*/g)) {
			const digits = run[0].replace(/[^0-9]/g, "");
			for (let length = 13; length <= 19; length++) {
				for (let start = 0; start + length <= digits.length; start++) {
					if (passesLuhn(digits.slice(start, start + length))) return ["payment_card"];
				}
			}
		}
	}
	return [];
}

function classesOf(body) {
	try {
		return applyDlp(body, "redact").redacted;
	} catch (error) {
		return [`error: ${error.message}`];
	}
}

const results = { worker: {}, previous: {}, every_window: {} };
for (const file of corpora) {
	const corpus = JSON.parse(readFileSync(file, "utf8"));
	for (const name of Object.keys(results)) results[name][file] = {};
	for (const item of [...corpus.positives, ...corpus.negatives]) {
		results.worker[file][item.id] = classesOf(item.body);
		results.previous[file][item.id] = previousDetector(item.body);
		results.every_window[file][item.id] = everyWindowCards(item.body);
	}
}

// A typical prompt: prose with dates, amounts, an order id and a phone number; 2048 bytes. And the same
// size of text that takes the per-code-point path (CJK with full-width digits).
function prompt2k(sentence) {
	const encoder = new TextEncoder();
	let text = "";
	for (const char of sentence.repeat(200)) {
		if (encoder.encode(text + char).length > 2048) break;
		text += char;
	}
	return { prompt: text };
}
const typical = prompt2k(
	"On 2024-03-14 the customer wrote about order 112-4456789-1234567 (total $1,249.99, 3 items) and asked us to call back on +1 415 555 0100 before 17:30; ",
);
const nonLatin = prompt2k("２０２４年３月１４日、注文番号１１２－４４５６７８９の件でお客様から連絡があり、電話０３－１２３４－５６７８まで折り返し希望。");
for (const body of [typical, nonLatin]) if (applyDlp(body, "redact").redacted.length > 0) throw new Error("timing prompt has a finding");

function medianMicros(run, rounds = 30, perRound = 200) {
	for (let i = 0; i < perRound; i++) run(); // warm up the JIT
	const samples = [];
	for (let r = 0; r < rounds; r++) {
		const started = process.hrtime.bigint();
		for (let i = 0; i < perRound; i++) run();
		samples.push(Number(process.hrtime.bigint() - started) / 1000 / perRound);
	}
	samples.sort((a, b) => a - b);
	return Math.round(samples[Math.floor(samples.length / 2)] * 10) / 10;
}
const cost = {
	prompt_bytes: new TextEncoder().encode(typical.prompt).length,
	worker_us_median: medianMicros(() => applyDlp(typical, "block")),
	previous_worker_us_median: medianMicros(() => previousDetector(typical)),
	json_parse_us_median: medianMicros(() => JSON.parse(JSON.stringify(typical))),
	non_latin_prompt_bytes: new TextEncoder().encode(nonLatin.prompt).length,
	worker_non_latin_us_median: medianMicros(() => applyDlp(nonLatin, "block")),
};
process.stdout.write(JSON.stringify({ ...results, cost }));
