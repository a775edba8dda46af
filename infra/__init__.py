"""steadytext-edge's Pulumi program: the Cloudflare edge (Worker, storage, Zero Trust, tunnel) and the
AWS GPU origin."""

from pathlib import Path

# The program reads files that live beside it in the repository (schema.sql, edge/, dlp-patterns.json);
# Pulumi runs it with the `main:` directory as cwd, so paths are anchored here, not on the cwd.
REPO_ROOT = Path(__file__).resolve().parent.parent
