"""One `pulumi.ComponentResource` per concern; each takes a frozen args dataclass.

Dynamic providers and moved modules: Pulumi keeps each dynamic resource's provider in the stack state
pickled by import path (`infra.components.d1_schema.D1SchemaProvider`), and `pulumi refresh` and the delete
of a replaced or removed resource load it from there, not from the program. A provider module that moves
must therefore stay importable under every path a deployed stack may have recorded: `MOVED_MODULES` maps
each former path to where the module lives now (tests/infra/test_provider_state_paths.py holds the paths).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED_MODULES = {
    # Moved into cloudflare/ beside aws/ (stacks deployed before that recorded these paths).
    "infra.components.d1_schema": "infra.components.cloudflare.d1_schema",
    "infra.components.model_artifact": "infra.components.cloudflare.model_artifact",
    "infra.components.logpush_challenge": "infra.components.cloudflare.logpush_challenge",
    "infra.components.rotation_window": "infra.components.cloudflare.rotation_window",
}


class _FormerPath(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a former path as a module holding the current module's names (the same class objects)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        current = importlib.import_module(MOVED_MODULES[module.__name__])
        module.__dict__.update({k: v for k, v in vars(current).items() if not k.startswith("__")})


if not any(isinstance(finder, _FormerPath) for finder in sys.meta_path):
    sys.meta_path.append(_FormerPath())
