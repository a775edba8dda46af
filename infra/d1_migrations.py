"""D1 schema migrations: the numbered files in the folder that `edge/wrangler.jsonc` names as the `DB`
binding's `migrations_dir`, in wrangler's native D1 format, applied in order and recorded the way
`wrangler d1 migrations apply` records them. So this runner (the deploy) and wrangler (`make dev`, an
operator by hand) agree on what a database already has, whichever of them ran last:

- a migration is `NNNN_name.sql`; its record in `d1_migrations` is its file name;
- `d1_migrations` is created with wrangler's own statement;
- each pending migration is sent as one query together with the INSERT that records it, as wrangler
  does: D1 runs a multi-statement query as one batch (a transaction), so both happen or neither.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.wrangler_config import WRANGLER_CONFIG, load_wrangler_config

MIGRATIONS_TABLE = "d1_migrations"
# The statement wrangler (workers-sdk `d1/migrations/helpers.ts`) and vitest-pool-workers'
# `applyD1Migrations` create the table with.
CREATE_MIGRATIONS_TABLE = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT UNIQUE,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);"""
FILE_NAME = re.compile(r"^(?P<number>[0-9]{4})_[a-z0-9_]+\.sql$")

# Runs one or more SQL statements as one batch and returns each statement's rows.
Query = Callable[[str], Sequence[Sequence[Mapping[str, Any]]]]


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def recorded(self) -> str:
        """The migration and the INSERT that records it, as one query (the name is a checked file name)."""
        return f"{self.sql.rstrip()}\nINSERT INTO {MIGRATIONS_TABLE} (name) VALUES ('{self.name}');\n"


def migrations_dir(wrangler_config: Path = WRANGLER_CONFIG) -> Path:
    """The `DB` binding's `migrations_dir`, relative to the wrangler config as wrangler resolves it."""
    databases = load_wrangler_config(wrangler_config).get("d1_databases", [])
    binding = next((db for db in databases if db.get("binding") == "DB"), None)
    if binding is None or not binding.get("migrations_dir"):
        raise MigrationError(f"{wrangler_config}: the DB binding must name its migrations_dir")
    return (wrangler_config.parent / binding["migrations_dir"]).resolve()


def read_migrations(directory: Path) -> list[Migration]:
    """Every `*.sql` file of `directory`, in order; numbered 0001, 0002, … with no gap or duplicate."""
    files = sorted(path for path in directory.iterdir() if path.suffix == ".sql")
    if not files:
        raise MigrationError(f"{directory} holds no migrations")
    migrations = []
    for expected, path in enumerate(files, start=1):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration is named NNNN_lower_snake_name.sql")
        if int(match["number"]) != expected:
            raise MigrationError(
                f"{path}: expected number {expected:04d} (migrations are numbered 0001, 0002, … "
                "without gaps or duplicates)"
            )
        sql = path.read_text()
        if not sqlite3.complete_statement(sql):
            raise MigrationError(f"{path}: the last statement does not end with ';'")
        migrations.append(Migration(path.name, sql))
    return migrations


def applied_migrations(query: Query) -> list[str]:
    """Names recorded in `d1_migrations` (created if missing, as wrangler does), oldest first."""
    query(CREATE_MIGRATIONS_TABLE)
    return [str(row["name"]) for row in query(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id")[0]]


def apply_migrations(query: Query, migrations: Sequence[Migration]) -> list[str]:
    """Applies the migrations the database has not recorded yet, in order; returns their names.

    A database recording a migration this checkout does not have is refused: the code here predates
    that database's schema, and running its Worker against it would be wrong."""
    applied = applied_migrations(query)
    known = {migration.name for migration in migrations}
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise MigrationError(
            f"the database has migrations this checkout does not have: {', '.join(unknown)}; deploy "
            "from a checkout that has them (a migration is never renamed or removed once applied)"
        )
    pending = [migration for migration in migrations if migration.name not in applied]
    for migration in pending:
        try:
            query(migration.recorded())
        except Exception as error:
            # One batch: D1 applies a migration together with its record, or neither.
            raise MigrationError(f"migration {migration.name} failed: {error}") from error
    return [migration.name for migration in pending]
