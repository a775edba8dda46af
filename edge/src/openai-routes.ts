// The OpenAI-compatible inference routes: served live by the router and, line by line, by batches
// (a batch's `endpoint` is one of them).
import { validateChat, validateCompletion, validateEmbeddings } from "./admission/validate";
import type { InferenceRoute } from "./inference";

export const OPENAI_ROUTES = {
	"/v1/completions": { kind: "generate", originPath: "/v1/completions", validate: validateCompletion, streamFormat: "completion" },
	"/v1/chat/completions": { kind: "generate", originPath: "/v1/chat/completions", validate: validateChat, streamFormat: "chat" },
	"/v1/embeddings": { kind: "embed", originPath: "/v1/embeddings", validate: validateEmbeddings, streamFormat: null },
} satisfies Record<string, InferenceRoute>;

export type OpenAiPath = keyof typeof OPENAI_ROUTES;

export function isOpenAiPath(path: unknown): path is OpenAiPath {
	return typeof path === "string" && Object.hasOwn(OPENAI_ROUTES, path);
}
