// DLP over a whole request body, before validation, forwarding, caching or logging. Every string value,
// every number and every object key is scanned on its own; the strings the model reads together (chat
// message contents in order; prompt then stop) are also scanned joined, so a number split across them
// is caught. "block" answers 422 naming the field(s) and the class, never the matched text; "redact"
// replaces each match (each part, when split) with [REDACTED:<id>]. Detection: dlp-detect.ts.
import type { DlpPolicy } from "../config";
import { DLP_CLASSES, detect, type DlpClassId } from "./dlp-detect";
import { HttpError } from "../errors";

export { passesLuhn } from "./dlp-detect";

/** A path from the body's root as a linked list, so walking deep nesting stays linear. */
interface Path {
	parent: Path | null;
	part: string | number;
}

interface Leaf {
	kind: "string" | "number" | "key";
	text: string;
	path: Path | null;
	/** The object or array holding the value (for a key: the object holding the key). */
	container: Record<string, unknown> | unknown[] | null;
}

/** Leaves in document order (a key before its value); iterative, so deep nesting cannot overflow the stack. */
function collectLeaves(root: unknown): Leaf[] {
	const leaves: Leaf[] = [];
	type Item = { node: unknown; path: Path | null; container: Leaf["container"]; isKey?: boolean };
	const stack: Item[] = [{ node: root, path: null, container: null }];
	while (stack.length > 0) {
		const { node, path, container, isKey } = stack.pop()!;
		if (isKey) leaves.push({ kind: "key", text: String(path!.part), path, container });
		else if (typeof node === "string") leaves.push({ kind: "string", text: node, path, container });
		else if (typeof node === "number") leaves.push({ kind: "number", text: String(node), path, container });
		else if (Array.isArray(node)) {
			for (let i = node.length - 1; i >= 0; i--) stack.push({ node: node[i], path: { parent: path, part: i }, container: node });
		} else if (node !== null && typeof node === "object") {
			const object = node as Record<string, unknown>;
			const keys = Object.keys(object);
			for (let i = keys.length - 1; i >= 0; i--) {
				const childPath = { parent: path, part: keys[i] };
				stack.push({ node: object[keys[i]], path: childPath, container: object });
				stack.push({ node: null, path: childPath, container: object, isKey: true });
			}
		}
	}
	return leaves;
}

function partsOf(path: Path | null): (string | number)[] {
	const parts = [];
	for (let at = path; at; at = at.parent) parts.push(at.part);
	return parts.reverse();
}

/** The parts of a path of at most `max` parts; null for a deeper one (without walking all of it). */
function shallowParts(path: Path | null, max: number): (string | number)[] | null {
	const parts = [];
	for (let at = path; at; at = at.parent) {
		if (parts.length === max) return null;
		parts.unshift(at.part);
	}
	return parts;
}

/**
 * Where a string stands in the text read together: the model's input (chat message contents in order, or
 * the prompt) is 0, its stop sequences 1; null for a string read alone. By this rank, not by where the
 * client put the fields in the JSON: `{"stop": …, "prompt": …}` and a chat request's stops are joined too.
 */
function readTogether(leaf: Leaf): 0 | 1 | null {
	const parts = leaf.kind === "string" ? shallowParts(leaf.path, 5) : null;
	if (parts === null) return null;
	const [top, index, field, partIndex, partField] = parts;
	if (top === "messages" && typeof index === "number" && field === "content") {
		if (partIndex === undefined || (typeof partIndex === "number" && partField === "text")) return 0;
	}
	if ((top === "prompt" || top === "stop") && field === undefined && (index === undefined || typeof index === "number"))
		return top === "prompt" ? 0 : 1;
	return null;
}

interface Part {
	leaf: number;
	start: number;
	end: number;
}

interface LeafFinding {
	classId: DlpClassId;
	parts: Part[];
}

function findAll(leaves: Leaf[]): LeafFinding[] {
	const together: [number[], number[]] = [[], []]; // the model's input, then the stops: each in document order
	const batches: number[][] = [];
	leaves.forEach((leaf, index) => {
		const rank = readTogether(leaf);
		if (rank === null) batches.push([index]);
		else together[rank].push(index);
	});
	const joined = together.flat();
	if (joined.length > 0) batches.push(joined);
	const findings: LeafFinding[] = [];
	for (const batch of batches) {
		for (const finding of detect(batch.map((index) => leaves[index].text))) {
			findings.push({
				classId: finding.classId,
				parts: finding.spans.map((span) => ({ leaf: batch[span.segment], start: span.start, end: span.end })),
			});
		}
	}
	return findings.sort((a, b) => a.parts[0].leaf - b.parts[0].leaf || a.parts[0].start - b.parts[0].start);
}

