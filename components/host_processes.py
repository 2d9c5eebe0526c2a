"""The app's processes and schedules on a droplet (phases 1 and 2): pure renderers, no Pulumi resources.

- Each process (``ProcessSpec``) is a Compose service named after it: ``deploy.replicas`` containers per host, a
  memory limit, ``stop_grace_period`` for a graceful stop. ``docker compose up`` in deploy.sh starts it with the rest
  of the stack, after the release command.
- Each schedule (``ScheduleSpec``) is a Compose service under the profile ``schedules`` (so ``up`` never starts it)
  and a pair of systemd units ``phasekit-schedule-<name>.{timer,service}`` on the one host that runs schedules. The
  timer elapses at the cron's minutes (``processes.on_calendar``, UTC, ``AccuracySec=1s``; no catch-up of ticks
  missed while the host was down, like a CronJob past its starting deadline); its oneshot service runs
  ``schedule.sh run``, which starts the service as a one-off container (``docker compose run --rm``) under a lock.

Why exactly once and never overlapping: only one host installs the timers, and systemd does not start a unit that
is still active when its timer elapses (systemd.timer(5): "it is not restarted, but simply left running. There is
no concept of spawning new service instances"; a oneshot service is still activating while its run goes on, and a
start request then joins the run in progress). ``schedule.sh`` also holds ``flock --nonblock`` on
``locks/<name>.lock``, so a manual run cannot overlap a timed one either (``tests/test_host_processes.py`` runs two
at once). A tick that finds the previous run still going is skipped, with a line in the journal.

Logs: the run's output goes to the journal under ``phasekit-schedule-<name>`` (``journalctl -u
phasekit-schedule-<name>``), kept as long as journald keeps it.

Failures: ``schedule.sh`` records a failed run (non-zero exit or past ``timeout_seconds``) as
``status/schedule-failed-<name>`` and removes it at the next success; ``status/schedules.txt`` exists only while
no schedule's last run failed, and Caddy serves it at ``SCHEDULE_STATUS_PATH``, where a DigitalOcean uptime check
alerts when it goes missing (like the backups' status).

Rollouts: the rollout writes ``PAUSED_MARKER`` before it unpacks the new bundle, and deploy.sh stops the timers
before it pulls the new version and removes the marker only once the new version serves (``schedule_steps``), so no
schedule of a new version runs before its release command: not a tick during the rollout, not a timer that restarts
at boot after a rollout failed, not a manual start. While paused the status file is down: a rollout that fails midway
leaves the schedules paused (never running the new image against a database its release did not migrate) and the
uptime check alerts after its period.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from components.processes import ProcessSpec, ScheduleSpec, on_calendar

SCHEDULE_PROFILE = "schedules"
UNIT_PREFIX = "phasekit-schedule"
SCHEDULE_STATUS_PATH = "/.well-known/phasekit/schedules"
SCHEDULE_STATUS_FILE = "schedules.txt"
SCHEDULE_STATUS_PORT = 8078
"""Phase 2: the schedules host's status server, which every web host's proxy asks for ``SCHEDULE_STATUS_PATH``
(the load balancer may send the uptime check to any of them)."""
FAILED_PREFIX = "schedule-failed-"
"""``status/schedule-failed-<name>``: the last run of ``<name>`` failed (its content says when and how)."""

PAUSED_MARKER = "schedules-paused"
"""In STACK_DIR: while it exists, ``schedule.sh run`` skips every tick and the status file stays down. The rollout
writes it before it unpacks a new bundle and ``deploy.sh`` removes it only once the new version serves, so neither a
timer that fires meanwhile, nor one that restarts at boot after a failed rollout, nor a manual start ever runs the new
image before its release command; and a run already in progress cannot republish the status file."""

STOP_GRACE_SECONDS = 30
"""After a schedule's timeout: how long its container has between SIGTERM and SIGKILL."""

UNIT_SLACK_SECONDS = 60
"""Added to a schedule service's ``TimeoutStartSec`` beyond the run's timeout and two stop graces: time for the
docker CLI to start and clean up, so systemd's own timeout only ever catches a hung CLI."""


