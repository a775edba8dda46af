declare namespace Cloudflare {
	interface Env {
		SCHEMA_QUERIES: string[];
		TIGHT_RATE_LIMITER: RateLimit;
	}
}
