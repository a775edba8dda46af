"""The migrations folder and schema.sql: applying every migration gives exactly the schema schema.sql
states, the folder follows wrangler's naming with no gaps, and the runner's bookkeeping is wrangler's.
The real wrangler (`d1 migrations apply/list --local`) and this runner are checked against each other on
one local D1 file."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from infra import REPO_ROOT
from infra.d1_migrations import (
    Migration,
    MigrationError,
    apply_migrations,
    migrations_dir,
    read_migrations,
)
from infra.worker_bundle import EDGE_DIR, offline_env
from tests.infra.sqlite_batch import connect, run_batch

SCHEMA_SQL = REPO_ROOT / "schema.sql"
BOOKKEEPING = {"d1_migrations", "sqlite_sequence"}


def schema_of(connection: sqlite3.Connection) -> dict:
    """Every table's columns (name, type, not-null, default, key position), AUTOINCREMENT and indexes
    (name, unique, partial, columns), plus views and triggers: what two schemas must share to be one."""
    schema = {}
    objects = connection.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    for kind, name, sql in objects:
        if name in BOOKKEEPING or kind == "index":
            continue
        if kind != "table":
            schema[(kind, name)] = " ".join(re.sub(r"--[^\n]*", "", sql).split())
            continue
        columns = [tuple(row)[1:] for row in connection.execute(f"PRAGMA table_xinfo({name})")]
        indexes = {
            index["name"]: (
                index["unique"],
                index["partial"],
                [column["name"] for column in connection.execute(f"PRAGMA index_info({index['name']})")],
            )
            for index in connection.execute(f"PRAGMA index_list({name})")
        }
        schema[(kind, name)] = (columns, "AUTOINCREMENT" in sql.upper(), indexes)
    return schema


def migrated() -> sqlite3.Connection:
    connection = connect()
    apply_migrations(lambda sql: run_batch(connection, sql), read_migrations(migrations_dir()))
    return connection


def test_applying_every_migration_gives_exactly_the_schema_that_schema_sql_states():
    stated = connect()
    run_batch(stated, SCHEMA_SQL.read_text())
    assert schema_of(migrated()) == schema_of(stated)


def test_the_comparison_notices_a_difference():
    """Guards the test above: a column type, a default or an index that differs makes schemas unequal."""
    base = "CREATE TABLE t (a TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);"
    variants = [
        "CREATE TABLE t (a TEXT PRIMARY KEY, n REAL NOT NULL DEFAULT 0);",
        "CREATE TABLE t (a TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 1);",
        base + "CREATE INDEX i ON t (n);",
    ]
    reference = connect()
    run_batch(reference, base)
    for variant in variants:
        other = connect()
        run_batch(other, variant)
        assert schema_of(other) != schema_of(reference), variant


def test_wrangler_jsonc_names_the_repository_migrations_folder():
    assert migrations_dir() == REPO_ROOT / "migrations"
    names = [migration.name for migration in read_migrations(migrations_dir())]
    assert names[0] == "0001_initial.sql"
    assert names == sorted(names)


def test_migrations_are_recorded_once_and_a_second_run_applies_nothing():
    connection = connect()
    query = lambda sql: run_batch(connection, sql)  # noqa: E731
    migrations = read_migrations(migrations_dir())
    assert apply_migrations(query, migrations) == [m.name for m in migrations]
    assert apply_migrations(query, migrations) == []
    rows = connection.execute("SELECT id, name FROM d1_migrations ORDER BY id").fetchall()
    assert [tuple(row) for row in rows] == [(n, m.name) for n, m in enumerate(migrations, start=1)]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "SELECT 1;", "0003_b.sql": "SELECT 1;"}, "0003_b.sql: expected number 0002"),
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}, "0001_b.sql: expected number 0002"),
        ({"0001_Add Table.sql": "SELECT 1;"}, "named NNNN_lower_snake_name.sql"),
        ({"1_a.sql": "SELECT 1;"}, "named NNNN_lower_snake_name.sql"),
        ({"0001_a.sql": "CREATE TABLE t (x INTEGER)\n-- no semicolon\n"}, "does not end with ';'"),
        ({"README.md": "not a migration"}, "holds no migrations"),
    ],
)
def test_a_badly_named_numbered_or_terminated_migration_is_refused(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MigrationError, match=re.escape(message)):
        read_migrations(tmp_path)


# -- wrangler and this runner on the same local D1 ----------------------------------------------------


def wrangler(config: Path, persist_to: Path, *args: str) -> str:
    if not (EDGE_DIR / "node_modules" / ".bin" / "wrangler").exists():
        pytest.skip("edge/node_modules is missing: run `npm ci` in edge/ (make setup does)")
    done = subprocess.run(
        [str(EDGE_DIR / "node_modules" / ".bin" / "wrangler"), "d1", *args, "DB", "--local"]
        + ["--persist-to", str(persist_to), "--config", str(config)],
        cwd=config.parent,
        env={**os.environ, "CI": "1", **offline_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def local_d1_file(persist_to: Path) -> Path:
    [database] = [
        path for path in (persist_to / "v3" / "d1").rglob("*.sqlite") if path.name != "metadata.sqlite"
    ]
    return database


def project_with(tmp_path: Path, migrations: list[Migration]) -> Path:
    """A wrangler config like edge/wrangler.jsonc's D1 binding, whose migrations folder holds `migrations`."""
    folder = tmp_path / "migrations"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for migration in migrations:
        (folder / migration.name).write_text(migration.sql)
    config = tmp_path / "wrangler.json"
    database = {"binding": "DB", "database_name": "db", "database_id": "00000000-0000-4000-8000-000000000000"}
    config.write_text(
        json.dumps({"name": "t", "d1_databases": [{**database, "migrations_dir": "migrations"}]})
    )
    return config


def test_wrangler_and_the_deploy_runner_agree_on_what_a_database_has(tmp_path):
    migrations = read_migrations(migrations_dir())
    persist_to = tmp_path / "state"
    # wrangler applies the first migration...
    config = project_with(tmp_path, migrations[:1])
    wrangler(config, persist_to, "migrations", "apply")
    database = sqlite3.connect(local_d1_file(persist_to), isolation_level=None)
    database.row_factory = sqlite3.Row
    # ...this runner sees it as applied and adds the rest...
    applied = apply_migrations(lambda sql: run_batch(database, sql), migrations)
    assert applied == [migration.name for migration in migrations[1:]]
    database.close()
    # ...and wrangler, shown every migration, finds none left to apply.
    project_with(tmp_path, migrations)
    assert "No migrations to apply" in wrangler(config, persist_to, "migrations", "list")
