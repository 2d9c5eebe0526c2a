"""``phasekit render`` for a stack file with a worker and two schedules: the schedules' files land on the one host
that runs them, with their modes, and the units pass systemd-analyze as rendered. Phase 3's objects are checked by
tests/test_render.py's Kubernetes listing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.builders import project_with_processes
from tests.test_render import ROOT, main, tree

UNITS = ["phasekit-schedule-expire-sessions.service", "phasekit-schedule-expire-sessions.timer",
         "phasekit-schedule-refresh-trending.service", "phasekit-schedule-refresh-trending.timer"]


def render_with_processes(tmp_path: Path, stack: str) -> Path:
    """The committed stack plus the worker and two schedules, rendered."""
    project = project_with_processes(tmp_path, ROOT, [stack])
    out = tmp_path / "out"
    assert main(["render", "--stack", stack, "--out", str(out), "--project-dir", str(project)]) == 0
    return out


def test_phase1_host_folder_has_the_schedules_units_and_runner(tmp_path):
    out = render_with_processes(tmp_path, "phase1")
    modes = tree(out / "vps")
    assert {path: modes[path] for path in ["schedule.sh", *(f"systemd/{unit}" for unit in UNITS)]} == {
        "schedule.sh": 0o755, **{f"systemd/{unit}": 0o644 for unit in UNITS}}
    services = yaml.safe_load((out / "vps" / "compose.yaml").read_text())["services"]
    assert services["worker"]["deploy"] == {"replicas": 2}


def test_phase2_only_the_first_app_host_runs_the_schedules_and_their_status_server(tmp_path):
    out = render_with_processes(tmp_path, "phase2")
    first, other = tree(out / "app-0"), tree(out / "app-1")
    assert {"schedule.sh", "caddy/status.json", ".env", *(f"systemd/{unit}" for unit in UNITS)} <= set(first)
    assert not {"schedule.sh", "caddy/status.json", *(f"systemd/{unit}" for unit in UNITS)} & set(other)
    for host in ("app-0", "app-1"):
        services = yaml.safe_load((out / host / "compose.yaml").read_text())["services"]
        assert services["worker"]["command"] == ["celery", "-A", "shop", "worker"]


def test_the_rendered_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed (Debian package systemd)"
    out = render_with_processes(tmp_path, "phase1") / "vps"
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS:
        # ExecStart names /opt/phasekit/schedule.sh, which is on the droplet, not here: point it at the rendered one.
        text = (out / "systemd" / unit).read_text().replace("/opt/phasekit", str(out))
        (units / unit).write_text(text)
    (units / "docker.service").write_text("[Service]\nExecStart=/bin/true\n")
    proc = subprocess.run([analyze, "verify", "--man=no", *(str(units / unit) for unit in UNITS)],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"})
    assert proc.returncode == 0 and "phasekit-schedule" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("stack", ["phase1", "phase2"])
def test_the_committed_stacks_render_no_schedule_files(tmp_path, stack):
    out = tmp_path / "out"
    assert main(["render", "--stack", stack, "--out", str(out), "--project-dir", str(ROOT)]) == 0
    assert not [path for path in out.rglob("*") if "schedule" in path.name]
    assert not (out / "app-0" / "caddy" / "status.json").exists()
