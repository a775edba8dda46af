"""`python -m runtime.probes record|check [--file F]`: the golden probes of the model the settings name.

`record` decodes the probes with this machine's build and backend and writes their answers into the
probes file under `<model sha256>/<backend>` (other keys are kept): run it once per new model or backend
(e.g. on the first GPU host), review the diff and commit it. `check` decodes and compares as the
runtime does at start-up, exiting 1 when an answer differs. The model and the engines come from the same
RUNTIME_* settings as `python -m runtime`.
"""

import argparse
import json
import logging
import sys

from pydantic import ValidationError

from runtime.config.model_source import ModelSourceError, resolve_model
from runtime.config.settings import RuntimeSettings, describe_settings_error
from runtime.engine.models import load_models
from runtime.engine.probes import golden_key, judge, probes_path, read_probe_file, write_goldens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.probes", description=__doc__)
    parser.add_argument("action", choices=["record", "check"])
    parser.add_argument(
        "--file", help="the probes file (default: RUNTIME_PROBES_FILE or runtime/probes.json)"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level="WARNING")
    try:
        overrides: dict[str, object] = {"probes": "check"}
        if arguments.file:
            overrides["probes_file"] = arguments.file
        settings = RuntimeSettings(**overrides)
        models = load_models(resolve_model(settings), settings)
    except ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        return 2
    except ModelSourceError as error:
        print(f"runtime.probes: {error}", file=sys.stderr)
        return 1
    path = probes_path(settings.probes_file)
    key = golden_key(models.model.sha256, models.fingerprint)
    answers = models.probe_answers or {}
    probes, goldens = read_probe_file(path)
    if arguments.action == "record":
        write_goldens(path, key, answers)
        outcome = judge("check", key, probes, answers, {key: answers})
        print(f"recorded {len(answers)} probe answers under {key} in {path} (digest {outcome.digest})")
        return 0
    outcome = judge("require", key, probes, answers, goldens)
    print(json.dumps({**outcome.as_status(), "seconds": round(models.probe_seconds, 3)}))
    if outcome.blocks_readiness:
        print(outcome.describe(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
