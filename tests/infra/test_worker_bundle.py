"""The Worker bundle the program uploads is wrangler's real build of edge/, and an unusable bundle
directory is refused with a message saying what is wrong."""

from __future__ import annotations

import hashlib
import re

import pytest

from infra.config.stack_files import stack_settings
from infra.worker_bundle import WorkerBundle, WorkerBundleError


def test_the_bundle_is_one_es_module_with_its_digest(worker_bundle):
    code = worker_bundle.main_module.read_text()
    exports = re.search(r"export \{([^}]*)\}", code)
    # Module syntax (bindings need it) exporting the handler and the Durable Object class the migrations name.
    assert exports, "the bundle is not an ES module"
    exported = {name.strip().split(" as ")[-1] for name in exports.group(1).split(",")}
    assert {"default", "Coalescer"} <= exported
    assert worker_bundle.sha256 == hashlib.sha256(code.encode()).hexdigest()


def test_a_missing_bundle_says_to_build_it(tmp_path):
    with pytest.raises(WorkerBundleError, match="index.js is missing: build the bundle first"):
        WorkerBundle.from_dir(tmp_path)


def test_a_split_bundle_is_refused(tmp_path):
    (tmp_path / "index.js").write_text("export default {}")
    (tmp_path / "chunk-1.js").write_text("export const x = 1")
    (tmp_path / "index.js.map").write_text("{}")  # source maps are not modules
    with pytest.raises(WorkerBundleError, match=r"extra modules \['chunk-1.js'\]"):
        WorkerBundle.from_dir(tmp_path)


def test_stack_settings_are_what_the_cli_hands_the_program(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\nconfig:\n  port: {type: integer, default: 8000}\n"
        "  flag: {type: boolean, default: false}\n"
        "  names: {type: array, items: {type: string}, default: [a]}\n  aws:region: us-east-1\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  demo:port: 9000\n  demo:token:\n    secure: AAABAJ4x\n  demo:names: [a, b]\n"
    )
    assert stack_settings("dev", tmp_path) == {
        "demo:port": "9000",
        "demo:flag": "false",
        "demo:names": '["a", "b"]',
        "aws:region": "us-east-1",
    }
