"""Loading the engines for one model file and describing what was loaded."""

import time
from dataclasses import dataclass

from runtime.config.model_source import ModelFile
from runtime.config.settings import RuntimeSettings
from runtime.engine.engines import EmbeddingEngine, GenerationEngine, LlamaOptions
from runtime.engine.fingerprint import Fingerprint, compute_fingerprint

# The runtime's two engines over one model file; each has its own worker, queue and metrics label.
MODEL_KINDS = ("generate", "embed")


@dataclass(frozen=True)
class LoadedModels:
    model: ModelFile
    generator: GenerationEngine
    embedder: EmbeddingEngine
    fingerprint: Fingerprint
    load_seconds: dict[str, float]


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
    return LoadedModels(
        model=model,
        generator=generator,
        embedder=embedder,
        fingerprint=compute_fingerprint(model, settings),
        load_seconds={"generate": generator_seconds, "embed": embedder_seconds},
    )
