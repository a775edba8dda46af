"""`python -m infra.preflight --stack dev|prod`: what a Cloudflare account, an API token and an AWS account
must offer before a first `pulumi up`, checked with the operator's own credentials and printed as a
checklist with the fix for each failure. Reads only; changes nothing on either cloud.

- `stack.py` reads the stack's committed (non-secret) config through `infra/config`'s own readers.
- `cloudflare.py` checks the token, its permissions (`infra/prerequisites.py`) and the account.
- `aws.py` checks GPU capacity (quota, instance-type offerings) and that ECR and Secrets Manager answer.
- `report.py` prints the checklist and turns it into the exit code.
"""
