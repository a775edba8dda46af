"""Applies `schema.sql` to the remote D1 database during `pulumi up`.

pulumi-cloudflare's `D1Database` manages the database, not its tables, so this dynamic provider sends
the file through Cloudflare's D1 query API (`POST /accounts/{account}/d1/database/{id}/query`,
body `{"sql": ...}`; several statements run as one batch). The schema is idempotent
(`CREATE ... IF NOT EXISTS`) and is re-sent only when the file's sha256 changes; a SQL error fails the
deploy with D1's own message.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from infra.components.digest_provider import DigestProvider

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
    """The tables live and die with the D1 database itself, so deleting this resource does nothing."""

    location_keys = ("api_base", "account_id", "database_id")
    digest_key = "sql_sha256"

    def apply(self, props: dict[str, Any]) -> None:
        run_d1_query(
            props["api_base"], props["account_id"], props["database_id"], props["api_token"], props["sql"]
        )

    def resource_id(self, props: dict[str, Any]) -> str:
        return f"{props['database_id']}/schema"


@dataclass(frozen=True)
class D1SchemaArgs:
    account_id: str
    database_id: pulumi.Input[str]
    schema_file: Path
    api_token: pulumi.Input[str]
    api_base: str = CLOUDFLARE_API


class D1Schema(pulumi.dynamic.Resource):
    sql_sha256: pulumi.Output[str]
    database_id: pulumi.Output[str]

    def __init__(self, name: str, args: D1SchemaArgs, opts: pulumi.ResourceOptions | None = None):
        sql = args.schema_file.read_text()
        super().__init__(
            D1SchemaProvider(),
            name,
            {
                "api_base": args.api_base,
                "account_id": args.account_id,
                "database_id": args.database_id,
                "sql": sql,
                "sql_sha256": hashlib.sha256(sql.encode()).hexdigest(),
                "api_token": pulumi.Output.secret(args.api_token),
            },
            opts,
        )