def process_services(processes: Sequence[ProcessSpec], image: str, shared: Mapping[str, object]) -> dict:
    """The Compose services of the app's processes; ``shared`` holds what every app service has (env file,
    dependencies, restart policy, logging). ``deploy.replicas`` is the Compose Specification's container count
    (docs.docker.com/reference/compose-file/deploy/#replicas), which Compose v2 honours outside Swarm: compose-go's
    ``ServiceConfig.GetScale`` returns it when ``scale`` is unset."""
    return {
        process.name: {
            "image": image,
            "command": list(process.command),
            **shared,
            "deploy": {"replicas": process.count},
            "mem_limit": f"{process.memory_mib}m",
            "stop_grace_period": f"{process.stop_timeout_seconds}s",
        }
        for process in processes
    }


def schedule_services(schedules: Sequence[ScheduleSpec], image: str, shared: Mapping[str, object]) -> dict:
    """The Compose services of the app's schedules, outside ``up`` (a profile); ``schedule.sh`` runs them. A profile's
    service is ignored "unless the service is explicitly targeted by a command. In that case its profile is added to
    the set of active profiles" (docs.docker.com/reference/compose-file/profiles/), so ``docker compose run <name>``
    runs it while ``up`` and ``pull`` leave it alone (it shares the app's image, which ``pull`` fetches anyway)."""
    return {
        schedule.name: {
            "image": image,
            "command": list(schedule.command),
            **shared,
            "profiles": [SCHEDULE_PROFILE],
            "restart": "no",
            "mem_limit": f"{schedule.memory_mib}m",
            "stop_grace_period": f"{STOP_GRACE_SECONDS}s",
        }
        for schedule in schedules
    }


def schedule_units(schedules: Sequence[ScheduleSpec], stack_dir: str) -> dict[str, str]:
    """systemd units (file name -> content): a timer and a oneshot service per schedule."""
    from components.cloud_init import systemd_unit  # cloud_init imports compose_stack, which imports this module

    units: dict[str, str] = {}
    for schedule in schedules:
        unit = f"{UNIT_PREFIX}-{schedule.name}"
        description = f"phasekit: schedule {schedule.name} ({schedule.cron} UTC)"
        run = shlex.join([f"{stack_dir}/schedule.sh", "run", schedule.name, str(schedule.timeout_seconds),
                          str(STOP_GRACE_SECONDS)])
        units[f"{unit}.service"] = systemd_unit({
            "Unit": {"Description": description, "Requires": "docker.service", "After": "docker.service"},
            "Service": {
                "Type": "oneshot",
                "WorkingDirectory": stack_dir,
                "ExecStart": run,
                # schedule.sh stops the run itself after its timeout; this only catches a hung docker CLI.
                "TimeoutStartSec": str(schedule.timeout_seconds + 2 * STOP_GRACE_SECONDS + UNIT_SLACK_SECONDS),
                "SyslogIdentifier": unit,
            },
        })
        units[f"{unit}.timer"] = systemd_unit({
            "Unit": {"Description": description},
            "Timer": {"OnCalendar": on_calendar(schedule.cron), "AccuracySec": "1s", "Persistent": "false"},
            "Install": {"WantedBy": "timers.target"},
        })
    return units


def schedule_steps(schedules: Sequence[ScheduleSpec]) -> tuple[list[str], list[str]]:
    """deploy.sh lines: before the new version is pulled, pause every schedule timer (and take the status file down
    until they resume); once the new version serves, retire the units of schedules no longer configured, install and
    start the current ones and publish the status. A host without schedules only retires old ones."""
    timers = [f"{UNIT_PREFIX}-{schedule.name}.timer" for schedule in schedules]
    keep = "|".join(timers) or "-"
    before = [
        *(["install -d -m 0755 status"] if schedules else []),
        f"touch {PAUSED_MARKER}",
        f"rm -f status/{SCHEDULE_STATUS_FILE}",
        f"systemctl stop '{UNIT_PREFIX}-*.timer' 2>/dev/null || true",
    ]
    # Without schedules to install, systemd reloads only when a unit was retired.
    mark = "" if schedules else "; retired=yes"
    after = [
        *([] if schedules else ["retired=no"]),
        f"for unit in /etc/systemd/system/{UNIT_PREFIX}-*.timer; do",
        '  [ -e "$unit" ] || continue',
        '  timer=$(basename "$unit")',
        f'  case "$timer" in {keep}) ;; *) systemctl disable --now "$timer" 2>/dev/null || true; '
        f'rm -f "$unit" "${{unit%.timer}}.service"{mark} ;; esac',
        "done",
    ]
    if schedules:
        after += [
            f"install -m 0644 systemd/{UNIT_PREFIX}-* /etc/systemd/system/",
            "systemctl daemon-reload",
            f"systemctl enable --now {' '.join(timers)}",
            f"rm -f {PAUSED_MARKER}",
            shlex.join(["./schedule.sh", "status", *(schedule.name for schedule in schedules)]),
        ]
    else:
        after += ['[ "$retired" = no ] || systemctl daemon-reload', f"rm -f {PAUSED_MARKER}"]
    return before, after


