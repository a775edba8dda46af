// A batch's Workflow leaves a heartbeat in D1 at every step. One that stops without ending its batch
// (its instance lost, as `wrangler dev` loses running instances and queued messages when it is killed)
// is restarted: every step is idempotent, so the new run files nothing twice, enqueues the lines still
// pending again (a line already answered is never answered again) and ends the batch. The cron looks
// for such batches; a client polling a batch also triggers the check for that batch.
import { claimStalled, nowSeconds, type BatchRow } from "./store";
import type { BatchParams } from "./start";

// The Workflow's longest silence while healthy is a progress poll's sleep (10 s) or one step.
const STALE_AFTER_SECONDS = 60;

export function isStalled(batch: BatchRow): boolean {
	return batch.heartbeat_at < nowSeconds() - STALE_AFTER_SECONDS;
}

/** Restarts the Workflow of each stalled active batch (or of `batchId` alone); how many were restarted. */
export async function reviveStalled(env: Env, batchId: string | null = null): Promise<number> {
	const stalled = await claimStalled(env.DB, nowSeconds() - STALE_AFTER_SECONDS, batchId);
	for (const id of stalled) {
		console.error(`batch ${id}: its workflow has been silent for over ${STALE_AFTER_SECONDS} s; restarting it`);
		try {
			await (await env.BATCH_WORKFLOW.get(id)).restart();
		} catch {
			// No instance to restart (it was never created, or is gone): a new one under the same id.
			await env.BATCH_WORKFLOW.create({ id, params: { batchId: id } satisfies BatchParams });
		}
	}
	return stalled.length;
}
