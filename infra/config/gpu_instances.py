"""Which EC2 GPU instance types can run the runtime image, decided before anything is declared.

A type works only if all three hold: it is x86_64 (the ECS GPU AMI the stack boots and the `linux/amd64`
image are x86_64 only), its GPU is NVIDIA (the AMI loads only the NVIDIA driver; an AMD GPU registers no
GPUs with ECS, so tasks are never placed), and the GPU's compute capability is one the CUDA build compiled
kernels for (`CUDA_ARCHITECTURES` in container/Dockerfile.cuda; PTX only JIT-compiles forward, so an older
GPU fails at the first kernel with "no kernel image is available").

Sources: the EC2 accelerated-computing instance pages (GPU model and CPU architecture per family) and
NVIDIA's compute-capability table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.dockerfile import cuda_architectures

INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[0-9]*x?large|metal(-[0-9]+xl)?)$")


@dataclass(frozen=True)
class GpuFamily:
    gpu: str
    vendor: str  # "nvidia" | "amd"
    cpu_architecture: str  # "x86_64" | "arm64"
    compute_capability: int | None  # NVIDIA only, as in CUDA_ARCHITECTURES (8.6 → 86)
    instead: str  # a type that works, for the error message


FAMILIES: dict[str, GpuFamily] = {
    "g4dn": GpuFamily("NVIDIA T4", "nvidia", "x86_64", 75, "g4dn.xlarge"),
    "g5": GpuFamily("NVIDIA A10G", "nvidia", "x86_64", 86, "g5.xlarge"),
    "g6": GpuFamily("NVIDIA L4", "nvidia", "x86_64", 89, "g6.xlarge"),
    "gr6": GpuFamily("NVIDIA L4", "nvidia", "x86_64", 89, "gr6.4xlarge"),
    "g6e": GpuFamily("NVIDIA L40S", "nvidia", "x86_64", 89, "g6e.xlarge"),
    "p4d": GpuFamily("NVIDIA A100", "nvidia", "x86_64", 80, "p4d.24xlarge"),
    "p4de": GpuFamily("NVIDIA A100 80GB", "nvidia", "x86_64", 80, "p4de.24xlarge"),
    "p5": GpuFamily("NVIDIA H100", "nvidia", "x86_64", 90, "p5.48xlarge"),
    "p5e": GpuFamily("NVIDIA H200", "nvidia", "x86_64", 90, "p5e.48xlarge"),
    "p5en": GpuFamily("NVIDIA H200", "nvidia", "x86_64", 90, "p5en.48xlarge"),
    # Refused, each with the reason the checks below give and a type that works instead.
    "g5g": GpuFamily("NVIDIA T4G", "nvidia", "arm64", 75, "g5.xlarge"),
    "g4ad": GpuFamily("AMD Radeon Pro V520", "amd", "x86_64", None, "g4dn.xlarge"),
    "g3": GpuFamily("NVIDIA Tesla M60", "nvidia", "x86_64", 52, "g4dn.xlarge"),
    "g3s": GpuFamily("NVIDIA Tesla M60", "nvidia", "x86_64", 52, "g4dn.xlarge"),
    "p2": GpuFamily("NVIDIA Tesla K80", "nvidia", "x86_64", 37, "g4dn.xlarge"),
    "p3": GpuFamily("NVIDIA Tesla V100", "nvidia", "x86_64", 70, "g5.xlarge"),
    "p3dn": GpuFamily("NVIDIA Tesla V100", "nvidia", "x86_64", 70, "g5.xlarge"),
    "p6-b200": GpuFamily("NVIDIA B200", "nvidia", "x86_64", 100, "p5.48xlarge"),
    "p6e-gb200": GpuFamily("NVIDIA GB200", "nvidia", "arm64", 100, "p5.48xlarge"),
}
DEFAULT_INSTEAD = "g5.xlarge"


def instance_type_problem(instance_type: str, architectures: tuple[int, ...] | None = None) -> str | None:
    """Why `instance_type` cannot run the runtime image, naming a type that can; None when it can."""
    built_for = architectures if architectures is not None else cuda_architectures()
    shape = INSTANCE_TYPE.fullmatch(instance_type)
    if shape is None:
        return f"{instance_type!r} is not an EC2 instance type (family.size, e.g. {DEFAULT_INSTEAD})"
    family = FAMILIES.get(shape.group("family"))
    if family is None:
        known = ", ".join(name for name, f in FAMILIES.items() if _works(f, built_for))
        return (
            f"{instance_type} is not a known NVIDIA GPU instance type for this image; use one of the "
            "families "
            f"{known} (e.g. {DEFAULT_INSTEAD})"
        )
    if family.cpu_architecture != "x86_64":
        reason = (
            f"is {family.cpu_architecture} ({family.gpu}); the ECS GPU AMI and the linux/amd64 image "
            "are x86_64 only"
        )
    elif family.vendor != "nvidia":
        reason = f"has an {family.gpu} GPU; the ECS GPU AMI loads only the NVIDIA driver, so ECS sees no GPU"
    elif family.compute_capability not in built_for:
        reason = (
            f"has an {family.gpu} (compute capability {family.compute_capability / 10:.1f}); the CUDA image "
            "is "
            f"built for {', '.join(f'{a / 10:.1f}' for a in built_for)} (CUDA_ARCHITECTURES in "
            "container/Dockerfile.cuda)"
        )
    else:
        return None
    return f"{instance_type} {reason}; use {family.instead} instead"


def _works(family: GpuFamily, built_for: tuple[int, ...]) -> bool:
    return (
        family.cpu_architecture == "x86_64"
        and family.vendor == "nvidia"
        and family.compute_capability in built_for
    )
