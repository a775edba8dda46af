"""Pulumi entry point (`main: infra/` in Pulumi.yaml): `pulumi up -s dev|prod`."""

from infra.program import run

run()
