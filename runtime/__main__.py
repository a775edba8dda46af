"""`python -m runtime [--host H] [--port P] [...]`: one flag per setting (but secrets); flags override the
RUNTIME_* environment variables."""

import argparse
import logging
import sys
from typing import get_args

import uvicorn
from pydantic import SecretStr, ValidationError

from runtime.config.model_source import ModelSourceError, resolve_model
from runtime.config.settings import RuntimeSettings, describe_settings_error, environment_variable
from runtime.http.app import app_for_model
from runtime.http.drain import DrainingServer

IDLE_CONNECTION_TIMEOUT_S = 60
SHUTDOWN_AFTER_DRAIN_S = 5


def settings_flags() -> dict[str, str]:
    """`--flag` → settings field, for every field but secrets (a command line is visible to every user
    of the host, so those are environment only)."""
    return {
        f"--{name.replace('_', '-')}": name
        for name, field in RuntimeSettings.model_fields.items()
        if SecretStr not in get_args(field.annotation) and field.annotation is not SecretStr
    }


def parse_overrides(argv: list[str]) -> dict[str, object]:
    """The flags, built from the settings fields and their descriptions (as llama-cpp-python's server
    builds its CLI), so a new setting gets its flag and its help text from its one definition. Values
    stay strings: the settings parse them exactly as they parse the same RUNTIME_* variable."""
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__)
    for flag, name in settings_flags().items():
        field = RuntimeSettings.model_fields[name]
        default = "unset" if field.default is None else field.default
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            metavar=name.upper(),
            help=f"{field.description} (env {environment_variable(name)}; default: {default})".replace(
                "%", "%%"
            ),
        )
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
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        # uvicorn closes idle connections after 5 s, often just as the Worker (or cloudflared) reuses
        # one; a minute keeps pooled connections alive between bursts, as load balancers usually do.
        timeout_keep_alive=IDLE_CONNECTION_TIMEOUT_S,
        # The drain has waited for every accepted request already (runtime/http/drain.py); this bounds only
        # what is left after its grace period ran out.
        timeout_graceful_shutdown=SHUTDOWN_AFTER_DRAIN_S,
    )
    drain = app.state.runtime.drain
    DrainingServer(config, drain).run()
    return 1 if drain.cut_off else 0


if __name__ == "__main__":
    sys.exit(main())
