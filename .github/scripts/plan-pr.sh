#!/usr/bin/env bash
# Usage: plan-pr.sh BASE_PLANS_DIR OUT_DIR
# For every stack: the plan file (OUT_DIR/<stack>.json), the diff against the base's plan and the policy
# pack's verdict, gathered into OUT_DIR/comment.md. A stack whose mandatory policies fail is listed in
# OUT_DIR/blocked (a later step fails the job, after the comment is posted).
set -euo pipefail

base=$1
out=$2
py=.venv/bin/python
mkdir -p "$out"
: > "$out/blocked"

fence() { printf '\n```text\n'; cat "$1"; printf '```\n'; }

{
  echo "### Offline plan"
  echo "Pulumi program under mocks, no credentials (\`python -m infra.plan\`); secrets are shown as \`[secret]\`."
  for stack_file in Pulumi.*.yaml; do
    stack=${stack_file#Pulumi.}
    stack=${stack%.yaml}
    "$py" -m infra.plan --stack "$stack" --json > "$out/$stack.json"
    args=(--stack "$stack" --policy)
    if [ -f "$base/$stack.json" ]; then
      args+=(--diff "$base/$stack.json")
    fi
    status=0
    "$py" -m infra.plan "${args[@]}" > "$out/$stack.txt" || status=$?
    if [ "$status" -eq 3 ]; then
      echo "$stack" >> "$out/blocked"
    elif [ "$status" -ne 0 ]; then
      exit "$status"
    fi
    sed -n '/^Policy pack/,$p' "$out/$stack.txt" > "$out/$stack.policy.txt"
    echo
    echo "#### $stack"
    if [ -f "$base/$stack.json" ]; then
      sed '/^Policy pack/,$d' "$out/$stack.txt" > "$out/$stack.diff.txt"
      echo "<details open><summary>$(head -n 1 "$out/$stack.diff.txt")</summary>"
      fence "$out/$stack.diff.txt"
      echo "</details>"
    else
      echo "No base plan of $stack to compare with (the full plan is in the \`offline-plan\` artifact)."
    fi
    echo "<details><summary>$(head -n 1 "$out/$stack.policy.txt")</summary>"
    fence "$out/$stack.policy.txt"
    echo "</details>"
  done
} > "$out/comment.md"
