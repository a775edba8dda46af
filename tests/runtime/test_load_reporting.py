"""Load reports (EMF) and task protection, piece by piece: document shape, the tracker's counts, the
reporter's figures, and the protection controller's PUTs against a real fake agent on loopback."""

import asyncio
import io
import json
import threading

import pytest

from runtime.engine.load import LoadTracker
from runtime.engine.metrics import RuntimeMetrics
from runtime.http.emf import LoadReporter, Metric, emf_document
from runtime.http.protection import RETRY_SECONDS, TaskProtection
from tests.runtime.emf_spec import check_emf
from tests.runtime.fake_ecs_agent import FakeEcsAgent

DIMENSIONS = {"Service": "svc", "Model": "generate"}


def test_a_document_follows_the_specification():
    metrics = [Metric("QueueDepth", "Count", 3), Metric("Wait", "Milliseconds", 1.5)]
    document = emf_document("SteadyText/Runtime", DIMENSIONS, metrics, 1)
    check_emf(document)
    assert document["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "SteadyText/Runtime",
            "Dimensions": [["Service", "Model"]],
            "Metrics": [{"Name": "QueueDepth", "Unit": "Count"}, {"Name": "Wait", "Unit": "Milliseconds"}],
        }
    ]
    assert (document["Service"], document["Model"], document["QueueDepth"], document["Wait"]) == (
        "svc", "generate", 3, 1.5
    )  # fmt: skip


@pytest.mark.parametrize(
    ("namespace", "metrics", "problem"),
    [
        ("SteadyText/Runtime", [Metric("QueueDepth", "Requests", 1)], "not a CloudWatch unit"),
        ("", [Metric("QueueDepth", "Count", 1)], "namespace"),
        ("SteadyText/Runtime", [Metric("Model", "Count", 1)], "distinct"),
        ("SteadyText/Runtime", [Metric("X", "Count", 1), Metric("X", "Count", 2)], "distinct"),
    ],
)
def test_a_document_that_would_break_the_specification_is_refused(namespace, metrics, problem):
    with pytest.raises(ValueError, match=problem):
        emf_document(namespace, DIMENSIONS, metrics, 1)


def test_the_checker_catches_a_missing_target_member():
    document = emf_document("N", DIMENSIONS, [Metric("QueueDepth", "Count", 1)], 1)
    del document["QueueDepth"]
    with pytest.raises(AssertionError, match="QueueDepth"):
        check_emf(document)


def test_tickets_count_waiting_running_and_done_once_each():
    load = LoadTracker(["generate", "embed"])
    first, second = load.admit("generate"), load.admit("generate")
    seen: dict = {}

    def work():
        seen["during"] = load.report()["generate"]
        return "answer"

    assert first.run(work)() == "answer"
    first.settled()  # the future settles after the work returned: nothing changes twice
    second.settled()  # withdrawn before it ran
    assert second.run(lambda: "late")() == "late"  # a settled ticket's work is not counted
    during = seen["during"]
    assert (during.queued, during.running) == (1, 1)
    after = load.report()
    assert (after["generate"].queued, after["generate"].running, after["embed"].queued) == (0, 0, 0)
    assert not load.busy


def test_a_batched_job_runs_from_its_work_until_it_settles():
    """A batched generation's work only starts its sequence; the job runs on until its future settles."""
    load = LoadTracker(["generate"])
    ticket = load.admit("generate")
    assert ticket.run_until_settled(lambda: "sequence")() == "sequence"
    still = load.report()["generate"]
    assert (still.queued, still.running, len(still.waits)) == (0, 1, 1)
    assert load.busy
    ticket.settled()
    ticket.settled()  # once only
    done = load.report()["generate"]
    assert (done.queued, done.running) == (0, 0)
    assert not load.busy


