"""``phasekit plan --stack``'s output: the verdict first, default tags once, 100 columns, colour only on a
terminal, and ``--json`` with each resource's references.

What this cannot prove: how a given terminal draws rich's escapes (only that they are written, or not).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import pytest

from phasekit.cli import main
from phasekit.terminal import wants_colour
from policy import rules

ROOT = Path(__file__).resolve().parents[1]
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

POLICIES = len(rules.RULES)  # another change may add a rule: the count is not what these tests are about
PHASE1_SUMMARY = f"""\
phasekit plan: stack phase1 (phase 1) of project phasekit
offline preview under Pulumi's mock monitor: no credentials used, computed values unknown

Summary:
  resources     37 to create: digitalocean 16, cloudflare 10, command 3, tls 3, random 2; 3
                components
  monthly cost  $16.40 a month at list prices; 6 without a price; 3 usage-based not counted
  guardrails    {POLICIES} policies: {POLICIES} pass, 0 fail
  secrets       2 still to set before `pulumi up` (placeholders were used offline):
                  pulumi config set --secret --path 'secrets.SECRET_KEY_BASE'
                  pulumi config set --secret --path 'secrets.BACKUP_PASSPHRASE'
  warnings      none
  default tags  managed-by=phasekit, phase=1, project=phasekit, stack=phase1 (on every taggable
                resource; the tree shows <default tags> and any difference)
  exit status   0: config valid, no mandatory guardrail failed
