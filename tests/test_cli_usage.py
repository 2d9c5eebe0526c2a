"""The ``phasekit`` command line never surprises: every argument is checked before any plan runs, each
mode's usage error shows that mode's usage, and no input ends in a traceback.

Exit status: 0 ok, 1 something the arguments name (folder, stack, file, revision, config) is missing or
invalid, 2 the command line itself is wrong, 3 mandatory guardrail failed, 4 data loss not allowed,
70 internal error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phasekit import cli
from phasekit.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "risk"
PLAN_USAGE_FROM = "usage: phasekit plan --from STACK --to STACK [--json]\n"
PLAN_USAGE_STACK = "usage: phasekit plan --stack STACK [--json | --summary] [--no-color] [--policy-pack-config FILE]\n"
PLAN_USAGE_DIAGRAM = "usage: phasekit plan --diagram [--diagram-stacks STACK [STACK ...]] [--out DIR] [--json]\n"
PLAN_USAGE_COMPARE = "usage: phasekit plan --compare STACK [STACK ...] [--json]\n"


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        status = main(list(args))
    except SystemExit as exit_info:  # argparse's own exits (usage errors, --help, --version)
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def no_plan(monkeypatch):
    """Fails the test if a plan starts: these arguments must be refused before any plan runs."""
    import phasekit.plan

    def refuse(*_args, **_kwargs):
        raise AssertionError("a plan ran before the arguments were checked")

    monkeypatch.setattr(phasekit.plan, "run_plan", refuse)


def bare_project(tmp_path: Path, pulumi_yaml: str | None = None) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(pulumi_yaml or (ROOT / "Pulumi.yaml").read_text())
    return tmp_path


# --- --project-dir ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["plan", "--stack", "phase1"],
    ["plan", "--compare", "phase1", "phase2"],
    ["plan", "--from", "phase1", "--to", "phase2"],
    ["plan", "--diagram"],
    ["risk", "--stack", "phase1", "--base", str(FIXTURES / "phase1.yaml")],
])
def test_a_missing_project_dir_is_one_line_in_every_mode(capsys, no_plan, command):
    assert run(capsys, *command, "--project-dir", "/nonexistent") == (
        1, "", "error: --project-dir /nonexistent: no such folder\n")


def test_a_project_dir_that_is_a_file_or_has_no_pulumi_yaml(capsys, no_plan, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert run(capsys, "plan", "--stack", "phase1", "--project-dir", str(a_file)) == (
        1, "", f"error: --project-dir {a_file}: not a folder\n")
    assert run(capsys, "plan", "--stack", "phase1", "--project-dir", str(tmp_path)) == (
        1, "", f"error: --project-dir {tmp_path}: no Pulumi.yaml in this folder\n")


def test_a_bad_pulumi_yaml_is_one_line_with_line_and_column(capsys, no_plan, tmp_path):
    project = bare_project(tmp_path, "name: phasekit\nruntime: [python\n")
    shutil.copy(ROOT / "Pulumi.phase1.yaml", project)
    status, out, err = run(capsys, "plan", "--stack", "phase1", "--project-dir", str(project))
    assert (status, out) == (1, "")
    assert err == (f"error: {project / 'Pulumi.yaml'}:3:1: not valid YAML: expected ',' or ']', but got "
                   "'<stream end>'\n")


@pytest.mark.parametrize(("pulumi_yaml", "problem"), [
    ("- phasekit\n", "not a Pulumi project file: the top level is not a mapping"),
    ("runtime: python\n", "name: missing; allowed: the project name, e.g. phasekit"),
    ("name: ''\n", "name: missing; allowed: the project name, e.g. phasekit"),
])
def test_a_pulumi_yaml_without_a_name_is_named_with_its_path(capsys, no_plan, tmp_path, pulumi_yaml, problem):
    project = bare_project(tmp_path, pulumi_yaml)
    shutil.copy(ROOT / "Pulumi.phase1.yaml", project)
    assert run(capsys, "plan", "--stack", "phase1", "--project-dir", str(project)) == (
        1, "", f"error: {project / 'Pulumi.yaml'}: {problem}\n")


def test_diagram_of_a_folder_without_stack_files_is_an_error_naming_it(capsys, no_plan, tmp_path):
    project = bare_project(tmp_path)
    assert run(capsys, "plan", "--diagram", "--out", str(tmp_path / "out"), "--project-dir", str(project)) == (
        1, "", f"error: --diagram: no stack files (Pulumi.<stack>.yaml) in {project}\n")
    assert not (tmp_path / "out").exists()


def test_diagram_of_tmp_as_in_the_issue_is_an_error_not_silence(capsys, no_plan):
    if Path("/tmp/Pulumi.yaml").exists():
        pytest.skip("/tmp holds a Pulumi.yaml on this machine")
    assert run(capsys, "plan", "--diagram", "--project-dir", "/tmp") == (
        1, "", "error: --project-dir /tmp: no Pulumi.yaml in this folder\n")


def test_risk_with_a_missing_head_file_is_one_line(capsys, no_plan):
    assert run(capsys, "risk", "--stack", "phase1", "--base", str(FIXTURES / "phase1.yaml"), "--head", "/nope.yaml",
               "--project-dir", str(ROOT)) == (1, "", "error: --head /nope.yaml: no such file\n")


# --- Stack names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["plan", "--compare", "phase1", "phase9"],
     "--compare: no stack file Pulumi.phase9.yaml; allowed: phase1, phase2, phase3 (did you mean 'phase3'?)"),
    (["plan", "--stack", "Phase1"],
     "--stack: no stack file Pulumi.Phase1.yaml; allowed: phase1, phase2, phase3 (did you mean 'phase1'?)"),
    (["plan", "--from", "phase1", "--to", "phase22"],
     "--to: no stack file Pulumi.phase22.yaml; allowed: phase1, phase2, phase3 (did you mean 'phase2'?)"),
    (["plan", "--diagram", "--diagram-stacks", "phase1", "prod"],
     "--diagram-stacks: no stack file Pulumi.prod.yaml; allowed: phase1, phase2, phase3"),
    (["risk", "--stack", "phase4", "--base", str(FIXTURES / "phase1.yaml")],
     "--stack: no stack file Pulumi.phase4.yaml; allowed: phase1, phase2, phase3 (did you mean 'phase3'?)"),
])
def test_every_stack_name_is_checked_before_any_plan_runs(capsys, no_plan, args, message):
    assert run(capsys, *args, "--project-dir", str(ROOT)) == (1, "", f"error: {message}\n")


def test_a_misspelled_policy_is_reported_before_the_plan(capsys, no_plan, tmp_path):
    levels = tmp_path / "levels.json"
    levels.write_text(json.dumps({"rds-backups-enabledd": "advisory"}))
    status, out, err = run(capsys, "plan", "--stack", "phase1", "--policy-pack-config", str(levels),
                           "--project-dir", str(ROOT))
    assert (status, out) == (1, "")
    assert err.startswith(f"error: {levels}: rds-backups-enabledd: no such policy; allowed: ")
    assert err.count("\n") == 1


# --- Usage errors show the mode's usage ------------------------------------------------------------


@pytest.mark.parametrize(("args", "usage", "message"), [
    (["--from", "phase1"], PLAN_USAGE_FROM, "--from and --to go together"),
    (["--to", "phase2"], PLAN_USAGE_FROM, "--from and --to go together"),
    (["--stack", "phase1", "--to", "phase2"], PLAN_USAGE_FROM, "--from and --to go together"),
    (["--stack", "phase1", "--out", "x"], PLAN_USAGE_DIAGRAM, "--out goes with --diagram"),
    (["--stack", "phase1", "--diagram-stacks", "phase1"], PLAN_USAGE_DIAGRAM, "--diagram-stacks goes with --diagram"),
    (["--compare", "phase1", "--policy-pack-config", "levels.json"], PLAN_USAGE_STACK,
     "--policy-pack-config goes with --stack"),
    (["--compare", "phase1", "--summary"], PLAN_USAGE_STACK, "--summary goes with --stack"),
    (["--stack", "phase1", "--summary", "--json"], PLAN_USAGE_STACK,
     "--summary and --json do not go together (the JSON has the summary under \"summary\")"),
    (["--compare"], PLAN_USAGE_COMPARE, "--compare needs at least one stack name"),
])
def test_a_mode_error_shows_that_modes_usage(capsys, no_plan, args, usage, message):
    assert run(capsys, "plan", *args, "--project-dir", str(ROOT)) == (
        2, "", f"{usage}phasekit plan: error: {message}\n")


def test_plan_without_a_mode_lists_the_modes(capsys, no_plan):
    status, out, err = run(capsys, "plan", "--json")
    assert (status, out) == (2, "")
    assert err.startswith("usage: phasekit plan --stack STACK")
    assert err.endswith("phasekit plan: error: choose one mode: --stack, --compare, --from/--to or --diagram\n")
    assert "       phasekit plan --compare STACK [STACK ...] [--json]\n" in err
    assert "       (every mode also takes --project-dir DIR)\n" in err


def test_two_modes_at_once_is_a_plan_usage_error(capsys, no_plan):
    status, _, err = run(capsys, "plan", "--stack", "phase1", "--diagram")
    assert status == 2
    assert err.startswith("usage: phasekit plan --stack STACK")
    assert err.endswith("phasekit plan: error: argument --diagram: not allowed with argument --stack\n")


def test_risk_usage_errors_show_the_risk_usage(capsys, no_plan):
    status, out, err = run(capsys, "risk", "--stack", "phase1")
    assert (status, out) == (2, "")
    assert err.startswith("usage: phasekit risk ")
    assert err.endswith("phasekit risk: error: the following arguments are required: --base\n")


def test_no_command_shows_the_top_level_usage(capsys):
    status, _, err = run(capsys)
    assert status == 2
    assert err.startswith("usage: phasekit ")
    assert "phasekit: error: " in err


# --- --version and --help --------------------------------------------------------------------------


def test_version_comes_from_the_installed_distribution(capsys):
    from importlib.metadata import version

    assert run(capsys, "--version") == (0, f"phasekit {version('phasekit')}\n", "")


def test_help_has_examples_and_the_exit_codes(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    for text in ("examples:", "phasekit plan --stack phase1", "phasekit risk --stack phase2 --base origin/main",
                 "exit status:", "  0  success", "  1  invalid config", "  2  usage error",
                 "  3  a mandatory guardrail failed", "  4  a data-destroying change",
                 "  70 internal error"):
        assert text in out, text
    status, out, _ = run(capsys, "plan", "--help")
    assert status == 0
    assert "examples:" in out and "phasekit plan --from phase1 --to phase2" in out and "exit status:" in out
    assert max(len(line) for line in out.splitlines()) <= 100


# --- risk --------------------------------------------------------------------------------------------


def test_risk_allow_data_loss_says_what_it_allowed(capsys):
    args = ("risk", "--stack", "phase1", "--base", str(FIXTURES / "phase1.yaml"),
            "--head", str(FIXTURES / "phase1-sfo3.yaml"), "--project-dir", str(ROOT))
    status, refused, _ = run(capsys, *args)
    assert status == 4
    assert "allowed by --allow-data-loss" not in refused
    status, allowed, err = run(capsys, *args, "--allow-data-loss")
    assert (status, err) == (0, "")
    assert allowed.endswith("\ndata-destroying changes allowed by --allow-data-loss: 1\n")
    assert allowed != refused


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose project sits in a sub-folder; HEAD holds phase1.yaml as Pulumi.phase1.yaml,
    the work tree holds the sfo3 change (which replaces the data volume)."""
    project = tmp_path / "infra-project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project)
    shutil.copy(FIXTURES / "phase1.yaml", project / "Pulumi.phase1.yaml")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    shutil.copy(FIXTURES / "phase1-sfo3.yaml", project / "Pulumi.phase1.yaml")
    return project


