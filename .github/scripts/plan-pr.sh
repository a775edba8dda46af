#!/usr/bin/env bash
# Usage: plan-pr.sh BASE_PLANS_DIR OUT_DIR
# For every stack: the plan file (OUT_DIR/<stack>.json), the policy pack's verdict and the diff against
# the base's plan, gathered into OUT_DIR/comment.md. A stack whose mandatory policies fail is listed in
# OUT_DIR/blocked (a later step fails the job, after the comment is posted).
set -euo pipefail

base=$1
out=$2
py=.venv/bin/python
mkdir -p "$out"
: > "$out/blocked"

fence() { printf '\n```%s\n' "$1"; cat "$2"; printf '```\n'; }

{
  echo "### Offline plan"
  echo "Pulumi program under mocks, no credentials (\`python -m infra.plan\`); secrets are shown as \`[secret]\`."
  for stack_file in Pulumi.*.yaml; do
    stack=${stack_file#Pulumi.}
    stack=${stack%.yaml}
    "$py" -m infra.plan --stack "$stack" --json > "$out/$stack.json"
    policy_status=0
    "$py" -m infra.plan --stack "$stack" --policy > "$out/$stack.txt" || policy_status=$?
    if [ "$policy_status" -eq 3 ]; then
      echo "$stack" >> "$out/blocked"
    elif [ "$policy_status" -ne 0 ]; then
      cat "$out/$stack.txt" >&2
      exit "$policy_status"
    fi
    echo
    echo "#### $stack"
    if [ -f "$base/$stack.json" ]; then
      "$py" -m infra.plan --stack "$stack" --diff "$base/$stack.json" > "$out/$stack.diff.txt"
      echo "<details open><summary>$(head -n 1 "$out/$stack.diff.txt")</summary>"
      fence text "$out/$stack.diff.txt"
      echo "</details>"
    else
      echo "No base plan of $stack to compare with."
    fi
    sed -n '/^Policy pack/,$p' "$out/$stack.txt" > "$out/$stack.policy.txt"
    echo "<details><summary>$(head -n 1 "$out/$stack.policy.txt")</summary>"
    fence text "$out/$stack.policy.txt"
    echo "</details>"
  done
} > "$out/comment.md"
