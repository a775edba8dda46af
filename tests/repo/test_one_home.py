"""Facts written once: the offline wrangler environment lives in edge/offline.env and the Worker build in
edge/package.json's `build` script; every other place reads them, so no copy can drift."""

from __future__ import annotations

import json
import subprocess

from infra.worker_bundle import BUILD_COMMAND, EDGE_DIR, build_env, offline_env
from tests.repo.test_paths import REPO, tracked_files

OFFLINE_ENV_FILE = "edge/offline.env"
THIS_FILE = "tests/repo/test_one_home.py"


def files_containing(text: str) -> list[str]:
    """Tracked files other than docs (which may show a value to a reader) and this test that contain
    `text`."""
    return [
        path
        for path in tracked_files()
        if not path.endswith(".md")
        and path != THIS_FILE
        and text in (REPO / path).read_text(errors="replace")
    ]


def test_the_offline_settings_are_written_only_in_offline_env():
    names = offline_env()
    assert names == {"WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false"}
    for name in names:
        assert files_containing(name) == [OFFLINE_ENV_FILE], name


def test_the_worker_build_command_is_written_only_in_package_json():
    build = json.loads((EDGE_DIR / "package.json").read_text())["scripts"]["build"]
    assert build.startswith("wrangler deploy --dry-run")
    assert files_containing("--dry-run") == ["edge/package.json"]
    assert BUILD_COMMAND[-1] == "build"


def test_make_exports_exactly_the_offline_settings():
    """The Makefile includes edge/offline.env: every recipe (vitest, tsc, the dev stack) runs with it."""
    printed = subprocess.run(
        ["make", "-s", "-f", "Makefile", "-f", "-", "print-offline-env"],
        input="print-offline-env:\n\t@env\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    exported = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    assert {name: exported.get(name) for name in offline_env()} == offline_env()


def test_the_bundle_build_writes_where_it_is_told(tmp_path):
    """build_env points package.json's script at the folder infra and the harness ask for."""
    from infra.worker_bundle import build_worker_bundle

    bundle = build_worker_bundle(tmp_path / "bundle")
    assert bundle.main_module == tmp_path / "bundle" / "index.js"
    assert build_env(tmp_path)["WORKER_BUNDLE_DIR"] == str(tmp_path)
