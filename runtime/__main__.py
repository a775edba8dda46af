"""`python -m runtime [--host H] [--port P] [...]`: flags override the RUNTIME_* environment variables."""

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError

from runtime.app import app_for_model
from runtime.model_source import ModelSourceError, resolve_model
from runtime.settings import RuntimeSettings, describe_settings_error

IDLE_CONNECTION_TIMEOUT_S = 60

# Flags for the settings one changes by hand; everything else is environment only (docs/runtime.md).
_FLAGS = {
    "host": str,
    "port": int,
    "model_path": str,
    "model_url": str,
    "model_sha256": str,
    "model_cache_dir": str,
    "n_ctx": int,
    "n_gpu_layers": int,
    "n_threads": int,
    "queue_size": int,
}


def parse_overrides(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__)
    for name, kind in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    arguments = vars(parser.parse_args(argv))
    return {key: value for key, value in arguments.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    overrides = parse_overrides(sys.argv[1:] if argv is None else argv)
    log_level = str(overrides.pop("log_level"))
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = RuntimeSettings(**overrides)
    except ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        return 2
    try:
        model = resolve_model(settings)
    except ModelSourceError as error:
        print(f"runtime: {error}", file=sys.stderr)
        return 1
    app = app_for_model(settings, model)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        # uvicorn closes idle connections after 5 s, often just as the Worker (or cloudflared) reuses
        # one; a minute keeps pooled connections alive between bursts, as load balancers usually do.
        timeout_keep_alive=IDLE_CONNECTION_TIMEOUT_S,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
