// Scale from zero: a miss while every origin is down gets a 503 with the cold start as Retry-After and
// puts one signed CloudWatch datapoint (at most one per isolate per minute); hits are still served.
// The signature is checked against botocore's SigV4Auth on the same request (fixtures/…json, made and
// re-checked by tests/infra/test_scale_signal.py).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { putMetricDataBody, resetScaleSignalThrottle, SIGNAL_METRIC, SIGNAL_NAMESPACE } from "../src/origin/scalesignal";
import { amzDate, signFormPost } from "../src/origin/sigv4";
import { installFakeOrigin, type FakeOrigin } from "./fake-origin";
import vector from "./fixtures/sigv4-put-metric-data.json";
import { call, createKey, uniquePrompt } from "./helpers";

interface SignalCall {
	url: string;
	headers: Headers;
	body: string;
}

let origin: FakeOrigin;
let signals: SignalCall[];
let key: string;
let origins: Partial<Env>;
let primary: string;

const SCALE_TO_ZERO: Partial<Env> = {
	COLD_START_SECONDS: "480",
	SCALE_SIGNAL_REGION: "us-east-1",
	SCALE_SIGNAL_SERVICE: "steadytext-dev-inference",
	SCALE_SIGNAL_ACCESS_KEY_ID: "AKIDTESTSIGNAL",
	SCALE_SIGNAL_SECRET_ACCESS_KEY: "test-signal-secret",
};

beforeEach(async () => {
	origin = installFakeOrigin();
	signals = [];
	// CloudWatch's endpoint is answered here (the fake origin speaks only the runtime's JSON).
	vi.mocked(globalThis.fetch).mockImplementation(async (input, init) => {
		const request = new Request(input, init);
		if (new URL(request.url).host.startsWith("monitoring.")) {
			signals.push({
				url: request.url,
				headers: request.headers,
				body: new TextDecoder().decode(await request.arrayBuffer()),
			});
			return new Response("<PutMetricDataResponse/>", {
				status: 200,
				headers: { "content-type": "text/xml" },
			});
		}
		return origin.handle(input, init);
	});
	resetScaleSignalThrottle();
	key = await createKey();
	const id = crypto.randomUUID().slice(0, 8);
	primary = `primary-${id}.test`;
	origins = {
		ORIGIN_URL: `http://${primary}`,
		ORIGIN_FALLBACK_URL: `http://fallback-${id}.test`,
	};
});
afterEach(() => vi.restoreAllMocks());

const generate = (prompt: string, extra: Partial<Env> = {}) =>
	call("/v1/generate", {
		body: { prompt },
		key,
		env: { ...origins, ...extra },
	});

function allOriginsDown(status: "down" | number = "down"): void {
	for (const url of [origins.ORIGIN_URL, origins.ORIGIN_FALLBACK_URL]) origin.set(new URL(url!).host, { fail: status });
}

describe("SigV4", () => {
	it("signs PutMetricData exactly as botocore's SigV4Auth does", async () => {
		expect(putMetricDataBody(vector.signalService)).toBe(vector.body);
		const signed = await signFormPost(
			vector.host,
			vector.body,
			vector.region,
			vector.service,
			{
				accessKeyId: vector.accessKeyId,
				secretAccessKey: vector.secretAccessKey,
			},
			new Date(vector.date),
		);
		expect(signed.headers["x-amz-date"]).toBe(vector.amzDate);
		expect(signed.headers.authorization).toBe(vector.authorization);
		expect(signed.url).toBe(`https://${vector.host}/`);
	});

	it("a different body, key or time gives a different signature", async () => {
		const credentials = {
			accessKeyId: vector.accessKeyId,
			secretAccessKey: vector.secretAccessKey,
		};
		const sign = async (body: string, secret: string, date: string) =>
			(await signFormPost(vector.host, body, vector.region, vector.service, { ...credentials, secretAccessKey: secret }, new Date(date)))
				.headers.authorization;
		const reference = await sign(vector.body, vector.secretAccessKey, vector.date);
		expect(await sign(vector.body.replace("Value=1", "Value=2"), vector.secretAccessKey, vector.date)).not.toBe(reference);
		expect(await sign(vector.body, "another-secret", vector.date)).not.toBe(reference);
		expect(await sign(vector.body, vector.secretAccessKey, "2026-11-28T05:00:01.000Z")).not.toBe(reference);
	});
});

