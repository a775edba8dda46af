from infra.policy.model import QUEUE, QUEUE_CONSUMER, R2_EVENT_NOTIFICATION
from infra.policy.rules.queues import queues_wired
from tests.policy.conftest import res, violations

LINES = res(QUEUE, "lines", {"queueName": "steadytext-prod-batch-lines"})
INBOX = res(QUEUE, "inbox", {"queueName": "steadytext-prod-batch-inbox"})
DEAD_LETTERS = res(QUEUE, "dead-letters", {"queueName": "steadytext-prod-batch-dead-letters"})


def consumer(queue, name="consumer", dead_letters=None, **props):
    props = {"type": "worker", "scriptName": "steadytext-prod", **props}
    deps = {"queueId": [queue]}
    if dead_letters is not None:
        props["deadLetterQueue"] = dead_letters.props["queueName"]
        deps["deadLetterQueue"] = [dead_letters]
    return res(QUEUE_CONSUMER, name, props, deps=deps)


def notification(queue):
    rules = [{"actions": ["PutObject"], "prefix": "inbox/", "suffix": ".jsonl"}]
    return res(R2_EVENT_NOTIFICATION, "inbox-notification", {"rules": rules}, deps={"queueId": [queue]})


def test_a_notification_into_a_consumed_queue_and_a_declared_dead_letter_queue_pass():
    resources = [LINES, INBOX, DEAD_LETTERS, consumer(LINES, "lines", DEAD_LETTERS), consumer(INBOX, "inbox")]
    assert violations(queues_wired, *resources, notification(INBOX)) == []


def test_a_notification_into_a_queue_no_one_consumes_fails():
    [message] = violations(queues_wired, LINES, INBOX, consumer(LINES), notification(INBOX))
    assert "'inbox-notification' sends to queue 'inbox', which no consumer reads" in message


def test_a_dead_letter_queue_the_stack_does_not_declare_fails():
    orphan = res(
        QUEUE_CONSUMER,
        "lines",
        {"type": "worker", "deadLetterQueue": "steadytext-prod-gone"},
        deps={"queueId": [LINES]},
    )
    [message] = violations(queues_wired, LINES, orphan)
    assert "'lines'" in message and "'steadytext-prod-gone'" in message and "does not declare" in message


def test_a_dead_letter_queue_named_like_a_declared_queue_passes_without_a_dependency():
    named = res(
        QUEUE_CONSUMER,
        "lines",
        {"type": "worker", "deadLetterQueue": "steadytext-prod-batch-dead-letters"},
        deps={"queueId": [LINES]},
    )
    assert violations(queues_wired, LINES, DEAD_LETTERS, named) == []
