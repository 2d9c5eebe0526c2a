"""A stack file with a worker and two schedules, through the whole program under the mock monitor (phases 1 and 2;
phase 3's are in tests/test_program_phases.py): which host gets what, and the alert on a failing schedule."""

from __future__ import annotations

import pytest
import yaml

from components.tuning import db_max_connections
from infra.config import load_config
from tests.builders import with_processes
from tests.test_program import PHASE1, bundle, run_phase1
from tests.test_program_phases import PHASE2, rollout_files, run

SCHEDULE_UNITS = {
    "systemd/phasekit-schedule-refresh-trending.service", "systemd/phasekit-schedule-refresh-trending.timer",
    "systemd/phasekit-schedule-expire-sessions.service", "systemd/phasekit-schedule-expire-sessions.timer",
}


@pytest.fixture
def phase1():
    return run_phase1(with_processes(PHASE1))


@pytest.fixture
def phase2():
    return run(with_processes(PHASE2), "phase2")


def test_phase1_runs_the_worker_and_the_schedules_on_its_droplet(phase1):
    files = bundle(phase1)
    services = yaml.safe_load(files["compose.yaml"])["services"]
    assert services["worker"]["command"] == ["celery", "-A", "shop", "worker"]
    assert services["worker"]["deploy"] == {"replicas": 2}
    assert [name for name, service in services.items() if service.get("profiles") == ["schedules"]] == [
        "refresh-trending", "expire-sessions"]
    assert SCHEDULE_UNITS <= set(files) and "schedule.sh" in files
    assert "OnCalendar=*-*-30 04:30:00 UTC" not in files["systemd/phasekit-schedule-expire-sessions.timer"]
    assert "OnCalendar=*-*-* 04:30:00 UTC" in files["systemd/phasekit-schedule-expire-sessions.timer"].splitlines()


def test_phase1_alerts_when_a_schedule_fails(phase1):
    check = phase1.named("vps-schedules-check")
    assert check.inputs == {"name": "phasekit-phase1-app schedules", "target":
                            "https://app.example.com/.well-known/phasekit/schedules", "type": "https",
                            "regions": ["us_east", "eu_west"], "enabled": True}
    alert = phase1.named("vps-schedules-alert")
    assert alert.inputs == {"checkId": check.id,
                            "name": "phasekit-phase1-app: a scheduled job failed or schedules paused",
                            "type": "down", "period": "10m", "notifications": [{"emails": ["ops@example.com"]}]}


def test_phase1_without_schedules_has_no_schedule_check():
    names = {resource.name for resource in run_phase1().resources}
    assert "vps-schedules-check" not in names and "vps-schedules-alert" not in names


def test_phase1_postgres_has_room_for_the_worker_and_schedule_pools(phase1):
    config = load_config(with_processes(PHASE1))
    conf = dict(line.split(" = ") for line in bundle(phase1)["postgres/postgresql.conf"].splitlines()[1:])
    # web workers, two worker containers and two schedules, one pool each, plus the reserve
    pools = config.worker_count + 2 + 2
    assert conf["max_connections"] == f"'{db_max_connections(pools, config.app.db_pool_size)}'"
    assert db_max_connections(pools, config.app.db_pool_size) > db_max_connections(config.worker_count,
                                                                                   config.app.db_pool_size)


def test_phase2_runs_the_worker_on_every_app_droplet_and_the_schedules_on_the_first(phase2):
    count = load_config(with_processes(PHASE2)).app_tier.count
    assert count >= 2
    first = rollout_files(phase2, "split-app-0-rollout")
    assert SCHEDULE_UNITS <= set(first)
    assert "./schedule.sh status refresh-trending expire-sessions" in first["deploy.sh"].splitlines()
    for index in range(count):
        files = rollout_files(phase2, f"split-app-{index}-rollout")
        services = yaml.safe_load(files["compose.yaml"])["services"]
        assert services["worker"]["deploy"] == {"replicas": 2}
        if index:
            assert not SCHEDULE_UNITS & set(files) and "refresh-trending" not in services
            assert "systemctl enable --now" not in files["deploy.sh"]


def test_phase2_every_web_host_asks_the_first_for_the_schedules_status(phase2):
    # The mocks give a droplet 203.0.113.N publicly and 10.10.0.N on the VPC (components.testing._fake_outputs).
    first_octet = phase2.named("split-app-0-rollout").inputs["connection"]["host"].rsplit(".", 1)[1]
    for index in range(2):
        files = rollout_files(phase2, f"split-app-{index}-rollout")
        assert files["proxy.env"].splitlines()[-1] == f"PHASEKIT_SCHEDULE_STATUS_UPSTREAM='10.10.0.{first_octet}:8078'"
    first = rollout_files(phase2, "split-app-0-rollout")
    assert first[".env"] == f"PHASEKIT_SCHEDULE_STATUS_ADDRESS='10.10.0.{first_octet}'\n"
    assert "caddy/status.json" in first
    assert ".env" not in rollout_files(phase2, "split-app-1-rollout")
    assert "caddy/status.json" not in rollout_files(phase2, "split-app-1-rollout")


def test_phase2_firewall_opens_the_status_port_to_the_app_tier_only(phase2):
    firewall = phase2.named("split-app-firewall").inputs
    tier = phase2.named("split-app-tier").inputs["name"]
    assert firewall["inboundRules"][-1] == {"protocol": "tcp", "portRange": "8078", "sourceTags": [tier]}
    assert firewall["outboundRules"][-1] == {"protocol": "tcp", "portRange": "8078", "destinationTags": [tier]}
    plain = run(PHASE2, "phase2").named("split-app-firewall").inputs
    assert not [rule for rule in plain["inboundRules"] + plain["outboundRules"] if rule.get("portRange") == "8078"]


def test_phase2_alerts_when_a_schedule_fails(phase2):
    check = phase2.named("split-schedules-check")
    assert check.inputs["target"] == "https://app.example.com/.well-known/phasekit/schedules"
    assert phase2.named("split-schedules-alert").inputs["checkId"] == check.id
