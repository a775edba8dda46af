"""The D1 schema dynamic provider against a local server speaking Cloudflare's D1 query API
(`POST /accounts/{account}/d1/database/{id}/query`, `{"sql"}` → `{"success", "errors", "messages",
"result"}`), backed by a real SQLite database per D1 id, so the applied schema.sql is really executed."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.components.d1_schema import D1QueryError, D1SchemaProvider
from infra.components.edge_storage import SCHEMA_FILE

ACCOUNT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN = "d1-test-token"
QUERY_PATH = re.compile(
    r"^/client/v4/accounts/(?P<account>[0-9a-f]{32})/d1/database/(?P<db>[0-9a-f-]+)/query$"
)


class FakeD1:
    """Cloudflare's D1 query endpoint over in-memory SQLite databases."""

    def __init__(self) -> None:
        self.databases: dict[str, sqlite3.Connection] = {}
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/client/v4"

    def tables(self, database_id: str) -> set[str]:
        rows = self.databases[database_id].execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}

    def _handler(self):
        d1 = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _answer(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _fail(self, status: int, code: int, message: str) -> None:
                self._answer(
                    status,
                    {
                        "success": False,
                        "errors": [{"code": code, "message": message}],
                        "messages": [],
                        "result": None,
                    },
                )

            def do_POST(self):  # noqa: N802 (http.server's name)
                match = QUERY_PATH.match(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                d1.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if not match:
                    return self._fail(404, 7003, "No route for the URI")
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._fail(403, 10000, "Authentication error")
                connection = d1.databases.setdefault(
                    match["db"], sqlite3.connect(":memory:", check_same_thread=False)
                )
                try:
                    connection.executescript(body["sql"])
                except sqlite3.Error as error:
                    return self._fail(400, 7500, f"{error}: SQLITE_ERROR")
                self._answer(
                    200,
                    {
                        "success": True,
                        "errors": [],
                        "messages": [],
                        "result": [{"success": True, "results": [], "meta": {"changes": 0}}],
                    },
                )

        return Handler

    def __enter__(self) -> FakeD1:
        serve = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        serve.daemon = True
        serve.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def d1():
    with FakeD1() as server:
        yield server


def props(d1: FakeD1, sql: str, database_id: str = "db-1111", sha: str = "sha-1") -> dict:
    return {
        "api_base": d1.api_base,
        "account_id": ACCOUNT,
        "database_id": database_id,
        "sql": sql,
        "sql_sha256": sha,
        "api_token": TOKEN,
    }


def test_create_applies_schema_sql_and_keeps_no_token(d1):
    sql = SCHEMA_FILE.read_text()
    result = D1SchemaProvider().create(props(d1, sql))
    assert {"generation_cache", "embedding_cache"} <= d1.tables("db-1111")
    assert d1.requests[0]["body"] == {"sql": sql}
    assert d1.requests[0]["path"] == f"/client/v4/accounts/{ACCOUNT}/d1/database/db-1111/query"
    assert result.id == "db-1111/schema"
    assert TOKEN not in json.dumps(result.outs) and "sql" not in result.outs
    # schema.sql is idempotent: applying it again to the same database succeeds.
    D1SchemaProvider().update(result.id, result.outs, props(d1, sql, sha="sha-1"))


def test_diff_reapplies_only_when_the_file_digest_changes(d1):
    provider = D1SchemaProvider()
    olds = provider.create(props(d1, "CREATE TABLE t (x INTEGER);")).outs
    assert provider.diff("id", olds, props(d1, "CREATE TABLE t (x INTEGER);")).changes is False
    changed = provider.diff("id", olds, props(d1, "-- new", sha="sha-2"))
    assert changed.changes is True and changed.replaces == []
    moved = provider.diff("id", olds, props(d1, "-- same", database_id="db-2222"))
    assert moved.changes is True and moved.replaces == ["database_id"]


def test_update_applies_the_new_schema(d1):
    provider = D1SchemaProvider()
    created = provider.create(props(d1, "CREATE TABLE IF NOT EXISTS a (x INTEGER);"))
    updated = provider.update(
        created.id,
        created.outs,
        props(d1, "CREATE TABLE IF NOT EXISTS a (x INTEGER); CREATE TABLE b (y TEXT);", sha="sha-2"),
    )
    assert d1.tables("db-1111") == {"a", "b"}
    assert updated.outs["sql_sha256"] == "sha-2"


def test_sql_errors_fail_loudly_with_d1s_message(d1):
    with pytest.raises(D1QueryError, match=r"rejected the SQL: \[7500\] near \"CREAT\": syntax error"):
        D1SchemaProvider().create(props(d1, "CREAT TABLE broken (x);"))


def test_a_wrong_token_is_reported_without_echoing_it(d1):
    bad = {**props(d1, "SELECT 1;"), "api_token": "wrong-token-value"}
    with pytest.raises(D1QueryError) as caught:
        D1SchemaProvider().create(bad)
    assert "[10000] Authentication error" in str(caught.value)
    assert "wrong-token-value" not in str(caught.value)


def test_an_unreachable_api_is_a_clear_error(d1):
    unreachable = {**props(d1, "SELECT 1;"), "api_base": "http://127.0.0.1:9/client/v4"}
    with pytest.raises(D1QueryError, match="cannot reach the D1 API"):
        D1SchemaProvider().create(unreachable)
