// Key scopes: a key may be limited to some routes and some models (`keys.mjs create --routes/--models`).
// The routes a scope can name are the contract's routes (contract/routes.json), the one list the key CLI
// validates against too; an unversioned alias (/generate) is the same route as its /v1 twin. Routes outside
// the contract (the model list, the key's own usage) are open to every valid key.
import contract from "../../../contract/routes.json";
import { HttpError } from "../errors";
import type { ApiKeyRecord } from "./auth";
import type { Body } from "./validate";

const SCOPED_ROUTES = new Set(Object.keys(contract.routes));

/** The contract route a request path serves, or null for routes no scope restricts. */
export function scopedRoute(path: string): string | null {
	if (SCOPED_ROUTES.has(path)) return path;
	return SCOPED_ROUTES.has(`/v1${path}`) ? `/v1${path}` : null;
}

const listed = (values: string[]) => values.map((value) => JSON.stringify(value)).join(", ");

/**
 * 403 naming the route when the key's route scope leaves it out. `field`: where the route came from when
 * it is not the request's own path (a batch's `endpoint`).
 */
export function checkRouteScope(record: ApiKeyRecord, path: string, field?: string): void {
	const route = scopedRoute(path);
	const allowed = record.scope_routes;
	if (route === null || !Array.isArray(allowed) || allowed.includes(route)) return;
	throw new HttpError(403, "forbidden", `this API key may not use ${route}; its scope allows ${listed(allowed)}`, field);
}

/**
 * 403 naming the model when the key's model scope leaves it out. A model-scoped key must name its model:
 * a request without `model` (the native routes have none) would get whichever model the origin serves.
 */
export function checkModelScope(record: ApiKeyRecord, params: Body): void {
	const allowed = record.scope_models;
	if (!Array.isArray(allowed)) return;
	const model: unknown = params.model;
	if (typeof model !== "string") {
		throw new HttpError(
			403,
			"forbidden",
			`this API key is limited to the models ${listed(allowed)}: name one in \`model\` (an OpenAI route)`,
			"model",
		);
	}
	if (!allowed.includes(model)) {
		throw new HttpError(
			403,
			"forbidden",
			`this API key may not use the model ${JSON.stringify(model)}; its scope allows ${listed(allowed)}`,
			"model",
		);
	}
}
