"""`python -m bench.startup [--rounds N]`: what the golden probes add to a runtime's start-up.

The start-up without the self-check (`RUNTIME_PROBES=off`: load the model) is the alternative; with it,
the probes of runtime/probes.json are decoded after the load. Both are timed in the same process, on the
model and settings the RUNTIME_* variables name; each round loads afresh. Prints one JSON object: median
seconds of the load and of the probes, their ratio, and the load average before and after.
"""

import argparse
import json
import os
import statistics
import time

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.models import load_models


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    load_before = os.getloadavg()[0]
    settings = RuntimeSettings(probes="check")
    model = resolve_model(settings)
    loads, probes = [], []
    for _ in range(arguments.rounds):
        started = time.perf_counter()
        models = load_models(model, settings)
        total = time.perf_counter() - started
        probes.append(models.probe_seconds)
        loads.append(total - models.probe_seconds)
        del models
    load_s, probe_s = statistics.median(loads), statistics.median(probes)
    print(
        json.dumps(
            {
                "rounds": arguments.rounds,
                "load_seconds_median": round(load_s, 3),
                "probe_seconds_median": round(probe_s, 3),
                "probes_over_load": round(probe_s / load_s, 3),
                "start_up_with_probes_over_without": round((load_s + probe_s) / load_s, 3),
                "load_average_before": load_before,
                "load_average_after": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
