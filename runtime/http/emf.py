"""Load reports as CloudWatch Embedded Metric Format (EMF): one JSON document per model per interval, on
stdout, where the task's awslogs driver picks it up and CloudWatch Logs extracts the metrics (no agent,
no PutMetricData permission). Names, dimensions and units: docs/interfaces.md.

The format (AWS, "Specification: Embedded metric format"): a JSON object whose `_aws` member holds
`Timestamp` (ms since the epoch) and `CloudWatchMetrics`, a list of directives `{Namespace, Dimensions:
[[dimension names]], Metrics: [{Name, Unit}]}`; every dimension and metric named there is a top-level
member of the same object, dimensions with string values and metrics with numbers.
"""

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from runtime.engine.load import LoadTracker
from runtime.engine.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

# The units CloudWatch accepts (MetricDatum.Unit); anything else is refused by the EMF extraction.
ALLOWED_UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds",
        "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
        "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
        "Count/Second", "None",
    }
)  # fmt: skip

DIMENSIONS = ("Service", "Model")

# Where each model's token count lives in the Prometheus registry (the one home of those counts).
_TOKEN_SAMPLES = {
    "generate": ("runtime_generated_tokens_total", {}),
    "embed": ("runtime_prompt_tokens_total", {"kind": "embed"}),
}


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: float


def emf_document(
    namespace: str, dimensions: dict[str, str], metrics: list[Metric], timestamp_ms: int
) -> dict:
    """One EMF document; ValueError when it would break the specification."""
    if not 1 <= len(namespace) <= 255:
        raise ValueError("an EMF namespace has 1 to 255 characters")
    for metric in metrics:
        if metric.unit not in ALLOWED_UNITS:
            raise ValueError(f"{metric.unit!r} is not a CloudWatch unit")
    names = [*dimensions, *(metric.name for metric in metrics)]
    if len(set(names)) != len(names) or "_aws" in names:
        raise ValueError("dimension and metric names must be distinct members")
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": metric.name, "Unit": metric.unit} for metric in metrics],
                }
            ],
        },
        **dimensions,
        **{metric.name: metric.value for metric in metrics},
    }


class LoadReporter:
    """Every `interval_s` prints one EMF line per model: what waits and runs, tokens/s, p95 queue wait."""

    def __init__(
        self,
        load: LoadTracker,
        metrics: RuntimeMetrics,
        namespace: str,
        service: str,
        interval_s: float,
        out: TextIO | None = None,
    ):
        self._load = load
        self._metrics = metrics
        self._namespace = namespace
        self._service = service
        self._interval_s = interval_s
        self._out = out
        self._tokens = self._token_counts()
        self._since = time.monotonic()

    def _token_counts(self) -> dict[str, float]:
        registry = self._metrics.registry
        return {
            model: registry.get_sample_value(name, labels) or 0.0
            for model, (name, labels) in _TOKEN_SAMPLES.items()
        }

    def documents(self) -> list[dict]:
        """The documents for the interval that ends now (and starts the next one)."""
        now = time.monotonic()
        elapsed = max(now - self._since, 1e-9)
        tokens = self._token_counts()
        timestamp_ms = int(time.time() * 1000)
        documents = []
        for model, load in self._load.report().items():
            processed = tokens.get(model, 0.0) - self._tokens.get(model, 0.0)
            metrics = [
                Metric("QueueDepth", "Count", load.queued),
                Metric("InFlight", "Count", load.running),
                Metric("TokensPerSecond", "Count/Second", round(processed / elapsed, 3)),
                Metric("QueueWaitP95", "Milliseconds", round(load.wait_p95_seconds * 1000, 3)),
            ]
            dimensions = {"Service": self._service, "Model": model}
            documents.append(emf_document(self._namespace, dimensions, metrics, timestamp_ms))
        self._tokens, self._since = tokens, now
        return documents

    def emit(self) -> None:
        out = self._out or sys.stdout  # looked up late: tests and uvicorn may swap sys.stdout
        for document in self.documents():
            out.write(json.dumps(document, separators=(",", ":")) + "\n")
        out.flush()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                self.emit()
            except Exception:  # a broken stdout must not take serving down with it
                log.exception("writing the load report failed")
