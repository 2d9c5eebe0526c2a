"""``phasekit`` / ``python -m infra``: the offline tools. None needs a cloud credential or the Pulumi CLI.

    phasekit plan --stack phase1                    resource tree, monthly cost, guardrails, outputs
    phasekit plan --stack phase1 --json             the same as JSON
    phasekit plan --compare phase1 phase2 phase3    phases side by side: resources by kind, cost, what each adds
    phasekit plan --from phase1 --to phase2         resources created and retired, and the migration runbook
    phasekit plan --diagram [--out DIR]             each stack's topology as Mermaid and SVG
    phasekit risk --stack phase2 --base FILE        classify every resource change from FILE to the stack file

Exit status: 0 on success; 1 when a stack's config is invalid (one message naming the key); 2 on usage
errors; 3 when a guardrail policy fails; 4 when a change destroys data and ``--allow-data-loss`` was not
given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from infra.errors import ConfigError

EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_GUARDRAIL = 3
EXIT_DATA_LOSS = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phasekit", description="phasekit's offline tools.")
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="validate stack config and show what it would create and cost")
    mode = plan.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml")
    mode.add_argument("--compare", nargs="+", metavar="STACK", help="show these stacks side by side")
    mode.add_argument("--from", dest="source", metavar="STACK", help="migration source stack (with --to)")
    mode.add_argument("--diagram", action="store_true", help="write topology diagrams (Mermaid and SVG)")
    plan.add_argument("--to", dest="target", metavar="STACK", help="migration target stack (with --from)")
    plan.add_argument("--diagram-stacks", nargs="+", metavar="STACK",
                      help="with --diagram: these stacks (default: every Pulumi.<stack>.yaml)")
    plan.add_argument("--out", type=Path, default=Path("docs/diagrams"),
                      help="with --diagram: output directory (default: docs/diagrams)")
    plan.add_argument("--json", action="store_true", help="print JSON instead of text")
    plan.add_argument("--policy-pack-config", type=Path, default=None, metavar="FILE",
                      help="with --stack: guardrail enforcement levels, in the format of "
                           "`pulumi preview --policy-pack-config`")
    _project_dir_argument(plan)

    risk = commands.add_parser("risk", help="classify the resource changes between two versions of a stack")
    risk.add_argument("--stack", required=True, help="stack name: the head config is Pulumi.<stack>.yaml")
    risk.add_argument("--base", required=True, type=Path, help="the base version of the stack file")
    risk.add_argument("--head", type=Path, default=None, help="the head version (default: Pulumi.<stack>.yaml)")
    risk.add_argument("--allow-data-loss", action="store_true",
                      help="exit 0 even when a change replaces or deletes a stateful resource")
    risk.add_argument("--json", action="store_true", help="print JSON instead of text")
    _project_dir_argument(risk)
    return parser


def _project_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", type=Path, default=None,
                        help="directory holding Pulumi.yaml (default: the nearest one above the cwd)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "plan" and (args.source is None) != (args.target is None):
        parser.error("--from and --to go together")
    if args.command == "plan" and args.diagram_stacks and not args.diagram:
        parser.error("--diagram-stacks goes with --diagram")
    if args.command == "plan" and args.policy_pack_config and not args.stack:
        parser.error("--policy-pack-config goes with --stack")
    from phasekit.plan import find_project_dir

    try:
        project_dir = args.project_dir or find_project_dir(Path.cwd())
        if args.command == "risk":
            return _risk(args, project_dir)
        if args.compare:
            return _compare(args, project_dir)
        if args.source:
            return _migration(args, project_dir)
        if args.diagram:
            return _diagram(args, project_dir)
        return _plan(args, project_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


def _plan(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.cost import estimate
    from phasekit.guardrails import evaluate, load_policy_pack_config
    from phasekit.plan import plan_json, plan_text, run_plan

    plan = run_plan(args.stack, project_dir)
    cost = estimate(plan.recording)
    levels = load_policy_pack_config(args.policy_pack_config) if args.policy_pack_config else None
    violations = evaluate(plan.recording, levels)
    _emit(args, lambda: plan_json(plan, cost, violations), lambda: plan_text(plan, cost, violations))
    return EXIT_GUARDRAIL if any(violation.mandatory for violation in violations) else 0


def _compare(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.compare import compare_json, compare_text
    from phasekit.plan import run_plan

    plans = [run_plan(stack, project_dir, option="--compare") for stack in args.compare]
    _emit(args, lambda: compare_json(plans), lambda: compare_text(plans))
    return 0


def _migration(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.compare import migration_json, migration_text
    from phasekit.plan import run_plan

    source = run_plan(args.source, project_dir, option="--from")
    target = run_plan(args.target, project_dir, option="--to")
    _emit(args, lambda: migration_json(source, target), lambda: migration_text(source, target))
    return 0


def _diagram(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.diagram import write_diagrams
    from phasekit.plan import run_plan, stack_names

    stacks = args.diagram_stacks or stack_names(project_dir)
    out_dir = args.out if args.out.is_absolute() else Path.cwd() / args.out
    written = write_diagrams([run_plan(stack, project_dir, option="--diagram-stacks") for stack in stacks], out_dir)
    _emit(args, lambda: {"written": [str(path) for path in written]},
          lambda: "".join(f"wrote {path}\n" for path in written))
    return 0


def _risk(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.change_risk import assess, risk_json, risk_text
    from phasekit.plan import run_plan

    base = run_plan(args.stack, project_dir, stack_file=args.base)
    head = run_plan(args.stack, project_dir, stack_file=args.head)
    report = assess(base.recording, head.recording)
    _emit(args, lambda: risk_json(report), lambda: risk_text(report))
    if report.data_destroying and not args.allow_data_loss:
        return EXIT_DATA_LOSS
    return 0


def _emit(args: argparse.Namespace, as_json: Callable[[], object], as_text: Callable[[], str]) -> None:
    text = json.dumps(as_json(), indent=2) + "\n" if args.json else as_text()
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
