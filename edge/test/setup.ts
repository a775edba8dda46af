// Migrates the local D1 before each test file, as the deploy and `make dev` do: every migration from the
// folder edge/wrangler.jsonc names, recorded in d1_migrations (vitest.config.mts reads them).
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

await applyD1Migrations(env.DB, env.D1_MIGRATIONS);
