import asyncio

import pulumi

from tests.infra.conftest import plaintext_leaks, run_pulumi


def test_the_mocks_run_after_asyncio_run_left_the_thread_without_a_loop():
    # The e2e load client uses asyncio.run(), which leaves the main thread with no current event loop;
    # infra tests collected after it in the same pytest session must still run the program.
    asyncio.run(asyncio.sleep(0))
    run = run_pulumi(lambda: pulumi.export("answer", pulumi.Output.from_input("42")), stack="dev", config={})
    assert run.outputs["answer"] == "42"


def test_each_run_starts_a_fresh_stack():
    """Exports of one run never show up in the next (each run has its own root Stack)."""
    first = run_pulumi(lambda: pulumi.export("only_in_first", "1"), stack="dev", config={})
    second = run_pulumi(lambda: pulumi.export("only_in_second", "2"), stack="prod", config={})
    assert first.outputs == {"only_in_first": "1"}
    assert second.outputs == {"only_in_second": "2"}


def test_exports_resolve_and_secret_ones_are_named():
    def program():
        pulumi.export("plain", pulumi.Output.from_input("visible"))
        pulumi.export("hidden", pulumi.Output.secret("SECRET-value"))
        pulumi.export("derived", pulumi.Output.secret("x").apply(lambda value: value * 2))

    run = run_pulumi(program, stack="dev", config={})
    assert run.outputs == {"plain": "visible", "hidden": "SECRET-value", "derived": "xx"}
    assert run.secret_outputs == {"hidden", "derived"}


def test_config_and_secret_config_reach_the_program():
    def program():
        config = pulumi.Config()
        pulumi.export("name", config.require("name"))
        pulumi.export("token", config.require_secret("token"))

    config = {"steadytext-edge:name": "n", "steadytext-edge:token": "SECRET-t"}
    run = run_pulumi(program, stack="dev", config=config, secret_keys=["steadytext-edge:token"])
    assert run.outputs == {"name": "n", "token": "SECRET-t"}
    assert run.secret_outputs == {"token"}


def test_what_the_engine_is_sent_is_recorded():
    """The fields only RegisterResource sees (parent, options, dependencies) are recorded as sent."""

    class Box(pulumi.ComponentResource):
        def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
            super().__init__("test:index:Box", name, None, opts)
            self.first = pulumi.CustomResource(
                "test:index:Thing",
                f"{name}-first",
                {"value": "a"},
                pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name="old-first")]),
            )
            self.second = pulumi.CustomResource(
                "test:index:Thing",
                f"{name}-second",
                {"source": self.first.urn, "secret": pulumi.Output.secret("SECRET-s")},
                pulumi.ResourceOptions(
                    parent=self,
                    protect=True,
                    retain_on_delete=True,
                    depends_on=[self.first],
                    additional_secret_outputs=["value"],
                ),
            )
            self.register_outputs({})

    run = run_pulumi(lambda: Box("box"), stack="dev", config={})
    box = run.one("test:index:Box")
    first, second = run.of_type("test:index:Thing")
    assert (first.parent, second.parent) == (box.urn, box.urn)
    assert (first.protect, first.retain_on_delete) == (False, False)
    assert [alias["spec"]["name"] for alias in first.aliases] == ["old-first"]
    assert second.aliases == []
    assert (second.protect, second.retain_on_delete) == (True, True)
    assert second.dependencies == [first.urn]
    assert second.property_dependencies["source"] == [first.urn]
    assert second.additional_secret_outputs == ["value"]
    assert second.input("source") == first.urn
    assert plaintext_leaks(second.inputs, ["SECRET-s"]) == []
    assert second.input("secret") == "SECRET-s"


def test_the_program_never_imports_the_harness():
    """Test tooling stays out of the product: loading the program and its components leaves
    pulumi_offline unimported, and only the plan tool (infra/plan) imports it."""
    import subprocess
    import sys
    from pathlib import Path

    check = (
        "import sys, infra.program, infra.components.cloudflare.edge_worker, infra.config; "
        "assert 'pulumi_offline' not in sys.modules, 'the program imported pulumi_offline'"
    )
    subprocess.run([sys.executable, "-c", check], check=True)
    infra_dir = Path(__file__).resolve().parents[2] / "infra"
    importers = sorted(
        str(path.relative_to(infra_dir.parent))
        for path in infra_dir.rglob("*.py")
        if "pulumi_offline" in path.read_text()
    )
    assert all(path.startswith("infra/plan/") for path in importers), importers
