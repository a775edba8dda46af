"""The fingerprint: a short digest of everything that decides the bytes of an answer.

The edge puts it into every cache key, so a new model file, llama.cpp build, backend or decoding setting
starts a fresh cache namespace instead of serving answers that this runtime would no longer produce.
"""

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

import llama_cpp
import numpy as np

from runtime.config.model_source import ModelFile
from runtime.config.settings import RuntimeSettings
from runtime.engine.grammar import GRAMMAR_ENGINE
from runtime.engine.relevance import RELEVANCE_METHOD
from runtime.engine.sampling import SAMPLER
from runtime.engine.slots import DECODING_PATH

HEADER = "X-Model-Fingerprint"


@dataclass(frozen=True)
class Fingerprint:
    value: str
    backend: str
    versions: dict[str, str]


def detect_backend(n_gpu_layers: int) -> str:
    if n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload():
        return "cuda"
    return "cpu"


def gpu_description() -> str:
    """Every visible GPU's model and driver version, e.g. `NVIDIA H100 80GB HBM3 (driver 550.90.07)`.

    Another GPU model or driver can pick other kernels (and so other rounding) for the same build, so on
    a GPU they are part of the fingerprint. `unknown` when nvidia-smi cannot say: a new namespace then
    comes from the probes' digest at the edge, not from here.
    """
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return "unknown"
    try:
        listed = subprocess.run(
            [nvidia_smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    gpus = []
    for line in listed.splitlines():
        name, _, driver = line.rpartition(",")
        if name.strip():
            gpus.append(f"{name.strip()} (driver {driver.strip()})")
    return "; ".join(gpus) or "unknown"


def compute_fingerprint(model: ModelFile, settings: RuntimeSettings) -> Fingerprint:
    backend = detect_backend(settings.n_gpu_layers)
    versions = {
        "llama_cpp_python": llama_cpp.__version__,
        # llama-cpp-python pins the llama.cpp commit it vendors; the system info adds the compiled-in
        # CPU/GPU features, which select different kernels and so different rounding.
        "llama_cpp_system": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
        "python": sys.version.split()[0],
        # The sampler's float64 arithmetic (exp, cumsum) runs in numpy.
        "numpy": np.__version__,
    }
    decisive = {
        "model_sha256": model.sha256,
        "llama_cpp_python": versions["llama_cpp_python"],
        "llama_cpp_system": versions["llama_cpp_system"],
        "backend": backend,
        "n_gpu_layers": settings.n_gpu_layers,
        "n_ctx": settings.n_ctx,
        "default_seed": settings.default_seed,
        # A request without max_tokens is as long as this allows; the Worker's cache key has no max_tokens.
        "default_max_tokens": settings.default_max_tokens,
        "sampling": SAMPLER,
        "numpy": versions["numpy"],
        # How requests share the model (batched decoding); not the slot count, which changes no answer.
        "decoding_path": DECODING_PATH,
        # Structured output: the schema-to-grammar converter and this runtime's corrections to it.
        "grammar": GRAMMAR_ENGINE,
        "embedding": {"pooling": "mean", "normalize": "l2", "dtype": "float32"},
        "rerank": RELEVANCE_METHOD,
    }
    if backend != "cpu":  # the CPU fingerprint stays as it was, so today's caches and goldens stay valid
        versions["gpu"] = decisive["gpu"] = gpu_description()
    canonical = json.dumps(decisive, sort_keys=True, separators=(",", ":"))
    return Fingerprint(hashlib.sha256(canonical.encode()).hexdigest()[:32], backend, versions)
