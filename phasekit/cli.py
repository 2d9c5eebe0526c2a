"""``phasekit`` / ``python -m phasekit``: the offline tools. None needs a cloud credential or the Pulumi CLI.

    phasekit plan --stack phase1                    summary, resource tree, monthly cost, guardrails, outputs
    phasekit plan --stack phase1 --summary          the summary alone
    phasekit plan --stack phase1 --json             the same as JSON, with each resource's references
    phasekit plan --compare phase1 phase2 phase3    phases side by side: resources by kind, cost, what each adds
    phasekit plan --from phase1 --to phase2         resources created and retired, and the migration runbook
    phasekit plan --diagram [--out DIR]             each stack's topology as Mermaid and SVG
    phasekit risk --stack phase2 --base REV|FILE    classify every resource change from a revision or file
    phasekit render --stack phase1 --out DIR       every host's files as they land on it, placeholder secrets
    phasekit db migrate --source URL --target URL  copy a live database to the next phase, verified (phasekit/db)

Every argument is checked before any plan runs: the project folder, every stack name (with the closest
existing one), the policy pack config, the ``--base`` revision. A usage error shows the usage of the mode it
concerns. See ``EXIT_STATUS`` for the exit codes; an unexpected exception is one line and exit 70
(``PHASEKIT_DEBUG=1`` lets it raise, with its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from infra.errors import ConfigError

EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_GUARDRAIL = 3
EXIT_DATA_LOSS = 4
EXIT_INTERNAL = 70
"""``EX_SOFTWARE`` of sysexits.h: an internal software error."""

EXIT_STATUS = """\
exit status:
  0  success
  1  invalid config, or a folder, stack, file or git revision named by an argument is missing
  2  usage error in the command line itself (shown with the usage of the mode concerned)
  3  a mandatory guardrail failed (plan --stack)
  4  a data-destroying change, without --allow-data-loss (risk)
  70 internal error: a bug in phasekit (set PHASEKIT_DEBUG=1 to see the traceback)"""

PLAN_EXAMPLES = """\
  phasekit plan --stack phase1                     summary, tree, monthly cost, guardrails, outputs
  phasekit plan --stack phase3 --summary           the summary alone
  phasekit plan --stack phase1 --json              the same as JSON, with each resource's references
  phasekit plan --compare phase1 phase2 phase3     phases side by side
  phasekit plan --from phase1 --to phase2          a migration's creates, retirements and runbook
  phasekit plan --diagram --out docs/diagrams      each stack's topology as Mermaid and SVG"""

RENDER_EXAMPLES = """\
  phasekit render --stack phase1 --out /tmp/phase1       each host's files, to review or rehearse"""

RISK_EXAMPLES = """\
  phasekit risk --stack phase2 --base origin/main  what the change since origin/main destroys
  phasekit risk --stack phase1 --base HEAD~1 --allow-data-loss
  phasekit risk --stack phase1 --base old.yaml --head new.yaml --json"""

