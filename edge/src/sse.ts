// Replays a cached (non-streaming) answer as server-sent events in the shape the origin streams:
// the runtime's native events for /v1/generate, OpenAI chunks for the OpenAI routes.

export type StreamFormat = "native" | "completion" | "chat";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const event = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;

function nativeEvents(answer: Json): string {
	const { text, finish_reason, usage, fingerprint } = answer;
	return (text ? event({ token: text }) : "") + event({ done: true, text, finish_reason, usage, fingerprint });
}

function openAiEvents(answer: Json, format: "completion" | "chat"): string {
	const base = { id: answer.id, created: answer.created, model: answer.model, system_fingerprint: answer.system_fingerprint };
	const object = format === "chat" ? "chat.completion.chunk" : "text_completion";
	const chunks: string[] = [];
	for (const choice of answer.choices ?? []) {
		const content = format === "chat" ? { delta: { role: choice.message?.role ?? "assistant", content: choice.message?.content ?? "" } } : { text: choice.text ?? "" };
		const end = format === "chat" ? { delta: {} } : { text: "" };
		chunks.push(event({ ...base, object, choices: [{ index: choice.index ?? 0, ...content, finish_reason: null }] }));
		chunks.push(event({ ...base, object, choices: [{ index: choice.index ?? 0, ...end, finish_reason: choice.finish_reason ?? "stop" }] }));
	}
	return chunks.join("") + "data: [DONE]\n\n";
}

export function replayAsEvents(format: StreamFormat, cachedBody: string): string {
	const answer = JSON.parse(cachedBody) as Json;
	return format === "native" ? nativeEvents(answer) : openAiEvents(answer, format);
}
