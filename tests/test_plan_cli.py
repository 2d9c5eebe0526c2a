"""``phasekit plan``: the offline plan a newcomer runs first, and its failure mode on bad config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from phasekit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def plan(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["plan", *args, "--project-dir", str(ROOT)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def project_with(tmp_path: Path, stack_config: dict) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": stack_config}))
    return tmp_path


def test_tree_shows_every_resource_protection_and_masked_outputs(capsys):
    status, out, err = plan(capsys, "--stack", "phase1")
    assert status == 0 and err == ""
    assert "Resources: 37 to create" in out
    assert "├─ digitalocean:index/volume:Volume  vps-data  [protected; retained on delete]" in out
    assert "├─ cloudflare:index/r2Bucket:R2Bucket  edge-media  [protected; retained on delete]" in out
    assert "├─ digitalocean:index/droplet:Droplet  vps-droplet  [ignores changes to userData, sshKeys]" in out
    assert "tcp 22 from 203.0.113.0/24" in out
    assert "  database_url: [secret]\n" in out
    assert "  redis_url: [secret]\n" in out
    assert "pulumi config set --secret --path 'secrets.SECRET_KEY_BASE'" in out
    assert "offline-plan-placeholder" not in out


def test_json_lists_resources_with_masked_secrets(capsys):
    status, out, _ = plan(capsys, "--stack", "phase1", "--json")
    document = json.loads(out)
    assert status == 0
    assert (document["stack"], document["phase"]) == ("phase1", 1)
    assert set(document) == {"stack", "project", "phase", "summary", "resources", "outputs", "secretsToSet",
                             "warnings", "cost", "guardrails"}
    resources = {resource["name"]: resource for resource in document["resources"]}
    assert len(resources) == 37
    assert set(resources["vps-data"]) == {"urn", "type", "name", "parent", "inputs", "protect",
                                          "retainOnDelete", "ignoreChanges", "dependsOn", "expressions", "provider"}
    assert resources["vps-data"]["protect"] is True
    assert resources["vps-droplet"]["protect"] is False
    assert resources["vps-rollout"]["inputs"]["stdin"] == "[secret]"
    assert resources["edge-origin-csr"]["inputs"]["privateKeyPem"] == "[secret]"
    assert resources["vps-data"]["parent"] == resources["vps"]["urn"]
    assert document["outputs"]["database_url"] == "[secret]"
    assert document["outputs"]["origin_ip"] == "(known after apply)"
    assert "offline-plan-placeholder" not in out


def test_secure_values_in_the_stack_file_are_placeholders_and_stay_masked(capsys, tmp_path):
    config = yaml.safe_load((ROOT / "Pulumi.phase1.yaml").read_text())["config"]
    config["phasekit:secrets"] = {"SECRET_KEY_BASE": {"secure": "v1:c2VjcmV0"},
                                  "BACKUP_PASSPHRASE": {"secure": "v1:cGFzc3BocmFzZQ=="}}
    project = project_with(tmp_path, config)
    status = main(["plan", "--stack", "dev", "--json", "--project-dir", str(project)])
    out = capsys.readouterr().out
    assert status == 0
    assert json.loads(out)["secretsToSet"] == []
    assert "c2VjcmV0" not in out and "offline-plan-placeholder" not in out


def test_bad_config_exits_non_zero_with_one_message(capsys, tmp_path):
    config = yaml.safe_load((ROOT / "Pulumi.phase1.yaml").read_text())["config"]
    config["phasekit:vps"]["size"] = "s-2vcpu-3gb"
    status = main(["plan", "--stack", "dev", "--project-dir", str(project_with(tmp_path, config))])
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert captured.err.startswith("error: phasekit:vps.size: 's-2vcpu-3gb' is not a DigitalOcean droplet size")
    assert captured.err.count("\n") == 1


def test_unknown_stack_names_the_stacks_there_are(capsys):
    status, _, err = plan(capsys, "--stack", "nope")
    assert status == 1
    assert err.startswith("error: --stack: no stack file Pulumi.nope.yaml; allowed: ")
    assert "phase1" in err


@pytest.mark.parametrize(("args", "option"), [
    (["--compare", "phase1", "nope"], "--compare"),
    (["--from", "nope", "--to", "phase2"], "--from"),
    (["--from", "phase1", "--to", "nope"], "--to"),
    (["--diagram", "--diagram-stacks", "nope"], "--diagram-stacks"),
])
def test_an_unknown_stack_is_named_by_the_option_that_gave_it(capsys, args, option):
    status, out, err = plan(capsys, *args)
    assert (status, out) == (1, "")
    assert err == f"error: {option}: no stack file Pulumi.nope.yaml; allowed: phase1, phase2, phase3\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "phase1"], "--from and --to go together"),
    (["--stack", "phase1", "--to", "phase2"], "--from and --to go together"),
    (["--stack", "phase1", "--diagram-stacks", "phase1"], "--diagram-stacks goes with --diagram"),
    (["--compare", "phase1", "phase2", "--policy-pack-config", "levels.json"],
     "--policy-pack-config goes with --stack"),
])
def test_options_without_their_mode_are_usage_errors(capsys, args, message):
    """The error names the ``plan`` command and follows the usage of the mode concerned
    (tests/test_cli_usage.py has the exact usages)."""
    with pytest.raises(SystemExit) as exit_info:
        plan(capsys, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: phasekit plan --")
    assert err.endswith(f"phasekit plan: error: {message}\n")


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "phasekit", "plan", "--stack", "phase1"],
    [str(Path(sys.executable).with_name("phasekit")), "plan", "--stack", "phase1"],
])
def test_module_and_console_script_run_from_the_project(command):
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("phasekit plan: stack phase1 (phase 1) of project phasekit\n")


def test_running_the_program_directory_by_hand_points_at_the_tools():
    """``python -m infra`` outside the engine has no monitor to send resources to: one line, exit 1."""
    result = subprocess.run([sys.executable, "-m", "infra"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("infra/ is the Pulumi program: run it with `pulumi preview`, or plan it offline with "
                             "`python -m phasekit plan --stack <stack>`\n")


def test_bad_config_in_a_real_process_prints_no_traceback(tmp_path):
    config = yaml.safe_load((ROOT / "Pulumi.phase1.yaml").read_text())["config"]
    config["phasekit:vps"]["sshAdminCidrs"] = ["0.0.0.0/0"]
    project = project_with(tmp_path, config)
    result = subprocess.run([sys.executable, "-m", "phasekit", "plan", "--stack", "dev"], cwd=project,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: phasekit:vps.sshAdminCidrs[0]: '0.0.0.0/0'")


@pytest.mark.parametrize(("stack", "count", "lines"), [
    ("phase2", 52, [
        "├─ digitalocean:index/volume:Volume  split-db-data  [protected; retained on delete]",
        "├─ digitalocean:index/loadBalancer:LoadBalancer  split-lb",
        "  database_url: [secret]\n",
    ]),
    ("phase3", 143, [
        "├─ aws:rds/instance:Instance  database-db  [protected; retained on delete]",
        # The Cluster Autoscaler owns the desired size; a destroyed stack leaves the log group for the next.
        "├─ aws:eks/nodeGroup:NodeGroup  cluster-nodes  [ignores changes to scalingConfig.desiredSize]",
        "├─ aws:cloudwatch/logGroup:LogGroup  cluster-control-plane-logs  [retained on delete]",
        # Wider than 100 columns at its depth: the flags wrap under the tree's guides.
        "├─ aws:elasticache/replicationGroup:ReplicationGroup  cache-cache  [protected; retained on\n│  │    delete]",
        "├─ kubernetes:apps/v1:Deployment  app-deployment  [ignores changes to spec.replicas]",
        "  kubeconfig: [secret]\n",
    ]),
])
def test_later_phases_plan_like_phase1(capsys, stack, count, lines):
    status, out, err = plan(capsys, "--stack", stack)
    assert status == 0 and err == ""
    assert f"Resources: {count} to create" in out
    for line in lines:
        assert line in out
    status, out, _ = plan(capsys, "--stack", stack, "--json")
    assert status == 0 and len(json.loads(out)["resources"]) == count