MODE_USAGES = {
    "stack": "phasekit plan --stack STACK [--json | --summary] [--no-color] [--policy-pack-config FILE]",
    "compare": "phasekit plan --compare STACK [STACK ...] [--json]",
    "from": "phasekit plan --from STACK --to STACK [--json]",
    "diagram": "phasekit plan --diagram [--diagram-stacks STACK [STACK ...]] [--out DIR] [--json]",
}
EVERY_MODE = "(every mode also takes --project-dir DIR)"


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("phasekit")
        except PackageNotFoundError:
            installed = "(not installed: run scripts/bootstrap.sh)"
        sys.stdout.write(f"phasekit {installed}\n")
        parser.exit(0)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """(the top-level parser, each command's parser by name)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="phasekit", formatter_class=raw,
        description="phasekit's offline tools: plan a stack, compare phases, draw diagrams and judge a change's\n"
                    "risk, with no cloud credential and no Pulumi CLI.",
        epilog=f"examples:\n{PLAN_EXAMPLES}\n{RISK_EXAMPLES}\n{RENDER_EXAMPLES}\n\n{EXIT_STATUS}")
    parser.add_argument("--version", action=_Version, help="print phasekit's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{plan,risk,render,db}")

    plan = commands.add_parser(
        "plan", help="validate stack config and show what it would create and cost", formatter_class=raw,
        usage="\n       ".join([*MODE_USAGES.values(), EVERY_MODE]),
        epilog=f"examples:\n{PLAN_EXAMPLES}\n\n{EXIT_STATUS}",
        description="One mode at a time: --stack, --compare, --from with --to, or --diagram.")
    mode = plan.add_mutually_exclusive_group()
    mode.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml")
    mode.add_argument("--compare", nargs="*", metavar="STACK", help="show these stacks side by side")
    mode.add_argument("--from", dest="source", metavar="STACK", help="migration source stack (with --to)")
    mode.add_argument("--diagram", action="store_true", help="write topology diagrams (Mermaid and SVG)")
    plan.add_argument("--to", dest="target", metavar="STACK", help="migration target stack (with --from)")
    plan.add_argument("--diagram-stacks", nargs="+", metavar="STACK",
                      help="with --diagram: these stacks (default: every Pulumi.<stack>.yaml)")
    plan.add_argument("--out", default=None, metavar="DIR",
                      help="with --diagram: output directory (default: docs/diagrams in the project folder)")
    plan.add_argument("--json", action="store_true", help="print JSON instead of text")
    plan.add_argument("--summary", action="store_true",
                      help="with --stack: print the summary alone (resources, cost, guardrails, secrets, warnings)")
    plan.add_argument("--no-color", action="store_true",
                      help="plain text even on a terminal (as when NO_COLOR is set or the output is piped)")
    plan.add_argument("--policy-pack-config", type=Path, default=None, metavar="FILE",
                      help="with --stack: guardrail enforcement levels, in the format of "
                           "`pulumi preview --policy-pack-config`")
    _project_dir_argument(plan)

    risk = commands.add_parser(
        "risk", help="classify the resource changes between two versions of a stack", formatter_class=raw,
        description="Plan both versions of a stack file offline and classify every resource change: create,\n"
                    "update in place, replace, delete. A replace or delete of a resource that holds data\n"
                    "exits 4 unless --allow-data-loss is given.",
        epilog=f"examples:\n{RISK_EXAMPLES}\n\n{EXIT_STATUS}")
    risk.add_argument("--stack", required=True, help="stack name: the head config is Pulumi.<stack>.yaml")
    risk.add_argument("--base", required=True, metavar="REV|FILE",
                      help="the base version: a file, or a git revision (origin/main, HEAD~1, a sha) whose "
                           "Pulumi.<stack>.yaml is read with `git show`")
    risk.add_argument("--head", default=None, metavar="FILE",
                      help="the head version (default: Pulumi.<stack>.yaml)")
    risk.add_argument("--allow-data-loss", action="store_true",
                      help="exit 0 even when a change replaces or deletes a stateful resource")
    risk.add_argument("--json", action="store_true", help="print JSON instead of text")
    _project_dir_argument(risk)

    render = commands.add_parser(
        "render", help="write every host's files as they land on it, with placeholder secrets",
        formatter_class=raw,
        description="Run the stack's program offline and write each host's files (the rollout bundle, with its\n"
                    "modes, and cloud-init.yaml) into a folder per host, or phase 3's Kubernetes objects as YAML.\n"
                    "Secrets are placeholders generated for this run. See README.txt in DIR and docs/rehearse.md.",
        epilog=f"examples:\n{RENDER_EXAMPLES}\n\n{EXIT_STATUS}")
    render.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    render.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder to write into")
    render.add_argument("--json", action="store_true", help="print what was written as JSON")
    _project_dir_argument(render)
    # Listed for --help only: `run` hands `phasekit db ...` to phasekit.db.cli before this parser sees it.
    commands.add_parser("db", help="migrate a database between phases and verify it; restore backups "
                                   "(see phasekit db --help)", add_help=False)
    return parser, {"plan": plan, "risk": risk, "render": render}


def _project_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", type=Path, default=None, metavar="DIR",
                        help="directory holding Pulumi.yaml (default: the nearest one above the cwd)")


def main(argv: list[str] | None = None) -> int:
    """The console script. Any unexpected exception becomes one line and exit 70, unless PHASEKIT_DEBUG is
    set (then it raises, traceback and all); tests that want the exception itself call ``run``."""
    try:
        return run(argv)
    except KeyboardInterrupt:
        print("phasekit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("PHASEKIT_DEBUG"):
            raise
        message = " ".join(str(error).split())
        print(f"phasekit: internal error: {type(error).__name__}: {message} "
              "(set PHASEKIT_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["db"]:  # database tools: their own parser, no project folder or plan involved
        from phasekit.db.cli import run as run_db

        return run_db(argv[1:], sys.stdout)
    parser, commands = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would report them with the top-level usage; the command's own usage helps more
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "plan":
        mode = _plan_mode(args, commands["plan"])
    elif args.command == "render":
        _check_render_arguments(args, commands["render"])
    else:
        _check_risk_arguments(args, commands["risk"])
    try:
        project_dir = _project_dir(args)
        if args.command == "risk":
            return _risk(args, project_dir)
        if args.command == "render":
            return _render(args, project_dir)
        return {"stack": _plan, "compare": _compare, "from": _migration, "diagram": _diagram}[mode](args, project_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


def _check_risk_arguments(args: argparse.Namespace, risk_parser: argparse.ArgumentParser) -> None:
    for option, value in (("--stack", args.stack), ("--base", args.base), ("--head", args.head)):
        if value is not None and not value.strip():
            risk_parser.error(f"{option} needs a value, not an empty string")


def _check_render_arguments(args: argparse.Namespace, render_parser: argparse.ArgumentParser) -> None:
    for option, value in (("--stack", args.stack), ("--out", args.out)):
        if not value.strip():
            render_parser.error(f"{option} needs a value, not an empty string")


def _mode_error(mode: str, message: str) -> NoReturn:
    sys.stderr.write(f"usage: {MODE_USAGES[mode]}\nphasekit plan: error: {message}\n")
    raise SystemExit(EXIT_USAGE)


def _plan_mode(args: argparse.Namespace, plan_parser: argparse.ArgumentParser) -> str:
    """The plan mode the arguments ask for; a usage error (exit 2) with that mode's usage when an option
    belongs to another mode or a mode lacks a part."""
    if (args.source is None) != (args.target is None):
        _mode_error("from", "--from and --to go together")
    if args.out is not None and not args.diagram:
        _mode_error("diagram", "--out goes with --diagram")
    if args.diagram_stacks and not args.diagram:
        _mode_error("diagram", "--diagram-stacks goes with --diagram")
    if args.policy_pack_config and not args.stack:
        _mode_error("stack", "--policy-pack-config goes with --stack")
    if args.summary and not args.stack:
        _mode_error("stack", "--summary goes with --stack")
    if args.summary and args.json:
        _mode_error("stack", '--summary and --json do not go together (the JSON has the summary under "summary")')
    if args.compare is not None and not args.compare:
        _mode_error("compare", "--compare needs at least one stack name")
    for mode, option, values in (("stack", "--stack", [args.stack]), ("compare", "--compare", args.compare or []),
                                 ("from", "--from", [args.source]), ("from", "--to", [args.target]),
                                 ("diagram", "--diagram-stacks", args.diagram_stacks or []),
                                 ("diagram", "--out", [args.out])):
        if any(value is not None and not str(value).strip() for value in values):
            _mode_error(mode, f"{option} needs a value, not an empty string")
    if args.stack:
        return "stack"
    if args.compare:
        return "compare"
    if args.source:
        return "from"
    if args.diagram:
        return "diagram"
    plan_parser.error("choose one mode: --stack, --compare, --from/--to or --diagram")


def _project_dir(args: argparse.Namespace) -> Path:
    """The project folder, checked (a folder, with a readable Pulumi.yaml naming the project)."""
    from phasekit.project import check_project_dir, find_project_dir, project_name

    project_dir = check_project_dir(args.project_dir) if args.project_dir else find_project_dir(Path.cwd())
    project_name(project_dir)
    return project_dir


def _check_stacks(project_dir: Path, option: str, stacks: list[str]) -> list[str]:
    """The stacks' own names (``acme/phasekit/phase1`` is ``phase1``), each checked to have its stack file."""
    from phasekit.project import stack_file_of

    return [stack_file_of(stack, project_dir, option).name[len("Pulumi."):-len(".yaml")] for stack in stacks]


