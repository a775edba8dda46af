// Applies ../schema.sql (the single source) to the local D1 before each test file.
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

await applyD1Migrations(env.DB, [{ name: "schema.sql", queries: env.SCHEMA_QUERIES }]);
