"""``phasekit`` / ``python -m infra``: the offline plan.

    phasekit plan --stack phase1            resource tree, protection, outputs (secrets masked)
    phasekit plan --stack phase1 --json     the same as JSON

Exit status: 0 on success, 1 when the stack config is invalid (one message naming the key), 2 on usage
errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.config import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phasekit", description="phasekit's offline tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="validate a stack's config and show what it would create")
    plan.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    plan.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    plan.add_argument("--project-dir", type=Path, default=None,
                      help="directory holding Pulumi.yaml (default: the nearest one above the cwd)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from infra.plan import find_project_dir, plan_json, plan_text, run_plan

    try:
        project_dir = args.project_dir or find_project_dir(Path.cwd())
        plan = run_plan(args.stack, project_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    text = json.dumps(plan_json(plan), indent=2) + "\n" if args.json else plan_text(plan)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    return 0
