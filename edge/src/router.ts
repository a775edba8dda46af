// The route table: method + path -> handler. Unknown paths are 404 and known paths with another method
// are 405 (with Allow), both as JSON errors. The endpoint label in metrics is the matched path.
import { admit } from "./admission/admit";
import { presentedKey, secretsEqual } from "./admission/auth";
import { checkCredentials } from "./admission/authfailures";
import { secret, settings } from "./config";
import { HttpError } from "./errors";
import { handleInference, type InferenceRoute, type Observation } from "./inference";
import { metricsResponse } from "./observability/metrics";
import { requestMetadata, usageResponse } from "./observability/usage";
import { callOrigin, readAnswer } from "./origin/client";
import { validateDetokenize, validateEmbed, validateGenerate, validateTokenize } from "./admission/validate";
import { handleRerank } from "./rerank";
import { OPENAI_ROUTES } from "./openai-routes";
import { cancelBatch, createBatch, listBatchesRoute, retrieveBatch } from "./batch/batches-api";
import { fileContent, retrieveFile, uploadFile } from "./batch/files-api";

type Handler = (request: Request, env: Env, ctx: ExecutionContext, obs: Observation) => Promise<Response>;

const generate: InferenceRoute = { kind: "generate", originPath: "/v1/generate", validate: validateGenerate, streamFormat: "native" };
const embed: InferenceRoute = { kind: "embed", originPath: "/v1/embed", validate: validateEmbed, streamFormat: null };

const inference =
	(route: InferenceRoute): Handler =>
	(request, env, ctx, obs) =>
		handleInference(request, env, ctx, route, obs);

async function health(): Promise<Response> {
	return Response.json({ status: "ok" });
}

/**
 * Scrapers authenticate with METRICS_TOKEN and nothing else: the counters describe every tenant's
 * traffic, so an API key (a tenant) never reads them. Without METRICS_TOKEN nobody can.
 */
async function metrics(request: Request, env: Env): Promise<Response> {
	const refused = new HttpError(
		401,
		"unauthorized",
		"GET /metrics needs the METRICS_TOKEN as the bearer token (API keys are not accepted)",
		undefined,
		{
			"WWW-Authenticate": 'Bearer realm="steadytext-metrics"',
		},
	);
	const presented = presentedKey(request);
	if (presented === null) throw refused;
	await checkCredentials(request, env, async () => {
		const metricsToken = secret(env, "METRICS_TOKEN");
		if (!(metricsToken && (await secretsEqual(presented, metricsToken)))) throw refused;
	});
	return metricsResponse(env.DB);
}

/** GET /v1/models: the runtime's model list, passed through (nothing to cache or check). */
async function models(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	obs.keyId = (await admit(request, env)).id;
	obs.admitted = true;
	const config = settings(env);
	obs.usage.metadata = requestMetadata(request, config.dlpPolicy);
	const answer = await callOrigin(
		env,
		{ urls: config.originUrls, timeoutMs: config.originTimeoutMs },
		"/v1/models",
		{ method: "GET" },
		readAnswer,
	);
	return new Response(answer.body, { status: answer.status, headers: { "content-type": answer.contentType } });
}

/** GET /v1/usage: the calling key's own usage (docs/edge.md "Usage"); open to every valid key. */
async function usage(request: Request, env: Env, _ctx: ExecutionContext, obs: Observation): Promise<Response> {
	obs.keyId = (await admit(request, env)).id;
	obs.admitted = true;
	obs.usage.counted = false;
	requestMetadata(request, settings(env).dlpPolicy);
	return usageResponse(request, env.DB, obs.keyId);
}

const ROUTES: Record<string, Partial<Record<string, Handler>>> = {
	"/v1/generate": { POST: inference(generate) },
	"/generate": { POST: inference(generate) },
	"/v1/embed": { POST: inference(embed) },
	"/embed": { POST: inference(embed) },
	"/v1/completions": { POST: inference(OPENAI_ROUTES["/v1/completions"]) },
	"/v1/chat/completions": { POST: inference(OPENAI_ROUTES["/v1/chat/completions"]) },
	"/v1/embeddings": { POST: inference(OPENAI_ROUTES["/v1/embeddings"]) },
	"/v1/tokenize": { POST: inference({ kind: "tokens", originPath: "/v1/tokenize", validate: validateTokenize, streamFormat: null }) },
	"/v1/detokenize": { POST: inference({ kind: "tokens", originPath: "/v1/detokenize", validate: validateDetokenize, streamFormat: null }) },
	"/v1/rerank": { POST: handleRerank },
	"/v1/models": { GET: models },
	"/v1/usage": { GET: usage },
	"/health": { GET: health },
	"/metrics": { GET: metrics },
	"/v1/files": { POST: uploadFile },
	"/v1/batches": { POST: createBatch, GET: listBatchesRoute },
};

// Routes with an id in the path; the metrics label is the pattern, never the id.
const PATTERN_ROUTES: { pattern: RegExp; label: string; methods: Partial<Record<string, Handler>> }[] = [
	{ pattern: /^\/v1\/files\/[^/]+$/, label: "/v1/files/{id}", methods: { GET: retrieveFile } },
	{ pattern: /^\/v1\/files\/[^/]+\/content$/, label: "/v1/files/{id}/content", methods: { GET: fileContent } },
	{ pattern: /^\/v1\/batches\/[^/]+$/, label: "/v1/batches/{id}", methods: { GET: retrieveBatch } },
	{ pattern: /^\/v1\/batches\/[^/]+\/cancel$/, label: "/v1/batches/{id}/cancel", methods: { POST: cancelBatch } },
];

export function route(request: Request, env: Env, ctx: ExecutionContext, obs: Observation): Promise<Response> {
	const path = new URL(request.url).pathname;
	const matched = ROUTES[path] ? { label: path, methods: ROUTES[path] } : PATTERN_ROUTES.find(({ pattern }) => pattern.test(path));
	if (!matched) throw new HttpError(404, "not_found", `no route for ${request.method} ${path}`);
	const { methods } = matched;
	obs.endpoint = matched.label;
	const handler = methods[request.method];
	if (!handler) {
		throw new HttpError(405, "method_not_allowed", `${request.method} is not allowed on ${path}`, undefined, {
			Allow: Object.keys(methods).join(", "),
		});
	}
	return handler(request, env, ctx, obs);
}
