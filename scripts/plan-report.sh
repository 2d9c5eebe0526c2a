#!/usr/bin/env bash
# phasekit's offline checks on every committed stack, written as one Markdown report. The pull-request
# workflow (plan.yml) posts it as a comment; the deploy workflow (deploy.yml) runs it before `pulumi up`.
#
#   scripts/plan-report.sh --out DIR [--base-rev REV] [--allow-data-loss]
#
# Run from the directory holding Pulumi.yaml. For each Pulumi.<stack>.yaml there:
#   phasekit plan --stack S                    config, resources, monthly cost, guardrails
#   phasekit risk --stack S --base <file@REV>  what changes from REV's version of the stack file
# then `phasekit plan --compare` over all of them. Without --base-rev, or when REV has no such stack
# file, the report says there is nothing to compare against.
#
# Writes DIR/report.md (everything) and DIR/comment.md (the same when it fits in a GitHub comment;
# otherwise the summary and as many output blocks as fit: failures first, then change risk, the
# comparison and the plans, with a one-line note for each block left out), whatever the outcome,
# so the caller can publish them before failing.
#
# Exit status: 0 when every check passed; otherwise the largest phasekit exit code seen (1 invalid
# config, 3 guardrail failure, 4 data-destroying change without --allow-data-loss); 2 on usage
# errors. PHASEKIT names the CLI (default: .venv/bin/phasekit).
set -euo pipefail

# GitHub refuses comment bodies over 65536 characters; leave room for the commenter's lines.
# (PLAN_REPORT_COMMENT_LIMIT lowers it for tests.)
COMMENT_LIMIT=${PLAN_REPORT_COMMENT_LIMIT:-60000}

usage() {
  echo "usage: scripts/plan-report.sh --out DIR [--base-rev REV] [--allow-data-loss]" >&2
  exit 2
}

out_dir=""
base_rev=""
allow_data_loss=false
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || usage; out_dir=$2; shift 2 ;;
    --base-rev) [ $# -ge 2 ] || usage; base_rev=$2; shift 2 ;;
    --allow-data-loss) allow_data_loss=true; shift ;;
    *) echo "plan-report.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$out_dir" ] || usage

phasekit=${PHASEKIT:-.venv/bin/phasekit}
if [ -n "$base_rev" ] && ! git rev-parse --quiet --verify "$base_rev^{commit}" >/dev/null; then
  echo "plan-report.sh: --base-rev $base_rev is not a commit in this repository" >&2
  exit 2
fi

