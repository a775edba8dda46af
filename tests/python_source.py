"""`ast.parse` for tests that read the project's own Python source."""

import ast
import gc


def parse(source: str, mode: str = "exec") -> ast.AST:
    """ast.parse with the garbage collector paused. CPython 3.11 raises `SystemError: AST constructor
    recursion depth mismatch` when a collection runs finalizers while the parser builds its nodes
    (python/cpython#106905); after a long pytest session that happened now and then."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, mode=mode)
    finally:
        if was_enabled:
            gc.enable()