def test_busy_covers_open_requests_and_jobs():
    load = LoadTracker(["generate"])
    assert not load.busy
    load.request_opened()
    assert load.busy
    load.request_closed()
    ticket = load.admit("generate")
    assert load.busy
    ticket.settled()
    assert not load.busy


def test_the_reporter_prints_one_document_per_model_with_the_interval_figures():
    load, metrics, out = LoadTracker(["generate", "embed"]), RuntimeMetrics(), io.StringIO()
    reporter = LoadReporter(load, metrics, "NS", "svc", 10, out)
    waiting = load.admit("generate")
    load.admit("generate").run(lambda: None)()  # one job ran: its wait is in this interval
    started = threading.Event()
    release = threading.Event()

    def running_work():
        started.set()
        release.wait(10)

    runner = threading.Thread(target=load.admit("generate").run(running_work))
    runner.start()
    started.wait(10)
    metrics.generated_tokens.inc(40)
    metrics.prompt_tokens.labels(kind="embed").inc(7)
    reporter.emit()
    release.set()
    runner.join()
    waiting.settled()
    documents = [json.loads(line) for line in out.getvalue().splitlines()]
    for document in documents:
        check_emf(document)
    by_model = {document["Model"]: document for document in documents}
    assert set(by_model) == {"generate", "embed"}
    generate, embed = by_model["generate"], by_model["embed"]
    assert (generate["QueueDepth"], generate["InFlight"], generate["Service"]) == (1, 1, "svc")
    assert generate["TokensPerSecond"] > 0 and embed["TokensPerSecond"] > 0
    assert generate["QueueWaitP95"] > 0 and embed["QueueWaitP95"] == 0
    assert (embed["QueueDepth"], embed["InFlight"]) == (0, 0)
    # The next interval starts afresh: no new tokens, no job started.
    out.truncate(0), out.seek(0)
    reporter.emit()
    generate = next(json.loads(line) for line in out.getvalue().splitlines() if '"generate"' in line)
    assert (generate["TokensPerSecond"], generate["QueueWaitP95"], generate["QueueDepth"]) == (0, 0, 0)


def test_protection_follows_work_with_debounce_renewal_and_retries():
    load = LoadTracker(["generate"])
    with FakeEcsAgent() as agent:
        protection = TaskProtection(load, agent.uri, expires_minutes=15, idle_s=30)
        enable = {"ProtectionEnabled": True, "ExpiresInMinutes": 15}
        disable = {"ProtectionEnabled": False}

        async def scenario():
            await protection.step(0)  # idle from the start: nothing to clear
            assert agent.bodies() == []
            load.request_opened()
            await protection.step(1)
            assert agent.bodies() == [enable]
            await protection.step(100)  # still busy, far from the expiry: no call
            assert agent.bodies() == [enable]
            await protection.step(1 + 450)  # half the 15 minutes: renewed
            assert agent.bodies() == [enable, enable]
            load.request_closed()
            await protection.step(460)
            await protection.step(489)  # idle 29 s of 30: still protected (a pause is not the end)
            assert agent.bodies() == [enable, enable]
            await protection.step(490)
            assert agent.bodies() == [enable, enable, disable]
            await protection.step(1000)  # cleared once, not again
            assert agent.bodies() == [enable, enable, disable]
            # The agent fails (HTTP 500, then a 200 with a `failure`): logged, retried later, no crash.
            agent.fail_next(["status", "failure"])
            load.request_opened()
            await protection.step(1100)
            await protection.step(1100 + RETRY_SECONDS / 2)  # waiting out the retry delay: no call
            await protection.step(1100 + RETRY_SECONDS)
            await protection.step(1100 + 2 * RETRY_SECONDS)
            assert agent.bodies()[3:] == [enable, enable, enable]
            await protection.step(1100 + 3 * RETRY_SECONDS)  # the last one took: no further call
            assert len(agent.bodies()) == 6

        asyncio.run(scenario())
        assert {path for path, _ in agent.calls} == {"/api/task-1/task-protection/v1/state"}
