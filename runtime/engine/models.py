"""Loading the engines for one model file and describing what was loaded."""

import time
from dataclasses import dataclass

from runtime.config.model_source import ModelFile
from runtime.config.settings import RuntimeSettings
from runtime.engine.engines import EmbeddingEngine, GenerationEngine, LlamaOptions
from runtime.engine.fingerprint import Fingerprint, compute_fingerprint
from runtime.engine.probes import Probe, decode_probes, probes_path, read_probe_file

# The runtime's two engines over one model file; each has its own worker, queue and metrics label.
MODEL_KINDS = ("generate", "embed")


@dataclass(frozen=True)
class LoadedModels:
    model: ModelFile
    generator: GenerationEngine
    embedder: EmbeddingEngine
    fingerprint: Fingerprint
    load_seconds: dict[str, float]
    # The golden probes decoded right after loading (runtime/engine/probes.py); None when RUNTIME_PROBES=off.
    probe_answers: dict[str, str] | None = None
    probe_seconds: float = 0.0


def load_models(model: ModelFile, settings: RuntimeSettings) -> LoadedModels:
    options = LlamaOptions(
        n_ctx=settings.n_ctx,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.n_threads,
        seed=settings.default_seed,
        slots=settings.decode_slots,
    )
    started = time.perf_counter()
    generator = GenerationEngine(str(model.path), options)
    generator_seconds = time.perf_counter() - started
    embedder = EmbeddingEngine(str(model.path), options)
    embedder_seconds = time.perf_counter() - started - generator_seconds
    probe_answers, probe_seconds = None, 0.0
    if settings.probes != "off":
        probes, _ = read_probe_file(probes_path(settings.probes_file))
        probe_answers, probe_seconds = _timed_probes(probes, generator, embedder)
    return LoadedModels(
        model=model,
        generator=generator,
        embedder=embedder,
        fingerprint=compute_fingerprint(model, settings),
        load_seconds={"generate": generator_seconds, "embed": embedder_seconds},
        probe_answers=probe_answers,
        probe_seconds=probe_seconds,
    )


def _timed_probes(
    probes: list[Probe], generator: GenerationEngine, embedder: EmbeddingEngine
) -> tuple[dict[str, str], float]:
    started = time.perf_counter()
    answers = decode_probes(probes, generator, embedder)
    return answers, time.perf_counter() - started
