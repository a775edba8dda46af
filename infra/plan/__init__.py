"""Offline plan: `python -m infra.plan --stack dev|prod [--diff OTHER] [--json] [--policy]`.

Runs the Pulumi program under the mocks harness (`pulumi_offline`, test tooling outside this package) with a
stack's config, no credentials and no Pulumi CLI, and prints what it declares; compares two plans; runs the
policy pack over the result.
"""
