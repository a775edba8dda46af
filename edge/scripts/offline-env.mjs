// The offline wrangler environment for Node-side scripts, read from edge/offline.env (its one home).
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const EDGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** `NAME=value` lines of an env file; `#` lines and blank lines are skipped. */
export function parseEnvFile(text) {
	const lines = text.split("\n").map((line) => line.trim());
	return Object.fromEntries(
		lines
			.filter((line) => line && !line.startsWith("#"))
			.map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
	);
}

/** process.env with the offline settings, and CI=1 so wrangler never waits for an interactive answer. */
export const OFFLINE_ENV = { ...process.env, CI: "1", ...parseEnvFile(readFileSync(path.join(EDGE_DIR, "offline.env"), "utf8")) };
