"""Durable Object migrations as `wrangler deploy` uploads them, from the tag the deployed script has now
(read from Cloudflare's script list at every run, no config step between deploys): every step on a first
deploy, nothing when up to date, only the pending steps (with `old_tag`) after a new tag, and a clear
stop before any upload when the live tag is not in edge/wrangler.jsonc. "Earlier deploys" are the
account's script list as the mocks answer it (`LIVE_WORKER_SCRIPTS`)."""

from __future__ import annotations

import copy

import pytest

import pulumi_offline as mocks
from infra import program
from infra.components.cloudflare.edge_worker import MigrationTagError, durable_object_migrations
from infra.wrangler_config import load_wrangler_config

SCRIPT = "cloudflare:index/workersScript:WorkersScript"
LIST_SCRIPTS = "cloudflare:index/getWorkersScripts:getWorkersScripts"
DEV_SCRIPT = "steadytext-dev"  # the dev stack's resourcePrefix, which names its Worker

HISTORY = {
    "migrations": [
        {"tag": "v1", "new_sqlite_classes": ["Coalescer"]},
        {"tag": "v2", "new_sqlite_classes": ["KeyLimiter"]},
        {"tag": "v3", "renamed_classes": [{"from": "Coalescer", "to": "SingleFlight"}]},
    ]
}


def test_a_new_worker_gets_every_step_without_an_old_tag():
    assert durable_object_migrations(HISTORY, "") == {
        "new_tag": "v3",
        "steps": [
            {"new_sqlite_classes": ["Coalescer"]},
            {"new_sqlite_classes": ["KeyLimiter"]},
            {"renamed_classes": [{"from_": "Coalescer", "to": "SingleFlight"}]},
        ],
    }


def test_a_live_worker_gets_only_the_steps_after_its_tag_checked_against_it():
    assert durable_object_migrations(HISTORY, "v1") == {
        "old_tag": "v1",
        "new_tag": "v3",
        "steps": [
            {"new_sqlite_classes": ["KeyLimiter"]},
            {"renamed_classes": [{"from_": "Coalescer", "to": "SingleFlight"}]},
        ],
    }
    assert durable_object_migrations(HISTORY, "v2") == {
        "old_tag": "v2",
        "new_tag": "v3",
        "steps": [{"renamed_classes": [{"from_": "Coalescer", "to": "SingleFlight"}]}],
    }


def test_an_up_to_date_worker_gets_no_migrations_at_all():
    # wrangler's getMigrationsToUpload sends nothing here; {"old_tag": "v3", "new_tag": "v3"} is not sent.
    assert durable_object_migrations(HISTORY, "v3") is None
    assert durable_object_migrations({}, "") is None


def test_a_live_tag_missing_from_wrangler_stops_with_the_tags_named():
    with pytest.raises(
        MigrationTagError, match=r"tag is 'v0', which edge/wrangler.jsonc does not list \(v1, v2, v3\)"
    ):
        durable_object_migrations(HISTORY, "v0")
    with pytest.raises(MigrationTagError, match="no migrations"):
        durable_object_migrations({}, "v1")


@pytest.fixture
def live_scripts(monkeypatch):
    """The account's deployed Workers (name → migration tag) that Cloudflare's script list reports."""
    monkeypatch.setattr(mocks, "LIVE_WORKER_SCRIPTS", {})
    return mocks.LIVE_WORKER_SCRIPTS


@pytest.fixture
def wrangler_with_key_limiter(monkeypatch):
    """edge/wrangler.jsonc as it is once the KeyLimiter Durable Object lands (a `v2` migration)."""
    wrangler = copy.deepcopy(load_wrangler_config())
    tags = [entry["tag"] for entry in wrangler["migrations"]]
    if "v2" not in tags:
        wrangler["migrations"].append({"tag": "v2", "new_sqlite_classes": ["KeyLimiter"]})
    monkeypatch.setattr(program, "load_wrangler_config", lambda: wrangler)
    return wrangler


def test_first_deploy_uploads_every_migration(run_program, live_scripts):
    live_scripts["some-other-worker"] = "v7"  # another Worker of the account changes nothing
    run = run_program("dev")
    wrangler = load_wrangler_config()
    migrations = run.one(SCRIPT).input("migrations")
    assert "oldTag" not in migrations
    assert migrations["newTag"] == wrangler["migrations"][-1]["tag"]
    assert len(migrations["steps"]) == len(wrangler["migrations"])
    assert [args for token, args in run.invocations if token == LIST_SCRIPTS] == [
        {"accountId": mocks.TEST_ACCOUNT_ID}
    ]
    assert run.outputs["workerMigrationTag"] == wrangler["migrations"][-1]["tag"]


def test_a_later_deploy_of_an_up_to_date_worker_uploads_no_migrations(run_program, live_scripts):
    newest = load_wrangler_config()["migrations"][-1]["tag"]
    live_scripts[DEV_SCRIPT] = newest
    run = run_program("dev")
    assert run.one(SCRIPT).input("migrations") is None
    # The output is what the provider reports for the script, not something config claims.
    assert run.outputs["workerMigrationTag"] == newest


def test_upgrading_from_v1_to_v2_uploads_only_the_new_step(
    run_program, live_scripts, wrangler_with_key_limiter
):
    live_scripts[DEV_SCRIPT] = "v1"
    run = run_program("dev")
    pending = wrangler_with_key_limiter["migrations"][1:]
    assert run.one(SCRIPT).input("migrations") == {
        "oldTag": "v1",
        "newTag": wrangler_with_key_limiter["migrations"][-1]["tag"],
        "steps": [{"newSqliteClasses": entry["new_sqlite_classes"]} for entry in pending],
    }
    assert run.outputs["workerMigrationTag"] == "v2"


def test_an_unknown_live_tag_stops_the_run_before_the_worker_is_uploaded(run_program, live_scripts):
    live_scripts[DEV_SCRIPT] = "v0-from-another-branch"
    with pytest.raises(
        Exception, match=r"migration tag is 'v0-from-another-branch', which edge/wrangler.jsonc"
    ):
        run_program("dev")


def test_no_config_key_holds_the_migration_tag():
    from infra.config.stack_files import project_file

    assert "workerMigrationTag" not in project_file()["config"]


def test_a_stack_file_that_still_sets_the_migration_tag_fails_with_the_fix():
    # The old procedure bumped it by hand after each migration; an operator following it a year later
    # is told the key is gone and how to remove it, instead of it being ignored silently.
    from infra.config import ConfigError, load
    from tests.infra.conftest import PROJECT, TEST_SECRETS, run_pulumi, stack_config

    with pytest.raises(ConfigError) as caught:
        run_pulumi(
            load,
            stack="dev",
            config=stack_config("dev", {f"{PROJECT}:workerMigrationTag": "v1"}),
            secret_keys=TEST_SECRETS,
        )
    message = str(caught.value)
    assert message.startswith(f"config {PROJECT}:workerMigrationTag: is retired")
    assert message.endswith(f"for example: pulumi config rm {PROJECT}:workerMigrationTag")
