"""Phase 2's config keys: the committed stack file, the bad-input table with exact messages, and the
models it shares with phase 1 (``app``, ``edge``, and the droplet access settings).

Pure logic, no Pulumi runtime. What these tests cannot prove: that DigitalOcean still sells a size, or
that the load balancer and VPC exist in the region.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from infra.config import DropletAccess, Phase1Stack, Phase2Stack, Vps, load_config
from phasekit.stack_file import read_stack_file
from tests import test_config as config_tests
from tests.test_config import DELETE, SIZES, error_message

ROOT = Path(__file__).resolve().parents[1]
PHASE2 = read_stack_file(ROOT / "Pulumi.phase2.yaml")


def edited(changes: Mapping[str, object]) -> dict[str, Any]:
    return config_tests.edited(changes, PHASE2)


def test_committed_phase2_file_loads_as_the_split_topology():
    config = load_config(PHASE2)
    assert isinstance(config, Phase2Stack)
    assert (config.app_tier.size.value, config.app_tier.count, config.app_tier.vcpus) == ("s-2vcpu-2gb", 2, 2)
    assert (config.database.size.value, config.database.memory_mib, config.database.volume_size_gib) == (
        "s-2vcpu-4gb", 4096, 40)
    assert (config.database.pgbouncer, config.database.pool_mode.value) == (True, "transaction")
    assert config.redis.placement.value == "database"
    assert config.worker_count == 2


def test_phase2_shares_phase1_models_instead_of_copying_them():
    assert Phase2Stack.model_fields["app"].annotation is Phase1Stack.model_fields["app"].annotation
    assert Phase2Stack.model_fields["edge"].annotation is Phase1Stack.model_fields["edge"].annotation
    assert Phase2Stack.model_fields["droplets"].annotation is DropletAccess
    assert issubclass(Vps, DropletAccess)


def test_switching_from_phase1_needs_only_the_stack_file():
    phase1 = read_stack_file(ROOT / "Pulumi.phase1.yaml")
    shared = ("phasekit:app", "phasekit:edge", "phasekit:protect")
    assert {key: phase1[key] for key in shared} == {key: PHASE2[key] for key in shared}


def test_redis_defaults_to_the_database_droplet():
    config = load_config(edited({"phasekit:redis": DELETE}))
    assert config.redis.placement.value == "database"


def test_one_app_droplet_may_skip_the_proxy():
    config = load_config(edited({"phasekit:appTier.count": 1, "phasekit:edge.proxied": False}))
    assert (config.app_tier.count, config.edge.proxied) == (1, False)


PHASE2_KEYS = ("phasekit:app, phasekit:appTier, phasekit:backups, phasekit:database, phasekit:droplets, "
               "phasekit:edge, phasekit:phase, phasekit:protect, phasekit:redis, phasekit:secrets, "
               "phasekit:services, phasekit:sshPrivateKey, phasekit:tags")

BAD_PHASE2_CONFIGS = [
    pytest.param({"phasekit:appTier.count": 0}, "phasekit:appTier.count: 0 is out of range; allowed: 1..10",
                 id="count-zero"),
    pytest.param({"phasekit:appTier.count": 11}, "phasekit:appTier.count: 11 is out of range; allowed: 1..10",
                 id="count-eleven"),
    pytest.param({"phasekit:appTier.count": "two"},
                 "phasekit:appTier.count: 'two' is not an integer; allowed: 1..10", id="count-word"),
    pytest.param(
        {"phasekit:database.size": "s-1vcpu-512mb-10gb"},
        "phasekit:database.size: 's-1vcpu-512mb-10gb' has 512 MiB of memory; "
        "allowed: a size with at least 1 GiB, e.g. s-1vcpu-2gb",
        id="database-under-1gib",
    ),
    pytest.param({"phasekit:appTier.size": "huge"},
                 f"phasekit:appTier.size: 'huge' is not a DigitalOcean droplet size; allowed: {SIZES}",
                 id="app-size-unknown"),
    pytest.param(
        {"phasekit:redis.placement": "app"},
        "phasekit:redis.placement: 'app' would give each app droplet its own Redis, but sessions, caches and "
        "queues must be shared by all of them; allowed: database (on the database droplet, shared by every app "
        "droplet over the VPC)",
        id="redis-on-each-app-droplet",
    ),
    pytest.param(
        {"phasekit:redis.placement": "elsewhere"},
        "phasekit:redis.placement: 'elsewhere' is not a Redis placement; allowed: database (on the database "
        "droplet, shared by every app droplet over the VPC)",
        id="redis-placement-unknown",
    ),
    pytest.param(
        {"phasekit:database.pgbouncer": False},
        "phasekit:database.poolMode: 'transaction' has no effect while pgbouncer is false; "
        "allowed: remove poolMode, or set pgbouncer: true",
        id="pool-mode-without-pgbouncer",
    ),
    pytest.param(
        {"phasekit:database.poolMode": "statement"},
        "phasekit:database.poolMode: 'statement' is not a pool mode; allowed: transaction or session",
        id="pool-mode-unknown",
    ),
    pytest.param(
        {"phasekit:edge.proxied": False},
        "phasekit:appTier.count: 2 app droplets need edge.proxied: true (the load balancer passes TLS through, "
        "and each droplet would have to win its own ACME challenge); "
        "allowed: appTier.count: 1, or edge.proxied: true",
        id="load-balancer-without-proxy",
    ),
    pytest.param(
        {"phasekit:droplets.sshAdminCidrs": ["0.0.0.0/0"]},
        "phasekit:droplets.sshAdminCidrs[0]: '0.0.0.0/0' opens SSH to the whole internet; "
        "allowed: the networks you administer from, e.g. 203.0.113.0/24",
        id="ssh-open-to-the-world",
    ),
    pytest.param({"phasekit:database.volumeSizeGib": 0},
                 "phasekit:database.volumeSizeGib: 0 is out of range; allowed: 1..16384", id="volume-zero"),
    pytest.param({"phasekit:database.size": DELETE},
                 f"phasekit:database.size: missing; allowed: {SIZES}", id="database-size-missing"),
    pytest.param(
        {"phasekit:vps": {"region": "nyc3"}},
        f"phasekit:vps: unknown key; allowed: {PHASE2_KEYS}",
        id="phase1-section-in-phase2",
    ),
    pytest.param(
        {"phasekit:appTier.replicas": 3},
        "phasekit:appTier.replicas: unknown key; allowed: count, size",
        id="app-tier-unknown-key",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_PHASE2_CONFIGS)
def test_bad_phase2_config_is_refused_with_one_exact_line(changes: Mapping[str, object], expected: str) -> None:
    assert error_message(edited(changes)) == expected


def test_phase2_alert_slack_and_services_are_accepted_and_the_webhook_is_a_required_secret():
    from infra.config import required_secret_names

    config = load_config(edited({
        "phasekit:droplets.alertSlack": [{"channel": "#ops", "webhook": "OPS_SLACK"},
                                         {"channel": "#db", "webhook": "OPS_SLACK"}],
        "phasekit:services": {"redis": "redis:7.4.12-bookworm"},
    }))
    assert [slack.channel for slack in config.droplets.alert_slack] == ["#ops", "#db"]
    assert config.services.images().redis == "redis:7.4.12-bookworm"
    assert required_secret_names(config)[-1:] == ["OPS_SLACK"]  # named twice, required once


def test_phase2_refuses_another_postgres_major_with_one_exact_line():
    assert error_message(edited({"phasekit:services": {"postgres": "postgres:15.10"}})) == (
        "phasekit:services.postgres: 'postgres:15.10' is PostgreSQL 15, not 16: a major upgrade is a migration to a "
        "new stack (phasekit db migrate, docs/migration.md); allowed: the official image with a PostgreSQL 16 tag, "
        "e.g. postgres:16.15-bookworm")
