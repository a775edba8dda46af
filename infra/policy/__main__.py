"""Entry point the Pulumi CLI runs for `--policy-pack infra/policy` (constructing the pack serves it).

Mandatory by default; `python -m infra.policy.enforcement --stack dev` writes the per-stack config
(`--policy-pack-config`) that makes it advisory in dev.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.policy.pack import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
