// The wire contract (contract/) for the Worker tests: schema validators (@cfworker/json-schema runs in
// workerd), the golden fixtures the real runtime produced, and the shared bad-request corpus.
import { Validator, type Schema } from "@cfworker/json-schema";
import routes from "../../contract/routes.json";
import badRequests from "../../contract/fixtures/bad-requests.json";
import type { Pieces } from "../src/cache/replay";

const schemaFiles = import.meta.glob<Schema>("../../contract/schemas/*.json", { eager: true, import: "default" });
const fixtureFiles = import.meta.glob<Golden>("../../contract/fixtures/*.json", { eager: true, import: "default" });

export interface Golden {
	route: string;
	request: Record<string, any>;
	fingerprint: string;
	answer: string;
	pieces?: Pieces;
	stream?: string;
	stream_with_usage?: string;
	/** A rerank answer's X-Steadytext-Document-Tokens header. */
	document_tokens?: number[];
}

export interface BadRequest {
	name: string;
	method: string;
	route: string;
	body?: string;
	body_base64?: string;
	oversize?: boolean;
	content_type?: string;
	headers?: Record<string, string>;
	layers: string[];
	status: number;
	error: { type: string; message: string; field?: string };
}

const schemas = new Map(Object.entries(schemaFiles).map(([path, schema]) => [path.split("/").at(-1)!, schema]));
const validators = new Map<string, Validator>();

function validatorFor(file: string): Validator {
	let validator = validators.get(file);
	if (!validator) {
		const schema = schemas.get(file);
		if (!schema) throw new Error(`no schema ${file} in contract/schemas`);
		validator = new Validator(schema, "2020-12", false);
		for (const other of schemas.values()) if (other !== schema) validator.addSchema(other);
		validators.set(file, validator);
	}
	return validator;
}

/** The contract's complaints about `value` (empty when it follows the schema). */
export function violations(file: string, value: unknown): string[] {
	const result = validatorFor(file).validate(value);
	return result.valid ? [] : result.errors.map((error) => `${error.instanceLocation}: ${error.error}`);
}

export function expectValid(file: string, value: unknown): void {
	const found = violations(file, value);
	if (found.length > 0) throw new Error(`breaks contract/schemas/${file}: ${found.join("; ")}\n${JSON.stringify(value).slice(0, 400)}`);
}

export type RouteSpec = { request: string; answer: string; event: string | null; done: string | null };
export const ROUTES = routes.routes as Record<string, RouteSpec>;

/** The data payloads of a stream of `data: …` events. */
export function ssePayloads(stream: string): string[] {
	if (!stream.endsWith("\n\n")) throw new Error(`a stream must end with a blank line: ${JSON.stringify(stream.slice(-80))}`);
	return stream
		.slice(0, -2)
		.split("\n\n")
		.map((event) => {
			if (!event.startsWith("data: ") || event.includes("\n")) throw new Error(`not a data event: ${JSON.stringify(event)}`);
			return event.slice(6);
		});
}

/** Checks every event of a stream against the route's schemas and its ending; returns the JSON events. */
export function expectValidStream(route: string, stream: string): Record<string, any>[] {
	const spec = ROUTES[route];
	let payloads = ssePayloads(stream);
	if (spec.done !== null) {
		if (payloads.at(-1) !== spec.done) throw new Error(`${route} stream must end with ${spec.done}`);
		payloads = payloads.slice(0, -1);
	}
	const events = payloads.map((payload) => JSON.parse(payload));
	for (const event of events) expectValid(spec.event!, event);
	return events;
}

export const GOLDENS: Record<string, Golden> = Object.fromEntries(
	Object.entries(fixtureFiles)
		.filter(([path]) => !path.endsWith("/bad-requests.json"))
		.map(([path, fixture]) => [
			path
				.split("/")
				.at(-1)!
				.replace(/\.json$/, ""),
			fixture,
		]),
);

export const BAD_REQUESTS = (badRequests.cases as BadRequest[]).filter((c) => c.layers.includes("worker"));

export function fill(text: string, limits: Record<string, number>): string {
	return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in limits ? String(limits[name]) : whole));
}
