// The Worker's queue handler: one Worker consumes the three batch queues (edge/wrangler.jsonc, where
// these names are declared; a test proves they match).
import { consumeInbox, type R2EventMessage } from "./inbox";
import { consumeDeadLetters, consumeLines, type LineMessage } from "./lines-consumer";

export const BATCH_QUEUES = {
	lines: "steadytext-batch-lines",
	deadLetters: "steadytext-batch-dead-letters",
	inbox: "steadytext-batch-inbox",
} as const;

export async function consumeQueue(batch: MessageBatch, env: Env, ctx: ExecutionContext): Promise<void> {
	switch (batch.queue) {
		case BATCH_QUEUES.lines:
			return consumeLines(batch as MessageBatch<LineMessage>, env, ctx);
		case BATCH_QUEUES.deadLetters:
			return consumeDeadLetters(batch as MessageBatch<LineMessage>, env);
		case BATCH_QUEUES.inbox:
			return consumeInbox(batch as MessageBatch<R2EventMessage>, env);
		default:
			// Never acked: a queue bound here by mistake keeps its messages (and says so in the log).
			console.error(`queue: no consumer for queue ${batch.queue}`);
			batch.retryAll();
	}
}
