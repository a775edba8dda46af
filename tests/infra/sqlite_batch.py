"""Runs SQL text the way D1 runs a multi-statement query: statement by statement inside one transaction
(all or nothing), returning each statement's rows as dicts. The fake D1 API and the schema tests share it."""

from __future__ import annotations

import sqlite3


def split_statements(sql: str) -> list[str]:
    """Complete statements in order; a trailing remainder of comments and whitespace is dropped."""
    statements, start = [], 0
    for end, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : end + 1]):
            statements.append(sql[start : end + 1])
            start = end + 1
    remainder = "\n".join(line for line in sql[start:].splitlines() if not line.strip().startswith("--"))
    if remainder.strip():
        statements.append(remainder)  # SQLite reports what is wrong with it
    return statements


def connect() -> sqlite3.Connection:
    """An in-memory database in autocommit mode, so `run_batch` controls the transaction itself."""
    connection = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


def run_batch(connection: sqlite3.Connection, sql: str) -> list[list[dict]]:
    """Every statement of `sql` in one transaction; on an error nothing of it stays, and it is raised."""
    connection.execute("BEGIN")
    try:
        results = [
            [dict(row) for row in connection.execute(statement)] for statement in split_statements(sql)
        ]
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return results