def test_risk_base_takes_a_git_revision(capsys, repo):
    status, from_revision, err = run(capsys, "risk", "--stack", "phase1", "--base", "HEAD",
                                     "--project-dir", str(repo))
    assert (status, err) == (4, "")
    status, from_file, _ = run(capsys, "risk", "--stack", "phase1", "--base", str(FIXTURES / "phase1.yaml"),
                               "--project-dir", str(repo))
    assert (status, from_revision) == (4, from_file)


@pytest.mark.parametrize(("revision", "reason"), [
    ("no-such-branch", "invalid object name 'no-such-branch'."),
    ("HEAD~5", "invalid object name 'HEAD~5'."),
])
def test_a_bad_revision_is_one_line(capsys, no_plan, repo, revision, reason):
    assert run(capsys, "risk", "--stack", "phase1", "--base", revision, "--project-dir", str(repo)) == (
        1, "", f"error: --base {revision}: no such file, and git cannot show "
               f"{revision}:infra-project/Pulumi.phase1.yaml: {reason}\n")


def test_a_revision_outside_a_repository_is_one_line(capsys, no_plan, tmp_path):
    project = bare_project(tmp_path)
    shutil.copy(ROOT / "Pulumi.phase1.yaml", project)
    status, out, err = run(capsys, "risk", "--stack", "phase1", "--base", "origin/main", "--project-dir", str(project))
    assert (status, out) == (1, "")
    assert err == (f"error: --base origin/main: no such file, and {project} is not in a git repository\n")


