// Every error the Worker's source raises is one of contract/errors.json's types, with that type's status:
// the statuses are written at the call sites (HttpError(status, type, ...)), so this keeps them one fact.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const edgeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const vocabulary = JSON.parse(readFileSync(path.join(edgeDir, "../contract/errors.json"), "utf8")).types;

it("every HttpError in edge/src has a vocabulary type and its status", () => {
	const raised = [];
	for (const file of readdirSync(path.join(edgeDir, "src"), { recursive: true })) {
		if (!String(file).endsWith(".ts")) continue;
		const source = readFileSync(path.join(edgeDir, "src", String(file)), "utf8");
		for (const match of source.matchAll(/HttpError\(\s*(\d+),\s*"([a-z_]+)"/g))
			raised.push({ file: String(file), status: Number(match[1]), type: match[2] });
	}
	expect(raised.length).toBeGreaterThan(10);
	const wrong = raised.filter(({ status, type }) => vocabulary[type]?.status !== status);
	expect(wrong).toEqual([]);
});
