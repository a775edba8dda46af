"""What one app knows at run time: settings, metrics, and the service once the models have loaded."""

import logging
import time
from collections.abc import Callable

from fastapi import Request

from runtime.config.settings import RuntimeSettings
from runtime.engine.load import LoadTracker
from runtime.engine.metrics import RuntimeMetrics
from runtime.engine.models import MODEL_KINDS, LoadedModels
from runtime.engine.probes import ProbeOutcome, golden_key, judge, probes_path, read_probe_file
from runtime.engine.service import InferenceService
from runtime.errors import ApiError
from runtime.http.drain import Drain

log = logging.getLogger(__name__)

LOADING_RETRY_AFTER_SECONDS = 5


class RuntimeState:
    def __init__(self, settings: RuntimeSettings, metrics: RuntimeMetrics):
        self.settings = settings
        self.metrics = metrics
        self.load_tracker = LoadTracker(MODEL_KINDS)
        self.drain = Drain(self.load_tracker, settings.drain_seconds)
        self.service: InferenceService | None = None
        self.load_error: str | None = None
        # The start-up self-check's result; the runtime never serves while it blocks readiness.
        self.probes: ProbeOutcome | None = None
        self._closed = False

    def load(self, loader: Callable[[], LoadedModels]) -> None:
        """Runs on a background thread so /healthz and /readyz answer while the model loads."""
        started = time.perf_counter()
        try:
            models = loader()
            self.probes = self._judge_probes(models)
            if self.probes.blocks_readiness:
                log.error("not ready: the determinism self-check failed: %s", self.probes.describe())
                return
            if self.probes.status == "unrecorded":
                log.warning("%s", self.probes.describe())
            service = InferenceService(models, self.settings, self.metrics, self.load_tracker)
            service.start()
        except Exception as error:
            log.exception("loading the models failed")
            self.load_error = f"{type(error).__name__}: {error}"
            return
        if self._closed:  # shut down while loading
            service.stop()
            return
        for kind, seconds in models.load_seconds.items():
            self.metrics.model_load_seconds.labels(model=kind).set(seconds)
        self.service = service
        self.metrics.ready.set(1)
        log.info(
            "ready in %.1fs (probes %s in %.2fs, digest %s): %s (fingerprint %s)",
            time.perf_counter() - started,
            self.probes.status,
            models.probe_seconds,
            self.probes.digest,
            models.model.name,
            models.fingerprint.value,
        )

    def _judge_probes(self, models: LoadedModels) -> ProbeOutcome:
        probes, goldens = read_probe_file(probes_path(self.settings.probes_file))
        key = golden_key(models.model.sha256, models.fingerprint)
        return judge(self.settings.probes, key, probes, models.probe_answers, goldens)

    def require_service(self) -> InferenceService:
        if self.service is not None:
            return self.service
        if self.probes is not None and self.probes.blocks_readiness:
            raise ApiError(
                "probe_check_failed", f"the determinism self-check failed: {self.probes.describe()}"
            )
        if self.load_error is not None:
            raise ApiError("load_failed", f"the model failed to load: {self.load_error}")
        raise ApiError(
            "not_ready",
            "the model is still loading",
            headers={"Retry-After": str(LOADING_RETRY_AFTER_SECONDS)},
        )

    def close(self) -> None:
        self._closed = True
        if self.service is not None:
            self.service.stop()


def runtime_state(request: Request) -> RuntimeState:
    return request.app.state.runtime
