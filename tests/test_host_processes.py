"""Processes and schedules on the droplets (phases 1 and 2): what is rendered, read by the real tools that consume
it (docker-compose, systemd-analyze, Caddy, shellcheck), and ``schedule.sh`` run for real.

``schedule.sh`` starts each run with ``docker compose run``; this machine has no Docker engine, so a ``docker``
script on PATH stands in for it (it records when each run starts and ends). Everything else in the script (the lock,
the timeout, the status files) is the real thing. What only a droplet proves: systemd firing the timers and
Compose v2 running the one-off container.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.compose_stack import (
    HostStack,
    compose_config,
    render_bundle,
    render_deploy_script,
    render_public_files,
    render_redis_auth,
)
from components.host_processes import SCHEDULE_STATUS_PATH, render_schedule_script, schedule_steps, schedule_units
from components.processes import CronError, ScheduleSpec, on_calendar, parse_cron
from components.proxy_config import render_caddy_json, status_files, status_upstream_env
from tests import realtools
from tests.builders import APP, HOST_STACK, SCHEDULES, STACK_SECRETS, WORKER

STACK = replace(HOST_STACK, app=replace(APP, processes=(WORKER,), schedules=SCHEDULES))
WEB_FIRST = replace(STACK, role="web", schedule_status_upstream=True)
WEB_OTHER = replace(STACK, role="web", runs_release=False, runs_schedules=False, schedule_status_upstream=True)


# --- Compose ------------------------------------------------------------------------------------------------


def test_a_process_is_a_service_with_its_own_command_count_memory_and_grace():
    services = compose_config(STACK)["services"]
    assert services["worker"] == {
        "image": "ghcr.io/acme/shop:1.4.2",
        "command": ["celery", "-A", "shop", "worker"],
        "env_file": ["./secrets/app.env"],
        "depends_on": {"db": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}},
        "restart": "unless-stopped",
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}},
        "deploy": {"replicas": 2},
        "mem_limit": "768m",
        "stop_grace_period": "60s",
    }
    # no port, no proxy route: a process gets no traffic
    assert "ports" not in services["worker"]


def test_a_schedule_is_a_service_outside_up():
    services = compose_config(STACK)["services"]
    assert services["refresh-trending"] == {
        "image": "ghcr.io/acme/shop:1.4.2",
        "command": ["python", "manage.py", "refresh_trending"],
        "env_file": ["./secrets/app.env"],
        "depends_on": {"db": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}},
        "restart": "no",
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}},
        "profiles": ["schedules"],
        "mem_limit": "512m",
        "stop_grace_period": "30s",
    }


def test_only_the_first_web_host_gets_the_schedules_and_every_host_the_processes():
    first, other = compose_config(WEB_FIRST)["services"], compose_config(WEB_OTHER)["services"]
    assert {"worker", "refresh-trending", "expire-sessions"} <= set(first)
    assert "worker" in other and "refresh-trending" not in other and "expire-sessions" not in other
    assert "depends_on" not in first["worker"]  # the data stores live on the database droplet
    assert not any(path.startswith(("systemd/phasekit-schedule", "schedule.sh")) for path in render_public_files(WEB_OTHER))


def test_docker_compose_reads_the_processes_and_schedules():
    files = {
        "secrets/app.env": "LOG_LEVEL='info'\n",
        "secrets/db_password": "dbpw",
        "secrets/redis_password": "redispw",
        "secrets/redis_auth.conf": render_redis_auth("redispw"),
    }
    services = realtools.compose_config(render_public_files(STACK)["compose.yaml"].content, files)["services"]
    assert services["worker"]["command"] == ["celery", "-A", "shop", "worker"]
    assert services["worker"]["deploy"] == {"replicas": 2}
    assert services["worker"]["stop_grace_period"] == "60s"
    assert services["refresh-trending"]["profiles"] == ["schedules"]
    assert services["expire-sessions"]["command"] == ["python", "manage.py", "clearsessions"]


# --- systemd ------------------------------------------------------------------------------------------------


def test_a_schedule_is_a_timer_and_a_oneshot_service():
    units = schedule_units(SCHEDULES[:1], "/opt/phasekit")
    assert units == {
        "phasekit-schedule-refresh-trending.service": textwrap.dedent("""\
            [Unit]
            Description=phasekit: schedule refresh-trending (*/15 * * * * UTC)
            Requires=docker.service
            After=docker.service

            [Service]
            Type=oneshot
            WorkingDirectory=/opt/phasekit
            ExecStart=/opt/phasekit/schedule.sh run refresh-trending 600 30
            TimeoutStartSec=720
            SyslogIdentifier=phasekit-schedule-refresh-trending
            """),
        "phasekit-schedule-refresh-trending.timer": textwrap.dedent("""\
            [Unit]
            Description=phasekit: schedule refresh-trending (*/15 * * * * UTC)

            [Timer]
            OnCalendar=*-*-* *:00,15,30,45:00 UTC
            AccuracySec=1s
            Persistent=false

            [Install]
            WantedBy=timers.target
            """),
    }


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed (Debian package systemd)"
    units = schedule_units(SCHEDULES, str(tmp_path))
    for name, content in units.items():
        (tmp_path / name).write_text(content)
    script = tmp_path / "schedule.sh"
    script.write_text(render_schedule_script())
    script.chmod(0o755)
    # The units need docker.service, which this machine lacks: a stub stands in (found first on the unit path).
    (tmp_path / "docker.service").write_text("[Service]\nExecStart=/bin/true\n")
    proc = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / name) for name in sorted(units))],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"})
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if "phasekit-schedule" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


CRONS = ["*/15 * * * *", "30 4 * * *", "0 9 * * 1-5", "5 0 1 * *", "5 4 * * 0,6", "0 */2 1-10 1,6 *",
         "10-20/5 3 * * *", "0 12 * 2 *", "59 23 31 * *", "7 8 * * 6", "*/7 */5 * * *"]


def _cron_minutes(cron: str, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` minutes after ``start`` the cron matches, by checking every minute."""
    fields, found, moment = parse_cron(cron), [], start.replace(second=0) + timedelta(minutes=1)
    while len(found) < count:
        if fields.runs_at(moment):
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