# --- No traceback, ever ------------------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_with_exit_70(capsys, monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_plan", boom)
    monkeypatch.delenv("PHASEKIT_DEBUG", raising=False)
    assert run(capsys, "plan", "--stack", "phase1", "--project-dir", str(ROOT)) == (
        70, "", "phasekit: internal error: RuntimeError: boom (set PHASEKIT_DEBUG=1 to see the traceback)\n")
    monkeypatch.setenv("PHASEKIT_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["plan", "--stack", "phase1", "--project-dir", str(ROOT)])


@pytest.mark.parametrize(("args", "status", "first_line"), [
    (["plan", "--stack", "phase1", "--project-dir", "/nonexistent"], 1,
     "error: --project-dir /nonexistent: no such folder"),
    (["plan", "--compare", "phase1", "phase9"], 1, "error: --compare: no stack file Pulumi.phase9.yaml"),
    (["risk", "--stack", "phase1", "--base", "/nonexistent", "--project-dir", "/nonexistent"], 1,
     "error: --project-dir /nonexistent: no such folder"),
    (["plan", "--from", "phase1"], 2, "usage: phasekit plan --from STACK --to STACK"),
    (["plan", "--stack", "phase1", "--out", "x"], 2, "usage: phasekit plan --diagram"),
])
def test_no_traceback_in_a_real_process(args, status, first_line):
    result = subprocess.run([sys.executable, "-m", "phasekit", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert (result.returncode, result.stdout) == (status, "")
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(first_line)


# --- Found by review: each fails on the code before the fix -------------------------------------------------


def test_a_base_revision_is_never_read_as_a_git_option(capsys, no_plan, repo, tmp_path):
    """``--base=--output=FILE`` made ``git show`` write FILE; a revision starting with '-' is refused."""
    target = tmp_path / "written"
    assert run(capsys, "risk", "--stack", "phase1", f"--base=--output={target}", "--project-dir", str(repo)) == (
        1, "", f"error: --base --output={target}: no such file, and a git revision cannot start with '-'\n")
    assert list(tmp_path.glob("written*")) == []


def test_a_bad_out_is_refused_before_any_plan(capsys, no_plan, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert run(capsys, "plan", "--diagram", "--out", str(a_file), "--project-dir", str(ROOT)) == (
        1, "", f"error: --out {a_file}: not a folder\n")
    status, _, err = run(capsys, "plan", "--diagram", "--out", str(a_file / "sub"), "--project-dir", str(ROOT))
    assert (status, err) == (1, f"error: --out {a_file / 'sub'}: cannot create the folder: Not a directory\n")


def test_the_default_out_is_inside_the_project_wherever_phasekit_runs(capsys, monkeypatch, tmp_path):
    import phasekit.diagram

    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.phase1.yaml"):
        shutil.copy(ROOT / name, project)
    (project / "docs").mkdir()
    monkeypatch.chdir(project / "docs")
    written_to = []
    monkeypatch.setattr(phasekit.diagram, "write_diagrams", lambda plans, out: written_to.append(out) or [])
    assert run(capsys, "plan", "--diagram")[0] == 0
    assert written_to == [project / "docs" / "diagrams"]


@pytest.mark.parametrize(("args", "usage", "message"), [
    (["plan", "--stack", "phase1", "--bogus"], "usage: phasekit plan --stack STACK",
     "phasekit plan: error: unrecognized arguments: --bogus"),
    (["risk", "--stack", "phase1", "--base", "HEAD", "--summary"], "usage: phasekit risk",
     "phasekit risk: error: unrecognized arguments: --summary"),
    (["plan", "--stack", ""], PLAN_USAGE_STACK.strip(), "phasekit plan: error: --stack needs a value, not an empty string"),
    (["plan", "--diagram", "--out", ""], PLAN_USAGE_DIAGRAM.strip(),
     "phasekit plan: error: --out needs a value, not an empty string"),
    (["risk", "--stack", "phase1", "--base", ""], "usage: phasekit risk",
     "phasekit risk: error: --base needs a value, not an empty string"),
    (["risk", "--stack", "phase1", "--base", "HEAD", "--head", ""], "usage: phasekit risk",
     "phasekit risk: error: --head needs a value, not an empty string"),
])
def test_unknown_flags_and_empty_values_are_the_commands_usage_errors(capsys, no_plan, args, usage, message):
    status, out, err = run(capsys, *args, "--project-dir", str(ROOT))
    assert (status, out) == (2, "")
    assert err.startswith(usage) and err.endswith(f"\n{message}\n")


@pytest.mark.parametrize("stack", ["../Pulumi", "a/b/c/phase1", "..", "phase 1", "x" * 101])
def test_a_stack_name_cannot_reach_outside_the_project(capsys, no_plan, stack):
    assert run(capsys, "plan", "--stack", stack, "--project-dir", str(ROOT)) == (
        1, "", f"error: --stack {stack!r}: not a stack name; allowed: letters, digits, '-', '_' and '.', "
               "optionally as org/stack or org/project/stack\n")


def test_a_fully_qualified_stack_name_reads_its_stack_file(capsys):
    status, out, _ = run(capsys, "plan", "--stack", "acme/phasekit/phase1", "--summary", "--project-dir", str(ROOT))
    assert (status, out.splitlines()[0]) == (0, "phasekit plan: stack phase1 (phase 1) of project phasekit")


def test_a_folder_named_like_a_stack_file_is_not_a_stack(capsys, no_plan, tmp_path):
    project = bare_project(tmp_path)
    (project / "Pulumi.phase1.yaml").mkdir()
    shutil.copy(ROOT / "Pulumi.phase2.yaml", project)
    assert run(capsys, "plan", "--stack", "phase1", "--project-dir", str(project)) == (
        1, "", "error: --stack: no stack file Pulumi.phase1.yaml; allowed: phase2 (did you mean 'phase2'?)\n")


def test_with_several_stacks_a_config_error_names_its_stack(capsys, tmp_path):
    project = bare_project(tmp_path)
    shutil.copy(ROOT / "Pulumi.phase1.yaml", project)
    broken = (ROOT / "Pulumi.phase2.yaml").read_text().replace("phasekit:phase: 2", "phasekit:phase: 9")
    (project / "Pulumi.phase2.yaml").write_text(broken)
    problem = "phasekit:phase: 9 is not a phase; allowed: 1, 2, 3"
    for args, label in ((["--compare", "phase1", "phase2"], "--compare phase2 (Pulumi.phase2.yaml)"),
                        (["--from", "phase1", "--to", "phase2"], "--to phase2 (Pulumi.phase2.yaml)"),
                        (["--diagram", "--out", str(tmp_path / "out")], "--diagram phase2 (Pulumi.phase2.yaml)")):
        assert run(capsys, "plan", *args, "--project-dir", str(project)) == (1, "", f"error: {label}: {problem}\n")
