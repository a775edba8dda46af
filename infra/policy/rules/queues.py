"""The batch pipeline's queues are wired end to end: what R2 sends to a queue is consumed, and a
consumer's failures land in a dead-letter queue the stack declares."""

from __future__ import annotations

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy

from infra.policy.model import QUEUE, QUEUE_CONSUMER, R2_EVENT_NOTIFICATION, dependencies_of, of_type, unwrap


def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    queues = of_type(args.resources, QUEUE)
    consumers = of_type(args.resources, QUEUE_CONSUMER)
    consumed = {queue.urn for consumer in consumers for queue in dependencies_of(consumer, "queueId")}
    for notification in of_type(args.resources, R2_EVENT_NOTIFICATION):
        for queue in dependencies_of(notification, "queueId"):
            if queue.resource_type == QUEUE and queue.urn not in consumed:
                report_violation(
                    f"R2 event notification '{notification.name}' sends to queue '{queue.name}', which no "
                    "consumer reads: objects written there would start nothing",
                    notification.urn,
                )
    declared = {unwrap(queue.props.get("queueName")) for queue in queues}
    for consumer in consumers:
        dead_letters = unwrap(consumer.props.get("deadLetterQueue"))
        linked = any(dep.resource_type == QUEUE for dep in dependencies_of(consumer, "deadLetterQueue"))
        if isinstance(dead_letters, str) and dead_letters and not linked and dead_letters not in declared:
            report_violation(
                f"queue consumer '{consumer.name}' sends failed messages to dead-letter queue "
                f"'{dead_letters}', which this stack does not declare: they would be lost",
                consumer.urn,
            )


queues_wired = StackValidationPolicy(
    name="queues-wired",
    description="Every R2 event notification feeds a consumed queue; every dead-letter queue is declared.",
    validate=validate,
)
