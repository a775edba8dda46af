"""One module per guardrail; `infra.policy.pack.POLICIES` lists them."""