const MAX_FIELD_NAME = 200;

/** A field name for messages that never repeats a sensitive key: keys that are not plain names show as <key>. */
function fieldName(leaf: Leaf): string {
	let name = "";
	for (const part of partsOf(leaf.path)) {
		if (typeof part === "number") name += `[${part}]`;
		else {
			const plain = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(part) && detect([part]).length === 0;
			name += `${name ? "." : ""}${plain ? part : "<key>"}`;
		}
		if (name.length > MAX_FIELD_NAME) return `${name.slice(0, MAX_FIELD_NAME)}…`;
	}
	return name;
}

function blocked(leaves: Leaf[], finding: LeafFinding): HttpError {
	const dlpClass = DLP_CLASSES.find((candidate) => candidate.id === finding.classId)!;
	const fields = [...new Set(finding.parts.map((part) => fieldName(leaves[part.leaf])))];
	// HttpError puts the first field in front (`<field>: ...`): the subject names the others.
	const subject = fields.length === 1 ? "contains" : `${fields.join(" and ")} together contain`;
	const keyNote = finding.parts.some((part) => leaves[part.leaf].kind === "key") ? " (in an object key)" : "";
	return new HttpError(
		422,
		"dlp_violation",
		`${subject} a ${dlpClass.name} (${dlpClass.id})${keyNote}; the request was blocked by the DLP policy`,
		fields[0],
	);
}

/** The text with each range replaced by its marker; overlapping ranges merge into the first one's class. */
function redactText(text: string, ranges: { start: number; end: number; classId: DlpClassId }[]): string {
	const sorted = [...ranges].sort((a, b) => a.start - b.start);
	let result = "";
	let at = 0;
	for (const range of sorted) {
		if (range.end <= at) continue;
		if (range.start >= at) result += `${text.slice(at, range.start)}[REDACTED:${range.classId}]`;
		at = Math.max(at, range.end);
	}
	return result + text.slice(at);
}

function renameKey(object: Record<string, unknown>, from: string, to: string): void {
	const entries = Object.entries(object);
	for (const [key] of entries) delete object[key];
	// defineProperty, so a key such as "__proto__" stays an own property as JSON.parse made it.
	for (const [key, value] of entries) {
		Object.defineProperty(object, key === from ? to : key, { value, enumerable: true, writable: true, configurable: true });
	}
}

function redact<T>(value: T, findings: LeafFinding[]): T {
	const copy = structuredClone(value);
	const leaves = collectLeaves(copy); // same walk, same order: leaf i of the copy is leaf i of the original
	const byLeaf = new Map<number, { start: number; end: number; classId: DlpClassId }[]>();
	for (const finding of findings) {
		for (const part of finding.parts) {
			const list = byLeaf.get(part.leaf) ?? [];
			list.push({ ...part, classId: finding.classId });
			byLeaf.set(part.leaf, list);
		}
	}
	if (byLeaf.has(0) && leaves[0].path === null) return redactText(leaves[0].text, byLeaf.get(0)!) as T; // a bare string
	const keys: [Leaf, string][] = [];
	for (const [index, ranges] of byLeaf) {
		const leaf = leaves[index];
		const replaced = redactText(leaf.text, ranges);
		if (leaf.kind === "key") keys.push([leaf, replaced]);
		else (leaf.container as Record<string | number, unknown>)[leaf.path!.part] = replaced;
	}
	// Keys last: values were addressed through their containers, which a rename does not move.
	for (const [leaf, replaced] of keys) renameKey(leaf.container as Record<string, unknown>, String(leaf.path!.part), replaced);
	return copy;
}

interface DlpOutcome<T> {
	value: T;
	/** Ids of the classes that were redacted (policy "redact"), in dlp-patterns.json order. */
	redacted: string[];
}

/** Applies the policy to a parsed JSON value: throws a 422 ("block") or returns a redacted copy. */
export function applyDlp<T>(value: T, policy: DlpPolicy): DlpOutcome<T> {
	const leaves = collectLeaves(value);
	const findings = findAll(leaves);
	if (findings.length === 0) return { value, redacted: [] };
	if (policy === "block") throw blocked(leaves, findings[0]);
	const found = new Set(findings.map((finding) => finding.classId));
	return { value: redact(value, findings), redacted: DLP_CLASSES.filter((c) => found.has(c.id)).map((c) => c.id) };
}
