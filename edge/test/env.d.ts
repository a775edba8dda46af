declare namespace Cloudflare {
	interface Env {
		D1_MIGRATIONS: import("cloudflare:test").D1Migration[];
		DECLARED_RATELIMITS: string;
		DECLARED_QUEUES: string;
		TIGHT_RATE_LIMITER: RateLimit;
		TIGHT_AUTH_FAILURE_LIMITER: RateLimit;
		UPGRADE_DB: D1Database;
	}
}

// Vite's ?raw imports: a file's text, bundled into the test (the DLP corpus).
declare module "*?raw" {
	const text: string;
	export default text;
}
