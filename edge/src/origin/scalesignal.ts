// Scale from zero. A stack whose GPU service may run no task (dev: gpuMinTasks 0) has no runtime to publish
// load, so ECS target tracking cannot start one. Instead a miss that finds every origin down puts one
// CloudWatch datapoint (namespace SteadyText/Edge, metric ColdMisses, dimension Service); an alarm on it
// sets the service from 0 to 1 task (infra/components/aws/scaling.py). The Worker signs the call itself with
// an IAM user key that may only PutMetricData into that namespace. Meanwhile the miss gets a 503 whose
// Retry-After is the documented cold start (docs/infra-aws.md, "Cold start"); cache hits are still served.
import { integerVar } from "../config";
import type { HttpError } from "../errors";
import { OriginUnavailableError } from "./client";
import { signFormPost, type AwsCredentials } from "./sigv4";

export const SIGNAL_NAMESPACE = "SteadyText/Edge";
export const SIGNAL_METRIC = "ColdMisses";
/** One signal per isolate per alarm period: more datapoints in the same minute start nothing more. */
const SIGNAL_INTERVAL_MS = 60_000;

interface ScaleSignal {
	region: string;
	service: string;
	credentials: AwsCredentials;
}

/** The signal's settings, or null when this stack does not scale to zero (any part unset). */
function scaleSignal(env: Env): ScaleSignal | null {
	const region = (env.SCALE_SIGNAL_REGION ?? "").trim();
	const service = (env.SCALE_SIGNAL_SERVICE ?? "").trim();
	const accessKeyId = env.SCALE_SIGNAL_ACCESS_KEY_ID ?? "";
	const secretAccessKey = env.SCALE_SIGNAL_SECRET_ACCESS_KEY ?? "";
	if (!region || !service || !accessKeyId || !secretAccessKey) return null;
	return { region, service, credentials: { accessKeyId, secretAccessKey } };
}

/** CloudWatch's Query-protocol PutMetricData form: one ColdMisses datapoint of 1 for `service`. */
export function putMetricDataBody(service: string): string {
	return new URLSearchParams([
		["Action", "PutMetricData"],
		["Version", "2010-08-01"],
		["Namespace", SIGNAL_NAMESPACE],
		["MetricData.member.1.MetricName", SIGNAL_METRIC],
		["MetricData.member.1.Dimensions.member.1.Name", "Service"],
		["MetricData.member.1.Dimensions.member.1.Value", service],
		["MetricData.member.1.Value", "1"],
		["MetricData.member.1.Unit", "Count"],
	]).toString();
}

async function sendScaleSignal(signal: ScaleSignal, now: Date): Promise<void> {
	const host = `monitoring.${signal.region}.amazonaws.com`;
	const request = await signFormPost(host, putMetricDataBody(signal.service), signal.region, "monitoring", signal.credentials, now);
	const response = await fetch(request.url, {
		method: "POST",
		headers: request.headers,
		body: request.body,
	});
	if (!response.ok) throw new Error(`PutMetricData answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
	await response.body?.cancel();
}

let lastSignalMs = Number.NEGATIVE_INFINITY;

/**
 * Every origin is down for this miss: signal (at most once per SIGNAL_INTERVAL_MS per isolate, after the
 * answer is sent) and, where the stack scales to zero, tell the client to come back after a cold start.
 */
export function onOriginUnavailable(error: OriginUnavailableError, env: Env, ctx: ExecutionContext): HttpError {
	const signal = scaleSignal(env);
	if (signal !== null && Date.now() - lastSignalMs >= SIGNAL_INTERVAL_MS) {
		lastSignalMs = Date.now();
		ctx.waitUntil(sendScaleSignal(signal, new Date()).catch((failure: Error) => console.error("scale signal failed:", failure.message)));
	}
	let coldStartSeconds: number;
	try {
		coldStartSeconds = integerVar(env, "COLD_START_SECONDS", 0);
	} catch (badVar) {
		return badVar as HttpError; // a 500 naming the var, answered like any other error
	}
	return coldStartSeconds > error.retryAfterSeconds ? new OriginUnavailableError(coldStartSeconds) : error;
}

/** Tests: forget the last signal time, as a fresh isolate would. */
export function resetScaleSignalThrottle(): void {
	lastSignalMs = Number.NEGATIVE_INFINITY;
}
