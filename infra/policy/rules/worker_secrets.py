"""The Worker's credentials are secret bindings: a plain_text binding is readable in the dashboard and API."""

from __future__ import annotations

import re

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from infra.policy.model import WORKERS_SCRIPT, items, mapping

# docs/interfaces.md: the Access service token (Worker → origin), the runtime / metrics bearer tokens and
# the receipt-signing private key.
REQUIRED_SECRET_BINDINGS = (
    "CF_ACCESS_CLIENT_ID",
    "CF_ACCESS_CLIENT_SECRET",
    "ORIGIN_TOKEN",
    "METRICS_TOKEN",
    "RECEIPT_SIGNING_KEY",
)
SECRET_BINDING_TYPES = ("secret_text", "secrets_store_secret")
PLAIN_BINDING_TYPES = ("plain_text", "json")
# A word of the name (MAX_TOKENS_LIMIT is a number, ORIGIN_TOKEN a credential).
SECRET_LOOKING_NAME = re.compile(
    r"(^|_)(TOKEN|SECRET|PASSWORD|PRIVATE_KEY|SIGNING_KEY|API_KEY|CREDENTIALS?)(_|$)", re.IGNORECASE
)


def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != WORKERS_SCRIPT:
        return
    bindings = {}
    for binding in items(args.props.get("bindings")):
        binding = mapping(binding)
        bindings[binding.get("name")] = binding.get("type")
    required = args.get_config().get("secretBindings", list(REQUIRED_SECRET_BINDINGS))
    for name in required:
        kind = bindings.get(name)
        if kind is None:
            report_violation(
                f"Worker '{args.name}' has no binding {name}; bind it with type secret_text", None
            )
        elif kind not in SECRET_BINDING_TYPES:
            report_violation(
                f"Worker '{args.name}' binds {name} as {kind}; it must be a secret_text binding", None
            )
    for name, kind in sorted((n, k) for n, k in bindings.items() if isinstance(n, str)):
        if name not in required and kind in PLAIN_BINDING_TYPES and SECRET_LOOKING_NAME.search(name):
            report_violation(
                f"Worker '{args.name}' binds {name} as {kind}; a credential must be a secret_text binding",
                None,
            )


worker_secrets_bound_as_secrets = ResourceValidationPolicy(
    name="worker-secrets-bound-as-secrets",
    description="The Worker's auth and Access credentials and its signing key are secret_text bindings, "
    "never plain text.",
    config_schema=PolicyConfigSchema(
        properties={
            "secretBindings": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(REQUIRED_SECRET_BINDINGS),
            }
        }
    ),
    validate=validate,
)
