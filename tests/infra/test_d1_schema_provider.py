"""The D1 schema dynamic provider against a local server speaking Cloudflare's D1 query API
(`POST /accounts/{account}/d1/database/{id}/query`, `{"sql"}` → `{"success", "errors", "messages",
"result"}`), backed by a real SQLite database per D1 id that runs each query as one transaction (as D1
runs a batch), so the migrations are really executed and recorded."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.components.cloudflare.d1_schema import D1QueryError, D1SchemaProvider, migration_inputs
from infra.d1_migrations import Migration, MigrationError, migrations_dir, read_migrations
from tests.infra.sqlite_batch import connect, run_batch

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

    def database(self, database_id: str) -> sqlite3.Connection:
        return self.databases.setdefault(database_id, connect())

    def tables(self, database_id: str) -> set[str]:
        rows = self.database(database_id).execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows} - {"sqlite_sequence"}

    def queries(self) -> list[str]:
        return [request["body"]["sql"] for request in self.requests]

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
                try:
                    results = run_batch(d1.database(match["db"]), body["sql"])
                except sqlite3.Error as error:
                    return self._fail(400, 7500, f"{error}: SQLITE_ERROR")
                self._answer(
                    200,
                    {
                        "success": True,
                        "errors": [],
                        "messages": [],
                        "result": [{"success": True, "results": rows, "meta": {}} for rows in results],
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


MIGRATIONS = read_migrations(migrations_dir())
INITIAL = MIGRATIONS[0]


def props(d1: FakeD1, migrations: list[Migration] = MIGRATIONS, database_id: str = "db-1111") -> dict:
    return {
        "api_base": d1.api_base,
        "account_id": ACCOUNT,
        "database_id": database_id,
        **migration_inputs(migrations),
        "api_token": TOKEN,
    }


def recorded(d1: FakeD1, database_id: str = "db-1111") -> list[str]:
    rows = d1.database(database_id).execute("SELECT name FROM d1_migrations ORDER BY id")
    return [name for (name,) in rows]


def test_create_applies_every_migration_in_order_and_records_it_as_wrangler_does(d1):
    result = D1SchemaProvider().create(props(d1))
    assert recorded(d1) == [migration.name for migration in MIGRATIONS]
    assert {
        "answer_cache",
        "request_metrics",
        "metric_counters",
        "api_keys",
        "origin_builds",
        "key_usage",
        "batch_files",
        "batches",
        "batch_lines",
        "d1_migrations",
    } == d1.tables("db-1111")
    assert d1.requests[0]["path"] == f"/client/v4/accounts/{ACCOUNT}/d1/database/db-1111/query"
    # Each migration travels with its record in one query, so D1 applies both or neither.
    for migration in MIGRATIONS:
        assert (
            f"INSERT INTO d1_migrations (name) VALUES ('{migration.name}');"
            in d1.queries()[d1.queries().index(migration.recorded())]
        )
    assert result.id == "db-1111/schema"
    assert TOKEN not in json.dumps(result.outs) and "migrations" not in result.outs
    assert result.outs["migration_sha256s"] == {m.name: m.sha256 for m in MIGRATIONS}


def test_applying_again_sends_no_migration(d1):
    provider = D1SchemaProvider()
    created = provider.create(props(d1))
    sent = len(d1.requests)
    provider.update(created.id, created.outs, props(d1))
    assert all(migration.sql not in query for migration in MIGRATIONS for query in d1.queries()[sent:])
    assert recorded(d1) == [migration.name for migration in MIGRATIONS]


def test_update_applies_only_the_migrations_the_database_lacks(d1):
    provider = D1SchemaProvider()
    created = provider.create(props(d1, [INITIAL]))
    assert recorded(d1) == [INITIAL.name]
    sent = len(d1.requests)
    provider.update(created.id, created.outs, props(d1))
    assert [m.name for m in MIGRATIONS if m.recorded() in d1.queries()[sent:]] == [
        m.name for m in MIGRATIONS[1:]
    ]
    assert recorded(d1) == [migration.name for migration in MIGRATIONS]


def test_a_database_created_by_the_old_schema_sql_is_adopted_and_keeps_its_cached_answers(d1):
    """The upgrade: a D1 that `schema.sql` created before migrations existed (0001 is that file) holds
    answers in both cache tables and no d1_migrations table."""
    old = d1.database("db-1111")
    run_batch(old, INITIAL.sql)
    insert = (
        "INSERT INTO {table} (cache_key, route, parameters, fingerprint, body, content_type, created_at,"
        " accessed_at, expires_at, access_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    generation = (
        "gen:v1:" + "a" * 64,
        "/v1/generate",
        '{"prompt":"private words"}',
        "f" * 32,
        '{"text": "é"}',
        "application/json",
        1700000000,
        1700000100,
        4102444800,
        3,
    )
    embedding = (
        "emb:v1:" + "b" * 64,
        "/v1/embed",
        '{"input":"private words"}',
        "f" * 32,
        '{"embeddings": [[0.5]]}',
        "application/json",
        1700000001,
        1700000001,
        4102444801,
        0,
    )
    old.execute(insert.format(table="generation_cache"), generation)
    old.execute(insert.format(table="embedding_cache"), embedding)

    D1SchemaProvider().create(props(d1))

    assert recorded(d1) == [migration.name for migration in MIGRATIONS]
    rows = [tuple(row) for row in old.execute("SELECT * FROM answer_cache ORDER BY cache_key")]
    # Every column but the prompt text (`parameters`, index 2), unchanged; `pieces` (0003) and
    # `fixed_ttl_seconds` (0005) are NULL for rows stored before them.
    added = (None, None)
    assert rows == [embedding[:2] + embedding[3:] + added, generation[:2] + generation[3:] + added]
    assert "private words" not in "\n".join(old.iterdump())
    assert {"generation_cache", "embedding_cache"}.isdisjoint(d1.tables("db-1111"))


def test_a_failing_migration_fails_loudly_with_d1s_message_and_leaves_nothing_behind(d1):
    broken = Migration("0002_broken.sql", "CREATE TABLE half_done (x INTEGER);\nCREAT TABLE broken (x);\n")
    with pytest.raises(
        MigrationError, match=r"0002_broken.sql failed: .*\[7500\] near \"CREAT\": syntax error"
    ):
        D1SchemaProvider().create(props(d1, [INITIAL, broken]))
    assert recorded(d1) == [INITIAL.name]
    assert "half_done" not in d1.tables("db-1111")


def test_a_database_ahead_of_this_checkout_is_refused(d1):
    D1SchemaProvider().create(props(d1))
    d1.database("db-1111").execute("INSERT INTO d1_migrations (name) VALUES ('0099_from_the_future.sql')")
    with pytest.raises(MigrationError, match="does not have: 0099_from_the_future.sql"):
        D1SchemaProvider().create(props(d1))


def test_check_refuses_an_applied_migration_that_was_edited_or_removed(d1):
    provider = D1SchemaProvider()
    olds = props(d1)
    assert provider.check(olds, props(d1)).failures == []
    assert provider.check({}, props(d1)).failures == []  # a new resource, or a stack from before migrations
    edited = [Migration(INITIAL.name, INITIAL.sql + "-- edited\n"), *MIGRATIONS[1:]]
    [failure] = provider.check(olds, props(d1, edited)).failures
    assert INITIAL.name in failure.reason and "changed" in failure.reason
    without_second = [migration for migration in MIGRATIONS if migration is not MIGRATIONS[1]]
    [failure] = provider.check(olds, props(d1, without_second)).failures
    assert MIGRATIONS[1].name in failure.reason and "removed or renamed" in failure.reason


def test_diff_runs_again_only_when_the_migration_files_change(d1):
    provider = D1SchemaProvider()
    olds = provider.create(props(d1, [INITIAL])).outs
    assert provider.diff("id", olds, props(d1, [INITIAL])).changes is False
    changed = provider.diff("id", olds, props(d1))
    assert changed.changes is True and changed.replaces == []
    moved = provider.diff("id", olds, props(d1, [INITIAL], database_id="db-2222"))
    assert moved.changes is True and moved.replaces == ["database_id"]


def test_a_wrong_token_is_reported_without_echoing_it(d1):
    bad = {**props(d1), "api_token": "wrong-token-value"}
    with pytest.raises(D1QueryError) as caught:
        D1SchemaProvider().create(bad)
    assert "[10000] Authentication error" in str(caught.value)
    assert "wrong-token-value" not in str(caught.value)


def test_an_unreachable_api_is_a_clear_error(d1):
    unreachable = {**props(d1), "api_base": "http://127.0.0.1:9/client/v4"}
    with pytest.raises(D1QueryError, match="cannot reach the D1 API"):
        D1SchemaProvider().create(unreachable)
