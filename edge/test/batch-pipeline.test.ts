// The batch pipeline in workerd: the Workflow, the real queue delivering lines to the Worker's queue
// handler, the live request path per line (fake origin at the network boundary), per-line errors,
// at-most-once recording, deferral at batch priority, retries and dead letters, cancel, the R2 inbox.
import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../src/index";
import { BATCH_QUEUES } from "../src/batch/queues";
import { backoffSeconds, type LineMessage } from "../src/batch/lines-consumer";
import { oneLineJson } from "../src/batch/results";
import { sha256Hex } from "../src/cache/cachekey";
import { insertBatch, insertLines, newId, nowSeconds, type BatchRow } from "../src/batch/store";
import { batchLine, completion, createBatch, rawFile, resultLines, runToEnd, uploadFile, type Json } from "./batch-helpers";
import { installFakeOrigin, makeGate } from "./fake-origin";
import { call, createKey, freshOriginAndKey, keyIdOf, uniquePrompt } from "./helpers";

afterEach(() => vi.restoreAllMocks());

const PRIMARY = "origin-primary.test";

it("the Worker's queue handler serves exactly the queues wrangler.jsonc binds to it", () => {
	const declared = JSON.parse(env.DECLARED_QUEUES) as { consumers: { queue: string }[] };
	expect(declared.consumers.map((consumer) => consumer.queue).sort()).toEqual(Object.values(BATCH_QUEUES).sort());
});

it("writes one-line JSON without re-rendering a single token", () => {
	const pretty = '{\n "a": [1.10, -0e0, 1e-7],\n "b": "x \\" y\\n z"\n}';
	expect(oneLineJson(pretty)).toBe('{"a":[1.10,-0e0,1e-7],"b":"x \\" y\\n z"}');
	expect(oneLineJson('{"compact":true}')).toBe('{"compact":true}');
	expect(oneLineJson("origin failure")).toBe('"origin failure"');
});

