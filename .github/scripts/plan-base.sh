#!/usr/bin/env bash
# Usage: plan-base.sh BASE_SHA OUT_DIR
# Plans every stack as the base commit declares it, into OUT_DIR/<stack>.json, with this checkout's
# .venv and edge/node_modules (the base's own code is put first on PYTHONPATH). A base without the
# offline plan, or whose plan fails, leaves no file for that stack: the comment then says so.
set -euo pipefail

base_sha=$1
out=$2
repo=$PWD
tree="$out/tree"

mkdir -p "$out"
git worktree add --detach "$tree" "$base_sha"
trap 'git worktree remove --force "$tree"' EXIT
if [ ! -d "$tree/infra/plan" ]; then
  echo "base $base_sha has no offline plan (infra/plan): nothing to compare with"
  exit 0
fi
ln -s "$repo/edge/node_modules" "$tree/edge/node_modules"
for stack_file in "$tree"/Pulumi.*.yaml; do
  stack=${stack_file##*/Pulumi.}
  stack=${stack%.yaml}
  if ! (cd "$tree" && PYTHONPATH="$tree" "$repo/.venv/bin/python" -m infra.plan --stack "$stack" --json \
        > "$out/$stack.json"); then
    echo "the base's plan of $stack failed: no diff for it"
    rm -f "$out/$stack.json"
  fi
done
