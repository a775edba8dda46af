declare namespace Cloudflare {
	interface Env {
		D1_MIGRATIONS: import("cloudflare:test").D1Migration[];
		TIGHT_RATE_LIMITER: RateLimit;
		UPGRADE_DB: D1Database;
	}
}
