#!/usr/bin/env bash
# Usage: drift.sh STACK OUT_DIR
# Looks for drift in one stack without changing anything: `pulumi refresh --preview-only` (do the resources
# still look the way the state remembers them?) and `pulumi preview --expect-no-changes` (would the program
# change anything?), each as JSON into OUT_DIR, then `python -m infra.drift` writes OUT_DIR/verdict
# (clean | drift | error) and OUT_DIR/report.md. Exits non-zero only when a check could not run.
set -euo pipefail

stack=$1
out=$2
mkdir -p "$out"

refresh=0
pulumi refresh --stack "$stack" --preview-only --json --non-interactive \
  > "$out/refresh.json" 2> "$out/refresh.err" || refresh=$?
cat "$out/refresh.err" >&2
preview=0
pulumi preview --stack "$stack" --expect-no-changes --json --non-interactive \
  > "$out/preview.json" 2> "$out/preview.err" || preview=$?
cat "$out/preview.err" >&2

exec "${PYTHON:-.venv/bin/python}" -m infra.drift --stack "$stack" --out "$out" \
  --refresh-status "$refresh" --preview-status "$preview"
