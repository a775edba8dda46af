"""The README's configuration reference stays true to the code: every stack key, Worker var and runtime
setting is documented, with the default the code uses, in tables `make docs` generates from the one home
of each fact (fast: reads files only)."""

import re

import pytest

from infra.config.stack_files import project_file
from infra.wrangler_config import load_wrangler_config
from runtime.config.settings import RuntimeSettings
from scripts.docs import (
    DOCUMENTS,
    GENERATORS,
    shown,
    stale_documents,
    worker_secret_descriptions,
    worker_var_descriptions,
)
from scripts.local_stack import (
    CLOUD_ONLY_WORKER_SECRET_NAMES,
    RECEIPT_KEY_SECRET_NAME,
    REPO_ROOT,
    WORKER_SECRET_NAMES,
)

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


# -- the tables are generated (`make docs`) from the one home of each fact -------------------------


def test_the_committed_tables_are_what_make_docs_writes():
    assert stale_documents() == {}, "run `make docs` (python -m scripts.docs) and commit the result"


def test_make_docs_rewrites_a_stale_table(tmp_path):
    for name in DOCUMENTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO_ROOT / name).read_text())
    readme = tmp_path / "README.md"
    readme.write_text(
        readme.read_text().replace("| `cacheTtlSeconds` | `86400` |", "| `cacheTtlSeconds` | `1` |")
    )
    assert set(stale_documents(tmp_path)) == {"README.md"}
    assert stale_documents(tmp_path)["README.md"] == README


@pytest.mark.parametrize(
    ("region", "documents"),
    [
        ("stack-config", ["README.md"]),
        ("stack-config-cloudflare", ["docs/infra.md"]),
        ("stack-config-aws", ["docs/infra-aws.md"]),
        ("worker-config", ["README.md", "docs/edge.md"]),
        ("runtime-settings", ["README.md", "docs/runtime.md"]),
    ],
)
def test_each_table_is_generated_where_it_is_shown(region, documents):
    assert region in GENERATORS
    for name in documents:
        text = (REPO_ROOT / name).read_text()
        assert f"<!-- generated:{region} -->" in text and f"<!-- /generated:{region} -->" in text, name


def test_every_fact_the_tables_show_has_its_meaning_at_home():
    config = project_file()["config"]
    assert [key for key, declared in config.items() if not declared.get("description")] == []
    assert set(worker_var_descriptions()) == set(load_wrangler_config()["vars"])
    assert all(worker_var_descriptions().values())
    assert set(worker_secret_descriptions()) == {
        *WORKER_SECRET_NAMES,
        RECEIPT_KEY_SECRET_NAME,
        *CLOUD_ONLY_WORKER_SECRET_NAMES,
    }
    assert all(worker_secret_descriptions().values())
    assert all(field.description for field in RuntimeSettings.model_fields.values())


def test_every_stack_config_key_is_in_exactly_one_side_table():
    cloudflare = (REPO_ROOT / "docs/infra.md").read_text()
    aws = (REPO_ROOT / "docs/infra-aws.md").read_text()
    for key in project_file()["config"]:
        row = f"| `{key}` |"
        assert (row in cloudflare) != (row in aws), key