stacks=()
for file in Pulumi.*.yaml; do
  [ -e "$file" ] || continue
  stack=${file#Pulumi.}
  stack=${stack%.yaml}
  # Pulumi's own rule for stack names; it also keeps file names out of the report's Markdown.
  if ! [[ $stack =~ ^[A-Za-z0-9_.-]+$ ]]; then
    echo "plan-report.sh: $file: not a valid stack name (letters, digits, '-', '_', '.')" >&2
    exit 2
  fi
  stacks+=("$stack")
done
if [ ${#stacks[@]} -eq 0 ]; then
  echo "plan-report.sh: no Pulumi.<stack>.yaml in $PWD" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out_dir"
rows=$work/rows.md
: >"$rows"
worst=0
# The report's parts in order: blocks/NNN.md, each with the rank that decides which parts the comment
# keeps when the report is too long for one (0 headings, always; then 1 failed checks, 2 change risk,
# 3 the comparison, 4 plans) and, for output blocks, the note that stands in for a left-out one.
mkdir "$work/blocks"
block_count=0
ranks=()
notes=()

new_block() {
  block_count=$((block_count + 1))
  block=$work/blocks/$(printf '%03d' "$block_count").md
  ranks+=("$1")
  notes+=("$2")
}

heading() {
  new_block 0 ""
  printf '### %s\n\n' "$1" >"$block"
}

# run LOG CMD...: CMD's stdout and stderr into LOG; its exit status into $status (never aborts).
run() {
  local log=$1
  shift
  if "$@" >"$log" 2>&1; then status=0; else status=$?; fi
}

fail_with() {
  if [ "$1" -gt "$worst" ]; then worst=$1; fi
}

# section RANK TITLE COMMAND STATUS LOG: the command's output in a collapsible block, fenced with
# more backticks than the output ever has in a row, so no output can end the block early.
section() {
  local rank=$1 title=$2 command=$3 code=$4 log=$5 longest fence
  new_block "$rank" "_${title}: \`${command}\` (exit ${code}) is too long for this comment: see the run's summary._"
  longest=$({ grep -o '`\+' "$log" || true; } | awk '{ if (length($0) > n) n = length($0) } END { print n + 0 }')
  fence='```'
  while [ ${#fence} -le "$longest" ]; do fence="$fence\`"; done
  {
    printf '<details><summary>%s: <code>%s</code> (exit %s)</summary>\n\n' "$title" "$command" "$code"
    printf '%stext\n' "$fence"
    cat "$log"
    if [ -s "$log" ] && [ -n "$(tail -c 1 "$log")" ]; then echo; fi
    printf '%s\n\n</details>\n\n' "$fence"
  } >"$block"
}

for stack in "${stacks[@]}"; do
  log=$work/plan-$stack.log
  run "$log" "$phasekit" plan --stack "$stack"
  case $status in
    0) plan_cell="pass" ;;
    1) plan_cell="**invalid config** (exit 1)" ;;
    3) plan_cell="**guardrail failed** (exit 3)" ;;
    *) plan_cell="**failed** (exit $status)" ;;
  esac
  fail_with "$status"
  if [ "$status" -eq 0 ]; then rank=4; else rank=1; fi
  heading "$stack"
  section "$rank" "plan" "phasekit plan --stack $stack" "$status" "$log"

  if [ -z "$base_rev" ]; then
    risk_cell="no base revision to compare against"
  elif ! git cat-file -e "$base_rev:Pulumi.$stack.yaml" 2>/dev/null; then
    risk_cell="new stack file: not in $base_rev"
  else
    base_file=$work/base-$stack.yaml
    git show "$base_rev:Pulumi.$stack.yaml" >"$base_file"
    log=$work/risk-$stack.log
    run "$log" "$phasekit" risk --stack "$stack" --base "$base_file"
    failed=true
    case $status in
      0) risk_cell="no data-destroying change"; failed=false ;;
      4)
        if $allow_data_loss; then
          risk_cell="data-destroying change, allowed (allow-data-loss)"
          failed=false
        else
          risk_cell="**data-destroying change** (exit 4; needs the allow-data-loss label)"
        fi
        ;;
      1) risk_cell="**could not compare** (exit 1)" ;;
      *) risk_cell="**failed** (exit $status)" ;;
    esac
    rank=2
    if $failed; then fail_with "$status"; rank=1; fi
    section "$rank" "change risk" "phasekit risk --stack $stack --base $base_rev:Pulumi.$stack.yaml" "$status" "$log"
  fi
  printf '| %s | %s | %s |\n' "$stack" "$plan_cell" "$risk_cell" >>"$rows"
done

log=$work/compare.log
run "$log" "$phasekit" plan --compare "${stacks[@]}"
compare_status=$status
fail_with "$compare_status"
if [ "$compare_status" -eq 0 ]; then rank=3; else rank=1; fi
heading "Phases side by side"
section "$rank" "compare" "phasekit plan --compare ${stacks[*]}" "$compare_status" "$log"

if [ "$worst" -eq 0 ]; then verdict="all checks pass"; else verdict="**checks failed** (exit $worst)"; fi
base_line="Change risk is measured against \`$base_rev\`."
[ -n "$base_rev" ] || base_line="No base revision: change risk was not measured."
summary=$work/summary.md
{
  printf '## phasekit plan: %s\n\n' "$verdict"
  printf '%s Data-destroying changes are %s.\n\n' "$base_line" \
    "$(if $allow_data_loss; then echo allowed; else echo refused; fi)"
  printf '| Stack | Config, plan and guardrails | Change risk |\n|---|---|---|\n'
  cat "$rows"
  if [ "$compare_status" -ne 0 ]; then printf '\nThe phase comparison failed (exit %s).\n' "$compare_status"; fi
  echo
} >"$summary"

blocks=("$work"/blocks/*.md)
cat "$summary" "${blocks[@]}" >"$out_dir/report.md"

# The comment: every block in rank order while the budget lasts, each left-out one replaced by its note.
budget=$((COMMENT_LIMIT - $(wc -c <"$summary")))
for note in "${notes[@]}"; do budget=$((budget - ${#note} - 2)); done
keep=()
for rank in 0 1 2 3 4; do
  for i in "${!blocks[@]}"; do
    [ "${ranks[$i]}" -eq "$rank" ] || continue
    size=$(wc -c <"${blocks[$i]}")
    if [ "$rank" -eq 0 ] || [ "$size" -le "$budget" ]; then
      keep[i]=1
      budget=$((budget - size))
    fi
  done
done
{
  cat "$summary"
  for i in "${!blocks[@]}"; do
    if [ -n "${keep[i]:-}" ]; then cat "${blocks[$i]}"; else printf '%s\n\n' "${notes[$i]}"; fi
  done
} >"$out_dir/comment.md"
exit "$worst"
