"""The database host's rendered access rules and pool sizing, exactly (pure; the real servers run these
files in test_data_host.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from components.data_host import (
    DataHostNetwork,
    DataHostSecrets,
    DataHostStack,
    PgBouncerSpec,
    data_redis_settings,
    pgbouncer_settings,
    render_data_bundle,
    render_pg_hba,
)
from components.tuning import Machine
from tests.builders import BACKUP_SECRETS, BACKUP_SPEC

NETWORK = DataHostNetwork(listen_address="10.10.0.5", client_cidr="10.10.0.0/20")
MACHINE = Machine(vcpus=2, memory_mib=4096)


def test_pg_hba_admits_the_app_from_the_vpc_range_only():
    assert render_pg_hba(NETWORK) == (
        "# Rendered by phasekit. The Unix socket exists only inside the container (health check, pg_dump);\n"
        "# loopback serves PgBouncer; the app's user reaches the app's database from the VPC range only.\n"
        "local  all        all                           trust\n"
        "host   all        all        127.0.0.1/32       scram-sha-256\n"
        "host   app        app        10.10.0.0/20       scram-sha-256\n"
    )


def test_pg_hba_never_admits_the_whole_internet():
    for line in render_pg_hba(NETWORK).splitlines():
        assert "0.0.0.0/0" not in line and "::/0" not in line and " all        all        10." not in line


def test_redis_binds_the_vpc_address_and_loopback():
    settings = data_redis_settings(DataHostStack(machine=MACHINE, app_connections=20), NETWORK)
    assert (settings["bind"], settings["protected-mode"], settings["port"]) == ("10.10.0.5 127.0.0.1", "yes", "6379")


def test_the_listen_address_must_be_inside_the_vpc_range():
    with pytest.raises(ValueError) as caught:
        DataHostNetwork(listen_address="203.0.113.9", client_cidr="10.10.0.0/20")
    assert str(caught.value) == "DataHostNetwork: 203.0.113.9 is not inside 10.10.0.0/20"


@pytest.mark.parametrize(("pgbouncer", "app_connections", "server_pool", "max_connections"), [
    (None, 2 * 2 * 5, 20, 30),                             # every connection direct, plus the reserve
    (None, 4, 4, 20),                                      # never below the floor of 20
    (PgBouncerSpec("session"), 40, 40, 50),                # session pooling caps, it does not multiplex
    (PgBouncerSpec("transaction"), 40, 10, 20),            # 4 per vCPU, at least 10
    (PgBouncerSpec("transaction"), 6, 6, 20),              # never more than the app asks for
])
def test_connection_sizing(pgbouncer, app_connections, server_pool, max_connections):
    stack = DataHostStack(machine=MACHINE, app_connections=app_connections, pgbouncer=pgbouncer)
    assert (stack.server_pool_size, stack.max_connections) == (server_pool, max_connections)


def test_pgbouncer_accepts_the_whole_tier_and_pools_into_loopback():
    stack = DataHostStack(machine=MACHINE, app_connections=40, pgbouncer=PgBouncerSpec())
    assert pgbouncer_settings(stack, NETWORK) == {
        "databases": {"app": "host=127.0.0.1 port=5432 dbname=app"},
        "pgbouncer": {
            "listen_addr": "10.10.0.5,127.0.0.1",
            "listen_port": "6432",
            "auth_type": "scram-sha-256",
            "auth_file": "/etc/pgbouncer/userlist.txt",
            "pool_mode": "transaction",
            "max_client_conn": "50",
            "default_pool_size": "10",
            "server_reset_query": "DISCARD ALL",
            "ignore_startup_parameters": "extra_float_digits",
        },
    }


BACKED_UP = DataHostStack(machine=MACHINE, app_connections=20, backups=BACKUP_SPEC)
PASSWORDS = {"db_password": "dbpw", "redis_password": "redispw"}


def test_the_status_server_listens_on_the_vpc_address_only():
    files = render_data_bundle(BACKED_UP, NETWORK, DataHostSecrets(**PASSWORDS, **BACKUP_SECRETS))
    assert json.loads(files["caddy/status.json"].content) == {
        "admin": {"disabled": True},
        "apps": {"http": {"servers": {"status": {
            "listen": ["10.10.0.5:8079"],
            "routes": [{"handle": [{"handler": "file_server", "root": "/srv/phasekit-status"}]}],
            "errors": {"routes": [{"handle": [{"handler": "static_response", "abort": True}]}]},
            "automatic_https": {"disable": True},
        }}}},
    }
    status = yaml.safe_load(files["compose.yaml"].content)["services"]["status"]
    assert status["image"] == "caddy:2.11.4"
    assert status["volumes"] == [
        {"type": "bind", "source": "./caddy/status.json", "target": "/etc/caddy/status.json", "read_only": True},
        {"type": "bind", "source": "./status", "target": "/srv/phasekit-status", "read_only": True}]
    assert status["network_mode"] == "host" and "ports" not in status


def test_the_data_host_archives_checks_archiving_and_installs_the_backup_timers():
    files = render_data_bundle(BACKED_UP, NETWORK, DataHostSecrets(**PASSWORDS, **BACKUP_SECRETS))
    lines = files["deploy.sh"].content.splitlines()
    start = lines.index("docker compose pull --quiet --ignore-buildable")
    assert lines[start:start + 5] == [
        "docker compose pull --quiet --ignore-buildable",
        "docker compose build --pull db",
        "install -d -m 0755 status",
        "docker compose up --detach --remove-orphans --wait --wait-timeout 300 db redis status",
        "/opt/phasekit/backup.sh init || { echo 'phasekit: WAL archiving to the backups bucket does not work "
        "(see pgbackrest check above)' >&2; exit 1; }",
    ]
    assert "systemctl enable --now phasekit-backup-diff.timer phasekit-backup-full.timer " \
           "phasekit-backup-redis.timer phasekit-backup-status.timer" in lines
    conf = files["postgres/postgresql.conf"].content.splitlines()
    assert "archive_command = 'pgbackrest --stanza=app archive-push %p'" in conf
    assert {path: (files[path].mode, files[path].owner_id) for path in
            ("secrets/pgbackrest.conf", "secrets/backup_passphrase", "secrets/r2-curl.conf")} == {
        "secrets/pgbackrest.conf": (0o400, 999), "secrets/backup_passphrase": (0o400, 0),
        "secrets/r2-curl.conf": (0o400, 0)}


def test_without_backups_the_data_host_is_unchanged():
    files = render_data_bundle(DataHostStack(machine=MACHINE, app_connections=20), NETWORK,
                               DataHostSecrets(**PASSWORDS))
    assert not any(path.startswith(("backup", "caddy/", "secrets/pgbackrest", "systemd/phasekit-backup"))
                   for path in files)
    assert "docker compose pull --quiet" in files["deploy.sh"].content.splitlines()


def test_backups_without_their_secrets_are_refused():
    with pytest.raises(ValueError) as caught:
        render_data_bundle(BACKED_UP, NETWORK, DataHostSecrets(**PASSWORDS))
    assert str(caught.value) == ("DataHostSecrets: off-site backups need backup_access_key_id, "
                                 "backup_secret_access_key and backup_passphrase")