def _planned(label: str, plan: Callable[[], Any]) -> Any:
    """``plan()``, with a config error prefixed by ``label`` (the option and stack or file it came from):
    with several stacks in one command, a bare ``phasekit:appTier.size: ...`` would not say which."""
    try:
        return plan()
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None


def _plan(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.guardrails import load_policy_pack_config

    [args.stack] = _check_stacks(project_dir, "--stack", [args.stack])
    levels = load_policy_pack_config(args.policy_pack_config) if args.policy_pack_config else None

    from phasekit import plan as planner
    from phasekit.cost import estimate
    from phasekit.guardrails import evaluate

    plan = planner.run_plan(args.stack, project_dir)
    cost = estimate(plan.recording)
    violations = evaluate(plan.recording, levels)
    if args.json:
        _emit(args, lambda: planner.plan_json(plan, cost, violations), str)
    else:
        _write_plan_text(args, plan, cost, violations)
    return EXIT_GUARDRAIL if any(violation.mandatory for violation in violations) else 0


def _write_plan_text(args: argparse.Namespace, plan: Any, cost: Any, violations: Any) -> None:
    from phasekit.terminal import wants_colour

    if not wants_colour(sys.stdout, args.no_color):
        from phasekit.plan_text import plan_text

        _emit(args, dict, lambda: plan_text(plan, cost, violations, summary_only=args.summary))
        return
    from phasekit.plan_text import plan_document
    from phasekit.terminal import console_for, write_plan

    try:
        write_plan(plan_document(plan, cost, violations), console_for(sys.stdout), summary_only=args.summary)
    except BrokenPipeError:  # e.g. piped into `head` through a pseudo-terminal
        sys.stderr.close()


def _compare(args: argparse.Namespace, project_dir: Path) -> int:
    stacks = _check_stacks(project_dir, "--compare", args.compare)
    from phasekit import plan as planner
    from phasekit.compare import compare_json, compare_text

    plans = [_planned(f"--compare {stack} (Pulumi.{stack}.yaml)",
                      lambda stack=stack: planner.run_plan(stack, project_dir, option="--compare"))
             for stack in stacks]
    _emit(args, lambda: compare_json(plans), lambda: compare_text(plans))
    return 0


def _migration(args: argparse.Namespace, project_dir: Path) -> int:
    [args.source] = _check_stacks(project_dir, "--from", [args.source])
    [args.target] = _check_stacks(project_dir, "--to", [args.target])
    from phasekit import plan as planner
    from phasekit.compare import migration_json, migration_text

    source = _planned(f"--from {args.source} (Pulumi.{args.source}.yaml)",
                      lambda: planner.run_plan(args.source, project_dir, option="--from"))
    target = _planned(f"--to {args.target} (Pulumi.{args.target}.yaml)",
                      lambda: planner.run_plan(args.target, project_dir, option="--to"))
    _emit(args, lambda: migration_json(source, target), lambda: migration_text(source, target))
    return 0


def _diagram(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.project import stack_names

    stacks = _check_stacks(project_dir, "--diagram-stacks", args.diagram_stacks or stack_names(project_dir))
    if not stacks:
        raise ConfigError(f"--diagram: no stack files (Pulumi.<stack>.yaml) in {project_dir}")
    out_dir = _output_folder(Path(args.out) if args.out else project_dir / "docs" / "diagrams")
    from phasekit import plan as planner
    from phasekit.diagram import write_diagrams

    plans = [_planned(f"--diagram {stack} (Pulumi.{stack}.yaml)",
                      lambda stack=stack: planner.run_plan(stack, project_dir, option="--diagram-stacks"))
             for stack in stacks]
    written = write_diagrams(plans, out_dir)
    _emit(args, lambda: {"written": [str(path) for path in written]},
          lambda: "".join(f"wrote {path}\n" for path in written))
    return 0


def _output_folder(out: Path) -> Path:
    """``--out`` made absolute (relative to the cwd, like any path an argument names), created, and checked to
    be a writable folder before any plan runs."""
    out_dir = out if out.is_absolute() else Path.cwd() / out
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out}: not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot create the folder: {error.strerror}") from None
    if not os.access(out_dir, os.W_OK):
        raise ConfigError(f"--out {out}: not writable")
    return out_dir


def _render(args: argparse.Namespace, project_dir: Path) -> int:
    [args.stack] = _check_stacks(project_dir, "--stack", [args.stack])
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()):
        # Never mixed with what is there: every file in it must be this render's, placeholders and modes alike.
        raise ConfigError(f"--out {args.out}: not empty; render writes into a new or empty folder")
    out_dir = _output_folder(out)
    from phasekit.render import render_json, render_stack

    rendered = render_stack(args.stack, project_dir, out_dir)
    _emit(args, lambda: render_json(rendered), lambda: "".join(f"wrote {path}\n" for path in rendered.written))
    return 0


