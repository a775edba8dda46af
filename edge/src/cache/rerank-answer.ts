// The answer of a rerank, rendered by the Worker from its documents' pair scores (rerank-pairs.ts) in
// the runtime's exact bytes (runtime/http/routes_rerank.py): the same list gets the same bytes whether
// its pairs were all scored now, all cached, or some of each. The golden fixture, recorded from the real
// runtime, pins the bytes (edge/test/contract.test.ts).
import type { PairScore } from "./rerank-pairs";

/**
 * A number as Python's json module writes a float (its repr): the same shortest round-trip digits as
 * JavaScript, but positional only for exponents -4..15, with ".0" on whole numbers and a signed
 * two-digit exponent otherwise (1.0, 5e-05, 0.0001).
 */
export function pythonFloat(value: number): string {
	const [mantissa, exponentText] = Math.abs(value).toExponential().split("e");
	const exponent = Number(exponentText);
	const digits = mantissa.replace(".", "");
	const sign = value < 0 ? "-" : "";
	if (exponent >= -4 && exponent < 16) {
		if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
		const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0");
		return `${sign}${whole}.${digits.slice(exponent + 1) || "0"}`;
	}
	const scaled = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
	return `${sign}${scaled}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
}

interface RerankListing {
	documents: string[];
	/** Each document's pair, in request order (equal documents share one). */
	pairs: PairScore[];
	fingerprint: string;
	topN?: number;
	returnDocuments: boolean;
}

/** Highest score first, equal scores in request order; top_n; usage over every document of the list. */
export function renderRerankAnswer(listing: RerankListing): string {
	const { documents, pairs } = listing;
	const order = documents.map((_, index) => index);
	order.sort((a, b) => pairs[b].relevance_score - pairs[a].relevance_score || a - b);
	const results = order.slice(0, listing.topN ?? order.length).map((index) => {
		const document = listing.returnDocuments ? `,"document":{"text":${JSON.stringify(documents[index])}}` : "";
		return `{"index":${index},"relevance_score":${pythonFloat(pairs[index].relevance_score)}${document}}`;
	});
	const tokens = pairs.reduce((sum, pair) => sum + pair.prompt_tokens, 0);
	return (
		`{"model":${JSON.stringify(pairs[0].model)},"fingerprint":${JSON.stringify(listing.fingerprint)},` +
		`"results":[${results.join(",")}],"usage":{"prompt_tokens":${tokens},"total_tokens":${tokens}}}`
	);
}