"""


def plan(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["plan", *args, "--project-dir", str(ROOT)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def phase3_text() -> str:
    from phasekit.cost import estimate
    from phasekit.guardrails import evaluate
    from phasekit.plan import run_plan
    from phasekit.plan_text import plan_text

    planned = run_plan("phase3", ROOT)
    return plan_text(planned, estimate(planned.recording), evaluate(planned.recording))


def test_the_summary_comes_first_then_the_tree(capsys):
    status, out, err = plan(capsys, "--stack", "phase1")
    assert (status, err) == (0, "")
    assert out.startswith(PHASE1_SUMMARY + "\nResources: 37 to create\npulumi:pulumi:Stack  phasekit-phase1\n")


def test_summary_prints_the_summary_alone(capsys):
    assert plan(capsys, "--stack", "phase1", "--summary") == (0, PHASE1_SUMMARY, "")


def test_a_failing_mandatory_guardrail_is_in_the_summary_with_exit_3(capsys, tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    stack = (ROOT / "Pulumi.phase1.yaml").read_text()
    assert "\n  phasekit:protect: true\n" in stack
    (tmp_path / "Pulumi.phase1.yaml").write_text(stack.replace("phasekit:protect: true", "phasekit:protect: false"))
    status = main(["plan", "--stack", "phase1", "--summary", "--project-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 3
    assert f"  guardrails    {POLICIES} policies: {POLICIES - 1} pass, 1 fail: stateful-resources-protected " \
           "(mandatory)" in lines
    assert lines[-1] == "  exit status   3: a mandatory guardrail failed"


def test_phase3_plain_text_fits_100_columns(phase3_text):
    lines = phase3_text.splitlines()
    assert [line for line in lines if len(line) > 100] == []
    assert any(line.endswith("├─ aws:rds/instance:Instance  database-db  [protected; retained on delete]")
               for line in lines)


def test_default_tags_are_shown_once_and_differences_only(phase3_text):
    assert phase3_text.count("managed-by") == 1  # the summary's default tags line
    assert "  default tags  managed-by=phasekit, phase=3, project=phasekit, stack=phase3 (on every" in phase3_text
    lines = [line.strip("│├└─ ") for line in phase3_text.splitlines()]
    assert "tags: <default tags> + Name=network-vpc" in lines
    assert "tags: <default tags>" in lines


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("tags", {"project": "p", "stack": "s", "Name": "x"}, "<default tags> + Name=x"),
    ("tags", {"project": "p", "stack": "other"}, "<default tags> + stack=other"),
    ("tags", {"project": "p"}, "<default tags> - stack"),
    ("tags", ["project:p", "stack:s"], "<default tags>"),
    ("labels", {"phasekit.dev/project": "p", "phasekit.dev/stack": "s", "app": "web"}, "<default tags> + app=web"),
    ("labels", {"app": "web"}, {"app": "web"}),  # a selector-like set with no default entry stays
    ("metadata", {"labels": {"phasekit.dev/project": "p", "phasekit.dev/stack": "s"}, "name": "n"},
     {"labels": "<default tags>", "name": "n"}),
    ("tagSpecifications", [{"tags": {"project": "p", "stack": "s"}, "resourceType": "instance"}],
     [{"tags": "<default tags>", "resourceType": "instance"}]),
])
def test_tag_sets_are_compared_with_the_defaults_in_each_providers_form(key, value, shown):
    from phasekit.plan_text import _default_forms, without_default_tags

    assert without_default_tags(key, value, _default_forms({"project": "p", "stack": "s"})) == shown


def test_config_warnings_are_printed_in_the_summary():
    from phasekit.plan import run_plan
    from phasekit.plan_text import plan_text

    planned = dataclasses.replace(run_plan("phase1", ROOT), warnings=["phasekit:env.STRIPE_API_KEY: looks secret"])
    text = plan_text(planned, summary_only=True)
    assert "  warnings      1:\n                  phasekit:env.STRIPE_API_KEY: looks secret\n" in text


def test_plain_text_is_deterministic(capsys):
    first = plan(capsys, "--stack", "phase1")
    assert plan(capsys, "--stack", "phase1") == first


# --- Colour --------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "flag", "environ", "colour"), [
    (Terminal(), False, {}, True),
    (Terminal(), False, {"NO_COLOR": ""}, True),  # no-color.org: set *and not empty*
    (Terminal(), False, {"NO_COLOR": "1"}, False),
    (Terminal(), True, {}, False),
    (io.StringIO(), False, {}, False),  # piped
])
def test_colour_only_on_a_terminal_without_no_color(stream, flag, environ, colour):
    assert wants_colour(stream, flag, environ) is colour


def test_a_terminal_gets_rich_colour_and_no_color_gets_the_plain_text(capsys, monkeypatch):
    _, plain, _ = plan(capsys, "--stack", "phase1", "--summary")
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["plan", "--stack", "phase1", "--summary", "--project-dir", str(ROOT)]) == 0
    coloured = terminal.getvalue()
    assert ESCAPE.search(coloured)
    assert "37 to create: digitalocean 16" in ESCAPE.sub("", coloured)
    for extra, environ in ((["--no-color"], None), ([], "1")):
        terminal = Terminal()
        monkeypatch.setattr("sys.stdout", terminal)
        if environ:
            monkeypatch.setenv("NO_COLOR", environ)
        assert main(["plan", "--stack", "phase1", "--summary", *extra, "--project-dir", str(ROOT)]) == 0
        assert terminal.getvalue() == plain


def test_the_terminal_tree_fits_the_consoles_width():
    from rich.console import Console

    from phasekit.plan import run_plan
    from phasekit.plan_text import plan_document
    from phasekit.terminal import write_plan

    stream = io.StringIO()
    write_plan(plan_document(run_plan("phase1", ROOT)), Console(file=stream, force_terminal=True, width=72,
                                                                highlight=False))
    lines = ESCAPE.sub("", stream.getvalue()).splitlines()
    assert max(len(line) for line in lines) <= 72
    assert any("vps-data" in line and "protected" in line for line in lines)


def test_piped_output_does_not_import_rich():
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['phasekit', 'plan', '--stack', 'phase1', '--summary']\n"
            "try:\n    runpy.run_module('phasekit', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('rich' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.stderr.strip().splitlines()[-1] == "False"


# --- JSON references ----------------------------------------------------------------------------------


def test_json_records_each_inputs_sources_and_the_dependency_list(capsys):
    status, out, _ = plan(capsys, "--stack", "phase1", "--json")
    assert status == 0
    document = json.loads(out)
    resources = {resource["name"]: resource for resource in document["resources"]}
    urn = {name: resource["urn"] for name, resource in resources.items()}
    assignment = resources["vps-ip-assignment"]
    assert assignment["expressions"] == {"dropletId": {"references": [urn["vps-droplet"]]},
                                         "ipAddress": {"references": [urn["vps-ip"]]}}
    # The Project: deleted after the assignment (an assigned reserved IP cannot move to the default project).
    assert assignment["dependsOn"] == sorted([urn["vps-droplet"], urn["vps-ip"], urn["vps-project"]])
    assert resources["vps-vpc"]["expressions"] == {}
    assert document["summary"] == {
        "resourcesToCreate": 37, "byProvider": {"digitalocean": 16, "cloudflare": 10, "command": 3, "tls": 3,
                                                "random": 2},
        "components": 3, "defaultTags": {"managed-by": "phasekit", "phase": "1", "project": "phasekit",
                                         "stack": "phase1"},
        "secretsToSet": 2, "warnings": 0, "exitStatus": 0}


def test_json_names_the_explicit_provider_each_resource_uses(capsys):
    """Phase 3 pins AWS to an explicit provider and deploys into the cluster through its own; outside tools
    need that relation too (terraform's ``provider_config_key``)."""
    status, out, _ = plan(capsys, "--stack", "phase3", "--json")
    assert status == 0
    resources = json.loads(out)["resources"]
    urns = {resource["name"]: resource["urn"] for resource in resources}
    for resource in resources:
        package = resource["type"].split(":")[0]
        expected = {"aws": urns["aws"], "kubernetes": urns["cluster-k8s"]}.get(package)
        if resource["type"].startswith("pulumi:providers:"):
            expected = None
        assert resource["provider"] == expected, resource["name"]


def test_the_plan_warns_on_the_day_a_standard_support_version_left_standard_support(tmp_path):
    """The warning takes its dates from the price catalog, the same calendar the cost estimate prices by."""
    from datetime import date

    from phasekit.plan import run_plan

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    stack = (ROOT / "Pulumi.phase3.yaml").read_text()
    assert '\n    version: "1.35"\n' in stack
    (tmp_path / "Pulumi.phase3.yaml").write_text(stack.replace('\n    version: "1.35"\n', '\n    version: "1.34"\n'))
    assert run_plan("phase3", tmp_path, today=date(2026, 12, 2)).warnings == []
    assert run_plan("phase3", tmp_path, today=date(2026, 12, 3)).warnings == [
        "phasekit:cluster.version: '1.34' left EKS standard support on 2026-12-02: with supportType STANDARD EKS "
        "upgrades the cluster to '1.35' on its own (an upgrade nobody scheduled, and the next pulumi preview refuses "
        "the configured version as a downgrade until you raise it), and a cluster already in extended support cannot "
        "be switched back to STANDARD; set "
        "cluster.version to '1.35' (one minor at a time), or choose supportType EXTENDED and pay extended support "
        "($0.60 instead of $0.10 per cluster-hour)"]
