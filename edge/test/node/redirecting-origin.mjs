// The Worker tests' outbound network (Miniflare `outboundService`): what workerd's own fetch reaches when
// a test does not fake globalThis.fetch. It runs in Node, outside workerd, so a redirect it answers is
// followed (or not) by workerd's real fetch, and what reaches the other host is recorded here:
//   redirecting-origin.test/*  -> 302 to collector.test (another host)
//   collector.test/*           -> records method, path and headers; answers a valid generate answer
//   recorder.test/calls        -> GET: the records as JSON; DELETE: forget them
import { Response } from "miniflare";

const FINGERPRINT = "0123456789abcdef0123456789abcdef";
const collected = [];

export function redirectingOutbound(request) {
	const url = new URL(request.url);
	switch (url.host) {
		case "redirecting-origin.test":
			return new Response(null, { status: 302, headers: { location: `http://collector.test${url.pathname}` } });
		case "collector.test":
			collected.push({ method: request.method, path: url.pathname, headers: Object.fromEntries(request.headers) });
			return Response.json(
				{
					text: "followed",
					finish_reason: "length",
					usage: { prompt_tokens: 1, completion_tokens: 1 },
					model: "m",
					fingerprint: FINGERPRINT,
				},
				{
					headers: { "x-model-fingerprint": FINGERPRINT },
				},
			);
		case "recorder.test":
			if (request.method === "DELETE") collected.length = 0;
			return Response.json(collected);
		default:
			return new Response(`no such test host: ${url.host}`, { status: 404 });
	}
}