def render_schedule_script() -> str:
    return _SCHEDULE_SCRIPT


_SCHEDULE_SCRIPT = rf"""#!/bin/sh
# Rendered by phasekit: the app's schedules on this host; systemd timers {UNIT_PREFIX}-<name>.timer run them.
#   schedule.sh run NAME TIMEOUT GRACE  one run of schedule NAME (the Compose service NAME as a one-off container),
#                                       stopped after TIMEOUT seconds (GRACE more to exit); a run that finds the
#                                       previous one still going, or the schedules paused by a rollout
#                                       ({PAUSED_MARKER}), skips its tick. Records the outcome in status/.
#   schedule.sh status NAME...          forget outcomes of schedules not listed; publish the status file
set -u
cd "$(dirname "$0")" || exit 1
install -d -m 0755 status
install -d -m 0700 locks

publish() {{
  # The status file exists only while no schedule's last run failed and no rollout has them paused; Caddy serves
  # it to the uptime check. One publisher at a time: two runs ending together must not interleave.
  (
    flock 8
    if [ -e {PAUSED_MARKER} ] || ls status/{FAILED_PREFIX}* >/dev/null 2>&1; then
      rm -f status/{SCHEDULE_STATUS_FILE}
    else
      printf 'schedules ok %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > status/{SCHEDULE_STATUS_FILE}.new
      mv status/{SCHEDULE_STATUS_FILE}.new status/{SCHEDULE_STATUS_FILE}
    fi
  ) 8>locks/publish.lock
}}

run() {{
  name=$1 limit=$2 grace=$3
  container="{UNIT_PREFIX}-$name"
  if [ -e {PAUSED_MARKER} ]; then
    echo "phasekit: schedules are paused by a rollout that has not finished; $name skips this tick" >&2
    return 0
  fi
  exec 9>"locks/$name.lock"
  if ! flock --nonblock 9; then
    echo "phasekit: schedule $name is still running; this tick is skipped" >&2
    return 0
  fi
  docker rm --force "$container" >/dev/null 2>&1 || true
  started=$(date +%s)
  code=0
  timeout --kill-after="$grace" "$limit" docker compose run --rm -T --no-deps --name "$container" "$name" || code=$?
  elapsed=$(( $(date +%s) - started ))
  # timeout(1) exits 124 when it stopped the command, 137 when it had to kill it; a container the kernel killed
  # for memory also exits 137, but before the limit.
  if [ "$code" -eq 124 ] || {{ [ "$code" -eq 137 ] && [ "$elapsed" -ge "$limit" ]; }}; then
    echo "phasekit: schedule $name ran past ${{limit}}s and was stopped" >&2
    docker stop --time "$grace" "$container" >/dev/null 2>&1 || true
  elif [ "$code" -eq 137 ]; then
    echo "phasekit: schedule $name was killed (exit 137: out of memory?)" >&2
  fi
  docker rm --force "$container" >/dev/null 2>&1 || true
  if [ "$code" -eq 0 ]; then
    rm -f "status/{FAILED_PREFIX}$name"
  else
    printf 'exit %s at %s\n' "$code" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "status/{FAILED_PREFIX}$name"
    echo "phasekit: schedule $name failed (exit $code)" >&2
  fi
  publish
  return "$code"
}}

status() {{
  for marker in status/{FAILED_PREFIX}*; do
    [ -e "$marker" ] || continue
    known=no
    for name in "$@"; do
      [ "$marker" = "status/{FAILED_PREFIX}$name" ] && known=yes
    done
    [ "$known" = yes ] || rm -f "$marker"
  done
  publish
}}

command=${{1:-}}
[ $# -gt 0 ] && shift
case "$command" in
  run) [ $# -eq 3 ] || {{ echo "usage: schedule.sh run NAME TIMEOUT GRACE" >&2; exit 2; }}; run "$@" ;;
  status) status "$@" ;;
  *) echo "usage: schedule.sh run NAME TIMEOUT GRACE | status NAME..." >&2; exit 2 ;;
esac
"""
