"""The README's configuration reference stays true to the code: every stack key, Worker var and runtime
setting is documented, with the default the code uses (fast: reads files only)."""

import re

import pytest

from infra.config.stack_files import project_file
from infra.wrangler_config import load_wrangler_config
from runtime.settings import RuntimeSettings
from scripts.local_stack import REPO_ROOT, WORKER_SECRET_NAMES

README = (REPO_ROOT / "README.md").read_text()


def reference_row(name: str) -> list[str]:
    """The cells of the README table row that documents `name`."""
    rows = [line for line in README.splitlines() if line.startswith(f"| `{name}`")]
    assert rows, f"{name} is missing from the README's configuration reference"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make dev", "make test"]
    assert README.index("make dev") < README.index("## ")


def shown(default: object) -> str:
    """A default as the README writes it: in backticks, JSON-ish for booleans and empty values."""
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return '`""`' if default == "" else f"`{default}`"


@pytest.mark.parametrize("key", sorted(project_file()["config"]))
def test_every_stack_config_key_is_documented_with_its_default(key):
    default = project_file()["config"][key].get("default")
    placeholder = default is None or str(default).startswith("REPLACE_WITH")
    assert reference_row(key)[1] == ("required" if placeholder else shown(default))


@pytest.mark.parametrize("name", sorted(load_wrangler_config()["vars"]))
def test_every_worker_var_is_documented_with_its_default(name):
    value = load_wrangler_config()["vars"][name]
    assert reference_row(name)[1] == shown(value)


def test_every_worker_secret_is_documented():
    first_cells = [line.split("|")[1] for line in README.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`([A-Z_]+)`", cell)}
    assert set(WORKER_SECRET_NAMES) <= documented


@pytest.mark.parametrize("field", sorted(RuntimeSettings.model_fields))
def test_every_runtime_setting_is_documented_with_its_default(field):
    name = f"RUNTIME_{field.upper()}"
    default = RuntimeSettings.model_fields[field].default
    cell = reference_row(name)[1]
    if isinstance(default, int | str) and not isinstance(default, bool):
        assert cell.startswith(f"`{default}`"), (name, cell)