describe("a batch end to end", () => {
	it("answers each good line as the live path does and files every bad line in the error file", async () => {
		const { origin, key } = await freshOriginAndKey();
		const prompts = [uniquePrompt("alpha"), uniquePrompt("beta"), uniquePrompt("gamma")];
		const lines = [
			batchLine("good-a", completion(prompts[0])),
			"{ this is not json",
			batchLine("good-b", completion(prompts[1])),
			batchLine("good-a", completion(uniquePrompt("again"))), // a duplicate custom_id
			batchLine("wrong-url", { input: "x" }, "/v1/embeddings"),
			batchLine("dlp", completion("my card is 4111 1111 1111 1111")),
			batchLine("unknown-field", { ...completion(uniquePrompt("delta")), colour: "red" }),
			batchLine("good-c", completion(prompts[2])),
		];
		const batch = await createBatch(key, (await uploadFile(key, lines.join("\n") + "\n")).id);
		const done = await runToEnd(key, batch.id);
		expect(done).toMatchObject({ status: "completed", request_counts: { total: 8, completed: 3, failed: 5 } });
		expect(origin.callsTo("/v1/completions")).toHaveLength(3);

		const outputs = await resultLines(key, done.output_file_id);
		expect(outputs.map((line) => line.custom_id)).toEqual(["good-a", "good-b", "good-c"]);
		const raw = await rawFile(key, done.output_file_id);
		for (const [index, output] of outputs.entries()) {
			expect(output.response.status_code).toBe(200);
			expect(output.error).toBeNull();
			// The same request sent live (a hit of what the batch stored) has the very same bytes.
			const live = await call("/v1/completions", { body: completion(prompts[index]), key });
			expect(live.headers.get("x-cache")).toBe("HIT");
			expect(raw).toContain(`"body":${oneLineJson(await live.text())}}`);
		}
		expect(origin.callsTo("/v1/completions")).toHaveLength(3);

		const errors = await resultLines(key, done.error_file_id);
		const byId = (customId: string | null) => errors.filter((line) => line.custom_id === customId);
		expect(errors).toHaveLength(5);
		expect(byId(null)[0].error.code).toBe("invalid_json_line");
		expect(byId("good-a")[0].error.code).toBe("duplicate_custom_id");
		expect(byId("wrong-url")[0].error.code).toBe("invalid_url");
		expect(byId("dlp")[0].response).toMatchObject({ status_code: 422, body: { error: { type: "dlp_violation" } } });
		expect(byId("unknown-field")[0].response).toMatchObject({ status_code: 400, body: { error: { field: "colour" } } });
		// Nothing of a refused line is echoed back.
		expect(JSON.stringify(errors)).not.toContain("4111");
		// The lines (and their prompts) are gone from D1 once the files are written.
		const left = await env.DB.prepare("SELECT COUNT(*) AS n FROM batch_lines WHERE batch_id = ?").bind(batch.id).first<{ n: number }>();
		expect(left!.n).toBe(0);
	});

	it("costs one origin call per distinct line, and none for a line already cached", async () => {
		const { origin, key } = await freshOriginAndKey();
		const cached = completion(uniquePrompt("cached"));
		expect((await call("/v1/completions", { body: cached, key })).status).toBe(200);
		const distinct = [completion(uniquePrompt("one")), completion(uniquePrompt("two"))];
		const lines = [cached, ...distinct, ...distinct, ...distinct, cached].map((body, i) => batchLine(`line-${i}`, body));
		const before = origin.callsTo("/v1/completions").length;
		const done = await runToEnd(key, (await createBatch(key, (await uploadFile(key, lines.join("\n"))).id)).id);
		expect(done.request_counts).toEqual({ total: 8, completed: 8, failed: 0 });
		expect(origin.callsTo("/v1/completions").length - before).toBe(2);
	});

	it("stops a cancelled batch: lines not yet run are never sent and end in the error file", async () => {
		const { origin, key } = await freshOriginAndKey();
		const { gate, open } = makeGate();
		origin.set(PRIMARY, { gate });
		const lines = Array.from({ length: 40 }, (_, i) => batchLine(`line-${i}`, completion(uniquePrompt("cancel"))));
		const batch = await createBatch(key, (await uploadFile(key, lines.join("\n"))).id);
		await vi.waitUntil(() => origin.pending > 0, { timeout: 20_000, interval: 50 });
		const cancelling = await call(`/v1/batches/${batch.id}/cancel`, { method: "POST", key });
		expect((await cancelling.json<Json>()).status).toBe("cancelling");
		const sentPrompts = () => new Set(origin.callsTo("/v1/completions").map((call) => call.body!.prompt as string));
		const sentAtCancel = sentPrompts();
		open();
		const done = await runToEnd(key, batch.id);
		expect(done.status).toBe("cancelled");
		expect(done.cancelled_at).not.toBeNull();
		// The lines already on their way ran (their answers are kept); the rest were never sent. A delivery
		// already past its status check when the cancel landed may still send its lines: at most one
		// delivery (max_batch_size 10) more than were at the origin.
		const ran = done.request_counts.completed;
		const sentAfter = [...sentPrompts()].filter((prompt) => !sentAtCancel.has(prompt));
		expect(sentAfter.length).toBeLessThanOrEqual(10);
		expect(ran).toBeGreaterThan(0);
		expect(sentPrompts().size).toBeLessThan(40);
		const errors = await resultLines(key, done.error_file_id);
		expect(errors).toHaveLength(40 - ran);
		expect(new Set(errors.map((line) => line.error.code))).toEqual(new Set(["batch_cancelled"]));
	});
});

/** A running batch of `bodies` filed directly in D1, for driving the consumer by hand. */
async function runningBatch(key: string, bodies: Json[], heartbeatAt = nowSeconds()): Promise<BatchRow> {
	const now = nowSeconds();
	const batch = {
		id: newId("batch_"),
		key_id: await keyIdOf(key),
		endpoint: "/v1/completions",
		input_file_id: "file-none",
		completion_window: "24h",
		status: "in_progress",
		output_file_id: null,
		error_file_id: null,
		errors: null,
		metadata: null,
		outbox_prefix: null,
		total: bodies.length,
		completed: 0,
		failed: 0,
		created_at: now,
		expires_at: now + 3600,
		in_progress_at: now,
		finalizing_at: null,
		completed_at: null,
		failed_at: null,
		expired_at: null,
		cancelling_at: null,
		cancelled_at: null,
		heartbeat_at: heartbeatAt,
	} satisfies BatchRow;
	await insertBatch(env.DB, batch);
	await insertLines(
		env.DB,
		bodies.map((body, index) => ({
			batch_id: batch.id,
			line_index: index,
			custom_id: `line-${index}`,
			body: JSON.stringify(body),
			status: "pending",
			response_status: null,
			response_body: null,
			error_code: null,
			error_message: null,
		})),
	);
	return batch;
}

