"""The plan diff and its text view over hand-written plans (no program run)."""

from infra.plan.diff import diff_plans, flatten
from infra.plan.render import render_diff, render_plan

D1 = "cloudflare:index/d1Database:D1Database"
KV = "cloudflare:index/workersKvNamespace:WorkersKvNamespace"
WORKER = "cloudflare:index/workersScript:WorkersScript"


def resource(type_, logical_name, protect=False, **properties):
    return {
        "key": f"{type_}::{logical_name}",
        "type": type_,
        "name": logical_name,
        "parent": None,
        "custom": True,
        "protect": protect,
        "properties": properties,
    }


def plan(stack, *resources, **outputs):
    return {
        "format": "steadytext-edge-plan/1",
        "project": "p",
        "stack": stack,
        "resources": list(resources),
        "outputs": outputs,
    }


def test_flatten_names_every_leaf_by_path():
    assert flatten({"a": {"b": [1, {"c": "x"}]}, "e": [], "f": None}) == {
        "a.b[0]": 1,
        "a.b[1].c": "x",
        "e": [],
        "f": None,
    }


def test_added_removed_and_changed_resources_and_outputs():
    base = plan("dev", resource(D1, "db", name="dev-db"), resource(KV, "kv", title="t"), url="https://a")
    head = plan(
        "prod",
        resource(D1, "db", protect=True, name="prod-db", jurisdiction="eu"),
        resource(WORKER, "w", scriptName="w"),
        url="https://b",
    )
    diff = diff_plans(base, head)
    assert [r["key"] for r in diff["added"]] == [f"{WORKER}::w"]
    assert [r["key"] for r in diff["removed"]] == [f"{KV}::kv"]
    [changed] = diff["changed"]
    assert changed["changes"] == [
        {"path": "(protect)", "before": False, "after": True},
        {"path": "jurisdiction", "before": None, "after": "eu"},
        {"path": "name", "before": "dev-db", "after": "prod-db"},
    ]
    assert diff["outputs"] == [{"path": "url", "before": "https://a", "after": "https://b"}]
    assert diff["unchanged"] == 0
    text = render_diff(diff)
    assert "stack dev → stack prod: 1 added, 1 removed, 1 changed, 0 unchanged" in text
    assert f"+ {WORKER}  w" in text and f"- {KV}  kv" in text
    assert '    name: "dev-db" → "prod-db"' in text


def test_identical_plans_have_no_differences():
    same = plan("dev", resource(D1, "db", protect=True, name="db"), url="u")
    diff = diff_plans(same, same)
    assert (diff["added"], diff["removed"], diff["changed"], diff["outputs"], diff["unchanged"]) == (
        [],
        [],
        [],
        [],
        1,
    )


def test_plan_text_shows_type_name_protect_and_secret_markers():
    text = render_plan(
        plan("prod", resource(D1, "db", protect=True, name="db", token="[secret]"), key="[secret]")
    )
    assert f"{D1}  db  [protected]" in text
    assert "    token = [secret]" in text and "    key = [secret]" in text
    assert "1 resources, 1 protected, 1 outputs" in text