describe("scale from zero", () => {
	it("a miss with every origin down gets 503 + the cold start as Retry-After and sends one signed signal", async () => {
		allOriginsDown();
		const before = Date.now();
		const miss = await generate(uniquePrompt("cold"), SCALE_TO_ZERO);
		expect(miss.status).toBe(503);
		expect(miss.headers.get("retry-after")).toBe("480");
		expect((await miss.json<{ error: { type: string } }>()).error.type).toBe("origin_unavailable");

		expect(signals).toHaveLength(1);
		const [signal] = signals;
		expect(signal.url).toBe("https://monitoring.us-east-1.amazonaws.com/");
		const fields = Object.fromEntries(new URLSearchParams(signal.body));
		expect(fields).toEqual({
			Action: "PutMetricData",
			Version: "2010-08-01",
			Namespace: SIGNAL_NAMESPACE,
			"MetricData.member.1.MetricName": SIGNAL_METRIC,
			"MetricData.member.1.Dimensions.member.1.Name": "Service",
			"MetricData.member.1.Dimensions.member.1.Value": "steadytext-dev-inference",
			"MetricData.member.1.Value": "1",
			"MetricData.member.1.Unit": "Count",
		});
		const sentAt = signal.headers.get("x-amz-date")!;
		expect(sentAt >= amzDate(new Date(Math.floor(before / 1000) * 1000))).toBe(true);
		expect(signal.headers.get("authorization")).toMatch(
			new RegExp(
				`^AWS4-HMAC-SHA256 Credential=AKIDTESTSIGNAL/${sentAt.slice(0, 8)}/us-east-1/monitoring/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$`,
			),
		);
		// The same request re-signed with the same time reproduces the signature: nothing else went into it.
		const again = await signFormPost(
			"monitoring.us-east-1.amazonaws.com",
			signal.body,
			"us-east-1",
			"monitoring",
			{ accessKeyId: "AKIDTESTSIGNAL", secretAccessKey: "test-signal-secret" },
			new Date(`${sentAt.slice(0, 4)}-${sentAt.slice(4, 6)}-${sentAt.slice(6, 11)}:${sentAt.slice(11, 13)}:${sentAt.slice(13, 15)}Z`),
		);
		expect(signal.headers.get("authorization")).toBe(again.headers.authorization);
	});

	it("signals at most once per minute per isolate however many misses arrive", async () => {
		allOriginsDown();
		for (let i = 0; i < 4; i++) expect((await generate(uniquePrompt("burst"), SCALE_TO_ZERO)).status).toBe(503);
		expect(signals).toHaveLength(1);
	});

	it.each([502, 530])("the tunnel's %i (no healthy connector) counts as down", async (status) => {
		allOriginsDown(status);
		const miss = await generate(uniquePrompt(`tunnel-${status}`), SCALE_TO_ZERO);
		expect(miss.status).toBe(503);
		expect(miss.headers.get("retry-after")).toBe("480");
		expect(signals).toHaveLength(1);
	});

	it("cache hits are served meanwhile and send no signal", async () => {
		const prompt = uniquePrompt("warm");
		const fresh = await (await generate(prompt, SCALE_TO_ZERO)).text();
		allOriginsDown();
		const hit = await generate(prompt, SCALE_TO_ZERO);
		expect(hit.status).toBe(200);
		expect(hit.headers.get("x-cache")).toBe("HIT");
		expect(await hit.text()).toBe(fresh);
		expect(signals).toHaveLength(0);
	});

	it("a stack that does not scale to zero sends nothing and keeps the breaker's Retry-After", async () => {
		allOriginsDown();
		const miss = await generate(uniquePrompt("no-signal"));
		expect(miss.status).toBe(503);
		expect(Number(miss.headers.get("retry-after"))).toBeLessThanOrEqual(30);
		expect(signals).toHaveLength(0);
	});

	it("a malformed COLD_START_SECONDS is a 500 naming the var, not an unhandled exception", async () => {
		allOriginsDown();
		const miss = await generate(uniquePrompt("bad-var"), { ...SCALE_TO_ZERO, COLD_START_SECONDS: "soon" });
		expect(miss.status).toBe(500);
		const body = await miss.json<{ error: { type: string; message: string } }>();
		expect(body.error.type).toBe("configuration_error");
		expect(body.error.message).toContain("COLD_START_SECONDS");
	});

	it("a failing signal is logged and does not change the answer", async () => {
		allOriginsDown();
		const errors = vi.spyOn(console, "error").mockImplementation(() => {});
		vi.mocked(globalThis.fetch).mockImplementation(async (input, init) => {
			const request = new Request(input, init);
			if (new URL(request.url).host.startsWith("monitoring.")) return new Response("<Error>AccessDenied</Error>", { status: 403 });
			return origin.handle(input, init);
		});
		const miss = await generate(uniquePrompt("denied"), SCALE_TO_ZERO);
		expect(miss.status).toBe(503);
		expect(errors.mock.calls.some((args) => String(args[0]).startsWith("scale signal failed"))).toBe(true);
	});
});
