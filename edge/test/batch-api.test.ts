// The Batch API's files and batches routes: OpenAI's shapes, ownership (another key gets 404), refusals
// at upload, the per-key limit on running batches, and listing.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { batchLine, completion, createBatch, runToEnd, uploadFile, uploadForm, type Json } from "./batch-helpers";
import { installFakeOrigin } from "./fake-origin";
import { call, createKey, freshOriginAndKey, uniquePrompt } from "./helpers";

afterEach(() => vi.restoreAllMocks());

const goodFile = () => batchLine("first", completion(uniquePrompt("files"))) + "\n";

async function fileRows(): Promise<number> {
	return (await env.DB.prepare("SELECT COUNT(*) AS n FROM batch_files").first<{ n: number }>())!.n;
}

describe("files", () => {
	it("stores an uploaded JSONL (the openai client's multipart form) and gives it back byte for byte", async () => {
		const key = await createKey();
		const text = goodFile() + batchLine("second", completion(uniquePrompt("files"))) + "\n";
		const file = await uploadFile(key, text);
		expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "input.jsonl", bytes: text.length, status: "processed" });
		expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
		expect(await (await call(`/v1/files/${file.id}`, { key })).json()).toEqual(file);
		const content = await call(`/v1/files/${file.id}/content`, { key });
		expect(content.status).toBe(200);
		expect(await content.text()).toBe(text);
	});

	it("answers 404 to every other key, for the file and for its content", async () => {
		const [owner, other] = [await createKey(), await createKey()];
		const file = await uploadFile(owner, goodFile());
		for (const path of [`/v1/files/${file.id}`, `/v1/files/${file.id}/content`]) {
			const response = await call(path, { key: other });
			expect(response.status).toBe(404);
			expect((await response.json<Json>()).error.type).toBe("not_found");
		}
	});

	const refusals: [string, () => BodyInit, Partial<Env>, number, string][] = [
		["a file that is not UTF-8", () => uploadForm(new Uint8Array([0xff, 0xfe, 0x00, 0x7b])), {}, 400, "file: is not JSONL"],
		["a file with no JSON object on any line", () => uploadForm("just some text\nand more\n"), {}, 400, "file: is not JSONL"],
		["an empty file", () => uploadForm("\n\n"), {}, 400, "file: is empty"],
		["a file over MAX_BATCH_FILE_BYTES", () => uploadForm(goodFile()), { MAX_BATCH_FILE_BYTES: "50" }, 413, "MAX_BATCH_FILE_BYTES"],
		[
			"a file over MAX_BATCH_LINES",
			() => uploadForm(goodFile() + goodFile() + goodFile()),
			{ MAX_BATCH_LINES: "2" },
			400,
			"MAX_BATCH_LINES",
		],
		["another purpose", () => uploadForm(goodFile(), "fine-tune"), {}, 400, "purpose:"],
	];
	it.each(refusals)("refuses %s at upload with a clear 4xx and stores nothing", async (_name, body, callEnv, status, message) => {
		const key = await createKey();
		const before = await fileRows();
		const response = await call("/v1/files", { method: "POST", rawBody: body(), key, env: callEnv });
		expect(response.status).toBe(status);
		expect((await response.json<Json>()).error.message).toContain(message);
		expect(await fileRows()).toBe(before);
	});

	it("refuses a body that is not multipart with 415", async () => {
		const response = await call("/v1/files", { body: { purpose: "batch" }, key: await createKey() });
		expect(response.status).toBe(415);
	});
});