/** Delivers the messages to the Worker's queue handler; `retryDelays` has each retry's delaySeconds. */
async function deliver(queue: string, bodies: LineMessage[], attempts = 1, callEnv: Partial<Env> = {}) {
	const batch = createMessageBatch<LineMessage>(
		queue,
		bodies.map((body, i) => ({ id: `message-${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts, body })),
	);
	const retryDelays: (number | undefined)[] = [];
	for (const message of batch.messages) {
		const retry = message.retry.bind(message);
		message.retry = (options) => {
			retryDelays.push(options?.delaySeconds);
			retry(options);
		};
	}
	const ctx = createExecutionContext();
	await worker.queue(batch, { ...env, ...callEnv } as Env, ctx);
	return { ...(await getQueueResult(batch, ctx)), retryDelays };
}

async function line(batchId: string, lineIndex: number): Promise<Json> {
	return (await env.DB.prepare("SELECT * FROM batch_lines WHERE batch_id = ? AND line_index = ?").bind(batchId, lineIndex).first())!;
}

describe("the lines consumer", () => {
	it("answers a redelivered line once: the second delivery finds it done", async () => {
		const { origin, key } = await freshOriginAndKey();
		const batch = await runningBatch(key, [completion(uniquePrompt("once"))]);
		const first = await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }]);
		const recorded = await line(batch.id, 0);
		const second = await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }]);
		expect([first.explicitAcks.length, second.explicitAcks.length]).toEqual([1, 1]);
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
		expect(recorded).toMatchObject({ status: "done", response_status: 200, body: null });
		expect(await line(batch.id, 0)).toEqual(recorded);
	});

	it("leaves live traffic its headroom: a line waits, without spending a retry, while the key's batch share is held", async () => {
		const { origin, key } = await freshOriginAndKey();
		const keyId = await keyIdOf(key);
		const limiter = env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(keyId));
		// MAX_CONCURRENT_PER_KEY 2, BATCH_SHARE_PERCENT 50: one request at the origin fills the batch share.
		const limits = { MAX_CONCURRENT_PER_KEY: "2" };
		await limiter.acquire(
			"live-lease",
			{ requests: 1, tokens: 1, embedInputs: 0 },
			{ requests: 2, tokens: 16384, embedInputs: 256 },
			60_000,
		);
		const batch = await runningBatch(key, [completion(uniquePrompt("waits"))]);
		const resent: unknown[] = [];
		const queue = { send: async (...args: unknown[]) => void resent.push(args) } as unknown as Env["BATCH_LINES"];
		const result = await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }], 1, { ...limits, BATCH_LINES: queue });
		expect(result.explicitAcks).toHaveLength(1);
		expect(result.retryMessages).toEqual([]);
		expect(resent).toEqual([[{ batchId: batch.id, lineIndex: 0 }, { delaySeconds: expect.any(Number) }]]);
		expect(origin.callsTo("/v1/completions")).toHaveLength(0);
		expect((await line(batch.id, 0)).status).toBe("pending");
		// A live request of the same key still gets the second slot.
		const live = await call("/v1/completions", { body: completion(uniquePrompt("live")), key, env: limits });
		expect(live.status).toBe(200);
		// Once the lease is back, the line runs.
		await limiter.release("live-lease");
		await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }], 1, limits);
		expect((await line(batch.id, 0)).status).toBe("done");
	});

	it("retries a line with backoff while the origin is down, and the dead-letter consumer files it as failed", async () => {
		const { origin, key } = await freshOriginAndKey();
		origin.set(PRIMARY, { fail: "down" }).set("origin-fallback.test", { fail: "down" });
		const batch = await runningBatch(key, [completion(uniquePrompt("down"))]);
		const result = await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }], 3);
		expect(result.retryMessages).toHaveLength(1);
		expect(result.retryDelays).toEqual([backoffSeconds(3)]);
		expect(backoffSeconds(3)).toBeGreaterThan(backoffSeconds(1));
		expect((await line(batch.id, 0)).status).toBe("pending");
		const dead = await deliver(BATCH_QUEUES.deadLetters, [{ batchId: batch.id, lineIndex: 0 }]);
		expect(dead.explicitAcks).toHaveLength(1);
		expect(await line(batch.id, 0)).toMatchObject({ status: "failed", error_code: "line_failed" });
	});

	it("answers a line whose body is over MAX_BODY_BYTES with the live 413 at filing (3 MB would not fit a D1 row)", async () => {
		const { origin, key } = await freshOriginAndKey();
		// One line of 3 MB (D1 refuses rows over 2 MB) between a good line, an empty one, CRLF endings and a BOM.
		const huge = batchLine("huge", completion(uniquePrompt("huge") + " pad".repeat(750_000)));
		const text = "\uFEFF" + batchLine("small", completion(uniquePrompt("small"))) + "\r\n\r\n" + huge + "\r\n";
		const file = await uploadFile(key, text);
		const batch = await createBatch(key, file.id);
		const done = await runToEnd(key, batch.id);
		expect(done).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 1, failed: 1 } });
		const [refused] = await resultLines(key, done.error_file_id);
		expect(refused).toMatchObject({
			custom_id: "huge",
			response: { status_code: 413, body: { error: { type: "request_too_large", field: "body" } } },
		});
		expect(refused.response.body.error.message).toBe(`body: exceeds ${env.MAX_BODY_BYTES} bytes`);
		expect((await resultLines(key, done.output_file_id)).map((line) => line.custom_id)).toEqual(["small"]);
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
	});

	it("holds a model-scoped key to its models per line: another model's line fails with 403 naming it, the origin never sees it", async () => {
		const origin = installFakeOrigin();
		const key = await createKey({ policy: { scope_models: ["gemma3-270m"] } });
		const batch = await runningBatch(key, [
			completion(uniquePrompt("scoped")),
			{ ...completion(uniquePrompt("scoped")), model: "other-model" },
		]);
		await deliver(BATCH_QUEUES.lines, [
			{ batchId: batch.id, lineIndex: 0 },
			{ batchId: batch.id, lineIndex: 1 },
		]);
		expect((await line(batch.id, 0)).status).toBe("done");
		const refused = await line(batch.id, 1);
		expect(refused).toMatchObject({ status: "failed", response_status: 403 });
		expect(JSON.parse(refused.response_body).error.message).toContain('"other-model"');
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
	});

	it("fails every line of a key revoked mid-batch with 403, sending nothing to the origin", async () => {
		const { origin, key } = await freshOriginAndKey();
		const batch = await runningBatch(key, [completion(uniquePrompt("revoked"))]);
		// As `keys.mjs revoke` does: both stores.
		await env.DB.prepare("UPDATE api_keys SET revoked_at = 1 WHERE id = ?").bind(batch.key_id).run();
		const kvKey = `apikey:${await sha256Hex(key)}`;
		await env.CACHE.put(kvKey, JSON.stringify({ ...(await env.CACHE.get<Json>(kvKey, "json")), revoked: true }));
		await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }]);
		expect(await line(batch.id, 0)).toMatchObject({ status: "failed", response_status: 403 });
		expect(origin.callsTo("/v1/completions")).toHaveLength(0);
	});
});

describe("the R2 inbox", () => {
	const event = (objectKey: string) => ({ action: "PutObject", bucket: "steadytext-batch", object: { key: objectKey, size: 1 } });

	async function deliverEvents(events: Json[]) {
		const batch = createMessageBatch(
			BATCH_QUEUES.inbox,
			events.map((body, i) => ({ id: `event-${i}`, timestamp: new Date(), attempts: 1, body })),
		);
		const ctx = createExecutionContext();
		await worker.queue(batch, env, ctx);
		return getQueueResult(batch, ctx);
	}

	it("runs a JSONL dropped under inbox/<key id>/ as that key's batch, once, with the results in outbox/", async () => {
		const { origin, key } = await freshOriginAndKey();
		const keyId = await keyIdOf(key);
		const lines = [batchLine("a", completion(uniquePrompt("inbox"))), batchLine("b", { input: "x" }, "/v1/embeddings")];
		await env.BATCH_FILES.put(`inbox/${keyId}/nightly.jsonl`, lines.join("\n"));
		// Delivered twice (at-least-once delivery): one batch.
		await deliverEvents([event(`inbox/${keyId}/nightly.jsonl`)]);
		await deliverEvents([event(`inbox/${keyId}/nightly.jsonl`)]);
		const listed = await (await call("/v1/batches", { key })).json<Json>();
		expect(listed.data).toHaveLength(1);
		const done = await runToEnd(key, listed.data[0].id);
		expect(done).toMatchObject({ endpoint: "/v1/completions", status: "completed", metadata: { source: `inbox/${keyId}/nightly.jsonl` } });
		expect(origin.callsTo("/v1/completions")).toHaveLength(1);
		const output = await env.BATCH_FILES.get(`outbox/${keyId}/nightly.jsonl`);
		expect(await output!.text()).toBe(await rawFile(key, done.output_file_id));
		const errors = await env.BATCH_FILES.get(`outbox/${keyId}/nightly.errors.jsonl`);
		expect(JSON.parse(await errors!.text())).toMatchObject({ custom_id: "b", error: { code: "invalid_url" } });
	});

	it("refuses a file whose endpoint the key's route scope leaves out, saying why in outbox/, and starts no batch", async () => {
		const key = await createKey({ policy: { scope_routes: ["/v1/embeddings"] } });
		const keyId = await keyIdOf(key);
		await env.BATCH_FILES.put(`inbox/${keyId}/scoped.jsonl`, batchLine("a", completion(uniquePrompt("inbox"))));
		const result = await deliverEvents([event(`inbox/${keyId}/scoped.jsonl`)]);
		expect(result.explicitAcks).toHaveLength(1);
		const refusal = await env.BATCH_FILES.get(`outbox/${keyId}/scoped.errors.jsonl`);
		expect(JSON.parse(await refusal!.text()).error.message).toContain("may not use /v1/completions");
		expect((await (await call("/v1/batches", { key })).json<Json>()).data).toEqual([]);
	});

	it.each(["inbox/../key_x/a.jsonl", "inbox/key_x/sub/a.jsonl", "inbox//key_x/a.jsonl", "inbox/key_x/.jsonl"])(
		"takes no key id from a path that is not exactly inbox/<key id>/<name>.jsonl (%s)",
		async (objectKey) => {
			const result = await deliverEvents([event(objectKey)]);
			expect(result.explicitAcks).toHaveLength(1);
			expect((await env.BATCH_FILES.list({ prefix: "outbox/" })).objects.map((o) => o.key)).not.toContainEqual(
				expect.stringContaining("key_x"),
			);
		},
	);

	it("refuses a file for a key that does not exist, saying why in outbox/, and ignores other objects", async () => {
		const other = await createKey();
		await env.BATCH_FILES.put("inbox/key_nobody/file.jsonl", batchLine("a", completion("x")));
		const result = await deliverEvents([event("inbox/key_nobody/file.jsonl"), event("inbox/notes.txt"), event("elsewhere/x.jsonl")]);
		expect(result.explicitAcks).toHaveLength(3);
		const refusal = await env.BATCH_FILES.get("outbox/key_nobody/file.errors.jsonl");
		expect(JSON.parse(await refusal!.text()).error.message).toContain("no API key with id key_nobody");
		expect((await (await call("/v1/batches", { key: other })).json<Json>()).data).toEqual([]);
	});
});

describe("the watchdog", () => {
	it("restarts the Workflow of a batch gone silent (its instance and queued lines lost), which then ends it with nothing twice", async () => {
		const { origin, key } = await freshOriginAndKey();
		// Lines pending, one already answered, no Workflow instance and no message left: what a killed `wrangler dev` leaves.
		const batch = await runningBatch(key, [completion(uniquePrompt("lost")), completion(uniquePrompt("lost"))], nowSeconds() - 120);
		await deliver(BATCH_QUEUES.lines, [{ batchId: batch.id, lineIndex: 0 }]);
		const fresh = await runningBatch(key, [completion(uniquePrompt("alive"))]);
		await worker.scheduled(createScheduledController({ cron: "*/15 * * * *" }), env);
		const done = await runToEnd(key, batch.id);
		expect(done).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
		expect(origin.callsTo("/v1/completions")).toHaveLength(2);
		expect((await resultLines(key, done.output_file_id)).map((line) => line.custom_id)).toEqual(["line-0", "line-1"]);
		// A batch whose Workflow is alive (a fresh heartbeat) is left alone.
		expect((await (await call(`/v1/batches/${fresh.id}`, { key })).json<Json>()).status).toBe("in_progress");
		await expect(env.BATCH_WORKFLOW.get(fresh.id)).rejects.toThrow();
	});
});
