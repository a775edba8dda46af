"""Golden probes: a determinism self-check decoded at start-up, before the runtime says it is ready.

The fingerprint names what should decide an answer's bytes; the probes check that it did. A few short,
committed requests are decoded by the loaded engines and compared with the answers recorded for this
model file (sha256), backend and kernel build in `runtime/probes.json` (written by
`python -m runtime.probes record`).
A CUDA library, AMI, driver or hardware change that alters answers under the same key changes a probe
answer, and the runtime then stays unready, naming the probe, instead of serving (and the edge caching)
other bytes. The digest of the answers goes on `GET /v1/status`, where the Worker compares it across
origins of one fingerprint.
"""

import hashlib
import json
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

from runtime.engine.engines import EmbeddingEngine, GenerationEngine
from runtime.engine.fingerprint import Fingerprint
from runtime.engine.sampling import Sampler, SamplingParams

ProbePolicy = Literal["check", "require", "off"]

BUNDLED_FILE = "probes.json"


@dataclass(frozen=True)
class Probe:
    name: str
    kind: Literal["generate", "embed"]
    text: str
    # Generation only: few tokens keep start-up short, yet any change of a logit's argmax shows.
    max_tokens: int = 0
    # Above 0: seeded sampling (runtime/engine/sampling.py), which also checks the random stream's draws.
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class ProbeOutcome:
    """What the start-up check found: `status` is passed, unrecorded, mismatch or off."""

    policy: ProbePolicy
    status: Literal["passed", "unrecorded", "mismatch", "off"]
    golden_key: str
    digest: str | None
    count: int
    # The first probe (in file order) whose answer differs from its golden, and both answers.
    differing: str | None = None
    expected: str | None = None
    actual: str | None = None

    @property
    def blocks_readiness(self) -> bool:
        return self.status == "mismatch" or (self.status == "unrecorded" and self.policy == "require")

    def describe(self) -> str:
        if self.status == "mismatch" and self.expected is None:
            return f"probe {self.differing!r} has no answer recorded for {self.golden_key}: record them again"
        if self.status == "mismatch":
            return (
                f"probe {self.differing!r} answered {self.actual!r}, but {self.expected!r} is recorded for "
                f"{self.golden_key}: this build does not reproduce the recorded answers"
            )
        if self.status == "unrecorded":
            return (
                f"no golden probe answers are recorded for {self.golden_key} (RUNTIME_PROBES={self.policy}); "
                "record them with `python -m runtime.probes record`"
            )
        return f"probes {self.status}"

    def as_status(self) -> dict[str, object]:
        """The `probes` object of GET /v1/status."""
        return {
            "policy": self.policy,
            "status": self.status,
            "digest": self.digest,
            "count": self.count,
            "golden_key": self.golden_key,
        }


def golden_key(model_sha256: str, fingerprint: Fingerprint) -> str:
    """`<model sha256>/<backend>/<kernels>`: the goldens hold per model file, backend and the kernel set
    llama.cpp was compiled with (12 hex of the system info's sha256). Another CPU feature set legitimately
    rounds differently and already has its own fingerprint, so it gets its own goldens; the GPU model and
    driver are deliberately not part of the key, so a driver or AMI change that alters answers is caught."""
    kernels = hashlib.sha256(fingerprint.versions["llama_cpp_system"].encode("utf-8")).hexdigest()[:12]
    return f"{model_sha256}/{fingerprint.backend}/{kernels}"


def probes_path(configured: Path | None) -> Path:
    return configured if configured is not None else Path(str(files("runtime").joinpath(BUNDLED_FILE)))


def read_probe_file(path: Path) -> tuple[list[Probe], dict[str, dict[str, str]]]:
    """The probes (in file order) and the goldens: golden key → probe name → answer."""
    data = json.loads(path.read_text(encoding="utf-8"))
    probes = [Probe(**entry) for entry in data["probes"]]
    return probes, data.get("goldens", {})


def write_goldens(path: Path, key: str, answers: dict[str, str]) -> None:
    """Records `answers` under `key`, keeping every other key's goldens."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("goldens", {})[key] = answers
    data["goldens"] = dict(sorted(data["goldens"].items()))
    path.write_text(json.dumps(data, indent="\t", ensure_ascii=False) + "\n", encoding="utf-8")


def decode_probes(
    probes: list[Probe], generator: GenerationEngine, embedder: EmbeddingEngine
) -> dict[str, str]:
    """Each probe's answer: the generated text, or `sha256:<hex>` of the embedding's float32 bytes."""
    never = threading.Event()
    answers: dict[str, str] = {}
    for probe in probes:
        if probe.kind == "generate":
            tokens = generator.tokenize_prompt(probe.text)
            sampler = None
            if probe.temperature > 0:
                sampler = Sampler(SamplingParams(temperature=probe.temperature), probe.seed, 0, tokens)
            answers[probe.name] = generator.generate(
                tokens, probe.max_tokens, [], never, sampler=sampler
            ).text
        else:
            vector = embedder.embed([probe.text], never)[0]
            answers[probe.name] = "sha256:" + hashlib.sha256(vector.astype("<f4").tobytes()).hexdigest()
    return answers


def answers_digest(answers: dict[str, str]) -> str:
    canonical = json.dumps(answers, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def judge(
    policy: ProbePolicy,
    key: str,
    probes: list[Probe],
    answers: dict[str, str] | None,
    goldens: dict[str, dict[str, str]],
) -> ProbeOutcome:
    """Compares the decoded answers with the goldens recorded under `key`."""
    if policy == "off" or answers is None:
        return ProbeOutcome("off", "off", key, None, 0)
    digest = answers_digest(answers)
    recorded = goldens.get(key)
    if recorded is None:
        return ProbeOutcome(policy, "unrecorded", key, digest, len(answers))
    for probe in probes:
        expected, actual = recorded.get(probe.name), answers.get(probe.name)
        if expected is None or expected != actual:
            return ProbeOutcome(
                policy,
                "mismatch",
                key,
                digest,
                len(answers),
                differing=probe.name,
                expected=expected,
                actual=actual,
            )
    return ProbeOutcome(policy, "passed", key, digest, len(answers))