def _risk(args: argparse.Namespace, project_dir: Path) -> int:
    from phasekit.project import stack_file_at_revision, stack_file_of, temporary_folder

    stack_file = stack_file_of(args.stack, project_dir, "--stack")
    args.stack = stack_file.name[len("Pulumi."):-len(".yaml")]
    if args.head is None:
        head_file = stack_file
    elif Path(args.head).is_file():
        head_file = Path(args.head)
    else:
        raise ConfigError(f"--head {args.head}: no such file")
    with temporary_folder() as scratch:
        base_file = Path(args.base)
        if not base_file.is_file():
            base_file = stack_file_at_revision(args.base, project_dir / f"Pulumi.{args.stack}.yaml", Path(scratch))
        from phasekit import plan as planner
        from phasekit.change_risk import assess, risk_json, risk_text, with_app_changes

        base = _planned(f"--base {args.base}",
                        lambda: planner.run_plan(args.stack, project_dir, stack_file=base_file))
        head = _planned(f"--head {args.head or stack_file.name}",
                        lambda: planner.run_plan(args.stack, project_dir, stack_file=head_file))
    report = assess(base.recording, head.recording)
    if base.config is not None and head.config is not None:
        report = with_app_changes(report, base.config, head.config)
    _emit(args, lambda: risk_json(report, allowed=args.allow_data_loss),
          lambda: risk_text(report, allowed=args.allow_data_loss))
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
