"""`make docs` (`python -m scripts.docs [--check]`): the configuration tables of README.md and docs/*.md,
generated from the one home of each fact, so a key's default or meaning is written once.

- stack config: Pulumi.yaml's `config:` block (type, default, description) and the stack files;
- Worker vars: edge/wrangler.jsonc `vars` (the default) and the `//` comment above each var (its meaning);
  Worker secrets: edge/.dev.vars.example, the comment above each name;
- runtime settings: the fields of runtime.config.settings.RuntimeSettings and their descriptions.

A table lives between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; everything outside the
markers is hand-written. `--check` changes nothing and exits 1 naming the files that differ (the test
tests/e2e/test_readme.py runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from infra.config.stack_files import project_file
from infra.wrangler_config import WRANGLER_CONFIG, load_wrangler_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/edge.md", "docs/infra.md", "docs/infra-aws.md", "docs/runtime.md")
DEV_VARS_EXAMPLE = REPO_ROOT / "edge" / ".dev.vars.example"
# The stack config keys the AWS side reads (infra/config/aws.py) go to docs/infra-aws.md, the rest to
# docs/infra.md.
AWS_CONFIG_READER = REPO_ROOT / "infra" / "config" / "aws.py"
STACKS = ("dev", "prod")
REGION = re.compile(r"(<!-- generated:([\w-]+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.DOTALL)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def shown(value: Any) -> str:
    """A value as the tables write it: in backticks, JSON-ish for booleans and empty values."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    if isinstance(value, list):
        return f"`[{', '.join(map(str, value))}]`"
    return f"`{value}`"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- stack config (Pulumi.yaml) -------------------------------------------------------------------


def config_default(declared: dict[str, Any]) -> str:
    default = declared.get("default")
    return "required" if default is None or str(default).startswith("REPLACE_WITH") else shown(default)


def stack_values(stack: str) -> dict[str, Any]:
    name = project_file()["name"]
    values = (yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}).get("config") or {}
    return {key.removeprefix(f"{name}:"): value for key, value in values.items()}


def read_by_aws(key: str) -> bool:
    return f'"{key}"' in AWS_CONFIG_READER.read_text()


def stack_config_table() -> str:
    config = project_file()["config"]
    rows = [(f"`{key}`", config_default(d), cell(d["description"])) for key, d in config.items()]
    return table(("key", "default", "meaning"), rows)


def stack_config_by_stack(aws: bool) -> str:
    config = project_file()["config"]
    per_stack = {stack: stack_values(stack) for stack in STACKS}
    rows = []
    for key, declared in config.items():
        if read_by_aws(key) != aws:
            continue
        in_stacks = []
        for stack in STACKS:
            value = per_stack[stack].get(key)
            placeholder = value is not None and str(value).startswith("REPLACE_WITH")
            in_stacks.append("" if value is None else "placeholder" if placeholder else shown(value))
        rows.append((f"`{key}`", config_default(declared), *in_stacks, cell(declared["description"])))
    return table(("key", "default", *STACKS, "meaning"), rows)


# -- Worker vars and secrets (edge/wrangler.jsonc, edge/.dev.vars.example) -------------------------


def comments_above(lines: list[str], name_of: Callable[[str], str | None]) -> dict[str, str]:
    """name → the `//`/`#` comment lines directly above the line that `name_of` recognises."""
    described, pending = {}, []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("//", "#")):
            pending.append(stripped.lstrip("/#").strip())
            continue
        name = name_of(stripped)
        if name is not None:
            described[name] = " ".join(pending)
        pending = []
    return described


def worker_var_descriptions() -> dict[str, str]:
    text = WRANGLER_CONFIG.read_text()
    block = text[text.index('"vars": {') :]
    block = block[: block.index("}")]
    var = re.compile(r'^"([A-Z][A-Z0-9_]*)":')
    return comments_above(block.splitlines()[1:], lambda line: (m := var.match(line)) and m[1])


def worker_secret_descriptions() -> dict[str, str]:
    lines = DEV_VARS_EXAMPLE.read_text().splitlines()
    secret = re.compile(r"^([A-Z][A-Z0-9_]*)=")
    return comments_above(lines, lambda line: (m := secret.match(line)) and m[1])


def worker_table() -> str:
    described = worker_var_descriptions()
    rows = [(f"`{name}`", shown(value), cell(described[name])) for name, value in worker_vars().items()]
    rows += [(f"`{name}`", "secret", cell(text)) for name, text in worker_secret_descriptions().items()]
    return table(("name", "default", "meaning"), rows)


def worker_vars() -> dict[str, str]:
    return load_wrangler_config()["vars"]


# -- runtime settings (runtime/config/settings.py) --------------------------------------------------------


def runtime_default(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, Path):
        home = Path.home()
        return f"`~/{default.relative_to(home)}`" if default.is_relative_to(home) else f"`{default}`"
    return shown(default)


def runtime_table() -> str:
    from runtime.config.settings import RuntimeSettings, environment_variable

    rows = [
        (f"`{environment_variable(name)}`", runtime_default(field.default), cell(field.description))
        for name, field in RuntimeSettings.model_fields.items()
    ]
    return table(("variable", "default", "meaning"), rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "stack-config": stack_config_table,
    "stack-config-cloudflare": lambda: stack_config_by_stack(aws=False),
    "stack-config-aws": lambda: stack_config_by_stack(aws=True),
    "worker-config": worker_table,
    "runtime-settings": runtime_table,
}


def render(text: str) -> str:
    """`text` with every generated region rewritten; KeyError names an unknown region."""

    def rewrite(match: re.Match) -> str:
        return f"{match[1]}{GENERATORS[match[2]]()}{match[4]}"

    return REGION.sub(rewrite, text)


def stale_documents(root: Path = REPO_ROOT) -> dict[str, str]:
    """Document path → its generated text, for each one whose committed text differs."""
    stale = {}
    for name in DOCUMENTS:
        text = (root / name).read_text()
        if (generated := render(text)) != text:
            stale[name] = generated
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    check = parser.parse_args(argv).check
    stale = stale_documents()
    for name, generated in stale.items():
        if check:
            print(f"{name}: generated tables are stale; run `make docs`", file=sys.stderr)
        else:
            (REPO_ROOT / name).write_text(generated)
            print(f"rewrote {name}")
    return 1 if stale and check else 0


if __name__ == "__main__":
    sys.exit(main())
