// Helpers for Node-side tests: run a Node script or wrangler as a child process, pick a free loopback
// port, and run `wrangler dev` against a --persist-to directory (what `make dev` does).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const EDGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WRANGLER = path.join(EDGE_DIR, "node_modules", "wrangler", "bin", "wrangler.js");
import { OFFLINE_ENV } from "../../scripts/offline-env.mjs";

/** Runs `node <args>` in edge/ and resolves with its exit code and output. */
export function runNode(args, env = {}) {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, args, { cwd: EDGE_DIR, env: { ...OFFLINE_ENV, ...env } });
		let stdout = "";
		let stderr = "";
		child.stdout.on("data", (chunk) => (stdout += chunk));
		child.stderr.on("data", (chunk) => (stderr += chunk));
		child.on("error", reject);
		child.on("close", (code) => resolve({ code, stdout, stderr }));
	});
}

export const runWrangler = (args) => runNode([WRANGLER, ...args]);

export function freePort() {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.listen(0, "127.0.0.1", () => {
			const { port } = server.address();
			server.close(() => resolve(port));
		});
		server.on("error", reject);
	});
}

/** Starts `wrangler dev` on a free port; resolves once it answers /health. Call stop() when done. */
export async function startWranglerDev(persistTo, vars) {
	const port = await freePort();
	const varArgs = Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
	const child = spawn(
		process.execPath,
		[WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persistTo, ...varArgs],
		{
			cwd: EDGE_DIR,
			env: OFFLINE_ENV,
			stdio: ["ignore", "pipe", "pipe"],
		},
	);
	let output = "";
	child.stdout.on("data", (chunk) => (output += chunk));
	child.stderr.on("data", (chunk) => (output += chunk));
	const stop = () =>
		new Promise((resolve) => {
			if (child.exitCode !== null) return resolve();
			child.on("exit", resolve);
			child.kill("SIGTERM");
		});
	const url = `http://127.0.0.1:${port}`;
	const deadline = Date.now() + 90_000;
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output}`);
		try {
			if ((await fetch(`${url}/health`)).ok) return { url, stop };
		} catch {
			// not listening yet
		}
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
	await stop();
	throw new Error(`wrangler dev did not become ready:\n${output}`);
}
