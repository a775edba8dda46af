"""The guardrails policy pack (Pulumi CrossGuard, Python).

`pulumi preview --policy-pack infra/policy` runs it against the real engine; `python -m infra.plan --policy`
runs the same policy objects over the offline plan's inventory (see `infra.policy.evaluate`).
"""
