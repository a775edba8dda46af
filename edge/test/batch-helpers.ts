// Driving the Batch API in tests: upload a JSONL file, create a batch, run its Workflow to the end
// (sleeps disabled) and read its result files.
import { introspectWorkflowInstance } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { call } from "./helpers";

export type Json = Record<string, any>;

export function batchLine(customId: string, body: Json, url = "/v1/completions"): string {
	return JSON.stringify({ custom_id: customId, method: "POST", url, body });
}

export function completion(prompt: string): Json {
	return { model: "gemma3-270m", prompt, max_tokens: 4 };
}

export function uploadForm(text: string | Uint8Array, purpose = "batch"): FormData {
	const form = new FormData();
	form.set("purpose", purpose);
	form.set("file", new File([text], "input.jsonl"));
	return form;
}

export async function uploadFile(key: string, text: string, callEnv: Partial<Env> = {}): Promise<Json> {
	const response = await call("/v1/files", { method: "POST", rawBody: uploadForm(text), key, env: callEnv });
	expect(response.status).toBe(200);
	return response.json();
}

export async function createBatch(key: string, inputFileId: string, endpoint = "/v1/completions"): Promise<Json> {
	const response = await call("/v1/batches", { body: { input_file_id: inputFileId, endpoint, completion_window: "24h" }, key });
	expect(response.status).toBe(200);
	return response.json();
}

/** Waits until the batch's Workflow has ended (its sleeps disabled) and returns the batch object. */
export async function runToEnd(key: string, batchId: string): Promise<Json> {
	const instance = await introspectWorkflowInstance(env.BATCH_WORKFLOW, batchId);
	try {
		await instance.modify(async (modifier) => modifier.disableSleeps());
		await instance.waitForStatus("complete");
	} finally {
		await instance.dispose();
	}
	return (await call(`/v1/batches/${batchId}`, { key })).json();
}

/** A result file's lines, parsed, keyed by custom_id (null for lines without one, in order). */
export async function resultLines(key: string, fileId: string | null): Promise<Json[]> {
	if (fileId === null) return [];
	const response = await call(`/v1/files/${fileId}/content`, { key });
	expect(response.status).toBe(200);
	const text = await response.text();
	expect(text.endsWith("\n")).toBe(true);
	return text
		.trimEnd()
		.split("\n")
		.map((line) => JSON.parse(line));
}

export async function rawFile(key: string, fileId: string): Promise<string> {
	return (await call(`/v1/files/${fileId}/content`, { key })).text();
}