@pytest.mark.parametrize("cron", CRONS)
def test_the_timer_elapses_exactly_when_cron_would(cron):
    """systemd's own calendar parser, from a fixed base time, against a minute-by-minute reading of the cron."""
    base = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)
    proc = subprocess.run(["systemd-analyze", "calendar", "--iterations=12",
                           f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", on_calendar(cron)],
                          capture_output=True, text=True, check=True, timeout=30, env={**os.environ, "TZ": "UTC"})
    elapses = [datetime.strptime(match, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
               for match in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", proc.stdout)]
    assert elapses == _cron_minutes(cron, base, 12), proc.stdout


@pytest.mark.parametrize(("cron", "field", "values"), [
    # robfig/cron v3 parser.go getRange: 'a/n' is 'a-max/n'; a range with a step; a list of both
    ("5/15 * * * *", "minutes", {5, 20, 35, 50}),
    ("* 1-10/4 * * *", "hours", {1, 5, 9}),
    ("* * * * 1,3-5", "weekdays", {1, 3, 4, 5}),
    ("* * */10 * *", "days", {1, 11, 21, 31}),
])
def test_cron_fields_read_as_robfig_cron_reads_them(cron, field, values):
    assert getattr(parse_cron(cron), field) == frozenset(values)


@pytest.mark.parametrize(("cron", "message"), [
    # robfig/cron v3 bounds day-of-week to 0-6 ("end of range (7) above maximum (6)"); the API server validates a
    # CronJob's schedule with it, so 7 would fail `pulumi up` in phase 3
    ("0 3 * * 7", "'0 3 * * 7': day-of-week 7 is out of range; allowed: 0-6"),
    ("* * * * 5-7", "'* * * * 5-7': day-of-week 7 is out of range; allowed: 0-6"),
    # '*/1' keeps robfig's star flag, but phasekit reads any day-of-month other than '*' as restricted: refused
    # rather than guessed
    ("0 3 */1 * 1", "'0 3 */1 * 1' restricts both day-of-month and day-of-week, which cron runs when either "
                    "matches and systemd only when both do; allowed: one of the two as *, e.g. two schedules, one "
                    "per field"),
])
def test_cron_that_kubernetes_or_systemd_would_read_differently_is_refused(cron, message):
    with pytest.raises(CronError) as refused:
        parse_cron(cron)
    assert str(refused.value) == message


# --- schedule.sh --------------------------------------------------------------------------------------------


DOCKER_STUB = """#!/bin/sh
# Stands in for the Docker CLI: `compose run ... NAME` sleeps $RUN_SECONDS and exits $RUN_EXIT, logging start and end.
if [ "$1" = compose ] && [ "$2" = run ]; then
  for last; do :; done
  echo "start $last $(date +%s.%N)" >> "$RUN_LOG"
  sleep "${RUN_SECONDS:-0}"
  echo "end $last $(date +%s.%N)" >> "$RUN_LOG"
  exit "${RUN_EXIT:-0}"
fi
echo "docker $*" >> "$RUN_LOG"
"""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A stack directory with ``schedule.sh`` and a ``docker`` stub first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(DOCKER_STUB)
    (bin_dir / "docker").chmod(0o755)
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "schedule.sh").write_text(render_schedule_script())
    (stack / "schedule.sh").chmod(0o755)
    return stack


def _schedule(host: Path, *args: str, seconds: float = 0, exit_code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{host.parent / 'bin'}:{os.environ['PATH']}", "RUN_LOG": str(host / "runs.log"),
           "RUN_SECONDS": str(seconds), "RUN_EXIT": str(exit_code)}
    return subprocess.run(["sh", str(host / "schedule.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def _runs(host: Path) -> list[str]:
    return [line.split()[0] + " " + line.split()[1] for line in (host / "runs.log").read_text().splitlines()
            if line.startswith(("start", "end"))]


def test_schedule_script_passes_shellcheck():
    realtools.shellcheck(render_schedule_script())


def test_a_run_never_overlaps_its_previous_run(host):
    """Two runs of one schedule started together: the second finds the first holding the lock and skips its tick."""
    results: list[subprocess.CompletedProcess[str]] = []
    first = threading.Thread(target=lambda: results.append(_schedule(host, "run", "refresh", "60", "5", seconds=2)))
    first.start()
    deadline = time.monotonic() + 10
    while not (host / "runs.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = _schedule(host, "run", "refresh", "60", "5")
    first.join(timeout=30)
    assert second.returncode == 0
    assert second.stderr == "phasekit: schedule refresh is still running; this tick is skipped\n"
    assert _runs(host) == ["start refresh", "end refresh"]
    assert results[0].returncode == 0
    # the next tick, once the run ended, runs again
    assert _schedule(host, "run", "refresh", "60", "5").returncode == 0
    assert _runs(host) == ["start refresh", "end refresh", "start refresh", "end refresh"]


def test_another_schedule_runs_beside_it(host):
    results: list[subprocess.CompletedProcess[str]] = []
    first = threading.Thread(target=lambda: results.append(_schedule(host, "run", "refresh", "60", "5", seconds=1)))
    first.start()
    time.sleep(0.3)
    assert _schedule(host, "run", "expire", "60", "5").returncode == 0
    first.join(timeout=30)
    assert sorted(_runs(host)) == ["end expire", "end refresh", "start expire", "start refresh"]


def test_a_failed_run_takes_the_status_file_down_until_the_next_success(host):
    assert _schedule(host, "status", "refresh", "expire").returncode == 0
    assert (host / "status/schedules.txt").read_text().startswith("schedules ok ")

    failed = _schedule(host, "run", "refresh", "60", "5", exit_code=3)
    assert failed.returncode == 3
    assert failed.stderr == "phasekit: schedule refresh failed (exit 3)\n"
    assert not (host / "status/schedules.txt").exists()
    assert (host / "status/schedule-failed-refresh").read_text().startswith("exit 3 at ")

    assert _schedule(host, "run", "expire", "60", "5").returncode == 0  # another schedule's success is not enough
    assert not (host / "status/schedules.txt").exists()
    assert _schedule(host, "run", "refresh", "60", "5").returncode == 0
    assert (host / "status/schedules.txt").exists() and not (host / "status/schedule-failed-refresh").exists()


def test_a_run_past_its_timeout_is_stopped_and_counts_as_failed(host):
    started = time.monotonic()
    result = _schedule(host, "run", "refresh", "1", "1", seconds=30)
    assert time.monotonic() - started < 10
    assert result.returncode == 124
    assert "phasekit: schedule refresh ran past 1s and was stopped\n" in result.stderr
    assert (host / "status/schedule-failed-refresh").read_text().startswith("exit 124 at ")
    log = (host / "runs.log").read_text()
    assert "docker stop --time 1 phasekit-schedule-refresh" in log
    assert log.rstrip().endswith("docker rm --force phasekit-schedule-refresh")


def test_status_forgets_schedules_no_longer_configured(host):
    _schedule(host, "run", "gone", "60", "5", exit_code=1)
    assert not (host / "status/schedules.txt").exists()
    assert _schedule(host, "status", "refresh").returncode == 0
    assert not (host / "status/schedule-failed-gone").exists()
    assert (host / "status/schedules.txt").exists()


def test_a_rollouts_pause_holds_until_deploy_resumes(host):
    """The pause deploy.sh renders, run for real (systemctl stands in: no systemd here): a run in progress when the
    rollout starts does not republish the status file, and no tick runs until the resume removes the marker, so a
    rollout that fails midway (or a reboot after it) leaves the schedules paused and the status URL down."""
    (host.parent / "bin" / "systemctl").write_text("#!/bin/sh\necho \"systemctl $*\" >> \"$RUN_LOG\"\n")
    (host.parent / "bin" / "systemctl").chmod(0o755)
    assert _schedule(host, "status", "refresh").returncode == 0
    before, _ = schedule_steps(SCHEDULES)
    results: list[subprocess.CompletedProcess[str]] = []
    running = threading.Thread(target=lambda: results.append(_schedule(host, "run", "refresh", "60", "5", seconds=1)))
    running.start()
    time.sleep(0.3)
    env = {**os.environ, "PATH": f"{host.parent / 'bin'}:{os.environ['PATH']}", "RUN_LOG": str(host / "runs.log")}
    subprocess.run(["sh", "-euc", "\n".join(before)], cwd=host, env=env, check=True, timeout=30)
    running.join(timeout=30)
    assert results[0].returncode == 0
    assert not (host / "status/schedules.txt").exists()  # the run that ended meanwhile did not republish it

    skipped = _schedule(host, "run", "refresh", "60", "5")
    assert skipped.returncode == 0
    assert skipped.stderr == ("phasekit: schedules are paused by a rollout that has not finished; refresh skips "
                              "this tick\n")
    assert _runs(host) == ["start refresh", "end refresh"]
    assert not (host / "status/schedules.txt").exists()

    (host / "schedules-paused").unlink()  # what the resume does, then `schedule.sh status`
    assert _schedule(host, "status", "refresh").returncode == 0
    assert (host / "status/schedules.txt").exists()


def test_the_resume_retires_old_timers_installs_the_new_ones_and_publishes(host):
    """deploy.sh's resume lines run for real, /etc/systemd/system moved to a folder here and systemctl stubbed (no
    systemd here): a schedule no longer configured loses its units, the current ones are installed and enabled, the
    pause mark goes and the status file comes back."""
    units = host.parent / "etc-systemd"
    units.mkdir()
    for stale in ("phasekit-schedule-gone.timer", "phasekit-schedule-gone.service"):
        (units / stale).write_text("[Unit]\n")
    (host / "systemd").mkdir()
    for name, content in schedule_units(SCHEDULES, str(host)).items():
        (host / "systemd" / name).write_text(content)
    (host.parent / "bin" / "systemctl").write_text("#!/bin/sh\necho \"systemctl $*\" >> \"$RUN_LOG\"\n")
    (host.parent / "bin" / "systemctl").chmod(0o755)
    (host / "schedules-paused").touch()
    _, after = schedule_steps(SCHEDULES)
    script = "\n".join(after).replace("/etc/systemd/system", str(units))
    env = {**os.environ, "PATH": f"{host.parent / 'bin'}:{os.environ['PATH']}", "RUN_LOG": str(host / "runs.log")}
    subprocess.run(["sh", "-euc", script], cwd=host, env=env, check=True, timeout=30)
    assert sorted(path.name for path in units.iterdir()) == sorted(schedule_units(SCHEDULES, str(host)))
    assert (host / "runs.log").read_text().splitlines() == [
        "systemctl disable --now phasekit-schedule-gone.timer",
        "systemctl daemon-reload",
        "systemctl enable --now phasekit-schedule-refresh-trending.timer phasekit-schedule-expire-sessions.timer",
    ]
    assert not (host / "schedules-paused").exists()
    assert (host / "status/schedules.txt").read_text().startswith("schedules ok ")


def test_a_container_killed_before_its_limit_is_not_reported_as_a_timeout(host):
    killed = _schedule(host, "run", "refresh", "60", "5", exit_code=137)
    assert killed.returncode == 137
    assert killed.stderr == ("phasekit: schedule refresh was killed (exit 137: out of memory?)\n"
                             "phasekit: schedule refresh failed (exit 137)\n")


# --- deploy.sh and the status URL ---------------------------------------------------------------------------


def test_deploy_pauses_the_schedules_before_the_release_and_resumes_them_once_live():
    lines = render_deploy_script(STACK).splitlines()
    assert lines[lines.index('cd "$(dirname "$0")"') + 1:][:4] == [
        "install -d -m 0755 status",
        "touch schedules-paused",
        "rm -f status/schedules.txt",
        "systemctl stop 'phasekit-schedule-*.timer' 2>/dev/null || true",
    ]
    assert lines.index("systemctl stop 'phasekit-schedule-*.timer' 2>/dev/null || true") < lines.index(
        "docker compose run --rm -T migrate")
    prune = lines.index("docker image prune --force --filter until=168h >/dev/null")
    assert prune > lines.index("./health.sh http://127.0.0.1:8000")
    assert lines[prune + 1:] == [
        "for unit in /etc/systemd/system/phasekit-schedule-*.timer; do",
        '  [ -e "$unit" ] || continue',
        '  timer=$(basename "$unit")',
        '  case "$timer" in phasekit-schedule-refresh-trending.timer|phasekit-schedule-expire-sessions.timer) ;; '
        '*) systemctl disable --now "$timer" 2>/dev/null || true; rm -f "$unit" "${unit%.timer}.service" ;; esac',
        "done",
        "install -m 0644 systemd/phasekit-schedule-* /etc/systemd/system/",
        "systemctl daemon-reload",
        "systemctl enable --now phasekit-schedule-refresh-trending.timer phasekit-schedule-expire-sessions.timer",
        "rm -f schedules-paused",
        "./schedule.sh status refresh-trending expire-sessions",
    ]


def test_a_host_without_schedules_retires_old_timers_only():
    lines = render_deploy_script(WEB_OTHER).splitlines()
    prune = lines.index("docker image prune --force --filter until=168h >/dev/null")
    assert lines[prune + 5] == ('  case "$timer" in -) ;; *) systemctl disable --now "$timer" 2>/dev/null || true; '
                                'rm -f "$unit" "${unit%.timer}.service"; retired=yes ;; esac')
    assert lines[prune + 7:] == ['[ "$retired" = no ] || systemctl daemon-reload', "rm -f schedules-paused"]


@pytest.mark.parametrize("stack", [STACK, WEB_FIRST, WEB_OTHER], ids=["phase1", "first-web", "other-web"])
def test_deploy_script_passes_shellcheck(stack):
    realtools.shellcheck(render_deploy_script(stack))


def test_phase_one_serves_the_schedule_status_and_caddy_accepts_it(tmp_path):
    assert status_files(STACK)[SCHEDULE_STATUS_PATH] == "schedules.txt"
    assert status_upstream_env(STACK, SCHEDULE_STATUS_PATH) is None
    assert SCHEDULE_STATUS_PATH not in status_files(HOST_STACK)
    cert, key = realtools.self_signed_cert(tmp_path, "app.example.com")
    assert "Valid configuration" in realtools.caddy_validate(
        render_caddy_json(STACK, cert_file=str(cert), key_file=str(key)))


# --- connections --------------------------------------------------------------------------------------------


def test_postgres_has_a_pool_for_every_worker_process_container_and_schedule():
    # 2 web workers + 2 worker containers + 2 schedules, pool 5, + the reserve
    bare = HostStack(app=APP, machine=STACK.machine, hostname="app.example.com", tls_mode="origin-certificate")
    assert STACK.db_max_connections - bare.db_max_connections == (2 + 2) * 5
    assert STACK.app.pools_per_host(with_schedules=True) == 6
    assert STACK.app.pools_per_host(with_schedules=False) == 4


def test_systemd_waits_past_the_runs_own_timeout_and_both_stop_graces():
    spec = ScheduleSpec(name="slow", cron="* * * * *", command=("x",), timeout_seconds=86400)
    service = schedule_units((spec,), "/opt/phasekit")["phasekit-schedule-slow.service"].splitlines()
    assert "TimeoutStartSec=86520" in service  # 86400 + 2 x 30 + 60


# --- phase 2: the schedules host's status server ------------------------------------------------------------


def test_phase2_the_first_web_host_runs_a_status_server_for_the_tier():
    services = compose_config(WEB_FIRST)["services"]
    assert services["status"] == {
        "image": "caddy:2.11.4",
        "command": ["caddy", "run", "--config", "/etc/caddy/status.json"],
        "ports": ["${PHASEKIT_SCHEDULE_STATUS_ADDRESS:?the droplet's VPC address, from .env}:8078:8078"],
        "volumes": [
            {"type": "bind", "source": "./caddy/status.json", "target": "/etc/caddy/status.json", "read_only": True},
            {"type": "bind", "source": "./status", "target": "/srv/phasekit-status", "read_only": True},
        ],
        "restart": "unless-stopped",
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}},
    }
    assert services["proxy"]["env_file"] == ["./proxy.env"]
    assert "status" not in compose_config(WEB_OTHER)["services"]
    for stack in (WEB_FIRST, WEB_OTHER):
        assert status_files(stack) == {SCHEDULE_STATUS_PATH: "schedules.txt"}
        assert status_upstream_env(stack, SCHEDULE_STATUS_PATH) == "PHASEKIT_SCHEDULE_STATUS_UPSTREAM"


def test_phase2_every_web_host_passes_on_the_schedules_status_and_its_absence(tmp_path, host):
    """Real Caddys: the first app droplet's status server as rendered (address and folder moved here), another web
    host's proxy with that address in its environment as proxy.env gives it, and schedule.sh writing the status."""
    from tests.test_real_consumers import _free_port, _get_over_tls

    files = render_public_files(WEB_FIRST)
    status_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    server = json.loads(files["caddy/status.json"].content)
    assert server["apps"]["http"]["servers"]["status"]["listen"] == [":8078"]
    server["apps"]["http"]["servers"]["status"]["listen"] = [f"127.0.0.3:{status_port}"]
    server["apps"]["http"]["servers"]["status"]["routes"][0]["handle"][0]["root"] = str(host / "status")
    cert, key = realtools.self_signed_cert(tmp_path, "app.example.com")
    web = json.loads(render_caddy_json(WEB_OTHER, cert_file=str(cert), key_file=str(key)))
    servers = web["apps"]["http"]["servers"]
    servers["https"]["listen"], servers["http"]["listen"] = [f"127.0.0.1:{https_port}"], [f"127.0.0.1:{http_port}"]
    (tmp_path / "status.json").write_text(json.dumps(server))
    (tmp_path / "web.json").write_text(json.dumps(web))
    env = {**os.environ, "PHASEKIT_SCHEDULE_STATUS_UPSTREAM": f"127.0.0.3:{status_port}"}
    assert _schedule(host, "status", "refresh").returncode == 0
    caddys = [subprocess.Popen([realtools.pinned_caddy(), "run", "--config", str(tmp_path / name)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for name in ("status.json", "web.json")]
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.3", status_port)) == 0:
                    break
            time.sleep(0.1)
        answer = _get_over_tls(https_port, SCHEDULE_STATUS_PATH)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\nschedules ok " in answer
        assert _schedule(host, "run", "refresh", "60", "5", exit_code=1).returncode == 1
        assert _get_over_tls(https_port, SCHEDULE_STATUS_PATH) == b""
        assert _schedule(host, "run", "refresh", "60", "5").returncode == 0
        assert _get_over_tls(https_port, SCHEDULE_STATUS_PATH).startswith(b"HTTP/1.1 200 ")
    finally:
        for caddy in caddys:
            caddy.terminate()
            caddy.wait(timeout=10)


def test_docker_compose_publishes_the_status_server_on_the_vpc_address_only():
    secrets = replace(STACK_SECRETS, db_password=None, redis_password=None,
                      database_url="postgresql://app:dbpw@10.10.0.5:5432/app", redis_url="redis://:pw@10.10.0.5:6379/0",
                      schedule_status_upstream="10.10.0.7:8078")
    bundle = {path: file.content for path, file in render_bundle(WEB_FIRST, secrets).items()}
    assert bundle[".env"] == "PHASEKIT_SCHEDULE_STATUS_ADDRESS='10.10.0.7'\n"
    assert bundle["proxy.env"] == "PHASEKIT_SCHEDULE_STATUS_UPSTREAM='10.10.0.7:8078'\n"
    files = {path: bundle[path] for path in (".env", "proxy.env", "secrets/app.env")}
    services = realtools.compose_config(bundle["compose.yaml"], files)["services"]
    assert services["status"]["ports"] == ["10.10.0.7:8078:8078/tcp"]
    # Without the address Compose refuses to start rather than publish on every interface.
    with pytest.raises(AssertionError, match="Missing mandatory value for \"ports\""):
        realtools.compose_config(bundle["compose.yaml"], {path: files[path] for path in ("proxy.env", "secrets/app.env")})
    assert ".env" not in render_bundle(WEB_OTHER, secrets)
