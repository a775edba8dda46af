"""Facts the program reads from the runtime's Dockerfiles instead of repeating them: the CUDA architectures
the image is compiled for, where it caches the model, which user it runs as, and which files it copies in.

A Dockerfile is the one home of these facts; infra (instance-type validation, the model-cache mount, the
build context) follows it, so changing the Dockerfile cannot leave a stale copy behind.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from infra import REPO_ROOT

CONTAINER_DIR = REPO_ROOT / "container"
CUDA_DOCKERFILE = CONTAINER_DIR / "Dockerfile.cuda"
CPU_DOCKERFILE = CONTAINER_DIR / "Dockerfile.cpu"


class DockerfileError(ValueError):
    """The Dockerfile no longer states a fact the program relies on."""


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    result = []
    for text in joined:
        keyword, _, arguments = text.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def _assignments(arguments: str) -> dict[str, str]:
    """`KEY=value KEY2="value two"` (ENV/ARG syntax) as a dict; a bare `KEY` maps to ""."""
    values = {}
    for word in shlex.split(arguments):
        key, _, value = word.partition("=")
        values[key] = value
    return values


def arg_default(path: Path, name: str) -> str:
    """The default of `ARG name=…` (the first one, whichever stage)."""
    for keyword, arguments in instructions(path):
        if keyword == "ARG":
            values = _assignments(arguments)
            if name in values and values[name]:
                return values[name]
    raise DockerfileError(f"{path.name} declares no default for ARG {name}")


def final_stage(path: Path) -> list[tuple[str, str]]:
    """The instructions of the last stage: what the running image is made of."""
    stages: list[list[tuple[str, str]]] = [[]]
    for keyword, arguments in instructions(path):
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, arguments))
    return stages[-1]


def env_value(path: Path, name: str) -> str:
    """The value the final stage's `ENV` gives `name`."""
    found = None
    for keyword, arguments in final_stage(path):
        if keyword == "ENV":
            found = _assignments(arguments).get(name, found)
    if found is None:
        raise DockerfileError(f"{path.name}'s final stage sets no ENV {name}")
    return found


def run_as(path: Path) -> tuple[int, int]:
    """(uid, gid) of the final stage's numeric `USER uid:gid`."""
    users = [arguments for keyword, arguments in final_stage(path) if keyword == "USER"]
    match = re.fullmatch(r"(\d+):(\d+)", users[-1]) if users else None
    if match is None:
        raise DockerfileError(f"{path.name}'s final stage has no numeric USER uid:gid")
    return int(match.group(1)), int(match.group(2))


def cuda_architectures(path: Path = CUDA_DOCKERFILE) -> tuple[int, ...]:
    """Compute capabilities the CUDA build compiles kernels for (`ARG CUDA_ARCHITECTURES="75;80;…"`)."""
    raw = arg_default(path, "CUDA_ARCHITECTURES")
    try:
        return tuple(int(item.split("-")[0]) for item in raw.split(";") if item)
    except ValueError as error:
        raise DockerfileError(
            f"{path.name}: CUDA_ARCHITECTURES {raw!r} is not a ;-list of numbers"
        ) from error


def copied_sources(path: Path) -> list[str]:
    """Every build-context path a `COPY`/`ADD` reads (copies from another stage are not the context's)."""
    sources = []
    for keyword, arguments in instructions(path):
        if keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(arguments)
        if any(word.startswith("--from=") for word in words):
            continue
        paths = [word for word in words if not word.startswith("--")]
        sources.extend(paths[:-1])
    return sources
