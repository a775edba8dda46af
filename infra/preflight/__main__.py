"""python -m infra.preflight --stack dev|prod [--skip-aws | --skip-cloudflare]

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infra import REPO_ROOT
from infra.config.reader import ConfigError
from infra.preflight.aws import check_aws
from infra.preflight.cloudflare import check_cloudflare
from infra.preflight.cloudflare_api import BASE_URL_ENV, DEFAULT_BASE_URL, CloudflareApi
from infra.preflight.report import EXIT_USAGE, exit_code, render
from infra.preflight.stack import load_stack

TOKEN_ENV = "CLOUDFLARE_API_TOKEN"  # what the Cloudflare provider reads too


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.preflight",
        description="Check a Cloudflare account, its API token and an AWS account before the first "
        "`pulumi up` of a stack. Reads only. Exit 0: all passed (warnings allowed); 1: a check failed; "
        "2: usage or config error.",
    )
    parser.add_argument("--stack", required=True, choices=("dev", "prod"), help="the stack to check")
    parser.add_argument(
        "--cloudflare-api-base-url",
        default=os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL),
        help=f"Cloudflare API v4 base URL (env {BASE_URL_ENV}; default {DEFAULT_BASE_URL})",
    )
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-aws", action="store_true", help="check only Cloudflare")
    skip.add_argument("--skip-cloudflare", action="store_true", help="check only AWS")
    return parser


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    """`root` holds Pulumi.yaml and the stack files (the repository; tests pass a copy)."""
    args = _parser().parse_args(argv)
    try:
        settings = load_stack(args.stack, root)
    except ConfigError as error:
        print(f"preflight: {error}", file=sys.stderr)
        return EXIT_USAGE
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not args.skip_cloudflare and not token:
        print(
            f"preflight: {TOKEN_ENV} is not set: export the API token `pulumi up` will use "
            "(the value of cloudflare:apiToken), or pass --skip-cloudflare",
            file=sys.stderr,
        )
        return EXIT_USAGE
    checks = []
    if not args.skip_cloudflare:
        checks += check_cloudflare(CloudflareApi(args.cloudflare_api_base_url, token), settings.cloudflare)
    if not args.skip_aws:
        checks += check_aws(settings.aws)
    sys.stdout.write(render(args.stack, checks))
    return exit_code(checks)


if __name__ == "__main__":
    raise SystemExit(main())