describe("batches", () => {
	it("creates a batch in OpenAI's shape that only its key can see or cancel", async () => {
		const { key } = await freshOriginAndKey();
		const other = await createKey();
		const file = await uploadFile(key, goodFile());
		const batch = await createBatch(key, file.id);
		expect(batch).toMatchObject({
			object: "batch",
			endpoint: "/v1/completions",
			input_file_id: file.id,
			completion_window: "24h",
			status: "validating",
			errors: null,
			output_file_id: null,
		});
		expect(batch.expires_at - batch.created_at).toBe(24 * 3600);
		expect((await call(`/v1/batches/${batch.id}`, { key: other })).status).toBe(404);
		expect((await call(`/v1/batches/${batch.id}/cancel`, { method: "POST", key: other })).status).toBe(404);
		expect((await (await call("/v1/batches", { key: other })).json<Json>()).data).toEqual([]);
		// Another key cannot start a batch over this key's file either.
		const theirs = await call("/v1/batches", {
			body: { input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" },
			key: other,
		});
		expect(theirs.status).toBe(404);
		await runToEnd(key, batch.id);
	});

	const badCreates: [string, Json, string][] = [
		["an endpoint outside the three", { endpoint: "/v1/generate" }, "endpoint"],
		["another completion window", { completion_window: "1h" }, "completion_window"],
		["metadata that is not strings", { metadata: { team: 7 } }, "metadata"],
		["an unknown field", { priority: "high" }, "body"],
	];
	it.each(badCreates)("refuses %s with a 400 naming the field", async (_name, change, field) => {
		const key = await createKey();
		const file = await uploadFile(key, goodFile());
		const response = await call("/v1/batches", {
			body: { input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h", ...change },
			key,
		});
		expect(response.status).toBe(400);
		expect((await response.json<Json>()).error.field).toBe(field);
	});

	it("refuses more running batches than MAX_CONCURRENT_BATCHES_PER_KEY with 429 batch_limit_reached", async () => {
		const { key } = await freshOriginAndKey();
		const file = await uploadFile(key, goodFile());
		const first = await createBatch(key, file.id);
		const second = await call("/v1/batches", {
			body: { input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" },
			key,
			env: { MAX_CONCURRENT_BATCHES_PER_KEY: "1" },
		});
		expect(second.status).toBe(429);
		expect(second.headers.get("retry-after")).not.toBeNull();
		expect((await second.json<Json>()).error.type).toBe("batch_limit_reached");
		// Once the first has ended, the key may start another.
		await runToEnd(key, first.id);
		const third = await call("/v1/batches", {
			body: { input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" },
			key,
			env: { MAX_CONCURRENT_BATCHES_PER_KEY: "1" },
		});
		expect(third.status).toBe(200);
		await runToEnd(key, (await third.json<Json>()).id);
	});

	it("lists the key's batches newest first, a page at a time", async () => {
		const { key } = await freshOriginAndKey();
		const file = await uploadFile(key, goodFile());
		const ids: string[] = [];
		for (let i = 0; i < 3; i++) {
			const batch = await createBatch(key, file.id);
			ids.push(batch.id);
			await runToEnd(key, batch.id);
		}
		const first = await (await call("/v1/batches?limit=2", { key })).json<Json>();
		expect(first.data.map((batch: Json) => batch.id)).toEqual([ids[2], ids[1]]);
		expect(first).toMatchObject({ object: "list", first_id: ids[2], last_id: ids[1], has_more: true });
		const second = await (await call(`/v1/batches?limit=2&after=${first.last_id}`, { key })).json<Json>();
		expect(second.data.map((batch: Json) => batch.id)).toEqual([ids[0]]);
		expect(second.has_more).toBe(false);
	});

	it("refuses a batch whose endpoint the key's route scope leaves out with 403 naming the route, and starts nothing", async () => {
		// The files and batches routes are open to any valid key (they are no inference route); the batch's
		// endpoint is what the scope governs, as it governs the live request.
		installFakeOrigin();
		const key = await createKey({ policy: { scope_routes: ["/v1/embeddings"] } });
		const file = await uploadFile(key, goodFile());
		const response = await call("/v1/batches", {
			body: { input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" },
			key,
		});
		expect(response.status).toBe(403);
		const { error } = await response.json<Json>();
		expect(error).toMatchObject({ type: "forbidden", field: "endpoint" });
		expect(error.message).toContain("/v1/completions");
		expect((await (await call("/v1/batches", { key })).json<Json>()).data).toEqual([]);
		// The endpoint it may use is accepted.
		const allowed = await createBatch(
			key,
			(await uploadFile(key, batchLine("e", { input: "x" }, "/v1/embeddings") + "\n")).id,
			"/v1/embeddings",
		);
		expect(allowed.status).toBe("validating");
		await runToEnd(key, allowed.id);
	});

	it.each(["/v1/files/%E0%A4%A", "/v1/files/%ZZ/content", "/v1/batches/%/cancel"])(
		"answers a malformed percent-encoded id (%s) with 404, not a 500",
		async (path) => {
			const response = await call(path, { method: path.endsWith("/cancel") ? "POST" : "GET", key: await createKey() });
			expect(response.status).toBe(404);
			expect((await response.json<Json>()).error.type).toBe("not_found");
		},
	);

	it("keeps a batch's output and error files and its place in the list from every other key", async () => {
		const { key } = await freshOriginAndKey();
		const other = await createKey();
		const file = await uploadFile(key, goodFile() + "not json\n");
		const done = await runToEnd(key, (await createBatch(key, file.id)).id);
		expect(done.output_file_id).not.toBeNull();
		expect(done.error_file_id).not.toBeNull();
		for (const id of [done.output_file_id, done.error_file_id]) {
			for (const path of [`/v1/files/${id}`, `/v1/files/${id}/content`]) expect((await call(path, { key: other })).status).toBe(404);
			// Nor may another key start a batch over them.
			const theirs = await call("/v1/batches", {
				body: { input_file_id: id, endpoint: "/v1/completions", completion_window: "24h" },
				key: other,
			});
			expect(theirs.status).toBe(404);
		}
		// The owner's batch id as another key's list cursor reveals nothing.
		const page = await (await call(`/v1/batches?after=${done.id}`, { key: other })).json<Json>();
		expect(page).toMatchObject({ data: [], has_more: false });
	});

	it("refuses to cancel a batch that has ended", async () => {
		const { key } = await freshOriginAndKey();
		const batch = await createBatch(key, (await uploadFile(key, goodFile())).id);
		expect((await runToEnd(key, batch.id)).status).toBe("completed");
		const response = await call(`/v1/batches/${batch.id}/cancel`, { method: "POST", key });
		expect(response.status).toBe(400);
		expect((await response.json<Json>()).error.message).toContain("completed");
	});
});
