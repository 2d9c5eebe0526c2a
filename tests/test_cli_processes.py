"""The CLI over stack files with a worker and two schedules: the plan warns, compare shows where each runs, change
risk lists a changed process (the tools read the config, since phases 1-2 carry processes inside the bundle)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from phasekit.cli import main
from tests.builders import project_with_processes

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        try:
            status = main(list(argv))
        except SystemExit as exit_info:
            status = exit_info.code
    return status, stdout.getvalue()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return project_with_processes(tmp_path_factory.mktemp("cli"), ROOT, ["phase1", "phase2", "phase3"])


def test_the_plan_warns_when_the_droplet_cannot_hold_the_processes(project):
    status, out = run("plan", "--stack", "phase1", "--project-dir", str(project), "--json")
    assert status == 0
    warnings = json.loads(out)["warnings"]
    assert warnings == [
        "phasekit:app.processes/schedules: the memory limits of the processes and the largest schedule "
        "(2 x 768 MiB worker + 512 MiB refresh-trending (the largest schedule) = 2048 MiB) exceed the 768 MiB the "
        "droplet can spare (2048 MiB less PostgreSQL's shared_buffers 512 MiB, Redis' maxmemory 256 MiB and 512 MiB "
        "kept for the OS, Docker, Caddy and the web workers): the kernel's OOM killer would stop a container. Lower "
        "count or memory, or choose a larger droplet size"]


def test_compare_shows_where_each_process_and_schedule_runs(project):
    status, out = run("plan", "--compare", "phase1", "phase2", "phase3", "--project-dir", str(project))
    assert status == 0
    section = out[out.index("Processes and schedules"):]
    assert "phase2  systemd timer phasekit-schedule-refresh-trending on split-app-0 only, timeout 600s" in section
    assert "phase3  CronJob (concurrencyPolicy Forbid, timeZone Etc/UTC), timeout 600s" in section


def test_risk_lists_a_changed_process(project, tmp_path):
    head = tmp_path / "Pulumi.phase1.yaml"
    document = yaml.safe_load((project / "Pulumi.phase1.yaml").read_text())
    document["config"]["phasekit:app"]["processes"]["worker"]["count"] = 3
    head.write_text(yaml.safe_dump(document, sort_keys=False))
    status, out = run("risk", "--stack", "phase1", "--base", str(project / "Pulumi.phase1.yaml"),
                      "--head", str(head), "--project-dir", str(project))
    assert status == 0
    assert "  - process worker changed (count 2 → 3)" in out
