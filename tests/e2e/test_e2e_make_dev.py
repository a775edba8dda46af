"""`make dev` itself (`python -m scripts.dev`): ready with a working curl example, Ctrl-C stops both
processes and frees the ports, state and key survive into the next run, a state folder from before D1
migrations is upgraded at the next start, a taken port is refused clearly."""

import json
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from infra.d1_migrations import migrations_dir
from scripts.harness import ensure_port_free, free_port, run_step
from scripts.local_stack import EDGE_DIR, OFFLINE_ENV, REPO_ROOT, WRANGLER

MIGRATIONS_DIR = migrations_dir()

READY_TIMEOUT_S = 240
CURL_KEY = re.compile(r"Authorization: Bearer (\S+?)'")


def start_dev(state_dir, ports):
    runtime_port, worker_port, inspector_port = ports
    flags = {"--runtime-port": runtime_port, "--worker-port": worker_port, "--inspector-port": inspector_port}
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.dev", "--state-dir", str(state_dir)]
        + [part for flag, port in flags.items() for part in (flag, str(port))],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until_ready(dev) -> str:
    """stdout up to the curl example; fails with everything printed if `make dev` exits or stalls."""
    printed, deadline = [], time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = dev.stdout.readline()
        if not line:
            break
        printed.append(line)
        if line.startswith("Ctrl-C stops both"):
            return "".join(printed)
    dev.kill()
    pytest.fail("make dev did not get ready:\n" + "".join(printed))


def stop_with_ctrl_c(dev) -> int:
    dev.send_signal(signal.SIGINT)
    try:
        return dev.wait(timeout=60)
    finally:
        dev.kill()


