"""The process and schedule warnings of phasekit/guardrails.py, on the committed stacks with a worker and two
schedules (tests/builders.py ``with_processes``).

Pure functions of the validated config: no Pulumi runtime. What this cannot prove: that the OOM killer really
fires at the computed number (the web workers have no memory limit), or that systemd and Kubernetes skip ticks
exactly as described; those are the behaviours the warnings cite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import load_config
from phasekit.guardrails import droplet_memory_to_spare, process_warnings, shortest_interval_seconds
from phasekit.stack_file import read_stack_file
from tests.builders import with_processes

ROOT = Path(__file__).resolve().parents[1]


def _stack(phase: int, **worker):
    return with_processes(read_stack_file(ROOT / f"Pulumi.phase{phase}.yaml"), **worker)


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_the_committed_stacks_have_no_process_warnings(phase):
    assert process_warnings(load_config(read_stack_file(ROOT / f"Pulumi.phase{phase}.yaml"))) == []


def test_phase1_workers_and_the_largest_schedule_beyond_what_the_droplet_spares_warn():
    # s-1vcpu-2gb: 2048 - 512 (shared_buffers, a quarter) - 256 (Redis maxmemory, an eighth) - 512 (the host's
    # reserve) = 768 MiB.
    assert process_warnings(load_config(_stack(1))) == [
        "phasekit:app.processes/schedules: the memory limits of the processes and the largest schedule "
        "(2 x 768 MiB worker + 512 MiB refresh-trending (the largest schedule) = 2048 MiB) exceed the 768 MiB the "
        "droplet can spare (2048 MiB less PostgreSQL's shared_buffers 512 MiB, Redis' maxmemory 256 MiB and 512 MiB "
        "kept for the OS, Docker, Caddy and the web workers): the kernel's OOM killer would stop a container. Lower "
        "count or memory, or choose a larger droplet size"]


def test_phase1_within_what_the_droplet_spares_is_quiet():
    # 1 x 256 + 512 = 768: exactly what it spares, with the reserve for the web workers kept.
    assert process_warnings(load_config(_stack(1, count=1, memory="256Mi"))) == []
    assert process_warnings(load_config(_stack(1, count=1, memory="257Mi"))) == [
        "phasekit:app.processes/schedules: the memory limits of the processes and the largest schedule "
        "(1 x 257 MiB worker + 512 MiB refresh-trending (the largest schedule) = 769 MiB) exceed the 768 MiB the "
        "droplet can spare (2048 MiB less PostgreSQL's shared_buffers 512 MiB, Redis' maxmemory 256 MiB and 512 MiB "
        "kept for the OS, Docker, Caddy and the web workers): the kernel's OOM killer would stop a container. Lower "
        "count or memory, or choose a larger droplet size"]


def test_phase2_app0_spares_all_but_the_reserve_and_warns_beyond_it():
    config = load_config(_stack(2, count=3))  # s-2vcpu-2gb app droplets
    assert droplet_memory_to_spare(config) == (
        2048, 1536, "2048 MiB less 512 MiB kept for the OS, Docker, Caddy and the web workers; PostgreSQL and Redis "
                    "are on the database droplet")
    assert process_warnings(config) == [
        "phasekit:app.processes/schedules: the memory limits of the processes and the largest schedule "
        "(3 x 768 MiB worker + 512 MiB refresh-trending (the largest schedule) = 2816 MiB) exceed the 1536 MiB "
        "app-0 (it runs the schedules) can spare (2048 MiB less 512 MiB kept for the OS, Docker, Caddy and the web "
        "workers; PostgreSQL and Redis are on the database droplet): the kernel's OOM killer would stop a container. "
        "Lower count or memory, or choose a larger droplet size"]
    assert process_warnings(load_config(_stack(2, count=1))) == []


@pytest.mark.parametrize(("phase", "worker", "where"), [
    (1, {"memory": "256Mi"}, "its systemd service holds a lock"),
    (2, {}, "its systemd service holds a lock"),
    (3, {}, "its CronJob forbids overlap"),
])
def test_a_schedule_that_may_outlast_its_interval_warns(phase, worker, where):
    raw = _stack(phase, count=1, **worker)  # within the droplet's memory, so the timeout warning is the only one
    raw["phasekit:app"]["schedules"]["refresh-trending"]["timeoutSeconds"] = 901
    assert process_warnings(load_config(raw)) == [
        "phasekit:app.schedules.refresh-trending.timeoutSeconds: 901 is longer than the 900 seconds between the "
        f"closest ticks of '*/15 * * * *': a run never overlaps the previous one ({where}), so a run that takes "
        "that long skips the ticks in between. Set timeoutSeconds to 900 or less, or run it less often"]
    raw["phasekit:app"]["schedules"]["refresh-trending"]["timeoutSeconds"] = 900
    assert process_warnings(load_config(raw)) == []


@pytest.mark.parametrize(("cron", "seconds"), [
    ("*/15 * * * *", 900),
    ("5,55 * * * *", 600),            # 55 past to 5 past the next hour
    ("30 4 * * *", 86400),
    ("0 9-17/4 * * 1-5", 4 * 3600),   # 9, 13, 17 on weekdays; Friday 17:00 to Monday 9:00 is longer
    ("0 0 * * 1", 7 * 86400),
    ("0 3 1 * *", 28 * 86400),        # 1 February to 1 March in a common year
    ("0 0 29 2 *", 1461 * 86400),     # leap day to leap day
])
def test_shortest_interval_between_ticks(cron, seconds):
    assert shortest_interval_seconds(cron) == seconds
