"""The Worker bundle that `pulumi up` uploads: wrangler's own build of `edge/` (esbuild, the same one
`wrangler deploy` would run), so the deployed code is byte-identical to a wrangler deploy."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT

EDGE_DIR = REPO_ROOT / "edge"
DEFAULT_OUT_DIR = EDGE_DIR / "worker-bundle"
MAIN_MODULE = "index.js"
# The build is edge/package.json's `build` script (its one home), writing to $WORKER_BUNDLE_DIR.
BUILD_COMMAND = ("npm", "run", "--silent", "build")
OUT_DIR_VARIABLE = "WORKER_BUNDLE_DIR"


def offline_env(path: Path = EDGE_DIR / "offline.env") -> dict[str, str]:
    """The settings every wrangler run gets (edge/offline.env, their one home: why is written there)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def build_env(out_dir: Path) -> dict[str, str]:
    """The environment (besides os.environ) of BUILD_COMMAND writing the bundle to `out_dir`."""
    return {**offline_env(), OUT_DIR_VARIABLE: str(out_dir)}


class WorkerBundleError(RuntimeError):
    pass


@dataclass(frozen=True)
class WorkerBundle:
    main_module: Path
    sha256: str

    @classmethod
    def from_dir(cls, out_dir: Path) -> WorkerBundle:
        main = out_dir / MAIN_MODULE
        if not main.is_file():
            raise WorkerBundleError(f"{main} is missing: build the bundle first")
        extra = sorted(
            p.name
            for p in out_dir.iterdir()
            if p.suffix in (".js", ".mjs", ".wasm") and p.name != MAIN_MODULE
        )
        if extra:
            # The program uploads one module; a split bundle would deploy a Worker missing code.
            raise WorkerBundleError(
                f"the bundle in {out_dir} has extra modules {extra}; only {MAIN_MODULE} is uploaded"
            )
        return cls(main_module=main, sha256=hashlib.sha256(main.read_bytes()).hexdigest())


def build_worker_bundle(out_dir: Path = DEFAULT_OUT_DIR) -> WorkerBundle:
    """Run the Worker's build (`npm run build`: wrangler's dry-run deploy) in edge/ (needs
    edge/node_modules: `npm ci` there)."""
    if not (EDGE_DIR / "node_modules" / ".bin" / "wrangler").exists():
        raise WorkerBundleError(f"{EDGE_DIR}/node_modules has no wrangler: run `npm ci` in edge/ first")
    result = subprocess.run(
        BUILD_COMMAND,
        cwd=EDGE_DIR,
        env={**os.environ, **build_env(out_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise WorkerBundleError(
            f"wrangler could not build the Worker (exit {result.returncode}):\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return WorkerBundle.from_dir(out_dir)