@pytest.mark.e2e
def test_make_dev_serves_stops_cleanly_and_keeps_state(tmp_path):
    ports = (free_port(), free_port(), free_port())
    body = {"prompt": "Write a haiku about determinism.", "max_tokens": 4}

    first = start_dev(tmp_path, ports)
    banner = read_until_ready(first)
    key = CURL_KEY.search(banner).group(1)
    answer = httpx.post(
        f"http://127.0.0.1:{ports[1]}/v1/generate", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert stop_with_ctrl_c(first) == 0
    assert answer.status_code == 200, answer.text
    for port in ports:
        ensure_port_free(port, "a port make dev used")  # nothing left behind (workerd included)

    second = start_dev(tmp_path, ports)
    banner_again = read_until_ready(second)
    replay = httpx.post(f"http://127.0.0.1:{ports[1]}/v1/generate", json=body, headers={"X-API-Key": key})
    assert stop_with_ctrl_c(second) == 0
    assert CURL_KEY.search(banner_again).group(1) == key, (
        "a new key instead of the one kept in the state folder"
    )
    assert (replay.status_code, replay.headers.get("x-cache")) == (200, "HIT"), replay.text
    assert replay.content == answer.content


def wrangler_local(state_dir, *args: str) -> str:
    return run_step(
        f"wrangler {' '.join(args[:2])}",
        [str(WRANGLER), *args, "--local", "--persist-to", str(state_dir / "wrangler")],
        log_path=state_dir / "logs" / "test-steps.log",
        cwd=EDGE_DIR,
        env=OFFLINE_ENV,
    )


def d1_rows(state_dir, sql: str) -> list[dict]:
    return json.loads(wrangler_local(state_dir, "d1", "execute", "DB", "--json", "--command", sql))[0][
        "results"
    ]


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_value(value) -> str:
    if value is None:
        return "NULL"
    return str(value) if isinstance(value, int | float) else sql_text(str(value))


def back_to_the_state_before_migrations(state_dir, bodies: dict[str, dict]) -> None:
    """Rewrites a state folder into what `make dev` left before numbered migrations: only the tables of the
    schema.sql of then (migration 0001 is that file, applied with `wrangler d1 execute --file` as
    `make dev` did), in their shape of then, no d1_migrations, and each cached answer in its old table with
    its prompt. The API keys stay (in 0001's columns), so the same key works after the upgrade."""
    cached = d1_rows(state_dir, "SELECT * FROM answer_cache")
    keys = d1_rows(state_dir, "SELECT * FROM api_keys")
    tables = d1_rows(
        state_dir,
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    )
    wrangler_local(
        state_dir,
        "d1",
        "execute",
        "DB",
        "--command",
        "; ".join(f"DROP TABLE {row['name']}" for row in tables),
    )
    wrangler_local(state_dir, "d1", "execute", "DB", "--file", str(MIGRATIONS_DIR / "0001_initial.sql"))
    key_columns = [row["name"] for row in d1_rows(state_dir, "PRAGMA table_info(api_keys)")]
    statements = [
        f"INSERT INTO api_keys ({', '.join(key_columns)}) "
        f"VALUES ({', '.join(sql_value(key[column]) for column in key_columns)})"
        for key in keys
    ]
    columns = ("cache_key", "route", "fingerprint", "body", "content_type")
    columns += ("created_at", "accessed_at", "expires_at", "access_count")
    for row in cached:
        table = "generation_cache" if row["cache_key"].startswith("gen:") else "embedding_cache"
        parameters = json.dumps(bodies[row["route"]], sort_keys=True, separators=(",", ":"))
        values = ", ".join([sql_text(parameters), *(sql_value(row[column]) for column in columns)])
        statements.append(f"INSERT INTO {table} (parameters, {', '.join(columns)}) VALUES ({values})")
        # The KV copy goes too, so the next start can only answer from the upgraded D1 rows.
        wrangler_local(state_dir, "kv", "key", "delete", row["cache_key"], "--binding", "CACHE")
    wrangler_local(state_dir, "d1", "execute", "DB", "--command", "; ".join(statements))


@pytest.mark.e2e
def test_a_state_folder_from_before_migrations_is_upgraded_at_the_next_start(tmp_path):
    ports = (free_port(), free_port(), free_port())
    bodies = {
        "/v1/generate": {"prompt": "Name a prime number.", "max_tokens": 4},
        "/v1/embed": {"input": "An upgraded state folder."},
    }

    first = start_dev(tmp_path, ports)
    key = CURL_KEY.search(read_until_ready(first)).group(1)
    with httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", headers={"X-API-Key": key}) as client:
        answers = {route: client.post(route, json=body) for route, body in bodies.items()}
    assert stop_with_ctrl_c(first) == 0
    assert all(answer.status_code == 200 for answer in answers.values()), answers
    back_to_the_state_before_migrations(tmp_path, bodies)
    assert {row["name"] for row in d1_rows(tmp_path, "SELECT name FROM sqlite_master")} >= {
        "generation_cache",
        "embedding_cache",
    }

    second = start_dev(tmp_path, ports)
    banner = read_until_ready(second)
    with httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", headers={"X-API-Key": key}) as client:
        replays = {route: client.post(route, json=body) for route, body in bodies.items()}
    assert stop_with_ctrl_c(second) == 0

    assert "migrating the local D1" in banner
    for route, replay in replays.items():
        assert (replay.status_code, replay.headers.get("x-cache"), replay.headers.get("x-cache-tier")) == (
            200,
            "HIT",
            "d1",
        ), (route, replay.text)
        assert replay.content == answers[route].content
    migrations = [row["name"] for row in d1_rows(tmp_path, "SELECT name FROM d1_migrations ORDER BY id")]
    assert migrations == sorted(path.name for path in MIGRATIONS_DIR.glob("*.sql"))
    stored = json.dumps(d1_rows(tmp_path, "SELECT * FROM answer_cache"))
    assert all(
        body[field] not in stored
        for body in bodies.values()
        for field in ("prompt", "input")
        if field in body
    )


def test_make_dev_refuses_a_taken_port_before_starting_anything(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        dev = start_dev(tmp_path, (free_port(), taken, free_port()))
        output, _ = dev.communicate(timeout=60)

    assert dev.returncode == 1
    assert f"port {taken} on 127.0.0.1 (wanted for the Worker (wrangler dev)) is already in use" in output
    assert not (tmp_path / "wrangler").exists(), "it touched the local stores before checking the ports"
