"""Migrates the remote D1 database during `pulumi up` (infra/d1_migrations.py: the numbered files,
recorded in `d1_migrations` as wrangler records them).

pulumi-cloudflare's `D1Database` manages the database, not its tables, so this dynamic provider talks to
Cloudflare's D1 query API (`POST /accounts/{account}/d1/database/{id}/query`, body `{"sql": ...}`;
several statements run as one batch). It asks D1 which migrations it has recorded and sends only the
others, each with its record in the same batch; it runs again only when the set of migration files
changes. A SQL error fails the deploy with D1's own message, and that migration is not recorded.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult

from infra.components.digest_provider import DigestProvider
from infra.d1_migrations import Migration, apply_migrations, migrations_dir, read_migrations

CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"


class D1QueryError(RuntimeError):
    pass


def run_d1_query(api_base: str, account_id: str, database_id: str, api_token: str, sql: str) -> list[dict]:
    """Run `sql` (one or more statements) and return D1's per-statement results; raise `D1QueryError`
    with D1's error codes and messages when the API or any statement fails."""
    url = f"{api_base}/accounts/{account_id}/d1/database/{database_id}/query"
    request = urllib.request.Request(
        url,
        data=json.dumps({"sql": sql}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except urllib.error.URLError as error:
        raise D1QueryError(f"cannot reach the D1 API at {url}: {error.reason}") from error
    try:
        body = json.loads(raw)
    except ValueError:
        raise D1QueryError(f"D1 API answered HTTP {status} with a non-JSON body: {raw[:300]!r}") from None
    errors = body.get("errors") or []
    if status >= 400 or not body.get("success") or errors:
        detail = "; ".join(f"[{e.get('code')}] {e.get('message')}" for e in errors) or f"HTTP {status}"
        raise D1QueryError(f"D1 database {database_id} rejected the SQL: {detail}")
    results = body.get("result") or []
    failed = [r for r in results if r.get("success") is False]
    if failed:
        raise D1QueryError(f"D1 database {database_id}: {len(failed)} statement(s) failed: {failed[0]}")
    return results


class D1SchemaProvider(DigestProvider):
    """Applies the migrations the database has not recorded yet. The tables live and die with the D1
    database itself, so deleting this resource does nothing."""

    location_keys = ("api_base", "account_id", "database_id")
    digest_key = "migrations_sha256"
    # Kept so the next deploy can tell that an applied migration was edited (see `check`).
    extra_state_keys = ("migration_sha256s",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """An applied migration is history: editing, renaming or removing it would leave databases that
        already ran it different from new ones, silently. Refuse at preview, naming the file."""
        before: dict[str, str] = olds.get("migration_sha256s") or {}
        after: dict[str, str] = news.get("migration_sha256s") or {}
        failures = [
            CheckFailure(
                "migrations",
                f"{name} was applied by an earlier deploy and has since been "
                f"{'changed' if name in after else 'removed or renamed'}; restore it and put the change "
                "in a new migration",
            )
            for name, digest in sorted(before.items())
            if after.get(name) != digest
        ]
        return CheckResult(news, failures)

    def apply(self, props: dict[str, Any]) -> None:
        def query(sql: str) -> list[list[dict]]:
            results = run_d1_query(
                props["api_base"], props["account_id"], props["database_id"], props["api_token"], sql
            )
            return [result.get("results") or [] for result in results]

        apply_migrations(query, [Migration(m["name"], m["sql"]) for m in props["migrations"]])

    def resource_id(self, props: dict[str, Any]) -> str:
        return f"{props['database_id']}/schema"


@dataclass(frozen=True)
class D1SchemaArgs:
    account_id: str
    database_id: pulumi.Input[str]
    api_token: pulumi.Input[str]
    migrations_dir: Path = field(default_factory=migrations_dir)
    api_base: str = CLOUDFLARE_API


def migration_inputs(migrations: list[Migration]) -> dict[str, Any]:
    """The provider's inputs describing the migrations: their text, and a digest of each and of all."""
    digests = {migration.name: migration.sha256 for migration in migrations}
    return {
        "migrations": [{"name": migration.name, "sql": migration.sql} for migration in migrations],
        "migration_sha256s": digests,
        "migrations_sha256": hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest(),
    }


class D1Schema(pulumi.dynamic.Resource):
    migrations_sha256: pulumi.Output[str]
    database_id: pulumi.Output[str]

    def __init__(self, name: str, args: D1SchemaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            D1SchemaProvider(),
            name,
            {
                "api_base": args.api_base,
                "account_id": args.account_id,
                "database_id": args.database_id,
                **migration_inputs(read_migrations(args.migrations_dir)),
                "api_token": pulumi.Output.secret(args.api_token),
            },
            opts,
        )
